//! The HorizontalPodAutoscaler controller (kube-controller-manager, autoscaling/v2), step by
//! step as `pkg/controller/podautoscaler` does it: per metric a proposal (with the 10 %
//! tolerance band and the conservative treatment of unready and missing pods), the maximum
//! over metrics, then `behavior`: stabilization windows over past recommendations and rate
//! policies over past scale events, then min/max.

use super::{Autoscaler, AutoscalerError, ClusterView, Decision, PodState, PoolSignals, Quantity, Signal, invalid};
use crate::units::{NANOS_PER_SEC, SimDuration, SimTime};
use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default controller sync period (`--horizontal-pod-autoscaler-sync-period`).
pub const DEFAULT_SYNC_PERIOD: SimDuration = SimDuration(15 * NANOS_PER_SEC);
/// Default `--horizontal-pod-autoscaler-tolerance`.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Default metric pipeline delay (Prometheus scrape + rule evaluation + adapter).
pub const DEFAULT_METRIC_DELAY: SimDuration = SimDuration(15 * NANOS_PER_SEC);

/// `HorizontalPodAutoscaler.spec`, plus servesim's controller settings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaConfig {
    #[serde(default = "one")]
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub metrics: Vec<MetricSpec>,
    #[serde(default)]
    pub behavior: Option<BehaviorConfig>,
    /// Controller sync period (default 15 s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sync_period: Option<DurationStr>,
    /// Tolerance band around ratio 1 (default 0.1).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// Age of the metrics the controller sees (default 15 s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub metric_delay: Option<DurationStr>,
}

fn one() -> u32 {
    1
}

/// `autoscaling/v2` MetricSpec (`type: Pods` or `type: External`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "type")]
pub enum MetricSpec {
    Pods(PodsMetric),
    External(ExternalMetric),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PodsMetric {
    pub pods: MetricSource,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExternalMetric {
    pub external: MetricSource,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricIdentifier {
    /// A metric name (`vllm:num_requests_waiting`, `llm_d_epp_flow_control_queue_size`, …).
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricTarget {
    #[serde(rename = "type")]
    pub kind: TargetType,
    #[serde(default)]
    pub average_value: Option<Quantity>,
    #[serde(default)]
    pub value: Option<Quantity>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum TargetType {
    AverageValue,
    Value,
}

/// `behavior`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BehaviorConfig {
    #[serde(default)]
    pub scale_up: Option<ScalingRules>,
    #[serde(default)]
    pub scale_down: Option<ScalingRules>,
}

/// `HPAScalingRules`; unset fields take the Kubernetes defaults of their direction.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScalingRules {
    #[serde(default)]
    pub stabilization_window_seconds: Option<u32>,
    #[serde(default)]
    pub select_policy: Option<SelectPolicy>,
    #[serde(default)]
    pub policies: Option<Vec<ScalingPolicy>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub kind: PolicyType,
    pub value: u32,
    pub period_seconds: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum PolicyType {
    Pods,
    Percent,
}

/// Scaling rules with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub window: SimDuration,
    pub select: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
}

/// Kubernetes defaults: scale up without window, max(100 %, 4 pods) per 15 s; scale down with a
/// 300 s window, 100 % per 15 s.
pub fn resolve_behavior(b: Option<&BehaviorConfig>) -> Result<(Rules, Rules), AutoscalerError> {
    let up_default = vec![
        ScalingPolicy { kind: PolicyType::Pods, value: 4, period_seconds: 15 },
        ScalingPolicy { kind: PolicyType::Percent, value: 100, period_seconds: 15 },
    ];
    let down_default = vec![ScalingPolicy { kind: PolicyType::Percent, value: 100, period_seconds: 15 }];
    let one = |r: Option<&ScalingRules>, window: u32, pols: Vec<ScalingPolicy>, field: &str| {
        let r = r.cloned().unwrap_or_default();
        let policies = r.policies.unwrap_or(pols);
        for (i, p) in policies.iter().enumerate() {
            if p.period_seconds == 0 || p.period_seconds > 1800 {
                return invalid(
                    format!("behavior.{field}.policies[{i}].periodSeconds"),
                    "must be in 1..=1800 (as Kubernetes requires)",
                );
            }
            if p.value == 0 {
                return invalid(format!("behavior.{field}.policies[{i}].value"), "must be greater than zero");
            }
        }
        let w = r.stabilization_window_seconds.unwrap_or(window);
        if w > 3600 {
            return invalid(format!("behavior.{field}.stabilizationWindowSeconds"), "must be in 0..=3600");
        }
        Ok(Rules {
            window: SimDuration::from_secs(w as u64),
            select: r.select_policy.unwrap_or(SelectPolicy::Max),
            policies,
        })
    };
    Ok((
        one(b.and_then(|b| b.scale_up.as_ref()), 0, up_default, "scaleUp")?,
        one(b.and_then(|b| b.scale_down.as_ref()), 300, down_default, "scaleDown")?,
    ))
}

/// One metric, resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// Average of a per-pod gauge over pods vs `target`.
    Pods { signal: Signal, target: f64 },
    /// External metric (pool total) with an `AverageValue` target: ceil(total/target).
    ExternalAverage { signal: Signal, target: f64, mean: bool },
    /// External metric with a `Value` target: ratio × ready pods.
    ExternalValue { signal: Signal, target: f64, mean: bool },
}

impl Metric {
    pub fn observed(&self, view: &ClusterView) -> f64 {
        match *self {
            Metric::Pods { signal, .. } => {
                let v: Vec<f64> = view
                    .pods
                    .iter()
                    .filter_map(|p| match p {
                        PodState::Ready(Some(m)) => signal.per_pod(m),
                        _ => None,
                    })
                    .collect();
                if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
            }
            Metric::ExternalAverage { signal, mean, .. } | Metric::ExternalValue { signal, mean, .. } => {
                ext(signal, mean, &view.signals)
            }
        }
    }
}

fn ext(signal: Signal, mean: bool, s: &PoolSignals) -> f64 {
    if mean { signal.mean(s) } else { signal.total(s) }
}

pub(crate) fn resolve_metrics(metrics: &[MetricSpec]) -> Result<Vec<Metric>, AutoscalerError> {
    if metrics.is_empty() {
        return invalid("metrics", "needs at least one metric");
    }
    metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (src, pods) = match m {
                MetricSpec::Pods(p) => (&p.pods, true),
                MetricSpec::External(e) => (&e.external, false),
            };
            let field = format!("metrics[{i}]");
            let signal = Signal::parse(&src.metric.name).ok_or_else(|| AutoscalerError::Invalid {
                field: format!("{field}.metric.name"),
                msg: format!("unknown metric `{}`; known: {}", src.metric.name, super::SIGNAL_NAMES),
            })?;
            let t = &src.target;
            let target = match t.kind {
                TargetType::AverageValue => t.average_value,
                TargetType::Value => t.value,
            };
            let Some(Quantity(target)) = target else {
                return invalid(
                    format!("{field}.target"),
                    format!(
                        "type {:?} needs `{}`",
                        t.kind,
                        if t.kind == TargetType::Value { "value" } else { "averageValue" }
                    ),
                );
            };
            if target <= 0.0 {
                return invalid(format!("{field}.target"), "must be greater than zero");
            }
            match (pods, t.kind) {
                (true, TargetType::AverageValue) => {
                    if signal.per_pod(&Default::default()).is_none() {
                        return invalid(
                            format!("{field}.pods.metric.name"),
                            format!("`{}` is not a per-pod metric; use `type: External`", src.metric.name),
                        );
                    }
                    Ok(Metric::Pods { signal, target })
                }
                (true, TargetType::Value) => {
                    invalid(format!("{field}.target.type"), "Pods metrics take `AverageValue` targets")
                }
                (false, TargetType::AverageValue) => Ok(Metric::ExternalAverage { signal, target, mean: false }),
                (false, TargetType::Value) => Ok(Metric::ExternalValue { signal, target, mean: false }),
            }
        })
        .collect()
}

/// The controller's state for one HPA: bounds, metrics, behavior, and its memory of past
/// recommendations and scale events.
#[derive(Clone, Debug)]
pub struct HpaCore {
    pub min: u32,
    pub max: u32,
    pub metrics: Vec<Metric>,
    pub up: Rules,
    pub down: Rules,
    pub tolerance: f64,
    /// (time, prenormalized recommendation).
    recommendations: Vec<(SimTime, u32)>,
    /// (time, replicas added) / (time, replicas removed).
    up_events: Vec<(SimTime, u32)>,
    down_events: Vec<(SimTime, u32)>,
}

impl HpaCore {
    pub fn new(min: u32, max: u32, metrics: Vec<Metric>, up: Rules, down: Rules, tolerance: f64) -> Self {
        HpaCore {
            min,
            max,
            metrics,
            up,
            down,
            tolerance,
            recommendations: Vec::new(),
            up_events: Vec::new(),
            down_events: Vec::new(),
        }
    }

    fn within(&self, ratio: f64) -> bool {
        (1.0 - ratio).abs() <= self.tolerance
    }

    /// One metric's proposal (`replica_calculator.go`). `status` = pods not terminating.
    pub fn proposal(&self, m: &Metric, view: &ClusterView) -> u32 {
        let current = view.current;
        match *m {
            Metric::Pods { signal, target } => {
                let mut values: Vec<f64> = Vec::new();
                let (mut unready, mut missing) = (0usize, 0usize);
                for p in &view.pods {
                    match p {
                        PodState::Pending => unready += 1,
                        PodState::Starting | PodState::Ready(None) => missing += 1,
                        PodState::Ready(Some(x)) => values.push(signal.per_pod(x).unwrap_or(0.0)),
                    }
                }
                if values.is_empty() {
                    return current;
                }
                let ratio = values.iter().sum::<f64>() / values.len() as f64 / target;
                let up_with_unready = unready > 0 && ratio > 1.0;
                if !up_with_unready && missing == 0 {
                    if self.within(ratio) {
                        return current;
                    }
                    return (ratio * values.len() as f64).ceil() as u32;
                }
                let fill_missing = if ratio < 1.0 { target } else { 0.0 };
                values.extend(std::iter::repeat_n(fill_missing, missing));
                if up_with_unready {
                    values.extend(std::iter::repeat_n(0.0, unready));
                }
                let new_ratio = values.iter().sum::<f64>() / values.len() as f64 / target;
                if self.within(new_ratio) || (ratio > 1.0 && new_ratio < 1.0) || (ratio < 1.0 && new_ratio > 1.0) {
                    return current;
                }
                let n = (new_ratio * values.len() as f64).ceil() as u32;
                if (new_ratio < 1.0 && n > current) || (new_ratio > 1.0 && n < current) {
                    return current;
                }
                n
            }
            Metric::ExternalAverage { signal, target, mean } => {
                let usage = ext(signal, mean, &view.signals);
                let status = view.pods.len() as u32;
                if status == 0 {
                    return if usage > 0.0 { (usage / target).ceil() as u32 } else { 0 };
                }
                let ratio = usage / (target * status as f64);
                if self.within(ratio) { status } else { (usage / target).ceil() as u32 }
            }
            Metric::ExternalValue { signal, target, mean } => {
                let ratio = ext(signal, mean, &view.signals) / target;
                if current == 0 {
                    return ratio.ceil() as u32;
                }
                if self.within(ratio) {
                    return current;
                }
                (ratio * view.ready() as f64).ceil() as u32
            }
        }
    }

    /// One controller sync (`reconcileAutoscaler`); returns the new `spec.replicas` and the
    /// first metric's observed value.
    /// `extra` is one more proposal max'ed with the metrics' (a KEDA cron trigger), 0 if none.
    pub fn reconcile(&mut self, now: SimTime, view: &ClusterView, extra: u32) -> (u32, Option<f64>, &'static str) {
        let current = view.current;
        let signal = self.metrics.first().map(|m| m.observed(view));
        if current == 0 && self.min != 0 {
            return (0, signal, "scaling disabled at zero");
        }
        if current > self.max {
            return (self.max, signal, "above maxReplicas");
        }
        if current < self.min {
            return (self.min, signal, "below minReplicas");
        }
        let raw =
            self.metrics.iter().map(|m| self.proposal(m, view)).max().map_or(extra.max(current), |m| m.max(extra));
        let (d, why) = self.normalize(now, current, raw);
        (d, signal, why)
    }

    /// `normalizeDesiredReplicasWithBehaviors`: stabilization, then rate policies and bounds;
    /// records the recommendation and the resulting scale event.
    pub fn normalize(&mut self, now: SimTime, current: u32, raw: u32) -> (u32, &'static str) {
        let stabilized = self.stabilize(now, current, raw);
        let (d, why) = self.limit(now, current, stabilized);
        if d > current {
            self.up_events.push((now, d - current));
        } else if d < current {
            self.down_events.push((now, current - d));
        }
        let keep = now.as_nanos() as i128 - self.longest_period().as_nanos() as i128;
        self.up_events.retain(|e| e.0.as_nanos() as i128 > keep);
        self.down_events.retain(|e| e.0.as_nanos() as i128 > keep);
        let why = if why.is_empty() { if stabilized != raw { "stabilization window" } else { "metrics" } } else { why };
        (d, why)
    }

    fn longest_period(&self) -> SimDuration {
        let p = self.up.policies.iter().chain(&self.down.policies).map(|p| p.period_seconds).max().unwrap_or(0);
        SimDuration::from_secs(p as u64)
    }

    fn stabilize(&mut self, now: SimTime, current: u32, raw: u32) -> u32 {
        let (mut up_rec, mut down_rec) = (raw, raw);
        let cut = |w: SimDuration| now.as_nanos() as i128 - w.as_nanos() as i128;
        let (up_cut, down_cut) = (cut(self.up.window), cut(self.down.window));
        for &(t, r) in &self.recommendations {
            if t.as_nanos() as i128 > up_cut {
                up_rec = up_rec.min(r);
            }
            if t.as_nanos() as i128 > down_cut {
                down_rec = down_rec.max(r);
            }
        }
        let mut rec = current;
        if rec < up_rec {
            rec = up_rec;
        }
        if rec > down_rec {
            rec = down_rec;
        }
        let oldest = up_cut.min(down_cut);
        self.recommendations.retain(|&(t, _)| t.as_nanos() as i128 > oldest);
        self.recommendations.push((now, raw));
        rec
    }

    fn change_in(events: &[(SimTime, u32)], now: SimTime, period_s: u32) -> i64 {
        let cut = now.as_nanos() as i128 - period_s as i128 * NANOS_PER_SEC as i128;
        events.iter().filter(|e| e.0.as_nanos() as i128 > cut).map(|e| e.1 as i64).sum()
    }

    fn limit(&self, now: SimTime, current: u32, desired: u32) -> (u32, &'static str) {
        let cur = current as i64;
        if desired > current {
            let limit = match self.up.select {
                SelectPolicy::Disabled => cur,
                sel => {
                    let mut res: Option<i64> = None;
                    for p in &self.up.policies {
                        let start = cur - Self::change_in(&self.up_events, now, p.period_seconds)
                            + Self::change_in(&self.down_events, now, p.period_seconds);
                        let proposed = match p.kind {
                            PolicyType::Pods => start + p.value as i64,
                            PolicyType::Percent => (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i64,
                        };
                        res = Some(match (res, sel) {
                            (None, _) => proposed,
                            (Some(r), SelectPolicy::Min) => r.min(proposed),
                            (Some(r), _) => r.max(proposed),
                        });
                    }
                    res.unwrap_or(cur)
                }
            }
            .max(cur);
            let max_allowed = (self.max as i64).min(limit);
            if desired as i64 > max_allowed {
                return (max_allowed as u32, if limit < self.max as i64 { "scaleUp policy" } else { "maxReplicas" });
            }
            (desired, "")
        } else if desired < current {
            let limit = match self.down.select {
                SelectPolicy::Disabled => cur,
                sel => {
                    let mut res: Option<i64> = None;
                    for p in &self.down.policies {
                        let start = cur - Self::change_in(&self.up_events, now, p.period_seconds)
                            + Self::change_in(&self.down_events, now, p.period_seconds);
                        let proposed = match p.kind {
                            PolicyType::Pods => start - p.value as i64,
                            PolicyType::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)) as i64,
                        };
                        res = Some(match (res, sel) {
                            (None, _) => proposed,
                            (Some(r), SelectPolicy::Min) => r.max(proposed),
                            (Some(r), _) => r.min(proposed),
                        });
                    }
                    res.unwrap_or(cur)
                }
            }
            .min(cur);
            let min_allowed = (self.min as i64).max(limit);
            if (desired as i64) < min_allowed {
                return (min_allowed as u32, if limit > self.min as i64 { "scaleDown policy" } else { "minReplicas" });
            }
            (desired, "")
        } else {
            (desired, "")
        }
    }
}

/// A plain HPA.
pub struct Hpa {
    core: HpaCore,
    sync: SimDuration,
    delay: SimDuration,
}

impl Hpa {
    pub fn new(c: &HpaConfig) -> Result<Self, AutoscalerError> {
        if c.max_replicas == 0 || c.min_replicas > c.max_replicas {
            return invalid("maxReplicas", "must be at least 1 and at least minReplicas");
        }
        let (up, down) = resolve_behavior(c.behavior.as_ref())?;
        let tolerance = c.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        if !(0.0..1.0).contains(&tolerance) {
            return invalid("tolerance", "must be in [0, 1)");
        }
        let sync = c.sync_period.map_or(DEFAULT_SYNC_PERIOD, |d| d.0);
        if sync == SimDuration::ZERO {
            return invalid("syncPeriod", "must be greater than zero");
        }
        Ok(Hpa {
            core: HpaCore::new(c.min_replicas, c.max_replicas, resolve_metrics(&c.metrics)?, up, down, tolerance),
            sync,
            delay: c.metric_delay.map_or(DEFAULT_METRIC_DELAY, |d| d.0),
        })
    }
}

impl Autoscaler for Hpa {
    fn name(&self) -> &str {
        "hpa"
    }
    fn next_eval(&self, now: SimTime, _current: u32) -> SimTime {
        now + self.sync
    }
    fn metric_delay(&self) -> SimDuration {
        self.delay
    }
    fn evaluate(&mut self, now: SimTime, view: &ClusterView) -> Decision {
        let (desired, signal, reason) = self.core.reconcile(now, view, 0);
        Decision { desired, signal, reason }
    }
}

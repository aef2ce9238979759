//! KEDA ScaledObject: KEDA owns an HPA (external metrics, one per trigger, `AverageValue`
//! by default) for 1 ↔ max and itself handles 0 ↔ 1: every `pollingInterval` it asks each
//! trigger whether it is active (value > `activationThreshold`); it activates a Deployment at
//! zero, and scales it to zero once no trigger has been active for `cooldownPeriod`.

use super::hpa::{self, HpaCore, Metric, TargetType};
use super::scheduled::{parse_cron, window_active};
use super::{
    Autoscaler, AutoscalerCtx, AutoscalerError, BehaviorConfig, ClusterView, Decision, Quantity, Query, invalid,
};
use crate::units::{NANOS_PER_SEC, SimDuration, SimTime};
use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `ScaledObject.spec`, plus servesim's pipeline delay.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KedaConfig {
    /// Seconds between trigger polls (default 30).
    #[serde(default = "default_polling")]
    pub polling_interval: u32,
    /// Seconds without an active trigger before scaling to zero (default 300).
    #[serde(default = "default_cooldown")]
    pub cooldown_period: u32,
    #[serde(default)]
    pub min_replica_count: u32,
    #[serde(default = "default_max")]
    pub max_replica_count: u32,
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub advanced: Option<Advanced>,
    /// Age of the metrics KEDA sees (default 15 s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub metric_delay: Option<DurationStr>,
}

fn default_polling() -> u32 {
    30
}
fn default_cooldown() -> u32 {
    300
}
fn default_max() -> u32 {
    100
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Advanced {
    #[serde(default)]
    pub horizontal_pod_autoscaler_config: Option<HpaSection>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaSection {
    #[serde(default)]
    pub behavior: Option<BehaviorConfig>,
}

/// A trigger (`type: prometheus` or `type: cron`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: TriggerType,
    /// `AverageValue` (default) or `Value`.
    #[serde(default)]
    pub metric_type: Option<TargetType>,
    pub metadata: BTreeMap<String, Quantityish>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TriggerType {
    Prometheus,
    Cron,
}

/// A metadata value: KEDA writes them all as strings; numbers are accepted too.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Quantityish {
    Text(String),
    Number(f64),
}

impl Quantityish {
    fn text(&self) -> String {
        match self {
            Quantityish::Text(s) => s.clone(),
            Quantityish::Number(n) => n.to_string(),
        }
    }
}

/// The llm-d "KEDA + EPP queue" recipe (spec §4.3).
pub fn llmd_epp_queue() -> KedaConfig {
    use hpa::{PolicyType, ScalingPolicy, ScalingRules};
    let rules = || ScalingRules {
        stabilization_window_seconds: Some(300),
        select_policy: None,
        policies: Some(vec![ScalingPolicy { kind: PolicyType::Percent, value: 100, period_seconds: 15 }]),
    };
    let trig = |q: &str, t: &str| Trigger {
        kind: TriggerType::Prometheus,
        metric_type: Some(TargetType::AverageValue),
        metadata: [
            ("query".to_string(), Quantityish::Text(q.into())),
            ("threshold".into(), Quantityish::Text(t.into())),
        ]
        .into_iter()
        .collect(),
    };
    KedaConfig {
        polling_interval: 15,
        cooldown_period: 300,
        min_replica_count: 1,
        max_replica_count: 8,
        triggers: vec![
            trig("sum(llm_d_epp_flow_control_queue_size)", "1"),
            trig("sum(llm_d_epp_request_running)", "16"),
        ],
        advanced: Some(Advanced {
            horizontal_pod_autoscaler_config: Some(HpaSection {
                behavior: Some(BehaviorConfig { scale_up: Some(rules()), scale_down: Some(rules()) }),
            }),
        }),
        metric_delay: None,
    }
}

#[derive(Clone, Debug)]
enum Resolved {
    Prom { query: Query, activation: f64 },
    Cron { start_s: u32, end_s: u32, desired: u32 },
}

pub struct Keda {
    core: HpaCore,
    triggers: Vec<Resolved>,
    polling: SimDuration,
    cooldown: SimDuration,
    min: u32,
    delay: SimDuration,
    start_hour: f64,
    next_poll: SimTime,
    next_sync: SimTime,
    last_active: Option<SimTime>,
}

impl Keda {
    pub fn new(c: &KedaConfig, ctx: &AutoscalerCtx) -> Result<Self, AutoscalerError> {
        if c.max_replica_count == 0 || c.min_replica_count > c.max_replica_count {
            return invalid("maxReplicaCount", "must be at least 1 and at least minReplicaCount");
        }
        if c.polling_interval == 0 {
            return invalid("pollingInterval", "must be at least 1 second");
        }
        if c.triggers.is_empty() {
            return invalid("triggers", "needs at least one trigger");
        }
        let mut metrics = Vec::new();
        let mut triggers = Vec::new();
        for (i, t) in c.triggers.iter().enumerate() {
            let f = |k: &str| format!("triggers[{i}].metadata.{k}");
            let get = |k: &str| t.metadata.get(k).map(|v| v.text());
            for k in t.metadata.keys() {
                let ok = match t.kind {
                    TriggerType::Prometheus => {
                        ["query", "threshold", "activationThreshold", "serverAddress", "namespace"]
                            .contains(&k.as_str())
                    }
                    TriggerType::Cron => ["timezone", "start", "end", "desiredReplicas"].contains(&k.as_str()),
                };
                if !ok {
                    return invalid(f(k), "unknown metadata key for this trigger type");
                }
            }
            match t.kind {
                TriggerType::Prometheus => {
                    let q = get("query").ok_or_else(|| AutoscalerError::Invalid {
                        field: f("query"),
                        msg: "a prometheus trigger needs `query`, e.g. `sum(llm_d_epp_flow_control_queue_size)`".into(),
                    })?;
                    let query = Query::parse(&q).map_err(|msg| AutoscalerError::Invalid { field: f("query"), msg })?;
                    let num = |k: &str, d: Option<f64>| -> Result<f64, AutoscalerError> {
                        match get(k) {
                            Some(v) => Quantity::parse(&v).map_err(|msg| AutoscalerError::Invalid { field: f(k), msg }),
                            None => d.ok_or_else(|| AutoscalerError::Invalid {
                                field: f(k),
                                msg: "required (the per-replica target)".into(),
                            }),
                        }
                    };
                    let threshold = num("threshold", None)?;
                    if threshold <= 0.0 {
                        return invalid(f("threshold"), "must be greater than zero");
                    }
                    let activation = num("activationThreshold", Some(0.0))?;
                    metrics.push(match t.metric_type.unwrap_or(TargetType::AverageValue) {
                        TargetType::AverageValue => {
                            Metric::ExternalAverage { signal: query.signal, target: threshold, mean: query.mean }
                        }
                        TargetType::Value => {
                            Metric::ExternalValue { signal: query.signal, target: threshold, mean: query.mean }
                        }
                    });
                    triggers.push(Resolved::Prom { query, activation });
                }
                TriggerType::Cron => {
                    let need = |k: &str| {
                        get(k).ok_or_else(|| AutoscalerError::Invalid {
                            field: f(k),
                            msg: "required for a cron trigger".into(),
                        })
                    };
                    let start_s = parse_cron(&need("start")?)
                        .map_err(|msg| AutoscalerError::Invalid { field: f("start"), msg })?;
                    let end_s =
                        parse_cron(&need("end")?).map_err(|msg| AutoscalerError::Invalid { field: f("end"), msg })?;
                    let desired =
                        need("desiredReplicas")?.trim().parse::<u32>().map_err(|_| AutoscalerError::Invalid {
                            field: f("desiredReplicas"),
                            msg: "must be a whole number of replicas".into(),
                        })?;
                    triggers.push(Resolved::Cron { start_s, end_s, desired });
                }
            }
        }
        let behavior = c
            .advanced
            .as_ref()
            .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
            .and_then(|h| h.behavior.as_ref());
        let (up, down) = hpa::resolve_behavior(behavior).map_err(|AutoscalerError::Invalid { field, msg }| {
            AutoscalerError::Invalid { field: format!("advanced.horizontalPodAutoscalerConfig.{field}"), msg }
        })?;
        let hpa_min = c.min_replica_count.max(1);
        Ok(Keda {
            core: HpaCore::new(hpa_min, c.max_replica_count, metrics, up, down, hpa::DEFAULT_TOLERANCE),
            triggers,
            polling: SimDuration::from_secs(c.polling_interval as u64),
            cooldown: SimDuration::from_secs(c.cooldown_period as u64),
            min: c.min_replica_count,
            delay: c.metric_delay.map_or(hpa::DEFAULT_METRIC_DELAY, |d| d.0),
            start_hour: ctx.start_hour,
            next_poll: SimTime::ZERO + SimDuration::from_secs(c.polling_interval as u64),
            next_sync: SimTime::ZERO + hpa::DEFAULT_SYNC_PERIOD,
            last_active: None,
        })
    }

    fn cron_desired(&self, now: SimTime) -> u32 {
        let tod = time_of_day(now, self.start_hour);
        self.triggers
            .iter()
            .filter_map(|t| match *t {
                Resolved::Cron { start_s, end_s, desired } if window_active(tod, start_s, end_s) => Some(desired),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn active(&self, now: SimTime, view: &ClusterView) -> bool {
        self.cron_desired(now) > 0
            || self.triggers.iter().any(|t| match t {
                Resolved::Prom { query, activation } => query.value(&view.signals) > *activation,
                Resolved::Cron { .. } => false,
            })
    }
}

/// Seconds since local midnight at simulated time `now`.
pub fn time_of_day(now: SimTime, start_hour: f64) -> u32 {
    let s = (start_hour * 3600.0).round() as u64 + now.as_nanos() / NANOS_PER_SEC;
    (s % 86_400) as u32
}

impl Autoscaler for Keda {
    fn name(&self) -> &str {
        "keda"
    }
    fn next_eval(&self, _now: SimTime, _current: u32) -> SimTime {
        self.next_poll.min(self.next_sync)
    }
    fn metric_delay(&self) -> SimDuration {
        self.delay
    }
    fn evaluate(&mut self, now: SimTime, view: &ClusterView) -> Decision {
        let signal = self.core.metrics.first().map(|m| m.observed(view));
        let mut out = Decision { desired: view.current, signal, reason: "" };
        if now >= self.next_poll {
            self.next_poll = now + self.polling;
            let active = self.active(now, view);
            if active {
                self.last_active = Some(now);
            }
            if view.current == 0 && active {
                out.desired = self.min.max(1);
                out.reason = "activation";
                return out;
            }
            let idle_for = now - self.last_active.unwrap_or(SimTime::ZERO);
            if !active && view.current > 0 && self.min == 0 && idle_for >= self.cooldown {
                out.desired = 0;
                out.reason = "cooldown to zero";
                return out;
            }
        }
        if now >= self.next_sync {
            self.next_sync = now + hpa::DEFAULT_SYNC_PERIOD;
            if view.current > 0 {
                let cron = self.cron_desired(now);
                let (d, s, why) = self.core.reconcile(now, view, cron);
                out = Decision { desired: d, signal: s, reason: why };
            }
        }
        out
    }
}

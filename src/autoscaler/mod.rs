//! Autoscaling: what decides the replica count over time. The cluster calls an [`Autoscaler`]
//! at the times it asks for, with a [`ClusterView`]: the Deployment's replica counts as the
//! Kubernetes API shows them (fresh) and metrics as the scaler's pipeline shows them (scraped,
//! stored and served by an adapter, so they are `metric_delay` old). The scaler answers with
//! a desired replica count; the cluster creates or drains replicas (see `engine::fleet`).
//!
//! Configs use the field names of the Kubernetes objects they mimic (HorizontalPodAutoscaler
//! `minReplicas/maxReplicas/metrics/behavior`, KEDA ScaledObject `pollingInterval/
//! cooldownPeriod/triggers`), so a reader recognises them and a planner can emit them.

pub mod hpa;
pub mod keda;
pub mod scheduled;
#[cfg(test)]
mod tests;
pub mod wva;

pub use hpa::{BehaviorConfig, HpaConfig, HpaCore, MetricSpec, ScalingRules};
pub use keda::KedaConfig;
pub use scheduled::ScheduledConfig;
pub use wva::WvaConfig;

use crate::units::{SimDuration, SimTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pod as the scaler sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PodState {
    /// Not running yet (node provisioning, image pull): HPA's "unready" group.
    Pending,
    /// Running but not Ready (weights loading, engine init): no `/metrics` yet, HPA's "missing".
    Starting,
    /// Ready, with the metrics of the (delayed) scrape, if it existed then.
    Ready(Option<PodMetrics>),
}

/// Per-pod vLLM gauges as scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PodMetrics {
    pub waiting: f64,
    pub running: f64,
    pub kv_usage: f64,
}

/// Pool-level signals (sums over Ready pods and the gateway), as of the delayed sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PoolSignals {
    /// Σ `vllm:num_requests_waiting`.
    pub waiting: f64,
    /// Σ `vllm:num_requests_running`.
    pub running: f64,
    /// Σ `vllm:kv_cache_usage_perc`.
    pub kv_usage: f64,
    /// Pods that reported metrics.
    pub pods: u32,
    /// `llm_d_epp_flow_control_queue_size`: requests held in the gateway (no Ready replica).
    pub epp_queue: f64,
    /// `llm_d_epp_request_running`: requests dispatched by the router and not finished.
    pub epp_running: f64,
    /// `llm_d_epp_flow_control_pool_saturation`: mean over pods of max(q/5, kv/0.8); 1 with no pod.
    pub saturation: f64,
    /// `llm_d_epp_inflight_tokens`: prompt tokens of dispatched requests without a first token.
    pub inflight_tokens: f64,
    /// `servesim:token_backlog`: prompt tokens not yet prefilled (gateway + replicas).
    pub token_backlog: f64,
    /// Requests that arrived since the start (a counter, for idleness detection).
    pub arrivals: u64,
}

/// What the scaler sees at an evaluation.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Deployment `spec.replicas` (what the scaler set last, or the initial count).
    pub current: u32,
    /// Pods not terminating, in creation order.
    pub pods: Vec<PodState>,
    pub signals: PoolSignals,
}

impl ClusterView {
    pub fn ready(&self) -> u32 {
        self.pods.iter().filter(|p| matches!(p, PodState::Ready(_))).count() as u32
    }
    /// Pods starting or pending (the scaler's "transitioning" set).
    pub fn not_ready(&self) -> u32 {
        self.pods.len() as u32 - self.ready()
    }
}

/// A scaler's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub desired: u32,
    /// The value of the scaler's first signal as it saw it (for `timeseries.csv`).
    pub signal: Option<f64>,
    /// Why (shown with scale events), a static label.
    pub reason: &'static str,
}

/// An autoscaling policy.
pub trait Autoscaler {
    fn name(&self) -> &str;
    /// Next evaluation time after one at `now` (the first is `next_eval(0)`).
    fn next_eval(&self, now: SimTime, current: u32) -> SimTime;
    /// Age of the metrics the scaler sees (scrape + Prometheus + adapter).
    fn metric_delay(&self) -> SimDuration;
    fn evaluate(&mut self, now: SimTime, view: &ClusterView) -> Decision;
}

/// A signal a trigger or metric can name (vLLM, EPP, or servesim's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Waiting,
    Running,
    KvUsage,
    EppQueue,
    EppRunning,
    Saturation,
    InflightTokens,
    TokenBacklog,
}

/// Known metric names, for messages.
pub const SIGNAL_NAMES: &str = "vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc, \
llm_d_epp_flow_control_queue_size, llm_d_epp_request_running, llm_d_epp_flow_control_pool_saturation, \
llm_d_epp_inflight_tokens, servesim:token_backlog";

impl Signal {
    pub fn parse(name: &str) -> Option<Signal> {
        Some(match name.trim() {
            "vllm:num_requests_waiting" => Signal::Waiting,
            "vllm:num_requests_running" => Signal::Running,
            "vllm:kv_cache_usage_perc" | "vllm:gpu_cache_usage_perc" => Signal::KvUsage,
            "llm_d_epp_flow_control_queue_size" => Signal::EppQueue,
            "llm_d_epp_request_running" => Signal::EppRunning,
            "llm_d_epp_flow_control_pool_saturation" => Signal::Saturation,
            "llm_d_epp_inflight_tokens" => Signal::InflightTokens,
            "servesim:token_backlog" => Signal::TokenBacklog,
            _ => return None,
        })
    }
    /// A per-pod vLLM gauge (usable as an HPA `Pods` metric).
    pub fn per_pod(self, m: &PodMetrics) -> Option<f64> {
        match self {
            Signal::Waiting => Some(m.waiting),
            Signal::Running => Some(m.running),
            Signal::KvUsage => Some(m.kv_usage),
            _ => None,
        }
    }
    /// The pool total (`sum(...)`).
    pub fn total(self, s: &PoolSignals) -> f64 {
        match self {
            Signal::Waiting => s.waiting,
            Signal::Running => s.running,
            Signal::KvUsage => s.kv_usage,
            Signal::EppQueue => s.epp_queue,
            Signal::EppRunning => s.epp_running,
            Signal::Saturation => s.saturation,
            Signal::InflightTokens => s.inflight_tokens,
            Signal::TokenBacklog => s.token_backlog,
        }
    }
    /// The pool mean over pods reporting metrics (`avg(...)`); pool-level signals as is.
    pub fn mean(self, s: &PoolSignals) -> f64 {
        match self {
            Signal::Waiting | Signal::Running | Signal::KvUsage => {
                if s.pods == 0 {
                    0.0
                } else {
                    self.total(s) / s.pods as f64
                }
            }
            _ => self.total(s),
        }
    }
}

/// A PromQL-ish query: `sum(name)`, `avg(name)`, `max(name)` or a bare `name` (= sum), label
/// matchers `{...}` ignored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Query {
    pub signal: Signal,
    pub mean: bool,
}

impl Query {
    pub fn parse(q: &str) -> Result<Query, String> {
        let t = q.trim();
        let (agg, inner) = match t.find('(') {
            Some(i) if t.ends_with(')') => (t[..i].trim(), &t[i + 1..t.len() - 1]),
            _ => ("sum", t),
        };
        let name = inner.split('{').next().unwrap_or("").trim();
        let signal = Signal::parse(name)
            .ok_or_else(|| format!("unknown metric `{name}` in query `{q}`; known: {SIGNAL_NAMES}"))?;
        let mean = match agg {
            "sum" => false,
            "avg" => true,
            _ => return Err(format!("query `{q}`: only sum(...), avg(...) or a bare metric name are understood")),
        };
        Ok(Query { signal, mean })
    }
    pub fn value(&self, s: &PoolSignals) -> f64 {
        if self.mean { self.signal.mean(s) } else { self.signal.total(s) }
    }
}

/// A Kubernetes quantity: a number or a string such as `500m`, `1`, `2k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantity(pub f64);

impl Quantity {
    pub fn parse(s: &str) -> Result<f64, String> {
        let t = s.trim();
        let (num, mult) = if let Some(n) = t.strip_suffix('m') {
            (n, 1e-3)
        } else if let Some(n) = t.strip_suffix('k') {
            (n, 1e3)
        } else if let Some(n) = t.strip_suffix('M') {
            (n, 1e6)
        } else {
            (t, 1.0)
        };
        match num.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v * mult),
            _ => Err(format!("`{s}` is not a quantity: write a non-negative number such as `5`, `0.8` or `500m`")),
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a quantity such as `5`, `0.8` or `500m`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v).map(Quantity).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                if v.is_finite() && v >= 0.0 {
                    Ok(Quantity(v))
                } else {
                    Err(E::custom("a quantity must be non-negative"))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v as f64))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                if v >= 0 { Ok(Quantity(v as f64)) } else { Err(E::custom("a quantity must be non-negative")) }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["number", "string"], "description": "number or Kubernetes quantity (`500m`)"})
    }
}

/// Autoscaler choice in scenario YAML (`kind:`).
///
/// ```yaml
/// autoscaler: {kind: fixed}
/// autoscaler:
///   kind: hpa                                  # or HorizontalPodAutoscaler
///   minReplicas: 1
///   maxReplicas: 8
///   metrics:
///   - type: Pods
///     pods: {metric: {name: "vllm:num_requests_waiting"}, target: {type: AverageValue, averageValue: 5}}
/// autoscaler:
///   kind: keda                                 # or ScaledObject
///   minReplicaCount: 0
///   maxReplicaCount: 8
///   triggers:
///   - type: prometheus
///     metadata: {query: "sum(llm_d_epp_flow_control_queue_size)", threshold: "1"}
/// autoscaler: {kind: scheduled, replicas: 2, schedule: [{start: "08:00", end: "18:00", replicas: 8}]}
/// autoscaler: {kind: wva, maxReplicas: 8}
/// autoscaler: {kind: preset, name: llm-d-keda-epp-queue, maxReplicas: 12}
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AutoscalerConfig {
    /// No autoscaling: `replicas` stays.
    #[default]
    Fixed,
    /// Kubernetes HorizontalPodAutoscaler (autoscaling/v2).
    #[serde(alias = "HorizontalPodAutoscaler")]
    Hpa(HpaConfig),
    /// KEDA ScaledObject (activation, cooldown, scale to/from zero, HPA underneath).
    #[serde(alias = "ScaledObject")]
    Keda(KedaConfig),
    /// Replica floors by time of day (cron-like windows).
    Scheduled(ScheduledConfig),
    /// llm-d Workload Variant Autoscaler, saturation analyzer.
    Wva(WvaConfig),
    /// A named llm-d recipe (spec §4.3).
    Preset(PresetConfig),
}

/// A named llm-d recipe with optional bounds.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PresetConfig {
    /// `llm-d-keda-epp-queue` (KEDA on EPP queue 1 + running 16 per replica) or
    /// `llm-d-wva-saturation` (WVA saturation analyzer).
    pub name: String,
    #[serde(default)]
    pub min_replicas: Option<u32>,
    #[serde(default)]
    pub max_replicas: Option<u32>,
}

/// Names accepted by `kind: preset`.
pub const PRESETS: [&str; 2] = ["llm-d-keda-epp-queue", "llm-d-wva-saturation"];

/// What building a scaler may need besides its configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoscalerCtx {
    /// Hour of the day at simulated time zero (for schedules).
    pub start_hour: f64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AutoscalerError {
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
}

pub(crate) fn invalid<T>(field: impl Into<String>, msg: impl Into<String>) -> Result<T, AutoscalerError> {
    Err(AutoscalerError::Invalid { field: field.into(), msg: msg.into() })
}

impl AutoscalerConfig {
    /// `None` for `fixed`.
    pub fn build(&self, ctx: &AutoscalerCtx) -> Result<Option<Box<dyn Autoscaler>>, AutoscalerError> {
        Ok(Some(match self {
            AutoscalerConfig::Fixed => return Ok(None),
            AutoscalerConfig::Hpa(c) => Box::new(hpa::Hpa::new(c)?),
            AutoscalerConfig::Keda(c) => Box::new(keda::Keda::new(c, ctx)?),
            AutoscalerConfig::Scheduled(c) => Box::new(scheduled::Scheduled::new(c, ctx)?),
            AutoscalerConfig::Wva(c) => Box::new(wva::Wva::new(c)?),
            AutoscalerConfig::Preset(p) => return self.expand_preset(p)?.build(ctx),
        }))
    }

    /// Lowest replica count the scaler may set (0 allows scale to zero).
    pub fn min_replicas(&self) -> Option<u32> {
        match self {
            AutoscalerConfig::Fixed => None,
            AutoscalerConfig::Hpa(c) => Some(c.min_replicas),
            AutoscalerConfig::Keda(c) => Some(c.min_replica_count),
            AutoscalerConfig::Scheduled(c) => {
                Some(c.schedule.iter().map(|w| w.replicas).min().unwrap_or(c.replicas).min(c.replicas))
            }
            AutoscalerConfig::Wva(c) => Some(c.min_replicas),
            AutoscalerConfig::Preset(p) => self.expand_preset(p).ok().and_then(|c| c.min_replicas()),
        }
    }

    fn expand_preset(&self, p: &PresetConfig) -> Result<AutoscalerConfig, AutoscalerError> {
        match p.name.as_str() {
            "llm-d-keda-epp-queue" => {
                let mut k = keda::llmd_epp_queue();
                if let Some(m) = p.min_replicas {
                    k.min_replica_count = m;
                }
                if let Some(m) = p.max_replicas {
                    k.max_replica_count = m;
                }
                Ok(AutoscalerConfig::Keda(k))
            }
            "llm-d-wva-saturation" => {
                let mut w = WvaConfig::default();
                if let Some(m) = p.min_replicas {
                    w.min_replicas = m;
                }
                if let Some(m) = p.max_replicas {
                    w.max_replicas = m;
                }
                Ok(AutoscalerConfig::Wva(w))
            }
            other => invalid("name", format!("unknown preset `{other}`; valid: {}", PRESETS.join(", "))),
        }
    }
}

//! The llm-d Workload Variant Autoscaler's saturation analyzer (spec §4.3): a replica is
//! saturated at KV usage ≥ 0.8 or queue ≥ 5; add one replica when the mean spare KV over
//! non-saturated replicas drops under 0.1 or the mean spare queue under 3; remove one when at
//! least two replicas are unsaturated and spreading their load over one fewer keeps the spare
//! margins; never act while a replica is starting or draining. The result feeds an HPA on
//! `wva_desired_replicas` with a 120 s stabilization window. Scale to zero after 10 minutes
//! without requests; from zero, the EPP queue is polled every 100 ms.

use super::hpa::{self, HpaCore, PolicyType, Rules, ScalingPolicy, SelectPolicy};
use super::{Autoscaler, AutoscalerError, ClusterView, Decision, PodState, invalid};
use crate::units::{SimDuration, SimTime};
use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WvaConfig {
    #[serde(default = "one")]
    pub min_replicas: u32,
    pub max_replicas: u32,
    #[serde(default = "kv_thr")]
    pub kv_cache_threshold: f64,
    #[serde(default = "q_thr")]
    pub queue_length_threshold: f64,
    #[serde(default = "kv_spare")]
    pub kv_spare_trigger: f64,
    #[serde(default = "q_spare")]
    pub queue_spare_trigger: f64,
    /// Analyzer loop (default 30 s).
    #[serde(default = "loop_s")]
    pub interval_seconds: u32,
    /// HPA stabilization window on the WVA output (default 120 s).
    #[serde(default = "stab")]
    pub stabilization_window_seconds: u32,
    /// Idle time before scaling to zero when `minReplicas` is 0 (default 10 min).
    #[serde(default = "idle")]
    #[schemars(with = "String")]
    pub scale_to_zero_after: DurationStr,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub metric_delay: Option<DurationStr>,
}

fn one() -> u32 {
    1
}
fn kv_thr() -> f64 {
    0.8
}
fn q_thr() -> f64 {
    5.0
}
fn kv_spare() -> f64 {
    0.1
}
fn q_spare() -> f64 {
    3.0
}
fn loop_s() -> u32 {
    30
}
fn stab() -> u32 {
    120
}
fn idle() -> DurationStr {
    DurationStr(SimDuration::from_secs(600))
}

impl Default for WvaConfig {
    fn default() -> Self {
        WvaConfig {
            min_replicas: 1,
            max_replicas: 8,
            kv_cache_threshold: kv_thr(),
            queue_length_threshold: q_thr(),
            kv_spare_trigger: kv_spare(),
            queue_spare_trigger: q_spare(),
            interval_seconds: loop_s(),
            stabilization_window_seconds: stab(),
            scale_to_zero_after: idle(),
            metric_delay: None,
        }
    }
}

pub struct Wva {
    c: WvaConfig,
    core: HpaCore,
    delay: SimDuration,
    last_arrivals: u64,
    last_arrival_change: SimTime,
}

impl Wva {
    pub fn new(c: &WvaConfig) -> Result<Self, AutoscalerError> {
        if c.max_replicas == 0 || c.min_replicas > c.max_replicas {
            return invalid("maxReplicas", "must be at least 1 and at least minReplicas");
        }
        if c.interval_seconds == 0 {
            return invalid("intervalSeconds", "must be at least 1");
        }
        let w = SimDuration::from_secs(c.stabilization_window_seconds as u64);
        let rules = |policies| Rules { window: w, select: SelectPolicy::Max, policies };
        let up = rules(vec![
            ScalingPolicy { kind: PolicyType::Pods, value: 4, period_seconds: 15 },
            ScalingPolicy { kind: PolicyType::Percent, value: 100, period_seconds: 15 },
        ]);
        let down = rules(vec![ScalingPolicy { kind: PolicyType::Percent, value: 100, period_seconds: 15 }]);
        Ok(Wva {
            core: HpaCore::new(c.min_replicas.max(1), c.max_replicas, Vec::new(), up, down, hpa::DEFAULT_TOLERANCE),
            delay: c.metric_delay.map_or(hpa::DEFAULT_METRIC_DELAY, |d| d.0),
            c: c.clone(),
            last_arrivals: 0,
            last_arrival_change: SimTime::ZERO,
        })
    }

    /// The analyzer's proposal for the current pods (before the HPA stage).
    pub fn analyze(&self, view: &ClusterView) -> (u32, &'static str) {
        let n = view.current;
        if view.not_ready() > 0 {
            return (n, "transitioning");
        }
        let (kt, qt) = (self.c.kv_cache_threshold, self.c.queue_length_threshold);
        let ms: Vec<_> = view
            .pods
            .iter()
            .filter_map(|p| match p {
                PodState::Ready(Some(m)) => Some(*m),
                _ => None,
            })
            .collect();
        let unsat: Vec<_> = ms.iter().filter(|m| m.kv_usage < kt && m.waiting < qt).collect();
        if unsat.is_empty() {
            return if ms.is_empty() { (n, "no metrics") } else { (n + 1, "all replicas saturated") };
        }
        let k = unsat.len() as f64;
        let spare_kv = unsat.iter().map(|m| kt - m.kv_usage).sum::<f64>() / k;
        let spare_q = unsat.iter().map(|m| qt - m.waiting).sum::<f64>() / k;
        if spare_kv < self.c.kv_spare_trigger || spare_q < self.c.queue_spare_trigger {
            return (n + 1, "spare capacity low");
        }
        if unsat.len() >= 2 && n >= 2 {
            let f = n as f64 / (n - 1) as f64;
            let kv = ms.iter().map(|m| m.kv_usage).sum::<f64>() / ms.len() as f64 * f;
            let q = ms.iter().map(|m| m.waiting).sum::<f64>() / ms.len() as f64 * f;
            if kt - kv >= self.c.kv_spare_trigger && qt - q >= self.c.queue_spare_trigger {
                return (n - 1, "spare capacity high");
            }
        }
        (n, "steady")
    }
}

impl Autoscaler for Wva {
    fn name(&self) -> &str {
        "wva"
    }
    fn next_eval(&self, now: SimTime, current: u32) -> SimTime {
        if current == 0 {
            now + SimDuration::from_millis(100)
        } else {
            now + SimDuration::from_secs(self.c.interval_seconds as u64)
        }
    }
    fn metric_delay(&self) -> SimDuration {
        self.delay
    }
    fn evaluate(&mut self, now: SimTime, view: &ClusterView) -> Decision {
        let s = &view.signals;
        if s.arrivals != self.last_arrivals {
            self.last_arrivals = s.arrivals;
            self.last_arrival_change = now;
        }
        let signal = Some(s.saturation);
        if view.current == 0 {
            let d = if s.epp_queue > 0.0 { self.c.min_replicas.max(1) } else { 0 };
            return Decision { desired: d, signal, reason: "scale from zero" };
        }
        let idle = now - self.last_arrival_change >= self.c.scale_to_zero_after.0
            && s.epp_running == 0.0
            && s.epp_queue == 0.0;
        if self.c.min_replicas == 0 && idle && now.as_nanos() >= self.c.scale_to_zero_after.0.as_nanos() {
            return Decision { desired: 0, signal, reason: "idle: scale to zero" };
        }
        let (raw, why) = self.analyze(view);
        let raw = raw.clamp(self.core.min, self.core.max);
        let (d, how) = self.core.normalize(now, view.current, raw);
        Decision { desired: d, signal, reason: if d == raw { why } else { how } }
    }
}

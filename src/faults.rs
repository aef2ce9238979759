//! Faults: replica crashes (at a time, or with a mean time between failures drawn from the
//! `faults.crash` stream), rolling updates (maxSurge / maxUnavailable), a replica whose node
//! never becomes Ready, and a slow replica (step time × factor). Requests on a crashed or
//! killed replica fail, or are retried by the client after a backoff when `retry` is set.

use crate::units::SimDuration;
use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultsConfig {
    /// Client retry policy for requests that fail on a crashed replica; unset: they fail.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    #[serde(default)]
    pub events: Vec<FaultConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// Wait before each retry (default 1 s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub backoff: Option<DurationStr>,
}

/// One fault (`kind:`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultConfig {
    /// Replica `replica` crashes at `at`; the Deployment replaces it.
    Crash(CrashAt),
    /// Every Ready replica crashes after an exponential time with mean `mtbf`.
    CrashMtbf(CrashMtbf),
    /// At `at`, every replica is replaced by a new revision.
    RollingUpdate(RollingUpdate),
    /// The first replica created at or after `at` never becomes Ready.
    NeverReady(NeverReady),
    /// Replica `replica`'s steps take `factor` × longer from `at` (for `for`, or to the end).
    SlowReplica(SlowReplica),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrashAt {
    #[schemars(with = "String")]
    pub at: DurationStr,
    pub replica: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrashMtbf {
    #[schemars(with = "String")]
    pub mtbf: DurationStr,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollingUpdate {
    #[schemars(with = "String")]
    pub at: DurationStr,
    /// Extra replicas allowed during the update: a count or a percentage (`25%`, default).
    #[serde(default)]
    pub max_surge: Option<IntOrPercent>,
    /// Replicas that may be unavailable: a count or a percentage (`25%`, default).
    #[serde(default)]
    pub max_unavailable: Option<IntOrPercent>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum IntOrPercent {
    Int(u32),
    Text(String),
}

impl IntOrPercent {
    /// Resolves against `total` (surge rounds up, unavailable rounds down, as Kubernetes does).
    pub fn resolve(&self, total: u32, round_up: bool) -> Result<u32, String> {
        match self {
            IntOrPercent::Int(n) => Ok(*n),
            IntOrPercent::Text(s) => {
                let p: f64 = s
                    .trim()
                    .strip_suffix('%')
                    .and_then(|x| x.trim().parse().ok())
                    .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| format!("`{s}`: write a count or a percentage such as `25%`"))?;
                let v = total as f64 * p / 100.0;
                Ok(if round_up { v.ceil() as u32 } else { v.floor() as u32 })
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NeverReady {
    #[schemars(with = "String")]
    pub at: DurationStr,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlowReplica {
    #[schemars(with = "String")]
    pub at: DurationStr,
    pub replica: u32,
    pub factor: f64,
    #[serde(default, rename = "for")]
    #[schemars(with = "Option<String>")]
    pub duration: Option<DurationStr>,
}

/// Default client backoff.
pub const DEFAULT_BACKOFF: SimDuration = SimDuration(1_000_000_000);

impl FaultsConfig {
    /// Checks values; returns `(field, message)` on the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (i, f) in self.events.iter().enumerate() {
            let field = |k: &str| format!("faults.events[{i}].{k}");
            match f {
                FaultConfig::CrashMtbf(c) if c.mtbf.0 == SimDuration::ZERO => {
                    return Err((field("mtbf"), "must be greater than zero, e.g. `24h`".into()));
                }
                FaultConfig::SlowReplica(s) if !(s.factor.is_finite() && s.factor > 0.0) => {
                    return Err((field("factor"), "must be a positive number (2.0 = twice as slow)".into()));
                }
                FaultConfig::RollingUpdate(r) => {
                    for (k, v) in [("maxSurge", &r.max_surge), ("maxUnavailable", &r.max_unavailable)] {
                        if let Some(v) = v {
                            v.resolve(1, true).map_err(|m| (field(k), m))?;
                        }
                    }
                    let s = r.max_surge.as_ref().map(|v| v.resolve(4, true).unwrap_or(1));
                    let u = r.max_unavailable.as_ref().map(|v| v.resolve(4, false).unwrap_or(1));
                    if s == Some(0) && u == Some(0) {
                        return Err((field("maxSurge"), "maxSurge and maxUnavailable cannot both be 0".into()));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

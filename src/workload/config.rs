//! Workload configuration as written in scenario YAML. Orthogonal axes stay orthogonal:
//! arrival process × length distributions × prefix structure, plus two composite models
//! (multi-turn sessions and the coding assistant) whose requests depend on each other.

use crate::units::SimDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Top-level workload: a tagged enum (`kind:`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkloadConfig {
    /// Independent requests: arrival × input/output lengths × prefix structure.
    Synthetic(SyntheticConfig),
    /// Multi-turn conversations: each next turn extends the previous prompt + answer.
    Sessions(SessionsConfig),
    /// N engineers working in R repositories with long shared repository contexts.
    CodingAssistant(CodingAssistantConfig),
    /// Replay a recorded or imported trace: its arrivals, lengths and prefix block hashes.
    Trace(crate::trace::workload::TraceWorkloadConfig),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    pub arrival: ArrivalConfig,
    pub input: LengthConfig,
    pub output: LengthConfig,
    #[serde(default)]
    pub prefix: PrefixConfig,
    /// Stop issuing after this many requests (in addition to the scenario duration).
    #[serde(default)]
    pub max_requests: Option<u64>,
}

/// Arrival process (`kind:`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArrivalConfig {
    /// Exponential inter-arrival times (no clipping).
    Poisson(RateConfig),
    /// Gamma inter-arrival times with coefficient of variation `cv` (cv > 1 is burstier).
    Gamma(GammaConfig),
    /// Fixed inter-arrival time 1/rate.
    Constant(RateConfig),
    /// Consecutive stages, each Poisson at its rate for its duration (inference-perf style).
    Stages(StagesConfig),
    /// Poisson with a time-varying rate given as hourly points over a day (linear between).
    Diurnal(DiurnalConfig),
    /// N users in a closed loop: send, wait for the answer, think, send again.
    ClosedLoop(ClosedLoopConfig),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests per second (> 0).
    pub rate: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GammaConfig {
    pub rate: f64,
    pub cv: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StagesConfig {
    pub stages: Vec<StageConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub rate: f64,
    /// Stage length, e.g. `60s`, `5m`.
    #[schemars(with = "String")]
    pub duration: DurationStr,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiurnalConfig {
    /// Peak rate in requests per second; `profile` values multiply it.
    pub peak_rate: f64,
    /// 24 (or any count ≥ 1) relative levels in [0, 1]: point i is at hour i·24/n, the rate
    /// is interpolated linearly between points, cyclically (the last point leads back to the
    /// first at midnight).
    pub profile: Vec<f64>,
    /// Hour of the day at simulated time zero.
    #[serde(default)]
    pub start_hour: f64,
}

/// User u sends its first request at U[0, think_time); each later one an Exp(think_time)
/// after its previous request finished (completed or rejected). Each user has its own stream.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClosedLoopConfig {
    pub users: u32,
    /// Mean think time between an answer and the user's next request (exponential).
    #[schemars(with = "String")]
    pub think_time: DurationStr,
}

/// Token length distribution (`kind:`). Samples are rounded and clamped to [min, max].
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LengthConfig {
    Fixed(FixedLen),
    Uniform(UniformLen),
    /// Log-normal with the given mean (tokens) and sigma of the underlying normal.
    Lognormal(LognormalLen),
    /// Empirical: one length per line in a text/CSV file (first column), sampled uniformly.
    Empirical(EmpiricalLen),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FixedLen {
    pub tokens: u32,
}
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UniformLen {
    pub min: u32,
    pub max: u32,
}
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LognormalLen {
    pub mean: f64,
    pub sigma: f64,
    #[serde(default)]
    pub min: Option<u32>,
    #[serde(default)]
    pub max: Option<u32>,
}
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmpiricalLen {
    pub file: String,
}

/// Prefix structure of independent requests (`kind:`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrefixConfig {
    /// Every prompt is unique.
    #[default]
    None,
    /// inference-perf `shared_prefix`: `groups` × `prompts_per_group` prompts, each a shared
    /// system prompt of `system_prompt_len` tokens plus a question of `question_len` tokens;
    /// pre-generated, shuffled and cycled. The request's input length is
    /// system_prompt_len + question_len (the `input` distribution is ignored).
    SharedPrefix(SharedPrefixConfig),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefixConfig {
    pub groups: u32,
    pub prompts_per_group: u32,
    pub system_prompt_len: u32,
    pub question_len: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Arrival process of new sessions (not of turns).
    pub arrival: ArrivalConfig,
    /// Turns per session.
    pub turns: LengthConfig,
    /// Optional shared system prompt, same for all sessions.
    #[serde(default)]
    pub system_prompt_len: u32,
    /// New user message length per turn.
    pub user_message: LengthConfig,
    pub output: LengthConfig,
    /// Mean think time between an answer and the next turn (exponential).
    #[schemars(with = "String")]
    pub think_time: DurationStr,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodingAssistantConfig {
    pub engineers: u32,
    pub repositories: u32,
    /// Repository context length in tokens (one per repository, drawn once).
    pub repo_context: LengthConfig,
    /// Per-file context added after the repository context (new file every few requests).
    pub file_context: LengthConfig,
    /// Requests an engineer sends on the same file before switching.
    #[serde(default = "default_requests_per_file")]
    pub requests_per_file: u32,
    /// New question / edit instruction per request.
    pub question: LengthConfig,
    pub output: LengthConfig,
    /// Conversation turns kept as history before the engineer starts a new conversation.
    #[serde(default = "default_history_turns")]
    pub max_history_turns: u32,
    /// Mean requests per engineer per active hour at the peak of the profile.
    pub requests_per_engineer_hour: f64,
    /// Relative activity per hour of the day (24 values in [0,1]); engineers' local time.
    /// A step function: value i holds over hour [i, i+1) (with n values, over [i·24/n, (i+1)·24/n)).
    pub hourly_profile: Vec<f64>,
    /// Hour of the day at simulated time zero.
    #[serde(default)]
    pub start_hour: f64,
    /// Skew of repository popularity. 0 (default): engineer e works in repository e mod R.
    /// s > 0: each engineer's repository is drawn once (seeded) with weight 1/(r+1)^s (Zipf),
    /// so a few repositories are shared by many engineers.
    #[serde(default)]
    pub repo_skew: f64,
}

fn default_requests_per_file() -> u32 {
    4
}
fn default_history_turns() -> u32 {
    6
}

/// A duration written as `250ms`, `1.5s`, `5m`, `2h`, or a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationStr(pub SimDuration);

impl DurationStr {
    pub fn parse(s: &str) -> Result<SimDuration, String> {
        let t = s.trim();
        let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
            (n, 1e-3)
        } else if let Some(n) = t.strip_suffix("us") {
            (n, 1e-6)
        } else if let Some(n) = t.strip_suffix("ns") {
            (n, 1e-9)
        } else if let Some(n) = t.strip_suffix('s') {
            (n, 1.0)
        } else if let Some(n) = t.strip_suffix('m') {
            (n, 60.0)
        } else if let Some(n) = t.strip_suffix('h') {
            (n, 3600.0)
        } else {
            (t, 1.0)
        };
        let v: f64 = num.trim().parse().map_err(|_| {
            format!("`{s}` is not a duration: write a number with a unit, e.g. `250ms`, `30s`, `5m`, `8h`")
        })?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("duration `{s}` must be a finite, non-negative number"));
        }
        Ok(SimDuration::from_secs_f64(v * mult))
    }
}

impl Serialize for DurationStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", self.0.as_secs_f64()))
    }
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationStr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as `250ms`, `30s`, `5m`, `8h`, or a number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationStr, E> {
                DurationStr::parse(v).map(DurationStr).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationStr, E> {
                if !v.is_finite() || v < 0.0 {
                    return Err(E::custom("duration must be a finite, non-negative number of seconds"));
                }
                Ok(DurationStr(SimDuration::from_secs_f64(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationStr, E> {
                Ok(DurationStr(SimDuration::from_secs_f64(v as f64)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationStr, E> {
                if v < 0 {
                    return Err(E::custom("duration must be non-negative"));
                }
                Ok(DurationStr(SimDuration::from_secs_f64(v as f64)))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn durations_parse() {
        assert_eq!(DurationStr::parse("250ms").unwrap(), SimDuration::from_millis(250));
        assert_eq!(DurationStr::parse("2h").unwrap(), SimDuration::from_secs(7200));
        assert_eq!(DurationStr::parse("1.5").unwrap(), SimDuration::from_millis(1500));
        assert!(DurationStr::parse("abc").is_err());
        assert!(DurationStr::parse("-3s").is_err());
    }
}

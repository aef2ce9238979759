//! Capacity planner (`servesim plan`): the scenario's `plan:` section names a search space
//! (GPU SKUs with prices, tensor-parallel sizes, models / quantisations, engine settings,
//! routers, a replica range) and a goal; the planner prunes impossible configurations with a
//! recorded reason, finds each configuration's minimum replica count by bisection on simulated
//! SLO attainment, re-checks the boundary with more seeds, and writes `plan.json`, `plan.csv`,
//! a text report and deployable manifests for the recommendation.
//!
//! Autoscaled candidates are sized by the same bisection (the peak capacity becomes their
//! `maxReplicas`) and then judged and billed by a day run with the autoscaler, because what
//! autoscaling saves (quiet hours) and what it risks (cold starts during the ramp) only show
//! over a day, not in the peak window.
//!
//! Layout: [`space`] enumerates configurations ("groups": everything but the replica count)
//! with stable ids; [`prune`] rejects groups and replica counts before simulating; [`search`]
//! simulates and bisects; [`report`] ranks, builds the Pareto fronts, pay-per-token comparison
//! and sensitivity and writes the files; [`emit`] writes and re-parses the manifests;
//! [`run`] ties them together, including `--shard i/n` and `merge`.
//!
//! Determinism: every group is searched sequentially and independently, results are put back
//! in group order, and no wall-clock value reaches a written file, so the output is
//! byte-identical whatever the thread count or sharding.

pub mod emit;
pub mod prune;
pub mod report;
pub mod run;
pub mod search;
pub mod space;

#[cfg(test)]
mod tests;

use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use run::{PlanOptions, PlanRun, merge_dirs, run_plan};

/// The scenario file's `plan:` section. Every field serializes (no `skip_serializing_if`) so
/// the scenario loader's ignored-key check sees each key the user wrote.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Which requests the SLOs are judged on: the whole run, or the busiest hour of arrivals.
    #[serde(default)]
    pub evaluate: Evaluate,
    /// Simulated duration of every plan point (overrides the scenario's `duration`), e.g. `2h`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub duration: Option<DurationStr>,
    /// Extra `--set key.path=value` overrides applied to every plan point (e.g. move the
    /// simulated window onto the peak with `workload.start_hour=9`).
    #[serde(default)]
    pub overrides: Vec<String>,
    #[serde(default)]
    pub objective: Objective,
    /// Daily budget for `objective: best_latency` (USD per day).
    #[serde(default)]
    pub budget_usd_per_day: Option<f64>,
    /// Hours per day the GPUs are paid for: a fixed fleet pays `replicas × TP × price × hours`;
    /// an autoscaled one pays its simulated GPU-hours scaled from the `day` window to these hours.
    #[serde(default = "default_hours")]
    pub hours_per_day: f64,
    /// `bisect` (default) or `exhaustive` (simulate every replica count; for checking).
    #[serde(default)]
    pub search: SearchMode,
    /// Seeds simulated at the boundary (the bisection itself uses the scenario's seed);
    /// a replica count is accepted only when every seed meets every SLO.
    #[serde(default = "default_seeds")]
    pub seeds: u32,
    pub candidates: Candidates,
    /// Price of the same traffic on a pay-per-token API, for comparison.
    #[serde(default)]
    pub pay_per_token: Option<PayPerToken>,
    #[serde(default)]
    pub sensitivity: Sensitivity,
    #[serde(default)]
    pub prune: PruneConfig,
    /// How autoscaled candidates are simulated and billed (their day run).
    #[serde(default)]
    pub day: DayConfig,
}

/// The day run of autoscaled candidates: the scenario's own run (its `duration`, its workload
/// clock; not `plan.duration` / `plan.overrides`, which shape the peak window) with these
/// changes. The autoscaler starts at its `minReplicas` and may grow to the peak capacity the
/// bisection found; the cost is the run's GPU-hours (serving + starting + draining + idle node)
/// × price, scaled linearly from `duration` to `hours_per_day`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DayConfig {
    /// Simulated arrivals of the day run (default: the scenario's `duration`), e.g. `12h`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub duration: Option<DurationStr>,
    /// `--set`-style overrides of the day run (e.g. `drain=10m`).
    #[serde(default)]
    pub overrides: Vec<String>,
    /// SLO window of the day run (default: `plan.evaluate`).
    #[serde(default)]
    pub evaluate: Option<Evaluate>,
    /// Seeds of the day run (default 1; the peak capacity is already confirmed on `plan.seeds`).
    #[serde(default)]
    pub seeds: Option<u32>,
    /// Day runs go to the autoscaled variants of this many configurations (default
    /// [`DEFAULT_DAY_TOP`]): those with something to scale (peak capacity above the
    /// autoscaler's minimum) and the cheapest fixed fleets per day, ties in enumeration order.
    /// A day run costs ~100 peak points, and autoscaling saves a fraction of the fixed fleet's
    /// cost, so a configuration whose fixed fleet is far from the cheapest rarely wins. The
    /// others are reported as `skipped`, with their fixed cost. A large number runs them all.
    #[serde(default)]
    pub top: Option<u32>,
}

/// Default of `plan.day.top`.
pub const DEFAULT_DAY_TOP: u32 = 4;

/// One entry of `plan.candidates.autoscaler`: `none` (a fixed fleet), `scenario` (the
/// scenario's `autoscaler:`), a key of the scenario's `autoscalers:` map or a preset name
/// (`llm-d-keda-epp-queue`), or an inline `{name: …, config: {kind: hpa|keda, …}}`.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum AutoscalerCandidate {
    Named(String),
    Inline(InlineAutoscaler),
}

/// An autoscaler setting written in the plan itself.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InlineAutoscaler {
    /// Name in configuration ids (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The same configuration as the scenario's `autoscaler:` (`kind: hpa` or `kind: keda`, or
    /// `kind: preset`); its min/max replicas are replaced by the planner's.
    pub config: crate::autoscaler::AutoscalerConfig,
}

impl AutoscalerCandidate {
    pub fn name(&self) -> &str {
        match self {
            AutoscalerCandidate::Named(n) => n,
            AutoscalerCandidate::Inline(i) => &i.name,
        }
    }
}

/// `a == "none"` reads as before the axis existed.
impl PartialEq<str> for AutoscalerCandidate {
    fn eq(&self, other: &str) -> bool {
        matches!(self, AutoscalerCandidate::Named(n) if n == other)
    }
}

impl<'de> Deserialize<'de> for AutoscalerCandidate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AutoscalerCandidate;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "`none`, `scenario`, a name from the scenario's `autoscalers:` or a preset, or `{name: …, config: {kind: hpa, …}}`",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AutoscalerCandidate::Named(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                InlineAutoscaler::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(AutoscalerCandidate::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

fn default_hours() -> f64 {
    24.0
}
fn default_seeds() -> u32 {
    3
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Evaluate {
    #[default]
    Whole,
    /// The one-hour window with the most arrivals (the whole run when shorter than 1 h).
    PeakHour,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Cheapest cost per day (GPU-hours × price) that meets every SLO.
    #[default]
    MinCost,
    /// Fewest GPUs that meet every SLO (ties: cheaper).
    MinGpus,
    /// Lowest TTFT p90 (then TPOT p90) that meets every SLO within `budget_usd_per_day`.
    BestLatency,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    #[default]
    Bisect,
    Exhaustive,
}

/// The search space. Empty lists mean "the scenario's own value".
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Candidates {
    pub gpus: Vec<GpuCandidate>,
    /// Catalog model ids, e.g. `[qwen3-32b, qwen3-32b-fp8]` (quantised variants).
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub tensor_parallel_sizes: Vec<u32>,
    pub replicas: ReplicaRange,
    /// vLLM engine variants; unset fields keep the scenario's value (or vLLM's default).
    #[serde(default)]
    pub engines: Vec<EngineCandidate>,
    /// Router names as in `servesim compare`: round_robin, least_requests, epp, epp:<profile>…
    #[serde(default)]
    pub routers: Vec<String>,
    /// Autoscaler settings: `none` (fixed fleet), `scenario`, names from the scenario's
    /// `autoscalers:` map or presets, or inline `{name, config}` (HPA or KEDA). Empty: `none`.
    #[serde(default)]
    pub autoscaler: Vec<AutoscalerCandidate>,
}

/// A GPU SKU; price from the catalog's reference price unless given here.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpuCandidate {
    pub gpu: String,
    #[serde(default)]
    pub usd_per_gpu_hour: Option<f64>,
    #[serde(default)]
    pub provider: Option<String>,
}

/// Replica counts searched: the minimum meeting the SLOs is found in `[min, max]`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicaRange {
    #[serde(default = "one")]
    pub min: u32,
    pub max: u32,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EngineCandidate {
    #[serde(default)]
    pub max_num_seqs: Option<u32>,
    #[serde(default)]
    pub max_num_batched_tokens: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PayPerToken {
    pub input_usd_per_million: f64,
    pub output_usd_per_million: f64,
    #[serde(default)]
    pub provider: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sensitivity {
    /// Traffic multiplier for the "more traffic" check (1.3 = +30 %).
    #[serde(default = "default_scale")]
    pub traffic_scale: f64,
    /// Numeric scenario field scaled to raise traffic, e.g. `workload.engineers` or
    /// `workload.arrival.rate`; unset: no traffic sensitivity.
    #[serde(default)]
    pub traffic_key: Option<String>,
    /// Relative price changes shown for the recommendation's SKU, e.g. `[-0.3, 0.3]`.
    #[serde(default = "default_price_changes")]
    pub price_changes: Vec<f64>,
}

impl Default for Sensitivity {
    fn default() -> Self {
        Sensitivity { traffic_scale: default_scale(), traffic_key: None, price_changes: default_price_changes() }
    }
}

fn default_scale() -> f64 {
    1.3
}
fn default_price_changes() -> Vec<f64> {
    vec![-0.3, -0.2, -0.1, 0.1, 0.2, 0.3]
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// Upper bound on the prefix-cache hit rate assumed by the roofline throughput bound (the
    /// bound is optimistic on purpose, so it only rejects clearly under-provisioned counts).
    #[serde(default = "default_hit_bound")]
    pub prefix_hit_rate_bound: f64,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig { prefix_hit_rate_bound: default_hit_bound() }
    }
}

fn default_hit_bound() -> f64 {
    0.95
}

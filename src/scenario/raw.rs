//! The scenario file, mirrored 1:1 by serde structs ("low args"). Unknown keys are rejected
//! everywhere (each struct is `deny_unknown_fields`; tagged enums hold such structs because
//! serde ignores the attribute on internally tagged enums). vLLM's own argument names are
//! used where they exist; `None` means "vLLM's default for this GPU and version".

use crate::router::RouterConfig;
use crate::step_time::StepTimeConfig;
use crate::workload::WorkloadConfig;
use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Scenario name (used for the default output folder `reports/<name>/`).
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Master seed: every random stream derives from it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stop issuing new requests after this much simulated time (e.g. `1h`, `600s`).
    #[schemars(with = "String")]
    pub duration: DurationStr,
    /// After `duration`, keep simulating until in-flight requests finish, at most this long.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub drain: Option<DurationStr>,
    /// Model: a catalog id (e.g. `llama-3.1-70b`).
    pub model: String,
    /// Accelerator: a catalog id (e.g. `h100_sxm`, `cpu`).
    pub gpu: String,
    #[serde(default = "one")]
    pub tensor_parallel_size: u32,
    /// Number of vLLM replicas (each uses `tensor_parallel_size` GPUs).
    pub replicas: u32,
    /// Price override; by default the catalog's reference price for the GPU.
    #[serde(default)]
    pub price: Option<PriceOverride>,
    #[serde(default)]
    pub engine: EngineFile,
    #[serde(default)]
    pub router: RouterConfig,
    pub workload: WorkloadConfig,
    #[serde(default)]
    pub slo: SloFile,
    #[serde(default)]
    pub output: OutputFile,
    /// Autoscaler deciding the replica count over time (default `kind: fixed`: `replicas`
    /// stays). With an autoscaler, `replicas` is the count at time zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<crate::autoscaler::AutoscalerConfig>,
    /// Named autoscalers for `servesim compare --autoscalers NAME,...` (besides `fixed`,
    /// `scenario` and the preset names).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub autoscalers: std::collections::BTreeMap<String, crate::autoscaler::AutoscalerConfig>,
    /// Replica start-up phases, draining and billing (default: the `new_node` preset for
    /// replicas added later; the initial replicas are Ready at time zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::lifecycle::LifecycleConfig>,
    /// Crashes, rolling updates, stuck and slow replicas, and the client retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<crate::faults::FaultsConfig>,
    /// Capacity-planning search space and goal (`servesim plan`); ignored by `run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::plan::PlanConfig>,
}

fn default_seed() -> u64 {
    1
}
fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub usd_per_gpu_hour: f64,
    #[serde(default)]
    pub provider: Option<String>,
}

/// vLLM engine arguments (names as in `vllm serve`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineFile {
    /// vLLM version whose defaults apply (e.g. "0.11"); affects gpu_memory_utilization default.
    #[serde(default)]
    pub vllm_version: Option<String>,
    pub max_num_seqs: Option<u32>,
    pub max_num_batched_tokens: Option<u32>,
    pub block_size: Option<u32>,
    pub gpu_memory_utilization: Option<f64>,
    pub enable_prefix_caching: Option<bool>,
    pub enable_chunked_prefill: Option<bool>,
    pub max_model_len: Option<u32>,
    pub num_gpu_blocks_override: Option<u32>,
    /// Non-KV memory per GPU (activations, CUDA graphs, NCCL), GiB. Default 3.4 (spec §3.2).
    pub non_kv_overhead_gib: Option<f64>,
    #[serde(default)]
    pub step_time: StepTimeConfig,
}

/// Latency objectives; all optional. Percentiles are over completed requests.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    pub ttft_p50_s: Option<f64>,
    pub ttft_p90_s: Option<f64>,
    pub ttft_p99_s: Option<f64>,
    pub tpot_p50_s: Option<f64>,
    pub tpot_p90_s: Option<f64>,
    pub tpot_p99_s: Option<f64>,
    pub e2e_p90_s: Option<f64>,
    pub e2e_p99_s: Option<f64>,
    /// Max fraction of submitted requests that may be rejected or fail.
    pub max_error_rate: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    /// Sampling interval of `timeseries.csv` (simulated time).
    #[serde(default = "default_tick")]
    #[schemars(with = "String")]
    pub timeseries_interval: DurationStr,
    /// Write `requests.csv` (one row per request).
    #[serde(default = "yes")]
    pub requests_csv: bool,
}

impl Default for OutputFile {
    fn default() -> Self {
        OutputFile { timeseries_interval: default_tick(), requests_csv: true }
    }
}

fn default_tick() -> DurationStr {
    DurationStr(crate::units::SimDuration::from_secs(1))
}
fn yes() -> bool {
    true
}

//! Scenario loading: the only place that knows YAML. `raw` mirrors the file; `load` parses it
//! with serde-saphyr under input budgets, and resolution fills vLLM's defaults and checks
//! cross-field rules once, producing an immutable [`Scenario`].

mod error;
mod load;
pub mod raw;
mod resolve;
mod tree;

pub use error::ScenarioError;
pub use load::{MAX_FILE_BYTES, load, load_str, parse_file};
pub use raw::ScenarioFile;
pub use resolve::{DEFAULT_DRAIN, DEFAULT_NON_KV_OVERHEAD_GIB, MAX_REPLICAS, VALID_BLOCK_SIZES, resolve};

/// JSON Schema (draft 2020-12) of the scenario file, for editors and `servesim schema`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ScenarioFile)).expect("a JSON schema serializes")
}

use crate::catalog::{GpuSku, KvSizing, ModelSpec, Price};
use crate::router::RouterConfig;
use crate::step_time::StepTimeConfig;
use crate::units::SimDuration;
use crate::workload::WorkloadConfig;
use std::path::PathBuf;

/// A resolved, immutable scenario: defaults filled, units typed, cross-field rules checked.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file as parsed, after `--set` overrides (echoed into reports).
    pub file: ScenarioFile,
    /// Where it came from (for messages and relative paths such as table step-time files).
    pub source: PathBuf,
    pub name: String,
    pub seed: u64,
    pub duration: SimDuration,
    /// Extra simulated time after `duration` to let in-flight requests finish.
    pub drain: SimDuration,
    pub model: ModelSpec,
    pub gpu: GpuSku,
    pub tp: u32,
    pub replicas: u32,
    pub price: Price,
    pub engine: EngineSettings,
    pub router: RouterConfig,
    pub workload: WorkloadConfig,
    pub slo: raw::SloFile,
    pub timeseries_interval: SimDuration,
    pub requests_csv: bool,
    pub autoscaler: crate::autoscaler::AutoscalerConfig,
    pub lifecycle: crate::lifecycle::Lifecycle,
    pub faults: crate::faults::FaultsConfig,
    /// Hour of the day at simulated time zero (from the workload; 0 if it has no clock).
    pub start_hour: f64,
}

/// vLLM engine settings after defaults (spec §3.1) are applied.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineSettings {
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    pub block_size: u32,
    pub gpu_memory_utilization: f64,
    pub enable_prefix_caching: bool,
    pub enable_chunked_prefill: bool,
    pub max_model_len: u32,
    /// Blocks per replica including the reserved null block (override or derived).
    pub num_gpu_blocks: u32,
    /// Derived sizing (also present when overridden, for reports).
    pub kv_sizing: Option<KvSizing>,
    pub step_time: StepTimeConfig,
}

#[cfg(test)]
mod tests;

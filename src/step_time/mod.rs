//! Step-time models: how long one engine iteration takes for a given batch shape. The engine
//! only sees the [`StepTimeModel`] trait; the roofline model derives times from the model
//! shape and GPU peaks with efficiency factors, the table model interpolates measured steps
//! (the validation issue fits it), and the constant model makes hand-computed tests exact.

pub mod roofline;
pub mod table;

pub use roofline::Roofline;
pub use table::Table;

use crate::catalog::{GpuSku, ModelSpec};
use crate::units::SimDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors building a step-time model; each names the config field or the file and line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepTimeError {
    #[error("step_time.{field}: {msg}")]
    InvalidConfig { field: &'static str, msg: String },
    #[error("cannot read step-time table {}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("step-time table {}{}: {msg}", file.display(), if *line > 0 { format!(", line {line}") } else { String::new() })]
    Table { file: PathBuf, line: u64, msg: String },
}

/// Shape of one engine step, the input of every step-time model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchShape {
    /// Tokens of prompt chunks computed in this step (after prefix-cache hits).
    pub prefill_tokens: u32,
    /// Number of sequences in prefill (chunks) this step.
    pub prefill_seqs: u32,
    /// Number of decoding sequences (1 token each).
    pub decode_seqs: u32,
    /// Σ context tokens already in KV that this step's prefill chunks attend to.
    pub prefill_context: u64,
    /// Σ context tokens of the decoding sequences (KV read per decode).
    pub decode_context: u64,
}

impl BatchShape {
    pub fn total_tokens(&self) -> u32 {
        self.prefill_tokens + self.decode_seqs
    }
    pub fn num_seqs(&self) -> u32 {
        self.prefill_seqs + self.decode_seqs
    }
}

/// Duration of one engine iteration on one replica.
pub trait StepTimeModel: Send + Sync {
    fn step_time(&self, batch: &BatchShape) -> SimDuration;
    fn name(&self) -> &str;
    /// Step times of the decode steps that follow `last` in a run whose batch does not change:
    /// step j (from 1) is `last` with `decode_context` grown by j × `decode_seqs`. Always equal
    /// to calling [`StepTimeModel::step_time`] on each shape; a model overrides it only to
    /// compute a run faster (most simulated steps are in runs).
    fn decode_run(&self, last: &BatchShape, out: &mut [SimDuration]) {
        decode_run_by_steps(self, last, out)
    }
}

/// [`StepTimeModel::decode_run`] one [`StepTimeModel::step_time`] call per step (the default,
/// and what an override falls back to for shapes it does not specialise).
pub fn decode_run_by_steps<M: StepTimeModel + ?Sized>(model: &M, last: &BatchShape, out: &mut [SimDuration]) {
    let mut sh = *last;
    for d in out.iter_mut() {
        sh.decode_context += sh.decode_seqs as u64;
        *d = model.step_time(&sh);
    }
}

/// Step-time model choice in scenario YAML (`kind:`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepTimeConfig {
    /// Roofline from model shape and GPU peaks; efficiency fields override the catalog's.
    Roofline(RooflineConfig),
    /// Interpolation over measured step times (CSV or YAML table).
    Table(TableConfig),
    /// Fixed time per step plus per-token terms; for tests and hand calculations.
    Linear(LinearConfig),
    /// A calibration made by `servesim calibrate` (shipped `name:` or `file:`).
    Calibration(crate::calibrate::CalibrationRef),
}

impl Default for StepTimeConfig {
    fn default() -> Self {
        StepTimeConfig::Roofline(RooflineConfig::default())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RooflineConfig {
    #[serde(default)]
    pub flops_efficiency: Option<f64>,
    #[serde(default)]
    pub bandwidth_efficiency: Option<f64>,
    #[serde(default)]
    pub step_overhead_us: Option<f64>,
    #[serde(default)]
    pub per_layer_us: Option<f64>,
    /// Efficiency of attention FLOPs; defaults to the catalog's, else `flops_efficiency`.
    #[serde(default)]
    pub attention_flops_efficiency: Option<f64>,
    /// Compute/memory overlap in [0, 1]: step = max(tc, tm) + (1 − overlap) · min(tc, tm).
    #[serde(default)]
    pub overlap: Option<f64>,
    /// Fixed cost per scheduled sequence, microseconds.
    #[serde(default)]
    pub per_seq_us: Option<f64>,
    /// Fixed cost of one TP all-reduce, microseconds.
    #[serde(default)]
    pub allreduce_latency_us: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Path to the CSV table (relative to the scenario file), or a shipped table such as
    /// `catalog:steptime/tiny-llama-cpu.csv`. Format: see [`table`].
    pub file: String,
}

impl StepTimeConfig {
    /// Builds the model for one replica of `model` on `tp` GPUs of `gpu`. Table paths are
    /// resolved against `base_dir` (the scenario file's directory).
    pub fn build(
        &self,
        model: &ModelSpec,
        gpu: &GpuSku,
        tp: u32,
        base_dir: &Path,
    ) -> Result<Box<dyn StepTimeModel>, StepTimeError> {
        match self {
            StepTimeConfig::Roofline(c) => Ok(Box::new(Roofline::new(model, gpu, tp, c)?)),
            StepTimeConfig::Table(c) => {
                let path = if c.file.starts_with("catalog:") || Path::new(&c.file).is_absolute() {
                    PathBuf::from(&c.file)
                } else {
                    base_dir.join(&c.file)
                };
                Ok(Box::new(Table::load(&path)?))
            }
            StepTimeConfig::Linear(c) => {
                for (field, v) in [
                    ("base_us", c.base_us),
                    ("per_prefill_token_us", c.per_prefill_token_us),
                    ("per_decode_seq_us", c.per_decode_seq_us),
                    ("per_context_token_ns", c.per_context_token_ns),
                ] {
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(StepTimeError::InvalidConfig {
                            field,
                            msg: format!("must be finite and ≥ 0, got {v}"),
                        });
                    }
                }
                Ok(Box::new(Linear::new(c)))
            }
            StepTimeConfig::Calibration(r) => crate::calibrate::build(r, model, gpu, tp, base_dir),
        }
    }
}

/// step = base_us + per_prefill_token_us × prefill_tokens + per_decode_seq_us × decode_seqs
///        + per_context_token_ns × (prefill_context + decode_context) / 1000
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    pub base_us: f64,
    #[serde(default)]
    pub per_prefill_token_us: f64,
    #[serde(default)]
    pub per_decode_seq_us: f64,
    #[serde(default)]
    pub per_context_token_ns: f64,
}

/// The linear model (exact integer arithmetic in nanoseconds after a one-time conversion).
pub struct Linear {
    base_ns: u64,
    prefill_tok_ps: u64,
    decode_seq_ps: u64,
    ctx_tok_ps: u64,
}

impl Linear {
    pub fn new(c: &LinearConfig) -> Self {
        let ps = |us: f64| (us * 1e6).round().max(0.0) as u64;
        Linear {
            base_ns: (c.base_us * 1e3).round().max(0.0) as u64,
            prefill_tok_ps: ps(c.per_prefill_token_us),
            decode_seq_ps: ps(c.per_decode_seq_us),
            ctx_tok_ps: (c.per_context_token_ns * 1e3).round().max(0.0) as u64,
        }
    }
}

impl StepTimeModel for Linear {
    fn step_time(&self, b: &BatchShape) -> SimDuration {
        let ps = self.prefill_tok_ps * b.prefill_tokens as u64
            + self.decode_seq_ps * b.decode_seqs as u64
            + self.ctx_tok_ps * (b.prefill_context + b.decode_context);
        SimDuration(self.base_ns + ps / 1000)
    }
    fn name(&self) -> &str {
        "linear"
    }
}

#[cfg(test)]
mod tests;

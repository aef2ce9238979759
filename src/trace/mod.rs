//! Traces of real (or other simulators') runs, read into one shape so that `validate`,
//! `calibrate` and the `trace` workload do not care where a measurement came from.
//!
//! A [`Trace`] is up to three things: the *workload* that was offered (arrivals, lengths,
//! prefix block hashes), the *engine* it ran on (as far as the source says), and what was
//! *measured* (per-request records, pooled ITL samples, step timings, stage summaries). Formats
//! that only describe load (Mooncake, Azure) have no measurements; formats that only give
//! aggregates (inference-perf / BLIS stage summaries) have no requests. Each importer fills
//! what its format holds and nothing else: missing facts stay `None` rather than guessed, so
//! the reconstruction in `validate` can say what it assumed.

pub mod formats;
pub mod workload;

use crate::metrics::{RequestRecord, Summary};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Errors reading a trace: each names the file, and the line or field where known.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("trace {}{}: {msg}", path.display(), if *line > 0 { format!(", line {line}") } else { String::new() })]
    Format { path: PathBuf, line: u64, msg: String },
    #[error(
        "trace {}: cannot tell its format; give `format:` (servesim, vllm_bench, llmservingsim, inference_perf, mooncake, azure)",
        path.display()
    )]
    Unknown { path: PathBuf },
}

impl TraceError {
    pub(crate) fn format(path: &Path, line: u64, msg: impl Into<String>) -> Self {
        TraceError::Format { path: path.to_path_buf(), line, msg: msg.into() }
    }
}

/// Trace file formats servesim reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// servesim's own outputs: a folder with `requests.csv[.gz]` (+ summary.json, steps.csv,
    /// timeseries.csv, manifest.json, scenario.yaml), or the `requests.csv[.gz]` itself.
    Servesim,
    /// `vllm bench serve --save-result --save-detailed` JSON (optionally .gz).
    VllmBench,
    /// LLMServingSim's real-vLLM bench folder: `requests.jsonl` + `meta.json`.
    Llmservingsim,
    /// inference-perf / BLIS per-stage summary CSV (`summary_by_stage.csv`).
    InferencePerf,
    /// Mooncake FAST'25 JSONL: timestamp (ms), lengths, 512-token block hash ids.
    Mooncake,
    /// Azure LLM inference trace CSV: TIMESTAMP, ContextTokens, GeneratedTokens.
    Azure,
}

impl TraceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceFormat::Servesim => "servesim",
            TraceFormat::VllmBench => "vllm_bench",
            TraceFormat::Llmservingsim => "llmservingsim",
            TraceFormat::InferencePerf => "inference_perf",
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::Azure => "azure",
        }
    }
}

/// One offered request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceRequest {
    /// Offset from the trace's start, ns; `None` when the format has no arrival times
    /// (vLLM bench), in which case the workload draws them.
    pub arrival_ns: Option<u64>,
    pub input: u32,
    pub output: u32,
    /// Prefix-chained hashes of the prompt's full blocks of [`Trace::hash_block_tokens`]
    /// tokens: equal leading hashes mean equal leading tokens.
    pub hash_ids: Vec<u64>,
    pub session: Option<u64>,
    pub group: Option<u32>,
}

/// What the source says about the engine that served the trace.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct EngineHints {
    pub model: Option<String>,
    pub gpu: Option<String>,
    pub tp: Option<u32>,
    pub replicas: Option<u32>,
    pub max_num_seqs: Option<u32>,
    pub max_num_batched_tokens: Option<u32>,
    pub max_model_len: Option<u32>,
    pub block_size: Option<u32>,
    pub num_gpu_blocks: Option<u32>,
    pub enable_prefix_caching: Option<bool>,
    pub vllm_version: Option<String>,
}

/// One measured engine step (`steps.csv`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepRow {
    pub t_s: f64,
    pub duration_s: f64,
    pub num_reqs: u32,
    pub num_prefill_reqs: u32,
    pub prefill_tokens: u32,
    pub num_decode_reqs: u32,
    pub decode_tokens: u32,
    pub context_tokens: u64,
}

/// One inference-perf stage (or the whole run) as summarised by the source.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StageSummary {
    pub experiment: String,
    /// Model name as the source writes it.
    pub model: String,
    pub tp: u32,
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    pub max_model_len: u32,
    /// Stage index; `None` for the whole-run summary row.
    pub stage: Option<u32>,
    pub rate_rps: Option<f64>,
    pub duration_s: Option<f64>,
    pub groups: u32,
    pub prompts_per_group: u32,
    pub system_prompt_len: u32,
    pub question_len: u32,
    pub output_len: u32,
    pub multi_turn: bool,
    pub successes: u64,
    pub output_len_mean: Option<f64>,
    pub output_tokens_per_s: Option<f64>,
    /// `(statistic, seconds)`, e.g. `("ttft_mean", 0.025)`.
    pub stats: Vec<(String, f64)>,
}

/// Measurements of a real run.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// Per-request records (arrival-relative times as in `requests.csv`).
    pub records: Vec<RequestRecord>,
    /// Pooled inter-token gaps in seconds, when the source lists them per request.
    pub itl_s: Vec<f64>,
    /// The run's own `summary.json` (servesim/live traces): ITL, hit rate, preemptions.
    pub summary: Option<Summary>,
    /// `timeseries.csv` rows (scraped engine gauges).
    pub timeseries: Vec<crate::report::data::TsRow>,
    /// Wall span of the run, seconds, when known.
    pub span_s: Option<f64>,
    /// Aggregate statistics given by the source (vLLM bench `mean_ttft_ms` …), seconds.
    pub reported: Vec<(String, f64)>,
    /// Recorded by a client (`servesim live`): the records' queue time is the client's send
    /// lag, not the server's waiting time, which a client cannot see.
    pub client_side: bool,
}

/// A trace read from disk.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub path: PathBuf,
    pub format: Option<TraceFormat>,
    pub name: String,
    pub requests: Vec<TraceRequest>,
    /// Tokens per hash block of [`TraceRequest::hash_ids`] (0 when there are none).
    pub hash_block_tokens: u32,
    /// Offered rate when the format gives one instead of arrival times (req/s; inf = burst).
    pub request_rate: Option<f64>,
    pub engine: EngineHints,
    pub measured: Option<Measured>,
    pub steps: Vec<StepRow>,
    pub stages: Vec<StageSummary>,
    /// Scenario that drove the run (servesim live recordings).
    pub scenario: Option<PathBuf>,
    /// `manifest.json` of a recording.
    pub manifest: Option<serde_json::Value>,
    /// What the importer had to assume.
    pub notes: Vec<String>,
}

/// Reads a whole file, transparently gunzipping `.gz` (or gzip-magic) content.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, TraceError> {
    let raw = std::fs::read(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// `dir/name` or `dir/name.gz`, whichever exists.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let p = dir.join(name);
    if p.is_file() {
        return Some(p);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// Guesses the format from the path and the first bytes.
pub fn detect(path: &Path) -> Result<TraceFormat, TraceError> {
    if path.is_dir() {
        if find_file(path, "requests.csv").is_some() {
            return Ok(TraceFormat::Servesim);
        }
        if path.join("requests.jsonl").is_file() && path.join("meta.json").is_file() {
            return Ok(TraceFormat::Llmservingsim);
        }
        if path.join("summary_by_stage.csv").is_file() {
            return Ok(TraceFormat::InferencePerf);
        }
        return Err(TraceError::Unknown { path: path.to_path_buf() });
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let stem = name.trim_end_matches(".gz");
    if stem == "requests.jsonl" {
        return Ok(TraceFormat::Llmservingsim);
    }
    let bytes = read_bytes(path)?;
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_string();
    let first = head.lines().next().unwrap_or("").trim().to_string();
    if stem.ends_with(".csv") {
        if first.starts_with("id,") || first.contains("arrival_s") {
            return Ok(TraceFormat::Servesim);
        }
        if first.contains("ContextTokens") {
            return Ok(TraceFormat::Azure);
        }
        if first.contains("num_unique_system_prompts") || first.contains("rate_rps") {
            return Ok(TraceFormat::InferencePerf);
        }
    }
    if first.starts_with('{') {
        if first.contains("\"hash_ids\"") && first.contains("\"timestamp\"") {
            return Ok(TraceFormat::Mooncake);
        }
        if first.contains("\"queued_ts\"") || first.contains("\"input_toks\"") {
            return Ok(TraceFormat::Llmservingsim);
        }
        if head.contains("\"input_lens\"") || head.contains("\"request_rate\"") || head.contains("\"ttfts\"") {
            return Ok(TraceFormat::VllmBench);
        }
    }
    if head.trim_start().starts_with('{') && head.contains("\"backend\"") {
        return Ok(TraceFormat::VllmBench);
    }
    Err(TraceError::Unknown { path: path.to_path_buf() })
}

/// Loads a trace of the given (or detected) format.
pub fn load(path: &Path, format: Option<TraceFormat>) -> Result<Trace, TraceError> {
    let format = match format {
        Some(f) => f,
        None => detect(path)?,
    };
    let mut t = match format {
        TraceFormat::Servesim => formats::servesim(path)?,
        TraceFormat::VllmBench => formats::vllm_bench(path)?,
        TraceFormat::Llmservingsim => formats::llmservingsim(path)?,
        TraceFormat::InferencePerf => formats::inference_perf(path)?,
        TraceFormat::Mooncake => formats::mooncake(path)?,
        TraceFormat::Azure => formats::azure(path)?,
    };
    t.format = Some(format);
    t.path = path.to_path_buf();
    if t.name.is_empty() {
        t.name = default_name(path);
    }
    Ok(t)
}

/// A short name for a trace path: the folder or file name without `.gz`/extension.
pub fn default_name(path: &Path) -> String {
    let n = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = n.trim_end_matches(".gz");
    let n = [".csv", ".jsonl", ".json"].iter().find_map(|e| n.strip_suffix(e)).unwrap_or(n);
    if matches!(n, "requests" | "summary_by_stage") {
        if let Some(p) = path.parent().and_then(|p| p.file_name()) {
            return p.to_string_lossy().into_owned();
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests;

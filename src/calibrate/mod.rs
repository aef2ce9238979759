//! Calibration: turning measurements into a step-time model a scenario can name.
//!
//! A calibration file (`calibration.yaml`) holds one fitted step-time model plus where it came
//! from (provenance, the runs it was fitted on and those held out), so a figure computed with
//! it can always be traced back to its data. Three sources feed it:
//!
//! - step traces (`steps.csv`): a direct least-squares fit of the parametric model below;
//! - request-level traces only: a scale factor on a base model found by simulating the trace
//!   and matching its mean TPOT and E2E (the simulator is the fitting function);
//! - offline profiles (LLMServingSim per-layer tables, AIConfigurator kernel tables): the
//!   profile is evaluated on a grid of batch shapes and the same parametric model is fitted to
//!   those synthetic steps, so no profile data is needed at simulation time.
//!
//! The parametric model is
//! `step = base + a·prefill_tokens + b·decode_seqs + c·context_tokens + d·prefill_tokens²/(2·prefill_seqs)`
//! with non-negative coefficients (monotone, extrapolates like the physics), fitted by
//! non-negative least squares on relative error (rows weighted by 1/duration).

pub mod cmd;
pub mod profiles;

use crate::step_time::{BatchShape, StepTimeConfig, StepTimeError, StepTimeModel};
use crate::trace::StepRow;
use crate::units::SimDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Calibrations shipped in the binary, addressable as `{kind: calibration, name: <name>}`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("tiny-llama-cpu", include_str!("../../catalog/calibrations/tiny-llama-cpu.yaml")),
    ("small-llama-cpu", include_str!("../../catalog/calibrations/small-llama-cpu.yaml")),
    ("rtx4090-llama-3.1-8b-profile", include_str!("../../catalog/calibrations/rtx4090-llama-3.1-8b-profile.yaml")),
    (
        "rtxpro6000-llama-3.1-8b-profile",
        include_str!("../../catalog/calibrations/rtxpro6000-llama-3.1-8b-profile.yaml"),
    ),
];

/// `step_time: {kind: calibration, name: N}` or `{kind: calibration, file: F}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CalibrationRef {
    /// A calibration shipped in `catalog/calibrations/` (e.g. `tiny-llama-cpu`).
    #[serde(default)]
    pub name: Option<String>,
    /// A calibration file written by `servesim calibrate` (relative to the scenario file).
    #[serde(default)]
    pub file: Option<String>,
}

/// The parametric step model (microseconds / nanoseconds per unit, all ≥ 0).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Coefficients {
    pub base_us: f64,
    pub per_prefill_token_us: f64,
    pub per_decode_seq_us: f64,
    /// Per token of KV context attended (prefill prefixes and decode contexts), ns.
    pub per_context_token_ns: f64,
    /// Per unit of prefill_tokens² / (2 · prefill_seqs) (causal self-attention of the chunk), ns.
    #[serde(default)]
    pub per_prefill_attention_ns: f64,
}

/// The model a calibration holds (`kind:`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CalibratedModel {
    /// The parametric model with fitted coefficients.
    Parametric(Coefficients),
    /// Another step-time model with every step multiplied by `factor` (fitted by simulation).
    Scaled(ScaledModel),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScaledModel {
    pub factor: f64,
    pub base: StepTimeConfig,
}

/// How well the model reproduces the data it was fitted to (and held-out data, if any).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FitQuality {
    pub rows: u64,
    /// Mean absolute percentage error of step durations on the fit rows.
    pub mape_pct: f64,
    /// Median absolute percentage error on the fit rows.
    pub median_ape_pct: f64,
    /// Same on held-out rows (other runs), when there were any.
    #[serde(default)]
    pub test_rows: Option<u64>,
    #[serde(default)]
    pub test_mape_pct: Option<f64>,
}

/// `calibration.yaml`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CalibrationFile {
    pub name: String,
    /// Where the data came from and how it was turned into this model.
    pub provenance: String,
    /// Model and hardware the calibration describes (informational).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub hardware: Option<String>,
    /// Runs / files the model was fitted on.
    #[serde(default)]
    pub fitted_on: Vec<String>,
    /// Runs / files held out from the fit (the honest test set).
    #[serde(default)]
    pub held_out: Vec<String>,
    pub step_time: CalibratedModel,
    #[serde(default)]
    pub fit: Option<FitQuality>,
}

impl CalibrationFile {
    pub fn to_yaml(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!("# servesim calibration (servesim calibrate); see `provenance`.\n{body}")
    }
}

/// Reads a calibration by reference (catalog name or file relative to `base_dir`).
pub fn load_ref(r: &CalibrationRef, base_dir: &Path) -> Result<(CalibrationFile, PathBuf), StepTimeError> {
    let invalid = |msg: String| StepTimeError::InvalidConfig { field: "name", msg };
    let (text, path) = match (&r.name, &r.file) {
        (Some(n), None) => {
            let (_, t) = BUILTIN.iter().find(|(k, _)| k == n).ok_or_else(|| {
                invalid(format!(
                    "no shipped calibration `{n}`; shipped: {}; or give `file:`",
                    BUILTIN.iter().map(|b| b.0).collect::<Vec<_>>().join(", ")
                ))
            })?;
            (t.to_string(), PathBuf::from(format!("catalog/calibrations/{n}.yaml")))
        }
        (None, Some(f)) => {
            let p = if Path::new(f).is_absolute() { PathBuf::from(f) } else { base_dir.join(f) };
            let t = std::fs::read_to_string(&p).map_err(|source| StepTimeError::Io { file: p.clone(), source })?;
            (t, p)
        }
        _ => return Err(invalid("give exactly one of `name:` (shipped calibration) or `file:`".into())),
    };
    let cal: CalibrationFile = serde_saphyr::from_str(&text).map_err(|e| StepTimeError::Table {
        file: path.clone(),
        line: 0,
        msg: e.to_string(),
    })?;
    Ok((cal, path))
}

/// Builds the step-time model of a calibration.
pub fn build(
    r: &CalibrationRef,
    model: &crate::catalog::ModelSpec,
    gpu: &crate::catalog::GpuSku,
    tp: u32,
    base_dir: &Path,
) -> Result<Box<dyn StepTimeModel>, StepTimeError> {
    let (cal, path) = load_ref(r, base_dir)?;
    build_model(&cal.step_time, &cal.name, model, gpu, tp, path.parent().unwrap_or(base_dir))
}

pub fn build_model(
    m: &CalibratedModel,
    name: &str,
    model: &crate::catalog::ModelSpec,
    gpu: &crate::catalog::GpuSku,
    tp: u32,
    base_dir: &Path,
) -> Result<Box<dyn StepTimeModel>, StepTimeError> {
    match m {
        CalibratedModel::Parametric(c) => {
            for (field, v) in [
                ("base_us", c.base_us),
                ("per_prefill_token_us", c.per_prefill_token_us),
                ("per_decode_seq_us", c.per_decode_seq_us),
                ("per_context_token_ns", c.per_context_token_ns),
                ("per_prefill_attention_ns", c.per_prefill_attention_ns),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(StepTimeError::InvalidConfig {
                        field,
                        msg: format!("must be finite and ≥ 0, got {v}"),
                    });
                }
            }
            Ok(Box::new(Parametric { c: c.clone(), name: format!("calibration({name})") }))
        }
        CalibratedModel::Scaled(s) => {
            if !(s.factor.is_finite() && s.factor > 0.0) {
                return Err(StepTimeError::InvalidConfig {
                    field: "factor",
                    msg: format!("must be > 0, got {}", s.factor),
                });
            }
            let inner = s.base.build(model, gpu, tp, base_dir)?;
            Ok(Box::new(Scaled { inner, factor: s.factor, name: format!("calibration({name})") }))
        }
    }
}

/// The parametric model as a [`StepTimeModel`].
pub struct Parametric {
    pub c: Coefficients,
    name: String,
}

impl Parametric {
    pub fn new(c: Coefficients) -> Self {
        Parametric { c, name: "parametric".into() }
    }
    pub fn step_us(&self, f: &[f64; NF]) -> f64 {
        dot(&coef_vec(&self.c), f)
    }
}

impl StepTimeModel for Parametric {
    fn step_time(&self, b: &BatchShape) -> SimDuration {
        let f = features(
            b.prefill_tokens as f64,
            b.prefill_seqs as f64,
            b.decode_seqs as f64,
            (b.prefill_context + b.decode_context) as f64,
        );
        SimDuration((self.step_us(&f) * 1e3).round().max(1.0) as u64)
    }
    fn name(&self) -> &str {
        &self.name
    }
}

struct Scaled {
    inner: Box<dyn StepTimeModel>,
    factor: f64,
    name: String,
}

impl StepTimeModel for Scaled {
    fn step_time(&self, b: &BatchShape) -> SimDuration {
        SimDuration::from_nanos_f64(self.inner.step_time(b).as_nanos() as f64 * self.factor)
    }
    fn name(&self) -> &str {
        &self.name
    }
}

pub const NF: usize = 5;

/// Features in the units of [`Coefficients`]: [1 (µs), prefill tokens (µs), decode seqs (µs),
/// context tokens (ns → /1000), prefill attention units (ns → /1000)].
pub fn features(prefill_tokens: f64, prefill_seqs: f64, decode_seqs: f64, context: f64) -> [f64; NF] {
    let work = if prefill_tokens > 0.0 { prefill_tokens * prefill_tokens / (2.0 * prefill_seqs.max(1.0)) } else { 0.0 };
    [1.0, prefill_tokens, decode_seqs, context / 1e3, work / 1e3]
}

fn coef_vec(c: &Coefficients) -> [f64; NF] {
    [c.base_us, c.per_prefill_token_us, c.per_decode_seq_us, c.per_context_token_ns, c.per_prefill_attention_ns]
}

fn dot(a: &[f64; NF], b: &[f64; NF]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Features and duration (µs) of a measured step. `context_tokens` in a step trace counts
/// each request's tokens after the step (computed + scheduled); the simulator's context is
/// what was already in KV, so the step's own tokens are subtracted.
pub fn step_sample(s: &StepRow) -> ([f64; NF], f64) {
    let own = s.prefill_tokens as u64 + s.decode_tokens as u64;
    (
        features(
            s.prefill_tokens as f64,
            s.num_prefill_reqs as f64,
            s.num_decode_reqs as f64,
            s.context_tokens.saturating_sub(own) as f64,
        ),
        s.duration_s * 1e6,
    )
}

/// Solves the normal equations of the columns in `mask` (Gaussian elimination, partial pivot).
fn solve_subset(x: &[[f64; NF]], y: &[f64], w: &[f64], mask: u32) -> Option<[f64; NF]> {
    let idx: Vec<usize> = (0..NF).filter(|j| mask & (1 << j) != 0).collect();
    let k = idx.len();
    let mut a = vec![vec![0.0; k + 1]; k];
    for ((xi, &yi), &wi) in x.iter().zip(y).zip(w) {
        for (r, &jr) in idx.iter().enumerate() {
            for (c, &jc) in idx.iter().enumerate() {
                a[r][c] += wi * xi[jr] * xi[jc];
            }
            a[r][k] += wi * xi[jr] * yi;
        }
    }
    for col in 0..k {
        let piv = (col..k).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        for r in 0..k {
            if r != col {
                let f = a[r][col] / a[col][col];
                if f != 0.0 {
                    for c in col..=k {
                        a[r][c] -= f * a[col][c];
                    }
                }
            }
        }
    }
    let mut out = [0.0; NF];
    for (r, &j) in idx.iter().enumerate() {
        out[j] = a[r][k] / a[r][r];
    }
    Some(out)
}

/// Non-negative least squares on relative error, exact by enumerating the 2^NF active sets.
pub fn nnls_relative(x: &[[f64; NF]], y: &[f64]) -> Option<[f64; NF]> {
    let w: Vec<f64> = y.iter().map(|&v| if v > 0.0 { 1.0 / (v * v) } else { 0.0 }).collect();
    let mut best: Option<([f64; NF], f64)> = None;
    for mask in 1u32..(1 << NF) {
        let Some(c) = solve_subset(x, y, &w, mask) else { continue };
        if c.iter().any(|&v| v < 0.0 || !v.is_finite()) {
            continue;
        }
        let err: f64 = x.iter().zip(y).zip(&w).map(|((xi, &yi), &wi)| wi * (dot(&c, xi) - yi).powi(2)).sum();
        if best.as_ref().is_none_or(|b| err < b.1 - 1e-15 * b.1.abs()) {
            best = Some((c, err));
        }
    }
    best.map(|b| b.0)
}

fn ape(pred: f64, y: f64) -> f64 {
    ((pred - y) / y).abs() * 100.0
}

/// (mean, median) absolute percentage error of `c` on samples.
pub fn errors(c: &Coefficients, samples: &[([f64; NF], f64)]) -> (f64, f64) {
    let cv = coef_vec(c);
    let mut e: Vec<f64> = samples.iter().filter(|s| s.1 > 0.0).map(|(f, y)| ape(dot(&cv, f), *y)).collect();
    if e.is_empty() {
        return (0.0, 0.0);
    }
    e.sort_by(f64::total_cmp);
    (e.iter().sum::<f64>() / e.len() as f64, e[(e.len() - 1) / 2])
}

/// Fits the parametric model to samples `(features, duration µs)`. Rows whose residual is
/// more than 5× the median absolute relative residual after a first fit (machine hiccups:
/// page faults, a preempted core) are dropped once and the fit repeated.
pub fn fit_samples(samples: &[([f64; NF], f64)]) -> Option<Coefficients> {
    let keep: Vec<&([f64; NF], f64)> = samples.iter().filter(|s| s.1 > 0.0).collect();
    if keep.len() < NF {
        return None;
    }
    let x: Vec<[f64; NF]> = keep.iter().map(|s| s.0).collect();
    let y: Vec<f64> = keep.iter().map(|s| s.1).collect();
    let c = nnls_relative(&x, &y)?;
    let mut r: Vec<f64> = x.iter().zip(&y).map(|(f, &v)| ((dot(&c, f) - v) / v).abs()).collect();
    let mut sorted = r.clone();
    sorted.sort_by(f64::total_cmp);
    let med = sorted[(sorted.len() - 1) / 2].max(1e-3);
    let (mut x2, mut y2) = (Vec::new(), Vec::new());
    for ((f, &v), rr) in x.iter().zip(&y).zip(r.iter_mut()) {
        if *rr <= 5.0 * med {
            x2.push(*f);
            y2.push(v);
        }
    }
    let c = if x2.len() >= NF && x2.len() < x.len() { nnls_relative(&x2, &y2).unwrap_or(c) } else { c };
    Some(Coefficients {
        base_us: c[0],
        per_prefill_token_us: c[1],
        per_decode_seq_us: c[2],
        per_context_token_ns: c[3],
        per_prefill_attention_ns: c[4],
    })
}

/// Fits a calibration to step traces: `fit` rows are fitted, `test` rows only scored.
pub fn fit_steps(
    name: &str,
    fit: &[(String, Vec<StepRow>)],
    test: &[(String, Vec<StepRow>)],
    provenance: String,
) -> Result<CalibrationFile, String> {
    let samples: Vec<([f64; NF], f64)> = fit.iter().flat_map(|(_, s)| s.iter().map(step_sample)).collect();
    let c = fit_samples(&samples).ok_or_else(|| {
        format!(
            "cannot fit: {} usable step rows (need at least {NF} with duration > 0 and varied shapes)",
            samples.len()
        )
    })?;
    let (mape, med) = errors(&c, &samples);
    let test_samples: Vec<([f64; NF], f64)> = test.iter().flat_map(|(_, s)| s.iter().map(step_sample)).collect();
    let (test_rows, test_mape) = if test_samples.is_empty() {
        (None, None)
    } else {
        (Some(test_samples.len() as u64), Some(errors(&c, &test_samples).0))
    };
    Ok(CalibrationFile {
        name: name.to_string(),
        provenance,
        model: None,
        hardware: None,
        fitted_on: fit.iter().map(|f| f.0.clone()).collect(),
        held_out: test.iter().map(|f| f.0.clone()).collect(),
        step_time: CalibratedModel::Parametric(c),
        fit: Some(FitQuality {
            rows: samples.len() as u64,
            mape_pct: round3(mape),
            median_ape_pct: round3(med),
            test_rows,
            test_mape_pct: test_mape.map(round3),
        }),
    })
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Rounds coefficients to 6 significant digits (stable, readable files).
pub fn tidy(c: &mut Coefficients) {
    let r = |x: &mut f64| {
        if *x != 0.0 {
            let m = 10f64.powi(5 - x.abs().log10().floor() as i32);
            *x = (*x * m).round() / m;
        }
    };
    r(&mut c.base_us);
    r(&mut c.per_prefill_token_us);
    r(&mut c.per_decode_seq_us);
    r(&mut c.per_context_token_ns);
    r(&mut c.per_prefill_attention_ns);
}

#[cfg(test)]
mod tests;

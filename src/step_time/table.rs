//! Step-time model fitted to a table of measured engine steps.
//!
//! # File format (CSV)
//!
//! One row per measured engine step; lines starting with `#` are comments (put the provenance
//! there); the first non-comment line is the header; columns may come in any order and extra
//! columns are ignored.
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `prefill_tokens` | yes | prompt tokens computed in the step (Σ chunk sizes) |
//! | `decode_seqs` | yes | decoding sequences (1 token each) |
//! | `context_tokens` | yes | Σ tokens already in KV that the step attends to (prefill + decode) |
//! | `duration_us` | yes | measured step time, microseconds, > 0 |
//! | `prefill_seqs` | no | sequences in prefill; default 1 if `prefill_tokens` > 0, else 0 |
//! | `prefill_context` | no | part of `context_tokens` attended by prefill chunks; default 0 |
//!
//! Empty, non-numeric, NaN, infinite or negative cells are errors naming the file, line and
//! column, and so is a missing required column.
//!
//! # Prediction
//!
//! A non-negative least-squares fit (exact NNLS by enumerating the 2⁵ active sets, rows weighted
//! by 1 / duration so the fit minimises relative error) of
//!
//! duration = a + b · prefill_tokens + c · decode_seqs + d · decode_context + e · prefill_work,
//!
//! prefill_work = prefill_tokens · (prefill_context + prefill_tokens / 2) / prefill_seqs
//!
//! (the attention term of the roofline: it reduces to the suggested `prefill_tokens²` feature for
//! fresh prompts and adds the chunk × prefix interaction of chunked prefill, which a separate
//! `context_tokens` feature cannot express). Non-negative coefficients keep the model monotone and
//! make it extrapolate like physics, so it generalises to shapes outside the table.
//!
//! The fit is then corrected towards the measured points by inverse-distance weighting of the
//! relative residuals in feature space (features scaled by their maxima), with a prior weight that
//! pulls the correction to zero farther than about 0.1 of the table's range from any point:
//! the model reproduces its own rows exactly and is the pure fit away from them. A table of a
//! few dozen rows costs well under a microsecond per prediction.
//!
//! The table is used for whatever model/GPU/TP it was measured on; `build` does not check that.

use super::{BatchShape, StepTimeError, StepTimeModel};
use crate::units::SimDuration;
use std::path::{Path, PathBuf};

/// Tables shipped with the binary, addressable as `file: catalog:steptime/<name>.csv`.
pub const BUILTIN_TABLES: &[(&str, &str)] =
    &[("catalog:steptime/tiny-llama-cpu.csv", include_str!("../../catalog/steptime/tiny-llama-cpu.csv"))];

const NF: usize = 5;
/// Prior weight radius (in scaled feature units) of the residual correction.
const CORRECTION_RADIUS: f64 = 0.1;

/// One measured step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TableRow {
    pub prefill_tokens: u64,
    pub prefill_seqs: u64,
    pub decode_seqs: u64,
    pub prefill_context: u64,
    pub decode_context: u64,
    pub duration_us: f64,
}

fn features(
    prefill_tokens: f64,
    prefill_seqs: f64,
    decode_seqs: f64,
    prefill_context: f64,
    decode_context: f64,
) -> [f64; NF] {
    let ps = prefill_seqs.max(1.0);
    let work = prefill_tokens * (prefill_context + 0.5 * prefill_tokens) / ps;
    [1.0, prefill_tokens, decode_seqs, decode_context, work]
}

impl TableRow {
    fn features(&self) -> [f64; NF] {
        features(
            self.prefill_tokens as f64,
            self.prefill_seqs as f64,
            self.decode_seqs as f64,
            self.prefill_context as f64,
            self.decode_context as f64,
        )
    }
}

/// The fitted table model.
#[derive(Clone, Debug)]
pub struct Table {
    name: String,
    /// Coefficients in nanoseconds per feature unit.
    coef: [f64; NF],
    /// 1 / scale of features 1..NF for the distance metric.
    inv_scale: [f64; NF],
    /// Scaled features (1..NF) and relative residual of each row.
    points: Vec<([f64; NF], f64)>,
}

impl Table {
    /// Loads and fits a CSV file (or a `catalog:` builtin).
    pub fn load(path: &Path) -> Result<Self, StepTimeError> {
        if let Some((_, text)) = BUILTIN_TABLES.iter().find(|(n, _)| Path::new(n) == path) {
            return Self::from_csv_str(text, path);
        }
        let text =
            std::fs::read_to_string(path).map_err(|source| StepTimeError::Io { file: path.to_path_buf(), source })?;
        Self::from_csv_str(&text, path)
    }

    /// Parses and fits CSV text; `file` is used in messages only.
    pub fn from_csv_str(text: &str, file: &Path) -> Result<Self, StepTimeError> {
        let rows = parse_csv(text, file)?;
        Self::fit(&rows, file)
    }

    /// Fits the model to rows.
    pub fn fit(rows: &[TableRow], file: &Path) -> Result<Self, StepTimeError> {
        let err = |msg: String| StepTimeError::Table { file: file.to_path_buf(), line: 0, msg };
        if rows.is_empty() {
            return Err(err("the table has no data rows".into()));
        }
        let x: Vec<[f64; NF]> = rows.iter().map(TableRow::features).collect();
        let y: Vec<f64> = rows.iter().map(|r| r.duration_us * 1e3).collect();
        let coef = nnls_relative(&x, &y).ok_or_else(|| err("could not fit the table (degenerate rows)".into()))?;
        let mut inv_scale = [0.0; NF];
        for j in 1..NF {
            let m = x.iter().map(|f| f[j].abs()).fold(0.0, f64::max);
            inv_scale[j] = if m > 0.0 { 1.0 / m } else { 0.0 };
        }
        let points = x
            .iter()
            .zip(&y)
            .map(|(f, &yi)| {
                let fit = dot(&coef, f);
                let r = if fit > 0.0 { yi / fit - 1.0 } else { 0.0 };
                let mut z = [0.0; NF];
                for j in 1..NF {
                    z[j] = f[j] * inv_scale[j];
                }
                (z, r)
            })
            .collect();
        Ok(Table { name: format!("table({})", file.display()), coef, inv_scale, points })
    }

    /// Coefficients of the fit in microseconds: [base, per prefill token, per decode seq,
    /// per decode context token, per prefill-work unit].
    pub fn coefficients_us(&self) -> [f64; NF] {
        self.coef.map(|c| c / 1e3)
    }

    /// Predicted step time in nanoseconds.
    pub fn step_ns(&self, b: &BatchShape) -> f64 {
        let f = features(
            b.prefill_tokens as f64,
            b.prefill_seqs as f64,
            b.decode_seqs as f64,
            b.prefill_context as f64,
            b.decode_context as f64,
        );
        let fit = dot(&self.coef, &f).max(0.0);
        let w0 = 1.0 / (CORRECTION_RADIUS * CORRECTION_RADIUS);
        let (mut wsum, mut wr, mut exact_n, mut exact_r) = (w0, 0.0, 0u32, 0.0);
        for (z, r) in &self.points {
            let mut d2 = 0.0;
            for j in 1..NF {
                let dz = f[j] * self.inv_scale[j] - z[j];
                d2 += dz * dz;
            }
            if d2 < 1e-18 {
                exact_n += 1;
                exact_r += r;
            } else {
                let w = 1.0 / d2;
                wsum += w;
                wr += w * r;
            }
        }
        let corr = if exact_n > 0 { exact_r / exact_n as f64 } else { wr / wsum };
        fit * (1.0 + corr).max(0.0)
    }
}

impl StepTimeModel for Table {
    fn step_time(&self, b: &BatchShape) -> SimDuration {
        SimDuration::from_nanos_f64(self.step_ns(b))
    }
    fn name(&self) -> &str {
        &self.name
    }
}

fn dot(a: &[f64; NF], b: &[f64; NF]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Non-negative least squares minimising Σ ((x·c − y) / y)², exact for NF = 5 by enumerating the
/// active sets: the NNLS optimum is the unconstrained optimum on its support.
fn nnls_relative(x: &[[f64; NF]], y: &[f64]) -> Option<[f64; NF]> {
    // Weighted, column-scaled design.
    let w: Vec<[f64; NF]> = x.iter().zip(y).map(|(f, &yi)| f.map(|v| v / yi)).collect();
    let mut scale = [1.0; NF];
    for j in 0..NF {
        let m = w.iter().map(|r| r[j].abs()).fold(0.0, f64::max);
        scale[j] = if m > 0.0 { m } else { 1.0 };
    }
    let a: Vec<[f64; NF]> = w.iter().map(|r| std::array::from_fn(|j| r[j] / scale[j])).collect();
    let mut best: Option<(f64, [f64; NF])> = None;
    for mask in 1u32..(1 << NF) {
        let cols: Vec<usize> = (0..NF).filter(|j| mask & (1 << j) != 0).collect();
        if cols.len() > a.len() {
            continue;
        }
        let n = cols.len();
        // Normal equations on the subset (target is 1 for every weighted row).
        let mut m = vec![vec![0.0; n + 1]; n];
        for r in &a {
            for (p, &cp) in cols.iter().enumerate() {
                for (q, &cq) in cols.iter().enumerate() {
                    m[p][q] += r[cp] * r[cq];
                }
                m[p][n] += r[cp];
            }
        }
        let Some(sol) = solve(m) else { continue };
        if sol.iter().any(|&c| c < 0.0 || !c.is_finite()) {
            continue;
        }
        let mut c = [0.0; NF];
        for (p, &cp) in cols.iter().enumerate() {
            c[cp] = sol[p];
        }
        let sse: f64 = a.iter().map(|r| (dot(r, &c) - 1.0).powi(2)).sum();
        if best.as_ref().is_none_or(|(b, _)| sse < *b - 1e-12 * b.abs()) {
            best = Some((sse, c));
        }
    }
    best.map(|(_, c)| std::array::from_fn(|j| c[j] / scale[j]))
}

/// Gaussian elimination with partial pivoting on an augmented n × (n+1) matrix.
fn solve(mut m: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = m.len();
    let norm = m.iter().flat_map(|r| r[..n].iter()).fold(0.0f64, |a, v| a.max(v.abs()));
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[piv][col].abs() <= 1e-12 * norm.max(f64::MIN_POSITIVE) {
            return None;
        }
        m.swap(col, piv);
        for row in col + 1..n {
            let f = m[row][col] / m[col][col];
            let (upper, lower) = m.split_at_mut(row);
            for (dst, src) in lower[0][col..].iter_mut().zip(&upper[col][col..]) {
                *dst -= f * src;
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| m[i][k] * x[k]).sum();
        x[i] = (m[i][n] - s) / m[i][i];
    }
    Some(x)
}

fn parse_csv(text: &str, file: &Path) -> Result<Vec<TableRow>, StepTimeError> {
    let file_buf: PathBuf = file.to_path_buf();
    let table_err = |line: u64, msg: String| StepTimeError::Table { file: file_buf.clone(), line, msg };
    let mut rdr =
        csv::ReaderBuilder::new().comment(Some(b'#')).trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| table_err(e.position().map_or(0, |p| p.line()), format!("cannot read the header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let mut idx = [0usize; 4];
    for (k, name) in ["prefill_tokens", "decode_seqs", "context_tokens", "duration_us"].iter().enumerate() {
        idx[k] = col(name).ok_or_else(|| {
            table_err(
                1,
                format!(
                    "missing required column `{name}` (header is `{}`; expected prefill_tokens,decode_seqs,context_tokens,duration_us)",
                    headers.iter().collect::<Vec<_>>().join(",")
                ),
            )
        })?;
    }
    let (i_ps, i_pc) = (col("prefill_seqs"), col("prefill_context"));
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| table_err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let num = |i: usize, name: &str| -> Result<f64, StepTimeError> {
            let cell = rec.get(i).unwrap_or("");
            let v: f64 =
                cell.parse().map_err(|_| table_err(line, format!("column `{name}`: `{cell}` is not a number")))?;
            if !v.is_finite() || v < 0.0 {
                return Err(table_err(line, format!("column `{name}`: {v} must be finite and ≥ 0")));
            }
            Ok(v)
        };
        let int = |i: usize, name: &str| -> Result<u64, StepTimeError> {
            let v = num(i, name)?;
            if v.fract() != 0.0 {
                return Err(table_err(line, format!("column `{name}`: {v} must be a whole number")));
            }
            Ok(v as u64)
        };
        let prefill_tokens = int(idx[0], "prefill_tokens")?;
        let decode_seqs = int(idx[1], "decode_seqs")?;
        let context = int(idx[2], "context_tokens")?;
        let duration_us = num(idx[3], "duration_us")?;
        if duration_us <= 0.0 {
            return Err(table_err(line, "column `duration_us` must be > 0".into()));
        }
        let prefill_seqs = match i_ps {
            Some(i) => int(i, "prefill_seqs")?,
            None => u64::from(prefill_tokens > 0),
        };
        let prefill_context = match i_pc {
            Some(i) => int(i, "prefill_context")?,
            None => 0,
        };
        if prefill_tokens == 0 && decode_seqs == 0 {
            return Err(table_err(line, "a step needs prefill_tokens > 0 or decode_seqs > 0".into()));
        }
        if prefill_context > context {
            return Err(table_err(line, format!("prefill_context {prefill_context} exceeds context_tokens {context}")));
        }
        if prefill_tokens > 0 && prefill_seqs == 0 {
            return Err(table_err(line, "prefill_tokens > 0 needs prefill_seqs ≥ 1".into()));
        }
        rows.push(TableRow {
            prefill_tokens,
            prefill_seqs,
            decode_seqs,
            prefill_context,
            decode_context: context - prefill_context,
            duration_us,
        });
    }
    Ok(rows)
}

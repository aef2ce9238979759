//! `servesim calibrate`: fit a calibration file from step traces, request-level traces
//! (by simulation) or offline profiles.

use super::{CalibratedModel, CalibrationFile, FitQuality, ScaledModel, fit_steps, round3};
use crate::validate::RunView;
use crate::validate::reconstruct::{self, Options};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Traces to fit on: recordings with steps.csv (direct fit), or request-level traces
    /// (fit by simulating them; needs their scenario or --scenario).
    #[arg(long, num_args = 1.., value_name = "TRACE")]
    pub from: Vec<PathBuf>,
    /// Held-out traces: scored with the fitted model, never fitted on.
    #[arg(long, num_args = 1.., value_name = "TRACE")]
    pub test: Vec<PathBuf>,
    /// LLMServingSim profile folder (`<HW>_<model>/` with meta.yaml and tpN/).
    #[arg(long, value_name = "DIR")]
    pub profile: Option<PathBuf>,
    /// AIConfigurator data folder (H100 SXM vLLM kernel tables); needs --model.
    #[arg(long, value_name = "DIR")]
    pub aiconfigurator: Option<PathBuf>,
    /// Catalog model id (profile layers; AIConfigurator shapes).
    #[arg(long)]
    pub model: Option<String>,
    /// Catalog GPU id for --aiconfigurator (attention roofline).
    #[arg(long, default_value = "h100_sxm")]
    pub gpu: String,
    /// Tensor-parallel degree of the profile.
    #[arg(long, default_value_t = 1)]
    pub tp: u32,
    /// Largest batch (tokens) of the profile grid.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: u32,
    /// Largest number of sequences of the profile grid.
    #[arg(long, default_value_t = 256)]
    pub max_seqs: u32,
    /// Base scenario for fitting request-level traces that carry none.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Name written into the calibration (default: the output file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Output calibration file.
    #[arg(long)]
    pub out: PathBuf,
}

fn name_of(a: &CalibrateArgs) -> String {
    a.name.clone().unwrap_or_else(|| {
        a.out
            .file_stem()
            .map(|s| s.to_string_lossy().trim_end_matches(".yaml").to_string())
            .unwrap_or("calibration".into())
    })
}

pub fn cmd_calibrate(a: CalibrateArgs) -> Result<ExitCode> {
    let name = name_of(&a);
    let cal = if let Some(dir) = &a.profile {
        anyhow::ensure!(a.from.is_empty(), "give either --profile or --from, not both");
        let model_id = match &a.model {
            Some(m) => m.clone(),
            None => {
                let d = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                crate::trace::formats::catalog_model(d.split_once('_').map_or(&d[..], |x| x.1))
                    .with_context(|| {
                        format!("{}: cannot tell the model from the folder name; give --model", dir.display())
                    })?
                    .to_string()
            }
        };
        let model =
            crate::catalog::model(&model_id).with_context(|| format!("model `{model_id}` is not in the catalog"))?;
        super::profiles::from_llmservingsim(dir, a.tp, model.layers, a.max_tokens, a.max_seqs, &name)
            .map_err(|e| anyhow::anyhow!(e))?
    } else if let Some(dir) = &a.aiconfigurator {
        let id = a.model.as_deref().context("--aiconfigurator needs --model")?;
        let model = crate::catalog::model(id).with_context(|| format!("model `{id}` is not in the catalog"))?;
        let gpu = crate::catalog::gpu(&a.gpu).with_context(|| format!("GPU `{}` is not in the catalog", a.gpu))?;
        super::profiles::from_aiconfigurator(dir, model, gpu, a.tp, a.max_tokens, a.max_seqs, &name)
            .map_err(|e| anyhow::anyhow!(e))?
    } else {
        anyhow::ensure!(!a.from.is_empty(), "give --from TRACE... (or --profile DIR / --aiconfigurator DIR)");
        let load = |ps: &[PathBuf]| -> Result<Vec<crate::trace::Trace>> {
            ps.iter().map(|p| crate::trace::load(p, None).map_err(anyhow::Error::from)).collect()
        };
        let fit = load(&a.from)?;
        let test = load(&a.test)?;
        if fit.iter().all(|t| !t.steps.is_empty()) {
            let rows =
                |ts: &[crate::trace::Trace]| ts.iter().map(|t| (t.name.clone(), t.steps.clone())).collect::<Vec<_>>();
            let mut cal = fit_steps(
                &name,
                &rows(&fit),
                &rows(&test),
                format!(
                    "least-squares fit (non-negative, relative error) of per-step durations from steps.csv of {} recorded run(s)",
                    fit.len()
                ),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            if let CalibratedModel::Parametric(c) = &mut cal.step_time {
                super::tidy(c);
            }
            describe_manifest(&mut cal, &fit);
            cal
        } else {
            fit_by_simulation(&name, &fit, &test, &a)?
        }
    };
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    crate::metrics::write_atomic(&a.out, cal.to_yaml().as_bytes())?;
    let q = cal.fit.clone().unwrap_or_default();
    println!(
        "calibration `{}`: {} fit rows, MAPE {:.2} % (median {:.2} %){}; wrote {}",
        cal.name,
        q.rows,
        q.mape_pct,
        q.median_ape_pct,
        q.test_mape_pct
            .map_or(String::new(), |t| format!(", held-out MAPE {t:.2} % on {} rows", q.test_rows.unwrap_or(0))),
        a.out.display()
    );
    Ok(ExitCode::from(crate::app::EXIT_OK))
}

fn describe_manifest(cal: &mut CalibrationFile, fit: &[crate::trace::Trace]) {
    if let Some(m) = fit.iter().find_map(|t| t.manifest.as_ref()) {
        let s = |k: &str| m.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        cal.model = s("model").or(cal.model.take());
        cal.hardware = s("machine").or(cal.hardware.take());
        if let Some(v) = s("vllm_version") {
            cal.provenance.push_str(&format!("; vLLM {v}"));
        }
    }
}

/// Objective of a scale factor: mean over cases of |ln(sim/real)| of mean TPOT and mean E2E.
fn objective(cases: &[reconstruct::Case], base: &crate::step_time::StepTimeConfig, factor: f64) -> Result<f64> {
    let mut sum = 0.0;
    let mut n = 0;
    for c in cases {
        let mut sc = c.scenario.clone();
        sc.engine.step_time = scaled(base, factor);
        let out = crate::sim::simulate(&sc)?;
        let sim = RunView::from_sim(&out);
        for k in ["tpot_mean", "e2e_mean"] {
            if let (Some(r), Some(s)) = (c.real.stats.get(k), sim.stats.get(k))
                && *r > 0.0
                && *s > 0.0
            {
                sum += (s / r).ln().abs();
                n += 1;
            }
        }
    }
    if n == 0 {
        bail!("no comparable statistics (mean TPOT / E2E) in the traces");
    }
    Ok(sum / n as f64)
}

fn scaled(base: &crate::step_time::StepTimeConfig, factor: f64) -> crate::step_time::StepTimeConfig {
    let dir = std::env::temp_dir().join(format!("servesim-cal-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let f = dir.join(format!("scaled-{:016x}.yaml", factor.to_bits()));
    let cal = CalibrationFile {
        name: "scaled".into(),
        provenance: "temporary".into(),
        model: None,
        hardware: None,
        fitted_on: vec![],
        held_out: vec![],
        step_time: CalibratedModel::Scaled(ScaledModel { factor, base: base.clone() }),
        fit: None,
    };
    let _ = std::fs::write(&f, cal.to_yaml());
    crate::step_time::StepTimeConfig::Calibration(super::CalibrationRef {
        name: None,
        file: Some(f.to_string_lossy().into_owned()),
    })
}

/// Golden-section search of ln(factor) in [ln 0.1, ln 10] on the fit traces.
fn fit_by_simulation(
    name: &str,
    fit: &[crate::trace::Trace],
    test: &[crate::trace::Trace],
    a: &CalibrateArgs,
) -> Result<CalibrationFile> {
    let opts = Options { scenario: a.scenario.clone(), calibration: None, sets: vec![] };
    let cases = |ts: &[crate::trace::Trace]| -> Result<Vec<reconstruct::Case>> {
        let mut v = Vec::new();
        for t in ts {
            v.extend(
                reconstruct::cases(t, &opts)
                    .map_err(|e| anyhow::anyhow!(e))?
                    .into_iter()
                    .filter(|c| c.window.is_none()),
            );
        }
        Ok(v)
    };
    let fit_cases = cases(fit)?;
    let test_cases = cases(test)?;
    let base = fit_cases.first().context("no fit cases")?.scenario.engine.step_time.clone();
    let (mut lo, mut hi) = (0.1f64.ln(), 10f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - g * (hi - lo);
    let mut x2 = lo + g * (hi - lo);
    let mut f1 = objective(&fit_cases, &base, x1.exp())?;
    let mut f2 = objective(&fit_cases, &base, x2.exp())?;
    for _ in 0..24 {
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = objective(&fit_cases, &base, x1.exp())?;
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = objective(&fit_cases, &base, x2.exp())?;
        }
    }
    let factor = ((x1 + x2) / 2.0).exp();
    let factor = (factor * 1e4).round() / 1e4;
    let fit_err = objective(&fit_cases, &base, factor)?;
    let test_err = if test_cases.is_empty() { None } else { Some(objective(&test_cases, &base, factor)?) };
    Ok(CalibrationFile {
        name: name.to_string(),
        provenance: format!(
            "scale factor on the scenario's step-time model fitted by simulating {} request-level trace(s): \
             golden-section search minimising the mean |ln(sim/real)| of mean TPOT and mean E2E",
            fit.len()
        ),
        model: None,
        hardware: None,
        fitted_on: fit.iter().map(|t| t.name.clone()).collect(),
        held_out: test.iter().map(|t| t.name.clone()).collect(),
        step_time: CalibratedModel::Scaled(ScaledModel { factor, base }),
        fit: Some(FitQuality {
            rows: fit_cases.len() as u64,
            mape_pct: round3((fit_err.exp() - 1.0) * 100.0),
            median_ape_pct: round3((fit_err.exp() - 1.0) * 100.0),
            test_rows: test_err.map(|_| test_cases.len() as u64),
            test_mape_pct: test_err.map(|e| round3((e.exp() - 1.0) * 100.0)),
        }),
    })
}

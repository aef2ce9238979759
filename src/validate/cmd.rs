//! `servesim validate`: load traces, reconstruct, simulate, compare, report.

use super::reconstruct::{self, Case, Options};
use super::{Comparison, RunView, Tolerances, aggregate, compare, render_aggregate, render_text};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Trace folders or files (servesim recordings, vllm bench JSON, LLMServingSim
    /// requests.jsonl, inference-perf summary_by_stage.csv).
    #[arg(required = true)]
    pub traces: Vec<PathBuf>,
    /// Trace format (default: detected per trace).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Base scenario for traces that carry none (model, GPU, engine settings).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Calibration file (or shipped name) replacing the step-time model.
    #[arg(long)]
    pub calibration: Option<String>,
    /// Override fields of the reconstructed scenario: `--set engine.max_num_seqs=64`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Tolerance per statistic (`e2e_mean=5`) or metric (`ttft=10`: mean, p50, p90, p99);
    /// hit_rate and kv_usage_mean in percentage points. Exit 1 when one is exceeded.
    #[arg(long = "tolerance", value_name = "STAT=PCT")]
    pub tolerance: Vec<String>,
    /// Write the simulated outputs and comparison.json per trace under DIR/<trace name>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write all comparisons and the aggregate as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report (real vs simulated CDFs, time series, error table).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print only the aggregate table.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    Servesim,
    VllmBench,
    Llmservingsim,
    InferencePerf,
    Mooncake,
    Azure,
}

impl From<FormatArg> for crate::trace::TraceFormat {
    fn from(f: FormatArg) -> Self {
        use crate::trace::TraceFormat as T;
        match f {
            FormatArg::Servesim => T::Servesim,
            FormatArg::VllmBench => T::VllmBench,
            FormatArg::Llmservingsim => T::Llmservingsim,
            FormatArg::InferencePerf => T::InferencePerf,
            FormatArg::Mooncake => T::Mooncake,
            FormatArg::Azure => T::Azure,
        }
    }
}

/// A validated case with what the report needs.
pub struct Validated {
    pub case_label: String,
    pub comparison: Comparison,
    pub real: RunView,
    pub sim: RunView,
}

/// Reconstructs, simulates and compares every case of one trace.
pub fn validate_trace(
    t: &crate::trace::Trace,
    opts: &Options,
    tol: &Tolerances,
) -> Result<(Vec<Validated>, Vec<crate::sim::SimOutput>)> {
    let cases: Vec<Case> = reconstruct::cases(t, opts).map_err(|e| anyhow::anyhow!(e))?;
    let mut sims: Vec<crate::sim::SimOutput> = Vec::new();
    let mut out = Vec::new();
    for c in cases {
        while sims.len() <= c.sim_index {
            let o = crate::sim::simulate(&c.scenario).with_context(|| format!("simulating {}", c.label))?;
            sims.push(o);
        }
        let so = &sims[c.sim_index];
        let sim = match c.window {
            Some((a, b)) => RunView::from_sim_window(so, a, b),
            None => RunView::from_sim(so),
        };
        let mut notes = c.notes.clone();
        notes.push(format!("step-time model: {}", step_label(&c.scenario)));
        let comparison = compare(&c.label, &c.real, &sim, tol, notes);
        out.push(Validated { case_label: c.label, comparison, real: c.real, sim });
    }
    Ok((out, sims))
}

fn step_label(sc: &crate::scenario::Scenario) -> String {
    match &sc.engine.step_time {
        crate::step_time::StepTimeConfig::Calibration(r) => {
            format!("calibration {}", r.name.clone().or(r.file.clone()).unwrap_or_default())
        }
        crate::step_time::StepTimeConfig::Roofline(_) => format!("roofline ({} on {})", sc.model.id, sc.gpu.id),
        crate::step_time::StepTimeConfig::Table(t) => format!("table {}", t.file),
        crate::step_time::StepTimeConfig::Linear(_) => "linear".into(),
    }
}

pub fn cmd_validate(a: ValidateArgs) -> Result<ExitCode> {
    let tol = Tolerances::parse(&a.tolerance).map_err(|e| anyhow::anyhow!(e))?;
    let opts = Options { scenario: a.scenario.clone(), calibration: a.calibration.clone(), sets: a.set.clone() };
    let mut all: Vec<Validated> = Vec::new();
    for path in &a.traces {
        let t = crate::trace::load(path, a.format.map(Into::into))?;
        let (vs, sims) = validate_trace(&t, &opts, &tol).with_context(|| format!("validating {}", path.display()))?;
        if let Some(dir) = &a.out {
            let d = dir.join(&t.name);
            if let Some(so) = sims.first() {
                let ts = crate::metrics::render_timeseries_csv(&so.recorder.ticks);
                crate::metrics::write_outputs(&d, &so.summary, Some(&so.recorder.records), Some(&ts))?;
            }
            let cmp: Vec<&Comparison> = vs.iter().map(|v| &v.comparison).collect();
            crate::metrics::write_atomic(&d.join("comparison.json"), serde_json::to_string_pretty(&cmp)?.as_bytes())?;
        }
        if !a.quiet {
            for v in &vs {
                print!("{}", render_text(&v.comparison));
                println!();
            }
        }
        all.extend(vs);
    }
    let cmps: Vec<Comparison> = all.iter().map(|v| v.comparison.clone()).collect();
    let agg = aggregate(&cmps);
    let ranks = super::ranking(&cmps);
    if cmps.len() > 1 || a.quiet {
        println!("== aggregate over {} comparisons (absolute error: median / worst) ==", cmps.len());
        print!("{}", render_aggregate(&agg));
    }
    if cmps.len() > 2 {
        println!(
            "== ranking: pairs of runs ordered the same in simulation as in reality (ties: real values within {:.0} %) ==",
            super::RANK_TIE_GAP * 100.0
        );
        print!("{}", super::render_ranking(&ranks));
    }
    if let Some(p) = &a.json {
        let v = serde_json::json!({"comparisons": cmps, "aggregate": agg, "ranking": ranks});
        crate::metrics::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    if let Some(p) = &a.html {
        let html = super::html::render(&all, &agg).context("rendering the validation report")?;
        if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        crate::metrics::write_atomic(p, html.as_bytes())?;
    }
    let failed: Vec<&str> = cmps.iter().filter(|c| !c.passed).map(|c| c.label.as_str()).collect();
    if !failed.is_empty() {
        println!("outside tolerance: {}", failed.join(", "));
        return Ok(ExitCode::from(crate::app::EXIT_CHECK_FAILED));
    }
    Ok(ExitCode::from(crate::app::EXIT_OK))
}

//! `servesim check`: a regression gate for routing policies (and anything else that moves the
//! simulated metrics).
//!
//! A **baseline file** (one per scenario, YAML or JSON, committed in `validation/baselines/`)
//! names a scenario, the seed and `--set` overrides it was recorded with, and for each router
//! the recorded value of a few summary metrics with a per-metric tolerance:
//!
//! ```yaml
//! scenario: scenarios/minimal.yaml
//! seed: 7
//! servesim_version: 0.1.0
//! overrides: []
//! routers:
//!   round_robin:
//!     metrics:
//!       ttft_s.mean: {value: 0.0123, rel_tol: 0.05, abs_tol: 0.002}
//!       prefix_hit_rate: {value: 0.0, rel_tol: 0.05, abs_tol: 0.01}
//! ```
//!
//! Metrics are dotted paths into `summary.json` (`ttft_s.p90`, `throughput.output_tokens_per_s`,
//! `per_replica.0.requests`) plus the derived `imbalance` (max / mean requests per replica).
//! A value moved when `|actual − baseline| > max(abs_tol, rel_tol × |baseline|)`. Direction
//! decides what a move means: latencies, costs, preemptions, rejections and imbalance are
//! lower-is-better; hit rate, throughput and completions higher-is-better; anything else
//! (`direction: either`) is a regression whenever it moves. Exit codes: 0 nothing regressed
//! (improvements are printed), 1 a regression, 2 an error (missing file, unknown metric,
//! scenario that does not load).
//!
//! Everything here is deterministic: simulations are seeded and the report is ordered by
//! baseline file, router and metric.

use crate::metrics::Summary;
use crate::router::RouterConfig;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Default folder of baseline files.
pub const DEFAULT_BASELINE_DIR: &str = "validation/baselines";
/// Relative tolerance recorded by `--update` for new metrics: simulations are deterministic,
/// so this only leaves room for deliberate model changes that should not trip the gate.
pub const DEFAULT_REL_TOL: f64 = 0.05;
/// Metrics `--update` records for a new router entry.
pub const DEFAULT_METRICS: &[&str] = &[
    "ttft_s.mean",
    "ttft_s.p90",
    "ttft_s.p99",
    "tpot_s.mean",
    "tpot_s.p90",
    "e2e_s.p90",
    "queue_s.mean",
    "throughput.output_tokens_per_s",
    "prefix_hit_rate",
    "preemptions",
    "requests.completed",
    "imbalance",
];

/// One baseline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFile {
    /// Scenario path, relative to the directory `check` runs in (the repository root).
    pub scenario: String,
    /// Seed the values were recorded with (forced on re-runs).
    pub seed: u64,
    /// servesim version that recorded the values (informational).
    pub servesim_version: String,
    /// `--set` overrides applied on top of the scenario, e.g. `duration=10m`.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Router name as `compare --routers` takes it (`round_robin`, `epp`, `epp:load`, ...).
    pub routers: BTreeMap<String, RouterBaseline>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterBaseline {
    pub metrics: BTreeMap<String, MetricBaseline>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBaseline {
    /// Recorded value; `null` when the metric was undefined (no samples).
    pub value: Option<f64>,
    pub rel_tol: f64,
    pub abs_tol: f64,
    /// Overrides the direction derived from the metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

/// Which way is worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is worse (latency, cost).
    Lower,
    /// Lower is worse (hit rate, throughput).
    Higher,
    /// Any move beyond tolerance is a regression.
    Either,
}

impl Direction {
    /// Direction derived from a metric path.
    pub fn for_metric(path: &str) -> Direction {
        let head = path.split('.').next().unwrap_or(path);
        let last = path.rsplit('.').next().unwrap_or(path);
        match head {
            "ttft_s" | "tpot_s" | "itl_s" | "e2e_s" | "queue_s" => {
                if last == "count" {
                    Direction::Higher
                } else {
                    Direction::Lower
                }
            }
            "preemptions" | "cost_usd" | "cost_per_million_output_tokens" | "gpu_hours" | "imbalance" => {
                Direction::Lower
            }
            "prefix_hit_rate" | "throughput" => Direction::Higher,
            "requests" => match last {
                "completed" => Direction::Higher,
                "rejected" | "failed" | "in_flight" => Direction::Lower,
                _ => Direction::Either,
            },
            "per_replica" => match last {
                "prefix_hit_rate" | "completed" | "output_tokens" => Direction::Higher,
                "preemptions" | "max_waiting" => Direction::Lower,
                _ => Direction::Either,
            },
            _ => Direction::Either,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Direction::Lower => "lower",
            Direction::Higher => "higher",
            Direction::Either => "either",
        }
    }
}

/// Default absolute tolerance for a new metric (units of the metric).
pub fn default_abs_tol(path: &str) -> f64 {
    let head = path.split('.').next().unwrap_or(path);
    let last = path.rsplit('.').next().unwrap_or(path);
    match head {
        // 2 ms: below anything a user would notice, above float noise.
        "ttft_s" | "tpot_s" | "itl_s" | "e2e_s" | "queue_s" if last != "count" => 0.002,
        "prefix_hit_rate" => 0.01,
        "imbalance" => 0.02,
        "throughput" => 0.01,
        "cost_usd" | "cost_per_million_output_tokens" | "gpu_hours" => 0.01,
        // Counts (preemptions, requests, ...): one either way.
        _ => 1.0,
    }
}

/// Outcome of one metric comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Improved,
    Regressed,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Improved => "improved",
            Status::Regressed => "REGRESSED",
            Status::Error => "ERROR",
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Baseline file's `scenario`.
    pub scenario: String,
    pub router: String,
    /// Metric path; empty for an error that concerns the whole router run.
    pub metric: String,
    pub baseline: Option<f64>,
    pub actual: Option<f64>,
    /// actual − baseline (when both are defined).
    pub delta: Option<f64>,
    /// Allowed |delta|: max(abs_tol, rel_tol × |baseline|).
    pub tol: Option<f64>,
    pub status: Status,
    /// Error text or a short explanation.
    pub message: String,
}

/// All rows plus notes (version drift etc.).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// Errors that stop `check` before any comparison.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

impl Report {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.status == Status::Regressed).count()
    }
    pub fn errors(&self) -> usize {
        self.rows.iter().filter(|r| r.status == Status::Error).count()
    }
    pub fn improvements(&self) -> usize {
        self.rows.iter().filter(|r| r.status == Status::Improved).count()
    }
    /// 2 on any error, else 1 on any regression, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.errors() > 0 {
            2
        } else if self.regressions() > 0 {
            1
        } else {
            0
        }
    }
}

/// Compares one value with its baseline.
pub fn compare_metric(metric: &str, b: &MetricBaseline, actual: Option<f64>) -> (Status, Option<f64>, Option<f64>) {
    let dir = b.direction.unwrap_or_else(|| Direction::for_metric(metric));
    match (b.value, actual) {
        (None, None) => (Status::Ok, None, None),
        (Some(v), Some(a)) => {
            let tol = b.abs_tol.max(b.rel_tol * v.abs());
            let delta = a - v;
            let status = if !a.is_finite() {
                Status::Regressed
            } else if delta.abs() <= tol {
                Status::Ok
            } else {
                match dir {
                    Direction::Lower if delta < 0.0 => Status::Improved,
                    Direction::Higher if delta > 0.0 => Status::Improved,
                    _ => Status::Regressed,
                }
            };
            (status, Some(delta), Some(tol))
        }
        // Defined ↔ undefined: the population appeared or vanished; always a regression.
        _ => (Status::Regressed, None, None),
    }
}

/// Extracts a metric from a summary: a dotted path into its JSON form (array elements by
/// index), or a derived metric (`imbalance`). `Err` for an unknown path; `Ok(None)` for a
/// defined path whose value is null.
pub fn extract(summary: &Summary, path: &str) -> Result<Option<f64>, String> {
    if path == "imbalance" {
        return Ok(imbalance(summary));
    }
    let v = serde_json::to_value(summary).map_err(|e| e.to_string())?;
    extract_value(&v, path)
}

fn extract_value(root: &serde_json::Value, path: &str) -> Result<Option<f64>, String> {
    let mut cur = root;
    for part in path.split('.') {
        let next = match cur {
            serde_json::Value::Object(m) => m.get(part),
            serde_json::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        cur = next.ok_or_else(|| {
            let known: Vec<String> = match root {
                serde_json::Value::Object(m) => m.keys().cloned().collect(),
                _ => vec![],
            };
            format!("unknown metric `{path}` (at `{part}`); top-level fields: {}, imbalance", known.join(", "))
        })?;
    }
    match cur {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => Ok(n.as_f64()),
        serde_json::Value::Bool(b) => Ok(Some(if *b { 1.0 } else { 0.0 })),
        _ => Err(format!("metric `{path}` is not a number (an object or list: name a field inside it)")),
    }
}

/// max / mean requests per replica (1 = perfectly even); `None` with no requests.
pub fn imbalance(s: &Summary) -> Option<f64> {
    let per: Vec<f64> = s.per_replica.iter().map(|r| r.requests as f64).collect();
    let mean = per.iter().sum::<f64>() / per.len().max(1) as f64;
    if mean > 0.0 { Some(per.iter().cloned().fold(0.0, f64::max) / mean) } else { None }
}

/// Reads a baseline file (YAML, or JSON by `.json` extension; YAML also reads JSON).
pub fn read_baseline(path: &Path) -> Result<BaselineFile, CheckError> {
    let text = std::fs::read_to_string(path).map_err(|source| CheckError::Io { path: path.into(), source })?;
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())
    };
    let b: BaselineFile = parsed.map_err(|msg| CheckError::Parse { path: path.into(), msg })?;
    for (router, rb) in &b.routers {
        for (m, mb) in &rb.metrics {
            if !(mb.rel_tol >= 0.0 && mb.abs_tol >= 0.0) {
                return Err(CheckError::Parse {
                    path: path.into(),
                    msg: format!("routers.{router}.metrics.{m}: tolerances must be ≥ 0"),
                });
            }
        }
    }
    Ok(b)
}

/// Baseline files in `dir` (`*.yaml`, `*.yml`, `*.json`), sorted by name.
pub fn list_baselines(dir: &Path) -> Result<Vec<PathBuf>, CheckError> {
    let rd = std::fs::read_dir(dir).map_err(|source| CheckError::Io { path: dir.into(), source })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    v.sort();
    Ok(v)
}

/// Renders a baseline file as compact, reviewable YAML (one line per metric).
pub fn render_baseline_yaml(b: &BaselineFile) -> String {
    let mut s = String::new();
    let _ =
        writeln!(s, "# servesim check baseline: regenerate with `servesim check --update`; review diffs like code.");
    let _ = writeln!(s, "# A metric regresses when it moves the bad way by more than max(abs_tol, rel_tol x |value|).");
    let _ = writeln!(s, "scenario: {}", yaml_str(&b.scenario));
    let _ = writeln!(s, "seed: {}", b.seed);
    let _ = writeln!(s, "servesim_version: {}", yaml_str(&b.servesim_version));
    if b.overrides.is_empty() {
        let _ = writeln!(s, "overrides: []");
    } else {
        let _ = writeln!(s, "overrides:");
        for o in &b.overrides {
            let _ = writeln!(s, "- {}", yaml_str(o));
        }
    }
    let _ = writeln!(s, "routers:");
    for (router, rb) in &b.routers {
        let _ = writeln!(s, "  {}:", yaml_str(router));
        let _ = writeln!(s, "    metrics:");
        for (m, mb) in &rb.metrics {
            let v = mb.value.map_or("null".to_string(), fmt_num);
            let dir = mb.direction.map(|d| format!(", direction: {}", d.as_str())).unwrap_or_default();
            let _ = writeln!(
                s,
                "      {}: {{value: {v}, rel_tol: {}, abs_tol: {}{dir}}}",
                m,
                fmt_num(mb.rel_tol),
                fmt_num(mb.abs_tol)
            );
        }
    }
    s
}

fn yaml_str(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c)) && !s.is_empty() {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Shortest decimal with 6 significant digits (reviewable, still far inside tolerances).
fn fmt_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x.is_finite() { "0".into() } else { "null".into() };
    }
    let digits = 6 - 1 - x.abs().log10().floor() as i32;
    let r: f64 = if digits >= 0 {
        format!("{:.*}", digits as usize, x).parse().unwrap_or(x)
    } else {
        let p = 10f64.powi(-digits);
        (x / p).round() * p
    };
    let s = format!("{r}");
    if s.contains('e') { format!("{r:e}") } else { s }
}

/// Options of one `check` invocation (the CLI flags).
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Baseline folder or a single baseline file.
    pub baseline: PathBuf,
    /// Restrict to these scenarios (scenario path as in the baseline, or file stem). With
    /// `update`, scenarios without a baseline get a new file.
    pub scenarios: Vec<PathBuf>,
    /// Extra `--set` overrides applied on top of each baseline's own (to test a change).
    pub extra_overrides: Vec<String>,
    /// Rewrite the baselines with the current values instead of comparing.
    pub update: bool,
    /// Routers recorded for a scenario that has no baseline yet (`update` only).
    pub routers: Vec<String>,
}

/// What `check` did: the report, or (with `update`) the files written.
#[derive(Debug, Default)]
pub struct CheckRun {
    pub report: Report,
    pub written: Vec<PathBuf>,
}

fn matches_filter(filter: &[PathBuf], baseline_path: &Path, b: &BaselineFile) -> bool {
    if filter.is_empty() {
        return true;
    }
    let sc = Path::new(&b.scenario);
    filter.iter().any(|f| {
        f == sc
            || f.file_stem() == sc.file_stem() && f.file_stem().is_some()
            || f.file_stem() == baseline_path.file_stem()
            || f.as_path() == baseline_path
    })
}

/// Runs one (baseline file, router) simulation.
fn simulate(b: &BaselineFile, router: &str, extra: &[String]) -> Result<Summary, String> {
    let mut sets = b.overrides.clone();
    sets.push(format!("seed={}", b.seed));
    sets.extend(extra.iter().cloned());
    let sc = crate::scenario::load(Path::new(&b.scenario), &sets).map_err(|e| format!("{}: {e}", b.scenario))?;
    let cfg = parse_router(router)?;
    let out = crate::sim::simulate_with_router(&sc, &cfg).map_err(|e| e.to_string())?;
    Ok(out.summary)
}

/// `round_robin`, `random`, `least_requests`, `power_of_two`, `kubernetes_service`, `epp`
/// (default profile) or `epp:<profile>`.
pub fn parse_router(name: &str) -> Result<RouterConfig, String> {
    crate::app::parse_router_name(name).map_err(|e| e.to_string())
}

/// Runs the gate (or `--update`). `Err` only for problems that stop everything (no baseline
/// folder, an unreadable or malformed baseline file); problems of one scenario or router are
/// `Error` rows.
pub fn run(opts: &CheckOptions) -> Result<CheckRun, CheckError> {
    let files: Vec<PathBuf> = if opts.baseline.is_dir() {
        list_baselines(&opts.baseline)?
    } else if opts.baseline.is_file() {
        vec![opts.baseline.clone()]
    } else if opts.update {
        std::fs::create_dir_all(&opts.baseline)
            .map_err(|source| CheckError::Io { path: opts.baseline.clone(), source })?;
        vec![]
    } else {
        return Err(CheckError::Invalid(format!(
            "baseline folder `{}` does not exist (record one with `servesim check --update SCENARIO...`)",
            opts.baseline.display()
        )));
    };
    let mut baselines: Vec<(PathBuf, BaselineFile)> = Vec::new();
    for f in files {
        let b = read_baseline(&f)?;
        if matches_filter(&opts.scenarios, &f, &b) {
            baselines.push((f, b));
        }
    }
    // Scenarios named on the command line without a baseline.
    for s in &opts.scenarios {
        let covered = baselines.iter().any(|(p, b)| matches_filter(std::slice::from_ref(s), p, b));
        if covered {
            continue;
        }
        if !opts.update {
            return Err(CheckError::Invalid(format!(
                "no baseline for `{}` in {} (record one with `servesim check --update {}`)",
                s.display(),
                opts.baseline.display(),
                s.display()
            )));
        }
        let sc = crate::scenario::load(s, &opts.extra_overrides).map_err(|e| CheckError::Invalid(format!("{e}")))?;
        let dir = if opts.baseline.is_dir() { opts.baseline.clone() } else { PathBuf::from(DEFAULT_BASELINE_DIR) };
        let stem = s.file_stem().map(|x| x.to_string_lossy().into_owned()).unwrap_or_else(|| sc.name.clone());
        let routers =
            if opts.routers.is_empty() { vec!["round_robin".into(), "epp".into()] } else { opts.routers.clone() };
        let b = BaselineFile {
            scenario: s.to_string_lossy().into_owned(),
            seed: sc.seed,
            servesim_version: env!("CARGO_PKG_VERSION").into(),
            overrides: opts.extra_overrides.clone(),
            routers: routers.into_iter().map(|r| (r, RouterBaseline::default())).collect(),
        };
        baselines.push((dir.join(format!("{stem}.yaml")), b));
    }
    // With --update the extra overrides become part of a new baseline (above), not an
    // additional change on top of it.
    let extra: &[String] = if opts.update { &[] } else { &opts.extra_overrides };

    let jobs: Vec<(usize, String)> =
        baselines.iter().enumerate().flat_map(|(i, (_, b))| b.routers.keys().map(move |r| (i, r.clone()))).collect();
    let results: Vec<Result<Summary, String>> =
        jobs.par_iter().map(|(i, r)| simulate(&baselines[*i].1, r, extra)).collect();

    let mut run = CheckRun::default();
    for (_, b) in &baselines {
        if b.servesim_version != env!("CARGO_PKG_VERSION") && !opts.update {
            run.report.notes.push(format!(
                "{}: recorded with servesim {}, running {}",
                b.scenario,
                b.servesim_version,
                env!("CARGO_PKG_VERSION")
            ));
        }
    }
    let mut updated: Vec<BaselineFile> = baselines.iter().map(|(_, b)| b.clone()).collect();
    for ((i, router), res) in jobs.iter().zip(results) {
        let b = &baselines[*i].1;
        let summary = match res {
            Ok(s) => s,
            Err(msg) => {
                run.report.rows.push(error_row(b, router, "", msg));
                continue;
            }
        };
        let rb = &b.routers[router];
        if opts.update {
            let names: Vec<String> = if rb.metrics.is_empty() {
                DEFAULT_METRICS.iter().map(|s| s.to_string()).collect()
            } else {
                rb.metrics.keys().cloned().collect()
            };
            let entry = updated[*i].routers.get_mut(router).expect("router key");
            for m in names {
                match extract(&summary, &m) {
                    Ok(v) => {
                        let old = rb.metrics.get(&m);
                        entry.metrics.insert(
                            m.clone(),
                            MetricBaseline {
                                value: v.map(|x| fmt_num(x).parse().unwrap_or(x)),
                                rel_tol: old.map_or(DEFAULT_REL_TOL, |o| o.rel_tol),
                                abs_tol: old.map_or_else(|| default_abs_tol(&m), |o| o.abs_tol),
                                direction: old.and_then(|o| o.direction),
                            },
                        );
                    }
                    Err(msg) => run.report.rows.push(error_row(b, router, &m, msg)),
                }
            }
            continue;
        }
        for (m, mb) in &rb.metrics {
            match extract(&summary, m) {
                Ok(actual) => {
                    let (status, delta, tol) = compare_metric(m, mb, actual);
                    run.report.rows.push(Row {
                        scenario: b.scenario.clone(),
                        router: router.clone(),
                        metric: m.clone(),
                        baseline: mb.value,
                        actual,
                        delta,
                        tol,
                        status,
                        message: String::new(),
                    });
                }
                Err(msg) => run.report.rows.push(error_row(b, router, m, msg)),
            }
        }
    }
    if opts.update && run.report.errors() == 0 {
        for ((path, _), mut b) in baselines.iter().zip(updated) {
            b.servesim_version = env!("CARGO_PKG_VERSION").into();
            let text = render_baseline_yaml(&b);
            if path.extension().is_some_and(|e| e == "json") {
                let j = serde_json::to_string_pretty(&b).map_err(|e| CheckError::Invalid(e.to_string()))?;
                write_file(path, &j)?;
            } else {
                write_file(path, &text)?;
            }
            run.written.push(path.clone());
        }
    }
    Ok(run)
}

fn write_file(path: &Path, text: &str) -> Result<(), CheckError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|source| CheckError::Io { path: d.into(), source })?;
    }
    std::fs::write(path, text).map_err(|source| CheckError::Io { path: path.into(), source })
}

fn error_row(b: &BaselineFile, router: &str, metric: &str, message: String) -> Row {
    Row {
        scenario: b.scenario.clone(),
        router: router.into(),
        metric: metric.into(),
        baseline: None,
        actual: None,
        delta: None,
        tol: None,
        status: Status::Error,
        message,
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| {
        if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) { format!("{x:.4e}") } else { format!("{x:.4}") }
    })
}

/// Text table: rows that moved (or all rows with `all`), then a one-line verdict.
pub fn render_table(report: &Report, all: bool) -> String {
    let mut t = String::new();
    for n in &report.notes {
        let _ = writeln!(t, "note: {n}");
    }
    let shown: Vec<&Row> = report.rows.iter().filter(|r| all || r.status != Status::Ok).collect();
    if !shown.is_empty() {
        let _ = writeln!(
            t,
            "{:<32} {:<18} {:<32} {:>12} {:>12} {:>12} {:>11} {:<9}",
            "scenario", "router", "metric", "baseline", "actual", "delta", "tol", "status"
        );
        for r in shown {
            let _ = writeln!(
                t,
                "{:<32} {:<18} {:<32} {:>12} {:>12} {:>12} {:>11} {:<9}{}",
                r.scenario,
                r.router,
                r.metric,
                num(r.baseline),
                num(r.actual),
                r.delta.map_or("-".into(), |d| format!("{:+.4}", d)),
                r.tol.map_or("-".into(), |x| format!("±{}", num(Some(x)))),
                r.status.as_str(),
                if r.message.is_empty() { String::new() } else { format!(" {}", r.message) }
            );
        }
    }
    let _ = writeln!(
        t,
        "check: {} metrics, {} regressed, {} improved, {} errors => {}",
        report.rows.len(),
        report.regressions(),
        report.improvements(),
        report.errors(),
        match report.exit_code() {
            0 => "PASS",
            1 => "FAIL",
            _ => "ERROR",
        }
    );
    if report.improvements() > 0 && report.exit_code() == 0 {
        let _ = writeln!(t, "(improvements beyond tolerance: run `servesim check --update` to record them)");
    }
    t
}

/// XML text/attribute escaping (`& < > " '`, control characters dropped).
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 => {}
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML: one `<testsuite>` per scenario, one `<testcase>` per (router, metric);
/// regressions are `<failure>`, errors `<error>`, improvements pass with a `<system-out>`.
pub fn render_junit(report: &Report) -> String {
    let mut suites: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &report.rows {
        suites.entry(r.scenario.as_str()).or_default().push(r);
    }
    let mut x = String::new();
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        x,
        r#"<testsuites name="servesim check" tests="{}" failures="{}" errors="{}">"#,
        report.rows.len(),
        report.regressions(),
        report.errors()
    );
    for (scenario, rows) in suites {
        let fails = rows.iter().filter(|r| r.status == Status::Regressed).count();
        let errs = rows.iter().filter(|r| r.status == Status::Error).count();
        let _ = writeln!(
            x,
            r#"  <testsuite name="{}" tests="{}" failures="{fails}" errors="{errs}">"#,
            xml_escape(scenario),
            rows.len()
        );
        for r in rows {
            let name = if r.metric.is_empty() { "run".to_string() } else { r.metric.clone() };
            let _ = write!(
                x,
                r#"    <testcase classname="{}" name="{}""#,
                xml_escape(&format!("{}.{}", scenario, r.router)),
                xml_escape(&name)
            );
            let detail = format!(
                "baseline {} actual {} delta {} tolerance {}",
                num(r.baseline),
                num(r.actual),
                r.delta.map_or("-".into(), |d| format!("{d:+.6}")),
                num(r.tol)
            );
            match r.status {
                Status::Ok => {
                    let _ = writeln!(x, "/>");
                }
                Status::Improved => {
                    let _ = writeln!(x, ">");
                    let _ = writeln!(x, "      <system-out>improved: {}</system-out>", xml_escape(&detail));
                    let _ = writeln!(x, "    </testcase>");
                }
                Status::Regressed => {
                    let _ = writeln!(x, ">");
                    let _ = writeln!(
                        x,
                        r#"      <failure message="{} regressed" type="regression">{}</failure>"#,
                        xml_escape(&name),
                        xml_escape(&detail)
                    );
                    let _ = writeln!(x, "    </testcase>");
                }
                Status::Error => {
                    let _ = writeln!(x, ">");
                    let _ = writeln!(
                        x,
                        r#"      <error message="{}" type="error">{}</error>"#,
                        xml_escape(&r.message),
                        xml_escape(&r.message)
                    );
                    let _ = writeln!(x, "    </testcase>");
                }
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    let _ = writeln!(x, "</testsuites>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(v: f64) -> MetricBaseline {
        MetricBaseline { value: Some(v), rel_tol: 0.05, abs_tol: 0.002, direction: None }
    }

    #[test]
    fn direction_aware_tolerance() {
        assert_eq!(compare_metric("ttft_s.mean", &mb(1.0), Some(1.04)).0, Status::Ok);
        assert_eq!(compare_metric("ttft_s.mean", &mb(1.0), Some(1.06)).0, Status::Regressed);
        assert_eq!(compare_metric("ttft_s.mean", &mb(1.0), Some(0.90)).0, Status::Improved);
        assert_eq!(compare_metric("prefix_hit_rate", &mb(0.5), Some(0.40)).0, Status::Regressed);
        assert_eq!(compare_metric("prefix_hit_rate", &mb(0.5), Some(0.60)).0, Status::Improved);
        // Absolute tolerance covers values near zero.
        assert_eq!(compare_metric("queue_s.mean", &mb(0.0), Some(0.0015)).0, Status::Ok);
        assert_eq!(compare_metric("requests.submitted", &mb(100.0), Some(90.0)).0, Status::Regressed);
        assert_eq!(compare_metric("ttft_s.mean", &mb(1.0), None).0, Status::Regressed);
        let mut either = mb(1.0);
        either.direction = Some(Direction::Either);
        assert_eq!(compare_metric("ttft_s.mean", &either, Some(0.5)).0, Status::Regressed);
    }

    #[test]
    fn extract_paths() {
        let mut s = Summary::default();
        s.ttft_s.p90 = Some(0.25);
        s.per_replica = vec![crate::metrics::ReplicaSummary { requests: 3, ..Default::default() }, Default::default()];
        assert_eq!(extract(&s, "ttft_s.p90").unwrap(), Some(0.25));
        assert_eq!(extract(&s, "ttft_s.p99").unwrap(), None);
        assert_eq!(extract(&s, "per_replica.0.requests").unwrap(), Some(3.0));
        assert_eq!(extract(&s, "imbalance").unwrap(), Some(2.0));
        assert!(extract(&s, "ttft_s.p95").unwrap_err().contains("unknown metric"));
        assert!(extract(&s, "ttft_s").is_err());
    }

    #[test]
    fn baseline_yaml_round_trip() {
        let mut metrics = BTreeMap::new();
        metrics.insert("ttft_s.mean".to_string(), mb(0.0123456789));
        metrics.insert(
            "prefix_hit_rate".to_string(),
            MetricBaseline { value: None, rel_tol: 0.05, abs_tol: 0.01, direction: Some(Direction::Either) },
        );
        let b = BaselineFile {
            scenario: "scenarios/minimal.yaml".into(),
            seed: 7,
            servesim_version: "0.1.0".into(),
            overrides: vec!["duration=10m".into(), "router.kind=random".into()],
            routers: [("epp:load".to_string(), RouterBaseline { metrics })].into_iter().collect(),
        };
        let text = render_baseline_yaml(&b);
        let back: BaselineFile = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back.routers["epp:load"].metrics["ttft_s.mean"].value, Some(0.0123457));
        assert_eq!(
            back.routers["epp:load"].metrics["prefix_hit_rate"],
            b.routers["epp:load"].metrics["prefix_hit_rate"]
        );
        assert_eq!(back.overrides, b.overrides);
    }

    #[test]
    fn number_formatting() {
        assert_eq!(fmt_num(0.0123456789), "0.0123457");
        assert_eq!(fmt_num(123456789.0), "123457000");
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(0.0), "0");
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(xml_escape(r#"a<b & "c">'d'"#), "a&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;");
        let report = Report {
            rows: vec![Row {
                scenario: "s<&>.yaml".into(),
                router: "epp".into(),
                metric: "".into(),
                baseline: None,
                actual: None,
                delta: None,
                tol: None,
                status: Status::Error,
                message: "bad \"thing\" <here>".into(),
            }],
            notes: vec![],
        };
        let x = render_junit(&report);
        assert!(x.contains("s&lt;&amp;&gt;.yaml"));
        assert!(x.contains("<error message=\"bad &quot;thing&quot; &lt;here&gt;\""));
        assert!(!x.contains("<here>"));
    }
}

//! HTML reports: one self-contained file (inline CSS and SVG, no fetches, readable without
//! JavaScript) per command.
//!
//! Pipeline (criterion.rs style): rows → [`ReportContext`] (plain serializable data: the run
//! summaries, the scenario header and YAML, and every chart's points and table) → SVG per
//! figure ([`charts`], plotters' SVG backend) → an embedded minijinja template. The context is
//! what the golden tests pin and what `servesim report --context-json` dumps; the SVG is never
//! byte-compared.
//!
//! The same context is built whether the rows come straight from a simulation (`run --html`)
//! or are read back from a result folder (`report DIR`): both go through `timeseries.csv`'s
//! per-interval view ([`data::TsRow`]) and [`RequestRecord`]s, so the two reports are equal.
//!
//! Reuse: a new command (plan, validate) builds a [`ReportContext`] with its own
//! [`Section`]s / [`Figure`]s (charts are [`Chart`] data, tables are [`Table`]s) and calls
//! [`render_html`]. Every user-supplied string reaches the page through minijinja's HTML
//! auto-escaping or plotters' XML escaping; only SVG produced here is inserted raw.
//!
//! Size: time series are bucketed to at most [`data::MAX_TIME_POINTS`] points with min/max
//! envelopes, CDFs are sampled on a fixed percentile grid, so a day-long run stays well under
//! 2 MB regardless of request count.

pub mod charts;
pub mod data;
pub mod plan;
#[cfg(test)]
mod tests;

use crate::metrics::{Outcome, RequestCounts, RequestRecord, Summary, Throughput};
use crate::scenario::Scenario;
use charts::{BandSeries, BarSeries, CdfSeries, ChartOpts, Marker};
use data::{Envelope, PercentilesOverTime, TimeAxis, TsRow};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The report template (minijinja, HTML auto-escaping on).
const TEMPLATE: &str = include_str!("template.html");
/// The plan page template.
const PLAN_TEMPLATE: &str = include_str!("plan.html");
/// The `<head>` both pages include (charset, colour scheme, generator, title, stylesheet).
const HEAD_TEMPLATE: &str = include_str!("head.html");
/// Stylesheet shared by every page (light, dark, print).
const STYLE: &str = include_str!("style.css");
/// The few inline lines that make `table.sortable` columns sortable.
const SORT_JS: &str = include_str!("sort.js");
/// File name of the scenario copy `run` writes next to its outputs.
pub const SCENARIO_COPY: &str = "scenario.yaml";
/// Most replicas drawn as individual lines; more are drawn as mean / min / max over replicas.
pub const MAX_REPLICA_LINES: usize = 8;

/// Building or rendering a report failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A chart could not be drawn (fatal for this report).
    #[error("chart: {0}")]
    Chart(String),
    /// The template failed to render (a bug: the template is embedded).
    #[error("report template: {0}")]
    Template(#[from] minijinja::Error),
    /// An input file of `servesim report DIR` is missing or malformed.
    #[error("{}: {msg}", file.display())]
    Input { file: PathBuf, msg: String },
}

// ---------------------------------------------------------------------------------------------
// Context types.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Run,
    Compare,
}

/// A `key: value` line of the header (engine settings, workload parameters).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// What was simulated: the resolved scenario's identity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioHeader {
    pub name: String,
    pub description: Option<String>,
    pub model: String,
    pub gpu: String,
    pub tp: u32,
    pub replicas: u32,
    pub gpus: u32,
    pub duration: String,
    pub seed: u64,
    pub router: String,
    pub engine: Vec<KeyValue>,
    pub workload: Vec<KeyValue>,
    pub price: String,
    /// The autoscaler in one line (kind, bounds, metrics and targets); `None` for a fixed fleet.
    pub autoscaler: Option<String>,
    /// The autoscaler's first signal and its target, for the signal chart.
    pub scaler_target: Option<ScalerTarget>,
}

impl ScenarioHeader {
    pub fn from_scenario(sc: &Scenario) -> Self {
        let e = &sc.engine;
        let kv = |k: &str, v: String| KeyValue { key: k.to_string(), value: v };
        let mut engine = vec![
            kv("max_num_seqs", e.max_num_seqs.to_string()),
            kv("max_num_batched_tokens", e.max_num_batched_tokens.to_string()),
            kv("block_size", e.block_size.to_string()),
            kv("num_gpu_blocks", e.num_gpu_blocks.to_string()),
            kv("gpu_memory_utilization", format!("{}", e.gpu_memory_utilization)),
            kv("max_model_len", e.max_model_len.to_string()),
            kv("enable_prefix_caching", e.enable_prefix_caching.to_string()),
            kv("enable_chunked_prefill", e.enable_chunked_prefill.to_string()),
        ];
        engine.extend(flatten("step_time", &serde_json::to_value(&e.step_time).unwrap_or_default()));
        ScenarioHeader {
            name: sc.name.clone(),
            description: sc.file.description.clone(),
            model: format!("{} ({})", sc.model.name, sc.model.id),
            gpu: format!("{} ({})", sc.gpu.name, sc.gpu.id),
            tp: sc.tp,
            replicas: sc.replicas,
            gpus: sc.replicas * sc.tp,
            duration: duration_text(sc.duration.as_secs_f64()),
            seed: sc.seed,
            router: one_line(&serde_json::to_value(&sc.router).unwrap_or_default()),
            engine,
            workload: kind_first(flatten("", &serde_json::to_value(&sc.workload).unwrap_or_default())),
            price: format!("${:.2}/GPU-hour ({})", sc.price.usd_per_gpu_hour, sc.price.provider),
            autoscaler: autoscaler_text(&sc.autoscaler),
            scaler_target: scaler_target(&sc.autoscaler),
        }
    }
}

/// What the `scaler_signal` column of `timeseries.csv` measures and the value the scaler
/// steers it to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScalerTarget {
    /// The metric or query name.
    pub metric: String,
    pub target: f64,
    /// The signal is a pool total and the target applies per replica (an `AverageValue`
    /// target on an external metric): the chart divides the signal by the live replicas.
    pub per_replica: bool,
}

/// The autoscaler, resolved to what a reader compares with the Kubernetes object.
fn autoscaler_text(c: &crate::autoscaler::AutoscalerConfig) -> Option<String> {
    use crate::autoscaler::AutoscalerConfig as A;
    use crate::autoscaler::hpa::{MetricSpec, TargetType};
    let windows = |b: &Option<crate::autoscaler::BehaviorConfig>| {
        let mut w = Vec::new();
        if let Some(b) = b {
            for (dir, r) in [("up", &b.scale_up), ("down", &b.scale_down)] {
                if let Some(s) = r.as_ref().and_then(|r| r.stabilization_window_seconds) {
                    w.push(format!("scale-{dir} stabilization {s} s"));
                }
            }
        }
        w
    };
    Some(match c {
        A::Fixed => return None,
        A::Hpa(h) => {
            let metrics: Vec<String> = h
                .metrics
                .iter()
                .map(|m| {
                    let (src, pods) = match m {
                        MetricSpec::Pods(p) => (&p.pods, true),
                        MetricSpec::External(e) => (&e.external, false),
                    };
                    let (v, per) = match src.target.kind {
                        TargetType::AverageValue => {
                            (src.target.average_value, if pods { " per pod" } else { " per replica" })
                        }
                        TargetType::Value => (src.target.value, ""),
                    };
                    format!("{} ≤ {}{per}", src.metric.name, v.map_or_else(|| "-".into(), |q| num_t(q.0)))
                })
                .collect();
            let mut parts = vec![format!("HPA, {}–{} replicas", h.min_replicas, h.max_replicas), metrics.join(", ")];
            parts.extend(windows(&h.behavior));
            parts.join("; ")
        }
        A::Keda(k) => {
            let triggers: Vec<String> = k
                .triggers
                .iter()
                .map(|t| {
                    let get = |key: &str| {
                        t.metadata.get(key).map(|v| match v {
                            crate::autoscaler::keda::Quantityish::Text(s) => s.clone(),
                            crate::autoscaler::keda::Quantityish::Number(n) => num_t(*n),
                        })
                    };
                    match (get("query"), get("threshold")) {
                        (Some(q), Some(th)) => {
                            let per = if t.metric_type == Some(TargetType::Value) { "" } else { " per replica" };
                            format!("{q} ≤ {th}{per}")
                        }
                        _ => one_line(&serde_json::to_value(t).unwrap_or_default()),
                    }
                })
                .collect();
            let mut parts = vec![
                format!(
                    "KEDA, {}–{} replicas, polling {} s, cooldown {} s",
                    k.min_replica_count, k.max_replica_count, k.polling_interval, k.cooldown_period
                ),
                triggers.join(", "),
            ];
            parts.extend(windows(
                &k.advanced
                    .as_ref()
                    .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
                    .and_then(|h| h.behavior.clone()),
            ));
            parts.join("; ")
        }
        A::Preset(p) => match expand_preset(p) {
            Some(e) => format!("preset {}: {}", p.name, autoscaler_text(&e)?),
            None => format!("preset {}", p.name),
        },
        other => one_line(&serde_json::to_value(other).unwrap_or_default()),
    })
}

/// The first metric the scaler reports as `scaler_signal`, and its target.
fn scaler_target(c: &crate::autoscaler::AutoscalerConfig) -> Option<ScalerTarget> {
    use crate::autoscaler::AutoscalerConfig as A;
    use crate::autoscaler::hpa::{MetricSpec, TargetType};
    match c {
        A::Hpa(h) => {
            let (src, pods) = match h.metrics.first()? {
                MetricSpec::Pods(p) => (&p.pods, true),
                MetricSpec::External(e) => (&e.external, false),
            };
            let (v, avg) = match src.target.kind {
                TargetType::AverageValue => (src.target.average_value?, true),
                TargetType::Value => (src.target.value?, false),
            };
            Some(ScalerTarget { metric: src.metric.name.clone(), target: v.0, per_replica: avg && !pods })
        }
        A::Keda(k) => keda_target(k),
        A::Preset(p) => scaler_target(&expand_preset(p)?),
        _ => None,
    }
}

/// A named recipe as the configuration it stands for (mirrors the autoscaler's expansion).
fn expand_preset(p: &crate::autoscaler::PresetConfig) -> Option<crate::autoscaler::AutoscalerConfig> {
    use crate::autoscaler::AutoscalerConfig as A;
    match p.name.as_str() {
        "llm-d-keda-epp-queue" => {
            let mut k = crate::autoscaler::keda::llmd_epp_queue();
            k.min_replica_count = p.min_replicas.unwrap_or(k.min_replica_count);
            k.max_replica_count = p.max_replicas.unwrap_or(k.max_replica_count);
            Some(A::Keda(k))
        }
        "llm-d-wva-saturation" => {
            let mut w = crate::autoscaler::WvaConfig::default();
            w.min_replicas = p.min_replicas.unwrap_or(w.min_replicas);
            w.max_replicas = p.max_replicas.unwrap_or(w.max_replicas);
            Some(A::Wva(w))
        }
        _ => None,
    }
}

fn keda_target(k: &crate::autoscaler::KedaConfig) -> Option<ScalerTarget> {
    use crate::autoscaler::keda::{Quantityish, TriggerType};
    let t = k.triggers.iter().find(|t| t.kind == TriggerType::Prometheus)?;
    let text = |key: &str| {
        t.metadata.get(key).map(|v| match v {
            Quantityish::Text(s) => s.clone(),
            Quantityish::Number(n) => n.to_string(),
        })
    };
    let target = crate::autoscaler::Quantity::parse(&text("threshold")?).ok()?;
    Some(ScalerTarget {
        metric: text("query")?,
        target,
        per_replica: t.metric_type != Some(crate::autoscaler::hpa::TargetType::Value),
    })
}

/// Moves the top-level `kind` entry first (serde_json sorts keys).
fn kind_first(mut kv: Vec<KeyValue>) -> Vec<KeyValue> {
    if let Some(i) = kv.iter().position(|k| k.key == "kind") {
        let k = kv.remove(i);
        kv.insert(0, k);
    }
    kv
}

/// `kind: x, a: 1, b.c: 2` from a JSON object (for compact router descriptions).
fn one_line(v: &serde_json::Value) -> String {
    kind_first(flatten("", v)).into_iter().map(|kv| format!("{}: {}", kv.key, kv.value)).collect::<Vec<_>>().join(", ")
}

/// Flattens nested objects into dotted keys; arrays and scalars become compact JSON.
fn flatten(prefix: &str, v: &serde_json::Value) -> Vec<KeyValue> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if v.is_null() {
                    continue;
                }
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.extend(flatten(&key, v));
            }
        }
        serde_json::Value::String(s) => out.push(KeyValue { key: prefix.to_string(), value: s.clone() }),
        // Lists with a space after each comma, so a long one (an hourly profile) wraps between
        // items instead of inside numbers.
        serde_json::Value::Array(a) => out.push(KeyValue {
            key: prefix.to_string(),
            value: format!("[{}]", a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")),
        }),
        other => out.push(KeyValue { key: prefix.to_string(), value: other.to_string() }),
    }
    out
}

/// One SLO check, phrased for the verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckRow {
    pub metric: String,
    pub target: String,
    pub actual: String,
    pub passed: bool,
    /// e.g. "41% headroom" or "23% over target".
    pub by: String,
}

/// The verdict of one run: SLOs and cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub label: String,
    pub passed: bool,
    pub has_slos: bool,
    pub checks: Vec<CheckRow>,
    pub cost_usd: String,
    pub cost_per_day_usd: String,
    pub cost_per_million_output_tokens: String,
    pub gpu_hours: String,
    pub price: String,
    pub simulated: String,
    pub requests: RequestCounts,
    pub throughput: Throughput,
    pub prefix_hit_rate: String,
    pub preemptions: u64,
}

/// A table of the numbers behind a chart (cells already formatted; numeric columns sort).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// What a figure draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chart {
    Cdf {
        series: Vec<CdfSeries>,
        markers: Vec<Marker>,
        opts: ChartOpts,
    },
    Time {
        series: Vec<BandSeries>,
        hlines: Vec<Marker>,
        opts: ChartOpts,
    },
    Bars {
        groups: Vec<String>,
        series: Vec<BarSeries>,
        opts: ChartOpts,
    },
    /// Scatter points and lines on numeric axes (the planner's Pareto fronts, cost lines).
    Xy {
        points: Vec<charts::ScatterSeries>,
        lines: Vec<charts::XyLine>,
        hlines: Vec<Marker>,
        vlines: Vec<Marker>,
        highlight: Option<charts::Highlight>,
        opts: ChartOpts,
    },
    /// Replicas by phase: stacked areas, the desired count as a step line, scale events.
    Fleet {
        areas: Vec<BandSeries>,
        desired: Option<BandSeries>,
        lines: Vec<BandSeries>,
        events: Vec<charts::EventMark>,
        opts: ChartOpts,
    },
    /// No chart: the figure is its table, shown open.
    TableOnly,
}

impl Chart {
    pub fn to_svg(&self) -> Result<String, ReportError> {
        match self {
            Chart::Cdf { series, markers, opts } => charts::cdf_chart(series, markers, opts),
            Chart::Time { series, hlines, opts } => charts::time_chart(series, hlines, opts),
            Chart::Bars { groups, series, opts } => charts::bar_chart(groups, series, opts),
            Chart::Xy { points, lines, hlines, vlines, highlight, opts } => {
                charts::xy_chart(points, lines, hlines, vlines, highlight.as_ref(), opts)
            }
            Chart::Fleet { areas, desired, lines, events, opts } => {
                charts::fleet_chart(areas, desired.as_ref(), lines, events, opts)
            }
            Chart::TableOnly => Ok(String::new()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub chart: Chart,
    pub table: Table,
    /// Filled by [`render_html`]; absent from the serialized (golden) context.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub svg: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub intro: Option<String>,
    pub figures: Vec<Figure>,
}

/// A run's summary with its label (the router name in a comparison).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabeledSummary {
    pub label: String,
    pub summary: Summary,
}

/// Everything the template sees.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportContext {
    pub kind: ReportKind,
    pub title: String,
    pub servesim_version: String,
    pub scenario: Option<ScenarioHeader>,
    pub scenario_yaml: Option<String>,
    pub verdicts: Vec<Verdict>,
    pub summaries: Vec<LabeledSummary>,
    pub sections: Vec<Section>,
    /// Caveats shown under the header (missing inputs, clipped axes).
    pub notes: Vec<String>,
}

/// One run's rows, as the JSON/CSV outputs hold them.
#[derive(Clone, Copy, Debug)]
pub struct RunData<'a> {
    pub label: &'a str,
    pub summary: &'a Summary,
    /// `None` when `requests.csv` was not written (latency charts are then omitted).
    pub records: Option<&'a [RequestRecord]>,
    pub timeseries: &'a [TsRow],
    /// Replica counts by phase and scale events (`None`: no fleet columns were recorded).
    pub fleet: Option<&'a data::FleetData>,
}

/// The scenario side of a report: header (when the scenario could be resolved) and YAML text.
#[derive(Clone, Debug, Default)]
pub struct ScenarioInfo {
    pub header: Option<ScenarioHeader>,
    pub yaml: Option<String>,
    pub notes: Vec<String>,
}

impl ScenarioInfo {
    pub fn new(sc: Option<&Scenario>, yaml: Option<String>) -> Self {
        ScenarioInfo { header: sc.map(ScenarioHeader::from_scenario), yaml, notes: Vec::new() }
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting.

/// 4 significant digits, no exponent for ordinary magnitudes.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 9) as usize;
    format!("{v:.digits$}")
}

/// [`num`] without trailing zeros, for prose ("1-second buckets").
pub fn num_t(v: f64) -> String {
    let s = num(v);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), num)
}

fn money(v: f64) -> String {
    if v >= 100.0 { format!("${:.0}", v) } else { format!("${:.2}", v) }
}

fn duration_text(s: f64) -> String {
    if s >= 2.0 * 3600.0 {
        format!("{} h", num_t(s / 3600.0))
    } else if s >= 120.0 {
        format!("{} min", num_t(s / 60.0))
    } else {
        format!("{} s", num_t(s))
    }
}

/// Latency display unit for values up to `max_s`: ms below one second, else s.
fn lat_unit(max_s: f64) -> (f64, &'static str) {
    if max_s < 1.0 { (1e3, "ms") } else { (1.0, "s") }
}

fn metric_label(m: &str) -> String {
    match m {
        "error_rate" => "error rate".into(),
        m => {
            let base = m.trim_end_matches("_s");
            match base.split_once('_') {
                Some((name, p)) => format!("{} {}", name.to_uppercase(), p),
                None => base.to_uppercase(),
            }
        }
    }
}

fn check_value(metric: &str, v: f64) -> String {
    if metric == "error_rate" {
        format!("{}%", num_t(v * 100.0))
    } else if v < 1.0 {
        format!("{} ms", num_t(v * 1e3))
    } else {
        format!("{} s", num_t(v))
    }
}

pub fn verdict(label: &str, s: &Summary) -> Verdict {
    let checks = s
        .slo
        .checks
        .iter()
        .map(|c| {
            let by = match c.actual.filter(|a| a.is_finite()) {
                None => "unbounded: no samples, or requests left unfinished".to_string(),
                Some(a) if c.target > 0.0 => {
                    let rel = (c.target - a) / c.target * 100.0;
                    if c.passed {
                        format!("{}% headroom", num(rel.max(0.0)))
                    } else {
                        format!("{}% over target", num(-rel))
                    }
                }
                Some(a) => {
                    if c.passed {
                        "at target".into()
                    } else {
                        format!("over by {}", check_value(&c.metric, a - c.target))
                    }
                }
            };
            CheckRow {
                metric: metric_label(&c.metric),
                target: format!("≤ {}", check_value(&c.metric, c.target)),
                actual: c.actual.filter(|a| a.is_finite()).map_or_else(|| "-".into(), |a| check_value(&c.metric, a)),
                passed: c.passed,
                by,
            }
        })
        .collect();
    let per_day = if s.simulated_seconds > 0.0 { s.cost_usd / s.simulated_seconds * 86400.0 } else { 0.0 };
    Verdict {
        label: label.to_string(),
        passed: s.slo.passed,
        has_slos: !s.slo.checks.is_empty(),
        checks,
        cost_usd: money(s.cost_usd),
        cost_per_day_usd: money(per_day),
        cost_per_million_output_tokens: s.cost_per_million_output_tokens.map_or_else(|| "-".into(), money),
        gpu_hours: num(s.gpu_hours.total),
        price: format!("${:.2}/GPU-hour ({})", s.price.usd_per_gpu_hour, s.price.provider),
        simulated: duration_text(s.simulated_seconds),
        requests: s.requests.clone(),
        throughput: s.throughput.clone(),
        prefix_hit_rate: s.prefix_hit_rate.map_or_else(|| "-".into(), |h| format!("{}%", num(h * 100.0))),
        preemptions: s.preemptions,
    }
}

// ---------------------------------------------------------------------------------------------
// Building blocks shared by run and compare.

type LatFn = fn(&RequestRecord) -> Option<f64>;

/// (id, title, metric accessor, SLO metric prefix)
const LATENCIES: [(&str, &str, LatFn, &str); 3] = [
    ("ttft", "TTFT", RequestRecord::ttft_s, "ttft_"),
    ("tpot", "TPOT", RequestRecord::tpot_s, "tpot_"),
    ("e2e", "E2E", RequestRecord::e2e_s, "e2e_"),
];

fn completed_values(records: &[RequestRecord], f: LatFn) -> Vec<f64> {
    data::sorted(records.iter().filter(|r| r.outcome == Outcome::Completed).filter_map(f).collect())
}

/// SLO targets on one latency (`ttft_` → "p90 ≤ 3 s" markers), scaled to display units.
fn slo_markers(s: &Summary, prefix: &str, scale: f64, unit: &str) -> Vec<Marker> {
    s.slo
        .checks
        .iter()
        .filter(|c| c.metric.starts_with(prefix))
        .map(|c| {
            let p = c.metric.trim_start_matches(prefix).trim_end_matches("_s");
            Marker { label: format!("SLO {p} ≤ {} {unit}", num_t(c.target * scale)), value: c.target * scale }
        })
        .collect()
}

const TABLE_PCTS: [(f64, &str); 7] =
    [(50.0, "p50"), (90.0, "p90"), (95.0, "p95"), (99.0, "p99"), (99.9, "p99.9"), (100.0, "max"), (0.0, "min")];

/// CDF figure for one latency over several runs (same axes).
fn cdf_figure(id: &str, name: &str, runs: &[(&str, Vec<f64>)], markers: Vec<Marker>, scale: f64, unit: &str) -> Figure {
    let series: Vec<CdfSeries> = runs
        .iter()
        .map(|(label, v)| CdfSeries {
            label: label.to_string(),
            points: data::cdf_points(v).into_iter().map(|(x, f)| (x * scale, f)).collect(),
        })
        .collect();
    // Clip the x axis at the largest p99.5 (the table keeps the max) so one outlier does not
    // squash the distribution; SLO markers always stay visible.
    let clip = runs.iter().filter_map(|(_, v)| crate::metrics::percentile(v, 99.5)).fold(0.0f64, f64::max) * scale;
    let max = runs.iter().filter_map(|(_, v)| v.last().copied()).fold(0.0f64, f64::max) * scale;
    let x_max = if max > clip * 1.5 { Some(clip * 1.15) } else { None };
    let mut caption = format!(
        "Cumulative distribution of {name} over completed requests (nearest-rank percentiles on a 1% grid plus the tail)."
    );
    if let Some(x) = x_max {
        caption.push_str(&format!(" The x axis stops at {} {unit}; the table lists the maximum.", num(x)));
    }
    let mut columns = vec!["percentile".to_string()];
    columns.extend(runs.iter().map(|(l, _)| format!("{l} ({unit})")));
    let mut rows: Vec<Vec<String>> = TABLE_PCTS
        .iter()
        .map(|(p, name)| {
            let mut row = vec![name.to_string()];
            row.extend(runs.iter().map(|(_, v)| opt_num(crate::metrics::percentile(v, *p).map(|x| x * scale))));
            row
        })
        .collect();
    let mut count = vec!["count".to_string()];
    count.extend(runs.iter().map(|(_, v)| v.len().to_string()));
    rows.push(count);
    Figure {
        id: format!("cdf-{id}"),
        title: format!("{name} distribution"),
        caption,
        chart: Chart::Cdf {
            series,
            markers,
            opts: ChartOpts {
                x_label: format!("{name} ({unit})"),
                y_label: "fraction of requests".into(),
                x_max,
                ..Default::default()
            },
        },
        table: Table { columns, rows },
        svg: String::new(),
    }
}

fn scale_opt(v: &[Option<f64>], k: f64) -> Vec<Option<f64>> {
    v.iter().map(|x| x.map(|x| x * k)).collect()
}

/// A table with a time column and one column per (name, values).
fn time_table(axis: &TimeAxis, cols: &[(String, &[Option<f64>])]) -> Table {
    let mut columns = vec!["t end (s)".to_string()];
    columns.extend(cols.iter().map(|(n, _)| n.clone()));
    let rows = axis
        .t_s
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut row = vec![num(*t)];
            row.extend(cols.iter().map(|(_, v)| opt_num(v.get(i).copied().flatten())));
            row
        })
        .collect();
    Table { columns, rows }
}

fn time_opts(y_label: &str) -> ChartOpts {
    ChartOpts { x_label: "time since start".into(), y_label: y_label.into(), ..Default::default() }
}

fn band(label: &str, axis: &TimeAxis, e: &Envelope, color: usize) -> BandSeries {
    BandSeries {
        label: label.into(),
        x: axis.t_s.clone(),
        y: e.mean.clone(),
        band: Some((e.min.clone(), e.max.clone())),
        dashed: false,
        color: Some(color),
    }
}

fn line(label: &str, axis: &TimeAxis, y: Vec<Option<f64>>, color: usize, dashed: bool) -> BandSeries {
    BandSeries { label: label.into(), x: axis.t_s.clone(), y, band: None, dashed, color: Some(color) }
}

/// Per-replica envelopes of one tick quantity, plus the envelope over all replicas.
fn replica_envelopes(axis: &TimeAxis, ts: &[TsRow], f: impl Fn(&TsRow) -> Option<f64>) -> (Vec<Envelope>, Envelope) {
    let n = ts.iter().map(|r| r.replica as usize + 1).max().unwrap_or(0);
    let mut per: Vec<data::Buckets> = (0..n).map(|_| axis.buckets()).collect();
    let mut all = axis.buckets();
    for r in ts {
        if let Some(v) = f(r) {
            per[r.replica as usize].add(r.time_s, v);
            all.add(r.time_s, v);
        }
    }
    (per.iter().map(|b| b.envelope()).collect(), all.envelope())
}

/// Sum over replicas at each tick, then bucketed (cluster-wide quantity).
fn cluster_envelope(axis: &TimeAxis, ts: &[TsRow], f: impl Fn(&TsRow) -> Option<f64>) -> Envelope {
    let mut b = axis.buckets();
    let mut i = 0;
    while i < ts.len() {
        let t = ts[i].time_s;
        let mut sum = 0.0;
        let mut any = false;
        while i < ts.len() && ts[i].time_s == t {
            if let Some(v) = f(&ts[i]) {
                sum += v;
                any = true;
            }
            i += 1;
        }
        if any {
            b.add(t, sum);
        }
    }
    b.envelope()
}

fn replica_figure(
    id: &str,
    title: &str,
    y_label: &str,
    caption: &str,
    axis: &TimeAxis,
    ts: &[TsRow],
    f: impl Fn(&TsRow) -> Option<f64>,
    y_max: Option<f64>,
) -> Figure {
    let (per, all) = replica_envelopes(axis, ts, f);
    let mut series = Vec::new();
    let mut cols: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    if per.len() <= MAX_REPLICA_LINES {
        for (i, e) in per.iter().enumerate() {
            series.push(line(&format!("replica {i}"), axis, e.mean.clone(), i, false));
            cols.push((format!("r{i} mean"), e.mean.clone()));
            cols.push((format!("r{i} max"), e.max.clone()));
        }
        series.push(line("peak (any replica)", axis, all.max.clone(), 7, true));
    } else {
        series.push(band("mean over replicas", axis, &all, 0));
        cols.push(("mean".into(), all.mean.clone()));
        cols.push(("min".into(), all.min.clone()));
    }
    cols.push(("max (any replica)".into(), all.max.clone()));
    let cols_ref: Vec<(String, &[Option<f64>])> = cols.iter().map(|(n, v)| (n.clone(), v.as_slice())).collect();
    Figure {
        id: id.into(),
        title: title.into(),
        caption: format!(
            "{caption} Lines are per-bucket means of the {}-second ticks; the dashed line is the highest tick value of any replica in the bucket, so short peaks stay visible.",
            num_t(axis.width_s)
        ),
        chart: Chart::Time { series, hlines: vec![], opts: ChartOpts { y_max, ..time_opts(y_label) } },
        table: time_table(axis, &cols_ref),
        svg: String::new(),
    }
}

fn latency_over_time_figure(
    id: &str,
    name: &str,
    axis: &TimeAxis,
    p: &PercentilesOverTime,
    s: &Summary,
    f: LatFn,
    prefix: &str,
) -> Figure {
    let _ = f;
    let max = p.p99.iter().filter_map(|v| *v).fold(0.0f64, f64::max);
    let (k, unit) = lat_unit(max);
    let p50 = scale_opt(&p.p50, k);
    let p90 = scale_opt(&p.p90, k);
    let p99 = scale_opt(&p.p99, k);
    let (lo, hi) = (scale_opt(&p.min, k), scale_opt(&p.max, k));
    let series = vec![
        BandSeries {
            label: "p50".into(),
            x: axis.t_s.clone(),
            y: p50.clone(),
            band: Some((lo.clone(), hi.clone())),
            dashed: false,
            color: Some(0),
        },
        line("p90", axis, p90.clone(), 1, false),
        line("p99", axis, p99.clone(), 5, false),
    ];
    let count: Vec<Option<f64>> = p.count.iter().map(|c| Some(*c as f64)).collect();
    let table = time_table(
        axis,
        &[
            ("requests".into(), &count),
            (format!("p50 ({unit})"), &p50),
            (format!("p90 ({unit})"), &p90),
            (format!("p99 ({unit})"), &p99),
            (format!("min ({unit})"), &lo),
            (format!("max ({unit})"), &hi),
        ],
    );
    Figure {
        id: format!("time-{id}"),
        title: format!("{name} percentiles over time"),
        caption: format!(
            "{name} percentiles of completed requests by arrival time, in {}-second buckets; the shaded band spans the fastest to the slowest request of each bucket.",
            num_t(axis.width_s)
        ),
        chart: Chart::Time {
            series,
            hlines: slo_markers(s, prefix, k, unit),
            opts: time_opts(&format!("{name} ({unit})")),
        },
        table,
        svg: String::new(),
    }
}

fn run_span(s: &Summary, ts: &[TsRow]) -> f64 {
    s.simulated_seconds.max(ts.last().map_or(0.0, |r| r.time_s)).max(1e-3)
}

fn tick_interval(ts: &[TsRow]) -> f64 {
    ts.iter().map(|r| r.time_s).find(|t| *t > 0.0).unwrap_or(1.0)
}

// ---------------------------------------------------------------------------------------------
// Fleet: replicas by phase, scaler signal, scale events, GPU-hours by phase.

/// Most scale events listed in the report's table (the CSV keeps them all).
pub const MAX_EVENT_ROWS: usize = 100;

/// `h:mm:ss` since the start.
fn clock(t_s: f64) -> String {
    let t = t_s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// The fleet section of a run report; `None` for a fixed fleet that never changed.
fn fleet_section(
    axis: &TimeAxis,
    s: &Summary,
    fleet: &data::FleetData,
    header: Option<&ScenarioHeader>,
) -> Option<Section> {
    let scaler = header.and_then(|h| h.autoscaler.as_ref());
    let g = &s.gpu_hours;
    if !(fleet.changed() || scaler.is_some() || g.starting > 0.0 || g.draining > 0.0) {
        return None;
    }
    let ticks = &fleet.ticks;
    let mut figs = Vec::new();

    // Replicas by phase.
    let mut b = [axis.buckets(), axis.buckets(), axis.buckets(), axis.buckets(), axis.buckets(), axis.buckets()];
    for t in ticks {
        let live = (t.ready + t.starting + t.draining) as f64;
        for (k, v) in [t.ready as f64, t.starting as f64, t.draining as f64, live, t.desired as f64, t.gateway as f64]
            .into_iter()
            .enumerate()
        {
            b[k].add(t.time.as_secs_f64(), v);
        }
    }
    let desired_end = b[4].last();
    let [ready, starting, draining, live, desired, gateway] = b.map(|b| b.envelope());
    let areas = vec![
        line("ready", axis, ready.mean.clone(), 0, false),
        line("starting", axis, starting.mean.clone(), 1, false),
        line("draining", axis, draining.mean.clone(), 3, false),
    ];
    let top: Vec<Option<f64>> = (0..axis.t_s.len())
        .map(|i| Some(ready.mean[i]? + starting.mean[i].unwrap_or(0.0) + draining.mean[i].unwrap_or(0.0)))
        .collect();
    let peaks_hidden = live.max.iter().zip(&top).any(|(m, t)| matches!((m, t), (Some(m), Some(t)) if *m > t + 1e-9));
    let lines = if peaks_hidden { vec![line("peak (bucket max)", axis, live.max.clone(), 7, true)] } else { vec![] };
    let desired_series = BandSeries {
        label: "desired".into(),
        x: axis.t_s.clone(),
        y: desired_end.clone(),
        band: Some((desired.min.clone(), desired.max.clone())),
        dashed: false,
        color: None,
    };
    let events: Vec<charts::EventMark> =
        fleet.events.iter().map(|e| charts::EventMark { t_s: e.time_s, to: e.to, up: e.to >= e.from }).collect();
    let (ups, downs) = (events.iter().filter(|e| e.up).count(), events.iter().filter(|e| !e.up).count());
    let max_live = live.max.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
    figs.push(Figure {
        id: "fleet-replicas".into(),
        title: "Replicas by phase".into(),
        caption: format!(
            "Replicas in each lifecycle phase, stacked: ready (serving) at the bottom, then starting (node provisioning, image pull, weight load, warm-up), then draining; bucket means over {}-second buckets{}. The ink step line is the Deployment's desired replica count at the end of each bucket (grey bars where it moved within a bucket); ▲/▼ mark scale events at the count they set (events close together share a marker at the highest / lowest count). {} scale events ({ups} up, {downs} down){}; at most {} replicas at once.",
            num_t(axis.width_s),
            if peaks_hidden { ", with the dashed line at the bucket's most replicas so short peaks stay visible" } else { "" },
            events.len(),
            if fleet.events_source == data::EventsSource::Timeseries { ", reconstructed from desired_replicas in timeseries.csv (tick resolution)" } else { "" },
            num_t(max_live),
        ),
        chart: Chart::Fleet {
            areas,
            desired: Some(desired_series),
            lines,
            events,
            opts: time_opts("replicas"),
        },
        table: time_table(
            axis,
            &[
                ("ready (mean)".into(), &ready.mean),
                ("starting (mean)".into(), &starting.mean),
                ("draining (mean)".into(), &draining.mean),
                ("replicas (max)".into(), &live.max),
                ("desired (end)".into(), &desired_end),
                ("desired (min)".into(), &desired.min),
                ("desired (max)".into(), &desired.max),
                ("gateway queue (max)".into(), &gateway.max),
            ],
        ),
        svg: String::new(),
    });

    // The scaler's signal against its target.
    if ticks.iter().any(|t| t.signal.is_some()) {
        let target = header.and_then(|h| h.scaler_target.as_ref());
        let per_replica = target.is_some_and(|t| t.per_replica);
        let mut sb = axis.buckets();
        for t in ticks {
            let pods = t.ready + t.starting;
            match (t.signal, per_replica) {
                (Some(v), false) => sb.add(t.time.as_secs_f64(), v),
                (Some(v), true) if pods > 0 => sb.add(t.time.as_secs_f64(), v / pods as f64),
                _ => {}
            }
        }
        let sig = sb.envelope();
        let label = if per_replica { "signal ÷ replicas" } else { "signal" };
        let hlines = target
            .map(|t| vec![Marker { label: format!("target {}", num_t(t.target)), value: t.target }])
            .unwrap_or_default();
        figs.push(Figure {
            id: "fleet-signal".into(),
            title: "Autoscaler signal".into(),
            caption: format!(
                "The autoscaler's first metric{} as it last saw it at each tick{}; bucket mean with the lowest-to-highest band.{}",
                target.map_or_else(String::new, |t| format!(", {},", t.metric)),
                if per_replica { ", divided by the live replicas (its target applies per replica)" } else { "" },
                target.map_or_else(String::new, |t| format!(
                    " The dashed line is its target ({}): above it the scaler adds replicas; below it, outside its tolerance and stabilization window, it removes them.",
                    num_t(t.target)
                )),
            ),
            chart: Chart::Time { series: vec![band(label, axis, &sig, 4)], hlines, opts: time_opts("scaler signal") },
            table: time_table(
                axis,
                &[(format!("{label} (mean)"), &sig.mean), ("min".into(), &sig.min), ("max".into(), &sig.max)],
            ),
            svg: String::new(),
        });
    }

    // Scale events.
    if !fleet.events.is_empty() {
        let signal_at = |t_s: f64| {
            let i = ticks.partition_point(|x| x.time.as_secs_f64() < t_s);
            ticks.get(i).and_then(|x| x.signal)
        };
        let rows = fleet
            .events
            .iter()
            .take(MAX_EVENT_ROWS)
            .map(|e| {
                let d = e.to as i64 - e.from as i64;
                vec![
                    num(e.time_s),
                    clock(e.time_s),
                    e.from.to_string(),
                    e.to.to_string(),
                    if d > 0 {
                        format!("+{d}")
                    } else if d < 0 {
                        format!("−{}", -d)
                    } else {
                        "0".into()
                    },
                    e.reason.clone(),
                    opt_num(signal_at(e.time_s)),
                ]
            })
            .collect();
        let n = fleet.events.len();
        figs.push(Figure {
            id: "fleet-events".into(),
            title: "Scale events".into(),
            caption: format!(
                "Each change of the replica count: autoscaler decisions (from → to is the desired count), crashes and rolling updates (live replicas). Signal: the scaler's first metric at the next tick.{}",
                if n > MAX_EVENT_ROWS {
                    format!(" The first {MAX_EVENT_ROWS} of {n} events are listed; {} has them all.", data::SCALE_EVENTS_FILE)
                } else {
                    String::new()
                }
            ),
            chart: Chart::TableOnly,
            table: Table {
                columns: ["time (s)", "clock", "from", "to", "change", "reason", "signal"].map(String::from).to_vec(),
                rows,
            },
            svg: String::new(),
        });
    }

    // GPU-hours by phase.
    let pct = |v: f64| if g.total > 0.0 { format!("{}%", num_t(v / g.total * 100.0)) } else { "-".into() };
    let mut rows = vec![vec![
        "all".to_string(),
        num(g.total),
        num(g.serving),
        num(g.starting),
        num(g.draining),
        num(g.idle_node),
        pct(g.serving),
        format!("${:.2}", s.price.usd_per_gpu_hour),
        money(s.cost_usd),
    ]];
    if g.per_sku.len() > 1 {
        rows.extend(g.per_sku.iter().map(|k| {
            vec![
                k.sku.clone(),
                num(k.total),
                num(k.serving),
                num(k.starting),
                num(k.draining),
                num(k.idle_node),
                if k.total > 0.0 { format!("{}%", num_t(k.serving / k.total * 100.0)) } else { "-".into() },
                format!("${:.2}", k.usd_per_gpu_hour),
                money(k.cost_usd),
            ]
        }));
    } else if let Some(k) = g.per_sku.first() {
        rows[0][0] = k.sku.clone();
    }
    figs.push(Figure {
        id: "fleet-gpu-hours".into(),
        title: "GPU-hours by phase".into(),
        caption: "Billed GPU-hours: serving = Ready and taking requests; starting = from the replica's request (node provisioning included) to Ready; draining = from the start of a drain to termination; idle node = billed node GPUs that held no replica (node-level billing). Total = serving + starting + draining + idle node.".into(),
        chart: Chart::TableOnly,
        table: Table {
            columns: ["GPU", "GPU-h", "serving", "starting", "draining", "idle node", "serving share", "price / GPU-h", "cost"]
                .map(String::from)
                .to_vec(),
            rows,
        },
        svg: String::new(),
    });

    Some(Section {
        id: "fleet".into(),
        title: "Replicas and autoscaling".into(),
        intro: scaler.map(|a| format!("Autoscaler: {a}.")),
        figures: figs,
    })
}

// ---------------------------------------------------------------------------------------------
// Run report.

impl ReportContext {
    /// The report of one run.
    pub fn for_run(run: &RunData<'_>, info: &ScenarioInfo) -> ReportContext {
        let s = run.summary;
        let ts = run.timeseries;
        let axis = TimeAxis::new(run_span(s, ts), tick_interval(ts));
        let mut notes = info.notes.clone();
        let mut sections = Vec::new();

        if let Some(records) = run.records {
            // Distributions.
            let mut figs = Vec::new();
            for (id, name, f, prefix) in LATENCIES {
                let v = completed_values(records, f);
                let (k, unit) = lat_unit(crate::metrics::percentile(&v, 90.0).unwrap_or(0.0));
                figs.push(cdf_figure(id, name, &[(run.label, v)], slo_markers(s, prefix, k, unit), k, unit));
            }
            sections.push(Section {
                id: "distributions".into(),
                title: "Latency distributions".into(),
                intro: Some("Dashed red lines are the scenario's SLO targets; a curve crossing the line below the target's percentile misses it.".into()),
                figures: figs,
            });
            // Over time.
            let mut figs = Vec::new();
            for (id, name, f, prefix) in LATENCIES {
                let p = data::percentiles_over_time(&axis, records, f);
                figs.push(latency_over_time_figure(id, name, &axis, &p, s, f, prefix));
            }
            sections.push(Section {
                id: "over-time".into(),
                title: "Latency over time".into(),
                intro: None,
                figures: figs,
            });
        } else {
            notes.push("requests.csv was not written (output.requests_csv: false), so latency distributions and load by request are omitted.".into());
        }

        // Load.
        let mut figs = Vec::new();
        if let Some(records) = run.records {
            let offered = data::rate_envelope(&axis, records.iter().map(|r| r.arrival.as_secs_f64()));
            let served = data::rate_envelope(
                &axis,
                records
                    .iter()
                    .filter(|r| r.outcome == Outcome::Completed)
                    .filter_map(|r| r.last_token.map(|t| t.as_secs_f64())),
            );
            figs.push(Figure {
                id: "load-requests".into(),
                title: "Offered and served load".into(),
                caption: format!(
                    "Requests per second arriving (offered) and completing (served), mean per {}-second bucket; bands span the quietest to the busiest second in the bucket.",
                    num_t(axis.width_s)
                ),
                chart: Chart::Time {
                    series: vec![band("offered", &axis, &offered, 0), band("served", &axis, &served, 2)],
                    hlines: vec![],
                    opts: time_opts("requests / s"),
                },
                table: time_table(
                    &axis,
                    &[
                        ("offered mean".into(), &offered.mean),
                        ("offered max (1 s)".into(), &offered.max),
                        ("served mean".into(), &served.mean),
                        ("served max (1 s)".into(), &served.max),
                    ],
                ),
                svg: String::new(),
            });
        }
        if !ts.is_empty() {
            let prompt = cluster_envelope(&axis, ts, |r| r.prompt_tokens_per_s);
            let generated = cluster_envelope(&axis, ts, |r| r.generation_tokens_per_s);
            figs.push(Figure {
                id: "load-tokens".into(),
                title: "Token throughput".into(),
                caption: "Prompt tokens computed (prefill, cache hits excluded) and tokens generated per second, summed over replicas; bands span the lowest to the highest tick in each bucket.".into(),
                chart: Chart::Time {
                    series: vec![band("prompt tokens", &axis, &prompt, 1), band("generated tokens", &axis, &generated, 2)],
                    hlines: vec![],
                    opts: time_opts("tokens / s"),
                },
                table: time_table(
                    &axis,
                    &[
                        ("prompt mean".into(), &prompt.mean),
                        ("prompt max".into(), &prompt.max),
                        ("generated mean".into(), &generated.mean),
                        ("generated max".into(), &generated.max),
                    ],
                ),
                svg: String::new(),
            });
        }
        if !figs.is_empty() {
            sections.push(Section { id: "load".into(), title: "Load".into(), intro: None, figures: figs });
        }

        // Replicas by phase and autoscaling.
        if let Some(sec) = run.fleet.and_then(|f| fleet_section(&axis, s, f, info.header.as_ref())) {
            sections.push(sec);
        }

        // Replicas.
        if !ts.is_empty() {
            let figs = vec![
                replica_figure(
                    "replica-running",
                    "Running requests per replica",
                    "running",
                    "Requests in the running batch.",
                    &axis,
                    ts,
                    |r| Some(r.running as f64),
                    None,
                ),
                replica_figure(
                    "replica-waiting",
                    "Waiting requests per replica",
                    "waiting",
                    "Requests queued on the replica (admitted by the router, not yet scheduled).",
                    &axis,
                    ts,
                    |r| Some(r.waiting as f64),
                    None,
                ),
                replica_figure(
                    "replica-kv",
                    "KV-cache usage per replica",
                    "KV usage (%)",
                    "KV blocks in use (vLLM's kv_cache_usage_perc; free-but-cached blocks count as free).",
                    &axis,
                    ts,
                    |r| Some(r.kv_usage * 100.0),
                    Some(100.0),
                ),
            ];
            sections.push(Section { id: "replicas".into(), title: "Replicas".into(), intro: None, figures: figs });

            // Prefix cache.
            let (_, hit) = replica_envelopes(&axis, ts, |r| r.prefix_hit_rate.map(|h| h * 100.0));
            let mut series = vec![band("hit rate", &axis, &hit, 2)];
            let overall = s.prefix_hit_rate.map(|h| h * 100.0);
            if let Some(o) = overall {
                series.push(line("whole run", &axis, vec![Some(o); axis.t_s.len()], 7, true));
            }
            sections.push(Section {
                id: "prefix".into(),
                title: "Prefix cache".into(),
                intro: None,
                figures: vec![Figure {
                    id: "prefix-hit-rate".into(),
                    title: "Prefix-cache hit rate over time".into(),
                    caption: format!(
                        "Share of looked-up prompt tokens found in the prefix cache, per replica and tick, averaged per bucket (band: lowest to highest replica tick). Whole run: {} (token-weighted).",
                        overall.map_or_else(|| "-".into(), |o| format!("{}%", num(o)))
                    ),
                    chart: Chart::Time { series, hlines: vec![], opts: ChartOpts { y_max: Some(100.0), ..time_opts("hit rate (%)") } },
                    table: time_table(&axis, &[("mean (%)".into(), &hit.mean), ("min (%)".into(), &hit.min), ("max (%)".into(), &hit.max)]),
                    svg: String::new(),
                }],
            });
        }

        // Cost.
        sections.push(Section {
            id: "cost".into(),
            title: "Cost".into(),
            intro: None,
            figures: cost_figures(&axis, &[(run.label, s, run.records)]),
        });

        ReportContext {
            kind: ReportKind::Run,
            title: format!("{} — servesim run", s.scenario),
            servesim_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: info.header.clone(),
            scenario_yaml: info.yaml.clone(),
            verdicts: vec![verdict(run.label, s)],
            summaries: vec![LabeledSummary { label: run.label.to_string(), summary: s.clone() }],
            sections,
            notes,
        }
    }

    /// The report comparing several runs of the same workload (one per router).
    pub fn for_compare(runs: &[RunData<'_>], info: &ScenarioInfo) -> ReportContext {
        let span = runs.iter().map(|r| run_span(r.summary, r.timeseries)).fold(1e-3, f64::max);
        let tick = runs.first().map_or(1.0, |r| tick_interval(r.timeseries));
        let axis = TimeAxis::new(span, tick);
        let labels: Vec<String> = runs.iter().map(|r| r.label.to_string()).collect();
        let mut notes = info.notes.clone();
        let mut sections = Vec::new();

        // Grouped bars.
        let mut figs = Vec::new();
        type StatSel = fn(&Summary) -> &crate::metrics::Stats;
        let stats: [(&str, &str, StatSel); 3] =
            [("ttft", "TTFT", |s| &s.ttft_s), ("tpot", "TPOT", |s| &s.tpot_s), ("e2e", "E2E", |s| &s.e2e_s)];
        for (id, name, sel) in stats {
            let max = runs.iter().filter_map(|r| sel(r.summary).p99).fold(0.0f64, f64::max);
            let (k, unit) = lat_unit(max);
            let groups = vec!["mean".to_string(), "p50".into(), "p90".into(), "p99".into()];
            let series: Vec<BarSeries> = runs
                .iter()
                .map(|r| {
                    let st = sel(r.summary);
                    BarSeries {
                        label: r.label.into(),
                        values: [st.mean, st.p50, st.p90, st.p99].iter().map(|v| v.map(|x| x * k)).collect(),
                    }
                })
                .collect();
            let mut columns = vec!["router".to_string()];
            columns.extend(groups.iter().map(|g| format!("{g} ({unit})")));
            let rows = series
                .iter()
                .map(|s| std::iter::once(s.label.clone()).chain(s.values.iter().map(|v| opt_num(*v))).collect())
                .collect();
            figs.push(Figure {
                id: format!("bars-{id}"),
                title: format!("{name} by router"),
                caption: format!("{name} mean and percentiles over completed requests, one bar per router."),
                chart: Chart::Bars {
                    groups,
                    series,
                    opts: ChartOpts {
                        x_label: "statistic".into(),
                        y_label: format!("{name} ({unit})"),
                        ..Default::default()
                    },
                },
                table: Table { columns, rows },
                svg: String::new(),
            });
        }
        // Requests per replica.
        let n_rep = runs.iter().map(|r| r.summary.per_replica.len()).max().unwrap_or(0);
        let groups: Vec<String> = (0..n_rep).map(|i| format!("r{i}")).collect();
        let series: Vec<BarSeries> = runs
            .iter()
            .map(|r| BarSeries {
                label: r.label.into(),
                values: (0..n_rep).map(|i| r.summary.per_replica.get(i).map(|p| p.requests as f64)).collect(),
            })
            .collect();
        let mut columns = vec!["router".to_string()];
        columns.extend(groups.iter().cloned());
        let rows = series
            .iter()
            .map(|s| std::iter::once(s.label.clone()).chain(s.values.iter().map(|v| opt_num(*v))).collect())
            .collect();
        figs.push(Figure {
            id: "bars-replicas".into(),
            title: "Requests per replica".into(),
            caption: "How evenly each router spread the requests (every outcome counted).".into(),
            chart: Chart::Bars {
                groups,
                series,
                opts: ChartOpts { x_label: "replica".into(), y_label: "requests".into(), ..Default::default() },
            },
            table: Table { columns, rows },
            svg: String::new(),
        });
        sections.push(Section { id: "bars".into(), title: "Router comparison".into(), intro: None, figures: figs });

        // CDF overlays.
        if runs.iter().all(|r| r.records.is_some()) {
            let mut figs = Vec::new();
            for (id, name, f, prefix) in LATENCIES {
                let vals: Vec<(&str, Vec<f64>)> =
                    runs.iter().map(|r| (r.label, completed_values(r.records.unwrap_or(&[]), f))).collect();
                let p90 = vals.iter().filter_map(|(_, v)| crate::metrics::percentile(v, 90.0)).fold(0.0f64, f64::max);
                let (k, unit) = lat_unit(p90);
                let markers = runs.first().map(|r| slo_markers(r.summary, prefix, k, unit)).unwrap_or_default();
                figs.push(cdf_figure(id, name, &vals, markers, k, unit));
            }
            sections.push(Section {
                id: "distributions".into(),
                title: "Latency distributions".into(),
                intro: Some("One curve per router on the same axes; further left is faster.".into()),
                figures: figs,
            });

            // TTFT p90 over time per router.
            let per: Vec<PercentilesOverTime> = runs
                .iter()
                .map(|r| data::percentiles_over_time(&axis, r.records.unwrap_or(&[]), RequestRecord::ttft_s))
                .collect();
            let max = per.iter().flat_map(|p| p.p90.iter().filter_map(|v| *v)).fold(0.0f64, f64::max);
            let (k, unit) = lat_unit(max);
            let series: Vec<BandSeries> = per
                .iter()
                .zip(&labels)
                .enumerate()
                .map(|(i, (p, l))| line(l, &axis, scale_opt(&p.p90, k), i, false))
                .collect();
            let cols: Vec<(String, Vec<Option<f64>>)> =
                series.iter().map(|s| (format!("{} ({unit})", s.label), s.y.clone())).collect();
            let cols_ref: Vec<(String, &[Option<f64>])> = cols.iter().map(|(n, v)| (n.clone(), v.as_slice())).collect();
            let hlines = runs.first().map(|r| slo_markers(r.summary, "ttft_p90", k, unit)).unwrap_or_default();
            sections.push(Section {
                id: "over-time".into(),
                title: "Over time".into(),
                intro: None,
                figures: vec![Figure {
                    id: "time-ttft-p90".into(),
                    title: "TTFT p90 over time".into(),
                    caption: format!(
                        "TTFT p90 of completed requests by arrival time, {}-second buckets, one line per router.",
                        num_t(axis.width_s)
                    ),
                    chart: Chart::Time { series, hlines, opts: time_opts(&format!("TTFT p90 ({unit})")) },
                    table: time_table(&axis, &cols_ref),
                    svg: String::new(),
                }],
            });
        } else {
            notes.push("Some runs have no requests.csv; latency distributions are omitted.".into());
        }
        // Hit rate and waiting over time per router.
        let mut figs = Vec::new();
        if runs.iter().any(|r| !r.timeseries.is_empty()) {
            let hits: Vec<Envelope> = runs
                .iter()
                .map(|r| replica_envelopes(&axis, r.timeseries, |t| t.prefix_hit_rate.map(|h| h * 100.0)).1)
                .collect();
            let series: Vec<BandSeries> = hits
                .iter()
                .zip(&labels)
                .enumerate()
                .map(|(i, (e, l))| line(l, &axis, e.mean.clone(), i, false))
                .collect();
            let cols: Vec<(String, &[Option<f64>])> =
                hits.iter().zip(&labels).map(|(e, l)| (format!("{l} (%)"), e.mean.as_slice())).collect();
            figs.push(Figure {
                id: "time-prefix".into(),
                title: "Prefix-cache hit rate over time".into(),
                caption: "Mean over replica ticks in each bucket, one line per router.".into(),
                chart: Chart::Time {
                    series,
                    hlines: vec![],
                    opts: ChartOpts { y_max: Some(100.0), ..time_opts("hit rate (%)") },
                },
                table: time_table(&axis, &cols),
                svg: String::new(),
            });
            let waits: Vec<Envelope> =
                runs.iter().map(|r| cluster_envelope(&axis, r.timeseries, |t| Some(t.waiting as f64))).collect();
            let series: Vec<BandSeries> =
                waits.iter().zip(&labels).enumerate().map(|(i, (e, l))| band(l, &axis, e, i)).collect();
            let cols: Vec<(String, &[Option<f64>])> = waits
                .iter()
                .zip(&labels)
                .flat_map(|(e, l)| [(format!("{l} mean"), e.mean.as_slice()), (format!("{l} max"), e.max.as_slice())])
                .collect();
            figs.push(Figure {
                id: "time-waiting".into(),
                title: "Waiting requests over time".into(),
                caption: "Requests queued on all replicas together, bucket mean with the lowest-to-highest tick band, one colour per router.".into(),
                chart: Chart::Time { series, hlines: vec![], opts: time_opts("waiting (all replicas)") },
                table: time_table(&axis, &cols),
                svg: String::new(),
            });
        }
        let cost_runs: Vec<(&str, &Summary, Option<&[RequestRecord]>)> =
            runs.iter().map(|r| (r.label, r.summary, r.records)).collect();
        figs.extend(cost_figures(&axis, &cost_runs));
        sections.push(Section {
            id: "time".into(),
            title: "Cache, queues and cost".into(),
            intro: None,
            figures: figs,
        });

        let title = runs.first().map_or("compare".to_string(), |r| r.summary.scenario.clone());
        ReportContext {
            kind: ReportKind::Compare,
            title: format!("{title} — servesim compare"),
            servesim_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: info.header.clone().map(|mut h| {
                h.router = format!("compared: {}", labels.join(", "));
                h
            }),
            scenario_yaml: info.yaml.clone(),
            verdicts: runs.iter().map(|r| verdict(r.label, r.summary)).collect(),
            summaries: runs
                .iter()
                .map(|r| LabeledSummary { label: r.label.to_string(), summary: r.summary.clone() })
                .collect(),
            sections,
            notes,
        }
    }
}

/// Cumulative cost, and cost per million output tokens so far (needs records).
fn cost_figures(axis: &TimeAxis, runs: &[(&str, &Summary, Option<&[RequestRecord]>)]) -> Vec<Figure> {
    let mut figs = Vec::new();
    let cum: Vec<Vec<Option<f64>>> = runs
        .iter()
        .map(|(_, s, _)| {
            let rate = if s.simulated_seconds > 0.0 { s.cost_usd / s.simulated_seconds } else { 0.0 };
            axis.t_s.iter().map(|t| Some(rate * t.min(s.simulated_seconds))).collect()
        })
        .collect();
    let series: Vec<BandSeries> =
        cum.iter().zip(runs).enumerate().map(|(i, (c, (l, _, _)))| line(l, axis, c.clone(), i, false)).collect();
    let cols: Vec<(String, &[Option<f64>])> =
        cum.iter().zip(runs).map(|(c, (l, _, _))| (format!("{l} ($)"), c.as_slice())).collect();
    let s0 = runs.first().map(|r| r.1);
    figs.push(Figure {
        id: "cost-cumulative".into(),
        title: "Cost accumulation".into(),
        caption: format!(
            "GPU cost accrued since the start: GPUs held × time × {}.",
            s0.map_or_else(
                || "price".into(),
                |s| format!("${:.2}/GPU-hour ({})", s.price.usd_per_gpu_hour, s.price.provider)
            )
        ),
        chart: Chart::Time { series, hlines: vec![], opts: time_opts("cost ($)") },
        table: time_table(axis, &cols),
        svg: String::new(),
    });
    if runs.iter().all(|r| r.2.is_some()) {
        let per_m: Vec<Vec<Option<f64>>> = runs
            .iter()
            .zip(&cum)
            .map(|((_, _, recs), cum)| {
                let mut b = vec![0u64; axis.t_s.len()];
                let bk = axis.buckets();
                for r in recs.unwrap_or(&[]).iter().filter(|r| r.outcome == Outcome::Completed) {
                    if let Some(t) = r.last_token {
                        b[bk.index(t.as_secs_f64())] += r.output_tokens as u64;
                    }
                }
                let mut acc = 0u64;
                b.iter()
                    .zip(cum)
                    .map(|(n, c)| {
                        acc += n;
                        if acc > 0 { c.map(|c| c / (acc as f64 / 1e6)) } else { None }
                    })
                    .collect()
            })
            .collect();
        let series: Vec<BandSeries> =
            per_m.iter().zip(runs).enumerate().map(|(i, (c, (l, _, _)))| line(l, axis, c.clone(), i, false)).collect();
        let cols: Vec<(String, &[Option<f64>])> =
            per_m.iter().zip(runs).map(|(c, (l, _, _))| (format!("{l} ($/M)"), c.as_slice())).collect();
        figs.push(Figure {
            id: "cost-per-token".into(),
            title: "Cost per million output tokens".into(),
            caption: "Cost so far divided by output tokens of requests completed so far; it settles to the run's figure as the day goes on and is high while the cluster idles.".into(),
            chart: Chart::Time { series, hlines: vec![], opts: time_opts("$ per M output tokens") },
            table: time_table(axis, &cols),
            svg: String::new(),
        });
    }
    figs
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// Renders a context to one self-contained HTML page.
pub fn render_html(ctx: &ReportContext) -> Result<String, ReportError> {
    let mut ctx = ctx.clone();
    for sec in &mut ctx.sections {
        for fig in &mut sec.figures {
            fig.svg = fig.chart.to_svg()?;
        }
    }
    let env = environment()?;
    let tpl = env.get_template("report.html")?;
    Ok(tpl.render(minijinja::Value::from(minijinja::value::Serde(&ctx)))?)
}

/// The template environment of every page: HTML auto-escaping (templates end in `.html`),
/// the `fmt` number filter, and the shared stylesheet and sorting lines as trusted globals.
pub(crate) fn environment() -> Result<minijinja::Environment<'static>, ReportError> {
    let mut env = minijinja::Environment::new();
    env.add_filter("fmt", |v: minijinja::Value, scale: Option<f64>| -> String {
        f64::try_from(v).map_or_else(|_| "-".to_string(), |x| num(x * scale.unwrap_or(1.0)))
    });
    env.add_global("style", minijinja::Value::from_safe_string(STYLE.to_string()));
    env.add_global("sort_js", minijinja::Value::from_safe_string(SORT_JS.to_string()));
    env.add_template("head.html", HEAD_TEMPLATE)?;
    env.add_template("report.html", TEMPLATE)?;
    env.add_template("plan.html", PLAN_TEMPLATE)?;
    Ok(env)
}

/// The HTML report of one run.
pub fn render_run_html(run: &RunData<'_>, info: &ScenarioInfo) -> Result<String, ReportError> {
    render_html(&ReportContext::for_run(run, info))
}

/// The HTML report comparing runs of the same workload.
pub fn render_compare_html(runs: &[RunData<'_>], info: &ScenarioInfo) -> Result<String, ReportError> {
    render_html(&ReportContext::for_compare(runs, info))
}

// ---------------------------------------------------------------------------------------------
// Scenario copy and result folders.

/// The `scenario.yaml` a run writes next to its outputs: `# servesim-…` header lines (source
/// file, `--set` overrides, router override) and then the original text unchanged.
pub fn scenario_copy(source: &Path, text: &str, sets: &[String], router: Option<&str>) -> String {
    let mut out = format!("# servesim-source: {}\n", source.display());
    for s in sets {
        out.push_str(&format!("# servesim-set: {s}\n"));
    }
    if let Some(r) = router {
        out.push_str(&format!("# servesim-router: {r}\n"));
    }
    out.push_str(text);
    out
}

/// What the `# servesim-…` header lines of a scenario copy record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScenarioCopyMeta {
    pub source: Option<PathBuf>,
    pub sets: Vec<String>,
    pub router: Option<String>,
}

pub fn parse_scenario_copy(text: &str) -> ScenarioCopyMeta {
    let mut m = ScenarioCopyMeta::default();
    for line in text.lines().take_while(|l| l.starts_with("# servesim-")) {
        if let Some(v) = line.strip_prefix("# servesim-source: ") {
            m.source = Some(PathBuf::from(v));
        } else if let Some(v) = line.strip_prefix("# servesim-set: ") {
            m.sets.push(v.to_string());
        } else if let Some(v) = line.strip_prefix("# servesim-router: ") {
            m.router = Some(v.to_string());
        }
    }
    m
}

/// A result folder read back: what `run` wrote.
#[derive(Clone, Debug)]
pub struct ResultDir {
    pub dir: PathBuf,
    pub summary: Summary,
    pub records: Option<Vec<RequestRecord>>,
    pub timeseries: Vec<TsRow>,
    pub fleet: Option<data::FleetData>,
    pub scenario_yaml: Option<String>,
}

impl ResultDir {
    /// Reads `summary.json` (required), `requests.csv`, `timeseries.csv` and `scenario.yaml`
    /// (each optional).
    pub fn read(dir: &Path) -> Result<ResultDir, ReportError> {
        let input = |name: &str, msg: String| ReportError::Input { file: dir.join(name), msg };
        let read_opt = |name: &str| -> Result<Option<Vec<u8>>, ReportError> {
            match std::fs::read(dir.join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(input(name, e.to_string())),
            }
        };
        let summary_bytes = read_opt("summary.json")?.ok_or_else(|| {
            input("summary.json", "not found; pass a folder written by `servesim run` (or `compare --out`)".into())
        })?;
        let summary: Summary =
            serde_json::from_slice(&summary_bytes).map_err(|e| input("summary.json", e.to_string()))?;
        let records = read_opt("requests.csv")?
            .map(|b| crate::metrics::parse_requests_csv(&b).map_err(|e| input("requests.csv", e.to_string())))
            .transpose()?;
        let in_file = |name: &'static str| {
            move |e| match e {
                ReportError::Input { msg, .. } => input(name, msg),
                e => e,
            }
        };
        let ts_bytes = read_opt("timeseries.csv")?;
        let timeseries = match &ts_bytes {
            Some(b) => data::parse_timeseries_csv(b).map_err(in_file("timeseries.csv"))?,
            None => Vec::new(),
        };
        let events = read_opt(data::SCALE_EVENTS_FILE)?;
        let fleet = match &ts_bytes {
            Some(b) => data::FleetData::parse(b, events.as_deref()).map_err(|e| match e {
                ReportError::Input { file, msg } if file == Path::new(data::SCALE_EVENTS_FILE) => {
                    input(data::SCALE_EVENTS_FILE, msg)
                }
                e => in_file("timeseries.csv")(e),
            })?,
            None => None,
        };
        let scenario_yaml = read_opt(SCENARIO_COPY)?.map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(ResultDir { dir: dir.to_path_buf(), summary, records, timeseries, fleet, scenario_yaml })
    }

    /// Resolves the scenario copy (with the overrides it records) for the header; a scenario
    /// that no longer resolves (moved step-time tables, catalog changes) yields a note instead.
    pub fn scenario_info(&self) -> ScenarioInfo {
        let Some(text) = &self.scenario_yaml else {
            return ScenarioInfo {
                header: None,
                yaml: None,
                notes: vec![format!(
                    "{} not found in {}; the scenario header is omitted.",
                    SCENARIO_COPY,
                    self.dir.display()
                )],
            };
        };
        let meta = parse_scenario_copy(text);
        let source = meta.source.clone().filter(|p| p.exists()).unwrap_or_else(|| self.dir.join(SCENARIO_COPY));
        match crate::scenario::load_str(text, &source, &meta.sets) {
            Ok(sc) => {
                let mut info = ScenarioInfo::new(Some(&sc), Some(text.clone()));
                if let (Some(h), Some(r)) = (info.header.as_mut(), meta.router) {
                    h.router = r;
                }
                info
            }
            Err(e) => ScenarioInfo {
                header: None,
                yaml: Some(text.clone()),
                notes: vec![format!("The scenario copy no longer resolves ({e}); the header is omitted.")],
            },
        }
    }

    pub fn run_data(&self) -> RunData<'_> {
        RunData {
            label: self.summary.scenario.as_str(),
            summary: &self.summary,
            records: self.records.as_deref(),
            timeseries: &self.timeseries,
            fleet: self.fleet.as_ref(),
        }
    }
}

//! HTML report of a validation: per comparison, the error table, real-vs-simulated CDFs
//! (TTFT, TPOT, E2E) and KV usage / running requests over time; then the aggregate table.
//! Rendered from a serialisable context with minijinja (auto-escaping on: every trace name,
//! note and label is user-supplied) and the report module's plotters SVG charts; no script,
//! no external resource.

use super::Aggregate;
use super::cmd::Validated;
use crate::report::ReportError;
use crate::report::charts::{BandSeries, CdfSeries, ChartOpts, cdf_chart, time_chart};
use serde::Serialize;

const TEMPLATE: &str = include_str!("template.html");

#[derive(Serialize)]
struct Row {
    stat: String,
    real: String,
    sim: String,
    err: String,
    tol: String,
    status: &'static str,
}

#[derive(Serialize)]
struct Section {
    id: String,
    label: String,
    passed: bool,
    rows: Vec<Row>,
    ks: Vec<(String, String)>,
    notes: Vec<String>,
    charts: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Ctx {
    title: String,
    version: &'static str,
    sections: Vec<Section>,
    aggregate: Vec<Vec<String>>,
    passed: bool,
}

fn cdf_points(v: &[f64], scale: f64) -> Vec<(f64, f64)> {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(f64::total_cmp);
    crate::report::data::cdf_points(&s).into_iter().map(|(x, f)| (x * scale, f)).collect()
}

fn val(stat: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if stat == "hit_rate" || stat == "kv_usage_mean" => format!("{x:.3}"),
        Some(x) if stat == "preemptions" => format!("{x:.0}"),
        Some(x) if stat.starts_with("throughput") || stat.starts_with("output") => format!("{x:.2}"),
        Some(x) => format!("{:.2} ms", x * 1e3),
    }
}

/// Renders the report.
pub fn render(vs: &[Validated], agg: &[Aggregate]) -> Result<String, ReportError> {
    let mut sections = Vec::new();
    for (i, v) in vs.iter().enumerate() {
        let c = &v.comparison;
        let rows = c
            .rows
            .iter()
            .map(|r| Row {
                stat: r.stat.clone(),
                real: val(&r.stat, r.real),
                sim: val(&r.stat, r.sim),
                err: r.signed_err.map_or("-".into(), |e| format!("{e:+.1} {}", r.unit)),
                tol: r.tolerance.map_or(String::new(), |t| format!("{t} {}", r.unit)),
                status: match r.passed {
                    Some(true) => "ok",
                    Some(false) => "fail",
                    None => "",
                },
            })
            .collect();
        let mut charts = Vec::new();
        for (m, name) in [("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "E2E")] {
            if let (Some(a), Some(b)) = (v.real.dists.get(m), v.sim.dists.get(m)) {
                let series = vec![
                    CdfSeries { label: "real".into(), points: cdf_points(a, 1e3) },
                    CdfSeries { label: "simulated".into(), points: cdf_points(b, 1e3) },
                ];
                let opts = ChartOpts {
                    x_label: format!("{name} (ms)"),
                    y_label: "fraction of requests".into(),
                    ..Default::default()
                };
                charts.push((format!("{name} distribution, real vs simulated"), cdf_chart(&series, &[], &opts)?));
            }
        }
        for (title, r, s, y) in [
            ("KV cache usage over time", &v.real.kv_usage, &v.sim.kv_usage, "KV usage (fraction, mean over replicas)"),
            ("Running requests over time", &v.real.running, &v.sim.running, "running requests (all replicas)"),
        ] {
            if r.is_empty() || s.is_empty() {
                continue;
            }
            let line = |label: &str, pts: &[(f64, f64)], color: usize| BandSeries {
                label: label.into(),
                x: pts.iter().map(|p| p.0).collect(),
                y: pts.iter().map(|p| Some(p.1)).collect(),
                band: None,
                dashed: color == 1,
                color: Some(color),
            };
            let series = vec![line("real", &thin(r), 0), line("simulated", &thin(s), 1)];
            let opts = ChartOpts { x_label: "time (s)".into(), y_label: y.into(), ..Default::default() };
            charts.push((title.to_string(), time_chart(&series, &[], &opts)?));
        }
        sections.push(Section {
            id: format!("c{i}"),
            label: c.label.clone(),
            passed: c.passed,
            rows,
            ks: c.ks.iter().map(|(k, d)| (k.clone(), format!("{d:.3}"))).collect(),
            notes: c.notes.clone(),
            charts,
        });
    }
    let aggregate = agg
        .iter()
        .map(|a| {
            vec![
                a.stat.clone(),
                a.runs.to_string(),
                format!("{:.1} {}", a.median, a.unit),
                format!("{:.1} {}", a.worst, a.unit),
                a.worst_run.clone(),
            ]
        })
        .collect();
    let ctx = Ctx {
        title: if vs.len() == 1 {
            format!("Validation: {}", vs[0].case_label)
        } else {
            format!("Validation: {} comparisons", vs.len())
        },
        version: env!("CARGO_PKG_VERSION"),
        passed: vs.iter().all(|v| v.comparison.passed),
        sections,
        aggregate,
    };
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("validate.html", TEMPLATE).map_err(|e| ReportError::Chart(e.to_string()))?;
    let tpl = env.get_template("validate.html").map_err(|e| ReportError::Chart(e.to_string()))?;
    tpl.render(minijinja::context! { ctx => minijinja::Value::from(minijinja::value::Serde(&ctx)) })
        .map_err(|e| ReportError::Chart(e.to_string()))
}

/// At most ~400 points per line (every k-th, keeping the last).
fn thin(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let k = pts.len().div_ceil(400).max(1);
    let mut v: Vec<(f64, f64)> = pts.iter().step_by(k).copied().collect();
    if let Some(l) = pts.last()
        && v.last() != Some(l)
    {
        v.push(*l);
    }
    v
}

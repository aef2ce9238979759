//! The planner's HTML page (`servesim plan --out DIR` writes `DIR/index.html`; `servesim
//! report DIR` rebuilds it from `plan.json`).
//!
//! Built like the run report: [`PlanPage`] is plain serializable data taken from the
//! [`PlanReport`] that `plan.json` holds (so the page never disagrees with the JSON/CSV), the
//! charts are [`Chart`] values drawn to SVG at render time, and the page is the embedded
//! `plan.html` template sharing the run report's stylesheet and table-sorting lines. The
//! question a reader brings is "what should I deploy and why that", so the page leads with the
//! recommendation and its SLO headroom, then shows the trade-off (Pareto fronts), the
//! alternatives and why they lost, how fragile the choice is (sensitivity), the pay-per-token
//! alternative, and finally every point and every pruning decision as tables.

use super::charts::{Highlight, Marker, ScatterSeries, XyLine};
use super::{Chart, ChartOpts, Figure, KeyValue, ReportError, Table, num, num_t};
use crate::plan::report::{PlanReport, PointRow};
use serde::Serialize;

/// Longest reason shown in the all-points table (the pruning table has the full text).
pub const MAX_REASON_CHARS: usize = 160;

/// A headline figure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kpi {
    pub value: String,
    pub label: String,
}

/// The recommendation (or why there is none), with its SLO checks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Headline {
    pub found: bool,
    pub title: String,
    pub point: Option<String>,
    pub why: String,
    pub kpis: Vec<Kpi>,
    pub checks: Table,
}

/// One row of the all-points table; `class` greys infeasible and pruned rows, marks the
/// recommendation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointLine {
    pub class: String,
    pub cells: Vec<String>,
    /// Full reason when the cell shows a shortened one.
    pub reason_full: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointsTable {
    pub columns: Vec<String>,
    pub rows: Vec<PointLine>,
}

/// The pay-per-token comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PayCard {
    pub verdict: String,
    pub kpis: Vec<Kpi>,
    pub figure: Figure,
}

/// Everything the plan template sees.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanPage {
    pub title: String,
    pub scenario: String,
    pub servesim_version: String,
    pub headline: Headline,
    /// Objective, SLOs, window, seeds, search, space counts.
    pub setup: Vec<KeyValue>,
    pub pareto: Vec<Figure>,
    pub runners_up: Table,
    pub per_gpu: Table,
    pub sensitivity: Table,
    pub sensitivity_notes: Vec<String>,
    pub pay_per_token: Option<PayCard>,
    pub points: PointsTable,
    pub pruning: Table,
    pub pruning_summary: Vec<String>,
    pub notes: Vec<String>,
}

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue { key: k.into(), value: v }
}

fn money(v: f64) -> String {
    if v >= 100.0 { format!("${v:.0}") } else { format!("${v:.2}") }
}

/// `86.7 ms`, `2.41 s`, `-` for unbounded / missing.
fn secs(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x < 1.0 => format!("{} ms", num_t(x * 1e3)),
        Some(x) if x.is_finite() => format!("{} s", num_t(x)),
        _ => "-".into(),
    }
}

fn ms_cell(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| "-".into(), |x| num(x * 1e3))
}

/// Enum values as written in the scenario file (`min_cost`, `peak_hour`).
fn snake<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "-".into(),
    }
}

/// Large token counts in words a reader scans: 3.08 B, 45.3 M.
fn tokens(v: f64) -> String {
    if v >= 1e9 {
        format!("{} B", num_t(v / 1e9))
    } else if v >= 1e6 {
        format!("{} M", num_t(v / 1e6))
    } else {
        num_t(v)
    }
}

fn pct(x: f64) -> String {
    format!("{:+.0} %", x * 100.0)
}

fn shorten(s: &str, n: usize) -> (String, bool) {
    if s.chars().count() <= n {
        (s.to_string(), false)
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        (t, true)
    }
}

/// SLO targets of the plan as (metric key, label, target, accessor on a point row).
type RowMetric = fn(&PointRow) -> Option<f64>;

fn slo_rows(rep: &PlanReport) -> Vec<(&'static str, f64, Option<RowMetric>)> {
    let s = &rep.context.slo;
    let all: [(&'static str, Option<f64>, Option<RowMetric>); 9] = [
        ("TTFT p50", s.ttft_p50_s, None),
        ("TTFT p90", s.ttft_p90_s, Some(|r| r.ttft_p90_s)),
        ("TTFT p99", s.ttft_p99_s, Some(|r| r.ttft_p99_s)),
        ("TPOT p50", s.tpot_p50_s, None),
        ("TPOT p90", s.tpot_p90_s, Some(|r| r.tpot_p90_s)),
        ("TPOT p99", s.tpot_p99_s, None),
        ("E2E p90", s.e2e_p90_s, Some(|r| r.e2e_p90_s)),
        ("E2E p99", s.e2e_p99_s, None),
        ("error rate", s.max_error_rate, Some(|r| r.error_rate)),
    ];
    all.into_iter().filter_map(|(n, t, f)| t.map(|t| (n, t, f))).collect()
}

fn slo_value(name: &str, v: f64) -> String {
    if name == "error rate" { format!("{}%", num_t(v * 100.0)) } else { secs(Some(v)) }
}

impl PlanPage {
    pub fn build(rep: &PlanReport) -> PlanPage {
        let ctx = &rep.context;
        let plan = &ctx.plan;
        let mut notes = Vec::new();
        let slos = slo_rows(rep);

        // Headline.
        let headline = match &rep.recommendation {
            Some(r) => {
                let per_m = if ctx.daily_output_tokens > 0 {
                    money(r.cost_usd_per_day / (ctx.daily_output_tokens as f64 / 1e6))
                } else {
                    "-".into()
                };
                let mut kpis = vec![
                    Kpi { value: money(r.cost_usd_per_day), label: "per day".into() },
                    Kpi {
                        value: format!("{} × {}", r.replicas, r.gpu),
                        label: format!("replicas, TP{} = {} GPUs", r.tp, r.gpus),
                    },
                    Kpi {
                        value: format!("${:.2}", r.usd_per_gpu_hour),
                        label: format!("per GPU-hour ({})", r.provider),
                    },
                    Kpi { value: per_m, label: "per M output tokens".into() },
                    Kpi { value: secs(r.ttft_p90_s), label: "TTFT p90 (worst seed)".into() },
                    Kpi { value: secs(r.tpot_p90_s), label: "TPOT p90 (worst seed)".into() },
                ];
                if let Some(p) = &rep.pay_per_token {
                    kpis.push(Kpi { value: money(p.api_cost_usd_per_day), label: "same traffic pay-per-token".into() });
                }
                let rows = slos
                    .iter()
                    .map(|(name, target, f)| {
                        let actual = f.and_then(|f| f(r));
                        let by = match actual {
                            Some(a) if *target > 0.0 => format!("{} headroom", pct_plain((target - a) / target)),
                            Some(_) => "at target".into(),
                            None => "checked (not tabulated per point)".into(),
                        };
                        vec![
                            name.to_string(),
                            format!("≤ {}", slo_value(name, *target)),
                            actual.map_or_else(|| "-".into(), |a| slo_value(name, a)),
                            by,
                        ]
                    })
                    .collect();
                Headline {
                    found: true,
                    title: format!("Deploy {} × {} (TP{}, {}, router {})", r.replicas, r.gpu, r.tp, r.model, r.router),
                    point: Some(r.id.clone()),
                    why: rep.why.clone(),
                    kpis,
                    checks: Table {
                        columns: vec![
                            "SLO".into(),
                            "target".into(),
                            "recommendation (worst seed)".into(),
                            "margin".into(),
                        ],
                        rows,
                    },
                }
            }
            None => Headline {
                found: false,
                title: "No configuration meets every SLO".into(),
                point: None,
                why: rep.why.clone(),
                kpis: rep
                    .pay_per_token
                    .iter()
                    .map(|p| Kpi { value: money(p.api_cost_usd_per_day), label: "same traffic pay-per-token".into() })
                    .collect(),
                checks: Table::default(),
            },
        };

        // Setup.
        let slo_text =
            slos.iter().map(|(n, t, _)| format!("{n} ≤ {}", slo_value(n, *t))).collect::<Vec<_>>().join(", ");
        let sp = &rep.space;
        let setup = vec![
            kv("objective", snake(&plan.objective)),
            kv("SLOs", if slo_text.is_empty() { "none".into() } else { slo_text }),
            kv(
                "judged over",
                format!(
                    "{} ({} s window from {} s, {} requests offered)",
                    snake(&plan.evaluate),
                    num_t(ctx.window.seconds),
                    num_t(ctx.window.start_s),
                    ctx.window.requests
                ),
            ),
            kv("simulated per point", format!("{} s of arrivals", num_t(ctx.point_duration_s))),
            kv("seeds", format!("{} at the boundary (a count is accepted only if every seed passes)", plan.seeds)),
            kv("search", snake(&plan.search)),
            kv("GPUs paid", format!("{} h per day", num_t(plan.hours_per_day))),
            kv("space", sp.describe()),
            kv(
                "daily traffic",
                format!(
                    "{} requests, {} input + {} output tokens",
                    ctx.daily_requests,
                    tokens(ctx.daily_input_tokens as f64),
                    tokens(ctx.daily_output_tokens as f64)
                ),
            ),
        ];

        // Pareto fronts.
        let mut pareto = Vec::new();
        let ttft_target = rep.context.slo.ttft_p90_s;
        let tpot_target = rep.context.slo.tpot_p90_s;
        pareto.push(pareto_figure(
            rep,
            "pareto-ttft",
            "TTFT p90",
            |r| r.ttft_p90_s,
            &rep.pareto_cost_vs_ttft_p90,
            ttft_target,
        ));
        pareto.push(pareto_figure(
            rep,
            "pareto-tpot",
            "TPOT p90",
            |r| r.tpot_p90_s,
            &rep.pareto_cost_vs_tpot_p90,
            tpot_target,
        ));

        // Runners-up.
        let runners_up = Table {
            columns: ["point", "$/day", "GPUs", "TTFT p90", "TPOT p90", "TTFT spread over seeds", "why it lost"]
                .map(String::from)
                .to_vec(),
            rows: rep
                .runners_up
                .iter()
                .map(|u| {
                    let p = &u.point;
                    vec![
                        p.id.clone(),
                        money(p.cost_usd_per_day),
                        p.gpus.to_string(),
                        secs(p.ttft_p90_s),
                        secs(p.tpot_p90_s),
                        secs(p.ttft_p90_spread_s),
                        u.why_lost.clone(),
                    ]
                })
                .collect(),
        };

        // Per GPU.
        let per_gpu = Table {
            columns: ["GPU", "$/GPU-hour", "best feasible point", "$/day", "price change to match", "verdict"]
                .map(String::from)
                .to_vec(),
            rows: rep
                .per_gpu
                .iter()
                .map(|g| {
                    vec![
                        g.gpu.clone(),
                        format!("${:.2}", g.usd_per_gpu_hour),
                        g.best.clone().unwrap_or_else(|| "-".into()),
                        g.best_cost_usd_per_day.map_or_else(|| "-".into(), money),
                        g.price_change_to_match.map_or_else(|| "-".into(), pct),
                        g.note.clone(),
                    ]
                })
                .collect(),
        };

        // Sensitivity.
        let s = &rep.sensitivity;
        let mut sens_rows = Vec::new();
        let mut sensitivity_notes = Vec::new();
        if let Some(scale) = s.traffic_scale {
            sens_rows.push(vec![
                format!("traffic ×{} ({})", num_t(scale), s.traffic_set.clone().unwrap_or_default()),
                match (s.recommendation_replicas_at_scaled_traffic, s.recommendation_cost_at_scaled_traffic) {
                    (Some(n), Some(c)) => format!("{n} replicas, {}", money(c)),
                    _ => "not feasible in range".into(),
                },
                s.cheapest_at_scaled_traffic.clone().unwrap_or_else(|| "-".into()),
                s.cheapest_cost_at_scaled_traffic.map_or_else(|| "-".into(), money),
            ]);
            if !s.note.is_empty() {
                sensitivity_notes.push(s.note.clone());
            }
        } else {
            sensitivity_notes.push(
                "No traffic sensitivity: set plan.sensitivity.traffic_key (e.g. workload.engineers) to re-plan at higher traffic."
                    .into(),
            );
        }
        let rec_cost = rep.recommendation.as_ref().map(|r| r.cost_usd_per_day);
        for p in &s.price {
            sens_rows.push(vec![
                format!("{} price {}", rep.recommendation.as_ref().map_or("GPU", |r| r.gpu.as_str()), pct(p.change)),
                rec_cost.map_or_else(|| "-".into(), |c| money(c * (1.0 + p.change))),
                p.winner.clone().unwrap_or_else(|| "-".into()),
                p.winner_cost_usd_per_day.map_or_else(|| "-".into(), money),
            ]);
        }
        if let Some(r) = &rep.recommendation {
            let flips: Vec<String> = s
                .price
                .iter()
                .filter(|p| p.winner.as_deref().is_some_and(|w| w != r.id))
                .map(|p| pct(p.change))
                .collect();
            sensitivity_notes.push(if s.price.is_empty() {
                "No price changes were asked for (plan.sensitivity.price_changes).".into()
            } else if flips.is_empty() {
                "The recommendation stays the cheapest for every price change tested.".into()
            } else {
                format!("Another point wins at a price change of {}.", flips.join(", "))
            });
        }
        let sensitivity = Table {
            columns: ["what if", "recommendation then", "cheapest point then", "its $/day"].map(String::from).to_vec(),
            rows: sens_rows,
        };

        // Pay per token.
        let pay_per_token = rep.pay_per_token.as_ref().map(|p| {
            let today = (p.daily_input_tokens + p.daily_output_tokens) as f64;
            let per_token = if today > 0.0 { p.api_cost_usd_per_day / today } else { 0.0 };
            let mut kpis = vec![
                Kpi { value: money(p.api_cost_usd_per_day), label: "per day pay-per-token".into() },
                Kpi {
                    value: p.dedicated_cost_usd_per_day.map_or_else(|| "-".into(), money),
                    label: "per day dedicated (recommendation)".into(),
                },
                Kpi { value: tokens(today), label: "tokens per day now".into() },
                Kpi {
                    value: p.break_even_tokens_per_day.map_or_else(|| "-".into(), tokens),
                    label: "tokens per day at break-even".into(),
                },
            ];
            kpis.push(Kpi {
                value: format!("${} / ${}", num_t(p.input_usd_per_million), num_t(p.output_usd_per_million)),
                label: format!(
                    "per M input / output tokens{}",
                    p.provider.as_ref().map_or(String::new(), |x| format!(" ({x})"))
                ),
            });
            PayCard {
                verdict: format!("Cheaper: {}.", p.cheaper),
                kpis,
                figure: break_even_figure(rep, today, per_token),
            }
        });

        // All points.
        let rec_id = rep.recommendation.as_ref().map(|r| r.id.as_str());
        let columns = [
            "point",
            "autoscaler",
            "replicas",
            "GPUs",
            "$/day",
            "status",
            "meets SLOs",
            "TTFT p90 (ms)",
            "TPOT p90 (ms)",
            "seeds",
            "reason",
        ]
        .map(String::from)
        .to_vec();
        // Default order for a reader: the recommendation, then points meeting the SLOs by cost,
        // then the rest (the table sorts by any column; plan.csv keeps enumeration order).
        let rank = |r: &PointRow| -> u8 {
            match (Some(r.id.as_str()) == rec_id, r.status.as_str(), r.feasible) {
                (true, ..) => 0,
                (_, "simulated", true) => 1,
                (_, "inferred", true) => 2,
                (_, "simulated", false) => 3,
                (_, "inferred", false) => 4,
                _ => 5,
            }
        };
        let mut ordered: Vec<&PointRow> = rep.points.iter().collect();
        ordered.sort_by(|a, b| {
            rank(a).cmp(&rank(b)).then(a.cost_usd_per_day.total_cmp(&b.cost_usd_per_day)).then(a.id.cmp(&b.id))
        });
        let rows = ordered
            .into_iter()
            .map(|r| {
                let class = if Some(r.id.as_str()) == rec_id {
                    "rec"
                } else if r.status == "pruned" || !r.feasible {
                    "dim"
                } else {
                    ""
                };
                let (reason, cut) = shorten(&r.reason, MAX_REASON_CHARS);
                PointLine {
                    class: class.into(),
                    cells: vec![
                        r.id.clone(),
                        r.autoscaler.clone(),
                        r.replicas.to_string(),
                        r.gpus.to_string(),
                        format!("{:.0}", r.cost_usd_per_day),
                        r.status.clone(),
                        if r.status == "pruned" { "-".into() } else { (if r.feasible { "yes" } else { "no" }).into() },
                        ms_cell(r.ttft_p90_s),
                        ms_cell(r.tpot_p90_s),
                        r.seeds.to_string(),
                        reason,
                    ],
                    reason_full: cut.then(|| r.reason.clone()),
                }
            })
            .collect();
        let points = PointsTable { columns, rows };

        // Pruning.
        let mut prune_rows = Vec::new();
        let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
        for g in &rep.configurations {
            if let Some(p) = &g.pruned {
                let label = match p.kind.as_str() {
                    "roofline" => "roofline (every replica count)".to_string(),
                    k => k.to_string(),
                };
                *by_kind.entry(label).or_default() += 1;
                prune_rows.push(vec![g.group.id.clone(), p.kind.as_str().into(), "all".into(), p.reason.clone()]);
            }
            if let Some(m) = g.roofline_min.filter(|m| *m > g.group.min_replicas) {
                *by_kind.entry("roofline (the lowest replica counts only)".into()).or_default() += 1;
                let (lo, hi) = (g.group.min_replicas, (m - 1).min(g.group.max_replicas));
                prune_rows.push(vec![
                    g.group.id.clone(),
                    "roofline".into(),
                    if lo == hi { lo.to_string() } else { format!("{lo}–{hi}") },
                    g.roofline_reason.clone().unwrap_or_default(),
                ]);
            }
            if g.pruned.is_none()
                && let Some(i) = &g.infeasible
            {
                *by_kind.entry("no feasible count (simulated)".into()).or_default() += 1;
                prune_rows.push(vec![g.group.id.clone(), "infeasible".into(), "all".into(), i.clone()]);
            }
        }
        let pruning_summary = by_kind.iter().map(|(k, n)| format!("{k}: {n} configuration(s)")).collect();
        let pruning = Table {
            columns: ["configuration", "rejected by", "replica counts", "reason"].map(String::from).to_vec(),
            rows: prune_rows,
        };

        if rep.space.inferred > 0 {
            notes.push(format!(
                "{} points were not simulated: the bisection inferred them from a neighbour (more replicas are assumed never to hurt). They appear in the table, not in the charts.",
                rep.space.inferred
            ));
        }
        if rep.space.skipped > 0 {
            notes.push(format!(
                "{} autoscaled points were not simulated over a day: plan.day.top ({}) gives day runs only to the configurations with the cheapest fixed fleets; their rows say which fixed cost left them out.",
                rep.space.skipped,
                plan.day.top.unwrap_or(crate::plan::DEFAULT_DAY_TOP)
            ));
        }
        if !plan.candidates.autoscaler.iter().all(|a| a == "none") || plan.hours_per_day < 24.0 {
            notes.push(format!("GPUs are paid {} h per day.", num_t(plan.hours_per_day)));
        }

        PlanPage {
            title: format!("{} — servesim plan", ctx.scenario),
            scenario: ctx.scenario.clone(),
            servesim_version: env!("CARGO_PKG_VERSION").to_string(),
            headline,
            setup,
            pareto,
            runners_up,
            per_gpu,
            sensitivity,
            sensitivity_notes,
            pay_per_token,
            points,
            pruning,
            pruning_summary,
            notes,
        }
    }
}

fn pct_plain(x: f64) -> String {
    format!("{}%", num_t((x * 100.0).max(0.0)))
}

/// Cost against one latency metric for every simulated point: feasible points coloured by GPU,
/// infeasible ones grey, the Pareto front as a staircase, the recommendation ringed.
fn pareto_figure(
    rep: &PlanReport,
    id: &str,
    name: &str,
    metric: RowMetric,
    front: &[String],
    target: Option<f64>,
) -> Figure {
    let sim: Vec<&PointRow> = rep.points.iter().filter(|r| r.status == "simulated").collect();
    let feasible_max = sim.iter().filter(|r| r.feasible).filter_map(|r| metric(r)).fold(0.0f64, f64::max);
    let (k, unit) = super::lat_unit(feasible_max.max(target.unwrap_or(0.0)));
    // Visible range: the feasible points and the target; far-off infeasible points go on the
    // top edge instead of squashing the rest.
    let y_top = super::charts::nice_max(feasible_max.max(target.unwrap_or(0.0)) * k * 1.25);
    let mut gpus: Vec<String> = rep.per_gpu.iter().map(|g| g.gpu.clone()).collect();
    for r in &sim {
        if !gpus.contains(&r.gpu) {
            gpus.push(r.gpu.clone());
        }
    }
    let mut series: Vec<ScatterSeries> = gpus
        .iter()
        .enumerate()
        .map(|(i, g)| ScatterSeries {
            label: g.clone(),
            points: sim
                .iter()
                .filter(|r| r.feasible && &r.gpu == g)
                .map(|r| (r.cost_usd_per_day, metric(r).map_or(f64::INFINITY, |v| v * k)))
                .collect(),
            grey: false,
            outline: false,
            color: Some(i),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let infeasible: Vec<(f64, f64)> = sim
        .iter()
        .filter(|r| !r.feasible)
        .map(|r| (r.cost_usd_per_day, metric(r).map_or(f64::INFINITY, |v| v * k)))
        .collect();
    let unbounded = infeasible.iter().filter(|p| !p.1.is_finite()).count();
    let n_infeasible = infeasible.len();
    if !infeasible.is_empty() {
        series.push(ScatterSeries {
            label: "misses an SLO".into(),
            points: infeasible,
            grey: true,
            outline: false,
            color: None,
        });
    }
    let mut fp: Vec<(f64, f64)> = front
        .iter()
        .filter_map(|id| rep.points.iter().find(|r| &r.id == id))
        .filter_map(|r| metric(r).map(|v| (r.cost_usd_per_day, v * k)))
        .collect();
    fp.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut stair = Vec::new();
    for (i, p) in fp.iter().enumerate() {
        if i > 0 {
            stair.push((p.0, fp[i - 1].1));
        }
        stair.push(*p);
    }
    series.push(ScatterSeries {
        label: "Pareto front".into(),
        points: fp.clone(),
        grey: false,
        outline: true,
        color: None,
    });
    let lines = vec![XyLine { label: String::new(), points: stair, dashed: false, color: None }];
    let hlines: Vec<Marker> = target
        .map(|t| Marker { label: format!("SLO {name} ≤ {} {unit}", num_t(t * k)), value: t * k })
        .into_iter()
        .collect();
    let highlight = rep
        .recommendation
        .as_ref()
        .and_then(|r| metric(r).map(|v| Highlight { label: "recommended".into(), x: r.cost_usd_per_day, y: v * k }));
    let mut rows: Vec<&PointRow> = sim.clone();
    rows.sort_by(|a, b| a.cost_usd_per_day.total_cmp(&b.cost_usd_per_day).then(a.id.cmp(&b.id)));
    let table = Table {
        columns: vec![
            "point".into(),
            "$/day".into(),
            format!("{name} ({unit})"),
            "meets SLOs".into(),
            "on the front".into(),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    format!("{:.0}", r.cost_usd_per_day),
                    metric(r).map_or_else(|| "unbounded".into(), |v| num(v * k)),
                    (if r.feasible { "yes" } else { "no" }).into(),
                    (if front.contains(&r.id) { "yes" } else { "" }).into(),
                ]
            })
            .collect(),
    };
    let above = series
        .iter()
        .filter(|s| !s.outline)
        .flat_map(|s| &s.points)
        .filter(|p| !(p.1.is_finite() && p.1 <= y_top))
        .count();
    let mut caption = format!(
        "Each dot is one simulated point (a configuration at one replica count): its cost per day against its worst {name} over the seeds. Coloured dots meet every SLO (one colour per GPU); {n_infeasible} grey dots miss at least one."
    );
    if above > 0 {
        caption.push_str(&format!(" {above} points lie above the axis and sit on its top edge as △"));
        caption.push_str(&if unbounded > 0 {
            format!(" ({unbounded} of them left requests unfinished: {name} unbounded).")
        } else {
            ".".to_string()
        });
    }
    caption.push_str(&format!(
        " Black rings joined by a staircase are the Pareto front ({} point{}): no point is both cheaper and faster. The red ring is the recommendation.",
        fp.len(),
        if fp.len() == 1 { "" } else { "s" }
    ));
    Figure {
        id: id.into(),
        title: format!("Cost vs {name}"),
        caption,
        chart: Chart::Xy {
            points: series,
            lines,
            hlines,
            vlines: vec![],
            highlight,
            opts: ChartOpts {
                x_label: "cost per day ($)".into(),
                y_label: format!("{name} ({unit})"),
                x_max: None,
                y_min: None,
                y_max: Some(y_top),
            },
        },
        table,
        svg: String::new(),
    }
}

/// Daily cost against daily token volume: the pay-per-token line through the origin, the
/// dedicated recommendation flat (it is paid whether used or not), today's volume and the
/// break-even volume.
fn break_even_figure(rep: &PlanReport, today: f64, per_token: f64) -> Figure {
    let p = rep.pay_per_token.as_ref().expect("called with a pay-per-token report");
    let be = p.break_even_tokens_per_day;
    let top = today.max(be.unwrap_or(0.0)) * 1.4;
    let (div, unit) = if top >= 1e9 {
        (1e9, "billions")
    } else if top >= 1e6 {
        (1e6, "millions")
    } else {
        (1.0, "")
    };
    let x_max = super::charts::nice_max(top / div);
    let mut lines = vec![XyLine {
        label: "pay-per-token".into(),
        points: vec![(0.0, 0.0), (x_max, per_token * x_max * div)],
        dashed: false,
        color: Some(0),
    }];
    if let Some(d) = p.dedicated_cost_usd_per_day {
        lines.push(XyLine {
            label: "dedicated".into(),
            points: vec![(0.0, d), (x_max, d)],
            dashed: false,
            color: Some(2),
        });
    }
    let mut points = Vec::new();
    let s = &rep.sensitivity;
    if let (Some(scale), Some(c)) = (s.traffic_scale, s.recommendation_cost_at_scaled_traffic) {
        points.push(ScatterSeries {
            label: format!("dedicated, ×{} traffic", num_t(scale)),
            points: vec![(today * scale / div, c)],
            grey: false,
            outline: false,
            color: Some(2),
        });
    }
    let mut vlines = vec![Marker { label: "today's volume".into(), value: today / div }];
    if let Some(b) = be {
        vlines.push(Marker { label: "break-even".into(), value: b / div });
    }
    let x_label = if unit.is_empty() { "tokens per day".to_string() } else { format!("tokens per day ({unit})") };
    let mut rows = Vec::new();
    for f in [0.25, 0.5, 1.0, 1.5, 2.0] {
        let v = today * f;
        rows.push(vec![
            format!("{} × today", num_t(f)),
            tokens(v),
            money(per_token * v),
            p.dedicated_cost_usd_per_day.map_or_else(|| "-".into(), money),
        ]);
    }
    if let Some(b) = be {
        rows.push(vec!["break-even".into(), tokens(b), money(per_token * b), money(per_token * b)]);
    }
    Figure {
        id: "break-even".into(),
        title: "Pay-per-token vs dedicated".into(),
        caption: format!(
            "Daily cost of the same input/output mix at the API's list price (a line through zero) against the dedicated recommendation, which costs the same however little it is used. Above {} tokens per day dedicated GPUs are cheaper. The flat line holds only up to the traffic the recommendation was sized for{}.",
            be.map_or_else(|| "the break-even".to_string(), tokens),
            if points.is_empty() {
                String::new()
            } else {
                "; the dot is the re-planned cost at higher traffic".to_string()
            }
        ),
        chart: Chart::Xy {
            points,
            lines,
            hlines: vec![],
            vlines,
            highlight: None,
            opts: ChartOpts {
                x_label,
                y_label: "cost per day ($)".into(),
                x_max: Some(x_max),
                y_min: None,
                y_max: None,
            },
        },
        table: Table {
            columns: ["volume", "tokens/day", "pay-per-token $/day", "dedicated $/day"].map(String::from).to_vec(),
            rows,
        },
        svg: String::new(),
    }
}

/// Renders the plan page to one self-contained HTML file.
pub fn render_plan_html(rep: &PlanReport) -> Result<String, ReportError> {
    render_page(&PlanPage::build(rep))
}

pub fn render_page(page: &PlanPage) -> Result<String, ReportError> {
    let mut page = page.clone();
    for f in page.pareto.iter_mut().chain(page.pay_per_token.iter_mut().map(|p| &mut p.figure)) {
        f.svg = f.chart.to_svg()?;
    }
    let env = super::environment()?;
    let tpl = env.get_template("plan.html")?;
    Ok(tpl.render(minijinja::Value::from(minijinja::value::Serde(&page)))?)
}

//! From group results to the plan report: one row per point of the space, the ranking under
//! the objective, recommendation and runners-up, Pareto fronts, the pay-per-token comparison
//! and sensitivity; written as `plan.json`, `plan.csv`, `plan.md` and the HTML page `index.html`.

use super::run::PlanContext;
use super::search::GroupResult;
use super::{Objective, PlanConfig};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// One point of the space (a configuration at one replica count).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PointRow {
    pub id: String,
    pub config: String,
    pub gpu: String,
    pub provider: String,
    pub usd_per_gpu_hour: f64,
    pub model: String,
    pub tp: u32,
    pub engine: usize,
    pub max_num_seqs: Option<u32>,
    pub max_num_batched_tokens: Option<u32>,
    pub router: String,
    /// `none` (fixed fleet) or the autoscaler candidate's name.
    pub autoscaler: String,
    /// Fixed: the replica count. Autoscaled: the peak capacity (`maxReplicas`).
    pub replicas: u32,
    /// GPUs at `replicas` (autoscaled: at the peak).
    pub gpus: u32,
    /// Fixed: GPUs × price × `hours_per_day`. Autoscaled and simulated: the day run's billed
    /// GPU-hours × `gpu_hours_scale` × price; autoscaled and not simulated: the upper bound
    /// `replicas` all day.
    pub cost_usd_per_day: f64,
    /// Autoscaled: `minReplicas` as simulated.
    pub min_replicas: Option<u32>,
    /// Autoscaled and simulated: billed GPU-hours of the day run (the seed billed most), by phase.
    pub gpu_hours: Option<f64>,
    pub gpu_hours_serving: Option<f64>,
    pub gpu_hours_starting: Option<f64>,
    pub gpu_hours_draining: Option<f64>,
    pub gpu_hours_idle_node: Option<f64>,
    /// `hours_per_day` / simulated hours of the day run.
    pub gpu_hours_scale: Option<f64>,
    /// Scale events (replica count changes) in that day run.
    pub scale_events: Option<u32>,
    /// `simulated`, `pruned` or `inferred` (not simulated; decided by the bisection).
    pub status: String,
    pub feasible: bool,
    /// Simulated with every plan seed (only such points can be recommended).
    pub confirmed: bool,
    pub seeds: u32,
    pub ttft_p90_s: Option<f64>,
    pub ttft_p99_s: Option<f64>,
    pub tpot_p90_s: Option<f64>,
    pub e2e_p90_s: Option<f64>,
    pub error_rate: Option<f64>,
    pub prefix_hit_rate: Option<f64>,
    /// max − min over seeds.
    pub ttft_p90_spread_s: Option<f64>,
    pub tpot_p90_spread_s: Option<f64>,
    pub reason: String,
}

pub fn rows(ctx: &PlanContext, groups: &[GroupResult]) -> Vec<PointRow> {
    let hours = ctx.plan.hours_per_day;
    let mut out = Vec::new();
    for gr in groups {
        let g = &gr.group;
        let res = gr.resolved.as_ref();
        for r in g.min_replicas..=g.max_replicas {
            let mut row = PointRow {
                id: g.point_id(r),
                config: g.id.clone(),
                gpu: g.gpu.clone(),
                provider: g.provider.clone(),
                usd_per_gpu_hour: g.usd_per_gpu_hour,
                model: g.model.clone(),
                tp: g.tp,
                engine: g.engine_index,
                max_num_seqs: res.map(|x| x.max_num_seqs).or(g.engine.max_num_seqs),
                max_num_batched_tokens: res.map(|x| x.max_num_batched_tokens).or(g.engine.max_num_batched_tokens),
                router: g.router.clone(),
                autoscaler: g.autoscaler.clone(),
                replicas: r,
                gpus: g.gpus(r),
                cost_usd_per_day: g.cost_per_day(r, hours),
                min_replicas: None,
                gpu_hours: None,
                gpu_hours_serving: None,
                gpu_hours_starting: None,
                gpu_hours_draining: None,
                gpu_hours_idle_node: None,
                gpu_hours_scale: None,
                scale_events: None,
                status: String::new(),
                feasible: false,
                confirmed: false,
                seeds: 0,
                ttft_p90_s: None,
                ttft_p99_s: None,
                tpot_p90_s: None,
                e2e_p90_s: None,
                error_rate: None,
                prefix_hit_rate: None,
                ttft_p90_spread_s: None,
                tpot_p90_spread_s: None,
                reason: String::new(),
            };
            let day = gr.autoscaled.as_ref().filter(|a| a.max_replicas == r);
            if let Some(p) = gr.pruned.as_ref().filter(|_| gr.evals.is_empty()) {
                row.status = "pruned".into();
                row.reason = format!("{}: {}", p.kind.as_str(), p.reason);
            } else if let Some(a) = day {
                let e = a.eval();
                row.status = "simulated".into();
                row.seeds = e.seeds.len() as u32;
                row.feasible = a.passed();
                row.confirmed = row.seeds >= ctx.plan.day.seeds.unwrap_or(1).max(1);
                row.ttft_p90_s = e.worst(|s| s.ttft_p90_s);
                row.ttft_p99_s = e.worst(|s| s.ttft_p99_s);
                row.tpot_p90_s = e.worst(|s| s.tpot_p90_s);
                row.e2e_p90_s = e.worst(|s| s.e2e_p90_s);
                row.error_rate = e.worst(|s| s.error_rate);
                row.prefix_hit_rate = e.seeds.first().and_then(|s| s.prefix_hit_rate);
                row.ttft_p90_spread_s = e.spread(|s| s.ttft_p90_s);
                row.tpot_p90_spread_s = e.spread(|s| s.tpot_p90_s);
                row.min_replicas = Some(a.min_replicas);
                let scale = a.scale(hours);
                row.gpu_hours_scale = Some(scale);
                if let Some(b) = a.billed() {
                    row.cost_usd_per_day = b.gpu_hours.total * g.usd_per_gpu_hour * scale;
                    row.gpu_hours = Some(b.gpu_hours.total);
                    row.gpu_hours_serving = Some(b.gpu_hours.serving);
                    row.gpu_hours_starting = Some(b.gpu_hours.starting);
                    row.gpu_hours_draining = Some(b.gpu_hours.draining);
                    row.gpu_hours_idle_node = Some(b.gpu_hours.idle_node);
                    row.scale_events = Some(b.scale_events);
                }
                let head = format!(
                    "autoscaled {}..{} replicas over a {:.1} h day run",
                    a.min_replicas,
                    a.max_replicas,
                    a.day_seconds / 3600.0
                );
                row.reason = if row.feasible {
                    format!(
                        "{head}: meets every SLO on {} seed(s); cost = billed GPU-hours × {:.3} × price",
                        row.seeds, scale
                    )
                } else {
                    format!("{head}: {}", e.failures())
                };
            } else if let Some(why) = gr.day_skipped.as_ref().filter(|_| gr.min_replicas.is_some_and(|m| r >= m)) {
                row.status = "skipped".into();
                row.reason = why.clone();
            } else if g.autoscaled() && gr.roofline_min.is_none_or(|m| r >= m) {
                // Autoscaled: only the peak capacity is simulated over the day.
                row.status = "inferred".into();
                match gr.min_replicas {
                    Some(m) if r == m && gr.autoscaled.is_none() => {
                        row.feasible = true;
                        row.reason = format!(
                            "maxReplicas = minReplicas = {m}: nothing to scale, the same as the fixed fleet (no day run)"
                        );
                    }
                    Some(m) if r > m => {
                        row.feasible = gr.autoscaled.as_ref().is_none_or(|a| a.passed());
                        row.reason = format!(
                            "autoscaled with maxReplicas {r}: not simulated (the day run uses the peak capacity {m}); cost shown is the upper bound, {r} replicas all day"
                        );
                    }
                    Some(m) => row.reason = format!("maxReplicas below the peak capacity {m} found by bisection"),
                    None => row.reason = format!("infeasible: {}", gr.infeasible.clone().unwrap_or_default()),
                }
            } else if let Some(e) = gr.eval(r).filter(|_| !g.autoscaled()) {
                row.status = "simulated".into();
                row.seeds = e.seeds.len() as u32;
                row.feasible = e.passed();
                row.confirmed = row.seeds >= ctx.plan.seeds;
                row.ttft_p90_s = e.worst(|s| s.ttft_p90_s);
                row.ttft_p99_s = e.worst(|s| s.ttft_p99_s);
                row.tpot_p90_s = e.worst(|s| s.tpot_p90_s);
                row.e2e_p90_s = e.worst(|s| s.e2e_p90_s);
                row.error_rate = e.worst(|s| s.error_rate);
                row.prefix_hit_rate = e.seeds[0].prefix_hit_rate;
                row.ttft_p90_spread_s = e.spread(|s| s.ttft_p90_s);
                row.tpot_p90_spread_s = e.spread(|s| s.tpot_p90_s);
                row.reason =
                    if row.feasible { format!("meets every SLO on {} seed(s)", row.seeds) } else { e.failures() };
            } else if gr.roofline_min.is_some_and(|m| r < m) {
                row.status = "pruned".into();
                row.reason = format!("roofline: {}", gr.roofline_reason.clone().unwrap_or_default());
            } else {
                row.status = "inferred".into();
                match gr.min_replicas {
                    Some(m) if r > m => {
                        row.feasible = true;
                        row.reason = format!("above the minimum {m} (more replicas assumed not to hurt)");
                    }
                    Some(m) => row.reason = format!("below the minimum {m} found by bisection"),
                    None => row.reason = format!("infeasible: {}", gr.infeasible.clone().unwrap_or_default()),
                }
            }
            out.push(row);
        }
    }
    out
}

/// Sort key under the objective; `None` when the point is not eligible (over budget).
fn rank_key(plan: &PlanConfig, r: &PointRow) -> Option<(f64, f64, f64, String)> {
    let ttft = r.ttft_p90_s.unwrap_or(f64::INFINITY);
    match plan.objective {
        Objective::MinCost => Some((r.cost_usd_per_day, r.gpus as f64, ttft, r.id.clone())),
        Objective::MinGpus => Some((r.gpus as f64, r.cost_usd_per_day, ttft, r.id.clone())),
        Objective::BestLatency => {
            let budget = plan.budget_usd_per_day.unwrap_or(f64::INFINITY);
            (r.cost_usd_per_day <= budget)
                .then(|| (ttft, r.tpot_p90_s.unwrap_or(f64::INFINITY), r.cost_usd_per_day, r.id.clone()))
        }
    }
}

/// Eligible points (simulated, every seed passed, every plan seed run), best first.
pub fn ranking<'a>(plan: &PlanConfig, rows: &'a [PointRow]) -> Vec<&'a PointRow> {
    let mut c: Vec<(&PointRow, (f64, f64, f64, String))> = rows
        .iter()
        .filter(|r| r.status == "simulated" && r.feasible && r.confirmed)
        .filter_map(|r| rank_key(plan, r).map(|k| (r, k)))
        .collect();
    c.sort_by(|a, b| {
        a.1.0.total_cmp(&b.1.0).then(a.1.1.total_cmp(&b.1.1)).then(a.1.2.total_cmp(&b.1.2)).then(a.1.3.cmp(&b.1.3))
    });
    c.into_iter().map(|x| x.0).collect()
}

/// Ids on the Pareto front of (cost, metric) over simulated feasible points (both minimised).
pub fn pareto(rows: &[PointRow], metric: impl Fn(&PointRow) -> Option<f64>) -> Vec<String> {
    let mut pts: Vec<(f64, f64, &str)> = rows
        .iter()
        .filter(|r| r.status == "simulated" && r.feasible)
        .filter_map(|r| metric(r).map(|m| (r.cost_usd_per_day, m, r.id.as_str())))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(b.2)));
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for (_, m, id) in pts {
        if m < best {
            best = m;
            out.push(id.to_string());
        }
    }
    out
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunnerUp {
    pub point: PointRow,
    pub why_lost: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GpuSummary {
    pub gpu: String,
    pub usd_per_gpu_hour: f64,
    pub best: Option<String>,
    pub best_cost_usd_per_day: Option<f64>,
    /// Price change that would make its best point as cheap as the recommendation.
    pub price_change_to_match: Option<f64>,
    pub note: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PayPerTokenReport {
    pub provider: Option<String>,
    pub input_usd_per_million: f64,
    pub output_usd_per_million: f64,
    pub daily_input_tokens: u64,
    pub daily_output_tokens: u64,
    pub api_cost_usd_per_day: f64,
    pub dedicated_cost_usd_per_day: Option<f64>,
    /// Tokens per day (same input/output mix) at which the API costs as much as the dedicated
    /// recommendation; above it, dedicated is cheaper.
    pub break_even_tokens_per_day: Option<f64>,
    pub cheaper: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PriceCase {
    pub change: f64,
    pub winner: Option<String>,
    pub winner_cost_usd_per_day: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SensitivityReport {
    pub traffic_scale: Option<f64>,
    pub traffic_set: Option<String>,
    pub recommendation_replicas_at_scaled_traffic: Option<u32>,
    pub recommendation_cost_at_scaled_traffic: Option<f64>,
    pub cheapest_at_scaled_traffic: Option<String>,
    pub cheapest_cost_at_scaled_traffic: Option<f64>,
    pub note: String,
    /// The recommendation's GPU price changed by `change` (relative): who wins.
    pub price: Vec<PriceCase>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpaceCounts {
    pub configurations: usize,
    pub points: usize,
    pub pruned: usize,
    pub simulated: usize,
    pub inferred: usize,
    /// Autoscaled points whose day run `plan.day.top` left out.
    #[serde(default)]
    pub skipped: usize,
    pub simulations: u32,
}

impl SpaceCounts {
    /// `N configurations, M points: … pruned, … simulated, … inferred by bisection (… simulations)`.
    pub fn describe(&self) -> String {
        let skipped =
            if self.skipped > 0 { format!(", {} skipped (plan.day.top)", self.skipped) } else { String::new() };
        format!(
            "{} configurations, {} points: {} pruned, {} simulated, {} inferred by bisection{skipped} ({} simulations)",
            self.configurations, self.points, self.pruned, self.simulated, self.inferred, self.simulations
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlanReport {
    pub format: String,
    pub context: PlanContext,
    pub space: SpaceCounts,
    pub recommendation: Option<PointRow>,
    pub why: String,
    pub runners_up: Vec<RunnerUp>,
    pub per_gpu: Vec<GpuSummary>,
    pub pareto_cost_vs_ttft_p90: Vec<String>,
    pub pareto_cost_vs_tpot_p90: Vec<String>,
    pub pay_per_token: Option<PayPerTokenReport>,
    pub sensitivity: SensitivityReport,
    pub configurations: Vec<GroupResult>,
    pub points: Vec<PointRow>,
}

fn pct(x: f64) -> String {
    format!("{:+.0} %", x * 100.0)
}

pub fn build(ctx: &PlanContext, groups: &[GroupResult]) -> PlanReport {
    let plan = &ctx.plan;
    let rows = rows(ctx, groups);
    let ranked = ranking(plan, &rows);
    let rec = ranked.first().map(|r| (*r).clone());
    let hours = plan.hours_per_day;

    let why = match &rec {
        None => "no configuration met every SLO on every seed within the replica range".to_string(),
        Some(r) if r.autoscaler != "none" => format!(
            "{} × {} (TP{}, {}, router {}) autoscaled by `{}` between {} and {} replicas (the peak capacity found by bisection) at ${:.2}/GPU-h ({}) costs ${:.0}/day: its day run billed {:.1} GPU-hours ({:.1} serving, {:.1} starting, {:.1} draining, {:.1} idle node; {} scale events), × {:.3} to {} h/day; it meets every SLO on all {} day-run seed(s) (worst TTFT p90 {}, TPOT p90 {}) and is the best eligible point under objective {:?} among {} confirmed-feasible points",
            r.replicas,
            r.gpu,
            r.tp,
            r.model,
            r.router,
            r.autoscaler,
            r.min_replicas.unwrap_or(0),
            r.replicas,
            r.usd_per_gpu_hour,
            r.provider,
            r.cost_usd_per_day,
            r.gpu_hours.unwrap_or(0.0),
            r.gpu_hours_serving.unwrap_or(0.0),
            r.gpu_hours_starting.unwrap_or(0.0),
            r.gpu_hours_draining.unwrap_or(0.0),
            r.gpu_hours_idle_node.unwrap_or(0.0),
            r.scale_events.unwrap_or(0),
            r.gpu_hours_scale.unwrap_or(1.0),
            hours,
            r.seeds,
            secs(r.ttft_p90_s),
            secs(r.tpot_p90_s),
            plan.objective,
            ranked.len()
        ),
        Some(r) => format!(
            "{} × {} (TP{}, {}, router {}) = {} GPUs at ${:.2}/GPU-h ({}) costs ${:.0}/day; it meets every SLO on all {} seeds (worst TTFT p90 {}, TPOT p90 {}; spread over seeds TTFT {}, TPOT {}) and is the best eligible point under objective {:?} among {} confirmed-feasible points",
            r.replicas,
            r.gpu,
            r.tp,
            r.model,
            r.router,
            r.gpus,
            r.usd_per_gpu_hour,
            r.provider,
            r.cost_usd_per_day,
            r.seeds,
            secs(r.ttft_p90_s),
            secs(r.tpot_p90_s),
            secs(r.ttft_p90_spread_s),
            secs(r.tpot_p90_spread_s),
            plan.objective,
            ranked.len()
        ),
    };

    // Runners-up: the best point of each other configuration.
    let mut runners_up = Vec::new();
    if let Some(rec) = &rec {
        let mut seen = std::collections::BTreeSet::new();
        seen.insert(rec.config.clone());
        for r in ranked.iter().skip(1) {
            if !seen.insert(r.config.clone()) {
                continue;
            }
            let why_lost = match plan.objective {
                Objective::MinCost | Objective::MinGpus if r.cost_usd_per_day > rec.cost_usd_per_day => format!(
                    "${:.0}/day more ({}) for {} GPUs vs {}",
                    r.cost_usd_per_day - rec.cost_usd_per_day,
                    pct(r.cost_usd_per_day / rec.cost_usd_per_day.max(1e-9) - 1.0),
                    r.gpus,
                    rec.gpus
                ),
                Objective::MinGpus if r.gpus > rec.gpus => format!("{} GPUs vs {}", r.gpus, rec.gpus),
                Objective::BestLatency => format!(
                    "TTFT p90 {} vs {} (cost ${:.0}/day)",
                    secs(r.ttft_p90_s),
                    secs(rec.ttft_p90_s),
                    r.cost_usd_per_day
                ),
                _ => format!(
                    "tie on the objective (${:.0}/day, {} GPUs), lost on TTFT p90 {} vs {} or id order",
                    r.cost_usd_per_day,
                    r.gpus,
                    secs(r.ttft_p90_s),
                    secs(rec.ttft_p90_s)
                ),
            };
            runners_up.push(RunnerUp { point: (*r).clone(), why_lost });
            if runners_up.len() == 5 {
                break;
            }
        }
    }

    // Per GPU SKU: the best point, or why none.
    let mut per_gpu = Vec::new();
    let mut skus: Vec<(String, f64)> = Vec::new();
    for gr in groups {
        if !skus.iter().any(|s| s.0 == gr.group.gpu) {
            skus.push((gr.group.gpu.clone(), gr.group.usd_per_gpu_hour));
        }
    }
    for (sku, price) in skus {
        let best = ranked.iter().find(|r| r.gpu == sku);
        let note = match best {
            Some(b) if rec.as_ref().is_some_and(|r| r.id == b.id) => "recommended".to_string(),
            Some(b) => format!("best: {} at ${:.0}/day", b.id, b.cost_usd_per_day),
            None => {
                let mut reasons: Vec<String> = groups
                    .iter()
                    .filter(|g| g.group.gpu == sku)
                    .map(|g| match (&g.pruned, &g.infeasible) {
                        (Some(p), _) => format!("{}: pruned ({})", g.group.id, p.kind.as_str()),
                        (_, Some(i)) => format!("{}: {i}", g.group.id),
                        _ => format!("{}: over budget", g.group.id),
                    })
                    .collect();
                reasons.truncate(4);
                format!("no feasible configuration: {}", reasons.join(" | "))
            }
        };
        // Cost is proportional to the price (fixed and autoscaled alike).
        let price_change_to_match = match (best, &rec) {
            (Some(b), Some(r)) if b.cost_usd_per_day > 0.0 && price > 0.0 => {
                Some(r.cost_usd_per_day / b.cost_usd_per_day - 1.0)
            }
            _ => None,
        };
        per_gpu.push(GpuSummary {
            gpu: sku,
            usd_per_gpu_hour: price,
            best: best.map(|b| b.id.clone()),
            best_cost_usd_per_day: best.map(|b| b.cost_usd_per_day),
            price_change_to_match,
            note,
        });
    }

    let pay_per_token = plan.pay_per_token.as_ref().map(|p| {
        let api = ctx.daily_input_tokens as f64 / 1e6 * p.input_usd_per_million
            + ctx.daily_output_tokens as f64 / 1e6 * p.output_usd_per_million;
        let tokens = (ctx.daily_input_tokens + ctx.daily_output_tokens) as f64;
        let dedicated = rec.as_ref().map(|r| r.cost_usd_per_day);
        let break_even = dedicated.filter(|_| api > 0.0).map(|d| d / (api / tokens.max(1.0)));
        let cheaper = match dedicated {
            Some(d) if d < api => format!("dedicated (saves ${:.0}/day, {:.1}× cheaper)", api - d, api / d.max(1e-9)),
            Some(d) => format!("pay-per-token (saves ${:.0}/day, {:.1}× cheaper)", d - api, d / api.max(1e-9)),
            None => "pay-per-token (no dedicated configuration is feasible)".into(),
        };
        PayPerTokenReport {
            provider: p.provider.clone(),
            input_usd_per_million: p.input_usd_per_million,
            output_usd_per_million: p.output_usd_per_million,
            daily_input_tokens: ctx.daily_input_tokens,
            daily_output_tokens: ctx.daily_output_tokens,
            api_cost_usd_per_day: api,
            dedicated_cost_usd_per_day: dedicated,
            break_even_tokens_per_day: break_even,
            cheaper,
        }
    });

    // Sensitivity.
    let mut sens = SensitivityReport {
        traffic_scale: ctx.traffic_scale,
        traffic_set: ctx.traffic_set.clone(),
        recommendation_replicas_at_scaled_traffic: None,
        recommendation_cost_at_scaled_traffic: None,
        cheapest_at_scaled_traffic: None,
        cheapest_cost_at_scaled_traffic: None,
        note: String::new(),
        price: Vec::new(),
    };
    if let Some(r) = &rec {
        if ctx.traffic_scale.is_some() {
            let gr = groups.iter().find(|g| g.group.id == r.config);
            if let Some(gr) = gr {
                sens.recommendation_replicas_at_scaled_traffic = gr.traffic_up_min;
                if gr.group.autoscaled() {
                    sens.note = format!(
                        "the recommendation is autoscaled: at scaled traffic its peak capacity (maxReplicas) is {}; its day cost there is not simulated. ",
                        gr.traffic_up_min.map_or("-".into(), |m| m.to_string())
                    );
                } else {
                    sens.recommendation_cost_at_scaled_traffic =
                        gr.traffic_up_min.map(|m| gr.group.cost_per_day(m, hours));
                }
                if let Some(n) = &gr.traffic_up_note {
                    sens.note = format!("recommendation at scaled traffic: {n}");
                }
            }
            // Fixed fleets only (autoscaled day runs are not repeated at scaled traffic).
            let cheapest = groups
                .iter()
                .filter(|g| !g.group.autoscaled())
                .filter_map(|g| {
                    g.traffic_up_min.map(|m| (g.group.cost_per_day(m, hours), g.group.gpus(m), g.group.point_id(m)))
                })
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            if let Some((c, _, id)) = cheapest {
                sens.cheapest_at_scaled_traffic = Some(id);
                sens.cheapest_cost_at_scaled_traffic = Some(c);
            }
            if sens.note.is_empty() || sens.note.ends_with(". ") {
                sens.note += "minimum replicas at scaled traffic, bisection from each configuration's minimum with the scenario's seed";
            }
        }
        for &c in &plan.sensitivity.price_changes {
            let mut best: Option<(f64, String)> = None;
            for x in &ranked {
                let cost = if x.gpu == r.gpu { x.cost_usd_per_day * (1.0 + c) } else { x.cost_usd_per_day };
                let key = match plan.objective {
                    Objective::MinCost => cost,
                    _ => continue,
                };
                // `ranked` is in objective order, so ties keep the ranking's tie-breaks.
                if best.as_ref().is_none_or(|b| key < b.0) {
                    best = Some((key, x.id.clone()));
                }
            }
            sens.price.push(PriceCase {
                change: c,
                winner: best.as_ref().map(|b| b.1.clone()),
                winner_cost_usd_per_day: best.map(|b| b.0),
            });
        }
    }

    let space = SpaceCounts {
        configurations: groups.len(),
        points: rows.len(),
        pruned: rows.iter().filter(|r| r.status == "pruned").count(),
        simulated: rows.iter().filter(|r| r.status == "simulated").count(),
        inferred: rows.iter().filter(|r| r.status == "inferred").count(),
        skipped: rows.iter().filter(|r| r.status == "skipped").count(),
        simulations: groups.iter().map(|g| g.simulations).sum(),
    };
    PlanReport {
        format: "servesim-plan/1".into(),
        context: ctx.clone(),
        space,
        recommendation: rec,
        why,
        runners_up,
        per_gpu,
        pareto_cost_vs_ttft_p90: pareto(&rows, |r| r.ttft_p90_s),
        pareto_cost_vs_tpot_p90: pareto(&rows, |r| r.tpot_p90_s),
        pay_per_token,
        sensitivity: sens,
        configurations: groups.to_vec(),
        points: rows,
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| if x < 1.0 { format!("{:.1} ms", x * 1e3) } else { format!("{x:.2} s") })
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x}"))
}

pub fn render_csv(rows: &[PointRow]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "config",
        "gpu",
        "provider",
        "usd_per_gpu_hour",
        "model",
        "tp",
        "engine",
        "max_num_seqs",
        "max_num_batched_tokens",
        "router",
        "autoscaler",
        "replicas",
        "gpus",
        "cost_usd_per_day",
        "min_replicas",
        "gpu_hours",
        "gpu_hours_serving",
        "gpu_hours_starting",
        "gpu_hours_draining",
        "gpu_hours_idle_node",
        "gpu_hours_scale",
        "scale_events",
        "status",
        "feasible",
        "confirmed",
        "seeds",
        "ttft_p90_s",
        "ttft_p99_s",
        "tpot_p90_s",
        "e2e_p90_s",
        "error_rate",
        "prefix_hit_rate",
        "ttft_p90_spread_s",
        "tpot_p90_spread_s",
        "reason",
    ])?;
    for r in rows {
        w.write_record([
            r.id.clone(),
            r.config.clone(),
            r.gpu.clone(),
            r.provider.clone(),
            format!("{}", r.usd_per_gpu_hour),
            r.model.clone(),
            r.tp.to_string(),
            r.engine.to_string(),
            r.max_num_seqs.map_or(String::new(), |x| x.to_string()),
            r.max_num_batched_tokens.map_or(String::new(), |x| x.to_string()),
            r.router.clone(),
            r.autoscaler.clone(),
            r.replicas.to_string(),
            r.gpus.to_string(),
            format!("{}", r.cost_usd_per_day),
            r.min_replicas.map_or(String::new(), |x| x.to_string()),
            opt(r.gpu_hours),
            opt(r.gpu_hours_serving),
            opt(r.gpu_hours_starting),
            opt(r.gpu_hours_draining),
            opt(r.gpu_hours_idle_node),
            opt(r.gpu_hours_scale),
            r.scale_events.map_or(String::new(), |x| x.to_string()),
            r.status.clone(),
            r.feasible.to_string(),
            r.confirmed.to_string(),
            r.seeds.to_string(),
            opt(r.ttft_p90_s),
            opt(r.ttft_p99_s),
            opt(r.tpot_p90_s),
            opt(r.e2e_p90_s),
            opt(r.error_rate),
            opt(r.prefix_hit_rate),
            opt(r.ttft_p90_spread_s),
            opt(r.tpot_p90_spread_s),
            r.reason.clone(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Human-readable report (also printed by the CLI).
pub fn render_text(rep: &PlanReport) -> String {
    let ctx = &rep.context;
    let mut t = String::new();
    let _ = writeln!(t, "# servesim plan: {}\n", ctx.scenario);
    let _ = writeln!(
        t,
        "Space: {}. Objective {:?}, SLOs judged over {:?} ({:.0} s window from {:.0} s, {} requests offered).\n",
        rep.space.describe(),
        ctx.plan.objective,
        ctx.plan.evaluate,
        ctx.window.seconds,
        ctx.window.start_s,
        ctx.window.requests
    );
    match &rep.recommendation {
        Some(r) => {
            let _ = writeln!(t, "## Recommendation: {}\n\n{}\n", r.id, rep.why);
        }
        None => {
            let _ = writeln!(t, "## No recommendation\n\n{}\n", rep.why);
        }
    }
    if !rep.runners_up.is_empty() {
        let _ = writeln!(t, "## Runners-up\n");
        for r in &rep.runners_up {
            let _ = writeln!(
                t,
                "- {}: ${:.0}/day, TTFT p90 {}, TPOT p90 {} — {}",
                r.point.id,
                r.point.cost_usd_per_day,
                secs(r.point.ttft_p90_s),
                secs(r.point.tpot_p90_s),
                r.why_lost
            );
        }
        let _ = writeln!(t);
    }
    let _ = writeln!(t, "## Per GPU\n");
    for g in &rep.per_gpu {
        let m = g
            .price_change_to_match
            .map_or(String::new(), |c| format!(" (price change to match the recommendation: {})", pct(c)));
        let _ = writeln!(t, "- {} at ${:.2}/GPU-h: {}{m}", g.gpu, g.usd_per_gpu_hour, g.note);
    }
    let _ = writeln!(t);
    if let Some(p) = &rep.pay_per_token {
        let _ = writeln!(
            t,
            "## Pay per token\n\n{} input + {} output tokens per day at ${}/M in, ${}/M out{}: ${:.0}/day vs dedicated {}. Break-even volume: {}. Cheaper: {}.\n",
            p.daily_input_tokens,
            p.daily_output_tokens,
            p.input_usd_per_million,
            p.output_usd_per_million,
            p.provider.as_ref().map_or(String::new(), |x| format!(" ({x})")),
            p.api_cost_usd_per_day,
            p.dedicated_cost_usd_per_day.map_or("-".into(), |d| format!("${d:.0}/day")),
            p.break_even_tokens_per_day.map_or("-".into(), |b| format!("{b:.3e} tokens/day")),
            p.cheaper
        );
    }
    let s = &rep.sensitivity;
    let _ = writeln!(t, "## Sensitivity\n");
    if let Some(scale) = s.traffic_scale {
        let _ = writeln!(
            t,
            "- Traffic ×{scale} ({}): the recommendation needs {} replicas ({}); cheapest then: {} ({}). {}",
            s.traffic_set.clone().unwrap_or_default(),
            s.recommendation_replicas_at_scaled_traffic.map_or("-".into(), |x| x.to_string()),
            s.recommendation_cost_at_scaled_traffic.map_or("-".into(), |x| format!("${x:.0}/day")),
            s.cheapest_at_scaled_traffic.clone().unwrap_or("-".into()),
            s.cheapest_cost_at_scaled_traffic.map_or("-".into(), |x| format!("${x:.0}/day")),
            s.note
        );
    }
    for p in &s.price {
        let _ = writeln!(
            t,
            "- Recommended GPU price {}: winner {} ({})",
            pct(p.change),
            p.winner.clone().unwrap_or("-".into()),
            p.winner_cost_usd_per_day.map_or("-".into(), |x| format!("${x:.0}/day"))
        );
    }
    let _ = writeln!(t, "\nPareto (cost vs TTFT p90): {}", rep.pareto_cost_vs_ttft_p90.join(", "));
    let _ = writeln!(t, "Pareto (cost vs TPOT p90): {}", rep.pareto_cost_vs_tpot_p90.join(", "));
    t
}

/// Writes plan.json, plan.csv, plan.md and (with a recommendation) the manifests beside them.
pub fn write_all(dir: &Path, ctx: &PlanContext, groups: &[GroupResult]) -> anyhow::Result<PlanReport> {
    std::fs::create_dir_all(dir)?;
    let rep = build(ctx, groups);
    crate::metrics::write_atomic(&dir.join("plan.json"), serde_json::to_string_pretty(&rep)?.as_bytes())?;
    crate::metrics::write_atomic(&dir.join("plan.csv"), render_csv(&rep.points)?.as_bytes())?;
    crate::metrics::write_atomic(&dir.join("plan.md"), render_text(&rep).as_bytes())?;
    crate::metrics::write_atomic(&dir.join("index.html"), crate::report::plan::render_plan_html(&rep)?.as_bytes())?;
    if let Some(r) = &rep.recommendation {
        let gr = groups.iter().find(|g| g.group.id == r.config).expect("recommended group exists");
        match super::emit::AutoscalerEmit::for_point(gr, r.replicas) {
            Some(a) => super::emit::write_manifests_with(dir, ctx, gr, r.replicas, &a)?,
            None => super::emit::write_manifests(dir, ctx, gr, r.replicas)?,
        };
    }
    Ok(rep)
}

//! Simulation of plan points and the per-group search: the minimum replica count meeting every
//! SLO, found by bisection (assuming more replicas never hurt) and then confirmed with more
//! seeds, moving up while any seed fails.

use super::prune::{self, PruneKind, Pruned, WindowLoad};
use super::space::Group;
use super::{Evaluate, Objective, PlanConfig, SearchMode};
use crate::autoscaler::AutoscalerConfig;
use crate::metrics::RequestRecord;
use crate::metrics::SloPopulation;
use crate::scenario::raw::{PriceOverride, SloFile};
use crate::scenario::{self, Scenario, ScenarioFile};
use crate::units::{NANOS_PER_SEC, SimDuration};
use crate::workload::config::DurationStr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// SLO metrics of one simulation over the evaluation window. `None` latencies mean "undefined
/// or unbounded" (no samples, or requests still unfinished at the percentile).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedEval {
    pub seed: u64,
    /// Requests that arrived in the window.
    pub requests: u64,
    pub ttft_p50_s: Option<f64>,
    pub ttft_p90_s: Option<f64>,
    pub ttft_p99_s: Option<f64>,
    pub tpot_p50_s: Option<f64>,
    pub tpot_p90_s: Option<f64>,
    pub tpot_p99_s: Option<f64>,
    pub e2e_p90_s: Option<f64>,
    pub e2e_p99_s: Option<f64>,
    pub error_rate: Option<f64>,
    pub prefix_hit_rate: Option<f64>,
    pub passed: bool,
    /// Failed checks, e.g. `ttft_p90_s 3.412 > 3`.
    pub failed: Vec<String>,
}

/// One simulated replica count (one or more seeds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Eval {
    pub replicas: u32,
    pub seeds: Vec<SeedEval>,
}

impl Eval {
    pub fn passed(&self) -> bool {
        self.seeds.iter().all(|s| s.passed)
    }
    /// Worst value over seeds (None if any seed is unbounded).
    pub fn worst(&self, f: impl Fn(&SeedEval) -> Option<f64>) -> Option<f64> {
        let mut w: Option<f64> = None;
        for s in &self.seeds {
            let v = f(s)?;
            w = Some(w.map_or(v, |x: f64| x.max(v)));
        }
        w
    }
    /// The failed seeds and their failed SLOs, `seed N: a; b | seed M: …`.
    pub fn failures(&self) -> String {
        self.seeds
            .iter()
            .filter(|s| !s.passed)
            .map(|s| format!("seed {}: {}", s.seed, s.failed.join("; ")))
            .collect::<Vec<_>>()
            .join(" | ")
    }
    /// max − min over seeds.
    pub fn spread(&self, f: impl Fn(&SeedEval) -> Option<f64>) -> Option<f64> {
        let vals: Option<Vec<f64>> = self.seeds.iter().map(f).collect();
        let vals = vals?;
        let hi = vals.iter().cloned().fold(f64::MIN, f64::max);
        let lo = vals.iter().cloned().fold(f64::MAX, f64::min);
        if vals.is_empty() { None } else { Some(hi - lo) }
    }
}

/// Resolved engine values of a group (for reports and manifests).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resolved {
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    pub block_size: u32,
    pub gpu_memory_utilization: f64,
    pub enable_prefix_caching: bool,
    pub enable_chunked_prefill: bool,
    pub max_model_len: u32,
    pub num_gpu_blocks: u32,
    pub model_name: String,
    pub gpu_vendor: String,
}

/// Everything known about one group after its search.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GroupResult {
    pub group: Group,
    /// The whole configuration was rejected before simulating.
    pub pruned: Option<Pruned>,
    /// Counts below this are rejected by the roofline bound.
    pub roofline_min: Option<u32>,
    pub roofline_reason: Option<String>,
    pub resolved: Option<Resolved>,
    /// Simulated replica counts, ascending.
    pub evals: Vec<Eval>,
    /// Smallest count for which every seed met every SLO (and the bisection's seed failed below).
    pub min_replicas: Option<u32>,
    /// Why no count in range is feasible.
    pub infeasible: Option<String>,
    /// For `objective: best_latency`: the largest count within budget, simulated.
    pub budget_replicas: Option<u32>,
    /// Minimum count at the sensitivity traffic (None: not computed or not reachable).
    pub traffic_up_min: Option<u32>,
    pub traffic_up_note: Option<String>,
    pub simulations: u32,
    /// Autoscaled groups: the day run(s) with the autoscaler sized to the peak capacity.
    pub autoscaled: Option<AutoscaledResult>,
    /// Autoscaled groups with something to scale whose day run was not simulated, and why
    /// (`plan.day.top`).
    #[serde(default)]
    pub day_skipped: Option<String>,
}

/// Billed GPU-hours of a day run by phase (`total = serving + starting + draining + idle_node`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseHours {
    pub total: f64,
    pub serving: f64,
    pub starting: f64,
    pub draining: f64,
    pub idle_node: f64,
}

/// One seed of an autoscaled day run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DayEval {
    pub eval: SeedEval,
    pub gpu_hours: PhaseHours,
    pub scale_events: u32,
    pub replicas_created: u32,
    pub max_live: u32,
}

/// The day run of an autoscaled group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AutoscaledResult {
    /// The autoscaler's bounds as simulated: min from its config, max = the peak capacity.
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Replicas Ready at the start of the day run.
    pub initial_replicas: u32,
    pub config: AutoscalerConfig,
    /// Simulated arrival window of the day run (s); the cost is scaled from it to a day.
    pub day_seconds: f64,
    pub seeds: Vec<DayEval>,
}

impl AutoscaledResult {
    pub fn passed(&self) -> bool {
        !self.seeds.is_empty() && self.seeds.iter().all(|s| s.eval.passed)
    }
    /// The seed billed the most GPU-hours (the first on ties): the cost is judged robustly.
    pub fn billed(&self) -> Option<&DayEval> {
        self.seeds.iter().fold(None, |b: Option<&DayEval>, s| match b {
            Some(x) if x.gpu_hours.total >= s.gpu_hours.total => Some(x),
            _ => Some(s),
        })
    }
    /// Day-run hours → `hours_per_day`.
    pub fn scale(&self, hours_per_day: f64) -> f64 {
        hours_per_day * 3600.0 / self.day_seconds
    }
    /// GPU-hours × price, scaled to a day.
    pub fn cost_per_day(&self, usd_per_gpu_hour: f64, hours_per_day: f64) -> Option<f64> {
        self.billed().map(|b| b.gpu_hours.total * usd_per_gpu_hour * self.scale(hours_per_day))
    }
    pub fn eval(&self) -> Eval {
        Eval { replicas: self.max_replicas, seeds: self.seeds.iter().map(|s| s.eval.clone()).collect() }
    }
}

impl GroupResult {
    /// Cost per day of the group's minimum (fixed: replicas × TP × price × hours; autoscaled:
    /// the day run's billed GPU-hours), if it has one.
    pub fn best_cost(&self, hours_per_day: f64) -> Option<f64> {
        let m = self.min_replicas?;
        match &self.autoscaled {
            None if !self.group.autoscaled() => Some(self.group.cost_per_day(m, hours_per_day)),
            Some(a) if a.passed() => a.cost_per_day(self.group.usd_per_gpu_hour, hours_per_day),
            _ => None,
        }
    }
    pub fn eval(&self, replicas: u32) -> Option<&Eval> {
        self.evals.iter().find(|e| e.replicas == replicas)
    }
}

/// Shared inputs of every group's search.
pub struct SearchCtx<'a> {
    pub plan: &'a PlanConfig,
    pub base: &'a ScenarioFile,
    /// The base file at scaled traffic (sensitivity), if configured.
    pub traffic_up: Option<&'a ScenarioFile>,
    pub source: &'a Path,
    pub window: &'a WindowLoad,
    /// The day run's base file (autoscaled groups), see [`super::DayConfig`].
    pub day: Option<&'a ScenarioFile>,
}

/// The scenario file of one plan point.
pub fn point_file(base: &ScenarioFile, g: &Group, replicas: u32, seed: u64) -> anyhow::Result<ScenarioFile> {
    let mut f = base.clone();
    f.plan = None;
    f.gpu = g.gpu.clone();
    f.model = g.model.clone();
    f.tensor_parallel_size = g.tp;
    f.replicas = replicas;
    // A fixed fleet; the day run of an autoscaled group sets its autoscaler afterwards.
    f.autoscaler = None;
    f.seed = seed;
    f.price = if g.price_override {
        Some(PriceOverride { usd_per_gpu_hour: g.usd_per_gpu_hour, provider: Some(g.provider.clone()) })
    } else {
        None
    };
    if let Some(x) = g.engine.max_num_seqs {
        f.engine.max_num_seqs = Some(x);
    }
    if let Some(x) = g.engine.max_num_batched_tokens {
        f.engine.max_num_batched_tokens = Some(x);
    }
    if g.router != "scenario" {
        f.router = crate::app::parse_router_name(&g.router)?;
    }
    f.output.requests_csv = false;
    f.output.timeseries_interval = DurationStr(SimDuration::from_secs(60));
    Ok(f)
}

/// Statistics over the records that arrived in the evaluation window, judged with the one SLO
/// definition every verdict uses ([`SloPopulation`]: unfinished requests count as infinitely
/// slow, nearest-rank percentiles); only the window is the planner's own.
pub fn evaluate_records(records: &[RequestRecord], slo: &SloFile, evaluate: Evaluate, seed: u64) -> SeedEval {
    let (lo, hi) = window_of(records.iter().map(|r| r.arrival.as_nanos()), evaluate);
    let in_window = || records.iter().filter(|r| (lo..hi).contains(&r.arrival.as_nanos()));
    let (mut cached, mut input) = (0u64, 0u64);
    for r in in_window().filter(|r| r.scheduled.is_some()) {
        cached += r.cached_tokens as u64;
        input += r.input_tokens as u64;
    }
    let pop = SloPopulation::of(in_window());
    let report = pop.evaluate(slo);
    let (n, ttft, tpot, e2e, error_rate) = (pop.requests, pop.ttft, pop.tpot, pop.e2e, pop.error_rate);
    let fin = |v: Option<f64>| v.filter(|x| x.is_finite());
    let failed = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| match fin(c.actual) {
            Some(a) => format!("{} {} > {}", c.metric, round4(a), c.target),
            None => format!("{} unbounded (requests unfinished or no samples) > {}", c.metric, c.target),
        })
        .collect();
    SeedEval {
        seed,
        requests: n,
        ttft_p50_s: fin(ttft.p50),
        ttft_p90_s: fin(ttft.p90),
        ttft_p99_s: fin(ttft.p99),
        tpot_p50_s: fin(tpot.p50),
        tpot_p90_s: fin(tpot.p90),
        tpot_p99_s: fin(tpot.p99),
        e2e_p90_s: fin(e2e.p90),
        e2e_p99_s: fin(e2e.p99),
        error_rate,
        prefix_hit_rate: if input > 0 { Some(cached as f64 / input as f64) } else { None },
        passed: report.passed,
        failed,
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// `[lo, hi)` in nanoseconds: everything, or the one-hour window (starting at an arrival) with
/// the most arrivals, earliest on ties.
pub fn window_of(arrivals: impl Iterator<Item = u64>, evaluate: Evaluate) -> (u64, u64) {
    let hour = 3600 * NANOS_PER_SEC;
    let mut a: Vec<u64> = arrivals.collect();
    if evaluate == Evaluate::Whole || a.is_empty() {
        return (0, u64::MAX);
    }
    a.sort_unstable();
    if a[a.len() - 1] - a[0] < hour {
        return (0, u64::MAX);
    }
    let (mut best, mut best_start, mut j) = (0usize, a[0], 0usize);
    for i in 0..a.len() {
        if i > 0 && a[i] == a[i - 1] {
            continue;
        }
        while j < a.len() && a[j] < a[i] + hour {
            j += 1;
        }
        if j - i > best {
            best = j - i;
            best_start = a[i];
        }
    }
    (best_start, best_start + hour)
}

/// Simulates one point with one seed.
pub fn simulate_point(
    base: &ScenarioFile,
    g: &Group,
    replicas: u32,
    seed: u64,
    source: &Path,
    evaluate: Evaluate,
) -> anyhow::Result<SeedEval> {
    let f = point_file(base, g, replicas, seed)?;
    let sc = scenario::resolve(f, source)?;
    let out = crate::sim::simulate(&sc)?;
    Ok(evaluate_records(&out.recorder.records, &sc.slo, evaluate, seed))
}

struct Cache<'a> {
    base: &'a ScenarioFile,
    g: &'a Group,
    source: &'a Path,
    evaluate: Evaluate,
    runs: BTreeMap<(u32, u64), SeedEval>,
    sims: u32,
}

impl Cache<'_> {
    fn get(&mut self, r: u32, seed: u64) -> anyhow::Result<&SeedEval> {
        if !self.runs.contains_key(&(r, seed)) {
            let e = simulate_point(self.base, self.g, r, seed, self.source, self.evaluate)?;
            self.sims += 1;
            self.runs.insert((r, seed), e);
        }
        Ok(&self.runs[&(r, seed)])
    }
    fn pass(&mut self, r: u32, seed: u64) -> anyhow::Result<bool> {
        Ok(self.get(r, seed)?.passed)
    }
    fn all_pass(&mut self, r: u32, seeds: &[u64]) -> anyhow::Result<bool> {
        for &s in seeds {
            if !self.pass(r, s)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Smallest count in `[lo, hi]` passing with `seed` (bisection or scan); `Err(reason)` if even
/// `hi` fails.
fn find_min(c: &mut Cache, lo: u32, hi: u32, seeds: &[u64], mode: SearchMode) -> anyhow::Result<Result<u32, String>> {
    match mode {
        SearchMode::Exhaustive => {
            let mut first = None;
            for r in lo..=hi {
                if c.all_pass(r, seeds)? && first.is_none() {
                    first = Some(r);
                }
            }
            Ok(first.ok_or_else(|| format!("fails at every count up to {hi}: {}", seed_failures(c, hi, seeds))))
        }
        SearchMode::Bisect => {
            // Galloping from the (roofline) lower bound, which is usually close: lo, lo+1,
            // lo+3, lo+7, … capped at hi; then bisection between the last failure and the
            // first success.
            if c.all_pass(lo, seeds)? {
                return Ok(Ok(lo));
            }
            let (mut bad, mut step) = (lo, 1u32);
            let good = loop {
                let probe = bad.saturating_add(step).min(hi);
                if c.all_pass(probe, seeds)? {
                    break probe;
                }
                if probe == hi {
                    return Ok(Err(format!("fails even at {hi} replicas: {}", seed_failures(c, hi, seeds))));
                }
                bad = probe;
                step = step.saturating_mul(2);
            };
            let mut good = good;
            while good - bad > 1 {
                let mid = bad + (good - bad) / 2;
                if c.all_pass(mid, seeds)? {
                    good = mid;
                } else {
                    bad = mid;
                }
            }
            Ok(Ok(good))
        }
    }
}

/// Prunes, then searches one group.
pub fn search_group(ctx: &SearchCtx, g: &Group) -> anyhow::Result<GroupResult> {
    let plan = ctx.plan;
    let mut res = GroupResult {
        group: g.clone(),
        pruned: None,
        roofline_min: None,
        roofline_reason: None,
        resolved: None,
        evals: Vec::new(),
        min_replicas: None,
        infeasible: None,
        budget_replicas: None,
        traffic_up_min: None,
        traffic_up_note: None,
        simulations: 0,
        autoscaled: None,
        day_skipped: None,
    };
    // 1. Can vLLM start it at all?
    let sc: Scenario = match scenario::resolve(point_file(ctx.base, g, g.min_replicas, ctx.base.seed)?, ctx.source) {
        Ok(sc) => sc,
        Err(e) => {
            res.pruned = Some(prune::classify(&e));
            return Ok(res);
        }
    };
    let e = &sc.engine;
    res.resolved = Some(Resolved {
        max_num_seqs: e.max_num_seqs,
        max_num_batched_tokens: e.max_num_batched_tokens,
        block_size: e.block_size,
        gpu_memory_utilization: e.gpu_memory_utilization,
        enable_prefix_caching: e.enable_prefix_caching,
        enable_chunked_prefill: e.enable_chunked_prefill,
        max_model_len: e.max_model_len,
        num_gpu_blocks: e.num_gpu_blocks,
        model_name: sc.model.name.clone(),
        gpu_vendor: sc.gpu.vendor.clone(),
    });
    // 2. Roofline bound on the replica count.
    let (need, why) = prune::roofline_min_replicas(&sc, ctx.window, plan.prune.prefix_hit_rate_bound)
        .map_err(|e| anyhow::anyhow!("{}: step-time model: {e}", g.id))?;
    res.roofline_reason = Some(why.clone());
    res.roofline_min = Some(need);
    let lo = need.max(g.min_replicas);
    if lo > g.max_replicas {
        res.pruned = Some(Pruned {
            kind: PruneKind::Roofline,
            reason: format!("{why}; above plan.candidates.replicas.max {}", g.max_replicas),
        });
        return Ok(res);
    }
    // 3. Bisection with the scenario's seed, then confirmation with more seeds.
    let seed0 = ctx.base.seed;
    let seeds: Vec<u64> = (0..plan.seeds as u64).map(|k| seed0.wrapping_add(k)).collect();
    let mut cache =
        Cache { base: ctx.base, g, source: ctx.source, evaluate: plan.evaluate, runs: BTreeMap::new(), sims: 0 };
    match find_min(&mut cache, lo, g.max_replicas, &seeds[..1], plan.search)? {
        Err(why) => res.infeasible = Some(why),
        // Confirmation: the smallest count from there on at which every seed passes (the same
        // galloping + bisection; counts already simulated are reused).
        Ok(r) => match find_min(&mut cache, r, g.max_replicas, &seeds, SearchMode::Bisect)? {
            Ok(r) => res.min_replicas = Some(r),
            Err(why) => res.infeasible = Some(format!("not robust over {} seeds: {why}", seeds.len())),
        },
    }
    // 4. Best latency within budget: the largest affordable count.
    if let (Objective::BestLatency, Some(min), Some(budget)) =
        (plan.objective, res.min_replicas, plan.budget_usd_per_day)
    {
        let per = g.cost_per_day(1, plan.hours_per_day);
        let afford = if per > 0.0 { (budget / per).floor().min(g.max_replicas as f64) as u32 } else { g.max_replicas };
        if afford > min {
            cache.all_pass(afford, &seeds)?;
            res.budget_replicas = Some(afford);
        }
    }
    res.simulations = cache.sims;
    res.evals = collect_evals(&cache.runs);
    // 5. Sensitivity: minimum at scaled traffic (bisection from the minimum up, one seed).
    if let (Some(up), Some(min)) = (ctx.traffic_up, res.min_replicas) {
        let mut c2 = Cache { base: up, g, source: ctx.source, evaluate: plan.evaluate, runs: BTreeMap::new(), sims: 0 };
        match find_min(&mut c2, min, g.max_replicas, &[seed0], SearchMode::Bisect)? {
            Ok(r) => res.traffic_up_min = Some(r),
            Err(why) => res.traffic_up_note = Some(why),
        }
        res.simulations += c2.sims;
    }
    Ok(res)
}

/// Phase 1 of one configuration (its autoscaler variants, neighbours in enumeration order):
/// one peak search of the fixed fleet, shared by all of them (the first group carries its
/// simulation count). Day runs are phase 2 ([`day_max`], [`select_day_runs`], [`run_day`]).
/// The result does not depend on which variants are listed, so sharding by configuration
/// gives the same bytes as an unsharded run.
pub fn search_peak(ctx: &SearchCtx, groups: &[Group]) -> anyhow::Result<Vec<GroupResult>> {
    let Some(first) = groups.first() else { return Ok(Vec::new()) };
    let fixed = groups.iter().find(|g| !g.autoscaled()).cloned().unwrap_or_else(|| Group {
        id: first.config_id(),
        autoscaler: "none".into(),
        autoscaler_config: None,
        ..first.clone()
    });
    let peak = search_group(ctx, &fixed)?;
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let mut r = peak.clone();
        r.group = g.clone();
        if i > 0 {
            r.simulations = 0;
        }
        if g.autoscaled() {
            r.budget_replicas = None;
        }
        out.push(r);
    }
    Ok(out)
}

/// The `maxReplicas` of a group's day run (its peak capacity), if it needs one: an autoscaled
/// group whose peak needs more than the autoscaler's minimum (otherwise there is nothing to
/// scale and the point equals the fixed fleet).
pub fn day_max(r: &GroupResult) -> Option<u32> {
    let (cfg, max) = (r.group.autoscaler_config.as_ref()?, r.min_replicas?);
    (super::space::sized(cfg, max).1 < max).then_some(max)
}

/// Phase 2's choice: the configurations (ids) whose autoscaled variants get a day run — the
/// `top` cheapest fixed fleets per day among configurations with a variant that needs one,
/// ties in enumeration order. `results` must hold phase 1 of every configuration (so every
/// shard makes the same choice).
pub fn select_day_runs<'a>(
    results: impl IntoIterator<Item = &'a GroupResult>,
    top: u32,
    hours_per_day: f64,
) -> BTreeSet<String> {
    let mut cands: Vec<(f64, usize, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in results {
        let id = r.group.config_id();
        if day_max(r).is_some() && !seen.contains(&id) {
            let m = r.min_replicas.expect("day_max implies a peak capacity");
            cands.push((r.group.cost_per_day(m, hours_per_day), r.group.index, id.clone()));
            seen.insert(id);
        }
    }
    cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    cands.into_iter().take(top as usize).map(|c| c.2).collect()
}

/// Phase 2 of one group: its day run with `maxReplicas` = the peak capacity.
pub fn run_day(ctx: &SearchCtx, r: &mut GroupResult) -> anyhow::Result<()> {
    let (Some(max), Some(cfg)) = (day_max(r), r.group.autoscaler_config.clone()) else { return Ok(()) };
    let day = ctx.day.ok_or_else(|| anyhow::anyhow!("{}: no day run configured", r.group.id))?;
    let a = simulate_day(ctx, day, &r.group, &cfg, max)?;
    r.simulations += a.seeds.len() as u32;
    if !a.passed() {
        r.infeasible =
            Some(format!("day run with the autoscaler (maxReplicas {max}) misses an SLO: {}", a.eval().failures()));
    }
    r.autoscaled = Some(a);
    Ok(())
}

/// The day run(s) of an autoscaled group sized to `max` replicas at the peak.
pub fn simulate_day(
    ctx: &SearchCtx,
    day: &ScenarioFile,
    g: &Group,
    cfg: &AutoscalerConfig,
    max: u32,
) -> anyhow::Result<AutoscaledResult> {
    let (cfg, min) = super::space::sized(cfg, max);
    let initial = min.clamp(1, max);
    let n = ctx.plan.day.seeds.unwrap_or(1).max(1) as u64;
    let evaluate = ctx.plan.day.evaluate.unwrap_or(ctx.plan.evaluate);
    let mut res = AutoscaledResult {
        min_replicas: min,
        max_replicas: max,
        initial_replicas: initial,
        config: cfg.clone(),
        day_seconds: 0.0,
        seeds: Vec::new(),
    };
    for k in 0..n {
        let seed = ctx.base.seed.wrapping_add(k);
        let mut f = point_file(day, g, initial, seed)?;
        f.autoscaler = Some(cfg.clone());
        let sc = scenario::resolve(f, ctx.source)?;
        res.day_seconds = sc.duration.as_secs_f64();
        let out = crate::sim::simulate(&sc)?;
        let h = &out.summary.gpu_hours;
        let fleet = &out.totals.fleet;
        res.seeds.push(DayEval {
            eval: evaluate_records(&out.recorder.records, &sc.slo, evaluate, seed),
            gpu_hours: PhaseHours {
                total: h.total,
                serving: h.serving,
                starting: h.starting,
                draining: h.draining,
                idle_node: h.idle_node,
            },
            scale_events: fleet.events.len() as u32,
            replicas_created: fleet.replicas_created,
            max_live: fleet.max_live,
        });
    }
    Ok(res)
}

fn seed_failures(c: &mut Cache, r: u32, seeds: &[u64]) -> String {
    seeds
        .iter()
        .filter_map(|&s| c.get(r, s).ok().filter(|e| !e.passed).map(|e| format!("seed {s}: {}", e.failed.join("; "))))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn collect_evals(runs: &BTreeMap<(u32, u64), SeedEval>) -> Vec<Eval> {
    let mut out: Vec<Eval> = Vec::new();
    for (&(r, _), e) in runs {
        match out.last_mut() {
            Some(last) if last.replicas == r => last.seeds.push(e.clone()),
            _ => out.push(Eval { replicas: r, seeds: vec![e.clone()] }),
        }
    }
    out
}

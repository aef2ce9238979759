//! Orchestration: read the plan, build the context (plan workload window, daily volume),
//! enumerate, search the groups in parallel, and hand the results to the report writer;
//! `--shard i/n` writes `shard.json` instead, and `merge` turns shards into the same report.

use super::prune::WindowLoad;
use super::search::{self, GroupResult, SearchCtx};
use super::space::{self, Group};
use super::{Evaluate, PlanConfig};
use crate::rng::RngStreams;
use crate::scenario::{self, ScenarioFile};
use crate::units::SimDuration;
use crate::workload::Finish;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything the report needs besides the group results; identical in every shard.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlanContext {
    pub scenario: String,
    pub plan: PlanConfig,
    pub slo: crate::scenario::raw::SloFile,
    /// Simulated seconds per plan point (arrivals).
    pub point_duration_s: f64,
    /// Offered load in the evaluation window of the plan workload.
    pub window: WindowLoad,
    /// The scenario's own run (its `duration`, without the plan's overrides) taken as one day.
    pub day_seconds: f64,
    pub daily_requests: u64,
    pub daily_input_tokens: u64,
    pub daily_output_tokens: u64,
    /// Traffic multiplier actually applied for the sensitivity runs (None: not run).
    pub traffic_scale: Option<f64>,
    pub traffic_set: Option<String>,
    pub groups_total: usize,
}

/// A shard's output file (`shard.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardFile {
    pub format: String,
    pub shard: u32,
    pub of: u32,
    pub context: PlanContext,
    pub groups: Vec<GroupResult>,
}

pub const SHARD_FORMAT: &str = "servesim-plan-shard/1";

#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    pub sets: Vec<String>,
    pub shard: Option<(u32, u32)>,
    pub quiet: bool,
    /// Worker threads (None: rayon's default).
    pub threads: Option<usize>,
}

/// The outcome of a (possibly sharded) run.
pub struct PlanRun {
    pub context: PlanContext,
    pub groups: Vec<GroupResult>,
    pub simulations: u32,
}

/// Parses `i/n`.
pub fn parse_shard(s: &str) -> Result<(u32, u32)> {
    let (i, n) = s.split_once('/').context("--shard expects i/n, e.g. 0/4")?;
    let (i, n): (u32, u32) = (i.trim().parse()?, n.trim().parse()?);
    if n == 0 || i >= n {
        bail!("--shard {s}: need 0 ≤ i < n");
    }
    Ok((i, n))
}

/// What [`prepare`] returns: context, the peak base file, the scaled-traffic file, the day-run
/// base file (autoscaled candidates only) and the groups.
pub type Prepared = (PlanContext, ScenarioFile, Option<ScenarioFile>, Option<ScenarioFile>, Vec<Group>);

/// Loads the plan context and groups without simulating anything.
pub fn prepare(path: &Path, sets: &[String]) -> Result<Prepared> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file0 = scenario::parse_file(&text, path, sets)?;
    let Some(plan) = file0.plan.clone() else {
        bail!("{}: no `plan:` section; see scenarios/coding-assistant-plan.yaml for an example", path.display());
    };
    // The scenario as a day of traffic (for the pay-per-token comparison).
    let day_sc = scenario::resolve(file0.clone(), path)?;
    let day = offered(&day_sc.file, path, day_sc.duration, Evaluate::Whole)?;

    let mut sets2: Vec<String> = sets.to_vec();
    sets2.extend(plan.overrides.iter().cloned());
    if let Some(d) = plan.duration {
        sets2.push(format!("duration={}s", d.0.as_secs_f64()));
    }
    let base = scenario::parse_file(&text, path, &sets2)?;
    let base_sc = scenario::resolve(base.clone(), path)?;
    let window = offered(&base, path, base_sc.duration, plan.evaluate)?;

    let mut traffic_scale = None;
    let mut traffic_set = None;
    let traffic_up = match &plan.sensitivity.traffic_key {
        None => None,
        Some(key) => {
            let v = serde_json::to_value(&base)?;
            let ptr = format!("/{}", key.replace('.', "/"));
            let Some(cur) = v.pointer(&ptr) else {
                bail!("plan.sensitivity.traffic_key: `{key}` is not set in the scenario");
            };
            let s = plan.sensitivity.traffic_scale;
            let new = if let Some(i) = cur.as_u64() {
                ((i as f64 * s).round() as u64).to_string()
            } else if let Some(x) = cur.as_f64() {
                format!("{}", x * s)
            } else {
                bail!("plan.sensitivity.traffic_key: `{key}` is not a number");
            };
            let set = format!("{key}={new}");
            let mut sets3 = sets2.clone();
            sets3.push(set.clone());
            let up = scenario::parse_file(&text, path, &sets3)?;
            traffic_scale = Some(s);
            traffic_set = Some(set);
            Some(up)
        }
    };
    let groups = space::enumerate(&plan, &base)?;
    let day_file = if groups.iter().any(|g| g.autoscaled()) {
        let mut sets4: Vec<String> = sets.to_vec();
        sets4.extend(plan.day.overrides.iter().cloned());
        if let Some(d) = plan.day.duration {
            sets4.push(format!("duration={}s", d.0.as_secs_f64()));
        }
        if plan.day.seeds == Some(0) {
            bail!("plan.day.seeds must be at least 1");
        }
        let f = scenario::parse_file(&text, path, &sets4).context("plan.day")?;
        scenario::resolve(f.clone(), path).context("plan.day: the day run of autoscaled candidates")?;
        Some(f)
    } else {
        None
    };
    let ctx = PlanContext {
        scenario: base.name.clone(),
        slo: base.slo.clone(),
        point_duration_s: base_sc.duration.as_secs_f64(),
        window,
        day_seconds: day_sc.duration.as_secs_f64(),
        daily_requests: day.requests,
        daily_input_tokens: day.input_tokens,
        daily_output_tokens: day.output_tokens,
        traffic_scale,
        traffic_set,
        groups_total: groups.len(),
        plan,
    };
    Ok((ctx, base, traffic_up, day_file, groups))
}

/// Groups split into configurations (the autoscaler variants of one configuration are
/// consecutive); shard `i/n` takes every configuration whose position ≡ i mod n.
pub fn configurations(groups: Vec<Group>, shard: Option<(u32, u32)>) -> Vec<Vec<Group>> {
    let mut out: Vec<Vec<Group>> = Vec::new();
    for g in groups {
        match out.last_mut() {
            Some(c) if c[0].config_id() == g.config_id() => c.push(g),
            _ => out.push(vec![g]),
        }
    }
    match shard {
        Some((i, n)) => out.into_iter().enumerate().filter(|(k, _)| *k as u32 % n == i).map(|x| x.1).collect(),
        None => out,
    }
}

/// Generates the workload (scenario seed) and sums the load in the evaluation window.
fn offered(file: &ScenarioFile, source: &Path, duration: SimDuration, evaluate: Evaluate) -> Result<WindowLoad> {
    let dir = source.parent().unwrap_or(Path::new("."));
    let mut w = crate::workload::build(&file.workload, &RngStreams::new(file.seed), duration, dir)
        .map_err(|e| anyhow::anyhow!("workload: {e}"))?;
    let mut reqs = Vec::new();
    while w.peek_time().is_some() {
        let r = w.pop();
        w.on_finished(r.arrival, &r, Finish::Completed);
        reqs.push((r.arrival.as_nanos(), r.input.0 as u64, r.output.0 as u64));
    }
    let (lo, hi) = search::window_of(reqs.iter().map(|r| r.0), evaluate);
    let mut load = WindowLoad::default();
    for &(a, i, o) in &reqs {
        if a >= lo && a < hi {
            load.requests += 1;
            load.input_tokens += i;
            load.output_tokens += o;
        }
    }
    let ns = crate::units::NANOS_PER_SEC as f64;
    if hi == u64::MAX {
        load.start_s = 0.0;
        load.seconds = duration.as_secs_f64();
    } else {
        load.start_s = lo as f64 / ns;
        load.seconds = 3600.0;
    }
    Ok(load)
}

/// Runs the plan (or one shard of it). Progress goes to stderr only.
pub fn run_plan(path: &Path, opts: &PlanOptions) -> Result<PlanRun> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use rayon::prelude::*;
    use std::io::IsTerminal;
    use std::sync::Mutex;

    let (context, base, traffic_up, day, groups) = prepare(path, &opts.sets)?;
    let all = configurations(groups, None);
    let is_mine = |k: usize| opts.shard.is_none_or(|(i, n)| k as u32 % n == i);
    let plan = &context.plan;
    let top = plan.day.top.unwrap_or(super::DEFAULT_DAY_TOP);
    // Choosing the day runs needs every configuration's peak, so a shard with autoscaled
    // candidates searches all peaks (cheap beside day runs) and keeps its own slice.
    let has_day = all.iter().flatten().any(|g| g.autoscaled());
    let phase1: Vec<(usize, &Vec<Group>)> = all.iter().enumerate().filter(|(k, _)| has_day || is_mine(*k)).collect();
    let ctx = SearchCtx {
        plan,
        base: &base,
        traffic_up: traffic_up.as_ref(),
        source: path,
        window: &context.window,
        day: day.as_ref(),
    };
    let pb = ProgressBar::new(phase1.len() as u64);
    if opts.quiet || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {prefix}, ETA {eta} · {msg}")
            .expect("valid template"),
    );
    pb.set_prefix("configs");
    let best: Mutex<(u32, Option<(f64, String)>)> = Mutex::new((0, None));
    let hours = plan.hours_per_day;
    let report = |rs: &[GroupResult], sims: u32| {
        let mut b = best.lock().unwrap();
        b.0 += sims;
        for r in rs {
            if let (Some(c), Some(m)) = (r.best_cost(hours), r.min_replicas) {
                if b.1.as_ref().is_none_or(|(bc, _)| c < *bc) {
                    b.1 = Some((c, r.group.point_id(m)));
                }
            }
        }
        let msg = match &b.1 {
            Some((c, id)) => format!("{} simulations · best so far ${c:.0}/day {id}", b.0),
            None => format!("{} simulations · nothing feasible yet", b.0),
        };
        drop(b);
        pb.set_message(msg);
        pb.inc(1);
    };
    let work = || -> Result<Vec<GroupResult>> {
        // Phase 1: the peak search of every configuration (fixed fleets are final here).
        let per: Vec<(usize, Vec<GroupResult>)> = phase1
            .par_iter()
            .map(|&(k, gs)| {
                let rs = search::search_peak(&ctx, gs)
                    .with_context(|| format!("plan configuration {}", gs[0].config_id()))?;
                report(&rs, rs.iter().map(|r| r.simulations).sum());
                Ok((k, rs))
            })
            .collect::<Result<_>>()?;
        let flat: Vec<&GroupResult> = per.iter().flat_map(|(_, rs)| rs).collect();
        let chosen = search::select_day_runs(flat.iter().copied(), top, hours);
        let mut mine: Vec<GroupResult> = per.into_iter().filter(|(k, _)| is_mine(*k)).flat_map(|(_, rs)| rs).collect();
        // Phase 2: day runs of the chosen autoscaled groups; the rest say why not.
        let mut todo: Vec<&mut GroupResult> = Vec::new();
        for r in mine.iter_mut() {
            if search::day_max(r).is_none() {
                continue;
            }
            let id = r.group.config_id();
            if chosen.contains(&id) {
                todo.push(r);
            } else {
                let m = r.min_replicas.expect("day_max implies a peak capacity");
                r.day_skipped = Some(format!(
                    "day run not simulated: its fixed fleet ({m} replicas, ${:.0}/day) is not among the {top} cheapest configurations with something to scale (plan.day.top)",
                    r.group.cost_per_day(m, hours)
                ));
            }
        }
        pb.set_prefix("day runs");
        pb.set_position(0);
        pb.set_length(todo.len() as u64);
        todo.par_iter_mut()
            .map(|r| {
                let before = r.simulations;
                search::run_day(&ctx, r).with_context(|| format!("plan day run {}", r.group.id))?;
                report(std::slice::from_ref(&**r), r.simulations - before);
                Ok(())
            })
            .collect::<Result<()>>()?;
        Ok(mine)
    };
    let results = match opts.threads {
        Some(t) => rayon::ThreadPoolBuilder::new().num_threads(t).build()?.install(work)?,
        None => work()?,
    };
    pb.finish_and_clear();
    let simulations = results.iter().map(|r| r.simulations).sum();
    Ok(PlanRun { context, groups: results, simulations })
}

/// Writes a shard's `shard.json`.
pub fn write_shard(dir: &Path, run: &PlanRun, shard: (u32, u32)) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let f = ShardFile {
        format: SHARD_FORMAT.into(),
        shard: shard.0,
        of: shard.1,
        context: run.context.clone(),
        groups: run.groups.clone(),
    };
    let p = dir.join("shard.json");
    crate::metrics::write_atomic(&p, serde_json::to_string_pretty(&f)?.as_bytes())?;
    Ok(p)
}

/// Reads shard folders (each with `shard.json`) and returns the context and all group results
/// in enumeration order; checks that the shards belong together and cover every group once.
pub fn merge_dirs(dirs: &[PathBuf]) -> Result<(PlanContext, Vec<GroupResult>)> {
    let mut shards: Vec<ShardFile> = Vec::new();
    for d in dirs {
        let p = if d.is_dir() { d.join("shard.json") } else { d.clone() };
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let s: ShardFile = serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        if s.format != SHARD_FORMAT {
            bail!("{}: format `{}`, expected `{SHARD_FORMAT}`", p.display(), s.format);
        }
        shards.push(s);
    }
    let Some(first) = shards.first() else { bail!("plan merge: no shard folders given") };
    let (ctx, n) = (first.context.clone(), first.of);
    let mut seen = vec![false; n as usize];
    for s in &shards {
        if s.context != ctx || s.of != n {
            bail!("plan merge: shard {}/{} comes from a different plan or shard count", s.shard, s.of);
        }
        if std::mem::replace(&mut seen[s.shard as usize], true) {
            bail!("plan merge: shard {}/{n} given twice", s.shard);
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        bail!("plan merge: shard {i}/{n} is missing");
    }
    let mut groups: Vec<GroupResult> = shards.into_iter().flat_map(|s| s.groups).collect();
    groups.sort_by_key(|g| g.group.index);
    if groups.len() != ctx.groups_total || groups.iter().enumerate().any(|(i, g)| g.group.index != i) {
        bail!("plan merge: the shards do not cover the {} configurations exactly once", ctx.groups_total);
    }
    Ok((ctx, groups))
}

/// Round-trips results through JSON so an unsharded run reports exactly what a merge would.
pub fn normalize(ctx: &PlanContext, groups: &[GroupResult]) -> Result<(PlanContext, Vec<GroupResult>)> {
    let c = serde_json::from_str(&serde_json::to_string(ctx)?)?;
    let g = serde_json::from_str(&serde_json::to_string(groups)?)?;
    Ok((c, g))
}

/// `servesim plan …` and `servesim plan merge …`.
pub fn cmd_plan(a: crate::cli::PlanArgs) -> Result<std::process::ExitCode> {
    use crate::app::{EXIT_CHECK_FAILED, EXIT_OK};
    use std::process::ExitCode;
    if let Some(crate::cli::PlanSub::Merge { dirs, out }) = &a.merge {
        let (ctx, groups) = merge_dirs(dirs)?;
        let rep = super::report::write_all(out, &ctx, &groups)?;
        summary_line(&rep, out, a.quiet);
        return Ok(ExitCode::from(if rep.recommendation.is_some() { EXIT_OK } else { EXIT_CHECK_FAILED }));
    }
    let Some(path) = &a.scenario else { bail!("servesim plan: give a scenario file (or `plan merge DIR...`)") };
    if let Some(n) = a.emit_k8s_job {
        if n == 0 {
            bail!("--emit-k8s-job needs at least 1 shard");
        }
        let (ctx, ..) = prepare(path, &a.set)?;
        let text = super::emit::indexed_job(path, &ctx.scenario, n)?;
        match &a.out {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let p = dir.join("plan-indexed-job.yaml");
                crate::metrics::write_atomic(&p, text.as_bytes())?;
                println!("wrote {}", p.display());
            }
            None => print!("{text}"),
        }
        return Ok(ExitCode::from(EXIT_OK));
    }
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let opts = PlanOptions { sets: a.set.clone(), shard, quiet: a.quiet, threads: a.threads };
    let t0 = std::time::Instant::now();
    let run = run_plan(path, &opts)?;
    let wall = t0.elapsed().as_secs_f64();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(format!("{}-plan", run.context.scenario)));
    if let Some(sh) = shard {
        let p = write_shard(&out, &run, sh)?;
        eprintln!(
            "shard {}/{}: {} configurations, {} simulations in {wall:.1} s → {}",
            sh.0,
            sh.1,
            run.groups.len(),
            run.simulations,
            p.display()
        );
        return Ok(ExitCode::from(EXIT_OK));
    }
    let (ctx, groups) = normalize(&run.context, &run.groups)?;
    let rep = super::report::write_all(&out, &ctx, &groups)?;
    summary_line(&rep, &out, a.quiet);
    eprintln!("plan: {} in {wall:.1} s wall", rep.space.describe());
    Ok(ExitCode::from(if rep.recommendation.is_some() { EXIT_OK } else { EXIT_CHECK_FAILED }))
}

fn summary_line(rep: &super::report::PlanReport, out: &Path, quiet: bool) {
    if quiet {
        match &rep.recommendation {
            Some(r) => println!("recommendation: {} (${:.0}/day, {} GPUs)", r.id, r.cost_usd_per_day, r.gpus),
            None => println!("no feasible configuration"),
        }
    } else {
        print!("{}", super::report::render_text(rep));
        println!("outputs: {}", out.display());
    }
}

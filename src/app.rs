//! Subcommand orchestration: load → build → run → export. The only module that uses anyhow
//! and the wall clock (for `bench` and progress figures), never inside a simulation.

use crate::cli::{BenchArgs, CheckArgs, Cli, Command, CompareArgs, ReportArgs, RunArgs, ScenarioArgs};
use crate::metrics::{self, Summary};
use crate::report;
use crate::scenario::{self, Scenario};
use crate::sim;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, as documented in `--help` and README.
pub const EXIT_OK: u8 = 0;
pub const EXIT_CHECK_FAILED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::ValidateScenario(a) => {
            let sc = load(&a.scenario)?;
            println!(
                "{}: ok ({} on {} × {} TP{}, {} KV blocks of {} tokens per replica)",
                a.scenario.scenario.display(),
                sc.model.id,
                sc.replicas,
                sc.gpu.id,
                sc.tp,
                sc.engine.num_gpu_blocks,
                sc.engine.block_size
            );
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Schema => {
            let s = serde_json::to_string_pretty(&scenario::schema())?;
            println!("{s}");
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Compare(a) => cmd_compare(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Check(a) => cmd_check(a),
        Command::Plan(a) => crate::plan::run::cmd_plan(a),
        Command::Report(a) => cmd_report(a),
        Command::Validate(a) => crate::validate::cmd::cmd_validate(a),
        Command::Calibrate(a) => crate::calibrate::cmd::cmd_calibrate(a),
        #[cfg(feature = "live")]
        Command::Live(a) => crate::live::args::cmd_live(a),
        #[cfg(feature = "live")]
        Command::LiveBench(a) => crate::live::bench::cmd_live_bench(a),
    }
}

fn overrides(a: &ScenarioArgs) -> Vec<String> {
    let mut sets = a.set.clone();
    if let Some(seed) = a.seed {
        sets.push(format!("seed={seed}"));
    }
    sets
}

fn load(a: &ScenarioArgs) -> Result<Scenario> {
    Ok(scenario::load(&a.scenario, &overrides(a))?)
}

/// The scenario text as run (`scenario.yaml` in the output folder; see `report::scenario_copy`).
fn scenario_copy(a: &ScenarioArgs, router: Option<&str>) -> Result<String> {
    let text = std::fs::read_to_string(&a.scenario).with_context(|| format!("reading {}", a.scenario.display()))?;
    Ok(report::scenario_copy(&a.scenario, &text, &overrides(a), router))
}

fn write_html(path: &std::path::Path, html: Result<String, report::ReportError>) -> Result<()> {
    let html = html.with_context(|| format!("rendering {}", path.display()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    metrics::write_atomic(path, html.as_bytes())?;
    Ok(())
}

fn cmd_run(a: RunArgs) -> Result<ExitCode> {
    let sc = load(&a.scenario)?;
    let out_dir = a.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&sc.name));
    let out = sim::simulate(&sc).with_context(|| format!("simulating {}", a.scenario.scenario.display()))?;
    let copy = scenario_copy(&a.scenario, None)?;
    let ts = write_run(&sc, &out, &out_dir, Some(&copy))?;
    if let Some(path) = &a.html {
        let fleet =
            report::data::FleetData::parse(&ts, Some(&report::data::scale_events_csv(&out.totals.fleet.events)))?;
        let ts = report::data::parse_timeseries_csv(&ts)?;
        let run = report::RunData {
            label: &sc.name,
            summary: &out.summary,
            records: Some(&out.recorder.records),
            timeseries: &ts,
            fleet: fleet.as_ref(),
        };
        write_html(path, report::render_run_html(&run, &report::ScenarioInfo::new(Some(&sc), Some(copy))))?;
    }
    let mut stdout = std::io::stdout().lock();
    if a.quiet {
        writeln!(stdout, "{}", one_line(&out.summary))?;
    } else {
        write!(stdout, "{}", metrics::render_text(&out.summary))?;
        write!(stdout, "{}", scale_events_text(&out.totals.fleet))?;
        writeln!(stdout, "outputs: {}", out_dir.display())?;
    }
    Ok(verdict(&out.summary))
}

/// Writes a run's outputs (plus the scenario copy, when given); returns `timeseries.csv`'s bytes.
fn write_run(sc: &Scenario, out: &sim::SimOutput, dir: &std::path::Path, copy: Option<&str>) -> Result<Vec<u8>> {
    let ts = metrics::render_timeseries(&out.recorder);
    let recs = if sc.requests_csv { Some(out.recorder.records.as_slice()) } else { None };
    metrics::write_outputs(dir, &out.summary, recs, Some(&ts))?;
    if let Some(copy) = copy {
        metrics::write_atomic(&dir.join(report::SCENARIO_COPY), copy.as_bytes())?;
    }
    let events = &out.totals.fleet.events;
    if !events.is_empty() || sc.autoscaler != crate::autoscaler::AutoscalerConfig::Fixed {
        metrics::write_atomic(&dir.join(report::data::SCALE_EVENTS_FILE), &report::data::scale_events_csv(events))?;
    }
    Ok(ts)
}

/// Scale events as `run` prints them (the first 40, then a count).
pub fn scale_events_text(f: &crate::engine::FleetTotals) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    if f.events.is_empty() {
        return t;
    }
    let _ = writeln!(
        t,
        "scale events  {} (replicas created {}, most live {})",
        f.events.len(),
        f.replicas_created,
        f.max_live
    );
    for e in f.events.iter().take(40) {
        let s = e.time.as_secs_f64();
        let _ = writeln!(
            t,
            "  {:>9.1} s  {:02}:{:02}:{:02}  {:>3} -> {:<3} {}",
            s,
            (s as u64) / 3600,
            (s as u64) / 60 % 60,
            (s as u64) % 60,
            e.from,
            e.to,
            e.reason
        );
    }
    if f.events.len() > 40 {
        let _ = writeln!(t, "  … {} more", f.events.len() - 40);
    }
    t
}

fn verdict(s: &Summary) -> ExitCode {
    ExitCode::from(if s.slo.passed { EXIT_OK } else { EXIT_CHECK_FAILED })
}

fn one_line(s: &Summary) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.3}", x));
    format!(
        "{}: {} completed, TTFT p90 {} s, TPOT p90 {} s, hit rate {:.3}, SLO {}",
        s.scenario,
        s.requests.completed,
        f(s.ttft_s.p90),
        f(s.tpot_s.p90),
        s.prefix_hit_rate.unwrap_or(0.0),
        if s.slo.passed { "pass" } else { "FAIL" }
    )
}

fn cmd_compare(a: CompareArgs) -> Result<ExitCode> {
    let sc = load(&a.scenario)?;
    let by_scaler = !a.autoscalers.is_empty();
    let (routers, results): (Vec<(String, ())>, Vec<Result<sim::SimOutput, sim::SimError>>) = if by_scaler {
        let scalers: Vec<(String, crate::autoscaler::AutoscalerConfig)> = a
            .autoscalers
            .iter()
            .map(|name| Ok((name.clone(), autoscaler_by_name(&sc, name)?)))
            .collect::<Result<_>>()?;
        let res = sim::simulate_autoscalers(&sc, &scalers);
        (scalers.into_iter().map(|(n, _)| (n, ())).collect(), res)
    } else {
        let routers: Vec<(String, crate::router::RouterConfig)> =
            a.routers.iter().map(|name| Ok((name.clone(), parse_router_name(name)?))).collect::<Result<_>>()?;
        let res = sim::simulate_routers(&sc, &routers);
        (routers.into_iter().map(|(n, _)| (n, ())).collect(), res)
    };
    let mut fleet_rows = Vec::new();
    let mut rows = Vec::new();
    let mut stage_tables = String::new();
    let mut any_failed = false;
    let mut outs = Vec::new();
    for ((name, _), res) in routers.iter().zip(results) {
        let out =
            res.with_context(|| format!("simulating with {} {name}", if by_scaler { "autoscaler" } else { "router" }))?;
        fleet_rows.push((name.clone(), out.summary.gpu_hours.clone(), out.totals.fleet.clone()));
        if let Some(dir) = &a.out {
            let copy = scenario_copy(&a.scenario, if by_scaler { None } else { Some(name) })?;
            write_run(&sc, &out, &dir.join(name), Some(&copy))?;
        }
        if a.per_stage {
            match crate::stages::per_stage(&sc, &out) {
                Some(st) => stage_tables.push_str(&crate::stages::render_markdown(name, &st)),
                None => anyhow::bail!("--per-stage needs a workload with `arrival: {{kind: stages}}`"),
            }
            stage_tables.push('\n');
        }
        any_failed |= !out.summary.slo.passed;
        rows.push((name.clone(), out.summary.clone()));
        if a.html.is_some() {
            outs.push(out);
        }
    }
    if let Some(path) = &a.html {
        let ts: Vec<Vec<report::data::TsRow>> = outs
            .iter()
            .map(|o| report::data::parse_timeseries_csv(&metrics::render_timeseries(&o.recorder)))
            .collect::<Result<_, _>>()?;
        let fleets: Vec<Option<report::data::FleetData>> = outs
            .iter()
            .map(|o| {
                let events = report::data::scale_events_csv(&o.totals.fleet.events);
                report::data::FleetData::parse(&metrics::render_timeseries(&o.recorder), Some(&events))
            })
            .collect::<Result<_, _>>()?;
        let runs: Vec<report::RunData> = outs
            .iter()
            .zip(ts.iter().zip(&fleets))
            .zip(&routers)
            .map(|((o, (ts, fleet)), (name, _))| report::RunData {
                label: name,
                summary: &o.summary,
                records: Some(&o.recorder.records),
                timeseries: ts,
                fleet: fleet.as_ref(),
            })
            .collect();
        let info = report::ScenarioInfo::new(Some(&sc), Some(scenario_copy(&a.scenario, None)?));
        write_html(path, report::render_compare_html(&runs, &info))?;
    }
    print!("{}", compare_table(&rows));
    if by_scaler {
        print!("{}", fleet_table(&fleet_rows));
    }
    if a.per_stage {
        print!("\n{stage_tables}");
    }
    if let Some(p) = &a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, s)| serde_json::json!({(if by_scaler { "autoscaler" } else { "router" }): n, "summary": s}))
            .collect();
        metrics::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(ExitCode::from(if any_failed { EXIT_CHECK_FAILED } else { EXIT_OK }))
}

fn cmd_check(a: CheckArgs) -> Result<ExitCode> {
    use crate::check;
    let opts = check::CheckOptions {
        baseline: a.baseline,
        scenarios: a.scenarios,
        extra_overrides: a.set,
        update: a.update,
        routers: a.routers,
    };
    let run = check::run(&opts)?;
    if opts.update {
        let errs: Vec<_> = run.report.rows.iter().filter(|r| r.status == check::Status::Error).collect();
        for r in &errs {
            eprintln!("error: {} / {} {}: {}", r.scenario, r.router, r.metric, r.message);
        }
        for p in &run.written {
            println!("wrote {}", p.display());
        }
        return Ok(ExitCode::from(if errs.is_empty() { EXIT_OK } else { EXIT_ERROR }));
    }
    print!("{}", check::render_table(&run.report, a.verbose));
    if let Some(p) = &a.junit {
        metrics::write_atomic(p, check::render_junit(&run.report).as_bytes())?;
    }
    if let Some(p) = &a.json {
        metrics::write_atomic(p, serde_json::to_string_pretty(&run.report)?.as_bytes())?;
    }
    Ok(ExitCode::from(run.report.exit_code()))
}

fn cmd_bench(a: BenchArgs) -> Result<ExitCode> {
    use std::time::Instant;
    println!("servesim bench (one thread; wall-clock figures vary with machine load)");
    // 1) Long run of minimal.yaml's shape with >= N requests.
    let minimal = a.scenarios.join("minimal.yaml");
    let probe = scenario::load(&minimal, &[])?;
    let rate = crate::workload::build(
        &probe.workload,
        &crate::rng::RngStreams::new(probe.seed),
        probe.duration,
        std::path::Path::new("."),
    )
    .ok()
    .and_then(|w| w.mean_rate())
    .unwrap_or(20.0);
    let secs = (a.requests as f64 / rate * 1.02).ceil() as u64;
    let sc = scenario::load(&minimal, &[format!("duration={secs}s"), "output.timeseries_interval=60s".to_string()])?;
    let t0 = Instant::now();
    let out = sim::simulate(&sc)?;
    let wall = t0.elapsed().as_secs_f64();
    let n = out.summary.requests.completed;
    println!(
        "minimal-shape long run: {n} requests in {wall:.2} s wall = {:.0} simulated requests/s ({:.0} simulated s)",
        n as f64 / wall,
        out.summary.simulated_seconds
    );
    // 2) coding-assistant.yaml end to end including output writing.
    let ca = a.scenarios.join("coding-assistant.yaml");
    let t0 = Instant::now();
    let sc = scenario::load(&ca, &[])?;
    let out = sim::simulate(&sc)?;
    let dir = std::env::temp_dir().join(format!("servesim-bench-{}", std::process::id()));
    write_run(&sc, &out, &dir, None)?;
    let wall = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let n = out.summary.requests.completed;
    println!(
        "coding-assistant (with output writing): {n} requests in {wall:.2} s wall = {:.0} simulated requests/s",
        n as f64 / wall
    );
    // 3) The planner's sweeps (rayon on every core), reports written.
    if a.plan {
        let path = a.scenarios.join("coding-assistant-plan.yaml");
        for (what, sets) in [
            ("fixed fleets", vec!["plan.candidates.autoscaler=[none]".to_string()]),
            ("as shipped, with day runs", vec![]),
        ] {
            let t0 = Instant::now();
            let opts = crate::plan::PlanOptions { sets, quiet: true, ..Default::default() };
            let run = crate::plan::run_plan(&path, &opts)?;
            let (ctx, groups) = crate::plan::run::normalize(&run.context, &run.groups)?;
            let dir = std::env::temp_dir().join(format!("servesim-bench-plan-{}", std::process::id()));
            let rep = crate::plan::report::write_all(&dir, &ctx, &groups)?;
            let wall = t0.elapsed().as_secs_f64();
            let _ = std::fs::remove_dir_all(&dir);
            println!(
                "plan sweep, {what} ({} threads): {} in {wall:.1} s wall",
                rayon::current_num_threads(),
                rep.space.describe()
            );
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// `report DIR`: a run folder gives a run report; a `compare --out` folder (no summary.json,
/// subfolders with one) gives a comparison in subfolder-name order.
fn cmd_report(a: ReportArgs) -> Result<ExitCode> {
    if a.dir.join("plan.json").exists() && !a.dir.join("summary.json").exists() {
        // A `plan --out` folder: rebuild its index.html from plan.json.
        let html_path = a.html.clone().unwrap_or_else(|| a.dir.join("index.html"));
        let file = a.dir.join("plan.json");
        let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let rep: crate::plan::report::PlanReport = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a plan.json written by `servesim plan`", file.display()))?;
        let page = report::plan::PlanPage::build(&rep);
        if let Some(p) = &a.context_json {
            metrics::write_atomic(p, serde_json::to_string_pretty(&page)?.as_bytes())?;
        }
        write_html(&html_path, report::plan::render_page(&page))?;
        println!("report: {}", html_path.display());
        return Ok(ExitCode::from(if rep.recommendation.is_some() { EXIT_OK } else { EXIT_CHECK_FAILED }));
    }
    let html_path = a.html.clone().unwrap_or_else(|| a.dir.join("report.html"));
    let (ctx, passed) = if a.dir.join("summary.json").exists() {
        let r = report::ResultDir::read(&a.dir)?;
        (report::ReportContext::for_run(&r.run_data(), &r.scenario_info()), r.summary.slo.passed)
    } else {
        let mut subdirs: Vec<PathBuf> = std::fs::read_dir(&a.dir)
            .with_context(|| format!("reading {}", a.dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("summary.json").exists())
            .collect();
        subdirs.sort();
        anyhow::ensure!(
            !subdirs.is_empty(),
            "{}: no summary.json here or in any subfolder; pass a folder written by `servesim run --out` or `servesim compare --out`",
            a.dir.display()
        );
        let dirs = subdirs.iter().map(|d| report::ResultDir::read(d)).collect::<Result<Vec<_>, _>>()?;
        let labels: Vec<String> = subdirs
            .iter()
            .map(|d| d.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()))
            .collect();
        let runs: Vec<report::RunData> =
            dirs.iter().zip(&labels).map(|(d, l)| report::RunData { label: l, ..d.run_data() }).collect();
        let mut info = dirs[0].scenario_info();
        if let Some(text) = &dirs[0].scenario_yaml {
            info.yaml = Some(
                text.lines()
                    .filter(|l| !l.starts_with("# servesim-router: "))
                    .map(|l| format!("{l}\n"))
                    .collect::<String>(),
            );
        }
        (report::ReportContext::for_compare(&runs, &info), dirs.iter().all(|d| d.summary.slo.passed))
    };
    if let Some(p) = &a.context_json {
        metrics::write_atomic(p, serde_json::to_string_pretty(&ctx)?.as_bytes())?;
    }
    write_html(&html_path, report::render_html(&ctx))?;
    println!("report: {}", html_path.display());
    Ok(ExitCode::from(if passed { EXIT_OK } else { EXIT_CHECK_FAILED }))
}

/// `round_robin`, `random`, `least_requests`, `power_of_two`, `kubernetes_service`, `epp`
/// (default profile) or `epp:<profile>`.
pub fn parse_router_name(name: &str) -> Result<crate::router::RouterConfig> {
    let yaml = match name.split_once(':') {
        Some(("epp", profile)) => format!("{{kind: epp, profile: \"{profile}\"}}"),
        Some(_) => anyhow::bail!("router `{name}`: only `epp:<profile>` takes a suffix"),
        None if name == "epp" => "{kind: epp, profile: default}".to_string(),
        None => format!("{{kind: {name}}}"),
    };
    serde_saphyr::from_str::<crate::router::RouterConfig>(&yaml).map_err(|e| {
        anyhow::anyhow!(
            "unknown router `{name}` ({e}); valid: round_robin, random, least_requests, power_of_two, kubernetes_service, epp, epp:<profile>"
        )
    })
}

/// The autoscaler `name` for `compare --autoscalers`.
pub fn autoscaler_by_name(sc: &Scenario, name: &str) -> Result<crate::autoscaler::AutoscalerConfig> {
    use crate::autoscaler::{AutoscalerConfig, PRESETS, PresetConfig};
    if let Some(c) = sc.file.autoscalers.get(name) {
        return Ok(c.clone());
    }
    match name {
        "fixed" => Ok(AutoscalerConfig::Fixed),
        "scenario" => Ok(sc.autoscaler.clone()),
        n if PRESETS.contains(&n) => {
            Ok(AutoscalerConfig::Preset(PresetConfig { name: n.to_string(), min_replicas: None, max_replicas: None }))
        }
        _ => {
            let mut valid: Vec<String> = vec!["fixed".into(), "scenario".into()];
            valid.extend(sc.file.autoscalers.keys().cloned());
            valid.extend(PRESETS.iter().map(|s| s.to_string()));
            anyhow::bail!("unknown autoscaler `{name}`; valid: {}", valid.join(", "))
        }
    }
}

/// GPU-hours by phase and scaling activity per compared autoscaler.
pub fn fleet_table(rows: &[(String, metrics::GpuHours, crate::engine::FleetTotals)]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "autoscaler", "GPU-h", "serving", "starting", "draining", "idle", "events", "created", "max live"
    );
    for (name, g, f) in rows {
        let _ = writeln!(
            t,
            "{:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>8} {:>8}",
            name,
            g.total,
            g.serving,
            g.starting,
            g.draining,
            g.idle_node,
            f.events.len(),
            f.replicas_created,
            f.max_live
        );
    }
    t
}

/// Side-by-side text table of router results.
pub fn compare_table(rows: &[(String, Summary)]) -> String {
    use std::fmt::Write as _;
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.1}", x * 1e3));
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>8} {:>9} {:>10}",
        "router",
        "TTFT mean",
        "TTFT p90",
        "TTFT p99",
        "TPOT mean",
        "TPOT p90",
        "E2E mean",
        "E2E p99",
        "req/s",
        "hit",
        "preempt",
        "imbalance",
        "cost $"
    );
    for (name, s) in rows {
        let per: Vec<f64> = s.per_replica.iter().map(|r| r.requests as f64).collect();
        let mean = per.iter().sum::<f64>() / per.len().max(1) as f64;
        let imb = if mean > 0.0 { per.iter().cloned().fold(0.0, f64::max) / mean } else { 0.0 };
        let _ = writeln!(
            t,
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8.2} {:>7.3} {:>8} {:>9.2} {:>10.2}",
            name,
            ms(s.ttft_s.mean),
            ms(s.ttft_s.p90),
            ms(s.ttft_s.p99),
            ms(s.tpot_s.mean),
            ms(s.tpot_s.p90),
            ms(s.e2e_s.mean),
            ms(s.e2e_s.p99),
            s.throughput.requests_per_s.unwrap_or(0.0),
            s.prefix_hit_rate.unwrap_or(0.0),
            s.preemptions,
            imb,
            s.cost_usd
        );
    }
    let _ = writeln!(t, "(latencies in ms; imbalance = max/mean requests per replica)");
    t
}

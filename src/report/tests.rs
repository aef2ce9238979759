//! Report tests: golden context (not pixels), hostile strings, the size of a day-long run,
//! and the series the SVGs carry. The browser check lives in `tests/report_browser.rs`.

use super::*;
use crate::metrics::{
    FleetSample, PriceInfo, Recorder, ReplicaSample, ReplicaTotals, RunMeta, RunTotals, render_timeseries_csv,
};
use crate::scenario::raw::SloFile;
use crate::units::{ReplicaId, RequestId, SimDuration, SimTime};

/// Deterministic synthetic run: `n` requests over `span_s`, `replicas` replicas ticking
/// every `tick_s`. Not a simulation: the report must not depend on engine behaviour here.
pub(crate) fn synthetic(
    name: &str,
    n: u64,
    span_s: u64,
    replicas: u32,
    tick_s: u64,
) -> (Summary, Vec<RequestRecord>, Vec<TsRow>) {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let ns = |s: f64| SimTime((s * 1e9) as u64);
    let mut records = Vec::with_capacity(n as usize);
    for i in 0..n {
        let arrival = span_s as f64 * i as f64 / n as f64;
        let out = 16 + (rnd() * 200.0) as u32;
        let ttft = 0.02 + rnd() * rnd() * 0.5;
        let tpot = 0.006 + rnd() * 0.004;
        let outcome = if i % 97 == 5 { Outcome::Rejected } else { Outcome::Completed };
        let done = outcome == Outcome::Completed;
        records.push(RequestRecord {
            id: RequestId(i),
            arrival: ns(arrival),
            replica: Some(ReplicaId((i % replicas as u64) as u32)),
            input_tokens: 100 + (rnd() * 900.0) as u32,
            output_tokens: out,
            cached_tokens: (rnd() * 100.0) as u32,
            scheduled: done.then(|| ns(arrival + ttft * 0.5)),
            first_token: done.then(|| ns(arrival + ttft)),
            last_token: done.then(|| ns(arrival + ttft + tpot * (out - 1) as f64)),
            preemptions: 0,
            outcome,
            session: None,
            group: None,
        });
    }
    let mut recorder = Recorder::from_records(records);
    let mut cum = vec![ReplicaSample::default(); replicas as usize];
    for t in (tick_s..=span_s).step_by(tick_s as usize) {
        let samples: Vec<ReplicaSample> = (0..replicas)
            .map(|r| {
                let c = &mut cum[r as usize];
                c.replica = ReplicaId(r);
                c.running = (rnd() * 20.0) as u32;
                c.waiting = if rnd() < 0.01 { 50 } else { 0 };
                c.kv_usage = rnd() * 0.8;
                c.prefix_queries += 1000;
                c.prefix_hits += (rnd() * 1000.0) as u64;
                c.prompt_tokens += 500;
                c.generation_tokens += 300;
                *c
            })
            .collect();
        recorder.ticks.extend(
            samples.into_iter().map(|sample| crate::metrics::TickRow { time: SimTime(t * 1_000_000_000), sample }),
        );
    }
    let meta = RunMeta {
        scenario: name.into(),
        seed: 1,
        simulated: SimDuration(span_s * 1_000_000_000),
        replicas,
        tp: 1,
        gpu_count: replicas,
        price: PriceInfo { usd_per_gpu_hour: 2.5, provider: "test".into(), observed: None },
        slo: SloFile { ttft_p90_s: Some(0.3), tpot_p90_s: Some(0.008), ..Default::default() },
    };
    let totals = RunTotals::from_replicas(vec![ReplicaTotals::default(); replicas as usize]);
    let summary = Summary::build(&meta, &totals, &mut recorder);
    let ts = data::parse_timeseries_csv(&render_timeseries_csv(&recorder.ticks)).unwrap();
    (summary, recorder.records, ts)
}

fn run_ctx(summary: &Summary, records: &[RequestRecord], ts: &[TsRow], info: &ScenarioInfo) -> ReportContext {
    ReportContext::for_run(
        &RunData { label: &summary.scenario, summary, records: Some(records), timeseries: ts, fleet: None },
        info,
    )
}

#[test]
fn golden_run_context() {
    let (mut s, recs, ts) = synthetic("golden", 60, 30, 2, 1);
    s.servesim_version = "test".into();
    let mut ctx = run_ctx(&s, &recs, &ts, &ScenarioInfo { yaml: Some("name: golden\n".into()), ..Default::default() });
    ctx.servesim_version = "test".into();
    let got = serde_json::to_string_pretty(&ctx).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report_run_context.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("golden file (run with UPDATE_GOLDEN=1 to create)");
    assert!(got == want, "report context changed; review and rerun with UPDATE_GOLDEN=1\n{}", first_diff(&want, &got));
}

fn first_diff(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: golden `{x}` vs now `{y}`", i + 1);
        }
    }
    format!("lengths differ: {} vs {} lines", a.lines().count(), b.lines().count())
}

#[test]
fn context_has_every_section_and_numbers_behind_every_chart() {
    let (s, recs, ts) = synthetic("sections", 500, 120, 3, 1);
    let ctx = run_ctx(&s, &recs, &ts, &ScenarioInfo::default());
    let ids: Vec<&str> = ctx.sections.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["distributions", "over-time", "load", "replicas", "prefix", "cost"]);
    for f in ctx.sections.iter().flat_map(|s| &s.figures) {
        assert!(!f.table.rows.is_empty(), "{} has no table", f.id);
        assert!(f.table.rows.iter().all(|r| r.len() == f.table.columns.len()), "{} ragged table", f.id);
    }
    assert!(ctx.verdicts[0].has_slos);
}

#[test]
fn hostile_strings_are_escaped() {
    let evil = r#"<script>alert("x")</script>'"&<img src=x onerror=alert(1)>"#;
    let long = "n".repeat(5000);
    let name = format!("{evil}{long}");
    let (s, recs, ts) = synthetic(&name, 200, 60, 2, 1);
    let header = ScenarioHeader {
        name: name.clone(),
        description: Some(evil.into()),
        model: evil.into(),
        gpu: evil.into(),
        tp: 1,
        replicas: 2,
        gpus: 2,
        duration: "1 min".into(),
        seed: 1,
        router: evil.into(),
        engine: vec![KeyValue { key: evil.into(), value: evil.into() }],
        workload: vec![KeyValue { key: "kind".into(), value: evil.into() }],
        price: evil.into(),
        autoscaler: Some(evil.into()),
        scaler_target: None,
    };
    let info = ScenarioInfo {
        header: Some(header),
        yaml: Some(format!("name: x\n# </pre>{evil}\n")),
        notes: vec![evil.into()],
    };
    let run = RunData { label: &name, summary: &s, records: Some(&recs), timeseries: &ts, fleet: None };
    let html = render_run_html(&run, &info).unwrap();
    let cmp = render_compare_html(&[run, RunData { label: evil, ..run }], &info).unwrap();
    for h in [&html, &cmp] {
        assert_eq!(h.matches("<script").count(), 1, "only the sorting script may appear");
        assert!(!h.contains("<img"), "raw tag leaked");
        assert!(!h.contains("alert(\"x\")"), "unescaped quotes");
        assert!(h.contains("&lt;script&gt;"), "escaped form present");
        // SVG <title> and legend text are escaped too; long labels are shortened in charts.
        for svg in h.split("<svg").skip(1).map(|p| p.split("</svg>").next().unwrap()) {
            let text: String = svg.split("<text").skip(1).collect();
            assert!(!text.contains(&"n".repeat(MAX_LABEL)), "a chart carries an unshortened label");
        }
    }
}
const MAX_LABEL: usize = charts::MAX_LABEL_CHARS + 1;

#[test]
fn twenty_four_hour_run_stays_small() {
    // A day at 1 s ticks on 8 replicas (691,200 tick rows) and 400k requests.
    let (s, recs, ts) = synthetic("day", 400_000, 86_400, 8, 1);
    assert_eq!(ts.len(), 8 * 86_400);
    let html = render_run_html(
        &RunData { label: "day", summary: &s, records: Some(&recs), timeseries: &ts, fleet: None },
        &ScenarioInfo::default(),
    )
    .unwrap();
    eprintln!("24-hour report: {} bytes", html.len());
    assert!(html.len() < 2_000_000, "24-hour report is {} bytes", html.len());
    // Peaks survive bucketing: the rare 50-waiting ticks show in the envelope max.
    let ctx = run_ctx(&s, &recs, &ts, &ScenarioInfo::default());
    let fig = ctx.sections.iter().flat_map(|s| &s.figures).find(|f| f.id == "replica-waiting").unwrap();
    let Chart::Time { series, .. } = &fig.chart else { panic!("time chart") };
    let peak = series.iter().find(|s| s.label.starts_with("peak")).unwrap();
    assert!(peak.y.iter().flatten().all(|v| *v == 50.0), "every 6-minute bucket has a 1% spike");
    assert!(peak.x.len() <= data::MAX_TIME_POINTS);
}

/// Polyline point counts and text elements of an SVG.
fn polylines(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .map(|p| {
            let pts = p.split("points=\"").nth(1).unwrap_or("").split('"').next().unwrap_or("");
            pts.split_whitespace().count()
        })
        .collect()
}

#[test]
fn svgs_carry_expected_series() {
    let (s, recs, ts) = synthetic("series", 1000, 300, 2, 1);
    let mut ctx = run_ctx(&s, &recs, &ts, &ScenarioInfo::default());
    for sec in &mut ctx.sections {
        for f in &mut sec.figures {
            f.svg = f.chart.to_svg().unwrap();
        }
    }
    let fig = |id: &str| ctx.sections.iter().flat_map(|s| &s.figures).find(|f| f.id == id).unwrap().clone();
    let ttft = fig("cdf-ttft");
    assert!(ttft.svg.contains("TTFT (ms)"), "x axis label");
    assert!(ttft.svg.contains("fraction of requests"), "y axis label");
    assert!(ttft.svg.contains(">series\n</text>") || ttft.svg.contains("series"), "legend entry");
    assert!(ttft.svg.contains("SLO p90 ≤ 300 ms"), "SLO marker in legend");
    assert!(polylines(&ttft.svg).contains(&data::cdf_grid().len()), "CDF line has one point per grid percentile");
    let run = fig("replica-running");
    for l in ["replica 0", "replica 1", "peak (any replica)", "running", "time since start (min)"] {
        assert!(run.svg.contains(l), "replica chart lacks `{l}`");
    }
    // 300 s at 1 s ticks → 2 s buckets → 150 points per replica line.
    assert!(polylines(&run.svg).iter().filter(|n| **n == 150).count() >= 2, "{:?}", polylines(&run.svg));
}

#[test]
fn compare_context_shares_axes() {
    let (s, recs, ts) = synthetic("cmp", 300, 60, 2, 1);
    let runs = [
        RunData { label: "a", summary: &s, records: Some(&recs), timeseries: &ts, fleet: None },
        RunData { label: "b", summary: &s, records: Some(&recs), timeseries: &ts, fleet: None },
    ];
    let ctx = ReportContext::for_compare(&runs, &ScenarioInfo::default());
    assert_eq!(ctx.kind, ReportKind::Compare);
    assert_eq!(ctx.verdicts.len(), 2);
    let cdf = ctx.sections.iter().flat_map(|s| &s.figures).find(|f| f.id == "cdf-ttft").unwrap();
    let Chart::Cdf { series, .. } = &cdf.chart else { panic!() };
    assert_eq!(series.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let bars = ctx.sections.iter().flat_map(|s| &s.figures).find(|f| f.id == "bars-ttft").unwrap();
    assert_eq!(bars.table.rows.len(), 2);
}

#[test]
fn scenario_copy_round_trips_overrides() {
    let text = scenario_copy(
        Path::new("scenarios/minimal.yaml"),
        "name: x\n",
        &["duration=1h".into(), "seed=3".into()],
        Some("epp"),
    );
    let m = parse_scenario_copy(&text);
    assert_eq!(m.source.as_deref(), Some(Path::new("scenarios/minimal.yaml")));
    assert_eq!(m.sets, ["duration=1h", "seed=3"]);
    assert_eq!(m.router.as_deref(), Some("epp"));
    assert!(text.ends_with("name: x\n"));
}

#[test]
fn timeseries_csv_round_trips() {
    let (_, _, ts) = synthetic("ts", 10, 5, 2, 1);
    assert_eq!(ts.len(), 10);
    assert_eq!(ts[3].replica, 1);
    assert_eq!(ts[3].time_s, 2.0);
    assert!(ts[3].prefix_hit_rate.is_some());
}

#[test]
fn buckets_keep_peaks() {
    let axis = TimeAxis::new(86_400.0, 1.0);
    assert_eq!(axis.width_s, 600.0);
    assert_eq!(axis.t_s.len(), 144);
    let env = data::rate_envelope(&axis, (0..10).map(|_| 3600.5));
    assert_eq!(env.max[6], Some(10.0), "a 10-request second inside an hour stays visible");
    assert!(env.mean[6].unwrap() < 0.1);
}

// ---------------------------------------------------------------------------------------------
// Plan page.

/// A small hand-built plan result (not a simulation): an H100 configuration that needs 3
/// replicas, an L40S/EPP one that needs 2 (cheaper: the recommendation) and a pruned one.
/// `tag` goes into provider and config names (escaping tests).
pub(crate) fn synthetic_plan(tag: &str) -> crate::plan::report::PlanReport {
    use crate::plan::prune::{PruneKind, Pruned, WindowLoad};
    use crate::plan::run::PlanContext;
    use crate::plan::search::{Eval, GroupResult, SeedEval};
    use crate::plan::space::Group;
    let plan: crate::plan::PlanConfig = serde_saphyr::from_str(
        "seeds: 2\ncandidates: {gpus: [{gpu: h100}, {gpu: l40s}], replicas: {min: 1, max: 4}}\npay_per_token: {input_usd_per_million: 0.1, output_usd_per_million: 0.3, provider: api}\nsensitivity: {traffic_key: workload.engineers}\n",
    )
    .unwrap();
    let ctx = PlanContext {
        scenario: format!("plan-{tag}"),
        plan,
        slo: SloFile { ttft_p90_s: Some(2.0), tpot_p90_s: Some(0.06), ..Default::default() },
        point_duration_s: 300.0,
        window: WindowLoad {
            start_s: 0.0,
            seconds: 300.0,
            requests: 1000,
            input_tokens: 4_000_000,
            output_tokens: 200_000,
        },
        day_seconds: 86_400.0,
        daily_requests: 288_000,
        daily_input_tokens: 1_152_000_000,
        daily_output_tokens: 57_600_000,
        traffic_scale: Some(1.3),
        traffic_set: Some("workload.engineers=2600".into()),
        groups_total: 3,
    };
    let group = |index, gpu: &str, model: &str, tp, price, router: &str| Group {
        index,
        id: format!("{gpu}/{model}/tp{tp}/e0/{router}"),
        gpu: gpu.into(),
        provider: format!("cloud {tag}"),
        usd_per_gpu_hour: price,
        price_override: false,
        model: model.into(),
        tp,
        engine_index: 0,
        engine: Default::default(),
        router: router.into(),
        min_replicas: 1,
        max_replicas: 4,
        autoscaler: "none".into(),
        autoscaler_config: None,
    };
    let seed = |s, ttft: Option<f64>, tpot: Option<f64>, passed: bool| SeedEval {
        seed: s,
        requests: 1000,
        ttft_p50_s: ttft.map(|t| t / 2.0),
        ttft_p90_s: ttft,
        ttft_p99_s: ttft.map(|t| t * 1.5),
        tpot_p50_s: tpot,
        tpot_p90_s: tpot,
        tpot_p99_s: tpot,
        e2e_p90_s: ttft.map(|t| t + 10.0),
        e2e_p99_s: None,
        error_rate: Some(0.0),
        prefix_hit_rate: Some(0.5),
        passed,
        failed: if passed { vec![] } else { vec!["ttft_p90_s 5 > 2".into()] },
    };
    let empty = |g: Group| GroupResult {
        group: g,
        pruned: None,
        roofline_min: None,
        roofline_reason: None,
        resolved: None,
        evals: vec![],
        min_replicas: None,
        infeasible: None,
        budget_replicas: None,
        traffic_up_min: None,
        traffic_up_note: None,
        simulations: 0,
        autoscaled: None,
        day_skipped: None,
    };
    let a = GroupResult {
        roofline_min: Some(2),
        roofline_reason: Some("1 replica serves at most 3000 tok/s of 4000 offered".into()),
        evals: vec![
            Eval { replicas: 2, seeds: vec![seed(1, Some(5.0), Some(0.05), false)] },
            Eval {
                replicas: 3,
                seeds: vec![seed(1, Some(0.8), Some(0.03), true), seed(2, Some(0.9), Some(0.031), true)],
            },
        ],
        min_replicas: Some(3),
        traffic_up_min: Some(4),
        simulations: 3,
        ..empty(group(0, "h100", "m", 1, 3.0, "round_robin"))
    };
    let b = GroupResult {
        evals: vec![
            Eval { replicas: 1, seeds: vec![seed(1, None, Some(0.09), false)] },
            Eval {
                replicas: 2,
                seeds: vec![seed(1, Some(1.5), Some(0.05), true), seed(2, Some(1.6), Some(0.052), true)],
            },
        ],
        min_replicas: Some(2),
        traffic_up_min: Some(3),
        simulations: 3,
        ..empty(group(1, "l40s", "m", 2, 1.0, "epp:default"))
    };
    let c = GroupResult {
        pruned: Some(Pruned {
            kind: PruneKind::WeightsDoNotFit,
            reason: format!("tensor_parallel_size: weights of `big` do not fit ({tag})"),
        }),
        ..empty(group(2, "l40s", "big", 1, 1.0, "round_robin"))
    };
    crate::plan::report::build(&ctx, &[a, b, c])
}

#[test]
fn golden_plan_context() {
    let rep = synthetic_plan("golden");
    let mut page = plan::PlanPage::build(&rep);
    page.servesim_version = "test".into();
    let got = serde_json::to_string_pretty(&page).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report_plan_context.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("golden file (run with UPDATE_GOLDEN=1 to create)");
    assert!(
        got == want,
        "plan page context changed; review and rerun with UPDATE_GOLDEN=1\n{}",
        first_diff(&want, &got)
    );
}

#[test]
fn plan_page_marks_recommendation_front_and_infeasible_points() {
    let rep = synthetic_plan("x");
    let rec = rep.recommendation.clone().unwrap();
    assert_eq!(rec.id, "l40s/m/tp2/e0/epp:default/r2");
    assert_eq!(rec.cost_usd_per_day, 96.0);
    let page = plan::PlanPage::build(&rep);
    assert!(page.headline.found);
    assert_eq!(page.headline.title, "Deploy 2 × l40s (TP2, m, router epp:default)");
    // Checks: worst seed against the targets, with headroom.
    assert_eq!(page.headline.checks.rows[0], ["TTFT p90", "≤ 2 s", "1.6 s", "20% headroom"]);
    assert_eq!(page.headline.checks.rows[1], ["TPOT p90", "≤ 60 ms", "52 ms", "13.33% headroom"]);
    let fig = &page.pareto[0];
    let Chart::Xy { points, lines, hlines, highlight, .. } = &fig.chart else { panic!("xy chart") };
    // Feasible points per GPU (seconds, since the SLO is 2 s), infeasible grey incl. one unbounded.
    let by: Vec<(&str, Vec<(f64, f64)>, bool)> =
        points.iter().map(|s| (s.label.as_str(), s.points.clone(), s.grey)).collect();
    assert_eq!(
        by,
        [
            ("h100", vec![(216.0, 0.9)], false),
            ("l40s", vec![(96.0, 1.6)], false),
            ("misses an SLO", vec![(144.0, 5.0), (48.0, f64::INFINITY)], true),
            ("Pareto front", vec![(96.0, 1.6), (216.0, 0.9)], false),
        ]
    );
    assert!(points[3].outline);
    assert_eq!(lines[0].points, [(96.0, 1.6), (216.0, 1.6), (216.0, 0.9)], "staircase front");
    assert_eq!(hlines[0].label, "SLO TTFT p90 ≤ 2 s");
    assert_eq!(highlight.as_ref().map(|h| (h.x, h.y)), Some((96.0, 1.6)));
    // Rendered: the unbounded point sits on the top edge, legend names every series.
    let svg = fig.chart.to_svg().unwrap();
    for l in [
        "h100",
        "l40s",
        "misses an SLO",
        "Pareto front",
        "recommended",
        "cost per day ($)",
        "TTFT p90 (s)",
        "above the top edge",
    ] {
        assert!(svg.contains(l), "pareto SVG lacks `{l}`");
    }
    // Every point of the space is in the table; the recommendation is marked once.
    assert_eq!(page.points.rows.len(), 12);
    assert_eq!(page.points.rows.iter().filter(|r| r.class == "rec").count(), 1);
    assert!(page.points.rows.iter().all(|r| r.cells.len() == page.points.columns.len()));
    // Pruning lists the pruned configuration and the roofline-rejected counts.
    let kinds: Vec<&str> = page.pruning.rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(kinds, ["roofline", "weights_do_not_fit"]);
    assert_eq!(page.pruning.rows[0][2], "1");
    // Default order: the recommendation first, then feasible points by cost.
    assert_eq!(page.points.rows[0].cells[0], "l40s/m/tp2/e0/epp:default/r2");
    assert_eq!(page.points.rows[1].cells[0], "h100/m/tp1/e0/round_robin/r3");
    // Pay per token: 1.152 B in × $0.1/M + 57.6 M out × $0.3/M = $132.48/day vs $96 dedicated.
    let ppt = page.pay_per_token.as_ref().unwrap();
    assert_eq!(ppt.kpis[0].value, "$132");
    assert!(ppt.verdict.starts_with("Cheaper: dedicated"));
    let html = plan::render_page(&page).unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    assert_eq!(html.matches("<script").count(), 1);
}

#[test]
fn plan_page_escapes_hostile_strings() {
    let evil = r#"<script>alert("x")</script>'"&<img src=x onerror=alert(1)>"#;
    let html = plan::render_plan_html(&synthetic_plan(evil)).unwrap();
    assert_eq!(html.matches("<script").count(), 1, "only the sorting script may appear");
    assert!(!html.contains("<img"), "raw tag leaked");
    assert!(!html.contains("alert(\"x\")"), "unescaped quotes");
    assert!(html.contains("&lt;script&gt;"));
}

// ---------------------------------------------------------------------------------------------
// Fleet: replicas by phase and scale events.

/// Four minutes, one replica, and a schedule that asks for 3 replicas from minute 1 to minute
/// 3: scale events exactly at 60 s (1 → 3) and 180 s (3 → 1). Warm-node starts take 30 s plus
/// the weight load (16 GB at 4 GB/s ≈ 4 s), so the two new replicas are starting on the 70 s
/// and 90 s ticks and ready from the 100 s tick.
const FLEET_SCENARIO: &str = r#"
name: fleet
seed: 3
duration: 240s
model: llama-3.1-8b
gpu: h100_sxm
replicas: 1
router: {kind: round_robin}
lifecycle: {preset: warm_node, engine_init: 20s, graph_capture: 10s, drain_grace: 30s}
autoscaler: {kind: scheduled, replicas: 1, schedule: [{start: "00:01", end: "00:03", replicas: 3}]}
output: {timeseries_interval: 10s}
workload:
  kind: synthetic
  arrival: {kind: poisson, rate: 4}
  input: {kind: uniform, min: 64, max: 256}
  output: {kind: uniform, min: 16, max: 64}
"#;

/// The fleet scenario simulated and written the way `run` writes its folder.
fn fleet_run() -> (Scenario, crate::sim::SimOutput, Vec<u8>, Vec<u8>) {
    let sc = crate::scenario::load_str(FLEET_SCENARIO, Path::new("fleet.yaml"), &[]).unwrap();
    let out = crate::sim::simulate(&sc).unwrap();
    let ts = crate::metrics::render_timeseries(&out.recorder);
    let ev = data::scale_events_csv(&out.totals.fleet.events);
    (sc, out, ts, ev)
}

fn figure<'a>(ctx: &'a ReportContext, id: &str) -> &'a Figure {
    ctx.sections.iter().flat_map(|s| &s.figures).find(|f| f.id == id).unwrap_or_else(|| panic!("no figure {id}"))
}

#[test]
fn fleet_context_has_exact_scale_events_and_phases() {
    let (sc, out, ts_bytes, ev) = fleet_run();
    let fleet = data::FleetData::parse(&ts_bytes, Some(&ev)).unwrap().expect("fleet columns");
    assert_eq!(fleet.events_source, data::EventsSource::Log);
    // The file's fleet columns read back as the samples the run recorded (one type for both).
    assert_eq!(fleet.ticks, out.recorder.fleet);
    let ts = data::parse_timeseries_csv(&ts_bytes).unwrap();
    let run = RunData {
        label: "fleet",
        summary: &out.summary,
        records: Some(&out.recorder.records),
        timeseries: &ts,
        fleet: Some(&fleet),
    };
    let ctx = ReportContext::for_run(&run, &ScenarioInfo::new(Some(&sc), None));
    let ids: Vec<&str> = ctx.sections.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["distributions", "over-time", "load", "fleet", "replicas", "prefix", "cost"]);
    let fleet_sec = ctx.sections.iter().find(|s| s.id == "fleet").unwrap();
    let fig_ids: Vec<&str> = fleet_sec.figures.iter().map(|f| f.id.as_str()).collect();
    // The schedule reports no signal, so there is no signal chart.
    assert_eq!(fig_ids, ["fleet-replicas", "fleet-events", "fleet-gpu-hours"]);
    assert_eq!(
        fleet_sec.intro.as_deref(),
        Some(r#"Autoscaler: kind: scheduled, replicas: 1, schedule: [{"end":"00:03","replicas":3,"start":"00:01"}]."#)
    );

    let events = figure(&ctx, "fleet-events");
    assert_eq!(events.table.columns, ["time (s)", "clock", "from", "to", "change", "reason", "signal"]);
    assert_eq!(
        events.table.rows,
        [["60.00", "0:01:00", "1", "3", "+2", "schedule", "-"], ["180.0", "0:03:00", "3", "1", "−2", "schedule", "-"],]
    );
    assert_eq!(events.chart, Chart::TableOnly);

    let reps = figure(&ctx, "fleet-replicas");
    let Chart::Fleet { areas, desired, events, .. } = &reps.chart else { panic!("fleet chart") };
    assert_eq!(areas.iter().map(|a| a.label.as_str()).collect::<Vec<_>>(), ["ready", "starting", "draining"]);
    assert_eq!(
        events,
        &[charts::EventMark { t_s: 60.0, to: 3, up: true }, charts::EventMark { t_s: 180.0, to: 1, up: false },]
    );
    // 10 s ticks → 10 s buckets, one tick each: the means are the tick values.
    let at = |s: &BandSeries, t: f64| s.y[s.x.iter().position(|x| *x == t).unwrap()];
    let (ready, starting) = (&areas[0], &areas[1]);
    assert_eq!(ready.x[..3], [10.0, 20.0, 30.0]);
    for (t, r, st, d) in [
        (50.0, 1.0, 0.0, 1.0),
        (70.0, 1.0, 2.0, 3.0),
        (90.0, 1.0, 2.0, 3.0),
        (100.0, 3.0, 0.0, 3.0),
        (190.0, 1.0, 0.0, 1.0),
    ] {
        assert_eq!(at(ready, t), Some(r), "ready at {t} s");
        assert_eq!(at(starting, t), Some(st), "starting at {t} s");
        assert_eq!(at(desired.as_ref().unwrap(), t), Some(d), "desired at {t} s");
    }

    // GPU-hours: the table's numbers are the summary's and add up.
    let g = &out.summary.gpu_hours;
    assert!((g.serving + g.starting + g.draining + g.idle_node - g.total).abs() < 1e-9);
    assert!(g.starting > 0.0);
    let gh = figure(&ctx, "fleet-gpu-hours");
    assert_eq!(gh.table.rows.len(), 1);
    assert_eq!(
        gh.table.rows[0][1..6],
        [num(g.total), num(g.serving), num(g.starting), num(g.draining), num(g.idle_node)]
    );
    assert_eq!(gh.table.rows[0][8], money(out.summary.cost_usd));
}

#[test]
fn fleet_svg_has_phases_desired_steps_and_event_markers() {
    let (sc, out, ts_bytes, ev) = fleet_run();
    let fleet = data::FleetData::parse(&ts_bytes, Some(&ev)).unwrap().unwrap();
    let ts = data::parse_timeseries_csv(&ts_bytes).unwrap();
    let run = RunData { label: "fleet", summary: &out.summary, records: None, timeseries: &ts, fleet: Some(&fleet) };
    let ctx = ReportContext::for_run(&run, &ScenarioInfo::new(Some(&sc), None));
    let fig = figure(&ctx, "fleet-replicas");
    let svg = fig.chart.to_svg().unwrap();
    for l in
        ["ready", "starting", "draining", "desired", "▲ scale up", "▼ scale down", "time since start (min)", "replicas"]
    {
        assert!(svg.contains(l), "fleet chart lacks `{l}`");
    }
    let Chart::Fleet { desired: Some(d), .. } = &fig.chart else { panic!("fleet chart") };
    // The desired step line: two points per bucket with ticks (24 buckets of 10 s; the run's
    // last tick comes before 240 s, so the last bucket is empty).
    let n = d.y.iter().flatten().count();
    assert_eq!((d.y.len(), n), (24, 23));
    assert!(polylines(&svg).contains(&(2 * n)), "{:?} vs {n} buckets", polylines(&svg));
    // Ready and starting areas (no tick saw a draining replica: they finished their work within
    // the same instant) and one marker per event.
    assert!(fleet.ticks.iter().all(|t| t.draining == 0));
    assert_eq!(svg.matches("<polygon").count(), 2 + 2);
    // The rendered page shows the event and GPU-hour tables open, and the autoscaler in the header.
    let html = render_run_html(&run, &ScenarioInfo::new(Some(&sc), None)).unwrap();
    assert!(html.contains("<dt>autoscaler</dt><dd>kind: scheduled, replicas: 1, schedule:"));
    assert!(html.contains("<td>0:03:00</td><td>3</td><td>1</td><td>−2</td><td>schedule</td>"));
    assert_eq!(
        html.matches("<svg").count(),
        ctx.sections.iter().flat_map(|s| &s.figures).filter(|f| f.chart != Chart::TableOnly).count()
    );
}

#[test]
fn report_dir_rebuilds_the_same_fleet_section() {
    let (sc, out, ts_bytes, ev) = fleet_run();
    let dir = std::env::temp_dir().join(format!("servesim-fleet-report-{}", std::process::id()));
    crate::metrics::write_outputs(&dir, &out.summary, Some(&out.recorder.records), Some(&ts_bytes)).unwrap();
    std::fs::write(dir.join(data::SCALE_EVENTS_FILE), &ev).unwrap();
    let rd = ResultDir::read(&dir).unwrap();
    let fleet = data::FleetData::parse(&ts_bytes, Some(&ev)).unwrap();
    let ts = data::parse_timeseries_csv(&ts_bytes).unwrap();
    let info = ScenarioInfo::new(Some(&sc), None);
    let direct = ReportContext::for_run(
        &RunData {
            label: "fleet",
            summary: &out.summary,
            records: Some(&out.recorder.records),
            timeseries: &ts,
            fleet: fleet.as_ref(),
        },
        &info,
    );
    let read_back = ReportContext::for_run(&RunData { label: "fleet", ..rd.run_data() }, &info);
    let sec = |c: &ReportContext| c.sections.iter().find(|s| s.id == "fleet").cloned();
    assert!(sec(&direct).is_some());
    assert_eq!(sec(&direct), sec(&read_back));
    // Without the event log, events come back from desired_replicas at tick resolution: the
    // tick at 60 s is taken before the scaler's decision at the same instant.
    std::fs::remove_file(dir.join(data::SCALE_EVENTS_FILE)).unwrap();
    let rd = ResultDir::read(&dir).unwrap();
    let f = rd.fleet.as_ref().unwrap();
    assert_eq!(f.events_source, data::EventsSource::Timeseries);
    let got: Vec<(f64, u32, u32)> = f.events.iter().map(|e| (e.time_s, e.from, e.to)).collect();
    assert_eq!(got, [(70.0, 1, 3), (190.0, 3, 1)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fleet_files_parse_exactly() {
    let ts = b"time_s,replica,running,waiting,kv_usage,phase,replicas_ready,replicas_starting,replicas_draining,desired_replicas,scaler_signal,gateway_queue\n\
1.000000000,0,1,0,0.1,ready,1,0,0,1,0.5,0\n\
2.000000000,0,1,0,0.1,ready,1,1,0,2,2.25,3\n\
2.000000000,1,0,0,0,weight_load,1,1,0,2,2.25,3\n\
3.000000000,0,1,0,0.1,draining,0,1,1,2,,0\n";
    let ticks = data::parse_fleet_ticks(ts).unwrap();
    assert_eq!(
        ticks,
        [
            FleetSample {
                time: SimTime::ZERO + SimDuration::from_secs(1),
                ready: 1,
                starting: 0,
                draining: 0,
                desired: 1,
                signal: Some(0.5),
                gateway: 0
            },
            FleetSample {
                time: SimTime::ZERO + SimDuration::from_secs(2),
                ready: 1,
                starting: 1,
                draining: 0,
                desired: 2,
                signal: Some(2.25),
                gateway: 3
            },
            FleetSample {
                time: SimTime::ZERO + SimDuration::from_secs(3),
                ready: 0,
                starting: 1,
                draining: 1,
                desired: 2,
                signal: None,
                gateway: 0
            },
        ]
    );
    let ev = [crate::engine::ScaleEvent {
        time: SimTime(1_500_000_001),
        from: 1,
        to: 1,
        reason: "rolling update (maxSurge 1, maxUnavailable 0)".into(),
    }];
    let csv = data::scale_events_csv(&ev);
    assert_eq!(
        String::from_utf8(csv.clone()).unwrap(),
        "time_s,from,to,reason\n1.500000001,1,1,\"rolling update (maxSurge 1, maxUnavailable 0)\"\n"
    );
    let back = data::parse_scale_events_csv(&csv).unwrap();
    assert_eq!(back[0].time_s, SimTime(1_500_000_001).as_secs_f64());
    assert_eq!(back[0].reason, ev[0].reason);
    let f = data::FleetData::parse(ts, None).unwrap().unwrap();
    assert_eq!(
        f.events,
        [data::ScaleEventRow { time_s: 2.0, from: 1, to: 2, reason: "desired_replicas changed".into() }]
    );
    assert!(f.changed());
    // A time series without fleet columns has no fleet data; a bad event line names the file.
    assert_eq!(data::FleetData::parse(b"time_s,replica,running,waiting,kv_usage\n1,0,0,0,0\n", None).unwrap(), None);
    let e = data::parse_scale_events_csv(b"time_s,from,to,reason\nx,1,2,y\n").unwrap_err().to_string();
    assert_eq!(e, "scale_events.csv: line 2, column `time_s`: `x` is not a number");
}

#[test]
fn fixed_fleet_gets_no_fleet_section() {
    let (s, recs, ts) = synthetic("fixed", 200, 60, 2, 1);
    let ticks: Vec<FleetSample> = (1..=60)
        .map(|t| FleetSample {
            time: SimTime::ZERO + SimDuration::from_secs(t),
            ready: 2,
            desired: 2,
            ..Default::default()
        })
        .collect();
    let fleet = data::FleetData { ticks, ..Default::default() };
    assert!(!fleet.changed());
    let run = RunData { label: "fixed", summary: &s, records: Some(&recs), timeseries: &ts, fleet: Some(&fleet) };
    let ctx = ReportContext::for_run(&run, &ScenarioInfo::default());
    assert!(ctx.sections.iter().all(|s| s.id != "fleet"));
    assert!(!render_run_html(&run, &ScenarioInfo::default()).unwrap().contains("Replicas by phase"));
}

#[test]
fn day_of_autoscaling_stays_small_and_caps_events() {
    // A day at 1 s ticks, desired swinging every 7 minutes between 2 and 10 (410 events).
    let (s, recs, ts) = synthetic("day-fleet", 20_000, 86_400, 2, 60);
    let mut ticks = Vec::new();
    let mut events = Vec::new();
    let mut desired = 2;
    for t in 1..=86_400u32 {
        if t % 420 == 0 {
            let to = if desired == 2 { 10 } else { 2 };
            events.push(data::ScaleEventRow { time_s: t as f64, from: desired, to, reason: "metrics".into() });
            desired = to;
        }
        let starting = if t % 420 < 300 && desired == 10 { 8 } else { 0 };
        let ready = desired - starting;
        ticks.push(FleetSample {
            time: SimTime::ZERO + SimDuration::from_secs(t as u64),
            ready,
            starting,
            desired,
            signal: Some((t % 100) as f64 / 10.0),
            ..Default::default()
        });
    }
    assert_eq!(events.len(), 205);
    let fleet = data::FleetData { ticks, events, events_source: data::EventsSource::Log };
    let run = RunData { label: "day", summary: &s, records: Some(&recs), timeseries: &ts, fleet: Some(&fleet) };
    let ctx = ReportContext::for_run(&run, &ScenarioInfo::default());
    let ev = figure(&ctx, "fleet-events");
    assert_eq!(ev.table.rows.len(), MAX_EVENT_ROWS);
    assert!(ev.caption.contains("The first 100 of 205 events are listed; scale_events.csv has them all."));
    let reps = figure(&ctx, "fleet-replicas");
    let Chart::Fleet { areas, lines, .. } = &reps.chart else { panic!() };
    assert!(areas[0].x.len() <= data::MAX_TIME_POINTS);
    assert_eq!(lines.len(), 1, "bucket maxima shown where means hide peaks");
    assert!(figure(&ctx, "fleet-signal").table.rows.len() <= data::MAX_TIME_POINTS);
    let html = render_run_html(&run, &ScenarioInfo::default()).unwrap();
    eprintln!("24-hour autoscaled report: {} bytes", html.len());
    assert!(html.len() < 2_000_000, "24-hour autoscaled report is {} bytes", html.len());
}

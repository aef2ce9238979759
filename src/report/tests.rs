//! Report tests: golden context (not pixels), hostile strings, the size of a day-long run,
//! and the series the SVGs carry. The browser check lives in `tests/report_browser.rs`.

use super::*;
use crate::metrics::{PriceInfo, Recorder, ReplicaSample, ReplicaTotals, RunMeta, RunTotals, render_timeseries_csv};
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
    ReportContext::for_run(&RunData { label: &summary.scenario, summary, records: Some(records), timeseries: ts }, info)
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
    };
    let info = ScenarioInfo {
        header: Some(header),
        yaml: Some(format!("name: x\n# </pre>{evil}\n")),
        notes: vec![evil.into()],
    };
    let run = RunData { label: &name, summary: &s, records: Some(&recs), timeseries: &ts };
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
        &RunData { label: "day", summary: &s, records: Some(&recs), timeseries: &ts },
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
        RunData { label: "a", summary: &s, records: Some(&recs), timeseries: &ts },
        RunData { label: "b", summary: &s, records: Some(&recs), timeseries: &ts },
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

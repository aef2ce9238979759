//! Browser check of the HTML reports: renders the bundled scenarios' reports (and a router
//! comparison), opens each in headless Chromium with every host unresolvable, and asserts it
//! loads without console errors, references nothing over the network, and yields a
//! screenshot (kept under `target/report-screenshots/` for people to look at).
//!
//! Skipped, with a printed notice, when no `chromium` is installed (`.ci/run` installs it).

use servesim::report::{self, RunData, ScenarioInfo};
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let ok = Command::new(name).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
        if ok {
            return Some(PathBuf::from(name));
        }
    }
    None
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn render(path: &str, sets: &[&str]) -> (String, String) {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let sc = servesim::scenario::load(&p, &sets).unwrap();
    let out = servesim::sim::simulate(&sc).unwrap();
    // As `run --html` builds it: the time series with its fleet columns and the scale events.
    let ts_bytes = servesim::metrics::render_timeseries(&out.recorder);
    let events = report::data::scale_events_csv(&out.totals.fleet.events);
    let fleet = report::data::FleetData::parse(&ts_bytes, Some(&events)).unwrap();
    let ts = report::data::parse_timeseries_csv(&ts_bytes).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let info = ScenarioInfo::new(Some(&sc), Some(report::scenario_copy(&p, &text, &sets, None)));
    let run = RunData {
        label: &sc.name,
        summary: &out.summary,
        records: Some(&out.recorder.records),
        timeseries: &ts,
        fleet: fleet.as_ref(),
    };
    (sc.name.clone(), report::render_run_html(&run, &info).unwrap())
}

/// No http(s) or protocol-relative URLs in src/href/url(): the page must be self-contained.
fn assert_no_external_refs(name: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    for pat in
        ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "url(http", "url(//", "@import", "<link", "<iframe"]
    {
        assert!(!lower.contains(pat), "{name}: external reference `{pat}`");
    }
}

fn open_in_chromium(bin: &Path, name: &str, html: &str) {
    assert_no_external_refs(name, html);
    let dir = out_dir();
    let file = dir.join(format!("{name}.html"));
    std::fs::write(&file, html).unwrap();
    let profile = tempdir(name);
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", file.display());
    let user = format!("--user-data-dir={}", profile.display());
    // 1) DOM dump with console logging: console errors and failed loads show up on stderr.
    let o = Command::new(bin).args(common).arg(&user).arg("--dump-dom").arg(&url).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{name}: chromium failed: {stderr}");
    assert!(dom.contains("<svg"), "{name}: DOM has no charts");
    for line in stderr.lines() {
        let l = line.to_ascii_lowercase();
        let console = l.contains("console(") || l.contains(":console");
        let bad = (console && (l.contains("error") || l.contains("uncaught")))
            || l.contains("net::err_")
            || l.contains("failed to load resource");
        assert!(!bad, "{name}: browser reported: {line}");
    }
    // 2) Screenshot.
    let shot = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let o = Command::new(bin)
        .args(common)
        .arg(&user)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,4000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{name}: screenshot failed: {}", String::from_utf8_lossy(&o.stderr));
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{name}: screenshot {} is {size} bytes", shot.display());
    println!("{name}: {} bytes of HTML, screenshot {}", html.len(), shot.display());
    let _ = std::fs::remove_dir_all(&profile);
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("servesim-chromium-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn bundled_scenario_reports_open_cleanly_in_chromium() {
    let Some(bin) = chromium() else {
        println!(
            "NOTICE: chromium not found; skipping the browser check of HTML reports (apt-get install -y chromium)"
        );
        eprintln!(
            "NOTICE: chromium not found; skipping the browser check of HTML reports (apt-get install -y chromium)"
        );
        return;
    };
    for (path, sets) in [
        ("scenarios/minimal.yaml", vec![]),
        ("scenarios/chat.yaml", vec![]),
        // The full day is slow to simulate; an hour has every chart and stays quick.
        ("scenarios/coding-assistant.yaml", vec!["duration=1h"]),
        // Autoscaled: two hours of the morning ramp (scale-ups, starting and draining replicas).
        ("scenarios/coding-assistant-autoscaled.yaml", vec!["duration=2h", "workload.start_hour=8"]),
    ] {
        let (name, html) = render(path, &sets);
        let autoscaled = name.ends_with("-autoscaled");
        // Only the autoscaled run has the replicas-by-phase section; fixed fleets get none.
        assert_eq!(html.contains("<h3>Replicas by phase</h3>"), autoscaled, "{name}");
        if autoscaled {
            for l in ["ready", "starting", "draining", "desired", "▲ scale up", "<dt>autoscaler</dt>", "Scale events"]
            {
                assert!(html.contains(l), "{name}: lacks `{l}`");
            }
        }
        open_in_chromium(&bin, &name, &html);
    }
    // A router comparison.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/minimal.yaml");
    let sc = servesim::scenario::load(&p, &[]).unwrap();
    let outs: Vec<_> = ["round_robin", "least_requests"]
        .iter()
        .map(|r| {
            (
                r.to_string(),
                servesim::sim::simulate_with_router(&sc, &servesim::app::parse_router_name(r).unwrap()).unwrap(),
            )
        })
        .collect();
    let ts: Vec<_> = outs
        .iter()
        .map(|(_, o)| {
            report::data::parse_timeseries_csv(&servesim::metrics::render_timeseries_csv(&o.recorder.ticks)).unwrap()
        })
        .collect();
    let runs: Vec<RunData> = outs
        .iter()
        .zip(&ts)
        .map(|((l, o), ts)| RunData {
            label: l,
            summary: &o.summary,
            records: Some(&o.recorder.records),
            timeseries: ts,
            fleet: None,
        })
        .collect();
    let html = report::render_compare_html(&runs, &ScenarioInfo::new(Some(&sc), None)).unwrap();
    open_in_chromium(&bin, "compare-minimal", &html);

    // The planner's page for the bundled plan, on a smaller space (1-minute points, TP 2/4,
    // up to 8 replicas, HPA only, one 1-hour day run) so it stays quick.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/coding-assistant-plan.yaml");
    let sets: Vec<String> = [
        "plan.duration=60s",
        "plan.candidates.tensor_parallel_sizes=[2,4]",
        "plan.candidates.replicas.max=8",
        "plan.candidates.autoscaler=[none,hpa]",
        "plan.day.top=1",
        "plan.day.duration=1h",
        "plan.day.overrides=[workload.start_hour=9.5,drain=5m]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let opts = servesim::plan::PlanOptions { sets, quiet: true, ..Default::default() };
    let run = servesim::plan::run_plan(&p, &opts).unwrap();
    let (ctx, groups) = servesim::plan::run::normalize(&run.context, &run.groups).unwrap();
    let dir = tempdir("plan-out");
    let rep = servesim::plan::report::write_all(&dir, &ctx, &groups).unwrap();
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let rec = rep.recommendation.expect("the bundled plan has a recommendation");
    assert!(html.contains(&rec.id.replace('/', "&#x2f;")), "the page names the recommendation");
    assert_eq!(html.matches("<svg").count(), 3, "two Pareto fronts and the break-even chart");
    assert_eq!(html.matches("<tr class=\"rec\">").count(), 1, "the recommendation is marked in the table");
    assert!(html.contains("Pareto front") && html.contains("misses an SLO") && html.contains("recommended"));
    open_in_chromium(&bin, "plan-coding-assistant", &html);
    let _ = std::fs::remove_dir_all(&dir);
}

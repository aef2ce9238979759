//! `servesim live`: command-line flags and the command itself.

use super::client::{Api, ApiKey, RequestSettings};
use super::{LiveOptions, LiveRun};
use crate::cli::ScenarioArgs;
use crate::metrics::{self, RunMeta, Summary};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Environment variable holding the API key (sent as `Authorization: Bearer`, never written).
pub const API_KEY_ENV: &str = "SERVESIM_API_KEY";

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::workload::config::DurationStr::parse(s).map(|d| Duration::from_nanos(d.as_nanos()))
}

#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Endpoint base URL (repeatable), e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted).
    #[arg(long)]
    pub endpoint: Vec<String>,
    /// Comma-separated endpoint base URLs (client-side routing over them).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Model name sent in every request (as served, e.g. `--served-model-name`).
    #[arg(long)]
    pub model: String,
    /// OpenAI route: completions (token-id prompts, token-accurate) or chat.
    #[arg(long, value_enum, default_value = "completions")]
    pub api: Api,
    /// Vocabulary size for token-id prompts: ids are drawn in [8, vocab).
    #[arg(long, default_value_t = 4096)]
    pub vocab: u32,
    /// Client-side router over the endpoints: round_robin, random, least_requests,
    /// power_of_two, epp, epp:<profile> (epp reads scraped /metrics).
    #[arg(long, default_value = "round_robin")]
    pub router: String,
    /// KV block size the router assumes (default: the scenario's engine.block_size).
    #[arg(long)]
    pub block_size: Option<u32>,
    /// Scrape each endpoint's /metrics into timeseries.csv.
    #[arg(long)]
    pub metrics: bool,
    /// Scrape interval.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub metrics_interval: Duration,
    /// Arrival window in wall time (default: the scenario's duration).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Play the workload's clock this much faster: arrival rates × S, think times ÷ S.
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// After the window, wait this long for in-flight requests, then abort them.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Cap on concurrent requests (requests wait client-side; the wait shows as send lag).
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Stop after this many requests.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Retries per request on connect errors, 429, 5xx, resets or stalls before the first
    /// token (exponential backoff from --retry-backoff). Never after tokens arrived.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub retry_backoff: Duration,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Whole-request limit (per attempt).
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Longest silence allowed waiting for headers or between stream chunks.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub stall_timeout: Duration,
    /// Do not send vLLM extensions (ignore_eos, continuous_usage_stats): plain OpenAI API.
    #[arg(long)]
    pub no_vllm_extensions: bool,
    /// Output folder (default: reports/<scenario name>-live/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print only the summary line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Hide the progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Self-test: start an in-process mock OpenAI server and use it as the endpoint.
    #[arg(long)]
    pub mock: bool,
    /// Also simulate the same scenario (its engine and step-time model / calibration) and
    /// write the real-vs-simulated comparison (comparison.json, validation.html) to --out.
    #[arg(long)]
    pub compare_sim: bool,
}

/// Runs `servesim live`.
pub fn cmd_live(a: LiveArgs) -> Result<ExitCode> {
    let mut sets = a.scenario.set.clone();
    if let Some(seed) = a.scenario.seed {
        sets.push(format!("seed={seed}"));
    }
    anyhow::ensure!(a.rate_scale.is_finite() && a.rate_scale > 0.0, "--rate-scale must be a number > 0");
    anyhow::ensure!(
        !a.compare_sim || a.rate_scale == 1.0,
        "--compare-sim simulates the scenario at its own rate, so it cannot be combined with --rate-scale {}; \
         scale the scenario's workload with --set instead, or drop --compare-sim",
        a.rate_scale
    );
    anyhow::ensure!(a.vocab > super::tokens::FIRST_ID, "--vocab must be > {}", super::tokens::FIRST_ID);
    anyhow::ensure!(a.max_concurrency != Some(0), "--max-concurrency must be ≥ 1");
    if let Some(d) = a.duration {
        sets.push(format!("duration={}s", d.as_secs_f64() * a.rate_scale));
    }
    let sc = crate::scenario::load(&a.scenario.scenario, &sets)?;
    let wall_duration = Duration::from_secs_f64(sc.duration.as_secs_f64() / a.rate_scale);
    let router = crate::app::parse_router_name(&a.router)?;
    let api_key = std::env::var(API_KEY_ENV).ok().filter(|k| !k.is_empty()).map(|k| ApiKey::new(&k));
    let rt = super::runtime()?;
    let mut endpoints: Vec<String> =
        a.endpoint.iter().chain(a.endpoints.iter()).map(|e| super::normalize_endpoint(e)).collect::<Result<_>>()?;
    let _mock = if a.mock {
        let m = rt.block_on(super::mock::MockServer::start(super::mock::MockConfig::default()))?;
        endpoints.push(m.url());
        Some(m)
    } else {
        None
    };
    anyhow::ensure!(!endpoints.is_empty(), "give --endpoint URL (or --endpoints a,b, or --mock)");
    let base_dir = sc.source.parent().unwrap_or(Path::new(".")).to_path_buf();
    let opts = LiveOptions {
        endpoints,
        settings: RequestSettings {
            model: a.model.clone(),
            api: a.api,
            vocab: a.vocab,
            vllm_extensions: !a.no_vllm_extensions,
            retries: a.retries,
            retry_backoff: a.retry_backoff,
            request_timeout: a.request_timeout,
            stall_timeout: a.stall_timeout,
            api_key,
        },
        router,
        base_dir: base_dir.clone(),
        block_size: a.block_size.unwrap_or(sc.engine.block_size),
        metrics: a.metrics,
        metrics_interval: a.metrics_interval,
        rate_scale: a.rate_scale,
        duration: wall_duration,
        drain: a.drain,
        max_concurrency: a.max_concurrency,
        max_requests: a.max_requests,
        connect_timeout: a.connect_timeout,
        progress: !a.no_progress && !a.quiet,
    };
    let streams = crate::rng::RngStreams::new(sc.seed);
    let workload = crate::workload::build(&sc.workload, &streams, sc.duration, &base_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let run = super::drive(&rt, &opts, workload, &streams, stop)?;
    let out_dir = a.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(format!("{}-live", sc.name)));
    let summary = write_live_outputs(&sc, &opts, &run, &out_dir)?;
    let live = super::live_stats(&run);
    let ms = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{:.3}", x * 1e3));
    let line = format!(
        "live: {} requests to {} endpoint(s) in {:.1} s: {} completed, {} failed, {} aborted in flight{}; send lag p99 {} ms; prompt-token mismatches {}, output-length mismatches {}",
        run.rows.len(),
        opts.endpoints.len(),
        run.wall.as_secs_f64(),
        live["requests"]["completed"],
        live["requests"]["failed"],
        live["requests"]["in_flight_aborted"],
        if run.interrupted { " (interrupted)" } else { "" },
        ms(&live["send_lag_s"]["p99"]),
        live["prompt_token_mismatches"],
        live["output_length_mismatches"],
    );
    if a.quiet {
        println!("{line}");
    } else {
        print!("{}", metrics::render_text(&summary));
        println!("{line}");
        if let Some(errs) = live["errors"].as_object().filter(|e| !e.is_empty()) {
            println!("errors: {}", serde_json::Value::Object(errs.clone()));
        }
        println!("outputs: {}", out_dir.display());
    }
    if a.compare_sim {
        compare_sim(&sc, &run, &summary, &out_dir)?;
    }
    if summary.requests.completed == 0 && !run.rows.is_empty() {
        let first = run.rows.iter().find_map(|r| r.res.error_detail.clone()).unwrap_or_default();
        anyhow::bail!("no request completed (first error: {first})");
    }
    Ok(ExitCode::from(if summary.slo.passed { crate::app::EXIT_OK } else { crate::app::EXIT_CHECK_FAILED }))
}

/// Summary + the run's files: summary.json, requests.csv, timeseries.csv (as `run`), plus
/// live.json and live_requests.csv.
pub fn write_live_outputs(
    sc: &crate::scenario::Scenario,
    opts: &LiveOptions,
    run: &LiveRun,
    dir: &Path,
) -> Result<Summary> {
    let mut rec = super::recorder(run);
    let totals = super::totals(run);
    let n = opts.endpoints.len() as u32;
    let meta = RunMeta {
        scenario: sc.name.clone(),
        seed: sc.seed,
        simulated: crate::units::SimDuration(run.wall.as_nanos() as u64),
        replicas: n,
        tp: sc.tp,
        gpu_count: n * sc.tp,
        price: (&sc.price).into(),
        slo: sc.slo.clone(),
    };
    let summary = Summary::build(&meta, &totals, &mut rec);
    let ts = metrics::render_timeseries_csv(&rec.ticks);
    metrics::write_outputs(dir, &summary, Some(&rec.records), Some(&ts))
        .with_context(|| format!("writing {}", dir.display()))?;
    let mut live = super::live_stats(run);
    live["config"] = serde_json::json!({
        "endpoints": opts.endpoints,
        "model": opts.settings.model,
        "api": format!("{:?}", opts.settings.api).to_lowercase(),
        "vocab": opts.settings.vocab,
        "router": opts.router.label(),
        "rate_scale": opts.rate_scale,
        "duration_s": opts.duration.as_secs_f64(),
        "vllm_extensions": opts.settings.vllm_extensions,
        "retries": opts.settings.retries,
        "api_key": if opts.settings.api_key.is_some() { "set (redacted)" } else { "none" },
    });
    metrics::write_atomic(&dir.join("live.json"), serde_json::to_string_pretty(&live)?.as_bytes())?;
    metrics::write_atomic(&dir.join("live_requests.csv"), &super::render_live_csv(run)?)?;
    Ok(summary)
}

/// `--compare-sim`: simulate the live run's scenario and compare, as `servesim validate`.
fn compare_sim(sc: &crate::scenario::Scenario, run: &LiveRun, summary: &Summary, dir: &Path) -> Result<()> {
    use crate::validate::{RunView, Tolerances, compare, render_text};
    let rec = super::recorder(run);
    let ts = crate::report::data::parse_timeseries_csv(&metrics::render_timeseries_csv(&rec.ticks))?;
    let itl: Vec<f64> = run.rows.iter().flat_map(|r| r.res.itl_ns.iter().map(|&g| g as f64 / 1e9)).collect();
    let real = RunView::from_records(&rec.records, Some(summary), &itl, Some(summary.simulated_seconds), &ts);
    let out = crate::sim::simulate(sc).context("simulating the scenario for --compare-sim")?;
    let sim = RunView::from_sim(&out);
    let c = compare(&sc.name, &real, &sim, &Tolerances::default(), vec!["live run vs its scenario simulated".into()]);
    print!("{}", render_text(&c));
    metrics::write_atomic(&dir.join("comparison.json"), serde_json::to_string_pretty(&c)?.as_bytes())?;
    let v = crate::validate::cmd::Validated { case_label: sc.name.clone(), comparison: c, real, sim };
    let html = crate::validate::html::render(std::slice::from_ref(&v), &[])?;
    metrics::write_atomic(&dir.join("validation.html"), html.as_bytes())?;
    println!("comparison: {}", dir.join("comparison.json").display());
    Ok(())
}

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
    /// With --compare-sim: before the run, measure the server's speed of the moment with a
    /// short burst (16 unique 256-token prompts, 32 output tokens, at once, to the first
    /// endpoint), again after it, simulate the same burst, and also compare against the
    /// scenario's step-time model scaled by real/simulated burst latency (geometric mean of the
    /// two probes; their difference is the drift during the run) (writes speed-probe.json and
    /// speed-calibration.yaml; the second comparison separates the queueing and caching model
    /// from the machine's speed).
    #[arg(long, requires = "compare_sim")]
    pub speed_probe: bool,
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
    let out_dir = a.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(format!("{}-live", sc.name)));
    let probe_before = if a.speed_probe {
        Some(speed_probe(&a.scenario.scenario, &sets, &sc, &rt, &opts, 0).context("--speed-probe (before the run)")?)
    } else {
        None
    };
    let streams = crate::rng::RngStreams::new(sc.seed);
    let workload = crate::workload::build(&sc.workload, &streams, sc.duration, &base_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let run = super::drive(&rt, &opts, workload, &streams, stop)?;
    let probe = match probe_before {
        Some(before) => {
            let after = speed_probe(&a.scenario.scenario, &sets, &sc, &rt, &opts, 1);
            // The run's results are kept whatever the second probe does.
            let p = SpeedProbes::new(before, after.map_err(|e| format!("{e:#}")));
            println!("{}", p.line());
            Some(p)
        }
        None => None,
    };
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
        compare_sim(&sc, &run, &summary, &out_dir, probe.as_ref())?;
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

/// `--speed-probe`: the probe before the run and the one after it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SpeedProbes {
    pub before: SpeedProbe,
    /// `None` (with `after_error`) when the second probe failed.
    pub after: Option<SpeedProbe>,
    pub after_error: Option<String>,
    /// The factor applied: geometric mean of the two probes (or the first alone).
    pub factor: f64,
    /// after / before − 1: how much the server's speed moved during the run.
    pub drift: Option<f64>,
}

impl SpeedProbes {
    fn new(before: SpeedProbe, after: Result<SpeedProbe, String>) -> SpeedProbes {
        let (after, after_error) = match after {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        };
        let factor = after.as_ref().map_or(before.factor, |a| (before.factor * a.factor).sqrt());
        let drift = after.as_ref().map(|a| a.factor / before.factor - 1.0);
        SpeedProbes { before, after, after_error, factor, drift }
    }

    fn line(&self) -> String {
        let one = |p: &SpeedProbe| {
            format!("real {:.1} ms / sim {:.1} ms = ×{:.3}", p.real_e2e_mean_s * 1e3, p.sim_e2e_mean_s * 1e3, p.factor)
        };
        let after = match (&self.after, &self.after_error) {
            (Some(a), _) => one(a),
            (None, Some(e)) => format!("failed ({e})"),
            (None, None) => "-".into(),
        };
        let drift = self.drift.map_or(String::new(), |d| {
            let warn = if d.abs() > DRIFT_WARN {
                " (the server's speed moved during the run: part of any real-vs-simulated gap is the machine, not the model)"
            } else {
                ""
            };
            format!("; drift during the run {:+.1} %{warn}", d * 100.0)
        });
        format!(
            "speed probe (burst mean E2E): before {}, after {after}: step times × {:.3}{drift}",
            one(&self.before),
            self.factor
        )
    }
}

/// What one speed-probe burst measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SpeedProbe {
    pub requests: usize,
    pub completed: usize,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub real_e2e_mean_s: f64,
    pub sim_e2e_mean_s: f64,
    /// real / simulated: the factor applied to every simulated step.
    pub factor: f64,
    pub endpoint: String,
}

/// Drift between the two probes beyond which the comparison is flagged.
const DRIFT_WARN: f64 = 0.10;
const PROBE_REQUESTS: u32 = 16;
const PROBE_PROMPT: u32 = 256;
const PROBE_OUTPUT: u32 = 32;

/// Mean E2E (s) of the completed records, if any.
fn mean_e2e(records: &[crate::metrics::RequestRecord]) -> Option<f64> {
    let e: Vec<f64> = records.iter().filter_map(|r| r.e2e_s()).collect();
    (!e.is_empty()).then(|| e.iter().sum::<f64>() / e.len() as f64)
}

/// One speed probe: a fixed burst sent to the first endpoint and simulated on one replica of
/// the scenario's engine. Its prompts come from a seed of their own, so they share no prefix
/// with the run. Probing before and after the run brackets the machine's speed during it.
fn speed_probe(
    file: &Path,
    sets: &[String],
    sc: &crate::scenario::Scenario,
    rt: &tokio::runtime::Runtime,
    opts: &LiveOptions,
    nth: u64,
) -> Result<SpeedProbe> {
    let prompt = PROBE_PROMPT.min(sc.engine.max_model_len.saturating_sub(PROBE_OUTPUT).max(1));
    let mut probe_sets = sets.to_vec();
    probe_sets.extend([
        format!(
            "workload={{kind: synthetic, arrival: {{kind: constant, rate: 1000}}, input: {{kind: fixed, tokens: {prompt}}}, \
             output: {{kind: fixed, tokens: {PROBE_OUTPUT}}}, max_requests: {PROBE_REQUESTS}}}"
        ),
        "duration=1s".into(),
        "replicas=1".into(),
        // Each probe its own prompts: the second must not hit the first one's cached blocks.
        format!("seed={}", sc.seed ^ 0x5eed_9e0b_e5ee_d000 ^ nth),
    ]);
    if !matches!(sc.autoscaler, crate::autoscaler::AutoscalerConfig::Fixed) {
        probe_sets.push("autoscaler={kind: fixed}".into());
    }
    if sc.faults != crate::faults::FaultsConfig::default() {
        probe_sets.push("faults={}".into());
    }
    let psc = crate::scenario::load(file, &probe_sets).context("building the probe scenario")?;
    let sim = crate::sim::simulate(&psc).context("simulating the probe burst")?;
    let sim_mean = mean_e2e(&sim.recorder.records).context("the simulated probe burst completed nothing")?;
    let mut popts = opts.clone();
    popts.endpoints.truncate(1);
    popts.metrics = false;
    popts.progress = false;
    popts.rate_scale = 1.0;
    popts.duration = Duration::from_secs(1);
    popts.max_requests = None;
    let streams = crate::rng::RngStreams::new(psc.seed);
    let base_dir = psc.source.parent().unwrap_or(Path::new(".")).to_path_buf();
    let workload = crate::workload::build(&psc.workload, &streams, psc.duration, &base_dir)?;
    let run = super::drive(rt, &popts, workload, &streams, Arc::new(AtomicBool::new(false)))?;
    let records: Vec<_> = run.rows.iter().map(|r| r.record()).collect();
    let completed = records.iter().filter(|r| r.outcome == crate::metrics::Outcome::Completed).count();
    anyhow::ensure!(
        completed == run.rows.len() && completed == PROBE_REQUESTS as usize,
        "the probe burst completed {completed} of {} requests; the server is not answering reliably",
        run.rows.len()
    );
    let real_mean = mean_e2e(&records).context("the probe burst completed nothing")?;
    Ok(SpeedProbe {
        requests: run.rows.len(),
        completed,
        prompt_tokens: prompt,
        output_tokens: PROBE_OUTPUT,
        real_e2e_mean_s: real_mean,
        sim_e2e_mean_s: sim_mean,
        factor: real_mean / sim_mean,
        endpoint: popts.endpoints[0].clone(),
    })
}

/// The scenario's step-time model with every step × `factor`, as a calibration file in `dir`.
fn scaled_step_time(
    sc: &crate::scenario::Scenario,
    factor: f64,
    dir: &Path,
) -> Result<crate::step_time::StepTimeConfig> {
    use crate::calibrate::{CalibratedModel, CalibrationFile, CalibrationRef, ScaledModel};
    use crate::step_time::StepTimeConfig;
    let base_dir = sc.source.parent().unwrap_or(Path::new("."));
    // A relative calibration file is relative to the scenario, not to the new file.
    let base = match &sc.engine.step_time {
        StepTimeConfig::Calibration(CalibrationRef { name: None, file: Some(f) }) if Path::new(f).is_relative() => {
            let abs = std::path::absolute(base_dir.join(f))?;
            StepTimeConfig::Calibration(CalibrationRef { name: None, file: Some(abs.to_string_lossy().into_owned()) })
        }
        other => other.clone(),
    };
    let cal = CalibrationFile {
        name: format!("{}-speed-probe", sc.name),
        provenance: format!(
            "servesim live --speed-probe: the scenario's step-time model × {factor:.4} (real / simulated mean E2E \
             of {PROBE_REQUESTS}-request bursts sent before and after the run)"
        ),
        model: Some(sc.model.id.clone()),
        hardware: None,
        fitted_on: vec!["speed probe burst".into()],
        held_out: vec![],
        step_time: CalibratedModel::Scaled(ScaledModel { factor, base }),
        fit: None,
    };
    let path = std::path::absolute(dir.join("speed-calibration.yaml"))?;
    metrics::write_atomic(&path, cal.to_yaml().as_bytes())?;
    Ok(StepTimeConfig::Calibration(CalibrationRef { name: None, file: Some(path.to_string_lossy().into_owned()) }))
}

/// `--compare-sim`: simulate the live run's scenario and compare, as `servesim validate`;
/// with a speed probe, also with the step times scaled to the machine's speed of the moment.
fn compare_sim(
    sc: &crate::scenario::Scenario,
    run: &LiveRun,
    summary: &Summary,
    dir: &Path,
    probe: Option<&SpeedProbes>,
) -> Result<()> {
    use crate::validate::{RunView, Tolerances, compare, render_text};
    let rec = super::recorder(run);
    let ts = crate::report::data::parse_timeseries_csv(&metrics::render_timeseries_csv(&rec.ticks))?;
    let itl: Vec<f64> = run.rows.iter().flat_map(|r| r.res.itl_ns.iter().map(|&g| g as f64 / 1e9)).collect();
    let mut real = RunView::from_records(&rec.records, Some(summary), &itl, Some(summary.simulated_seconds), &ts);
    real.drop_queue();
    let mut cases = vec![(sc.name.clone(), sc.clone(), "live run vs its scenario simulated".to_string())];
    if let Some(p) = probe {
        metrics::write_atomic(&dir.join("speed-probe.json"), serde_json::to_string_pretty(p)?.as_bytes())?;
        let mut scaled = sc.clone();
        scaled.engine.step_time = scaled_step_time(sc, p.factor, dir)?;
        cases.push((
            format!("{} (speed-probed ×{:.3})", sc.name, p.factor),
            scaled,
            format!("step times × {:.3} from the speed probes before and after the run (speed-probe.json)", p.factor),
        ));
    }
    let mut validated = Vec::new();
    for (label, csc, note) in cases {
        let out = crate::sim::simulate(&csc).with_context(|| format!("simulating {label} for --compare-sim"))?;
        let sim = RunView::from_sim(&out);
        let c =
            compare(&label, &real, &sim, &Tolerances::default(), vec![note, crate::validate::CLIENT_QUEUE_NOTE.into()]);
        print!("{}", render_text(&c));
        validated.push(crate::validate::cmd::Validated { case_label: label, comparison: c, real: real.clone(), sim });
    }
    metrics::write_atomic(
        &dir.join("comparison.json"),
        serde_json::to_string_pretty(&validated[0].comparison)?.as_bytes(),
    )?;
    if let Some(v) = validated.get(1) {
        metrics::write_atomic(
            &dir.join("comparison-speed-probed.json"),
            serde_json::to_string_pretty(&v.comparison)?.as_bytes(),
        )?;
    }
    let html = crate::validate::html::render(&validated, &[])?;
    metrics::write_atomic(&dir.join("validation.html"), html.as_bytes())?;
    println!("comparison: {}", dir.join("comparison.json").display());
    Ok(())
}

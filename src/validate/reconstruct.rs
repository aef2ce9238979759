//! Rebuilding a scenario from a trace: what was offered (arrivals, lengths, prefix hashes),
//! on which engine. A recording made with `servesim live` carries the scenario that drove
//! it, so simulating that scenario reproduces the offered load exactly; other traces become
//! a `workload: {kind: trace}` over the file plus whatever the trace says about the engine,
//! on top of `--scenario` when one is given.

use super::RunView;
use crate::calibrate::CalibrationRef;
use crate::scenario::{self, Scenario};
use crate::step_time::StepTimeConfig;
use crate::trace::{Trace, TraceFormat, formats};
use std::path::{Path, PathBuf};

/// How to reconstruct.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Base scenario (engine, model, GPU) for traces that do not carry one.
    pub scenario: Option<PathBuf>,
    /// Calibration (file path or shipped name) replacing the scenario's step-time model.
    pub calibration: Option<String>,
    /// `--set` overrides applied to the reconstructed scenario.
    pub sets: Vec<String>,
}

/// One comparison to make: a scenario to simulate and the real run to compare it with.
pub struct Case {
    pub label: String,
    pub scenario: Scenario,
    pub real: RunView,
    pub notes: Vec<String>,
    /// Compare only simulated requests arriving in this window (seconds), e.g. one stage.
    pub window: Option<(f64, f64)>,
    /// Index of the simulation this case reads (cases of one experiment share one run).
    pub sim_index: usize,
}

fn step_ref(c: &str) -> StepTimeConfig {
    let p = Path::new(c);
    if p.is_file() {
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        StepTimeConfig::Calibration(CalibrationRef { name: None, file: Some(abs.to_string_lossy().into_owned()) })
    } else {
        StepTimeConfig::Calibration(CalibrationRef { name: Some(c.to_string()), file: None })
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn abs(p: &Path) -> String {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).to_string_lossy().into_owned()
}

fn load_text(text: &str, source: &Path, opts: &Options) -> Result<Scenario, String> {
    let mut sc = scenario::load_str(text, source, &opts.sets)
        .map_err(|e| format!("{e}\n--- reconstructed scenario ---\n{text}"))?;
    if let Some(c) = &opts.calibration {
        sc.engine.step_time = step_ref(c);
        sc.file.engine.step_time = sc.engine.step_time.clone();
    }
    Ok(sc)
}

/// Last arrival (s) the trace workload will produce (draws Poisson times where missing).
fn last_arrival_s(t: &Trace, seed: u64) -> f64 {
    let times = crate::trace::workload::arrivals(&t.requests, t.request_rate, 1.0, &crate::rng::RngStreams::new(seed));
    times.iter().copied().max().unwrap_or(0) as f64 / 1e9
}

/// Scenario YAML for a request-level trace from its engine hints (or the base scenario).
fn trace_scenario_text(t: &Trace, opts: &Options, notes: &mut Vec<String>) -> Result<(String, PathBuf), String> {
    let fmt = t.format.map_or("servesim", |f| f.as_str());
    let dur = last_arrival_s(t, 1) + 0.001;
    let workload = format!("{{kind: trace, file: {}, format: {fmt}}}", yaml_str(&abs(&t.path)));
    if let Some(base) = &opts.scenario {
        let text = std::fs::read_to_string(base).map_err(|e| format!("reading {}: {e}", base.display()))?;
        let mut file = scenario::parse_file(&text, base, &[]).map_err(|e| e.to_string())?;
        file.workload = serde_saphyr::from_str(&workload).map_err(|e| e.to_string())?;
        file.duration = crate::workload::config::DurationStr(crate::units::SimDuration::from_secs_f64(dur));
        file.plan = None;
        let y = serde_saphyr::to_string(&file).map_err(|e| e.to_string())?;
        notes.push(format!("engine, model and GPU from {}", base.display()));
        return Ok((y, base.clone()));
    }
    let h = &t.engine;
    let model = h.model.as_deref().and_then(formats::catalog_model).ok_or_else(|| {
        format!(
            "{}: the trace's model {:?} is not in the catalog; give --scenario with the model, GPU and engine settings",
            t.path.display(),
            h.model
        )
    })?;
    let gpu = h.gpu.as_deref().and_then(formats::catalog_gpu).ok_or_else(|| {
        format!("{}: the trace does not name a known GPU ({:?}); give --scenario", t.path.display(), h.gpu)
    })?;
    let mut y = format!(
        "name: {}\nseed: 1\nduration: {dur}s\ndrain: 2h\nmodel: {model}\ngpu: {gpu}\ntensor_parallel_size: {}\nreplicas: {}\n",
        yaml_str(&format!("validate-{}", t.name)),
        h.tp.unwrap_or(1),
        h.replicas.unwrap_or(1)
    );
    if h.replicas.unwrap_or(1) > 1 {
        y.push_str("router: {kind: least_requests}\n");
        notes.push("data-parallel ranks simulated as replicas behind least-requests routing".into());
    }
    let mut eng = String::new();
    if let Some(v) = &h.vllm_version {
        eng.push_str(&format!("  vllm_version: {}\n", yaml_str(v)));
    }
    for (k, v) in [
        ("max_num_seqs", h.max_num_seqs),
        ("max_num_batched_tokens", h.max_num_batched_tokens),
        ("max_model_len", h.max_model_len),
        ("block_size", h.block_size),
        ("num_gpu_blocks_override", h.num_gpu_blocks),
    ] {
        if let Some(v) = v {
            eng.push_str(&format!("  {k}: {v}\n"));
        }
    }
    if h.num_gpu_blocks.is_none() {
        notes.push("KV cache size not in the trace: derived from the catalog GPU memory (vLLM's formula)".into());
    }
    if let Some(p) = h.enable_prefix_caching {
        eng.push_str(&format!("  enable_prefix_caching: {p}\n"));
    }
    if !eng.is_empty() {
        y.push_str("engine:\n");
        y.push_str(&eng);
    }
    y.push_str(&format!("workload: {workload}\noutput: {{timeseries_interval: 1s}}\n"));
    Ok((y, t.path.with_file_name("validate-scenario.yaml")))
}

/// The cases of a trace.
pub fn cases(t: &Trace, opts: &Options) -> Result<Vec<Case>, String> {
    let mut notes = t.notes.clone();
    match t.format {
        Some(TraceFormat::InferencePerf) => stage_cases(t, opts),
        Some(TraceFormat::Mooncake) | Some(TraceFormat::Azure) => Err(format!(
            "{}: {} traces have no latencies to validate against; replay them with `workload: {{kind: trace, file: ...}}` in `run`",
            t.path.display(),
            t.format.map_or("", |f| f.as_str())
        )),
        _ => {
            let m = t.measured.as_ref().ok_or_else(|| format!("{}: no measurements", t.path.display()))?;
            let mut real = RunView::from_records(&m.records, m.summary.as_ref(), &m.itl_s, m.span_s, &m.timeseries);
            if m.client_side {
                real.drop_queue();
                notes.push(super::CLIENT_QUEUE_NOTE.into());
            }
            let sc = match (&t.scenario, &opts.scenario) {
                (Some(s), None) => {
                    let text = std::fs::read_to_string(s).map_err(|e| format!("reading {}: {e}", s.display()))?;
                    notes.push(format!("scenario that drove the run: {}", s.display()));
                    load_text(&text, s, opts)?
                }
                _ => {
                    if t.format == Some(TraceFormat::Servesim) {
                        notes.push("no scenario.yaml: requests replayed from requests.csv with unique prompts".into());
                    }
                    if t.request_rate.is_some() {
                        notes.push(format!(
                            "arrival times not in the trace: Poisson at {} req/s with servesim's seed",
                            t.request_rate.map_or("?".into(), |r| if r.is_finite() {
                                format!("{r}")
                            } else {
                                "inf (all at t=0)".into()
                            })
                        ));
                    }
                    let (text, src) = trace_scenario_text(t, opts, &mut notes)?;
                    load_text(&text, &src, opts)?
                }
            };
            Ok(vec![Case { label: t.name.clone(), scenario: sc, real, notes, window: None, sim_index: 0 }])
        }
    }
}

/// inference-perf / BLIS: one simulation per experiment (stages as Poisson stages of the
/// `shared_prefix` workload), compared as a whole and per stage.
fn stage_cases(t: &Trace, opts: &Options) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for (ei, exp) in formats::experiments(t).iter().enumerate() {
        let rows: Vec<&crate::trace::StageSummary> = t.stages.iter().filter(|s| &s.experiment == exp).collect();
        let stages: Vec<&&crate::trace::StageSummary> = rows.iter().filter(|s| s.stage.is_some()).collect();
        let Some(total) = rows.iter().find(|s| s.stage.is_none()).or(rows.first()) else { continue };
        let first = stages.first().copied().copied().unwrap_or(total);
        let model = formats::catalog_model(&total.model)
            .ok_or_else(|| format!("{exp}: model `{}` is not in the catalog", total.model))?;
        let out_len = total.output_len_mean.map_or(first.output_len, |m| m.round().max(1.0) as u32);
        let mut stage_yaml = String::new();
        for s in &stages {
            stage_yaml.push_str(&format!(
                "      - {{rate: {}, duration: {}s}}\n",
                s.rate_rps.unwrap_or(1.0),
                s.duration_s.unwrap_or(60.0)
            ));
        }
        let total_dur: f64 = stages.iter().map(|s| s.duration_s.unwrap_or(60.0)).sum();
        let text = format!(
            "name: {}\nseed: 1\nduration: {total_dur}s\ndrain: 30m\nmodel: {model}\ngpu: h100_sxm\ntensor_parallel_size: {tp}\nreplicas: 1\n\
             engine:\n  max_num_seqs: {mns}\n  max_num_batched_tokens: {mnbt}\n  max_model_len: {mml}\n\
             workload:\n  kind: synthetic\n  arrival:\n    kind: stages\n    stages:\n{stage_yaml}  input: {{kind: fixed, tokens: 1}}\n  output: {{kind: fixed, tokens: {out_len}}}\n  prefix: {{kind: shared_prefix, groups: {g}, prompts_per_group: {p}, system_prompt_len: {sl}, question_len: {ql}}}\n\
             output: {{timeseries_interval: 1s}}\n",
            yaml_str(&format!("validate-{exp}")),
            tp = total.tp,
            mns = total.max_num_seqs,
            mnbt = total.max_num_batched_tokens,
            mml = total.max_model_len,
            g = first.groups,
            p = first.prompts_per_group,
            sl = first.system_prompt_len,
            ql = first.question_len,
        );
        let sc = load_text(&text, &t.path.with_file_name("validate-scenario.yaml"), opts)?;
        let mut notes = vec![
            format!(
                "output length fixed at the run's mean ({out_len} tokens; inference-perf asked for {})",
                first.output_len
            ),
            "stage arrivals simulated as Poisson at the stage rate".into(),
        ];
        if first.multi_turn {
            notes.push("inference-perf multi_turn history not modelled (prompts are system + question)".into());
        }
        let view = |s: &crate::trace::StageSummary| {
            let mut v = RunView::default();
            for (k, x) in &s.stats {
                v.stats.insert(k.clone(), *x);
            }
            if let Some(x) = s.output_tokens_per_s {
                v.stats.insert("output_tps".into(), x);
            }
            v
        };
        out.push(Case {
            label: format!("{exp}"),
            scenario: sc.clone(),
            real: view(total),
            notes: notes.clone(),
            window: None,
            sim_index: ei,
        });
        let mut t0 = 0.0;
        for s in &stages {
            let d = s.duration_s.unwrap_or(60.0);
            out.push(Case {
                label: format!("{exp} stage {} ({} req/s)", s.stage.unwrap_or(0), s.rate_rps.unwrap_or(0.0)),
                scenario: sc.clone(),
                real: view(s),
                notes: vec![],
                window: Some((t0, t0 + d)),
                sim_index: ei,
            });
            t0 += d;
        }
    }
    Ok(out)
}

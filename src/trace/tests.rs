use super::*;
use crate::metrics::Outcome;

fn ex(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces").join(p)
}

#[test]
fn detects_every_example_format() {
    for (p, f) in [
        ("servesim", TraceFormat::Servesim),
        ("vllm-bench.json", TraceFormat::VllmBench),
        ("llmservingsim", TraceFormat::Llmservingsim),
        ("inference-perf.csv", TraceFormat::InferencePerf),
        ("mooncake.jsonl", TraceFormat::Mooncake),
        ("azure.csv", TraceFormat::Azure),
    ] {
        assert_eq!(detect(&ex(p)).unwrap(), f, "{p}");
    }
}

#[test]
fn vllm_bench_requests_and_latencies() {
    let t = load(&ex("vllm-bench.json"), None).unwrap();
    assert_eq!(t.request_rate, Some(2.0));
    assert_eq!(
        t.requests.iter().map(|r| (r.input, r.output)).collect::<Vec<_>>(),
        [(100, 4), (250, 3), (40, 2), (80, 5)]
    );
    assert!(t.requests.iter().all(|r| r.arrival_ns.is_none()));
    let m = t.measured.unwrap();
    assert_eq!(m.records[0].first_token.unwrap().as_nanos(), 50_000_000);
    assert_eq!(m.records[0].last_token.unwrap().as_nanos(), 120_000_000);
    assert_eq!(m.records[3].outcome, Outcome::Failed);
    assert_eq!(m.itl_s, vec![0.02, 0.02, 0.03, 0.025, 0.025, 0.03]);
    assert_eq!(m.span_s, Some(2.5));
    assert!(m.reported.contains(&("mean_ttft".to_string(), 0.056666666666666664)));
}

#[test]
fn llmservingsim_clock_hints_and_hashes() {
    let t = load(&ex("llmservingsim"), None).unwrap();
    let arr: Vec<u64> = t.requests.iter().map(|r| r.arrival_ns.unwrap()).collect();
    assert_eq!(arr, [0, 250_000_000, 500_000_000]);
    assert_eq!(t.hash_block_tokens, 16);
    assert_eq!(t.requests.iter().map(|r| r.hash_ids.clone()).collect::<Vec<_>>(), [vec![0, 1], vec![0], vec![0, 2]]);
    assert_eq!(t.engine.num_gpu_blocks, Some(500));
    assert_eq!(t.engine.max_num_seqs, Some(64));
    assert_eq!(t.engine.gpu.as_deref(), Some("NVIDIA GeForce RTX 4090"));
    let m = t.measured.unwrap();
    let r = &m.records[0];
    assert_eq!((r.ttft_s().unwrap() * 1e3).round(), 50.0);
    assert_eq!(r.scheduled.unwrap().as_nanos(), 1_000_000);
    assert!((m.span_s.unwrap() - 0.6).abs() < 1e-9);
}

#[test]
fn inference_perf_stages() {
    let t = load(&ex("inference-perf.csv"), None).unwrap();
    assert_eq!(t.stages.len(), 3);
    assert_eq!(t.stages[1].stage, Some(1));
    assert_eq!(t.stages[1].rate_rps, Some(4.0));
    assert_eq!(t.stages[2].stage, None);
    assert_eq!((t.stages[0].groups, t.stages[0].prompts_per_group, t.stages[0].system_prompt_len), (2, 3, 64));
    assert!(t.stages[0].stats.contains(&("ttft_p50".to_string(), 0.019)));
    assert_eq!(formats::experiments(&t), ["example-llama-3.1-8b-tp1"]);
}

#[test]
fn mooncake_and_azure_workloads() {
    let t = load(&ex("mooncake.jsonl"), None).unwrap();
    assert_eq!(t.hash_block_tokens, 512);
    assert_eq!(t.requests[1].arrival_ns, Some(250_000_000));
    // 1030 tokens hold 2 full 512-token blocks: the third (partial) id is dropped.
    assert_eq!(t.requests[1].hash_ids, vec![0, 1]);
    assert_eq!(t.requests[2].hash_ids, Vec::<u64>::new());
    let a = load(&ex("azure.csv"), None).unwrap();
    let arr: Vec<u64> = a.requests.iter().map(|r| r.arrival_ns.unwrap()).collect();
    assert_eq!(arr, [0, 750_000_000, 1_500_000_000], "crosses midnight");
    assert_eq!((a.requests[2].input, a.requests[2].output), (1, 1), "zero lengths clamp to 1");
}

#[test]
fn servesim_folder_with_steps() {
    let t = load(&ex("servesim"), None).unwrap();
    assert_eq!(t.steps.len(), 12);
    assert_eq!(t.steps[7].prefill_tokens, 300);
    assert_eq!(t.steps[7].context_tokens, 2822);
    let m = t.measured.unwrap();
    assert!(m.summary.is_some());
    assert_eq!(m.records.len(), t.requests.len());
    assert!(t.scenario.is_some());
}

#[test]
fn bad_input_names_file_and_line() {
    let dir = std::env::temp_dir().join(format!("servesim-trace-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("m.jsonl");
    std::fs::write(
        &p,
        "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": []}\n{\"timestamp\": 1}\n",
    )
    .unwrap();
    let e = load(&p, Some(TraceFormat::Mooncake)).unwrap_err().to_string();
    assert!(e.contains("m.jsonl") && e.contains("line 2") && e.contains("input_length"), "{e}");
    let e = load(&dir, None).unwrap_err().to_string();
    assert!(e.contains("cannot tell its format"), "{e}");
    assert_eq!(formats::parse_datetime_ns("2023-11-17 00:00:00.25"), Some(1_700_179_200_250_000_000));
    assert_eq!(formats::parse_datetime_ns("yesterday"), None);
}

#[test]
fn trace_workload_replays_prefix_hashes() {
    use crate::workload::Workload;
    let cfg = workload::TraceWorkloadConfig {
        file: ex("mooncake.jsonl").to_string_lossy().into_owned(),
        format: None,
        time_scale: Some(2.0),
        rate: None,
        max_requests: None,
    };
    let streams = crate::rng::RngStreams::new(1);
    let mut w =
        workload::TraceWorkload::new(&cfg, &streams, crate::units::SimDuration::from_secs(10), Path::new(".")).unwrap();
    let mut v = vec![];
    while w.peek_time().is_some() {
        v.push(w.pop());
    }
    assert_eq!(v.len(), 4);
    assert_eq!(
        v.iter().map(|s| s.arrival.as_nanos()).collect::<Vec<_>>(),
        [0, 500_000_000, 500_000_000, 2_000_000_000]
    );
    // Requests 0 and 1 share their first two 512-token blocks, request 3 only the first.
    let keys = |i: usize| v[i].content.pieces.iter().map(|p| p.key).collect::<Vec<_>>();
    assert_eq!(keys(0)[..2], keys(1)[..2]);
    assert_eq!(keys(0)[0], keys(3)[0]);
    assert_ne!(keys(0)[1], keys(3)[1]);
    assert_eq!(v[0].content.pieces.iter().map(|p| p.len).collect::<Vec<_>>(), [512, 512, 76]);
    assert_eq!(v[0].input.0, 1100);
    // A short horizon cuts the replay.
    let mut w =
        workload::TraceWorkload::new(&cfg, &streams, crate::units::SimDuration::from_secs(1), Path::new(".")).unwrap();
    let mut n = 0;
    while w.peek_time().is_some() {
        w.pop();
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn bench_trace_draws_poisson_arrivals_deterministically() {
    let t = load(&ex("vllm-bench.json"), None).unwrap();
    let s = crate::rng::RngStreams::new(5);
    let a = workload::arrivals(&t.requests, t.request_rate, 1.0, &s);
    let b = workload::arrivals(&t.requests, t.request_rate, 1.0, &s);
    assert_eq!(a, b);
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(workload::arrivals(&t.requests, Some(f64::INFINITY), 1.0, &s), [0, 0, 0, 0]);
}

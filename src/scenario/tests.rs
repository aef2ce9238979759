//! Loader and resolution tests on inline scenarios (the malformed corpus is `tests/malformed`).

use super::*;
use crate::router::RouterConfig;
use crate::workload::config::ArrivalConfig;
use std::path::Path;

const MINIMAL: &str = "name: minimal
seed: 7
duration: 60s
model: llama-3.1-8b
gpu: h100_sxm
replicas: 2
router: {kind: round_robin}
workload:
  kind: synthetic
  arrival: {kind: poisson, rate: 5}
  input: {kind: uniform, min: 100, max: 400}
  output: {kind: fixed, tokens: 64}
slo: {ttft_p90_s: 1.0, tpot_p90_s: 0.05}
";

fn src() -> &'static Path {
    Path::new("scenarios/x.yaml")
}

fn load_with(text: &str, sets: &[&str]) -> Result<Scenario, ScenarioError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_str(text, src(), &sets)
}

fn err(text: &str, sets: &[&str]) -> ScenarioError {
    match load_with(text, sets) {
        Ok(_) => panic!("expected an error for:\n{text}\nwith {sets:?}"),
        Err(e) => e,
    }
}

#[test]
fn minimal_scenario_resolves_to_vllm_defaults_on_h100() {
    let s = load_with(MINIMAL, &[]).unwrap();
    assert_eq!(s.name, "minimal");
    assert_eq!(s.seed, 7);
    assert_eq!(s.duration, SimDuration::from_secs(60));
    assert_eq!(s.drain, DEFAULT_DRAIN);
    assert_eq!((s.tp, s.replicas), (1, 2));
    assert_eq!(s.model.id, "llama-3.1-8b");
    assert_eq!(s.gpu.id, "h100_sxm");
    assert_eq!(s.price, crate::catalog::reference_price("h100_sxm").unwrap().clone());
    let e = &s.engine;
    assert_eq!((e.max_num_batched_tokens, e.max_num_seqs), (8192, 1024));
    assert_eq!(e.block_size, 16);
    assert_eq!(e.gpu_memory_utilization, 0.9);
    assert!(e.enable_prefix_caching && e.enable_chunked_prefill);
    assert_eq!(e.max_model_len, 131072);
    let sizing = e.kv_sizing.as_ref().unwrap();
    assert_eq!(e.num_gpu_blocks, sizing.num_gpu_blocks);
    // Hand check (spec §3.2): 0.9 × 80 GiB − 16.06 GB weights − 3.4 GiB, over 16 × 128 KiB.
    let expected = ((0.9f64 * 80.0 * crate::catalog::GIB).ceil() as u64
        - 16_060_000_000
        - (3.4 * crate::catalog::GIB).round() as u64)
        / (16 * 131072);
    assert_eq!(e.num_gpu_blocks as u64, expected);
    assert_eq!(e.step_time, crate::step_time::StepTimeConfig::default());
    assert_eq!(s.router, RouterConfig::RoundRobin);
    assert_eq!(s.timeseries_interval, SimDuration::from_secs(1));
    assert!(s.requests_csv);
    assert_eq!(s.slo.ttft_p90_s, Some(1.0));
}

#[test]
fn small_gpus_get_the_small_batch_defaults() {
    let model = crate::catalog::model("llama-3.1-8b").unwrap();
    let mut gpu = crate::catalog::gpu("h100_sxm").unwrap().clone();
    gpu.large_batch_defaults = false;
    gpu.default_block_size = 32;
    let e = resolve::resolve_engine_for_test(&raw::EngineFile::default(), model, &gpu, 1);
    assert_eq!((e.max_num_batched_tokens, e.max_num_seqs, e.block_size), (2048, 256, 32));
}

#[test]
fn explicit_engine_settings_win_over_defaults() {
    let text = MINIMAL.replace(
        "replicas: 2\n",
        "replicas: 2\nengine: {max_num_seqs: 64, max_num_batched_tokens: 4096, block_size: 32, gpu_memory_utilization: 0.8, enable_prefix_caching: false, max_model_len: 32768, num_gpu_blocks_override: 5000, non_kv_overhead_gib: 2}\n",
    );
    let s = load_with(&text, &[]).unwrap();
    let e = &s.engine;
    assert_eq!((e.max_num_seqs, e.max_num_batched_tokens, e.block_size), (64, 4096, 32));
    assert_eq!(e.gpu_memory_utilization, 0.8);
    assert!(!e.enable_prefix_caching);
    assert_eq!((e.max_model_len, e.num_gpu_blocks), (32768, 5000));
    assert_ne!(e.kv_sizing.as_ref().unwrap().num_gpu_blocks, 5000, "sizing is still derived for reports");
}

#[test]
fn vllm_version_selects_the_memory_utilization_default() {
    let with = |v: &str| MINIMAL.replace("replicas: 2\n", &format!("replicas: 2\nengine: {{vllm_version: \"{v}\"}}\n"));
    assert_eq!(load_with(&with("0.11"), &[]).unwrap().engine.gpu_memory_utilization, 0.9);
    assert_eq!(load_with(&with("0.25.1"), &[]).unwrap().engine.gpu_memory_utilization, 0.92);
    // Unquoted versions are read as text by the typed pass.
    let plain = MINIMAL.replace("replicas: 2\n", "replicas: 2\nengine: {vllm_version: 0.30}\n");
    assert_eq!(load_with(&plain, &[]).unwrap().file.engine.vllm_version.as_deref(), Some("0.30"));
}

#[test]
fn set_overrides_apply_before_typing() {
    let s = load_with(MINIMAL, &["replicas=6"]).unwrap();
    assert_eq!(s.replicas, 6);
    assert_eq!(s.file.replicas, 6, "the echoed file includes overrides");

    let s = load_with(MINIMAL, &["engine.max_num_seqs=8"]).unwrap();
    assert_eq!(s.engine.max_num_seqs, 8);

    let s = load_with(MINIMAL, &["router.kind=random"]).unwrap();
    assert_eq!(s.router, RouterConfig::Random);

    let s = load_with(
        MINIMAL,
        &["engine.enable_prefix_caching=false", "duration=30s", "workload.arrival.rate=2.5", "slo.e2e_p99_s=20"],
    )
    .unwrap();
    assert!(!s.engine.enable_prefix_caching);
    assert_eq!(s.duration, SimDuration::from_secs(30));
    match &s.workload {
        crate::workload::WorkloadConfig::Synthetic(w) => {
            assert_eq!(w.arrival, ArrivalConfig::Poisson(crate::workload::config::RateConfig { rate: 2.5 }))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.slo.e2e_p99_s, Some(20.0));

    // A whole sub-map, and list entries by index.
    let s = load_with(MINIMAL, &["workload.arrival={kind: stages, stages: [{rate: 1, duration: 10s}]}"]).unwrap();
    let s2 = load_with(&s_text(&s), &["workload.arrival.stages.0.rate=3"]).unwrap();
    match &s2.workload {
        crate::workload::WorkloadConfig::Synthetic(w) => match &w.arrival {
            ArrivalConfig::Stages(st) => assert_eq!(st.stages[0].rate, 3.0),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn s_text(s: &Scenario) -> String {
    serde_saphyr::to_string(&s.file).unwrap()
}

#[test]
fn set_errors_say_they_came_from_set() {
    let e = err(MINIMAL, &["engine.max_num_sq=8"]);
    let m = e.to_string();
    assert!(m.contains("`--set engine.max_num_sq=8`") && m.contains("did you mean `max_num_seqs`"), "{m}");
    assert_eq!(e.field(), Some("engine.max_num_sq"));

    let m = err(MINIMAL, &["replicas=0"]).to_string();
    assert!(m.contains("`replicas`: must be at least 1") && m.contains("--set replicas=0"), "{m}");

    for (arg, want) in [
        ("replicas", "expected `key.path=value`"),
        ("replicas.x=1", "`replicas` is a number (2), not a map"),
        ("replicas=", "no value after `=`"),
        ("a..b=1", "is not a field path"),
        ("workload.arrival.rate=[1,", "not valid YAML"),
    ] {
        let e = err(MINIMAL, &[arg]);
        assert!(matches!(e, ScenarioError::BadOverride { .. }), "{arg}: {e:?}");
        assert!(e.to_string().contains(want), "{arg}: {e}");
        assert!(e.to_string().starts_with("scenarios/x.yaml: --set"), "{e}");
    }
}

#[test]
fn unknown_keys_get_a_suggestion_and_a_line() {
    let e = err(&MINIMAL.replace("replicas:", "repliaces:"), &[]);
    match &e {
        ScenarioError::UnknownField { line, field, suggestion, .. } => {
            assert_eq!(*line, Some(6));
            assert_eq!(field, "repliaces");
            assert_eq!(suggestion.as_deref(), Some("replicas"));
        }
        other => panic!("{other:?}"),
    }
    let m = e.to_string();
    assert!(
        m.starts_with(
            "scenarios/x.yaml:6: unknown field `repliaces` at top level; did you mean `replicas`? Valid fields: name, "
        ),
        "{m}"
    );
}

#[test]
fn errors_inside_tagged_enums_point_at_the_right_field_and_line() {
    let e = err(&MINIMAL.replace("rate: 5", "rate: 5, burst: 2"), &[]);
    assert_eq!(e.field(), Some("workload.arrival.burst"));
    assert_eq!(e.line(), Some(10));
    let e = err(&MINIMAL.replace("tokens: 64", "tokens: lots"), &[]);
    assert_eq!(e.field(), Some("workload.output.tokens"));
    assert_eq!(e.line(), Some(12));
    let e = err(&MINIMAL.replace("kind: uniform", "kind: unifrom"), &[]);
    assert_eq!(e.field(), Some("workload.input.kind"));
    assert!(e.to_string().contains("did you mean `uniform`? Valid kinds: fixed, uniform, lognormal, empirical"), "{e}");
}

#[test]
fn fields_serde_would_ignore_are_rejected() {
    let e = err(&MINIMAL.replace("{kind: round_robin}", "{kind: round_robin, weights: [1, 2]}"), &[]);
    assert!(e.to_string().contains("unknown field `weights` in `router` (kind `round_robin`)"), "{e}");
    assert_eq!(e.line(), Some(7));
}

#[test]
fn resolution_errors_have_lines_too() {
    let e = err(&MINIMAL.replace("rate: 5", "rate: -1"), &[]);
    assert_eq!(e.line(), Some(10));
    assert_eq!(e.field(), Some("workload.arrival.rate"));
    assert!(e.to_string().starts_with("scenarios/x.yaml:10: `workload.arrival.rate`: -1 must be a positive"), "{e}");
}

#[test]
fn price_override_and_description() {
    let text = format!("{MINIMAL}price: {{usd_per_gpu_hour: 2.5, provider: acme}}\ndescription: test\n");
    let s = load_with(&text, &[]).unwrap();
    assert_eq!(s.price.usd_per_gpu_hour, 2.5);
    assert_eq!(s.price.provider, "acme");
}

#[test]
fn empirical_lengths_are_relative_to_the_scenario_file() {
    let dir = std::env::temp_dir().join(format!("servesim-scenario-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lengths.txt"), "100\n200\n").unwrap();
    let text = MINIMAL.replace("{kind: uniform, min: 100, max: 400}", "{kind: empirical, file: lengths.txt}");
    let path = dir.join("s.yaml");
    std::fs::write(&path, &text).unwrap();
    assert!(load(&path, &[]).is_ok());
    let e = load_str(&text, Path::new("elsewhere/s.yaml"), &[]).unwrap_err();
    assert_eq!(e.field(), Some("workload.input.file"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn other_workload_kinds_resolve() {
    let sessions = MINIMAL.replace(
        "workload:\n  kind: synthetic\n  arrival: {kind: poisson, rate: 5}\n  input: {kind: uniform, min: 100, max: 400}\n  output: {kind: fixed, tokens: 64}\n",
        "workload:\n  kind: sessions\n  arrival: {kind: gamma, rate: 1, cv: 2}\n  turns: {kind: uniform, min: 1, max: 8}\n  system_prompt_len: 500\n  user_message: {kind: lognormal, mean: 80, sigma: 0.6}\n  output: {kind: fixed, tokens: 200}\n  think_time: 20s\n",
    );
    assert!(matches!(load_with(&sessions, &[]).unwrap().workload, crate::workload::WorkloadConfig::Sessions(_)));
    let coding = MINIMAL.replace(
        "workload:\n  kind: synthetic\n  arrival: {kind: poisson, rate: 5}\n  input: {kind: uniform, min: 100, max: 400}\n  output: {kind: fixed, tokens: 64}\n",
        "workload:\n  kind: coding_assistant\n  engineers: 40\n  repositories: 3\n  repo_context: {kind: uniform, min: 2000, max: 9000}\n  file_context: {kind: fixed, tokens: 0}\n  question: {kind: fixed, tokens: 50}\n  output: {kind: fixed, tokens: 300}\n  requests_per_engineer_hour: 12\n  hourly_profile: [0,0,0,0,0,0,0,0.3,0.8,1,1,0.9,0.5,0.9,1,1,0.8,0.5,0.2,0,0,0,0,0]\n  start_hour: 8\n",
    );
    assert!(matches!(load_with(&coding, &[]).unwrap().workload, crate::workload::WorkloadConfig::CodingAssistant(_)));
    let diurnal = MINIMAL.replace("{kind: poisson, rate: 5}", "{kind: diurnal, peak_rate: 20, profile: [0.1, 1, 0.3]}");
    load_with(&diurnal, &[]).unwrap();
    let closed = MINIMAL.replace("{kind: poisson, rate: 5}", "{kind: closed_loop, users: 10, think_time: 0s}");
    load_with(&closed, &[]).unwrap();
    let prefix = MINIMAL.replace(
        "  output: {kind: fixed, tokens: 64}\n",
        "  output: {kind: fixed, tokens: 64}\n  prefix: {kind: shared_prefix, groups: 4, prompts_per_group: 8, system_prompt_len: 2000, question_len: 100}\n",
    );
    load_with(&prefix, &[]).unwrap();
}

#[test]
fn anchors_and_merge_keys_work_within_budget() {
    let text = MINIMAL.replace(
        "  input: {kind: uniform, min: 100, max: 400}\n  output: {kind: fixed, tokens: 64}\n",
        "  input: &len {kind: uniform, min: 100, max: 400}\n  output: *len\n",
    );
    let s = load_with(&text, &[]).unwrap();
    match &s.workload {
        crate::workload::WorkloadConfig::Synthetic(w) => assert_eq!(w.input, w.output),
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_large_input_is_rejected_before_parsing() {
    let big = format!("name: x\ndescription: \"{}\"\n", "a".repeat(MAX_FILE_BYTES as usize));
    assert!(matches!(err(&big, &[]), ScenarioError::TooLarge { .. }));
}

#[test]
fn schema_renders_durations_as_strings() {
    let s = schema();
    assert_eq!(s["properties"]["duration"]["type"], "string", "{}", s["properties"]["duration"]);
    assert_eq!(s["$defs"]["OutputFile"]["properties"]["timeseries_interval"]["type"], "string");
    let text = s.to_string();
    for kind in ["poisson", "closed_loop", "coding_assistant", "shared_prefix", "round_robin", "roofline"] {
        assert!(text.contains(&format!("\"{kind}\"")), "schema lacks kind {kind}");
    }
    assert_eq!(s["additionalProperties"], false);
}

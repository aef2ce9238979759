//! Autoscaling end to end: byte-identical outputs with one or several threads, and the
//! bundled autoscaled scenario's fleet columns and GPU-hour split.

use servesim::metrics::{render_requests_csv, render_summary_json, render_timeseries};
use servesim::scenario;
use std::path::Path;

/// 40 minutes: low, a 10-minute surge, low again; EPP routing; every kind of scaler and a
/// crash with retries, so that lifecycle, scrapes, the gateway and faults all take part.
const SURGE: &str = r#"
name: surge
seed: 11
duration: 40m
model: qwen3-8b
gpu: h100_sxm
replicas: 1
router: {kind: epp, profile: default}
lifecycle: {preset: warm_node, gpus_per_node: 8}
faults:
  retry: {max_retries: 1, backoff: 1s}
  events:
  - {kind: crash, at: 20m, replica: 0}
  - {kind: slow_replica, at: 25m, replica: 1, factor: 2.0, for: 5m}
autoscalers:
  hpa:
    kind: hpa
    maxReplicas: 6
    metrics:
    - type: Pods
      pods: {metric: {name: "vllm:num_requests_waiting"}, target: {type: AverageValue, averageValue: 2}}
  keda:
    kind: keda
    pollingInterval: 10
    minReplicaCount: 0
    maxReplicaCount: 6
    cooldownPeriod: 120
    triggers:
    - type: prometheus
      metadata: {query: "sum(llm_d_epp_request_running)", threshold: "24"}
  wva: {kind: wva, maxReplicas: 6}
workload:
  kind: synthetic
  arrival: {kind: stages, stages: [{rate: 2, duration: 10m}, {rate: 30, duration: 10m}, {rate: 1, duration: 20m}]}
  input: {kind: uniform, min: 500, max: 3000}
  output: {kind: uniform, min: 50, max: 400}
"#;

fn outputs(out: &servesim::sim::SimOutput) -> Vec<u8> {
    let mut v = render_summary_json(&out.summary);
    v.extend(render_requests_csv(&out.recorder.records));
    v.extend(render_timeseries(&out.recorder));
    v
}

#[test]
fn autoscaling_is_deterministic_across_thread_counts() {
    let sc = scenario::load_str(SURGE, Path::new("surge.yaml"), &[]).unwrap();
    let names = ["fixed", "hpa", "keda", "wva", "llm-d-keda-epp-queue"];
    let scalers: Vec<(String, _)> =
        names.iter().map(|n| (n.to_string(), servesim::app::autoscaler_by_name(&sc, n).unwrap())).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| servesim::sim::simulate_autoscalers(&sc, &scalers))
            .into_iter()
            .map(|r| outputs(&r.unwrap()))
            .collect::<Vec<_>>()
    };
    let one = run(1);
    let many = run(4);
    assert_eq!(one.len(), names.len());
    for (i, (a, b)) in one.iter().zip(&many).enumerate() {
        assert!(a == b, "{} differs between 1 and 4 threads", names[i]);
    }
    // Scalers really scaled, and every request is accounted for.
    for (i, name) in names.iter().enumerate() {
        let out = servesim::sim::simulate_with(&sc, &sc.router, &scalers[i].1).unwrap();
        let r = &out.summary.requests;
        assert_eq!(r.completed + r.failed + r.rejected + r.in_flight, r.submitted, "{name}");
        assert_eq!(r.submitted, out.totals.submitted, "{name}");
        let g = &out.summary.gpu_hours;
        assert!((g.total - (g.serving + g.starting + g.draining + g.idle_node)).abs() < 1e-9, "{name}");
        if *name != "fixed" {
            assert!(
                out.totals.fleet.events.iter().any(|e| e.to > e.from && e.reason != "crash"),
                "{name} never scaled up"
            );
        }
    }
}

#[test]
fn bundled_autoscaled_scenario_has_fleet_columns() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/coding-assistant-autoscaled.yaml");
    // Two hours of the morning ramp keep the test short.
    let sc = scenario::load(&path, &["duration=2h".into(), "workload.start_hour=7".into()]).unwrap();
    let out = servesim::sim::simulate(&sc).unwrap();
    let ts = String::from_utf8(render_timeseries(&out.recorder)).unwrap();
    let header = ts.lines().next().unwrap();
    assert!(header.ends_with(
        "phase,replicas_ready,replicas_starting,replicas_draining,desired_replicas,scaler_signal,gateway_queue"
    ));
    let json = String::from_utf8(render_summary_json(&out.summary)).unwrap();
    assert!(json.contains("\"gpu_hours\": {"), "{json}");
    assert!(out.summary.gpu_hours.idle_node >= 0.0);
}

// Temporary perf probe of the engine on the coding-assistant workload (Linear step model).
use servesim::engine::{EngineParams, Simulation};
use servesim::metrics::Recorder;
use servesim::rng::RngStreams;
use servesim::scenario::ScenarioFile;
use servesim::step_time::{Linear, LinearConfig};
use servesim::units::{SimDuration, SimTime};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap_or("scenarios/coding-assistant.yaml".into());
    let f: ScenarioFile = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let streams = RngStreams::new(f.seed);
    let dur = f.duration.0;
    let t0 = Instant::now();
    let wl = servesim::workload::build(&f.workload, &streams, dur, std::path::Path::new(".")).unwrap();
    let model = Linear::new(&LinearConfig { base_us: 15000.0, per_prefill_token_us: 60.0, per_decode_seq_us: 50.0, per_context_token_ns: 0.5 });
    let p = EngineParams {
        replicas: f.replicas, max_num_seqs: 1024, max_num_batched_tokens: 8192, block_size: 16,
        num_gpu_blocks: 19208, enable_prefix_caching: true, enable_chunked_prefill: true, max_model_len: 40960,
        arrivals_end: SimTime::ZERO + dur, hard_end: SimTime::MAX, tick: SimDuration::from_secs(1), max_run_steps: 4096,
    };
    let mut rec = Recorder::new();
    let router = servesim::router::RouterConfig::RoundRobin.build(&Default::default()).unwrap();
    let totals = Simulation::new(p, wl, router, &model, &mut rec, &streams).run();
    let wall = t0.elapsed().as_secs_f64();
    let n = rec.records.len();
    let steps: u64 = totals.replicas.iter().map(|r| r.steps).sum();
    let hits: u64 = totals.replicas.iter().map(|r| r.prefix_hits).sum();
    let q: u64 = totals.replicas.iter().map(|r| r.prefix_queries).sum();
    let pre: u64 = totals.replicas.iter().map(|r| r.preemptions).sum();
    println!("{n} requests, {steps} steps, hit {:.3}, preempt {pre}, sim end {:.0}s, wall {wall:.2}s => {:.0} req/s", hits as f64 / q as f64, totals.end.as_secs_f64(), n as f64 / wall);
}

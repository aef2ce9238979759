//! Criterion benchmarks of whole simulations. The headline figures (simulated requests per
//! wall-second) come from `servesim bench`; these track regressions of the same paths.

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;

fn scenarios(c: &mut Criterion) {
    let minimal = servesim::scenario::load(Path::new("scenarios/minimal.yaml"), &["duration=600s".into()])
        .expect("bundled minimal.yaml loads");
    c.bench_function("minimal_600s", |b| b.iter(|| servesim::sim::simulate(&minimal).expect("runs")));
    let ca = servesim::scenario::load(Path::new("scenarios/coding-assistant.yaml"), &["duration=1h".into()])
        .expect("bundled coding-assistant.yaml loads");
    let mut g = c.benchmark_group("coding_assistant");
    g.sample_size(10);
    g.bench_function("coding_assistant_1h", |b| b.iter(|| servesim::sim::simulate(&ca).expect("runs")));
    g.finish();
}

criterion_group!(benches, scenarios);
criterion_main!(benches);

//! One simulation from a resolved scenario to its outputs: build the workload, router and
//! step-time model from their configs, run the engine with a [`Recorder`], and summarise.
//! Library-level (no CLI, no wall clock) so tests, `compare`, `bench` and the planner share it.

use crate::autoscaler::{AutoscalerConfig, AutoscalerCtx};
use crate::engine::{EngineParams, FleetSetup, Simulation};
use crate::metrics::{Recorder, RunMeta, Summary};
use crate::rng::RngStreams;
use crate::router::RouterConfig;
use crate::scenario::Scenario;
use crate::units::SimTime;
use std::path::Path;

/// Everything a run produced.
pub struct SimOutput {
    pub summary: Summary,
    pub recorder: Recorder,
    pub totals: crate::engine::RunTotals,
}

/// Errors while building a run's components (the scenario itself was already validated).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("workload: {0}")]
    Workload(String),
    #[error("step-time model: {0}")]
    StepTime(String),
    #[error("router: {0}")]
    Router(String),
    #[error("autoscaler: {0}")]
    Autoscaler(String),
}

/// Engine parameters of a scenario.
pub fn engine_params(sc: &Scenario) -> EngineParams {
    let e = &sc.engine;
    let arrivals_end = SimTime::ZERO + sc.duration;
    EngineParams {
        replicas: sc.replicas,
        max_num_seqs: e.max_num_seqs,
        max_num_batched_tokens: e.max_num_batched_tokens,
        block_size: e.block_size,
        num_gpu_blocks: e.num_gpu_blocks,
        enable_prefix_caching: e.enable_prefix_caching,
        enable_chunked_prefill: e.enable_chunked_prefill,
        max_model_len: e.max_model_len,
        arrivals_end,
        hard_end: if sc.drain.as_nanos() == u64::MAX { SimTime::MAX } else { arrivals_end + sc.drain },
        tick: sc.timeseries_interval,
        max_run_steps: 4096,
    }
}

fn base_dir(sc: &Scenario) -> &Path {
    sc.source.parent().unwrap_or(Path::new("."))
}

/// Simulates `sc` with its own router.
pub fn simulate(sc: &Scenario) -> Result<SimOutput, SimError> {
    simulate_with_router(sc, &sc.router)
}

/// Simulates `sc` with `router` instead of the scenario's (same arrivals, same content).
pub fn simulate_with_router(sc: &Scenario, router: &RouterConfig) -> Result<SimOutput, SimError> {
    simulate_with(sc, router, &sc.autoscaler)
}

/// Simulates `sc` with `router` and `autoscaler` instead of the scenario's.
pub fn simulate_with(
    sc: &Scenario,
    router: &RouterConfig,
    autoscaler: &AutoscalerConfig,
) -> Result<SimOutput, SimError> {
    let streams = RngStreams::new(sc.seed);
    let dir = base_dir(sc);
    let workload = crate::workload::build(&sc.workload, &streams, sc.duration, dir)
        .map_err(|e| SimError::Workload(e.to_string()))?;
    let step_model =
        sc.engine.step_time.build(&sc.model, &sc.gpu, sc.tp, dir).map_err(|e| SimError::StepTime(e.to_string()))?;
    let ctx = crate::router::RouterBuildCtx { base_dir: dir.to_path_buf(), replicas: sc.replicas };
    let router = router.build(&ctx).map_err(|e| SimError::Router(e.to_string()))?;
    let mut recorder = Recorder::new();
    let autoscaler = autoscaler
        .build(&AutoscalerCtx { start_hour: sc.start_hour })
        .map_err(|e| SimError::Autoscaler(e.to_string()))?;
    let setup = FleetSetup { lifecycle: sc.lifecycle.clone(), tp: sc.tp, autoscaler, faults: sc.faults.clone() };
    let totals = {
        let sim = Simulation::new(engine_params(sc), workload, router, step_model.as_ref(), &mut recorder, &streams)
            .with_fleet(setup);
        sim.run()
    };
    let per_replica = totals
        .replicas
        .iter()
        .map(|r| crate::metrics::ReplicaTotals {
            prefix_queries: r.prefix_queries,
            prefix_hits: r.prefix_hits,
            preemptions: r.preemptions,
        })
        .collect();
    let mut mtotals = crate::metrics::RunTotals::from_replicas(per_replica);
    let f = &totals.fleet;
    mtotals.gpu_seconds = Some(crate::metrics::GpuSeconds {
        sku: sc.gpu.id.clone(),
        starting: f.starting_gpu_s,
        serving: f.serving_gpu_s,
        draining: f.draining_gpu_s,
        node: f.node_gpu_s,
    });
    mtotals.retried = f.retried;
    let meta = RunMeta {
        scenario: sc.name.clone(),
        seed: sc.seed,
        simulated: totals.end - SimTime::ZERO,
        replicas: sc.replicas,
        tp: sc.tp,
        gpu_count: sc.replicas * sc.tp,
        price: (&sc.price).into(),
        slo: sc.slo.clone(),
    };
    crate::metrics::record::sort_by_id(&mut recorder.records);
    let summary = Summary::build(&meta, &mtotals, &mut recorder);
    Ok(SimOutput { summary, recorder, totals })
}

/// Simulates `sc` once per router, in parallel (rayon); results in `routers` order, each
/// identical to a sequential [`simulate_with_router`] (every run owns its RNG streams).
pub fn simulate_routers<N: Sync>(sc: &Scenario, routers: &[(N, RouterConfig)]) -> Vec<Result<SimOutput, SimError>> {
    use rayon::prelude::*;
    routers.par_iter().map(|(_, cfg)| simulate_with_router(sc, cfg)).collect()
}

/// Simulates `sc` once per autoscaler, in parallel; results in `scalers` order, each identical
/// to a sequential [`simulate_with`] with the scenario's router.
pub fn simulate_autoscalers<N: Sync>(
    sc: &Scenario,
    scalers: &[(N, AutoscalerConfig)],
) -> Vec<Result<SimOutput, SimError>> {
    use rayon::prelude::*;
    scalers.par_iter().map(|(_, cfg)| simulate_with(sc, &sc.router, cfg)).collect()
}

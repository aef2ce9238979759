//! Observation by push, summaries afterwards. The engine pushes events to an [`Observer`]
//! (all methods have no-op defaults); the [`Recorder`] keeps one [`RequestRecord`] per request
//! — the one schema shared by simulated, live and imported traces — plus per-step ITL samples
//! and per-tick replica samples. Every statistic is computed afterwards from those rows with the
//! one percentile definition in [`summary`] (nearest rank: the value at 1-based rank
//! `ceil(p/100 × n)` clamped to `[1, n]`; for weighted samples, the smallest value whose
//! cumulative weight reaches that rank of the total weight).
//!
//! Modules: [`record`] (the row schema), [`recorder`] (the observer keeping the rows),
//! [`summary`] (statistics, SLO verdict, cost → `summary.json`), [`export`] (byte renderers
//! for JSON/CSV/text, the `requests.csv` reader, and atomic file output).

pub mod export;
mod radix;
pub mod record;
pub mod recorder;
pub mod summary;
#[cfg(test)]
mod tests;

pub use export::{
    ExportError, FLEET_COLUMNS, REQUEST_COLUMNS, TIMESERIES_COLUMNS, parse_requests_csv, render_requests_csv,
    render_summary_json, render_text, render_timeseries, render_timeseries_csv, write_atomic, write_outputs,
};
pub use record::{Outcome, RecordError, RequestRecord};
pub use recorder::{ItlPercentiles, ItlSamples, Recorder, ReplicaSteps, TickRow};
pub use summary::{
    GpuHours, GpuSeconds, PriceInfo, ReplicaSummary, ReplicaTotals, RequestCounts, RunMeta, RunTotals, SkuHours,
    SloCheck, SloPopulation, SloReport, Stats, Summary, Throughput, evaluate_records_slo, evaluate_slo, percentile,
    weighted_percentile,
};

use crate::step_time::BatchShape;
use crate::units::{ReplicaId, SimDuration, SimTime};

/// Replica state at a sampling tick (what `timeseries.csv` holds) and what a metrics scrape
/// sees: the state after the last completed engine step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReplicaSample {
    pub replica: ReplicaId,
    pub running: u32,
    pub waiting: u32,
    /// `vllm:kv_cache_usage_perc`: 1 − free / (num_gpu_blocks − 1); cached-but-free counts as free.
    pub kv_usage: f64,
    /// Blocks that hold a prefix-cache hash (in use or free-but-cached).
    pub cached_blocks: u32,
    pub num_gpu_blocks: u32,
    /// Counters since the start of the run (deltas are taken by the consumer).
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    pub prompt_tokens: u64,
    pub generation_tokens: u64,
    pub preemptions: u64,
    pub steps: u64,
}

/// Push-style observer; every method has a no-op default.
pub trait Observer {
    /// A step (or a run of `steps` identical-batch decode steps) finished on a replica.
    /// `durations` holds each step's duration; `decode_gaps` is how many tokens each step
    /// produced whose previous token came from the step just before (pooled ITL samples).
    fn on_steps(
        &mut self,
        _now: SimTime,
        _replica: ReplicaId,
        _first: &BatchShape,
        _durations: &[SimDuration],
        _itl_weight: u32,
    ) {
    }
    /// One inter-token gap that does not follow the consecutive-step rule (after a preemption,
    /// or the first decode after a chunked prefill that skipped steps).
    fn on_itl_gap(&mut self, _gap: SimDuration) {}
    /// A request left the system (completed, rejected, failed, or still in flight at the end).
    fn on_request_done(&mut self, _rec: &RequestRecord) {}
    /// Periodic replica samples, one per replica, in replica-id order.
    fn on_tick(&mut self, _now: SimTime, _samples: &[ReplicaSample]) {}
    /// Fleet state at the same tick, right after [`Observer::on_tick`]; `phases` holds the
    /// lifecycle phase of each sample's replica, in the same order.
    fn on_fleet_tick(&mut self, _fleet: &FleetSample, _phases: &[&'static str]) {}
}

/// Replica counts by phase and the autoscaler's view at a tick (extra `timeseries.csv` columns).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FleetSample {
    pub time: SimTime,
    pub ready: u32,
    pub starting: u32,
    pub draining: u32,
    /// The Deployment's `spec.replicas` as the autoscaler last set it.
    pub desired: u32,
    /// The autoscaler's first signal as it last saw it.
    pub signal: Option<f64>,
    /// Requests held in the gateway (no routable replica).
    pub gateway: u32,
}

/// An observer that ignores everything.
pub struct NoopObserver;
impl Observer for NoopObserver {}

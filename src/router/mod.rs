//! Routing: which replica serves a request. The cluster calls [`Router::route`] at the
//! request's arrival with the candidate set (Ready replicas, in replica-id order) and the
//! state the router is allowed to see: metrics as last scraped (stale, like the Endpoint
//! Picker's 50 ms polling) and the router's own in-flight counters (fresh). Randomness comes
//! only from the `router` stream handed in, so ties and random picks are reproducible.

use crate::content::ChainArena;
use crate::metrics::ReplicaSample;
use crate::rng::SimRng;
use crate::units::{ReplicaId, RequestId, SimDuration, SimTime};
use crate::workload::RequestSpec;
use rand::RngExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a router may know about one candidate replica.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Candidate {
    pub id: ReplicaId,
    /// Replica metrics as of the last scrape (state after the last completed engine step).
    pub scraped: ReplicaSample,
    /// Requests the router sent to this replica that have not finished (router-side count).
    pub in_flight: u32,
    pub block_size: u32,
}

/// A routing policy.
pub trait Router {
    fn name(&self) -> &str;
    /// Picks one of `cands` (non-empty, sorted by id).
    fn route(
        &mut self,
        now: SimTime,
        req: &RequestSpec,
        arena: &ChainArena,
        cands: &[Candidate],
        rng: &mut SimRng,
    ) -> ReplicaId;
    /// A request the router placed has finished (for in-router bookkeeping).
    fn on_finished(&mut self, _now: SimTime, _req: RequestId, _replica: ReplicaId) {}
    /// How often the cluster scrapes each replica's metrics for this router (`None`: the
    /// router reads no metrics). Each replica gets a random phase in [0, interval).
    fn scrape(&self) -> Option<ScrapeConfig> {
        None
    }
    /// Time from the request's arrival at the router to its arrival at the chosen replica.
    fn decision_latency(&self) -> SimDuration {
        SimDuration::ZERO
    }
    /// Lag after which engine KV events are delivered through [`Router::on_kv_event`];
    /// `None` (the default) turns KV events off, which keeps the engine fast.
    fn kv_events(&self) -> Option<SimDuration> {
        None
    }
    /// A KV block event from a replica's engine (vLLM's BlockStored / BlockRemoved), delivered
    /// `kv_events()` after it happened, in the order they happened.
    fn on_kv_event(&mut self, _now: SimTime, _replica: ReplicaId, _event: &KvEvent) {}
}

/// Metric scraping parameters (the EPP polls every 50 ms by default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScrapeConfig {
    pub interval: SimDuration,
    /// Time from the scrape's start until the values are visible to the router.
    pub latency: SimDuration,
}

/// vLLM KV-cache events (block hashes are the engine's chained hashes at its block size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// Full blocks became cached (registered), in chain order.
    BlockStored { hashes: Vec<u64> },
    /// Cached blocks were evicted.
    BlockRemoved { hashes: Vec<u64> },
    /// The whole cache was cleared (replica restart).
    AllCleared,
}

/// Router choice in scenario YAML (`kind:`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouterConfig {
    /// Cycle through candidates in id order.
    #[default]
    RoundRobin,
    /// Uniformly random candidate.
    Random,
}

impl RouterConfig {
    pub fn build(&self) -> Box<dyn Router> {
        match self {
            RouterConfig::RoundRobin => Box::new(RoundRobin { next: 0 }),
            RouterConfig::Random => Box::new(RandomRouter),
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            RouterConfig::RoundRobin => "round_robin",
            RouterConfig::Random => "random",
        }
    }
}

/// Round-robin over the candidate list by position, like a per-request L7 round-robin.
pub struct RoundRobin {
    next: u64,
}

impl Router for RoundRobin {
    fn name(&self) -> &str {
        "round_robin"
    }
    fn route(
        &mut self,
        _now: SimTime,
        _req: &RequestSpec,
        _arena: &ChainArena,
        cands: &[Candidate],
        _rng: &mut SimRng,
    ) -> ReplicaId {
        let i = (self.next % cands.len() as u64) as usize;
        self.next += 1;
        cands[i].id
    }
}

pub struct RandomRouter;

impl Router for RandomRouter {
    fn name(&self) -> &str {
        "random"
    }
    fn route(
        &mut self,
        _now: SimTime,
        _req: &RequestSpec,
        _arena: &ChainArena,
        cands: &[Candidate],
        rng: &mut SimRng,
    ) -> ReplicaId {
        cands[rng.random_range(0..cands.len())].id
    }
}

//! Routing: which replica serves a request. The cluster calls [`Router::route`] at the
//! request's arrival with the candidate set (Ready replicas, in replica-id order) and the
//! state the router is allowed to see: metrics as last scraped (stale, like the Endpoint
//! Picker's 50 ms polling) and the router's own in-flight counters (fresh). Randomness comes
//! only from the `router` stream handed in, so ties and random picks are reproducible.

pub mod baselines;
pub mod epp;
pub(crate) mod fasthash;

pub use baselines::{
    KubernetesService, KubernetesServiceConfig, LeastRequests, LeastRequestsConfig, PowerOfTwo, PowerOfTwoConfig,
    RandomRouter, RoundRobin, TieBreak,
};
pub use epp::{EppConfig, EppRouter};

use crate::content::ChainArena;
use crate::metrics::ReplicaSample;
use crate::rng::SimRng;
use crate::units::{ReplicaId, RequestId, SimDuration, SimTime};
use crate::workload::RequestSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// The first output token of a request the router placed was streamed back (optional:
    /// the EPP's in-flight token counter releases a request's prompt tokens here; routers that
    /// are never told fall back to releasing them in [`Router::on_finished`]).
    fn on_first_token(&mut self, _now: SimTime, _req: RequestId, _replica: ReplicaId) {}
    /// How often the cluster scrapes each replica's metrics for this router (`None`: the
    /// router reads no metrics, and [`Candidate::scraped`] is empty). Each replica gets a
    /// random phase in [0, interval).
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
///
/// ```yaml
/// router: {kind: round_robin}
/// router: {kind: least_requests, tie_break: lowest_id}        # or `random`
/// router: {kind: power_of_two}
/// router: {kind: kubernetes_service, connections: 100}         # kube-proxy, keep-alive pool
/// router: {kind: kubernetes_service, per_request: true}        # no keep-alive: random per request
/// router: {kind: epp, profile: default}                        # named EPP profile
/// router: {kind: epp, config_file: epp-config.yaml}            # upstream EndpointPickerConfig
/// router:
///   kind: epp
///   version: v1.3
///   config:
///     plugins: [{type: queue-scorer}, {type: prefix-cache-scorer}]
///     schedulingProfiles:
///     - name: default
///       plugins: [{pluginRef: queue-scorer, weight: 2}, {pluginRef: prefix-cache-scorer, weight: 3}]
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouterConfig {
    /// Cycle through candidates in id order.
    #[default]
    RoundRobin,
    /// Uniformly random candidate.
    Random,
    /// Fewest router-side in-flight requests.
    LeastRequests(LeastRequestsConfig),
    /// Two distinct random candidates; the one with fewer in-flight requests.
    PowerOfTwo(PowerOfTwoConfig),
    /// A plain Kubernetes Service (kube-proxy, connection-level balancing).
    KubernetesService(KubernetesServiceConfig),
    /// The Gateway API Inference Extension / llm-d Endpoint Picker.
    Epp(Box<EppConfig>),
}

/// What building a router may need besides its configuration.
#[derive(Clone, Debug, Default)]
pub struct RouterBuildCtx {
    /// Folder that relative paths (the EPP's `config_file`) are resolved against: the
    /// scenario file's folder.
    pub base_dir: PathBuf,
    /// Number of replicas at start (informational; candidate sets may grow later).
    pub replicas: u32,
}

/// A router configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("router: {0}")]
    Invalid(String),
    #[error("router: cannot read EPP config file `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RouterConfig {
    pub fn build(&self, ctx: &RouterBuildCtx) -> Result<Box<dyn Router>, RouterError> {
        Ok(match self {
            RouterConfig::RoundRobin => Box::new(RoundRobin::new()),
            RouterConfig::Random => Box::new(RandomRouter),
            RouterConfig::LeastRequests(c) => Box::new(LeastRequests::new(c.clone())),
            RouterConfig::PowerOfTwo(_) => Box::new(PowerOfTwo),
            RouterConfig::KubernetesService(c) => Box::new(KubernetesService::new(c.clone())?),
            RouterConfig::Epp(c) => Box::new(EppRouter::from_config(c, ctx)?),
        })
    }
    pub fn label(&self) -> &'static str {
        match self {
            RouterConfig::RoundRobin => "round_robin",
            RouterConfig::Random => "random",
            RouterConfig::LeastRequests(_) => "least_requests",
            RouterConfig::PowerOfTwo(_) => "power_of_two",
            RouterConfig::KubernetesService(_) => "kubernetes_service",
            RouterConfig::Epp(_) => "epp",
        }
    }
}

//! Replica lifecycle: what a new replica goes through before it serves, how it leaves, and how
//! its GPUs are billed. Phases follow a vLLM pod's cold start (spec §4.4): node provisioning
//! (zero when a node has free GPUs), image pull, weight load (model bytes per GPU over the
//! load bandwidth), engine init, CUDA-graph capture, then Ready. On scale-down a replica
//! drains: it takes no new requests, finishes what it holds within the grace period, then
//! stops. Billing runs from the replica's (or its node's) start to its end.

use crate::catalog::ModelSpec;
use crate::units::{NANOS_PER_SEC, SimDuration};
use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scenario `lifecycle:`; unset fields take the preset's value.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// `warm_node` (node free, image and weights cached: ≈ 1 min) or `new_node` (default:
    /// a node is provisioned, the image pulled, weights read from remote storage: ≈ 7 min).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Time to get a GPU node when none has free GPUs.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub node_provisioning: Option<DurationStr>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image_pull: Option<DurationStr>,
    /// Weight read bandwidth per GPU, GB/s (each rank loads its 1/TP shard in parallel).
    #[serde(default)]
    pub weight_load_gb_per_s: Option<f64>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub engine_init: Option<DurationStr>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub graph_capture: Option<DurationStr>,
    /// Longest a draining replica may keep working before it is stopped (its remaining
    /// requests fail). Kubernetes' default terminationGracePeriodSeconds is 30 s.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub drain_grace: Option<DurationStr>,
    /// Bill whole nodes of this many GPUs (replicas pack onto nodes); unset: bill per replica.
    #[serde(default)]
    pub gpus_per_node: Option<u32>,
    /// How long an empty node is kept (and billed) for reuse before it is released.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub node_keep_alive: Option<DurationStr>,
    /// Whether the initial `replicas` are Ready at time zero (default) or start cold.
    #[serde(default)]
    pub initial_ready: Option<bool>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    WarmNode,
    NewNode,
}

/// Resolved lifecycle.
#[derive(Clone, Debug, PartialEq)]
pub struct Lifecycle {
    pub node_provisioning: SimDuration,
    pub image_pull: SimDuration,
    pub weight_load: SimDuration,
    pub engine_init: SimDuration,
    pub graph_capture: SimDuration,
    pub drain_grace: SimDuration,
    pub gpus_per_node: Option<u32>,
    pub node_keep_alive: SimDuration,
    pub initial_ready: bool,
}

/// Phases of a replica, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Provisioning,
    ImagePull,
    WeightLoad,
    EngineInit,
    GraphCapture,
    Ready,
    Draining,
    Terminated,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provisioning => "provisioning",
            Phase::ImagePull => "image_pull",
            Phase::WeightLoad => "weight_load",
            Phase::EngineInit => "engine_init",
            Phase::GraphCapture => "graph_capture",
            Phase::Ready => "ready",
            Phase::Draining => "draining",
            Phase::Terminated => "terminated",
        }
    }
    pub fn starting(self) -> bool {
        self < Phase::Ready
    }
}

struct PresetValues {
    node: u64,
    image: u64,
    gbps: f64,
    init: u64,
    graphs: u64,
}

/// Values from spec §4.4: warm caches ≈ 18 s weights + 34 s init + 7-13 s graphs; new node
/// 120-300 s provisioning, 20-230 s image pull, remote weights, 30-90 s init, 10-55 s graphs.
fn preset(p: Preset) -> PresetValues {
    match p {
        Preset::WarmNode => PresetValues { node: 0, image: 0, gbps: 4.0, init: 30, graphs: 10 },
        Preset::NewNode => PresetValues { node: 180, image: 60, gbps: 1.0, init: 90, graphs: 30 },
    }
}

impl LifecycleConfig {
    /// Resolves against the model (weight bytes) and tensor parallelism.
    pub fn resolve(&self, model: &ModelSpec, tp: u32) -> Result<Lifecycle, (String, String)> {
        let pv = preset(self.preset.unwrap_or(Preset::NewNode));
        let d = |v: Option<DurationStr>, dflt: u64| v.map_or(SimDuration::from_secs(dflt), |d| d.0);
        let gbps = self.weight_load_gb_per_s.unwrap_or(pv.gbps);
        if !(gbps.is_finite() && gbps > 0.0) {
            return Err(("lifecycle.weight_load_gb_per_s".into(), "must be a positive number of GB/s".into()));
        }
        let bytes = model_bytes(model) / tp.max(1) as f64;
        let weight_load = SimDuration::from_nanos((bytes / (gbps * 1e9) * NANOS_PER_SEC as f64).round() as u64);
        if self.gpus_per_node.is_some_and(|g| g < tp) {
            return Err((
                "lifecycle.gpus_per_node".into(),
                format!(
                    "{} GPUs per node cannot hold a replica of tensor_parallel_size {tp}",
                    self.gpus_per_node.unwrap()
                ),
            ));
        }
        Ok(Lifecycle {
            node_provisioning: d(self.node_provisioning, pv.node),
            image_pull: d(self.image_pull, pv.image),
            weight_load,
            engine_init: d(self.engine_init, pv.init),
            graph_capture: d(self.graph_capture, pv.graphs),
            drain_grace: d(self.drain_grace, 30),
            gpus_per_node: self.gpus_per_node,
            node_keep_alive: d(self.node_keep_alive, 600),
            initial_ready: self.initial_ready.unwrap_or(true),
        })
    }
}

/// Checkpoint size: parameters × bytes per weight (embeddings at their own width).
pub fn model_bytes(m: &ModelSpec) -> f64 {
    m.params_total * m.weight_bytes
}

impl Lifecycle {
    /// Phase durations after node provisioning, in order.
    pub fn after_node(&self) -> [(Phase, SimDuration); 4] {
        [
            (Phase::ImagePull, self.image_pull),
            (Phase::WeightLoad, self.weight_load),
            (Phase::EngineInit, self.engine_init),
            (Phase::GraphCapture, self.graph_capture),
        ]
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            node_provisioning: SimDuration::ZERO,
            image_pull: SimDuration::ZERO,
            weight_load: SimDuration::ZERO,
            engine_init: SimDuration::ZERO,
            graph_capture: SimDuration::ZERO,
            drain_grace: SimDuration::from_secs(30),
            gpus_per_node: None,
            node_keep_alive: SimDuration::from_secs(600),
            initial_ready: true,
        }
    }
}

//! servesim: a discrete-event simulator and capacity planner for LLM serving on vLLM replicas
//! behind a (cache-aware) router.
//!
//! Determinism contract: one master seed per scenario, an independent named stream per
//! component ([`rng`]), integer nanosecond time ([`units`]), and a documented total order of
//! events ([`engine`]). Same scenario + seed ⇒ byte-identical outputs.

pub mod app;
pub mod autoscaler;
pub mod calibrate;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod content;
pub mod engine;
pub mod faults;
pub mod kv_cache;
pub mod lifecycle;
#[cfg(feature = "live")]
pub mod live;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod rng;
pub mod router;
pub mod scenario;
pub mod stages;
pub mod step_time;
pub mod trace;
pub mod units;
pub mod validate;
pub mod workload;

pub mod sim;

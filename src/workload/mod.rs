//! Workloads: where requests come from. A workload is an event source the engine pulls from
//! in arrival order ([`Workload::peek_time`] / [`Workload::pop`]); closed-loop users and
//! multi-turn sessions learn of completions through [`Workload::on_finished`] and schedule
//! their next request from it. Token content is described with [`crate::content`] pieces,
//! never as text. All randomness comes from streams named `workload.*`, so the same scenario
//! and seed give the same requests whatever the cluster, router or engine settings.

pub mod config;

use crate::content::{ChainArena, Content};
use crate::units::{RequestId, SimTime, Tokens};

pub use config::WorkloadConfig;

/// One request as the workload issues it.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub id: RequestId,
    pub arrival: SimTime,
    /// Prompt tokens (equals `content.tokens(arena)`).
    pub input: Tokens,
    /// Tokens the request generates (`ignore_eos` + `max_tokens` semantics).
    pub output: Tokens,
    pub content: Content,
    /// Content key of the generated tokens: output token `i` is token `(output_key, i)`, so a
    /// later turn that quotes this answer shares its blocks.
    pub output_key: u64,
    /// Session (user, conversation) this request belongs to, for affinity routing and
    /// closed-loop feedback.
    pub session: Option<u64>,
    /// Prefix group (e.g. repository or system prompt) for reports; `None` if unshared.
    pub group: Option<u32>,
}

/// How a request ended, as far as the workload needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Completed,
    Rejected,
}

/// A source of requests in non-decreasing arrival order.
pub trait Workload {
    /// Arrival time of the next request known now, if any.
    fn peek_time(&self) -> Option<SimTime>;
    /// Removes and returns the next request. Only called when `peek_time` is `Some`.
    fn pop(&mut self) -> RequestSpec;
    /// Told when a request finished (closed-loop users and sessions schedule their next turn).
    fn on_finished(&mut self, _now: SimTime, _req: &RequestSpec, _how: Finish) {}
    /// Shared prefixes referenced by the requests (fully registered before the first `pop`).
    fn arena(&self) -> &ChainArena;
    /// Offered load, for reports; `None` when not defined (closed loop).
    fn mean_rate(&self) -> Option<f64> {
        None
    }
}

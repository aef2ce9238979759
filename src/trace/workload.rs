//! Replaying a trace as a workload (`workload: {kind: trace, file: F}`): the trace's
//! arrivals, lengths and prefix structure, request for request.
//!
//! Prefix structure comes from the trace's chained block hashes: block hash `h` becomes one
//! piece of `B` tokens keyed by `h` (B = the trace's hash block size), and the rest of the
//! prompt is a private piece keyed by the request. Two prompts whose first k hashes agree
//! therefore share their first k·B tokens exactly, so the simulated prefix cache sees the
//! same reuse whatever its own block size. Traces without hashes replay unique prompts.
//! Traces without arrival times (vLLM bench) get Poisson arrivals at their recorded rate
//! (stream `workload.arrival`), or all at time zero for `inf`.

use super::{TraceFormat, TraceRequest};
use crate::content::{ChainArena, Content, Piece};
use crate::rng::RngStreams;
use crate::units::{RequestId, SimDuration, SimTime, Tokens};
use crate::workload::{KeySpace, RequestSpec, Workload, WorkloadError, horizon};
use rand::RngExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `workload: {kind: trace, ...}`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TraceWorkloadConfig {
    /// Trace file or folder (relative to the scenario file).
    pub file: String,
    /// Format; detected from the file when omitted.
    #[serde(default)]
    pub format: Option<TraceFormat>,
    /// Multiplies arrival offsets (0.5 replays twice as fast).
    #[serde(default)]
    pub time_scale: Option<f64>,
    /// Poisson rate (req/s) for traces without arrival times; default: the trace's own.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Replay at most this many requests (the first ones).
    #[serde(default)]
    pub max_requests: Option<u64>,
}

pub struct TraceWorkload {
    specs: std::vec::IntoIter<RequestSpec>,
    next: Option<RequestSpec>,
    arena: ChainArena,
    rate: Option<f64>,
}

/// Arrival offsets (ns) for the requests of a trace, drawing Poisson ones where missing.
pub fn arrivals(reqs: &[TraceRequest], rate: Option<f64>, time_scale: f64, streams: &RngStreams) -> Vec<u64> {
    if reqs.iter().all(|r| r.arrival_ns.is_some()) {
        return reqs.iter().map(|r| (r.arrival_ns.unwrap_or(0) as f64 * time_scale).round() as u64).collect();
    }
    let mut rng = streams.stream("workload.arrival", 0);
    let mut t = 0f64;
    reqs.iter()
        .map(|_| match rate {
            Some(r) if r.is_finite() && r > 0.0 => {
                let u: f64 = rng.random::<f64>();
                t += -(1.0 - u).ln() / r;
                (t * 1e9).round() as u64
            }
            _ => 0,
        })
        .collect()
}

impl TraceWorkload {
    pub fn new(
        cfg: &TraceWorkloadConfig,
        streams: &RngStreams,
        duration: SimDuration,
        base_dir: &Path,
    ) -> Result<Self, WorkloadError> {
        let path = if Path::new(&cfg.file).is_absolute() { cfg.file.clone().into() } else { base_dir.join(&cfg.file) };
        let trace = super::load(&path, cfg.format).map_err(|e| WorkloadError::invalid("file", format!("{e}")))?;
        if trace.requests.is_empty() {
            return Err(WorkloadError::invalid(
                "file",
                format!("{}: the trace has no requests (a summary-only format cannot be replayed)", path.display()),
            ));
        }
        let scale = cfg.time_scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(WorkloadError::invalid("time_scale", format!("must be a finite number > 0 (got {scale})")));
        }
        if let Some(r) = cfg.rate {
            crate::workload::positive("rate", r)?;
        }
        let rate = cfg.rate.or(trace.request_rate);
        let mut reqs = trace.requests;
        if let Some(m) = cfg.max_requests {
            reqs.truncate(m.min(usize::MAX as u64) as usize);
        }
        let times = arrivals(&reqs, rate, scale, streams);
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by_key(|&i| (times[i], i));
        let end = horizon(duration);
        let prompt_keys = KeySpace::new(streams, "workload.trace.prompt");
        let block_keys = KeySpace::new(streams, "workload.trace.block");
        let output_keys = KeySpace::new(streams, "workload.output");
        let b = trace.hash_block_tokens;
        let mut specs = Vec::with_capacity(reqs.len());
        for (n, &i) in order.iter().enumerate() {
            let at = SimTime(times[i]);
            if at >= end {
                break;
            }
            let r = &reqs[i];
            let input = r.input.max(1);
            let mut content = Content::default();
            let mut used = 0u32;
            if b > 0 {
                for &h in &r.hash_ids {
                    if used + b > input {
                        break;
                    }
                    content.pieces.push(Piece { key: block_keys.at(h), start: 0, len: b });
                    used += b;
                }
            }
            if used < input {
                content.pieces.push(Piece { key: prompt_keys.at(n as u64), start: 0, len: input - used });
            }
            specs.push(RequestSpec {
                id: RequestId(n as u64),
                arrival: at,
                input: Tokens(input),
                output: Tokens(r.output.max(1)),
                content,
                output_key: output_keys.at(n as u64),
                session: r.session,
                group: r.group,
                private_reuse: b > 0,
                // Without block ids, the prompt is one piece with a key of its own.
                novel_private: b == 0,
            });
        }
        let span = specs.last().map_or(0.0, |s| s.arrival.as_nanos() as f64 / 1e9);
        let rate = if span > 0.0 { Some(specs.len() as f64 / span) } else { None };
        let mut it = specs.into_iter();
        let next = it.next();
        Ok(TraceWorkload { specs: it, next, arena: ChainArena::new(), rate })
    }
}

impl Workload for TraceWorkload {
    fn peek_time(&self) -> Option<SimTime> {
        self.next.as_ref().map(|s| s.arrival)
    }
    fn pop(&mut self) -> RequestSpec {
        let s = self.next.take().expect("pop called without a pending request");
        self.next = self.specs.next();
        s
    }
    fn arena(&self) -> &ChainArena {
        &self.arena
    }
    fn mean_rate(&self) -> Option<f64> {
        self.rate
    }
}

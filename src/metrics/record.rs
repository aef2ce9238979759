//! The per-request record: one row per request, the same columns for simulated runs, live
//! runs against real endpoints and imported traces. Times are absolute simulated (or
//! wall-clock since run start) instants; latencies derive from them with the formulas in
//! README's metric glossary.

use crate::units::{ReplicaId, RequestId, SimTime};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// All output tokens produced.
    Completed,
    /// Refused before scheduling (e.g. prompt + output longer than `max_model_len`).
    Rejected,
    /// Failed after admission (replica crash, HTTP error in live mode).
    Failed,
    /// Still queued or running when the simulation stopped.
    InFlight,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::InFlight => "in_flight",
        }
    }
}

/// One request's life. `None` times did not happen (e.g. no first token for a rejected request).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub id: RequestId,
    pub arrival: SimTime,
    pub replica: Option<ReplicaId>,
    pub input_tokens: u32,
    /// Output tokens requested (simulated) or received (live).
    pub output_tokens: u32,
    /// Prompt tokens served from the prefix cache at (first) admission.
    pub cached_tokens: u32,
    /// First time the engine scheduled any of its tokens.
    pub scheduled: Option<SimTime>,
    pub first_token: Option<SimTime>,
    pub last_token: Option<SimTime>,
    pub preemptions: u32,
    pub outcome: Outcome,
    pub session: Option<u64>,
    pub group: Option<u32>,
}

impl RequestRecord {
    pub fn ttft_s(&self) -> Option<f64> {
        self.first_token.map(|t| (t - self.arrival).as_secs_f64())
    }
    pub fn e2e_s(&self) -> Option<f64> {
        self.last_token.map(|t| (t - self.arrival).as_secs_f64())
    }
    pub fn queue_s(&self) -> Option<f64> {
        self.scheduled.map(|t| (t - self.arrival).as_secs_f64())
    }
    /// (last − first) / (output − 1), for output > 1 (vLLM bench definition).
    pub fn tpot_s(&self) -> Option<f64> {
        match (self.first_token, self.last_token) {
            (Some(f), Some(l)) if self.output_tokens > 1 => {
                Some((l - f).as_secs_f64() / (self.output_tokens - 1) as f64)
            }
            _ => None,
        }
    }
}

/// Orders records by id, as a stable sort would. A simulation's ids are dense (consecutive
/// from the first), and records arrive nearly in order, so they are put in place by swapping
/// each to its index (a few local swaps instead of a full sort of 1 M records); ids that are
/// not dense and unique fall back to the stable sort.
pub fn sort_by_id(records: &mut [RequestRecord]) {
    let n = records.len();
    let Some(min) = records.iter().map(|r| r.id.0).min() else { return };
    let mut seen = vec![false; n];
    let dense = records.iter().all(|r| {
        let i = r.id.0 - min;
        i < n as u64 && !std::mem::replace(&mut seen[i as usize], true)
    });
    if !dense {
        records.sort_by_key(|r| r.id);
        return;
    }
    for i in 0..n {
        loop {
            let j = (records[i].id.0 - min) as usize;
            if j == i {
                break;
            }
            records.swap(i, j);
        }
    }
}

/// Why a `requests.csv` could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("requests CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("requests CSV: unknown column `{0}`")]
    UnknownColumn(String),
    #[error("requests CSV: missing required column `{0}`")]
    MissingColumn(&'static str),
    #[error("requests CSV line {line}, column `{column}`: invalid value `{value}`: {reason}")]
    Field { line: u64, column: &'static str, value: String, reason: String },
}

//! Filters (spec §1.5), applied in order. Both modelled filters fail open, so the candidate
//! set never becomes empty.
//!
//! Out of scope: role filters (`prefill-filter`, `by-label-selector`; P/D disaggregation is
//! not modelled). `decode-filter` keeps pods labelled decode/both *or unlabelled*, and
//! servesim's pods carry no role label, so it keeps everything. The legacy v0.2/v0.3 filter
//! chain (§1.6) and admission/shedding (§1.8: only sheddable requests are ever dropped, and
//! servesim's requests all have priority 0) are not modelled.

use super::CycleCtx;
use crate::rng::SimRng;
use rand::RngExt;

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `prefix-cache-affinity-filter` (llm-d-router, 2026).
    PrefixAffinity {
        /// `affinityThreshold` τ: sticky iff matched/total ≥ τ.
        threshold: f64,
        /// `explorationProbability`: keep everything with this probability.
        exploration: f64,
        /// `maxTTFTPenaltyMs`, with TTFT(e) = in-flight tokens / peak prefill tok/s.
        max_ttft_penalty_ms: f64,
        /// `maxTokensInFlightPenalty` (the guide's token form of the same gate; see the spec's
        /// §1.3 note): break stickiness when min sticky in-flight tokens − min non-sticky
        /// in-flight tokens exceeds it. 0 = off.
        max_tokens_penalty: f64,
        /// `peakPrefillThroughput` (tokens/s).
        peak_prefill_tps: f64,
    },
    /// The saturation detector as a filter (`utilization-detector`): keep endpoints with
    /// queue ≤ Q·(1+h) and KV ≤ min(1, KV·(1+h)); none left → keep all. The metrics
    /// staleness check (200 ms) is not applied: servesim's scrapes are at most one interval
    /// plus the scrape latency old.
    Utilization { queue_threshold: f64, kv_threshold: f64, headroom: f64 },
    /// `decode-filter`: every servesim pod is an unlabelled (decode-capable) pod.
    Decode,
}

impl Filter {
    /// Narrows `eps` (indices into `ctx.cands`) in place.
    pub fn apply(&self, ctx: &CycleCtx, eps: &mut Vec<usize>, rng: &mut SimRng) {
        match *self {
            Filter::Decode => {}
            Filter::Utilization { queue_threshold, kv_threshold, headroom } => {
                let q = queue_threshold * (1.0 + headroom);
                let kv = (kv_threshold * (1.0 + headroom)).min(1.0);
                let c = ctx.cands;
                let ok = |i: &usize| c[*i].scraped.waiting as f64 <= q && c[*i].scraped.kv_usage <= kv;
                if eps.iter().any(ok) {
                    eps.retain(ok);
                }
            }
            Filter::PrefixAffinity {
                threshold,
                exploration,
                max_ttft_penalty_ms,
                max_tokens_penalty,
                peak_prefill_tps,
            } => {
                if eps.len() <= 1 || threshold <= 0.0 {
                    return;
                }
                if exploration > 0.0 && rng.random::<f64>() < exploration {
                    return;
                }
                let a = ctx.approx.as_ref().expect("affinity filter runs with the approximate index");
                let sticky = |i: usize| a.total > 0 && a.matched[i] as f64 / a.total as f64 >= threshold;
                let n_sticky = eps.iter().filter(|&&i| sticky(i)).count();
                if n_sticky == 0 {
                    return;
                }
                if n_sticky < eps.len() {
                    let best = |want: bool| {
                        eps.iter().filter(|&&i| sticky(i) == want).map(|&i| ctx.inflight_tokens_of(i)).min().unwrap()
                    };
                    let (s, ns) = (best(true) as f64, best(false) as f64);
                    if max_ttft_penalty_ms > 0.0 && (s - ns) / peak_prefill_tps * 1000.0 > max_ttft_penalty_ms {
                        return;
                    }
                    if max_tokens_penalty > 0.0 && s - ns > max_tokens_penalty {
                        return;
                    }
                }
                eps.retain(|&i| sticky(i));
            }
        }
    }
}

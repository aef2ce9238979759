//! Scorers (spec §1.4). Each returns one score per endpoint of the filtered set, in order;
//! the scheduler clamps them to [0, 1] and adds them with absolute weights.

use super::CycleCtx;

#[derive(Clone, Debug, PartialEq)]
pub enum Scorer {
    /// `queue-scorer`: min-max over the filtered endpoints on the scraped waiting queue;
    /// all equal (including a single endpoint) → 1.0.
    Queue,
    /// `kv-cache-utilization-scorer`: 1 − scraped KV usage (absolute).
    KvUtilization,
    /// `running-requests-size-scorer`: min-max on the scraped running count.
    RunningRequests,
    /// `prefix-cache-scorer`: matched blocks / request blocks from the approximate index.
    Prefix,
    /// `precise-prefix-cache-scorer`: longest consecutive cached prefix from KV events,
    /// min-max over pods with a hit (≤ v0.8) or `min(1, blocks / prompt blocks)` (2026).
    PrecisePrefix { absolute: bool },
    /// `session-affinity-scorer`: 1.0 for the pod that served the session's last finished
    /// request (the `x-session-token` response header), 0 for the others.
    SessionAffinity,
    /// `token-load-scorer`: 1 − min(1, (in-flight tokens + this request's uncached tokens) / T).
    TokenLoad { threshold: f64 },
    /// `no-hit-lru-scorer`: warm request → 0.5 everywhere; cold → least recently used for
    /// cold requests first.
    NoHitLru { lru_size: usize },
    /// `load-aware-scorer`: 0.5 if the queue is empty, else 0.5·(1 − min(q, T)/T).
    LoadAware { threshold: f64 },
    /// `active-request-scorer` on the router's in-flight request counts.
    ActiveRequest { idle_threshold: u32, max_busy_score: f64 },
}

/// `(mx − v) / (mx − mn)`, or 1.0 when all values are equal.
pub fn min_max_inverted(values: impl Iterator<Item = f64> + Clone, out: &mut Vec<f64>) {
    let mn = values.clone().fold(f64::INFINITY, f64::min);
    let mx = values.clone().fold(f64::NEG_INFINITY, f64::max);
    out.extend(values.map(|v| if mx == mn { 1.0 } else { (mx - v) / (mx - mn) }));
}

impl Scorer {
    /// Scores `eps` (indices into `ctx.cands`) into `out` (cleared).
    pub fn score(&self, ctx: &CycleCtx, eps: &[usize], out: &mut Vec<f64>) {
        out.clear();
        if eps.is_empty() {
            return;
        }
        let c = ctx.cands;
        match self {
            Scorer::Queue => min_max_inverted(eps.iter().map(|&i| c[i].scraped.waiting as f64), out),
            Scorer::RunningRequests => min_max_inverted(eps.iter().map(|&i| c[i].scraped.running as f64), out),
            Scorer::KvUtilization => out.extend(eps.iter().map(|&i| 1.0 - c[i].scraped.kv_usage)),
            Scorer::Prefix => {
                let a = ctx.approx.as_ref().expect("prefix-cache-scorer runs with the approximate index");
                out.extend(eps.iter().map(|&i| if a.total == 0 { 0.0 } else { a.matched[i] as f64 / a.total as f64 }));
            }
            Scorer::PrecisePrefix { absolute } => {
                let p = ctx.precise.as_ref().expect("precise scorer runs with the precise index");
                if *absolute {
                    out.extend(
                        eps.iter().map(|&i| if p.total == 0 { 0.0 } else { (p.longest[i] / p.total as f64).min(1.0) }),
                    );
                } else {
                    let hits = eps.iter().map(|&i| p.longest[i]).filter(|&s| s > 0.0);
                    let mn = hits.clone().fold(f64::INFINITY, f64::min);
                    let mx = hits.fold(f64::NEG_INFINITY, f64::max);
                    out.extend(eps.iter().map(|&i| {
                        let s = p.longest[i];
                        if s <= 0.0 {
                            0.0
                        } else if mx == mn {
                            1.0
                        } else {
                            (s - mn) / (mx - mn)
                        }
                    }));
                }
            }
            Scorer::SessionAffinity => {
                let target = ctx.req.session.and_then(|s| ctx.sessions.get(&s).copied());
                out.extend(eps.iter().map(|&i| if Some(c[i].id) == target { 1.0 } else { 0.0 }));
            }
            Scorer::TokenLoad { threshold } => {
                out.extend(eps.iter().map(|&i| {
                    let tokens = ctx.inflight_tokens_of(i) + ctx.uncached_tokens(i);
                    1.0 - (tokens as f64 / threshold).min(1.0)
                }));
            }
            Scorer::NoHitLru { .. } => {
                if !ctx.cold {
                    out.extend(eps.iter().map(|_| 0.5));
                    return;
                }
                let n = eps.len();
                if n == 1 {
                    out.push(1.0);
                    return;
                }
                let pos = |i: usize| ctx.nohit_lru.iter().position(|r| *r == c[i].id);
                let never_used = eps.iter().filter(|&&i| pos(i).is_none()).count();
                let mut k = 0usize;
                for &i in eps {
                    let rank = match pos(i) {
                        None => {
                            k += 1;
                            k - 1
                        }
                        Some(p) => never_used + p,
                    };
                    out.push((1.0 - rank as f64 / (n - 1) as f64).max(0.0));
                }
            }
            Scorer::LoadAware { threshold } => out.extend(eps.iter().map(|&i| {
                let q = c[i].scraped.waiting as f64;
                if q == 0.0 { 0.5 } else { 0.5 * (1.0 - q.min(*threshold) / threshold) }
            })),
            Scorer::ActiveRequest { idle_threshold, max_busy_score } => {
                let max = eps.iter().map(|&i| c[i].in_flight).max().unwrap_or(0);
                out.extend(eps.iter().map(|&i| {
                    let n = c[i].in_flight;
                    if n <= *idle_threshold || max == 0 { 1.0 } else { (max - n) as f64 / max as f64 * max_busy_score }
                }));
            }
        }
    }
}

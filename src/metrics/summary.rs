//! Statistics and the run [`Summary`] (what `summary.json` holds).
//!
//! # The one percentile definition
//!
//! servesim uses **nearest rank** everywhere (MLPerf LoadGen style, no interpolation):
//! for `n` sorted values and `p` in `[0, 100]`, the p-th percentile is the value at 1-based
//! rank `ceil(p/100 × n)`, clamped to `[1, n]`. So p0 is the minimum, p100 the maximum, and
//! every reported percentile is a value that actually occurred.
//!
//! For weighted samples (pooled ITL, where one step duration stands for `w` identical gaps)
//! the same rule applies to the expanded multiset: the result is the smallest value whose
//! cumulative weight is ≥ `ceil(p/100 × W)` (clamped to `[1, W]`), `W` the total weight. This
//! equals the unweighted percentile of the array in which each value is repeated `w` times.
//!
//! `p/100 × n` is evaluated in `f64`; a product within 1e-9 (relative) of an integer counts as
//! that integer, so decimal percentiles such as 99.9 behave as in exact arithmetic.
//!
//! # Populations
//!
//! TTFT, TPOT, E2E and queue statistics are over **completed** requests only (a rejected,
//! failed or still-running request contributes no latency sample, although one that got a
//! first token has a TTFT in `requests.csv`). TPOT additionally needs `output_tokens > 1`:
//! TPOT = (last_token − first_token) / (output_tokens − 1), the vLLM bench definition. ITL is
//! the pooled gap distribution over all requests (simulated runs only). Throughputs count
//! completed requests and their tokens, divided by the simulated span.

use super::record::{Outcome, RequestRecord};
use super::recorder::{ItlSamples, Recorder};
use crate::catalog::Price;
use crate::scenario::raw::SloFile;
use crate::units::{NANOS_PER_SEC, SimDuration};
use serde::{Deserialize, Serialize};

/// 1-based nearest rank for percentile `p` (clamped to [0, 100]) of `n` ≥ 1 items.
pub fn nearest_rank(p: f64, n: u64) -> u64 {
    debug_assert!(n >= 1);
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    let x = p / 100.0 * n as f64;
    let r = x.round();
    let rank = if (x - r).abs() <= 1e-9 * r.max(1.0) { r } else { x.ceil() };
    (rank as u64).clamp(1, n)
}

/// Nearest-rank percentile of ascending `sorted` values; `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = nearest_rank(p, sorted.len() as u64);
    Some(sorted[(rank - 1) as usize])
}

/// The values at ascending 1-based `ranks` of `values` in `total_cmp` order, as a sort would
/// give them. Each selection leaves everything above its rank to its right, so the next one
/// searches only there. (`values` is reordered.)
fn select_ranks<const K: usize>(values: &mut [f64], ranks: [u64; K]) -> [f64; K] {
    let mut out = [0.0; K];
    let mut lo = 0usize;
    let mut last: Option<(usize, f64)> = None;
    for (o, &r) in out.iter_mut().zip(&ranks) {
        let k = r as usize - 1;
        debug_assert!(k < values.len() && last.is_none_or(|(j, _)| j <= k), "ranks ascend within 1..=n");
        if let Some((j, v)) = last
            && j == k
        {
            *o = v;
            continue;
        }
        let (_, v, _) = values[lo..].select_nth_unstable_by(k - lo, f64::total_cmp);
        *o = *v;
        last = Some((k, *o));
        lo = k + 1;
    }
    out
}

/// Weighted nearest-rank percentile of `(value, weight)` pairs ascending by value: the
/// smallest value whose cumulative weight reaches `ceil(p/100 × W)`. Zero weights are
/// skipped; `None` when the total weight is zero.
pub fn weighted_percentile<T: Copy>(sorted: &[(T, u64)], p: f64) -> Option<T> {
    let total: u64 = sorted.iter().map(|s| s.1).sum();
    if total == 0 {
        return None;
    }
    let need = nearest_rank(p, total);
    let mut cum = 0u64;
    for &(v, w) in sorted {
        cum += w;
        if w > 0 && cum >= need {
            return Some(v);
        }
    }
    unreachable!("cumulative weight reaches the total")
}

/// Summary statistics of one latency population, in seconds. All `None` for an empty set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub count: u64,
}

impl Stats {
    /// From unsorted values in seconds (NaNs must not occur).
    ///
    /// The mean sums in the given order; the percentiles are the nearest-rank values, found
    /// by selection (a full sort was ~6 % of a short run's instructions).
    pub fn from_secs(mut values: Vec<f64>) -> Stats {
        if values.is_empty() {
            return Stats::default();
        }
        let n = values.len() as u64;
        let mean = values.iter().sum::<f64>() / n as f64;
        let [p50, p90, p99, max] =
            select_ranks(&mut values, [nearest_rank(50.0, n), nearest_rank(90.0, n), nearest_rank(99.0, n), n]);
        Stats { mean: Some(mean), p50: Some(p50), p90: Some(p90), p99: Some(p99), max: Some(max), count: n }
    }

    /// From pooled ITL samples, by selection (equal to [`Stats::from_weighted_ns`] of
    /// their sorted pairs).
    pub fn from_itl(samples: &ItlSamples) -> Stats {
        let Some(q) = samples.percentiles([50.0, 90.0, 99.0]) else {
            return Stats::default();
        };
        let secs = |ns: u64| ns as f64 / NANOS_PER_SEC as f64;
        let [p50, p90, p99] = q.at;
        Stats {
            mean: Some(q.sum_ns as f64 / q.count as f64 / NANOS_PER_SEC as f64),
            p50: Some(secs(p50)),
            p90: Some(secs(p90)),
            p99: Some(secs(p99)),
            max: Some(secs(q.range.1)),
            count: q.count,
        }
    }

    /// From `(nanoseconds, weight)` pairs ascending by duration (pooled ITL).
    pub fn from_weighted_ns(sorted: &[(u64, u64)]) -> Stats {
        let total: u64 = sorted.iter().map(|s| s.1).sum();
        if total == 0 {
            return Stats::default();
        }
        let sum: u128 = sorted.iter().map(|&(d, w)| d as u128 * w as u128).sum();
        let secs = |ns: u64| ns as f64 / NANOS_PER_SEC as f64;
        let q = |p| weighted_percentile(sorted, p).map(secs);
        Stats {
            mean: Some(sum as f64 / total as f64 / NANOS_PER_SEC as f64),
            p50: q(50.0),
            p90: q(90.0),
            p99: q(99.0),
            max: sorted.iter().rev().find(|s| s.1 > 0).map(|s| secs(s.0)),
            count: total,
        }
    }
}

/// Price used for cost figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceInfo {
    pub usd_per_gpu_hour: f64,
    pub provider: String,
    /// When the price was observed (catalog date), if known.
    pub observed: Option<String>,
}

impl From<&Price> for PriceInfo {
    fn from(p: &Price) -> Self {
        PriceInfo {
            usd_per_gpu_hour: p.usd_per_gpu_hour,
            provider: p.provider.clone(),
            observed: if p.observed.is_empty() { None } else { Some(p.observed.clone()) },
        }
    }
}

/// What the engine (or live/import driver) knows about the run besides the records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMeta {
    pub scenario: String,
    pub seed: u64,
    /// Simulated span the report covers (run start to the last event, drain included).
    pub simulated: SimDuration,
    pub replicas: u32,
    pub tp: u32,
    /// GPUs held over the span (normally replicas × tp).
    pub gpu_count: u32,
    pub price: PriceInfo,
    pub slo: SloFile,
}

/// Counters of one replica at the end of the run (vLLM's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaTotals {
    /// `vllm:prefix_cache_queries`: prompt tokens looked up, per admission (re-admissions
    /// after preemption included).
    pub prefix_queries: u64,
    /// `vllm:prefix_cache_hits`.
    pub prefix_hits: u64,
    /// `vllm:num_preemptions`.
    pub preemptions: u64,
}

/// End-of-run counters filled by the engine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTotals {
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    pub preemptions: u64,
    /// Indexed by replica id.
    pub per_replica: Vec<ReplicaTotals>,
    /// GPU-seconds actually held by phase, when the engine measured them (simulated runs);
    /// otherwise `gpu_count × simulated`, all serving.
    pub gpu_seconds: Option<GpuSeconds>,
    /// Failed attempts that the client retried.
    pub retried: u64,
}

/// GPU-seconds by replica phase, as the engine measured them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuSeconds {
    pub sku: String,
    pub starting: f64,
    pub serving: f64,
    pub draining: f64,
    /// Node-level billing: GPU-seconds of whole nodes (≥ the replicas' sum).
    pub node: Option<f64>,
}

/// GPU-hours of one accelerator type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SkuHours {
    pub sku: String,
    pub total: f64,
    pub serving: f64,
    pub starting: f64,
    pub draining: f64,
    /// Billed node GPUs that held no replica (node-level billing; 0 otherwise).
    pub idle_node: f64,
    pub usd_per_gpu_hour: f64,
    pub cost_usd: f64,
}

/// Billed GPU-hours split by replica phase: `total = serving + starting + draining + idle_node`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "GpuHoursRepr")]
pub struct GpuHours {
    pub total: f64,
    /// Replicas Ready and taking requests.
    pub serving: f64,
    /// From the replica's request (node provisioning included) to Ready.
    pub starting: f64,
    /// From the start of a drain to termination.
    pub draining: f64,
    pub idle_node: f64,
    pub per_sku: Vec<SkuHours>,
}

/// `gpu_hours` as older summaries wrote it (a bare number) or as an object.
#[derive(Deserialize)]
#[serde(untagged)]
enum GpuHoursRepr {
    Total(f64),
    Full {
        total: f64,
        serving: f64,
        starting: f64,
        draining: f64,
        #[serde(default)]
        idle_node: f64,
        #[serde(default)]
        per_sku: Vec<SkuHours>,
    },
}

impl From<GpuHoursRepr> for GpuHours {
    fn from(r: GpuHoursRepr) -> Self {
        match r {
            GpuHoursRepr::Total(total) => GpuHours { total, serving: total, ..Default::default() },
            GpuHoursRepr::Full { total, serving, starting, draining, idle_node, per_sku } => {
                GpuHours { total, serving, starting, draining, idle_node, per_sku }
            }
        }
    }
}

impl RunTotals {
    /// Run totals as the sums of per-replica counters.
    pub fn from_replicas(per_replica: Vec<ReplicaTotals>) -> Self {
        RunTotals {
            prefix_queries: per_replica.iter().map(|r| r.prefix_queries).sum(),
            prefix_hits: per_replica.iter().map(|r| r.prefix_hits).sum(),
            preemptions: per_replica.iter().map(|r| r.preemptions).sum(),
            per_replica,
            gpu_seconds: None,
            retried: 0,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// All records (every outcome).
    pub submitted: u64,
    pub completed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// Failed attempts the client retried (each retried request is also counted once above,
    /// by its final outcome): attempts = submitted + retried.
    #[serde(default)]
    pub retried: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub requests_per_s: Option<f64>,
    pub input_tokens_per_s: Option<f64>,
    pub output_tokens_per_s: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSummary {
    pub replica: u32,
    /// Records routed to this replica (every outcome).
    pub requests: u64,
    pub completed: u64,
    /// Output tokens of completed requests.
    pub output_tokens: u64,
    pub prefix_hit_rate: Option<f64>,
    pub preemptions: u64,
    /// Σ step durations / simulated span (`None` when no steps were observed at all).
    pub busy_fraction: Option<f64>,
    /// Mean of `kv_usage` over this replica's ticks.
    pub mean_kv_usage: Option<f64>,
    /// Max `waiting` over this replica's ticks.
    pub max_waiting: Option<u32>,
}

/// One SLO check: `passed` iff `actual ≤ target`; `margin = target − actual` (positive is
/// headroom). A check whose actual value is undefined (no samples) fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloCheck {
    pub metric: String,
    pub target: f64,
    pub actual: Option<f64>,
    pub passed: bool,
    pub margin: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SloReport {
    /// All checks passed (true when there are none).
    pub passed: bool,
    pub checks: Vec<SloCheck>,
}

/// The run summary (`summary.json`). Field order is the serialization order and is stable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub servesim_version: String,
    pub simulated_seconds: f64,
    pub requests: RequestCounts,
    pub ttft_s: Stats,
    pub tpot_s: Stats,
    pub itl_s: Stats,
    pub e2e_s: Stats,
    pub queue_s: Stats,
    pub throughput: Throughput,
    /// Σhits / Σqueries in tokens, as vLLM counts them (see [`Summary::build`]).
    pub prefix_hit_rate: Option<f64>,
    pub preemptions: u64,
    pub per_replica: Vec<ReplicaSummary>,
    pub gpu_hours: GpuHours,
    pub cost_usd: f64,
    pub cost_per_million_output_tokens: Option<f64>,
    pub price: PriceInfo,
    pub slo: SloReport,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    if den == 0 { None } else { Some(num as f64 / den as f64) }
}

/// Σcached / Σinput over records that were scheduled (fallback hit rate for traces without
/// engine counters).
fn record_hit_rate<'a>(recs: impl Iterator<Item = &'a RequestRecord>) -> Option<f64> {
    let (mut cached, mut input) = (0u64, 0u64);
    for r in recs.filter(|r| r.scheduled.is_some()) {
        cached += r.cached_tokens as u64;
        input += r.input_tokens as u64;
    }
    ratio(cached, input)
}

impl Summary {
    /// Builds the summary. `recorder` is mutable only to sort its ITL samples in place.
    ///
    /// Prefix hit rate comes from the engine's counters in `totals` (vLLM semantics: per
    /// admission, re-admissions after preemption included). When those counters are zero
    /// (imported or live traces) it falls back to Σcached_tokens / Σinput_tokens over records
    /// that were scheduled; the same rule applies per replica.
    pub fn build(meta: &RunMeta, totals: &RunTotals, recorder: &mut Recorder) -> Summary {
        let records = &recorder.records;
        let sim_s = meta.simulated.as_secs_f64();

        let mut counts =
            RequestCounts { submitted: records.len() as u64, retried: totals.retried, ..Default::default() };
        let (mut ttft, mut tpot, mut e2e, mut queue) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut in_tok, mut out_tok) = (0u64, 0u64);
        for r in records {
            match r.outcome {
                Outcome::Completed => counts.completed += 1,
                Outcome::Rejected => counts.rejected += 1,
                Outcome::Failed => counts.failed += 1,
                Outcome::InFlight => counts.in_flight += 1,
            }
            if r.outcome != Outcome::Completed {
                continue;
            }
            in_tok += r.input_tokens as u64;
            out_tok += r.output_tokens as u64;
            ttft.extend(r.ttft_s());
            tpot.extend(r.tpot_s());
            e2e.extend(r.e2e_s());
            queue.extend(r.queue_s());
        }
        let per_s = |x: u64| if sim_s > 0.0 { Some(x as f64 / sim_s) } else { None };
        let throughput = Throughput {
            requests_per_s: per_s(counts.completed),
            input_tokens_per_s: per_s(in_tok),
            output_tokens_per_s: per_s(out_tok),
        };

        let prefix_hit_rate = if totals.prefix_queries > 0 {
            ratio(totals.prefix_hits, totals.prefix_queries)
        } else {
            record_hit_rate(records.iter())
        };

        let per_replica = per_replica_summaries(meta, totals, recorder);

        let gs = totals
            .gpu_seconds
            .clone()
            .unwrap_or(GpuSeconds { serving: meta.gpu_count as f64 * sim_s, ..Default::default() });
        let h = |x: f64| x / 3600.0;
        let replica_s = gs.starting + gs.serving + gs.draining;
        let idle_s = gs.node.map_or(0.0, |n| (n - replica_s).max(0.0));
        let total = h(replica_s + idle_s);
        let cost_usd = total * meta.price.usd_per_gpu_hour;
        let sku = SkuHours {
            sku: gs.sku.clone(),
            total,
            serving: h(gs.serving),
            starting: h(gs.starting),
            draining: h(gs.draining),
            idle_node: h(idle_s),
            usd_per_gpu_hour: meta.price.usd_per_gpu_hour,
            cost_usd,
        };
        let gpu_hours = GpuHours {
            total,
            serving: sku.serving,
            starting: sku.starting,
            draining: sku.draining,
            idle_node: sku.idle_node,
            per_sku: vec![sku],
        };
        let cost_per_million_output_tokens = if out_tok > 0 { Some(cost_usd / (out_tok as f64 / 1e6)) } else { None };

        let ttft_s = Stats::from_secs(ttft);
        let tpot_s = Stats::from_secs(tpot);
        let e2e_s = Stats::from_secs(e2e);
        let error_rate = ratio(counts.rejected + counts.failed, counts.submitted);
        // The verdict uses the SLO population (unfinished requests count as infinitely slow),
        // the same one the planner judges plan points on; the descriptive stats above stay
        // over completed requests. Without in-flight requests the two populations are equal.
        let slo = if counts.in_flight == 0 {
            evaluate_slo(&meta.slo, &ttft_s, &tpot_s, &e2e_s, error_rate)
        } else {
            evaluate_records_slo(&meta.slo, records.iter())
        };

        Summary {
            scenario: meta.scenario.clone(),
            seed: meta.seed,
            servesim_version: env!("CARGO_PKG_VERSION").to_string(),
            simulated_seconds: sim_s,
            requests: counts,
            ttft_s,
            tpot_s,
            itl_s: Stats::from_itl(&recorder.itl),
            e2e_s,
            queue_s: Stats::from_secs(queue),
            throughput,
            prefix_hit_rate,
            preemptions: totals.preemptions,
            per_replica,
            gpu_hours,
            cost_usd,
            cost_per_million_output_tokens,
            price: meta.price.clone(),
            slo,
        }
    }
}

fn per_replica_summaries(meta: &RunMeta, totals: &RunTotals, recorder: &Recorder) -> Vec<ReplicaSummary> {
    let records = &recorder.records;
    let mut n = (meta.replicas as usize).max(totals.per_replica.len()).max(recorder.steps.len());
    for r in records.iter().filter_map(|r| r.replica) {
        n = n.max(r.0 as usize + 1);
    }
    for t in &recorder.ticks {
        n = n.max(t.sample.replica.0 as usize + 1);
    }
    let mut out: Vec<ReplicaSummary> =
        (0..n).map(|i| ReplicaSummary { replica: i as u32, ..Default::default() }).collect();
    for r in records {
        let Some(id) = r.replica else { continue };
        let s = &mut out[id.0 as usize];
        s.requests += 1;
        if r.outcome == Outcome::Completed {
            s.completed += 1;
            s.output_tokens += r.output_tokens as u64;
        }
    }
    let sim_ns = meta.simulated.as_nanos();
    let mut kv_sum = vec![(0.0f64, 0u64); n];
    for t in &recorder.ticks {
        let i = t.sample.replica.0 as usize;
        kv_sum[i].0 += t.sample.kv_usage;
        kv_sum[i].1 += 1;
        let w = out[i].max_waiting.get_or_insert(0);
        *w = (*w).max(t.sample.waiting);
    }
    for (i, s) in out.iter_mut().enumerate() {
        let t = totals.per_replica.get(i).copied().unwrap_or_default();
        s.preemptions = t.preemptions;
        s.prefix_hit_rate = if t.prefix_queries > 0 {
            ratio(t.prefix_hits, t.prefix_queries)
        } else {
            record_hit_rate(records.iter().filter(|r| r.replica.map(|x| x.0 as usize) == Some(i)))
        };
        if !recorder.steps.is_empty() && sim_ns > 0 {
            let busy = recorder.steps.get(i).map_or(0, |st| st.busy_ns);
            s.busy_fraction = Some(busy as f64 / sim_ns as f64);
        }
        if kv_sum[i].1 > 0 {
            s.mean_kv_usage = Some(kv_sum[i].0 / kv_sum[i].1 as f64);
        }
    }
    out
}

/// The populations SLOs are judged on, over a set of requests.
///
/// One definition for every verdict (`run`, `compare`, `check`, live runs and the planner):
/// - TTFT: completed requests, plus requests still in flight when the run stopped, at their
///   TTFT if they got a first token and as +∞ otherwise;
/// - E2E: completed requests, plus in-flight ones as +∞;
/// - TPOT: completed requests only (an unfinished request has no defined TPOT);
/// - error rate: (rejected + failed) / all requests;
/// - percentiles: nearest rank ([`percentile`]).
///
/// Counting unfinished requests as infinitely slow means a configuration cannot pass by
/// leaving its slowest requests unfinished; with no request in flight the populations equal
/// the completed-only statistics of [`Summary`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SloPopulation {
    pub ttft: Stats,
    pub tpot: Stats,
    pub e2e: Stats,
    pub error_rate: Option<f64>,
    pub requests: u64,
}

impl SloPopulation {
    pub fn of<'a>(records: impl IntoIterator<Item = &'a RequestRecord>) -> SloPopulation {
        let (mut ttft, mut tpot, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
        let (mut n, mut errors) = (0u64, 0u64);
        for r in records {
            n += 1;
            match r.outcome {
                Outcome::Completed => {
                    ttft.extend(r.ttft_s());
                    tpot.extend(r.tpot_s());
                    e2e.extend(r.e2e_s());
                }
                Outcome::Rejected | Outcome::Failed => errors += 1,
                Outcome::InFlight => {
                    ttft.push(r.ttft_s().unwrap_or(f64::INFINITY));
                    e2e.push(f64::INFINITY);
                }
            }
        }
        SloPopulation {
            ttft: Stats::from_secs(ttft),
            tpot: Stats::from_secs(tpot),
            e2e: Stats::from_secs(e2e),
            error_rate: ratio(errors, n),
            requests: n,
        }
    }

    pub fn evaluate(&self, slo: &SloFile) -> SloReport {
        evaluate_slo(slo, &self.ttft, &self.tpot, &self.e2e, self.error_rate)
    }
}

/// [`SloPopulation::of`] then [`evaluate_slo`].
pub fn evaluate_records_slo<'a>(slo: &SloFile, records: impl IntoIterator<Item = &'a RequestRecord>) -> SloReport {
    SloPopulation::of(records).evaluate(slo)
}

/// Evaluates the SLO file against the statistics, in a fixed check order.
pub fn evaluate_slo(slo: &SloFile, ttft: &Stats, tpot: &Stats, e2e: &Stats, error_rate: Option<f64>) -> SloReport {
    let candidates: [(&str, Option<f64>, Option<f64>); 9] = [
        ("ttft_p50_s", slo.ttft_p50_s, ttft.p50),
        ("ttft_p90_s", slo.ttft_p90_s, ttft.p90),
        ("ttft_p99_s", slo.ttft_p99_s, ttft.p99),
        ("tpot_p50_s", slo.tpot_p50_s, tpot.p50),
        ("tpot_p90_s", slo.tpot_p90_s, tpot.p90),
        ("tpot_p99_s", slo.tpot_p99_s, tpot.p99),
        ("e2e_p90_s", slo.e2e_p90_s, e2e.p90),
        ("e2e_p99_s", slo.e2e_p99_s, e2e.p99),
        ("error_rate", slo.max_error_rate, error_rate),
    ];
    let checks: Vec<SloCheck> = candidates
        .into_iter()
        .filter_map(|(metric, target, actual)| {
            let target = target?;
            let passed = actual.is_some_and(|a| a <= target);
            Some(SloCheck { metric: metric.to_string(), target, actual, passed, margin: actual.map(|a| target - a) })
        })
        .collect();
    SloReport { passed: checks.iter().all(|c| c.passed), checks }
}

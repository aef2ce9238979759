//! The [`Recorder`]: the observer that keeps the raw rows every report is computed from.
//!
//! Hot-path cost is a `Vec::push` per event. Memory for a day-long run (~1M requests, ~10M
//! steps): request records ≈ 100 B each, ITL samples 8 B per engine step up to 2^24 steps
//! (128 MiB; beyond that they are sorted and merged, 16 B per distinct duration), tick rows
//! ≈ 90 B per replica per tick.

use super::record::RequestRecord;
use super::{FleetSample, Observer, ReplicaSample};
use crate::step_time::BatchShape;
use crate::units::{ReplicaId, SimDuration, SimTime};

/// One row of `timeseries.csv` before deltas: the tick instant and one replica's sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickRow {
    pub time: SimTime,
    pub sample: ReplicaSample,
}

/// Per-replica step accounting kept by the recorder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSteps {
    /// Engine iterations executed.
    pub steps: u64,
    /// Σ step durations (time the replica was computing), ns.
    pub busy_ns: u64,
}

/// Pooled inter-token-latency samples: exact durations (ns) with integer weights.
///
/// Pushing is O(1): a sample is packed into one word (duration above [`WEIGHT_BITS`] bits of
/// weight) and appended; a day has one per engine step. The statistics come from the unsorted
/// samples by selection ([`ItlSamples::percentiles`]): two linear passes, where sorting them
/// had been ~11 % of the coding-assistant day's instructions. Only past [`ITL_KEEP`] unsorted
/// samples (128 MiB) are they radix-sorted, in chunks of [`ITL_CHUNK`], and merged into a
/// sorted part with equal durations summed, so memory stays bounded for runs of any length
/// (by [`ITL_KEEP`] words plus twice the number of distinct durations) and nothing is rounded.
#[derive(Clone, Debug)]
pub struct ItlSamples {
    /// Sorted by duration, durations distinct.
    sorted: Vec<(u64, u64)>,
    /// Pushed since the last compaction, in push order, packed.
    tail: Vec<u64>,
    /// Pushed since the last compaction and too large to pack (durations over 18 minutes).
    wide: Vec<(u64, u64)>,
    /// Unsorted samples that trigger a compaction.
    keep: usize,
    /// Samples radix-sorted at a time when compacting.
    chunk_len: usize,
    /// Smallest and largest duration pushed (`lo > hi`: none yet).
    lo: u64,
    hi: u64,
    scratch: Vec<(u64, u64)>,
    chunk: Vec<u64>,
    scratch_chunk: Vec<u64>,
}

/// Unsorted samples kept before they are sorted into the sorted part: 2^24 (128 MiB) holds
/// the engine steps of the coding-assistant day (~13 M) and of `servesim bench`'s million-request
/// minimal run (~15 M).
const ITL_KEEP: usize = 1 << 24;
/// Samples radix-sorted at a time when compacting (16 MiB and its scratch buffer).
const ITL_CHUNK: usize = 1 << 21;
const WEIGHT_BITS: u32 = 24;
const WEIGHT_MASK: u64 = (1 << WEIGHT_BITS) - 1;
/// Buckets of the selection's histogram (512 KiB of counts: it stays in the L2 cache).
const SELECT_BITS: u32 = 16;
const SELECT_BUCKETS: usize = 1 << SELECT_BITS;

/// What [`ItlSamples::percentiles`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItlPercentiles<const K: usize> {
    /// Σ weight (number of gaps).
    pub count: u64,
    /// Σ duration × weight, ns.
    pub sum_ns: u128,
    /// Smallest and largest duration, ns.
    pub range: (u64, u64),
    /// The duration at each requested percentile, ns.
    pub at: [u64; K],
}

/// A zeroed bucket array made on the heap (a `Box::new` of an array may build it on the
/// stack first: 512 KiB).
fn zeroed_buckets<T: Copy + Default>() -> Box<[T; SELECT_BUCKETS]> {
    vec![T::default(); SELECT_BUCKETS].into_boxed_slice().try_into().unwrap_or_else(|_| unreachable!("length"))
}

/// Weights per bucket of `(duration − smallest) >> shift`, and the totals.
struct Histogram {
    counts: Box<[u64; SELECT_BUCKETS]>,
    total: u64,
    sum: u128,
    shift: u32,
}

impl Default for ItlSamples {
    fn default() -> Self {
        Self::new()
    }
}

impl ItlSamples {
    pub fn new() -> Self {
        Self::with_limits(ITL_KEEP, ITL_CHUNK)
    }

    /// Compacting whenever `keep` samples are unsorted, `chunk` at a time (tests use small
    /// values).
    pub fn with_limits(keep: usize, chunk: usize) -> Self {
        ItlSamples {
            chunk_len: chunk.max(1),
            lo: u64::MAX,
            hi: 0,
            sorted: Vec::new(),
            tail: Vec::new(),
            wide: Vec::new(),
            keep: keep.max(1),
            scratch: Vec::new(),
            chunk: Vec::new(),
            scratch_chunk: Vec::new(),
        }
    }

    /// Adds `weight` gaps of `duration_ns` each. Zero weights are ignored.
    #[inline]
    pub fn push(&mut self, duration_ns: u64, weight: u64) {
        if weight == 0 {
            return;
        }
        if let Some(last) = self.tail.last_mut()
            && *last >> WEIGHT_BITS == duration_ns
            && (*last & WEIGHT_MASK) + weight <= WEIGHT_MASK
        {
            *last += weight;
            return;
        }
        self.lo = self.lo.min(duration_ns);
        self.hi = self.hi.max(duration_ns);
        if duration_ns >> (64 - WEIGHT_BITS) == 0 && weight <= WEIGHT_MASK {
            self.tail.push(duration_ns << WEIGHT_BITS | weight);
        } else {
            self.wide.push((duration_ns, weight));
        }
        if self.tail.len() + self.wide.len() >= self.keep {
            self.compact();
        }
    }

    /// Sorts the unsorted samples into the sorted part, a chunk at a time: each chunk is
    /// radix-sorted and merged with the sorted part in one linear pass.
    pub fn compact(&mut self) {
        if !self.wide.is_empty() {
            // Rare: sorted by a comparison sort and merged on their own.
            let mut wide = std::mem::take(&mut self.wide);
            wide.sort_unstable_by_key(|s| s.0);
            self.merge(wide.iter().copied());
            wide.clear();
            self.wide = wide;
        }
        let unpack = |x: u64| (x >> WEIGHT_BITS, x & WEIGHT_MASK);
        let mut start = 0;
        while start < self.tail.len() {
            let end = (start + self.chunk_len).min(self.tail.len());
            let mut chunk = std::mem::take(&mut self.chunk);
            chunk.clear();
            chunk.extend_from_slice(&self.tail[start..end]);
            super::radix::sort_by_u64_key(&mut chunk, &mut self.scratch_chunk, |&x| x >> WEIGHT_BITS);
            self.merge(chunk.iter().map(|&x| unpack(x)));
            self.chunk = chunk;
            start = end;
        }
        self.tail.clear();
    }

    /// Merges ascending `(duration, weight)` pairs into the sorted part.
    fn merge(&mut self, new: impl Iterator<Item = (u64, u64)>) {
        let out = &mut self.scratch;
        out.clear();
        out.reserve(self.sorted.len() + new.size_hint().0);
        let mut add = |x: (u64, u64)| match out.last_mut() {
            Some(last) if last.0 == x.0 => last.1 += x.1,
            _ => out.push(x),
        };
        let a = &self.sorted;
        let mut i = 0;
        for x in new {
            while i < a.len() && a[i].0 <= x.0 {
                add(a[i]);
                i += 1;
            }
            add(x);
        }
        a[i..].iter().for_each(|&x| add(x));
        std::mem::swap(&mut self.sorted, &mut self.scratch);
    }

    /// Sorted, merged `(duration_ns, weight)` pairs (compacts first).
    pub fn sorted(&mut self) -> &[(u64, u64)] {
        self.compact();
        &self.sorted
    }

    /// Calls `f(duration, weight)` for every sample, in no particular order (one tight loop
    /// per part: a chained iterator cost twice the instructions).
    #[inline]
    fn for_each(&self, mut f: impl FnMut(u64, u64)) {
        self.sorted.iter().chain(&self.wide).for_each(|&(d, w)| f(d, w));
        for &x in &self.tail {
            f(x >> WEIGHT_BITS, x & WEIGHT_MASK);
        }
    }

    /// Total weight (number of gaps).
    pub fn total_weight(&self) -> u64 {
        let mut total = 0;
        self.for_each(|_, w| total += w);
        total
    }

    /// Smallest and largest duration pushed (`None` when there are none).
    pub fn range(&self) -> Option<(u64, u64)> {
        (self.lo <= self.hi).then_some((self.lo, self.hi))
    }

    /// The totals, range and weighted nearest-rank percentiles `pcts` (as
    /// [`crate::metrics::summary::weighted_percentile`] of [`Self::sorted`] gives them); `None`
    /// when there are no samples.
    pub fn percentiles<const K: usize>(&self, pcts: [f64; K]) -> Option<ItlPercentiles<K>> {
        let range = self.range()?;
        let h = self.histogram(range);
        let ranks = pcts.map(|p| super::summary::nearest_rank(p, h.total));
        Some(ItlPercentiles { count: h.total, sum_ns: h.sum, range, at: self.select(&h, range.0, ranks) })
    }

    /// For each weighted rank `r` (1-based, ascending, each at most the total weight), the
    /// smallest duration whose cumulative weight reaches `r`: what a scan of [`Self::sorted`]
    /// would give, without sorting.
    pub fn durations_at_ranks<const K: usize>(&self, ranks: [u64; K]) -> [u64; K] {
        let range = self.range().expect("ranks of an empty population");
        self.select(&self.histogram(range), range.0, ranks)
    }

    /// One pass: weights over [`SELECT_BITS`]-bit buckets of the duration range, and the
    /// totals.
    fn histogram(&self, (lo, hi): (u64, u64)) -> Histogram {
        let span_bits = 64 - (hi - lo).leading_zeros();
        let shift = span_bits.saturating_sub(SELECT_BITS);
        let mut h = Histogram { counts: zeroed_buckets(), total: 0, sum: 0, shift };
        self.for_each(|d, w| {
            h.counts[((d - lo) >> shift) as usize & (SELECT_BUCKETS - 1)] += w;
            h.total += w;
            h.sum += d as u128 * w as u128;
        });
        h
    }

    /// A second pass gathers the samples of the (at most `K`) buckets the ranks fall in, and
    /// only those are sorted.
    fn select<const K: usize>(&self, h: &Histogram, lo: u64, ranks: [u64; K]) -> [u64; K] {
        let bucket = |d: u64| ((d - lo) >> h.shift) as usize & (SELECT_BUCKETS - 1);
        let hist = &h.counts;
        // The bucket each rank falls in, and the weight below that bucket.
        let mut at = [(0usize, 0u64); K];
        let (mut b, mut below) = (0usize, 0u64);
        for (k, &r) in ranks.iter().enumerate() {
            debug_assert!(k == 0 || ranks[k - 1] <= r, "ranks ascend");
            debug_assert!(r <= h.total, "rank {r} beyond the total weight {}", h.total);
            while below + hist[b] < r {
                below += hist[b];
                b += 1;
            }
            at[k] = (b, below);
        }
        // Gather the samples of those buckets (slot 0 of `which`: not wanted).
        let mut which: Box<[u8; SELECT_BUCKETS]> = zeroed_buckets();
        let mut gathered: Vec<Vec<(u64, u64)>> = Vec::new();
        for &(b, _) in &at {
            if which[b] == 0 {
                gathered.push(Vec::with_capacity(hist[b].min(1 << 20) as usize));
                which[b] = gathered.len() as u8;
            }
        }
        self.for_each(|d, w| {
            let g = which[bucket(d)];
            if g != 0 {
                gathered[g as usize - 1].push((d, w));
            }
        });
        for g in gathered.iter_mut() {
            g.sort_unstable_by_key(|s| s.0);
        }
        let mut out = [0u64; K];
        for (k, &r) in ranks.iter().enumerate() {
            let (b, below) = at[k];
            let mut cum = below;
            let g = &gathered[which[b] as usize - 1];
            out[k] = g
                .iter()
                .find(|&&(_, w)| {
                    cum += w;
                    cum >= r
                })
                .expect("the bucket's weight reaches the rank")
                .0;
        }
        out
    }
}

/// Keeps every request record, the pooled ITL samples, per-tick replica samples and
/// per-replica step counts.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    pub records: Vec<RequestRecord>,
    pub itl: ItlSamples,
    pub ticks: Vec<TickRow>,
    /// Indexed by replica id.
    pub steps: Vec<ReplicaSteps>,
    /// One per tick when the engine reports its fleet (simulated runs).
    pub fleet: Vec<FleetSample>,
    /// Lifecycle phase of each row of `ticks` (empty when `fleet` is).
    pub phases: Vec<&'static str>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder { itl: ItlSamples::new(), ..Default::default() }
    }

    /// A recorder holding imported or live records (no steps, ticks or ITL samples).
    pub fn from_records(records: Vec<RequestRecord>) -> Self {
        Recorder { records, ..Recorder::new() }
    }

    fn replica_steps(&mut self, replica: ReplicaId) -> &mut ReplicaSteps {
        let i = replica.0 as usize;
        if i >= self.steps.len() {
            self.steps.resize(i + 1, ReplicaSteps::default());
        }
        &mut self.steps[i]
    }
}

impl Observer for Recorder {
    #[inline]
    fn on_steps(
        &mut self,
        _now: SimTime,
        replica: ReplicaId,
        _first: &BatchShape,
        durations: &[SimDuration],
        itl_weight: u32,
    ) {
        let mut busy = 0u64;
        for d in durations {
            busy = busy.saturating_add(d.0);
            self.itl.push(d.0, itl_weight as u64);
        }
        let s = self.replica_steps(replica);
        s.steps += durations.len() as u64;
        s.busy_ns = s.busy_ns.saturating_add(busy);
    }

    #[inline]
    fn on_itl_gap(&mut self, gap: SimDuration) {
        self.itl.push(gap.0, 1);
    }

    #[inline]
    fn on_request_done(&mut self, rec: &RequestRecord) {
        self.records.push(rec.clone());
    }

    fn on_tick(&mut self, now: SimTime, samples: &[ReplicaSample]) {
        self.ticks.extend(samples.iter().map(|&sample| TickRow { time: now, sample }));
    }

    fn on_fleet_tick(&mut self, fleet: &FleetSample, phases: &[&'static str]) {
        self.fleet.push(*fleet);
        self.phases.extend_from_slice(phases);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: `(duration, weight)` pairs sorted by duration, equal durations summed.
    fn merged(all: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut want: std::collections::BTreeMap<u64, u64> = Default::default();
        for &(d, w) in all {
            *want.entry(d).or_default() += w;
        }
        want.into_iter().collect()
    }

    #[test]
    fn itl_samples_merge_exactly() {
        let mut s = ItlSamples::new();
        s.push(5, 2);
        s.push(5, 1);
        s.push(3, 4);
        s.push(5, 1);
        s.push(7, 0);
        assert_eq!(s.total_weight(), 8);
        assert_eq!(s.sorted(), &[(3, 4), (5, 4)]);
    }

    #[test]
    fn compacting_in_stages_equals_one_sort() {
        // Pushes interleaved with compactions (sorted part + new tail merged) give the same
        // pairs as sorting everything once.
        let mut s = ItlSamples::new();
        let mut all: Vec<(u64, u64)> = Vec::new();
        let mut x = 12345u64;
        for k in 0..5000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (d, w) = ((x >> 33) % 700, 1 + (x >> 20) % 5);
            s.push(d, w);
            all.push((d, w));
            if k % 777 == 0 {
                s.compact();
            }
        }
        let want = merged(&all);
        assert_eq!(want.len(), 699, "distinct durations drawn");
        assert_eq!(s.sorted(), &want[..]);
        assert_eq!(s.total_weight(), want.iter().map(|p| p.1).sum::<u64>());
    }

    #[test]
    fn compactions_by_count_and_in_chunks_equal_one_sort() {
        // Compactions triggered every 700 unsorted samples, each sorting 128 at a time, wide
        // samples among them: the same pairs as sorting everything once.
        let mut s = ItlSamples::with_limits(700, 128);
        let mut all: Vec<(u64, u64)> = Vec::new();
        let mut x = 4242u64;
        for k in 0..5000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let d = if k % 97 == 0 { (1 << 41) + (x >> 62) } else { (x >> 33) % 900 };
            let w = 1 + (x >> 20) % 4;
            s.push(d, w);
            all.push((d, w));
            if k == 2100 {
                assert!(s.tail.len() < 700 && s.sorted.len() > 600, "compacted by count");
            }
        }
        let want = merged(&all);
        assert_eq!(s.total_weight(), want.iter().map(|p| p.1).sum::<u64>());
        assert_eq!(s.sorted(), &want[..]);
    }

    #[test]
    fn samples_too_large_to_pack_merge_exactly() {
        // Durations beyond the packed range (over 18 minutes) and weights beyond 24 bits go
        // their own way; equal durations from both ways are still summed.
        let mut s = ItlSamples::new();
        let mut all: Vec<(u64, u64)> = Vec::new();
        let mut x = 77u64;
        for k in 0..3000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let d = match k % 5 {
                0 => (1 << 40) + (x >> 60),
                _ => (x >> 33) % 50,
            };
            let w = if k % 7 == 0 { (1 << 24) + (x >> 50) } else { 1 + (x >> 20) % 3 };
            s.push(d, w);
            all.push((d, w));
            if k % 1000 == 999 {
                s.compact();
            }
        }
        // Merging into the last packed sample stops at the weight limit.
        s.push(3, (1 << 24) - 2);
        s.push(3, 5);
        all.extend([(3, (1 << 24) - 2), (3, 5)]);
        let want = merged(&all);
        assert_eq!(s.total_weight(), want.iter().map(|p| p.1).sum::<u64>());
        assert_eq!(s.sorted(), &want[..]);
        assert!(want.len() > 60 && want.iter().any(|p| p.0 >= 1 << 40));
    }

    #[test]
    fn recorder_counts_steps_and_itl() {
        let mut r = Recorder::new();
        let b = BatchShape::default();
        r.on_steps(SimTime(0), ReplicaId(1), &b, &[SimDuration(10), SimDuration(12)], 3);
        r.on_itl_gap(SimDuration(40));
        assert_eq!(r.steps.len(), 2);
        assert_eq!(r.steps[1], ReplicaSteps { steps: 2, busy_ns: 22 });
        assert_eq!(r.itl.sorted(), &[(10, 3), (12, 3), (40, 1)]);
    }
}

//! The [`Recorder`]: the observer that keeps the raw rows every report is computed from.
//!
//! Hot-path cost is a `Vec::push` per event (plus a rare amortised compaction of the ITL
//! samples). Memory for a day-long run (~1M requests, ~10M steps): request records ≈ 100 B
//! each, ITL samples 16 B per distinct-duration step (exact durations are merged, so the ITL
//! store shrinks to the number of distinct step durations), tick rows ≈ 90 B per replica per tick.

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
/// Pushing is O(1); when the new samples outnumber the sorted part (and [`ITL_MIN_TAIL`]), they
/// are radix-sorted and merged into the sorted part, equal durations summed, so memory is
/// bounded by twice the number of distinct durations plus [`ITL_MIN_TAIL`] words, and no
/// precision is lost. New samples are packed into one word (duration above [`WEIGHT_BITS`]
/// bits of weight): a day has one per engine step, and the sort moves half the bytes.
#[derive(Clone, Debug, Default)]
pub struct ItlSamples {
    /// Sorted by duration, durations distinct.
    sorted: Vec<(u64, u64)>,
    /// Pushed since the last compaction, in push order, packed.
    tail: Vec<u64>,
    /// Pushed since the last compaction and too large to pack (durations over 18 minutes).
    wide: Vec<(u64, u64)>,
    compact_at: usize,
    scratch: Vec<(u64, u64)>,
    scratch_tail: Vec<u64>,
}

/// Samples pushed at least between compactions. Each compaction copies the whole sorted part
/// (~0.8 M distinct durations in the coding-assistant day): at 1 M that copying was as much
/// work as the sorting; at 2 M, 16 MiB more memory, it is half, and the day has ~6.5 M fewer
/// last-level cache misses (cachegrind, 32 MiB).
const ITL_MIN_TAIL: usize = 1 << 21;
const WEIGHT_BITS: u32 = 24;
const WEIGHT_MASK: u64 = (1 << WEIGHT_BITS) - 1;

impl ItlSamples {
    pub fn new() -> Self {
        ItlSamples { compact_at: ITL_MIN_TAIL, ..Default::default() }
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
        if duration_ns >> (64 - WEIGHT_BITS) == 0 && weight <= WEIGHT_MASK {
            self.tail.push(duration_ns << WEIGHT_BITS | weight);
        } else {
            self.wide.push((duration_ns, weight));
        }
        if self.sorted.len() + self.tail.len() + self.wide.len() >= self.compact_at.max(ITL_MIN_TAIL) {
            self.compact();
            self.compact_at = self.sorted.len() + self.sorted.len().max(ITL_MIN_TAIL);
        }
    }

    /// Sorts the samples pushed since the last compaction and merges them with the sorted
    /// part in one linear pass (a long run compacts a few dozen times, and re-sorting the
    /// sorted part dominated).
    pub fn compact(&mut self) {
        if self.tail.is_empty() && self.wide.is_empty() {
            return;
        }
        super::radix::sort_by_u64_key(&mut self.tail, &mut self.scratch_tail, |&x| x >> WEIGHT_BITS);
        let unpack = |x: u64| (x >> WEIGHT_BITS, x & WEIGHT_MASK);
        if !self.wide.is_empty() {
            // Rare: sorted together with the packed ones, by a comparison sort.
            self.wide.extend(self.tail.drain(..).map(unpack));
            self.wide.sort_unstable_by_key(|s| s.0);
        }
        let out = &mut self.scratch;
        out.clear();
        out.reserve(self.sorted.len() + self.tail.len() + self.wide.len());
        let mut add = |x: (u64, u64)| match out.last_mut() {
            Some(last) if last.0 == x.0 => last.1 += x.1,
            _ => out.push(x),
        };
        let a = &self.sorted;
        let mut i = 0;
        let mut merge = |x: (u64, u64)| {
            while i < a.len() && a[i].0 <= x.0 {
                add(a[i]);
                i += 1;
            }
            add(x);
        };
        if self.wide.is_empty() {
            self.tail.iter().for_each(|&x| merge(unpack(x)));
        } else {
            self.wide.iter().for_each(|&x| merge(x));
        }
        a[i..].iter().for_each(|&x| add(x));
        std::mem::swap(&mut self.sorted, &mut self.scratch);
        self.tail.clear();
        self.wide.clear();
    }

    /// Sorted, merged `(duration_ns, weight)` pairs (compacts first).
    pub fn sorted(&mut self) -> &[(u64, u64)] {
        self.compact();
        &self.sorted
    }

    /// Total weight (number of gaps).
    pub fn total_weight(&self) -> u64 {
        let packed: u64 = self.tail.iter().map(|&x| x & WEIGHT_MASK).sum();
        self.sorted.iter().chain(&self.wide).map(|s| s.1).sum::<u64>() + packed
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

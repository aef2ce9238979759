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
/// Pushing is O(1); when the samples double past the last compacted size, the new ones are
/// radix-sorted and merged into the sorted part, equal durations summed, so memory is bounded
/// by the number of distinct durations (times two) and no precision is lost.
#[derive(Clone, Debug, Default)]
pub struct ItlSamples {
    /// Sorted by duration, durations distinct.
    sorted: Vec<(u64, u64)>,
    /// Pushed since the last compaction, in push order.
    tail: Vec<(u64, u64)>,
    compact_at: usize,
    scratch: Vec<(u64, u64)>,
}

const ITL_MIN_COMPACT: usize = 1 << 20;

impl ItlSamples {
    pub fn new() -> Self {
        ItlSamples { compact_at: ITL_MIN_COMPACT, ..Default::default() }
    }

    /// Adds `weight` gaps of `duration_ns` each. Zero weights are ignored.
    #[inline]
    pub fn push(&mut self, duration_ns: u64, weight: u64) {
        if weight == 0 {
            return;
        }
        if let Some(last) = self.tail.last_mut()
            && last.0 == duration_ns
        {
            last.1 += weight;
            return;
        }
        self.tail.push((duration_ns, weight));
        if self.sorted.len() + self.tail.len() >= self.compact_at.max(ITL_MIN_COMPACT) {
            self.compact();
            self.compact_at = (self.sorted.len() * 2).max(ITL_MIN_COMPACT);
        }
    }

    /// Sorts the samples pushed since the last compaction and merges them with the sorted
    /// part in one linear pass (a long run compacts a few dozen times, and re-sorting the
    /// sorted part dominated).
    pub fn compact(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        super::radix::sort_by_u64_key(&mut self.tail, &mut self.scratch, |s| s.0);
        let out = &mut self.scratch;
        out.clear();
        out.reserve(self.sorted.len() + self.tail.len());
        let (a, b) = (&self.sorted, &self.tail);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let x = if j == b.len() || (i < a.len() && a[i].0 <= b[j].0) {
                i += 1;
                a[i - 1]
            } else {
                j += 1;
                b[j - 1]
            };
            match out.last_mut() {
                Some(last) if last.0 == x.0 => last.1 += x.1,
                _ => out.push(x),
            }
        }
        std::mem::swap(&mut self.sorted, &mut self.scratch);
        self.tail.clear();
    }

    /// Sorted, merged `(duration_ns, weight)` pairs (compacts first).
    pub fn sorted(&mut self) -> &[(u64, u64)] {
        self.compact();
        &self.sorted
    }

    /// Total weight (number of gaps).
    pub fn total_weight(&self) -> u64 {
        self.sorted.iter().chain(&self.tail).map(|s| s.1).sum()
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
        all.sort_unstable_by_key(|p| p.0);
        let mut want: Vec<(u64, u64)> = Vec::new();
        for p in all {
            match want.last_mut() {
                Some(l) if l.0 == p.0 => l.1 += p.1,
                _ => want.push(p),
            }
        }
        assert_eq!(want.len(), 699, "distinct durations drawn");
        assert_eq!(s.sorted(), &want[..]);
        assert_eq!(s.total_weight(), want.iter().map(|p| p.1).sum::<u64>());
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

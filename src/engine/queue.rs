//! The event queue: a min-heap on `(time, class, seq)` where `seq` is assigned at insertion.
//! At equal times, requests reaching replicas go first, then step completions, then
//! observations (scrapes, KV-event deliveries, ticks), so an observation at `t` sees every
//! step that ended at `t`; within a class, events pop in the order they were scheduled (FIFO).

use crate::units::SimTime;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// A replica's step (or run of steps) finished; stale if `generation` no longer matches.
    StepDone { replica: u32, generation: u64 },
    /// A routed request reaches its replica after the router's decision latency.
    Deliver { slot: u32 },
    /// Scrape one replica's metrics for the router.
    Scrape { replica: u32 },
    /// A scrape's values become visible to the router.
    ScrapeVisible { replica: u32 },
    /// Deliver the oldest pending batch of KV events to the router.
    KvDeliver,
    /// Sample every replica for the time series.
    Tick,
    /// Lifecycle, scaling and fault events (see `engine::fleet`).
    Fleet(super::fleet::FleetEv),
}

/// Sort key of a queued event; `seq` makes keys unique.
type Key = (SimTime, u8, u64);

/// Lanes: events of one kind that are always scheduled a constant delay after "now" (a
/// router's decision latency, scrape interval and latency, the tick, the KV-event lag)
/// arrive in key order, so a FIFO per kind keeps them sorted at O(1) per event; only step
/// completions (and the rare out-of-order push) need the heap. The pop is the smallest key
/// over the heap's top and the lanes' fronts, so the order is exactly the heap's.
const LANES: usize = 5;

#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Reverse<(Key, Event)>>,
    lanes: [VecDeque<(Key, Event)>; LANES],
    seq: u64,
    /// Where the smallest key was at the last peek, until the next push or pop (the loop
    /// peeks before it pops).
    peeked: std::cell::Cell<Option<usize>>,
}

impl Event {
    /// Tie-break class at equal times (see module docs).
    pub fn class(&self) -> u8 {
        match self {
            Event::Deliver { .. } => 0,
            Event::StepDone { .. } => 1,
            Event::Scrape { .. } | Event::ScrapeVisible { .. } | Event::KvDeliver | Event::Tick | Event::Fleet(_) => 2,
        }
    }
    fn lane(&self) -> Option<usize> {
        match self {
            Event::StepDone { .. } | Event::Fleet(_) => None,
            Event::Deliver { .. } => Some(0),
            Event::Scrape { .. } => Some(1),
            Event::ScrapeVisible { .. } => Some(2),
            Event::KvDeliver => Some(3),
            Event::Tick => Some(4),
        }
    }
}

impl EventQueue {
    pub fn push(&mut self, at: SimTime, ev: Event) {
        let key = (at, ev.class(), self.seq);
        self.seq += 1;
        self.peeked.set(None);
        if let Some(l) = ev.lane() {
            let lane = &mut self.lanes[l];
            if lane.back().is_none_or(|(k, _)| k.0 <= at) {
                lane.push_back((key, ev));
                return;
            }
        }
        self.heap.push(Reverse((key, ev)));
    }
    /// Takes the next sequence number without pushing: an event that will be pushed later
    /// (with [`EventQueue::push_reserved`]) keeps its place among equal-time events as if it
    /// had been pushed now.
    pub fn reserve(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }
    /// Pushes `ev` with a sequence number from [`EventQueue::reserve`]. A reserved number may
    /// be used for several pushes at different times (a planned run re-pushes its completion
    /// as it is planned further); keys stay unique because the times differ.
    pub fn push_reserved(&mut self, at: SimTime, seq: u64, ev: Event) {
        debug_assert!(seq < self.seq, "sequence number {seq} was not reserved");
        self.peeked.set(None);
        self.heap.push(Reverse(((at, ev.class(), seq), ev)));
    }
    /// Where the smallest key is: a lane index, or `LANES` for the heap.
    #[inline]
    fn min_source(&self) -> Option<(usize, Key)> {
        let mut best = self.heap.peek().map(|Reverse((k, _))| (LANES, *k));
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some((k, _)) = lane.front()
                && best.is_none_or(|(_, b)| *k < b)
            {
                best = Some((i, *k));
            }
        }
        best
    }
    pub fn peek_time(&self) -> Option<SimTime> {
        let m = self.min_source();
        self.peeked.set(m.map(|(src, _)| src));
        m.map(|(_, k)| k.0)
    }
    pub fn pop(&mut self) -> Option<(SimTime, Event)> {
        let src = match self.peeked.take() {
            Some(src) => src,
            None => self.min_source()?.0,
        };
        let (k, e) = if src == LANES {
            self.heap.pop().expect("peeked").0
        } else {
            self.lanes[src].pop_front().expect("peeked")
        };
        Some((k.0, e))
    }
    /// Drops the queued events for which `keep` is false; the rest keep their keys.
    pub fn retain(&mut self, mut keep: impl FnMut(&Event) -> bool) {
        self.heap.retain(|Reverse((_, e))| keep(e));
        for lane in &mut self.lanes {
            lane.retain(|(_, e)| keep(e));
        }
        self.peeked.set(None);
    }
    pub fn len(&self) -> usize {
        self.heap.len() + self.lanes.iter().map(VecDeque::len).sum::<usize>()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn equal_times_pop_by_class_then_fifo() {
        let mut q = EventQueue::default();
        q.push(SimTime(5), Event::Tick);
        q.push(SimTime(3), Event::Scrape { replica: 9 });
        q.push(SimTime(5), Event::Scrape { replica: 1 });
        q.push(SimTime(5), Event::StepDone { replica: 2, generation: 1 });
        q.push(SimTime(5), Event::Deliver { slot: 4 });
        q.push(SimTime(5), Event::Deliver { slot: 0 });
        assert_eq!(q.pop(), Some((SimTime(3), Event::Scrape { replica: 9 })));
        assert_eq!(q.pop(), Some((SimTime(5), Event::Deliver { slot: 4 })));
        assert_eq!(q.pop(), Some((SimTime(5), Event::Deliver { slot: 0 })));
        assert_eq!(q.pop(), Some((SimTime(5), Event::StepDone { replica: 2, generation: 1 })));
        assert_eq!(q.pop(), Some((SimTime(5), Event::Tick)));
        assert_eq!(q.pop(), Some((SimTime(5), Event::Scrape { replica: 1 })));
        assert_eq!(q.pop(), None);
    }

    /// Lanes and heap together pop exactly in key order, whatever the push pattern.
    #[test]
    fn lanes_pop_like_one_heap() {
        use crate::rng::RngStreams;
        use rand::RngExt;
        let mut rng = RngStreams::new(3).stream("queue-ref", 0);
        let mut q = EventQueue::default();
        let mut reference: BinaryHeap<Reverse<(SimTime, u8, u64, Event)>> = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        for _ in 0..5000 {
            if rng.random_range(0..3) > 0 || reference.is_empty() {
                let ev = match rng.random_range(0..6) {
                    0 => Event::StepDone { replica: rng.random_range(0..3), generation: rng.random_range(0..5) },
                    1 => Event::Deliver { slot: rng.random_range(0..9) },
                    2 => Event::Scrape { replica: rng.random_range(0..3) },
                    3 => Event::ScrapeVisible { replica: rng.random_range(0..3) },
                    4 => Event::KvDeliver,
                    _ => Event::Tick,
                };
                // Mostly constant delays per kind (lane order), sometimes arbitrary.
                let d = if rng.random_range(0..5) == 0 { rng.random_range(0..20) } else { 7 };
                let at = SimTime(now + d);
                q.push(at, ev);
                reference.push(Reverse((at, ev.class(), seq, ev)));
                seq += 1;
            } else {
                let Reverse((t, _, _, e)) = reference.pop().unwrap();
                assert_eq!(q.peek_time(), Some(t));
                assert_eq!(q.pop(), Some((t, e)));
                now = t.0;
            }
            assert_eq!(q.len(), reference.len());
        }
    }
}

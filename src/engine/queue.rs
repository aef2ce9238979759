//! The event queue: a min-heap on `(time, class, seq)` where `seq` is assigned at insertion.
//! At equal times, requests reaching replicas go first, then step completions, then
//! observations (scrapes, KV-event deliveries, ticks), so an observation at `t` sees every
//! step that ended at `t`; within a class, events pop in the order they were scheduled (FIFO).

use crate::units::SimTime;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Reverse<(SimTime, u8, u64, Event)>>,
    seq: u64,
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
}

impl EventQueue {
    pub fn push(&mut self, at: SimTime, ev: Event) {
        self.heap.push(Reverse((at, ev.class(), self.seq, ev)));
        self.seq += 1;
    }
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|Reverse((t, _, _, _))| *t)
    }
    pub fn pop(&mut self) -> Option<(SimTime, Event)> {
        self.heap.pop().map(|Reverse((t, _, _, e))| (t, e))
    }
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}

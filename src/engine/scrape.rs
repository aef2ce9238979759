//! Lazy scrapes: the router's view of each replica without a queued event per scrape.
//!
//! Why: the Endpoint Picker polls every pod every 50 ms, and a scrape becomes visible 5 ms
//! later. Over a day with 8 replicas that is ~14 M queue events, ~67 per request, while
//! the router reads the scraped values only when it routes (once per request). In a static
//! fleet (no autoscaler, no faults, every replica ready from the start) the scrape times are
//! known in advance, `phase + k × interval`, and a replica's state only changes at its own
//! events, so the value a scrape would have taken can be computed later from the state it saw.
//!
//! The rule, exactly as the eager events would order it (see the queue's tie classes): the
//! scrape at `s` sees every change of its replica at times `≤ s` (arrivals, deliveries and
//! step completions all order before a scrape at the same time), and a router reading at `t`
//! sees the latest scrape with `s + latency < t` (arrivals order before the visibility event
//! at the same time). So, before a replica's state changes at `t`, the scrapes since its last
//! change that a later read may still need (at most two, because `latency < interval`) are
//! computed from the current state; a read of a scrape after the last change computes it from
//! the current state, as the scrape itself would have. Within a run of decode steps the
//! sample at `s` is accounted from the run's plan, as an eager scrape did.
//!
//! Scenarios that lie outside these conditions (scaling, faults, lifecycle phases, a
//! scrape latency of one interval or more) keep one event per scrape.

use super::{Simulation, sample};
use crate::metrics::ReplicaSample;
use crate::units::SimTime;

/// Scrape timing shared by every replica (the phase is per replica).
#[derive(Clone, Copy, Debug)]
pub(super) struct LazyScrapes {
    interval: u64,
    latency: u64,
}

/// One replica's scrapes: its phase, how many have been taken, and the last two taken.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ScrapeLog {
    pub(super) phase: u64,
    /// Scrapes `0..taken` were computed (or no read can need them any more).
    taken: u64,
    /// `(k + 1, sample of scrape k)`, oldest first; key 0 holds the value before any scrape.
    last: [(u64, ReplicaSample); 2],
}

impl LazyScrapes {
    /// How many scrapes of a replica with this phase happen strictly before `t`.
    fn before(&self, phase: u64, t: u64) -> u64 {
        if t <= phase { 0 } else { (t - phase - 1) / self.interval + 1 }
    }
    /// How many scrapes are visible to a router reading at `t` (`s + latency < t`).
    fn visible(&self, phase: u64, t: u64) -> u64 {
        self.before(phase, t.saturating_sub(self.latency))
    }
    fn time(&self, phase: u64, k: u64) -> SimTime {
        SimTime(phase + k * self.interval)
    }
}

impl<'a> Simulation<'a> {
    /// Forces one queue event per scrape (differential tests compare both ways).
    #[cfg(test)]
    pub(crate) fn with_eager_scrapes(mut self) -> Self {
        self.eager_scrapes = true;
        self
    }

    /// Switches to lazy scrapes when the fleet is static (call once, before the first event).
    pub(super) fn setup_lazy_scrapes(&mut self) {
        let Some(sc) = self.router.scrape() else { return };
        if self.lazy_scrapes.is_some() || self.eager_scrapes || !self.fleet.is_static() || sc.latency >= sc.interval {
            return;
        }
        self.queue.retain(|ev| !matches!(ev, super::Event::Scrape { .. }));
        for r in &mut self.replicas {
            r.scrape_log.taken = 0;
            r.scrape_log.last = [(0, r.scraped); 2];
        }
        self.lazy_scrapes =
            Some(LazyScrapes { interval: sc.interval.as_nanos().max(1), latency: sc.latency.as_nanos() });
    }

    /// Replica `r`'s state is about to change at `self.now`: takes the scrapes since its last
    /// change that a read at or after now may still need, from the state they saw.
    #[inline]
    pub(super) fn scrape_before_change(&mut self, r: usize) {
        let Some(lz) = self.lazy_scrapes else { return };
        let now = self.now.0;
        let log = self.replicas[r].scrape_log;
        let n = lz.before(log.phase, now);
        if n <= log.taken {
            return;
        }
        // Reads from now on see scrape `visible − 1` or later.
        let from = log.taken.max(lz.visible(log.phase, now).saturating_sub(1));
        for k in from..n {
            let s = lz.time(log.phase, k);
            self.plan_past(r, s);
            let x = sample(r as u32, &self.replicas[r], s);
            let log = &mut self.replicas[r].scrape_log;
            log.last = [log.last[1], (k + 1, x)];
        }
        self.replicas[r].scrape_log.taken = n;
    }

    /// What a router reading at `self.now` sees of replica `r`.
    pub(super) fn scraped_view(&mut self, r: usize) -> ReplicaSample {
        let Some(lz) = self.lazy_scrapes else { return self.replicas[r].scraped };
        let log = self.replicas[r].scrape_log;
        let v = lz.visible(log.phase, self.now.0);
        if v > log.taken {
            // Taken after the replica's last change: the current state is what it saw.
            let s = lz.time(log.phase, v - 1);
            self.plan_past(r, s);
            return sample(r as u32, &self.replicas[r], s);
        }
        match log.last.iter().rev().find(|(key, _)| *key == v) {
            Some((_, x)) => *x,
            None => panic!("lazy scrapes: replica {r} no longer holds scrape {v} (taken {})", log.taken),
        }
    }

    /// The time of the last scrape event that eager scrapes would have processed at or before
    /// `h`, while the cluster stays busy until the hard end cuts the run there.
    pub(super) fn last_scrape_event(&self, h: SimTime) -> Option<SimTime> {
        let lz = self.lazy_scrapes?;
        let h = h.0;
        let mut last: Option<u64> = None;
        for r in &self.replicas {
            let phase = r.scrape_log.phase;
            // Scrape k + 1 is scheduled by scrape k when that one is before the arrivals end.
            let max_k = lz.before(phase, self.p.arrivals_end.0);
            let mut consider = |offset: u64| {
                if h >= phase + offset {
                    let k = ((h - phase - offset) / lz.interval).min(max_k);
                    let t = phase + k * lz.interval + offset;
                    last = Some(last.map_or(t, |l| l.max(t)));
                }
            };
            consider(0);
            if lz.latency > 0 {
                consider(lz.latency);
            }
        }
        last.map(SimTime)
    }
}

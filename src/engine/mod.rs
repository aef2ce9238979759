//! The discrete-event core: a cluster of vLLM-V1 replicas fed by a workload through a router.
//!
//! # Event order (the determinism contract)
//! - Simulated time is integer nanoseconds. The queue pops the smallest `(time, seq)`, `seq`
//!   being the insertion counter, so equal-time events run in the order they were scheduled.
//! - Workload arrivals are not queued: at each iteration the loop compares the workload's next
//!   arrival with the queue's head and takes the arrival first when times are equal.
//! - A replica starts a step as soon as it is idle and has work; the step's effects (tokens,
//!   first tokens, finishes) apply when its `StepDone` pops, at the step's end time. Blocks
//!   are allocated and prefix-cache hits taken when the step is scheduled, as in vLLM.
//! - Scrapes of a static fleet are not queued: the router's view is computed when it reads it,
//!   from the state the scrape would have seen (the rule, and why, in `engine/scrape.rs`).
//!
//! # Skipping ahead
//! When a step is decode-only (no prefill chunk, no admission, no preemption), the batch stays
//! the same until a request finishes or the KV pool runs short, unless a new request reaches
//! the replica. The replica then plans a *run* of identical-batch steps in one event, up to the
//! first finish and the free blocks. Each step's duration is still computed one by one from its
//! own context length, so timestamps are exactly those of single stepping. A request reaching
//! the replica mid-run truncates the run after the step in flight (where single stepping would
//! have considered it); observations mid-run (ticks, scrapes) see the state after the last
//! completed step of the run, computed on the fly. Blocks for the run's later steps are taken
//! when the run completes: nothing can look at this replica's pool in between. Runs are off
//! while KV events are delivered to a router (their timing would shift).
//!
//! A run is planned lazily, in chunks of [`RUN_FIRST_CHUNK`] steps growing to [`RUN_CHUNK`]:
//! half of the planned steps used to be thrown away when an arrival truncated the run. The
//! run's completion event re-arms at the end of each planned chunk, keeping the queue sequence
//! number reserved when the run started, so the final completion orders among equal-time
//! events exactly as if the whole run had been planned at once; anything that reads the run
//! mid-way (samples, truncation) first plans it past the time it looks at. Intermediate
//! re-arms change nothing observable.

pub mod fleet;
pub mod queue;
mod scrape;

pub use fleet::{FleetSetup, FleetTotals, ScaleEvent};

use crate::content::ChainHashes;
use crate::kv_cache::{Hit, KvCache, KvChange, SeqHashes, SeqKv};
use crate::metrics::{Observer, Outcome, ReplicaSample, RequestRecord};
use crate::rng::{RngStreams, SimRng};
use crate::router::{Candidate, KvEvent, Router};
use crate::step_time::{BatchShape, StepTimeModel};
use crate::units::{ReplicaId, SimDuration, SimTime};
use crate::workload::{Finish, RequestSpec, Workload};
use queue::{Event, EventQueue};
use rand::RngExt;
use std::collections::VecDeque;

/// Hash view of a request (a macro so that the borrow stays field-precise).
macro_rules! seq_hashes {
    ($chains:expr, $a:expr) => {{
        let chain: &[u64] = match $a.kv.chain {
            Some(c) => &$chains.per_chain[c.0 as usize][..$a.kv.chain_blocks as usize],
            None => &[],
        };
        SeqHashes { chain, own: &$a.own_hashes, own_len: $a.own_len }
    }};
}

/// Engine settings of one replica (all replicas are identical).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineParams {
    pub replicas: u32,
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    pub block_size: u32,
    /// Including the null block.
    pub num_gpu_blocks: u32,
    pub enable_prefix_caching: bool,
    pub enable_chunked_prefill: bool,
    pub max_model_len: u32,
    /// No arrivals at or after this time.
    pub arrivals_end: SimTime,
    /// Hard stop; requests still queued or running then are recorded as in flight.
    pub hard_end: SimTime,
    /// Time-series sampling interval (zero: no ticks).
    pub tick: SimDuration,
    /// Longest run of identical decode steps planned in one event (1 disables runs).
    pub max_run_steps: u32,
}

/// Per-replica counters, as vLLM's Prometheus counters would show them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaTotals {
    pub replica: ReplicaId,
    pub routed: u64,
    pub completed: u64,
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    pub preemptions: u64,
    pub prompt_tokens: u64,
    pub generation_tokens: u64,
    pub steps: u64,
    pub busy: SimDuration,
    pub max_waiting: u32,
}

/// What a finished simulation reports besides the per-request records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTotals {
    /// Time of the last processed event (the simulated span).
    pub end: SimTime,
    pub replicas: Vec<ReplicaTotals>,
    pub submitted: u64,
    /// GPU-seconds by phase, scale events, retries.
    pub fleet: FleetTotals,
}

struct Active {
    spec: RequestSpec,
    replica: u32,
    kv: SeqKv,
    /// Block hashes past the shared chain's full blocks; left empty (until a preemption) when
    /// nobody can read them (see [`crate::kv_cache::SeqHashes`]).
    own_hashes: Vec<u64>,
    own_len: u32,
    num_computed: u32,
    out_done: u32,
    scheduled: Option<SimTime>,
    first_token: Option<SimTime>,
    last_token: SimTime,
    cached_tokens: u32,
    preemptions: u32,
}

impl Active {
    #[inline]
    fn num_tokens(&self) -> u32 {
        self.spec.input.0 + self.out_done
    }
}

/// Most steps of a run planned per chunk (see module docs). Chunks start at
/// [`RUN_FIRST_CHUNK`] steps and grow with the steps planned so far: an arrival truncates
/// most runs within a few steps.
const RUN_CHUNK: u32 = 32;
const RUN_FIRST_CHUNK: u32 = 4;

#[derive(Default)]
struct Plan {
    items: Vec<(u32, u32)>,
    start: SimTime,
    /// Durations of the steps of this plan (one, or a run of identical decode steps).
    durations: Vec<SimDuration>,
    /// End time of each step (`start` + the durations so far): mid-run observations and
    /// truncations find the step in flight by binary search.
    ends: Vec<SimTime>,
    first_shape: BatchShape,
    /// Decodes in the first step whose previous token came from the step just before.
    first_step_consecutive: u32,
    /// True when every item is a decode (runs are only planned then).
    decode_only: bool,
    /// Of a run: each item's computed tokens at the run's start (what its block needs follow).
    computed: Vec<u32>,
    /// Steps of the run not planned yet (0: fully planned).
    more: u32,
    /// Shape of the last planned step (the next one reads one more token per sequence).
    last_shape: BatchShape,
    /// Step-time factor when the run started (a slow-replica fault truncates the run).
    slow: f64,
    /// The queue sequence number of the run's completion event (see module docs).
    seq: u64,
}

impl Plan {
    /// Plans further steps until one ends after `t` or the run is fully planned.
    fn extend(&mut self, model: &dyn StepTimeModel, hard_end: SimTime, t: SimTime) {
        if self.more == 0 {
            return;
        }
        debug_assert_eq!(self.items.len() as u32, self.last_shape.decode_seqs, "a run is decode-only");
        let b = self.items.len() as u64;
        let mut end = *self.ends.last().expect("a run has a first step");
        while self.more > 0 && end <= t {
            let n = self.more.min((self.durations.len() as u32).clamp(RUN_FIRST_CHUNK, RUN_CHUNK)) as usize;
            // The model writes the chunk's durations in place (a zeroed stack buffer of a whole
            // chunk cost more than the copy it saved: most chunks are short).
            let first = self.durations.len();
            self.durations.resize(first + n, SimDuration::ZERO);
            model.decode_run(&self.last_shape, &mut self.durations[first..]);
            for j in first..first + n {
                let dj = fleet::scaled(self.durations[j], self.slow);
                if end + dj > hard_end {
                    self.durations.truncate(j);
                    self.more = 0;
                    return;
                }
                end += dj;
                self.durations[j] = dj;
                self.ends.push(end);
            }
            self.more -= n as u32;
            self.last_shape.decode_context += n as u64 * b;
        }
    }
}

struct Replica {
    kv: KvCache,
    running: Vec<u32>,
    waiting: VecDeque<u32>,
    busy: bool,
    generation: u64,
    plan: Plan,
    totals: ReplicaTotals,
    scraped: ReplicaSample,
    pending_scrape: Option<ReplicaSample>,
    scrape_log: scrape::ScrapeLog,
    life: fleet::Life,
}

/// The simulation of one scenario. Build it, then [`Simulation::run`].
pub struct Simulation<'a> {
    p: EngineParams,
    queue: EventQueue,
    replicas: Vec<Replica>,
    slab: Vec<Option<Active>>,
    free_slots: Vec<u32>,
    workload: Box<dyn Workload + 'a>,
    router: Box<dyn Router + 'a>,
    step_model: &'a dyn StepTimeModel,
    observer: &'a mut dyn Observer,
    chains: ChainHashes,
    router_rng: SimRng,
    scrape_rng: SimRng,
    now: SimTime,
    submitted: u64,
    in_flight_router: Vec<u32>,
    kv_lag: Option<SimDuration>,
    kv_pending: VecDeque<(u32, KvEvent)>,
    hit: Hit,
    cands: Vec<Candidate>,
    finished: Vec<u32>,
    fleet: fleet::Fleet<'a>,
    chain_lens: Vec<u32>,
    /// Buffers of finished requests (own hashes, block list), reused by new ones.
    spare: Vec<(Vec<u64>, Vec<crate::kv_cache::BlockId>)>,
    /// Per session, the last hashed request's pieces (prompt, then answer) and own hashes.
    hash_memo: crate::router::fasthash::FastMap<u64, HashMemo>,
    /// Scrapes computed when needed instead of queued (see `engine/scrape.rs`).
    lazy_scrapes: Option<scrape::LazyScrapes>,
    eager_scrapes: bool,
}

impl<'a> Simulation<'a> {
    pub fn new(
        p: EngineParams,
        workload: Box<dyn Workload + 'a>,
        router: Box<dyn Router + 'a>,
        step_model: &'a dyn StepTimeModel,
        observer: &'a mut dyn Observer,
        streams: &RngStreams,
    ) -> Self {
        assert!(p.block_size >= 1 && p.num_gpu_blocks >= 2 && p.max_num_seqs >= 1);
        let chains = ChainHashes::build(workload.arena(), p.block_size);
        let chain_lens: Vec<u32> = chains.per_chain.iter().map(|c| c.len() as u32).collect();
        let kv_lag = router.kv_events();
        let replicas = (0..p.replicas).map(|i| Replica::new(i, &p, kv_lag.is_some(), &chain_lens)).collect();
        let mut sim = Simulation {
            queue: EventQueue::default(),
            replicas,
            slab: Vec::new(),
            free_slots: Vec::new(),
            workload,
            router,
            step_model,
            observer,
            chains,
            router_rng: streams.stream("router", 0),
            scrape_rng: streams.stream("router.scrape_phase", 0),
            now: SimTime::ZERO,
            submitted: 0,
            in_flight_router: vec![0; p.replicas as usize],
            kv_lag,
            kv_pending: VecDeque::new(),
            hit: Hit::default(),
            cands: Vec::with_capacity(p.replicas as usize),
            finished: Vec::new(),
            fleet: fleet::Fleet::fixed(p.replicas, streams),
            chain_lens,
            spare: Vec::new(),
            hash_memo: Default::default(),
            lazy_scrapes: None,
            eager_scrapes: false,
            p,
        };
        if sim.p.tick > SimDuration::ZERO {
            sim.queue.push(SimTime::ZERO + sim.p.tick, Event::Tick);
        }
        if let Some(sc) = sim.router.scrape() {
            let iv = sc.interval.as_nanos().max(1);
            for r in 0..sim.p.replicas {
                let phase = sim.scrape_rng.random_range(0..iv);
                sim.queue.push(SimTime(phase), Event::Scrape { replica: r });
                sim.replicas[r as usize].scrape_log.phase = phase;
            }
        }
        sim
    }

    /// Runs to completion (workload exhausted and cluster idle, or `hard_end`).
    pub fn run(mut self) -> RunTotals {
        self.setup_lazy_scrapes();
        loop {
            let next_arrival = self.workload.peek_time().filter(|&t| t < self.p.arrivals_end);
            let next_event = self.queue.peek_time();
            let take_arrival = match (next_arrival, next_event) {
                (Some(a), Some(e)) => a <= e,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let t = if take_arrival { next_arrival.unwrap() } else { next_event.unwrap() };
            if t > self.p.hard_end {
                // Eager scrape events up to the hard end would have been the last ones handled.
                if (next_arrival.is_some() || !self.idle())
                    && let Some(s) = self.last_scrape_event(self.p.hard_end)
                {
                    self.now = self.now.max(s);
                }
                break;
            }
            // With the workload exhausted and the cluster idle, only self-re-arming ticks and
            // scrapes (and KV deliveries, which change no result) remain: the run is over.
            if !take_arrival && next_arrival.is_none() && self.idle() {
                break;
            }
            self.now = t;
            if take_arrival {
                let spec = self.workload.pop();
                self.on_arrival(spec);
            } else {
                let (_, ev) = self.queue.pop().expect("peeked");
                self.on_event(ev);
            }
        }
        self.finish_run()
    }

    fn idle(&self) -> bool {
        self.replicas.iter().all(|r| !r.busy && r.waiting.is_empty() && r.running.is_empty())
            && self.slab.len() == self.free_slots.len()
            && self.fleet_idle()
    }

    fn finish_run(mut self) -> RunTotals {
        let end = self.now;
        // Everything still queued or running is in flight at the end.
        for slot in 0..self.slab.len() {
            if let Some(a) = self.slab[slot].take() {
                let rec = record(&a, Outcome::InFlight);
                self.observer.on_request_done(&rec);
            }
        }
        for spec in self.fleet_in_flight() {
            self.observer.on_request_done(&spec_record(&spec, Outcome::InFlight));
        }
        let fleet = self.fleet_totals(end);
        RunTotals {
            end,
            replicas: self.replicas.into_iter().map(|r| r.totals).collect(),
            submitted: self.submitted,
            fleet,
        }
    }

    fn on_arrival(&mut self, spec: RequestSpec) {
        self.submitted += 1;
        self.fleet.arrivals += 1;
        let total = spec.input.0 as u64 + spec.output.0 as u64;
        if total > self.p.max_model_len as u64 || spec.input.0 == 0 || spec.output.0 == 0 {
            let rec = spec_record(&spec, Outcome::Rejected);
            self.observer.on_request_done(&rec);
            self.workload.on_finished(self.now, &spec, Finish::Rejected);
            return;
        }
        self.dispatch(spec);
    }

    /// Routes a request among the routable replicas, or holds it in the gateway when none is.
    fn dispatch(&mut self, spec: RequestSpec) {
        // Route. A router without scrapes reads no metrics: its candidates carry empty samples.
        self.cands.clear();
        let reads_metrics = self.router.scrape().is_some();
        for i in 0..self.replicas.len() {
            if !self.replicas[i].life.routable() {
                continue;
            }
            let scraped = if reads_metrics {
                self.scraped_view(i)
            } else {
                ReplicaSample { replica: ReplicaId(i as u32), ..Default::default() }
            };
            self.cands.push(Candidate {
                id: ReplicaId(i as u32),
                scraped,
                in_flight: self.in_flight_router[i],
                block_size: self.p.block_size,
            });
        }
        if self.cands.is_empty() {
            self.fleet.gateway.push_back(spec);
            return;
        }
        let target =
            self.router.route(self.now, &spec, self.workload.arena(), &self.cands, &mut self.router_rng).0 as usize;
        assert!(target < self.replicas.len(), "router returned replica {target} of {}", self.replicas.len());
        self.in_flight_router[target] += 1;
        self.replicas[target].totals.routed += 1;
        // Build the engine-side request.
        let chain = spec.content.shared.map(|s| s.chain);
        let chain_blocks = spec.content.shared_full_blocks(self.p.block_size);
        let (mut own, blocks) = self.spare.pop().unwrap_or_default();
        own.clear();
        let mut own_len = 0;
        if self.p.enable_prefix_caching {
            own_len = spec.content.own_full_blocks(spec.output.0, self.p.block_size);
            // Blocks that no index holds, no KV event reports and no lookup can reach are not
            // hashed unless the request is preempted.
            if spec.private_reuse || !spec.novel_private || self.kv_lag.is_some() {
                hash_own_memo(&mut self.hash_memo, &spec, self.workload.arena(), &self.chains, &mut own);
                debug_assert_eq!(own.len() as u32, own_len);
            }
        }
        let active = Active {
            replica: target as u32,
            kv: {
                let mut kv = SeqKv::with_buffer(chain, chain_blocks, blocks);
                kv.index_private = spec.private_reuse;
                kv
            },
            own_hashes: own,
            own_len,
            num_computed: 0,
            out_done: 0,
            scheduled: None,
            first_token: None,
            last_token: SimTime::ZERO,
            cached_tokens: 0,
            preemptions: 0,
            spec,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(active);
                s
            }
            None => {
                self.slab.push(Some(active));
                (self.slab.len() - 1) as u32
            }
        };
        let lat = self.router.decision_latency();
        if lat > SimDuration::ZERO {
            self.queue.push(self.now + lat, Event::Deliver { slot });
        } else {
            self.deliver(slot);
        }
    }

    fn deliver(&mut self, slot: u32) {
        let r = self.slab[slot as usize].as_ref().expect("delivered request exists").replica as usize;
        if self.replicas[r].life.phase == crate::lifecycle::Phase::Terminated {
            self.lost_in_transit(slot);
            return;
        }
        self.scrape_before_change(r);
        let rep = &mut self.replicas[r];
        rep.waiting.push_back(slot);
        rep.totals.max_waiting = rep.totals.max_waiting.max(rep.waiting.len() as u32);
        if !rep.busy {
            self.start_step(r);
        } else if rep.plan.durations.len() > 1 {
            // Truncate the run after the step in flight: the new request is considered there.
            self.truncate_run(r);
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::StepDone { replica, generation } => {
                if self.replicas[replica as usize].generation == generation && !self.rearm_run(replica as usize) {
                    self.scrape_before_change(replica as usize);
                    self.complete_step(replica as usize);
                    self.start_step(replica as usize);
                    self.after_step(replica as usize);
                }
            }
            Event::Deliver { slot } => self.deliver(slot),
            Event::Scrape { replica } => {
                let sc = self.router.scrape().expect("scrape events only with a scrape config");
                if !matches!(
                    self.replicas[replica as usize].life.phase,
                    crate::lifecycle::Phase::Ready | crate::lifecycle::Phase::Draining
                ) {
                    return;
                }
                self.plan_past(replica as usize, self.now);
                let s = sample(replica, &self.replicas[replica as usize], self.now);
                if sc.latency > SimDuration::ZERO {
                    self.replicas[replica as usize].pending_scrape = Some(s);
                    self.queue.push(self.now + sc.latency, Event::ScrapeVisible { replica });
                } else {
                    self.replicas[replica as usize].scraped = s;
                    self.on_scraped(replica as usize);
                }
                if self.now < self.p.arrivals_end {
                    self.queue.push(self.now + sc.interval, Event::Scrape { replica });
                }
            }
            Event::ScrapeVisible { replica } => {
                let r = &mut self.replicas[replica as usize];
                if let Some(s) = r.pending_scrape.take() {
                    r.scraped = s;
                    self.on_scraped(replica as usize);
                }
            }
            Event::KvDeliver => {
                if let Some((replica, ev)) = self.kv_pending.pop_front() {
                    self.router.on_kv_event(self.now, ReplicaId(replica), &ev);
                }
            }
            Event::Tick => {
                self.fleet_tick();
                let more = self.workload.peek_time().is_some_and(|t| t < self.p.arrivals_end) || !self.idle();
                if more {
                    self.queue.push(self.now + self.p.tick, Event::Tick);
                }
            }
            Event::Fleet(ev) => self.on_fleet(ev),
        }
    }

    /// vLLM's `schedule()` for replica `r` at `self.now`; starts a step if there is work.
    fn start_step(&mut self, r: usize) {
        let now = self.now;
        let p = &self.p;
        let bs = p.block_size;
        let rep = &mut self.replicas[r];
        let slab = &mut self.slab;
        let chains = &self.chains;
        // (Borrowed in place: moving the plan out and back copied it twice per step.)
        let plan = &mut rep.plan;
        plan.items.clear();
        plan.durations.clear();
        plan.ends.clear();
        plan.start = now;
        let mut budget = p.max_num_batched_tokens;
        let mut preempted = false;
        let mut admitted = false;
        let mut shape = BatchShape::default();
        let mut consecutive = 0u32;
        let mut decode_only = true;

        // 1) Running requests in admission order.
        let mut i = 0;
        while i < rep.running.len() && budget > 0 {
            let slot = rep.running[i];
            let (n, computed) = {
                let a = slab[slot as usize].as_ref().expect("running request");
                let n = (a.num_tokens() - a.num_computed)
                    .min(budget)
                    .min(p.max_model_len.saturating_sub(1).saturating_sub(a.num_computed));
                (n, a.num_computed)
            };
            if n == 0 {
                i += 1;
                continue;
            }
            let mut scheduled = false;
            loop {
                let a = slab[slot as usize].as_mut().expect("running request");
                let hs = seq_hashes!(chains, a);
                if rep.kv.allocate(&mut a.kv, &hs, computed + n, computed + n) {
                    scheduled = true;
                    break;
                }
                let victim = rep.running.pop().expect("a running request to preempt");
                let v = slab[victim as usize].as_mut().expect("victim");
                if v.own_hashes.len() as u32 != v.own_len {
                    hash_own(&v.spec, self.workload.arena(), chains, &mut v.own_hashes);
                }
                let hs = seq_hashes!(chains, v);
                rep.kv.free_preempted(&mut v.kv, &hs);
                v.num_computed = 0;
                v.preemptions += 1;
                rep.totals.preemptions += 1;
                rep.waiting.push_front(victim);
                preempted = true;
                if victim == slot {
                    break;
                }
            }
            if !scheduled {
                break;
            }
            let a = slab[slot as usize].as_ref().expect("running request");
            add_to_shape(&mut shape, a, n, &mut decode_only);
            if a.out_done > 0 && n == 1 && a.num_computed + 1 == a.num_tokens() && a.last_token == now {
                consecutive += 1;
            }
            plan.items.push((slot, n));
            budget -= n;
            i += 1;
        }

        // 2) Waiting requests, FCFS with head-of-line blocking, only if nothing was preempted.
        if !preempted {
            while budget > 0 && !rep.waiting.is_empty() && (rep.running.len() as u32) < p.max_num_seqs {
                let slot = *rep.waiting.front().expect("non-empty");
                let a = slab[slot as usize].as_mut().expect("waiting request");
                let num_tokens = a.num_tokens();
                {
                    let hs = seq_hashes!(chains, a);
                    rep.kv.lookup(&a.kv, &hs, num_tokens, &mut self.hit);
                }
                let hit_tokens = self.hit.num_blocks() * bs;
                let mut n = num_tokens - hit_tokens;
                if !p.enable_chunked_prefill && n > budget {
                    break;
                }
                n = n.min(budget);
                if !rep.kv.can_admit(&a.kv, &self.hit, hit_tokens + n) {
                    break;
                }
                rep.kv.admit(&mut a.kv, &self.hit);
                a.num_computed = hit_tokens;
                let ok = {
                    let hs = seq_hashes!(chains, a);
                    rep.kv.allocate(&mut a.kv, &hs, hit_tokens + n, hit_tokens + n)
                };
                assert!(ok, "allocation after can_admit must succeed");
                rep.waiting.pop_front();
                rep.running.push(slot);
                // vLLM counts a resumed preempted request in separate `preempted_*`
                // counters, not in the prefix-cache queries/hits its metrics export.
                if a.preemptions == 0 {
                    rep.totals.prefix_queries += num_tokens as u64;
                    rep.totals.prefix_hits += hit_tokens as u64;
                }
                if a.scheduled.is_none() {
                    a.scheduled = Some(now);
                    a.cached_tokens = hit_tokens;
                }
                add_to_shape(&mut shape, a, n, &mut decode_only);
                plan.items.push((slot, n));
                budget -= n;
                admitted = true;
            }
        }

        if plan.items.is_empty() {
            rep.busy = false;
            return;
        }
        plan.slow = rep.life.slow;
        let d = fleet::scaled(self.step_model.step_time(&shape), plan.slow);
        plan.durations.push(d);
        plan.ends.push(now + d);
        plan.first_shape = shape;
        plan.first_step_consecutive = consecutive;
        plan.decode_only = decode_only && !admitted && !preempted;
        plan.more = 0;
        plan.last_shape = shape;
        let end = now + d;

        // Runs of identical decode steps (see module docs).
        if plan.decode_only && p.max_run_steps > 1 && self.kv_lag.is_none() && end < p.hard_end {
            plan.computed.clear();
            let mut k_fin = p.max_run_steps;
            for &(s, _) in &plan.items {
                let a = slab[s as usize].as_ref().expect("item");
                k_fin = k_fin.min(a.spec.output.0 - a.out_done);
                plan.computed.push(a.num_computed);
            }
            let free = rep.kv.num_free();
            let mut k_max = k_fin;
            if run_extra_blocks(&plan.computed, bs, k_max) > free {
                let (mut lo, mut hi) = (1u32, k_max);
                while lo + 1 < hi {
                    let mid = lo + (hi - lo) / 2;
                    if run_extra_blocks(&plan.computed, bs, mid) <= free { lo = mid } else { hi = mid }
                }
                k_max = lo;
            }
            // The first chunk now, the rest when the run gets there (see module docs).
            plan.more = k_max - 1;
            plan.extend(self.step_model, p.hard_end, end);
        }

        // KV events for a precise-prefix router.
        if let Some(lag) = self.kv_lag {
            let changes = rep.kv.take_events();
            push_kv_events(&mut self.kv_pending, &mut self.queue, r as u32, changes, now + lag);
        }

        rep.busy = true;
        rep.generation += 1;
        plan.seq = self.queue.reserve();
        let end = *plan.ends.last().expect("planned step");
        self.queue.push_reserved(end, plan.seq, Event::StepDone { replica: r as u32, generation: rep.generation });
    }

    /// Plans replica `r`'s run past `t` (before anything reads the run at `t`).
    fn plan_past(&mut self, r: usize, t: SimTime) {
        let rep = &mut self.replicas[r];
        if rep.busy && rep.plan.more > 0 {
            rep.plan.extend(self.step_model, self.p.hard_end, t);
        }
    }

    /// Replica `r`'s completion event popped at `self.now`: plans the next chunk of a run and
    /// re-arms (true), or reports the run complete (false).
    fn rearm_run(&mut self, r: usize) -> bool {
        let now = self.now;
        let rep = &mut self.replicas[r];
        // (A reader at `now` may have planned past `now` already.)
        rep.plan.extend(self.step_model, self.p.hard_end, now);
        let end = *rep.plan.ends.last().expect("planned step");
        if end == now {
            debug_assert_eq!(rep.plan.more, 0);
            return false;
        }
        let ev = Event::StepDone { replica: r as u32, generation: rep.generation };
        self.queue.push_reserved(end, rep.plan.seq, ev);
        true
    }

    /// Applies the finished step (or run) of replica `r` at `self.now`.
    fn complete_step(&mut self, r: usize) {
        let now = self.now;
        let rep = &mut self.replicas[r];
        let plan = &mut rep.plan;
        debug_assert_eq!(plan.more, 0, "completing a run that is not fully planned");
        let k = plan.durations.len() as u32;
        let busy: SimDuration = plan.durations.iter().copied().fold(SimDuration::ZERO, |a, b| a + b);
        rep.totals.steps += k as u64;
        rep.totals.busy += busy;
        let step1_end = plan.start + plan.durations[0];
        self.observer.on_steps(
            step1_end,
            ReplicaId(r as u32),
            &plan.first_shape,
            &plan.durations[..1],
            plan.first_step_consecutive,
        );
        if k > 1 {
            let mut later = plan.first_shape;
            later.decode_context += plan.items.len() as u64;
            self.observer.on_steps(now, ReplicaId(r as u32), &later, &plan.durations[1..], plan.items.len() as u32);
        }
        self.finished.clear();
        if k > 1 {
            // Blocks of steps 2..=k of the run (see module docs).
            let chains = &self.chains;
            for &(slot, _) in &plan.items {
                let a = self.slab[slot as usize].as_mut().expect("scheduled request");
                let target = a.num_computed + k;
                let hs = seq_hashes!(chains, a);
                let ok = rep.kv.allocate(&mut a.kv, &hs, target, target);
                assert!(ok, "run allocation was checked against free blocks");
            }
        }
        for &(slot, n) in &plan.items {
            let a = self.slab[slot as usize].as_mut().expect("scheduled request");
            let is_prefill = !(a.out_done > 0 && n == 1 && a.num_computed + 1 == a.num_tokens());
            if is_prefill {
                rep.totals.prompt_tokens += n as u64;
            }
            if k > 1 {
                // A run: k decode tokens, the last one at `now`. The first step's token of a
                // request that skipped the previous step is a gap of its own.
                if a.last_token != plan.start {
                    self.observer.on_itl_gap(step1_end - a.last_token);
                }
                a.num_computed += k;
                a.out_done += k;
                rep.totals.generation_tokens += k as u64;
                a.last_token = now;
            } else {
                a.num_computed += n;
                if a.num_computed == a.num_tokens() {
                    a.out_done += 1;
                    rep.totals.generation_tokens += 1;
                    if a.first_token.is_none() {
                        a.first_token = Some(now);
                        self.router.on_first_token(now, a.spec.id, ReplicaId(r as u32));
                    } else if a.last_token != plan.start {
                        self.observer.on_itl_gap(now - a.last_token);
                    }
                    a.last_token = now;
                }
            }
            if a.out_done >= a.spec.output.0 {
                self.finished.push(slot);
            }
        }
        if !self.finished.is_empty() {
            let fin = &self.finished;
            rep.running.retain(|s| !fin.contains(s));
            for &slot in fin.iter() {
                let mut a = self.slab[slot as usize].take().expect("finished request");
                rep.kv.free(&mut a.kv);
                self.spare.push((std::mem::take(&mut a.own_hashes), a.kv.take_buffer()));
                rep.totals.completed += 1;
                self.free_slots.push(slot);
                self.in_flight_router[r] -= 1;
                let rec = record(&a, Outcome::Completed);
                self.observer.on_request_done(&rec);
                self.router.on_finished(now, a.spec.id, ReplicaId(r as u32));
                self.workload.on_finished(now, &a.spec, Finish::Completed);
            }
        }
        rep.busy = false;
        // Keep the buffers for the next step.
        plan.items.clear();
        plan.durations.clear();
        plan.ends.clear();
    }
}

/// What a session's next request can reuse of this one's hashes.
#[derive(Default)]
struct HashMemo {
    shared: Option<crate::content::SharedRef>,
    /// The prompt's private pieces, then the answer.
    pieces: Vec<crate::content::Piece>,
    own: Vec<u64>,
}

/// Sessions remembered at most (a bound on memory; forgetting only costs hashing again).
const HASH_MEMO_SESSIONS: usize = 1 << 16;

/// [`hash_own`] reusing the hashes of the session's previous request over the tokens both
/// share: a coding assistant's next request repeats the file and the conversation so far, and
/// hashing them again was ~7 % of the day's instructions. The memo is kept only while the
/// workload promises that a later request reuses this one's private blocks.
fn hash_own_memo(
    memo: &mut crate::router::fasthash::FastMap<u64, HashMemo>,
    spec: &RequestSpec,
    arena: &crate::content::ChainArena,
    chains: &ChainHashes,
    out: &mut Vec<u64>,
) {
    let Some(session) = spec.session else {
        return hash_own(spec, arena, chains, out);
    };
    let answer = crate::content::Piece { key: spec.output_key, start: 0, len: spec.output.0 };
    let shared = spec.content.shared;
    let pieces = || spec.content.pieces.iter().copied().chain([answer]);
    let mut keep = 0;
    out.clear();
    if let Some(m) = memo.get(&session).filter(|m| m.shared == shared) {
        let now: smallvec::SmallVec<[crate::content::Piece; 12]> = pieces().collect();
        let common = crate::content::common_prefix_tokens(&m.pieces, &now);
        let bs = chains.block_size as u64;
        let shared_tokens = shared.map_or(0, |s| s.tokens) as u64;
        let full = (shared_tokens + common) / bs - spec.content.shared_full_blocks(chains.block_size) as u64;
        keep = (full as usize).min(m.own.len());
        out.extend_from_slice(&m.own[..keep]);
    }
    spec.content.own_block_hashes_after(arena, chains, &[answer], keep, out);
    #[cfg(test)]
    {
        let mut fresh = Vec::new();
        hash_own(spec, arena, chains, &mut fresh);
        assert_eq!(*out, fresh, "request {:?}: hashes reused from its session differ ({keep} kept)", spec.id);
        tests::HASHES_REUSED.with(|n| n.set(n.get() + keep as u64));
    }
    if !spec.private_reuse {
        memo.remove(&session);
        return;
    }
    if memo.len() >= HASH_MEMO_SESSIONS && !memo.contains_key(&session) {
        memo.clear();
    }
    let m = memo.entry(session).or_default();
    m.shared = shared;
    m.pieces.clear();
    m.pieces.extend(pieces());
    m.own.clear();
    m.own.extend_from_slice(out);
}

/// The block hashes of a request's prompt and answer past its shared chain's full blocks.
fn hash_own(spec: &RequestSpec, arena: &crate::content::ChainArena, chains: &ChainHashes, out: &mut Vec<u64>) {
    let answer = crate::content::Piece { key: spec.output_key, start: 0, len: spec.output.0 };
    spec.content.own_block_hashes(arena, chains, &[answer], out);
}

fn add_to_shape(shape: &mut BatchShape, a: &Active, n: u32, decode_only: &mut bool) {
    let is_decode = a.out_done > 0 && n == 1 && a.num_computed + 1 == a.num_tokens();
    if is_decode {
        shape.decode_seqs += 1;
        shape.decode_context += a.num_computed as u64;
    } else {
        *decode_only = false;
        shape.prefill_seqs += 1;
        shape.prefill_tokens += n;
        shape.prefill_context += a.num_computed as u64;
    }
}

/// Extra blocks a run of `k` decode steps takes beyond its first step (monotone in `k`), from
/// the run's sequences' computed tokens at its start.
fn run_extra_blocks(computed: &[u32], bs: u32, k: u32) -> u32 {
    computed.iter().map(|&c| (c + k).div_ceil(bs) - (c + 1).div_ceil(bs)).sum()
}

/// Replica metrics at `now`, as a scrape would read them: the state after the last completed
/// step. Inside a run of decode steps the completed part is accounted on the fly; cached-block
/// counts are those at the run's start. The run must be planned past `now`
/// ([`Simulation::plan_past`]).
fn sample(i: u32, r: &Replica, now: SimTime) -> ReplicaSample {
    let mut s = ReplicaSample {
        replica: ReplicaId(i),
        running: r.running.len() as u32,
        waiting: r.waiting.len() as u32,
        kv_usage: r.kv.usage(),
        cached_blocks: r.kv.num_cached(),
        num_gpu_blocks: r.kv.num_blocks(),
        prefix_queries: r.totals.prefix_queries,
        prefix_hits: r.totals.prefix_hits,
        prompt_tokens: r.totals.prompt_tokens,
        generation_tokens: r.totals.generation_tokens,
        preemptions: r.totals.preemptions,
        steps: r.totals.steps,
    };
    let k = r.plan.durations.len() as u32;
    debug_assert!(!r.busy || r.plan.more == 0 || r.plan.ends.last().is_some_and(|&e| e > now));
    if r.busy && k > 1 {
        let done = r.plan.ends.partition_point(|&e| e <= now) as u32;
        let b = r.plan.items.len() as u64;
        s.generation_tokens += done as u64 * b;
        s.steps += done as u64;
        let in_flight = (done + 1).min(k);
        let extra = run_extra_blocks(&r.plan.computed, r.kv.block_size(), in_flight);
        let free = r.kv.num_free().saturating_sub(extra);
        s.kv_usage = 1.0 - free as f64 / (r.kv.num_blocks() - 1) as f64;
    }
    s
}

/// The record of a request that never reached a replica.
fn spec_record(spec: &RequestSpec, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        id: spec.id,
        arrival: spec.arrival,
        replica: None,
        input_tokens: spec.input.0,
        output_tokens: spec.output.0,
        cached_tokens: 0,
        scheduled: None,
        first_token: None,
        last_token: None,
        preemptions: 0,
        outcome,
        session: spec.session,
        group: spec.group,
    }
}

fn record(a: &Active, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        id: a.spec.id,
        arrival: a.spec.arrival,
        replica: Some(ReplicaId(a.replica)),
        input_tokens: a.spec.input.0,
        output_tokens: a.spec.output.0,
        cached_tokens: a.cached_tokens,
        scheduled: a.scheduled,
        first_token: a.first_token,
        last_token: if a.out_done > 0 { Some(a.last_token) } else { None },
        preemptions: a.preemptions,
        outcome,
        session: a.spec.session,
        group: a.spec.group,
    }
}

fn push_kv_events(
    pending: &mut VecDeque<(u32, KvEvent)>,
    queue: &mut EventQueue,
    replica: u32,
    changes: Vec<KvChange>,
    at: SimTime,
) {
    let mut stored = Vec::new();
    let mut removed = Vec::new();
    let mut flush = |stored: &mut Vec<u64>, removed: &mut Vec<u64>, pending: &mut VecDeque<(u32, KvEvent)>| {
        if !removed.is_empty() {
            pending.push_back((replica, KvEvent::BlockRemoved { hashes: std::mem::take(removed) }));
            queue.push(at, Event::KvDeliver);
        }
        if !stored.is_empty() {
            pending.push_back((replica, KvEvent::BlockStored { hashes: std::mem::take(stored) }));
            queue.push(at, Event::KvDeliver);
        }
    };
    for c in changes {
        match c {
            KvChange::Stored(h) => {
                if !removed.is_empty() {
                    flush(&mut Vec::new(), &mut removed, pending);
                }
                stored.push(h)
            }
            KvChange::Removed(h) => {
                if !stored.is_empty() {
                    flush(&mut stored, &mut Vec::new(), pending);
                }
                removed.push(h)
            }
        }
    }
    flush(&mut stored, &mut removed, pending);
}

#[cfg(test)]
mod tests;

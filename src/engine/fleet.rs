//! The dynamic replica set: lifecycle phases, scaling, draining, the gateway buffer, faults
//! and GPU billing. Kept apart from the step loop in `mod.rs`, which only asks a replica
//! whether it is routable and hands fleet events here.
//!
//! # Rules
//! - A replica joins the router's candidate set once it is Ready *and* its first metrics
//!   scrape is visible (immediately at Ready for routers that read no metrics).
//! - While no replica is routable, arriving requests wait in the gateway (FIFO, the EPP's
//!   flow-control queue) and are routed, in order, the moment one becomes routable.
//! - Scale-down removes replicas the way a ReplicaSet picks victims: not-Ready before Ready,
//!   newest first. A Ready victim drains; it stops when its last request finishes, or at the
//!   grace deadline, when what it still holds fails (or is retried by the client).
//! - The autoscaler samples metrics at `eval − metric_delay` and decides at `eval`.

use super::queue::Event;
use super::{Active, Plan, Replica, Simulation, record, sample};
use crate::autoscaler::{Autoscaler, ClusterView, PodMetrics, PodState, PoolSignals};
use crate::faults::{DEFAULT_BACKOFF, FaultConfig, FaultsConfig, IntOrPercent};
use crate::kv_cache::KvCache;
use crate::lifecycle::{Lifecycle, Phase};
use crate::metrics::{FleetSample, Outcome, ReplicaSample};
use crate::rng::{RngStreams, SimRng};
use crate::router::KvEvent;
use crate::units::{ReplicaId, SimDuration, SimTime};
use crate::workload::{Finish, RequestSpec};
use rand::RngExt;
use std::collections::{BTreeMap, VecDeque};

/// What the fleet needs besides the engine parameters.
pub struct FleetSetup<'a> {
    pub lifecycle: Lifecycle,
    /// GPUs per replica.
    pub tp: u32,
    pub autoscaler: Option<Box<dyn Autoscaler + 'a>>,
    pub faults: FaultsConfig,
}

/// Fleet events (queued as `Event::Fleet`, observation class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FleetEv {
    /// Replica enters `phase`.
    Phase {
        replica: u32,
        phase: Phase,
    },
    DrainDeadline {
        replica: u32,
    },
    /// The autoscaler's metrics are sampled.
    Sample,
    /// The autoscaler decides.
    Eval,
    /// Fault `index` of the scenario's list starts.
    Fault {
        index: u32,
    },
    SlowEnd {
        replica: u32,
    },
    /// An MTBF crash, valid while the replica's `crash_gen` matches.
    Crash {
        replica: u32,
        generation: u32,
    },
    Retry {
        idx: u32,
    },
    NodeRelease {
        node: u32,
        generation: u32,
    },
}

/// Per-replica lifecycle state.
#[derive(Clone, Debug)]
pub(super) struct Life {
    pub phase: Phase,
    pub created: SimTime,
    pub ready_at: Option<SimTime>,
    pub drain_at: Option<SimTime>,
    pub ended: Option<SimTime>,
    pub scraped: bool,
    pub slow: f64,
    pub node: Option<u32>,
    pub revision: u32,
    pub crash_gen: u32,
}

impl Life {
    pub fn ready_at_zero() -> Self {
        Life {
            phase: Phase::Ready,
            created: SimTime::ZERO,
            ready_at: Some(SimTime::ZERO),
            drain_at: None,
            ended: None,
            scraped: true,
            slow: 1.0,
            node: None,
            revision: 0,
            crash_gen: 0,
        }
    }
    #[inline]
    pub fn routable(&self) -> bool {
        self.phase == Phase::Ready && self.scraped
    }
    /// Counted in the Deployment's replicas (not draining, not gone).
    pub fn live(&self) -> bool {
        self.phase < Phase::Draining
    }
}

struct Node {
    created: SimTime,
    ready_at: SimTime,
    used: u32,
    ended: Option<SimTime>,
    release_gen: u32,
}

/// One change of the replica count, for the run's log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaleEvent {
    pub time: SimTime,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// GPU-seconds and events of a run (fleet part of [`super::RunTotals`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetTotals {
    /// GPU-seconds held by replicas: starting (requested → Ready), serving, draining.
    pub starting_gpu_s: f64,
    pub serving_gpu_s: f64,
    pub draining_gpu_s: f64,
    /// Node-level billing: GPU-seconds of whole nodes (including GPUs no replica held).
    pub node_gpu_s: Option<f64>,
    pub events: Vec<ScaleEvent>,
    /// Failed attempts the client retried.
    pub retried: u64,
    /// Replicas ever created.
    pub replicas_created: u32,
    pub max_live: u32,
}

pub(super) struct Fleet<'a> {
    pub life: Lifecycle,
    tp: u32,
    scaler: Option<Box<dyn Autoscaler + 'a>>,
    pub desired: u32,
    pub gateway: VecDeque<RequestSpec>,
    retries: Vec<Option<RequestSpec>>,
    pub retries_pending: u32,
    attempts: BTreeMap<u64, u32>,
    retry: Option<(u32, SimDuration)>,
    nodes: Vec<Node>,
    snapshot: (Vec<(u32, PodMetrics)>, PoolSignals),
    pub signal: Option<f64>,
    events: Vec<ScaleEvent>,
    faults: Vec<FaultConfig>,
    crash_rng: SimRng,
    mtbf: Option<SimDuration>,
    never_ready: Vec<SimTime>,
    revision: u32,
    rolling: Option<(u32, u32)>,
    retried: u64,
    pub arrivals: u64,
    max_live: u32,
}

impl<'a> Fleet<'a> {
    pub fn fixed(replicas: u32, streams: &RngStreams) -> Self {
        Fleet {
            life: Lifecycle::default(),
            tp: 1,
            scaler: None,
            desired: replicas,
            gateway: VecDeque::new(),
            retries: Vec::new(),
            retries_pending: 0,
            attempts: BTreeMap::new(),
            retry: None,
            nodes: Vec::new(),
            snapshot: (Vec::new(), PoolSignals::default()),
            signal: None,
            events: Vec::new(),
            faults: Vec::new(),
            crash_rng: streams.stream("faults.crash", 0),
            mtbf: None,
            never_ready: Vec::new(),
            revision: 0,
            rolling: None,
            retried: 0,
            arrivals: 0,
            max_live: replicas,
        }
    }
}

impl Fleet<'_> {
    /// No autoscaler, no faults, every replica ready from the start: replicas change only at
    /// their own steps and deliveries.
    pub(super) fn is_static(&self) -> bool {
        self.scaler.is_none() && self.faults.is_empty() && self.life.initial_ready
    }
}

/// A step time under a slow-replica factor `k`.
pub(super) fn scaled(d: SimDuration, k: f64) -> SimDuration {
    if k == 1.0 { d } else { SimDuration::from_nanos_f64(d.0 as f64 * k) }
}

impl<'a> Simulation<'a> {
    /// Installs lifecycle, autoscaler and faults (call before [`Simulation::run`]).
    pub fn with_fleet(mut self, setup: FleetSetup<'a>) -> Self {
        let f = &mut self.fleet;
        f.life = setup.lifecycle;
        f.tp = setup.tp.max(1);
        f.scaler = setup.autoscaler;
        f.retry = setup.faults.retry.as_ref().map(|r| (r.max_retries, r.backoff.map_or(DEFAULT_BACKOFF, |b| b.0)));
        f.faults = setup.faults.events.clone();
        for (i, fc) in f.faults.iter().enumerate() {
            match fc {
                FaultConfig::CrashMtbf(c) => f.mtbf = Some(c.mtbf.0),
                FaultConfig::NeverReady(n) => f.never_ready.push(SimTime::ZERO + n.at.0),
                FaultConfig::Crash(c) => {
                    self.queue.push(SimTime::ZERO + c.at.0, Event::Fleet(FleetEv::Fault { index: i as u32 }))
                }
                FaultConfig::RollingUpdate(c) => {
                    self.queue.push(SimTime::ZERO + c.at.0, Event::Fleet(FleetEv::Fault { index: i as u32 }))
                }
                FaultConfig::SlowReplica(c) => {
                    self.queue.push(SimTime::ZERO + c.at.0, Event::Fleet(FleetEv::Fault { index: i as u32 }))
                }
            }
        }
        self.fleet.never_ready.sort();
        let initial_ready = self.fleet.life.initial_ready;
        for r in 0..self.replicas.len() {
            if initial_ready {
                self.place(r, false);
                self.arm_mtbf(r);
            } else {
                self.begin_start(r);
            }
        }
        if self.fleet.scaler.is_some() {
            self.schedule_scaler();
        }
        self
    }

    pub(super) fn fleet_idle(&self) -> bool {
        self.fleet.gateway.is_empty() && self.fleet.retries_pending == 0
    }

    fn new_replica(&mut self) -> usize {
        let i = self.replicas.len();
        let mut r = Replica::new(i as u32, &self.p, self.kv_lag.is_some(), &self.chain_lens);
        r.life.created = self.now;
        r.life.ready_at = None;
        r.life.scraped = false;
        r.life.revision = self.fleet.revision;
        self.replicas.push(r);
        self.in_flight_router.push(0);
        self.fleet.max_live = self.fleet.max_live.max(self.live_count());
        i
    }

    fn live_count(&self) -> u32 {
        self.replicas.iter().filter(|r| r.life.live()).count() as u32
    }

    /// Puts replica `r` on a node; returns the wait for the node (node-level billing only).
    fn place(&mut self, r: usize, provision: bool) -> SimDuration {
        let now = self.now;
        let tp = self.fleet.tp;
        let Some(g) = self.fleet.life.gpus_per_node else {
            return if provision { self.fleet.life.node_provisioning } else { SimDuration::ZERO };
        };
        let found = self.fleet.nodes.iter().position(|n| n.ended.is_none() && n.used + tp <= g);
        let n = match found {
            Some(n) => n,
            None => {
                let wait = if provision { self.fleet.life.node_provisioning } else { SimDuration::ZERO };
                self.fleet.nodes.push(Node {
                    created: now,
                    ready_at: now + wait,
                    used: 0,
                    ended: None,
                    release_gen: 0,
                });
                self.fleet.nodes.len() - 1
            }
        };
        let node = &mut self.fleet.nodes[n];
        node.used += tp;
        node.release_gen += 1;
        self.replicas[r].life.node = Some(n as u32);
        if node.ready_at > now { node.ready_at - now } else { SimDuration::ZERO }
    }

    /// Starts the cold-start phases of replica `r` at `now`.
    fn begin_start(&mut self, r: usize) {
        let now = self.now;
        let wait = self.place(r, true);
        let stuck = match self.fleet.never_ready.first() {
            Some(&t) if t <= now => {
                self.fleet.never_ready.remove(0);
                true
            }
            _ => false,
        };
        let life = &mut self.replicas[r].life;
        life.created = now;
        life.ready_at = None;
        life.scraped = false;
        life.phase = Phase::Provisioning;
        if stuck {
            return;
        }
        let mut t = now + wait;
        let phases = self.fleet.life.after_node();
        for (ph, d) in phases {
            self.queue.push(t, Event::Fleet(FleetEv::Phase { replica: r as u32, phase: ph }));
            t += d;
        }
        self.queue.push(t, Event::Fleet(FleetEv::Phase { replica: r as u32, phase: Phase::Ready }));
    }

    fn spawn(&mut self) {
        let r = self.new_replica();
        self.begin_start(r);
    }

    pub(super) fn on_fleet(&mut self, ev: FleetEv) {
        match ev {
            FleetEv::Phase { replica, phase } => {
                let r = replica as usize;
                if self.replicas[r].life.phase >= Phase::Ready {
                    return; // removed while starting
                }
                self.replicas[r].life.phase = phase;
                if phase == Phase::Ready {
                    self.on_ready(r);
                }
            }
            FleetEv::DrainDeadline { replica } => {
                if self.replicas[replica as usize].life.phase == Phase::Draining {
                    self.kill(replica as usize);
                }
            }
            FleetEv::Sample => {
                self.take_snapshot();
                let d = self.fleet.scaler.as_ref().map_or(SimDuration::ZERO, |s| s.metric_delay());
                self.queue.push(self.now + d, Event::Fleet(FleetEv::Eval));
            }
            FleetEv::Eval => self.evaluate_scaler(),
            FleetEv::Fault { index } => self.start_fault(index as usize),
            FleetEv::SlowEnd { replica } => {
                self.replicas[replica as usize].life.slow = 1.0;
                self.truncate_run(replica as usize);
            }
            FleetEv::Crash { replica, generation } => {
                let r = replica as usize;
                if self.replicas[r].life.crash_gen == generation && self.replicas[r].life.phase == Phase::Ready {
                    self.crash(r, "crash (MTBF)");
                }
            }
            FleetEv::Retry { idx } => {
                if let Some(spec) = self.fleet.retries[idx as usize].take() {
                    self.fleet.retries_pending -= 1;
                    self.dispatch(spec);
                }
            }
            FleetEv::NodeRelease { node, generation } => {
                let n = &mut self.fleet.nodes[node as usize];
                if n.release_gen == generation && n.used == 0 && n.ended.is_none() {
                    n.ended = Some(self.now);
                }
            }
        }
    }

    fn on_ready(&mut self, r: usize) {
        let now = self.now;
        let rep = &mut self.replicas[r];
        rep.life.ready_at = Some(now);
        match self.router.scrape() {
            Some(sc) => {
                let iv = sc.interval.as_nanos().max(1);
                let phase = self.scrape_rng.random_range(0..iv);
                self.queue.push(now + SimDuration(phase), Event::Scrape { replica: r as u32 });
            }
            None => {
                rep.life.scraped = true;
                self.on_routable();
            }
        }
        self.arm_mtbf(r);
        self.roll_step();
    }

    fn arm_mtbf(&mut self, r: usize) {
        if let Some(m) = self.fleet.mtbf {
            let u: f64 = self.fleet.crash_rng.random();
            let t = SimDuration::from_secs_f64(-(1.0 - u).ln() * m.as_secs_f64());
            let life = &mut self.replicas[r].life;
            life.crash_gen += 1;
            let g = life.crash_gen;
            self.queue.push(self.now + t, Event::Fleet(FleetEv::Crash { replica: r as u32, generation: g }));
        }
    }

    /// A scrape of replica `r` became visible to the router.
    pub(super) fn on_scraped(&mut self, r: usize) {
        let life = &mut self.replicas[r].life;
        if life.phase == Phase::Ready && !life.scraped {
            life.scraped = true;
            self.on_routable();
        }
    }

    /// A replica became routable: route what waits in the gateway.
    fn on_routable(&mut self) {
        while let Some(spec) = self.fleet.gateway.pop_front() {
            self.dispatch(spec);
        }
    }

    /// Cuts a planned run of decode steps after the step in flight (see module docs of
    /// `engine`): something that changes the replica's next steps happened now.
    pub(super) fn truncate_run(&mut self, r: usize) {
        let now = self.now;
        if !self.replicas[r].busy || self.replicas[r].plan.durations.len() <= 1 {
            return;
        }
        self.plan_past(r, now);
        // Steps up to and including the one in flight at `now` (one ending at `now` counts).
        let m = {
            let ends = &self.replicas[r].plan.ends;
            (ends.partition_point(|&e| e < now) + 1).min(ends.len())
        };
        // Whether the run has a step after the m-th one.
        let after = self.replicas[r].plan.ends[m - 1];
        self.plan_past(r, after);
        let rep = &mut self.replicas[r];
        if m < rep.plan.durations.len() {
            let end = rep.plan.ends[m - 1];
            rep.plan.more = 0;
            rep.plan.durations.truncate(m);
            rep.plan.ends.truncate(m);
            rep.generation += 1;
            self.queue.push(end, Event::StepDone { replica: r as u32, generation: rep.generation });
        }
    }

    fn has_work(&self, r: usize) -> bool {
        self.in_flight_router[r] > 0 || self.replicas[r].busy
    }

    /// After a step completed on `r`: a draining replica with nothing left stops.
    pub(super) fn after_step(&mut self, r: usize) {
        if self.replicas[r].life.phase == Phase::Draining && !self.has_work(r) {
            self.terminate(r);
        }
    }

    fn terminate(&mut self, r: usize) {
        let now = self.now;
        let keep = self.fleet.life.node_keep_alive;
        let tp = self.fleet.tp;
        let rep = &mut self.replicas[r];
        rep.life.phase = Phase::Terminated;
        rep.life.ended = Some(now);
        rep.life.scraped = false;
        rep.kv = KvCache::new(2, self.p.block_size, false, &self.chain_lens);
        if let Some(n) = rep.life.node {
            let node = &mut self.fleet.nodes[n as usize];
            node.used -= tp;
            if node.used == 0 {
                node.release_gen += 1;
                let g = node.release_gen;
                self.queue.push(now + keep, Event::Fleet(FleetEv::NodeRelease { node: n, generation: g }));
            }
        }
        self.roll_step();
    }

    /// Stops replica `r` now: what it holds fails or is retried.
    fn kill(&mut self, r: usize) {
        let rep = &mut self.replicas[r];
        let mut slots: Vec<u32> = rep.running.drain(..).collect();
        slots.extend(rep.waiting.drain(..));
        rep.busy = false;
        rep.generation += 1;
        rep.plan = Plan::default();
        for slot in slots {
            let a = self.slab[slot as usize].take().expect("queued request exists");
            self.free_slots.push(slot);
            self.in_flight_router[r] -= 1;
            self.router.on_finished(self.now, a.spec.id, ReplicaId(r as u32));
            self.fail_or_retry(a);
        }
        if self.kv_lag.is_some() {
            self.router.on_kv_event(self.now, ReplicaId(r as u32), &KvEvent::AllCleared);
        }
        self.terminate(r);
    }

    /// A request's attempt failed (its replica died): retry per the client policy or fail.
    pub(super) fn fail_or_retry(&mut self, a: Active) {
        let n = self.fleet.attempts.entry(a.spec.id.0).or_insert(0);
        match self.fleet.retry {
            Some((max, backoff)) if *n < max => {
                *n += 1;
                self.fleet.retried += 1;
                let idx = self.fleet.retries.len() as u32;
                self.fleet.retries.push(Some(a.spec));
                self.fleet.retries_pending += 1;
                self.queue.push(self.now + backoff, Event::Fleet(FleetEv::Retry { idx }));
            }
            _ => {
                let rec = record(&a, Outcome::Failed);
                self.observer.on_request_done(&rec);
                self.workload.on_finished(self.now, &a.spec, Finish::Rejected);
            }
        }
    }

    /// A request reached replica `r` after it was gone.
    pub(super) fn lost_in_transit(&mut self, slot: u32) {
        let a = self.slab[slot as usize].take().expect("delivered request exists");
        self.free_slots.push(slot);
        let r = a.replica as usize;
        self.in_flight_router[r] -= 1;
        self.router.on_finished(self.now, a.spec.id, ReplicaId(r as u32));
        self.fail_or_retry(a);
    }

    fn crash(&mut self, r: usize, why: &str) {
        let before = self.live_count();
        self.kill(r);
        self.log(before, self.live_count(), why);
        self.reconcile_count();
    }

    fn log(&mut self, from: u32, to: u32, why: &str) {
        if from != to {
            self.fleet.events.push(ScaleEvent { time: self.now, from, to, reason: why.to_string() });
        }
    }

    /// Brings the live replica count to `desired` (the ReplicaSet controller).
    fn reconcile_count(&mut self) {
        if self.fleet.rolling.is_some() {
            self.roll_step();
            return;
        }
        let mut live = self.live_count();
        while live < self.fleet.desired {
            self.spawn();
            live += 1;
        }
        while live > self.fleet.desired {
            match self.victim(false) {
                Some(v) => self.remove(v),
                None => break,
            }
            live -= 1;
        }
    }

    /// The replica a ReplicaSet deletes first: old revision first (when `old_only`, only
    /// those), then not-Ready before Ready, then most recently Ready / created.
    fn victim(&self, old_only: bool) -> Option<usize> {
        let cur = self.fleet.revision;
        self.replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.life.live() && (!old_only || r.life.revision < cur))
            .max_by_key(|(i, r)| {
                (r.life.revision < cur, r.life.phase != Phase::Ready, r.life.ready_at.unwrap_or(SimTime::ZERO), *i)
            })
            .map(|(i, _)| i)
    }

    fn remove(&mut self, r: usize) {
        if self.replicas[r].life.phase != Phase::Ready {
            self.terminate(r);
            return;
        }
        self.replicas[r].life.phase = Phase::Draining;
        self.replicas[r].life.drain_at = Some(self.now);
        if !self.has_work(r) {
            self.terminate(r);
        } else {
            let t = self.now + self.fleet.life.drain_grace;
            self.queue.push(t, Event::Fleet(FleetEv::DrainDeadline { replica: r as u32 }));
        }
    }

    /// One step of a rolling update (called whenever replicas change).
    fn roll_step(&mut self) {
        let Some((surge, unavail)) = self.fleet.rolling else { return };
        let cur = self.fleet.revision;
        let desired = self.fleet.desired;
        loop {
            let live: Vec<(bool, bool)> = self
                .replicas
                .iter()
                .filter(|r| r.life.live())
                .map(|r| (r.life.revision == cur, r.life.phase == Phase::Ready))
                .collect();
            let new = live.iter().filter(|x| x.0).count() as u32;
            let old = live.len() as u32 - new;
            let ready = live.iter().filter(|x| x.1).count() as u32;
            if old == 0 {
                self.fleet.rolling = None;
                self.reconcile_count();
                return;
            }
            if new < desired && (live.len() as u32) < desired + surge {
                self.spawn();
                continue;
            }
            let v = self.victim(true).expect("an old replica exists");
            let v_ready = self.replicas[v].life.phase == Phase::Ready;
            if !v_ready || ready > desired.saturating_sub(unavail) || (live.len() as u32) > desired + surge {
                self.remove(v);
                continue;
            }
            return;
        }
    }

    fn start_fault(&mut self, i: usize) {
        match self.fleet.faults[i].clone() {
            FaultConfig::Crash(c) => {
                let r = c.replica as usize;
                if r < self.replicas.len() && self.replicas[r].life.phase != Phase::Terminated {
                    self.crash(r, "crash");
                }
            }
            FaultConfig::RollingUpdate(c) => {
                let d = self.fleet.desired;
                let surge = c.max_surge.unwrap_or(IntOrPercent::Text("25%".into())).resolve(d, true).unwrap_or(1);
                let unavail =
                    c.max_unavailable.unwrap_or(IntOrPercent::Text("25%".into())).resolve(d, false).unwrap_or(0);
                let (surge, unavail) = if surge == 0 && unavail == 0 { (1, 0) } else { (surge, unavail) };
                self.fleet.revision += 1;
                self.fleet.rolling = Some((surge, unavail));
                let before = self.live_count();
                self.fleet.events.push(ScaleEvent {
                    time: self.now,
                    from: before,
                    to: before,
                    reason: format!("rolling update (maxSurge {surge}, maxUnavailable {unavail})"),
                });
                self.roll_step();
            }
            FaultConfig::SlowReplica(c) => {
                let r = c.replica as usize;
                if r < self.replicas.len() {
                    self.replicas[r].life.slow = c.factor;
                    self.truncate_run(r);
                    if let Some(d) = c.duration {
                        self.queue.push(self.now + d.0, Event::Fleet(FleetEv::SlowEnd { replica: r as u32 }));
                    }
                }
            }
            FaultConfig::CrashMtbf(_) | FaultConfig::NeverReady(_) => {}
        }
    }

    fn schedule_scaler(&mut self) {
        let Some(s) = self.fleet.scaler.as_ref() else { return };
        let next = s.next_eval(self.now, self.fleet.desired);
        let d = s.metric_delay();
        let at = if next.as_nanos() >= self.now.as_nanos() + d.as_nanos() {
            SimTime(next.as_nanos() - d.as_nanos())
        } else {
            self.now
        };
        self.queue.push(at, Event::Fleet(FleetEv::Sample));
    }

    /// Prometheus' view now: Ready replicas' gauges and the pool signals.
    fn take_snapshot(&mut self) {
        let now = self.now;
        let mut pods = Vec::new();
        let mut s = PoolSignals::default();
        let mut sat = 0.0;
        for i in 0..self.replicas.len() {
            self.plan_past(i, now);
        }
        for (i, r) in self.replicas.iter().enumerate() {
            if !r.life.routable() {
                continue;
            }
            let x = sample(i as u32, r, now);
            let m = PodMetrics { waiting: x.waiting as f64, running: x.running as f64, kv_usage: x.kv_usage };
            s.waiting += m.waiting;
            s.running += m.running;
            s.kv_usage += m.kv_usage;
            s.pods += 1;
            sat += (m.waiting / 5.0).max(m.kv_usage / 0.8);
            pods.push((i as u32, m));
        }
        s.saturation = if s.pods == 0 { 1.0 } else { sat / s.pods as f64 };
        s.epp_queue = self.fleet.gateway.len() as f64;
        s.epp_running = self.in_flight_router.iter().map(|&x| x as f64).sum();
        for a in self.slab.iter().flatten() {
            if a.first_token.is_none() {
                s.inflight_tokens += a.spec.input.0 as f64;
                s.token_backlog += a.spec.input.0.saturating_sub(a.num_computed) as f64;
            }
        }
        s.token_backlog += self.fleet.gateway.iter().map(|g| g.input.0 as f64).sum::<f64>();
        s.arrivals = self.fleet.arrivals;
        self.fleet.snapshot = (pods, s);
    }

    fn evaluate_scaler(&mut self) {
        let view = ClusterView {
            current: self.fleet.desired,
            pods: self
                .replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| r.life.live())
                .map(|(i, r)| match r.life.phase {
                    Phase::Provisioning | Phase::ImagePull => PodState::Pending,
                    Phase::Ready => {
                        PodState::Ready(self.fleet.snapshot.0.iter().find(|p| p.0 == i as u32).map(|p| p.1))
                    }
                    _ => PodState::Starting,
                })
                .collect(),
            signals: self.fleet.snapshot.1,
        };
        let now = self.now;
        let dec = self.fleet.scaler.as_mut().expect("scaler").evaluate(now, &view);
        self.fleet.signal = dec.signal;
        if dec.desired != self.fleet.desired {
            let from = self.fleet.desired;
            self.fleet.desired = dec.desired;
            self.fleet.events.push(ScaleEvent { time: now, from, to: dec.desired, reason: dec.reason.to_string() });
            self.reconcile_count();
        }
        self.schedule_scaler();
    }

    /// Samples for the time series: live and draining replicas (one row of the last replica
    /// when none is left, so every tick carries the fleet columns).
    pub(super) fn fleet_tick(&mut self) {
        let now = self.now;
        let mut samples = Vec::new();
        let mut phases = Vec::new();
        let (mut ready, mut starting, mut draining) = (0, 0, 0);
        for i in 0..self.replicas.len() {
            self.plan_past(i, now);
        }
        for (i, r) in self.replicas.iter().enumerate() {
            match r.life.phase {
                Phase::Terminated => continue,
                Phase::Ready => ready += 1,
                Phase::Draining => draining += 1,
                _ => starting += 1,
            }
            samples.push(sample(i as u32, r, now));
            phases.push(r.life.phase.as_str());
        }
        if samples.is_empty() {
            let id = self.replicas.len().saturating_sub(1) as u32;
            samples.push(ReplicaSample { replica: ReplicaId(id), ..Default::default() });
            phases.push(Phase::Terminated.as_str());
        }
        self.observer.on_tick(now, &samples);
        let fs = FleetSample {
            time: now,
            ready,
            starting,
            draining,
            desired: self.fleet.desired,
            signal: self.fleet.signal,
            gateway: self.fleet.gateway.len() as u32,
        };
        self.observer.on_fleet_tick(&fs, &phases);
    }

    /// Billing and events at the end of the run.
    pub(super) fn fleet_totals(&mut self, end: SimTime) -> FleetTotals {
        let tp = self.fleet.tp as f64;
        let mut t = FleetTotals::default();
        let secs = |a: SimTime, b: SimTime| if b > a { (b - a).as_secs_f64() } else { 0.0 };
        for r in &self.replicas {
            let l = &r.life;
            let stop = l.ended.unwrap_or(end).min(end);
            let ready = l.ready_at.unwrap_or(stop).min(stop);
            let drain = l.drain_at.unwrap_or(stop).min(stop);
            t.starting_gpu_s += tp * secs(l.created, ready);
            t.serving_gpu_s += tp * secs(ready, drain.max(ready));
            t.draining_gpu_s += tp * secs(drain.max(ready), stop);
        }
        if let Some(g) = self.fleet.life.gpus_per_node {
            t.node_gpu_s = Some(
                self.fleet.nodes.iter().map(|n| g as f64 * secs(n.created, n.ended.unwrap_or(end).min(end))).sum(),
            );
        }
        t.events = std::mem::take(&mut self.fleet.events);
        t.retried = self.fleet.retried;
        t.replicas_created = self.replicas.len() as u32;
        t.max_live = self.fleet.max_live;
        t
    }

    /// Requests that never left the gateway or a retry backoff: in flight at the end.
    pub(super) fn fleet_in_flight(&mut self) -> Vec<RequestSpec> {
        let mut v: Vec<RequestSpec> = self.fleet.gateway.drain(..).collect();
        v.extend(self.fleet.retries.iter_mut().filter_map(|s| s.take()));
        v
    }
}

impl Replica {
    pub(super) fn new(i: u32, p: &super::EngineParams, kv_events: bool, chain_lens: &[u32]) -> Replica {
        let mut kv = KvCache::new(p.num_gpu_blocks, p.block_size, p.enable_prefix_caching, chain_lens);
        if kv_events {
            kv.enable_events();
        }
        let totals = super::ReplicaTotals { replica: ReplicaId(i), ..Default::default() };
        let mut r = Replica {
            kv,
            running: Vec::new(),
            waiting: VecDeque::new(),
            busy: false,
            generation: 0,
            plan: Plan::default(),
            totals,
            scraped: ReplicaSample::default(),
            pending_scrape: None,
            scrape_log: Default::default(),
            life: Life::ready_at_zero(),
        };
        r.scraped = sample(i, &r, SimTime::ZERO);
        r
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;

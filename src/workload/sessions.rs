//! Multi-turn sessions. Sessions start by the arrival process; a session of `turns` turns
//! issues turn 0 at its start and turn k+1 an exponential think time after turn k completes.
//! Turn k's prompt is [system prompt chain] + the previous prompt's private pieces + the
//! previous answer (key = its `output_key`) + a new user message, so the previous turn's
//! prompt + output is, token for token, a prefix of the next prompt. A rejected turn ends its
//! session; a turn that would start at or after the horizon is not issued.
//!
//! Each session draws its turn count, lengths and think times from its own stream
//! (`workload.session`, session id), so a session's content does not depend on how other
//! sessions' requests interleave. Under a closed-loop arrival each user runs one session at a
//! time: the user's think time starts when its session ends.

use super::arrival::{self, ArrivalProcess};
use super::config::SessionsConfig;
use super::length::LengthDist;
use super::{Finish, KeySpace, RequestSpec, Workload, WorkloadError, horizon};
use crate::content::{ChainArena, ChainId, Content, Piece, SharedRef};
use crate::rng::{RngStreams, SimRng};
use crate::units::{RequestId, SimDuration, SimTime, Tokens};
use rand_distr::{Distribution, Exp1};
use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

pub struct SessionsWorkload {
    arrival: Box<dyn ArrivalProcess>,
    turns: LengthDist,
    user_message: LengthDist,
    output: LengthDist,
    think: f64,
    system: Option<(ChainId, u32)>,
    arena: ChainArena,
    streams: RngStreams,
    active: HashMap<u64, Session>,
    /// Next turns, by (time, session).
    pending: BinaryHeap<Reverse<(SimTime, u64)>>,
    next_session: u64,
    next_id: u64,
    horizon: SimTime,
    message_keys: KeySpace,
    output_keys: KeySpace,
}

struct Session {
    rng: SimRng,
    turns: u32,
    issued: u32,
    /// Private pieces of the last prompt (plus its answer once completed).
    pieces: SmallVec<[Piece; 4]>,
    outstanding: Option<RequestId>,
    source: Option<u32>,
}

impl SessionsWorkload {
    pub fn new(
        cfg: &SessionsConfig,
        streams: &RngStreams,
        duration: SimDuration,
        base_dir: &Path,
    ) -> Result<Self, WorkloadError> {
        let hz = horizon(duration);
        let arrival = arrival::build(&cfg.arrival, "arrival", streams, "workload.arrival", hz)?;
        let mut arena = ChainArena::new();
        let system = (cfg.system_prompt_len > 0).then(|| {
            let key = streams.key("workload.system_prompt", 0);
            (arena.register(vec![Piece { key, start: 0, len: cfg.system_prompt_len }]), cfg.system_prompt_len)
        });
        Ok(SessionsWorkload {
            arrival,
            turns: LengthDist::new(&cfg.turns, "turns", base_dir, 1)?,
            user_message: LengthDist::new(&cfg.user_message, "user_message", base_dir, 1)?,
            output: LengthDist::new(&cfg.output, "output", base_dir, 1)?,
            think: cfg.think_time.0.as_secs_f64(),
            system,
            arena,
            streams: *streams,
            active: HashMap::new(),
            pending: BinaryHeap::new(),
            next_session: 0,
            next_id: 0,
            horizon: hz,
            message_keys: KeySpace::new(streams, "workload.user_message"),
            output_keys: KeySpace::new(streams, "workload.output"),
        })
    }

    /// Sessions started and not yet ended.
    pub fn active_sessions(&self) -> usize {
        self.active.len()
    }

    fn issue(&mut self, sid: u64, time: SimTime) -> RequestSpec {
        let id = self.next_id;
        self.next_id += 1;
        let s = self.active.get_mut(&sid).expect("issuing a turn of an unknown session");
        let msg = self.user_message.sample(&mut s.rng);
        let output = self.output.sample(&mut s.rng);
        s.pieces.push(Piece { key: self.message_keys.at(id), start: 0, len: msg });
        s.issued += 1;
        s.outstanding = Some(RequestId(id));
        let content = Content {
            shared: self.system.map(|(chain, tokens)| SharedRef { chain, tokens }),
            pieces: s.pieces.clone(),
        };
        let input = content.tokens(&self.arena);
        RequestSpec {
            id: RequestId(id),
            arrival: time,
            input: Tokens(input),
            output: Tokens(output),
            content,
            output_key: self.output_keys.at(id),
            session: Some(sid),
            group: self.system.map(|_| 0),
            private_reuse: true,
            novel_private: false,
        }
    }

    fn end_session(&mut self, now: SimTime, sid: u64) {
        if let Some(s) = self.active.remove(&sid)
            && let Some(u) = s.source
        {
            self.arrival.on_finished(now, u);
        }
    }
}

impl Workload for SessionsWorkload {
    fn peek_time(&self) -> Option<SimTime> {
        let a = self.pending.peek().map(|r| r.0.0);
        match (a, self.arrival.peek()) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    fn pop(&mut self) -> RequestSpec {
        let turn = self.pending.peek().map(|r| r.0.0);
        let start = self.arrival.peek();
        // On a tie the waiting turn goes first.
        if let Some(t) = turn
            && start.is_none_or(|s| t <= s)
        {
            let Reverse((t, sid)) = self.pending.pop().unwrap();
            return self.issue(sid, t);
        }
        let a = self.arrival.pop().expect("pop called without a pending arrival");
        let sid = self.next_session;
        self.next_session += 1;
        let mut rng = self.streams.stream("workload.session", sid);
        let turns = self.turns.sample(&mut rng);
        self.active.insert(
            sid,
            Session { rng, turns, issued: 0, pieces: SmallVec::new(), outstanding: None, source: a.source },
        );
        self.issue(sid, a.time)
    }

    fn on_finished(&mut self, now: SimTime, req: &RequestSpec, how: Finish) {
        let Some(sid) = req.session else { return };
        let Some(s) = self.active.get_mut(&sid) else { return };
        if s.outstanding != Some(req.id) {
            return;
        }
        s.outstanding = None;
        if how == Finish::Rejected || s.issued >= s.turns {
            self.end_session(now, sid);
            return;
        }
        s.pieces.push(Piece { key: req.output_key, start: 0, len: req.output.0 });
        let think = if self.think > 0.0 {
            let e: f64 = Exp1.sample(&mut s.rng);
            e * self.think
        } else {
            0.0
        };
        let t = now + SimDuration::from_secs_f64(think);
        if t < self.horizon {
            self.pending.push(Reverse((t, sid)));
        } else {
            self.end_session(now, sid);
        }
    }

    fn arena(&self) -> &ChainArena {
        &self.arena
    }

    /// Nominal request rate: session rate × mean turns (ignores rejections and the horizon).
    fn mean_rate(&self) -> Option<f64> {
        self.arrival.mean_rate().map(|r| r * self.turns.mean())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ChainHashes;
    use crate::workload::config::*;

    fn cfg(arrival: ArrivalConfig, system: u32) -> SessionsConfig {
        SessionsConfig {
            arrival,
            turns: LengthConfig::Uniform(UniformLen { min: 2, max: 6 }),
            system_prompt_len: system,
            user_message: LengthConfig::Uniform(UniformLen { min: 5, max: 60 }),
            output: LengthConfig::Uniform(UniformLen { min: 1, max: 80 }),
            think_time: DurationStr(SimDuration::from_secs(3)),
        }
    }

    /// Drives a workload like an engine would: every request completes `latency` after arrival
    /// (or is rejected when `reject(id)`), reporting completions in time order.
    fn run(w: &mut dyn Workload, latency: SimDuration, reject: impl Fn(u64) -> bool) -> Vec<RequestSpec> {
        let mut done: BinaryHeap<Reverse<(SimTime, u64)>> = BinaryHeap::new();
        let mut all: Vec<RequestSpec> = vec![];
        loop {
            let next_arrival = w.peek_time();
            let next_done = done.peek().map(|r| r.0.0);
            match (next_arrival, next_done) {
                (None, None) => break,
                (Some(a), d) if d.is_none_or(|d| a < d) => {
                    let r = w.pop();
                    assert_eq!(r.arrival, a);
                    assert_eq!(r.id.0 as usize, all.len());
                    done.push(Reverse((r.arrival + latency, r.id.0)));
                    all.push(r);
                }
                _ => {
                    let Reverse((t, id)) = done.pop().unwrap();
                    let how = if reject(id) { Finish::Rejected } else { Finish::Completed };
                    let r = all[id as usize].clone();
                    w.on_finished(t, &r, how);
                }
            }
        }
        all
    }

    #[test]
    fn next_turn_extends_previous_prompt_and_answer() {
        let c = cfg(ArrivalConfig::Poisson(RateConfig { rate: 0.5 }), 40);
        let mut w =
            SessionsWorkload::new(&c, &RngStreams::new(1), SimDuration::from_secs(600), Path::new(".")).unwrap();
        let all = run(&mut w, SimDuration::from_secs(2), |_| false);
        let bs = 16;
        let hashes = ChainHashes::build(w.arena(), bs);
        let mut by_session: HashMap<u64, Vec<&RequestSpec>> = HashMap::new();
        for r in &all {
            assert_eq!(r.input.0, r.content.tokens(w.arena()));
            by_session.entry(r.session.unwrap()).or_default().push(r);
        }
        let mut checked = 0;
        let (mut prev_h, mut next_h) = (vec![], vec![]);
        for turns in by_session.values() {
            assert!(!turns.is_empty() && turns.len() <= 6);
            for pair in turns.windows(2) {
                let (prev, next) = (pair[0], pair[1]);
                let answer = Piece { key: prev.output_key, start: 0, len: prev.output.0 };
                prev.content.block_hashes(w.arena(), &hashes, &[answer], &mut prev_h);
                next.content.block_hashes(w.arena(), &hashes, &[], &mut next_h);
                assert!(!prev_h.is_empty());
                assert_eq!(prev_h[..], next_h[..prev_h.len()], "prev prompt + answer is a prefix");
                assert_eq!(next.input.0, prev.input.0 + prev.output.0 + next.content.pieces.last().unwrap().len);
                // Issued exactly a think time after completion (at least the completion).
                assert!(next.arrival >= prev.arrival + SimDuration::from_secs(2));
                checked += 1;
            }
            // The system prompt prefix is shared by all sessions.
            assert_eq!(turns[0].content.shared.unwrap().tokens, 40);
        }
        assert!(checked > 200, "{checked}");
        assert!(by_session.values().any(|t| t.len() == 6));
        assert_eq!(w.active_sessions(), 0);
    }

    #[test]
    fn rejected_turn_ends_session() {
        let c = cfg(ArrivalConfig::Poisson(RateConfig { rate: 0.5 }), 0);
        let mut w =
            SessionsWorkload::new(&c, &RngStreams::new(2), SimDuration::from_secs(600), Path::new(".")).unwrap();
        let all = run(&mut w, SimDuration::from_secs(1), |id| id % 3 == 0);
        let mut last_per_session: HashMap<u64, u64> = HashMap::new();
        for r in &all {
            assert!(r.content.shared.is_none());
            if let Some(prev) = last_per_session.insert(r.session.unwrap(), r.id.0) {
                assert!(prev % 3 != 0, "no turn after a rejected one");
            }
        }
        assert_eq!(w.active_sessions(), 0);
    }

    #[test]
    fn closed_loop_sessions_one_at_a_time_per_user() {
        let c = cfg(
            ArrivalConfig::ClosedLoop(ClosedLoopConfig {
                users: 4,
                think_time: DurationStr(SimDuration::from_secs(5)),
            }),
            0,
        );
        let mut w =
            SessionsWorkload::new(&c, &RngStreams::new(3), SimDuration::from_secs(2000), Path::new(".")).unwrap();
        let all = run(&mut w, SimDuration::from_secs(1), |_| false);
        let sessions: std::collections::BTreeSet<u64> = all.iter().map(|r| r.session.unwrap()).collect();
        assert!(sessions.len() > 20);
        // Never more than 4 requests in flight (each takes 1 s).
        for r in &all {
            let overlapping = all
                .iter()
                .filter(|o| o.arrival <= r.arrival && r.arrival < o.arrival + SimDuration::from_secs(1))
                .count();
            assert!(overlapping <= 4);
        }
    }

    #[test]
    fn deterministic_per_seed() {
        let c = cfg(ArrivalConfig::Poisson(RateConfig { rate: 1.0 }), 10);
        let go = |seed| {
            let mut w =
                SessionsWorkload::new(&c, &RngStreams::new(seed), SimDuration::from_secs(300), Path::new(".")).unwrap();
            run(&mut w, SimDuration::from_secs(1), |_| false)
                .into_iter()
                .map(|r| (r.arrival, r.input, r.output, r.content, r.output_key))
                .collect::<Vec<_>>()
        };
        assert_eq!(go(4), go(4));
        assert_ne!(go(4), go(5));
    }
}

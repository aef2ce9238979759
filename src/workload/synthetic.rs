//! Independent requests: arrival process × length distributions × prefix structure.
//!
//! Unique prompts are one private piece keyed by the request id. With `shared_prefix` (the
//! inference-perf dataset) there are G system prompts registered as chains and G×P fixed
//! prompts (system prompt + question keyed by (group, prompt)), shuffled once with a seeded
//! stream and then cycled in that order, so prompt `n` is `order[n mod G·P]`.
//!
//! Lengths are drawn from stream `workload.lengths`; under a closed loop each user draws from
//! its own stream (`workload.lengths.user`, u), so a user's k-th request has the same lengths
//! whatever order requests complete in.

use super::arrival::{self, ArrivalProcess};
use super::config::{PrefixConfig, SyntheticConfig};
use super::length::LengthDist;
use super::{Finish, KeySpace, RequestSpec, Workload, WorkloadError, horizon};
use crate::content::{ChainArena, ChainId, Content, Piece, SharedRef};
use crate::rng::{RngStreams, SimRng};
use crate::units::{RequestId, SimDuration, SimTime, Tokens};
use rand::seq::SliceRandom;
use smallvec::smallvec;
use std::path::Path;

pub struct SyntheticWorkload {
    arrival: Box<dyn ArrivalProcess>,
    input: LengthDist,
    output: LengthDist,
    prefix: Prefix,
    rng: SimRng,
    user_rngs: Vec<SimRng>,
    next_id: u64,
    max_requests: u64,
    prompt_keys: KeySpace,
    output_keys: KeySpace,
    arena: ChainArena,
}

enum Prefix {
    Unique,
    Shared {
        chains: Vec<ChainId>,
        system_len: u32,
        question_len: u32,
        prompts_per_group: u32,
        /// Shuffled prompt indices `g·P + p`.
        order: Vec<u32>,
        pos: usize,
        question_keys: KeySpace,
    },
}

impl SyntheticWorkload {
    pub fn new(
        cfg: &SyntheticConfig,
        streams: &RngStreams,
        duration: SimDuration,
        base_dir: &Path,
    ) -> Result<Self, WorkloadError> {
        let arrival = arrival::build(&cfg.arrival, "arrival", streams, "workload.arrival", horizon(duration))?;
        let mut arena = ChainArena::new();
        let (input, prefix) = match &cfg.prefix {
            PrefixConfig::None => (LengthDist::new(&cfg.input, "input", base_dir, 1)?, Prefix::Unique),
            PrefixConfig::SharedPrefix(sp) => {
                if sp.groups == 0 {
                    return Err(WorkloadError::invalid("prefix.groups", "must be at least 1"));
                }
                if sp.prompts_per_group == 0 {
                    return Err(WorkloadError::invalid("prefix.prompts_per_group", "must be at least 1"));
                }
                if sp.system_prompt_len as u64 + sp.question_len as u64 == 0 {
                    return Err(WorkloadError::invalid(
                        "prefix.question_len",
                        "system_prompt_len + question_len must be at least 1",
                    ));
                }
                let total = sp.groups as u64 * sp.prompts_per_group as u64;
                if total > u32::MAX as u64 {
                    return Err(WorkloadError::invalid("prefix", "groups × prompts_per_group is too large"));
                }
                let sys_keys = KeySpace::new(streams, "workload.system_prompt");
                let chains = if sp.system_prompt_len > 0 {
                    (0..sp.groups)
                        .map(|g| {
                            arena.register(vec![Piece {
                                key: sys_keys.at(g as u64),
                                start: 0,
                                len: sp.system_prompt_len,
                            }])
                        })
                        .collect()
                } else {
                    vec![]
                };
                let mut order: Vec<u32> = (0..total as u32).collect();
                order.shuffle(&mut streams.stream("workload.shared_prefix", 0));
                let fixed = LengthDist::Fixed(sp.system_prompt_len + sp.question_len);
                (
                    fixed,
                    Prefix::Shared {
                        chains,
                        system_len: sp.system_prompt_len,
                        question_len: sp.question_len,
                        prompts_per_group: sp.prompts_per_group,
                        order,
                        pos: 0,
                        question_keys: KeySpace::new(streams, "workload.question"),
                    },
                )
            }
        };
        let output = LengthDist::new(&cfg.output, "output", base_dir, 1)?;
        let user_rngs = match arrival.sources() {
            Some(n) => (0..n as u64).map(|u| streams.stream("workload.lengths.user", u)).collect(),
            None => vec![],
        };
        Ok(SyntheticWorkload {
            arrival,
            input,
            output,
            prefix,
            rng: streams.stream("workload.lengths", 0),
            user_rngs,
            next_id: 0,
            max_requests: cfg.max_requests.unwrap_or(u64::MAX),
            prompt_keys: KeySpace::new(streams, "workload.prompt"),
            output_keys: KeySpace::new(streams, "workload.output"),
            arena,
        })
    }
}

impl Workload for SyntheticWorkload {
    fn peek_time(&self) -> Option<SimTime> {
        if self.next_id >= self.max_requests {
            return None;
        }
        self.arrival.peek()
    }

    fn pop(&mut self) -> RequestSpec {
        let a = self.arrival.pop().expect("pop called without a pending arrival");
        let id = self.next_id;
        self.next_id += 1;
        let rng = match a.source {
            Some(u) => &mut self.user_rngs[u as usize],
            None => &mut self.rng,
        };
        let (content, input, group) = match &mut self.prefix {
            Prefix::Unique => {
                let len = self.input.sample(rng);
                let c =
                    Content { shared: None, pieces: smallvec![Piece { key: self.prompt_keys.at(id), start: 0, len }] };
                (c, len, None)
            }
            Prefix::Shared { chains, system_len, question_len, prompts_per_group, order, pos, question_keys } => {
                let idx = order[*pos];
                *pos += 1;
                if *pos == order.len() {
                    *pos = 0;
                }
                let (g, p) = (idx / *prompts_per_group, idx % *prompts_per_group);
                let shared = chains.get(g as usize).map(|&chain| SharedRef { chain, tokens: *system_len });
                let mut pieces = smallvec![];
                if *question_len > 0 {
                    pieces.push(Piece { key: question_keys.at2(g as u64, p as u64), start: 0, len: *question_len });
                }
                (Content { shared, pieces }, *system_len + *question_len, Some(g))
            }
        };
        let output = self.output.sample(rng);
        RequestSpec {
            id: RequestId(id),
            arrival: a.time,
            input: Tokens(input),
            output: Tokens(output),
            content,
            output_key: self.output_keys.at(id),
            session: a.source.map(|u| u as u64),
            group,
            // Unique prompts and never-quoted answers: only cycled shared-prefix questions recur.
            private_reuse: !matches!(self.prefix, Prefix::Unique),
            // A unique prompt's key is its own (a shared-prefix question may recur).
            novel_private: matches!(self.prefix, Prefix::Unique),
        }
    }

    fn on_finished(&mut self, now: SimTime, req: &RequestSpec, _how: Finish) {
        if self.arrival.sources().is_some()
            && let Some(u) = req.session
        {
            self.arrival.on_finished(now, u as u32);
        }
    }

    fn arena(&self) -> &ChainArena {
        &self.arena
    }

    fn mean_rate(&self) -> Option<f64> {
        self.arrival.mean_rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ChainHashes;
    use crate::workload::config::*;
    use std::collections::{BTreeSet, HashMap};

    fn cfg(prefix: PrefixConfig) -> SyntheticConfig {
        SyntheticConfig {
            arrival: ArrivalConfig::Poisson(RateConfig { rate: 10.0 }),
            input: LengthConfig::Uniform(UniformLen { min: 10, max: 200 }),
            output: LengthConfig::Uniform(UniformLen { min: 1, max: 50 }),
            prefix,
            max_requests: None,
        }
    }

    fn drain(w: &mut dyn Workload) -> Vec<RequestSpec> {
        let mut v = vec![];
        while w.peek_time().is_some() {
            v.push(w.pop());
        }
        v
    }

    #[test]
    fn unique_prompts_dense_ids_and_horizon() {
        let c = WorkloadConfig::Synthetic(cfg(PrefixConfig::None));
        let mut w =
            crate::workload::build(&c, &RngStreams::new(3), SimDuration::from_secs(100), Path::new(".")).unwrap();
        let v = drain(w.as_mut());
        assert!(v.len() > 800 && v.len() < 1200, "{}", v.len());
        let mut keys = BTreeSet::new();
        for (i, r) in v.iter().enumerate() {
            assert_eq!(r.id, RequestId(i as u64));
            assert!(r.arrival < SimTime::from_secs_f64(100.0));
            assert_eq!(r.input.0, r.content.tokens(w.arena()));
            assert!(r.output.0 >= 1);
            assert!(r.content.shared.is_none());
            assert!(keys.insert(r.content.pieces[0].key));
            assert!(keys.insert(r.output_key));
        }
        assert_eq!(w.mean_rate(), Some(10.0));
    }

    #[test]
    fn max_requests_stops() {
        let mut c = cfg(PrefixConfig::None);
        c.max_requests = Some(17);
        let mut w =
            SyntheticWorkload::new(&c, &RngStreams::new(3), SimDuration::from_secs(1000), Path::new(".")).unwrap();
        assert_eq!(drain(&mut w).len(), 17);
    }

    #[test]
    fn shared_prefix_structure() {
        let (g, p, sys, q) = (4u32, 5u32, 100u32, 30u32);
        let c = cfg(PrefixConfig::SharedPrefix(SharedPrefixConfig {
            groups: g,
            prompts_per_group: p,
            system_prompt_len: sys,
            question_len: q,
        }));
        let mut w =
            SyntheticWorkload::new(&c, &RngStreams::new(5), SimDuration::from_secs(1000), Path::new(".")).unwrap();
        let v = drain(&mut w);
        let period = (g * p) as usize;
        assert!(v.len() > 3 * period);
        assert_eq!(w.arena().len(), g as usize, "exactly G chains");
        let chains: BTreeSet<_> = v.iter().map(|r| r.content.shared.unwrap().chain).collect();
        assert_eq!(chains.len(), g as usize);
        // One cycle holds every (group, prompt) exactly once; later cycles repeat it in order.
        let first: BTreeSet<_> = v[..period].iter().map(|r| r.content.pieces[0].key).collect();
        assert_eq!(first.len(), period);
        for (i, r) in v.iter().enumerate().skip(period) {
            assert_eq!(r.content, v[i - period].content, "period G×P");
            assert_eq!(r.group, v[i - period].group);
        }
        assert_ne!(
            v[..period].iter().map(|r| r.group.unwrap()).collect::<Vec<_>>(),
            (0..period as u32).map(|i| i / p).collect::<Vec<_>>(),
            "shuffled"
        );
        // Hit structure: the first `sys` tokens are identical within a group, different across.
        let hashes = ChainHashes::build(w.arena(), 16);
        let mut by_group: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut out = vec![];
        for r in &v {
            assert_eq!(r.input.0, sys + q);
            assert_eq!(r.content.tokens(w.arena()), sys + q);
            assert_eq!(r.content.shared.unwrap().chain, ChainId(r.group.unwrap()));
            r.content.block_hashes(w.arena(), &hashes, &[], &mut out);
            let pre = out[..(sys / 16) as usize].to_vec();
            let e = by_group.entry(r.group.unwrap()).or_insert_with(|| pre.clone());
            assert_eq!(*e, pre);
        }
        let firsts: BTreeSet<u64> = by_group.values().map(|h| h[0]).collect();
        assert_eq!(firsts.len(), g as usize);
    }

    #[test]
    fn closed_loop_feedback_through_workload() {
        let mut c = cfg(PrefixConfig::None);
        c.arrival = ArrivalConfig::ClosedLoop(ClosedLoopConfig {
            users: 3,
            think_time: DurationStr(SimDuration::from_secs(1)),
        });
        let mut w =
            SyntheticWorkload::new(&c, &RngStreams::new(5), SimDuration::from_secs(100), Path::new(".")).unwrap();
        let mut issued = vec![];
        while w.peek_time().is_some() {
            issued.push(w.pop());
        }
        assert_eq!(issued.len(), 3, "each user waits for its answer");
        assert!(w.mean_rate().is_none());
        let r = issued.remove(1);
        w.on_finished(r.arrival + SimDuration::from_secs(2), &r, Finish::Completed);
        let next = w.pop();
        assert_eq!(next.session, r.session);
        assert!(next.arrival >= r.arrival + SimDuration::from_secs(2));
        assert_eq!(next.id, RequestId(3));
        assert!(w.peek_time().is_none());
    }
}

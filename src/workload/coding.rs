//! The coding-assistant workload: `engineers` engineers in `repositories` repositories.
//!
//! **Arrivals.** Each engineer is an independent non-homogeneous Poisson process with rate
//! `requests_per_engineer_hour / 3600 × hourly_profile[hour]`, where hour = start_hour +
//! t/3600 (mod 24) and the profile is a step function (value i holds for the whole i-th
//! hour). All engineers share the same rate function, so their superposition is one Poisson
//! process with `engineers ×` that rate in which each arrival belongs to an engineer chosen
//! uniformly and independently; that is how it is generated (one exponential draw and one
//! uniform draw per request, no heap).
//!
//! **Repositories.** Engineer e works in repository e mod R (`repo_skew` = 0), or in one drawn
//! once with Zipf weight 1/(r+1)^skew. Each repository has one context, its length drawn once
//! from `repo_context`, registered as a chain: all requests of a repository share it.
//!
//! **Prompt of one request** = repository context (shared chain) + the engineer's current file
//! (private piece keyed by (engineer, file index); a new file, with a new length, every
//! `requests_per_file` requests) + the conversation history (question and answer pieces of
//! the previous turns) + a new question. After `max_history_turns` turns of history the next
//! request starts a new conversation (empty history), so a conversation has at most
//! `max_history_turns + 1` requests. The history survives file switches (the prefix cache
//! then only helps up to the repository context).
//!
//! **Simplification.** Engineers are open loop: they do not wait for answers. A request's
//! history quotes the previous answer by its `output_key` and length, both known when the
//! previous request was issued, even if that answer has not finished yet; such a request
//! simply finds fewer cached blocks.
//!
//! **Reuse promise.** A request whose successor (same engineer) opens a new file and starts a
//! new conversation shares no private block with any later request, and says so
//! (`private_reuse: false`), which spares the engine indexing blocks nobody can hit. A request
//! that opens a new file (or, without file context, starts a new conversation) also says that
//! no earlier request contains its first private block (`novel_private`).
//!
//! Lengths and engineer choices come from one stream (`workload.coding`) in arrival order, so
//! the request sequence is the same whatever the cluster does.

use super::arrival::{self, ArrivalProcess, Open, Piecewise};
use super::config::CodingAssistantConfig;
use super::length::LengthDist;
use super::{KeySpace, RequestSpec, Workload, WorkloadError, horizon, positive};
use crate::content::{ChainArena, ChainId, Content, Piece, SharedRef};
use crate::rng::{RngStreams, SimRng};
use crate::units::{RequestId, SimDuration, SimTime, Tokens};
use rand::RngExt;
use smallvec::SmallVec;
use std::path::Path;

pub struct CodingAssistantWorkload {
    arrival: Open<Piecewise>,
    engineers: Vec<Engineer>,
    repos: Vec<(ChainId, u32)>,
    arena: ChainArena,
    file_context: LengthDist,
    question: LengthDist,
    output: LengthDist,
    requests_per_file: u32,
    max_history: u32,
    rng: SimRng,
    next_id: u64,
    file_keys: KeySpace,
    question_keys: KeySpace,
    output_keys: KeySpace,
}

struct Engineer {
    repo: u32,
    /// Index of the current file; `None` before the first request.
    file: Option<u32>,
    file_len: u32,
    on_file: u32,
    /// Question and answer pieces of the conversation so far (at most `max_history_turns`).
    history: SmallVec<[Piece; 8]>,
    /// Requests issued in the current conversation.
    conv_requests: u32,
}

impl CodingAssistantWorkload {
    pub fn new(
        cfg: &CodingAssistantConfig,
        streams: &RngStreams,
        duration: SimDuration,
        base_dir: &Path,
    ) -> Result<Self, WorkloadError> {
        if cfg.engineers == 0 {
            return Err(WorkloadError::invalid("engineers", "must be at least 1"));
        }
        if cfg.repositories == 0 {
            return Err(WorkloadError::invalid("repositories", "must be at least 1"));
        }
        if cfg.requests_per_file == 0 {
            return Err(WorkloadError::invalid("requests_per_file", "must be at least 1"));
        }
        if !cfg.start_hour.is_finite() {
            return Err(WorkloadError::invalid("start_hour", "must be a finite number"));
        }
        if !(cfg.repo_skew.is_finite() && cfg.repo_skew >= 0.0) {
            return Err(WorkloadError::invalid("repo_skew", "must be a finite number ≥ 0"));
        }
        let rpeh = positive("requests_per_engineer_hour", cfg.requests_per_engineer_hour)?;
        let profile = arrival::check_profile("hourly_profile", &cfg.hourly_profile)?;
        let repo_context = LengthDist::new(&cfg.repo_context, "repo_context", base_dir, 1)?;
        let file_context = LengthDist::new(&cfg.file_context, "file_context", base_dir, 0)?;
        let question = LengthDist::new(&cfg.question, "question", base_dir, 1)?;
        let output = LengthDist::new(&cfg.output, "output", base_dir, 1)?;

        let scale = cfg.engineers as f64 * rpeh / 3600.0;
        let hz = horizon(duration);
        let p = Piecewise::daily_step(streams.stream("workload.arrival", 0), scale, &profile, cfg.start_hour);
        let rate = p.mean_rate(hz.as_secs_f64());
        let arrival = Open::new(p, hz, rate);

        let mut arena = ChainArena::new();
        let mut repo_rng = streams.stream("workload.coding.repo", 0);
        let repo_keys = KeySpace::new(streams, "workload.repo_context");
        let repos = (0..cfg.repositories)
            .map(|r| {
                let len = repo_context.sample(&mut repo_rng);
                (arena.register(vec![Piece { key: repo_keys.at(r as u64), start: 0, len }]), len)
            })
            .collect();
        let assign: Vec<u32> = if cfg.repo_skew == 0.0 {
            (0..cfg.engineers).map(|e| e % cfg.repositories).collect()
        } else {
            let mut cum = Vec::with_capacity(cfg.repositories as usize);
            let mut acc = 0.0;
            for r in 0..cfg.repositories {
                acc += 1.0 / ((r + 1) as f64).powf(cfg.repo_skew);
                cum.push(acc);
            }
            let mut rng = streams.stream("workload.coding.assign", 0);
            (0..cfg.engineers)
                .map(|_| {
                    let x = rng.random::<f64>() * acc;
                    cum.partition_point(|c| *c <= x).min(cum.len() - 1) as u32
                })
                .collect()
        };
        let engineers = assign
            .into_iter()
            .map(|repo| Engineer {
                repo,
                file: None,
                file_len: 0,
                on_file: 0,
                history: SmallVec::new(),
                conv_requests: 0,
            })
            .collect();
        Ok(CodingAssistantWorkload {
            arrival,
            engineers,
            repos,
            arena,
            file_context,
            question,
            output,
            requests_per_file: cfg.requests_per_file,
            max_history: cfg.max_history_turns,
            rng: streams.stream("workload.coding", 0),
            next_id: 0,
            file_keys: KeySpace::new(streams, "workload.file"),
            question_keys: KeySpace::new(streams, "workload.question"),
            output_keys: KeySpace::new(streams, "workload.output"),
        })
    }

    /// Repository of engineer `e`.
    pub fn repo_of(&self, e: u32) -> u32 {
        self.engineers[e as usize].repo
    }
}

impl Workload for CodingAssistantWorkload {
    #[inline]
    fn peek_time(&self) -> Option<SimTime> {
        self.arrival.peek()
    }

    fn pop(&mut self) -> RequestSpec {
        let a = self.arrival.pop().expect("pop called without a pending arrival");
        let id = self.next_id;
        self.next_id += 1;
        let e = self.rng.random_range(0..self.engineers.len());
        let eng = &mut self.engineers[e];
        let new_file = eng.file.is_none() || eng.on_file >= self.requests_per_file;
        if new_file {
            eng.file = Some(eng.file.map_or(0, |f| f + 1));
            eng.file_len = self.file_context.sample(&mut self.rng);
            eng.on_file = 0;
        }
        if eng.conv_requests > self.max_history {
            eng.history.clear();
            eng.conv_requests = 0;
        }
        // The first private block holds the start of a file never sent before, or (without a
        // file) of a new conversation's question: no earlier request contains it.
        let novel_private = if eng.file_len > 0 { new_file } else { eng.history.is_empty() };
        let q = self.question.sample(&mut self.rng);
        let output = self.output.sample(&mut self.rng);
        let output_key = self.output_keys.at(id);
        let question = Piece { key: self.question_keys.at(id), start: 0, len: q };

        let mut pieces: SmallVec<[Piece; 4]> = SmallVec::with_capacity(2 + eng.history.len());
        if eng.file_len > 0 {
            let key = self.file_keys.at2(e as u64, eng.file.unwrap() as u64);
            pieces.push(Piece { key, start: 0, len: eng.file_len });
        }
        pieces.extend_from_slice(&eng.history);
        pieces.push(question);
        let (chain, repo_len) = self.repos[eng.repo as usize];
        let input = repo_len + pieces.iter().map(|p| p.len).sum::<u32>();

        eng.on_file += 1;
        eng.conv_requests += 1;
        if eng.conv_requests <= self.max_history {
            eng.history.push(question);
            eng.history.push(Piece { key: output_key, start: 0, len: output });
        }
        // Only this engineer's next requests can contain this request's private blocks: the
        // file while it stays open, the history while the conversation goes on. When the next
        // request switches files and starts a new conversation, nothing private is reused.
        let private_reuse = eng.on_file < self.requests_per_file || eng.conv_requests <= self.max_history;
        RequestSpec {
            id: RequestId(id),
            arrival: a.time,
            input: Tokens(input),
            output: Tokens(output),
            content: Content { shared: Some(SharedRef { chain, tokens: repo_len }), pieces },
            output_key,
            session: Some(e as u64),
            group: Some(eng.repo),
            private_reuse,
            novel_private,
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
    use std::collections::HashMap;

    fn cfg() -> CodingAssistantConfig {
        CodingAssistantConfig {
            engineers: 100,
            repositories: 7,
            repo_context: LengthConfig::Lognormal(LognormalLen {
                mean: 8000.0,
                sigma: 0.5,
                min: Some(1000),
                max: Some(30000),
            }),
            file_context: LengthConfig::Uniform(UniformLen { min: 0, max: 2000 }),
            requests_per_file: 3,
            question: LengthConfig::Uniform(UniformLen { min: 10, max: 200 }),
            output: LengthConfig::Uniform(UniformLen { min: 1, max: 400 }),
            max_history_turns: 4,
            requests_per_engineer_hour: 20.0,
            hourly_profile: (0..24).map(|h| if (9..18).contains(&h) { 1.0 } else { [0.05, 0.2][h % 2] }).collect(),
            start_hour: 0.0,
            repo_skew: 0.0,
        }
    }

    fn all(c: &CodingAssistantConfig, seed: u64, secs: u64) -> (CodingAssistantWorkload, Vec<RequestSpec>) {
        let mut w =
            CodingAssistantWorkload::new(c, &RngStreams::new(seed), SimDuration::from_secs(secs), Path::new("."))
                .unwrap();
        let mut v = vec![];
        while w.peek_time().is_some() {
            v.push(w.pop());
        }
        (w, v)
    }

    #[test]
    fn requests_per_hour_follow_profile() {
        let c = cfg();
        let (w, v) = all(&c, 1, 86_400);
        let mut counts = [0f64; 24];
        for r in &v {
            counts[(r.arrival.as_secs_f64() / 3600.0) as usize] += 1.0;
        }
        for (h, (&got, &p)) in counts.iter().zip(&c.hourly_profile).enumerate() {
            let want = 100.0 * 20.0 * p;
            assert!((got - want).abs() < 5.0 * want.sqrt() + 1.0, "hour {h}: {got} vs {want}");
        }
        // Peak hours (9..18) against the 0.2-level off hours: ratio 5.
        let peak: f64 = counts[9..18].iter().sum::<f64>() / 9.0;
        let off: f64 = [1, 3, 5, 7, 19, 21, 23].iter().map(|&h| counts[h]).sum::<f64>() / 7.0;
        assert!((peak / off / 5.0 - 1.0).abs() < 0.1, "peak/off {}", peak / off);
        let total_want: f64 = c.hourly_profile.iter().map(|p| 2000.0 * p).sum();
        assert!((w.mean_rate().unwrap() * 86_400.0 - total_want).abs() < 1e-6);
        // Shifted start: the first hour is hour 9 (peak).
        let mut c2 = cfg();
        c2.start_hour = 9.0;
        let (_, v2) = all(&c2, 1, 3600);
        assert!((v2.len() as f64 - 2000.0).abs() < 5.0 * 2000f64.sqrt(), "{}", v2.len());
    }

    #[test]
    fn structure_of_prompts() {
        let c = cfg();
        let (w, v) = all(&c, 2, 6 * 3600);
        assert!(v.len() > 1000);
        assert_eq!(w.arena().len(), 7);
        let hashes = ChainHashes::build(w.arena(), 16);
        let mut repo_chain: HashMap<u32, ChainId> = HashMap::new();
        let mut per_eng: HashMap<u64, Vec<&RequestSpec>> = HashMap::new();
        for (i, r) in v.iter().enumerate() {
            assert_eq!(r.id.0, i as u64);
            let e = r.session.unwrap() as u32;
            let repo = r.group.unwrap();
            assert_eq!(repo, e % 7);
            assert_eq!(r.input.0, r.content.tokens(w.arena()));
            let sh = r.content.shared.unwrap();
            assert_eq!(sh.tokens, w.arena().tokens(sh.chain));
            assert_eq!(*repo_chain.entry(repo).or_insert(sh.chain), sh.chain, "one chain per repository");
            assert!(r.content.pieces.len() <= 2 + 2 * 4);
            per_eng.entry(r.session.unwrap()).or_default().push(r);
        }
        assert_eq!(repo_chain.len(), 7);
        // Within an engineer: consecutive requests in the same conversation and file extend
        // the previous prompt + answer; the file changes every 3 requests.
        let (mut a, mut b) = (vec![], vec![]);
        let mut extended = 0;
        for reqs in per_eng.values() {
            for (k, pair) in reqs.windows(2).enumerate() {
                let (prev, next) = (pair[0], pair[1]);
                let same_file = (k + 1) % 3 != 0;
                let same_conv = (k + 1) % 5 != 0;
                if same_file && same_conv {
                    let ans = Piece { key: prev.output_key, start: 0, len: prev.output.0 };
                    prev.content.block_hashes(w.arena(), &hashes, &[ans], &mut a);
                    next.content.block_hashes(w.arena(), &hashes, &[], &mut b);
                    assert_eq!(a[..], b[..a.len()]);
                    assert_eq!(next.input.0, prev.input.0 + prev.output.0 + next.content.pieces.last().unwrap().len);
                    extended += 1;
                }
                if !same_conv {
                    // A new conversation: repository context + file + question only.
                    assert!(next.content.pieces.len() <= 2);
                }
            }
        }
        assert!(extended > 300, "{extended}");
    }

    /// The reuse promise holds: no later request contains a private block (prompt or answer)
    /// of a request that said `private_reuse: false`. Checked with unsynchronised file and
    /// conversation cycles (3 and 5 requests) and with empty files.
    #[test]
    fn private_reuse_promise_holds() {
        for file_max in [2000, 0] {
            let mut c = cfg();
            c.file_context = LengthConfig::Uniform(UniformLen { min: 0, max: file_max });
            let (w, v) = all(&c, 4, 12 * 3600);
            let hashes = ChainHashes::build(w.arena(), 16);
            let mut in_prompt: HashMap<u64, Vec<usize>> = HashMap::new();
            let mut own = vec![];
            for (i, r) in v.iter().enumerate() {
                r.content.own_block_hashes(w.arena(), &hashes, &[], &mut own);
                for &h in &own {
                    in_prompt.entry(h).or_default().push(i);
                }
            }
            let mut promised = 0;
            for (i, r) in v.iter().enumerate().filter(|(_, r)| !r.private_reuse) {
                promised += 1;
                let ans = Piece { key: r.output_key, start: 0, len: r.output.0 };
                r.content.own_block_hashes(w.arena(), &hashes, &[ans], &mut own);
                for h in &own {
                    let users = in_prompt.get(h).map_or(&[][..], |u| &u[..]);
                    assert!(users.iter().all(|&j| j <= i), "request {i}: a private block reappears in {users:?}");
                }
            }
            assert!(promised > 100 && promised < v.len() / 2, "{promised} of {}", v.len());
            // Novelty: no earlier request's blocks (prompt or answer) contain the first private
            // block of a request that says `novel_private`.
            let mut seen: HashMap<u64, usize> = HashMap::new();
            let mut novel = 0;
            for (i, r) in v.iter().enumerate() {
                r.content.own_block_hashes(w.arena(), &hashes, &[], &mut own);
                if r.novel_private
                    && let Some(h) = own.first()
                {
                    novel += 1;
                    assert!(!seen.contains_key(h), "request {i}: first private block seen in {:?}", seen.get(h));
                }
                let ans = Piece { key: r.output_key, start: 0, len: r.output.0 };
                r.content.own_block_hashes(w.arena(), &hashes, &[ans], &mut own);
                for &h in &own {
                    seen.entry(h).or_insert(i);
                }
            }
            assert!(novel > 100 && novel < v.len() / 2, "{novel} novel of {}", v.len());
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let c = cfg();
        let key = |v: &[RequestSpec]| {
            v.iter().map(|r| (r.arrival, r.input, r.output, r.content.clone(), r.session)).collect::<Vec<_>>()
        };
        let (_, a) = all(&c, 5, 7200);
        let (_, b) = all(&c, 5, 7200);
        let (_, d) = all(&c, 6, 7200);
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&d));
    }

    #[test]
    fn skewed_repositories() {
        let mut c = cfg();
        c.repo_skew = 1.2;
        c.repositories = 20;
        let w =
            CodingAssistantWorkload::new(&c, &RngStreams::new(1), SimDuration::from_secs(10), Path::new(".")).unwrap();
        let mut counts = [0u32; 20];
        for e in 0..100 {
            counts[w.repo_of(e) as usize] += 1;
        }
        assert!(counts[0] > counts[10] + 5, "{counts:?}");
        assert_eq!(counts.iter().sum::<u32>(), 100);
    }

    #[test]
    fn pops_a_day_of_requests() {
        // Not timed: just exercises a large day (~200k requests) for panics and invariants.
        let mut c = cfg();
        c.engineers = 1000;
        let mut w =
            CodingAssistantWorkload::new(&c, &RngStreams::new(9), SimDuration::from_secs(86_400), Path::new("."))
                .unwrap();
        let mut n = 0u64;
        let mut last = SimTime::ZERO;
        while let Some(t) = w.peek_time() {
            assert!(t >= last);
            last = t;
            let r = w.pop();
            assert!(r.content.pieces.len() <= 10);
            n += 1;
        }
        assert!(n > 150_000, "{n}");
    }
}

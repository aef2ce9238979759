//! Hand-computed scheduler cases with a constant 10 ms step: exact timestamps.

use super::*;
use crate::content::{ChainArena, Content, Piece};
use crate::router::RouterConfig;
use crate::step_time::{Linear, LinearConfig};
use crate::units::{RequestId, Tokens};
use smallvec::smallvec;

const MS: u64 = 1_000_000;

thread_local! {
    /// Own block hashes the engine took from a session's previous request (this thread).
    pub(crate) static HASHES_REUSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub(crate) struct VecWorkload {
    pub reqs: VecDeque<RequestSpec>,
    pub arena: ChainArena,
}

impl Workload for VecWorkload {
    fn peek_time(&self) -> Option<SimTime> {
        self.reqs.front().map(|r| r.arrival)
    }
    fn pop(&mut self) -> RequestSpec {
        self.reqs.pop_front().unwrap()
    }
    fn arena(&self) -> &ChainArena {
        &self.arena
    }
}

#[derive(Default)]
pub(crate) struct Collect {
    pub recs: Vec<RequestRecord>,
    pub gaps: Vec<SimDuration>,
    pub itl_weighted: Vec<(SimDuration, u32)>,
    pub ticks: u32,
    /// Every replica sample of every tick.
    pub samples: Vec<ReplicaSample>,
}

impl Observer for Collect {
    fn on_request_done(&mut self, rec: &RequestRecord) {
        self.recs.push(rec.clone());
    }
    fn on_itl_gap(&mut self, gap: SimDuration) {
        self.gaps.push(gap);
    }
    fn on_steps(&mut self, _now: SimTime, _r: ReplicaId, _s: &BatchShape, d: &[SimDuration], w: u32) {
        for x in d {
            self.itl_weighted.push((*x, w));
        }
    }
    fn on_tick(&mut self, _now: SimTime, s: &[ReplicaSample]) {
        self.ticks += 1;
        self.samples.extend_from_slice(s);
    }
}

pub(crate) fn req(id: u64, at_ms: u64, key: u64, input: u32, output: u32) -> RequestSpec {
    RequestSpec {
        id: RequestId(id),
        arrival: SimTime(at_ms * MS),
        input: Tokens(input),
        output: Tokens(output),
        content: Content { shared: None, pieces: smallvec![Piece { key, start: 0, len: input }] },
        output_key: 1_000_000 + id,
        session: None,
        group: None,
        private_reuse: true,
        novel_private: false,
    }
}

pub(crate) fn params(replicas: u32, blocks: u32, bs: u32, budget: u32, seqs: u32) -> EngineParams {
    EngineParams {
        replicas,
        max_num_seqs: seqs,
        max_num_batched_tokens: budget,
        block_size: bs,
        num_gpu_blocks: blocks,
        enable_prefix_caching: true,
        enable_chunked_prefill: true,
        max_model_len: 100_000,
        arrivals_end: SimTime(u64::MAX / 2),
        hard_end: SimTime(u64::MAX / 2),
        tick: SimDuration::ZERO,
        max_run_steps: 4096,
    }
}

fn run_with(p: EngineParams, reqs: Vec<RequestSpec>, arena: ChainArena) -> (Vec<RequestRecord>, RunTotals, Collect) {
    run_with_router(p, reqs, arena, &RouterConfig::RoundRobin, LinearConfig { base_us: 10_000.0, ..Default::default() })
}

fn run_with_router(
    p: EngineParams,
    reqs: Vec<RequestSpec>,
    arena: ChainArena,
    router: &RouterConfig,
    model: LinearConfig,
) -> (Vec<RequestRecord>, RunTotals, Collect) {
    let model = Linear::new(&model);
    let mut obs = Collect::default();
    let totals = {
        let wl = Box::new(VecWorkload { reqs: reqs.into(), arena });
        let sim =
            Simulation::new(p, wl, router.build(&Default::default()).unwrap(), &model, &mut obs, &RngStreams::new(1));
        sim.run()
    };
    let mut recs = obs.recs.clone();
    recs.sort_by_key(|r| r.id);
    (recs, totals, obs)
}

fn t(ms: u64) -> Option<SimTime> {
    Some(SimTime(ms * MS))
}

#[test]
fn single_request_prefill_then_decodes() {
    for run_steps in [1, 4096] {
        let mut p = params(1, 100, 16, 2048, 256);
        p.max_run_steps = run_steps;
        let (recs, totals, obs) = run_with(p, vec![req(0, 0, 1, 10, 3)], ChainArena::new());
        let r = &recs[0];
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.scheduled, t(0));
        assert_eq!(r.first_token, t(10));
        assert_eq!(r.last_token, t(30));
        assert_eq!(r.tpot_s(), Some(0.010));
        assert_eq!(totals.replicas[0].steps, 3);
        assert_eq!(totals.replicas[0].generation_tokens, 3);
        assert_eq!(totals.replicas[0].prompt_tokens, 10);
        assert_eq!(totals.end, SimTime(30 * MS));
        // Two ITL gaps of one step each, whether stepped singly or as a run.
        let w: u32 = obs.itl_weighted.iter().map(|x| x.1).sum();
        assert_eq!(w, 2);
        assert!(obs.gaps.is_empty());
    }
}

#[test]
fn chunked_prefill_takes_ceil_steps() {
    // Budget 8, prompt 20: chunks 8, 8, 4; first token at the end of the third step.
    let (recs, totals, _) = run_with(params(1, 100, 4, 8, 256), vec![req(0, 0, 1, 20, 2)], ChainArena::new());
    assert_eq!(recs[0].first_token, t(30));
    assert_eq!(recs[0].last_token, t(40));
    assert_eq!(totals.replicas[0].steps, 4);
}

#[test]
fn decodes_go_first_and_prefill_fills_the_budget() {
    // A decodes from 10 ms; B (12 tokens) arrives at 15 ms, budget 8: at 20 ms the step holds
    // A's decode (1) + B's first chunk (7); at 30 ms A's decode + B's remaining 5 tokens.
    let reqs = vec![req(0, 0, 1, 4, 5), req(1, 15, 2, 12, 2)];
    let (recs, _, _) = run_with(params(1, 100, 4, 8, 256), reqs, ChainArena::new());
    assert_eq!(recs[0].first_token, t(10));
    assert_eq!(recs[0].last_token, t(50));
    assert_eq!(recs[1].scheduled, t(20));
    assert_eq!(recs[1].first_token, t(40));
    assert_eq!(recs[1].last_token, t(50));
}

#[test]
fn max_num_seqs_queues_fcfs() {
    let reqs = vec![req(0, 0, 1, 4, 2), req(1, 1, 2, 4, 2), req(2, 2, 3, 4, 2)];
    let (recs, _, _) = run_with(params(1, 100, 4, 100, 1), reqs, ChainArena::new());
    assert_eq!(recs[0].last_token, t(20));
    assert_eq!(recs[1].scheduled, t(20));
    assert_eq!(recs[1].last_token, t(40));
    assert_eq!(recs[2].scheduled, t(40));
    assert_eq!(recs[2].queue_s(), Some(0.038));
}

#[test]
fn preemption_takes_the_newest_and_it_resumes() {
    // 3 usable blocks of 4 tokens. Hand trace in the comments of the module tests.
    for run_steps in [1, 4096] {
        let mut p = params(1, 4, 4, 100, 256);
        p.max_run_steps = run_steps;
        let reqs = vec![req(0, 0, 1, 4, 6), req(1, 5, 2, 4, 6)];
        let (recs, totals, _) = run_with(p, reqs, ChainArena::new());
        let (a, b) = (&recs[0], &recs[1]);
        assert_eq!(a.preemptions, 0);
        assert_eq!(a.first_token, t(10));
        assert_eq!(a.last_token, t(60));
        assert_eq!(b.preemptions, 1, "B is the most recently admitted and is preempted at 20 ms");
        assert_eq!(b.scheduled, t(10));
        assert_eq!(b.first_token, t(20));
        // Resumed at 60 ms (after A frees), re-prefills 5 tokens, then 4 decodes.
        assert_eq!(b.last_token, t(110));
        assert_eq!(totals.replicas[0].preemptions, 1);
        // Prefix stats as vLLM exports them: A (4) + B (4); B's re-admission (5 tokens, 0 hits:
        // its block was evicted at 50 ms) goes to vLLM's separate `preempted_*` counters.
        assert_eq!(totals.replicas[0].prefix_queries, 8);
        assert_eq!(totals.replicas[0].prefix_hits, 0);
    }
}

#[test]
fn no_admissions_in_a_step_that_preempted() {
    // Same set-up plus C arriving at 21 ms: in steps where a preemption happened, nobody is
    // admitted; C must wait behind B (FCFS, B at the front of waiting).
    let mut p = params(1, 4, 4, 100, 256);
    p.max_run_steps = 1;
    let reqs = vec![req(0, 0, 1, 4, 6), req(1, 5, 2, 4, 6), req(2, 21, 3, 1, 1)];
    let (recs, _, _) = run_with(p, reqs, ChainArena::new());
    assert_eq!(recs[2].scheduled, t(60), "C is admitted with B once A frees its blocks");
}

#[test]
fn prefix_hits_between_requests_and_cap() {
    // Two identical 32-token prompts (block 16). The second hits 1 block (cap (32−1)/16 = 1).
    let reqs = vec![req(0, 0, 7, 32, 1), req(1, 100, 7, 32, 1)];
    let (recs, totals, _) = run_with(params(1, 100, 16, 2048, 256), reqs, ChainArena::new());
    assert_eq!(recs[0].cached_tokens, 0);
    assert_eq!(recs[1].cached_tokens, 16);
    assert_eq!(totals.replicas[0].prefix_queries, 64);
    assert_eq!(totals.replicas[0].prefix_hits, 16);
}

#[test]
fn shared_chain_prefix_hit_rate_of_a_known_workload() {
    // 10 requests sharing a 64-token chain + 16 private tokens, arriving 1 s apart.
    let mut arena = ChainArena::new();
    let c = arena.register(vec![Piece { key: 99, start: 0, len: 64 }]);
    let reqs: Vec<RequestSpec> = (0..10)
        .map(|i| {
            let mut r = req(i, i * 1000, 500 + i, 80, 2);
            r.content = Content {
                shared: Some(crate::content::SharedRef { chain: c, tokens: 64 }),
                pieces: smallvec![Piece { key: 500 + i, start: 0, len: 16 }],
            };
            r
        })
        .collect();
    let (recs, totals, _) = run_with(params(1, 100, 16, 2048, 256), reqs, arena);
    assert_eq!(recs[0].cached_tokens, 0);
    for r in &recs[1..] {
        assert_eq!(r.cached_tokens, 64);
    }
    assert_eq!(totals.replicas[0].prefix_hits, 9 * 64);
    assert_eq!(totals.replicas[0].prefix_queries, 10 * 80);
}

#[test]
fn multi_turn_reuses_generated_tokens() {
    // Turn 2's prompt = turn 1's prompt (16) + turn 1's answer (16) + 8 new: hits 2 blocks of 16.
    let r1 = req(0, 0, 5, 16, 16);
    let mut r2 = req(1, 1000, 5, 40, 1);
    r2.content = Content {
        shared: None,
        pieces: smallvec![
            Piece { key: 5, start: 0, len: 16 },
            Piece { key: r1.output_key, start: 0, len: 16 },
            Piece { key: 77, start: 0, len: 8 }
        ],
    };
    let (recs, _, _) = run_with(params(1, 100, 16, 2048, 256), vec![r1, r2], ChainArena::new());
    // The answer's 16th token is sampled but never computed, so block 2 (tokens 16..32) holds
    // only 15 computed tokens of the answer: it was not full, so only block 1 hits.
    assert_eq!(recs[1].cached_tokens, 16);
}

#[test]
fn max_model_len_rejects() {
    let mut p = params(1, 100, 16, 2048, 256);
    p.max_model_len = 100;
    let (recs, totals, _) = run_with(p, vec![req(0, 0, 1, 90, 20), req(1, 0, 2, 80, 20)], ChainArena::new());
    assert_eq!(recs[0].outcome, Outcome::Rejected);
    assert_eq!(recs[1].outcome, Outcome::Completed);
    assert_eq!(totals.submitted, 2);
}

#[test]
fn round_robin_spreads_over_replicas() {
    let reqs: Vec<_> = (0..6).map(|i| req(i, i, i + 10, 8, 2)).collect();
    let (recs, totals, _) = run_with(params(3, 100, 16, 2048, 256), reqs, ChainArena::new());
    let reps: Vec<u32> = recs.iter().map(|r| r.replica.unwrap().0).collect();
    assert_eq!(reps, vec![0, 1, 2, 0, 1, 2]);
    assert!(totals.replicas.iter().all(|r| r.completed == 2));
}

/// A random workload with shared chains, multi-turn reuse and tight KV, for property checks.
fn random_workload(seed: u64, n: u64) -> (Vec<RequestSpec>, ChainArena) {
    let mut rng = RngStreams::new(seed).stream("test", 0);
    let mut arena = ChainArena::new();
    let chains: Vec<_> =
        (0..3).map(|g| arena.register(vec![Piece { key: 9000 + g, start: 0, len: 40 + 30 * g as u32 }])).collect();
    let mut t = 0u64;
    let mut out = Vec::new();
    for i in 0..n {
        t += rng.random_range(0..8 * MS);
        let private = rng.random_range(1..60u32);
        let output = rng.random_range(1..40u32);
        let mut r = req(i, 0, 100 + i, private, output);
        r.arrival = SimTime(t);
        if rng.random_range(0..3) > 0 {
            let c = chains[rng.random_range(0..3usize)];
            let tokens = rng.random_range(1..=arena.tokens(c));
            r.content.shared = Some(crate::content::SharedRef { chain: c, tokens });
            r.input = Tokens(tokens + private);
        }
        out.push(r);
    }
    (out, arena)
}

#[test]
fn runs_of_decode_steps_match_single_stepping_exactly() {
    for seed in 1..6 {
        let (reqs, arena) = random_workload(seed, 300);
        let mut p1 = params(2, 40, 4, 64, 8);
        p1.max_run_steps = 1;
        let mut p2 = p1.clone();
        p2.max_run_steps = 4096;
        let (a, ta, _) = run_with(p1, reqs.clone(), arena.clone());
        let (b, tb, _) = run_with(p2, reqs, arena);
        assert_eq!(a, b, "seed {seed}: records differ between single steps and runs");
        for (x, y) in ta.replicas.iter().zip(&tb.replicas) {
            assert_eq!(x.prefix_hits, y.prefix_hits);
            assert_eq!(x.preemptions, y.preemptions);
            assert_eq!(x.steps, y.steps);
            assert_eq!(x.generation_tokens, y.generation_tokens);
        }
        assert!(ta.replicas.iter().map(|r| r.preemptions).sum::<u64>() > 0, "seed {seed}: want KV pressure");
        assert!(ta.replicas.iter().map(|r| r.prefix_hits).sum::<u64>() > 0, "seed {seed}: want hits");
    }
}

#[test]
fn conservation_and_littles_law_on_a_long_run() {
    let (reqs, arena) = random_workload(42, 3000);
    let n = reqs.len();
    let (recs, totals, _) = run_with(params(3, 200, 4, 256, 32), reqs, arena);
    assert_eq!(recs.len(), n, "every request is recorded exactly once");
    let mut ids: Vec<u64> = recs.iter().map(|r| r.id.0).collect();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert!(recs.iter().all(|r| r.outcome == Outcome::Completed));
    assert_eq!(totals.submitted, n as u64);
    let generated: u64 = totals.replicas.iter().map(|r| r.generation_tokens).sum();
    assert_eq!(generated, recs.iter().map(|r| r.output_tokens as u64).sum::<u64>());
    // Little's law: mean number in system = arrival rate × mean time in system, computed two
    // ways over the same span (time-integral of the in-system count vs Σ E2E).
    let span = totals.end.as_secs_f64();
    let sum_e2e: f64 = recs.iter().map(|r| r.e2e_s().unwrap()).sum();
    let mut evs: Vec<(u64, i64)> =
        recs.iter().flat_map(|r| [(r.arrival.0, 1i64), (r.last_token.unwrap().0, -1i64)]).collect();
    evs.sort();
    let (mut area, mut cur, mut last) = (0.0f64, 0i64, 0u64);
    for (t, d) in evs {
        area += cur as f64 * (t - last) as f64 / 1e9;
        cur += d;
        last = t;
    }
    let l = area / span;
    let lambda_w = (n as f64 / span) * (sum_e2e / n as f64);
    assert!((l - lambda_w).abs() / l < 1e-9, "L = {l}, λW = {lambda_w}");
}

#[test]
fn same_seed_is_identical_and_hard_end_keeps_in_flight() {
    let (reqs, arena) = random_workload(7, 500);
    let mut p = params(2, 60, 4, 64, 8);
    p.hard_end = SimTime(500 * MS);
    let (a, _, _) = run_with(p.clone(), reqs.clone(), arena.clone());
    let (b, _, _) = run_with(p, reqs.clone(), arena);
    assert_eq!(a, b);
    let inflight = a.iter().filter(|r| r.outcome == Outcome::InFlight).count();
    assert!(inflight > 0, "requests arriving before the hard end but unfinished are in flight");
    assert_eq!(a.len(), reqs.iter().filter(|r| r.arrival <= SimTime(500 * MS)).count());
}

/// The EPP's default profile (scrapes, decision latency): what runs must not disturb.
fn epp_default() -> RouterConfig {
    serde_saphyr::from_str("{kind: epp, profile: default}").unwrap()
}

/// Step times that grow with the context, so every step of a run has its own duration.
fn context_model() -> LinearConfig {
    LinearConfig { base_us: 7_000.0, per_prefill_token_us: 20.0, per_decode_seq_us: 150.0, per_context_token_ns: 900.0 }
}

type Outcomes = (Vec<RequestRecord>, RunTotals, Collect);

/// `p` run with single steps (first) and with runs of decode steps (second).
fn single_and_runs(
    p: &EngineParams,
    reqs: &[RequestSpec],
    arena: &ChainArena,
    router: &RouterConfig,
    model: &LinearConfig,
) -> (Outcomes, Outcomes) {
    let run = |steps: u32| {
        let p = EngineParams { max_run_steps: steps, ..p.clone() };
        run_with_router(p, reqs.to_vec(), arena.clone(), router, model.clone())
    };
    (run(1), run(4096))
}

#[test]
fn runs_match_single_stepping_with_epp_scrapes_latency_and_ticks() {
    // Context-dependent step times, a scraping router with decision latency, and ticks: every
    // observation and routing decision must be the same whether decode steps run singly or
    // in runs.
    let (epp, model) = (epp_default(), context_model());
    for seed in 1..4 {
        let (reqs, arena) = random_workload(seed, 400);
        let mut p = params(3, 50, 4, 64, 8);
        p.tick = SimDuration::from_millis(100);
        for router in [&epp, &RouterConfig::RoundRobin] {
            let ((a, ta, oa), (b, tb, ob)) = single_and_runs(&p, &reqs, &arena, router, &model);
            assert_eq!(a, b, "seed {seed}: records differ between single steps and runs");
            assert_eq!(
                ta.replicas.iter().map(|r| r.steps).collect::<Vec<_>>(),
                tb.replicas.iter().map(|r| r.steps).collect::<Vec<_>>()
            );
            assert_eq!(oa.ticks, ob.ticks);
            let wa: u64 = oa.itl_weighted.iter().map(|x| x.1 as u64).sum::<u64>() + oa.gaps.len() as u64;
            let wb: u64 = ob.itl_weighted.iter().map(|x| x.1 as u64).sum::<u64>() + ob.gaps.len() as u64;
            let expect: u64 = a.iter().map(|r| r.output_tokens as u64 - 1).sum();
            assert_eq!(wa, expect, "single stepping: one ITL sample per token after the first ({})", router.label());
            assert_eq!(wb, expect, "runs: one ITL sample per token after the first ({})", router.label());
        }
    }
}

#[test]
fn skipping_the_index_for_unshared_private_blocks_changes_nothing() {
    // random_workload's private pieces and answers are unique per request, so the workload may
    // promise `private_reuse: false`; the results must be identical.
    let (reqs, arena) = random_workload(9, 600);
    let altered = |v: &[RequestSpec], f: fn(&mut RequestSpec)| -> Vec<RequestSpec> {
        v.iter()
            .cloned()
            .map(|mut r| {
                f(&mut r);
                r
            })
            .collect()
    };
    let unshared = altered(&reqs, |r| r.private_reuse = false);
    // Their first private blocks are new too (unique keys), so they may also promise
    // `novel_private`: the engine then holds their blocks anonymously and hashes them only
    // when preempted.
    let novel = altered(&unshared, |r| r.novel_private = true);
    // Ticks every 5 ms: the cached-block counts (which anonymous blocks keep by count) agree too.
    let mut p = params(2, 50, 4, 64, 8);
    p.tick = SimDuration::from_millis(5);
    let (a, ta, oa) = run_with(p.clone(), reqs, arena.clone());
    assert!(oa.samples.len() > 500 && oa.samples.iter().any(|s| s.cached_blocks > 20));
    for variant in [unshared, novel] {
        let (b, tb, ob) = run_with(p.clone(), variant, arena.clone());
        if let Some(i) = (0..oa.samples.len().max(ob.samples.len())).find(|&i| oa.samples.get(i) != ob.samples.get(i)) {
            panic!("sample {i} differs:\n{:?}\n{:?}", oa.samples.get(i), ob.samples.get(i));
        }
        if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
            panic!("first difference:\n{x:?}\n{y:?}");
        }
        assert_eq!(a, b);
        assert_eq!(ta, tb);
    }
    assert!(ta.replicas.iter().map(|r| r.preemptions).sum::<u64>() > 0, "resumes must find their own blocks");
}

/// Runs much longer than a planning chunk (`RUN_CHUNK` steps), read mid-way by scrapes and
/// ticks, truncated by arrivals and cut by the hard end, give the same results as single
/// stepping.
#[test]
fn long_lazily_planned_runs_match_single_stepping() {
    let (epp, model) = (epp_default(), context_model());
    for seed in 1..4 {
        let (mut reqs, arena) = random_workload(seed, 120);
        let mut rng = RngStreams::new(seed).stream("long-runs", 0);
        let mut t = 0u64;
        for r in reqs.iter_mut() {
            // Sparse arrivals and long answers: runs of hundreds of steps.
            t += rng.random_range(0..900 * MS);
            r.arrival = SimTime(t);
            r.output = Tokens(rng.random_range(50..400u32));
        }
        // The first request is alone for 4 s: a single run of 299 steps (> 9 chunks).
        reqs[0].output = Tokens(300);
        for r in reqs.iter_mut().skip(1) {
            r.arrival = SimTime(r.arrival.0 + 4_000 * MS);
        }
        for hard_end in [SimTime(u64::MAX / 2), SimTime(20_000 * MS + 123_457)] {
            let mut p = params(2, 400, 4, 64, 8);
            p.tick = SimDuration::from_millis(100);
            p.hard_end = hard_end;
            for router in [&epp, &RouterConfig::RoundRobin] {
                let ((a, ta, oa), (b, tb, ob)) = single_and_runs(&p, &reqs, &arena, router, &model);
                assert_eq!(a, b, "seed {seed}, {}: records differ between single steps and runs", router.label());
                assert_eq!(ta, tb, "seed {seed}, {}: totals differ", router.label());
                assert_eq!(oa.ticks, ob.ticks);
                assert_eq!(oa.gaps, ob.gaps);
                let first = &a[0];
                assert_eq!(first.output_tokens, 300);
                assert!(first.last_token.unwrap().0 < 4_000 * MS, "the first request runs alone");
                if hard_end.0 < u64::MAX / 2 {
                    assert!(a.iter().any(|r| r.outcome == Outcome::InFlight), "the hard end cuts runs");
                }
            }
        }
    }
}

/// A scraping router's view computed lazily (static fleet) equals the one its scrape events
/// gave: same routes, records, ticks, ITL gaps and totals (the simulated span included), with
/// the scrape latency zero, short or the default, arrivals ending before the last requests
/// finish, and a hard end cutting busy replicas.
#[test]
fn lazy_scrapes_match_scrape_events() {
    let model = context_model();
    let routers: Vec<RouterConfig> = [
        "{kind: epp, profile: default}",
        "{kind: epp, profile: default, scrape_interval: 7ms, scrape_latency: 3ms}",
        "{kind: epp, profile: default, scrape_interval: 20ms, scrape_latency: 0ms, decision_latency: 0ms}",
        "{kind: epp, profile: default, scrape_interval: 10ms, scrape_latency: 9ms}",
    ]
    .iter()
    .map(|y| serde_saphyr::from_str(y).unwrap())
    .collect();
    let mut hard_end_cuts = 0;
    for seed in 1..4 {
        let (reqs, arena) = random_workload(seed, 400);
        let last = reqs.last().unwrap().arrival;
        for (arrivals_end, hard_end) in [
            (SimTime(u64::MAX / 2), SimTime(u64::MAX / 2)),
            (SimTime(last.0 - 300 * MS), SimTime(last.0 + 7 * MS + 12_345)),
            (SimTime(last.0 / 2), SimTime(last.0 / 2 + 40 * MS + 1)),
            (SimTime(u64::MAX / 2), SimTime(last.0 / 3 + 3 * MS + 777)),
        ] {
            let mut p = params(3, 50, 4, 64, 8);
            p.tick = SimDuration::from_millis(25);
            p.arrivals_end = arrivals_end;
            p.hard_end = hard_end;
            for router in &routers {
                let run = |eager: bool| {
                    let m = Linear::new(&model);
                    let mut obs = Collect::default();
                    let totals = {
                        let wl = Box::new(VecWorkload { reqs: reqs.clone().into(), arena: arena.clone() });
                        let mut sim = Simulation::new(
                            p.clone(),
                            wl,
                            router.build(&Default::default()).unwrap(),
                            &m,
                            &mut obs,
                            &RngStreams::new(seed),
                        );
                        if eager {
                            sim = sim.with_eager_scrapes();
                        } else {
                            sim.setup_lazy_scrapes();
                            assert!(sim.lazy_scrapes.is_some(), "lazy scrapes in a static fleet");
                        }
                        sim.run()
                    };
                    (totals, obs)
                };
                let (te, oe) = run(true);
                let (tl, ol) = run(false);
                let what = format!("seed {seed}, hard end {:?}, {router:?}", hard_end);
                if let Some((x, y)) = oe.recs.iter().zip(&ol.recs).find(|(x, y)| x != y) {
                    panic!("{what}: first record difference:\n{x:?}\n{y:?}");
                }
                assert_eq!(oe.recs.len(), ol.recs.len(), "{what}");
                assert_eq!(oe.samples, ol.samples, "{what}: tick samples");
                assert_eq!(oe.gaps, ol.gaps, "{what}: ITL gaps");
                assert_eq!(oe.itl_weighted, ol.itl_weighted, "{what}: steps");
                assert_eq!(te, tl, "{what}: totals");
                if oe.recs.iter().any(|r| r.outcome == Outcome::InFlight) {
                    hard_end_cuts += 1;
                }
            }
        }
    }
    assert!(hard_end_cuts >= 24, "the hard end cut busy replicas in {hard_end_cuts} runs");
}

/// Conversations whose turns repeat the previous prompt and answer (sometimes cut back to the
/// file alone, sometimes on another file): hashing a turn from its session's previous hashes
/// gives the hashes (checked in test builds at every reuse) and the results of hashing every
/// turn from scratch (requests without a session).
#[test]
fn session_hash_reuse_changes_nothing() {
    let mut rng = RngStreams::new(3).stream("test", 0);
    let mut arena = ChainArena::new();
    let chains: Vec<_> =
        (0..2).map(|g| arena.register(vec![Piece { key: 9000 + g, start: 0, len: 37 + 20 * g as u32 }])).collect();
    let mut reqs = Vec::new();
    let mut t = 0u64;
    // Per session: chain, file key, history.
    let mut sessions: Vec<(usize, u64, Vec<Piece>)> = (0..12).map(|s| (s % 2, 500 + s as u64, Vec::new())).collect();
    for i in 0..400u64 {
        t += rng.random_range(0..6 * MS);
        let s = rng.random_range(0..sessions.len());
        let (c, file, history) = &mut sessions[s];
        match rng.random_range(0..10) {
            0 => history.clear(),
            1 => {
                *file += 100;
                history.clear();
            }
            _ => {}
        }
        let question = Piece { key: 20_000 + i, start: 0, len: rng.random_range(1..12u32) };
        let mut r = req(i, 0, 0, 0, rng.random_range(1..20u32));
        let mut pieces: smallvec::SmallVec<[Piece; 4]> = smallvec![Piece { key: *file, start: 0, len: 21 }];
        pieces.extend(history.iter().copied());
        pieces.push(question);
        let shared = crate::content::SharedRef { chain: chains[*c], tokens: arena.tokens(chains[*c]) - (i % 3) as u32 };
        r.input = Tokens(shared.tokens + pieces.iter().map(|p| p.len).sum::<u32>());
        r.content = Content { shared: Some(shared), pieces };
        r.arrival = SimTime(t);
        r.session = Some(s as u64);
        history.extend([question, Piece { key: r.output_key, start: 0, len: r.output.0 }]);
        reqs.push(r);
    }
    let anonymous: Vec<RequestSpec> = reqs.iter().cloned().map(|r| RequestSpec { session: None, ..r }).collect();
    let p = params(2, 60, 4, 64, 8);
    HASHES_REUSED.with(|n| n.set(0));
    let (a, ta, _) = run_with(p.clone(), reqs, arena.clone());
    // (Each reuse was also checked against hashing from scratch, in `hash_own_memo`.)
    let reused = HASHES_REUSED.with(|n| n.get());
    assert!(reused > 2000, "turns reuse their session's hashes ({reused})");
    let (b, tb, _) = run_with(p, anonymous, arena);
    assert_eq!(HASHES_REUSED.with(|n| n.get()), reused, "no reuse without sessions");
    let strip =
        |v: &[RequestRecord]| v.iter().map(|r| RequestRecord { session: None, ..r.clone() }).collect::<Vec<_>>();
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(ta, tb);
    let hits: u64 = ta.replicas.iter().map(|r| r.prefix_hits).sum();
    let queries: u64 = ta.replicas.iter().map(|r| r.prefix_queries).sum();
    assert!(hits * 4 > queries, "turns hit their history ({hits} of {queries} tokens)");
    assert!(ta.replicas.iter().map(|r| r.preemptions).sum::<u64>() > 0, "preempted turns resume");
}

use super::config::{ApproxSpec, EppVersion, named_profile, parse_config_yaml};
use super::filters::Filter;
use super::pickers::Picker;
use super::scorers::Scorer;
use super::*;
use crate::content::{Content, SharedRef};
use crate::metrics::ReplicaSample;
use crate::rng::RngStreams;
use crate::router::RouterConfig;
use crate::units::Tokens;
use smallvec::smallvec;

fn cand(id: u32, waiting: u32, kv: f64, in_flight: u32) -> Candidate {
    Candidate {
        id: ReplicaId(id),
        scraped: ReplicaSample {
            replica: ReplicaId(id),
            waiting,
            running: 0,
            kv_usage: kv,
            num_gpu_blocks: 10_000,
            ..Default::default()
        },
        in_flight,
        block_size: 16,
    }
}

fn rng(seed: u64) -> SimRng {
    RngStreams::new(seed).stream("router", 0)
}

/// A request: `shared` tokens of `chain` then `private` tokens of its own key.
fn req(id: u64, chain: Option<(crate::content::ChainId, u32)>, private: u32, session: Option<u64>) -> RequestSpec {
    let content = Content {
        shared: chain.map(|(c, t)| SharedRef { chain: c, tokens: t }),
        pieces: if private > 0 { smallvec![Piece { key: 1000 + id, start: 0, len: private }] } else { smallvec![] },
    };
    let input = content.pieces.iter().map(|p| p.len).sum::<u32>() + chain.map_or(0, |c| c.1);
    RequestSpec {
        id: RequestId(id),
        arrival: SimTime::ZERO,
        input: Tokens(input),
        output: Tokens(10),
        content,
        output_key: 77,
        session,
        group: None,
        private_reuse: true,
        novel_private: false,
    }
}

fn arena_with_chain(tokens: u32) -> (ChainArena, crate::content::ChainId) {
    let mut a = ChainArena::new();
    let c = a.register(vec![Piece { key: 1, start: 0, len: tokens }]);
    (a, c)
}

fn router_from_yaml(yaml: &str, version: Option<EppVersion>) -> EppRouter {
    let cfg = EppConfig { config: Some(parse_config_yaml(yaml).unwrap()), version, ..Default::default() };
    EppRouter::from_config(&cfg, &RouterBuildCtx::default()).unwrap()
}

fn router_profile(name: &str) -> EppRouter {
    let cfg = EppConfig { profile: Some(name.into()), ..Default::default() };
    EppRouter::from_config(&cfg, &RouterBuildCtx::default()).unwrap()
}

fn single(ty: &str) -> String {
    format!("plugins: [{{type: {ty}}}]\nschedulingProfiles:\n- name: default\n  plugins: [{{pluginRef: {ty}}}]\n")
}

struct CtxParts {
    matched: Vec<u32>,
    longest: Vec<f64>,
    inflight: Vec<u64>,
    sessions: FastMap<u64, ReplicaId>,
    lru: Vec<ReplicaId>,
}

impl CtxParts {
    fn new(n: usize) -> Self {
        CtxParts { matched: vec![0; n], longest: vec![0.0; n], inflight: vec![0; n], sessions: fast_map(), lru: vec![] }
    }
    fn ctx<'a>(&'a self, cands: &'a [Candidate], r: &'a RequestSpec, total: u32) -> CycleCtx<'a> {
        CycleCtx {
            cands,
            req: r,
            approx: Some(ApproxMatch { matched: &self.matched, total, block_tokens: 16 }),
            precise: Some(PreciseMatch { longest: &self.longest, total }),
            inflight_tokens: &self.inflight,
            sessions: &self.sessions,
            nohit_lru: &self.lru,
            cold: !self.matched.iter().any(|&m| m > 0),
        }
    }
}

fn score(s: &Scorer, ctx: &CycleCtx, eps: &[usize]) -> Vec<f64> {
    let mut out = vec![];
    s.score(ctx, eps, &mut out);
    out
}

#[test]
fn queue_and_running_scorers_are_min_max_relative() {
    let cands = [cand(0, 0, 0.0, 0), cand(1, 1, 0.0, 0), cand(2, 3, 0.0, 0)];
    let parts = CtxParts::new(3);
    let r = req(1, None, 10, None);
    let ctx = parts.ctx(&cands, &r, 0);
    let q = score(&Scorer::Queue, &ctx, &[0, 1, 2]);
    assert_eq!(q, vec![1.0, 2.0 / 3.0, 0.0]);
    // Two pods at queue 0 and 1: the nearly idle one scores 0 (relative, not absolute).
    assert_eq!(score(&Scorer::Queue, &ctx, &[0, 1]), vec![1.0, 0.0]);
    // Over the filtered set only.
    assert_eq!(score(&Scorer::Queue, &ctx, &[1, 2]), vec![1.0, 0.0]);
    // Single candidate and all-equal → 1.0; empty → nothing.
    assert_eq!(score(&Scorer::Queue, &ctx, &[2]), vec![1.0]);
    let eq = [cand(0, 4, 0.0, 0), cand(1, 4, 0.0, 0)];
    let ctx2 = parts.ctx(&eq, &r, 0);
    assert_eq!(score(&Scorer::Queue, &ctx2, &[0, 1]), vec![1.0, 1.0]);
    assert!(score(&Scorer::Queue, &ctx, &[]).is_empty());
    let mut run = cands;
    run[0].scraped.running = 10;
    run[1].scraped.running = 5;
    run[2].scraped.running = 0;
    let ctx3 = parts.ctx(&run, &r, 0);
    assert_eq!(score(&Scorer::RunningRequests, &ctx3, &[0, 1, 2]), vec![0.0, 0.5, 1.0]);
}

#[test]
fn kv_utilization_scorer_is_absolute() {
    let cands = [cand(0, 0, 0.25, 0), cand(1, 0, 0.25, 0), cand(2, 0, 1.0, 0)];
    let parts = CtxParts::new(3);
    let r = req(1, None, 10, None);
    let ctx = parts.ctx(&cands, &r, 0);
    assert_eq!(score(&Scorer::KvUtilization, &ctx, &[0, 1, 2]), vec![0.75, 0.75, 0.0]);
    assert_eq!(score(&Scorer::KvUtilization, &ctx, &[2]), vec![0.0], "absolute even alone");
}

#[test]
fn prefix_scorers_match_over_total() {
    let cands = [cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0), cand(2, 0, 0.0, 0), cand(3, 0, 0.0, 0)];
    let mut parts = CtxParts::new(4);
    parts.matched = vec![0, 2, 4, 8];
    parts.longest = vec![0.0, 2.0, 4.0, 4.0];
    let r = req(1, None, 128, None);
    let ctx = parts.ctx(&cands, &r, 8);
    assert_eq!(score(&Scorer::Prefix, &ctx, &[0, 1, 2, 3]), vec![0.0, 0.25, 0.5, 1.0]);
    let ctx0 = parts.ctx(&cands, &r, 0);
    assert_eq!(score(&Scorer::Prefix, &ctx0, &[0, 1]), vec![0.0, 0.0], "no blocks → 0");
    // Precise, min-max (≤ v0.8): over pods with a hit; no hit → 0; equal hits → 1.
    let mm = Scorer::PrecisePrefix { absolute: false };
    assert_eq!(score(&mm, &ctx, &[0, 1, 2, 3]), vec![0.0, 0.0, 1.0, 1.0]);
    assert_eq!(score(&mm, &ctx, &[0, 1]), vec![0.0, 1.0], "a single pod with any hit scores 1");
    assert_eq!(score(&mm, &ctx, &[2, 3]), vec![1.0, 1.0]);
    // Precise, absolute (2026): min(1, blocks / prompt blocks).
    let abs = Scorer::PrecisePrefix { absolute: true };
    assert_eq!(score(&abs, &ctx, &[0, 1, 2, 3]), vec![0.0, 0.25, 0.5, 0.5]);
}

#[test]
fn token_load_load_aware_and_active_request_scorers() {
    let cands = [cand(0, 0, 0.0, 3), cand(1, 64, 0.0, 1), cand(2, 200, 0.0, 0)];
    let mut parts = CtxParts::new(3);
    parts.inflight = vec![50, 0, 90];
    parts.matched = vec![0, 0, 1]; // pod 2 has the first 16 tokens cached
    let r = req(1, None, 30, None);
    let ctx = parts.ctx(&cands, &r, 2);
    let s = score(&Scorer::TokenLoad { threshold: 100.0 }, &ctx, &[0, 1, 2]);
    // (50+30)/100, (0+30)/100, (90+14)/100 capped at 1
    assert!((s[0] - 0.2).abs() < 1e-12 && (s[1] - 0.7).abs() < 1e-12 && s[2] == 0.0, "{s:?}");
    let la = score(&Scorer::LoadAware { threshold: 128.0 }, &ctx, &[0, 1, 2]);
    assert_eq!(la, vec![0.5, 0.25, 0.0]);
    let ar = score(&Scorer::ActiveRequest { idle_threshold: 0, max_busy_score: 1.0 }, &ctx, &[0, 1, 2]);
    assert_eq!(ar, vec![0.0, 2.0 / 3.0, 1.0]);
}

#[test]
fn no_hit_lru_scorer_ranks_cold_requests() {
    let cands = [cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0), cand(2, 0, 0.0, 0)];
    let mut parts = CtxParts::new(3);
    let r = req(1, None, 30, None);
    let s = Scorer::NoHitLru { lru_size: 1024 };
    assert_eq!(score(&s, &parts.ctx(&cands, &r, 2), &[0, 1, 2]), vec![1.0, 0.5, 0.0], "never used: by order");
    parts.lru = vec![ReplicaId(2), ReplicaId(0)]; // 2 used longest ago, 0 most recently
    assert_eq!(score(&s, &parts.ctx(&cands, &r, 2), &[0, 1, 2]), vec![0.0, 1.0, 0.5]);
    assert_eq!(score(&s, &parts.ctx(&cands, &r, 2), &[0]), vec![1.0], "single pod");
    parts.matched = vec![0, 1, 0];
    assert_eq!(score(&s, &parts.ctx(&cands, &r, 2), &[0, 1, 2]), vec![0.5, 0.5, 0.5], "warm → neutral");
}

#[test]
fn max_score_picker_breaks_ties_uniformly_and_deterministically() {
    let scores = [1.0, 3.0, 3.0];
    let draw = |seed| {
        let mut g = rng(seed);
        (0..400).map(|_| Picker::MaxScore.pick(&scores, &mut g)).collect::<Vec<_>>()
    };
    let a = draw(7);
    assert!(!a.contains(&0));
    let ones = a.iter().filter(|&&i| i == 1).count();
    assert!((150..250).contains(&ones), "both tied endpoints chosen about equally: {ones}");
    assert_eq!(a, draw(7), "same seed → same picks");
    assert_ne!(a, draw(8));
    assert_eq!(Picker::MaxScore.pick(&[0.1, 0.9, 0.3], &mut rng(1)), 1);
}

#[test]
fn weighted_random_and_random_pickers() {
    let mut g = rng(3);
    let picks: Vec<usize> = (0..300).map(|_| Picker::WeightedRandom.pick(&[0.0, 1.0, 3.0], &mut g)).collect();
    assert!(!picks.contains(&0), "score 0 never wins unless all are 0");
    let threes = picks.iter().filter(|&&i| i == 2).count();
    assert!(threes > 180, "P(key3 > key1) = 3/4: {threes}");
    let all0: Vec<usize> = (0..300).map(|_| Picker::WeightedRandom.pick(&[0.0, 0.0, 0.0], &mut g)).collect();
    assert!((0..3).all(|i| all0.contains(&i)));
    let rnd: Vec<usize> = (0..300).map(|_| Picker::Random.pick(&[9.0, 0.0, 0.0], &mut g)).collect();
    assert!((0..3).all(|i| rnd.contains(&i)));
}

#[test]
fn default_profile_combines_weights_exactly() {
    let (arena, c) = arena_with_chain(256);
    let mut r = router_profile("default");
    assert_eq!(r.version(), EppVersion::V1_3);
    // Seed the approximate index: pod 2 served the same prompt before (it was the only pod).
    let first = req(1, Some((c, 256)), 0, None);
    let only2 = [cand(2, 0, 0.0, 0)];
    assert_eq!(r.route(SimTime::ZERO, &first, &arena, &only2, &mut rng(1)), ReplicaId(2));
    // queue [0, 2, 4] → [1, 0.5, 0]; kv [0.5, 0.2, 0.0] → [0.5, 0.8, 1]; prefix [0, 0, 1].
    let cands = [cand(0, 0, 0.5, 0), cand(1, 2, 0.2, 0), cand(2, 4, 0.0, 1)];
    let again = req(2, Some((c, 256)), 0, None);
    let pick = r.route(SimTime::ZERO, &again, &arena, &cands, &mut rng(1));
    let (eps, totals) = r.last_totals();
    assert_eq!(eps, &[0, 1, 2]);
    let want = [2.0 * 1.0 + 2.0 * 0.5, 2.0 * 0.5 + 2.0 * 0.8, 2.0 * 1.0 + 3.0 * 1.0];
    for (t, w) in totals.iter().zip(want) {
        assert!((t - w).abs() < 1e-12, "{totals:?} vs {want:?}");
    }
    assert_eq!(pick, ReplicaId(2));
    // GIE v1.0 chart weights 1/1/1 with a half match on pod 2: queue [1, 0.5, 0],
    // kv [0.6, 0.8, 1], prefix [0, 0, 0.5] → 1.6 / 1.3 / 1.5, so pod 0 wins.
    let mut r1 = router_profile("default-v1.0");
    r1.route(SimTime::ZERO, &first, &arena, &only2, &mut rng(1));
    let half = req(3, Some((c, 128)), 128, None); // 8 of 16 blocks cached on pod 2
    let cands = [cand(0, 0, 0.4, 0), cand(1, 2, 0.2, 0), cand(2, 4, 0.0, 1)];
    assert_eq!(r1.route(SimTime::ZERO, &half, &arena, &cands, &mut rng(1)), ReplicaId(0));
    let (_, t1) = r1.last_totals();
    assert!((t1[0] - 1.6).abs() < 1e-12 && (t1[1] - 1.3).abs() < 1e-12 && (t1[2] - 1.5).abs() < 1e-12, "{t1:?}");
}

#[test]
fn router_uses_only_stale_scraped_values() {
    // Both routes see the same scrape (pod 0 idle, pod 1 queued); the in-flight counts move
    // but the load profile does not read them: a thundering herd onto pod 0.
    let arena = ChainArena::new();
    let mut r = router_profile("load");
    let mut cands = [cand(0, 0, 0.1, 0), cand(1, 5, 0.1, 0)];
    let mut g = rng(1);
    for i in 0..3 {
        assert_eq!(r.route(SimTime(i), &req(i, None, 64, None), &arena, &cands, &mut g), ReplicaId(0));
        cands[0].in_flight += 1;
    }
    // A scorer on the router's own (fresh) in-flight counts reacts immediately.
    let mut ar = router_from_yaml(&single("active-request-scorer"), None);
    assert_eq!(ar.route(SimTime(9), &req(9, None, 64, None), &arena, &cands, &mut g), ReplicaId(1));
    assert_eq!(
        r.scrape(),
        Some(ScrapeConfig { interval: SimDuration::from_millis(50), latency: SimDuration::from_millis(5) })
    );
    assert_eq!(r.decision_latency(), SimDuration::from_millis(2));
    assert_eq!(r.kv_events(), None);
}

/// Routes `n` requests sharing a 1024-token chain (+1024 private tokens each) over 3 pods
/// whose scraped queue/KV reflect what was routed (as if scraped right away).
fn spread(mut r: EppRouter, n: u64) -> [u32; 3] {
    let (arena, c) = arena_with_chain(1024);
    let mut counts = [0u32; 3];
    let mut g = rng(11);
    for i in 0..n {
        let cands: Vec<Candidate> =
            (0..3).map(|p| cand(p, counts[p as usize], 0.02 * counts[p as usize] as f64, counts[p as usize])).collect();
        let pick = r.route(SimTime(i), &req(i, Some((c, 1024)), 1024, None), &arena, &cands, &mut g);
        counts[pick.0 as usize] += 1;
    }
    counts
}

#[test]
fn prefix_only_piles_onto_one_replica_while_default_spreads() {
    let prefix_only = spread(router_from_yaml(&single("prefix-cache-scorer"), None), 30);
    assert_eq!(prefix_only.iter().filter(|&&c| c > 0).count(), 1, "{prefix_only:?}");
    assert_eq!(prefix_only.iter().sum::<u32>(), 30);
    let default = spread(router_profile("default"), 30);
    assert!(default.iter().all(|&c| c > 0) && default.iter().all(|&c| c < 20), "{default:?}");
}

#[test]
fn approximate_index_keeps_false_hits_after_engine_eviction() {
    let (arena, c) = arena_with_chain(512);
    let mut r = router_from_yaml(&single("prefix-cache-scorer"), None);
    let a = req(1, Some((c, 512)), 0, None);
    r.route(SimTime::ZERO, &a, &arena, &[cand(0, 0, 0.0, 0)], &mut rng(1));
    let chains = ChainHashes::build(&arena, 16);
    let mut hs = vec![];
    a.content.block_hashes(&arena, &chains, &[], &mut hs);
    assert_eq!(hs.len(), 32);
    // vLLM on pod 0 evicts everything; the approximate index is never told (no KV events).
    assert_eq!(r.kv_events(), None);
    r.on_kv_event(SimTime(1), ReplicaId(0), &KvEvent::BlockRemoved { hashes: hs.clone() });
    r.on_kv_event(SimTime(1), ReplicaId(0), &KvEvent::AllCleared);
    assert!(hs.iter().all(|&h| r.approx_index().contains(0, h)));
    let pick = r.route(
        SimTime(2),
        &req(2, Some((c, 512)), 0, None),
        &arena,
        &[cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0)],
        &mut rng(5),
    );
    assert_eq!(pick, ReplicaId(0));
    assert_eq!(r.last_totals().1, &[1.0, 0.0], "a full (false) hit on pod 0");
}

#[test]
fn approximate_index_lru_capacity_and_quirk_through_the_router() {
    // v1.0: fixed capacity lruCapacityPerServer; block 0 of the older prompt goes first.
    let yaml = "plugins: [{type: prefix-cache-scorer, parameters: {lruCapacityPerServer: 40}}]\nschedulingProfiles:\n- name: default\n  plugins: [{pluginRef: prefix-cache-scorer}]\n";
    let mut r = router_from_yaml(yaml, Some(EppVersion::V1_0));
    let mut arena = ChainArena::new();
    let ca = arena.register(vec![Piece { key: 1, start: 0, len: 32 * 16 }]);
    let cb = arena.register(vec![Piece { key: 2, start: 0, len: 16 * 16 }]);
    let only0 = [cand(0, 0, 0.0, 0)];
    r.route(SimTime(0), &req(1, Some((ca, 512)), 0, None), &arena, &only0, &mut rng(1));
    r.route(SimTime(1), &req(2, Some((cb, 256)), 0, None), &arena, &only0, &mut rng(1)); // 48 > 40: 8 of A's evicted
    let two = [cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0)];
    let chains = ChainHashes::build(&arena, 16);
    let mut ha = vec![];
    Content { shared: Some(SharedRef { chain: ca, tokens: 512 }), pieces: smallvec![] }.block_hashes(
        &arena,
        &chains,
        &[],
        &mut ha,
    );
    assert!(!r.approx_index().contains(0, ha[0]) && !r.approx_index().contains(0, ha[7]));
    assert!(r.approx_index().contains(0, ha[8]) && r.approx_index().contains(0, ha[31]));
    // The head of A is gone, so A finds no match at all even though 24 of its blocks are indexed.
    r.route(SimTime(2), &req(3, Some((ca, 512)), 0, None), &arena, &two, &mut rng(1));
    assert_eq!(r.last_totals().1, &[0.0, 0.0]);
}

#[test]
fn precise_index_follows_kv_events() {
    let (arena, c) = arena_with_chain(256);
    let mut r = router_from_yaml(&single("precise-prefix-cache-scorer"), None);
    assert_eq!(r.kv_events(), Some(SimDuration::from_millis(1)));
    let q = req(1, Some((c, 256)), 0, None);
    let chains = ChainHashes::build(&arena, 16);
    let mut hs = vec![];
    q.content.block_hashes(&arena, &chains, &[], &mut hs);
    let cands = [cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0), cand(2, 0, 0.0, 0)];
    r.on_kv_event(SimTime(0), ReplicaId(1), &KvEvent::BlockStored { hashes: hs.clone() });
    r.on_kv_event(SimTime(0), ReplicaId(2), &KvEvent::BlockStored { hashes: hs[..4].to_vec() });
    assert_eq!(r.route(SimTime(1), &q, &arena, &cands, &mut rng(1)), ReplicaId(1));
    assert_eq!(r.last_totals().1, &[0.0, 1.0, 0.0], "min-max over pods with a hit (v1.3)");
    // Routing does not teach the precise index anything (no speculative entries).
    assert!(!r.precise_index().holds(0, hs[0]));
    // Pod 1 evicts its first block: its consecutive prefix is now 0.
    r.on_kv_event(SimTime(2), ReplicaId(1), &KvEvent::BlockRemoved { hashes: vec![hs[0]] });
    assert_eq!(r.route(SimTime(3), &q, &arena, &cands, &mut rng(1)), ReplicaId(2));
    assert_eq!(r.last_totals().1, &[0.0, 0.0, 1.0]);
    // 2026 versions normalise absolutely: 4 of 16 blocks.
    let mut r26 = router_from_yaml(&single("precise-prefix-cache-scorer"), Some(EppVersion::May2026));
    r26.on_kv_event(SimTime(0), ReplicaId(2), &KvEvent::BlockStored { hashes: hs[..4].to_vec() });
    r26.route(SimTime(1), &q, &arena, &cands, &mut rng(1));
    assert_eq!(r26.last_totals().1, &[0.0, 0.0, 0.25]);
}

#[test]
fn session_affinity_follows_the_last_finished_response() {
    let arena = ChainArena::new();
    let mut r = router_from_yaml(&single("session-affinity-scorer"), None);
    let cands = [cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0), cand(2, 0, 0.0, 0)];
    let first = r.route(SimTime(0), &req(1, None, 8, Some(42)), &arena, &cands, &mut rng(1));
    assert_eq!(r.last_totals().1, &[0.0, 0.0, 0.0], "no token before the first response");
    r.on_finished(SimTime(1), RequestId(1), first);
    let mut g = rng(2);
    for i in 2..20 {
        assert_eq!(r.route(SimTime(i), &req(i, None, 8, Some(42)), &arena, &cands, &mut g), first);
    }
    r.route(SimTime(30), &req(30, None, 8, Some(43)), &arena, &cands, &mut g);
    assert_eq!(r.last_totals().1, &[0.0, 0.0, 0.0], "other sessions have no affinity");
}

#[test]
fn token_load_counts_uncached_tokens_until_first_token() {
    let (arena, c) = arena_with_chain(1024);
    let mut r = router_profile("optimized-baseline");
    assert_eq!(r.version(), EppVersion::Aug2026);
    let cands = [cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0)];
    let a = r.route(SimTime(0), &req(1, Some((c, 1024)), 100, None), &arena, &cands, &mut rng(1));
    assert_eq!(r.inflight_tokens(a), 1124);
    // The same prefix again: the affinity filter keeps only the sticky pod (1024 of 1124
    // tokens in 64-token blocks: 16 of 17 blocks = 0.94 ≥ 0.8), uncached = 1124 − 1024.
    let b = r.route(SimTime(1), &req(2, Some((c, 1024)), 100, None), &arena, &cands, &mut rng(2));
    assert_eq!(b, a);
    assert_eq!(r.last_totals().0.len(), 1);
    assert_eq!(r.inflight_tokens(a), 1124 + 100);
    r.on_first_token(SimTime(2), RequestId(1), a);
    assert_eq!(r.inflight_tokens(a), 100);
    r.on_finished(SimTime(3), RequestId(1), a);
    r.on_finished(SimTime(3), RequestId(2), a);
    assert_eq!(r.inflight_tokens(a), 0);
}

#[test]
fn affinity_filter_token_gate_breaks_stickiness() {
    let (arena, c) = arena_with_chain(1024);
    let yaml = r#"
plugins:
- {type: token-load-scorer}
- type: prefix-cache-affinity-filter
  parameters: {affinityThreshold: 0.8, maxTokensInFlightPenalty: 2000, maxTTFTPenaltyMs: 0}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: prefix-cache-affinity-filter}, {pluginRef: token-load-scorer}]
"#;
    let mut r = router_from_yaml(yaml, Some(EppVersion::Aug2026));
    let cands = [cand(0, 0, 0.0, 0), cand(1, 0, 0.0, 0)];
    let a = r.route(SimTime(0), &req(1, Some((c, 1024)), 0, None), &arena, &cands, &mut rng(1));
    // Sticky pod holds 1024 in-flight tokens; 1024 ≤ 2000 → stays sticky.
    assert_eq!(r.route(SimTime(1), &req(2, Some((c, 1024)), 2000, None), &arena, &cands, &mut rng(1)), a);
    // Now 1024 + 2000 in flight on the sticky pod: penalty 3024 > 2000 → all pods kept, and
    // the token-load scorer prefers the idle one.
    let other = r.route(SimTime(2), &req(3, Some((c, 1024)), 0, None), &arena, &cands, &mut rng(1));
    assert_ne!(other, a);
    assert_eq!(r.last_totals().0.len(), 2);
}

#[test]
fn utilization_filter_drops_saturated_pods_and_fails_open() {
    let arena = ChainArena::new();
    let parts = CtxParts::new(3);
    let r = req(1, None, 8, None);
    let f = Filter::Utilization { queue_threshold: 5.0, kv_threshold: 0.8, headroom: 0.0 };
    let cands = [cand(0, 6, 0.1, 0), cand(1, 5, 0.8, 0), cand(2, 0, 0.81, 0)];
    let mut eps = vec![0, 1, 2];
    f.apply(&parts.ctx(&cands, &r, 0), &mut eps, &mut rng(1));
    assert_eq!(eps, vec![1]);
    let all_bad = [cand(0, 6, 0.1, 0), cand(1, 0, 0.9, 0)];
    let mut eps = vec![0, 1];
    f.apply(&parts.ctx(&all_bad, &r, 0), &mut eps, &mut rng(1));
    assert_eq!(eps, vec![0, 1], "fail open");
    let _ = arena;
}

#[test]
fn approx_hashing_follows_the_version_table() {
    let spec = |v: EppVersion| {
        let epc = parse_config_yaml(&single("prefix-cache-scorer")).unwrap();
        epc.resolve(v).unwrap().approx.unwrap()
    };
    let s10 = spec(EppVersion::V1_0);
    assert_eq!((s10.block_tokens(32), s10.capacity(5000)), (16, 31_250), "64 chars = 16 tokens, fixed LRU");
    let s13 = spec(EppVersion::V1_3);
    assert_eq!((s13.block_tokens(32), s13.capacity(5000), s13.capacity(0)), (32, 5000, 31_250));
    let s26 = spec(EppVersion::Aug2026);
    assert_eq!((s26.block_tokens(16), s26.max_blocks(64)), (64, 2048));
    assert_eq!(s13.max_blocks(16), 256);
    // Cap at 256 blocks; partial block hashed only in 2026 versions.
    let (arena, c) = arena_with_chain(10_000);
    let h = |s: &ApproxSpec, r: &RequestSpec| {
        let ch = ChainHashes::build(&arena, s.block_tokens(16));
        let mut out = vec![];
        approx_hashes(r, &arena, &ch, s, &mut out);
        out
    };
    assert_eq!(h(&s13, &req(1, Some((c, 10_000)), 0, None)).len(), 256);
    let s05 = spec(EppVersion::May2026);
    let p40 = req(1, Some((c, 40)), 0, None);
    assert_eq!(h(&s13, &p40).len(), 2);
    let a = h(&s05, &p40);
    assert_eq!(a.len(), 3);
    assert_eq!(a, h(&s05, &req(2, Some((c, 40)), 0, None)), "same partial block, same hash");
    let longer = h(&s05, &req(3, Some((c, 48)), 0, None));
    assert_eq!(longer[..2], a[..2]);
    assert_ne!(longer[2], a[2], "a partial block differs from a longer one");
    assert_eq!(h(&s05, &req(4, Some((c, 10_000)), 0, None)).len(), 256, "truncated: no partial");
}

#[test]
fn pasted_upstream_config_parses() {
    let yaml = r#"
kind: epp
version: "2026-05"
scrape_interval: 100ms
config:
  apiVersion: inference.networking.x-k8s.io/v1alpha1
  kind: EndpointPickerConfig
  plugins:
  - type: queue-scorer
  - type: kv-cache-utilization-scorer
  - type: prefix-cache-scorer
    name: prefix
    parameters:
      blockSizeTokens: 16
      maxPrefixBlocksToMatch: 256
      lruCapacityPerServer: 31250
  - type: max-score-picker
  - type: single-profile-handler
  schedulingProfiles:
  - name: default
    plugins:
    - pluginRef: queue-scorer
      weight: 2
    - pluginRef: kv-cache-utilization-scorer
      weight: 2
    - pluginRef: prefix
      weight: 3
    - pluginRef: max-score-picker
"#;
    let rc: RouterConfig = serde_saphyr::from_str(yaml).unwrap();
    let RouterConfig::Epp(cfg) = &rc else { panic!("{rc:?}") };
    assert_eq!(cfg.version, Some(EppVersion::May2026));
    let r = rc.build(&RouterBuildCtx::default()).unwrap();
    assert_eq!(r.scrape().unwrap().interval, SimDuration::from_millis(100));
    let e = EppRouter::from_config(cfg, &RouterBuildCtx::default()).unwrap();
    let w: Vec<f64> = e.profile().scorers.iter().map(|(_, w)| *w).collect();
    assert_eq!(w, vec![2.0, 2.0, 3.0]);
    assert_eq!(e.profile().approx.as_ref().unwrap().block_tokens(32), 32, "autoTune on by default");
}

#[test]
fn every_named_profile_builds() {
    for (name, _) in config::NAMED_PROFILES {
        let r = router_profile(name);
        assert_eq!(r.name(), format!("epp:{name}"));
    }
    let p = named_profile("precise").unwrap().resolve(EppVersion::V1_3).unwrap();
    assert!(p.precise && p.approx.is_none());
    let w: Vec<f64> = p.scorers.iter().map(|(_, w)| *w).collect();
    assert_eq!(w, vec![2.0, 1.0, 1.0]);
    let e = EppRouter::from_config(
        &EppConfig { profile: Some("nope".into()), ..Default::default() },
        &RouterBuildCtx::default(),
    );
    let msg = e.err().unwrap().to_string();
    assert!(msg.contains("optimized-baseline") && msg.contains("default"), "{msg}");
}

#[test]
fn config_errors_are_explicit() {
    let err = |yaml: &str| {
        let cfg = EppConfig { config: Some(parse_config_yaml(yaml).unwrap()), ..Default::default() };
        EppRouter::from_config(&cfg, &RouterBuildCtx::default()).err().expect("must fail").to_string()
    };
    let msg = err(&single("queue-scorr"));
    assert!(msg.contains("unknown plugin type `queue-scorr`"), "{msg}");
    assert!(msg.contains("did you mean `queue-scorer`"), "{msg}");
    assert!(
        msg.contains("kv-cache-utilization-scorer") && msg.contains("weighted-random-picker"),
        "lists valid types: {msg}"
    );
    let msg = err(
        "plugins: [{type: prefix-cache-scorer, parameters: {lruCapacityPerServr: 5}}]\nschedulingProfiles:\n- name: d\n  plugins: [{pluginRef: prefix-cache-scorer}]\n",
    );
    assert!(msg.contains("lruCapacityPerServr"), "{msg}");
    let msg = err("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n- name: d\n  plugins: [{pluginRef: kv}]\n");
    assert!(msg.contains("`kv`") && msg.contains("queue-scorer"), "{msg}");
    // Misspelled upstream keys are rejected when parsing.
    assert!(parse_config_yaml("plugins: []\nschedulingProfile: []\n").is_err());
    assert!(
        parse_config_yaml(
            "plugins: [{type: queue-scorer}]\nschedulingProfiles:\n- name: d\n  plugins: [{pluginref: queue-scorer}]\n"
        )
        .is_err()
    );
    assert!(serde_saphyr::from_str::<RouterConfig>("kind: epp\nprofil: default\n").is_err());
    assert!(serde_saphyr::from_str::<RouterConfig>("kind: epp\nversion: v9\n").is_err());
    let both = EppConfig { profile: Some("default".into()), config_file: Some("x.yaml".into()), ..Default::default() };
    assert!(EppRouter::from_config(&both, &RouterBuildCtx::default()).is_err());
}

#[test]
fn config_file_is_read_relative_to_base_dir() {
    let dir = std::env::temp_dir().join(format!("servesim-epp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("epp.yaml"), single("random-picker")).unwrap();
    let rc: RouterConfig = serde_saphyr::from_str("kind: epp\nconfig_file: epp.yaml\n").unwrap();
    let ctx = RouterBuildCtx { base_dir: dir.clone(), replicas: 2 };
    let r = rc.build(&ctx).unwrap();
    assert_eq!(r.name(), "epp:epp.yaml");
    let missing: RouterConfig = serde_saphyr::from_str("kind: epp\nconfig_file: nope.yaml\n").unwrap();
    let msg = missing.build(&ctx).err().unwrap().to_string();
    assert!(msg.contains("nope.yaml"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn long_shared_prefixes_route_quickly() {
    // Coding-assistant shape: 30k-token shared repository contexts, many requests.
    let mut arena = ChainArena::new();
    let chains: Vec<_> = (0..4).map(|k| arena.register(vec![Piece { key: 500 + k, start: 0, len: 30_000 }])).collect();
    let cands: Vec<Candidate> = (0..8).map(|p| cand(p, p % 3, 0.1, 0)).collect();
    for v in [EppVersion::V1_3, EppVersion::Aug2026] {
        let mut r = router_from_yaml(&single("prefix-cache-scorer"), Some(v));
        let mut g = rng(1);
        // Each chain sticks to the pod its first request went to (the only prefix score).
        let mut home: [Option<ReplicaId>; 4] = [None; 4];
        for i in 0..N_LONG {
            let c = (i % 4) as usize;
            let q = req(i, Some((chains[c], 30_000)), 200, None);
            let to = r.route(SimTime(i), &q, &arena, &cands, &mut g);
            assert_eq!(*home[c].get_or_insert(to), to, "{v:?}: request {i} of chain {c} left its pod");
        }
        assert!(home.iter().all(Option::is_some));
    }
}
const N_LONG: u64 = 500;

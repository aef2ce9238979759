//! The Endpoint Picker (GIE EPP / llm-d router), spec §1: Filter → Score → Pick over the
//! candidates with upstream plugin names, so an EPP config can be pasted into a scenario.
//!
//! What the EPP sees: metrics as last scraped (every 50 ms, stale), its own in-flight
//! counters (fresh), its approximate prefix index (updated at decision time, never told of
//! evictions), and, for precise scoring, vLLM's KV events (delivered after a lag).
//!
//! Token mapping: servesim prompts are tokens, not characters. Where upstream counts
//! characters (GIE ≤ v1.5 blocks of `hashBlockSize` chars), servesim uses the EPP's own
//! 4-characters-per-token estimate: 64 chars = 16 tokens, `block_size × 4` chars = `block_size`
//! tokens. Block hashes use servesim's chained 64-bit content hash instead of xxhash64 over
//! text: the index is private to the router, so only equality of chains matters, and the
//! model-name seed is constant across pods. The partial last block (2026 versions) is hashed
//! as its tokens padded with a fixed filler, so it matches exactly the prompts that end with
//! the same partial block.

pub mod config;
pub mod filters;
pub mod pickers;
pub mod precise_index;
pub mod prefix_index;
pub mod scorers;

pub use config::{EndpointPickerConfig, EppVersion};

use self::config::{ApproxSpec, ResolvedProfile, named_profile, parse_config_yaml};
use self::precise_index::PreciseIndex;
use self::prefix_index::{ApproxPrefixIndex, ChainPrefix};
use self::scorers::Scorer;
use super::fasthash::{FastMap, fast_map};
use super::{Candidate, KvEvent, Router, RouterBuildCtx, RouterError, ScrapeConfig};
use crate::content::{ChainArena, ChainHashes, Piece};
use crate::rng::SimRng;
use crate::units::{ReplicaId, RequestId, SimDuration, SimTime};
use crate::workload::RequestSpec;
use crate::workload::config::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `router: {kind: epp, ...}`. Give at most one of `profile`, `config`, `config_file`
/// (none = `profile: default`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EppConfig {
    /// Named profile: default (queue 2 / kv 2 / prefix 3), default-v1.0 (1/1/1), load,
    /// random, approximate, default-37, precise (2/1/1), precise-73 (3/2/2),
    /// optimized-baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Inline upstream `EndpointPickerConfig` (`plugins` + `schedulingProfiles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<EndpointPickerConfig>,
    /// Path (relative to the scenario file) of an upstream `EndpointPickerConfig` YAML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// EPP release to reproduce where behaviour drifted: v1.0, v1.1, v1.3 (default; also
    /// v1.2/v1.4/v1.5), 2026-05, 2026-08 (default for `profile: optimized-baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<EppVersion>,
    /// Metrics polling interval per pod (`--refresh-metrics-interval`, default 50ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub scrape_interval: Option<DurationStr>,
    /// Time from a scrape's start until its values are visible (default 5ms, spec §1.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub scrape_latency: Option<DurationStr>,
    /// EPP scheduling time added before the request reaches the pod (default 2ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub decision_latency: Option<DurationStr>,
    /// ZMQ delivery lag of KV events to the precise index (default 1ms, spec §2.3); only
    /// used when a precise scorer is in the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub kv_event_lag: Option<DurationStr>,
}

pub const DEFAULT_SCRAPE_INTERVAL: SimDuration = SimDuration(50_000_000);
pub const DEFAULT_SCRAPE_LATENCY: SimDuration = SimDuration(5_000_000);
pub const DEFAULT_DECISION_LATENCY: SimDuration = SimDuration(2_000_000);
pub const DEFAULT_KV_EVENT_LAG: SimDuration = SimDuration(1_000_000);

/// Filler token key for hashing a partial last block.
const PARTIAL_PAD_KEY: u64 = 0xE9_9E_9A_D0_0F_11_11_E5;

/// Approximate-index view of one scheduling cycle (aligned with the candidates).
pub struct ApproxMatch<'a> {
    pub matched: &'a [u32],
    /// Blocks of the request (after the cap).
    pub total: u32,
    pub block_tokens: u32,
}

/// Precise-index view of one scheduling cycle (aligned with the candidates).
pub struct PreciseMatch<'a> {
    /// Longest consecutive cached prefix, in (GPU-weighted) blocks.
    pub longest: &'a [f64],
    /// Full blocks of the prompt at the engine's block size.
    pub total: u32,
}

/// Everything a filter or scorer may read in one cycle.
pub struct CycleCtx<'a> {
    pub cands: &'a [Candidate],
    pub req: &'a RequestSpec,
    pub approx: Option<ApproxMatch<'a>>,
    pub precise: Option<PreciseMatch<'a>>,
    /// Router-side in-flight uncached prompt tokens, by replica id.
    pub inflight_tokens: &'a [u64],
    pub sessions: &'a FastMap<u64, ReplicaId>,
    /// Pods in order of their last cold request, oldest first.
    pub nohit_lru: &'a [ReplicaId],
    /// No candidate has any approximate-index match.
    pub cold: bool,
}

impl CycleCtx<'_> {
    pub fn inflight_tokens_of(&self, i: usize) -> u64 {
        self.inflight_tokens.get(self.cands[i].id.0 as usize).copied().unwrap_or(0)
    }
    /// Prompt tokens of this request the pod is not believed to have cached.
    pub fn uncached_tokens(&self, i: usize) -> u64 {
        let input = self.req.input.0 as u64;
        match &self.approx {
            Some(a) => input - (a.matched[i] as u64 * a.block_tokens as u64).min(input),
            None => input,
        }
    }
}

struct Pending {
    replica: ReplicaId,
    tokens: u64,
    session: Option<u64>,
}

/// The EPP as a servesim router.
pub struct EppRouter {
    name: String,
    version: EppVersion,
    profile: ResolvedProfile,
    scrape: ScrapeConfig,
    decision_latency: SimDuration,
    kv_event_lag: SimDuration,
    approx_index: ApproxPrefixIndex,
    precise_index: PreciseIndex,
    /// Precomputed chain hashes per block size (built lazily on the first route).
    chains: Vec<ChainHashes>,
    track_tokens: bool,
    track_sessions: bool,
    nohit_lru_size: Option<usize>,
    inflight_tokens: Vec<u64>,
    pending: FastMap<RequestId, Pending>,
    sessions: FastMap<u64, ReplicaId>,
    nohit_lru: Vec<ReplicaId>,
    // scratch
    hashes: Vec<u64>,
    approx_prefix: Option<ChainPrefix>,
    engine_hashes: Vec<u64>,
    pods: Vec<u32>,
    matched: Vec<u32>,
    longest: Vec<f64>,
    eps: Vec<usize>,
    scores: Vec<f64>,
    totals: Vec<f64>,
}

fn chains_for<'a>(cache: &'a mut Vec<ChainHashes>, arena: &ChainArena, bs: u32) -> &'a ChainHashes {
    let pos = cache.iter().position(|c| c.block_size == bs && c.per_chain.len() == arena.len());
    match pos {
        Some(i) => &cache[i],
        None => {
            cache.retain(|c| c.block_size != bs);
            cache.push(ChainHashes::build(arena, bs));
            cache.last().unwrap()
        }
    }
}

/// The approximate index's block hashes of a request (spec §1.4.4 `hashPrompt`): the prompt
/// is cut to `max_blocks` blocks; full blocks are hashed, plus the partial last block in
/// versions that hash it.
pub fn approx_hashes(
    req: &RequestSpec,
    arena: &ChainArena,
    chains: &ChainHashes,
    spec: &ApproxSpec,
    out: &mut Vec<u64>,
) {
    let bt = chains.block_size;
    let max_blocks = spec.max_blocks(bt) as usize;
    let input = req.content.tokens(arena);
    let rem = input % bt;
    let truncated = input as u64 > max_blocks as u64 * bt as u64;
    if spec.version.hashes_partial_block() && rem > 0 && !truncated {
        let pad = [Piece { key: PARTIAL_PAD_KEY, start: 0, len: bt - rem }];
        req.content.block_hashes_upto(arena, chains, &pad, max_blocks, out);
    } else {
        req.content.block_hashes_upto(arena, chains, &[], max_blocks, out);
    }
}

/// How many of the leading approximate-index hashes of `req` are blocks of its shared chain.
fn approx_chain_prefix(req: &RequestSpec, hashes: &[u64], block_tokens: u32) -> Option<ChainPrefix> {
    let s = req.content.shared?;
    let len = (s.tokens / block_tokens).min(hashes.len() as u32);
    (len > 0).then_some(ChainPrefix { chain: s.chain.0, len })
}

impl EppRouter {
    pub fn from_config(cfg: &EppConfig, ctx: &RouterBuildCtx) -> Result<Self, RouterError> {
        let sources = cfg.profile.is_some() as u8 + cfg.config.is_some() as u8 + cfg.config_file.is_some() as u8;
        if sources > 1 {
            return Err(RouterError::Invalid("epp: give only one of `profile`, `config`, `config_file`".into()));
        }
        let (epc, label, default_version) = if let Some(c) = &cfg.config {
            (c.clone(), "epp:config".to_string(), EppVersion::default())
        } else if let Some(f) = &cfg.config_file {
            let path = ctx.base_dir.join(f);
            let text =
                std::fs::read_to_string(&path).map_err(|source| RouterError::Io { path: path.clone(), source })?;
            let c = parse_config_yaml(&text)
                .map_err(|e| RouterError::Invalid(format!("epp: config file `{}`: {e}", path.display())))?;
            (c, format!("epp:{f}"), EppVersion::default())
        } else {
            let name = cfg.profile.as_deref().unwrap_or("default");
            let v = if name == "optimized-baseline" { EppVersion::Aug2026 } else { EppVersion::default() };
            (named_profile(name)?, format!("epp:{name}"), v)
        };
        let version = cfg.version.unwrap_or(default_version);
        let profile = epc.resolve(version)?;
        let dur = |d: Option<DurationStr>, def: SimDuration| d.map_or(def, |d| d.0);
        let scrape = ScrapeConfig {
            interval: dur(cfg.scrape_interval, DEFAULT_SCRAPE_INTERVAL),
            latency: dur(cfg.scrape_latency, DEFAULT_SCRAPE_LATENCY),
        };
        if scrape.interval == SimDuration::ZERO {
            return Err(RouterError::Invalid("epp: scrape_interval must be positive".into()));
        }
        Ok(Self::new(
            label,
            version,
            profile,
            scrape,
            dur(cfg.decision_latency, DEFAULT_DECISION_LATENCY),
            dur(cfg.kv_event_lag, DEFAULT_KV_EVENT_LAG),
        ))
    }

    fn new(
        name: String,
        version: EppVersion,
        profile: ResolvedProfile,
        scrape: ScrapeConfig,
        decision_latency: SimDuration,
        kv_event_lag: SimDuration,
    ) -> Self {
        let track_tokens = profile.scorers.iter().any(|(s, _)| matches!(s, Scorer::TokenLoad { .. }))
            || profile.filters.iter().any(|f| matches!(f, filters::Filter::PrefixAffinity { .. }));
        let track_sessions = profile.scorers.iter().any(|(s, _)| *s == Scorer::SessionAffinity);
        let nohit_lru_size = profile.scorers.iter().find_map(|(s, _)| match s {
            Scorer::NoHitLru { lru_size } => Some(*lru_size),
            _ => None,
        });
        EppRouter {
            name,
            version,
            profile,
            scrape,
            decision_latency,
            kv_event_lag,
            approx_index: ApproxPrefixIndex::new(),
            precise_index: PreciseIndex::new(),
            chains: Vec::new(),
            track_tokens,
            track_sessions,
            nohit_lru_size,
            inflight_tokens: Vec::new(),
            pending: fast_map(),
            sessions: fast_map(),
            nohit_lru: Vec::new(),
            hashes: Vec::new(),
            approx_prefix: None,
            engine_hashes: Vec::new(),
            pods: Vec::new(),
            matched: Vec::new(),
            longest: Vec::new(),
            eps: Vec::new(),
            scores: Vec::new(),
            totals: Vec::new(),
        }
    }

    pub fn version(&self) -> EppVersion {
        self.version
    }
    pub fn profile(&self) -> &ResolvedProfile {
        &self.profile
    }
    pub fn approx_index(&self) -> &ApproxPrefixIndex {
        &self.approx_index
    }
    pub fn precise_index(&self) -> &PreciseIndex {
        &self.precise_index
    }
    /// The last cycle's filtered candidates (indices into the candidate slice) and their
    /// weighted total scores, for tests and diagnostics.
    pub fn last_totals(&self) -> (&[usize], &[f64]) {
        (&self.eps, &self.totals)
    }
    /// Router-side in-flight uncached prompt tokens of a replica.
    pub fn inflight_tokens(&self, r: ReplicaId) -> u64 {
        self.inflight_tokens.get(r.0 as usize).copied().unwrap_or(0)
    }

    fn release_tokens(&mut self, req: RequestId) {
        if let Some(p) = self.pending.get_mut(&req) {
            let slot = &mut self.inflight_tokens[p.replica.0 as usize];
            *slot = slot.saturating_sub(p.tokens);
            p.tokens = 0;
        }
    }
}

impl Router for EppRouter {
    fn name(&self) -> &str {
        &self.name
    }

    fn route(
        &mut self,
        _now: SimTime,
        req: &RequestSpec,
        arena: &ChainArena,
        cands: &[Candidate],
        rng: &mut SimRng,
    ) -> ReplicaId {
        let n = cands.len();
        let vllm_bs = cands[0].block_size;
        self.pods.clear();
        self.pods.extend(cands.iter().map(|c| c.id.0));

        // Data producers: approximate prefix match and precise (KV-event) prefix match.
        let mut approx_total = 0u32;
        let mut block_tokens = 0u32;
        if let Some(spec) = &self.profile.approx {
            block_tokens = spec.block_tokens(vllm_bs);
            let chains = chains_for(&mut self.chains, arena, block_tokens);
            approx_hashes(req, arena, chains, spec, &mut self.hashes);
            approx_total = self.hashes.len() as u32;
            self.approx_prefix = approx_chain_prefix(req, &self.hashes, block_tokens);
            self.approx_index.match_blocks_with_prefix(&self.hashes, self.approx_prefix, &self.pods, &mut self.matched);
        }
        let mut precise_total = 0u32;
        if self.profile.precise {
            let chains = chains_for(&mut self.chains, arena, vllm_bs);
            req.content.block_hashes(arena, chains, &[], &mut self.engine_hashes);
            precise_total = req.input.0 / vllm_bs;
            self.precise_index.longest_prefix(&self.engine_hashes, &self.pods, &mut self.longest);
        }
        let cold = !self.matched.iter().take(n).any(|&m| m > 0) || self.profile.approx.is_none();

        let ctx = CycleCtx {
            cands,
            req,
            approx: self.profile.approx.as_ref().map(|_| ApproxMatch {
                matched: &self.matched,
                total: approx_total,
                block_tokens,
            }),
            precise: self.profile.precise.then_some(PreciseMatch { longest: &self.longest, total: precise_total }),
            inflight_tokens: &self.inflight_tokens,
            sessions: &self.sessions,
            nohit_lru: &self.nohit_lru,
            cold,
        };

        // Filter → Score → Pick.
        self.eps.clear();
        self.eps.extend(0..n);
        for f in &self.profile.filters {
            f.apply(&ctx, &mut self.eps, rng);
        }
        self.totals.clear();
        self.totals.resize(self.eps.len(), 0.0);
        for (s, w) in &self.profile.scorers {
            s.score(&ctx, &self.eps, &mut self.scores);
            for (t, v) in self.totals.iter_mut().zip(&self.scores) {
                *t += v.clamp(0.0, 1.0) * w;
            }
        }
        let chosen = self.eps[self.profile.picker.pick(&self.totals, rng)];
        let uncached = ctx.uncached_tokens(chosen);
        let target = cands[chosen];

        // PreRequest hooks.
        if let Some(spec) = &self.profile.approx {
            let cap = spec.capacity(target.scraped.num_gpu_blocks);
            self.approx_index.add_with_prefix(target.id.0, &self.hashes, self.approx_prefix, cap);
        }
        if let Some(size) = self.nohit_lru_size
            && cold
        {
            self.nohit_lru.retain(|r| *r != target.id);
            self.nohit_lru.push(target.id);
            if self.nohit_lru.len() > size {
                self.nohit_lru.remove(0);
            }
        }
        if self.track_tokens || self.track_sessions {
            let tokens = if self.track_tokens { uncached } else { 0 };
            let i = target.id.0 as usize;
            if self.inflight_tokens.len() <= i {
                self.inflight_tokens.resize(i + 1, 0);
            }
            self.inflight_tokens[i] += tokens;
            self.pending.insert(req.id, Pending { replica: target.id, tokens, session: req.session });
        }
        target.id
    }

    fn on_first_token(&mut self, _now: SimTime, req: RequestId, _replica: ReplicaId) {
        self.release_tokens(req);
    }

    fn on_finished(&mut self, _now: SimTime, req: RequestId, replica: ReplicaId) {
        self.release_tokens(req);
        if let Some(p) = self.pending.remove(&req)
            && self.track_sessions
            && let Some(s) = p.session
        {
            // The EPP sets x-session-token in the response at end of stream.
            self.sessions.insert(s, replica);
        }
    }

    fn scrape(&self) -> Option<ScrapeConfig> {
        Some(self.scrape)
    }

    fn decision_latency(&self) -> SimDuration {
        self.decision_latency
    }

    fn kv_events(&self) -> Option<SimDuration> {
        self.profile.precise.then_some(self.kv_event_lag)
    }

    fn on_kv_event(&mut self, _now: SimTime, replica: ReplicaId, event: &KvEvent) {
        match event {
            KvEvent::BlockStored { hashes } => self.precise_index.block_stored(replica.0, hashes),
            KvEvent::BlockRemoved { hashes } => self.precise_index.block_removed(replica.0, hashes),
            // Upstream ignores AllBlocksCleared (`continue`).
            KvEvent::AllCleared => {}
        }
    }
}

#[cfg(test)]
mod tests;

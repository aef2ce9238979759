//! The EPP configuration as users write it: the upstream `EndpointPickerConfig` YAML
//! (`plugins:` + `schedulingProfiles:`, camelCase keys exactly as upstream), named profiles
//! (spec §1.3, themselves written as such YAML), and resolution into a runnable profile.

use super::filters::Filter;
use super::pickers::Picker;
use super::scorers::Scorer;
use crate::router::RouterError;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Upstream `EndpointPickerConfig` (the file the EPP reads with `--config-file`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EndpointPickerConfig {
    /// Accepted for paste-ability (e.g. `inference.networking.x-k8s.io/v1alpha1`); ignored.
    #[serde(default, rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Accepted for paste-ability (`EndpointPickerConfig`); ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Plugin instances: `{type, name?, parameters?}`.
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
    /// Exactly one profile is supported (single-profile-handler; P/D is out of scope).
    #[serde(default, rename = "schedulingProfiles")]
    pub scheduling_profiles: Vec<SchedulingProfileSpec>,
    /// Accepted and ignored (flow control / admission is not modelled).
    #[serde(default, rename = "featureGates", skip_serializing_if = "Vec::is_empty")]
    pub feature_gates: Vec<String>,
    /// Accepted and ignored (the saturation detector only drives admission, not modelled).
    #[serde(default, rename = "saturationDetector", skip_serializing_if = "Option::is_none")]
    pub saturation_detector: Option<serde_json::Value>,
    /// Accepted and ignored (data-layer sources: servesim scrapes every 50 ms itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Plugin type, e.g. `queue-scorer`.
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// Instance name referenced by `pluginRef` (defaults to the type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchedulingProfileSpec {
    pub name: String,
    #[serde(default)]
    pub plugins: Vec<ProfilePluginRef>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfilePluginRef {
    #[serde(rename = "pluginRef")]
    pub plugin_ref: String,
    /// Scorer weight (absolute, not normalised); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// Which EPP release's behaviour to reproduce where it drifted (prefix hashing, LRU sizing,
/// precise-score normalisation, affinity-filter defaults). Spec §1.4.4 table.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum EppVersion {
    /// GIE v1.0: 64-char blocks, fixed LRU 31250, 256 blocks max, partial block dropped.
    #[serde(rename = "v1.0")]
    V1_0,
    /// GIE v1.1: vLLM block_size × 4 chars, fixed LRU 31250.
    #[serde(rename = "v1.1")]
    V1_1,
    /// GIE v1.2–v1.5 / llm-d-inference-scheduler v0.4–v0.8 (default; what DigitalOcean's
    /// guide pins): autoTune block size and LRU = pod's num_gpu_blocks; min-max precise scores.
    #[default]
    #[serde(rename = "v1.3", alias = "v1.2", alias = "v1.4", alias = "v1.5")]
    V1_3,
    /// GIE main / llm-d-inference-scheduler HEAD, May 2026: partial last block hashed;
    /// absolute precise scores; affinity filter exploration 0.01, TTFT gate 5000 ms.
    #[serde(rename = "2026-05")]
    May2026,
    /// llm-d-router, Aug 2026: 64-token minimum index blocks, 131072-token cap.
    #[serde(rename = "2026-08")]
    Aug2026,
}

impl EppVersion {
    pub fn hashes_partial_block(self) -> bool {
        matches!(self, EppVersion::May2026 | EppVersion::Aug2026)
    }
    pub fn absolute_precise_scores(self) -> bool {
        matches!(self, EppVersion::May2026 | EppVersion::Aug2026)
    }
}

/// Parameters of `prefix-cache-scorer` / `approx-prefix-cache-producer` (all versions' names).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
pub(crate) struct PrefixParams {
    /// Block size in prompt characters (servesim: 4 characters = 1 token).
    hash_block_size: Option<u32>,
    /// Block size in tokens (v1.4+).
    block_size_tokens: Option<u32>,
    max_prefix_blocks_to_match: Option<u32>,
    max_prefix_tokens_to_match: Option<u32>,
    lru_capacity_per_server: Option<u32>,
    auto_tune: Option<bool>,
    /// Optional length term of the newest scorer; only 0 (its default, off) is supported.
    match_length_weight: Option<f64>,
    match_length_scale_tokens: Option<f64>,
    /// llm-d's older `prefix-cache-scorer`: `cache_tracking` = precise (KV-event) mode.
    mode: Option<String>,
    /// cache_tracking mode: index block size (must equal vLLM's --block-size; unused).
    block_size: Option<u32>,
    /// cache_tracking mode: hash seed (unused: hashes are consistent by construction).
    hash_seed: Option<String>,
    /// llm-d's older `prefix-cache-scorer` options, accepted and ignored.
    kv_cache_redis_addr: Option<String>,
    kv_cache_manager_config: Option<serde_json::Value>,
    indexer_config: Option<serde_json::Value>,
    kv_events_config: Option<serde_json::Value>,
}

/// The approximate index's settings, resolved per version at routing time (they depend on the
/// scraped vLLM `block_size` and `num_gpu_blocks` when autoTune is on).
#[derive(Clone, Debug, PartialEq)]
pub struct ApproxSpec {
    pub version: EppVersion,
    pub hash_block_chars: Option<u32>,
    pub block_size_tokens: Option<u32>,
    pub max_blocks: Option<u32>,
    pub max_tokens: Option<u32>,
    pub lru_capacity: u32,
    pub auto_tune: bool,
}

/// Upstream `lruCapacityPerServer` default.
pub const DEFAULT_LRU_CAPACITY: u32 = 31_250;
/// Upstream `maxPrefixBlocksToMatch` default.
pub const DEFAULT_MAX_PREFIX_BLOCKS: u32 = 256;
/// llm-d-router Aug 2026 `maxPrefixTokensToMatch` default.
pub const DEFAULT_MAX_PREFIX_TOKENS_2026: u32 = 131_072;
/// llm-d-router Aug 2026 `minBlockSizeTokens`.
pub const MIN_BLOCK_SIZE_TOKENS_2026: u32 = 64;

/// Characters → tokens at 4 characters per token (the EPP's own estimate, `estimate`
/// backend: 4 bytes → 1 pseudo-token).
pub fn chars_to_tokens(chars: u32) -> u32 {
    (chars / 4).max(1)
}

impl ApproxSpec {
    fn from_params(version: EppVersion, p: &PrefixParams) -> Self {
        ApproxSpec {
            version,
            hash_block_chars: p.hash_block_size,
            block_size_tokens: p.block_size_tokens,
            max_blocks: p.max_prefix_blocks_to_match,
            max_tokens: p.max_prefix_tokens_to_match,
            lru_capacity: p.lru_capacity_per_server.unwrap_or(DEFAULT_LRU_CAPACITY),
            auto_tune: p.auto_tune.unwrap_or(version != EppVersion::V1_0),
        }
    }
    /// Index block size in tokens given vLLM's block size.
    pub fn block_tokens(&self, vllm_block_size: u32) -> u32 {
        let manual = || self.block_size_tokens.unwrap_or_else(|| chars_to_tokens(self.hash_block_chars.unwrap_or(64)));
        let bs = match self.version {
            EppVersion::V1_0 => manual(),
            EppVersion::V1_1 | EppVersion::V1_3 | EppVersion::May2026 => {
                if self.auto_tune && vllm_block_size > 0 {
                    vllm_block_size
                } else {
                    manual()
                }
            }
            EppVersion::Aug2026 => {
                let b = if self.auto_tune && vllm_block_size > 0 { vllm_block_size } else { manual() };
                b.max(MIN_BLOCK_SIZE_TOKENS_2026)
            }
        };
        bs.max(1)
    }
    /// Most blocks hashed per request (`maxPrefixBlocksToMatch` or tokens / block).
    pub fn max_blocks(&self, block_tokens: u32) -> u32 {
        match self.version {
            EppVersion::V1_0 | EppVersion::V1_1 => self.max_blocks.unwrap_or(DEFAULT_MAX_PREFIX_BLOCKS),
            EppVersion::V1_3 | EppVersion::May2026 => match self.max_tokens {
                Some(t) => t / block_tokens,
                None => self.max_blocks.unwrap_or(DEFAULT_MAX_PREFIX_BLOCKS),
            },
            EppVersion::Aug2026 => self.max_tokens.unwrap_or(DEFAULT_MAX_PREFIX_TOKENS_2026) / block_tokens,
        }
    }
    /// A pod's LRU capacity (entries): fixed, or its `num_gpu_blocks` with autoTune (v1.2+),
    /// falling back to `lruCapacityPerServer` before the first scrape.
    pub fn capacity(&self, num_gpu_blocks: u32) -> u32 {
        match self.version {
            EppVersion::V1_0 | EppVersion::V1_1 => self.lru_capacity,
            _ if self.auto_tune && num_gpu_blocks > 0 => num_gpu_blocks,
            _ => self.lru_capacity,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NoParams {}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct TokenProcessorConfig {
    block_size: Option<u32>,
    hash_seed: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct PreciseParams {
    token_processor_config: Option<TokenProcessorConfig>,
    indexer_config: Option<serde_json::Value>,
    kv_events_config: Option<serde_json::Value>,
    /// Speculative indexing is not modelled; only `false` is accepted.
    speculative_indexing: Option<bool>,
    speculative_ttl: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct TokenLoadParams {
    queue_threshold_tokens: Option<f64>,
    in_flight_load_producer_name: Option<String>,
    prefix_match_info_producer_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct NoHitLruParams {
    prefix_plugin_name: Option<String>,
    prefill_profile: Option<String>,
    lru_size: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoadAwareParams {
    threshold: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct ActiveRequestParams {
    idle_threshold: Option<u32>,
    max_busy_score: Option<f64>,
    request_timeout: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct AffinityFilterParams {
    affinity_threshold: Option<f64>,
    exploration_probability: Option<f64>,
    #[serde(rename = "maxTTFTPenaltyMs")]
    max_ttft_penalty_ms: Option<f64>,
    max_tokens_in_flight_penalty: Option<f64>,
    peak_prefill_throughput: Option<f64>,
    #[serde(rename = "ttftSource")]
    ttft_source: Option<String>,
    prefix_match_info_producer_name: Option<String>,
    in_flight_load_producer_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct UtilizationParams {
    queue_depth_threshold: Option<f64>,
    kv_cache_util_threshold: Option<f64>,
    metrics_staleness_threshold: Option<serde_json::Value>,
    headroom: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // some keys are accepted for paste-ability and not used
struct PickerParams {
    max_num_of_endpoints: Option<u32>,
}

/// Every plugin type servesim knows, for error messages.
pub const SCORER_TYPES: &[&str] = &[
    "queue-scorer",
    "kv-cache-utilization-scorer",
    "kv-cache-scorer",
    "running-requests-size-scorer",
    "prefix-cache-scorer",
    "precise-prefix-cache-scorer",
    "session-affinity-scorer",
    "token-load-scorer",
    "no-hit-lru-scorer",
    "load-aware-scorer",
    "active-request-scorer",
];
pub const FILTER_TYPES: &[&str] = &["prefix-cache-affinity-filter", "utilization-detector", "decode-filter"];
pub const PICKER_TYPES: &[&str] = &["max-score-picker", "random-picker", "weighted-random-picker"];
/// Producers and handlers that are accepted and need no configuration of their own here.
pub const PASSIVE_TYPES: &[&str] = &[
    "approx-prefix-cache-producer",
    "inflight-load-producer",
    "single-profile-handler",
    "metrics-data-source",
    "core-metrics-extractor",
    "token-producer",
    "tokenizer",
];

fn valid_types() -> String {
    [SCORER_TYPES, FILTER_TYPES, PICKER_TYPES, PASSIVE_TYPES].concat().join(", ")
}

/// A profile ready to run.
pub struct ResolvedProfile {
    pub name: String,
    pub filters: Vec<Filter>,
    pub scorers: Vec<(Scorer, f64)>,
    pub picker: Picker,
    /// Approximate prefix index (needed by prefix-cache-scorer, the affinity filter,
    /// no-hit-lru-scorer, or configured as `approx-prefix-cache-producer`).
    pub approx: Option<ApproxSpec>,
    /// A precise (KV-event) scorer is present.
    pub precise: bool,
}

fn params<T: DeserializeOwned + Default>(p: &PluginSpec) -> Result<T, RouterError> {
    match &p.parameters {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            RouterError::Invalid(format!(
                "epp: parameters of plugin `{}` (type {}): {e}",
                p.name.as_deref().unwrap_or(&p.plugin_type),
                p.plugin_type
            ))
        }),
    }
}

fn invalid(msg: impl Into<String>) -> RouterError {
    RouterError::Invalid(format!("epp: {}", msg.into()))
}

enum Kind {
    Scorer(Scorer),
    Filter(Filter),
    Picker(Picker),
    Passive,
}

fn classify(p: &PluginSpec, version: EppVersion) -> Result<Kind, RouterError> {
    let t = p.plugin_type.as_str();
    Ok(match t {
        "queue-scorer" => {
            params::<NoParams>(p)?;
            Kind::Scorer(Scorer::Queue)
        }
        "kv-cache-utilization-scorer" | "kv-cache-scorer" => {
            params::<NoParams>(p)?;
            Kind::Scorer(Scorer::KvUtilization)
        }
        "running-requests-size-scorer" => {
            params::<NoParams>(p)?;
            Kind::Scorer(Scorer::RunningRequests)
        }
        "prefix-cache-scorer" => {
            let q: PrefixParams = params(p)?;
            if q.match_length_weight.is_some_and(|w| w != 0.0) {
                return Err(invalid("prefix-cache-scorer: matchLengthWeight other than 0 is not supported"));
            }
            match q.mode.as_deref() {
                None | Some("estimate") | Some("approximate") => Kind::Scorer(Scorer::Prefix),
                Some("cache_tracking") => {
                    Kind::Scorer(Scorer::PrecisePrefix { absolute: version.absolute_precise_scores() })
                }
                Some(m) => {
                    return Err(invalid(format!(
                        "prefix-cache-scorer: unknown mode `{m}` (valid: estimate, cache_tracking)"
                    )));
                }
            }
        }
        "precise-prefix-cache-scorer" => {
            let q: PreciseParams = params(p)?;
            if q.speculative_indexing == Some(true) {
                return Err(invalid("precise-prefix-cache-scorer: speculativeIndexing is not modelled"));
            }
            Kind::Scorer(Scorer::PrecisePrefix { absolute: version.absolute_precise_scores() })
        }
        "session-affinity-scorer" => {
            params::<NoParams>(p)?;
            Kind::Scorer(Scorer::SessionAffinity)
        }
        "token-load-scorer" => {
            let q: TokenLoadParams = params(p)?;
            let thr = q.queue_threshold_tokens.unwrap_or(4_194_304.0);
            if thr.is_nan() || thr <= 0.0 {
                return Err(invalid("token-load-scorer: queueThresholdTokens must be > 0"));
            }
            Kind::Scorer(Scorer::TokenLoad { threshold: thr })
        }
        "no-hit-lru-scorer" => {
            let q: NoHitLruParams = params(p)?;
            Kind::Scorer(Scorer::NoHitLru { lru_size: q.lru_size.filter(|&n| n > 0).unwrap_or(1024) as usize })
        }
        "load-aware-scorer" => {
            let q: LoadAwareParams = params(p)?;
            let thr = q.threshold.unwrap_or(128.0);
            if thr.is_nan() || thr <= 0.0 {
                return Err(invalid("load-aware-scorer: threshold must be > 0"));
            }
            Kind::Scorer(Scorer::LoadAware { threshold: thr })
        }
        "active-request-scorer" => {
            let q: ActiveRequestParams = params(p)?;
            Kind::Scorer(Scorer::ActiveRequest {
                idle_threshold: q.idle_threshold.unwrap_or(0),
                max_busy_score: q.max_busy_score.unwrap_or(1.0),
            })
        }
        "prefix-cache-affinity-filter" => {
            let q: AffinityFilterParams = params(p)?;
            if let Some(s) = q.ttft_source.as_deref()
                && s != "prefillThroughput"
            {
                return Err(invalid(format!(
                    "prefix-cache-affinity-filter: ttftSource `{s}` is not supported (only prefillThroughput)"
                )));
            }
            let may = version == EppVersion::May2026;
            let f = Filter::PrefixAffinity {
                threshold: q.affinity_threshold.unwrap_or(0.80),
                exploration: q.exploration_probability.unwrap_or(if may { 0.01 } else { 0.0 }),
                max_ttft_penalty_ms: q.max_ttft_penalty_ms.unwrap_or(if may { 5000.0 } else { 18000.0 }),
                max_tokens_penalty: q.max_tokens_in_flight_penalty.unwrap_or(0.0),
                peak_prefill_tps: q.peak_prefill_throughput.unwrap_or(15928.0),
            };
            if let Filter::PrefixAffinity { threshold, exploration, peak_prefill_tps, .. } = f
                && (!(0.0..=1.0).contains(&threshold)
                    || !(0.0..=1.0).contains(&exploration)
                    || peak_prefill_tps.is_nan()
                    || peak_prefill_tps <= 0.0)
            {
                return Err(invalid(
                    "prefix-cache-affinity-filter: affinityThreshold and explorationProbability must be in [0, 1], peakPrefillThroughput > 0",
                ));
            }
            Kind::Filter(f)
        }
        "utilization-detector" => {
            let q: UtilizationParams = params(p)?;
            Kind::Filter(Filter::Utilization {
                queue_threshold: q.queue_depth_threshold.unwrap_or(5.0),
                kv_threshold: q.kv_cache_util_threshold.unwrap_or(0.8),
                headroom: q.headroom.unwrap_or(0.0),
            })
        }
        "decode-filter" => Kind::Filter(Filter::Decode),
        "max-score-picker" | "random-picker" | "weighted-random-picker" => {
            params::<PickerParams>(p)?;
            Kind::Picker(match t {
                "max-score-picker" => Picker::MaxScore,
                "random-picker" => Picker::Random,
                _ => Picker::WeightedRandom,
            })
        }
        t if PASSIVE_TYPES.contains(&t) => Kind::Passive,
        "prefill-filter" | "by-label-selector" | "pd-profile-handler" | "disagg-profile-handler" => {
            return Err(invalid(format!(
                "plugin type `{t}` needs pod roles/labels or P/D disaggregation, which servesim does not model"
            )));
        }
        other => {
            let hint = [SCORER_TYPES, FILTER_TYPES, PICKER_TYPES, PASSIVE_TYPES]
                .concat()
                .into_iter()
                .min_by_key(|v| strsim::levenshtein(v, other))
                .filter(|v| strsim::levenshtein(v, other) <= 4)
                .map(|v| format!(" (did you mean `{v}`?)"))
                .unwrap_or_default();
            return Err(invalid(format!("unknown plugin type `{other}`{hint}; valid types: {}", valid_types())));
        }
    })
}

impl EndpointPickerConfig {
    /// Checks the configuration and builds its (single) scheduling profile.
    pub fn resolve(&self, version: EppVersion) -> Result<ResolvedProfile, RouterError> {
        let mut defs: Vec<(&str, &PluginSpec)> = Vec::new();
        for p in &self.plugins {
            let name = p.name.as_deref().unwrap_or(&p.plugin_type);
            if defs.iter().any(|(n, _)| *n == name) {
                return Err(invalid(format!("plugin name `{name}` is defined twice")));
            }
            defs.push((name, p));
        }
        // Validate every declared plugin, referenced or not.
        let mut kinds = Vec::with_capacity(defs.len());
        for (_, p) in &defs {
            kinds.push(classify(p, version)?);
        }
        let prof = match self.scheduling_profiles.as_slice() {
            [one] => one,
            [] => return Err(invalid("the config has no schedulingProfiles")),
            _ => {
                return Err(invalid(
                    "only one scheduling profile is supported (multi-profile / P/D handlers are not modelled)",
                ));
            }
        };
        let mut filters = Vec::new();
        let mut scorers = Vec::new();
        let mut picker = None;
        let mut prefix_scorer_params = None;
        for r in &prof.plugins {
            let Some(i) = defs.iter().position(|(n, _)| *n == r.plugin_ref) else {
                let names: Vec<&str> = defs.iter().map(|(n, _)| *n).collect();
                return Err(invalid(format!(
                    "profile `{}` references plugin `{}`, which is not defined under `plugins` (defined: {})",
                    prof.name,
                    r.plugin_ref,
                    names.join(", ")
                )));
            };
            match &kinds[i] {
                Kind::Scorer(s) => {
                    let w = r.weight.unwrap_or(1.0);
                    if !w.is_finite() || w < 0.0 {
                        return Err(invalid(format!("weight of `{}` must be a finite number ≥ 0", r.plugin_ref)));
                    }
                    if *s == Scorer::Prefix && prefix_scorer_params.is_none() {
                        prefix_scorer_params = Some(params::<PrefixParams>(defs[i].1)?);
                    }
                    scorers.push((s.clone(), w));
                }
                Kind::Filter(f) => filters.push(f.clone()),
                Kind::Picker(p) => {
                    if picker.is_some() {
                        return Err(invalid(format!("profile `{}` has more than one picker", prof.name)));
                    }
                    picker = Some(*p);
                }
                Kind::Passive => {}
            }
        }
        let producer = defs
            .iter()
            .find(|(_, p)| p.plugin_type == "approx-prefix-cache-producer")
            .map(|(_, p)| params::<PrefixParams>(p))
            .transpose()?;
        let needs_approx = scorers.iter().any(|(s, _)| matches!(s, Scorer::Prefix | Scorer::NoHitLru { .. }))
            || filters.iter().any(|f| matches!(f, Filter::PrefixAffinity { .. }));
        let approx = match (producer, prefix_scorer_params) {
            (Some(p), _) => Some(ApproxSpec::from_params(version, &p)),
            (None, Some(p)) => Some(ApproxSpec::from_params(version, &p)),
            (None, None) if needs_approx => Some(ApproxSpec::from_params(version, &PrefixParams::default())),
            (None, None) => None,
        };
        let precise = scorers.iter().any(|(s, _)| matches!(s, Scorer::PrecisePrefix { .. }));
        Ok(ResolvedProfile {
            name: prof.name.clone(),
            filters,
            scorers,
            picker: picker.unwrap_or(Picker::MaxScore),
            approx,
            precise,
        })
    }
}

/// Named profiles (spec §1.3), each as the upstream YAML it stands for.
pub const NAMED_PROFILES: &[(&str, &str)] = &[
    // A. Built-in default / GIE chart ≥ v1.2 / llm-d inference-scheduling guide.
    (
        "default",
        r#"
plugins: [{type: queue-scorer}, {type: kv-cache-utilization-scorer}, {type: prefix-cache-scorer}]
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: queue-scorer, weight: 2}
  - {pluginRef: kv-cache-utilization-scorer, weight: 2}
  - {pluginRef: prefix-cache-scorer, weight: 3}
"#,
    ),
    // GIE v1.0.0–v1.1.0 chart: the same three scorers, weight 1 each.
    (
        "default-v1.0",
        r#"
plugins: [{type: queue-scorer}, {type: kv-cache-utilization-scorer}, {type: prefix-cache-scorer}]
schedulingProfiles:
- name: default
  plugins: [{pluginRef: queue-scorer}, {pluginRef: kv-cache-utilization-scorer}, {pluginRef: prefix-cache-scorer}]
"#,
    ),
    // C. kv-cache-manager benchmarks: load-scheduling.
    (
        "load",
        r#"
plugins: [{type: queue-scorer}, {type: kv-cache-utilization-scorer}, {type: max-score-picker}]
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: queue-scorer, weight: 1}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1}
  - {pluginRef: max-score-picker}
"#,
    ),
    // C. random-scheduling.
    (
        "random",
        r#"
plugins: [{type: random-picker}]
schedulingProfiles:
- name: default
  plugins: [{pluginRef: random-picker}]
"#,
    ),
    // C. estimated/approximate-scheduling (73-capacity).
    (
        "approximate",
        r#"
plugins:
- type: prefix-cache-scorer
  parameters: {hashBlockSize: 64, maxPrefixBlocksToMatch: 256, lruCapacityPerServer: 31250, autoTune: false}
- {type: kv-cache-utilization-scorer}
- {type: queue-scorer}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: prefix-cache-scorer, weight: 1}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1}
  - {pluginRef: queue-scorer, weight: 1}
"#,
    ),
    // C. default-scheduling (37-capacity).
    (
        "default-37",
        r#"
plugins: [{type: queue-scorer}, {type: kv-cache-utilization-scorer}, {type: prefix-cache-scorer}]
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: queue-scorer, weight: 1}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1}
  - {pluginRef: prefix-cache-scorer, weight: 2}
"#,
    ),
    // B. llm-d precise-prefix-cache-aware guide (also 37-capacity precise): 2 / 1 / 1.
    (
        "precise",
        r#"
plugins:
- {type: decode-filter}
- type: precise-prefix-cache-scorer
  parameters: {tokenProcessorConfig: {blockSize: 64, hashSeed: "42"}}
- {type: kv-cache-utilization-scorer}
- {type: queue-scorer}
- {type: max-score-picker}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: decode-filter}
  - {pluginRef: precise-prefix-cache-scorer, weight: 2.0}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1.0}
  - {pluginRef: queue-scorer, weight: 1.0}
  - {pluginRef: max-score-picker}
"#,
    ),
    // C. precise-scheduling (73-capacity): 3 / 2 / 2.
    (
        "precise-73",
        r#"
plugins:
- type: precise-prefix-cache-scorer
  parameters: {tokenProcessorConfig: {blockSize: 64, hashSeed: "42"}}
- {type: kv-cache-utilization-scorer}
- {type: queue-scorer}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: precise-prefix-cache-scorer, weight: 3}
  - {pluginRef: kv-cache-utilization-scorer, weight: 2}
  - {pluginRef: queue-scorer, weight: 2}
"#,
    ),
    // D. llm-d optimized-baseline 2026.
    (
        "optimized-baseline",
        r#"
plugins:
- type: token-load-scorer
- type: inflight-load-producer
- type: approx-prefix-cache-producer
  parameters: {maxPrefixTokensToMatch: 40960}
- type: prefix-cache-affinity-filter
  parameters: {affinityThreshold: 0.80, maxTokensInFlightPenalty: 286720, maxTTFTPenaltyMs: 0}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: prefix-cache-affinity-filter}, {pluginRef: token-load-scorer}]
"#,
    ),
];

/// The named profile's upstream config.
pub fn named_profile(name: &str) -> Result<EndpointPickerConfig, RouterError> {
    let Some((_, yaml)) = NAMED_PROFILES.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = NAMED_PROFILES.iter().map(|(n, _)| *n).collect();
        return Err(invalid(format!("unknown profile `{name}`; valid profiles: {}", names.join(", "))));
    };
    parse_config_yaml(yaml).map_err(|e| invalid(format!("built-in profile `{name}`: {e}")))
}

/// Parses an upstream `EndpointPickerConfig` YAML document.
pub fn parse_config_yaml(text: &str) -> Result<EndpointPickerConfig, String> {
    serde_saphyr::from_str(text).map_err(|e| e.to_string())
}

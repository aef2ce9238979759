//! Workloads: where requests come from. A workload is an event source the engine pulls from
//! in arrival order ([`Workload::peek_time`] / [`Workload::pop`]); closed-loop users and
//! multi-turn sessions learn of completions through [`Workload::on_finished`] and schedule
//! their next request from it. Token content is described with [`crate::content`] pieces,
//! never as text. All randomness comes from streams named `workload.*`, so the same scenario
//! and seed give the same requests whatever the cluster, router or engine settings.

pub mod arrival;
pub mod coding;
pub mod config;
pub mod length;
pub mod sessions;
pub mod synthetic;

use crate::content::{ChainArena, Content};
use crate::rng::{RngStreams, splitmix64};
use crate::units::{RequestId, SimDuration, SimTime, Tokens};
use std::path::{Path, PathBuf};

pub use arrival::{Arrival, ArrivalProcess};
pub use coding::CodingAssistantWorkload;
pub use config::WorkloadConfig;
pub use length::LengthDist;
pub use sessions::SessionsWorkload;
pub use synthetic::SyntheticWorkload;

/// One request as the workload issues it.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub id: RequestId,
    pub arrival: SimTime,
    /// Prompt tokens (equals `content.tokens(arena)`).
    pub input: Tokens,
    /// Tokens the request generates (`ignore_eos` + `max_tokens` semantics).
    pub output: Tokens,
    pub content: Content,
    /// Content key of the generated tokens: output token `i` is token `(output_key, i)`, so a
    /// later turn that quotes this answer shares its blocks.
    pub output_key: u64,
    /// Session (user, conversation) this request belongs to, for affinity routing and
    /// closed-loop feedback.
    pub session: Option<u64>,
    /// Prefix group (e.g. repository or system prompt) for reports; `None` if unshared.
    pub group: Option<u32>,
    /// Whether a later request may contain this request's private blocks (prompt beyond the
    /// shared chain, or its answer): multi-turn history, repeated questions. `false` is a
    /// promise by the workload that lets the engine skip indexing blocks nobody can hit.
    pub private_reuse: bool,
    /// Whether no earlier request contains this request's first private block (its first full
    /// block past the shared chain's full blocks), so that a prefix-cache lookup never finds
    /// anything past the shared chain. With `private_reuse: false`, this promise lets the
    /// engine skip hashing the request's blocks, which nobody reads, unless it is preempted.
    pub novel_private: bool,
}

/// How a request ended, as far as the workload needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Completed,
    Rejected,
}

/// A source of requests in non-decreasing arrival order.
pub trait Workload {
    /// Arrival time of the next request known now, if any.
    fn peek_time(&self) -> Option<SimTime>;
    /// Removes and returns the next request. Only called when `peek_time` is `Some`.
    fn pop(&mut self) -> RequestSpec;
    /// Told when a request finished (closed-loop users and sessions schedule their next turn).
    fn on_finished(&mut self, _now: SimTime, _req: &RequestSpec, _how: Finish) {}
    /// Shared prefixes referenced by the requests (fully registered before the first `pop`).
    fn arena(&self) -> &ChainArena;
    /// Offered load, for reports; `None` when not defined (closed loop).
    fn mean_rate(&self) -> Option<f64> {
        None
    }
}

/// A configuration error, naming the offending field (as a YAML path below `workload`) or file.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("workload.{field}: {msg}")]
    Invalid { field: String, msg: String },
    #[error("workload.{field}: cannot read `{}`: {source}", path.display())]
    Io {
        field: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("workload.{field}: {}:{line}: {msg}", path.display())]
    File { field: String, path: PathBuf, line: usize, msg: String },
}

impl WorkloadError {
    pub(crate) fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Self {
        WorkloadError::Invalid { field: field.into(), msg: msg.into() }
    }
}

/// Builds the workload of a scenario. Requests arrive in `[0, duration)`, none after;
/// relative file paths (empirical length files) are resolved against `base_dir`.
pub fn build(
    cfg: &WorkloadConfig,
    streams: &RngStreams,
    duration: SimDuration,
    base_dir: &Path,
) -> Result<Box<dyn Workload>, WorkloadError> {
    Ok(match cfg {
        WorkloadConfig::Synthetic(c) => Box::new(SyntheticWorkload::new(c, streams, duration, base_dir)?),
        WorkloadConfig::Sessions(c) => Box::new(SessionsWorkload::new(c, streams, duration, base_dir)?),
        WorkloadConfig::CodingAssistant(c) => Box::new(CodingAssistantWorkload::new(c, streams, duration, base_dir)?),
        WorkloadConfig::Trace(c) => {
            Box::new(crate::trace::workload::TraceWorkload::new(c, streams, duration, base_dir)?)
        }
    })
}

/// One line describing a workload configuration, for reports.
pub fn describe(cfg: &WorkloadConfig) -> String {
    use config::PrefixConfig;
    match cfg {
        WorkloadConfig::Synthetic(c) => {
            let mut s = match &c.prefix {
                PrefixConfig::None => format!(
                    "synthetic: {}; input {}; output {}",
                    arrival::describe(&c.arrival),
                    length::describe(&c.input),
                    length::describe(&c.output)
                ),
                PrefixConfig::SharedPrefix(p) => format!(
                    "synthetic: {}; shared prefix {} groups x {} prompts, system {} + question {} tokens; output {}",
                    arrival::describe(&c.arrival),
                    p.groups,
                    p.prompts_per_group,
                    p.system_prompt_len,
                    p.question_len,
                    length::describe(&c.output)
                ),
            };
            if let Some(m) = c.max_requests {
                s.push_str(&format!("; at most {m} requests"));
            }
            s
        }
        WorkloadConfig::Sessions(c) => format!(
            "sessions: {}; turns {}; system prompt {} tokens; user message {}; output {}; think {}s",
            arrival::describe(&c.arrival),
            length::describe(&c.turns),
            c.system_prompt_len,
            length::describe(&c.user_message),
            length::describe(&c.output),
            fmt_num(c.think_time.0.as_secs_f64())
        ),
        WorkloadConfig::CodingAssistant(c) => format!(
            "coding assistant: {} engineers in {} repositories, {} req/engineer-hour at peak from {}h; \
             repo context {}; file context {} (new file every {} requests); question {}; output {}; \
             history up to {} turns",
            c.engineers,
            c.repositories,
            fmt_num(c.requests_per_engineer_hour),
            fmt_num(c.start_hour),
            length::describe(&c.repo_context),
            length::describe(&c.file_context),
            c.requests_per_file,
            length::describe(&c.question),
            length::describe(&c.output),
            c.max_history_turns
        ),
        WorkloadConfig::Trace(c) => format!(
            "trace replay: {}{}{}",
            c.file,
            c.format.map_or(String::new(), |f| format!(" ({})", f.as_str())),
            c.time_scale.map_or(String::new(), |s| format!("; time x{}", fmt_num(s)))
        ),
    }
}

/// Formats a number compactly (integers without decimals, otherwise up to 4 significant).
pub(crate) fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{:.4}", x);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A space of content keys: `at(i)` is a bijection of `i`, so keys of one space never repeat;
/// distinct spaces (derived from the seed and a name) collide only with probability ~2^-64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeySpace(u64);

impl KeySpace {
    pub(crate) fn new(streams: &RngStreams, name: &str) -> Self {
        KeySpace(streams.key(name, 0))
    }
    #[inline]
    pub(crate) fn at(self, i: u64) -> u64 {
        splitmix64(self.0 ^ splitmix64(i))
    }
    /// Key of the pair `(a, b)` (e.g. (group, prompt), (engineer, file)).
    #[inline]
    pub(crate) fn at2(self, a: u64, b: u64) -> u64 {
        splitmix64(self.at(a) ^ splitmix64(b ^ 0xA5A5_5A5A_C3C3_3C3C))
    }
}

/// Checks a rate-like number is finite and positive.
pub(crate) fn positive(field: &str, v: f64) -> Result<f64, WorkloadError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(WorkloadError::invalid(field, format!("must be a finite number > 0 (got {v})")))
    }
}

/// End of the arrival window as a time.
pub(crate) fn horizon(duration: SimDuration) -> SimTime {
    SimTime(duration.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> WorkloadConfig {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn first_requests(cfg: &WorkloadConfig, n: usize) -> Vec<RequestSpec> {
        let mut w = build(cfg, &RngStreams::new(1), SimDuration::from_secs(3600), Path::new(".")).unwrap();
        let mut v = vec![];
        while v.len() < n && w.peek_time().is_some() {
            v.push(w.pop());
        }
        v
    }

    #[test]
    fn yaml_configs_build_and_describe() {
        let synthetic = parse(
            "kind: synthetic\n\
             arrival: {kind: gamma, rate: 5, cv: 2}\n\
             input: {kind: lognormal, mean: 1000, sigma: 0.6}\n\
             output: {kind: fixed, tokens: 200}\n\
             prefix: {kind: shared_prefix, groups: 3, prompts_per_group: 10, system_prompt_len: 500, question_len: 50}\n",
        );
        let sessions = parse(
            "kind: sessions\n\
             arrival: {kind: diurnal, peak_rate: 2, profile: [0.2, 1.0, 0.5], start_hour: 8}\n\
             turns: {kind: uniform, min: 1, max: 8}\n\
             system_prompt_len: 300\n\
             user_message: {kind: lognormal, mean: 80, sigma: 0.5, max: 1000}\n\
             output: {kind: uniform, min: 20, max: 400}\n\
             think_time: 20s\n",
        );
        let coding = parse(
            "kind: coding_assistant\n\
             engineers: 500\n\
             repositories: 20\n\
             repo_context: {kind: lognormal, mean: 20000, sigma: 0.4, min: 2000, max: 60000}\n\
             file_context: {kind: uniform, min: 500, max: 4000}\n\
             question: {kind: uniform, min: 20, max: 300}\n\
             output: {kind: lognormal, mean: 300, sigma: 0.7}\n\
             requests_per_engineer_hour: 30\n\
             hourly_profile: [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.7, 1, 1, 0.9, 0.6, 0.9, 1, 1, 0.9, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05, 0.05]\n\
             start_hour: 9\n",
        );
        for (cfg, word) in [(&synthetic, "shared prefix 3 groups"), (&sessions, "diurnal"), (&coding, "500 engineers")]
        {
            let d = describe(cfg);
            assert!(d.contains(word) && !d.contains('\n'), "{d}");
            let v = first_requests(cfg, 50);
            assert_eq!(v.len(), 50, "{d}");
            for (i, r) in v.iter().enumerate() {
                assert_eq!(r.id, RequestId(i as u64));
                assert!(r.input.0 >= 1 && r.output.0 >= 1);
                assert!(i == 0 || r.arrival >= v[i - 1].arrival);
            }
        }
        if let WorkloadConfig::CodingAssistant(c) = &coding {
            assert_eq!((c.requests_per_file, c.max_history_turns, c.repo_skew), (4, 6, 0.0));
        }
        let w = build(&coding, &RngStreams::new(1), SimDuration::from_secs(3600), Path::new(".")).unwrap();
        assert!((w.mean_rate().unwrap() - 500.0 * 30.0 / 3600.0).abs() < 1e-9);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = parse(
            "kind: synthetic\n\
             arrival: {kind: poisson, rate: 1}\n\
             input: {kind: uniform, min: 0, max: 10}\n\
             output: {kind: fixed, tokens: 1}\n",
        );
        let e = build(&bad, &RngStreams::new(1), SimDuration::from_secs(1), Path::new(".")).err().unwrap().to_string();
        assert!(e.contains("workload.input.min"), "{e}");
        let bad = parse(
            "kind: coding_assistant\nengineers: 0\nrepositories: 1\n\
             repo_context: {kind: fixed, tokens: 1}\nfile_context: {kind: fixed, tokens: 0}\n\
             question: {kind: fixed, tokens: 1}\noutput: {kind: fixed, tokens: 1}\n\
             requests_per_engineer_hour: 1\nhourly_profile: [1]\n",
        );
        let e = build(&bad, &RngStreams::new(1), SimDuration::from_secs(1), Path::new(".")).err().unwrap().to_string();
        assert!(e.contains("workload.engineers"), "{e}");
    }
}

//! Per-stage breakdown of a run whose arrivals are inference-perf style stages
//! (`arrival: {kind: stages, ...}`): for each stage window, the figures inference-perf reports
//! per stage. Used by `compare --per-stage` and the blind predictions in `validation/README.md`.
//!
//! Definitions (per stage window [start, end) of arrival time):
//! - output tok/s: generation tokens the cluster produced during the window (engine counters
//!   at the sampling ticks), divided by the window length;
//! - TTFT mean / p90: over completed requests that *arrived* in the window (nearest rank);
//! - ITL mean: token-weighted mean inter-token latency of those requests,
//!   Σ(last − first token) / Σ(output − 1);
//! - KV usage: mean over the window's ticks of the replicas' mean `kv_usage`;
//! - waiting: mean and max over the window's ticks of the cluster's waiting queue (Σ replicas).

use crate::metrics::{Outcome, percentile};
use crate::scenario::Scenario;
use crate::sim::SimOutput;
use crate::units::{SimDuration, SimTime};
use crate::workload::config::{ArrivalConfig, WorkloadConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageRow {
    pub stage: usize,
    pub rate: f64,
    pub start_s: f64,
    pub end_s: f64,
    pub arrived: u64,
    pub completed: u64,
    pub output_tokens_per_s: f64,
    pub ttft_mean_s: Option<f64>,
    pub ttft_p90_s: Option<f64>,
    pub itl_mean_s: Option<f64>,
    pub kv_usage_mean: Option<f64>,
    pub waiting_mean: Option<f64>,
    pub waiting_max: Option<u32>,
}

/// (rate, start, end) of each stage, if the workload's arrivals are stages.
pub fn stage_windows(w: &WorkloadConfig) -> Option<Vec<(f64, SimTime, SimTime)>> {
    let arrival = match w {
        WorkloadConfig::Synthetic(c) => &c.arrival,
        WorkloadConfig::Sessions(c) => &c.arrival,
        WorkloadConfig::CodingAssistant(_) | WorkloadConfig::Trace(_) => return None,
    };
    let ArrivalConfig::Stages(s) = arrival else { return None };
    let mut t = SimTime::ZERO;
    let mut v = Vec::new();
    for st in &s.stages {
        let end = t + st.duration.0;
        v.push((st.rate, t, end));
        t = end;
    }
    Some(v)
}

/// Per-stage rows of a finished run (`None` when the workload has no stages).
pub fn per_stage(sc: &Scenario, out: &SimOutput) -> Option<Vec<StageRow>> {
    let windows = stage_windows(&sc.workload)?;
    // Per replica: (tick time, cumulative generation tokens), ascending.
    let mut gen_by_replica: BTreeMap<u32, Vec<(SimTime, u64)>> = BTreeMap::new();
    // Per tick time: (Σ kv_usage, replicas, Σ waiting).
    let mut ticks: BTreeMap<SimTime, (f64, u32, u32)> = BTreeMap::new();
    for t in &out.recorder.ticks {
        gen_by_replica.entry(t.sample.replica.0).or_default().push((t.time, t.sample.generation_tokens));
        let e = ticks.entry(t.time).or_default();
        e.0 += t.sample.kv_usage;
        e.1 += 1;
        e.2 += t.sample.waiting;
    }
    let cum_at = |at: SimTime| -> u64 {
        gen_by_replica
            .values()
            .map(|v| {
                let i = v.partition_point(|x| x.0 <= at);
                if i == 0 { 0 } else { v[i - 1].1 }
            })
            .sum()
    };
    let mut rows = Vec::new();
    for (i, &(rate, start, end)) in windows.iter().enumerate() {
        let span = end.since(start).as_secs_f64();
        let mut ttft = Vec::new();
        let (mut arrived, mut gaps_ns, mut gaps) = (0u64, 0u128, 0u64);
        for r in out.recorder.records.iter().filter(|r| r.arrival >= start && r.arrival < end) {
            arrived += 1;
            if r.outcome != Outcome::Completed {
                continue;
            }
            ttft.extend(r.ttft_s());
            if let (Some(f), Some(l)) = (r.first_token, r.last_token)
                && r.output_tokens > 1
            {
                gaps_ns += l.since(f).as_nanos() as u128;
                gaps += (r.output_tokens - 1) as u64;
            }
        }
        ttft.sort_unstable_by(f64::total_cmp);
        let in_win: Vec<&(f64, u32, u32)> = ticks.range(start..end).map(|(_, v)| v).collect();
        let n = in_win.len() as f64;
        let gen_tokens = cum_at(end).saturating_sub(cum_at(start));
        rows.push(StageRow {
            stage: i,
            rate,
            start_s: start.as_secs_f64(),
            end_s: end.as_secs_f64(),
            arrived,
            completed: ttft.len() as u64,
            output_tokens_per_s: if span > 0.0 { gen_tokens as f64 / span } else { 0.0 },
            ttft_mean_s: if ttft.is_empty() { None } else { Some(ttft.iter().sum::<f64>() / ttft.len() as f64) },
            ttft_p90_s: percentile(&ttft, 90.0),
            itl_mean_s: if gaps > 0 { Some(SimDuration((gaps_ns / gaps as u128) as u64).as_secs_f64()) } else { None },
            kv_usage_mean: if n > 0.0 {
                Some(in_win.iter().map(|v| v.0 / v.1.max(1) as f64).sum::<f64>() / n)
            } else {
                None
            },
            waiting_mean: if n > 0.0 { Some(in_win.iter().map(|v| v.2 as f64).sum::<f64>() / n) } else { None },
            waiting_max: in_win.iter().map(|v| v.2).max(),
        });
    }
    Some(rows)
}

/// Markdown table of one router's stages.
pub fn render_markdown(router: &str, rows: &[StageRow]) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.0}", x * 1e3));
    let mut t = String::new();
    let _ = writeln!(t, "**{router}**\n");
    let _ = writeln!(
        t,
        "| stage | rate (req/s) | window (s) | requests | output tok/s | TTFT mean (ms) | TTFT p90 (ms) | ITL mean (ms) | KV usage | waiting mean / max |"
    );
    let _ = writeln!(t, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {:.0}–{:.0} | {} | {:.0} | {} | {} | {} | {} | {} / {} |",
            r.stage,
            r.rate,
            r.start_s,
            r.end_s,
            r.arrived,
            r.output_tokens_per_s,
            ms(r.ttft_mean_s),
            ms(r.ttft_p90_s),
            r.itl_mean_s.map_or("-".into(), |x| format!("{:.1}", x * 1e3)),
            r.kv_usage_mean.map_or("-".into(), |x| format!("{:.1} %", x * 100.0)),
            r.waiting_mean.map_or("-".into(), |x| format!("{x:.1}")),
            r.waiting_max.map_or("-".into(), |x| x.to_string()),
        );
    }
    t
}

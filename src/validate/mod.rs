//! Validation: simulate what a real run was offered and compare what came out.
//!
//! The point is a number a user can trust: for every statistic (TTFT, TPOT, ITL, E2E and
//! queue time at mean/p50/p90/p99, throughput, prefix hit rate, preemptions, KV usage) the
//! real value, the simulated one, the signed error and its absolute percentage (hit rate in
//! percentage points, since a rate near zero makes a percentage meaningless), and the KS
//! distance of the per-request distributions. A run is reconstructed from the trace alone
//! where the trace says enough (engine settings, model, GPU, arrivals, prefix hashes);
//! everything assumed is listed in the case's `notes` so that an error can be read against
//! what the simulator was told.

pub mod cmd;
pub mod html;
pub mod reconstruct;

use crate::metrics::{Outcome, RequestRecord, Stats, Summary};
use crate::report::data::TsRow;
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency statistics compared, in display order.
pub const LATENCY_METRICS: [&str; 5] = ["ttft", "tpot", "itl", "e2e", "queue"];
pub const QUANTILES: [&str; 4] = ["mean", "p50", "p90", "p99"];

/// One run's comparable facts (real or simulated).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunView {
    /// Statistic name → value (seconds, req/s, tok/s, fraction or count).
    pub stats: BTreeMap<String, f64>,
    /// Per-request samples (seconds) by metric, for KS distances and CDFs.
    #[serde(skip)]
    pub dists: BTreeMap<String, Vec<f64>>,
    /// Mean KV usage over replicas per tick: (time s, usage fraction).
    pub kv_usage: Vec<(f64, f64)>,
    /// Running requests (Σ replicas) per tick.
    pub running: Vec<(f64, f64)>,
}

/// Why a live recording's queue time is not compared.
pub const CLIENT_QUEUE_NOTE: &str =
    "queue time not compared: a live client sees only its own send lag, not the server's waiting queue";

impl RunView {
    /// Forgets the queue statistics (a client-side recording's `queue_s` is its send lag).
    pub fn drop_queue(&mut self) {
        self.stats.retain(|k, _| !k.starts_with("queue_"));
        self.dists.remove("queue");
    }
}

fn put_stats(v: &mut RunView, metric: &str, s: &Stats) {
    for (q, x) in [("mean", s.mean), ("p50", s.p50), ("p90", s.p90), ("p99", s.p99)] {
        if let Some(x) = x {
            v.stats.insert(format!("{metric}_{q}"), x);
        }
    }
}

/// Per-tick cluster series from timeseries rows.
fn series(ts: &[TsRow]) -> (Vec<(f64, f64)>, Vec<(f64, f64)>) {
    let mut by_t: BTreeMap<u64, (f64, u32, f64)> = BTreeMap::new();
    for r in ts {
        let e = by_t.entry((r.time_s * 1e3).round() as u64).or_default();
        e.0 += r.kv_usage;
        e.1 += 1;
        e.2 += r.running as f64;
    }
    let kv = by_t.iter().map(|(t, e)| (*t as f64 / 1e3, e.0 / e.1.max(1) as f64)).collect();
    let run = by_t.iter().map(|(t, e)| (*t as f64 / 1e3, e.2)).collect();
    (kv, run)
}

impl RunView {
    /// From per-request records of completed requests; `summary` (when present) supplies
    /// ITL, hit rate and preemptions, which records cannot.
    pub fn from_records(
        records: &[RequestRecord],
        summary: Option<&Summary>,
        itl_samples: &[f64],
        span_s: Option<f64>,
        ts: &[TsRow],
    ) -> RunView {
        let mut v = RunView::default();
        let done: Vec<&RequestRecord> = records.iter().filter(|r| r.outcome == Outcome::Completed).collect();
        let col =
            |f: &dyn Fn(&RequestRecord) -> Option<f64>| -> Vec<f64> { done.iter().filter_map(|r| f(r)).collect() };
        let ttft = col(&|r| r.ttft_s());
        let tpot = col(&|r| r.tpot_s());
        let e2e = col(&|r| r.e2e_s());
        let queue = col(&|r| r.queue_s());
        for (name, xs) in [("ttft", ttft), ("tpot", tpot), ("e2e", e2e), ("queue", queue)] {
            if !xs.is_empty() {
                put_stats(&mut v, name, &Stats::from_secs(xs.clone()));
                v.dists.insert(name.to_string(), xs);
            }
        }
        if !itl_samples.is_empty() {
            put_stats(&mut v, "itl", &Stats::from_secs(itl_samples.to_vec()));
            v.dists.insert("itl".into(), itl_samples.to_vec());
        } else if let Some(s) = summary {
            put_stats(&mut v, "itl", &s.itl_s);
        }
        if let Some(span) = span_s.filter(|s| *s > 0.0) {
            v.stats.insert("throughput_rps".into(), done.len() as f64 / span);
            let out: u64 = done.iter().map(|r| r.output_tokens as u64).sum();
            v.stats.insert("output_tps".into(), out as f64 / span);
        }
        if let Some(s) = summary {
            if let Some(h) = s.prefix_hit_rate {
                v.stats.insert("hit_rate".into(), h);
            }
            v.stats.insert("preemptions".into(), s.preemptions as f64);
        }
        let (kv, run) = series(ts);
        if !kv.is_empty() {
            v.stats.insert("kv_usage_mean".into(), kv.iter().map(|p| p.1).sum::<f64>() / kv.len() as f64);
        }
        v.kv_usage = kv;
        v.running = run;
        v
    }

    /// From a simulation's outputs.
    pub fn from_sim(out: &crate::sim::SimOutput) -> RunView {
        let ts = crate::report::data::parse_timeseries_csv(&crate::metrics::render_timeseries_csv(&out.recorder.ticks))
            .unwrap_or_default();
        let mut v = RunView::from_records(
            &out.recorder.records,
            Some(&out.summary),
            &[],
            Some(out.summary.simulated_seconds),
            &ts,
        );
        // The simulator knows every record's hit; ITL comes from its pooled step gaps.
        put_stats(&mut v, "itl", &out.summary.itl_s);
        v
    }

    /// A simulation restricted to requests arriving in `[t0, t1)` seconds (one stage);
    /// ITL is pooled over the run, so it is left out.
    pub fn from_sim_window(out: &crate::sim::SimOutput, t0: f64, t1: f64) -> RunView {
        let recs: Vec<RequestRecord> = out
            .recorder
            .records
            .iter()
            .filter(|r| {
                let a = r.arrival.as_nanos() as f64 / 1e9;
                a >= t0 && a < t1
            })
            .cloned()
            .collect();
        let mut v = RunView::from_records(&recs, None, &[], None, &[]);
        let done: Vec<&RequestRecord> = recs.iter().filter(|r| r.outcome == Outcome::Completed).collect();
        if t1 > t0 {
            let out_tok: u64 = done.iter().map(|r| r.output_tokens as u64).sum();
            v.stats.insert("output_tps".into(), out_tok as f64 / (t1 - t0));
        }
        v
    }
}

/// One compared statistic.
#[derive(Clone, Debug, Serialize)]
pub struct StatRow {
    pub stat: String,
    pub real: Option<f64>,
    pub sim: Option<f64>,
    /// (sim − real) / real in percent; for `hit_rate` and `kv_usage_mean`: percentage points.
    pub signed_err: Option<f64>,
    /// |signed_err|.
    pub abs_err: Option<f64>,
    /// Unit of the error: `%` or `pp`.
    pub unit: &'static str,
    pub tolerance: Option<f64>,
    pub passed: Option<bool>,
}

/// A real-vs-simulated comparison of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub label: String,
    pub rows: Vec<StatRow>,
    /// Kolmogorov–Smirnov distance of the per-request distributions (metric → D).
    pub ks: BTreeMap<String, f64>,
    pub notes: Vec<String>,
    pub passed: bool,
}

/// All statistic names in report order.
pub fn stat_names() -> Vec<String> {
    let mut v = Vec::new();
    for m in LATENCY_METRICS {
        for q in QUANTILES {
            v.push(format!("{m}_{q}"));
        }
    }
    for s in ["throughput_rps", "output_tps", "hit_rate", "preemptions", "kv_usage_mean"] {
        v.push(s.to_string());
    }
    v
}

fn is_pp(stat: &str) -> bool {
    matches!(stat, "hit_rate" | "kv_usage_mean")
}

/// Tolerances: `stat=pct` (exact statistic), or `metric=pct` for its mean/p50/p90/p99.
#[derive(Clone, Debug, Default)]
pub struct Tolerances(pub Vec<(String, f64)>);

impl Tolerances {
    pub fn parse(args: &[String]) -> Result<Tolerances, String> {
        let names = stat_names();
        let mut v = Vec::new();
        for a in args {
            let (k, x) = a
                .split_once('=')
                .ok_or_else(|| format!("--tolerance `{a}`: write STAT=PERCENT, e.g. e2e_mean=5 or ttft=10"))?;
            let x: f64 = x
                .trim()
                .trim_end_matches(['%', 'p'])
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("--tolerance `{a}`: `{x}` is not a non-negative number"))?;
            let k = k.trim().to_string();
            if !names.contains(&k) && !LATENCY_METRICS.contains(&k.as_str()) {
                return Err(format!(
                    "--tolerance `{a}`: unknown statistic `{k}`; use one of {} or a metric ({})",
                    names.join(", "),
                    LATENCY_METRICS.join(", ")
                ));
            }
            v.push((k, x));
        }
        Ok(Tolerances(v))
    }

    pub fn get(&self, stat: &str) -> Option<f64> {
        self.0.iter().rev().find(|(k, _)| k == stat).map(|x| x.1).or_else(|| {
            let metric = stat.rsplit_once('_').map(|(m, _)| m)?;
            self.0.iter().rev().find(|(k, _)| k == metric).map(|x| x.1)
        })
    }
}

/// Two-sample Kolmogorov–Smirnov distance: sup |F_a − F_b|.
pub fn ks_distance(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    Some(d)
}

/// Compares a real and a simulated run.
pub fn compare(label: &str, real: &RunView, sim: &RunView, tol: &Tolerances, notes: Vec<String>) -> Comparison {
    let mut rows = Vec::new();
    for stat in stat_names() {
        let (r, s) = (real.stats.get(&stat).copied(), sim.stats.get(&stat).copied());
        if r.is_none() {
            continue;
        }
        let pp = is_pp(&stat);
        let signed = match (r, s) {
            (Some(r), Some(s)) if pp => Some((s - r) * 100.0),
            (Some(r), Some(s)) if r != 0.0 => Some((s - r) / r * 100.0),
            (Some(r), Some(s)) if r == 0.0 && s == 0.0 => Some(0.0),
            _ => None,
        };
        let tolerance = tol.get(&stat);
        let passed = tolerance.map(|t| signed.is_some_and(|e| e.abs() <= t));
        rows.push(StatRow {
            stat,
            real: r,
            sim: s,
            signed_err: signed,
            abs_err: signed.map(f64::abs),
            unit: if pp { "pp" } else { "%" },
            tolerance,
            passed,
        });
    }
    let mut ks = BTreeMap::new();
    for m in LATENCY_METRICS {
        if let (Some(a), Some(b)) = (real.dists.get(m), sim.dists.get(m))
            && let Some(d) = ks_distance(a, b)
        {
            ks.insert(m.to_string(), d);
        }
    }
    let passed = rows.iter().all(|r| r.passed != Some(false));
    Comparison { label: label.to_string(), rows, ks, notes, passed }
}

fn fmt_val(stat: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x)
            if stat.ends_with("_mean")
                || stat.ends_with("_p50")
                || stat.ends_with("_p90")
                || stat.ends_with("_p99") =>
        {
            if stat.starts_with("kv_usage") {
                format!("{:.3}", x)
            } else {
                format!("{:.2} ms", x * 1e3)
            }
        }
        Some(x) if stat == "hit_rate" => format!("{:.3}", x),
        Some(x) if stat == "preemptions" => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// The side-by-side text table.
pub fn render_text(c: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(t, "== {} ==", c.label);
    let _ = writeln!(t, "{:<16} {:>14} {:>14} {:>10} {:>8} {:>6}", "statistic", "real", "sim", "error", "tol", "ok");
    for r in &c.rows {
        let err = r.signed_err.map_or("-".into(), |e| format!("{e:+.1}{}", if r.unit == "pp" { "pp" } else { "%" }));
        let tol = r.tolerance.map_or(String::new(), |x| format!("{x}{}", r.unit));
        let ok = match r.passed {
            Some(true) => "ok",
            Some(false) => "FAIL",
            None => "",
        };
        let _ = writeln!(
            t,
            "{:<16} {:>14} {:>14} {:>10} {:>8} {:>6}",
            r.stat,
            fmt_val(&r.stat, r.real),
            fmt_val(&r.stat, r.sim),
            err,
            tol,
            ok
        );
    }
    if !c.ks.is_empty() {
        let ks: Vec<String> = c.ks.iter().map(|(k, d)| format!("{k} {d:.3}")).collect();
        let _ = writeln!(t, "KS distance: {}", ks.join(", "));
    }
    for n in &c.notes {
        let _ = writeln!(t, "note: {n}");
    }
    t
}

/// Median and worst absolute error per statistic over several comparisons.
#[derive(Clone, Debug, Serialize)]
pub struct Aggregate {
    pub stat: String,
    pub unit: &'static str,
    pub runs: usize,
    pub median: f64,
    pub worst: f64,
    pub worst_run: String,
}

pub fn aggregate(cs: &[Comparison]) -> Vec<Aggregate> {
    let mut out = Vec::new();
    for stat in stat_names() {
        let mut v: Vec<(f64, &str, &'static str)> = cs
            .iter()
            .filter_map(|c| {
                c.rows.iter().find(|r| r.stat == stat).and_then(|r| r.abs_err.map(|e| (e, c.label.as_str(), r.unit)))
            })
            .collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2].0 } else { (v[n / 2 - 1].0 + v[n / 2].0) / 2.0 };
        let w = v[n - 1];
        out.push(Aggregate { stat, unit: w.2, runs: n, median, worst: w.0, worst_run: w.1.to_string() });
    }
    out
}

/// Statistics whose order across runs [`ranking`] checks (what a user compares configurations by).
pub const RANKED_STATS: [&str; 6] = ["ttft_mean", "ttft_p90", "tpot_mean", "e2e_mean", "e2e_p90", "throughput_rps"];

/// Real pairs closer than this (relative) are ties: replicates of one run differ by that much.
pub const RANK_TIE_GAP: f64 = 0.05;

/// Does the simulation order runs as reality does? Per statistic over all pairs of runs:
/// concordant and discordant pairs and Kendall's τ = (C − D) / (C + D). A pair whose real
/// values are within [`RANK_TIE_GAP`] of each other is a tie and not counted: which of two
/// replicates ran faster is the machine's noise, not something a simulator can know.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RankAgreement {
    pub stat: String,
    pub runs: usize,
    pub pairs: usize,
    pub concordant: usize,
    pub discordant: usize,
    pub ties: usize,
    pub tau: Option<f64>,
    /// Discordant pairs, widest real gap first (at most 5): (run, run, real ratio ≥ 1).
    pub swapped: Vec<(String, String, f64)>,
}

pub fn ranking(cs: &[Comparison]) -> Vec<RankAgreement> {
    let mut out = Vec::new();
    for stat in RANKED_STATS {
        let v: Vec<(&str, f64, f64)> = cs
            .iter()
            .filter_map(|c| {
                let r = c.rows.iter().find(|r| r.stat == stat)?;
                Some((c.label.as_str(), r.real?, r.sim?))
            })
            .filter(|(_, r, s)| r.is_finite() && s.is_finite() && *r > 0.0)
            .collect();
        if v.len() < 2 {
            continue;
        }
        let (mut c, mut d, mut ties) = (0, 0, 0);
        let mut swapped = Vec::new();
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let (a, b) = (v[i], v[j]);
                let ratio = a.1.max(b.1) / a.1.min(b.1);
                if ratio - 1.0 < RANK_TIE_GAP || a.2 == b.2 {
                    ties += 1;
                } else if (a.1 < b.1) == (a.2 < b.2) {
                    c += 1;
                } else {
                    d += 1;
                    swapped.push((a.0.to_string(), b.0.to_string(), ratio));
                }
            }
        }
        swapped.sort_by(|x, y| y.2.total_cmp(&x.2).then_with(|| (&x.0, &x.1).cmp(&(&y.0, &y.1))));
        swapped.truncate(5);
        let n = v.len();
        out.push(RankAgreement {
            stat: stat.to_string(),
            runs: n,
            pairs: n * (n - 1) / 2,
            concordant: c,
            discordant: d,
            ties,
            tau: (c + d > 0).then(|| (c as f64 - d as f64) / (c + d) as f64),
            swapped,
        });
    }
    out
}

pub fn render_ranking(r: &[RankAgreement]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<16} {:>5} {:>6} {:>6} {:>6} {:>6}  widest swapped pair (real ratio)",
        "statistic", "runs", "same", "swap", "ties", "tau"
    );
    for a in r {
        let sw = a.swapped.first().map_or("-".to_string(), |(x, y, q)| format!("{x} / {y} ({q:.2}×)"));
        let tau = a.tau.map_or("-".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            t,
            "{:<16} {:>5} {:>6} {:>6} {:>6} {:>6}  {sw}",
            a.stat, a.runs, a.concordant, a.discordant, a.ties, tau
        );
    }
    t
}

pub fn render_aggregate(a: &[Aggregate]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(t, "{:<16} {:>5} {:>10} {:>10}  worst run", "statistic", "runs", "median", "worst");
    for r in a {
        let _ = writeln!(
            t,
            "{:<16} {:>5} {:>9.1}{} {:>9.1}{}  {}",
            r.stat,
            r.runs,
            r.median,
            if r.unit == "pp" { "pp" } else { "%" },
            r.worst,
            if r.unit == "pp" { "pp" } else { "%" },
            r.worst_run
        );
    }
    t
}

#[cfg(test)]
mod tests;

//! Exporters: pure renderers to bytes (`summary.json`, `requests.csv`, `timeseries.csv`, a
//! text table), the `requests.csv` reader, and [`write_outputs`], the only function here that
//! does I/O.
//!
//! CSV times are seconds with exactly 9 decimals, i.e. exact nanoseconds (absolute times and
//! differences of them); `tpot_s` is rounded to the nearest nanosecond. An empty cell means
//! "did not happen" (`None`). CSV output never needs quoting: every cell is a number or an
//! identifier.

use super::record::{Outcome, RecordError, RequestRecord};
use super::recorder::TickRow;
use super::summary::{Stats, Summary};
use crate::units::{NANOS_PER_SEC, ReplicaId, RequestId, SimDuration, SimTime};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub const SUMMARY_JSON: &str = "summary.json";
pub const REQUESTS_CSV: &str = "requests.csv";
pub const TIMESERIES_CSV: &str = "timeseries.csv";

/// Columns of `requests.csv`, in order. `queue_s`, `ttft_s`, `tpot_s` and `e2e_s` are derived
/// from the others and ignored when reading.
pub const REQUEST_COLUMNS: [&str; 17] = [
    "id",
    "arrival_s",
    "replica",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "queue_s",
    "scheduled_s",
    "first_token_s",
    "last_token_s",
    "ttft_s",
    "tpot_s",
    "e2e_s",
    "preemptions",
    "outcome",
    "session",
    "group",
];

/// Columns of `timeseries.csv`, in order. Rates and `prefix_hit_rate` are over the interval
/// since the replica's previous tick (since time 0 for its first); `preemptions` is the count
/// in that interval.
pub const TIMESERIES_COLUMNS: [&str; 10] = [
    "time_s",
    "replica",
    "running",
    "waiting",
    "kv_usage",
    "cached_blocks",
    "prefix_hit_rate",
    "prompt_tokens_per_s",
    "generation_tokens_per_s",
    "preemptions",
];

// ---------------------------------------------------------------------------------------------
// Cell writers.

fn header(out: &mut Vec<u8>, cols: &[&str]) {
    out.extend_from_slice(cols.join(",").as_bytes());
    out.push(b'\n');
}

#[inline]
fn put_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[inline]
fn put_opt_int<I: itoa::Integer>(out: &mut Vec<u8>, v: Option<I>) {
    if let Some(v) = v {
        put_int(out, v);
    }
}

/// Nanoseconds as seconds with 9 decimals, exactly.
#[inline]
fn put_ns(out: &mut Vec<u8>, ns: u64) {
    put_int(out, ns / NANOS_PER_SEC);
    out.push(b'.');
    let frac = ns % NANOS_PER_SEC;
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(frac).as_bytes();
    out.extend(std::iter::repeat_n(b'0', 9 - digits.len()));
    out.extend_from_slice(digits);
}

#[inline]
fn put_opt_ns(out: &mut Vec<u8>, ns: Option<u64>) {
    if let Some(ns) = ns {
        put_ns(out, ns);
    }
}

/// Shortest round-trip decimal (ryu), the digits of a whole number below 10^16 included
/// ("1234.0"). Whole numbers are common (token rates over a 1 s tick) and take the cheaper
/// integer formatting, with ryu's bytes.
#[inline]
fn put_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_sign_positive() && v < 1e16 && (v as u64) as f64 == v {
        put_int(out, v as u64);
        out.extend_from_slice(b".0");
    } else if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

#[inline]
fn put_opt_f64(out: &mut Vec<u8>, v: Option<f64>) {
    if let Some(v) = v {
        put_f64(out, v);
    }
}

// ---------------------------------------------------------------------------------------------
// summary.json

/// `summary.json`: pretty JSON with a trailing newline; undefined values are `null`.
pub fn render_summary_json(summary: &Summary) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(summary).expect("Summary serializes (string keys only)");
    out.push(b'\n');
    out
}

// ---------------------------------------------------------------------------------------------
// requests.csv

/// TPOT in nanoseconds, rounded to nearest: (last − first) / (output − 1), for output > 1.
fn tpot_ns(r: &RequestRecord) -> Option<u64> {
    match (r.first_token, r.last_token) {
        (Some(f), Some(l)) if r.output_tokens > 1 => {
            let num = (l - f).as_nanos() as u128;
            let den = (r.output_tokens - 1) as u128;
            Some(((num + den / 2) / den) as u64)
        }
        _ => None,
    }
}

/// `requests.csv`: header [`REQUEST_COLUMNS`] and one row per record, in the given order.
pub fn render_requests_csv(records: &[RequestRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + records.len() * 128);
    header(&mut out, &REQUEST_COLUMNS);
    for r in records {
        let since = |t: Option<SimTime>| t.map(|t| (t - r.arrival).as_nanos());
        put_int(&mut out, r.id.0);
        out.push(b',');
        put_ns(&mut out, r.arrival.as_nanos());
        out.push(b',');
        put_opt_int(&mut out, r.replica.map(|x| x.0));
        out.push(b',');
        put_int(&mut out, r.input_tokens);
        out.push(b',');
        put_int(&mut out, r.output_tokens);
        out.push(b',');
        put_int(&mut out, r.cached_tokens);
        out.push(b',');
        put_opt_ns(&mut out, since(r.scheduled));
        out.push(b',');
        put_opt_ns(&mut out, r.scheduled.map(SimTime::as_nanos));
        out.push(b',');
        put_opt_ns(&mut out, r.first_token.map(SimTime::as_nanos));
        out.push(b',');
        put_opt_ns(&mut out, r.last_token.map(SimTime::as_nanos));
        out.push(b',');
        put_opt_ns(&mut out, since(r.first_token));
        out.push(b',');
        put_opt_ns(&mut out, tpot_ns(r));
        out.push(b',');
        put_opt_ns(&mut out, since(r.last_token));
        out.push(b',');
        put_int(&mut out, r.preemptions);
        out.push(b',');
        out.extend_from_slice(r.outcome.as_str().as_bytes());
        out.push(b',');
        put_opt_int(&mut out, r.session);
        out.push(b',');
        put_opt_int(&mut out, r.group);
        out.push(b'\n');
    }
    out
}

/// Parses seconds into nanoseconds: `digits[.digits]` exactly (more than 9 decimals round
/// half up), otherwise any non-negative finite float, rounded to the nearest ns.
fn parse_secs_ns(s: &str) -> Result<u64, String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let plain = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if plain {
        let secs: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|e| format!("{e}"))? };
        let mut ns = 0u64;
        for (i, b) in frac.bytes().take(9).enumerate() {
            ns += (b - b'0') as u64 * 10u64.pow(8 - i as u32);
        }
        if frac.len() > 9 && frac.as_bytes()[9] >= b'5' {
            ns += 1;
        }
        return secs.checked_mul(NANOS_PER_SEC).and_then(|x| x.checked_add(ns)).ok_or_else(|| "too large".into());
    }
    let v: f64 = s.parse().map_err(|_| "not a number of seconds".to_string())?;
    if !v.is_finite() || v < 0.0 {
        return Err("must be a finite, non-negative number of seconds".into());
    }
    Ok(SimDuration::from_secs_f64(v).as_nanos())
}

/// Reads a `requests.csv` (as written by [`render_requests_csv`], or an imported/live trace
/// with the same column names in any order). Required columns: `id`, `arrival_s`,
/// `input_tokens`, `output_tokens`, `outcome`; the other base columns default to empty/0;
/// derived columns are ignored; unknown columns are an error.
pub fn parse_requests_csv(bytes: &[u8]) -> Result<Vec<RequestRecord>, RecordError> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(bytes);
    let mut col: HashMap<&'static str, usize> = HashMap::new();
    for (i, h) in rdr.headers()?.iter().enumerate() {
        let name = REQUEST_COLUMNS.iter().find(|c| **c == h).ok_or_else(|| RecordError::UnknownColumn(h.into()))?;
        col.insert(name, i);
    }
    for req in ["id", "arrival_s", "input_tokens", "output_tokens", "outcome"] {
        if !col.contains_key(req) {
            return Err(RecordError::MissingColumn(req));
        }
    }
    let mut out = Vec::new();
    let mut row = csv::StringRecord::new();
    while rdr.read_record(&mut row)? {
        let line = row.position().map_or(0, |p| p.line());
        let cell =
            |name: &'static str| -> Option<&str> { col.get(name).and_then(|&i| row.get(i)).filter(|s| !s.is_empty()) };
        let bad = |column: &'static str, value: &str, reason: String| RecordError::Field {
            line,
            column,
            value: value.to_string(),
            reason,
        };
        let int = |name: &'static str| -> Result<Option<u64>, RecordError> {
            cell(name).map(|v| v.parse::<u64>().map_err(|e| bad(name, v, e.to_string()))).transpose()
        };
        let int32 = |name: &'static str| -> Result<Option<u32>, RecordError> {
            cell(name).map(|v| v.parse::<u32>().map_err(|e| bad(name, v, e.to_string()))).transpose()
        };
        let time = |name: &'static str| -> Result<Option<SimTime>, RecordError> {
            cell(name).map(|v| parse_secs_ns(v).map(SimTime).map_err(|e| bad(name, v, e))).transpose()
        };
        let required = |name: &'static str| bad(name, "", "required".into());
        let outcome = match cell("outcome") {
            Some("completed") => Outcome::Completed,
            Some("rejected") => Outcome::Rejected,
            Some("failed") => Outcome::Failed,
            Some("in_flight") => Outcome::InFlight,
            Some(v) => return Err(bad("outcome", v, "expected completed, rejected, failed or in_flight".into())),
            None => return Err(required("outcome")),
        };
        out.push(RequestRecord {
            id: RequestId(int("id")?.ok_or_else(|| required("id"))?),
            arrival: time("arrival_s")?.ok_or_else(|| required("arrival_s"))?,
            replica: int32("replica")?.map(ReplicaId),
            input_tokens: int32("input_tokens")?.ok_or_else(|| required("input_tokens"))?,
            output_tokens: int32("output_tokens")?.ok_or_else(|| required("output_tokens"))?,
            cached_tokens: int32("cached_tokens")?.unwrap_or(0),
            scheduled: time("scheduled_s")?,
            first_token: time("first_token_s")?,
            last_token: time("last_token_s")?,
            preemptions: int32("preemptions")?.unwrap_or(0),
            outcome,
            session: int("session")?,
            group: int32("group")?,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// timeseries.csv

/// Counter increase between two samples; a decrease is a counter reset (replica restart),
/// whose increase is the new value (Prometheus `increase` semantics).
fn delta(cur: u64, prev: u64) -> u64 {
    if cur >= prev { cur - prev } else { cur }
}

/// `timeseries.csv`: header [`TIMESERIES_COLUMNS`], one row per tick row, in the given order.
pub fn render_timeseries_csv(rows: &[TickRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + rows.len() * 96);
    header(&mut out, &TIMESERIES_COLUMNS);
    let mut prev: Vec<Option<TickRow>> = Vec::new();
    for row in rows {
        let s = &row.sample;
        let i = s.replica.0 as usize;
        if i >= prev.len() {
            prev.resize(i + 1, None);
        }
        let (t0, p) = match prev[i] {
            Some(p) => (p.time, p.sample),
            None => (SimTime::ZERO, Default::default()),
        };
        let dt = (row.time - t0).as_secs_f64();
        let dq = delta(s.prefix_queries, p.prefix_queries);
        let dh = delta(s.prefix_hits, p.prefix_hits);
        let rate = |d: u64| if dt > 0.0 { Some(d as f64 / dt) } else { None };

        put_ns(&mut out, row.time.as_nanos());
        out.push(b',');
        put_int(&mut out, s.replica.0);
        out.push(b',');
        put_int(&mut out, s.running);
        out.push(b',');
        put_int(&mut out, s.waiting);
        out.push(b',');
        put_f64(&mut out, s.kv_usage);
        out.push(b',');
        put_int(&mut out, s.cached_blocks);
        out.push(b',');
        put_opt_f64(&mut out, if dq > 0 { Some(dh as f64 / dq as f64) } else { None });
        out.push(b',');
        put_opt_f64(&mut out, rate(delta(s.prompt_tokens, p.prompt_tokens)));
        out.push(b',');
        put_opt_f64(&mut out, rate(delta(s.generation_tokens, p.generation_tokens)));
        out.push(b',');
        put_int(&mut out, delta(s.preemptions, p.preemptions));
        out.push(b'\n');
        prev[i] = Some(*row);
    }
    out
}

/// Columns appended to every `timeseries.csv` row of a simulated run: the row's replica phase,
/// then fleet-wide values at that tick (repeated on each of the tick's rows).
pub const FLEET_COLUMNS: [&str; 7] = [
    "phase",
    "replicas_ready",
    "replicas_starting",
    "replicas_draining",
    "desired_replicas",
    "scaler_signal",
    "gateway_queue",
];

/// `timeseries.csv` of a recorder: [`render_timeseries_csv`], plus [`FLEET_COLUMNS`] when the
/// recorder holds fleet ticks.
pub fn render_timeseries(rec: &crate::metrics::Recorder) -> Vec<u8> {
    let base = render_timeseries_csv(&rec.ticks);
    if rec.fleet.is_empty() || rec.phases.len() != rec.ticks.len() {
        return base;
    }
    let mut out = Vec::with_capacity(base.len() + rec.ticks.len() * 24);
    let mut lines = base.split(|&b| b == b'\n');
    out.extend_from_slice(lines.next().unwrap_or_default());
    for c in FLEET_COLUMNS {
        out.push(b',');
        out.extend_from_slice(c.as_bytes());
    }
    out.push(b'\n');
    let mut f = 0usize;
    for (i, row) in rec.ticks.iter().enumerate() {
        let line = lines.next().unwrap_or_default();
        while f + 1 < rec.fleet.len() && rec.fleet[f].time < row.time {
            f += 1;
        }
        let fs = rec.fleet[f];
        out.extend_from_slice(line);
        out.push(b',');
        out.extend_from_slice(rec.phases[i].as_bytes());
        for v in [fs.ready, fs.starting, fs.draining, fs.desired] {
            out.push(b',');
            put_int(&mut out, v);
        }
        out.push(b',');
        put_opt_f64(&mut out, fs.signal);
        out.push(b',');
        put_int(&mut out, fs.gateway);
        out.push(b'\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Text summary.

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{:.1}", s * 1e3))
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.prec$}"))
}

/// A short human-readable table of the summary.
pub fn render_text(s: &Summary) -> String {
    let mut t = String::new();
    let r = &s.requests;
    let _ = writeln!(
        t,
        "{} (seed {}): {:.1} s simulated, servesim {}",
        s.scenario, s.seed, s.simulated_seconds, s.servesim_version
    );
    let _ = writeln!(
        t,
        "requests      {} submitted, {} completed, {} rejected, {} failed, {} in flight{}",
        r.submitted,
        r.completed,
        r.rejected,
        r.failed,
        r.in_flight,
        if r.retried > 0 { format!(" ({} attempts retried)", r.retried) } else { String::new() }
    );
    let tp = &s.throughput;
    let _ = writeln!(
        t,
        "throughput    {} req/s, {} input tok/s, {} output tok/s",
        opt(tp.requests_per_s, 2),
        opt(tp.input_tokens_per_s, 1),
        opt(tp.output_tokens_per_s, 1)
    );
    let _ = writeln!(t, "{:<13} {:>10} {:>10} {:>10} {:>10}", "latency (ms)", "p50", "p90", "p99", "mean");
    let rows: [(&str, &Stats); 5] =
        [("TTFT", &s.ttft_s), ("TPOT", &s.tpot_s), ("ITL", &s.itl_s), ("E2E", &s.e2e_s), ("queue", &s.queue_s)];
    for (name, st) in rows {
        let _ =
            writeln!(t, "  {:<11} {:>10} {:>10} {:>10} {:>10}", name, ms(st.p50), ms(st.p90), ms(st.p99), ms(st.mean));
    }
    let _ =
        writeln!(t, "prefix hit    {}", s.prefix_hit_rate.map_or_else(|| "-".into(), |h| format!("{:.1}%", h * 100.0)));
    let _ = writeln!(t, "preemptions   {}", s.preemptions);
    let _ = writeln!(
        t,
        "GPU-hours     {:.3} (serving {:.3}, starting {:.3}, draining {:.3}, idle nodes {:.3}), cost ${:.2} at ${:.2}/GPU-h ({}), ${} per M output tokens",
        s.gpu_hours.total,
        s.gpu_hours.serving,
        s.gpu_hours.starting,
        s.gpu_hours.draining,
        s.gpu_hours.idle_node,
        s.cost_usd,
        s.price.usd_per_gpu_hour,
        s.price.provider,
        opt(s.cost_per_million_output_tokens, 3)
    );
    if s.slo.checks.is_empty() {
        let _ = writeln!(t, "SLO           none set");
    } else {
        let _ = writeln!(t, "SLO           {}", if s.slo.passed { "PASS" } else { "FAIL" });
        for c in &s.slo.checks {
            let _ = writeln!(
                t,
                "  {:<11} target {:.4}  actual {}  margin {}  {}",
                c.metric,
                c.target,
                opt(c.actual, 4),
                opt(c.margin, 4),
                if c.passed { "pass" } else { "FAIL" }
            );
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Writing a report file failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot create output folder {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes `bytes` to `path` atomically: to `path.tmp` first, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        ExportError::Write { path: path.to_path_buf(), source }
    })
}

/// Creates `dir` and writes `summary.json`, plus `requests.csv` and `timeseries.csv` when
/// given (already rendered timeseries bytes, e.g. from [`render_timeseries_csv`]).
pub fn write_outputs(
    dir: &Path,
    summary: &Summary,
    records: Option<&[RequestRecord]>,
    timeseries_csv: Option<&[u8]>,
) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::CreateDir { path: dir.to_path_buf(), source })?;
    write_atomic(&dir.join(SUMMARY_JSON), &render_summary_json(summary))?;
    if let Some(records) = records {
        write_atomic(&dir.join(REQUESTS_CSV), &render_requests_csv(records))?;
    }
    if let Some(ts) = timeseries_csv {
        write_atomic(&dir.join(TIMESERIES_CSV), ts)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::put_f64;

    #[test]
    fn whole_numbers_format_as_ryu_does() {
        let ryu_bytes =
            |v: f64| if v.is_finite() { ryu::Buffer::new().format_finite(v).to_string() } else { String::new() };
        let mut vals = vec![0.0, -0.0, 1.0, -1.0, 0.5, 7.25, 1e15, 1e16 - 2.0, 1e16, 1e17, 123456789.0, f64::MAX];
        vals.extend([
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
            2f64.powi(53),
            2f64.powi(53) + 2.0,
        ]);
        let mut x = 5u64;
        for _ in 0..20_000 {
            x = crate::rng::splitmix64(x);
            let digits = (x % 17) as i32;
            let whole = ((x >> 8) % 10u64.pow(digits as u32).max(1)) as f64;
            vals.push(whole);
            vals.push(whole / 4.0);
            vals.push(f64::from_bits(x >> 1));
        }
        for v in vals {
            let mut out = Vec::new();
            put_f64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), ryu_bytes(v), "{v:e}");
        }
        let mut out = Vec::new();
        put_f64(&mut out, 1234.0);
        assert_eq!(out, b"1234.0");
    }
}

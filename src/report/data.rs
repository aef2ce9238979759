//! Turning rows into chart-sized data: the `timeseries.csv` reader, time buckets with
//! min/mean/max envelopes (so a day of 1 s ticks stays a few hundred points without hiding
//! peaks), CDF quantile grids, and per-bucket latency percentiles.
//!
//! Everything here is a pure function of its inputs; the same rows always give the same
//! points (no hash iteration, no parallel float reductions).

use super::ReportError;
use crate::metrics::{FleetSample, Outcome, RequestRecord, percentile};
use crate::units::SimTime;
use serde::Serialize;

/// Most points one time series is drawn with; longer runs are bucketed.
pub const MAX_TIME_POINTS: usize = 240;

/// Quantiles a CDF is sampled at (percent): a 1 % grid plus the tail.
pub fn cdf_grid() -> Vec<f64> {
    let mut g: Vec<f64> = (0..=98).map(|p| p as f64).collect();
    g.extend([98.5, 99.0, 99.5, 99.8, 99.9, 99.95, 99.99, 100.0]);
    g
}

/// One row of `timeseries.csv` (the per-interval view written by
/// [`crate::metrics::render_timeseries_csv`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TsRow {
    pub time_s: f64,
    pub replica: u32,
    pub running: u32,
    pub waiting: u32,
    pub kv_usage: f64,
    pub prefix_hit_rate: Option<f64>,
    pub prompt_tokens_per_s: Option<f64>,
    pub generation_tokens_per_s: Option<f64>,
    pub preemptions: u64,
}

/// Reads `timeseries.csv` by column name (extra columns are ignored, so later additions do
/// not break old reports).
pub fn parse_timeseries_csv(bytes: &[u8]) -> Result<Vec<TsRow>, ReportError> {
    let bad = |msg: String| ReportError::Input { file: "timeseries.csv".into(), msg };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(bytes);
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    let idx = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &'static str| idx(name).ok_or_else(|| bad(format!("missing column `{name}`")));
    let (c_t, c_r, c_run, c_wait, c_kv) =
        (need("time_s")?, need("replica")?, need("running")?, need("waiting")?, need("kv_usage")?);
    let (c_hit, c_pt, c_gt, c_pre) =
        (idx("prefix_hit_rate"), idx("prompt_tokens_per_s"), idx("generation_tokens_per_s"), idx("preemptions"));
    let mut out = Vec::new();
    let mut row = csv::StringRecord::new();
    while rdr.read_record(&mut row).map_err(|e| bad(e.to_string()))? {
        let line = row.position().map_or(0, |p| p.line());
        let cell = |c: Option<usize>| c.and_then(|i| row.get(i)).filter(|s| !s.is_empty());
        let num = |c: Option<usize>, name: &str| -> Result<Option<f64>, ReportError> {
            cell(c)
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| bad(format!("line {line}, column `{name}`: `{v}` is not a number")))
                })
                .transpose()
        };
        let req = |c: usize, name: &str| -> Result<f64, ReportError> {
            num(Some(c), name)?.ok_or_else(|| bad(format!("line {line}: `{name}` is empty")))
        };
        out.push(TsRow {
            time_s: req(c_t, "time_s")?,
            replica: req(c_r, "replica")? as u32,
            running: req(c_run, "running")? as u32,
            waiting: req(c_wait, "waiting")? as u32,
            kv_usage: req(c_kv, "kv_usage")?,
            prefix_hit_rate: num(c_hit, "prefix_hit_rate")?,
            prompt_tokens_per_s: num(c_pt, "prompt_tokens_per_s")?,
            generation_tokens_per_s: num(c_gt, "generation_tokens_per_s")?,
            preemptions: num(c_pre, "preemptions")?.unwrap_or(0.0) as u64,
        });
    }
    Ok(out)
}

/// Bucket width for `span_s`: the smallest "nice" width ≥ `min_s` giving at most
/// [`MAX_TIME_POINTS`] buckets.
pub fn bucket_width(span_s: f64, min_s: f64) -> f64 {
    const NICE: [f64; 21] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0,
    ];
    let need = (span_s / MAX_TIME_POINTS as f64).max(min_s).max(1e-9);
    NICE.iter().copied().find(|w| *w >= need - 1e-9).unwrap_or(need.ceil())
}

/// Min / mean / max of one quantity per time bucket; `None` where the bucket saw no sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Envelope {
    pub min: Vec<Option<f64>>,
    pub mean: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
}

/// Accumulates samples into fixed buckets.
#[derive(Clone, Debug)]
pub struct Buckets {
    width: f64,
    n: Vec<u64>,
    sum: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    last: Vec<f64>,
}

impl Buckets {
    pub fn new(count: usize, width: f64) -> Self {
        Buckets {
            width,
            n: vec![0; count],
            sum: vec![0.0; count],
            min: vec![f64::INFINITY; count],
            max: vec![f64::NEG_INFINITY; count],
            last: vec![f64::NAN; count],
        }
    }

    /// Bucket index of time `t_s` (an instant at a bucket's end belongs to that bucket, so a
    /// tick at exactly `k × width` closes bucket `k−1`).
    pub fn index(&self, t_s: f64) -> usize {
        let i = (t_s / self.width).ceil() as usize;
        i.saturating_sub(1).min(self.n.len().saturating_sub(1))
    }

    pub fn add(&mut self, t_s: f64, v: f64) {
        if self.n.is_empty() || !v.is_finite() {
            return;
        }
        let i = self.index(t_s);
        self.n[i] += 1;
        self.sum[i] += v;
        self.min[i] = self.min[i].min(v);
        self.max[i] = self.max[i].max(v);
        self.last[i] = v;
    }

    /// The latest sample of each bucket (samples are added in time order): the value a step
    /// line holds at the bucket's end.
    pub fn last(&self) -> Vec<Option<f64>> {
        (0..self.n.len()).map(|i| if self.n[i] > 0 { Some(self.last[i]) } else { None }).collect()
    }

    pub fn envelope(&self) -> Envelope {
        let pick = |i: usize, v: f64| if self.n[i] > 0 { Some(v) } else { None };
        Envelope {
            min: (0..self.n.len()).map(|i| pick(i, self.min[i])).collect(),
            mean: (0..self.n.len()).map(|i| pick(i, self.sum[i] / self.n[i].max(1) as f64)).collect(),
            max: (0..self.n.len()).map(|i| pick(i, self.max[i])).collect(),
        }
    }
}

/// The time axis shared by a run's charts: bucket ends in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeAxis {
    pub width_s: f64,
    /// End of each bucket, seconds since the start of the run.
    pub t_s: Vec<f64>,
}

impl TimeAxis {
    pub fn new(span_s: f64, min_width_s: f64) -> Self {
        let width_s = bucket_width(span_s, min_width_s);
        let count = ((span_s / width_s).ceil() as usize).max(1);
        TimeAxis { width_s, t_s: (1..=count).map(|k| k as f64 * width_s).collect() }
    }
    pub fn buckets(&self) -> Buckets {
        Buckets::new(self.t_s.len(), self.width_s)
    }
}

/// Sorted copy of finite values.
pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.retain(|x| x.is_finite());
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// CDF points `(value, fraction)` of sorted values on [`cdf_grid`] (nearest-rank percentiles,
/// the one definition used everywhere).
pub fn cdf_points(sorted: &[f64]) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for p in cdf_grid() {
        let v = percentile(sorted, p).expect("non-empty");
        let f = if p == 0.0 { 0.0 } else { p / 100.0 };
        pts.push((v, f));
    }
    pts
}

/// Per-bucket p50 / p90 / p99 and min / max of one latency (bucketed by arrival time).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PercentilesOverTime {
    pub p50: Vec<Option<f64>>,
    pub p90: Vec<Option<f64>>,
    pub p99: Vec<Option<f64>>,
    pub min: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
    pub count: Vec<u64>,
}

pub fn percentiles_over_time(
    axis: &TimeAxis,
    records: &[RequestRecord],
    metric: impl Fn(&RequestRecord) -> Option<f64>,
) -> PercentilesOverTime {
    let b = axis.buckets();
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); axis.t_s.len()];
    for r in records.iter().filter(|r| r.outcome == Outcome::Completed) {
        if let Some(v) = metric(r) {
            per[b.index(r.arrival.as_secs_f64())].push(v);
        }
    }
    let mut out = PercentilesOverTime::default();
    for v in per {
        let v = sorted(v);
        out.p50.push(percentile(&v, 50.0));
        out.p90.push(percentile(&v, 90.0));
        out.p99.push(percentile(&v, 99.0));
        out.min.push(v.first().copied());
        out.max.push(v.last().copied());
        out.count.push(v.len() as u64);
    }
    out
}

/// Events per second in each bucket (mean) with the min and max over the 1 s slots inside
/// it, so a one-second burst stays visible in an hour-wide bucket.
pub fn rate_envelope(axis: &TimeAxis, times_s: impl Iterator<Item = f64>) -> Envelope {
    let slot = axis.width_s.min(1.0);
    let span = axis.t_s.last().copied().unwrap_or(0.0);
    let slots = ((span / slot).ceil() as usize).max(1);
    let mut counts = vec![0u64; slots];
    for t in times_s {
        let i = ((t / slot).ceil() as usize).saturating_sub(1).min(slots - 1);
        counts[i] += 1;
    }
    let mut b = axis.buckets();
    for (i, c) in counts.iter().enumerate() {
        b.add((i + 1) as f64 * slot, *c as f64 / slot);
    }
    b.envelope()
}

// ---------------------------------------------------------------------------------------------
// Fleet: replica counts by phase over time and scale events.

/// File name of the scale-event log `run` writes next to its outputs (when the fleet changed
/// or an autoscaler was configured).
pub const SCALE_EVENTS_FILE: &str = "scale_events.csv";

/// One change of the replica count (a line of `scale_events.csv`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScaleEventRow {
    pub time_s: f64,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// Where a report's scale events came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventsSource {
    /// `scale_events.csv` (or the run itself): exact times and reasons.
    #[default]
    Log,
    /// Reconstructed from `desired_replicas` changes in `timeseries.csv` (tick resolution,
    /// autoscaler decisions only).
    Timeseries,
}

/// The fleet side of a run: per-tick counts and the scale events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetData {
    pub ticks: Vec<FleetSample>,
    pub events: Vec<ScaleEventRow>,
    pub events_source: EventsSource,
}

impl FleetData {
    /// From `timeseries.csv` bytes and, when there is one, `scale_events.csv`; `None` when the
    /// time series has no fleet columns (runs of older versions, imported traces).
    pub fn parse(timeseries: &[u8], events: Option<&[u8]>) -> Result<Option<FleetData>, ReportError> {
        let ticks = parse_fleet_ticks(timeseries)?;
        if ticks.is_empty() {
            return Ok(None);
        }
        let (events, events_source) = match events {
            Some(b) => (parse_scale_events_csv(b)?, EventsSource::Log),
            None => (events_from_desired(&ticks), EventsSource::Timeseries),
        };
        Ok(Some(FleetData { ticks, events, events_source }))
    }

    /// Whether the fleet is worth a chart: something scaled, started, drained or was logged.
    pub fn changed(&self) -> bool {
        let Some(first) = self.ticks.first() else { return false };
        !self.events.is_empty()
            || self
                .ticks
                .iter()
                .any(|t| t.starting > 0 || t.draining > 0 || t.ready != first.ready || t.desired != first.desired)
    }
}

/// `scale_events.csv`: `time_s,from,to,reason`, one line per event in time order (times with
/// nanosecond digits, so reading them back gives the engine's instants).
pub fn scale_events_csv(events: &[crate::engine::ScaleEvent]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["time_s", "from", "to", "reason"]);
    for e in events {
        let ns = e.time.as_nanos();
        let t = format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
        let _ = w.write_record([t, e.from.to_string(), e.to.to_string(), e.reason.clone()]);
    }
    w.into_inner().unwrap_or_default()
}

pub fn parse_scale_events_csv(bytes: &[u8]) -> Result<Vec<ScaleEventRow>, ReportError> {
    let bad = |msg: String| ReportError::Input { file: SCALE_EVENTS_FILE.into(), msg };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| bad(format!("missing column `{name}`")))
    };
    let (c_t, c_from, c_to, c_why) = (col("time_s")?, col("from")?, col("to")?, col("reason")?);
    let mut out = Vec::new();
    for row in rdr.records() {
        let row = row.map_err(|e| bad(e.to_string()))?;
        let line = row.position().map_or(0, |p| p.line());
        let get = |c: usize| row.get(c).unwrap_or("").trim();
        let n = |c: usize, name: &str| -> Result<u32, ReportError> {
            get(c).parse().map_err(|_| bad(format!("line {line}, column `{name}`: `{}` is not a count", get(c))))
        };
        let t: f64 = get(c_t)
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| bad(format!("line {line}, column `time_s`: `{}` is not a number", get(c_t))))?;
        out.push(ScaleEventRow { time_s: t, from: n(c_from, "from")?, to: n(c_to, "to")?, reason: get(c_why).into() });
    }
    Ok(out)
}

/// The fleet columns of `timeseries.csv`, one [`FleetSample`] per tick (the values repeat on
/// every replica row of a tick); empty when the columns are absent.
pub fn parse_fleet_ticks(bytes: &[u8]) -> Result<Vec<FleetSample>, ReportError> {
    let bad = |msg: String| ReportError::Input { file: "timeseries.csv".into(), msg };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(bytes);
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    let idx = |name: &str| headers.iter().position(|h| h == name);
    let (Some(c_t), Some(c_ready), Some(c_start), Some(c_drain), Some(c_des)) = (
        idx("time_s"),
        idx("replicas_ready"),
        idx("replicas_starting"),
        idx("replicas_draining"),
        idx("desired_replicas"),
    ) else {
        return Ok(Vec::new());
    };
    let (c_sig, c_gw) = (idx("scaler_signal"), idx("gateway_queue"));
    let mut out: Vec<FleetSample> = Vec::new();
    let mut row = csv::StringRecord::new();
    while rdr.read_record(&mut row).map_err(|e| bad(e.to_string()))? {
        let line = row.position().map_or(0, |p| p.line());
        let cell = |c: usize| row.get(c).unwrap_or("");
        let f = |c: usize, name: &str| -> Result<f64, ReportError> {
            cell(c)
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(format!("line {line}, column `{name}`: `{}` is not a number", cell(c))))
        };
        let t = SimTime::from_secs_f64(f(c_t, "time_s")?);
        if out.last().is_some_and(|l| l.time == t) {
            continue;
        }
        let opt = |c: Option<usize>, name: &str| -> Result<Option<f64>, ReportError> {
            match c {
                Some(c) if !cell(c).is_empty() => f(c, name).map(Some),
                _ => Ok(None),
            }
        };
        out.push(FleetSample {
            time: t,
            ready: f(c_ready, "replicas_ready")? as u32,
            starting: f(c_start, "replicas_starting")? as u32,
            draining: f(c_drain, "replicas_draining")? as u32,
            desired: f(c_des, "desired_replicas")? as u32,
            signal: opt(c_sig, "scaler_signal")?,
            gateway: opt(c_gw, "gateway_queue")?.unwrap_or(0.0) as u32,
        });
    }
    Ok(out)
}

/// Scale events as seen in the time series: one per change of `desired_replicas`, at the
/// first tick showing the new value.
pub fn events_from_desired(ticks: &[FleetSample]) -> Vec<ScaleEventRow> {
    ticks
        .windows(2)
        .filter(|w| w[0].desired != w[1].desired)
        .map(|w| ScaleEventRow {
            time_s: w[1].time.as_secs_f64(),
            from: w[0].desired,
            to: w[1].desired,
            reason: "desired_replicas changed".into(),
        })
        .collect()
}

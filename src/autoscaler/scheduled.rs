//! Scheduled scaling: replica floors by time of day, as teams do with a CronJob patching the
//! Deployment (or KEDA's cron scaler). Time of day is the scenario's local clock: simulated
//! time zero is `start_hour`.

use super::keda::time_of_day;
use super::{Autoscaler, AutoscalerCtx, AutoscalerError, ClusterView, Decision, invalid};
use crate::units::{NANOS_PER_SEC, SimDuration, SimTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduledConfig {
    /// Replicas outside every window.
    pub replicas: u32,
    /// Windows `{start: "08:00", end: "18:00", replicas: 8}` (or cron `"0 8 * * *"`); where
    /// windows overlap the largest count wins; `end` before `start` wraps past midnight.
    pub schedule: Vec<Window>,
    /// Hour of the day at simulated time zero (default: the workload's `start_hour`).
    #[serde(default)]
    pub start_hour: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: String,
    pub end: String,
    pub replicas: u32,
}

/// `HH:MM` or a 5-field cron line `M H * * *` → seconds since midnight.
pub fn parse_cron(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let bad = || format!("`{s}`: write `HH:MM` or a cron line `M H * * *` (minute and hour numbers, other fields `*`)");
    if let Some((h, m)) = t.split_once(':') {
        let (h, m) = (h.trim().parse::<u32>().map_err(|_| bad())?, m.trim().parse::<u32>().map_err(|_| bad())?);
        return if h < 24 && m < 60 { Ok(h * 3600 + m * 60) } else { Err(bad()) };
    }
    let f: Vec<&str> = t.split_whitespace().collect();
    if f.len() != 5 || f[2..].iter().any(|x| *x != "*") {
        return Err(bad());
    }
    let (m, h) = (f[0].parse::<u32>().map_err(|_| bad())?, f[1].parse::<u32>().map_err(|_| bad())?);
    if h < 24 && m < 60 { Ok(h * 3600 + m * 60) } else { Err(bad()) }
}

/// Whether time of day `tod` is in `[start, end)` (wrapping past midnight when end < start).
pub fn window_active(tod: u32, start: u32, end: u32) -> bool {
    if start <= end { tod >= start && tod < end } else { tod >= start || tod < end }
}

pub struct Scheduled {
    base: u32,
    windows: Vec<(u32, u32, u32)>,
    start_hour: f64,
}

impl Scheduled {
    pub fn new(c: &ScheduledConfig, ctx: &AutoscalerCtx) -> Result<Self, AutoscalerError> {
        let mut windows = Vec::new();
        for (i, w) in c.schedule.iter().enumerate() {
            let s = parse_cron(&w.start)
                .map_err(|msg| AutoscalerError::Invalid { field: format!("schedule[{i}].start"), msg })?;
            let e = parse_cron(&w.end)
                .map_err(|msg| AutoscalerError::Invalid { field: format!("schedule[{i}].end"), msg })?;
            windows.push((s, e, w.replicas));
        }
        if c.replicas == 0 && windows.iter().all(|w| w.2 == 0) {
            return invalid("replicas", "a schedule with zero replicas everywhere serves nothing");
        }
        Ok(Scheduled { base: c.replicas, windows, start_hour: c.start_hour.unwrap_or(ctx.start_hour) })
    }

    pub fn desired_at(&self, now: SimTime) -> u32 {
        let tod = time_of_day(now, self.start_hour);
        self.windows.iter().filter(|w| window_active(tod, w.0, w.1)).map(|w| w.2).max().unwrap_or(self.base)
    }
}

impl Autoscaler for Scheduled {
    fn name(&self) -> &str {
        "scheduled"
    }
    fn next_eval(&self, now: SimTime, _current: u32) -> SimTime {
        // Every minute, on the minute of the local clock.
        let off = (self.start_hour * 3600.0).round() as u64 * NANOS_PER_SEC;
        let m = 60 * NANOS_PER_SEC;
        SimTime(((now.as_nanos() + off) / m + 1) * m - off)
    }
    fn metric_delay(&self) -> SimDuration {
        SimDuration::ZERO
    }
    fn evaluate(&mut self, now: SimTime, _view: &ClusterView) -> Decision {
        Decision { desired: self.desired_at(now), signal: None, reason: "schedule" }
    }
}

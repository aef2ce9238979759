//! Arrival processes. Open processes (Poisson, gamma, constant, stages, diurnal) draw their
//! own times; the closed loop issues a user's next request only after being told the previous
//! one finished. Every process stops at the horizon: no arrival at or after it.
//!
//! Times are generated in `f64` seconds and rounded to integer nanoseconds once per arrival
//! (monotone, so order is preserved; no accumulated rounding drift).

use super::config::ArrivalConfig;
use super::{WorkloadError, fmt_num, positive};
use crate::rng::{RngStreams, SimRng};
use crate::units::SimTime;
use rand::RngExt;
use rand_distr::{Distribution, Exp1, Gamma};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One arrival: its time and, for closed-loop processes, the user (source) that sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub time: SimTime,
    pub source: Option<u32>,
}

/// A stream of arrival times in non-decreasing order, all before the horizon.
pub trait ArrivalProcess {
    /// Time of the next arrival known now.
    fn peek(&self) -> Option<SimTime>;
    /// Takes the next arrival.
    fn pop(&mut self) -> Option<Arrival>;
    /// Closed loop: `source`'s request (or session) finished at `now`. Ignored by open processes.
    fn on_finished(&mut self, _now: SimTime, _source: u32) {}
    /// Long-run offered rate over the horizon (requests per second); `None` for closed loops.
    fn mean_rate(&self) -> Option<f64>;
    /// Number of closed-loop users (sources), if any.
    fn sources(&self) -> Option<u32> {
        None
    }
}

/// Builds the process for `cfg`. `field` names the config path for errors; randomness comes
/// from stream `(stream_name, 0)` (and `(stream_name + ".user", u)` per closed-loop user).
pub fn build(
    cfg: &ArrivalConfig,
    field: &str,
    streams: &RngStreams,
    stream_name: &str,
    horizon: SimTime,
) -> Result<Box<dyn ArrivalProcess>, WorkloadError> {
    let rng = streams.stream(stream_name, 0);
    let end_s = horizon.as_secs_f64();
    Ok(match cfg {
        ArrivalConfig::Poisson(r) => {
            let rate = positive(&format!("{field}.rate"), r.rate)?;
            Box::new(Open::new(Poisson { rng, rate, t: 0.0 }, horizon, rate))
        }
        ArrivalConfig::Gamma(g) => {
            let rate = positive(&format!("{field}.rate"), g.rate)?;
            let cv = positive(&format!("{field}.cv"), g.cv)?;
            let shape = 1.0 / (cv * cv);
            let dist = Gamma::new(shape, 1.0 / (rate * shape))
                .map_err(|e| WorkloadError::invalid(field, format!("invalid gamma parameters: {e}")))?;
            Box::new(Open::new(GammaGaps { rng, dist, t: 0.0 }, horizon, rate))
        }
        ArrivalConfig::Constant(r) => {
            let rate = positive(&format!("{field}.rate"), r.rate)?;
            Box::new(Open::new(Constant { rate, k: 0 }, horizon, rate))
        }
        ArrivalConfig::Stages(s) => {
            if s.stages.is_empty() {
                return Err(WorkloadError::invalid(format!("{field}.stages"), "needs at least one stage"));
            }
            let mut segs = Vec::with_capacity(s.stages.len());
            for (i, st) in s.stages.iter().enumerate() {
                if !(st.rate.is_finite() && st.rate >= 0.0) {
                    return Err(WorkloadError::invalid(
                        format!("{field}.stages[{i}].rate"),
                        format!("must be a finite number ≥ 0 (got {})", st.rate),
                    ));
                }
                segs.push(Segment { width: st.duration.0.as_secs_f64(), lo: st.rate, hi: st.rate });
            }
            let p = Piecewise::new(rng, segs, false, 0.0);
            let rate = p.mean_rate(end_s);
            Box::new(Open::new(p, horizon, rate))
        }
        ArrivalConfig::Diurnal(d) => {
            let peak = positive(&format!("{field}.peak_rate"), d.peak_rate)?;
            let pf = format!("{field}.profile");
            let profile = check_profile(&pf, &d.profile)?;
            let p = Piecewise::diurnal_linear(rng, peak, &profile, d.start_hour);
            let rate = p.mean_rate(end_s);
            Box::new(Open::new(p, horizon, rate))
        }
        ArrivalConfig::ClosedLoop(c) => {
            if c.users == 0 {
                return Err(WorkloadError::invalid(format!("{field}.users"), "must be at least 1"));
            }
            Box::new(ClosedLoop::new(c.users, c.think_time.0.as_secs_f64(), streams, stream_name, horizon))
        }
    })
}

/// Validates a daily profile: non-empty, finite, ≥ 0, not all zero.
pub(crate) fn check_profile(field: &str, profile: &[f64]) -> Result<Vec<f64>, WorkloadError> {
    if profile.is_empty() {
        return Err(WorkloadError::invalid(field, "needs at least one value"));
    }
    for (i, v) in profile.iter().enumerate() {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(WorkloadError::invalid(
                format!("{field}[{i}]"),
                format!("must be a finite number ≥ 0 (got {v})"),
            ));
        }
    }
    if profile.iter().all(|v| *v == 0.0) {
        return Err(WorkloadError::invalid(field, "is zero everywhere: no request would ever arrive"));
    }
    Ok(profile.to_vec())
}

/// Short description, for reports.
pub fn describe(cfg: &ArrivalConfig) -> String {
    match cfg {
        ArrivalConfig::Poisson(r) => format!("poisson {} req/s", fmt_num(r.rate)),
        ArrivalConfig::Gamma(g) => format!("gamma {} req/s cv {}", fmt_num(g.rate), fmt_num(g.cv)),
        ArrivalConfig::Constant(r) => format!("constant {} req/s", fmt_num(r.rate)),
        ArrivalConfig::Stages(s) => {
            let parts: Vec<String> = s
                .stages
                .iter()
                .map(|st| format!("{}/s for {}s", fmt_num(st.rate), fmt_num(st.duration.0.as_secs_f64())))
                .collect();
            format!("stages [{}]", parts.join(", "))
        }
        ArrivalConfig::Diurnal(d) => format!(
            "diurnal peak {} req/s over {} profile points from {}h",
            fmt_num(d.peak_rate),
            d.profile.len(),
            fmt_num(d.start_hour)
        ),
        ArrivalConfig::ClosedLoop(c) => {
            format!("closed loop {} users, think {}s", c.users, fmt_num(c.think_time.0.as_secs_f64()))
        }
    }
}

/// Generator of absolute arrival times in seconds (non-decreasing); `None` when exhausted.
pub trait NextTime {
    fn next_time(&mut self) -> Option<f64>;
}

/// An open process: a generator cut at the horizon, one arrival looked ahead.
pub struct Open<G: NextTime> {
    gen_: G,
    next: Option<SimTime>,
    horizon: SimTime,
    rate: f64,
}

impl<G: NextTime> Open<G> {
    pub fn new(mut gen_: G, horizon: SimTime, rate: f64) -> Self {
        let next = Self::advance(&mut gen_, horizon);
        Open { gen_, next, horizon, rate }
    }
    #[inline]
    fn advance(g: &mut G, horizon: SimTime) -> Option<SimTime> {
        g.next_time().map(SimTime::from_secs_f64).filter(|t| *t < horizon)
    }
}

impl<G: NextTime> ArrivalProcess for Open<G> {
    #[inline]
    fn peek(&self) -> Option<SimTime> {
        self.next
    }
    #[inline]
    fn pop(&mut self) -> Option<Arrival> {
        let t = self.next?;
        self.next = Self::advance(&mut self.gen_, self.horizon);
        Some(Arrival { time: t, source: None })
    }
    fn mean_rate(&self) -> Option<f64> {
        Some(self.rate)
    }
}

/// Exponential gaps; the first arrival is one gap after zero.
pub struct Poisson {
    rng: SimRng,
    rate: f64,
    t: f64,
}

impl NextTime for Poisson {
    #[inline]
    fn next_time(&mut self) -> Option<f64> {
        let e: f64 = Exp1.sample(&mut self.rng);
        self.t += e / self.rate;
        Some(self.t)
    }
}

/// Gamma gaps (shape 1/cv², mean 1/rate); the first arrival is one gap after zero.
pub struct GammaGaps {
    rng: SimRng,
    dist: Gamma<f64>,
    t: f64,
}

impl NextTime for GammaGaps {
    #[inline]
    fn next_time(&mut self) -> Option<f64> {
        self.t += self.dist.sample(&mut self.rng);
        Some(self.t)
    }
}

/// Arrivals at exactly k / rate, k = 0, 1, 2, … (the first at time zero).
pub struct Constant {
    rate: f64,
    k: u64,
}

impl NextTime for Constant {
    #[inline]
    fn next_time(&mut self) -> Option<f64> {
        let t = self.k as f64 / self.rate;
        self.k += 1;
        Some(t)
    }
}

/// A piece of a piecewise rate function: `width` seconds going linearly from `lo` to `hi`.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub width: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Segment {
    #[inline]
    fn rate_at(&self, x: f64) -> f64 {
        if self.lo == self.hi { self.lo } else { self.lo + (self.hi - self.lo) * (x / self.width).clamp(0.0, 1.0) }
    }
}

/// Non-homogeneous Poisson process with a piecewise-linear (or piecewise-constant) rate,
/// finite (stages) or cyclic (daily profiles). Within a segment it draws a homogeneous process
/// at the segment's maximum rate and thins it by `rate(t) / max` (no thinning when constant);
/// a gap that crosses the segment's end restarts at the end (memorylessness), so zero-rate
/// segments cost nothing.
pub struct Piecewise {
    rng: SimRng,
    segs: Vec<Segment>,
    cyclic: bool,
    /// Current segment, its start and end in simulated seconds.
    seg: usize,
    seg_start: f64,
    seg_end: f64,
    t: f64,
    done: bool,
}

impl Piecewise {
    /// `offset`: position in the pattern (seconds) at simulated time zero (cyclic only).
    pub fn new(rng: SimRng, segs: Vec<Segment>, cyclic: bool, offset: f64) -> Self {
        let period: f64 = segs.iter().map(|s| s.width).sum();
        let any = segs.iter().any(|s| s.width > 0.0 && s.lo.max(s.hi) > 0.0);
        let mut p = Piecewise { rng, segs, cyclic, seg: 0, seg_start: 0.0, seg_end: 0.0, t: 0.0, done: !any };
        if p.done {
            return p;
        }
        let mut pos = if cyclic { offset.rem_euclid(period) } else { 0.0 };
        let mut seg = 0;
        while seg + 1 < p.segs.len() && pos >= p.segs[seg].width {
            pos -= p.segs[seg].width;
            seg += 1;
        }
        p.seg = seg;
        p.seg_start = -pos;
        p.seg_end = p.seg_start + p.segs[seg].width;
        p
    }

    /// Daily profile of `n` points evenly spread over 24 h, point i at i·24h/n, linear
    /// interpolation between consecutive points and from the last back to the first.
    pub fn diurnal_linear(rng: SimRng, peak: f64, profile: &[f64], start_hour: f64) -> Self {
        let n = profile.len();
        let w = 86_400.0 / n as f64;
        let segs =
            (0..n).map(|i| Segment { width: w, lo: peak * profile[i], hi: peak * profile[(i + 1) % n] }).collect();
        Piecewise::new(rng, segs, true, start_hour * 3600.0)
    }

    /// Daily profile of `n` values, value i constant over [i·24h/n, (i+1)·24h/n).
    pub fn daily_step(rng: SimRng, scale: f64, profile: &[f64], start_hour: f64) -> Self {
        let n = profile.len();
        let w = 86_400.0 / n as f64;
        let segs = profile.iter().map(|v| Segment { width: w, lo: scale * v, hi: scale * v }).collect();
        Piecewise::new(rng, segs, true, start_hour * 3600.0)
    }

    fn next_segment(&mut self) -> bool {
        self.seg += 1;
        if self.seg == self.segs.len() {
            if !self.cyclic {
                self.done = true;
                return false;
            }
            self.seg = 0;
        }
        self.seg_start = self.seg_end;
        self.seg_end = self.seg_start + self.segs[self.seg].width;
        self.t = self.seg_start;
        true
    }

    /// Mean rate over simulated [0, end) (exact integral of the rate function).
    pub fn mean_rate(&self, end: f64) -> f64 {
        if self.done || end <= 0.0 {
            return 0.0;
        }
        let (mut seg, mut s0) = (self.seg, self.seg_start);
        let mut area = 0.0;
        loop {
            let sg = self.segs[seg];
            let s1 = s0 + sg.width;
            let (a, b) = (s0.max(0.0), s1.min(end));
            if b > a {
                area += (b - a) * sg.rate_at((a + b) / 2.0 - s0);
            }
            if s1 >= end {
                break;
            }
            seg += 1;
            if seg == self.segs.len() {
                if !self.cyclic {
                    break;
                }
                seg = 0;
            }
            s0 = s1;
        }
        area / end
    }
}

impl NextTime for Piecewise {
    fn next_time(&mut self) -> Option<f64> {
        while !self.done {
            let sg = self.segs[self.seg];
            let max = sg.lo.max(sg.hi);
            if max > 0.0 {
                let e: f64 = Exp1.sample(&mut self.rng);
                let cand = self.t + e / max;
                if cand < self.seg_end {
                    self.t = cand;
                    if sg.lo == sg.hi || self.rng.random::<f64>() * max < sg.rate_at(cand - self.seg_start) {
                        return Some(cand);
                    }
                    continue;
                }
            }
            if !self.next_segment() {
                return None;
            }
        }
        None
    }
}

/// `users` users in a closed loop. User u's first request is at U[0, think) and every later
/// one at finish + Exp(mean think). Each user draws from its own stream, so its think times do
/// not depend on the order in which other users' requests complete.
pub struct ClosedLoop {
    think: f64,
    rngs: Vec<SimRng>,
    outstanding: Vec<bool>,
    heap: BinaryHeap<Reverse<(SimTime, u32)>>,
    horizon: SimTime,
}

impl ClosedLoop {
    pub fn new(users: u32, think: f64, streams: &RngStreams, stream_name: &str, horizon: SimTime) -> Self {
        let name = format!("{stream_name}.user");
        let mut rngs: Vec<SimRng> = (0..users as u64).map(|u| streams.stream(&name, u)).collect();
        let mut heap = BinaryHeap::with_capacity(users as usize);
        for (u, r) in rngs.iter_mut().enumerate() {
            let t = SimTime::from_secs_f64(if think > 0.0 { r.random::<f64>() * think } else { 0.0 });
            if t < horizon {
                heap.push(Reverse((t, u as u32)));
            }
        }
        ClosedLoop { think, rngs, outstanding: vec![false; users as usize], heap, horizon }
    }
    /// Requests issued and not yet reported finished.
    pub fn outstanding(&self) -> usize {
        self.outstanding.iter().filter(|o| **o).count()
    }
}

impl ArrivalProcess for ClosedLoop {
    fn peek(&self) -> Option<SimTime> {
        self.heap.peek().map(|r| r.0.0)
    }
    fn pop(&mut self) -> Option<Arrival> {
        let Reverse((t, u)) = self.heap.pop()?;
        self.outstanding[u as usize] = true;
        Some(Arrival { time: t, source: Some(u) })
    }
    fn on_finished(&mut self, now: SimTime, source: u32) {
        let u = source as usize;
        if u >= self.outstanding.len() || !self.outstanding[u] {
            return;
        }
        self.outstanding[u] = false;
        let think = if self.think > 0.0 {
            let e: f64 = Exp1.sample(&mut self.rngs[u]);
            e * self.think
        } else {
            0.0
        };
        let t = now + crate::units::SimDuration::from_secs_f64(think);
        if t < self.horizon {
            self.heap.push(Reverse((t, source)));
        }
    }
    fn mean_rate(&self) -> Option<f64> {
        None
    }
    fn sources(&self) -> Option<u32> {
        Some(self.outstanding.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::SimDuration;
    use crate::workload::config::*;

    fn ds(s: f64) -> DurationStr {
        DurationStr(SimDuration::from_secs_f64(s))
    }

    fn times(cfg: &ArrivalConfig, seed: u64, horizon_s: f64) -> Vec<f64> {
        let mut p =
            build(cfg, "arrival", &RngStreams::new(seed), "workload.arrival", SimTime::from_secs_f64(horizon_s))
                .unwrap();
        let mut v = vec![];
        let mut last = SimTime::ZERO;
        while let Some(a) = p.pop() {
            assert!(a.time >= last, "non-decreasing");
            assert!(a.time < SimTime::from_secs_f64(horizon_s));
            last = a.time;
            v.push(a.time.as_secs_f64());
        }
        v
    }

    fn gaps_mean_cv(t: &[f64]) -> (f64, f64) {
        let gaps: Vec<f64> = std::iter::once(t[0]).chain(t.windows(2).map(|w| w[1] - w[0])).collect();
        let n = gaps.len() as f64;
        let m = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - m) * (g - m)).sum::<f64>() / (n - 1.0);
        (m, var.sqrt() / m)
    }

    #[test]
    fn poisson_mean_and_cv() {
        // 100k arrivals at 50/s need ~2000 s.
        let t = times(&ArrivalConfig::Poisson(RateConfig { rate: 50.0 }), 1, 2100.0);
        assert!(t.len() > 100_000, "{}", t.len());
        let t = &t[..100_000];
        let (m, cv) = gaps_mean_cv(t);
        assert!((m * 50.0 - 1.0).abs() < 0.015, "mean gap {m}");
        assert!((cv - 1.0).abs() < 0.02, "cv {cv}");
    }

    #[test]
    fn gamma_cv() {
        for cv_want in [0.5, 2.0] {
            let t = times(&ArrivalConfig::Gamma(GammaConfig { rate: 100.0, cv: cv_want }), 3, 1000.0);
            assert!(t.len() > 90_000);
            let (m, cv) = gaps_mean_cv(&t);
            assert!((m * 100.0 - 1.0).abs() < 0.03, "mean gap {m}");
            assert!((cv / cv_want - 1.0).abs() < 0.04, "cv {cv} want {cv_want}");
        }
    }

    #[test]
    fn constant_exact_timestamps() {
        let mut p = build(
            &ArrivalConfig::Constant(RateConfig { rate: 4.0 }),
            "arrival",
            &RngStreams::new(1),
            "w",
            SimTime::from_secs_f64(3.0),
        )
        .unwrap();
        let mut v = vec![];
        while let Some(a) = p.pop() {
            v.push(a.time.as_nanos());
        }
        let want: Vec<u64> = (0..12).map(|k| k * 250_000_000).collect();
        assert_eq!(v, want);
        // Rate 3/s: k/3 rounded to the nanosecond, no drift after many arrivals.
        let mut p = build(
            &ArrivalConfig::Constant(RateConfig { rate: 3.0 }),
            "arrival",
            &RngStreams::new(1),
            "w",
            SimTime::from_secs_f64(10_000.0),
        )
        .unwrap();
        let mut n = 0u64;
        while let Some(a) = p.pop() {
            assert_eq!(a.time.as_nanos(), (n as f64 * 1e9 / 3.0).round() as u64);
            n += 1;
        }
        assert_eq!(n, 30_000);
    }

    #[test]
    fn stages_rates_per_stage() {
        let cfg = ArrivalConfig::Stages(StagesConfig {
            stages: vec![
                StageConfig { rate: 20.0, duration: ds(500.0) },
                StageConfig { rate: 0.0, duration: ds(100.0) },
                StageConfig { rate: 80.0, duration: ds(250.0) },
            ],
        });
        let t = times(&cfg, 5, 10_000.0);
        let count = |a: f64, b: f64| t.iter().filter(|x| **x >= a && **x < b).count() as f64;
        let c1 = count(0.0, 500.0);
        assert!((c1 / 10_000.0 - 1.0).abs() < 0.04, "stage 1: {c1}");
        assert_eq!(count(500.0, 600.0), 0.0);
        let c3 = count(600.0, 850.0);
        assert!((c3 / 20_000.0 - 1.0).abs() < 0.03, "stage 3: {c3}");
        assert_eq!(count(850.0, 1e9), 0.0, "nothing after the last stage");
        let p = build(&cfg, "arrival", &RngStreams::new(5), "w", SimTime::from_secs_f64(850.0)).unwrap();
        assert!((p.mean_rate().unwrap() - 30_000.0 / 850.0).abs() < 1e-9);
    }

    #[test]
    fn diurnal_counts_follow_profile() {
        // 24 points; hour h's expected count is the integral of the interpolated rate over it,
        // i.e. peak·3600·(p[h] + p[h+1]) / 2.
        let profile: Vec<f64> = (0..24).map(|h| [0.1, 0.3, 1.0, 0.6][h % 4]).collect();
        let peak = 3.0;
        let cfg = ArrivalConfig::Diurnal(DiurnalConfig { peak_rate: peak, profile: profile.clone(), start_hour: 0.0 });
        let t = times(&cfg, 11, 86_400.0);
        let mut counts = [0f64; 24];
        for x in &t {
            counts[(*x / 3600.0) as usize] += 1.0;
        }
        for h in 0..24 {
            let want = peak * 3600.0 * (profile[h] + profile[(h + 1) % 24]) / 2.0;
            let sd = want.sqrt();
            assert!((counts[h] - want).abs() < 5.0 * sd, "hour {h}: {} vs {want}", counts[h]);
        }
        // Ratio between a 0.2-average hour and a 0.8-average hour.
        let r = counts[0] / counts[2];
        assert!((r / (0.2 / 0.8) - 1.0).abs() < 0.1, "ratio {r}");
        // start_hour shifts the profile.
        let cfg2 = ArrivalConfig::Diurnal(DiurnalConfig { peak_rate: peak, profile, start_hour: 2.0 });
        let t2 = times(&cfg2, 11, 3600.0);
        assert!((t2.len() as f64 - counts[2]).abs() < 5.0 * counts[2].sqrt());
        let p = build(&cfg2, "arrival", &RngStreams::new(1), "w", SimTime::from_secs_f64(86_400.0)).unwrap();
        assert!((p.mean_rate().unwrap() - peak * 0.5).abs() < 1e-9);
    }

    #[test]
    fn closed_loop_outstanding_and_think_time() {
        let users = 5u32;
        let think = 2.0;
        let streams = RngStreams::new(9);
        let horizon = SimTime::from_secs_f64(1e6);
        let mut p = ClosedLoop::new(users, think, &streams, "workload.arrival", horizon);
        // Replicate each user's stream to predict its draws.
        let mut mirror: Vec<SimRng> = (0..users as u64).map(|u| streams.stream("workload.arrival.user", u)).collect();
        let mut expect: Vec<SimTime> =
            mirror.iter_mut().map(|r| SimTime::from_secs_f64(r.random::<f64>() * think)).collect();
        let mut in_flight: Vec<(SimTime, u32)> = vec![];
        let mut now = SimTime::ZERO;
        for step in 0..2000u64 {
            // Alternate: issue everything due, then finish the oldest in-flight request.
            while let Some(t) = p.peek() {
                if !in_flight.is_empty() && t > now {
                    break;
                }
                let a = p.pop().unwrap();
                let u = a.source.unwrap();
                assert_eq!(a.time, expect[u as usize], "user {u} at step {step}");
                now = now.max(a.time);
                in_flight.push((a.time, u));
                assert!(in_flight.len() <= users as usize);
                assert_eq!(p.outstanding(), in_flight.len());
            }
            let (_, u) = in_flight.remove(0);
            now += SimDuration::from_millis(100 + step % 7 * 50);
            p.on_finished(now, u);
            p.on_finished(now, u); // a duplicate report is ignored
            let e: f64 = Exp1.sample(&mut mirror[u as usize]);
            expect[u as usize] = now + SimDuration::from_secs_f64(e * think);
        }
        assert!(p.mean_rate().is_none());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let s = RngStreams::new(1);
        let e = build(&ArrivalConfig::Poisson(RateConfig { rate: 0.0 }), "arrival", &s, "w", SimTime(1))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("workload.arrival.rate"), "{e}");
        let e = build(&ArrivalConfig::Gamma(GammaConfig { rate: 1.0, cv: -1.0 }), "arrival", &s, "w", SimTime(1))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("workload.arrival.cv"), "{e}");
        let e = build(
            &ArrivalConfig::Diurnal(DiurnalConfig { peak_rate: 1.0, profile: vec![0.0, 0.0], start_hour: 0.0 }),
            "arrival",
            &s,
            "w",
            SimTime(1),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("workload.arrival.profile"), "{e}");
    }
}

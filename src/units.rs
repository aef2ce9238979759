//! Unit newtypes. Simulated time is integer nanoseconds so that event order is a total order
//! with exact equality and no drift; floats appear only at the report edge
//! ([`SimDuration::as_secs_f64`] and friends are the one conversion point).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

/// Simulated time since scenario start, in nanoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SimTime(pub u64);

/// A span of simulated time, in nanoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SimDuration(pub u64);

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const MAX: SimTime = SimTime(u64::MAX);
    pub fn from_secs_f64(s: f64) -> Self {
        SimTime(SimDuration::from_secs_f64(s).0)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
    pub fn as_nanos(self) -> u64 {
        self.0
    }
    /// Time elapsed since `earlier`; saturates at zero.
    pub fn since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration(0);
    pub fn from_nanos(n: u64) -> Self {
        SimDuration(n)
    }
    pub fn from_micros(us: u64) -> Self {
        SimDuration(us * 1_000)
    }
    pub fn from_millis(ms: u64) -> Self {
        SimDuration(ms * 1_000_000)
    }
    pub fn from_secs(s: u64) -> Self {
        SimDuration(s * NANOS_PER_SEC)
    }
    /// Rounds to the nearest nanosecond; negative and NaN inputs give zero, huge inputs saturate.
    pub fn from_secs_f64(s: f64) -> Self {
        SimDuration::from_nanos_f64(s * NANOS_PER_SEC as f64)
    }
    /// `SimDuration(ns.round() as u64)` without the libm call that `f64::round` costs on the
    /// baseline x86-64 target (the step-time models round once per simulated step): exact for
    /// every finite `ns ≥ 0`; negative and NaN inputs give zero, huge inputs saturate.
    #[inline]
    pub fn from_nanos_f64(ns: f64) -> Self {
        // For 0.5 ≤ ns < 2^52, ns + 0.5 is exact or rounds only within [2^k, 2^k + 0.5] when
        // it reaches the next power of two, so truncating it rounds half up (0.5 is a multiple
        // of ns's ulp there). Below 0.5 the sum can round up to 1, so those are zero by hand.
        if (0.5..4_503_599_627_370_496.0).contains(&ns) {
            return SimDuration((ns + 0.5) as u64);
        }
        if ns >= 4_503_599_627_370_496.0 {
            // ≥ 2^52: already an integer; `as` saturates above u64::MAX.
            return SimDuration(ns as u64);
        }
        // Below 0.5 (rounds to 0), negative or NaN.
        SimDuration(0)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
    pub fn as_nanos(self) -> u64 {
        self.0
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}
impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, d: SimDuration) {
        *self = *self + d;
    }
}
impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    fn sub(self, o: SimTime) -> SimDuration {
        self.since(o)
    }
}
impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, o: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(o.0))
    }
}
impl AddAssign for SimDuration {
    fn add_assign(&mut self, o: SimDuration) {
        *self = *self + o;
    }
}
impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9}s", self.as_secs_f64())
    }
}
impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9}s", self.as_secs_f64())
    }
}

macro_rules! count_newtype {
    ($(#[$m:meta])* $name:ident, $inner:ty) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);
        impl Add for $name { type Output = $name; fn add(self, o: $name) -> $name { $name(self.0 + o.0) } }
        impl AddAssign for $name { fn add_assign(&mut self, o: $name) { self.0 += o.0; } }
        impl Sub for $name { type Output = $name; fn sub(self, o: $name) -> $name { $name(self.0 - o.0) } }
        impl SubAssign for $name { fn sub_assign(&mut self, o: $name) { self.0 -= o.0; } }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{}", self.0) }
        }
    };
}

count_newtype!(
    /// A number of tokens.
    Tokens, u32
);
count_newtype!(
    /// A number of KV-cache blocks.
    Blocks, u32
);

impl Tokens {
    /// Number of blocks needed to hold this many tokens.
    pub fn blocks_ceil(self, block_size: u32) -> Blocks {
        Blocks(self.0.div_ceil(block_size))
    }
    /// Number of completely filled blocks.
    pub fn blocks_floor(self, block_size: u32) -> Blocks {
        Blocks(self.0 / block_size)
    }
}

/// Index of a replica in the cluster's arena.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId(pub u32);

/// Dense request id, assigned by the workload in arrival order.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn secs_round_trip_is_exact_for_nanos() {
        assert_eq!(SimDuration::from_secs_f64(0.0015).0, 1_500_000);
        assert_eq!(SimDuration::from_secs_f64(-1.0).0, 0);
        assert_eq!(SimDuration::from_secs_f64(f64::NAN).0, 0);
        assert_eq!((SimTime(5) + SimDuration(7)).0, 12);
        assert_eq!(SimTime(3).since(SimTime(9)).0, 0);
    }
    #[test]
    fn nanos_f64_rounds_like_f64_round() {
        let edge = [
            0.0,
            -0.0,
            0.49999999999999994,
            0.5,
            1.5,
            2.5,
            2.4999999999999996,
            1e15 + 0.5,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            1.8e19,
            1e30,
            f64::INFINITY,
            -0.4,
            -0.6,
            -7.5,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random = (0..20_000).map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Magnitudes from 1e-3 to 1e12 ns, with fractions near .5 common.
            let m = (x >> 11) as f64 / (1u64 << 53) as f64;
            10f64.powf(-3.0 + 15.0 * m)
        });
        // Halves and their neighbours at every power of two the fast path covers, and just
        // below each power (where ns + 0.5 reaches the next binade).
        let near = (-1..=52).flat_map(|k| {
            let p = 2f64.powi(k);
            let h = (p + 0.5).max(0.5);
            [h, h.next_down(), h.next_up(), p, p.next_down(), p.next_up(), p - 0.5, (p - 0.5).next_down()]
        });
        for v in edge.into_iter().chain(random).chain(near) {
            assert_eq!(SimDuration::from_nanos_f64(v).0, v.round() as u64, "{v:e}");
        }
        assert_eq!(SimDuration::from_nanos_f64(2.5).0, 3);
        assert_eq!(SimDuration::from_secs_f64(1e300).0, u64::MAX);
        assert_eq!(SimDuration::from_secs_f64(-0.0).0, 0);
        assert_eq!(SimDuration::from_secs_f64(2.5e-9).0, 3);
        assert_eq!(SimDuration::from_nanos_f64(0.49999999999999994).0, 0);
    }
    #[test]
    fn blocks_rounding() {
        assert_eq!(Tokens(33).blocks_ceil(16), Blocks(3));
        assert_eq!(Tokens(33).blocks_floor(16), Blocks(2));
        assert_eq!(Tokens(0).blocks_ceil(16), Blocks(0));
    }
}

//! Randomness is explicit and partitioned: one master seed per scenario, and an independent
//! stream per named component, so adding a consumer never shifts another consumer's draws and
//! the workload is identical whatever the cluster configuration (common random numbers).
//!
//! Algorithm: PCG-64 MCG (`rand_pcg::Pcg64Mcg`), a named, portable generator. Stream seeds
//! are derived from (master seed, FNV-1a of the component name, index) through SplitMix64,
//! never through std's `DefaultHasher`, `thread_rng` or `StdRng`.

use rand::SeedableRng;

/// The one RNG type used by every simulated component.
pub type SimRng = rand_pcg::Pcg64Mcg;

/// Derives independent named streams from one master seed.
#[derive(Clone, Copy, Debug)]
pub struct RngStreams {
    master: u64,
}

/// SplitMix64 finaliser: a bijective 64-bit mixer.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes: stable across platforms and Rust versions.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl RngStreams {
    pub fn new(master_seed: u64) -> Self {
        RngStreams { master: master_seed }
    }
    pub fn master(&self) -> u64 {
        self.master
    }
    /// Independent stream for `(component, index)`.
    pub fn stream(&self, component: &str, index: u64) -> SimRng {
        let a = splitmix64(self.master ^ splitmix64(fnv1a(component.as_bytes())));
        let b = splitmix64(a ^ splitmix64(index.wrapping_add(0x1234_5678)));
        let c = splitmix64(b);
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&b.to_le_bytes());
        seed[8..].copy_from_slice(&c.to_le_bytes());
        SimRng::from_seed(seed)
    }
    /// A 64-bit value derived from the master seed and a name, for content keys.
    pub fn key(&self, component: &str, index: u64) -> u64 {
        splitmix64(splitmix64(self.master ^ fnv1a(component.as_bytes())) ^ splitmix64(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;
    #[test]
    fn streams_are_pinned_and_independent() {
        let s = RngStreams::new(42);
        let mut a = s.stream("workload", 0);
        let mut a2 = s.stream("workload", 0);
        let mut b = s.stream("router", 0);
        let x: u64 = a.random();
        assert_eq!(x, a2.random::<u64>());
        assert_ne!(x, b.random::<u64>());
        // Golden value: changing the derivation or the algorithm must be a conscious decision.
        let golden: u64 = RngStreams::new(1).stream("workload", 0).random();
        assert_eq!(golden, GOLDEN_WORKLOAD_0);
    }
    const GOLDEN_WORKLOAD_0: u64 = 6846676929635118560;
}

//! The precise prefix index (llm-d-kv-cache-manager `kvblock` in-memory index, spec §2.2),
//! fed by vLLM KV events.
//!
//! Keys are the engine's own block hashes: the guide requires vLLM's `--block-size` to equal
//! the scorer's `tokenProcessorConfig.blockSize`, and then the manager's request keys map
//! one-to-one onto engine blocks, so servesim skips the re-keying. Each key keeps at most
//! `podCacheSize` (10) pod entries in LRU order. `BlockRemoved` drops the pod's entry;
//! `AllBlocksCleared` is ignored, as upstream does. Only the GPU tier exists (weight 1.0).

use crate::router::fasthash::{FastMap, fast_map};
use smallvec::SmallVec;

/// Upstream `podCacheSize` default.
pub const POD_CACHE_SIZE: usize = 10;

pub struct PreciseIndex {
    /// Block hash → pods holding it, least recently stored first.
    holders: FastMap<u64, SmallVec<[u32; 4]>>,
    pod_cache_size: usize,
}

impl Default for PreciseIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl PreciseIndex {
    pub fn new() -> Self {
        PreciseIndex { holders: fast_map(), pod_cache_size: POD_CACHE_SIZE }
    }

    pub fn block_stored(&mut self, pod: u32, hashes: &[u64]) {
        for &h in hashes {
            let v = self.holders.entry(h).or_default();
            if let Some(i) = v.iter().position(|&p| p == pod) {
                v.remove(i);
            }
            v.push(pod);
            if v.len() > self.pod_cache_size {
                v.remove(0);
            }
        }
    }

    pub fn block_removed(&mut self, pod: u32, hashes: &[u64]) {
        for h in hashes {
            if let Some(v) = self.holders.get_mut(h) {
                v.retain(|p| *p != pod);
                if v.is_empty() {
                    self.holders.remove(h);
                }
            }
        }
    }

    pub fn holds(&self, pod: u32, hash: u64) -> bool {
        self.holders.get(&hash).is_some_and(|v| v.contains(&pod))
    }

    /// `LongestPrefixScorer`: for each of `pods`, the number of consecutive blocks from the
    /// start of `hashes` it holds (GPU tier weight 1.0 per block). Written to `out`.
    pub fn longest_prefix(&self, hashes: &[u64], pods: &[u32], out: &mut Vec<f64>) {
        out.clear();
        out.resize(pods.len(), 0.0);
        let mut active: SmallVec<[usize; 16]> = (0..pods.len()).collect();
        for h in hashes {
            let Some(v) = self.holders.get(h) else { break };
            active.retain(|i| v.contains(&pods[*i]));
            if active.is_empty() {
                break;
            }
            for &i in &active {
                out[i] += 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_stored_and_removed_events() {
        let mut ix = PreciseIndex::new();
        let mut out = vec![];
        ix.block_stored(0, &[1, 2, 3]);
        ix.block_stored(1, &[1, 2]);
        ix.longest_prefix(&[1, 2, 3, 4], &[0, 1, 2], &mut out);
        assert_eq!(out, vec![3.0, 2.0, 0.0]);
        // vLLM evicts the middle block of pod 0: its consecutive prefix is now 1 block even
        // though block 3 is still there.
        ix.block_removed(0, &[2]);
        ix.longest_prefix(&[1, 2, 3, 4], &[0, 1, 2], &mut out);
        assert_eq!(out, vec![1.0, 2.0, 0.0]);
        ix.block_removed(1, &[1]);
        ix.longest_prefix(&[1, 2, 3, 4], &[0, 1, 2], &mut out);
        assert_eq!(out, vec![1.0, 0.0, 0.0]);
        assert!(!ix.holds(1, 1) && ix.holds(1, 2));
    }

    #[test]
    fn at_most_ten_pods_per_key() {
        let mut ix = PreciseIndex::new();
        for p in 0..11 {
            ix.block_stored(p, &[7]);
        }
        assert!(!ix.holds(0, 7), "least recently stored pod entry dropped");
        assert!((1..11).all(|p| ix.holds(p, 7)));
        ix.block_stored(1, &[7]); // refresh 1; now 2 is the oldest
        ix.block_stored(0, &[7]);
        assert!(ix.holds(1, 7) && !ix.holds(2, 7));
    }
}

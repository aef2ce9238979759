//! The EPP's approximate prefix index (GIE `approximateprefix/indexer.go`, spec §1.4.4).
//!
//! `hashToPods: block hash → pods`, plus one LRU of block hashes per pod with a capacity.
//! The index learns at routing time only (PreRequest: the chosen pod is assumed to now hold
//! every block of the prompt) and is never told about vLLM evictions; it forgets a block only
//! when that pod's LRU overflows. Blocks of a prompt are added first to last, so block 0 is
//! the *least* recent of them and the first to be evicted from a full LRU — the opposite of
//! vLLM, which evicts tail blocks first. That quirk is reproduced on purpose.
//!
//! Layout: one arena of intrusive doubly-linked LRU nodes for all pods (a node per
//! (pod, hash) entry), a free list for reuse, and `hash → [(pod, node)]` in a fast map.
//! Nothing iterates the map, so results never depend on hash-map order.

use crate::router::fasthash::{FastMap, fast_map};
use smallvec::SmallVec;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    hash: u64,
    pod: u32,
    /// Towards the most recent end.
    prev: u32,
    /// Towards the least recent end.
    next: u32,
}

#[derive(Clone, Copy, Debug)]
struct PodLru {
    /// Most recently used.
    head: u32,
    /// Least recently used (evicted first).
    tail: u32,
    len: u32,
    cap: u32,
}

impl Default for PodLru {
    fn default() -> Self {
        PodLru { head: NIL, tail: NIL, len: 0, cap: 0 }
    }
}

/// Approximate prefix index over dense pod ids (`ReplicaId.0`).
#[derive(Default)]
pub struct ApproxPrefixIndex {
    nodes: Vec<Node>,
    free: Vec<u32>,
    pods: Vec<PodLru>,
    holders: FastMap<u64, SmallVec<[(u32, u32); 4]>>,
    /// Scratch for match counting, indexed by pod id.
    counts: Vec<u32>,
    touched: Vec<u32>,
}

impl ApproxPrefixIndex {
    pub fn new() -> Self {
        ApproxPrefixIndex { holders: fast_map(), ..Default::default() }
    }

    fn pod_mut(&mut self, pod: u32) -> &mut PodLru {
        let i = pod as usize;
        if self.pods.len() <= i {
            self.pods.resize(i + 1, PodLru::default());
        }
        &mut self.pods[i]
    }

    /// Number of blocks the index believes `pod` holds.
    pub fn pod_len(&self, pod: u32) -> u32 {
        self.pods.get(pod as usize).map_or(0, |p| p.len)
    }

    /// Whether the index believes `pod` holds `hash`.
    pub fn contains(&self, pod: u32, hash: u64) -> bool {
        self.holders.get(&hash).is_some_and(|v| v.iter().any(|&(p, _)| p == pod))
    }

    fn unlink(&mut self, n: u32) {
        let Node { prev, next, pod, .. } = self.nodes[n as usize];
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.pods[pod as usize].head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.pods[pod as usize].tail = prev;
        }
    }

    fn push_front(&mut self, n: u32) {
        let pod = self.nodes[n as usize].pod;
        let head = self.pods[pod as usize].head;
        self.nodes[n as usize].prev = NIL;
        self.nodes[n as usize].next = head;
        if head != NIL {
            self.nodes[head as usize].prev = n;
        } else {
            self.pods[pod as usize].tail = n;
        }
        self.pods[pod as usize].head = n;
    }

    /// Drops the least recently used entry of `pod` (and the pod from `hashToPods[hash]`).
    fn evict_oldest(&mut self, pod: u32) {
        let t = self.pods[pod as usize].tail;
        if t == NIL {
            return;
        }
        self.unlink(t);
        self.pods[pod as usize].len -= 1;
        let h = self.nodes[t as usize].hash;
        if let Some(v) = self.holders.get_mut(&h) {
            v.retain(|&mut (p, _)| p != pod);
            if v.is_empty() {
                self.holders.remove(&h);
            }
        }
        self.free.push(t);
    }

    /// `Add(hashes, pod)`: each hash in order becomes the pod's most recent entry (an existing
    /// one is moved to the front); a full LRU evicts its least recent entry. `capacity` is the
    /// pod's LRU size (fixed `lruCapacityPerServer`, or its `num_gpu_blocks` with autoTune);
    /// a smaller capacity than before evicts down to it first.
    pub fn add(&mut self, pod: u32, hashes: &[u64], capacity: u32) {
        let capacity = capacity.max(1);
        self.pod_mut(pod).cap = capacity;
        while self.pods[pod as usize].len > capacity {
            self.evict_oldest(pod);
        }
        for &h in hashes {
            let existing = self.holders.get(&h).and_then(|v| v.iter().find(|&&(p, _)| p == pod).map(|&(_, n)| n));
            if let Some(n) = existing {
                self.unlink(n);
                self.push_front(n);
                continue;
            }
            if self.pods[pod as usize].len >= capacity {
                self.evict_oldest(pod);
            }
            let node = Node { hash: h, pod, prev: NIL, next: NIL };
            let n = match self.free.pop() {
                Some(n) => {
                    self.nodes[n as usize] = node;
                    n
                }
                None => {
                    self.nodes.push(node);
                    (self.nodes.len() - 1) as u32
                }
            };
            self.push_front(n);
            self.pods[pod as usize].len += 1;
            self.holders.entry(h).or_default().push((pod, n));
        }
    }

    /// The producer's greedy walk: for each hash in order, stop at the first one no pod holds;
    /// otherwise every holder's count goes up by one. A pod that lost an earlier block (but
    /// another pod still has it) still gets later blocks counted, exactly like upstream.
    /// Writes `out[i]` = matched blocks of `pods[i]`.
    pub fn match_blocks(&mut self, hashes: &[u64], pods: &[u32], out: &mut Vec<u32>) {
        for &h in hashes {
            let Some(v) = self.holders.get(&h) else { break };
            for &(p, _) in v.iter() {
                let i = p as usize;
                if self.counts.len() <= i {
                    self.counts.resize(i + 1, 0);
                }
                if self.counts[i] == 0 {
                    self.touched.push(p);
                }
                self.counts[i] += 1;
            }
        }
        out.clear();
        out.extend(pods.iter().map(|&p| self.counts.get(p as usize).copied().unwrap_or(0)));
        for p in self.touched.drain(..) {
            self.counts[p as usize] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_quirk_first_block_is_evicted_first() {
        let mut ix = ApproxPrefixIndex::new();
        // Pod 0 holds prompt A = [a0, a1, a2] with room for 4 entries.
        ix.add(0, &[10, 11, 12], 4);
        // Prompt B = [b0, b1] needs one slot more: the least recent entry is a0 (block 0 of A,
        // added first), not the tail a2 as vLLM would evict.
        ix.add(0, &[20, 21], 4);
        assert!(!ix.contains(0, 10));
        assert!(ix.contains(0, 11) && ix.contains(0, 12));
        assert_eq!(ix.pod_len(0), 4);
        // A's greedy walk stops at a0 (nobody holds it) although a1 and a2 are indexed.
        let mut out = vec![];
        ix.match_blocks(&[10, 11, 12], &[0], &mut out);
        assert_eq!(out, vec![0]);
        ix.match_blocks(&[20, 21], &[0], &mut out);
        assert_eq!(out, vec![2]);
    }

    #[test]
    fn re_adding_moves_to_front() {
        let mut ix = ApproxPrefixIndex::new();
        ix.add(0, &[1, 2, 3], 3);
        ix.add(0, &[1], 3); // 1 becomes most recent; 2 is now the oldest
        ix.add(0, &[4], 3);
        assert!(ix.contains(0, 1) && !ix.contains(0, 2) && ix.contains(0, 3) && ix.contains(0, 4));
    }

    #[test]
    fn walk_counts_per_hash_membership() {
        let mut ix = ApproxPrefixIndex::new();
        ix.add(0, &[1, 2, 3], 100);
        ix.add(1, &[2, 3], 100); // pod 1 lacks block 1 but pod 0 has it, so the walk goes on
        let mut out = vec![];
        ix.match_blocks(&[1, 2, 3, 4], &[0, 1, 2], &mut out);
        assert_eq!(out, vec![3, 2, 0]);
        // counts are reset between calls
        ix.match_blocks(&[1], &[0, 1], &mut out);
        assert_eq!(out, vec![1, 0]);
    }

    #[test]
    fn shrinking_capacity_evicts_oldest() {
        let mut ix = ApproxPrefixIndex::new();
        ix.add(3, &[1, 2, 3, 4], 10);
        ix.add(3, &[], 2);
        assert_eq!(ix.pod_len(3), 2);
        assert!(!ix.contains(3, 1) && !ix.contains(3, 2) && ix.contains(3, 4));
        // node reuse keeps the structure consistent
        ix.add(3, &[5, 6, 7], 2);
        assert!(ix.contains(3, 6) && ix.contains(3, 7) && !ix.contains(3, 5) && !ix.contains(3, 4));
    }
}

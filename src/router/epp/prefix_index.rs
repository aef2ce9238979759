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
//!
//! Why the chain shortcuts: a coding assistant's prompts start with a repository context of
//! hundreds of blocks, so nearly every hashed block of every request is a block of a shared
//! chain ([`crate::content::ChainArena`]), and the same few hundred hashes are walked and
//! re-added per request. Callers say how many leading hashes are the first blocks of which
//! chain ([`ChainPrefix`]); then (1) the walk over that part is remembered per chain and
//! reused while no entry was inserted or evicted anywhere (membership is all the walk reads;
//! re-adding existing entries only reorders the LRUs), and (2) re-adding finds a pod's node
//! of chain position `p` in a per-(pod, chain) table instead of the hash map. Both are caches
//! of what the map says, so results are those of the plain per-hash walk. (3) Re-adding a
//! chain prefix whose nodes still lie next to each other in the pod's LRU, in the order the
//! last add left them (position 0 towards the tail), moves them to the front in one splice:
//! the order a per-hash move-to-front would give. Such a run is remembered per (pod, chain)
//! as a *segment* length and forgotten when one of its nodes moves or is evicted on its own.

use crate::router::fasthash::{FastMap, fast_map};
use smallvec::SmallVec;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    hash: u64,
    pod: u32,
    /// Chain position this node is cached under in `chain_nodes` (chain NIL: none).
    chain: u32,
    pos: u32,
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

/// The leading `len` hashes handed to the index are blocks `0..len` of chain `chain` (at the
/// index's block size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainPrefix {
    pub chain: u32,
    pub len: u32,
}

/// A remembered walk over a chain prefix.
#[derive(Clone, Debug, Default)]
struct WalkMemo {
    len: u32,
    /// Hash of the prefix's last block (chained: it names the whole prefix).
    last_hash: u64,
    /// `membership_epoch` when computed (0: never).
    epoch: u64,
    /// The walk stopped inside the prefix (some block is held by no pod).
    stopped: bool,
    /// Matched blocks per pod (pods with none omitted), in first-touch order.
    counts: Vec<(u32, u32)>,
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
    /// Bumped whenever an entry is inserted or evicted.
    membership_epoch: u64,
    /// Per chain: the last walk over one of its prefixes.
    memo: Vec<WalkMemo>,
    /// Per pod, per chain: node of each chain position (NIL: not cached here; then the map
    /// is asked).
    chain_nodes: Vec<Vec<Vec<u32>>>,
    /// Per pod, per chain: positions `0..seg` are contiguous in the pod's LRU, position
    /// `seg − 1` nearest the head (see module docs; 0: no segment known).
    segs: Vec<Vec<u32>>,
    /// Bumped whenever a chain node is evicted.
    chain_evictions: u64,
}

impl ApproxPrefixIndex {
    pub fn new() -> Self {
        ApproxPrefixIndex { holders: fast_map(), membership_epoch: 1, ..Default::default() }
    }

    /// Cached node of (pod, chain position), if any.
    #[inline]
    fn chain_node(&self, pod: u32, chain: u32, pos: u32) -> u32 {
        self.chain_nodes
            .get(pod as usize)
            .and_then(|v| v.get(chain as usize))
            .and_then(|v| v.get(pos as usize))
            .copied()
            .unwrap_or(NIL)
    }

    fn set_chain_node(&mut self, pod: u32, chain: u32, pos: u32, n: u32) {
        let (p, c, i) = (pod as usize, chain as usize, pos as usize);
        if self.chain_nodes.len() <= p {
            self.chain_nodes.resize(p + 1, Vec::new());
        }
        let per_pod = &mut self.chain_nodes[p];
        if per_pod.len() <= c {
            per_pod.resize(c + 1, Vec::new());
        }
        let v = &mut per_pod[c];
        if v.len() <= i {
            v.resize(i + 1, NIL);
        }
        v[i] = n;
        self.nodes[n as usize].chain = chain;
        self.nodes[n as usize].pos = pos;
    }

    /// Segment length of (pod, chain).
    #[inline]
    fn seg(&self, pod: u32, chain: u32) -> u32 {
        self.segs.get(pod as usize).and_then(|v| v.get(chain as usize)).copied().unwrap_or(0)
    }

    fn set_seg(&mut self, pod: u32, chain: u32, len: u32) {
        let (p, c) = (pod as usize, chain as usize);
        if self.segs.len() <= p {
            self.segs.resize(p + 1, Vec::new());
        }
        if self.segs[p].len() <= c {
            if len == 0 {
                return;
            }
            self.segs[p].resize(c + 1, 0);
        }
        self.segs[p][c] = len;
    }

    /// Node `n` is about to move on its own: a segment it belongs to is no longer contiguous.
    #[inline]
    fn break_seg_of(&mut self, n: u32) {
        let Node { pod, chain, pos, .. } = self.nodes[n as usize];
        if chain != NIL && pos < self.seg(pod, chain) {
            self.set_seg(pod, chain, 0);
        }
    }

    /// Moves chain positions `0..len` of `pod`, contiguous (segment), to the front.
    fn splice_to_front(&mut self, pod: u32, chain: u32, len: u32) {
        let first = self.chain_node(pod, chain, len - 1); // nearest the head
        let last = self.chain_node(pod, chain, 0);
        let before = self.nodes[first as usize].prev;
        if before == NIL {
            return; // already the most recent entries
        }
        let after = self.nodes[last as usize].next;
        self.nodes[before as usize].next = after;
        if after != NIL {
            self.nodes[after as usize].prev = before;
        } else {
            self.pods[pod as usize].tail = before;
        }
        let head = self.pods[pod as usize].head;
        self.nodes[last as usize].next = head;
        self.nodes[head as usize].prev = last;
        self.nodes[first as usize].prev = NIL;
        self.pods[pod as usize].head = first;
    }

    /// The pod's entries, most recent first (tests).
    #[cfg(test)]
    fn lru_order(&self, pod: u32) -> Vec<u64> {
        let mut out = vec![];
        let mut n = self.pods.get(pod as usize).map_or(NIL, |p| p.head);
        while n != NIL {
            out.push(self.nodes[n as usize].hash);
            n = self.nodes[n as usize].next;
        }
        out
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
        self.break_seg_of(t);
        self.unlink(t);
        self.pods[pod as usize].len -= 1;
        self.membership_epoch += 1;
        let Node { hash: h, chain, pos, .. } = self.nodes[t as usize];
        if chain != NIL {
            self.chain_evictions += 1;
        }
        if chain != NIL && self.chain_node(pod, chain, pos) == t {
            self.chain_nodes[pod as usize][chain as usize][pos as usize] = NIL;
        }
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
        self.add_with_prefix(pod, hashes, None, capacity)
    }

    /// [`ApproxPrefixIndex::add`] where `prefix` describes the leading hashes as chain blocks.
    pub fn add_with_prefix(&mut self, pod: u32, hashes: &[u64], prefix: Option<ChainPrefix>, capacity: u32) {
        let capacity = capacity.max(1);
        self.pod_mut(pod).cap = capacity;
        while self.pods[pod as usize].len > capacity {
            self.evict_oldest(pod);
        }
        let (chain, clen) = prefix.map_or((NIL, 0), |p| (p.chain, p.len.min(hashes.len() as u32)));
        let mut start = 0;
        if clen > 0
            && self.seg(pod, chain) >= clen
            && self.nodes[self.chain_node(pod, chain, clen - 1) as usize].hash == hashes[clen as usize - 1]
        {
            // The chain part is a contiguous run: one splice (see module docs). Positions
            // `clen..` of the old segment no longer follow it.
            self.splice_to_front(pod, chain, clen);
            self.set_seg(pod, chain, clen);
            start = clen as usize;
        }
        let evictions_before = self.chain_evictions;
        let mut seg_ok = start == 0;
        for (i, &h) in hashes.iter().enumerate().skip(start) {
            let i = i as u32;
            let in_chain = i < clen;
            let mut existing = if in_chain { self.chain_node(pod, chain, i) } else { NIL };
            if existing != NIL && self.nodes[existing as usize].hash != h {
                existing = NIL; // the table was filled at another block size
            }
            if existing == NIL {
                existing = self
                    .holders
                    .get(&h)
                    .and_then(|v| v.iter().find(|&&(p, _)| p == pod).map(|&(_, n)| n))
                    .unwrap_or(NIL);
                if existing != NIL && in_chain && self.nodes[existing as usize].chain == NIL {
                    self.set_chain_node(pod, chain, i, existing);
                }
            }
            if existing != NIL {
                let n = existing;
                self.break_seg_of(n);
                self.unlink(n);
                self.push_front(n);
                // A chain position must be cached under its position; after the chain part, a
                // node of the same chain moving again breaks the run.
                seg_ok &= if in_chain {
                    self.chain_node(pod, chain, i) == n
                } else {
                    chain == NIL || self.nodes[n as usize].chain != chain
                };
                continue;
            }
            if self.pods[pod as usize].len >= capacity {
                self.evict_oldest(pod);
            }
            self.membership_epoch += 1;
            let node = Node { hash: h, pod, chain: NIL, pos: 0, prev: NIL, next: NIL };
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
            if in_chain {
                self.set_chain_node(pod, chain, i, n);
            }
        }
        // Positions `0..clen` were moved to the front one after the other, each cached under
        // its position, and none was evicted meanwhile: they form a segment now.
        if seg_ok && clen > 0 && self.chain_evictions == evictions_before {
            self.set_seg(pod, chain, clen);
        }
    }

    /// Adds the walk over `hashes` to the scratch counts; false if it stopped at a hash no
    /// pod holds.
    fn walk(&mut self, hashes: &[u64]) -> bool {
        for &h in hashes {
            let Some(v) = self.holders.get(&h) else { return false };
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
        true
    }

    /// The producer's greedy walk: for each hash in order, stop at the first one no pod holds;
    /// otherwise every holder's count goes up by one. A pod that lost an earlier block (but
    /// another pod still has it) still gets later blocks counted, exactly like upstream.
    /// Writes `out[i]` = matched blocks of `pods[i]`.
    pub fn match_blocks(&mut self, hashes: &[u64], pods: &[u32], out: &mut Vec<u32>) {
        self.match_blocks_with_prefix(hashes, None, pods, out)
    }

    /// [`ApproxPrefixIndex::match_blocks`] where `prefix` describes the leading hashes as
    /// chain blocks (the walk over them is remembered, see module docs).
    pub fn match_blocks_with_prefix(
        &mut self,
        hashes: &[u64],
        prefix: Option<ChainPrefix>,
        pods: &[u32],
        out: &mut Vec<u32>,
    ) {
        let mut rest = hashes;
        if let Some(cp) = prefix.filter(|p| p.len > 0 && p.len as usize <= hashes.len()) {
            let c = cp.chain as usize;
            if self.memo.len() <= c {
                self.memo.resize(c + 1, WalkMemo::default());
            }
            let last_hash = hashes[cp.len as usize - 1];
            let m = &self.memo[c];
            if m.epoch != self.membership_epoch || m.len != cp.len || m.last_hash != last_hash {
                let stopped = !self.walk(&hashes[..cp.len as usize]);
                let mut memo = std::mem::take(&mut self.memo[c]);
                memo.len = cp.len;
                memo.last_hash = last_hash;
                memo.epoch = self.membership_epoch;
                memo.stopped = stopped;
                memo.counts.clear();
                memo.counts.extend(self.touched.iter().map(|&p| (p, self.counts[p as usize])));
                self.memo[c] = memo;
            } else {
                let memo = &self.memo[c];
                for &(p, k) in &memo.counts {
                    let i = p as usize;
                    if self.counts.len() <= i {
                        self.counts.resize(i + 1, 0);
                    }
                    self.counts[i] = k;
                    self.touched.push(p);
                }
            }
            rest = if self.memo[c].stopped { &[] } else { &hashes[cp.len as usize..] };
        }
        self.walk(rest);
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

    /// The chain shortcuts (remembered walks, per-(pod, chain) node table) against the plain
    /// per-hash index under random traffic with evictions, chain prefixes of varying length,
    /// private tails and hashes added both as chain blocks and as plain hashes.
    #[test]
    fn chain_shortcuts_match_the_plain_index() {
        use crate::rng::RngStreams;
        use rand::RngExt;
        for seed in 0..30u64 {
            let mut rng = RngStreams::new(seed).stream("approx-ref", 0);
            let chains: Vec<Vec<u64>> =
                (0..3u64).map(|c| (0..40u64).map(|i| crate::rng::splitmix64(c * 1000 + i)).collect()).collect();
            let (mut plain, mut fast) = (ApproxPrefixIndex::new(), ApproxPrefixIndex::new());
            let cap = rng.random_range(5..120u32);
            let pods = [0u32, 1, 2, 3];
            let (mut a, mut b) = (vec![], vec![]);
            for step in 0..300 {
                let c = rng.random_range(0..3usize);
                let len = rng.random_range(0..=40u32);
                let mut hashes = chains[c][..len as usize].to_vec();
                for _ in 0..rng.random_range(0..4) {
                    hashes.push(rng.random_range(0..50u64) + 7_000_000);
                }
                // Sometimes the tail repeats a block of the chain (it moves again).
                if rng.random_range(0..6) == 0 {
                    hashes.push(chains[c][rng.random_range(0..40usize)]);
                }
                // Sometimes the chain part is presented as plain hashes.
                let prefix = (rng.random_range(0..4) > 0).then_some(ChainPrefix { chain: c as u32, len });
                let pod = rng.random_range(0..4u32);
                plain.match_blocks(&hashes, &pods, &mut a);
                fast.match_blocks_with_prefix(&hashes, prefix, &pods, &mut b);
                assert_eq!(a, b, "seed {seed} step {step}: match");
                let cap = if rng.random_range(0..20) == 0 { cap / 2 + 1 } else { cap };
                plain.add(pod, &hashes, cap);
                fast.add_with_prefix(pod, &hashes, prefix, cap);
                for p in pods {
                    assert_eq!(plain.pod_len(p), fast.pod_len(p), "seed {seed} step {step}: pod {p} length");
                    assert_eq!(plain.lru_order(p), fast.lru_order(p), "seed {seed} step {step}: pod {p} order");
                }
                for ch in &chains {
                    for &h in ch {
                        for p in pods {
                            assert_eq!(plain.contains(p, h), fast.contains(p, h), "seed {seed} step {step}");
                        }
                    }
                }
            }
        }
    }
}

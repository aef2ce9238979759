//! vLLM V1's KV block pool with automatic prefix caching, block for block (spec §3.4–3.5):
//! a null block reserved, an LRU free queue popped at the head and appended at the tail,
//! reverse-order free so a sequence's tail is evicted before its shared prefix, hashes kept on
//! free (a freed block stays a cache hit until reallocated), eviction at allocation, lookup
//! capped at `(num_tokens − 1) / block_size` blocks, touched free hits counted against free
//! capacity, and full blocks registered at allocation time.
//!
//! Why it looks unusual: a coding assistant's repository context is 10–30k tokens (1–2k blocks)
//! shared by hundreds of requests. Reference-counting every block of it on every admission
//! would make the simulator's cost proportional to context length. Blocks of a registered
//! shared chain ([`crate::content::ChainArena`]) are therefore held by *range*: a request holds
//! the first `n` blocks of chain `c`, and a chain block's reference count is the number of
//! holders whose `n` exceeds its position (kept as a multiset of holds per chain). Blocks only
//! move on or off the free queue when that count crosses zero, exactly where vLLM's per-block
//! counts would, and in the same order, so the observable behaviour (hits, evictions, free
//! count, usage) is the same; the work is proportional to blocks that change state.
//!
//! Known simplification: vLLM's hash→block map can hold several blocks with the same hash
//! (duplicates computed by requests that missed); here the map keeps the first, so a duplicate
//! is found only through its owner. Duplicates need a lookup gap inside a cached prefix and are
//! rare.

use crate::content::ChainId;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Block ids are indices into the pool; 0 is vLLM's null block and never allocated.
pub type BlockId = u32;
const NIL: u32 = u32::MAX;

/// Identity hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
pub struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Per-chain state on one replica.
#[derive(Clone, Debug, Default)]
struct ChainState {
    /// Block id resident at each chain position, or NIL.
    resident: Vec<BlockId>,
    /// Every position below this is resident (lazily extended at lookup).
    resident_prefix: u32,
    /// Multiset of holds: hold length → number of holders.
    holds: BTreeMap<u32, u32>,
}

impl ChainState {
    fn max_hold(&self) -> u32 {
        self.holds.keys().next_back().copied().unwrap_or(0)
    }
    fn add_hold(&mut self, n: u32) {
        if n > 0 {
            *self.holds.entry(n).or_insert(0) += 1;
        }
    }
    fn remove_hold(&mut self, n: u32) {
        if n > 0 {
            match self.holds.get_mut(&n) {
                Some(c) if *c > 1 => *c -= 1,
                Some(_) => {
                    self.holds.remove(&n);
                }
                None => panic!("chain hold {n} released but not held"),
            }
        }
    }
}

/// A sequence's view of its KV blocks. Owned by the engine, mutated only through [`KvCache`].
#[derive(Clone, Debug, Default)]
pub struct SeqKv {
    /// Shared chain of this request's prompt and how many of its full blocks the prompt uses.
    pub chain: Option<ChainId>,
    pub chain_blocks: u32,
    /// Leading chain blocks held through the chain's range count.
    chain_hold: u32,
    /// Once a chain position had to be computed privately (duplicate), no further chain holds.
    chain_frozen: bool,
    /// Blocks at positions `chain_hold..`, in order, held with per-block counts.
    blocks: Vec<BlockId>,
    /// Positions below this have their hash registered (or were hits).
    registered: u32,
}

impl SeqKv {
    pub fn new(chain: Option<ChainId>, chain_blocks: u32) -> Self {
        SeqKv { chain, chain_blocks, ..Default::default() }
    }
    /// Blocks currently held.
    pub fn num_blocks(&self) -> u32 {
        self.chain_hold + self.blocks.len() as u32
    }
}

/// Result of a prefix-cache lookup, to be passed to [`KvCache::admit`].
#[derive(Clone, Debug, Default)]
pub struct Hit {
    /// Leading chain blocks hit.
    pub chain_blocks: u32,
    /// Further hit blocks found by hash, in order.
    pub blocks: Vec<BlockId>,
}

impl Hit {
    pub fn num_blocks(&self) -> u32 {
        self.chain_blocks + self.blocks.len() as u32
    }
    pub fn clear(&mut self) {
        self.chain_blocks = 0;
        self.blocks.clear();
    }
}

/// Hashes of a sequence's full blocks: chain part shared, own part per request.
pub struct SeqHashes<'a> {
    pub chain: &'a [u64],
    pub own: &'a [u64],
}

impl SeqHashes<'_> {
    #[inline]
    pub fn get(&self, pos: u32) -> Option<u64> {
        let p = pos as usize;
        if p < self.chain.len() { Some(self.chain[p]) } else { self.own.get(p - self.chain.len()).copied() }
    }
    pub fn len(&self) -> u32 {
        (self.chain.len() + self.own.len()) as u32
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// KV events, recorded only when enabled (for the precise prefix-cache router).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvChange {
    Stored(u64),
    Removed(u64),
}

pub struct KvCache {
    block_size: u32,
    num_blocks: u32,
    prefix_caching: bool,
    ref_cnt: Vec<u32>,
    hash: Vec<u64>,
    has_hash: Vec<bool>,
    /// Chain tag of a block: (chain, position), or (NIL, _).
    tag_chain: Vec<u32>,
    tag_pos: Vec<u32>,
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    num_free: u32,
    num_cached: u32,
    map: IdMap<BlockId>,
    chains: Vec<ChainState>,
    events: Option<Vec<KvChange>>,
}

impl KvCache {
    /// `num_blocks` includes the null block. `chain_lens[c]` = full blocks of chain `c`.
    pub fn new(num_blocks: u32, block_size: u32, prefix_caching: bool, chain_lens: &[u32]) -> Self {
        assert!(num_blocks >= 2, "need at least one usable block besides the null block");
        let n = num_blocks as usize;
        let mut kv = KvCache {
            block_size,
            num_blocks,
            prefix_caching,
            ref_cnt: vec![0; n],
            hash: vec![0; n],
            has_hash: vec![false; n],
            tag_chain: vec![NIL; n],
            tag_pos: vec![0; n],
            prev: vec![NIL; n],
            next: vec![NIL; n],
            head: NIL,
            tail: NIL,
            num_free: 0,
            num_cached: 0,
            map: IdMap::default(),
            chains: chain_lens
                .iter()
                .map(|&l| ChainState { resident: vec![NIL; l as usize], ..Default::default() })
                .collect(),
            events: None,
        };
        // Initial free queue in block-id order, null block excluded.
        for b in 1..num_blocks {
            kv.push_tail(b);
        }
        kv
    }

    pub fn enable_events(&mut self) {
        self.events = Some(Vec::new());
    }
    pub fn take_events(&mut self) -> Vec<KvChange> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }
    pub fn block_size(&self) -> u32 {
        self.block_size
    }
    pub fn num_blocks(&self) -> u32 {
        self.num_blocks
    }
    pub fn num_free(&self) -> u32 {
        self.num_free
    }
    pub fn num_cached(&self) -> u32 {
        self.num_cached
    }
    /// `vllm:kv_cache_usage_perc`.
    pub fn usage(&self) -> f64 {
        1.0 - self.num_free as f64 / (self.num_blocks - 1) as f64
    }

    fn push_tail(&mut self, b: u32) {
        self.prev[b as usize] = self.tail;
        self.next[b as usize] = NIL;
        if self.tail == NIL {
            self.head = b;
        } else {
            self.next[self.tail as usize] = b;
        }
        self.tail = b;
        self.num_free += 1;
    }
    fn unlink(&mut self, b: u32) {
        let (p, n) = (self.prev[b as usize], self.next[b as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[b as usize] = NIL;
        self.next[b as usize] = NIL;
        self.num_free -= 1;
    }
    /// Pops the LRU head, evicting its cached hash.
    fn pop_free(&mut self) -> BlockId {
        let b = self.head;
        assert!(b != NIL, "pop_free on an empty free queue");
        self.unlink(b);
        let bi = b as usize;
        if self.has_hash[bi] {
            let h = self.hash[bi];
            // Chain-held blocks are found through their chain, not the map.
            if self.tag_chain[bi] == NIL && self.map.get(&h) == Some(&b) {
                self.map.remove(&h);
            }
            self.has_hash[bi] = false;
            self.num_cached -= 1;
            if let Some(ev) = self.events.as_mut() {
                ev.push(KvChange::Removed(h));
            }
            let c = self.tag_chain[bi];
            if c != NIL {
                let pos = self.tag_pos[bi];
                let st = &mut self.chains[c as usize];
                st.resident[pos as usize] = NIL;
                st.resident_prefix = st.resident_prefix.min(pos);
                self.tag_chain[bi] = NIL;
            }
        }
        b
    }

    /// Prefix-cache lookup for a waiting request with `num_tokens` tokens (spec §3.5.1).
    pub fn lookup(&mut self, seq: &SeqKv, hashes: &SeqHashes<'_>, num_tokens: u32, out: &mut Hit) {
        out.clear();
        if !self.prefix_caching || num_tokens == 0 {
            return;
        }
        let cap = ((num_tokens - 1) / self.block_size).min(hashes.len());
        let mut pos = 0;
        if let Some(c) = seq.chain {
            let st = &mut self.chains[c.0 as usize];
            let len = st.resident.len() as u32;
            while st.resident_prefix < len && st.resident[st.resident_prefix as usize] != NIL {
                st.resident_prefix += 1;
            }
            pos = st.resident_prefix.min(seq.chain_blocks).min(cap);
            out.chain_blocks = pos;
            if pos < seq.chain_blocks {
                return;
            }
        }
        while pos < cap {
            let h = hashes.get(pos).expect("hash within cap");
            match self.map.get(&h) {
                Some(&b) => out.blocks.push(b),
                None => break,
            }
            pos += 1;
        }
    }

    /// Free blocks that admitting `hit` plus `new_tokens_total` tokens in all would need
    /// (vLLM counts touched free hits against free capacity).
    pub fn blocks_needed_for_admit(&self, seq: &SeqKv, hit: &Hit, total_tokens: u32) -> u32 {
        let evictable_chain = match seq.chain {
            Some(c) if hit.chain_blocks > 0 => hit.chain_blocks.saturating_sub(self.chains[c.0 as usize].max_hold()),
            _ => 0,
        };
        let evictable_own = hit.blocks.iter().filter(|&&b| self.ref_cnt[b as usize] == 0).count() as u32;
        let need_new = total_tokens.div_ceil(self.block_size).saturating_sub(hit.num_blocks());
        need_new + evictable_chain + evictable_own
    }

    pub fn can_admit(&self, seq: &SeqKv, hit: &Hit, total_tokens: u32) -> bool {
        self.blocks_needed_for_admit(seq, hit, total_tokens) <= self.num_free
    }

    /// Takes the hit blocks (touching them off the free queue). The caller then allocates.
    pub fn admit(&mut self, seq: &mut SeqKv, hit: &Hit) {
        debug_assert_eq!(seq.num_blocks(), 0, "admit of a sequence that holds blocks");
        if let Some(c) = seq.chain {
            let n = hit.chain_blocks;
            if n > 0 {
                let ci = c.0 as usize;
                let from = self.chains[ci].max_hold();
                for pos in from..n {
                    let b = self.chains[ci].resident[pos as usize];
                    debug_assert!(b != NIL && self.ref_cnt[b as usize] == 0);
                    self.unlink(b);
                }
                self.chains[ci].add_hold(n);
            }
            seq.chain_hold = n;
        }
        for &b in &hit.blocks {
            if self.ref_cnt[b as usize] == 0 {
                self.unlink(b);
            }
            self.ref_cnt[b as usize] += 1;
            seq.blocks.push(b);
        }
        seq.chain_frozen = seq.chain.is_some() && hit.chain_blocks == seq.chain_blocks && !hit.blocks.is_empty();
        seq.registered = hit.num_blocks();
    }

    /// Makes the sequence hold enough blocks for `total_tokens` tokens and registers blocks
    /// that will be full once `computed_after` tokens are computed. Returns false (changing
    /// nothing) when the free queue is too short.
    pub fn allocate(
        &mut self,
        seq: &mut SeqKv,
        hashes: &SeqHashes<'_>,
        total_tokens: u32,
        computed_after: u32,
    ) -> bool {
        let need = total_tokens.div_ceil(self.block_size).saturating_sub(seq.num_blocks());
        if need > self.num_free {
            return false;
        }
        for _ in 0..need {
            let b = self.pop_free();
            self.ref_cnt[b as usize] = 1;
            seq.blocks.push(b);
        }
        if self.prefix_caching {
            let full = (computed_after / self.block_size).min(hashes.len()).min(seq.num_blocks());
            if seq.registered < full {
                self.register_range(seq, hashes, full);
            }
        }
        true
    }

    /// Registers positions `seq.registered..full`. Leading positions of the shared chain that
    /// are not cached yet become chain-held blocks (converted in one batch at the end).
    fn register_range(&mut self, seq: &mut SeqKv, hashes: &SeqHashes<'_>, full: u32) {
        let hold0 = seq.chain_hold;
        let mut converted = 0u32;
        for pos in seq.registered..full {
            let h = hashes.get(pos).expect("registering a position without a hash");
            // Chain-held positions are registered already, so `pos` is a private block.
            let b = seq.blocks[(pos - hold0) as usize];
            let bi = b as usize;
            if self.has_hash[bi] {
                continue; // a hit block: already cached
            }
            if pos < seq.chain_blocks {
                let c = seq.chain.expect("chain positions imply a chain");
                let ci = c.0 as usize;
                if !seq.chain_frozen && pos == hold0 + converted && self.chains[ci].resident[pos as usize] == NIL {
                    self.chains[ci].resident[pos as usize] = b;
                    self.tag_chain[bi] = c.0;
                    self.tag_pos[bi] = pos;
                    self.ref_cnt[bi] -= 1;
                    debug_assert_eq!(self.ref_cnt[bi], 0);
                    converted += 1;
                } else {
                    seq.chain_frozen = true;
                }
            }
            self.hash[bi] = h;
            self.has_hash[bi] = true;
            self.num_cached += 1;
            if self.tag_chain[bi] == NIL {
                self.map.entry(h).or_insert(b);
            }
            if let Some(ev) = self.events.as_mut() {
                ev.push(KvChange::Stored(h));
            }
        }
        seq.registered = full;
        if converted > 0 {
            seq.blocks.drain(..converted as usize);
            let st = &mut self.chains[seq.chain.expect("converted chain blocks").0 as usize];
            st.remove_hold(hold0);
            seq.chain_hold = hold0 + converted;
            st.add_hold(seq.chain_hold);
        }
    }

    /// Releases all of a sequence's blocks in reverse order (spec §3.5.3).
    pub fn free(&mut self, seq: &mut SeqKv) {
        while let Some(b) = seq.blocks.pop() {
            let bi = b as usize;
            self.ref_cnt[bi] -= 1;
            if self.ref_cnt[bi] == 0 {
                self.push_tail(b);
            }
        }
        if let Some(c) = seq.chain {
            let n = seq.chain_hold;
            if n > 0 {
                let ci = c.0 as usize;
                self.chains[ci].remove_hold(n);
                let new_max = self.chains[ci].max_hold();
                for pos in (new_max..n).rev() {
                    let b = self.chains[ci].resident[pos as usize];
                    self.push_tail(b);
                }
            }
        }
        seq.chain_hold = 0;
        seq.chain_frozen = false;
        seq.registered = 0;
    }

    /// Checks the pool's invariants (tests and debug builds).
    pub fn check_invariants(&self) {
        let mut free = 0;
        let mut b = self.head;
        while b != NIL {
            assert_eq!(self.ref_cnt[b as usize], 0, "free block {b} has references");
            free += 1;
            b = self.next[b as usize];
        }
        assert_eq!(free, self.num_free, "free count drifted");
        let cached = self.has_hash.iter().filter(|&&x| x).count() as u32;
        assert_eq!(cached, self.num_cached, "cached count drifted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(v: &[u64]) -> SeqHashes<'_> {
        SeqHashes { chain: &[], own: v }
    }

    #[test]
    fn lookup_caps_at_num_tokens_minus_one() {
        // 4 blocks of 4 tokens, prompt of exactly 16 tokens: a repeat hits only 3 blocks.
        let mut kv = KvCache::new(10, 4, true, &[]);
        let hs = [11, 12, 13, 14];
        let mut a = SeqKv::new(None, 0);
        assert!(kv.allocate(&mut a, &hashes(&hs), 16, 16));
        kv.free(&mut a);
        let mut hit = Hit::default();
        let b = SeqKv::new(None, 0);
        kv.lookup(&b, &hashes(&hs), 16, &mut hit);
        assert_eq!(hit.num_blocks(), 3, "at least one token is always recomputed");
        kv.lookup(&b, &hashes(&hs), 17, &mut hit);
        assert_eq!(hit.num_blocks(), 4);
        kv.check_invariants();
    }

    #[test]
    fn reverse_order_free_evicts_tail_first() {
        // 6 usable blocks. Seq A holds 3 hashed blocks, frees them (reverse: 3,2,1 to tail).
        let mut kv = KvCache::new(7, 4, true, &[]);
        let ha = [101, 102, 103];
        let mut a = SeqKv::new(None, 0);
        assert!(kv.allocate(&mut a, &hashes(&ha), 12, 12));
        kv.free(&mut a);
        // Free queue is now 4,5,6,3,2,1 ; allocating 4 new blocks evicts block 3 (A's tail).
        let mut b = SeqKv::new(None, 0);
        assert!(kv.allocate(&mut b, &hashes(&[201, 202, 203, 204]), 16, 0));
        let mut hit = Hit::default();
        kv.lookup(&SeqKv::new(None, 0), &hashes(&ha), 13, &mut hit);
        assert_eq!(hit.num_blocks(), 2, "A's last block was evicted first, its prefix survives");
        kv.check_invariants();
    }

    #[test]
    fn touched_free_hits_count_against_capacity() {
        let mut kv = KvCache::new(5, 4, true, &[]); // 4 usable
        let h = [1, 2, 3];
        let mut a = SeqKv::new(None, 0);
        assert!(kv.allocate(&mut a, &hashes(&h), 12, 12));
        kv.free(&mut a);
        assert_eq!(kv.num_free(), 4);
        let b = SeqKv::new(None, 0);
        let mut hit = Hit::default();
        kv.lookup(&b, &hashes(&h), 13, &mut hit);
        assert_eq!(hit.num_blocks(), 3);
        // 13 tokens need 4 blocks: 1 new + 3 touched free hits = 4 <= 4.
        assert_eq!(kv.blocks_needed_for_admit(&b, &hit, 13), 4);
        assert!(kv.can_admit(&b, &hit, 13));
        // 17 tokens: 2 new + 3 touched = 5 > 4.
        assert!(!kv.can_admit(&b, &hit, 17));
    }

    #[test]
    fn sharing_across_requests_and_refcounts() {
        let mut kv = KvCache::new(20, 4, true, &[]);
        let h = [1, 2, 3];
        let mut a = SeqKv::new(None, 0);
        assert!(kv.allocate(&mut a, &hashes(&h), 14, 14));
        let mut b = SeqKv::new(None, 0);
        let mut hit = Hit::default();
        kv.lookup(&b, &hashes(&h), 14, &mut hit);
        assert_eq!(hit.num_blocks(), 3);
        kv.admit(&mut b, &hit);
        assert!(kv.allocate(&mut b, &hashes(&h), 14, 14));
        assert_eq!(b.num_blocks(), 4);
        // A and B share 3 blocks and own one each: 19 usable − 5 = 14 free.
        assert_eq!(kv.num_free(), 14);
        kv.free(&mut a);
        assert_eq!(kv.num_free(), 15, "shared blocks stay referenced by B");
        kv.free(&mut b);
        assert_eq!(kv.num_free(), 19);
        kv.check_invariants();
    }

    #[test]
    fn chain_range_holds_behave_like_per_block_counts() {
        // Chain of 5 blocks. A computes 5 chain blocks; B hits 3 of them (its prompt uses 3).
        let chain = [50, 51, 52, 53, 54];
        let mut kv = KvCache::new(12, 4, true, &[5]); // 11 usable
        let c = ChainId(0);
        let mut a = SeqKv::new(Some(c), 5);
        let ha = SeqHashes { chain: &chain, own: &[] };
        let mut hit = Hit::default();
        kv.lookup(&a, &ha, 21, &mut hit);
        assert_eq!(hit.num_blocks(), 0);
        kv.admit(&mut a, &hit);
        assert!(kv.allocate(&mut a, &ha, 21, 21));
        assert_eq!(kv.num_free(), 11 - 6);
        let mut b = SeqKv::new(Some(c), 3);
        let hb = SeqHashes { chain: &chain[..3], own: &[77] };
        kv.lookup(&b, &hb, 16, &mut hit);
        assert_eq!(hit.chain_blocks, 3);
        assert_eq!(kv.blocks_needed_for_admit(&b, &hit, 16), 1, "hits held by A are not free");
        kv.admit(&mut b, &hit);
        assert!(kv.allocate(&mut b, &hb, 16, 16));
        assert_eq!(kv.num_free(), 11 - 7);
        // A leaves: its private tail block and chain blocks 4,3 become free; 0..3 held by B.
        kv.free(&mut a);
        assert_eq!(kv.num_free(), 11 - 4);
        kv.free(&mut b);
        assert_eq!(kv.num_free(), 11);
        kv.check_invariants();
        // Free order: A's private block, chain 4, chain 3, then B's own block, chain 2, 1, 0.
        // Allocating 8 fresh blocks evicts the 4 never-used blocks... then A's tail first.
        let mut d = SeqKv::new(None, 0);
        assert!(kv.allocate(&mut d, &hashes(&[]), 4 * 6, 0)); // 6 blocks: 4 untouched + A-private + chain 4
        let e = SeqKv::new(Some(c), 5);
        kv.lookup(&e, &ha, 21, &mut hit);
        assert_eq!(hit.chain_blocks, 4, "chain block 4 was evicted, 0..4 still cached");
        kv.check_invariants();
    }
}

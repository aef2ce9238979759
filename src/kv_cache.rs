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
//! The free queue is lazy: entries are appended at the tail and checked when they reach the
//! head, instead of being unlinked from a linked list when a block is touched. A private
//! block's entry is valid while the block's `free_seq` still names it; a chain entry holds a
//! whole released range `[lo, hi)` (popped from `hi − 1` down, vLLM's reverse free order), and
//! its position `p` is valid unless the chain was touched over `p` after the entry was made —
//! touches always cover a prefix `[0, n)`, so one staircase of (n, seq) per chain answers that.
//! Touching and releasing a shared prefix is then O(1) whatever its length.
//!
//! Anonymous blocks: a block that no index holds, no KV event reports and no lookup can reach
//! (a private block of a sequence with `index_private == false`) has no observable identity,
//! only a place in the LRU order and whether it holds a cached hash (which the cached-block
//! count shows). A sequence holds such blocks as a count after its identified ones, and
//! frees them as one queue entry; allocation takes them off that entry by count. Their ids
//! wait in a spare list: a block that must be identified (indexed, chain-held) popped from an
//! anonymous entry takes a spare id, and an identified block popped for an anonymous one
//! gives its id back. A preempted sequence, which will look its own blocks up, identifies its
//! anonymous blocks before freeing them. For a workload of unique prompts this makes the pool's
//! work per request independent of its length, instead of a cache miss per block.
//!
//! Known simplifications, both about duplicates (two requests computing the same block because
//! the second looked up before the first registered it):
//! - in a shared chain, the later request *adopts* the cached copy and releases its duplicate
//!   at once, where vLLM keeps both until the request ends: the pool briefly has one more free
//!   block per duplicate than vLLM would;
//! - elsewhere, vLLM's hash→block map can hold several blocks with the same hash; here the map
//!   keeps the first, so a duplicate is found only through its owner.

use crate::content::ChainId;
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// Touches as a staircase: n strictly decreasing, seq increasing (dominated ones dropped).
    touches: Vec<(u32, u64)>,
}

impl ChainState {
    fn touch(&mut self, n: u32, seq: u64) {
        while self.touches.last().is_some_and(|&(m, _)| m <= n) {
            self.touches.pop();
        }
        self.touches.push((n, seq));
    }
    /// Positions below this were touched after `seq` (so entries older than that are stale).
    fn stale_below(&self, seq: u64) -> u32 {
        let i = self.touches.partition_point(|&(_, s)| s <= seq);
        self.touches.get(i).map_or(0, |&(n, _)| n)
    }
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
    /// Index private blocks in the hash→block map (false when the workload promises no later
    /// request contains them: they are cached, but nobody can hit them).
    pub index_private: bool,
    /// Anonymous blocks after `blocks` (see [`KvCache`]'s docs on anonymous blocks).
    anon: u32,
}

impl SeqKv {
    pub fn new(chain: Option<ChainId>, chain_blocks: u32) -> Self {
        SeqKv { chain, chain_blocks, index_private: true, ..Default::default() }
    }
    /// Like [`SeqKv::new`], reusing `buf`'s allocation for the block list (cleared).
    pub fn with_buffer(chain: Option<ChainId>, chain_blocks: u32, mut buf: Vec<BlockId>) -> Self {
        buf.clear();
        SeqKv { blocks: buf, ..SeqKv::new(chain, chain_blocks) }
    }
    /// The block list's allocation, for reuse by a later sequence (the list must be empty:
    /// call after [`KvCache::free`]).
    pub fn take_buffer(&mut self) -> Vec<BlockId> {
        debug_assert!(self.blocks.is_empty() && self.anon == 0, "buffer taken from a sequence that holds blocks");
        std::mem::take(&mut self.blocks)
    }
    /// Blocks currently held.
    pub fn num_blocks(&self) -> u32 {
        self.chain_hold + self.blocks.len() as u32 + self.anon
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
///
/// The own part may be left uncomputed (`own` empty, `own_len` > 0) for a sequence that is
/// not indexed and whose first own block no earlier request holds: nobody reads those hashes
/// (a lookup past the chain misses at its first own block), until a preemption indexes them
/// ([`KvCache::free_preempted`] needs them computed).
pub struct SeqHashes<'a> {
    pub chain: &'a [u64],
    pub own: &'a [u64],
    /// How many own hashes the sequence has (computed or not).
    pub own_len: u32,
}

impl<'a> SeqHashes<'a> {
    /// Fully computed hashes.
    pub fn new(chain: &'a [u64], own: &'a [u64]) -> Self {
        SeqHashes { chain, own, own_len: own.len() as u32 }
    }
    /// The hash at `pos`, or `None` past the end or where not computed.
    #[inline]
    pub fn get(&self, pos: u32) -> Option<u64> {
        let p = pos as usize;
        if p < self.chain.len() { Some(self.chain[p]) } else { self.own.get(p - self.chain.len()).copied() }
    }
    pub fn len(&self) -> u32 {
        self.chain.len() as u32 + self.own_len
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether every hash is computed.
    pub fn computed(&self) -> bool {
        self.own.len() as u32 == self.own_len
    }
}

/// A free-queue entry (see module docs).
#[derive(Clone, Copy, Debug)]
enum FreeEntry {
    Block {
        b: BlockId,
        seq: u64,
    },
    Chain {
        c: u32,
        lo: u32,
        hi: u32,
        seq: u64,
    },
    /// Anonymous blocks freed together: `unhashed` ones first, then `hashed` ones (cached).
    Anon {
        unhashed: u32,
        hashed: u32,
    },
}

/// KV events, recorded only when enabled (for the precise prefix-cache router).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvChange {
    Stored(u64),
    Removed(u64),
}

/// Asks the CPU to start loading `x`'s cache line (a hint; no effect on results).
#[inline]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache; the address comes from a live reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(x as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// How far ahead the LRU free queue is prefetched: little work per popped entry, so far ahead.
const QUEUE_PREFETCH_AHEAD: usize = 24;

/// How far ahead lookups and registrations prefetch index slots.
const PREFETCH_AHEAD: u32 = 8;

/// How far ahead they prefetch the block record named by an (already prefetched) slot: the
/// entry's validity check reads the block's epoch, another miss.
const VAL_PREFETCH_AHEAD: u32 = 4;

/// The hash → block index of private blocks: open addressing with linear probing over
/// 16-byte slots (hash, block, block epoch).
///
/// Why not a `HashMap`: on a coding-assistant day every request registers and later evicts
/// ~150 private blocks, and the index is far larger than the CPU caches, so each access is
/// a cache miss. Here evictions do not touch the index at all (an entry whose block epoch
/// moved on is stale and ignored; stale entries are dropped when the table is rebuilt), and
/// lookups and registrations walk known hash sequences, so they prefetch the slots a few
/// positions ahead and overlap the misses.
#[derive(Clone, Debug)]
struct HashIndex {
    slots: Vec<Slot>,
    mask: usize,
    /// Occupied slots, valid or stale.
    len: usize,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: u64,
    /// Block id, or NIL for an empty slot.
    val: u32,
    /// The block's epoch when the entry was made.
    epoch: u32,
}

const EMPTY_SLOT: Slot = Slot { key: 0, val: NIL, epoch: 0 };

impl HashIndex {
    /// Starts small (a pool of 150k blocks would need 8 MiB up front, and most runs index
    /// far fewer private blocks); rebuilds double it while valid entries fill an eighth, so
    /// that a rebuild, which reads every entry's block, follows at least 3/8 of the table in
    /// new entries.
    fn for_blocks(num_blocks: u32) -> Self {
        let cap = (4 * num_blocks as usize).next_power_of_two().clamp(16, 4096);
        HashIndex { slots: vec![EMPTY_SLOT; cap], mask: cap - 1, len: 0 }
    }
    #[inline]
    fn home(&self, h: u64) -> usize {
        // Block hashes are splitmix outputs: their low bits are uniform.
        h as usize & self.mask
    }
    #[inline]
    fn prefetch(&self, h: u64) {
        prefetch(&self.slots[self.home(h)]);
    }
    /// Second stage of [`HashIndex::prefetch`]: when `h`'s home slot names a block, starts
    /// loading that block's record.
    #[inline]
    fn prefetch_val<T>(&self, h: u64, records: &[T]) {
        let s = &self.slots[self.home(h)];
        if s.key == h && s.val != NIL {
            prefetch(&records[s.val as usize]);
        }
    }
    /// Slot holding `h`, or the empty slot where it would go.
    #[inline]
    fn find(&self, h: u64) -> Result<usize, usize> {
        let mut i = self.home(h);
        loop {
            let s = &self.slots[i];
            if s.val == NIL {
                return Err(i);
            }
            if s.key == h {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }
    /// The block indexed under `h` if its entry is still valid.
    #[inline]
    fn get<E: Epochs + ?Sized>(&self, h: u64, epochs: &E) -> Option<BlockId> {
        match self.find(h) {
            Ok(i) => {
                let s = self.slots[i];
                (epochs.epoch_of(s.val) == s.epoch).then_some(s.val)
            }
            Err(_) => None,
        }
    }
    /// Indexes `b` under `h` unless a valid entry for `h` exists (the first one is kept).
    fn insert_first<E: Epochs + ?Sized>(&mut self, h: u64, b: BlockId, epochs: &E) {
        match self.find(h) {
            Ok(i) => {
                let s = &mut self.slots[i];
                if epochs.epoch_of(s.val) != s.epoch {
                    *s = Slot { key: h, val: b, epoch: epochs.epoch_of(b) };
                }
            }
            Err(i) => {
                self.slots[i] = Slot { key: h, val: b, epoch: epochs.epoch_of(b) };
                self.len += 1;
                if 2 * self.len > self.slots.len() {
                    self.rebuild(epochs);
                }
            }
        }
    }
    /// Drops stale entries (and grows if valid ones alone fill an eighth of the table).
    fn rebuild<E: Epochs + ?Sized>(&mut self, epochs: &E) {
        let valid: Vec<Slot> =
            self.slots.iter().copied().filter(|s| s.val != NIL && epochs.epoch_of(s.val) == s.epoch).collect();
        let mut cap = self.slots.len();
        while 8 * valid.len() > cap {
            cap *= 2;
        }
        self.slots.clear();
        self.slots.resize(cap, EMPTY_SLOT);
        self.mask = cap - 1;
        self.len = 0;
        for s in valid {
            let i = self.find(s.key).expect_err("keys are unique");
            self.slots[i] = s;
            self.len += 1;
        }
    }
}

/// One block's state: 32 bytes, aligned, so that a record never straddles two cache lines
/// (allocation reads each popped block's record cold; a 40-byte record straddled half the time
/// and cost a second miss).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct BlockMeta {
    hash: u64,
    /// Sequence number of the block's valid free-queue entry (0: not in the queue).
    free_seq: u64,
    ref_cnt: u32,
    /// Chain tag of a block: (chain, position), or (NIL, _).
    tag_chain: u32,
    /// The chain position in the low 31 bits; the top bit says the block holds a cached hash.
    pos_hashed: u32,
    /// Bumped when the block's cached hash is evicted: index entries made before are stale.
    epoch: u32,
}

const HASHED: u32 = 1 << 31;
const _: () = assert!(std::mem::size_of::<BlockMeta>() == 32);

impl BlockMeta {
    #[inline]
    fn has_hash(&self) -> bool {
        self.pos_hashed & HASHED != 0
    }
    #[inline]
    fn set_has_hash(&mut self, on: bool) {
        self.pos_hashed = if on { self.pos_hashed | HASHED } else { self.pos_hashed & !HASHED };
    }
    #[inline]
    fn tag_pos(&self) -> u32 {
        self.pos_hashed & !HASHED
    }
    #[inline]
    fn set_tag_pos(&mut self, pos: u32) {
        debug_assert!(pos < HASHED, "chain position {pos} out of range");
        self.pos_hashed = (self.pos_hashed & HASHED) | pos;
    }
}

impl Default for BlockMeta {
    fn default() -> Self {
        BlockMeta { hash: 0, free_seq: 0, ref_cnt: 0, tag_chain: NIL, pos_hashed: 0, epoch: 0 }
    }
}

/// Where the hash index reads a block's current epoch.
trait Epochs {
    fn epoch_of(&self, b: BlockId) -> u32;
}

impl Epochs for [u32] {
    #[inline]
    fn epoch_of(&self, b: BlockId) -> u32 {
        self[b as usize]
    }
}

impl Epochs for [BlockMeta] {
    #[inline]
    fn epoch_of(&self, b: BlockId) -> u32 {
        self[b as usize].epoch
    }
}

pub struct KvCache {
    block_size: u32,
    num_blocks: u32,
    prefix_caching: bool,
    /// Per-block state, one record per block: allocation and eviction touch blocks in LRU
    /// order, i.e. at random ids, so each field in an array of its own cost a cache miss each.
    meta: Vec<BlockMeta>,
    queue: VecDeque<FreeEntry>,
    seq: u64,
    num_free: u32,
    num_cached: u32,
    map: HashIndex,
    chains: Vec<ChainState>,
    events: Option<Vec<KvChange>>,
    /// Ids bound to no block: one per anonymous block, held or free.
    spare_ids: Vec<BlockId>,
    /// Anonymous blocks held by sequences, and those of them that hold a cached hash (for
    /// [`KvCache::check_invariants`]).
    held_anon: u32,
    held_anon_cached: u32,
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
            meta: vec![BlockMeta::default(); n],
            queue: VecDeque::with_capacity(n),
            seq: 0,
            num_free: 0,
            num_cached: 0,
            map: HashIndex::for_blocks(if prefix_caching { num_blocks } else { 0 }),
            chains: chain_lens
                .iter()
                .map(|&l| ChainState { resident: vec![NIL; l as usize], ..Default::default() })
                .collect(),
            events: None,
            spare_ids: Vec::new(),
            held_anon: 0,
            held_anon_cached: 0,
        };
        // Initial free queue in block-id order, null block excluded.
        for b in 1..num_blocks {
            kv.push_private_free(b);
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

    #[inline]
    fn push_private_free(&mut self, b: BlockId) {
        self.seq += 1;
        self.meta[b as usize].free_seq = self.seq;
        self.queue.push_back(FreeEntry::Block { b, seq: self.seq });
        self.num_free += 1;
        self.maybe_compact();
    }
    #[inline]
    fn take_private_free(&mut self, b: BlockId) {
        debug_assert!(self.meta[b as usize].free_seq != 0, "block {b} is not free");
        self.meta[b as usize].free_seq = 0;
        self.num_free -= 1;
    }
    #[inline]
    fn release_chain_range(&mut self, c: u32, lo: u32, hi: u32) {
        self.seq += 1;
        self.queue.push_back(FreeEntry::Chain { c, lo, hi, seq: self.seq });
        self.num_free += hi - lo;
        self.maybe_compact();
    }
    fn touch_chain(&mut self, c: usize, n: u32) {
        self.seq += 1;
        let seq = self.seq;
        self.chains[c].touch(n, seq);
    }
    /// Drops stale entries once they outnumber the blocks (amortised O(1) per operation).
    #[inline]
    fn maybe_compact(&mut self) {
        if self.queue.len() > 2 * self.num_blocks as usize + 64 {
            self.compact_queue();
        }
    }
    #[cold]
    #[inline(never)]
    fn compact_queue(&mut self) {
        let (meta, chains) = (&self.meta, &self.chains);
        self.queue.retain_mut(|e| match e {
            FreeEntry::Block { b, seq } => meta[*b as usize].free_seq == *seq,
            FreeEntry::Chain { c, lo, hi, seq } => {
                *lo = (*lo).max(chains[*c as usize].stale_below(*seq));
                lo < hi
            }
            FreeEntry::Anon { .. } => true,
        });
    }

    /// Pops the LRU head, evicting its cached hash.
    ///
    /// Single-block entries here; anonymous runs and chain ranges out of line. (The whole
    /// function cost ~2 % of a coding day's instructions in register saves alone.)
    #[inline]
    fn pop_free(&mut self) -> BlockId {
        while let Some(&FreeEntry::Block { b, seq }) = self.queue.front() {
            if let Some(FreeEntry::Block { b: ahead, .. }) = self.queue.get(QUEUE_PREFETCH_AHEAD) {
                prefetch(&self.meta[*ahead as usize]);
            }
            self.queue.pop_front();
            let m = &mut self.meta[b as usize];
            if m.free_seq != seq {
                continue; // stale: the block was taken (or freed again) since
            }
            m.free_seq = 0;
            self.num_free -= 1;
            if m.has_hash() {
                if m.tag_chain == NIL && self.events.is_none() {
                    // As `evict_hash` does for an untagged block.
                    m.epoch = m.epoch.wrapping_add(1);
                    m.set_has_hash(false);
                    self.num_cached -= 1;
                } else {
                    self.evict_hash(b);
                }
            }
            return b;
        }
        self.pop_free_slow()
    }

    /// [`KvCache::pop_free`] for anonymous runs and chain ranges at the head.
    #[inline(never)]
    fn pop_free_slow(&mut self) -> BlockId {
        loop {
            if let Some(FreeEntry::Block { b, .. }) = self.queue.get(QUEUE_PREFETCH_AHEAD) {
                prefetch(&self.meta[*b as usize]);
            }
            let front = *self.queue.front().expect("pop_free on an empty free queue");
            match front {
                FreeEntry::Block { b, seq } => {
                    self.queue.pop_front();
                    if self.meta[b as usize].free_seq != seq {
                        continue;
                    }
                    self.meta[b as usize].free_seq = 0;
                    self.num_free -= 1;
                    self.evict_hash(b);
                    return b;
                }
                FreeEntry::Anon { unhashed, hashed } => {
                    // An anonymous block becomes an identified one: it takes a spare id.
                    let (u, h) = if unhashed > 0 { (unhashed - 1, hashed) } else { (0, hashed - 1) };
                    if unhashed == 0 {
                        self.evict_anon_cached(1);
                    }
                    if u + h == 0 {
                        self.queue.pop_front();
                    } else {
                        *self.queue.front_mut().expect("front") = FreeEntry::Anon { unhashed: u, hashed: h };
                    }
                    self.num_free -= 1;
                    return self.spare_ids.pop().expect("a spare id per anonymous block");
                }
                FreeEntry::Chain { c, lo, hi, seq } => {
                    if hi <= lo || hi - 1 < self.chains[c as usize].stale_below(seq) {
                        self.queue.pop_front();
                        continue;
                    }
                    let p = hi - 1;
                    if let Some(FreeEntry::Chain { hi, .. }) = self.queue.front_mut() {
                        *hi = p;
                    }
                    let b = self.chains[c as usize].resident[p as usize];
                    debug_assert!(b != NIL, "valid chain entry position {p} is not resident");
                    self.num_free -= 1;
                    self.evict_hash(b);
                    return b;
                }
            }
        }
    }

    /// Evicts the cached hashes of `n` anonymous blocks (which no index or event knows).
    #[inline]
    fn evict_anon_cached(&mut self, n: u32) {
        debug_assert!(self.events.is_none(), "anonymous blocks with KV events");
        self.num_cached -= n;
    }

    /// Pops `n` blocks off the LRU head for a sequence's anonymous blocks.
    fn take_anon(&mut self, mut n: u32) {
        while n > 0 {
            if let Some(FreeEntry::Anon { unhashed, hashed }) = self.queue.front_mut() {
                let u = n.min(*unhashed);
                let h = (n - u).min(*hashed);
                *unhashed -= u;
                *hashed -= h;
                let empty = *unhashed + *hashed == 0;
                if empty {
                    self.queue.pop_front();
                }
                self.evict_anon_cached(h);
                self.num_free -= u + h;
                n -= u + h;
            } else {
                let b = self.pop_free();
                self.spare_ids.push(b);
                n -= 1;
            }
        }
    }

    fn evict_hash(&mut self, b: BlockId) {
        let bi = b as usize;
        if self.meta[bi].has_hash() {
            let h = self.meta[bi].hash;
            let c = self.meta[bi].tag_chain;
            if c == NIL {
                // The index entry (if it names this block) goes stale; no index access here.
                self.meta[bi].epoch = self.meta[bi].epoch.wrapping_add(1);
            } else {
                // Chain-held blocks are found through their chain, not the map.
                let pos = self.meta[bi].tag_pos();
                let st = &mut self.chains[c as usize];
                st.resident[pos as usize] = NIL;
                st.resident_prefix = st.resident_prefix.min(pos);
                self.meta[bi].tag_chain = NIL;
            }
            self.meta[bi].set_has_hash(false);
            self.num_cached -= 1;
            if let Some(ev) = self.events.as_mut() {
                ev.push(KvChange::Removed(h));
            }
        }
    }

    /// The block indexed under hash `h`, if any.
    #[inline]
    fn map_get(&self, h: u64) -> Option<BlockId> {
        self.map.get(h, &self.meta[..])
    }

    /// Indexes block `b` (cached under `h`) unless another block is indexed under `h` already
    /// (vLLM's map would keep the first).
    fn index_block(&mut self, h: u64, b: BlockId) {
        self.map.insert_first(h, b, &self.meta[..]);
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
        // Own positions, read from the own hashes directly (see `register_range`). Shared
        // positions left here only without a chain state: hashed like own ones.
        let own0 = hashes.chain.len() as u32;
        while pos < cap.min(own0) {
            match self.map_get(hashes.chain[pos as usize]) {
                Some(b) => out.blocks.push(b),
                None => return,
            }
            pos += 1;
        }
        let own = hashes.own;
        while pos < cap {
            let i = (pos - own0) as usize;
            let Some(&h) = own.get(i) else {
                // Uncomputed own hashes: the first own block is a miss (see `SeqHashes`).
                debug_assert!(!hashes.computed() && !seq.index_private);
                break;
            };
            self.prefetch_ahead(own, i, pos, cap);
            match self.map_get(h) {
                Some(b) => out.blocks.push(b),
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
        let evictable_own = hit.blocks.iter().filter(|&&b| self.meta[b as usize].ref_cnt == 0).count() as u32;
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
                if n > from {
                    self.num_free -= n - from;
                    self.touch_chain(ci, n);
                }
                self.chains[ci].add_hold(n);
            }
            seq.chain_hold = n;
        }
        for &b in &hit.blocks {
            if self.meta[b as usize].ref_cnt == 0 {
                self.take_private_free(b);
            }
            self.meta[b as usize].ref_cnt += 1;
            seq.blocks.push(b);
        }
        seq.chain_frozen = seq.chain.is_some() && hit.chain_blocks == seq.chain_blocks && !hit.blocks.is_empty();
        seq.registered = hit.num_blocks();
    }

    /// Makes the sequence hold enough blocks for `total_tokens` tokens and registers blocks
    /// that will be full once `computed_after` tokens are computed. Returns false (changing
    /// nothing) when the free queue is too short.
    #[inline]
    pub fn allocate(
        &mut self,
        seq: &mut SeqKv,
        hashes: &SeqHashes<'_>,
        total_tokens: u32,
        computed_after: u32,
    ) -> bool {
        // Most calls are a decode step inside a block: nothing to take, nothing to register
        // (decided with multiplications; the general path divides twice).
        let held = seq.num_blocks();
        let bs = self.block_size as u64;
        let covered = total_tokens as u64 <= held as u64 * bs;
        let nothing_to_register = !self.prefix_caching
            || (computed_after as u64) < (seq.registered as u64 + 1) * bs
            || seq.registered >= hashes.len().min(held);
        if covered && nothing_to_register {
            return true;
        }
        self.allocate_blocks(seq, hashes, total_tokens, computed_after)
    }

    fn allocate_blocks(
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
        // Positions past the shared chain of a sequence nobody can look up are anonymous.
        let identified = if seq.index_private || self.events.is_some() {
            need
        } else {
            need.min(seq.chain_blocks.saturating_sub(seq.num_blocks()))
        };
        debug_assert!(seq.anon == 0 || identified == 0, "identified blocks after anonymous ones");
        for _ in 0..identified {
            let b = self.pop_free();
            self.meta[b as usize].ref_cnt = 1;
            seq.blocks.push(b);
        }
        if need > identified {
            self.take_anon(need - identified);
            seq.anon += need - identified;
            self.held_anon += need - identified;
        }
        if self.prefix_caching {
            let full = (computed_after / self.block_size).min(hashes.len()).min(seq.num_blocks());
            if seq.registered < full {
                self.register_range(seq, hashes, full);
            }
        }
        true
    }

    /// Registers positions `seq.registered..full`. Leading positions of the shared chain become
    /// chain-held in one batch at the end: a block computed for a position nobody cached yet
    /// becomes the chain's resident block; a position another request cached meanwhile is
    /// *adopted* (the resident copy is held instead, and the duplicate block is released).
    fn register_range(&mut self, seq: &mut SeqKv, hashes: &SeqHashes<'_>, full: u32) {
        let hold0 = seq.chain_hold;
        let mut converted = 0u32;
        let mut adopted_free = 0u32;
        let ci = seq.chain.map(|c| c.0 as usize);
        let max_other = ci.map_or(0, |ci| {
            let st = &mut self.chains[ci];
            st.remove_hold(hold0);
            let m = st.max_hold();
            st.add_hold(hold0);
            m
        });
        // Positions from `anon_start` on are anonymous blocks: registering them is counting.
        let anon_start = hold0 + seq.blocks.len() as u32;
        if full > anon_start {
            let n = full - seq.registered.max(anon_start);
            self.num_cached += n;
            self.held_anon_cached += n;
        }
        // Chain positions first, then the sequence's own ones (read from its own hashes
        // directly: most registered blocks are own blocks, and `SeqHashes::get` cost a branch
        // per read, three reads per block).
        let end = full.min(anon_start);
        // (Nothing identified to register: an anonymous sequence's usual case.)
        if seq.registered < end {
            let split = seq.chain_blocks.min(end).max(seq.registered);
            debug_assert_eq!(hashes.chain.len() as u32, seq.chain_blocks);
            for pos in seq.registered..split {
                let h = hashes.chain[pos as usize];
                // Chain-held positions are registered already, so `pos` is a private block.
                let b = seq.blocks[(pos - hold0) as usize];
                let bi = b as usize;
                if self.meta[bi].has_hash() {
                    continue; // a hit block: already cached
                }
                if !seq.chain_frozen && pos == hold0 + converted {
                    let ci = ci.expect("chain positions imply a chain");
                    let resident = self.chains[ci].resident[pos as usize];
                    if resident == NIL {
                        self.chains[ci].resident[pos as usize] = b;
                        self.meta[bi].tag_chain = ci as u32;
                        self.meta[bi].set_tag_pos(pos);
                        self.meta[bi].ref_cnt -= 1;
                        debug_assert_eq!(self.meta[bi].ref_cnt, 0);
                        converted += 1;
                    } else {
                        // Adopt the cached copy; release the duplicate (it holds no hash).
                        if pos >= max_other {
                            adopted_free += 1;
                        }
                        self.meta[bi].ref_cnt -= 1;
                        if self.meta[bi].ref_cnt == 0 {
                            self.push_private_free(b);
                        }
                        converted += 1;
                        continue;
                    }
                } else {
                    seq.chain_frozen = true;
                }
                self.store_hash(b, h, seq.index_private);
            }
            let own = hashes.own;
            let own0 = seq.chain_blocks;
            for pos in split..end {
                let i = (pos - own0) as usize;
                // (Uncomputed own hashes only occur at anonymous positions.)
                let h = *own.get(i).expect("registering a position without a hash");
                if seq.index_private {
                    self.prefetch_ahead(own, i, pos, full);
                }
                let b = seq.blocks[(pos - hold0) as usize];
                if !self.meta[b as usize].has_hash() {
                    self.store_hash(b, h, seq.index_private);
                }
            }
        }
        seq.registered = full;
        if converted > 0 {
            seq.blocks.drain(..converted as usize);
            let ci = ci.expect("converted chain blocks");
            let st = &mut self.chains[ci];
            st.remove_hold(hold0);
            seq.chain_hold = hold0 + converted;
            st.add_hold(seq.chain_hold);
            self.num_free -= adopted_free;
            self.touch_chain(ci, seq.chain_hold);
        }
    }

    /// Prefetches the index slots that the own hashes a few positions past `pos` (own index
    /// `i`) will probe, and the block records they name, for positions below `limit`.
    #[inline(always)]
    fn prefetch_ahead(&self, own: &[u64], i: usize, pos: u32, limit: u32) {
        if let Some(&ahead) = own.get(i + PREFETCH_AHEAD as usize).filter(|_| pos + PREFETCH_AHEAD < limit) {
            self.map.prefetch(ahead);
        }
        if let Some(&ahead) = own.get(i + VAL_PREFETCH_AHEAD as usize).filter(|_| pos + VAL_PREFETCH_AHEAD < limit) {
            self.map.prefetch_val(ahead, &self.meta);
        }
    }

    /// A newly computed full block `b` takes hash `h`: cached, indexed when lookups can reach
    /// it, reported to a KV-event subscriber.
    #[inline(always)]
    fn store_hash(&mut self, b: BlockId, h: u64, index_private: bool) {
        let m = &mut self.meta[b as usize];
        m.hash = h;
        m.set_has_hash(true);
        self.num_cached += 1;
        if m.tag_chain == NIL && index_private {
            self.index_block(h, b);
        }
        if let Some(ev) = self.events.as_mut() {
            ev.push(KvChange::Stored(h));
        }
    }

    /// Preemption: the sequence will look its own blocks up when it resumes, so blocks that
    /// were not indexed (`index_private == false`) are indexed now, before they are freed.
    /// `hashes` must be computed (see [`SeqHashes`]).
    pub fn free_preempted(&mut self, seq: &mut SeqKv, hashes: &SeqHashes<'_>) {
        assert!(hashes.computed(), "a preempted sequence's hashes must be computed");
        // Its anonymous blocks take spare ids (their cached hashes stay counted).
        let anon_start = seq.chain_hold + seq.blocks.len() as u32;
        for pos in anon_start..anon_start + seq.anon {
            let b = self.spare_ids.pop().expect("a spare id per anonymous block");
            let m = &mut self.meta[b as usize];
            debug_assert!(m.ref_cnt == 0 && !m.has_hash() && m.tag_chain == NIL);
            m.ref_cnt = 1;
            if pos < seq.registered {
                m.set_has_hash(true);
                self.held_anon_cached -= 1;
            }
            seq.blocks.push(b);
        }
        self.held_anon -= seq.anon;
        seq.anon = 0;
        if !seq.index_private {
            for i in 0..seq.blocks.len() {
                let b = seq.blocks[i];
                let bi = b as usize;
                if self.meta[bi].has_hash() && self.meta[bi].tag_chain == NIL {
                    let h = hashes.get(seq.chain_hold + i as u32).expect("a cached block's hash");
                    self.meta[bi].hash = h;
                    self.index_block(h, b);
                }
            }
            seq.index_private = true;
        }
        self.free(seq);
    }

    /// Releases all of a sequence's blocks in reverse order (spec §3.5.3).
    pub fn free(&mut self, seq: &mut SeqKv) {
        if seq.anon > 0 {
            // The tail first: anonymous blocks past the registered ones, then registered ones.
            let anon_start = seq.chain_hold + seq.blocks.len() as u32;
            let hashed = seq.registered.saturating_sub(anon_start).min(seq.anon);
            self.queue.push_back(FreeEntry::Anon { unhashed: seq.anon - hashed, hashed });
            self.num_free += seq.anon;
            self.held_anon -= seq.anon;
            self.held_anon_cached -= hashed;
            seq.anon = 0;
            self.maybe_compact();
        }
        while let Some(b) = seq.blocks.pop() {
            if let Some(&ahead) = seq.blocks.len().checked_sub(PREFETCH_AHEAD as usize).map(|i| &seq.blocks[i]) {
                prefetch(&self.meta[ahead as usize]);
            }
            let bi = b as usize;
            self.meta[bi].ref_cnt -= 1;
            if self.meta[bi].ref_cnt == 0 {
                self.push_private_free(b);
            }
        }
        if let Some(c) = seq.chain {
            let n = seq.chain_hold;
            if n > 0 {
                let ci = c.0 as usize;
                self.chains[ci].remove_hold(n);
                let new_max = self.chains[ci].max_hold();
                if n > new_max {
                    self.release_chain_range(c.0, new_max, n);
                }
            }
        }
        seq.chain_hold = 0;
        seq.chain_frozen = false;
        seq.registered = 0;
    }

    /// Checks the pool's invariants (tests and debug builds): the valid queue entries are
    /// exactly the free blocks, each once, none referenced.
    pub fn check_invariants(&self) {
        let mut seen = vec![false; self.num_blocks as usize];
        let mut free = 0u32;
        let (mut anon_free, mut anon_free_cached) = (0u32, 0u32);
        for e in &self.queue {
            match *e {
                FreeEntry::Anon { unhashed, hashed } => {
                    assert!(unhashed + hashed > 0, "empty anonymous entry");
                    anon_free += unhashed + hashed;
                    anon_free_cached += hashed;
                    free += unhashed + hashed;
                }
                FreeEntry::Block { b, seq } => {
                    if self.meta[b as usize].free_seq == seq {
                        assert_eq!(self.meta[b as usize].ref_cnt, 0, "free block {b} has references");
                        assert!(!seen[b as usize], "block {b} free twice");
                        seen[b as usize] = true;
                        free += 1;
                    }
                }
                FreeEntry::Chain { c, lo, hi, seq } => {
                    let st = &self.chains[c as usize];
                    for p in lo.max(st.stale_below(seq))..hi {
                        let b = st.resident[p as usize];
                        assert!(b != NIL, "chain {c} position {p} in a valid entry is not resident");
                        assert!(p >= st.max_hold(), "chain {c} position {p} is held but free");
                        assert!(!seen[b as usize], "block {b} free twice");
                        seen[b as usize] = true;
                        free += 1;
                    }
                }
            }
        }
        assert_eq!(free, self.num_free, "free count drifted");
        assert_eq!(self.spare_ids.len() as u32, anon_free + self.held_anon, "a spare id per anonymous block");
        for &b in &self.spare_ids {
            let m = &self.meta[b as usize];
            assert!(!seen[b as usize], "spare id {b} is also a free block");
            seen[b as usize] = true;
            assert!(m.ref_cnt == 0 && !m.has_hash() && m.tag_chain == NIL, "spare id {b} is in use");
        }
        let cached = self.meta.iter().filter(|m| m.has_hash()).count() as u32;
        assert_eq!(cached + anon_free_cached + self.held_anon_cached, self.num_cached, "cached count drifted");
        let mut occupied = 0;
        for sl in &self.map.slots {
            if sl.val == NIL {
                continue;
            }
            occupied += 1;
            let b = sl.val as usize;
            if self.meta[b].epoch == sl.epoch {
                assert!(
                    self.meta[b].has_hash() && self.meta[b].tag_chain == NIL,
                    "indexed block {b} holds no private hash"
                );
                assert_eq!(self.meta[b].hash, sl.key, "indexed block {b} holds another hash");
                assert_eq!(
                    self.map.get(sl.key, &self.meta[..]),
                    Some(b as u32),
                    "index entry of block {b} unreachable"
                );
            }
        }
        assert_eq!(occupied, self.map.len, "index occupancy drifted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index against a map model: first valid entry kept, stale entries invisible,
    /// rebuilds (forced by a small table) lose nothing valid.
    #[test]
    fn hash_index_keeps_first_valid_entry() {
        use crate::rng::RngStreams;
        use rand::RngExt;
        let mut rng = RngStreams::new(11).stream("hash-index", 0);
        let nb = 40usize;
        let mut ix = HashIndex::for_blocks(nb as u32);
        let mut epochs = vec![0u32; nb];
        let mut model: HashMap<u64, (u32, u32)> = HashMap::new();
        for step in 0..20_000 {
            let h = crate::rng::splitmix64(rng.random_range(0..200u64));
            let b = rng.random_range(1..nb as u32);
            if rng.random_range(0..3) == 0 {
                epochs[b as usize] += 1; // evict block b
            } else {
                ix.insert_first(h, b, &epochs[..]);
                let valid = model.get(&h).is_some_and(|&(v, e)| epochs[v as usize] == e);
                if !valid {
                    model.insert(h, (b, epochs[b as usize]));
                }
            }
            let q = crate::rng::splitmix64(rng.random_range(0..200u64));
            let want = model.get(&q).and_then(|&(v, e)| (epochs[v as usize] == e).then_some(v));
            assert_eq!(ix.get(q, &epochs[..]), want, "step {step}");
            assert!(2 * ix.len <= ix.slots.len());
        }
    }

    fn hashes(v: &[u64]) -> SeqHashes<'_> {
        SeqHashes::new(&[], v)
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
        let ha = SeqHashes::new(&chain, &[]);
        let mut hit = Hit::default();
        kv.lookup(&a, &ha, 21, &mut hit);
        assert_eq!(hit.num_blocks(), 0);
        kv.admit(&mut a, &hit);
        assert!(kv.allocate(&mut a, &ha, 21, 21));
        assert_eq!(kv.num_free(), 11 - 6);
        let mut b = SeqKv::new(Some(c), 3);
        let hb = SeqHashes::new(&chain[..3], &[77]);
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

/// Differential test against a plain per-block model of vLLM's pool (linked LRU, per-block
/// reference counts, one hash map), under random admissions, growth and frees.
#[cfg(test)]
mod reference {
    use super::*;
    use crate::rng::RngStreams;
    use rand::RngExt;

    /// The reference: vLLM's block pool written the obvious way.
    struct Naive {
        bs: u32,
        refc: Vec<u32>,
        hash: Vec<Option<u64>>,
        lru: VecDeque<u32>,
        map: HashMap<u64, u32>,
    }
    impl Naive {
        fn new(n: u32, bs: u32) -> Self {
            Naive {
                bs,
                refc: vec![0; n as usize],
                hash: vec![None; n as usize],
                lru: (1..n).collect(),
                map: HashMap::new(),
            }
        }
        fn lookup(&self, hashes: &[u64], num_tokens: u32) -> Vec<u32> {
            let cap = ((num_tokens - 1) / self.bs) as usize;
            hashes.iter().take(cap).map_while(|h| self.map.get(h).copied()).collect()
        }
        fn free_count(&self) -> u32 {
            self.lru.len() as u32
        }
        fn can_admit(&self, hit: &[u32], total: u32) -> bool {
            let ev = hit.iter().filter(|&&b| self.refc[b as usize] == 0).count() as u32;
            total.div_ceil(self.bs) - hit.len() as u32 + ev <= self.free_count()
        }
        fn touch(&mut self, hit: &[u32], blocks: &mut Vec<u32>) {
            for &b in hit {
                if self.refc[b as usize] == 0 {
                    let i = self.lru.iter().position(|&x| x == b).unwrap();
                    self.lru.remove(i);
                }
                self.refc[b as usize] += 1;
                blocks.push(b);
            }
        }
        fn allocate(
            &mut self,
            blocks: &mut Vec<u32>,
            hashes: &[u64],
            chain_blocks: u32,
            total: u32,
            computed_after: u32,
            registered: &mut u32,
        ) -> bool {
            let need = total.div_ceil(self.bs).saturating_sub(blocks.len() as u32);
            if need > self.free_count() {
                return false;
            }
            for _ in 0..need {
                let b = self.lru.pop_front().unwrap();
                if let Some(h) = self.hash[b as usize].take()
                    && self.map.get(&h) == Some(&b)
                {
                    self.map.remove(&h);
                }
                self.refc[b as usize] = 1;
                blocks.push(b);
            }
            let full = ((computed_after / self.bs) as usize).min(hashes.len()).min(blocks.len());
            while (*registered as usize) < full {
                let i = *registered as usize;
                let b = blocks[i];
                if self.hash[b as usize].is_none() {
                    let h = hashes[i];
                    match self.map.get(&h).copied() {
                        // servesim's documented deviation: chain duplicates adopt the cached copy.
                        Some(existing) if i < chain_blocks as usize => {
                            if self.refc[existing as usize] == 0 {
                                let j = self.lru.iter().position(|&x| x == existing).unwrap();
                                self.lru.remove(j);
                            }
                            self.refc[existing as usize] += 1;
                            blocks[i] = existing;
                            self.refc[b as usize] -= 1;
                            if self.refc[b as usize] == 0 {
                                self.lru.push_back(b);
                            }
                        }
                        _ => {
                            self.hash[b as usize] = Some(h);
                            self.map.entry(h).or_insert(b);
                        }
                    }
                }
                *registered += 1;
            }
            true
        }
        fn free(&mut self, blocks: &mut Vec<u32>) {
            while let Some(b) = blocks.pop() {
                self.refc[b as usize] -= 1;
                if self.refc[b as usize] == 0 {
                    self.lru.push_back(b);
                }
            }
        }
    }

    struct Seq {
        hashes: Vec<u64>,
        chain_blocks: u32,
        tokens: u32,
        kv: SeqKv,
        naive_blocks: Vec<u32>,
        naive_registered: u32,
        /// Own hashes left uncomputed (a unique, unindexed sequence).
        lazy: bool,
    }

    /// A test sequence's hash view (a function of the fields, so `kv` stays borrowable).
    fn hs_of(hashes: &[u64], chain_blocks: u32, lazy: bool) -> SeqHashes<'_> {
        let cb = chain_blocks as usize;
        let own = if lazy { &[][..] } else { &hashes[cb..] };
        SeqHashes { chain: &hashes[..cb], own, own_len: (hashes.len() - cb) as u32 }
    }

    impl Naive {
        fn cached(&self) -> u32 {
            self.hash.iter().filter(|h| h.is_some()).count() as u32
        }
    }

    #[test]
    fn matches_the_naive_pool_under_random_traffic() {
        let only: Option<u64> = std::env::var("KVREF_SEED").ok().map(|v| v.parse().unwrap());
        // Coverage: anonymous blocks held and freed, resumed sequences hitting their own blocks.
        let (mut anon_seen, mut resumed_hits) = (0u32, 0u32);
        for seed in 0..20u64 {
            if only.is_some_and(|o| o != seed) {
                continue;
            }
            let dbg = only.is_some();
            let mut rng = RngStreams::new(seed).stream("kv-ref", 0);
            let bs = 4;
            let nblocks = rng.random_range(12..60u32);
            let chain_lens = [12u32, 7];
            let chains: Vec<Vec<u64>> = chain_lens
                .iter()
                .enumerate()
                .map(|(c, &l)| (0..l as u64).map(|i| 1000 * (c as u64 + 1) + i).collect())
                .collect();
            let mut kv = KvCache::new(nblocks, bs, true, &chain_lens);
            let mut naive = Naive::new(nblocks, bs);
            let mut live: Vec<Seq> = Vec::new();
            // Preempted sequences waiting to resume (they look their own blocks up).
            let mut preempted: Vec<Seq> = Vec::new();
            let mut next_key = 1u64 << 40;
            let mut hit = Hit::default();
            for step in 0..400 {
                let op = rng.random_range(0..10);
                if dbg {
                    eprintln!("step {step} op {op} free {} live {}", kv.num_free(), live.len());
                    for (c, st) in kv.chains.iter().enumerate() {
                        eprintln!(
                            "  chain {c} resident {:?} holds {:?} touches {:?}",
                            st.resident.iter().map(|&b| if b == NIL { -1 } else { b as i64 }).collect::<Vec<_>>(),
                            st.holds,
                            st.touches
                        );
                    }
                    eprintln!("  queue {:?}", kv.queue);
                    eprintln!("  naive lru {:?}", naive.lru);
                }
                if op < 5 {
                    // New sequence: chain prefix (maybe), then private blocks (sometimes shared
                    // with an earlier private run to exercise map hits; unique ones sometimes
                    // not indexed, as anonymous blocks, with or without computed hashes), or a
                    // preempted one resuming.
                    let resumed = !preempted.is_empty() && rng.random_range(0..2) == 0;
                    let mut s = if resumed {
                        let mut s = preempted.swap_remove(rng.random_range(0..preempted.len()));
                        s.naive_registered = 0;
                        s
                    } else {
                        let (chain, cb) = if rng.random_range(0..3) > 0 {
                            let c = rng.random_range(0..2usize);
                            (Some(ChainId(c as u32)), rng.random_range(0..=chain_lens[c]))
                        } else {
                            (None, 0)
                        };
                        let mut hashes: Vec<u64> =
                            chain.map_or(vec![], |c| chains[c.0 as usize][..cb as usize].to_vec());
                        let private = rng.random_range(0..8u64);
                        let unique = rng.random_range(0..3) > 0;
                        let base = if unique { next_key } else { 7 << 40 };
                        next_key += 100;
                        let prev = hashes.last().copied().unwrap_or(0);
                        for i in 0..private {
                            // (Mixed before combining: `prev ^ (base + i)` collided across chains.)
                            hashes.push(crate::rng::splitmix64(crate::rng::splitmix64(prev).wrapping_add(base + i)));
                        }
                        let tokens = (hashes.len() as u32) * bs + rng.random_range(1..bs + 1);
                        let mut s = Seq {
                            hashes,
                            chain_blocks: cb,
                            tokens,
                            kv: SeqKv::new(chain, cb),
                            naive_blocks: vec![],
                            naive_registered: 0,
                            lazy: false,
                        };
                        if unique && rng.random_range(0..2) == 0 {
                            s.kv.index_private = false;
                            s.lazy = rng.random_range(0..2) == 0;
                        }
                        s
                    };
                    let (tokens, cb, chain) = (s.tokens, s.chain_blocks, s.kv.chain);
                    kv.lookup(&s.kv, &hs_of(&s.hashes, s.chain_blocks, s.lazy), tokens, &mut hit);
                    let nh = naive.lookup(&s.hashes, tokens);
                    if resumed && nh.len() > cb as usize {
                        resumed_hits += 1;
                    }

                    assert_eq!(hit.num_blocks() as usize, nh.len(), "seed {seed} step {step}: hit length");
                    let first = rng.random_range(1..=tokens - hit.num_blocks() * bs);
                    let total = hit.num_blocks() * bs + first;
                    let ok = kv.can_admit(&s.kv, &hit, total);
                    if dbg {
                        eprintln!(
                            "  new seq chain {:?} cb {cb} nhashes {} tokens {tokens} hit {}+{:?} naive {:?} total {total} ok {ok}",
                            chain,
                            s.hashes.len(),
                            hit.chain_blocks,
                            hit.blocks,
                            nh
                        );
                    }
                    assert_eq!(ok, naive.can_admit(&nh, total), "seed {seed} step {step}: can_admit");
                    if ok {
                        kv.admit(&mut s.kv, &hit);
                        naive.touch(&nh, &mut s.naive_blocks);
                        s.naive_registered = nh.len() as u32;
                        let hs = hs_of(&s.hashes, s.chain_blocks, s.lazy);
                        assert!(kv.allocate(&mut s.kv, &hs, total, total));
                        assert!(naive.allocate(
                            &mut s.naive_blocks,
                            &s.hashes,
                            s.chain_blocks,
                            total,
                            total,
                            &mut s.naive_registered
                        ));
                        live.push(s);
                    }
                } else if op < 8 && !live.is_empty() {
                    // Grow a live sequence.
                    let i = rng.random_range(0..live.len());
                    let s = &mut live[i];
                    let total = (s.naive_blocks.len() as u32 * bs).min(s.tokens) + rng.random_range(1..2 * bs);
                    let total = total.min(s.tokens + 2 * bs);
                    let hs = hs_of(&s.hashes, s.chain_blocks, s.lazy);
                    let a = kv.allocate(&mut s.kv, &hs, total, total.min(s.tokens));
                    let b = naive.allocate(
                        &mut s.naive_blocks,
                        &s.hashes,
                        s.chain_blocks,
                        total,
                        total.min(s.tokens),
                        &mut s.naive_registered,
                    );
                    assert_eq!(a, b, "seed {seed} step {step}: allocate");
                } else if !live.is_empty() {
                    let i = rng.random_range(0..live.len());
                    let mut s = live.swap_remove(i);
                    if rng.random_range(0..3) == 0 {
                        // Preemption: the engine computes the hashes first.
                        s.lazy = false;
                        let hs = hs_of(&s.hashes, s.chain_blocks, s.lazy);
                        kv.free_preempted(&mut s.kv, &hs);
                        naive.free(&mut s.naive_blocks);
                        preempted.push(s);
                    } else {
                        kv.free(&mut s.kv);
                        naive.free(&mut s.naive_blocks);
                    }
                }
                assert_eq!(kv.num_free(), naive.free_count(), "seed {seed} step {step}: free count");
                assert_eq!(kv.num_cached(), naive.cached(), "seed {seed} step {step}: cached count");
                anon_seen += kv.queue.iter().filter(|e| matches!(e, FreeEntry::Anon { .. })).count() as u32;
                kv.check_invariants();
                // Cached content agrees: probe every chain prefix.
                for (c, ch) in chains.iter().enumerate() {
                    let probe = SeqKv::new(Some(ChainId(c as u32)), ch.len() as u32);
                    let hs = SeqHashes::new(ch, &[]);
                    kv.lookup(&probe, &hs, ch.len() as u32 * bs + 1, &mut hit);
                    assert_eq!(
                        hit.num_blocks() as usize,
                        naive.lookup(ch, ch.len() as u32 * bs + 1).len(),
                        "seed {seed} step {step}: chain {c} cached prefix"
                    );
                }
            }
        }
        assert!(
            only.is_some() || (anon_seen > 1000 && resumed_hits > 20),
            "coverage: {anon_seen} anonymous entries, {resumed_hits} resumed hits"
        );
    }
}

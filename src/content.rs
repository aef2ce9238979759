//! Token content without text. A prompt is described as pieces of keyed token runs: token `o`
//! of a piece with key `k` starting at `s` is "token (k, s + o)". Two requests share a prefix
//! exactly when their piece lists describe the same runs, which is how shared system prompts,
//! repository contexts and multi-turn history are expressed.
//!
//! Block hashes follow vLLM's rule (full blocks only, each hash chained on the previous one),
//! with a 64-bit mixer instead of SHA-256: identical token runs give identical chains on every
//! replica. Popular prefixes are registered once in a [`ChainArena`] with their hash chain
//! precomputed, so a 30k-token repository context is hashed once per run, not per request.

use crate::rng::splitmix64;
use smallvec::SmallVec;

/// A run of keyed tokens: tokens `(key, start) .. (key, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Piece {
    pub key: u64,
    pub start: u32,
    pub len: u32,
}

/// Identifier of a shared prefix registered in a [`ChainArena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(pub u32);

/// Token content of one request's prompt: an optional shared prefix (the first `tokens`
/// tokens of a registered chain), followed by private pieces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    pub shared: Option<SharedRef>,
    pub pieces: SmallVec<[Piece; 4]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedRef {
    pub chain: ChainId,
    /// How many tokens of the chain this prompt uses (≤ the chain's length).
    pub tokens: u32,
}

/// Hash of the (empty) prefix before block 0, like vLLM's NONE_HASH.
pub const ROOT_HASH: u64 = 0x5EED_CAFE_F00D_0001;

/// Mixes one block's normalised piece list into the chain.
#[inline]
fn mix_piece(h: u64, key: u64, start: u32, len: u32) -> u64 {
    splitmix64(h ^ splitmix64(key ^ ((start as u64) << 32 | len as u64)))
}

/// Streaming block hasher: feed pieces in order, it emits one chained hash per full block.
/// Adjacent runs of the same key with contiguous offsets are merged, so the description of a
/// token sequence does not change its hashes.
pub struct BlockHasher {
    block_size: u32,
    prev: u64,
    /// Pieces of the block being filled (already merged).
    cur: SmallVec<[Piece; 4]>,
    cur_len: u32,
}

impl BlockHasher {
    pub fn new(block_size: u32) -> Self {
        Self::resume(block_size, ROOT_HASH)
    }
    /// Continue a chain after a block whose hash is `prev`, at a block boundary.
    pub fn resume(block_size: u32, prev: u64) -> Self {
        assert!(block_size > 0, "block_size must be positive");
        BlockHasher { block_size, prev, cur: SmallVec::new(), cur_len: 0 }
    }
    /// Feeds a piece; pushes the hash of every block it completes into `out`.
    pub fn push(&mut self, mut p: Piece, out: &mut Vec<u64>) {
        while p.len > 0 {
            if self.cur_len == 0 && p.len >= self.block_size {
                // Whole blocks of this one run: nothing to buffer or merge.
                let bs = self.block_size;
                let n = p.len / bs;
                out.reserve(n as usize);
                let mut h = self.prev;
                for _ in 0..n {
                    h = mix_piece(h, p.key, p.start, bs);
                    out.push(h);
                    p.start += bs;
                }
                self.prev = h;
                p.len -= n * bs;
                continue;
            }
            let room = self.block_size - self.cur_len;
            let take = room.min(p.len);
            match self.cur.last_mut() {
                Some(last) if last.key == p.key && last.start + last.len == p.start => last.len += take,
                _ => self.cur.push(Piece { key: p.key, start: p.start, len: take }),
            }
            self.cur_len += take;
            p.start += take;
            p.len -= take;
            if self.cur_len == self.block_size {
                let mut h = self.prev;
                for q in &self.cur {
                    h = mix_piece(h, q.key, q.start, q.len);
                }
                out.push(h);
                self.prev = h;
                self.cur.clear();
                self.cur_len = 0;
            }
        }
    }
    /// Tokens buffered in the incomplete last block.
    pub fn partial_tokens(&self) -> u32 {
        self.cur_len
    }
}

/// How many leading tokens two piece lists describe identically (whatever the split into
/// pieces): the blocks within that prefix have the same hashes in both.
pub fn common_prefix_tokens(a: &[Piece], b: &[Piece]) -> u64 {
    let (mut a, mut b) = (a.iter().copied().filter(|p| p.len > 0), b.iter().copied().filter(|p| p.len > 0));
    let (mut x, mut y) = (a.next(), b.next());
    let mut n = 0u64;
    while let (Some(p), Some(q)) = (x.as_mut(), y.as_mut()) {
        if p.key != q.key || p.start != q.start {
            break;
        }
        let m = p.len.min(q.len);
        n += m as u64;
        p.start += m;
        p.len -= m;
        q.start += m;
        q.len -= m;
        if p.len == 0 {
            x = a.next();
        }
        if q.len == 0 {
            y = b.next();
        }
    }
    n
}

/// Registered shared prefixes with their precomputed hash chains (one chain per block size).
#[derive(Clone, Debug, Default)]
pub struct ChainArena {
    chains: Vec<ChainEntry>,
}

#[derive(Clone, Debug)]
struct ChainEntry {
    pieces: Vec<Piece>,
    tokens: u32,
}

impl ChainArena {
    pub fn new() -> Self {
        Self::default()
    }
    /// Registers a shared prefix made of `pieces`; returns its id.
    pub fn register(&mut self, pieces: Vec<Piece>) -> ChainId {
        let tokens = pieces.iter().map(|p| p.len).sum();
        self.chains.push(ChainEntry { pieces, tokens });
        ChainId((self.chains.len() - 1) as u32)
    }
    pub fn len(&self) -> usize {
        self.chains.len()
    }
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }
    pub fn tokens(&self, c: ChainId) -> u32 {
        self.chains[c.0 as usize].tokens
    }
    pub fn pieces(&self, c: ChainId) -> &[Piece] {
        &self.chains[c.0 as usize].pieces
    }
    /// Iterates the pieces of the first `tokens` tokens of chain `c`.
    pub fn prefix_pieces(&self, c: ChainId, tokens: u32) -> impl Iterator<Item = Piece> + '_ {
        let mut left = tokens;
        self.pieces(c).iter().filter_map(move |p| {
            if left == 0 {
                return None;
            }
            let take = p.len.min(left);
            left -= take;
            Some(Piece { key: p.key, start: p.start, len: take })
        })
    }
    /// Hash chain of a whole registered chain at `block_size` (full blocks only).
    pub fn chain_hashes(&self, c: ChainId, block_size: u32) -> Vec<u64> {
        let mut h = BlockHasher::new(block_size);
        let mut out = Vec::with_capacity((self.tokens(c) / block_size) as usize);
        for p in self.pieces(c) {
            h.push(*p, &mut out);
        }
        out
    }
}

/// Precomputed chains of an arena at one block size (what a replica or router keeps).
#[derive(Clone, Debug, Default)]
pub struct ChainHashes {
    pub block_size: u32,
    pub per_chain: Vec<Vec<u64>>,
}

impl ChainHashes {
    pub fn build(arena: &ChainArena, block_size: u32) -> Self {
        let per_chain = (0..arena.len() as u32).map(|i| arena.chain_hashes(ChainId(i), block_size)).collect();
        ChainHashes { block_size, per_chain }
    }
}

impl Content {
    /// Total prompt tokens described.
    pub fn tokens(&self, _arena: &ChainArena) -> u32 {
        self.shared.map_or(0, |s| s.tokens) + self.pieces.iter().map(|p| p.len).sum::<u32>()
    }
    /// Full-block hashes of the prompt followed by `extra` pieces (e.g. generated tokens),
    /// using the arena's precomputed chain for the shared part. Appends into `out` (cleared).
    pub fn block_hashes(&self, arena: &ChainArena, chains: &ChainHashes, extra: &[Piece], out: &mut Vec<u64>) {
        self.hashes_impl(arena, chains, extra, out, true, usize::MAX)
    }
    /// The first `limit` hashes of [`Content::block_hashes`] (fewer if the content is
    /// shorter), without hashing what lies beyond: a router that looks at a bounded prefix
    /// of a long prompt pays for that prefix only.
    pub fn block_hashes_upto(
        &self,
        arena: &ChainArena,
        chains: &ChainHashes,
        extra: &[Piece],
        limit: usize,
        out: &mut Vec<u64>,
    ) {
        self.hashes_impl(arena, chains, extra, out, true, limit);
        out.truncate(limit);
    }
    /// Like [`Content::block_hashes`] but without the shared chain's full blocks: `out`
    /// starts at block `shared_full_blocks(block_size)` (what the engine stores per request).
    pub fn own_block_hashes(&self, arena: &ChainArena, chains: &ChainHashes, extra: &[Piece], out: &mut Vec<u64>) {
        self.hashes_impl(arena, chains, extra, out, false, usize::MAX)
    }
    /// [`Content::own_block_hashes`] when `out` already holds the first `keep` of them (taken
    /// from an earlier request whose tokens this one repeats up to there): only the blocks
    /// after those are hashed. `keep` must not exceed the own full blocks of this content.
    pub fn own_block_hashes_after(
        &self,
        arena: &ChainArena,
        chains: &ChainHashes,
        extra: &[Piece],
        keep: usize,
        out: &mut Vec<u64>,
    ) {
        if keep == 0 || out.len() < keep {
            return self.own_block_hashes(arena, chains, extra, out);
        }
        out.truncate(keep);
        let bs = chains.block_size;
        // The kept blocks end past the shared part (they follow its full blocks, and its
        // partial block is in the first of them), so only private tokens are skipped.
        let end = (self.shared_full_blocks(bs) as u64 + keep as u64) * bs as u64;
        let mut skip = end - self.shared.map_or(0, |s| s.tokens) as u64;
        let mut h = BlockHasher::resume(bs, out[keep - 1]);
        for p in self.pieces.iter().chain(extra) {
            if skip >= p.len as u64 {
                skip -= p.len as u64;
                continue;
            }
            let s = skip as u32;
            h.push(Piece { key: p.key, start: p.start + s, len: p.len - s }, out);
            skip = 0;
        }
    }
    /// Full blocks of this prompt that come entirely from its shared chain.
    pub fn shared_full_blocks(&self, block_size: u32) -> u32 {
        self.shared.map_or(0, |s| s.tokens / block_size)
    }
    /// How many hashes [`Content::own_block_hashes`] gives with `extra_tokens` tokens of extra
    /// pieces, without hashing: the engine needs the count of a request it hashes only if it is
    /// preempted.
    pub fn own_full_blocks(&self, extra_tokens: u32, block_size: u32) -> u32 {
        let total = self.shared.map_or(0, |s| s.tokens) as u64
            + self.pieces.iter().map(|p| p.len as u64).sum::<u64>()
            + extra_tokens as u64;
        (total / block_size as u64) as u32 - self.shared_full_blocks(block_size)
    }
    fn hashes_impl(
        &self,
        arena: &ChainArena,
        chains: &ChainHashes,
        extra: &[Piece],
        out: &mut Vec<u64>,
        with_shared: bool,
        limit: usize,
    ) {
        out.clear();
        let bs = chains.block_size;
        let mut hasher = match self.shared {
            Some(s) => {
                let full = (s.tokens / bs) as usize;
                let chain = &chains.per_chain[s.chain.0 as usize];
                if with_shared {
                    out.extend_from_slice(&chain[..full.min(limit)]);
                    if out.len() >= limit {
                        return;
                    }
                }
                let prev = if full == 0 { ROOT_HASH } else { chain[full - 1] };
                let mut h = BlockHasher::resume(bs, prev);
                // Feed the partial block of the shared part (tokens after the last full block).
                let skip = full as u32 * bs;
                let mut pos = 0u32;
                for p in arena.prefix_pieces(s.chain, s.tokens) {
                    let end = pos + p.len;
                    if end > skip {
                        let cut = skip.saturating_sub(pos);
                        h.push(Piece { key: p.key, start: p.start + cut, len: p.len - cut }, out);
                    }
                    pos = end;
                }
                h
            }
            None => BlockHasher::new(bs),
        };
        for p in self.pieces.iter().chain(extra.iter()) {
            if out.len() >= limit {
                return;
            }
            hasher.push(*p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes_of(pieces: &[Piece], bs: u32) -> Vec<u64> {
        let mut h = BlockHasher::new(bs);
        let mut out = vec![];
        for p in pieces {
            h.push(*p, &mut out);
        }
        out
    }

    #[test]
    fn split_description_hashes_the_same() {
        let a = hashes_of(&[Piece { key: 7, start: 0, len: 40 }], 16);
        let b = hashes_of(&[Piece { key: 7, start: 0, len: 10 }, Piece { key: 7, start: 10, len: 30 }], 16);
        assert_eq!(a.len(), 2);
        assert_eq!(a, b);
        let c = hashes_of(&[Piece { key: 8, start: 0, len: 40 }], 16);
        assert_ne!(a[0], c[0]);
    }

    #[test]
    fn whole_block_runs_hash_like_single_tokens() {
        // Long runs take the unbuffered path for their whole blocks; fed one token at a time
        // every block is assembled in the buffer. Both must give the same chain, wherever the
        // runs start relative to block boundaries.
        let mut x = 99u64;
        for bs in [1u32, 3, 16, 32] {
            let mut pieces = Vec::new();
            for i in 0..60u64 {
                x = splitmix64(x);
                let len = (x % 90) as u32;
                let p = match pieces.last() {
                    // Continuing the previous run (merged inside a block).
                    Some(&Piece { key, start, len: l }) if i % 4 == 1 => Piece { key, start: start + l, len },
                    _ => Piece { key: if i % 3 == 0 { 5 } else { 100 + i }, start: (x >> 40) as u32 % 1000, len },
                };
                pieces.push(p);
            }
            let tokens: Vec<Piece> = pieces
                .iter()
                .flat_map(|p| (0..p.len).map(move |o| Piece { key: p.key, start: p.start + o, len: 1 }))
                .collect();
            let a = hashes_of(&pieces, bs);
            assert_eq!(a.len() as u32, pieces.iter().map(|p| p.len).sum::<u32>() / bs);
            assert_eq!(a, hashes_of(&tokens, bs), "block size {bs}");
        }
    }

    #[test]
    fn common_prefix_ignores_the_split_into_pieces() {
        let p = |key, start, len| Piece { key, start, len };
        assert_eq!(common_prefix_tokens(&[p(1, 0, 10), p(2, 0, 5)], &[p(1, 0, 4), p(1, 4, 6), p(2, 0, 9)]), 15);
        assert_eq!(common_prefix_tokens(&[p(1, 0, 10), p(2, 0, 5)], &[p(1, 0, 10), p(2, 1, 5)]), 10);
        assert_eq!(common_prefix_tokens(&[p(1, 0, 10)], &[p(1, 0, 0), p(1, 0, 3), p(3, 0, 3)]), 3);
        assert_eq!(common_prefix_tokens(&[p(1, 0, 10)], &[p(2, 0, 10)]), 0);
        assert_eq!(common_prefix_tokens(&[], &[p(2, 0, 10)]), 0);
    }

    #[test]
    fn hashing_after_kept_blocks_equals_hashing_all() {
        // A conversation: each request repeats the previous prompt and answer, then asks more;
        // sometimes the history is cut or the file changes. Reusing the previous request's own
        // hashes over the common prefix gives exactly the hashes computed from scratch.
        let mut arena = ChainArena::new();
        let c = arena.register(vec![Piece { key: 1, start: 0, len: 203 }]);
        let mut x = 5u64;
        for bs in [1u32, 4, 16, 32] {
            let ch = ChainHashes::build(&arena, bs);
            let mut prev: Option<(Vec<Piece>, Vec<u64>)> = None;
            let mut history: Vec<Piece> = Vec::new();
            let mut reused = 0;
            for i in 0..200u64 {
                x = splitmix64(x);
                if x % 5 == 0 {
                    history.clear();
                }
                let file = Piece { key: 50 + (i / 7), start: 0, len: 30 + (x >> 20) as u32 % 50 };
                let question = Piece { key: 1000 + i, start: 0, len: 1 + (x >> 30) as u32 % 40 };
                let answer = Piece { key: 5000 + i, start: 0, len: 1 + (x >> 40) as u32 % 40 };
                let mut pieces: smallvec::SmallVec<[Piece; 4]> = smallvec::smallvec![file];
                pieces.extend(history.iter().copied());
                pieces.push(question);
                let content = Content { shared: Some(SharedRef { chain: c, tokens: 150 }), pieces };
                let mut want = vec![];
                content.own_block_hashes(&arena, &ch, &[answer], &mut want);
                let mut got = vec![];
                let mut keep = 0;
                if let Some((pp, ph)) = &prev {
                    let mut now: Vec<Piece> = content.pieces.to_vec();
                    now.push(answer);
                    let shared = content.shared.unwrap().tokens as u64;
                    let common = common_prefix_tokens(pp, &now);
                    let full = ((shared + common) / bs as u64) as usize - content.shared_full_blocks(bs) as usize;
                    keep = full.min(ph.len());
                    got.extend_from_slice(&ph[..keep]);
                }
                content.own_block_hashes_after(&arena, &ch, &[answer], keep, &mut got);
                assert_eq!(got, want, "block size {bs}, request {i}, {keep} kept");
                reused += keep;
                // The next request of the conversation sees this one's prompt and answer.
                let mut all: Vec<Piece> = content.pieces.to_vec();
                all.push(answer);
                prev = Some((all, want));
                history.extend([question, answer]);
            }
            assert!(reused > 200, "block size {bs}: the test reuses hashes ({reused})");
        }
    }

    #[test]
    fn chain_depends_on_prefix() {
        let a = hashes_of(&[Piece { key: 1, start: 0, len: 16 }, Piece { key: 9, start: 0, len: 16 }], 16);
        let b = hashes_of(&[Piece { key: 2, start: 0, len: 16 }, Piece { key: 9, start: 0, len: 16 }], 16);
        assert_ne!(a[1], b[1], "same block content after a different prefix must hash differently");
    }

    #[test]
    fn shared_chain_plus_private_equals_flat_description() {
        let mut arena = ChainArena::new();
        let c = arena.register(vec![Piece { key: 1, start: 0, len: 50 }]);
        let ch = ChainHashes::build(&arena, 16);
        let content = Content {
            shared: Some(SharedRef { chain: c, tokens: 45 }),
            pieces: smallvec::smallvec![Piece { key: 3, start: 0, len: 30 }],
        };
        let mut out = vec![];
        content.block_hashes(&arena, &ch, &[], &mut out);
        let mut own = vec![];
        content.own_block_hashes(&arena, &ch, &[], &mut own);
        assert_eq!(&out[content.shared_full_blocks(16) as usize..], &own[..]);
        let flat = hashes_of(&[Piece { key: 1, start: 0, len: 45 }, Piece { key: 3, start: 0, len: 30 }], 16);
        assert_eq!(out, flat);
        assert_eq!(out.len(), 75 / 16);
        assert_eq!(content.tokens(&arena), 75);
    }

    #[test]
    fn own_full_blocks_counts_own_block_hashes() {
        let mut arena = ChainArena::new();
        let c = arena.register(vec![Piece { key: 1, start: 0, len: 50 }]);
        let mut out = vec![];
        for bs in [1, 4, 16, 32] {
            let ch = ChainHashes::build(&arena, bs);
            for shared in [None, Some(0), Some(32), Some(45), Some(50)] {
                for (own, extra) in [(0, 0), (30, 0), (30, 9), (3, 13), (0, 77)] {
                    let content = Content {
                        shared: shared.map(|tokens| SharedRef { chain: c, tokens }),
                        pieces: smallvec::smallvec![Piece { key: 3, start: 0, len: own }],
                    };
                    let ex = [Piece { key: 5, start: 0, len: extra }];
                    content.own_block_hashes(&arena, &ch, &ex, &mut out);
                    assert_eq!(
                        content.own_full_blocks(extra, bs),
                        out.len() as u32,
                        "bs {bs} {shared:?} {own} {extra}"
                    );
                }
            }
        }
        // Hand-computed: 45 shared tokens (2 full blocks of 16) + 30 + 9 = 84 tokens = 5 blocks.
        let content = Content {
            shared: Some(SharedRef { chain: c, tokens: 45 }),
            pieces: smallvec::smallvec![Piece { key: 3, start: 0, len: 30 }],
        };
        assert_eq!(content.own_full_blocks(9, 16), 3);
    }

    #[test]
    fn bounded_hashes_are_a_prefix_of_the_full_ones() {
        let mut arena = ChainArena::new();
        let c = arena.register(vec![Piece { key: 1, start: 0, len: 50 }]);
        let ch = ChainHashes::build(&arena, 16);
        let content = Content {
            shared: Some(SharedRef { chain: c, tokens: 45 }),
            pieces: smallvec::smallvec![Piece { key: 3, start: 0, len: 30 }, Piece { key: 4, start: 0, len: 40 }],
        };
        let extra = [Piece { key: 5, start: 0, len: 9 }];
        let mut full = vec![];
        content.block_hashes(&arena, &ch, &extra, &mut full);
        assert_eq!(full.len(), 124 / 16);
        let mut out = vec![];
        for limit in 0..=full.len() + 2 {
            content.block_hashes_upto(&arena, &ch, &extra, limit, &mut out);
            assert_eq!(out[..], full[..limit.min(full.len())], "limit {limit}");
        }
    }
}

//! Token-accurate prompts: the workload describes prompts as keyed token runs
//! ([`crate::content`]); live mode turns token `(key, offset)` into a token id in
//! `[FIRST_ID, vocab)` with a fixed hash, and sends the id list as the completions `prompt`.
//! Identical runs (a shared system prompt, a repository context, a conversation's history)
//! therefore reach the server as identical token sequences, whatever request carries them,
//! and the server's prefix cache sees exactly the sharing the simulator models.

use crate::content::{ChainArena, Content, Piece};
use crate::rng::splitmix64;

/// Ids below this are left to special tokens (the tiny-llama tokenizer uses 0–7).
pub const FIRST_ID: u32 = 8;

/// Id of token `(key, offset)` for a vocabulary of `vocab` ids (`vocab > FIRST_ID`).
#[inline]
pub fn token_id(key: u64, offset: u32, vocab: u32) -> u32 {
    debug_assert!(vocab > FIRST_ID);
    let h = splitmix64(key ^ splitmix64(offset as u64 ^ 0x70C3_11D5_0000_0000));
    FIRST_ID + ((h as u128 * (vocab - FIRST_ID) as u128) >> 64) as u32
}

/// The prompt's pieces in order: the shared prefix's (from the arena), then the request's own.
pub fn prompt_pieces(content: &Content, arena: &ChainArena) -> Vec<Piece> {
    let mut v = Vec::with_capacity(content.pieces.len() + 4);
    if let Some(s) = content.shared {
        v.extend(arena.prefix_pieces(s.chain, s.tokens));
    }
    v.extend(content.pieces.iter().copied());
    v
}

/// Number of tokens the pieces describe.
pub fn count(pieces: &[Piece]) -> u32 {
    pieces.iter().map(|p| p.len).sum()
}

/// Token ids the server generated for earlier answers, by the answer's content key
/// (`output_key`). A multi-turn client resends the answer it received as history; sending
/// the key's hashed stand-ins instead would make the server miss its own cached answer blocks
/// (the simulator assumes the history is what was generated, as in a real chat).
#[derive(Clone, Debug, Default)]
pub struct Answers(pub Vec<(u64, std::sync::Arc<Vec<u32>>)>);

impl Answers {
    /// Id of token `(key, offset)`: the recorded answer's where there is one.
    #[inline]
    pub fn id(&self, key: u64, offset: u32, vocab: u32) -> u32 {
        for (k, ids) in &self.0 {
            if *k == key
                && let Some(&id) = ids.get(offset as usize)
            {
                return id;
            }
        }
        token_id(key, offset, vocab)
    }
}

/// Appends the prompt as a JSON array of ids (`[12,345,...]`) to `out`.
pub fn write_ids_json(pieces: &[Piece], vocab: u32, out: &mut Vec<u8>) {
    write_ids_json_with(pieces, vocab, &Answers::default(), out)
}

/// [`write_ids_json`] with earlier answers' generated ids in place of their stand-ins.
pub fn write_ids_json_with(pieces: &[Piece], vocab: u32, answers: &Answers, out: &mut Vec<u8>) {
    out.push(b'[');
    let mut first = true;
    let mut buf = itoa::Buffer::new();
    for p in pieces {
        let recorded = answers.0.iter().any(|(k, _)| *k == p.key);
        for o in p.start..p.start + p.len {
            if !first {
                out.push(b',');
            }
            first = false;
            let id = if recorded { answers.id(p.key, o, vocab) } else { token_id(p.key, o, vocab) };
            out.extend_from_slice(buf.format(id).as_bytes());
        }
    }
    out.push(b']');
}

/// The ids as a vector (tests, chat rendering).
pub fn ids(pieces: &[Piece], vocab: u32) -> Vec<u32> {
    pieces.iter().flat_map(|p| (p.start..p.start + p.len).map(move |o| token_id(p.key, o, vocab))).collect()
}

/// Text stand-in for chat endpoints (which take no token ids): one short word per token
/// (`w123`), deterministic like the ids. Not token-accurate: the server's tokenizer decides the
/// count, which is read back from `usage.prompt_tokens`.
pub fn write_words_json_string(pieces: &[Piece], vocab: u32, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut first = true;
    let mut buf = itoa::Buffer::new();
    for p in pieces {
        for o in p.start..p.start + p.len {
            if !first {
                out.push(b' ');
            }
            first = false;
            out.push(b'w');
            out.extend_from_slice(buf.format(token_id(p.key, o, vocab)).as_bytes());
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    #[test]
    fn ids_are_in_range_deterministic_and_follow_runs() {
        for v in [9u32, 100, 4096, 128_256] {
            for k in 0..50u64 {
                for o in 0..50 {
                    let id = token_id(k, o, v);
                    assert!((FIRST_ID..v).contains(&id));
                    assert_eq!(id, token_id(k, o, v));
                }
            }
        }
        // Same run described differently → same ids.
        let a = [Piece { key: 7, start: 0, len: 10 }];
        let b = [Piece { key: 7, start: 0, len: 4 }, Piece { key: 7, start: 4, len: 6 }];
        assert_eq!(ids(&a, 4096), ids(&b, 4096));
        // Spread: 4096 ids from 2000 draws hit many distinct values.
        let many = ids(&[Piece { key: 1, start: 0, len: 2000 }], 4096);
        let distinct: std::collections::HashSet<_> = many.iter().collect();
        assert!(distinct.len() > 1500, "{}", distinct.len());
    }

    #[test]
    fn shared_prefix_gives_identical_leading_ids_and_json() {
        let mut arena = ChainArena::new();
        let chain = arena.register(vec![Piece { key: 99, start: 0, len: 40 }]);
        let mk = |k| Content {
            shared: Some(crate::content::SharedRef { chain, tokens: 40 }),
            pieces: smallvec![Piece { key: k, start: 0, len: 5 }],
        };
        let (p1, p2) = (prompt_pieces(&mk(1), &arena), prompt_pieces(&mk(2), &arena));
        assert_eq!(count(&p1), 45);
        let (i1, i2) = (ids(&p1, 4096), ids(&p2, 4096));
        assert_eq!(i1[..40], i2[..40]);
        assert_ne!(i1[40..], i2[40..]);
        let mut j = vec![];
        write_ids_json(&p1, 4096, &mut j);
        let back: Vec<u32> = serde_json::from_slice(&j).unwrap();
        assert_eq!(back, i1);
        let mut w = vec![];
        write_words_json_string(&p1[..1], 4096, &mut w);
        let s: String = serde_json::from_slice(&w).unwrap();
        assert_eq!(s.split(' ').count(), 40);
    }
}

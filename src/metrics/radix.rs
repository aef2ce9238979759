//! Least-significant-digit radix sort on a `u64` key, for the two big sorts of a summary: the
//! pooled ITL samples (one per engine step, ~10 M in a day) and each latency population (one
//! per request). A comparison sort spent ~20 compares per element there, most of them
//! mispredicted branches; a radix sort moves each element once per 11-bit digit of the key that varies.
//!
//! Elements with equal keys may come out in any order. Both callers only read sums and ranks
//! of the sorted keys, so the result is the same as with any other sort.

/// Below this length a comparison sort is faster than the histograms.
const SMALL: usize = 512;
/// Bits per digit: a 64-bit key takes six passes, a 32-bit one three; a histogram (16 KiB)
/// stays in the L2 cache.
const DIGIT_BITS: u32 = 11;
const RADIX: usize = 1 << DIGIT_BITS;

/// Sorts `v` ascending by `key`, using `scratch` as the second buffer (its contents are lost).
pub fn sort_by_u64_key<T: Copy>(v: &mut Vec<T>, scratch: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    let n = v.len();
    if n < SMALL {
        v.sort_unstable_by_key(|x| key(x));
        return;
    }
    // Digits above the highest set bit of every key are zero: no histogram, no pass.
    let bits = v.iter().fold(0u64, |a, x| a | key(x));
    let digits = (64 - bits.leading_zeros()).div_ceil(DIGIT_BITS) as usize;
    // One pass for the histograms of the other digits.
    let mut counts = vec![[0usize; RADIX]; digits];
    for x in v.iter() {
        let k = key(x);
        for (d, c) in counts.iter_mut().enumerate() {
            c[digit(k, d)] += 1;
        }
    }
    scratch.clear();
    scratch.resize(n, v[0]);
    for (d, c) in counts.iter().enumerate() {
        // A digit that is the same in every key leaves the order as it is.
        if c.contains(&n) {
            continue;
        }
        let mut next = [0usize; RADIX];
        let mut sum = 0;
        for (b, &cnt) in c.iter().enumerate() {
            next[b] = sum;
            sum += cnt;
        }
        for x in v.iter() {
            let b = digit(key(x), d);
            scratch[next[b]] = *x;
            next[b] += 1;
        }
        std::mem::swap(v, scratch);
    }
}

/// Digit `d` (least significant first) of key `k`.
#[inline]
fn digit(k: u64, d: usize) -> usize {
    ((k >> (DIGIT_BITS as usize * d)) & (RADIX as u64 - 1)) as usize
}

/// The key that orders `f64`s as [`f64::total_cmp`] does, as an unsigned integer.
#[inline]
pub fn f64_order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    // Negative numbers: every bit flipped (larger magnitude first); others: the sign bit set.
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(x: &mut u64) -> u64 {
        *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *x >> 11
    }

    #[test]
    fn sorts_pairs_like_a_comparison_sort() {
        let mut x = 7u64;
        for (n, bits) in [(0usize, 8u32), (1, 8), (300, 40), (511, 20), (512, 20), (5000, 10), (20000, 53), (40000, 33)]
        {
            let v: Vec<(u64, u64)> = (0..n).map(|i| (lcg(&mut x) >> (53 - bits.min(53)), i as u64)).collect();
            let mut got = v.clone();
            let mut scratch = Vec::new();
            sort_by_u64_key(&mut got, &mut scratch, |p| p.0);
            let mut want = v.clone();
            want.sort_unstable_by_key(|p| p.0);
            let keys = |s: &[(u64, u64)]| s.iter().map(|p| p.0).collect::<Vec<_>>();
            assert_eq!(keys(&got), keys(&want), "n = {n}, {bits}-bit keys");
            // A permutation of the input: same multiset of (key, payload).
            let mut a = got.clone();
            a.sort_unstable();
            let mut b = v.clone();
            b.sort_unstable();
            assert_eq!(a, b, "n = {n}");
        }
    }

    #[test]
    fn sorts_keys_that_differ_only_in_the_top_digit() {
        let mut v: Vec<u64> = (0..2000u64).map(|i| ((i * 37) % 256) << 56).collect();
        let mut s = Vec::new();
        sort_by_u64_key(&mut v, &mut s, |&k| k);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(v[0], 0);
        assert_eq!(v[1999], 255 << 56);
    }

    #[test]
    fn float_key_orders_like_total_cmp() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -1e-300,
            -0.0,
            0.0,
            1e-310,
            1e-300,
            0.5,
            1.0,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(f64_order_key(w[0]) < f64_order_key(w[1]), "{} vs {}", w[0], w[1]);
            assert_eq!(w[0].total_cmp(&w[1]), std::cmp::Ordering::Less);
        }
        let mut x = 3u64;
        let mut v: Vec<f64> = (0..3000)
            .map(|_| (lcg(&mut x) as f64 / (1u64 << 53) as f64 - 0.3) * 10f64.powi((lcg(&mut x) % 9) as i32 - 4))
            .collect();
        let mut want = v.clone();
        want.sort_unstable_by(f64::total_cmp);
        let mut s = Vec::new();
        sort_by_u64_key(&mut v, &mut s, |&f| f64_order_key(f));
        assert_eq!(
            v.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
    }
}

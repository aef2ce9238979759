//! Pickers (spec §1.9). All randomness comes from the router's seeded stream.

use crate::rng::SimRng;
use rand::RngExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Picker {
    /// `max-score-picker`: upstream shuffles uniformly then stable-sorts by score, i.e. a
    /// uniform choice among the top-scored endpoints; implemented directly as that choice.
    MaxScore,
    /// `random-picker`: uniform.
    Random,
    /// `weighted-random-picker`: A-Res, key = U^(1/score) (score 0 → key 0), largest key
    /// wins; all scores 0 → uniform.
    WeightedRandom,
}

impl Picker {
    /// Returns a position in `scores` (one total per filtered endpoint; non-empty).
    pub fn pick(self, scores: &[f64], rng: &mut SimRng) -> usize {
        let n = scores.len();
        debug_assert!(n > 0);
        if n == 1 {
            return 0;
        }
        match self {
            Picker::Random => rng.random_range(0..n),
            Picker::MaxScore => {
                let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let ties = scores.iter().filter(|&&s| s == mx).count();
                if ties <= 1 {
                    return scores.iter().position(|&s| s == mx).unwrap_or(0);
                }
                let k = rng.random_range(0..ties);
                scores.iter().enumerate().filter(|(_, s)| **s == mx).nth(k).unwrap().0
            }
            Picker::WeightedRandom => {
                if scores.iter().all(|&s| s <= 0.0) {
                    return rng.random_range(0..n);
                }
                let mut best = (0usize, -1.0f64);
                for (i, &s) in scores.iter().enumerate() {
                    let key = if s > 0.0 { rng.random::<f64>().powf(1.0 / s) } else { 0.0 };
                    if key > best.1 {
                        best = (i, key);
                    }
                }
                best.0
            }
        }
    }
}

//! Token-length distributions. Each sample is an integer number of tokens within the bounds
//! checked at construction, so consumers never see a length below the field's minimum (1 for
//! prompts, outputs, turns; 0 allowed for optional parts such as a file context).

use super::WorkloadError;
use super::config::LengthConfig;
use super::fmt_num;
use crate::rng::SimRng;
use rand::RngExt;
use rand_distr::{Distribution, LogNormal};
use std::path::{Path, PathBuf};

/// Default clamp bounds of the log-normal distribution.
pub const LOGNORMAL_DEFAULT_MIN: u32 = 1;
pub const LOGNORMAL_DEFAULT_MAX: u32 = 1_000_000;

/// A validated, ready-to-sample length distribution.
#[derive(Clone, Debug)]
pub enum LengthDist {
    Fixed(u32),
    /// Uniform over the inclusive range.
    Uniform {
        min: u32,
        max: u32,
    },
    /// `exp(N(mu, sigma))`, rounded and clamped to `[min, max]`; `mean` is the configured one.
    Lognormal {
        dist: LogNormal<f64>,
        mean: f64,
        min: u32,
        max: u32,
    },
    /// Uniform choice among the lengths of a file.
    Empirical {
        values: Vec<u32>,
        mean: f64,
    },
}

impl LengthDist {
    /// Validates `cfg` for the field `field` (a path below `workload`, used in errors);
    /// every possible sample is ≥ `min_allowed`. Empirical files are read relative to `base_dir`.
    pub fn new(cfg: &LengthConfig, field: &str, base_dir: &Path, min_allowed: u32) -> Result<Self, WorkloadError> {
        let low = |what: &str, v: u32| {
            WorkloadError::invalid(format!("{field}.{what}"), format!("must be at least {min_allowed} (got {v})"))
        };
        match cfg {
            LengthConfig::Fixed(f) => {
                if f.tokens < min_allowed {
                    return Err(low("tokens", f.tokens));
                }
                Ok(LengthDist::Fixed(f.tokens))
            }
            LengthConfig::Uniform(u) => {
                if u.min < min_allowed {
                    return Err(low("min", u.min));
                }
                if u.max < u.min {
                    return Err(WorkloadError::invalid(
                        format!("{field}.max"),
                        format!("must be at least min ({} < {})", u.max, u.min),
                    ));
                }
                Ok(LengthDist::Uniform { min: u.min, max: u.max })
            }
            LengthConfig::Lognormal(l) => {
                if !(l.mean.is_finite() && l.mean > 0.0) {
                    return Err(WorkloadError::invalid(
                        format!("{field}.mean"),
                        format!("must be a finite number > 0 (got {})", l.mean),
                    ));
                }
                if !(l.sigma.is_finite() && l.sigma >= 0.0) {
                    return Err(WorkloadError::invalid(
                        format!("{field}.sigma"),
                        format!("must be a finite number ≥ 0 (got {})", l.sigma),
                    ));
                }
                let min = l.min.unwrap_or(LOGNORMAL_DEFAULT_MIN.max(min_allowed));
                let max = l.max.unwrap_or(LOGNORMAL_DEFAULT_MAX.max(min));
                if min < min_allowed {
                    return Err(low("min", min));
                }
                if max < min {
                    return Err(WorkloadError::invalid(
                        format!("{field}.max"),
                        format!("must be at least min ({max} < {min})"),
                    ));
                }
                let mu = l.mean.ln() - l.sigma * l.sigma / 2.0;
                let dist = LogNormal::new(mu, l.sigma)
                    .map_err(|e| WorkloadError::invalid(field.to_string(), format!("invalid log-normal: {e}")))?;
                Ok(LengthDist::Lognormal { dist, mean: l.mean, min, max })
            }
            LengthConfig::Empirical(e) => {
                let path = resolve(base_dir, &e.file);
                let text = std::fs::read_to_string(&path).map_err(|source| WorkloadError::Io {
                    field: format!("{field}.file"),
                    path: path.clone(),
                    source,
                })?;
                let values = parse_lengths(&text, &path, &format!("{field}.file"), min_allowed)?;
                let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
                Ok(LengthDist::Empirical { values, mean })
            }
        }
    }

    #[inline]
    pub fn sample(&self, rng: &mut SimRng) -> u32 {
        match self {
            LengthDist::Fixed(v) => *v,
            LengthDist::Uniform { min, max } => rng.random_range(*min..=*max),
            LengthDist::Lognormal { dist, min, max, .. } => {
                let x: f64 = dist.sample(rng).round();
                // NaN cannot occur (finite parameters); `as` saturates huge values.
                (x.min(u32::MAX as f64) as u32).clamp(*min, *max)
            }
            LengthDist::Empirical { values, .. } => values[rng.random_range(0..values.len())],
        }
    }

    /// Nominal mean (the configured mean for the log-normal, ignoring clamping).
    pub fn mean(&self) -> f64 {
        match self {
            LengthDist::Fixed(v) => *v as f64,
            LengthDist::Uniform { min, max } => (*min as f64 + *max as f64) / 2.0,
            LengthDist::Lognormal { mean, .. } => *mean,
            LengthDist::Empirical { mean, .. } => *mean,
        }
    }
}

fn resolve(base_dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) }
}

/// Parses one length per line (the first comma-separated column). `#` starts a comment; blank
/// lines are skipped; the first data line may be a header (a first column with letters).
fn parse_lengths(text: &str, path: &Path, field: &str, min_allowed: u32) -> Result<Vec<u32>, WorkloadError> {
    let err = |line: usize, msg: String| WorkloadError::File {
        field: field.to_string(),
        path: path.to_path_buf(),
        line,
        msg,
    };
    let mut values = Vec::new();
    let mut seen_data = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let first = line.split(',').next().unwrap_or("").trim().trim_matches('"');
        let first_data = !seen_data;
        seen_data = true;
        let v = match first.parse::<u64>() {
            Ok(v) => v as f64,
            Err(_) => match first.parse::<f64>() {
                Ok(v) if v.is_finite() => v.round(),
                _ => {
                    if first_data && first.chars().any(|c| c.is_alphabetic()) {
                        continue; // header row
                    }
                    return Err(err(i + 1, format!("`{first}` is not a token count")));
                }
            },
        };
        if v < min_allowed as f64 || v > u32::MAX as f64 {
            return Err(err(i + 1, format!("length {first} is out of range (must be ≥ {min_allowed})")));
        }
        values.push(v as u32);
    }
    if values.is_empty() {
        return Err(WorkloadError::File {
            field: field.to_string(),
            path: path.to_path_buf(),
            line: 0,
            msg: "no lengths in file".into(),
        });
    }
    Ok(values)
}

/// Short description of a length distribution, for reports.
pub fn describe(cfg: &LengthConfig) -> String {
    match cfg {
        LengthConfig::Fixed(f) => format!("{} tokens", f.tokens),
        LengthConfig::Uniform(u) => format!("uniform {}..={} tokens", u.min, u.max),
        LengthConfig::Lognormal(l) => {
            let mut s = format!("lognormal mean {} sigma {}", fmt_num(l.mean), fmt_num(l.sigma));
            if l.min.is_some() || l.max.is_some() {
                s.push_str(&format!(
                    " in [{}, {}]",
                    l.min.unwrap_or(LOGNORMAL_DEFAULT_MIN),
                    l.max.unwrap_or(LOGNORMAL_DEFAULT_MAX)
                ));
            }
            s
        }
        LengthConfig::Empirical(e) => format!("empirical from {}", e.file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::RngStreams;
    use crate::workload::config::{EmpiricalLen, FixedLen, LognormalLen, UniformLen};

    fn rng() -> SimRng {
        RngStreams::new(7).stream("test.length", 0)
    }

    #[test]
    fn fixed_and_uniform() {
        let d = LengthDist::new(&LengthConfig::Fixed(FixedLen { tokens: 5 }), "input", Path::new("."), 1).unwrap();
        assert_eq!(d.sample(&mut rng()), 5);
        assert!(LengthDist::new(&LengthConfig::Fixed(FixedLen { tokens: 0 }), "output", Path::new("."), 1).is_err());
        let d =
            LengthDist::new(&LengthConfig::Uniform(UniformLen { min: 3, max: 6 }), "input", Path::new("."), 1).unwrap();
        let mut r = rng();
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = d.sample(&mut r);
            assert!((3..=6).contains(&v));
            seen[v as usize] = true;
        }
        assert!(seen[3] && seen[6], "inclusive bounds");
        let e = LengthDist::new(&LengthConfig::Uniform(UniformLen { min: 7, max: 6 }), "input", Path::new("."), 1)
            .unwrap_err();
        assert!(e.to_string().contains("workload.input.max"), "{e}");
    }

    #[test]
    fn lognormal_mean_and_clamp() {
        let cfg = LengthConfig::Lognormal(LognormalLen { mean: 500.0, sigma: 0.8, min: None, max: None });
        let d = LengthDist::new(&cfg, "input", Path::new("."), 1).unwrap();
        let mut r = rng();
        let n = 100_000;
        let m = (0..n).map(|_| d.sample(&mut r) as f64).sum::<f64>() / n as f64;
        assert!((m / 500.0 - 1.0).abs() < 0.02, "mean {m}");
        let cfg = LengthConfig::Lognormal(LognormalLen { mean: 500.0, sigma: 2.0, min: Some(100), max: Some(900) });
        let d = LengthDist::new(&cfg, "input", Path::new("."), 1).unwrap();
        let v: Vec<u32> = (0..10_000).map(|_| d.sample(&mut r)).collect();
        assert!(v.iter().all(|&x| (100..=900).contains(&x)));
        assert!(v.contains(&100) && v.contains(&900));
    }

    #[test]
    fn empirical_file_parsing_and_errors() {
        let dir = std::env::temp_dir().join(format!("servesim-len-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ok.csv"), "# lengths\ninput_len,output_len\n10,1\n\n20 # note\n30,5\n").unwrap();
        let cfg = LengthConfig::Empirical(EmpiricalLen { file: "ok.csv".into() });
        let d = LengthDist::new(&cfg, "input", &dir, 1).unwrap();
        let mut r = rng();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(d.sample(&mut r));
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![10, 20, 30]);
        assert_eq!(d.mean(), 20.0);

        std::fs::write(dir.join("bad.txt"), "10\n20\nabc\n").unwrap();
        let cfg = LengthConfig::Empirical(EmpiricalLen { file: "bad.txt".into() });
        let e = LengthDist::new(&cfg, "output", &dir, 1).unwrap_err().to_string();
        assert!(e.contains("bad.txt:3") && e.contains("workload.output.file"), "{e}");
        std::fs::write(dir.join("zero.txt"), "10\n0\n").unwrap();
        let cfg = LengthConfig::Empirical(EmpiricalLen { file: "zero.txt".into() });
        let e = LengthDist::new(&cfg, "output", &dir, 1).unwrap_err().to_string();
        assert!(e.contains("zero.txt:2"), "{e}");
        let cfg = LengthConfig::Empirical(EmpiricalLen { file: "missing.txt".into() });
        let e = LengthDist::new(&cfg, "input", &dir, 1).unwrap_err().to_string();
        assert!(e.contains("missing.txt") && e.contains("workload.input.file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

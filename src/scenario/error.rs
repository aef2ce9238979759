//! The scenario boundary's error type. Every message names the file, the line when the parser
//! knows it, the field path (`engine.max_num_seqs`), and what would be valid.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a scenario could not be loaded. All variants are fatal for the run that asked for the
/// scenario: nothing is simulated from a scenario that failed to load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Fatal. The file could not be read (missing, a directory, permissions).
    #[error("{}: cannot read the scenario file: {source}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Fatal. The file is larger than [`super::MAX_FILE_BYTES`]; scenario files are small.
    #[error(
        "{}: the file is {size} bytes, over the {limit}-byte limit for scenario files; is this the right file?",
        .file.display()
    )]
    TooLarge { file: PathBuf, size: u64, limit: u64 },
    /// Fatal. The file has no YAML content (only whitespace, comments or an empty document).
    #[error(
        "{}: the scenario file is empty; a scenario needs at least `name`, `duration`, `model`, `gpu`, `replicas` and `workload` (`servesim schema` prints every field)",
        .file.display()
    )]
    Empty { file: PathBuf },
    /// Fatal. A `--set key.path=value` argument is malformed or cannot be applied to the file.
    #[error("{}: --set `{arg}`: {msg}", .file.display())]
    BadOverride { file: PathBuf, arg: String, msg: String },
    /// Fatal. The text is not YAML the loader accepts: a syntax error, bytes that are not UTF-8,
    /// a duplicate key, or an input budget (nesting depth, alias expansion, size) exceeded.
    #[error("{}", located(.file, *.line, .msg))]
    Syntax { file: PathBuf, line: Option<u64>, msg: String },
    /// Fatal. A key that no field of the scenario format has (at `field`, e.g. `engine.max_num_seq`).
    #[error("{}", located(.file, *.line, .msg))]
    UnknownField { file: PathBuf, line: Option<u64>, field: String, suggestion: Option<String>, msg: String },
    /// Fatal. A value of the wrong type or out of range, a missing field, an unknown `kind:` or
    /// catalog id, or a failed cross-field check during resolution.
    #[error("{}", located(.file, *.line, .msg))]
    Invalid { file: PathBuf, line: Option<u64>, field: String, msg: String },
}

impl ScenarioError {
    /// The scenario file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ScenarioError::Read { file, .. }
            | ScenarioError::TooLarge { file, .. }
            | ScenarioError::Empty { file }
            | ScenarioError::BadOverride { file, .. }
            | ScenarioError::Syntax { file, .. }
            | ScenarioError::UnknownField { file, .. }
            | ScenarioError::Invalid { file, .. } => file,
        }
    }

    /// The 1-based line the error points at, when known.
    pub fn line(&self) -> Option<u64> {
        match self {
            ScenarioError::Syntax { line, .. }
            | ScenarioError::UnknownField { line, .. }
            | ScenarioError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// The field path (`engine.max_num_seqs`, `workload.arrival.rate`; empty for the top level).
    pub fn field(&self) -> Option<&str> {
        match self {
            ScenarioError::UnknownField { field, .. } | ScenarioError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn located<'a>(file: &'a Path, line: Option<u64>, msg: &str) -> Located<'a> {
    Located { file, line, msg: msg.to_owned() }
}

struct Located<'a> {
    file: &'a Path,
    line: Option<u64>,
    msg: String,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.msg),
            None => write!(f, "{}: {}", self.file.display(), self.msg),
        }
    }
}

/// A field path inside the scenario file: keys and sequence indices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(pub Vec<Seg>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }
    /// Parses `a.b[0].c` (the rendering of [`fmt::Display`]); `a.b.0.c` is read the same way.
    pub fn parse(s: &str) -> Self {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                match key.parse::<usize>() {
                    Ok(i) => segs.push(Seg::Index(i)),
                    Err(_) => segs.push(Seg::Key(key.to_owned())),
                }
            }
            for idx in rest.split('[').filter(|x| !x.is_empty()) {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(i));
                }
            }
        }
        FieldPath(segs)
    }
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    pub fn starts_with(&self, other: &FieldPath) -> bool {
        self.0.len() >= other.0.len() && self.0[..other.0.len()] == other.0[..]
    }
    pub fn parent(&self) -> FieldPath {
        let mut p = self.clone();
        p.0.pop();
        p
    }
    /// `at top level` or ``in `engine` ``.
    pub fn location_phrase(&self) -> String {
        if self.is_root() { "at top level".to_owned() } else { format!("in `{self}`") }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'a, I: IntoIterator<Item = &'a str>>(word: &str, candidates: I) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase());
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.filter(|(s, _)| *s >= 0.8).map(|(_, c)| c)
}

/// "; did you mean `x`? " or ". ", to go between a complaint and the list of valid values.
pub(crate) fn did_you_mean(s: Option<&str>) -> String {
    s.map(|s| format!("; did you mean `{s}`? ")).unwrap_or_else(|| ". ".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let p = FieldPath::parse("workload.arrival.stages[1].rate");
        assert_eq!(p.to_string(), "workload.arrival.stages[1].rate");
        assert_eq!(FieldPath::parse("a.b.0.c").to_string(), "a.b[0].c");
        assert!(FieldPath::parse(".").is_root());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("repliaces", ["name", "replicas", "seed"]), Some("replicas"));
        assert_eq!(suggest("zzz", ["name", "replicas", "seed"]), None);
    }
}

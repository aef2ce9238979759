//! Reading a scenario file: size and encoding checks, YAML parsing under input budgets,
//! `--set` overrides, typed deserialization with field paths, and error messages that name the
//! file, line and field and say what would be valid.
//!
//! Pipeline: text → [`Tree`] (untyped, with lines; budgets stop YAML bombs here) → overrides
//! applied to the tree → typed [`ScenarioFile`] (from the original text when there are no
//! overrides, so scalars are read by their target type; otherwise from the tree re-emitted as
//! YAML) → check for keys serde ignored → [`resolve`](super::resolve).
//!
//! Known limit of the override path: the tree stores scalars as YAML typed them, so with any
//! `--set` an unquoted `vllm_version: 0.10` reaches the typed pass as `0.1`; quote versions.
//! Lines in messages come from the original text; values set by `--set` have none, and the
//! message names the `--set` argument instead.

use super::Scenario;
use super::error::{FieldPath, ScenarioError, Seg, did_you_mean, suggest};
use super::raw::ScenarioFile;
use super::resolve::{self, Fail};
use super::tree::{self, Node, Tree};
use serde_saphyr::Error as YamlError;
use std::path::Path;

/// Scenario files larger than this are rejected before parsing.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Parser options: strict duplicates, and budgets far above any real scenario but far below
/// what an alias bomb ("billion laughs") or a pathological nesting would need.
fn yaml_options() -> serde_saphyr::Options {
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = 5_000;
    alias_limits.max_replay_stack_depth = 16;
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_FILE_BYTES as usize),
            max_events: 100_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: 5_000,
            max_recorded_anchor_bytes: 4 * 1024 * 1024,
            max_depth: 32,
            flow_nesting_limit: 32,
            max_documents: 1,
            max_nodes: 50_000,
            max_total_scalar_bytes: 4 * 1024 * 1024,
            max_merge_keys: 100,
        },
        alias_limits: alias_limits,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    }
}

/// Reads, parses and resolves a scenario file, applying `--set key.path=value` overrides.
pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let file = || path.to_path_buf();
    let meta = std::fs::metadata(path).map_err(|source| ScenarioError::Read { file: file(), source })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ScenarioError::TooLarge { file: file(), size: meta.len(), limit: MAX_FILE_BYTES });
    }
    let bytes = std::fs::read(path).map_err(|source| ScenarioError::Read { file: file(), source })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ScenarioError::TooLarge { file: file(), size: bytes.len() as u64, limit: MAX_FILE_BYTES });
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        ScenarioError::Syntax {
            file: file(),
            line: Some(line),
            msg: format!("the file is not valid UTF-8 (first bad byte at offset {at}); save it as UTF-8"),
        }
    })?;
    load_str(text, path, overrides)
}

/// Like [`load`] for text already in memory; `source` names it in messages and anchors
/// relative paths (empirical length files, step-time tables).
pub fn load_str(text: &str, source: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let parsed = parse_str(text, source, overrides)?;
    let ctx = Ctx { file: source, tree: &parsed.tree, overrides: &parsed.overrides };
    resolve::resolve_file(parsed.file, source).map_err(|f| ctx.invalid(f))
}

/// Parses (without resolving) a scenario text with overrides applied.
pub fn parse_file(text: &str, source: &Path, overrides: &[String]) -> Result<ScenarioFile, ScenarioError> {
    parse_str(text, source, overrides).map(|p| p.file)
}

struct Parsed {
    file: ScenarioFile,
    tree: Tree,
    overrides: Vec<Override>,
}

/// One `--set` argument.
struct Override {
    arg: String,
    path: FieldPath,
}

fn parse_str(text: &str, source: &Path, overrides: &[String]) -> Result<Parsed, ScenarioError> {
    let file = || source.to_path_buf();
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ScenarioError::TooLarge { file: file(), size: text.len() as u64, limit: MAX_FILE_BYTES });
    }
    let blank = text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    });
    if blank {
        return Err(ScenarioError::Empty { file: file() });
    }

    // 1. Untyped tree under budgets: syntax errors, duplicates and bombs stop here.
    let mut tree = tree::parse(text, yaml_options()).map_err(|e| syntax_error(source, &e))?;
    match &tree.node {
        Node::Null => return Err(ScenarioError::Empty { file: file() }),
        Node::Map(_) => {}
        other => {
            return Err(ScenarioError::Invalid {
                file: file(),
                line: tree.line,
                field: String::new(),
                msg: format!(
                    "the document must be a map of fields such as `name: …` and `replicas: …`, but it is {}",
                    other.describe()
                ),
            });
        }
    }

    // 2. Overrides.
    let mut applied = Vec::new();
    for arg in overrides {
        let (path, value) = parse_override(arg, source)?;
        tree.set(&path, value).map_err(|msg| ScenarioError::BadOverride { file: file(), arg: arg.clone(), msg })?;
        applied.push(Override { arg: arg.clone(), path });
    }

    // 3. Typed pass.
    let reemitted;
    let typed_text = if applied.is_empty() {
        text
    } else {
        reemitted = serde_saphyr::to_string(&tree).map_err(|e| ScenarioError::Syntax {
            file: file(),
            line: None,
            msg: format!("cannot apply --set overrides: {e}"),
        })?;
        &reemitted
    };
    let ctx = Ctx { file: source, tree: &tree, overrides: &applied };
    let parsed = typed(typed_text).map_err(|b| ctx.typed_error(b.0, &b.1, applied.is_empty()))?;

    // 4. Keys serde accepted without using them (e.g. `router: {kind: random, x: 1}`).
    let echoed = serde_json::to_value(&parsed).expect("a parsed scenario serializes");
    if let Some((path, valid)) = ignored_key(&tree, &echoed, FieldPath::root()) {
        return Err(ctx.unknown_field(&path, valid.iter().map(String::as_str).collect()));
    }
    Ok(Parsed { file: parsed, tree, overrides: applied })
}

/// `a.b.c=value` → path and value parsed as a YAML scalar (or flow collection).
fn parse_override(arg: &str, source: &Path) -> Result<(FieldPath, Tree), ScenarioError> {
    let bad = |msg: String| ScenarioError::BadOverride { file: source.to_path_buf(), arg: arg.to_owned(), msg };
    let Some((key, value)) = arg.split_once('=') else {
        return Err(
            bad("expected `key.path=value`, e.g. `--set replicas=4` or `--set engine.max_num_seqs=128`".into()),
        );
    };
    let key = key.trim();
    let ok_seg = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !key.split('.').all(ok_seg) {
        return Err(bad(format!(
            "`{key}` is not a field path; write dot-separated field names such as `engine.max_num_seqs` (list entries by index: `workload.arrival.stages.0.rate`)"
        )));
    }
    if value.trim().is_empty() {
        return Err(bad(format!(
            "no value after `=`; write e.g. `{key}=4` (use `{key}=null` to unset an optional field)"
        )));
    }
    let value = tree::parse(value, yaml_options())
        .map_err(|e| bad(format!("the value is not valid YAML: {}", yaml_msg(&e))))?;
    let value = Tree { line: None, node: value.node };
    Ok((FieldPath::parse(key), value))
}

/// Typed deserialization, tracking the field path of the first error.
fn typed(text: &str) -> Result<ScenarioFile, Box<(FieldPath, YamlError)>> {
    let mut path = FieldPath::root();
    let r = serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = convert_path(e.path());
            e.into_inner()
        })
    });
    r.map_err(|e| Box::new((path, e)))
}

fn convert_path(p: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    let mut segs = Vec::new();
    for s in p.iter() {
        match s {
            Segment::Seq { index } => segs.push(Seg::Index(*index)),
            Segment::Map { key } => segs.push(Seg::Key(key.clone())),
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    FieldPath(segs)
}

/// The message of a serde-saphyr error without its location decoration.
fn yaml_msg(e: &YamlError) -> String {
    let s = e.without_snippet().to_string();
    let s = match s.strip_prefix("error: ") {
        Some(rest) => rest.to_owned(),
        None => s,
    };
    let s = match (s.starts_with("line "), s.find(": ")) {
        (true, Some(i)) => s[i + 2..].to_owned(),
        _ => s,
    };
    match s.rfind(" at line ") {
        Some(i) if s[i..].contains(", column ") => s[..i].to_owned(),
        _ => s,
    }
}

/// The underlying error, without snippet and alias wrappers.
fn root_error(e: &YamlError) -> &YamlError {
    match e.without_snippet() {
        YamlError::AliasError { error, .. } => root_error(error),
        other => other,
    }
}

fn yaml_line(e: &YamlError) -> Option<u64> {
    e.location().map(|l| l.line()).filter(|&l| l > 0)
}

fn syntax_error(source: &Path, e: &YamlError) -> ScenarioError {
    let msg = match root_error(e) {
        YamlError::DuplicateMappingKey { key: Some(k), .. } => {
            format!("duplicate key `{k}`: each field may appear only once in a map; remove one of them")
        }
        YamlError::Budget { breach, .. } => format!(
            "the YAML exceeds the loader's input budget ({}); scenario files are small, so deep nesting, huge documents and heavy alias (`*name`) expansion (YAML bombs) are rejected",
            budget_text(breach)
        ),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. } => format!(
            "{}; aliases (`*name`) expand to too much data (a YAML bomb?): scenario files are small",
            yaml_msg(root_error(e))
        ),
        other => format!("invalid YAML: {}", friendlier(&yaml_msg(other), None)),
    };
    ScenarioError::Syntax { file: source.to_path_buf(), line: yaml_line(e), msg }
}

/// `Depth { depth: 33 }` → `depth: 33`.
fn budget_text(b: &serde_saphyr::budget::BudgetBreach) -> String {
    let dbg = format!("{b:?}");
    match dbg.split_once(' ') {
        Some((_, rest)) => rest.trim_matches(|c| c == '{' || c == '}' || c == ' ').replace('_', " "),
        None => dbg,
    }
}

/// What a typed-pass error means, extracted from serde-saphyr's structured error.
enum Kind {
    UnknownField { field: String, expected: Vec<String> },
    UnknownVariant { variant: String, expected: Vec<String> },
    Missing { field: String },
    BadScalar { ty: String },
    Other { msg: String },
}

fn classify(e: &YamlError) -> Kind {
    match root_error(e) {
        YamlError::SerdeUnknownField { field, expected, .. } => {
            Kind::UnknownField { field: field.clone(), expected: expected.iter().map(|s| s.to_string()).collect() }
        }
        YamlError::SerdeUnknownVariant { variant, expected, .. } => Kind::UnknownVariant {
            variant: variant.clone(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        },
        YamlError::SerdeMissingField { field, .. } => Kind::Missing { field: field.to_string() },
        YamlError::InvalidScalar { ty, .. } => Kind::BadScalar { ty: ty.to_string() },
        other => Kind::Other { msg: yaml_msg(other) },
    }
}

/// Rewrites serde's wording where it leaks Rust names, and says what was found.
fn friendlier(msg: &str, found: Option<&Tree>) -> String {
    let mut m = msg.to_owned();
    if let Some(i) = m.find("internally tagged enum ") {
        let end = m[i..].find([',', ';']).map_or(m.len(), |j| i + j);
        m.replace_range(i..end, "a map with a `kind:` field");
    }
    if m.starts_with("expected ")
        && !m.contains("found")
        && let Some(t) = found
    {
        m = format!("{m}, found {}", t.node.describe());
    }
    if m.contains("recursion limit exceeded") {
        m.push_str(" (the YAML is nested too deeply)");
    }
    m
}

/// Describes a Rust scalar type for users.
fn describe_ty(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            let max = match ty {
                "u8" => u8::MAX as u64,
                "u16" => u16::MAX as u64,
                "u32" => u32::MAX as u64,
                _ => u64::MAX,
            };
            format!("a whole number from 0 to {max}")
        }
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "bool" | "boolean" => "`true` or `false`".to_owned(),
        "char" => "a single character".to_owned(),
        other => format!("a value of type {other}"),
    }
}

/// Error context: the file, the (overridden) tree for lines, and the overrides applied.
struct Ctx<'a> {
    file: &'a Path,
    tree: &'a Tree,
    overrides: &'a [Override],
}

impl Ctx<'_> {
    /// Line of `path` and, if a `--set` touched it, a note saying so (no line then).
    fn place(&self, path: &FieldPath) -> (Option<u64>, String) {
        let related: Vec<&str> = self
            .overrides
            .iter()
            .filter(|o| o.path.starts_with(path) || path.starts_with(&o.path))
            .map(|o| o.arg.as_str())
            .collect();
        if related.is_empty() {
            (self.tree.line_of(path), String::new())
        } else {
            let line = self
                .tree
                .at(path)
                .and_then(|t| t.line)
                .filter(|_| !self.overrides.iter().any(|o| path.starts_with(&o.path)));
            let list = related.iter().map(|a| format!("`--set {a}`")).collect::<Vec<_>>().join(", ");
            (line, format!(" (from {list})"))
        }
    }

    fn invalid(&self, f: Fail) -> ScenarioError {
        let path = FieldPath::parse(&f.field);
        let (line, note) = self.place(&path);
        let msg = if path.is_root() { format!("{}{note}", f.msg) } else { format!("`{path}`: {}{note}", f.msg) };
        ScenarioError::Invalid { file: self.file.to_path_buf(), line, field: path.to_string(), msg }
    }

    /// An unknown key at `path` (its last segment), given the valid field names there.
    fn unknown_field(&self, path: &FieldPath, mut valid: Vec<&str>) -> ScenarioError {
        let key = match path.0.last() {
            Some(Seg::Key(k)) => k.clone(),
            _ => String::new(),
        };
        let container = path.parent();
        let kind = self.tree.at(&container).and_then(|t| t.node.get("kind")).and_then(|k| k.node.scalar_text());
        let for_kind = match &kind {
            Some(k) => {
                if !valid.contains(&"kind") {
                    valid.insert(0, "kind");
                }
                format!(" (kind `{k}`)")
            }
            None => String::new(),
        };
        let suggestion = suggest(&key, valid.iter().copied().filter(|v| *v != "kind")).map(str::to_owned);
        let (line, note) = self.place(path);
        let valid_list = if valid.is_empty() { "none".to_owned() } else { valid.join(", ") };
        let msg = format!(
            "unknown field `{key}` {}{for_kind}{note}{}Valid fields: {valid_list}",
            container.location_phrase(),
            did_you_mean(suggestion.as_deref()),
        );
        ScenarioError::UnknownField { file: self.file.to_path_buf(), line, field: path.to_string(), suggestion, msg }
    }

    /// Translates a typed-pass error. `path` is where serde_path_to_error stopped: exact for
    /// plain structs, the enclosing field for errors inside internally tagged enums (serde
    /// buffers those), in which case the tree is searched for the offending key or value.
    fn typed_error(&self, path: FieldPath, e: &YamlError, direct: bool) -> ScenarioError {
        let file = self.file.to_path_buf();
        match classify(e) {
            Kind::UnknownField { field, expected } => {
                let exact = matches!(path.0.last(), Some(Seg::Key(k)) if *k == field) && self.tree.at(&path).is_some();
                let full = if exact {
                    path
                } else {
                    self.find(&path, |p, _| matches!(p.0.last(), Some(Seg::Key(k)) if *k == field))
                        .unwrap_or_else(|| path.key(&field))
                };
                self.unknown_field(&full, expected.iter().map(String::as_str).collect())
            }
            Kind::UnknownVariant { variant, expected } => {
                let is_kind = |p: &FieldPath, t: &Tree| {
                    matches!(p.0.last(), Some(Seg::Key(k)) if k == "kind") && t.node == Node::Str(variant.clone())
                };
                let full = match self.tree.at(&path) {
                    Some(t) if is_kind(&path, t) => path,
                    _ => self.find(&path, is_kind).unwrap_or(path),
                };
                let suggestion = suggest(&variant, expected.iter().map(String::as_str));
                self.invalid(Fail {
                    field: full.to_string(),
                    msg: format!(
                        "unknown kind `{variant}`{}Valid kinds: {}",
                        did_you_mean(suggestion),
                        expected.join(", ")
                    ),
                })
            }
            Kind::Missing { field } => {
                // Inside a tagged enum the path stops at the enum: find the one map below it
                // whose `kind:` requires `field` (per the schema) and lacks it.
                let path = match self.tree.at(&path) {
                    Some(t)
                        if t.node.get(&field).is_none() && !t.node.get("kind").is_some_and(|k| requires(k, &field)) =>
                    {
                        self.find_unique_by(&path, |_, t| {
                            t.node.get(&field).is_none() && t.node.get("kind").is_some_and(|k| requires(k, &field))
                        })
                        .unwrap_or(path)
                    }
                    _ => path,
                };
                let (line, note) = self.place(&path);
                let msg = format!("missing required field `{field}` {}{note}", path.location_phrase());
                ScenarioError::Invalid { file, line, field: path.key(&field).to_string(), msg }
            }
            Kind::BadScalar { ty } => {
                let found = self.tree.at(&path).map(|t| t.node.describe()).unwrap_or_else(|| "something else".into());
                let mut err = self.invalid(Fail {
                    field: path.to_string(),
                    msg: format!("expected {}, found {found}", describe_ty(&ty)),
                });
                if direct
                    && let ScenarioError::Invalid { line, .. } = &mut err
                    && line.is_none()
                {
                    *line = yaml_line(e);
                }
                err
            }
            Kind::Other { msg } => {
                let msg = friendlier(&msg, self.tree.at(&path));
                // Inside a tagged enum the path stops at the enum; find the leaf the message quotes.
                let full = match self.tree.at(&path) {
                    Some(Tree { node: Node::Map(_) | Node::Seq(_), .. }) => {
                        quoted_value(&msg).and_then(|q| self.find_unique(&path, &q)).unwrap_or(path)
                    }
                    _ => path,
                };
                self.invalid(Fail { field: full.to_string(), msg })
            }
        }
    }

    /// First node under `base` (document order) that matches.
    fn find(&self, base: &FieldPath, pred: impl Fn(&FieldPath, &Tree) -> bool) -> Option<FieldPath> {
        let start = self.tree.at(base)?;
        let mut all = Vec::new();
        start.walk(base.clone(), &mut all);
        all.into_iter().find(|(p, t)| pred(p, t)).map(|(p, _)| p)
    }

    /// The only scalar under `base` whose text is `text`.
    fn find_unique(&self, base: &FieldPath, text: &str) -> Option<FieldPath> {
        self.find_unique_by(base, |_, t| t.node.scalar_text().as_deref() == Some(text))
    }

    /// The only node under `base` that matches.
    fn find_unique_by(&self, base: &FieldPath, pred: impl Fn(&FieldPath, &Tree) -> bool) -> Option<FieldPath> {
        let start = self.tree.at(base)?;
        let mut all = Vec::new();
        start.walk(base.clone(), &mut all);
        let mut hits = all.into_iter().filter(|(p, t)| pred(p, t));
        let first = hits.next()?;
        hits.next().is_none().then_some(first.0)
    }
}

/// Whether the tagged-enum variant named by the `kind:` node requires `field`, according to
/// the JSON schema (every variant is an object schema with `kind: {const: …}` and `required`).
fn requires(kind: &Tree, field: &str) -> bool {
    static REQUIRED: std::sync::OnceLock<Vec<(String, Vec<String>)>> = std::sync::OnceLock::new();
    let table = REQUIRED.get_or_init(|| {
        fn walk(v: &serde_json::Value, out: &mut Vec<(String, Vec<String>)>) {
            match v {
                serde_json::Value::Object(o) => {
                    if let Some(k) = o
                        .get("properties")
                        .and_then(|p| p.get("kind"))
                        .and_then(|k| k.get("const"))
                        .and_then(|c| c.as_str())
                    {
                        let req = o
                            .get("required")
                            .and_then(|r| r.as_array())
                            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect());
                        out.push((k.to_owned(), req.unwrap_or_default()));
                    }
                    o.values().for_each(|x| walk(x, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&super::schema(), &mut out);
        out
    });
    let Node::Str(k) = &kind.node else { return false };
    table.iter().any(|(kk, req)| kk == k && req.iter().any(|r| r == field))
}

/// The offending value serde quotes in a message: `string "abc"`, ``integer `-3` ``, or the
/// first back-quoted token of a custom message.
fn quoted_value(msg: &str) -> Option<String> {
    if let Some(i) = msg.find("string \"") {
        let rest = &msg[i + 8..];
        return rest.find('"').map(|j| rest[..j].to_owned());
    }
    let i = msg.find('`')?;
    let rest = &msg[i + 1..];
    rest.find('`').map(|j| rest[..j].to_owned())
}

/// A key present in the input but absent when the parsed file is serialized again: serde
/// accepted and dropped it. Returns its path and the valid keys at that place.
fn ignored_key(input: &Tree, echoed: &serde_json::Value, path: FieldPath) -> Option<(FieldPath, Vec<String>)> {
    match (&input.node, echoed) {
        (Node::Map(es), serde_json::Value::Object(obj)) => {
            for e in es {
                match obj.get(&e.key) {
                    None => return Some((path.key(&e.key), obj.keys().cloned().collect())),
                    Some(v) => {
                        if let Some(hit) = ignored_key(&e.value, v, path.key(&e.key)) {
                            return Some(hit);
                        }
                    }
                }
            }
            None
        }
        (Node::Seq(xs), serde_json::Value::Array(ys)) => {
            xs.iter().zip(ys).enumerate().find_map(|(i, (x, y))| ignored_key(x, y, path.index(i)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values() {
        assert_eq!(quoted_value("invalid type: string \"abc\", expected f64").as_deref(), Some("abc"));
        assert_eq!(quoted_value("invalid value: integer `-3`, expected u32").as_deref(), Some("-3"));
        assert_eq!(quoted_value("no quotes"), None);
    }
}

//! An untyped view of the scenario YAML with source lines: used to apply `--set` overrides
//! before typed deserialization, to find the line of any field path for messages, to locate
//! errors inside internally tagged enums (where serde loses the path), and to catch keys that
//! serde silently ignores (fields next to `kind:` of a unit variant).

use super::error::{FieldPath, Seg};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::Spanned;
use std::fmt;

/// A YAML node and the line it starts on (`None` for nodes created by `--set`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tree {
    pub line: Option<u64>,
    pub node: Node,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Tree>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_line: Option<u64>,
    pub value: Tree,
}

impl Node {
    /// A short description for messages: "a number (64)", "a map".
    pub fn describe(&self) -> String {
        match self {
            Node::Null => "empty".to_owned(),
            Node::Bool(b) => format!("a boolean ({b})"),
            Node::Int(i) => format!("a number ({i})"),
            Node::UInt(u) => format!("a number ({u})"),
            Node::Float(x) => format!("a number ({x})"),
            Node::Str(s) => format!("a string (`{s}`)"),
            Node::Seq(_) => "a list".to_owned(),
            Node::Map(_) => "a map".to_owned(),
        }
    }
    /// The scalar as written (approximately), for matching against serde's messages.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Node::Null => Some("null".to_owned()),
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::UInt(u) => Some(u.to_string()),
            Node::Float(x) => Some(x.to_string()),
            Node::Str(s) => Some(s.clone()),
            Node::Seq(_) | Node::Map(_) => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Tree> {
        match self {
            Node::Map(es) => es.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }
}

impl Tree {
    /// The node at `path`, if present.
    pub fn at(&self, path: &FieldPath) -> Option<&Tree> {
        let mut t = self;
        for s in &path.0 {
            t = match (s, &t.node) {
                (Seg::Key(k), Node::Map(_)) => t.node.get(k)?,
                (Seg::Index(i), Node::Seq(v)) => v.get(*i)?,
                _ => return None,
            };
        }
        Some(t)
    }

    /// The line of the field at `path` (its key's line for map entries), falling back to the
    /// nearest ancestor below the top level that has one (a top-level line would mislead).
    pub fn line_of(&self, path: &FieldPath) -> Option<u64> {
        if path.is_root() {
            return self.line;
        }
        let mut best = None;
        let mut t = self;
        for s in &path.0 {
            match (s, &t.node) {
                (Seg::Key(k), Node::Map(es)) => match es.iter().find(|e| &e.key == k) {
                    Some(e) => {
                        best = e.key_line.or(e.value.line).or(best);
                        t = &e.value;
                    }
                    None => break,
                },
                (Seg::Index(i), Node::Seq(v)) => match v.get(*i) {
                    Some(x) => {
                        best = x.line.or(best);
                        t = x;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        best
    }

    /// Every node under `self` (pre-order, document order) with its path relative to `base`.
    pub fn walk<'a>(&'a self, base: FieldPath, out: &mut Vec<(FieldPath, &'a Tree)>) {
        out.push((base.clone(), self));
        match &self.node {
            Node::Map(es) => {
                for e in es {
                    e.value.walk(base.key(&e.key), out);
                }
            }
            Node::Seq(v) => {
                for (i, x) in v.iter().enumerate() {
                    x.walk(base.index(i), out);
                }
            }
            _ => {}
        }
    }

    /// Sets `path` to `value`, creating maps for missing keys. Errors say which part of the
    /// path is in the way.
    pub fn set(&mut self, path: &FieldPath, value: Tree) -> Result<(), String> {
        let mut t = self;
        for (n, s) in path.0.iter().enumerate() {
            let so_far = FieldPath(path.0[..n].to_vec());
            if matches!(t.node, Node::Null) {
                t.node = Node::Map(Vec::new());
            }
            t = match (s, &mut t.node) {
                (Seg::Key(k), Node::Map(es)) => {
                    let i = match es.iter().position(|e| &e.key == k) {
                        Some(i) => i,
                        None => {
                            es.push(Entry {
                                key: k.clone(),
                                key_line: None,
                                value: Tree { line: None, node: Node::Null },
                            });
                            es.len() - 1
                        }
                    };
                    &mut es[i].value
                }
                (Seg::Index(i), Node::Seq(v)) => {
                    let len = v.len();
                    v.get_mut(*i).ok_or_else(|| {
                        format!(
                            "`{so_far}` is a list of {len} entries, so index {i} does not exist (indices start at 0)"
                        )
                    })?
                }
                (Seg::Index(i), Node::Map(_)) => {
                    return Err(format!("`{so_far}` is a map, not a list, so `{i}` is not a valid key there"));
                }
                (_, other) => {
                    let what = if so_far.is_root() { "the document".to_owned() } else { format!("`{so_far}`") };
                    return Err(format!("{what} is {}, not a map, so `{path}` cannot be set", other.describe()));
                }
            };
        }
        *t = value;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Deserialization from serde-saphyr (with locations) and serialization back to YAML.

/// The parse-time shape: serde-saphyr fills the `Spanned` locations.
struct RawNode(Node);
struct RawKey(String);

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a plain key such as `replicas`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKey, E> {
                Ok(RawKey(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawKey, E> {
                Ok(RawKey("null".to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

fn line_of(l: &serde_saphyr::Location) -> Option<u64> {
    let line = l.line();
    (line > 0).then_some(line)
}

fn from_spanned(s: Spanned<RawNode>) -> Tree {
    Tree { line: line_of(&s.referenced), node: s.value.0 }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawNode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawNode, E> {
                Ok(RawNode(Node::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNode, E> {
                Ok(RawNode(Node::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNode, E> {
                Ok(RawNode(Node::UInt(v)))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawNode, E> {
                Ok(RawNode(Node::Str(v.to_string())))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
                Ok(RawNode(Node::Str(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawNode, E> {
                Ok(RawNode(Node::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
                Ok(RawNode(Node::Str(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawNode, E> {
                Ok(RawNode(Node::Str(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
                Ok(RawNode(Node::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
                Ok(RawNode(Node::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
                RawNode::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawNode, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<Spanned<RawNode>>()? {
                    v.push(from_spanned(x));
                }
                Ok(RawNode(Node::Seq(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawNode, A::Error> {
                let mut es = Vec::new();
                while let Some((k, v)) = a.next_entry::<Spanned<RawKey>, Spanned<RawNode>>()? {
                    es.push(Entry { key: k.value.0, key_line: line_of(&k.referenced), value: from_spanned(v) });
                }
                Ok(RawNode(Node::Map(es)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses one YAML document into a [`Tree`] under `options`' budgets.
pub(crate) fn parse(text: &str, options: serde_saphyr::Options) -> Result<Tree, serde_saphyr::Error> {
    let s: Spanned<RawNode> = serde_saphyr::from_str_with_options(text, options)?;
    Ok(from_spanned(s))
}

impl Serialize for Tree {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.node {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Int(i) => s.serialize_i64(*i),
            Node::UInt(u) => s.serialize_u64(*u),
            Node::Float(x) => s.serialize_f64(*x),
            Node::Str(x) => s.serialize_str(x),
            Node::Seq(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Node::Map(es) => {
                let mut m = s.serialize_map(Some(es.len()))?;
                for e in es {
                    m.serialize_entry(&e.key, &e.value)?;
                }
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_set() {
        let text = "a: 1\nb:\n  c: x\n  d: [1, 2]\n";
        let mut t = parse(text, serde_saphyr::Options::default()).unwrap();
        assert_eq!(t.line_of(&FieldPath::parse("a")), Some(1));
        assert_eq!(t.line_of(&FieldPath::parse("b.c")), Some(3));
        assert_eq!(t.line_of(&FieldPath::parse("b.d[1]")), Some(4));
        t.set(&FieldPath::parse("b.e.f"), Tree { line: None, node: Node::Int(3) }).unwrap();
        assert_eq!(t.at(&FieldPath::parse("b.e.f")).unwrap().node, Node::Int(3));
        let err = t.set(&FieldPath::parse("a.x"), Tree { line: None, node: Node::Null }).unwrap_err();
        assert!(err.contains("`a` is a number (1), not a map"), "{err}");
        t.set(&FieldPath::parse("b.d.1"), Tree { line: None, node: Node::Int(5) }).unwrap();
        let yaml = serde_saphyr::to_string(&t).unwrap();
        assert!(yaml.contains('5'), "{yaml}");
    }
}

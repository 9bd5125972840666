//! The YAML half of nodeadm's decoder: the file read the way go-yaml v2
//! (`yaml.UnmarshalStrict` into `interface{}`, as sigs.k8s.io/yaml v1.6 calls
//! it) reads it, into a tree that keeps every node's line and column.
//!
//! What go-yaml v2 does and this reproduces:
//! - only the first document is read; whatever follows is not even parsed;
//! - plain scalars resolve with YAML 1.1 rules (`yes`/`no`/`on`/`off`/`y`/`n`
//!   are booleans, `0x1F`, `0o17`, `017` and `0b101` are integers, `1_000`
//!   drops its underscores, timestamps stay strings); quoted and block
//!   scalars are always strings;
//! - a key already set in the same mapping is an error naming its line
//!   (strict mode), merged (`<<`) keys included;
//! - anchors and aliases, `!!str` and `!!binary` tags.
//!
//! Design note: the event parser is serde-saphyr's own (`saphyr-parser`), so
//! there is one YAML scanner in the binary; the resolution rules above are
//! ours because saphyr follows YAML 1.2.

use super::scalars::{go_float32, resolve_plain};
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};
use std::collections::HashMap;

/// 1-based line and column.
pub type Pos = (usize, usize);

/// A resolved YAML value, as go-yaml v2 hands it to sigs.k8s.io/yaml.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    /// The scalar as written (plain scalars only), to tell a user what a
    /// YAML 1.1 resolution turned it into.
    pub plain: Option<String>,
}

/// A mapping entry; the key already converted to the string
/// sigs.k8s.io/yaml gives encoding/json.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// The first document, and where a second one starts (go-yaml ignores it).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Option<Node>,
    pub ignored_from: Option<Pos>,
}

/// Why the YAML could not be read. Messages never quote a scalar value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{message}")]
    Syntax { pos: Pos, message: String },
    #[error("key {key:?} is already set in this mapping (line {first_line}); nodeadm's strict decoder rejects duplicate keys")]
    DuplicateKey {
        pos: Pos,
        key: String,
        first_line: usize,
    },
    #[error(
        "a mapping key must be a string, number or boolean (nodeadm cannot use a {what} as a key)"
    )]
    BadKey { pos: Pos, what: &'static str },
    #[error("`<<` merges only mappings or a list of mappings")]
    BadMerge { pos: Pos },
    #[error("a {tag} value does not parse as one")]
    BadTag { pos: Pos, tag: String },
    #[error("alias to an unknown anchor")]
    UnknownAlias { pos: Pos },
}

impl ReadError {
    pub fn pos(&self) -> Pos {
        match self {
            ReadError::Syntax { pos, .. }
            | ReadError::DuplicateKey { pos, .. }
            | ReadError::BadKey { pos, .. }
            | ReadError::BadMerge { pos }
            | ReadError::BadTag { pos, .. }
            | ReadError::UnknownAlias { pos } => *pos,
        }
    }
}

fn span_pos(span: &Span) -> Pos {
    (span.start.line().max(1), span.start.col() + 1)
}

fn syntax(e: &ScanError) -> ReadError {
    let m = e.marker();
    ReadError::Syntax {
        pos: (m.line().max(1), m.col() + 1),
        message: e.info().to_owned(),
    }
}

/// Reads the first YAML document of `text` (a UTF-8 BOM is skipped, CR LF
/// line ends are line ends).
pub fn read(text: &str) -> Result<Document, ReadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
    };
    let mut root = None;
    loop {
        let Some(ev) = reader.parser.next_event() else {
            return Ok(Document {
                root,
                ignored_from: None,
            });
        };
        let (event, span) = ev.map_err(|e| syntax(&e))?;
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => {
                return Ok(Document {
                    root,
                    ignored_from: None,
                })
            }
            Event::DocumentStart(_) => {
                root = reader.document()?;
                // go-yaml stops here; only peek whether more follows.
                let ignored_from = match reader.parser.next_event() {
                    Some(Ok((Event::DocumentStart(_), span))) => Some(span_pos(&span)),
                    Some(Err(e)) => Some((e.marker().line().max(1), e.marker().col() + 1)),
                    _ => None,
                };
                return Ok(Document { root, ignored_from });
            }
            _ => {
                return Err(ReadError::Syntax {
                    pos: span_pos(&span),
                    message: "unexpected content before the document".into(),
                })
            }
        }
    }
}

struct Reader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<(Event<'_>, Span), ReadError> {
        match self.parser.next_event() {
            Some(r) => r.map_err(|e| syntax(&e)),
            None => Err(ReadError::Syntax {
                pos: (1, 1),
                message: "unexpected end of the file".into(),
            }),
        }
    }

    /// The document's root node; consumes the DocumentEnd.
    fn document(&mut self) -> Result<Option<Node>, ReadError> {
        let (event, span) = self.next()?;
        if matches!(event, Event::DocumentEnd) {
            return Ok(None);
        }
        let event = own(event);
        let root = self.node(event, span)?;
        let (event, span) = self.next()?;
        if !matches!(event, Event::DocumentEnd) {
            return Err(ReadError::Syntax {
                pos: span_pos(&span),
                message: "expected the end of the document".into(),
            });
        }
        Ok(Some(root))
    }

    fn node(&mut self, event: Owned, span: Span) -> Result<Node, ReadError> {
        let pos = span_pos(&span);
        let (node, anchor) = match event {
            Owned::Alias(id) => {
                let mut n = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or(ReadError::UnknownAlias { pos })?;
                n.pos = pos;
                return Ok(n);
            }
            Owned::Scalar(text, style, anchor, tag) => (scalar(text, style, tag, pos)?, anchor),
            Owned::SeqStart(anchor) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let event = own(event);
                    items.push(self.node(event, span)?);
                }
                (
                    Node {
                        value: Value::Seq(items),
                        pos,
                        plain: None,
                    },
                    anchor,
                )
            }
            Owned::MapStart(anchor) => (self.mapping(pos)?, anchor),
            Owned::Other => {
                return Err(ReadError::Syntax {
                    pos,
                    message: "unexpected YAML event".into(),
                })
            }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn mapping(&mut self, pos: Pos) -> Result<Node, ReadError> {
        let mut entries: Vec<Entry> = Vec::new();
        // Resolved key → line it was first set on (strict duplicate check
        // compares resolved keys: `1` and `"1"` differ, `yes` and `true` do not).
        let mut seen: Vec<(Value, usize)> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                break;
            }
            let event = own(event);
            let key = self.node(event, span)?;
            let (event, span) = self.next()?;
            let event = own(event);
            let value = self.node(event, span)?;
            if key.plain.as_deref() == Some("<<") {
                let sources: Vec<&Node> = match &value.value {
                    Value::Map(_) => vec![&value],
                    // Earlier mappings take precedence: go-yaml walks them
                    // backwards, and in strict mode any overlap is a duplicate.
                    Value::Seq(items) => items.iter().rev().collect(),
                    _ => return Err(ReadError::BadMerge { pos: value.pos }),
                };
                for src in sources {
                    let Value::Map(merged) = &src.value else {
                        return Err(ReadError::BadMerge { pos: src.pos });
                    };
                    for e in merged {
                        let k = Value::Str(e.key.clone());
                        insert(&mut entries, &mut seen, k, e.clone())?;
                    }
                }
                continue;
            }
            let key_string = json_key(&key)?;
            let resolved = match &key.value {
                Value::Str(_) | Value::Bool(_) | Value::Int(_) | Value::Uint(_) => {
                    key.value.clone()
                }
                _ => Value::Str(key_string.clone()),
            };
            insert(
                &mut entries,
                &mut seen,
                resolved,
                Entry {
                    key: key_string,
                    key_pos: key.pos,
                    value,
                },
            )?;
        }
        Ok(Node {
            value: Value::Map(entries),
            pos,
            plain: None,
        })
    }
}

fn insert(
    entries: &mut Vec<Entry>,
    seen: &mut Vec<(Value, usize)>,
    resolved: Value,
    entry: Entry,
) -> Result<(), ReadError> {
    if let Some((_, first_line)) = seen.iter().find(|(k, _)| *k == resolved) {
        return Err(ReadError::DuplicateKey {
            pos: entry.key_pos,
            key: entry.key,
            first_line: *first_line,
        });
    }
    seen.push((resolved, entry.key_pos.0));
    entries.push(entry);
    Ok(())
}

/// The key string sigs.k8s.io/yaml builds from a resolved key.
fn json_key(key: &Node) -> Result<String, ReadError> {
    match &key.value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Uint(u) => Ok(u.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Float(f) => Ok(match go_float32(*f).as_str() {
            "+Inf" => ".inf".to_owned(),
            "-Inf" => "-.inf".to_owned(),
            "NaN" => ".nan".to_owned(),
            s => s.to_owned(),
        }),
        Value::Null => Err(ReadError::BadKey {
            pos: key.pos,
            what: "null",
        }),
        Value::Seq(_) => Err(ReadError::BadKey {
            pos: key.pos,
            what: "list",
        }),
        Value::Map(_) => Err(ReadError::BadKey {
            pos: key.pos,
            what: "mapping",
        }),
    }
}

/// An event with the borrow released, so the parser can be advanced.
enum Owned {
    Alias(usize),
    Scalar(String, ScalarStyle, usize, Option<(String, String)>),
    SeqStart(usize),
    MapStart(usize),
    Other,
}

fn own(event: Event<'_>) -> Owned {
    match event {
        Event::Alias(id) => Owned::Alias(id),
        Event::Scalar(text, style, anchor, tag) => Owned::Scalar(
            text.into_owned(),
            style,
            anchor,
            tag.map(|t| (t.handle.clone(), t.suffix.clone())),
        ),
        Event::SequenceStart(anchor, _) => Owned::SeqStart(anchor),
        Event::MappingStart(anchor, _) => Owned::MapStart(anchor),
        _ => Owned::Other,
    }
}

fn scalar(
    text: String,
    style: ScalarStyle,
    tag: Option<(String, String)>,
    pos: Pos,
) -> Result<Node, ReadError> {
    let core = tag.as_ref().and_then(|(handle, suffix)| {
        (handle == "!!" || handle == "tag:yaml.org,2002:").then_some(suffix.as_str())
    });
    let node = |value| Node {
        value,
        pos,
        plain: None,
    };
    match (core, &tag) {
        (Some("str"), _) => return Ok(node(Value::Str(text))),
        (Some("binary"), _) => {
            use base64::Engine;
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| ReadError::BadTag {
                    pos,
                    tag: "!!binary".into(),
                })?;
            return Ok(node(Value::Str(
                String::from_utf8_lossy(&bytes).into_owned(),
            )));
        }
        (Some(t @ ("int" | "float" | "bool" | "null")), _) => {
            let v = resolve_plain(&text);
            let ok = matches!(
                (t, &v),
                ("int", Value::Int(_) | Value::Uint(_))
                    | ("float", Value::Float(_))
                    | ("bool", Value::Bool(_))
                    | ("null", Value::Null)
            );
            return match (t, v) {
                (_, v) if ok => Ok(node(v)),
                ("float", Value::Int(i)) => Ok(node(Value::Float(i as f64))),
                _ => Err(ReadError::BadTag {
                    pos,
                    tag: format!("!!{t}"),
                }),
            };
        }
        // go-yaml keeps the text of a value with any other tag.
        (_, Some(_)) => return Ok(node(Value::Str(text))),
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Ok(node(Value::Str(text)));
    }
    Ok(Node {
        value: resolve_plain(&text),
        pos,
        plain: Some(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        read(text).expect("reads").root.expect("root")
    }

    fn get<'a>(n: &'a Node, key: &str) -> &'a Node {
        match &n.value {
            Value::Map(entries) => &entries.iter().find(|e| e.key == key).expect(key).value,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn yaml_1_1_scalars_resolve_like_go_yaml_v2() {
        let n = root("a: yes\nb: Off\nc: y\nd: 0x1F\ne: 017\nf: 1_000\ng: 0b101\nh: 1.10\ni: 2024-01-02\nj: \"yes\"\nk: ~\nl: -0b11\nm: 18446744073709551615\nbig: 123456789012345678901234\no: .5\np: +12\nq: 0o17\nr: 1e3\n");
        let v = |k: &str| get(&n, k).value.clone();
        assert_eq!(v("a"), Value::Bool(true));
        assert_eq!(v("b"), Value::Bool(false));
        assert_eq!(v("c"), Value::Bool(true));
        assert_eq!(v("d"), Value::Int(31));
        assert_eq!(v("e"), Value::Int(15));
        assert_eq!(v("f"), Value::Int(1000));
        assert_eq!(v("g"), Value::Int(5));
        assert_eq!(v("h"), Value::Float(1.1));
        assert_eq!(v("i"), Value::Str("2024-01-02".into()));
        assert_eq!(v("j"), Value::Str("yes".into()));
        assert_eq!(v("k"), Value::Null);
        assert_eq!(v("l"), Value::Int(-3));
        assert_eq!(v("m"), Value::Uint(u64::MAX));
        assert_eq!(v("big"), Value::Float(1.2345678901234568e23));
        assert_eq!(v("o"), Value::Float(0.5));
        assert_eq!(v("p"), Value::Int(12));
        assert_eq!(v("q"), Value::Int(15));
        assert_eq!(v("r"), Value::Float(1000.0));
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_lines() {
        let e = read("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(
            e,
            ReadError::DuplicateKey {
                pos: (4, 3),
                key: "c".into(),
                first_line: 3
            }
        );
        // `yes` and `true` are the same key once resolved.
        assert!(matches!(
            read("yes: 1\ntrue: 2\n"),
            Err(ReadError::DuplicateKey { .. })
        ));
        // A key given twice through a merge is a duplicate too.
        assert!(matches!(
            read("base: &b {x: 1}\nm:\n  <<: *b\n  x: 2\n"),
            Err(ReadError::DuplicateKey { .. })
        ));
        // JSON goes through the same reader.
        assert!(matches!(
            read("{\"a\": 1, \"a\": 2}"),
            Err(ReadError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn only_the_first_document_is_read() {
        let d = read("a: 1\n---\nb: [unclosed\n").expect("first document only");
        assert_eq!(d.ignored_from.map(|p| p.0), Some(2));
        let d = read("---\na: 1\n").expect("one document");
        assert_eq!(d.ignored_from, None);
    }

    #[test]
    fn bom_crlf_anchors_and_tags() {
        let n = root(
            "\u{feff}a: &x hello\r\nb: *x\r\nc: !!str 12\r\nd: |\r\n  line\r\ne: !!binary aGk=\r\n",
        );
        assert_eq!(get(&n, "b").value, Value::Str("hello".into()));
        assert_eq!(get(&n, "c").value, Value::Str("12".into()));
        assert_eq!(get(&n, "d").value, Value::Str("line\n".into()));
        assert_eq!(get(&n, "e").value, Value::Str("hi".into()));
        assert_eq!(get(&n, "b").pos, (2, 4));
    }

    #[test]
    fn non_string_keys_become_json_keys() {
        let n = root("1: a\ntrue: b\nn: c\n");
        // YAML 1.1: the key `n` is the boolean false.
        assert_eq!(get(&n, "false").value, Value::Str("c".into()));
        assert_eq!(get(&n, "1").value, Value::Str("a".into()));
        assert_eq!(get(&n, "true").value, Value::Str("b".into()));
        assert!(matches!(read("~: a\n"), Err(ReadError::BadKey { .. })));
    }
}

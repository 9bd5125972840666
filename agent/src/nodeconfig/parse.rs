//! Reading a NodeConfig file: YAML or JSON, exactly one document, the right
//! `apiVersion` and `kind`, decoded strictly. Every error says where.

use crate::model::nodeconfig::{NodeConfig, API_VERSION, KIND};
use serde::Deserialize;
use std::fmt;

/// Why a NodeConfig could not be read. Messages never quote field values
/// (they may be secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line and column, where known.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl ParseError {
    fn at(position: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        ParseError {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "line {line}, column {column}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

pub use crate::model::nodeconfig::Format;

/// JSON when the first significant character opens an object.
pub fn detect_format(text: &str) -> Format {
    let first = text
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.chars().next());
    if first == Some('{') {
        Format::Json
    } else {
        Format::Yaml
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: Option<serde_json::Value>,
    #[serde(default)]
    kind: Option<serde_json::Value>,
}

/// Parses and strictly decodes a NodeConfig.
pub fn parse(text: &str) -> Result<NodeConfig, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::at(None, "the file is empty"));
    }
    if let Some(line) = mime_line(text) {
        return Err(ParseError::at(
            Some((line, 1)),
            "this is MIME multipart user data; hybrid nodeadm reads a plain NodeConfig \
             (YAML or JSON) from the file given to `nodeadm init -c file://…`",
        ));
    }
    let format = detect_format(text);
    if format == Format::Yaml {
        if let Some(line) = second_document(text) {
            return Err(ParseError::at(
                Some((line, 1)),
                "a second YAML document starts here; the NodeConfig file must hold exactly one",
            ));
        }
    }
    let header: Header = decode(text, format)?;
    let api_version = header.api_version.as_ref().and_then(|v| v.as_str());
    match api_version {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(ParseError::at(
                locate_key(text, "apiVersion"),
                format!("apiVersion is {other:?}; hybrid nodeadm expects {API_VERSION:?}"),
            ))
        }
        None => {
            return Err(ParseError::at(
                None,
                format!("apiVersion is missing; expected {API_VERSION:?}"),
            ))
        }
    }
    match header.kind.as_ref().and_then(|v| v.as_str()) {
        Some(KIND) => {}
        Some(other) => {
            return Err(ParseError::at(
                locate_key(text, "kind"),
                format!("kind is {other:?}; expected {KIND:?}"),
            ))
        }
        None => {
            return Err(ParseError::at(
                None,
                format!("kind is missing; expected {KIND:?}"),
            ))
        }
    }
    decode(text, format)
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, format: Format) -> Result<T, ParseError> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let position = (e.line() > 0).then(|| (e.line(), e.column()));
            ParseError::at(position, scrub_secrets(text, clean_message(&e.to_string())))
        }),
        Format::Yaml => serde_saphyr::from_str(text).map_err(|e| {
            let mut position = e.location().and_then(|l| {
                let line = usize::try_from(l.line()).unwrap_or(0);
                let col = usize::try_from(l.column()).unwrap_or(0);
                (line > 0).then_some((line, col.max(1)))
            });
            let message = scrub_secrets(text, clean_message(&e.to_string()));
            // saphyr points at the enclosing mapping; point at the key.
            if let (Some(field), Some((line, _))) = (unknown_field(&message), position) {
                position = locate_key_from(text, field, line).or(position);
            }
            ParseError::at(position, message)
        }),
    }
}

/// Drops the position suffix/prefix the parsers add (we report our own) and
/// any quoted scalar value, which could be a secret.
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw);
    let mut msg = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    msg = msg.strip_prefix("error: ").unwrap_or(msg);
    // saphyr: `line 5 column 20: …`
    if let Some(rest) = msg.strip_prefix("line ") {
        if let Some((pos, tail)) = rest.split_once(": ") {
            if pos
                .split(" column ")
                .all(|n| n.trim().parse::<u64>().is_ok())
            {
                msg = tail;
            }
        }
    }
    redact_quoted_values(msg.trim())
}

/// The field name of an ``unknown field `x` `` message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// `invalid type: string "hunter2", expected …` → `invalid type: string, expected …`;
/// ``invalid bool: `hunter2` `` → ``invalid bool: <value>``; ``integer `123` ``
/// → `integer <value>`. Field names (``unknown field `x` ``), the schema's
/// own words after `, expected` and punctuation (``expected `,` or `}` ``)
/// stay.
fn redact_quoted_values(msg: &str) -> String {
    let out = redact_double_quoted(msg);
    let (head, tail) = match out.find(", expected") {
        Some(i) => out.split_at(i),
        None => (out.as_str(), ""),
    };
    let mut result = String::with_capacity(out.len());
    let mut rest = head;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        let inner = &rest[open + 1..open + 1 + len];
        let before = &rest[..open];
        let keep = before.ends_with("field ")
            || (inner.chars().count() <= 2 && !inner.chars().any(char::is_alphanumeric));
        result.push_str(before);
        if keep {
            result.push_str(&rest[open..open + len + 2]);
        } else {
            result.push_str("<value>");
        }
        rest = &rest[open + len + 2..];
    }
    result.push_str(rest);
    result.push_str(tail);
    result
}

/// Drops the quoted value after `string `, `value ` or `variant `. serde
/// writes it with Rust's escapes (`"ab\"cd"`), so the closing quote is the
/// first one not escaped; a value without one is dropped to the end.
fn redact_double_quoted(msg: &str) -> String {
    const KINDS: [&str; 3] = ["string \"", "value \"", "variant \""];
    let mut out = msg.to_owned();
    for k in KINDS {
        let mut from = 0;
        while let Some(found) = out[from..].find(k) {
            let start = from + found;
            let value_start = start + k.len();
            let mut end = out.len();
            let mut escaped = false;
            for (i, c) in out[value_start..].char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = value_start + i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            let kind_word = &k[..k.len() - 2];
            out.replace_range(start..end, kind_word);
            from = start + kind_word.len();
        }
    }
    out
}

/// Defence in depth: the raw text of every secret field (`activationCode`,
/// matched case-insensitively like nodeadm's decoder) is cut out of a decode
/// message, whole and piece by piece, whatever the parser chose to quote.
fn scrub_secrets(text: &str, msg: String) -> String {
    const SECRET_KEYS: [&str; 1] = ["activationcode"];
    let mut out = msg;
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        for key in SECRET_KEYS {
            let mut from = 0;
            while let Some(i) = lower[from..].find(key) {
                let after = from + i + key.len();
                from = after;
                let Some(colon) = line[after..].find(':') else {
                    continue;
                };
                let raw = line[after + colon + 1..].trim();
                let pieces = std::iter::once(raw).chain(raw.split(|c: char| {
                    !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'))
                }));
                for piece in pieces.filter(|p| p.len() >= 4) {
                    out = out.replace(piece, "<redacted>");
                }
            }
        }
    }
    out
}

fn mime_line(text: &str) -> Option<usize> {
    text.lines().take(20).enumerate().find_map(|(i, l)| {
        let l = l.trim().to_ascii_lowercase();
        (l.starts_with("mime-version:") || l.starts_with("content-type: multipart/"))
            .then_some(i + 1)
    })
}

/// The line of a `---` that starts a second document.
fn second_document(text: &str) -> Option<usize> {
    let mut seen_content = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            if seen_content {
                return Some(i + 1);
            }
            continue;
        }
        if t == "..." {
            continue;
        }
        let trimmed = t.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            seen_content = true;
        }
    }
    None
}

/// 1-based line and column of the first occurrence of `key` as a mapping
/// key (`key:` in YAML, `"key":` in JSON).
pub fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    locate_key_from(text, key, 1)
}

/// Like [`locate_key`], searching from line `from` (1-based) on.
pub fn locate_key_from(text: &str, key: &str, from: usize) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, line)| {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let rest = trimmed.strip_prefix("- ").unwrap_or(trimmed);
            let offset = trimmed.len() - rest.len();
            for quoted in [false, true] {
                let candidate = if quoted {
                    format!("\"{key}\"")
                } else {
                    key.to_owned()
                };
                if let Some(after) = rest.strip_prefix(candidate.as_str()) {
                    if after.trim_start().starts_with(':') {
                        return Some((i + 1, indent + offset + 1));
                    }
                }
                // JSON objects on one line: `{"a": 1, "key": 2}`.
                if quoted {
                    if let Some(pos) = line.find(&candidate) {
                        if line[pos + candidate.len()..].trim_start().starts_with(':') {
                            return Some((i + 1, line[..pos].chars().count() + 1));
                        }
                    }
                }
            }
            None
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: r\n";

    #[test]
    fn minimal_yaml_and_json() {
        let c = parse(MINIMAL).expect("yaml");
        assert_eq!(c.spec.cluster.name, "c");
        let json = r#"{"apiVersion":"node.eks.aws/v1alpha1","kind":"NodeConfig","spec":{"cluster":{"name":"c","region":"r"}}}"#;
        assert_eq!(parse(json).expect("json").spec.cluster.region, "r");
    }

    #[test]
    fn unknown_field_is_named_with_position() {
        let text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    zone: a\n";
        let e = parse(text).unwrap_err();
        assert!(e.message.contains("unknown field `zone`"), "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(6), "{e}");
    }

    #[test]
    fn wrong_header() {
        let e = parse("apiVersion: v1\nkind: NodeConfig\n").unwrap_err();
        assert_eq!(e.position, Some((1, 1)));
        assert!(
            e.message.contains("expects \"node.eks.aws/v1alpha1\""),
            "{e}"
        );
        let e = parse("apiVersion: node.eks.aws/v1alpha1\nkind: ConfigMap\n").unwrap_err();
        assert_eq!(e.position, Some((2, 1)));
        assert!(e.message.contains("kind is \"ConfigMap\""), "{e}");
        let e = parse("kind: NodeConfig\n").unwrap_err();
        assert!(e.message.contains("apiVersion is missing"), "{e}");
    }

    #[test]
    fn second_document_and_mime_are_rejected() {
        let e = parse(&format!("---\n{MINIMAL}---\n{MINIMAL}")).unwrap_err();
        assert_eq!(e.position, Some((8, 1)), "{e}");
        assert!(e.message.contains("second YAML document"));
        let mime = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\n";
        let e = parse(mime).unwrap_err();
        assert!(e.message.contains("MIME multipart"), "{e}");
        assert!(parse("  \n").unwrap_err().message.contains("empty"));
    }

    #[test]
    fn json_syntax_error_has_position() {
        let e = parse("{\"apiVersion\": \"node.eks.aws/v1alpha1\",\n \"kind\": }").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    }

    #[test]
    fn values_are_not_quoted_in_errors() {
        let text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    enableOutpost: \"hunter2-secret\"\n";
        let e = parse(text).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(
            redact_quoted_values("invalid type: string \"x\", expected a boolean"),
            "invalid type: string, expected a boolean"
        );
        assert_eq!(
            redact_quoted_values("invalid YAML 1.1 bool: `hunter2`"),
            "invalid YAML 1.1 bool: <value>"
        );
        assert_eq!(
            redact_quoted_values("unknown field `zone`, expected one of name"),
            "unknown field `zone`, expected one of name"
        );
    }

    /// Security review (issue 15, finding 8): a numeric JSON activation
    /// code appeared whole in the type error, and a quoted value with an
    /// escaped quote leaked the part after it.
    #[test]
    fn secret_values_never_reach_decode_errors() {
        let json = |ssm: &str| {
            format!(
                "{{\"apiVersion\": \"node.eks.aws/v1alpha1\", \"kind\": \"NodeConfig\", \"spec\": {{\"hybrid\": {{\"ssm\": {ssm}}}}}}}"
            )
        };
        for (text, secret) in [
            (json("{\"activationCode\": 123456789012345678901234}"), "12345678"),
            (json("{\"activationCode\": 98765432109876543210}"), "98765432"),
            (json("{\"activationCode\": true}"), "true"),
            (json("\"Xk3p\\\"Q9vL2mN8rT5wY7zA1bC4dE6fG0hJ\""), "Q9vL2mN8"),
            (json("{\"activationCode\": \"Xk3p\", \"activationCode\": 1}"), "Xk3p"),
            ("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    enableOutpost: \"ab\\\"hunter2-secret\"\n".to_owned(), "hunter2"),
        ] {
            let e = parse(&text).expect_err(&text).to_string();
            assert!(!e.contains(secret), "{text}\n=> {e}");
            assert!(!e.contains("e+23"), "{e}");
        }
        let e = parse(&json("{\"activationCode\": 123456789012345678901234}")).expect_err("number");
        assert_eq!(
            e.message,
            "invalid type: floating point <value>, expected a string"
        );
        assert_eq!(
            redact_quoted_values("invalid type: string \"ab\\\"cd\", expected a boolean"),
            "invalid type: string, expected a boolean"
        );
        assert_eq!(
            redact_quoted_values("expected `,` or `}`"),
            "expected `,` or `}`"
        );
        assert_eq!(
            redact_quoted_values("unknown variant `hunter2`, expected one of `a`, `b`"),
            "unknown variant <value>, expected one of `a`, `b`"
        );
    }

    #[test]
    fn keys_are_located() {
        let text = "a:\n  b: 1\n  - cidr: x\n";
        assert_eq!(locate_key(text, "b"), Some((2, 3)));
        assert_eq!(locate_key(text, "cidr"), Some((3, 5)));
        assert_eq!(locate_key("{\"x\": {\"name\": 1}}", "name"), Some((1, 8)));
        assert_eq!(locate_key(text, "zzz"), None);
    }
}

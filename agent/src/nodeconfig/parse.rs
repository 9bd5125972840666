//! Reading a NodeConfig file as hybrid nodeadm does: YAML or JSON, the
//! first document, decoded strictly into nodeadm's internal type. Every
//! error says where; what nodeadm lets through comes back as notices.

use super::decode::{self, Notice};
use super::positions::KeyPositions;
use super::yaml11;
use crate::model::nodeconfig::{NodeConfig, API_VERSION, KIND};
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

/// A NodeConfig as nodeadm decodes it, with what it accepts but a person
/// should hear about.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: NodeConfig,
    pub notices: Vec<Notice>,
    /// `cluster.certificateAuthority` was given, even empty: nodeadm then
    /// does not fetch it from the EKS API.
    pub certificate_authority_given: bool,
    /// Where each key of the file is.
    pub positions: KeyPositions,
}

/// Parses and strictly decodes a NodeConfig.
pub fn parse(text: &str) -> Result<NodeConfig, ParseError> {
    parse_full(text).map(|p| p.config)
}

/// Parses a NodeConfig exactly as `nodeadm init -c file://…` does
/// (internal/api/bridge/decode.go `DecodeStrictNodeConfig`: sigs.k8s.io/yaml
/// strict into the internal type), see [`yaml11`](super::yaml11) and
/// [`decode`](super::decode).
pub fn parse_full(text: &str) -> Result<Parsed, ParseError> {
    if text.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(ParseError::at(None, "the file is empty"));
    }
    if let Some(line) = mime_line(text) {
        return Err(ParseError::at(
            Some((line, 1)),
            "this is MIME multipart user data; hybrid nodeadm reads a plain NodeConfig \
             (YAML or JSON) from the file given to `nodeadm init -c file://…`",
        ));
    }
    let doc = yaml11::read(text).map_err(|e| {
        // The scanner's own words may quote the text; ours never do.
        let message = match e {
            yaml11::ReadError::Syntax { .. } => clean_message(&e.to_string()),
            _ => e.to_string(),
        };
        ParseError::at(Some(e.pos()), scrub_secrets(text, message))
    })?;
    let positions = KeyPositions::of(doc.root.as_ref());
    let decoded = decode::decode(doc.root.as_ref())
        .map_err(|e| ParseError::at(Some(e.pos()), scrub_secrets(text, e.to_string())))?;
    let mut notices = decoded.notices;
    if let Some(pos) = doc.ignored_from {
        notices.push(Notice {
            pos,
            field: String::new(),
            message: "a second YAML document starts here; nodeadm reads only the first and \
                      ignores the rest without a word: remove it"
                .into(),
        });
    }
    notices.extend(header_notices(text, &positions, &decoded.json));
    let config: NodeConfig = serde_json::from_value(decoded.json)
        .map_err(|e| ParseError::at(None, clean_message(&e.to_string())))?;
    Ok(Parsed {
        config,
        notices,
        certificate_authority_given: decoded.certificate_authority_given,
        positions,
    })
}

/// nodeadm's `file://` source decodes without looking at `apiVersion` or
/// `kind` (only the `imds://` path checks them), so a wrong one is a
/// warning: it still joins, but other tools will not read the file.
fn header_notices(text: &str, positions: &KeyPositions, json: &serde_json::Value) -> Vec<Notice> {
    let mut out = Vec::new();
    for (key, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        let got = json.get(key).and_then(|v| v.as_str());
        if got == Some(expected) {
            continue;
        }
        let what = match got {
            Some(other) => format!("{key} is {other:?}"),
            None => format!("{key} is missing"),
        };
        out.push(Notice {
            pos: positions
                .get(key)
                .or_else(|| locate_key(text, key))
                .unwrap_or((1, 1)),
            field: key.to_owned(),
            message: format!(
                "{what}; expected {expected:?}. nodeadm init -c file://… does not check it, \
                 but nodeadm's imds:// source and other tools reject the file"
            ),
        });
    }
    out
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

    /// nodeadm's file:// source never looks at apiVersion/kind
    /// (internal/configprovider/file.go → DecodeStrictNodeConfig).
    #[test]
    fn wrong_or_missing_header_is_a_warning_not_a_failure() {
        let p = parse_full("apiVersion: v1\nkind: NodeConfig\n").expect("nodeadm accepts it");
        assert_eq!(p.notices.len(), 1, "{:?}", p.notices);
        assert_eq!(p.notices[0].pos, (1, 1));
        assert!(p.notices[0]
            .message
            .starts_with("apiVersion is \"v1\"; expected \"node.eks.aws/v1alpha1\""));
        let p =
            parse_full("apiVersion: node.eks.aws/v1alpha1\nkind: ConfigMap\n").expect("accepted");
        assert_eq!(p.notices[0].pos, (2, 1));
        assert!(p.notices[0].message.starts_with("kind is \"ConfigMap\""));
        let p = parse_full("kind: NodeConfig\n").expect("accepted");
        assert!(p.notices[0].message.starts_with("apiVersion is missing"));
        assert!(parse_full(MINIMAL).expect("ok").notices.is_empty());
    }

    #[test]
    fn second_document_is_ignored_with_a_warning_and_mime_is_rejected() {
        let p = parse_full(&format!("---\n{MINIMAL}---\n{MINIMAL}")).expect("first document");
        assert_eq!(p.notices.len(), 1, "{:?}", p.notices);
        assert_eq!(p.notices[0].pos, (8, 1));
        assert!(p.notices[0].message.contains("second YAML document"));
        // What follows the first document is not even parsed.
        assert!(parse_full(&format!("{MINIMAL}---\nspec: [unclosed\n")).is_ok());
        let mime = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\n";
        let e = parse(mime).unwrap_err();
        assert!(e.message.contains("MIME multipart"), "{e}");
        assert!(parse("  \n").unwrap_err().message.contains("empty"));
        assert!(parse("\u{feff}\n").unwrap_err().message.contains("empty"));
    }

    #[test]
    fn bom_and_crlf_are_tolerated() {
        let text = format!("\u{feff}{}", MINIMAL.replace('\n', "\r\n"));
        let p = parse_full(&text).expect("BOM + CRLF");
        assert_eq!(p.config.spec.cluster.region, "r");
        assert!(p.notices.is_empty(), "{:?}", p.notices);
    }

    #[test]
    fn duplicate_key_is_rejected_with_its_line() {
        let e = parse(&format!("{MINIMAL}    name: d\n")).unwrap_err();
        assert_eq!(e.position, Some((7, 5)), "{e}");
        assert_eq!(
            e.message,
            "key \"name\" is already set in this mapping (line 5); nodeadm's strict decoder rejects duplicate keys"
        );
    }

    #[test]
    fn json_syntax_error_has_position() {
        let e = parse(
            "{\"apiVersion\": \"node.eks.aws/v1alpha1\",\n \"kind\": \"NodeConfig\" \"spec\": {}}",
        )
        .unwrap_err();
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
            // nodeadm accepts a number or boolean as the code (it becomes
            // text); whatever the verdict, no message shows the value.
            match parse_full(&text) {
                Ok(p) => {
                    for n in &p.notices {
                        assert!(!n.message.contains(secret), "{text}\n=> {n:?}");
                    }
                }
                Err(e) => assert!(!e.to_string().contains(secret), "{text}\n=> {e}"),
            }
        }
        // What nodeadm hands its validator: the float32 text of the number.
        let c = parse(&json("{\"activationCode\": 123456789012345678901234}")).expect("number");
        let code = c
            .spec
            .hybrid
            .and_then(|h| h.ssm)
            .expect("ssm")
            .activation_code;
        assert_eq!(code.expose(), "1.2345679e+23");
        let e = parse(&json("\"Xk3p\\\"Q9vL2mN8rT5wY7zA1bC4dE6fG0hJ\""))
            .expect_err("string for a struct");
        assert_eq!(e.message, "spec.hybrid.ssm must be a mapping, not a string");
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

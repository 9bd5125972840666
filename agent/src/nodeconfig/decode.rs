//! The JSON half of nodeadm's decoder: what sigs.k8s.io/yaml v1.6 and Go's
//! `encoding/json` (with `DisallowUnknownFields`) do with the tree
//! [`yaml11`](super::yaml11) read, checked against the hybrid nodeadm's
//! *internal* `NodeConfig` type (internal/api/types.go, v1.0.20) — the type
//! `nodeadm init -c file://…` decodes into, which has no EC2-only fields.
//!
//! Go's rules reproduced here:
//! - keys match fields case-insensitively (`activationID` sets
//!   `activationId`); an exact match wins; when two spellings of one field
//!   are given, the one that sorts last wins (sigs.k8s.io/yaml writes the map
//!   as JSON with sorted keys, and the last value set stays);
//! - a number or boolean given for a string field becomes its text
//!   (`yes` → `"true"`, `1.10` → `"1.1"`, floats through float32 formatting);
//!   `apiVersion`/`kind` are an exception (they sit in an embedded struct
//!   the conversion does not look into) and must be strings;
//! - `null` leaves a field unset;
//! - `[]byte` (`certificateAuthority`) is padded standard base64, line
//!   breaks ignored, or a list of byte values;
//! - an unknown field is an error.
//!
//! The output is a JSON value with canonical key spellings, which the
//! serde model then reads without surprises; what nodeadm accepts but a
//! person should hear about comes back as [`Notice`]s.

use super::scalars::go_float32;
use super::yaml11::{Node, Pos, Value};
use serde_json::{Map, Value as Json};

/// What a field holds, in Go's terms.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// `string` (YAML scalars are converted to text).
    Str,
    /// `string` inside `metav1.TypeMeta`: no conversion.
    TypeMetaStr,
    Bool,
    Int,
    /// `[]byte`.
    Bytes,
    /// `[]string`.
    Strings,
    /// `map[string]string`.
    StrMap,
    /// `map[string]runtime.RawExtension`: any JSON per key.
    RawMap,
    /// A type with its own JSON decoding that accepts any JSON.
    Raw,
    /// `metav1.Time`: an RFC 3339 string or null.
    Time,
    Struct(&'static [(&'static str, Ty)]),
}

const OBJECT_META: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("generateName", Ty::Str),
    ("namespace", Ty::Str),
    ("selfLink", Ty::Str),
    ("uid", Ty::Str),
    ("resourceVersion", Ty::Str),
    ("generation", Ty::Int),
    ("creationTimestamp", Ty::Time),
    ("deletionTimestamp", Ty::Time),
    ("deletionGracePeriodSeconds", Ty::Int),
    ("labels", Ty::StrMap),
    ("annotations", Ty::StrMap),
    ("ownerReferences", Ty::Raw),
    ("finalizers", Ty::Strings),
    ("managedFields", Ty::Raw),
];

const CLUSTER: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("region", Ty::Str),
    ("apiServerEndpoint", Ty::Str),
    ("certificateAuthority", Ty::Bytes),
    ("cidr", Ty::Str),
    ("enableOutpost", Ty::Bool),
    ("id", Ty::Str),
];

const SSM: &[(&str, Ty)] = &[("activationCode", Ty::Str), ("activationId", Ty::Str)];

const IAM_RA: &[(&str, Ty)] = &[
    ("nodeName", Ty::Str),
    ("trustAnchorArn", Ty::Str),
    ("profileArn", Ty::Str),
    ("roleArn", Ty::Str),
    ("awsConfigPath", Ty::Str),
    ("certificatePath", Ty::Str),
    ("privateKeyPath", Ty::Str),
];

const HYBRID: &[(&str, Ty)] = &[
    ("enableCredentialsFile", Ty::Bool),
    ("iamRolesAnywhere", Ty::Struct(IAM_RA)),
    ("ssm", Ty::Struct(SSM)),
];

const SPEC: &[(&str, Ty)] = &[
    ("cluster", Ty::Struct(CLUSTER)),
    ("containerd", Ty::Struct(&[("config", Ty::Str)])),
    (
        "instance",
        Ty::Struct(&[("localStorage", Ty::Struct(&[("strategy", Ty::Str)]))]),
    ),
    (
        "kubelet",
        Ty::Struct(&[("config", Ty::RawMap), ("flags", Ty::Strings)]),
    ),
    ("hybrid", Ty::Struct(HYBRID)),
];

const STATUS: &[(&str, Ty)] = &[
    (
        "instance",
        Ty::Struct(&[
            ("id", Ty::Str),
            ("region", Ty::Str),
            ("type", Ty::Str),
            ("availabilityZone", Ty::Str),
            ("mac", Ty::Str),
            ("privateDnsName", Ty::Str),
        ]),
    ),
    ("hybrid", Ty::Struct(&[("nodeName", Ty::Str)])),
    ("default", Ty::Struct(&[("sandboxImage", Ty::Str)])),
];

const NODE_CONFIG: &[(&str, Ty)] = &[
    ("apiVersion", Ty::TypeMetaStr),
    ("kind", Ty::TypeMetaStr),
    ("metadata", Ty::Struct(OBJECT_META)),
    ("spec", Ty::Struct(SPEC)),
    ("status", Ty::Struct(STATUS)),
];

/// Fields the EC2 (AL2023) nodeadm knows and the hybrid one does not, so
/// an unknown-field error can say why.
const EC2_ONLY: [&str; 5] = [
    "spec.featureGates",
    "spec.containerd.baseRuntimeSpec",
    "spec.kubelet.maxPodsExpression",
    "spec.instance.environment",
    "spec.instance.network",
];

/// Why nodeadm's decoder rejects the file. Messages never hold a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown field `{key}` in {parent}{hint}")]
    UnknownField {
        pos: Pos,
        key: String,
        parent: String,
        hint: String,
    },
    #[error("{path} must be {expected}, not {got}")]
    Type {
        pos: Pos,
        path: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("{path} is not valid base64 ({why}); nodeadm decodes it as Go decodes []byte: the standard alphabet (A-Z a-z 0-9 + /) with `=` padding to a multiple of 4, line breaks allowed (use `base64 -w0 ca.crt`)")]
    Base64 { pos: Pos, path: String, why: String },
    #[error("{path} holds NaN or an infinity, which nodeadm cannot encode as JSON")]
    NotJson { pos: Pos, path: String },
}

impl DecodeError {
    pub fn pos(&self) -> Pos {
        match self {
            DecodeError::UnknownField { pos, .. }
            | DecodeError::Type { pos, .. }
            | DecodeError::Base64 { pos, .. }
            | DecodeError::NotJson { pos, .. } => *pos,
        }
    }
}

/// Something nodeadm accepts that a person should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub pos: Pos,
    pub field: String,
    pub message: String,
}

/// The decoded NodeConfig as JSON with canonical keys, and the notices.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub json: Json,
    pub notices: Vec<Notice>,
    /// `certificateAuthority` was given (even as `""`): nodeadm then does not
    /// fetch it from DescribeCluster.
    pub certificate_authority_given: bool,
}

/// Decodes the YAML tree as nodeadm's `DecodeStrictNodeConfig` does.
pub fn decode(root: Option<&Node>) -> Result<Decoded, DecodeError> {
    let mut d = Decoder {
        notices: Vec::new(),
        ca_given: false,
    };
    let json = match root {
        // An empty file decodes to an empty NodeConfig.
        None => Json::Object(Map::new()),
        Some(n) => match d.value(n, Ty::Struct(NODE_CONFIG), "")? {
            Json::Null => Json::Object(Map::new()),
            v => v,
        },
    };
    Ok(Decoded {
        json,
        notices: d.notices,
        certificate_authority_given: d.ca_given,
    })
}

/// encoding/json's key folding: ASCII case, plus Unicode simple folding
/// (`ſ` matches `s`, the Kelvin sign matches `k`).
fn fold(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_ascii_uppercase()
            } else {
                let lower = c.to_lowercase().next().unwrap_or(c);
                let mut upper = lower.to_uppercase();
                match (upper.next(), upper.next()) {
                    (Some(u), None) => u,
                    _ => c,
                }
            }
        })
        .collect()
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

struct Decoder {
    notices: Vec<Notice>,
    ca_given: bool,
}

impl Decoder {
    fn type_error(n: &Node, path: &str, expected: &'static str) -> DecodeError {
        DecodeError::Type {
            pos: n.pos,
            path: path.to_owned(),
            expected,
            got: kind_name(&n.value),
        }
    }

    fn value(&mut self, n: &Node, ty: Ty, path: &str) -> Result<Json, DecodeError> {
        if n.value == Value::Null {
            return Ok(Json::Null);
        }
        match ty {
            Ty::Str => self.string(n, path, true),
            Ty::TypeMetaStr => self.string(n, path, false),
            Ty::Bool => match n.value {
                Value::Bool(b) => Ok(Json::Bool(b)),
                _ => Err(Self::type_error(n, path, "a boolean (true or false)")),
            },
            Ty::Int => match n.value {
                Value::Int(i) => Ok(Json::from(i)),
                _ => Err(Self::type_error(n, path, "a whole number")),
            },
            Ty::Time => match &n.value {
                Value::Str(s) => Ok(Json::String(s.clone())),
                _ => Err(Self::type_error(n, path, "an RFC 3339 time string")),
            },
            Ty::Bytes => self.bytes(n, path),
            Ty::Strings => match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.value(item, Ty::Str, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Json::Array),
                _ => Err(Self::type_error(n, path, "a list of strings")),
            },
            Ty::StrMap | Ty::RawMap => match &n.value {
                Value::Map(entries) => {
                    let mut out = Map::new();
                    for e in entries {
                        let p = join(path, &e.key);
                        let v = if matches!(ty, Ty::StrMap) {
                            self.value(&e.value, Ty::Str, &p)?
                        } else {
                            raw(&e.value, &p)?
                        };
                        out.insert(e.key.clone(), v);
                    }
                    Ok(Json::Object(out))
                }
                _ => Err(Self::type_error(n, path, "a mapping")),
            },
            Ty::Raw => raw(n, path),
            Ty::Struct(fields) => self.structure(n, fields, path),
        }
    }

    fn string(&mut self, n: &Node, path: &str, convert: bool) -> Result<Json, DecodeError> {
        let text = match &n.value {
            Value::Str(s) => return Ok(Json::String(s.clone())),
            Value::Int(i) if convert => i.to_string(),
            Value::Uint(u) if convert => u.to_string(),
            Value::Float(f) if convert => go_float32(*f),
            Value::Bool(b) if convert => b.to_string(),
            _ => return Err(Self::type_error(n, path, "a string")),
        };
        if let Some(plain) = n.plain.as_deref().filter(|p| *p != text) {
            let why = if matches!(n.value, Value::Bool(_)) {
                "YAML 1.1 reads it as a boolean"
            } else {
                "YAML reads it as a number"
            };
            // The activation code is a secret: say what happened, not what.
            let message = if fold(path).ends_with(&fold("activationCode")) {
                format!("{path} is written unquoted; {why}, so nodeadm uses a different text than written: quote the value")
            } else {
                format!("{path} is written unquoted as `{plain}`; {why}, so nodeadm uses \"{text}\": quote the value if you meant it as written")
            };
            self.notices.push(Notice {
                pos: n.pos,
                field: path.to_owned(),
                message,
            });
        }
        Ok(Json::String(text))
    }

    fn bytes(&mut self, n: &Node, path: &str) -> Result<Json, DecodeError> {
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        use base64::Engine;
        self.ca_given = true;
        match &n.value {
            Value::Str(s) => {
                // Go's StdEncoding skips CR and LF anywhere, nothing else;
                // it wants full padding and tolerates non-zero trailing bits.
                let compact: String = s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
                let engine = GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    GeneralPurposeConfig::new()
                        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
                        .with_decode_allow_trailing_bits(true),
                );
                match engine.decode(compact.as_bytes()) {
                    Ok(_) => Ok(Json::String(compact)),
                    Err(e) => {
                        let why = match e {
                            base64::DecodeError::InvalidPadding => {
                                "missing or wrong `=` padding".to_owned()
                            }
                            base64::DecodeError::InvalidLength(_) => {
                                "its length is not a multiple of 4".to_owned()
                            }
                            base64::DecodeError::InvalidByte(at, _)
                            | base64::DecodeError::InvalidLastSymbol(at, _) => {
                                format!("a character outside the alphabet at offset {at}")
                            }
                        };
                        Err(DecodeError::Base64 {
                            pos: n.pos,
                            path: path.to_owned(),
                            why,
                        })
                    }
                }
            }
            Value::Seq(items) => {
                // Go also fills []byte from a JSON list of numbers.
                let mut bytes = Vec::new();
                for item in items {
                    match item.value {
                        Value::Int(i) if (0..=255).contains(&i) => {
                            bytes.push(u8::try_from(i).unwrap_or(0))
                        }
                        _ => return Err(Self::type_error(item, path, "a byte value (0-255)")),
                    }
                }
                use base64::Engine as _;
                Ok(Json::String(
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                ))
            }
            _ => Err(Self::type_error(n, path, "a base64 string")),
        }
    }

    fn structure(
        &mut self,
        n: &Node,
        fields: &'static [(&'static str, Ty)],
        path: &str,
    ) -> Result<Json, DecodeError> {
        let Value::Map(entries) = &n.value else {
            return Err(Self::type_error(
                n,
                if path.is_empty() {
                    "the document"
                } else {
                    path
                },
                "a mapping",
            ));
        };
        // canonical name → (spelling used, line, value)
        let mut chosen: Vec<(&'static str, String, Pos, Json)> = Vec::new();
        for e in entries {
            let field = fields
                .iter()
                .find(|(name, _)| *name == e.key)
                .or_else(|| fields.iter().find(|(name, _)| fold(name) == fold(&e.key)));
            let Some(&(name, ty)) = field else {
                let full = join(path, &e.key);
                let hint = match EC2_ONLY.iter().find(|f| fold(f) == fold(&full)) {
                    Some(_) => {
                        ": only the EC2 (AL2023) nodeadm knows it; hybrid nodeadm rejects it"
                            .to_owned()
                    }
                    None => format!(
                        "; nodeadm knows {}",
                        fields
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(DecodeError::UnknownField {
                    pos: e.key_pos,
                    key: e.key.clone(),
                    parent: if path.is_empty() {
                        "the NodeConfig".to_owned()
                    } else {
                        path.to_owned()
                    },
                    hint,
                });
            };
            let full = join(path, name);
            if e.key != name {
                self.notices.push(Notice {
                    pos: e.key_pos,
                    field: full.clone(),
                    message: format!(
                        "`{}` is read as `{name}` (nodeadm matches keys case-insensitively): write `{name}`",
                        e.key
                    ),
                });
            }
            let v = self.value(&e.value, ty, &full)?;
            match chosen.iter_mut().find(|(c, ..)| *c == name) {
                Some(prev) => {
                    // The spelling that sorts last wins.
                    let (winner, loser) = if e.key.as_bytes() > prev.1.as_bytes() {
                        (e.key.clone(), prev.1.clone())
                    } else {
                        (prev.1.clone(), e.key.clone())
                    };
                    self.notices.push(Notice {
                        pos: e.key_pos,
                        field: full.clone(),
                        message: format!(
                            "{full} is given twice, as `{loser}` and `{winner}` (lines {} and {}); nodeadm uses the value of `{winner}`: keep one",
                            prev.2 .0, e.key_pos.0
                        ),
                    });
                    if winner == e.key {
                        *prev = (name, e.key.clone(), e.key_pos, v);
                    }
                }
                None => chosen.push((name, e.key.clone(), e.key_pos, v)),
            }
        }
        Ok(Json::Object(
            chosen
                .into_iter()
                .filter(|(.., v)| !v.is_null())
                .map(|(name, _, _, v)| (name.to_owned(), v))
                .collect(),
        ))
    }
}

/// Any JSON, as `runtime.RawExtension` takes it.
fn raw(n: &Node, path: &str) -> Result<Json, DecodeError> {
    Ok(match &n.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| DecodeError::NotJson {
                pos: n.pos,
                path: path.to_owned(),
            })?,
        Value::Str(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| raw(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|e| Ok((e.key.clone(), raw(&e.value, &join(path, &e.key))?)))
                .collect::<Result<_, DecodeError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeconfig::yaml11::read;

    fn run(text: &str) -> Result<Decoded, DecodeError> {
        decode(read(text).expect("reads").root.as_ref())
    }

    fn ca(value: &str) -> Result<Decoded, DecodeError> {
        run(&format!(
            "spec:\n  cluster:\n    certificateAuthority: {value}\n"
        ))
    }

    #[test]
    fn keys_match_case_insensitively_with_a_notice() {
        let d = run("spec:\n  hybrid:\n    ssm:\n      activationID: 0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\n").expect("accepted");
        assert_eq!(
            d.json["spec"]["hybrid"]["ssm"]["activationId"],
            "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
        );
        assert_eq!(d.notices.len(), 1, "{d:?}");
        assert_eq!(d.notices[0].pos, (4, 7));
        assert!(d.notices[0]
            .message
            .contains("`activationID` is read as `activationId`"));
        // Go's Unicode folding: `ſ` (long s) matches `s`.
        assert!(run("ſpec: {}\n").is_ok());
    }

    #[test]
    fn two_spellings_of_one_field_take_the_one_that_sorts_last() {
        let d = run("spec:\n  cluster:\n    name: b\n    NAME: a\n").expect("accepted");
        assert_eq!(d.json["spec"]["cluster"]["name"], "b");
        let d = run("spec:\n  cluster:\n    NAME: a\n    name: b\n").expect("accepted");
        assert_eq!(d.json["spec"]["cluster"]["name"], "b");
        assert!(d.notices.iter().any(|n| n.message.contains("given twice")));
    }

    #[test]
    fn unknown_and_ec2_only_fields_are_errors_with_position() {
        let e = run("spec:\n  cluster:\n    zone: a\n").unwrap_err();
        assert_eq!(e.pos(), (3, 5));
        assert!(e
            .to_string()
            .starts_with("unknown field `zone` in spec.cluster"));
        let e = run("spec:\n  featureGates:\n    X: true\n").unwrap_err();
        assert!(e.to_string().contains("only the EC2"), "{e}");
        let e = run("spec:\n  containerd:\n    baseRuntimeSpec: {}\n").unwrap_err();
        assert!(e.to_string().contains("only the EC2"), "{e}");
    }

    #[test]
    fn scalars_convert_into_string_fields_as_sigs_yaml_does() {
        let d = run("spec:\n  cluster:\n    name: yes\n    region: 1.10\n    id: 0123\n    enableOutpost: off\n  kubelet:\n    flags: [1, true]\n").expect("accepted");
        let c = &d.json["spec"]["cluster"];
        assert_eq!(c["name"], "true");
        assert_eq!(c["region"], "1.1");
        assert_eq!(c["id"], "83");
        assert_eq!(c["enableOutpost"], false);
        assert_eq!(d.json["spec"]["kubelet"]["flags"][1], "true");
        // `1` and `true` in a list read back as written: no notice.
        assert_eq!(d.notices.len(), 3, "{:?}", d.notices);
        // A quoted "yes" is not a boolean.
        let e = run("spec:\n  cluster:\n    enableOutpost: \"yes\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.cluster.enableOutpost must be a boolean (true or false), not a string"
        );
        // apiVersion is not converted.
        assert!(matches!(
            run("apiVersion: 1\n"),
            Err(DecodeError::Type { .. })
        ));
    }

    #[test]
    fn certificate_authority_is_padded_standard_base64() {
        assert!(ca("aGVsbG8=").is_ok());
        assert!(ca("aGVsbG8h").is_ok());
        assert!(
            ca("|\n      aGVs\n      bG8=").is_ok(),
            "line breaks are skipped"
        );
        let e = ca("aGVsbG8").unwrap_err();
        assert!(
            e.to_string().contains("padding") || e.to_string().contains("multiple of 4"),
            "{e}"
        );
        assert!(ca("aGVsbG8-").is_err(), "URL alphabet");
        assert!(ca("aGVs bG8=").is_err(), "spaces are not skipped");
        assert_eq!(ca("aGVsbG8").unwrap_err().pos(), (3, 27));
        // An empty string counts as given: nodeadm will not fetch the CA.
        assert!(ca("\"\"").expect("empty").certificate_authority_given);
        assert!(!ca("~").expect("null").certificate_authority_given);
    }

    #[test]
    fn raw_kubelet_config_and_nan() {
        let d = run("spec:\n  kubelet:\n    config:\n      maxPods: 110\n      x: [a, 1]\n")
            .expect("ok");
        assert_eq!(d.json["spec"]["kubelet"]["config"]["maxPods"], 110);
        assert!(matches!(
            run("spec:\n  kubelet:\n    config:\n      x: .nan\n"),
            Err(DecodeError::NotJson { .. })
        ));
    }
}

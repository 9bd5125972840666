//! Label values as the exposition formats need them. prometheus-client 0.24
//! writes `String` and `&str` label values verbatim, so a value holding a
//! quote and a newline (a registry endpoint or network target from a config
//! file) closed the label set early and forged whole sample lines. Every
//! label value that is not a fixed string is a [`LabelValue`], which escapes
//! `\`, `"` and newline as both the text format 0.0.4 and OpenMetrics
//! require; the two formats escape label values alike, so the OpenMetrics
//! text converted by `expfmt` stays escaped.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write;

/// A label value, escaped when encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelValue(String);

impl LabelValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for LabelValue {
    fn from(s: String) -> Self {
        LabelValue(s)
    }
}

impl From<&str> for LabelValue {
    fn from(s: &str) -> Self {
        LabelValue(s.to_owned())
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write_escaped(encoder, &self.0)
    }
}

/// Writes `value` with `\` → `\\`, `"` → `\"` and newline → `\n`.
pub fn write_escaped(out: &mut impl Write, value: &str) -> std::fmt::Result {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

/// One parsed sample line: name, label pairs (unescaped) and the value text.
pub type Sample = (String, Vec<(String, String)>, String);

/// Parses a sample line of either format strictly: `name{k="v",…} value`,
/// label values escaped as above (and only so). The invariant the tests and
/// the `http` fuzz target hold the encoder to.
/// A sample line that breaks the exposition format; says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SampleError(pub String);

pub fn parse_sample(line: &str) -> Result<Sample, SampleError> {
    let name_end = line
        .find(['{', ' '])
        .ok_or(SampleError("no value".into()))?;
    let name = &line[..name_end];
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    if !name_ok(name) {
        return Err(SampleError(format!("bad metric name {name:?}")));
    }
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                r = after;
                break;
            }
            let (key, after) = r
                .split_once("=\"")
                .ok_or(SampleError("label without =\"".into()))?;
            if !name_ok(key) || key.contains(':') {
                return Err(SampleError(format!("bad label name {key:?}")));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(SampleError("unterminated label value".into())),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(SampleError(format!("bad escape {other:?}"))),
                    },
                    Some((_, '\n')) => return Err(SampleError("newline in a label value".into())),
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            r = &after[end + 1..];
            r = r.strip_prefix(',').unwrap_or(r);
        }
        rest = r;
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or(SampleError("no space before the value".into()))?;
    let number = value.split(' ').next().unwrap_or("");
    let ok = number.parse::<f64>().is_ok() || matches!(number, "+Inf" | "-Inf" | "NaN");
    if !ok {
        return Err(SampleError(format!("bad sample value {number:?}")));
    }
    Ok((name.to_owned(), labels, value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, new_registry, Format};
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Labels {
        registry: LabelValue,
    }

    const HOSTILE: &str = "x\"} 1\nhybrid_node_gpu_driver_ok{forged=\"yes\"} 1\n# \\";

    /// Security review (issue 15, finding 4): a label value with a quote
    /// and a newline produced `hybrid_node_gpu_driver_ok{forged="yes"} 1`
    /// and output Prometheus rejects.
    #[test]
    fn hostile_label_values_stay_in_their_sample() {
        let mut registry = new_registry();
        let f: Family<Labels, Gauge> = Family::default();
        registry.register("registry_up", "up", f.clone());
        f.get_or_create(&Labels {
            registry: HOSTILE.into(),
        })
        .set(0);
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let text = encode(&registry, format).expect("encode");
            let samples: Vec<Sample> = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(|l| parse_sample(l).unwrap_or_else(|e| panic!("{e}: {l:?} in\n{text}")))
                .collect();
            assert_eq!(samples.len(), 1, "{text}");
            assert_eq!(samples[0].0, "hybrid_node_registry_up");
            assert_eq!(samples[0].1, [("registry".to_owned(), HOSTILE.to_owned())]);
            assert!(!text.contains("\nhybrid_node_gpu_driver_ok"), "{text}");
        }
    }

    #[test]
    fn strict_parse_rejects_what_the_old_encoder_wrote() {
        assert!(parse_sample("m{a=\"x\"} 1\"} 0").is_err());
        assert!(parse_sample("m{a=\"x\\q\"} 1").is_err());
        assert!(parse_sample("m{a=\"x\",b=\"y\\\"\\n\\\\\"} 1.5").is_ok());
        assert!(parse_sample("m 1").is_ok());
    }
}

//! Conversion of OpenMetrics text (what `prometheus-client` encodes) into the
//! Prometheus text format 0.0.4, for scrapers that do not ask for
//! OpenMetrics (`promtool`, older Prometheus, curl).
//!
//! The differences that matter for the metric types this agent uses:
//! counters are declared without the `_total` suffix in OpenMetrics but with
//! it in the text format; `info` becomes a gauge named `<name>_info`; `# UNIT`
//! and `# EOF` do not exist; `_created` samples and exemplars are dropped.

use std::fmt::Write;

/// Content type of [`to_prometheus_text`]'s output.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Info,
    Histogram,
    Other,
}

pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // HELP precedes TYPE in OpenMetrics; the name it is written under
    // depends on the type, so it waits for the TYPE line.
    let mut pending_help: Option<(&str, &str)> = None;
    let mut family = "";
    let mut kind = Kind::Other;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = rest.split_once(' ').or(Some((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = name;
            let (exposed, text_type, k) = match ty {
                "counter" => (format!("{name}_total"), "counter", Kind::Counter),
                "info" => (format!("{name}_info"), "gauge", Kind::Info),
                "gauge" => (name.to_owned(), "gauge", Kind::Other),
                "histogram" => (name.to_owned(), "histogram", Kind::Histogram),
                "summary" => (name.to_owned(), "summary", Kind::Other),
                "stateset" => (name.to_owned(), "gauge", Kind::Other),
                "gaugehistogram" => (name.to_owned(), "histogram", Kind::Histogram),
                _ => (name.to_owned(), "untyped", Kind::Other),
            };
            kind = k;
            if let Some((help_name, help)) = pending_help.take() {
                if help_name == name {
                    let _ = writeln!(out, "# HELP {exposed} {}", unescape_help(help));
                }
            }
            let _ = writeln!(out, "# TYPE {exposed} {text_type}");
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF`, comments.
        } else if !line.is_empty() {
            let sample = strip_exemplar(line);
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            let created = matches!(kind, Kind::Counter | Kind::Histogram)
                && name.strip_prefix(family) == Some("_created");
            if !created {
                out.push_str(sample);
                out.push('\n');
            }
        }
    }
    out
}

/// OpenMetrics escapes `"` in HELP; the text format does not.
fn unescape_help(help: &str) -> String {
    help.replace("\\\"", "\"")
}

/// Drops an exemplar (` # {…} value`) from a sample line. A `#` inside a
/// quoted label value is not an exemplar.
fn strip_exemplar(line: &str) -> &str {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return line[..i].trim_end(),
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_each_type() {
        let om = "\
# HELP hybrid_node_probe_runs Domain runs.
# TYPE hybrid_node_probe_runs counter
hybrid_node_probe_runs_total{domain=\"lifecycle\",result=\"ok\"} 3
hybrid_node_probe_runs_created{domain=\"lifecycle\",result=\"ok\"} 1700000000.0
# HELP hybrid_node_agent Agent build.
# TYPE hybrid_node_agent info
hybrid_node_agent_info{version=\"0.1.0\"} 1
# HELP hybrid_node_probe_duration_seconds Last run.
# TYPE hybrid_node_probe_duration_seconds gauge
# UNIT hybrid_node_probe_duration_seconds seconds
hybrid_node_probe_duration_seconds{domain=\"lifecycle\"} 0.001
# HELP h A \\\"histogram\\\".
# TYPE h histogram
h_bucket{le=\"0.005\"} 1 # {trace=\"a\"} 0.001
h_bucket{le=\"+Inf\"} 2
h_sum 0.02
h_count 2
h_created 1.0
# EOF
";
        let text = to_prometheus_text(om);
        let expected = "\
# HELP hybrid_node_probe_runs_total Domain runs.
# TYPE hybrid_node_probe_runs_total counter
hybrid_node_probe_runs_total{domain=\"lifecycle\",result=\"ok\"} 3
# HELP hybrid_node_agent_info Agent build.
# TYPE hybrid_node_agent_info gauge
hybrid_node_agent_info{version=\"0.1.0\"} 1
# HELP hybrid_node_probe_duration_seconds Last run.
# TYPE hybrid_node_probe_duration_seconds gauge
hybrid_node_probe_duration_seconds{domain=\"lifecycle\"} 0.001
# HELP h A \"histogram\".
# TYPE h histogram
h_bucket{le=\"0.005\"} 1
h_bucket{le=\"+Inf\"} 2
h_sum 0.02
h_count 2
";
        assert_eq!(text, expected);
    }

    #[test]
    fn hash_in_label_value_is_kept() {
        assert_eq!(
            strip_exemplar("m{summary=\"a # b\"} 1 # {x=\"y\"} 1"),
            "m{summary=\"a # b\"} 1"
        );
        assert_eq!(strip_exemplar("m{v=\"q\\\"#\"} 1"), "m{v=\"q\\\"#\"} 1");
    }

    #[test]
    fn gauge_named_like_created_is_kept() {
        let om = "# TYPE x_created gauge\nx_created 5\n";
        assert_eq!(
            to_prometheus_text(om),
            "# TYPE x_created gauge\nx_created 5\n"
        );
    }
}

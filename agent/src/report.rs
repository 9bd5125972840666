//! Renders a [`Report`] for people (a table grouped by domain, coloured on a
//! terminal) and for machines (JSON).

use crate::check::{Report, Status, Tally};
use crate::model::Phase;
use serde::Serialize;
use std::fmt::Write;

/// The JSON document `check --output json` prints.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    pub version: &'static str,
    pub phase: Option<Phase>,
    pub summary: Tally,
    pub exit_code: u8,
    pub checks: &'a [crate::check::Check],
}

pub fn json(report: &Report, phase: Option<Phase>) -> String {
    let doc = JsonReport {
        version: env!("CARGO_PKG_VERSION"),
        phase,
        summary: report.tally(),
        exit_code: report.exit_code(),
        checks: &report.checks,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Always,
    Never,
}

fn paint(colour: Colour, status: Status, text: &str) -> String {
    if colour == Colour::Never {
        return text.to_owned();
    }
    let code = match status {
        Status::Pass => "32",
        Status::Warn | Status::Unknown => "33",
        Status::Fail => "1;31",
        Status::NotApplicable => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The table `check` prints:
///
/// ```text
/// lifecycle
///   PASS  phase      phase installed (next: nodeadm init)
///   WARN  nodeadm    nodeadm is not installed (not on PATH, no install tracker)
///                    fix: download nodeadm …
/// ```
pub fn table(report: &Report, phase: Option<Phase>, colour: Colour) -> String {
    let mut out = String::new();
    let id_width = report
        .checks
        .iter()
        .map(|c| c.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut domain = "";
    for c in &report.checks {
        if c.domain != domain {
            if !domain.is_empty() {
                out.push('\n');
            }
            domain = c.domain;
            let _ = writeln!(out, "{domain}");
        }
        let label = format!("{:<4}", c.status.as_str().to_uppercase());
        let _ = writeln!(
            out,
            "  {}  {:<id_width$}  {}",
            paint(colour, c.status, &label),
            c.id,
            c.summary
        );
        if let Some(remedy) = &c.remedy {
            if c.status != Status::Pass && c.status != Status::NotApplicable {
                let _ = writeln!(out, "        {:<id_width$}  fix: {remedy}", "");
            }
        }
    }
    let tally = report.tally();
    let phase = phase.map_or("unknown", |p| p.as_str());
    let verdict = match report.exit_code() {
        0 => paint(colour, Status::Pass, "OK"),
        1 => paint(colour, Status::Warn, "WARNINGS"),
        _ => paint(colour, Status::Fail, "FAILED"),
    };
    let _ = writeln!(out, "\n{verdict}: phase {phase}; {tally}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Check;

    fn report() -> Report {
        Report::new(vec![
            Check::pass("lifecycle", "phase", "phase installed"),
            Check::new("lifecycle", "nodeadm", Status::Warn, "not installed")
                .with_remedy("install it"),
            Check::pass("gpu", "count", "8 GPUs").with_remedy("never shown"),
        ])
    }

    #[test]
    fn table_groups_by_domain_and_shows_remedies_of_problems() {
        let t = table(&report(), Some(Phase::Installed), Colour::Never);
        let expected = "\
lifecycle
  PASS  phase    phase installed
  WARN  nodeadm  not installed
                 fix: install it

gpu
  PASS  count    8 GPUs

WARNINGS: phase installed; 2 pass, 1 warn, 0 fail
";
        assert_eq!(t, expected);
        assert!(!t.contains('\x1b'));
        let coloured = table(&report(), None, Colour::Always);
        assert!(coloured.contains("\x1b[33mWARN\x1b[0m"));
    }

    #[test]
    fn json_carries_everything() {
        let v: serde_json::Value =
            serde_json::from_str(&json(&report(), Some(Phase::Joined))).expect("json");
        assert_eq!(v["phase"], "joined");
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["summary"]["warn"], 1);
        assert_eq!(v["checks"][1]["remedy"], "install it");
        assert_eq!(v["checks"][2]["domain"], "gpu");
    }
}

//! The common result model: every domain reports [`Check`]s, and a [`Report`]
//! is what `check` prints and what `/status` serves.

use serde::Serialize;
use std::fmt;

/// The verdict of one check.
///
/// The order is the order of severity, so `max()` over a set of statuses is
/// the worst one. `NotApplicable` ranks with `Pass`: a check that does not
/// apply to this host (no GPU, not initialized yet) is not a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Status {
    #[serde(rename = "n/a")]
    NotApplicable,
    #[serde(rename = "pass")]
    Pass,
    /// The agent could not tell (a probe timed out, a tool is missing).
    #[serde(rename = "unknown")]
    Unknown,
    #[serde(rename = "warn")]
    Warn,
    #[serde(rename = "fail")]
    Fail,
}

impl Status {
    /// Every status, in the order the `hybrid_node_check_status` series are
    /// exported.
    pub const ALL: [Status; 5] = [
        Status::Pass,
        Status::Warn,
        Status::Fail,
        Status::Unknown,
        Status::NotApplicable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
            Status::NotApplicable => "n/a",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One verdict about the host: what was checked, what was found, and what to
/// do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The domain that produced it (`lifecycle`, `nodeconfig`, `gpu`, …).
    pub domain: &'static str,
    /// A stable identifier within the domain; used as the `check` label, so it
    /// must come from a bounded set.
    pub id: String,
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// What to do about it; empty for checks that pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl Check {
    pub fn new(
        domain: &'static str,
        id: impl Into<String>,
        status: Status,
        summary: impl Into<String>,
    ) -> Self {
        Check {
            domain,
            id: id.into(),
            status,
            summary: summary.into(),
            remedy: None,
        }
    }

    pub fn pass(domain: &'static str, id: impl Into<String>, summary: impl Into<String>) -> Self {
        Check::new(domain, id, Status::Pass, summary)
    }

    pub fn not_applicable(
        domain: &'static str,
        id: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Check::new(domain, id, Status::NotApplicable, summary)
    }

    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }
}

/// The domains' names (their `domain` label), shared so that a domain can
/// name another in [`crate::domain::Domain::after`] without importing it.
pub mod names {
    pub const LIFECYCLE: &str = "lifecycle";
    pub const NODECONFIG: &str = "nodeconfig";
    pub const CONTAINERD: &str = "containerd";
    pub const REGISTRY: &str = "registry";
    pub const GPU: &str = "gpu";
    pub const NETWORK: &str = "network";
    pub const CREDENTIALS: &str = "credentials";
    pub const PREFLIGHT: &str = "preflight";
    pub const ENDPOINTS: &str = "endpoints";
}

/// Domains in the order a site admin reads them: where the host is, what
/// it will join with, then the resources it needs.
pub const DOMAIN_ORDER: [&str; 9] = [
    names::LIFECYCLE,
    names::NODECONFIG,
    names::PREFLIGHT,
    names::CONTAINERD,
    names::REGISTRY,
    names::CREDENTIALS,
    names::GPU,
    names::NETWORK,
    names::ENDPOINTS,
];

fn domain_rank(domain: &str) -> (usize, &str) {
    let rank = DOMAIN_ORDER
        .iter()
        .position(|d| *d == domain)
        .unwrap_or(DOMAIN_ORDER.len());
    (rank, domain)
}

/// Counts of checks by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub unknown: usize,
    #[serde(rename = "n/a")]
    pub not_applicable: usize,
}

impl Tally {
    pub fn of<'a>(checks: impl IntoIterator<Item = &'a Check>) -> Self {
        let mut t = Tally::default();
        for c in checks {
            match c.status {
                Status::Pass => t.pass += 1,
                Status::Warn => t.warn += 1,
                Status::Fail => t.fail += 1,
                Status::Unknown => t.unknown += 1,
                Status::NotApplicable => t.not_applicable += 1,
            }
        }
        t
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pass, {} warn, {} fail",
            self.pass, self.warn, self.fail
        )?;
        if self.unknown > 0 {
            write!(f, ", {} unknown", self.unknown)?;
        }
        Ok(())
    }
}

/// A set of checks from every domain, as `check` prints it and `/status`
/// serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(mut checks: Vec<Check>) -> Self {
        // Stable order: by domain, in the order a host goes through them,
        // then by the order the domain reported.
        checks.sort_by_key(|c| domain_rank(c.domain));
        Report { checks }
    }

    pub fn tally(&self) -> Tally {
        Tally::of(&self.checks)
    }

    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass)
    }

    /// The exit code of `check`: 0 when everything passes (or does not
    /// apply), 1 when anything warns or could not be determined, 2 when
    /// anything fails.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Status::Pass | Status::NotApplicable => 0,
            Status::Warn | Status::Unknown => 1,
            Status::Fail => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: Status) -> Check {
        Check::new("lifecycle", "x", status, "s")
    }

    #[test]
    fn exit_code_follows_the_worst_status() {
        assert_eq!(Report::new(vec![]).exit_code(), 0);
        assert_eq!(
            Report::new(vec![c(Status::Pass), c(Status::NotApplicable)]).exit_code(),
            0
        );
        assert_eq!(
            Report::new(vec![c(Status::Pass), c(Status::Warn)]).exit_code(),
            1
        );
        assert_eq!(Report::new(vec![c(Status::Unknown)]).exit_code(), 1);
        assert_eq!(
            Report::new(vec![c(Status::Fail), c(Status::Warn), c(Status::Pass)]).exit_code(),
            2
        );
    }

    #[test]
    fn tally_counts_and_displays() {
        let r = Report::new(vec![
            c(Status::Pass),
            c(Status::Pass),
            c(Status::Warn),
            c(Status::Unknown),
        ]);
        let t = r.tally();
        assert_eq!((t.pass, t.warn, t.fail, t.unknown), (2, 1, 0, 1));
        assert_eq!(t.to_string(), "2 pass, 1 warn, 0 fail, 1 unknown");
    }

    #[test]
    fn status_serializes_as_the_label_value() {
        let json = serde_json::to_string(&Status::NotApplicable).unwrap_or_default();
        assert_eq!(json, "\"n/a\"");
        for s in Status::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap_or_default(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}

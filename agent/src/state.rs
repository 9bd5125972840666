//! The cache of the latest results of every domain. Domains write it after
//! each run; `/metrics`, `/status` and the systemd status line only read it,
//! so nothing a client asks for ever waits on a probe.

use crate::check::{Check, Report};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, SystemTime};

/// How a domain run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The run finished (whatever its checks say).
    Ok,
    /// The run did not finish within `agent.probe_timeout`.
    Timeout,
    /// The run panicked.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Timeout, Outcome::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// The latest results of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub checks: Vec<Check>,
    #[serde(serialize_with = "unix_seconds")]
    pub finished_at: SystemTime,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    pub outcome: Outcome,
}

fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(crate::time::unix_seconds(*t))
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[derive(Debug, Default)]
pub struct Cache {
    domains: RwLock<BTreeMap<&'static str, Snapshot>>,
    /// Bumped whenever what the endpoint shows changes at once (a domain
    /// run landed, a reload was counted): a `/metrics` body rendered
    /// before is not served after.
    generation: std::sync::atomic::AtomicU64,
}

impl Cache {
    pub fn store(&self, domain: &'static str, snapshot: Snapshot) {
        self.domains
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(domain, snapshot);
        self.touch();
    }

    /// Marks the endpoint's view as changed (see [`Cache::generation`]).
    pub fn touch(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Changes whenever a domain's results or the agent's own counters
    /// changed at once.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Calls `f` with every domain's latest snapshot, in domain order,
    /// without copying them.
    pub fn with_snapshots<R>(&self, f: impl FnOnce(&BTreeMap<&'static str, Snapshot>) -> R) -> R {
        f(&self.domains.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every domain's latest checks.
    pub fn report(&self) -> Report {
        self.with_snapshots(|m| {
            Report::new(m.values().flat_map(|s| s.checks.iter().cloned()).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    #[test]
    fn latest_snapshot_wins() {
        let cache = Cache::default();
        let snap = |status| Snapshot {
            checks: vec![Check::new("lifecycle", "phase", status, "s")],
            finished_at: SystemTime::now(),
            duration: Duration::from_millis(3),
            outcome: Outcome::Ok,
        };
        cache.store("lifecycle", snap(Status::Fail));
        cache.store("lifecycle", snap(Status::Pass));
        let r = cache.report();
        assert_eq!(r.checks.len(), 1);
        assert_eq!(r.worst(), Status::Pass);
    }
}

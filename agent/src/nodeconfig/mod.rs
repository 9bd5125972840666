//! The NodeConfig domain: watch nodeadm's NodeConfig file, parse and
//! validate it like nodeadm does, keep the last good one in force when an
//! edit is bad, and publish it to the domains that build on it.

pub mod decode;
mod evaluate;
pub mod init;
pub mod lax;
pub mod parse;
pub mod positions;
pub mod scalars;
pub mod validate;
pub mod watch;
pub mod yaml11;

#[cfg(test)]
mod parity_tests;

use crate::check::{Check, Status};
use crate::config::Config;
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use crate::metrics::ResultLabel;
use crate::model::nodeconfig as model;
use crate::time::rfc3339;
use model::NodeConfig;
use parse::Format;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

pub const DOMAIN: &str = crate::check::names::NODECONFIG;

pub use crate::model::nodeconfig::Loaded;

pub use evaluate::{evaluate, evaluate_with};

/// What the file looked like at the last read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Missing,
    Unreadable(String),
    Content { hash: u64, len: usize },
}

#[derive(Debug)]
pub struct NodeConfigDomain {
    host: Host,
    path: PathBuf,
    debounce: Duration,
    interval: Duration,
    wake: Arc<Notify>,
    watch: Option<watch::DirWatch>,
    seen: Option<Seen>,
    checks: Vec<Check>,
    facts: Facts,
    valid: Gauge,
    last_change: Gauge<f64, AtomicU64>,
    reloads: Family<ResultLabel, Counter>,
}

impl NodeConfigDomain {
    pub fn new(config: &Config, host: Host, registry: &mut Registry, facts: Facts) -> Self {
        let valid = Gauge::default();
        let last_change = Gauge::<f64, AtomicU64>::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        for l in [ResultLabel::SUCCESS, ResultLabel::FAILURE] {
            let _ = reloads.get_or_create(&l);
        }
        registry.register(
            "nodeconfig_valid",
            "1 if the NodeConfig file currently on disk parses and passes nodeadm's validation",
            valid.clone(),
        );
        registry.register_with_unit(
            "nodeconfig_last_change_timestamp",
            "When the agent last saw the NodeConfig file's content change, in seconds since the Unix epoch",
            Unit::Seconds,
            last_change.clone(),
        );
        registry.register(
            "nodeconfig_reloads",
            "NodeConfig loads by result; a failed one keeps the last good NodeConfig in force",
            reloads.clone(),
        );
        NodeConfigDomain {
            host,
            path: config.nodeconfig.path.clone(),
            debounce: config.nodeconfig.debounce.get(),
            interval: config.nodeconfig.interval.get(),
            wake: Arc::new(Notify::new()),
            watch: None,
            seen: None,
            checks: Vec::new(),
            facts,
            valid,
            last_change,
            reloads,
        }
    }

    /// Keeps a watch on the file's directory, or its nearest existing
    /// ancestor until the directory appears.
    fn ensure_watch(&mut self) {
        let file = self.host.path(&self.path);
        let Some(target) = watch::watch_target(&file) else {
            return;
        };
        if self.watch.as_ref().is_some_and(|w| w.dir() == target) {
            return;
        }
        match watch::watch(&target, self.wake.clone()) {
            Ok(w) => {
                tracing::debug!(dir = %target.display(), "watching for NodeConfig changes");
                self.watch = Some(w);
            }
            Err(e) => {
                tracing::warn!(dir = %target.display(), error = %e, "cannot watch {} for NodeConfig changes ({e}); falling back to periodic reads", target.display());
                self.watch = None;
            }
        }
    }

    fn in_force(&self) -> String {
        match self.facts.nodeconfig() {
            Some(good) => format!(
                "; the last good NodeConfig (loaded {}) stays in force",
                rfc3339(good.loaded_at)
            ),
            None => "; no good NodeConfig has been loaded yet".to_owned(),
        }
    }

    fn evaluate(&mut self, seen: &Seen, bytes: &[u8]) -> Vec<Check> {
        let shown = self.path.display().to_string();
        match seen {
            Seen::Missing => {
                self.valid.set(0);
                // nodeadm init needs the file; afterwards admins often delete
                // it (it holds the activation code).
                let initialized = self
                    .facts
                    .phase()
                    .is_some_and(|p| p >= crate::model::Phase::Initialized);
                let file = if initialized {
                    Check::not_applicable(
                        DOMAIN,
                        "file",
                        format!("no NodeConfig at {shown}: not needed after nodeadm init (keep it for nodeadm upgrade){}", self.in_force()),
                    )
                } else {
                    Check::new(
                        DOMAIN,
                        "file",
                        Status::Warn,
                        format!("no NodeConfig at {shown}: nodeadm init needs one{}", self.in_force()),
                    )
                    .with_remedy("write the NodeConfig there (nodeadm init -c file://…) or set nodeconfig.path in the agent config")
                };
                let mut checks = vec![file];
                checks.push(Check::not_applicable(DOMAIN, "parse", "no file"));
                checks.extend(
                    validate::AREAS
                        .iter()
                        .map(|a| Check::not_applicable(DOMAIN, *a, "no file")),
                );
                checks
            }
            Seen::Unreadable(e) => {
                self.valid.set(0);
                vec![Check::new(
                    DOMAIN,
                    "file",
                    Status::Fail,
                    format!("cannot read {shown}: {e}{}", self.in_force()),
                )
                .with_remedy("check the file's permissions")]
            }
            Seen::Content { len, .. } => {
                self.last_change
                    .set(crate::time::unix_seconds(SystemTime::now()));
                let text = String::from_utf8_lossy(bytes);
                let format = parse::detect_format(&text);
                let file_check = |status, suffix: String| {
                    Check::new(
                        DOMAIN,
                        "file",
                        status,
                        format!(
                            "{shown} ({}, {len} bytes){suffix}",
                            if format == Format::Json {
                                "JSON"
                            } else {
                                "YAML"
                            }
                        ),
                    )
                };
                match evaluate(&text, &self.path, &self.host, SystemTime::now()) {
                    Ok((config, checks)) => {
                        self.valid.set(1);
                        let _ = self.reloads.get_or_create(&ResultLabel::SUCCESS).inc();
                        tracing::info!(path = %shown, "NodeConfig {shown} loaded");
                        self.facts.set_nodeconfig(Arc::new(Loaded::new(
                            config,
                            self.path.clone(),
                            format,
                        )));
                        let mut all = vec![file_check(Status::Pass, "; in force".to_owned())];
                        all.extend(checks);
                        all
                    }
                    Err(checks) => {
                        self.valid.set(0);
                        let _ = self.reloads.get_or_create(&ResultLabel::FAILURE).inc();
                        let why = checks
                            .iter()
                            .find(|c| c.status == Status::Fail)
                            .map_or("see the nodeconfig checks", |c| c.summary.as_str());
                        tracing::warn!(path = %shown, "NodeConfig {shown} rejected: {why}; keeping the last good one");
                        let mut all = vec![file_check(
                            Status::Fail,
                            format!(" is not a valid NodeConfig{}", self.in_force()),
                        )
                        .with_remedy("see the failing nodeconfig checks")];
                        all.extend(checks);
                        all
                    }
                }
            }
        }
    }
}

impl Domain for NodeConfigDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn trigger(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }

    fn after(&self) -> &'static [&'static str] {
        &[crate::check::names::LIFECYCLE]
    }

    fn debounce(&self) -> Duration {
        self.debounce
    }

    fn reconfigure(&mut self, config: &Config) {
        let c = &config.nodeconfig;
        self.interval = c.interval.get();
        if self.path != c.path || self.debounce != c.debounce.get() {
            self.path = c.path.clone();
            self.debounce = c.debounce.get();
            self.watch = None;
            self.seen = None;
        }
    }

    fn run(&mut self) -> Vec<Check> {
        self.ensure_watch();
        let (seen, bytes) = match std::fs::read(self.host.path(&self.path)) {
            Ok(bytes) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                (
                    Seen::Content {
                        hash: h.finish(),
                        len: bytes.len(),
                    },
                    bytes,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Seen::Missing, Vec::new()),
            Err(e) => (Seen::Unreadable(e.to_string()), Vec::new()),
        };
        // A missing file's verdict depends on the phase: always re-evaluated.
        if self.seen.as_ref() != Some(&seen) || seen == Seen::Missing {
            self.checks = self.evaluate(&seen, &bytes);
            self.seen = Some(seen);
        }
        self.checks.clone()
    }
}

//! Prometheus metrics: the registry every domain registers its families in,
//! the families that are always present, and text encoding.
//!
//! The registry is built once at start-up and shared read-only; metric values
//! are atomics the domains update after each run, and `hybrid_node_check_status`
//! is encoded straight from the result cache. A scrape therefore only encodes.

pub mod basic_auth;
pub mod conn;
pub mod expfmt;
pub mod label;
pub mod render;
pub mod server;
pub mod webconfig;

use crate::check::Status;
use crate::state::{Cache, Outcome};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Every metric name starts with this.
pub const PREFIX: &str = "hybrid_node";

/// A registry with the agent's prefix.
pub fn new_registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DomainLabel {
    domain: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RunLabels {
    domain: &'static str,
    result: &'static str,
}

/// `result="success"|"failure"`, for every reload and reconcile counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

impl ResultLabel {
    pub const SUCCESS: ResultLabel = ResultLabel { result: "success" };
    pub const FAILURE: ResultLabel = ResultLabel { result: "failure" };

    pub fn of(ok: bool) -> &'static ResultLabel {
        if ok {
            &Self::SUCCESS
        } else {
            &Self::FAILURE
        }
    }
}

/// The families every agent exports, whatever the host.
#[derive(Debug, Clone)]
pub struct CoreMetrics {
    probe_duration: Family<DomainLabel, Gauge<f64, AtomicU64>>,
    probe_runs: Family<RunLabels, Counter>,
    config_reloads: Family<ResultLabel, Counter>,
    config_last_reload_ok: Gauge,
    web_reloads: Family<ResultLabel, Counter>,
    web_last_reload_ok: Gauge,
    /// Told of every reload, so that the next scrape shows it.
    cache: Arc<Cache>,
}

impl CoreMetrics {
    pub fn register(registry: &mut Registry, cache: Arc<Cache>, started: SystemTime) -> Self {
        registry.register(
            "agent",
            "Agent build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(crate::time::unix_seconds(started));
        registry.register_with_unit(
            "agent_start_time",
            "Time the agent started, in seconds since the Unix epoch",
            Unit::Seconds,
            start,
        );
        let core = CoreMetrics {
            probe_duration: Family::default(),
            probe_runs: Family::default(),
            config_reloads: Family::default(),
            config_last_reload_ok: Gauge::default(),
            web_reloads: Family::default(),
            web_last_reload_ok: Gauge::default(),
            cache: cache.clone(),
        };
        core.config_last_reload_ok.set(1);
        core.web_last_reload_ok.set(1);
        for l in [ResultLabel::SUCCESS, ResultLabel::FAILURE] {
            let _ = core.config_reloads.get_or_create(&l);
            let _ = core.web_reloads.get_or_create(&l);
        }
        registry.register_with_unit(
            "probe_duration",
            "Wall-clock time of the latest run of a domain's probes",
            Unit::Seconds,
            core.probe_duration.clone(),
        );
        registry.register(
            "probe_runs",
            "Runs of a domain's probes by result (ok, timeout, error)",
            core.probe_runs.clone(),
        );
        registry.register(
            "agent_config_reloads",
            "Reloads of the agent config by result; a failed reload keeps the previous config",
            core.config_reloads.clone(),
        );
        registry.register(
            "agent_config_last_reload_successful",
            "1 if the latest agent config (re)load succeeded, 0 if the previous config is still in force",
            core.config_last_reload_ok.clone(),
        );
        registry.register(
            "agent_web_config_reloads",
            "Reloads of the web config (TLS, auth) by result; a failed reload keeps the previous one",
            core.web_reloads.clone(),
        );
        registry.register(
            "agent_web_config_last_reload_successful",
            "1 if the latest web config (re)load succeeded, 0 if the previous one is still in force",
            core.web_last_reload_ok.clone(),
        );
        registry.register_collector(Box::new(CheckStatus(cache)));
        core
    }

    /// Creates a domain's series at zero so that rates work from the start.
    pub fn init_domain(&self, domain: &'static str) {
        let _ = self.probe_duration.get_or_create(&DomainLabel { domain });
        for o in Outcome::ALL {
            let _ = self.probe_runs.get_or_create(&RunLabels {
                domain,
                result: o.as_str(),
            });
        }
    }

    pub fn observe_run(&self, domain: &'static str, outcome: Outcome, duration: Duration) {
        self.probe_duration
            .get_or_create(&DomainLabel { domain })
            .set(duration.as_secs_f64());
        self.probe_runs
            .get_or_create(&RunLabels {
                domain,
                result: outcome.as_str(),
            })
            .inc();
    }

    pub fn observe_web_reload(&self, ok: bool) {
        self.web_reloads.get_or_create(ResultLabel::of(ok)).inc();
        self.web_last_reload_ok.set(i64::from(ok));
        self.cache.touch();
    }

    pub fn observe_reload(&self, ok: bool) {
        self.config_reloads.get_or_create(ResultLabel::of(ok)).inc();
        self.config_last_reload_ok.set(i64::from(ok));
        self.cache.touch();
    }
}

/// `hybrid_node_check_status{domain,check,status}`, encoded from the cache at
/// scrape time: one series per status value, 1 for the current one.
#[derive(Debug)]
struct CheckStatus(Arc<Cache>);

impl Collector for CheckStatus {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "check_status",
            "Status of each check: 1 for the current status, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        self.0.with_snapshots(|snapshots| {
            for check in snapshots.values().flat_map(|s| s.checks.iter()) {
                for status in Status::ALL {
                    let labels = [
                        ("domain", label::LabelValue::from(check.domain)),
                        ("check", check.id.as_str().into()),
                        ("status", status.as_str().into()),
                    ];
                    ConstGauge::new(i64::from(check.status == status))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
            Ok(())
        })
    }
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, else the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => expfmt::OPENMETRICS_TEXT,
            Format::Prometheus => expfmt::PROMETHEUS_TEXT,
        }
    }
}

/// Encodes the registry in the given format.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut om = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut om, registry)?;
    Ok(match format {
        Format::OpenMetrics => om,
        Format::Prometheus => expfmt::to_prometheus_text(&om),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Check;
    use crate::state::Snapshot;

    #[test]
    fn check_status_has_one_series_per_status() {
        let cache = Arc::new(Cache::default());
        let mut registry = new_registry();
        let core = CoreMetrics::register(&mut registry, cache.clone(), SystemTime::now());
        core.init_domain("lifecycle");
        cache.store(
            "lifecycle",
            Snapshot {
                checks: vec![Check::new("lifecycle", "kubelet", Status::Fail, "down")],
                finished_at: SystemTime::now(),
                duration: Duration::from_millis(2),
                outcome: Outcome::Ok,
            },
        );
        core.observe_run("lifecycle", Outcome::Ok, Duration::from_millis(2));
        let text = encode(&registry, Format::Prometheus).expect("encode");
        for (status, v) in [
            ("pass", 0),
            ("warn", 0),
            ("fail", 1),
            ("unknown", 0),
            ("n/a", 0),
        ] {
            let line = format!(
                "hybrid_node_check_status{{domain=\"lifecycle\",check=\"kubelet\",status=\"{status}\"}} {v}\n"
            );
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        assert!(
            text.contains("hybrid_node_probe_runs_total{domain=\"lifecycle\",result=\"ok\"} 1\n")
        );
        assert!(text
            .contains("hybrid_node_probe_runs_total{domain=\"lifecycle\",result=\"timeout\"} 0\n"));
        assert!(text.contains("# TYPE hybrid_node_agent_info gauge\n"));
        assert!(!text.contains("# EOF"));
        let om = encode(&registry, Format::OpenMetrics).expect("encode");
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn format_negotiation() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}

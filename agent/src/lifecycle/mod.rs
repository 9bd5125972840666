//! Which nodeadm phase the host is in, so every other check can say whether
//! it applies yet: nothing installed → `nodeadm install` → `nodeadm init` →
//! kubelet running → joined.

use crate::check::{Check, Status};
use crate::config::Config;
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DOMAIN: &str = crate::check::names::LIFECYCLE;

/// Written by `nodeadm install`.
pub const TRACKER: &str = "/opt/nodeadm/tracker";
/// Written by `nodeadm init` (either is enough).
pub const INIT_FILES: [&str; 2] = [
    "/etc/eks/kubelet/environment",
    "/etc/kubernetes/kubelet/config.json",
];
/// The kubelet's serving certificate: it exists once the node has joined and
/// its CSR was approved.
pub const SERVING_CERT: &str = "/var/lib/kubelet/pki/kubelet-server-current.pem";
/// Where `nodeadm` is looked for besides `$PATH`.
const BIN_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

pub use crate::model::Phase;

mod evidence;
mod probe;
#[cfg(test)]
mod tests;

pub use evidence::Evidence;
pub use probe::{HealthzError, HttpHealthz, KubeletProbe};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// The lifecycle domain.
#[derive(Debug)]
pub struct Lifecycle {
    host: Host,
    healthz: SocketAddr,
    probe: Box<dyn KubeletProbe>,
    interval: Duration,
    phase_gauge: Family<PhaseLabel, Gauge>,
    facts: Facts,
}

impl Lifecycle {
    pub fn new(config: &Config, host: Host, registry: &mut Registry, facts: Facts) -> Self {
        let probe = HttpHealthz {
            addr: config.lifecycle.kubelet_healthz,
            timeout: Duration::from_secs(2),
        };
        Self::with_probe(config, host, registry, facts, Box::new(probe))
    }

    pub fn with_probe(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        probe: Box<dyn KubeletProbe>,
    ) -> Self {
        let phase_gauge = Family::<PhaseLabel, Gauge>::default();
        registry.register(
            "lifecycle_phase",
            "nodeadm phase of the host: 1 for the current phase, 0 for the others",
            phase_gauge.clone(),
        );
        Lifecycle {
            host,
            healthz: config.lifecycle.kubelet_healthz,
            probe,
            interval: config.lifecycle.interval.get(),
            phase_gauge,
            facts,
        }
    }
}

impl Domain for Lifecycle {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn reconfigure(&mut self, config: &Config) {
        self.interval = config.lifecycle.interval.get();
        if self.healthz != config.lifecycle.kubelet_healthz {
            self.healthz = config.lifecycle.kubelet_healthz;
            self.probe = Box::new(HttpHealthz {
                addr: self.healthz,
                timeout: Duration::from_secs(2),
            });
        }
    }

    fn run(&mut self) -> Vec<Check> {
        let evidence = Evidence::gather(&self.host, self.probe.as_ref());
        let phase = evidence.phase();
        for p in Phase::ALL {
            self.phase_gauge
                .get_or_create(&PhaseLabel { phase: p.as_str() })
                .set(i64::from(p == phase));
        }
        self.facts.set_phase(phase);
        evidence.checks(self.healthz)
    }
}

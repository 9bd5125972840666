//! The network domain: for every target (the configured ones and the
//! cluster's API server), the interface MTU on the route toward it, the path
//! MTU, continuous ICMP echo statistics against the Direct Connect
//! thresholds, TCP connect time and DNS resolution time.

pub mod echo;
mod metrics;
pub mod packet;
pub mod pmtu;
pub use crate::edge::route;
pub mod stats;
mod target;
pub mod tcp;
#[cfg(test)]
mod tests;

use crate::check::{Check, Status};
use crate::config::{Config, NetworkConfig, NetworkTarget};
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use echo::EchoLoop;
use prometheus_client::registry::Registry;
use stats::{loss_verdict, LossVerdict, WINDOWS};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const DOMAIN: &str = crate::check::names::NETWORK;
pub use crate::model::endpoint::{parse_endpoint, KUBELET_KUBECONFIG};
const API_TARGET: &str = "api-server";
use metrics::*;

/// A target with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    spec: NetworkTarget,
    expected_mtu: u32,
}

/// Per-target state kept across runs.
#[derive(Debug, Default)]
struct State {
    ip: Option<IpAddr>,
    echo: Option<EchoLoop>,
    echo_error: Option<String>,
    pmtu: Option<Result<pmtu::PmtuResult, pmtu::PmtuError>>,
    pmtu_at: Option<Instant>,
    reported_requests: u64,
    reported_replies: u64,
}

#[derive(Debug)]
pub struct NetworkDomain {
    host: Host,
    cfg: NetworkConfig,
    facts: Facts,
    metrics: Metrics,
    state: BTreeMap<String, State>,
    id: u16,
}

impl NetworkDomain {
    pub fn new(config: &Config, host: Host, registry: &mut Registry, facts: Facts) -> Self {
        NetworkDomain {
            host,
            cfg: config.network.clone(),
            facts,
            metrics: Metrics::register(registry),
            state: BTreeMap::new(),
            id: u16::try_from(std::process::id() & 0xffff).unwrap_or(0x4e41),
        }
    }

    /// Configured targets, plus the API server when known.
    fn targets(&self) -> Vec<Target> {
        let mut out: Vec<Target> = self
            .cfg
            .target
            .iter()
            .map(|t| Target {
                expected_mtu: t.expected_mtu.unwrap_or(self.cfg.expected_mtu),
                spec: t.clone(),
            })
            .collect();
        if self.cfg.api_server && !out.iter().any(|t| t.spec.name == API_TARGET) {
            if let Some((host, port)) = self.api_endpoint() {
                out.push(Target {
                    spec: NetworkTarget {
                        name: API_TARGET.to_owned(),
                        address: host,
                        expected_mtu: None,
                        // EKS API endpoints do not answer ICMP: TCP only.
                        icmp: false,
                        tcp_port: Some(port),
                        iperf_port: None,
                    },
                    expected_mtu: self.cfg.expected_mtu,
                });
            }
        }
        out
    }

    /// The API server from the kubelet kubeconfig (after init) or the NodeConfig.
    fn api_endpoint(&self) -> Option<(String, u16)> {
        crate::model::endpoint::api_server(&self.host, self.facts.nodeconfig().as_deref())
    }
}

impl Domain for NetworkDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.cfg.interval.get()
    }

    fn after(&self) -> &'static [&'static str] {
        &[crate::check::names::NODECONFIG]
    }

    fn reconfigure(&mut self, config: &Config) {
        if config.network.echo_rate != self.cfg.echo_rate
            || config.network.echo_timeout != self.cfg.echo_timeout
        {
            // Restart the echo loops with the new rate.
            for st in self.state.values_mut() {
                st.echo = None;
            }
        }
        self.cfg = config.network.clone();
    }

    fn run(&mut self) -> Vec<Check> {
        let targets = self.targets();
        let names: Vec<String> = targets.iter().map(|t| t.spec.name.clone()).collect();
        self.state.retain(|n, _| names.contains(n));
        let mut checks = Vec::new();
        if targets.is_empty() {
            checks.push(Check::not_applicable(
                DOMAIN,
                "targets",
                "no network targets: add [[network.target]] (the API server is added once known)",
            ));
            return checks;
        }
        for t in &targets {
            self.run_target(t, &mut checks);
        }
        checks
    }
}

//! The host checks nodeadm (aws/eks-hybrid v1.0.20) runs at `init` and in
//! `nodeadm debug`, which decide whether a node joins and stays joined,
//! run before init and after, with no AWS credentials: the clock is
//! synchronised (`time`), no swap is on (`swap`), the kubelet and
//! containerd get enough files and processes (`limits`), the proxy is set
//! alike everywhere (`proxy`), an active host firewall lets the kubelet and
//! the VXLAN overlay in (`firewall`), and no earlier install is left
//! behind (`leftovers`). Each family reads and judges in a file of its
//! own; this module runs them and publishes the metrics.

pub mod firewall;
pub mod firewalld;
pub mod leftovers;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod swap;
pub mod time;

use crate::check::{names, Check, Status};
use crate::config::preflight::{Cni, PreflightConfig};
use crate::config::Config;
use crate::domain::Domain;
use crate::edge::systemctl::ServiceManager;
use crate::facts::Facts;
use crate::host::Host;
use crate::model::endpoint::{parse_endpoint, KUBELET_KUBECONFIG};
use metrics::{FirewallLabel, LimitLabels, Metrics, PortLabel};
use prometheus_client::registry::Registry;
use std::time::Duration;

pub const DOMAIN: &str = names::PREFLIGHT;

/// The real programs the domain asks: the time tools, and systemd for
/// which services run.
#[derive(Debug)]
pub struct Edges {
    /// `None` under a `--root` other than `/`: the time daemons answer for
    /// this machine's clock, not for the tree being checked.
    pub time: Option<Box<dyn time::TimeSource>>,
    pub services: Box<dyn ServiceManager>,
    /// The interface of the node IP kubelet would choose (the default
    /// route's, [`crate::edge::route::node_interface`]); `|| None` under a
    /// `--root` other than `/`, whose kernel state is not this machine's.
    pub node_interface: fn() -> Option<String>,
}

#[derive(Debug)]
pub struct PreflightDomain {
    config: PreflightConfig,
    /// Registries (`host[:port]`, as configured) NO_PROXY must cover.
    registries: Vec<String>,
    host: Host,
    facts: Facts,
    edges: Edges,
    metrics: Metrics,
}

impl PreflightDomain {
    pub fn new(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        edges: Edges,
    ) -> Self {
        let mut d = PreflightDomain {
            config: PreflightConfig::default(),
            registries: Vec::new(),
            host,
            facts,
            edges,
            metrics: Metrics::register(registry),
        };
        d.reconfigure(config);
        d
    }

    fn run_time(&self) -> Check {
        let Some(source) = self.edges.time.as_deref() else {
            self.metrics.clock_synchronized.set(0);
            self.metrics.clock_offset.set(f64::NAN);
            return Check::not_applicable(
                DOMAIN,
                "clock",
                "the clock is this machine's, not the tree's under --root: run the check on the host itself",
            );
        };
        let reading = time::read(source);
        let (check, synced, offset) = time::judge(
            DOMAIN,
            &reading,
            self.config.clock_offset_warn.get(),
            self.config.clock_offset_fail.get(),
        );
        self.metrics.clock_synchronized.set(i64::from(synced));
        self.metrics.clock_offset.set(offset.unwrap_or(f64::NAN));
        check
    }

    fn run_swap(&self) -> Check {
        match swap::read(&self.host) {
            Ok(areas) => {
                let bytes: u64 = areas.iter().map(|a| a.size_bytes).sum();
                self.metrics.swap_areas.set(areas.len() as i64);
                self.metrics
                    .swap_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                let fstab = crate::host::read_text(&self.host, swap::FSTAB).ok();
                swap::judge(DOMAIN, &areas, fstab.as_deref(), self.before_init())
            }
            Err(e) => Check::new(DOMAIN, "swap", Status::Unknown, e.to_string())
                .with_remedy("check `swapon --show` by hand"),
        }
    }

    /// Whether `nodeadm init` has yet to run: the lifecycle domain's phase
    /// (it runs first); unknown counts as after, the stricter reading.
    fn before_init(&self) -> bool {
        self.facts
            .phase()
            .is_some_and(|p| p < crate::model::Phase::Initialized)
    }

    fn run_limits(&self, checks: &mut Vec<Check>) {
        for (label, unit_name) in limits::SERVICES {
            let (unit, found) = limits::read(&self.host, unit_name);
            for (r, l) in &found {
                let labels = LimitLabels {
                    unit: label,
                    resource: r.as_str(),
                };
                match l {
                    Some(l) => {
                        self.metrics
                            .service_limit
                            .get_or_create(&labels)
                            .set(l.value());
                    }
                    None => {
                        self.metrics.service_limit.remove(&labels);
                    }
                }
            }
            checks.push(limits::judge(
                DOMAIN,
                label,
                unit_name,
                &unit,
                &found,
                self.config.min_nofile,
                self.config.min_nproc,
            ));
        }
    }

    /// The API server as `host` (port 443) or `host:port`: from the
    /// kubelet kubeconfig after init, else the NodeConfig.
    fn api_host(&self) -> Option<String> {
        crate::model::endpoint::api_server(&self.host, self.facts.nodeconfig().as_deref()).map(
            |(h, p)| match (p, h.contains(':')) {
                (443, _) => h,
                (p, true) => format!("[{h}]:{p}"),
                (p, false) => format!("{h}:{p}"),
            },
        )
    }

    fn run_proxy(&self, checks: &mut Vec<Check>) {
        let ssm = self.facts.nodeconfig().is_some_and(|nc| {
            nc.config
                .spec
                .hybrid
                .as_ref()
                .is_some_and(|h| h.ssm.is_some())
        });
        let sources = proxy::gather(&self.host, ssm);
        // Not localhost: Go's httpproxy (kubelet, containerd, the SSM
        // agent) never proxies localhost or a loopback address.
        let mut must: Vec<(String, String)> = Vec::new();
        if let Some(api) = self.api_host() {
            must.push(("API server endpoint".into(), api));
        }
        for r in &self.registries {
            must.push(("registry".into(), r.clone()));
        }
        must.dedup_by(|a, b| a.1 == b.1);
        let v = proxy::judge(DOMAIN, &sources, &must);
        self.metrics.proxy_configured.set(i64::from(v.configured));
        self.metrics.proxy_consistent.set(i64::from(v.consistent));
        self.metrics.no_proxy_uncovered.set(v.uncovered as i64);
        checks.push(v.proxy);
        checks.push(v.no_proxy);
    }

    fn run_firewall(&self) -> Check {
        let ports = required_ports(self.config.cni);
        let fwd = firewall::read_firewalld(&self.host);
        let ufw = firewall::read_ufw(&self.host);
        let fwd_on = fwd.as_ref().is_some_and(|_| {
            firewall::firewalld_on(&self.host, self.edges.services.is_active("firewalld"))
        });
        let ufw_on = ufw
            .as_ref()
            .is_some_and(|u| firewall::ufw_on(&self.host, u, self.edges.services.is_active("ufw")));
        for (name, on) in [("firewalld", fwd_on), ("ufw", ufw_on)] {
            self.metrics
                .firewall_active
                .get_or_create(&FirewallLabel { firewall: name })
                .set(i64::from(on));
        }
        let (check, open) = firewall::judge(
            DOMAIN,
            fwd.as_ref().map(|f| (f, fwd_on)),
            ufw.as_ref().map(|u| (u, ufw_on)),
            &ports,
            (self.edges.node_interface)().as_deref(),
        );
        self.metrics.firewall_port_open.clear();
        for (p, is_open) in open {
            self.metrics
                .firewall_port_open
                .get_or_create(&PortLabel {
                    port: p.spec().into(),
                })
                .set(i64::from(is_open));
        }
        check
    }

    fn run_leftovers(&self) -> Check {
        let kubeconfig_server = crate::host::read_text(&self.host, KUBELET_KUBECONFIG)
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("server:")
                        .and_then(|s| parse_endpoint(s.trim().trim_matches('"')))
                        .map(|(h, _)| h)
                })
            });
        let nodeconfig_server = self
            .facts
            .nodeconfig()
            .map(|nc| nc.config.spec.cluster.api_server_endpoint.clone())
            .filter(|s| !s.is_empty())
            .and_then(|s| parse_endpoint(&s))
            .map(|(h, _)| h);
        // systemd's answer; without one (a tree under --root), the
        // lifecycle domain's: a kubelet answering /healthz.
        let kubelet = self.edges.services.is_active("kubelet").or_else(|| {
            self.facts
                .phase()
                .map(|p| p == crate::model::Phase::KubeletRunning)
        });
        let e =
            leftovers::Evidence::gather(&self.host, kubelet, kubeconfig_server, nodeconfig_server);
        let (check, n) = leftovers::judge(DOMAIN, &e);
        self.metrics.leftovers.set(n as i64);
        check
    }
}

/// The ports an active host firewall must let in: the kubelet's, and the
/// CNI's VXLAN port.
pub fn required_ports(cni: Cni) -> Vec<firewall::Port> {
    vec![
        firewall::Port {
            port: 10250,
            proto: "tcp",
            why: "kubelet",
        },
        firewall::Port {
            port: cni.vxlan_port(),
            proto: "udp",
            why: match cni {
                Cni::Cilium => "Cilium VXLAN",
                Cni::Calico => "Calico VXLAN",
            },
        },
    ]
}

impl Domain for PreflightDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.config.interval.get()
    }

    /// The NodeConfig names the API endpoint (NO_PROXY, leftovers).
    fn after(&self) -> &'static [&'static str] {
        &[names::LIFECYCLE, names::NODECONFIG]
    }

    fn reconfigure(&mut self, config: &Config) {
        self.config = config.preflight.clone();
        // The port stays: Go's NO_PROXY entry `host:port` matches only it.
        self.registries = config.registry.iter().map(|r| r.host.clone()).collect();
    }

    fn run(&mut self) -> Vec<Check> {
        let mut checks = vec![self.run_time(), self.run_swap()];
        self.run_limits(&mut checks);
        self.run_proxy(&mut checks);
        checks.push(self.run_firewall());
        checks.push(self.run_leftovers());
        checks
    }
}

#[cfg(test)]
mod tests;

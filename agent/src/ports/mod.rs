//! The seed's port table, checked where a node can check it. TCP 443/6443
//! to the API endpoint is the network domain's `tcp/api-server`; TCP and
//! UDP 53 to the resolvers are the dns domain's `resolver/*/{udp,tcp}`.
//! This domain adds the inbound one a node can see for itself: after
//! `nodeadm init` the kubelet must listen on TCP 10250 on the node IP, or
//! the control plane cannot reach it (`kubectl logs`/`exec`, metrics).

pub mod listen;

use crate::check::{Check, Status};
use crate::config::Config;
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use crate::model::Phase;
use std::net::IpAddr;
use std::time::Duration;

pub const DOMAIN: &str = "ports";
pub const KUBELET_PORT: u16 = 10250;

#[derive(Debug)]
pub struct PortsDomain {
    host: Host,
    facts: Facts,
    interval: Duration,
}

impl PortsDomain {
    pub fn new(config: &Config, host: Host, facts: Facts) -> Self {
        PortsDomain {
            host,
            facts,
            interval: config.network.interval.get(),
        }
    }

    /// `--node-ip` from the NodeConfig's kubelet flags, if set.
    fn node_ip(&self) -> Option<IpAddr> {
        let nc = self.facts.nodeconfig()?;
        let flags = &nc.config.spec.kubelet.flags;
        flags.iter().find_map(|f| {
            f.strip_prefix("--node-ip=")
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
        })
    }
}

/// Verdict on the kubelet's listening addresses.
pub fn kubelet_verdict(listening: &[IpAddr], node_ip: Option<IpAddr>) -> (Status, String) {
    let list = || {
        listening
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if listening.is_empty() {
        return (Status::Fail, format!("nothing listens on TCP {KUBELET_PORT}: the control plane cannot reach the kubelet (logs, exec, metrics)"));
    }
    let reachable = |ip: &IpAddr| {
        ip.is_unspecified() || Some(*ip) == node_ip || (node_ip.is_none() && !ip.is_loopback())
    };
    match listening.iter().find(|ip| reachable(ip)) {
        Some(ip) => (
            Status::Pass,
            format!(
                "the kubelet listens on TCP {KUBELET_PORT} ({}){}",
                list(),
                if ip.is_unspecified() {
                    " on every address".to_owned()
                } else {
                    format!(" on the node IP {ip}")
                }
            ),
        ),
        None => (
            Status::Fail,
            format!(
                "TCP {KUBELET_PORT} listens only on {}{}: the control plane cannot reach it",
                list(),
                node_ip
                    .map(|n| format!(", not on the node IP {n}"))
                    .unwrap_or_default()
            ),
        ),
    }
}

impl Domain for PortsDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn after(&self) -> &'static [&'static str] {
        &[
            crate::check::names::LIFECYCLE,
            crate::check::names::NODECONFIG,
        ]
    }

    fn reconfigure(&mut self, config: &Config) {
        self.interval = config.network.interval.get();
    }

    fn run(&mut self) -> Vec<Check> {
        let id = format!("kubelet_{KUBELET_PORT}");
        let started = matches!(
            self.facts.phase(),
            Some(Phase::Initialized | Phase::KubeletRunning | Phase::Joined)
        );
        if !started {
            return vec![Check::not_applicable(
                DOMAIN,
                id,
                format!("the kubelet listens on TCP {KUBELET_PORT} only after nodeadm init"),
            )];
        }
        let c = match listen::listeners(&self.host, KUBELET_PORT) {
            Ok(l) => {
                let (status, summary) = kubelet_verdict(&l, self.node_ip());
                let c = Check::new(DOMAIN, id, status, summary);
                if status == Status::Pass {
                    c
                } else {
                    c.with_remedy("check that the kubelet runs (systemctl status kubelet) and its --node-ip / address settings; the remote node network must reach this address on TCP 10250")
                }
            }
            // Only a root without /proc (a tree, not a live host) lacks
            // both tables.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::not_applicable(
                DOMAIN,
                id,
                "no /proc/net/tcp under the root: not a live host",
            ),
            Err(e) => Check::new(
                DOMAIN,
                id,
                Status::Unknown,
                format!("cannot read the listening sockets: {e}"),
            ),
        };
        vec![c]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().expect("ip")).collect()
    }

    #[test]
    fn kubelet_must_be_reachable_on_the_node_ip() {
        assert_eq!(kubelet_verdict(&ips(&["::"]), None).0, Status::Pass);
        assert_eq!(kubelet_verdict(&ips(&["10.80.1.5"]), None).0, Status::Pass);
        let node = "10.80.1.5".parse().ok();
        assert_eq!(kubelet_verdict(&ips(&["10.80.1.5"]), node).0, Status::Pass);
        let (s, m) = kubelet_verdict(&ips(&["127.0.0.1"]), node);
        assert_eq!(s, Status::Fail);
        assert!(
            m.contains("only on 127.0.0.1, not on the node IP 10.80.1.5"),
            "{m}"
        );
        let (s, m) = kubelet_verdict(&[], None);
        assert_eq!(s, Status::Fail);
        assert!(m.contains("nothing listens on TCP 10250"), "{m}");
    }
}

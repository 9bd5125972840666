//! The route to each target, as `traceroute -n` shows it: TTL-limited
//! probes on the path MTU schedule (`network.pmtu_interval`), the hop count
//! and the first hops exported, and a counter when the path changes. A
//! Direct Connect failover onto a VPN or the internet shows up here as a
//! longer path (and in the latency checks as a higher RTT) at the same
//! moment.

pub mod metrics;
pub mod probe;

use crate::check::{Check, Status};
use crate::config::{Config, NetworkTarget};
use crate::domain::Domain;
use metrics::{HopLabels, Metrics, TargetLabel};
use probe::{Trace, Tracer};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

pub const DOMAIN: &str = "path";
/// Hops exported as labels: the on-premises edge and the first hops
/// beyond it tell DX from VPN from internet; more would only add series.
pub const LABELLED_HOPS: usize = 3;
/// Longest path probed.
const MAX_HOPS: u8 = 20;
/// How long one round waits for the ICMP answers.
const ROUND_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct State {
    last: Option<Trace>,
    /// The previous path when the latest round found a change.
    changed_from: Option<Trace>,
    changes: u64,
    labelled: Vec<HopLabels>,
}

#[derive(Debug)]
pub struct PathDomain {
    targets: Vec<NetworkTarget>,
    interval: Duration,
    tracer: Box<dyn Tracer>,
    metrics: Metrics,
    state: BTreeMap<String, State>,
}

impl PathDomain {
    pub fn new(config: &Config, registry: &mut Registry, tracer: Box<dyn Tracer>) -> Self {
        let mut d = PathDomain {
            targets: Vec::new(),
            interval: Duration::from_secs(600),
            tracer,
            metrics: Metrics::register(registry),
            state: BTreeMap::new(),
        };
        d.reconfigure(config);
        d
    }

    fn run_target(&mut self, t: &NetworkTarget) -> Check {
        let id = format!("path/{}", t.name);
        let ip = match (t.address.as_str(), 0u16)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(a)) => a.ip(),
            Ok(None) | Err(_) => {
                return Check::new(
                    DOMAIN,
                    id,
                    Status::Unknown,
                    format!("cannot resolve {}", t.address),
                )
            }
        };
        let IpAddr::V4(v4) = ip else {
            return Check::new(
                DOMAIN,
                id,
                Status::Unknown,
                format!("{ip}: path probes of IPv6 targets are not implemented yet"),
            );
        };
        let trace = match self.tracer.trace(v4, MAX_HOPS, ROUND_TIMEOUT) {
            Ok(tr) => tr,
            Err(e) => {
                return Check::new(
                    DOMAIN,
                    id,
                    Status::Unknown,
                    format!("cannot send path probes toward {v4}: {e}"),
                )
            }
        };
        let label = TargetLabel {
            target: t.name.as_str().into(),
        };
        let st = self.state.entry(t.name.clone()).or_default();
        let changed = st
            .last
            .as_ref()
            .is_some_and(|prev| prev.differs_from(&trace));
        st.changed_from = if changed { st.last.take() } else { None };
        if changed {
            st.changes += 1;
            self.metrics.changes.get_or_create(&label).inc();
        } else {
            // Present from the first round, so rate() sees the first change.
            self.metrics.changes.get_or_create(&label).inc_by(0);
        }
        if trace.reached {
            self.metrics
                .hops
                .get_or_create(&label)
                .set(trace.hops.len() as i64);
        } else {
            self.metrics.hops.remove(&label);
        }
        match trace.rtt() {
            Some(r) => {
                self.metrics.rtt.get_or_create(&label).set(r.as_secs_f64());
            }
            None => {
                self.metrics.rtt.remove(&label);
            }
        }
        // The first hops as labels: old ones removed so that only the
        // current path has series.
        for l in st.labelled.drain(..) {
            self.metrics.hop.remove(&l);
        }
        for h in trace.hops.iter().take(LABELLED_HOPS) {
            let l = HopLabels {
                target: t.name.as_str().into(),
                hop: h.ttl,
                address: h.addr.map_or("*".to_owned(), |a| a.to_string()).into(),
            };
            self.metrics.hop.get_or_create(&l).set(1);
            st.labelled.push(l);
        }
        let ms = |d: Option<Duration>| {
            d.map_or("?".to_owned(), |d| {
                format!("{:.2} ms", d.as_secs_f64() * 1000.0)
            })
        };
        let now = if trace.reached {
            format!(
                "{} hops ({}), RTT {}",
                trace.hops.len(),
                trace.describe(),
                ms(trace.rtt())
            )
        } else {
            format!(
                "not reached within {} hops ({})",
                trace.hops.len(),
                trace.describe()
            )
        };
        let check = match &st.changed_from {
            Some(prev) => {
                let was = if prev.reached {
                    format!("{} hops ({}), RTT {}", prev.hops.len(), prev.describe(), ms(prev.rtt()))
                } else {
                    format!("unreached ({})", prev.describe())
                };
                Check::new(DOMAIN, id, Status::Warn, format!("the path to {} changed: {was} → {now} ({} changes since the agent started)", t.name, st.changes))
                    .with_remedy("a longer path with a higher RTT at the same moment is the mark of a Direct Connect failover onto VPN or the internet: check the DX connection and BGP session state")
            }
            None if trace.reached => Check::pass(DOMAIN, id, format!("path to {}: {now}", t.name)),
            None => Check::new(DOMAIN, id, Status::Unknown, format!("path to {}: {now}", t.name))
                .with_remedy("the target or a firewall does not answer UDP probes with ICMP; hops that answer are still listed"),
        };
        st.last = Some(trace);
        check
    }
}

impl Domain for PathDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn reconfigure(&mut self, config: &Config) {
        // ICMP must come back for probes to be answered: the targets that
        // allow it.
        self.targets = config
            .network
            .target
            .iter()
            .filter(|t| t.icmp)
            .cloned()
            .collect();
        self.interval = config.network.pmtu_interval.get();
        let names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        self.state.retain(|n, _| names.contains(&n.as_str()));
    }

    fn run(&mut self) -> Vec<Check> {
        if self.targets.is_empty() {
            return vec![Check::not_applicable(
                DOMAIN,
                "path",
                "no [[network.target]] with icmp = true to trace",
            )];
        }
        let targets = self.targets.clone();
        targets.iter().map(|t| self.run_target(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe::Hop;
    use std::net::Ipv4Addr;

    /// Returns the scripted traces in turn.
    #[derive(Debug)]
    struct Scripted(Vec<Trace>);

    impl Tracer for Scripted {
        fn trace(&mut self, _: Ipv4Addr, _: u8, _: Duration) -> std::io::Result<Trace> {
            Ok(self.0.remove(0))
        }
    }

    fn trace(hops: &[[u8; 4]], rtt_ms: u64) -> Trace {
        Trace {
            hops: hops
                .iter()
                .enumerate()
                .map(|(i, a)| Hop {
                    ttl: i as u8 + 1,
                    addr: Some(Ipv4Addr::from(*a)),
                    rtt: Some(Duration::from_millis(rtt_ms)),
                })
                .collect(),
            reached: true,
        }
    }

    #[test]
    fn a_failover_onto_a_longer_path_is_counted_and_warned_once() {
        let dx = trace(&[[10, 0, 0, 1], [10, 9, 2, 1]], 2);
        let vpn = trace(
            &[
                [10, 0, 0, 1],
                [192, 0, 2, 1],
                [198, 51, 100, 1],
                [10, 9, 2, 1],
            ],
            25,
        );
        let mut config = Config::default();
        config.network.target.push(NetworkTarget {
            name: "vpc".into(),
            address: "10.9.2.1".into(),
            expected_mtu: None,
            icmp: true,
            tcp_port: None,
            iperf_port: None,
        });
        let mut registry = crate::metrics::new_registry();
        let mut d = PathDomain::new(
            &config,
            &mut registry,
            Box::new(Scripted(vec![dx.clone(), dx, vpn.clone(), vpn])),
        );
        assert_eq!(d.run()[0].status, Status::Pass);
        assert_eq!(d.run()[0].status, Status::Pass);
        let c = d.run().remove(0);
        assert_eq!(c.status, Status::Warn);
        assert!(c.summary.contains("2 hops (10.0.0.1 10.9.2.1), RTT 2.00 ms → 4 hops (10.0.0.1 192.0.2.1 198.51.100.1 10.9.2.1), RTT 25.00 ms"), "{}", c.summary);
        assert_eq!(d.run()[0].status, Status::Pass);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("hybrid_node_net_path_changes_total{target=\"vpc\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hybrid_node_net_path_hops{target=\"vpc\"} 4"),
            "{text}"
        );
        assert!(
            text.contains(
                "hybrid_node_net_path_hop{target=\"vpc\",hop=\"2\",address=\"192.0.2.1\"} 1"
            ),
            "{text}"
        );
        // The old path's second hop is gone; only three hops are labelled.
        assert!(!text.contains("address=\"10.9.2.1\""), "{text}");
    }
}

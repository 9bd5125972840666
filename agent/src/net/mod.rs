//! The network domain: for every target (the configured ones and the
//! cluster's API server), the interface MTU on the route toward it, the path
//! MTU, continuous ICMP echo statistics against the Direct Connect
//! thresholds, TCP connect time and DNS resolution time.

pub mod echo;
pub mod packet;
pub mod pmtu;
pub mod route;
pub mod stats;
pub mod tcp;

use crate::check::{Check, Status};
use crate::config::{Config, NetworkConfig, NetworkTarget};
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use echo::EchoLoop;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use stats::{loss_verdict, LossVerdict, WINDOWS};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "network";
/// The kubelet's kubeconfig after `nodeadm init`: its `server:` is the API endpoint.
pub const KUBELET_KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";
const API_TARGET: &str = "api-server";
/// RTT histogram edges, with the Direct Connect thresholds (5 ms, 10 ms) among them.
const RTT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TargetLabel {
    target: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct IfaceLabels {
    target: LabelValue,
    interface: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WindowStat {
    target: LabelValue,
    window: &'static str,
    stat: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WindowLabel {
    target: LabelValue,
    window: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    target: LabelValue,
    reason: &'static str,
}

use crate::metrics::label::LabelValue;

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone)]
struct Metrics {
    interface_mtu: Family<IfaceLabels, Gauge>,
    expected_mtu: Family<TargetLabel, Gauge>,
    path_mtu: Family<TargetLabel, Gauge>,
    blackhole: Family<TargetLabel, Gauge>,
    requests: Family<TargetLabel, Counter>,
    replies: Family<TargetLabel, Counter>,
    rtt: Family<TargetLabel, Histogram>,
    rtt_window: Family<WindowStat, FGauge>,
    jitter: Family<WindowLabel, FGauge>,
    loss: Family<WindowLabel, FGauge>,
    tcp_connect: Family<TargetLabel, FGauge>,
    tcp_failures: Family<ReasonLabels, Counter>,
    dns: Family<TargetLabel, FGauge>,
}

impl Metrics {
    fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            interface_mtu: Family::default(),
            expected_mtu: Family::default(),
            path_mtu: Family::default(),
            blackhole: Family::default(),
            requests: Family::default(),
            replies: Family::default(),
            rtt: Family::new_with_constructor(|| Histogram::new(RTT_BUCKETS)),
            rtt_window: Family::default(),
            jitter: Family::default(),
            loss: Family::default(),
            tcp_connect: Family::default(),
            tcp_failures: Family::default(),
            dns: Family::default(),
        };
        r.register_with_unit(
            "net_interface_mtu",
            "MTU of the interface the route toward the target uses",
            Unit::Bytes,
            m.interface_mtu.clone(),
        );
        r.register_with_unit(
            "net_expected_mtu",
            "MTU the path toward the target is expected to carry",
            Unit::Bytes,
            m.expected_mtu.clone(),
        );
        r.register_with_unit(
            "net_path_mtu",
            "Path MTU found by DF probes (largest IP packet that got a reply)",
            Unit::Bytes,
            m.path_mtu.clone(),
        );
        r.register("net_pmtu_blackhole", "1 if large probes are silently lost while small ones pass (no fragmentation-needed comes back)", m.blackhole.clone());
        r.register(
            "net_icmp_requests",
            "ICMP echo requests sent",
            m.requests.clone(),
        );
        r.register(
            "net_icmp_replies",
            "ICMP echo replies received in time",
            m.replies.clone(),
        );
        r.register_with_unit(
            "net_rtt",
            "ICMP echo round-trip time (kernel receive timestamps)",
            Unit::Seconds,
            m.rtt.clone(),
        );
        r.register_with_unit(
            "net_rtt_window",
            "RTT statistic (min, avg, p50, p99, max) over a rolling window",
            Unit::Seconds,
            m.rtt_window.clone(),
        );
        r.register_with_unit(
            "net_jitter",
            "Mean absolute difference of consecutive RTTs over a rolling window",
            Unit::Seconds,
            m.jitter.clone(),
        );
        r.register_with_unit(
            "net_packet_loss",
            "Share of echo requests without a reply in time, over a rolling window",
            Unit::Other("ratio".to_owned()),
            m.loss.clone(),
        );
        r.register_with_unit(
            "net_tcp_connect",
            "Time of the latest TCP connect to the target's port",
            Unit::Seconds,
            m.tcp_connect.clone(),
        );
        r.register(
            "net_tcp_connect_failures",
            "Failed TCP connects by reason (refused, timeout, unreachable, other)",
            m.tcp_failures.clone(),
        );
        r.register_with_unit(
            "net_dns_lookup",
            "Time of the latest DNS resolution of the target's name",
            Unit::Seconds,
            m.dns.clone(),
        );
        m
    }
}

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
    pmtu: Option<Result<pmtu::PmtuResult, String>>,
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
        let from_kubeconfig = std::fs::read_to_string(self.host.path(KUBELET_KUBECONFIG))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("server:")
                        .map(|s| s.trim().trim_matches('"').to_owned())
                })
            });
        let url = from_kubeconfig.or_else(|| {
            self.facts
                .nodeconfig()
                .map(|nc| nc.config.spec.cluster.api_server_endpoint.clone())
                .filter(|s| !s.is_empty())
        })?;
        parse_endpoint(&url)
    }

    fn run_target(&mut self, t: &Target, checks: &mut Vec<Check>) {
        let name = t.spec.name.clone();
        let label = TargetLabel {
            target: name.as_str().into(),
        };
        let m = self.metrics.clone();
        m.expected_mtu
            .get_or_create(&label)
            .set(i64::from(t.expected_mtu));
        let st = self.state.entry(name.clone()).or_default();

        // DNS.
        let ip = match tcp::resolve(&t.spec.address) {
            Ok((ip, took)) => {
                if let Some(d) = took {
                    m.dns.get_or_create(&label).set(d.as_secs_f64());
                    checks.push(Check::pass(
                        DOMAIN,
                        format!("dns/{name}"),
                        format!(
                            "{} resolves to {ip} in {} ms",
                            t.spec.address,
                            d.as_millis()
                        ),
                    ));
                }
                ip
            }
            Err(e) => {
                checks.push(
                    Check::new(DOMAIN, format!("dns/{name}"), Status::Fail, e).with_remedy(
                        "check /etc/resolv.conf and the DNS servers reachable from this host",
                    ),
                );
                return;
            }
        };
        if st.ip != Some(ip) {
            st.ip = Some(ip);
            st.echo = None;
            st.pmtu = None;
        }

        // Interface MTU on the route.
        let route = route::lookup(ip);
        let iface_mtu = route.as_ref().ok().and_then(|r| r.mtu);
        checks.push(match &route {
            Err(e) => Check::new(DOMAIN, format!("mtu/{name}"), Status::Fail, e.clone()).with_remedy("add a route toward the target (Direct Connect / VPN)"),
            Ok(r) => {
                let mtu = r.mtu.unwrap_or(0);
                m.interface_mtu.get_or_create(&IfaceLabels { target: name.as_str().into(), interface: r.interface.as_str().into() }).set(i64::from(mtu));
                let expected = t.expected_mtu;
                if !route::nodeadm_accepts(mtu) {
                    Check::new(DOMAIN, format!("mtu/{name}"), Status::Fail, format!("{} (toward {name}) has MTU {mtu}, outside what nodeadm accepts (68–1500 or 8000–9001)", r.interface))
                        .with_remedy("set the interface MTU to 1500 or to 8000–9001 (9000 for jumbo frames)")
                } else if mtu < expected {
                    Check::new(DOMAIN, format!("mtu/{name}"), Status::Warn, format!("{} (toward {name}) has MTU {mtu}; {expected} is expected on this path", r.interface))
                        .with_remedy(format!("set the MTU of {} to {expected} (netplan mtu:, nmcli 802-3-ethernet.mtu); VXLAN overlays take 50 bytes of it", r.interface))
                } else {
                    Check::pass(DOMAIN, format!("mtu/{name}"), format!("{} (source {}) has MTU {mtu} toward {name} (expected {expected})", r.interface, r.source))
                }
            }
        });

        // TCP connect.
        if let Some(port) = t.spec.tcp_port {
            let addr = SocketAddr::new(ip, port);
            for r in tcp::ConnectFailure::ALL {
                let _ = m.tcp_failures.get_or_create(&ReasonLabels {
                    target: name.as_str().into(),
                    reason: r.as_str(),
                });
            }
            checks.push(match tcp::connect_time(addr, Duration::from_secs(3)) {
                Ok(d) => {
                    m.tcp_connect.get_or_create(&label).set(d.as_secs_f64());
                    Check::pass(
                        DOMAIN,
                        format!("tcp/{name}"),
                        format!(
                            "TCP connect to {addr} in {:.2} ms",
                            d.as_secs_f64() * 1000.0
                        ),
                    )
                }
                Err((reason, e)) => {
                    m.tcp_failures
                        .get_or_create(&ReasonLabels {
                            target: name.as_str().into(),
                            reason: reason.as_str(),
                        })
                        .inc();
                    Check::new(DOMAIN, format!("tcp/{name}"), Status::Fail, e)
                        .with_remedy("check routes, security groups and firewalls on the path")
                }
            });
        }

        if !t.spec.icmp {
            return;
        }
        let IpAddr::V4(v4) = ip else {
            checks.push(Check::new(
                DOMAIN,
                format!("latency/{name}"),
                Status::Unknown,
                format!("{ip}: ICMP probing of IPv6 targets is not implemented yet"),
            ));
            return;
        };

        // Echo loop; a new one gets a moment to collect replies, so that a
        // one-shot `check` judges real samples.
        if st.echo.is_none() {
            match EchoLoop::start(v4, self.cfg.echo_rate, self.cfg.echo_timeout.get(), self.id) {
                Ok(l) => {
                    let deadline = Instant::now() + Duration::from_millis(1500);
                    while l.shared.replies.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    st.echo = Some(l);
                    st.echo_error = None;
                    st.reported_requests = 0;
                    st.reported_replies = 0;
                }
                Err(e) => st.echo_error = Some(format!("cannot open an ICMP socket: {e} (allow it with net.ipv4.ping_group_range or CAP_NET_RAW)")),
            }
        }

        // Path MTU: on schedule, and when a jumbo-size DF probe fails.
        // An IPv4 packet is at most 65535 bytes (lo reports 65536).
        let ceiling = iface_mtu.unwrap_or(1500).min(65_535);
        let due = st
            .pmtu_at
            .is_none_or(|at| at.elapsed() >= self.cfg.pmtu_interval.get());
        let regressed = matches!(&st.pmtu, Some(Ok(r)) if r.pmtu >= ceiling.min(t.expected_mtu))
            && pmtu::RawProber::new(v4, self.id.wrapping_add(1))
                .map(|mut p| {
                    pmtu::Prober::probe(&mut p, ceiling.min(t.expected_mtu)) != pmtu::Outcome::Reply
                })
                .unwrap_or(false);
        if due || regressed {
            st.pmtu = Some(
                pmtu::RawProber::new(v4, self.id.wrapping_add(1))
                    .map_err(|e| {
                        format!(
                            "cannot open raw sockets for path MTU probes: {e} (needs CAP_NET_RAW)"
                        )
                    })
                    .and_then(|mut p| pmtu::discover(&mut p, pmtu::FLOOR_V4, ceiling)),
            );
            st.pmtu_at = Some(Instant::now());
        }
        checks.push(match &st.pmtu {
            Some(Ok(r)) => {
                m.path_mtu.get_or_create(&label).set(i64::from(r.pmtu));
                m.blackhole.get_or_create(&label).set(i64::from(r.blackhole));
                if r.blackhole {
                    Check::new(DOMAIN, format!("pmtu/{name}"), Status::Fail, format!("PMTU black hole toward {name}: packets above {} bytes vanish without \"fragmentation needed\" (small ones pass)", r.pmtu))
                        .with_remedy("a hop drops large frames and does not say so: fix its MTU, or allow ICMP type 3 code 4 through the firewalls on the path")
                } else if r.pmtu < t.expected_mtu {
                    Check::new(DOMAIN, format!("pmtu/{name}"), Status::Warn, format!("path MTU toward {name} is {} bytes; {} expected", r.pmtu, t.expected_mtu))
                        .with_remedy("a hop on the path has a smaller MTU: Direct Connect transit VIFs and Transit Gateway carry 8500; check every device on the path")
                } else {
                    Check::pass(DOMAIN, format!("pmtu/{name}"), format!("path MTU toward {name} is {} bytes (expected {})", r.pmtu, t.expected_mtu))
                }
            }
            Some(Err(e)) => Check::new(DOMAIN, format!("pmtu/{name}"), Status::Unknown, e.clone()),
            None => Check::new(DOMAIN, format!("pmtu/{name}"), Status::Unknown, "not measured yet"),
        });

        // Echo statistics.
        let Some(l) = &st.echo else {
            checks.push(Check::new(
                DOMAIN,
                format!("latency/{name}"),
                Status::Unknown,
                st.echo_error.clone().unwrap_or_default(),
            ));
            return;
        };
        let requests = l.shared.requests.load(Ordering::Relaxed);
        let replies = l.shared.replies.load(Ordering::Relaxed);
        m.requests
            .get_or_create(&label)
            .inc_by(requests - st.reported_requests);
        m.replies
            .get_or_create(&label)
            .inc_by(replies - st.reported_replies);
        st.reported_requests = requests;
        st.reported_replies = replies;
        let fresh: Vec<Duration> = std::mem::take(
            &mut *l
                .shared
                .fresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let h = m.rtt.get_or_create(&label);
        for r in fresh {
            h.observe(r.as_secs_f64());
        }
        let now = l.now();
        let series = l
            .shared
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by_window = Vec::new();
        for (w, len) in WINDOWS {
            if let Some(s) = series.stats(now, len) {
                for (stat, v) in [
                    ("min", s.min),
                    ("avg", s.avg),
                    ("p50", s.p50),
                    ("p99", s.p99),
                    ("max", s.max),
                    ("stddev", s.stddev),
                ] {
                    m.rtt_window
                        .get_or_create(&WindowStat {
                            target: name.as_str().into(),
                            window: w,
                            stat,
                        })
                        .set(v.as_secs_f64());
                }
                m.jitter
                    .get_or_create(&WindowLabel {
                        target: name.as_str().into(),
                        window: w,
                    })
                    .set(s.jitter.as_secs_f64());
                m.loss
                    .get_or_create(&WindowLabel {
                        target: name.as_str().into(),
                        window: w,
                    })
                    .set(s.loss());
                by_window.push((w, s));
            }
        }
        drop(series);
        // Verdicts over 5 minutes (1 minute until there is that much data).
        let pick = by_window
            .iter()
            .find(|(w, _)| *w == "5m")
            .or(by_window.first())
            .copied();
        let Some((w, s)) = pick.filter(|(_, s)| s.received > 0) else {
            checks.push(Check::new(DOMAIN, format!("latency/{name}"), Status::Fail, format!("no echo replies from {name} ({requests} sent)"))
                .with_remedy("check the route and that ICMP echo is allowed to the target; set icmp = false to rely on TCP only"));
            return;
        };
        let grade = |v: Duration, warn: Duration, crit: Duration| {
            if v > crit {
                Status::Fail
            } else if v > warn {
                Status::Warn
            } else {
                Status::Pass
            }
        };
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        let c = &self.cfg;
        let lat = grade(s.p50, c.latency_warn.get(), c.latency_critical.get());
        checks.push(
            Check::new(DOMAIN, format!("latency/{name}"), lat, format!("RTT to {name} over {w}: p50 {}, p99 {}, min {}, max {} (ok < {}, critical > {})", ms(s.p50), ms(s.p99), ms(s.min), ms(s.max), ms(c.latency_warn.get()), ms(c.latency_critical.get())))
                .with_remedy("check the Direct Connect / VPN link and on-premises devices for congestion"),
        );
        let jit = grade(s.jitter, c.jitter_warn.get(), c.jitter_critical.get());
        checks.push(
            Check::new(
                DOMAIN,
                format!("jitter/{name}"),
                jit,
                format!(
                    "jitter to {name} over {w}: {} (stddev {})",
                    ms(s.jitter),
                    ms(s.stddev)
                ),
            )
            .with_remedy(
                "jitter this high hurts the control plane and pods: look for queueing on the path",
            ),
        );
        let loss_window = by_window
            .iter()
            .rev()
            .find(|(_, s)| s.sent > 0)
            .map(|(_, s)| *s)
            .unwrap_or(s);
        let (status, summary) = match loss_verdict(loss_window.sent, loss_window.received, c.loss_warn, c.loss_critical) {
            LossVerdict::Ok => (Status::Pass, format!("loss to {name} {:.4} % over {} echoes", loss_window.loss() * 100.0, loss_window.sent)),
            LossVerdict::Warn => (Status::Warn, format!("loss to {name} {:.4} % over {} echoes (warn > {} %)", loss_window.loss() * 100.0, loss_window.sent, c.loss_warn * 100.0)),
            LossVerdict::Critical => (Status::Fail, format!("loss to {name} {:.4} % over {} echoes (critical > {} %)", loss_window.loss() * 100.0, loss_window.sent, c.loss_critical * 100.0)),
            LossVerdict::InsufficientData { needed } => (Status::Unknown, format!("loss to {name} {:.4} % over {} echoes: insufficient data to tell it is below {} % ({needed} echoes needed)", loss_window.loss() * 100.0, loss_window.sent, c.loss_warn * 100.0)),
        };
        checks.push(
            Check::new(DOMAIN, format!("loss/{name}"), status, summary).with_remedy(
                "check the link for errors and drops (interface counters, DX connection metrics)",
            ),
        );
    }
}

/// `https://host:port/…` → (host, port); port 443 by default.
pub fn parse_endpoint(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let authority = rest.split('/').next()?;
    if authority.is_empty() {
        return None;
    }
    Some(match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?),
        _ => (authority.to_owned(), 443),
    })
}

impl Domain for NetworkDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.cfg.interval.get()
    }

    fn after(&self) -> &'static [&'static str] {
        &[crate::nodeconfig::DOMAIN]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("https://ABC.gr7.us-west-2.eks.amazonaws.com"),
            Some(("ABC.gr7.us-west-2.eks.amazonaws.com".into(), 443))
        );
        assert_eq!(
            parse_endpoint("https://10.0.0.1:6443/"),
            Some(("10.0.0.1".into(), 6443))
        );
        assert_eq!(parse_endpoint(""), None);
    }

    #[test]
    fn loopback_target_end_to_end() {
        let mut config = Config::default();
        config.network.echo_rate = 50.0;
        config.network.target.push(NetworkTarget {
            name: "lo".into(),
            address: "127.0.0.1".into(),
            expected_mtu: Some(9000),
            icmp: true,
            tcp_port: None,
            iperf_port: None,
        });
        let mut registry = crate::metrics::new_registry();
        let mut d = NetworkDomain::new(&config, Host::default(), &mut registry, Facts::default());
        let first = d.run();
        let mtu = first.iter().find(|c| c.id == "mtu/lo").expect("mtu check");
        // lo's MTU (65536) is outside nodeadm's ranges.
        assert_eq!(mtu.status, Status::Fail, "{mtu:?}");
        if first
            .iter()
            .any(|c| c.id == "latency/lo" && c.summary.contains("cannot open"))
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no ICMP socket under CI"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(400));
        let checks = d.run();
        let lat = checks
            .iter()
            .find(|c| c.id == "latency/lo")
            .expect("latency");
        assert_eq!(lat.status, Status::Pass, "{lat:?}");
        let loss = checks.iter().find(|c| c.id == "loss/lo").expect("loss");
        assert_eq!(loss.status, Status::Unknown, "{loss:?}");
        assert!(loss.summary.contains("insufficient data"));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("hybrid_node_net_rtt_seconds_bucket{le=\"0.005\",target=\"lo\"}"),
            "{text}"
        );
        assert!(
            text.contains("hybrid_node_net_icmp_requests_total{target=\"lo\"}"),
            "{text}"
        );
    }
}

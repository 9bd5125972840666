//! The endpoints domain's families (prefix `hybrid_node_endpoints_`). The
//! `endpoint` label is one of a fixed set: `sts`, `ssm`, `ssmmessages`,
//! `ec2messages`, `rolesanywhere`, `api-server`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

/// How the node IP was found: `flag`, `node-name`, `default-route`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
}

/// What of the host's falls in a pod network: `route`, `address`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub up: Family<EndpointLabels, Gauge>,
    pub dns: Family<EndpointLabels, FGauge>,
    pub tcp: Family<EndpointLabels, FGauge>,
    pub tls: Family<EndpointLabels, FGauge>,
    pub node_ip_in_networks: Family<SourceLabels, Gauge>,
    pub pod_overlaps: Family<KindLabels, Gauge>,
}

impl Metrics {
    pub fn register(root: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = root.sub_registry_with_prefix("endpoints");
        r.register(
            "up",
            "1 if the endpoint resolved, accepted TCP and completed a verified TLS handshake (the API server: and refused an unauthenticated request with 401 or 403)",
            m.up.clone(),
        );
        r.register(
            "dns_seconds",
            "Time the host resolver took for the endpoint's name in the latest probe",
            m.dns.clone(),
        );
        r.register(
            "tcp_connect_seconds",
            "Time of the latest TCP connect to the endpoint",
            m.tcp.clone(),
        );
        r.register(
            "tls_handshake_seconds",
            "Time of the latest verified TLS handshake with the endpoint",
            m.tls.clone(),
        );
        r.register(
            "node_ip_in_remote_node_networks",
            "1 if the node IP (as nodeadm derives it, from source) is inside [cluster] remote_node_networks",
            m.node_ip_in_networks.clone(),
        );
        r.register(
            "pod_network_overlaps",
            "Host routes or addresses (kind) that fall in [cluster] remote_pod_networks",
            m.pod_overlaps.clone(),
        );
        m
    }

    /// One endpoint's latest probe: up, and the time of each step it got
    /// through (a step it did not reach has no series).
    pub fn record(
        &self,
        endpoint: &'static str,
        dns: Option<Duration>,
        tcp: Option<Duration>,
        tls: Option<Duration>,
        up: bool,
    ) {
        let l = EndpointLabels { endpoint };
        self.up.get_or_create(&l).set(i64::from(up));
        for (family, took) in [(&self.dns, dns), (&self.tcp, tcp), (&self.tls, tls)] {
            match took {
                Some(t) => {
                    family.get_or_create(&l).set(t.as_secs_f64());
                }
                None => {
                    family.remove(&l);
                }
            }
        }
    }

    /// Drops the series of every endpoint in `all` that is not in `seen`
    /// (no longer probed: another credential provider, no API endpoint).
    pub fn drop_except(&self, all: impl IntoIterator<Item = &'static str>, seen: &[&str]) {
        for endpoint in all.into_iter().filter(|l| !seen.contains(l)) {
            let l = EndpointLabels { endpoint };
            self.up.remove(&l);
            self.dns.remove(&l);
            self.tcp.remove(&l);
            self.tls.remove(&l);
        }
    }
}

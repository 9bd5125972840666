//! `[network]` and its `[[network.target]]` entries.

use super::registries::yes;
use super::Interval;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// How often MTUs, TCP connect times and DNS are checked and the
    /// latency verdicts refreshed.
    pub interval: Interval,
    /// How often path MTU discovery re-runs (also after a jumbo echo fails).
    pub pmtu_interval: Interval,
    /// ICMP echo requests per second per target.
    pub echo_rate: f64,
    /// Echo replies later than this count as lost.
    pub echo_timeout: Interval,
    /// Expected MTU of the path to every target unless the target says
    /// otherwise (Direct Connect private VIF 9001, transit VIF / TGW 8500).
    pub expected_mtu: u32,
    /// Also watch the cluster's API server endpoint (kubelet kubeconfig after
    /// init, else the NodeConfig's cluster.apiServerEndpoint).
    pub api_server: bool,
    pub latency_warn: Interval,
    pub latency_critical: Interval,
    pub jitter_warn: Interval,
    pub jitter_critical: Interval,
    /// Loss ratios (0.0001 = 0.01 %).
    pub loss_warn: f64,
    pub loss_critical: f64,
    /// Scheduled iperf3 bandwidth tests (`[network.bandwidth]`).
    pub bandwidth: super::bandwidth::BandwidthConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<NetworkTarget>,
    /// DNS servers to query over UDP and TCP (`[[network.resolver]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolver: Vec<super::dns::ResolverEntry>,
}

impl Eq for NetworkConfig {}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interval: Interval(Duration::from_secs(30)),
            pmtu_interval: Interval(Duration::from_secs(600)),
            echo_rate: 5.0,
            echo_timeout: Interval(Duration::from_secs(1)),
            expected_mtu: 9000,
            api_server: true,
            latency_warn: Interval(Duration::from_millis(5)),
            latency_critical: Interval(Duration::from_millis(10)),
            jitter_warn: Interval(Duration::from_millis(2)),
            jitter_critical: Interval(Duration::from_millis(5)),
            loss_warn: 0.0001,
            loss_critical: 0.001,
            bandwidth: Default::default(),
            target: Vec::new(),
            resolver: Vec::new(),
        }
    }
}

/// One `[[network.target]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkTarget {
    /// The `target` label.
    pub name: String,
    /// IP address or DNS name.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_mtu: Option<u32>,
    /// Echo and path MTU probes (false where ICMP is filtered).
    #[serde(default = "yes")]
    pub icmp: bool,
    /// Measure TCP connect time to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_port: Option<u16>,
    /// Port of an `iperf3 -s` at this address: scheduled bandwidth tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iperf_port: Option<u16>,
}

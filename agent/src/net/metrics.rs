//! The network domain's metric families (`hybrid_node_net_*`), labelled by
//! target (and interface, window, statistic or failure reason).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// RTT histogram edges, with the Direct Connect thresholds (5 ms, 10 ms) among them.
pub(super) const RTT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct TargetLabel {
    pub(super) target: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct IfaceLabels {
    pub(super) target: LabelValue,
    pub(super) interface: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct WindowStat {
    pub(super) target: LabelValue,
    pub(super) window: &'static str,
    pub(super) stat: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct WindowLabel {
    pub(super) target: LabelValue,
    pub(super) window: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pub(super) target: LabelValue,
    pub(super) reason: &'static str,
}

use crate::metrics::label::LabelValue;

pub(super) type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone)]
pub(super) struct Metrics {
    pub(super) interface_mtu: Family<IfaceLabels, Gauge>,
    pub(super) expected_mtu: Family<TargetLabel, Gauge>,
    pub(super) path_mtu: Family<TargetLabel, Gauge>,
    pub(super) blackhole: Family<TargetLabel, Gauge>,
    pub(super) requests: Family<TargetLabel, Counter>,
    pub(super) replies: Family<TargetLabel, Counter>,
    pub(super) rtt: Family<TargetLabel, Histogram>,
    pub(super) rtt_window: Family<WindowStat, FGauge>,
    pub(super) jitter: Family<WindowLabel, FGauge>,
    pub(super) loss: Family<WindowLabel, FGauge>,
    pub(super) tcp_connect: Family<TargetLabel, FGauge>,
    pub(super) tcp_failures: Family<ReasonLabels, Counter>,
    pub(super) dns: Family<TargetLabel, FGauge>,
}

impl Metrics {
    pub(super) fn register(r: &mut Registry) -> Self {
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

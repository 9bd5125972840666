//! The path metric families (prefix `hybrid_node_net_path_`).

use crate::metrics::label::LabelValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TargetLabel {
    pub target: LabelValue,
}

/// One of the first [`super::LABELLED_HOPS`] hops.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HopLabels {
    pub target: LabelValue,
    pub hop: u8,
    /// The router's address, or `*`.
    pub address: LabelValue,
}

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone)]
pub struct Metrics {
    pub hops: Family<TargetLabel, Gauge>,
    pub changes: Family<TargetLabel, Counter>,
    pub hop: Family<HopLabels, Gauge>,
    pub rtt: Family<TargetLabel, FGauge>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            hops: Family::default(),
            changes: Family::default(),
            hop: Family::default(),
            rtt: Family::default(),
        };
        r.register(
            "net_path_hops",
            "Hops to the target found by TTL-limited probes (the target included)",
            m.hops.clone(),
        );
        r.register(
            "net_path_changes",
            "Times the path to the target changed (hop count or a router)",
            m.changes.clone(),
        );
        r.register(
            "net_path_hop",
            "1 for each of the first hops toward the target, by TTL and address",
            m.hop.clone(),
        );
        r.register(
            "net_path_rtt_seconds",
            "Round trip of the probe that reached the target in the latest round",
            m.rtt.clone(),
        );
        m
    }
}

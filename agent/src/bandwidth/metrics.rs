//! The bandwidth metric families (prefix `hybrid_node_net_bandwidth_`).

use crate::metrics::label::LabelValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TestLabels {
    pub target: LabelValue,
    pub direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    pub target: LabelValue,
    pub direction: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone)]
pub struct Metrics {
    pub bits_per_second: Family<TestLabels, FGauge>,
    pub last_test: Family<TestLabels, FGauge>,
    pub tests: Family<ResultLabels, Counter>,
    pub running: Gauge,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            bits_per_second: Family::default(),
            last_test: Family::default(),
            tests: Family::default(),
            running: Gauge::default(),
        };
        r.register(
            "net_bandwidth_bits_per_second",
            "Throughput of the latest successful iperf3 test (receiver side)",
            m.bits_per_second.clone(),
        );
        r.register_with_unit(
            "net_bandwidth_last_test_timestamp",
            "Unix time the latest successful iperf3 test ended",
            Unit::Seconds,
            m.last_test.clone(),
        );
        r.register(
            "net_bandwidth_tests",
            "Scheduled iperf3 tests by result (ok, error)",
            m.tests.clone(),
        );
        r.register(
            "net_bandwidth_test_running",
            "1 while a scheduled bandwidth test saturates the link (latency and loss read high meanwhile)",
            m.running.clone(),
        );
        m
    }
}

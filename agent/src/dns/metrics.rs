//! The resolver metric families (prefix `hybrid_node_net_resolver_`).

use crate::metrics::label::LabelValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResolverLabels {
    pub resolver: LabelValue,
    pub transport: &'static str,
}

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone)]
pub struct Metrics {
    pub up: Family<ResolverLabels, Gauge>,
    pub seconds: Family<ResolverLabels, FGauge>,
    pub expected: Family<ResolverLabels, Gauge>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            up: Family::default(),
            seconds: Family::default(),
            expected: Family::default(),
        };
        r.register(
            "net_resolver_up",
            "1 if the resolver answered every configured name over the transport",
            m.up.clone(),
        );
        r.register(
            "net_resolver_query_seconds",
            "Slowest answer of the latest round over the transport",
            m.seconds.clone(),
        );
        r.register(
            "net_resolver_answer_expected",
            "1 if every address the resolver gave falls in the expected ranges (0: a public answer, traffic would leave the Direct Connect path)",
            m.expected.clone(),
        );
        m
    }
}

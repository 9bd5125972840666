//! The registry domain's metric families (`hybrid_node_registry_*`):
//! per endpoint and per CA, and the count of managed files.

use super::files::{Outcome, Plan};
use super::probe::ProbeResult;
use crate::metrics::label::LabelValue;
use crate::metrics::ResultLabel;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct EndpointLabels {
    pub(super) registry: LabelValue,
    pub(super) endpoint: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct CaLabels {
    pub(super) registry: LabelValue,
    pub(super) fingerprint: LabelValue,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Metrics {
    pub(super) up: Family<EndpointLabels, Gauge>,
    pub(super) tls_verified: Family<EndpointLabels, Gauge>,
    pub(super) probe_duration: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    pub(super) server_cert_expiry: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    pub(super) ca_expiry: Family<CaLabels, Gauge<f64, AtomicU64>>,
    pub(super) reconciles: Family<ResultLabel, Counter>,
    pub(super) managed_files: Gauge,
    pub(super) drift_restored: Counter,
}

impl Metrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        for l in [ResultLabel::SUCCESS, ResultLabel::FAILURE] {
            let _ = m.reconciles.get_or_create(&l);
        }
        registry.register(
            "registry_up",
            "1 if the registry endpoint answered GET /v2/ with 200 or 401",
            m.up.clone(),
        );
        registry.register(
            "registry_tls_verified",
            "1 if the endpoint's TLS certificate verified against the configured CA (and the OS roots with system_trust)",
            m.tls_verified.clone(),
        );
        registry.register_with_unit(
            "registry_probe_duration",
            "Time of the latest probe of the endpoint (connect, TLS, GET /v2/)",
            Unit::Seconds,
            m.probe_duration.clone(),
        );
        registry.register_with_unit(
            "registry_server_cert_expiry_timestamp",
            "notAfter of the certificate the endpoint presented, in seconds since the Unix epoch",
            Unit::Seconds,
            m.server_cert_expiry.clone(),
        );
        registry.register_with_unit(
            "ca_expiry_timestamp",
            "notAfter of a registry CA the agent manages, in seconds since the Unix epoch",
            Unit::Seconds,
            m.ca_expiry.clone(),
        );
        registry.register(
            "registry_reconciles",
            "Reconciles of the registry files by result (failure: a write or removal failed)",
            m.reconciles.clone(),
        );
        registry.register(
            "registry_managed_files",
            "Files the agent manages: hosts.toml, CA files and OS trust anchors",
            m.managed_files.clone(),
        );
        registry.register(
            "registry_drift_restored",
            "Managed files found edited by hand and restored",
            m.drift_restored.clone(),
        );
        m
    }
}

impl super::RegistryDomain {
    pub(super) fn export(
        &self,
        plan: &Plan,
        outcome: &Outcome,
        probes: &[(String, String, ProbeResult, bool)],
    ) {
        let m = &self.metrics;
        m.up.clear();
        m.tls_verified.clear();
        m.probe_duration.clear();
        m.server_cert_expiry.clear();
        m.ca_expiry.clear();
        for (registry, endpoint, r, _) in probes {
            let l = EndpointLabels {
                registry: registry.as_str().into(),
                endpoint: endpoint.as_str().into(),
            };
            m.up.get_or_create(&l).set(i64::from(r.up));
            m.tls_verified
                .get_or_create(&l)
                .set(i64::from(r.tls_verified));
            m.probe_duration
                .get_or_create(&l)
                .set(r.duration.as_secs_f64());
            if let Some(t) = r.server_cert_not_after {
                m.server_cert_expiry.get_or_create(&l).set(t as f64);
            }
        }
        for (registry, ca) in &plan.cas {
            m.ca_expiry
                .get_or_create(&CaLabels {
                    registry: registry.as_str().into(),
                    fingerprint: ca.short_id().into(),
                })
                .set(ca.not_after as f64);
        }
        m.managed_files
            .set(i64::try_from(outcome.managed_files).unwrap_or(i64::MAX));
    }
}

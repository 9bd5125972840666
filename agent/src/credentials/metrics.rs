//! The credentials domain's metric families.
//!
//! `hybrid_node_certificate_expiry_timestamp_seconds` is the one family for
//! every certificate on this host the agent watches; `kind` tells which
//! (kubelet-serving, kubelet-client, cluster-ca, iam-ra, registry-client,
//! web) and `registry` names the registry of a client certificate (empty
//! otherwise). The registry domain's CA and server-certificate families
//! stay as they are: they are labelled by registry endpoint, the server
//! certificate is not on this host, and dashboards and alerts already use
//! them; the expiry alert covers both.

use crate::metrics::label::LabelValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Which certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CertLabels {
    pub kind: &'static str,
    pub registry: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Which credential provider (`ssm`, `iam-ra`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: &'static str,
}

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone)]
pub struct Metrics {
    pub expiry: Family<CertLabels, FGauge>,
    pub chain_ok: Family<KindLabels, Gauge>,
    pub key_match: Family<CertLabels, Gauge>,
    pub file_age: Family<ProviderLabels, FGauge>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            expiry: Family::default(),
            chain_ok: Family::default(),
            key_match: Family::default(),
            file_age: Family::default(),
        };
        r.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of each certificate on this host the agent watches (earliest in a bundle), Unix seconds",
            m.expiry.clone(),
        );
        r.register(
            "credentials_certificate_chain_ok",
            "1 if the kubelet certificate chains to the cluster CA of the NodeConfig (0: a stale certificate from an earlier install)",
            m.chain_ok.clone(),
        );
        r.register(
            "credentials_key_match",
            "1 if the private key belongs to the certificate (public keys compared)",
            m.key_match.clone(),
        );
        r.register(
            "credentials_file_age_seconds",
            "Age of the AWS shared credentials file the provider's refresher rewrites, since its last rewrite (ssm: the one the kubelet's aws-iam-authenticator reads; iam-ra: /eks-hybrid/.aws/credentials, read by ecr-credential-provider and pods)",
            m.file_age.clone(),
        );
        m
    }

    /// Forgets every series: each run exports what it found.
    pub fn clear(&self) {
        self.expiry.clear();
        self.chain_ok.clear();
        self.key_match.clear();
        self.file_age.clear();
    }
}

//! The credentials domain's metric families.
//!
//! `hybrid_node_certificate_expiry_timestamp_seconds` is the one family for
//! the certificates this domain watches; `kind` tells which
//! (kubelet-serving, kubelet-client, cluster-ca, iam-ra, registry-client,
//! web) and `registry` names the registry of a client certificate (empty
//! otherwise). The registry domain's CA and server-certificate families
//! stay as they are: they are labelled by registry endpoint, the server
//! certificate is not on this host, and dashboards and alerts already use
//! them. HybridNodeCertificateExpiringSoon and HybridNodeCertificateExpired
//! match this family only; registry CAs and server certificates have their
//! own 30-day alerts (HybridNodeRegistryCAExpiringSoon,
//! HybridNodeRegistryCertExpiringSoon).

use crate::metrics::label::LabelValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;

use super::certs::Findings;

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
    /// The label sets the last export set, to remove those that vanish.
    last: Last,
}

#[derive(Debug, Clone, Default)]
struct Last {
    expiry: Vec<CertLabels>,
    chain_ok: Vec<KindLabels>,
    key_match: Vec<CertLabels>,
    file_age: Vec<ProviderLabels>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            expiry: Family::default(),
            chain_ok: Family::default(),
            key_match: Family::default(),
            file_age: Family::default(),
            last: Last::default(),
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

    /// Exports this run's series: each is set in place, then the label
    /// sets the run no longer found are removed, so a scrape during the
    /// export never sees a series missing that is still there (no gap for
    /// an alert without `for:` to flap on).
    pub fn export(&mut self, f: &Findings) {
        replace(&self.expiry, &f.expiry, &mut self.last.expiry, |g, v| {
            g.set(v);
        });
        replace(
            &self.chain_ok,
            &f.chain_ok,
            &mut self.last.chain_ok,
            |g, v| {
                g.set(v);
            },
        );
        replace(
            &self.key_match,
            &f.key_match,
            &mut self.last.key_match,
            |g, v| {
                g.set(v);
            },
        );
        replace(
            &self.file_age,
            &f.file_age,
            &mut self.last.file_age,
            |g, v| {
                g.set(v);
            },
        );
    }
}

/// Sets `rows` in `family`, then removes what `last` had and `rows` has
/// not; `last` becomes `rows`' label sets.
fn replace<L, M, V>(family: &Family<L, M>, rows: &[(L, V)], last: &mut Vec<L>, set: impl Fn(&M, V))
where
    L: Clone + Eq + Hash,
    M: Default,
    V: Copy,
{
    for (l, v) in rows {
        set(&family.get_or_create(l), *v);
    }
    for gone in last.iter().filter(|l| !rows.iter().any(|(r, _)| r == *l)) {
        family.remove(gone);
    }
    *last = rows.iter().map(|(l, _)| l.clone()).collect();
}

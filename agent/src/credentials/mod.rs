//! Credentials and certificates: the renewals that silently take a hybrid
//! node down. The credential provider the NodeConfig names (SSM hybrid
//! activation or IAM Roles Anywhere) with the services and files nodeadm
//! sets up for it; the kubelet's certificates and the cluster CA they must
//! chain to; registry client certificates and the agent's own web
//! certificate. Every certificate's `notAfter` is one series of
//! `hybrid_node_certificate_expiry_timestamp_seconds`.
//!
//! Secrets stay secret: credential files are read for which keys they have
//! and their age, keys only to compare public keys (`pki::key_matches`);
//! no value of either reaches a check, a metric or a log line.

pub mod awsfiles;
pub mod certs;
pub mod checks;
pub mod metrics;
pub mod provider;
pub mod ssm;

pub use crate::config::credentials as config;

use crate::check::{Check, Status};
use crate::config::Config;
use crate::domain::Domain;
use crate::edge::systemctl::ServiceManager;
use crate::facts::Facts;
use crate::host::Host;
use certs::Findings;
use checks::Ages;
use metrics::Metrics;
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub const DOMAIN: &str = crate::check::names::CREDENTIALS;

#[derive(Debug)]
pub struct CredentialsDomain {
    settings: config::CredentialsConfig,
    /// `[[registry]]` hosts with their client certificate and key.
    clients: Vec<(String, PathBuf, Option<PathBuf>)>,
    web_config: String,
    host: Host,
    facts: Facts,
    services: Box<dyn ServiceManager>,
    metrics: Metrics,
    /// Woken by a new NodeConfig.
    wake: std::sync::Arc<tokio::sync::Notify>,
}

impl CredentialsDomain {
    pub fn new(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        services: Box<dyn ServiceManager>,
    ) -> Self {
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        facts.on_nodeconfig_change(wake.clone());
        let mut d = CredentialsDomain {
            settings: config.credentials.clone(),
            clients: Vec::new(),
            web_config: String::new(),
            host,
            facts,
            services,
            metrics: Metrics::register(registry),
            wake,
        };
        d.reconfigure(config);
        d
    }

    /// Checks at `now`: separate from `run` so tests can move the clock.
    pub fn run_at(&mut self, now: SystemTime) -> Vec<Check> {
        let now_secs = i64::try_from(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        )
        .unwrap_or(i64::MAX);
        let warn_days = self.settings.warn_days;
        let mut f = Findings::default();
        let nc = self.facts.nodeconfig();
        let nc = nc.as_deref().map(|l| &l.config);
        self.provider(nc, now, now_secs, &mut f);
        let roots = certs::check_cluster_ca(&self.host, nc, now_secs, warn_days, &mut f);
        certs::check_kubelet(&self.host, &roots, now_secs, warn_days, &mut f);
        certs::check_registry_clients(&self.host, &self.clients, now_secs, warn_days, &mut f);
        certs::check_web(&self.host, &self.web_config, now_secs, warn_days, &mut f);
        self.metrics.export(&f);
        f.checks
    }

    fn provider(
        &self,
        nc: Option<&crate::model::nodeconfig::NodeConfig>,
        now: SystemTime,
        now_secs: i64,
        f: &mut Findings,
    ) {
        let s = &self.settings;
        let cx = provider::Ctx {
            host: &self.host,
            services: self.services.as_ref(),
            phase: self.facts.phase(),
            now,
            now_secs,
            warn_days: s.warn_days,
            ssm_ages: Ages {
                warn: s.ssm_warn_age.get(),
                fail: s.max_age.get(),
            },
            iam_ra_ages: Ages {
                warn: s.iam_ra_warn_age.get(),
                fail: s.max_age.get(),
            },
        };
        let hybrid = nc.and_then(|n| n.spec.hybrid.as_ref());
        match (nc, hybrid) {
            (None, _) => {
                if !provider::from_host(&cx, f) {
                    f.checks.push(Check::not_applicable(
                        DOMAIN,
                        "provider",
                        "no good NodeConfig loaded and no SSM or IAM Roles Anywhere setup on the host: the credential provider is not known",
                    ));
                }
            }
            (Some(n), Some(h)) if h.ssm.is_some() => {
                f.checks.push(Check::pass(
                    DOMAIN,
                    "provider",
                    "credential provider: SSM hybrid activation",
                ));
                let link = h.enable_credentials_file.unwrap_or(false);
                provider::check_ssm(&cx, &n.spec.cluster.region, link, f);
            }
            (Some(_), Some(h)) if h.iam_roles_anywhere.is_some() => {
                f.checks.push(Check::pass(
                    DOMAIN,
                    "provider",
                    "credential provider: IAM Roles Anywhere",
                ));
                if let Some(iam) = &h.iam_roles_anywhere {
                    let file = h.enable_credentials_file.unwrap_or(false);
                    provider::check_iam_ra(&cx, iam, file, f);
                }
            }
            (Some(_), _) => f.checks.push(
                Check::new(
                    DOMAIN,
                    "provider",
                    Status::Fail,
                    "the NodeConfig names no credential provider (spec.hybrid.ssm or spec.hybrid.iamRolesAnywhere)",
                )
                .with_remedy("a hybrid node needs one of them to authenticate to the cluster"),
            ),
        }
    }
}

impl Domain for CredentialsDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.settings.interval.get()
    }

    fn after(&self) -> &'static [&'static str] {
        &[
            crate::check::names::LIFECYCLE,
            crate::check::names::NODECONFIG,
        ]
    }

    fn trigger(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.wake.clone())
    }

    fn reconfigure(&mut self, config: &Config) {
        self.settings = config.credentials.clone();
        self.web_config = config.web.config_file.clone();
        self.clients = config
            .registry
            .iter()
            .filter_map(|r| Some((r.host.clone(), r.client_cert.clone()?, r.client_key.clone())))
            .collect();
    }

    fn run(&mut self) -> Vec<Check> {
        self.run_at(SystemTime::now())
    }
}

#[cfg(test)]
mod tests;

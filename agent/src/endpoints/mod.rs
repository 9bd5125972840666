//! The endpoints domain: what `nodeadm init` and `nodeadm debug` check on
//! the network before a node joins, run continuously and without AWS
//! credentials.
//!
//! - The AWS endpoints the credential provider needs (SSM's three, or IAM
//!   Roles Anywhere) and STS, in the NodeConfig's region and its partition:
//!   DNS, TCP 443, a TLS handshake verified with the OS trust store. No
//!   request is sent: every API call there needs a signature.
//! - The cluster's API endpoint: DNS, TCP, TLS verified against the
//!   NodeConfig's `certificateAuthority`, and one unauthenticated `GET /`
//!   that must be refused with 401 or 403 (nodeadm's
//!   `kubernetes-unauthenticated-request`); with `[cluster] endpoint_access
//!   = "private"`, its addresses must be inside `vpc_cidrs`.
//! - The node IP, derived as nodeadm does, inside `[cluster]
//!   remote_node_networks`; `remote_pod_networks` clear of the host's own
//!   routes and addresses. nodeadm reads both lists with DescribeCluster;
//!   the agent takes them from its config.
//!
//! Like nodeadm, the connections go through `HTTPS_PROXY` (minus
//! `NO_PROXY`) when the agent's environment sets one; whether the proxy
//! settings agree across the host is the preflight domain's check.

pub mod checks;
mod metrics;
pub mod nodeip;
pub mod probe;
pub mod proxy;
#[cfg(test)]
mod tests;

use crate::check::{Check, Status};
use crate::config::{ClusterConfig, Config};
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use crate::model::aws::{partition_for_region, CredentialProvider, Service};
use crate::model::nodeconfig::Loaded;
use crate::tls::TlsSettings;
use metrics::Metrics;
use probe::{Network, Probe, Target};
use prometheus_client::registry::Registry;
use std::time::Duration;

pub const DOMAIN: &str = crate::check::names::ENDPOINTS;
const API_LABEL: &str = "api-server";
/// Where nodeadm writes the cluster CA at init (read when the NodeConfig
/// carries none).
pub const CLUSTER_CA: &str = "/etc/kubernetes/pki/ca.crt";
const MAX_BUNDLE: u64 = 16 * crate::host::MAX_PEM_FILE;

#[derive(Debug)]
pub struct EndpointsDomain {
    host: Host,
    facts: Facts,
    network: Box<dyn Network>,
    metrics: Metrics,
    cluster: ClusterConfig,
    interval: Duration,
    timeout: Duration,
    /// Woken by each new good NodeConfig (region, provider, endpoint, CA).
    wake: std::sync::Arc<tokio::sync::Notify>,
    /// The `endpoint` labels recorded in the current run: the others (a
    /// provider or endpoint no longer configured) are dropped at its end.
    seen: std::sync::Mutex<Vec<&'static str>>,
}

impl EndpointsDomain {
    pub fn new(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        network: Box<dyn Network>,
    ) -> Self {
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        facts.on_nodeconfig_change(wake.clone());
        let mut d = EndpointsDomain {
            host,
            facts,
            network,
            metrics: Metrics::register(registry),
            cluster: ClusterConfig::default(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            wake,
            seen: std::sync::Mutex::new(Vec::new()),
        };
        d.reconfigure(config);
        d
    }

    fn record(&self, label: &'static str, p: &Probe, up: bool) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(label);
        self.metrics.record(label, p.dns, p.tcp, p.tls, up);
    }

    /// The OS trust store under `--root`, as the AWS SDK's TLS trusts it.
    fn system_trust(&self) -> Option<Vec<u8>> {
        crate::tls::SYSTEM_BUNDLES
            .iter()
            .find_map(|b| self.host.read_small(b, MAX_BUNDLE).ok())
    }

    fn run_aws(&self, nc: &Loaded, checks: &mut Vec<Check>) {
        let region = nc.config.spec.cluster.region.trim();
        let hybrid = nc.config.spec.hybrid.as_ref();
        let provider = match hybrid {
            Some(h) if h.ssm.is_some() => CredentialProvider::Ssm,
            Some(h) if h.iam_roles_anywhere.is_some() => CredentialProvider::IamRolesAnywhere,
            _ => {
                checks.push(Check::new(DOMAIN, "aws", Status::Unknown, "the NodeConfig names no credential provider (spec.hybrid.ssm or spec.hybrid.iamRolesAnywhere): the AWS endpoints to check are not known"));
                return;
            }
        };
        if region.is_empty() {
            checks.push(Check::new(DOMAIN, "aws", Status::Unknown, "the NodeConfig has no spec.cluster.region: the AWS endpoints to check are not known"));
            return;
        }
        let partition = partition_for_region(region).id;
        let Some(system) = self.system_trust() else {
            checks.push(
                Check::new(
                    DOMAIN,
                    "aws",
                    Status::Fail,
                    format!(
                        "no OS trust store ({}): no TLS connection to AWS can be verified",
                        crate::tls::SYSTEM_BUNDLES.join(" or ")
                    ),
                )
                .with_remedy("install the ca-certificates package"),
            );
            return;
        };
        let trust = TlsSettings {
            system_pem: Some(system),
            ..TlsSettings::default()
        };
        // In parallel: a firewall that drops SYNs costs one timeout, not
        // one per endpoint.
        let probes: Vec<Probe> = std::thread::scope(|scope| {
            let running: Vec<_> = provider
                .services()
                .iter()
                .map(|svc| {
                    let target = Target {
                        host: svc.host(region),
                        port: 443,
                        get: None,
                        local_dns: false,
                    };
                    let trust = &trust;
                    scope.spawn(move || self.network.probe(&target, trust, self.timeout))
                })
                .collect();
            running
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Probe::crashed()))
                .collect()
        });
        for (svc, p) in provider.services().iter().zip(probes) {
            let host = svc.host(region);
            self.record(svc.as_str(), &p, p.failure.is_none());
            checks.push(checks::aws_endpoint(
                &format!("aws/{}", svc.as_str()),
                svc.title(),
                &host,
                partition,
                &p,
            ));
        }
    }

    /// The cluster CA: the NodeConfig's `certificateAuthority` (base64 of
    /// PEM), else the file nodeadm wrote at init. `Err((true, why))`: a CA
    /// was given but cannot be used; `(false, why)`: none is known yet.
    fn cluster_ca(&self, nc: Option<&Loaded>) -> Result<String, (bool, String)> {
        if let Some(pem) = nc.and_then(|nc| nc.config.cluster_ca_pem()) {
            let pem = pem.map_err(|e| (true, e.to_string()))?;
            if !crate::tls::has_certificate(&pem) {
                // nodeadm: "failed to parse Cluster CA certificate".
                return Err((
                    true,
                    "spec.cluster.certificateAuthority holds no PEM certificate: nodeadm fails to parse it".into(),
                ));
            }
            return Ok(String::from_utf8_lossy(&pem).into_owned());
        }
        match self.host.read_pem_file(CLUSTER_CA) {
            Ok(pem) if crate::tls::has_certificate(&pem) => {
                Ok(String::from_utf8_lossy(&pem).into_owned())
            }
            _ => Err((
                false,
                format!(
                    "the API server's certificate cannot be verified yet: the NodeConfig has no spec.cluster.certificateAuthority (nodeadm fetches it with DescribeCluster at init) and {CLUSTER_CA} is absent"
                ),
            )),
        }
    }

    fn run_api(&self, nc: Option<&Loaded>, checks: &mut Vec<Check>) {
        let Some((host, port)) = crate::model::endpoint::api_server(&self.host, nc) else {
            checks.push(Check::not_applicable(DOMAIN, API_LABEL, "the API server endpoint is not known yet (no spec.cluster.apiServerEndpoint in the NodeConfig, no kubelet kubeconfig)"));
            return;
        };
        let shown = if port == 443 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let ca = match self.cluster_ca(nc) {
            Ok(ca) => ca,
            Err((given, e)) => {
                let status = if given { Status::Fail } else { Status::Unknown };
                checks.push(Check::new(DOMAIN, API_LABEL, status, e).with_remedy(
                    "set spec.cluster.certificateAuthority: base64 of the cluster's PEM CA (aws eks describe-cluster --query cluster.certificateAuthority.data)",
                ));
                return;
            }
        };
        let trust = TlsSettings {
            ca_pem: Some(ca),
            ..TlsSettings::default()
        };
        let target = Target {
            host,
            port,
            get: Some("/".into()),
            // nodeadm resolves the API name itself before dialing.
            local_dns: true,
        };
        let p = self.network.probe(&target, &trust, self.timeout);
        let check = checks::api_server(&shown, &p);
        self.record(API_LABEL, &p, check.status == Status::Pass);
        checks.push(check);
        checks.push(checks::api_addresses(
            &shown,
            &p.addrs,
            self.cluster.endpoint_access,
            &self.cluster.vpc_cidrs,
        ));
    }

    fn run_networks(&self, nc: Option<&Loaded>, checks: &mut Vec<Check>) {
        let host = match self.network.host_networks() {
            Ok(h) => h,
            Err(e) => {
                for id in ["node-ip", "pod-networks"] {
                    checks.push(Check::new(
                        DOMAIN,
                        id,
                        Status::Unknown,
                        format!("cannot read the host's networks: {e}"),
                    ));
                }
                return;
            }
        };
        let flags: &[String] = nc.map_or(&[], |nc| nc.config.spec.kubelet.flags.as_slice());
        let node_name = nc
            .and_then(|nc| nc.config.spec.hybrid.as_ref())
            .and_then(|h| h.iam_roles_anywhere.as_ref())
            .map(|i| i.node_name.clone())
            .filter(|n| !n.is_empty());
        let name_addrs = node_name
            .as_deref()
            .and_then(|n| self.network.lookup(n, self.timeout).ok())
            .unwrap_or_default();
        let derived = checks::derive_node_ip(flags, node_name.as_deref(), &name_addrs, &host);
        let nets = &self.cluster.remote_node_networks;
        let ip_check = checks::node_ip(&derived, nets);
        self.metrics.node_ip_in_networks.clear();
        if let (false, Ok(ip)) = (nets.is_empty(), &derived) {
            self.metrics
                .node_ip_in_networks
                .get_or_create(&metrics::SourceLabels { source: ip.label() })
                .set(i64::from(ip_check.status == Status::Pass));
        }
        checks.push(ip_check);
        let pods = &self.cluster.remote_pod_networks;
        let overlaps = checks::pod_overlaps(pods, &host);
        // Cleared first: a reconfigure that empties the list leaves no
        // stale count behind.
        self.metrics.pod_overlaps.clear();
        if !pods.is_empty() {
            for kind in ["route", "address"] {
                let n = overlaps.iter().filter(|o| o.starts_with(kind)).count();
                self.metrics
                    .pod_overlaps
                    .get_or_create(&metrics::KindLabels { kind })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        checks.push(checks::pod_networks(pods, &overlaps));
    }
}

impl Domain for EndpointsDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn after(&self) -> &'static [&'static str] {
        &[crate::check::names::NODECONFIG]
    }

    fn trigger(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.wake.clone())
    }

    fn reconfigure(&mut self, config: &Config) {
        self.cluster = config.cluster.clone();
        self.interval = config.endpoints.interval.get();
        self.timeout = config.endpoints.timeout.get();
    }

    fn run(&mut self) -> Vec<Check> {
        let nc = self.facts.nodeconfig();
        let mut checks = Vec::new();
        let this = &*self;
        let api = std::thread::scope(|scope| {
            let api = scope.spawn(|| {
                let mut c = Vec::new();
                this.run_api(nc.as_deref(), &mut c);
                c
            });
            match nc.as_deref() {
                Some(nc) => this.run_aws(nc, &mut checks),
                None => checks.push(Check::not_applicable(
                    DOMAIN,
                    "aws",
                    "no valid NodeConfig yet: the region and credential provider are not known",
                )),
            }
            api.join().unwrap_or_else(|_| {
                vec![Check::new(
                    DOMAIN,
                    API_LABEL,
                    Status::Unknown,
                    "the API server probe crashed",
                )]
            })
        });
        checks.extend(api);
        let seen = std::mem::take(
            &mut *self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let labels = [
            Service::Sts,
            Service::Ssm,
            Service::SsmMessages,
            Service::Ec2Messages,
            Service::RolesAnywhere,
        ]
        .map(Service::as_str);
        self.metrics
            .drop_except(labels.into_iter().chain([API_LABEL]), &seen);
        self.run_networks(nc.as_deref(), &mut checks);
        checks
    }
}

//! DNS both ways: the Route 53 Resolver inbound endpoints
//! (`[[network.resolver]]`) asked over UDP and over TCP for the cluster
//! endpoint (or configured names), their answers judged against the
//! expected (VPC) ranges; and the host's own resolver configuration with
//! the answers it gives for the API endpoint, the registries and the AWS
//! endpoints the node needs.

pub mod checks;
pub use crate::config::dns as config;
pub mod metrics;
pub mod query;
pub mod resolvconf;
pub mod wire;

use crate::check::{Check, Status};
use crate::config::Config;
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use crate::model::cidr::Cidr;
use checks::Asked;
use config::ResolverEntry;
use metrics::{Metrics, ResolverLabels};
use prometheus_client::registry::Registry;
use query::{Lookup, Transport};
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

pub const DOMAIN: &str = "dns";
/// Per query; a resolver that takes longer is as good as down for kubelet.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct DnsDomain {
    resolvers: Vec<ResolverEntry>,
    registries: Vec<String>,
    interval: Duration,
    host: Host,
    facts: Facts,
    lookup: Box<dyn Lookup>,
    metrics: Metrics,
}

impl DnsDomain {
    pub fn new(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        lookup: Box<dyn Lookup>,
    ) -> Self {
        let mut d = DnsDomain {
            resolvers: Vec::new(),
            registries: Vec::new(),
            interval: Duration::from_secs(30),
            host,
            facts,
            lookup,
            metrics: Metrics::register(registry),
        };
        d.reconfigure(config);
        d
    }

    /// The API server's host name, from the kubelet kubeconfig (after
    /// init) or the NodeConfig.
    fn api_host(&self) -> Option<String> {
        crate::model::endpoint::api_server(&self.host, self.facts.nodeconfig().as_deref())
            .map(|(h, _)| h)
            .filter(|h| h.parse::<IpAddr>().is_err())
    }

    fn region(&self) -> Option<String> {
        self.facts
            .nodeconfig()
            .map(|nc| nc.config.spec.cluster.region.clone())
            .filter(|r| !r.is_empty())
    }

    /// A and AAAA for `name`, merged.
    fn ask(&self, server: std::net::SocketAddr, t: Transport, name: &str) -> Asked {
        let mut merged: Option<(wire::Answer, Duration)> = None;
        for qtype in [wire::TYPE_A, wire::TYPE_AAAA] {
            match self.lookup.query(server, t, name, qtype, QUERY_TIMEOUT) {
                Err(e) => return Asked::Failed(e),
                Ok((a, took)) => match &mut merged {
                    None => merged = Some((a, took)),
                    Some((m, mt)) => {
                        // The A answer decides, unless only AAAA records
                        // exist: servers differ on what they say for the
                        // type they have nothing for (NOERROR, REFUSED).
                        if !a.addresses.is_empty() && a.rcode == 0 {
                            m.rcode = 0;
                        }
                        m.addresses.extend(a.addresses);
                        *mt = (*mt).max(took);
                    }
                },
            }
        }
        match merged {
            Some((answer, took)) => Asked::Answered { answer, took },
            None => Asked::Failed(query::QueryError::Timeout(QUERY_TIMEOUT)),
        }
    }

    fn run_resolver(&self, r: &ResolverEntry, api: Option<&str>, checks: &mut Vec<Check>) {
        let names: Vec<String> = if r.names.is_empty() {
            api.map(|a| vec![a.to_owned()]).unwrap_or_default()
        } else {
            r.names.clone()
        };
        let server = match r.socket_addr() {
            Ok(s) => s,
            Err(e) => {
                checks.push(Check::new(
                    DOMAIN,
                    format!("resolver/{}", r.name),
                    Status::Unknown,
                    e.to_string(),
                ));
                return;
            }
        };
        let ranges: Vec<Cidr> = r.ranges();
        for t in [Transport::Udp, Transport::Tcp] {
            let id = format!("resolver/{}/{}", r.name, t.as_str());
            let labels = ResolverLabels {
                resolver: r.name.as_str().into(),
                transport: t.as_str(),
            };
            if names.is_empty() {
                checks.push(Check::new(DOMAIN, id, Status::Unknown, format!("no name to ask {} yet: the API server endpoint is not known (set names = [...] in [[network.resolver]])", r.name)));
                continue;
            }
            let mut worst: Option<(Status, String, Option<&'static str>)> = None;
            let (mut up, mut expected, mut slowest) = (true, true, Duration::ZERO);
            let mut passes = Vec::new();
            for name in &names {
                let asked = self.ask(server, t, name);
                let (status, summary) =
                    checks::judge(&r.name, &server.to_string(), t, name, &asked, &ranges);
                match &asked {
                    Asked::Answered { answer, took } => {
                        slowest = slowest.max(*took);
                        if answer.rcode != 0 || answer.addresses.is_empty() {
                            up = false;
                        } else if status != Status::Pass {
                            expected = false;
                        }
                    }
                    Asked::Failed(_) => up = false,
                }
                if status == Status::Pass {
                    passes.push(summary);
                } else if worst.as_ref().is_none_or(|(s, ..)| status > *s) {
                    worst = Some((status, summary, checks::remedy(status, t, &asked)));
                }
            }
            self.metrics.up.get_or_create(&labels).set(i64::from(up));
            self.metrics
                .expected
                .get_or_create(&labels)
                .set(i64::from(up && expected));
            if up {
                self.metrics
                    .seconds
                    .get_or_create(&labels)
                    .set(slowest.as_secs_f64());
            }
            checks.push(match worst {
                Some((status, summary, remedy)) => {
                    let c = Check::new(DOMAIN, id, status, summary);
                    match remedy {
                        Some(r) => c.with_remedy(r),
                        None => c,
                    }
                }
                None => Check::pass(DOMAIN, id, passes.join("; ")),
            });
        }
    }

    /// The host's resolver: what it is, and what it answers.
    fn run_host(&self, api: Option<&str>, checks: &mut Vec<Check>) {
        let hr = match resolvconf::read(&self.host) {
            Ok(hr) => hr,
            // Without the file the C library asks a nameserver on this host
            // (127.0.0.1), a legitimate setup (a local unbound or dnsmasq).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                checks.push(Check::not_applicable(
                    DOMAIN,
                    "host",
                    format!(
                        "no {}: the C library asks a nameserver on this host (127.0.0.1)",
                        resolvconf::RESOLV_CONF
                    ),
                ));
                return;
            }
            Err(e) => {
                checks.push(Check::new(
                    DOMAIN,
                    "host",
                    Status::Unknown,
                    format!("cannot read {}: {e}", resolvconf::RESOLV_CONF),
                ));
                return;
            }
        };
        checks.push(if hr.upstream.is_empty() {
            Check::new(DOMAIN, "host", Status::Fail, format!("the host resolver has no servers ({})", hr.describe()))
                .with_remedy("configure nameservers (the on-premises DNS forwarding to the Route 53 Resolver inbound endpoints)")
        } else {
            Check::pass(DOMAIN, "host", format!("the host resolves through {}", hr.describe()))
        });
        let mut names: Vec<(String, bool)> = Vec::new();
        if let Some(a) = api {
            names.push((a.to_owned(), true));
        }
        for r in &self.registries {
            names.push((r.clone(), false));
        }
        if let Some(region) = self.region() {
            for svc in ["sts", "ssm"] {
                names.push((crate::model::aws::service_host(svc, &region), false));
            }
        }
        names.dedup();
        for (name, is_api) in names {
            let id = format!("host/{name}");
            checks.push(match (name.as_str(), 0u16).to_socket_addrs() {
                Ok(addrs) => {
                    let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                    ips.sort();
                    ips.dedup();
                    let private = config::private_ranges();
                    let public: Vec<String> = ips
                        .iter()
                        .filter(|ip| !Cidr::any_contains(&private, **ip))
                        .map(ToString::to_string)
                        .collect();
                    let list = ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                    if is_api && !public.is_empty() {
                        Check::new(DOMAIN, id, Status::Warn, format!("the host resolves the API endpoint {name} to public {}: control-plane traffic leaves the Direct Connect / VPN path", public.join(", ")))
                            .with_remedy("for private endpoint access, forward the cluster's domain to the Route 53 Resolver inbound endpoints")
                    } else {
                        let kind = if public.is_empty() { "private" } else { "public" };
                        Check::pass(DOMAIN, id, format!("the host resolves {name} to {list} ({kind})"))
                    }
                }
                Err(e) => Check::new(DOMAIN, id, Status::Fail, format!("the host cannot resolve {name}: {e}"))
                    .with_remedy("check the host resolver and its forwarding toward the Route 53 Resolver inbound endpoints"),
            });
        }
    }
}

impl Domain for DnsDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn after(&self) -> &'static [&'static str] {
        &[crate::check::names::NODECONFIG]
    }

    fn reconfigure(&mut self, config: &Config) {
        self.resolvers = config.network.resolver.clone();
        self.interval = config.network.interval.get();
        self.registries = config
            .registry
            .iter()
            .map(|r| {
                // host[:port] → host
                match r.host.rsplit_once(':') {
                    Some((h, p)) if p.parse::<u16>().is_ok() && !h.contains(':') => h.to_owned(),
                    _ => r.host.clone(),
                }
            })
            .collect();
    }

    fn run(&mut self) -> Vec<Check> {
        let api = self.api_host();
        let mut checks = Vec::new();
        self.run_host(api.as_deref(), &mut checks);
        if self.resolvers.is_empty() {
            checks.push(Check::not_applicable(DOMAIN, "resolvers", "no [[network.resolver]]: add the Route 53 Resolver inbound endpoints to check DNS toward the VPC over UDP and TCP"));
        }
        for r in &self.resolvers {
            self.run_resolver(r, api.as_deref(), &mut checks);
        }
        checks
    }
}

#[cfg(test)]
mod tests;

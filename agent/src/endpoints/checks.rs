//! Pure verdicts: a probe, a derived node IP or the host's networks in, a
//! [`Check`] out. Each failure mode gets its own words and remedy.

pub use super::nodeip::{derive_node_ip, NodeIp, NodeIpError};
use super::probe::{Failure, HostNetworks, Probe};
use super::DOMAIN;
use crate::check::{Check, Status};
use crate::config::cluster::EndpointAccess;
use crate::model::cidr::Cidr;
use crate::tls::CertProblem;
use std::net::IpAddr;
use std::time::Duration;

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(String::new, |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    })
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The words and remedy for a probe that stopped early. `what`: "sts.….com
/// (STS)"; `trust`: what the certificate was checked against.
fn failed(id: &str, what: &str, trust: &str, f: &Failure, dns_remedy: &str) -> Check {
    let (summary, remedy) = match f {
        Failure::Resolve(e) => (format!("{what}: {e}"), dns_remedy.to_owned()),
        Failure::NoRoute { addr, reason } => (
            format!("{what}: no route to {addr} ({reason})"),
            format!("add a route toward {addr} over the Direct Connect / VPN link (or a default route through the site's gateway or proxy)"),
        ),
        Failure::Proxy { proxy, reason } => (
            format!("{what}: through the HTTPS proxy {proxy}: {reason}"),
            "check the proxy (HTTPS_PROXY in the agent's and nodeadm's environment) and that it allows CONNECT to the endpoint on 443, or list the endpoint in NO_PROXY if it is reached directly".to_owned(),
        ),
        Failure::Connect { reason, .. } => (
            format!("{what}: {reason}"),
            "open TCP toward the endpoint in the site firewall and on the path (security groups, NACLs, on-premises ACLs), or set HTTPS_PROXY for nodeadm and the credential provider".to_owned(),
        ),
        Failure::BadCa(e) => (
            format!("{what}: the CA to verify with cannot be used: {e}"),
            "fix spec.cluster.certificateAuthority in the NodeConfig: base64 of the cluster's PEM CA (aws eks describe-cluster --query cluster.certificateAuthority.data)".to_owned(),
        ),
        Failure::Untrusted { kind: CertProblem::Validity, reason: e } => (
            format!("{what}: the server's certificate is expired or not yet valid at this host's clock: {e}"),
            "check this host's clock first (the preflight domain's clock check, `chronyc tracking` or `timedatectl`): a clock off by days makes every certificate look expired or not yet valid; if the clock is right, the certificate presented has expired (or a TLS-inspecting proxy presents a stale one)".to_owned(),
        ),
        Failure::Untrusted { kind: CertProblem::WrongName, reason: e } => (
            format!("{what}: the server's certificate is not for this name: {e}"),
            if trust.contains("certificateAuthority") {
                "the certificate is not for this host: check spec.cluster.apiServerEndpoint (aws eks describe-cluster --query cluster.endpoint), and that nothing (a proxy, a load balancer, a stale DNS record) answers in its place".to_owned()
            } else {
                "the certificate is not for this host: something answers in the endpoint's place (a DNS record pointing elsewhere, a proxy or firewall): check what the name resolves to and the path toward it".to_owned()
            },
        ),
        Failure::Untrusted { kind: CertProblem::Untrusted, reason: e } => (
            format!("{what}: the server's certificate does not verify against {trust}: {e}"),
            if trust.contains("certificateAuthority") {
                "the NodeConfig's certificateAuthority is not this cluster's CA, or something in the path (a TLS-inspecting proxy) answers instead: compare with aws eks describe-cluster --query cluster.certificateAuthority.data".to_owned()
            } else {
                "a TLS-inspecting proxy or firewall answers in the endpoint's place: exempt the AWS endpoints from inspection, or add its CA to the OS trust store (update-ca-certificates / update-ca-trust)".to_owned()
            },
        ),
        Failure::Tls(e) => (
            format!("{what}: {e}"),
            "something on the path breaks TLS (a proxy or firewall resetting the handshake): check the path toward the endpoint".to_owned(),
        ),
        Failure::Crashed => (
            format!("{what}: the probe crashed"),
            "see the agent's log and report the bug".to_owned(),
        ),
        Failure::Http(e) => (
            format!("{what}: no HTTP answer after the handshake: {e}"),
            "check that the address is the cluster's API endpoint and nothing on the path cuts the connection".to_owned(),
        ),
    };
    Check::new(DOMAIN, id, Status::Fail, summary).with_remedy(remedy)
}

/// How the connection was made, for a summary: `resolves to A, TCP A` or
/// `through the HTTPS proxy P`.
fn reached(p: &Probe) -> String {
    let addr = p.addr.map_or(String::new(), |a| a.to_string());
    match &p.via {
        Some(proxy) if p.addrs.is_empty() => {
            format!("through the HTTPS proxy {proxy} (TCP in {})", ms(p.tcp))
        }
        Some(proxy) => format!(
            "resolves to {}, through the HTTPS proxy {proxy} (TCP in {})",
            list(&p.addrs),
            ms(p.tcp)
        ),
        None => format!(
            "resolves to {}, TCP {addr} in {}",
            list(&p.addrs),
            ms(p.tcp)
        ),
    }
}

/// An AWS service endpoint: DNS, TCP 443 and a handshake verified with the
/// OS trust store.
pub fn aws_endpoint(id: &str, title: &str, host: &str, partition: &str, p: &Probe) -> Check {
    let what = format!("{title} endpoint {host} ({partition} partition)");
    match &p.failure {
        Some(f) => failed(
            id,
            &what,
            "the OS trust store",
            f,
            "the host resolver must answer for the AWS endpoints (public DNS, or the VPC endpoint's private zone through the Route 53 Resolver inbound endpoints)",
        ),
        None => Check::pass(
            DOMAIN,
            id,
            format!(
                "{what}: {}, TLS verified with the OS trust store in {}",
                reached(p),
                ms(p.tls)
            ),
        ),
    }
}

/// What an unauthenticated request to the API server should get. nodeadm
/// accepts 403 (Kubernetes before 1.32) and 401 (1.32 on), and reads the
/// body as a Kubernetes `Status` first.
pub fn unauthenticated_verdict(status: u16, body: &str) -> (Status, String) {
    let message = serde_json::from_str::<serde_json::Value>(body).ok();
    let Some(message) = message else {
        return (
            Status::Fail,
            format!("answered {status} with a body that is not a Kubernetes Status object (JSON): not an API server, or a proxy's page; nodeadm's k8s-endpoint-network check fails"),
        );
    };
    let said = message
        .get("message")
        .and_then(|m| m.as_str())
        .map(|m| format!(" ({})", m.chars().take(120).collect::<String>()))
        .unwrap_or_default();
    match status {
        401 | 403 => (
            Status::Pass,
            format!("an unauthenticated GET is refused with {status}{said}, as nodeadm expects"),
        ),
        200..=299 => (
            Status::Fail,
            format!("an unauthenticated GET is answered {status}{said}: anonymous access is open, or this is not the cluster's API server; nodeadm expects 401 or 403 and fails"),
        ),
        _ => (
            Status::Fail,
            format!("an unauthenticated GET is answered {status}{said}; nodeadm expects 401 or 403 and fails"),
        ),
    }
}

/// The API server: reachable, certificate from the cluster CA, refusing
/// anonymous requests.
pub fn api_server(endpoint: &str, p: &Probe) -> Check {
    let id = "api-server";
    let what = format!("API server {endpoint}");
    if let Some(f) = &p.failure {
        return failed(
            id,
            &what,
            "the NodeConfig's certificateAuthority",
            f,
            "the host resolver must answer for the API endpoint (for a private endpoint: forward the cluster's domain to the Route 53 Resolver inbound endpoints)",
        );
    }
    let Some(answer) = &p.answer else {
        return Check::new(
            DOMAIN,
            id,
            Status::Unknown,
            format!("{what}: no answer was asked for"),
        );
    };
    let (status, verdict) = unauthenticated_verdict(answer.status, &answer.body);
    let summary = format!(
        "{what}: {}, TLS verified with the NodeConfig's certificateAuthority; {verdict}",
        reached(p)
    );
    let c = Check::new(DOMAIN, id, status, summary);
    if status == Status::Pass {
        c
    } else {
        c.with_remedy("check spec.cluster.apiServerEndpoint: it must be the cluster's endpoint (aws eks describe-cluster --query cluster.endpoint), and nothing (a proxy, a load balancer) may answer in its place")
    }
}

/// With `endpoint_access = "private"`, every address of the endpoint must
/// be in the VPC; otherwise there is nothing to judge.
pub fn api_addresses(
    endpoint: &str,
    addrs: &[IpAddr],
    access: EndpointAccess,
    vpc: &[Cidr],
) -> Check {
    let id = "api-server/addresses";
    match access {
        EndpointAccess::Private => {}
        // Public addresses are the internet's: nothing to hold them to.
        EndpointAccess::Public => {
            return Check::not_applicable(
                DOMAIN,
                id,
                "public endpoint ([cluster] endpoint_access = \"public\"): its addresses are not judged",
            )
        }
        EndpointAccess::Any => {
            return Check::not_applicable(
                DOMAIN,
                id,
                "the endpoint's addresses are not judged: set [cluster] endpoint_access = \"private\" and vpc_cidrs for a private endpoint",
            )
        }
    }
    if addrs.is_empty() {
        return Check::new(
            DOMAIN,
            id,
            Status::Unknown,
            format!("{endpoint} did not resolve: its addresses are not known"),
        );
    }
    let outside: Vec<IpAddr> = addrs
        .iter()
        .copied()
        .filter(|a| !Cidr::any_contains(vpc, *a))
        .collect();
    let ranges = vpc
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if outside.is_empty() {
        Check::pass(
            DOMAIN,
            id,
            format!(
                "the private endpoint {endpoint} resolves to {} inside the VPC ({ranges})",
                list(addrs)
            ),
        )
    } else {
        Check::new(
            DOMAIN,
            id,
            Status::Fail,
            format!("the private endpoint {endpoint} resolves to {} outside the VPC ({ranges}): the host resolver answers with the public zone, and control-plane traffic would leave the Direct Connect / VPN path (or fail, with public access off)", list(&outside)),
        )
        .with_remedy("forward the cluster's domain (eks.amazonaws.com) to the Route 53 Resolver inbound endpoints in the VPC; check [cluster] vpc_cidrs")
    }
}

/// The node IP must be IPv4 and inside a remote node network.
pub fn node_ip(derived: &Result<NodeIp, NodeIpError>, remote_node_networks: &[Cidr]) -> Check {
    let id = "node-ip";
    if remote_node_networks.is_empty() {
        let found = match derived {
            Ok(ip) => format!("node IP {} (from {})", ip.ip(), ip.source()),
            Err(e) => e.to_string(),
        };
        return Check::not_applicable(DOMAIN, id, format!("{found}; not judged: set [cluster] remote_node_networks to the cluster's remote node networks"));
    }
    let ip = match derived {
        Err(e) => {
            return Check::new(DOMAIN, id, Status::Fail, e.to_string()).with_remedy(
                "set --node-ip=<IPv4> in spec.kubelet.flags, or give the host a default route",
            )
        }
        Ok(n) => n,
    };
    let nets = remote_node_networks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if Cidr::any_contains(remote_node_networks, ip.ip()) {
        Check::pass(
            DOMAIN,
            id,
            format!(
                "node IP {} (from {}) is inside the remote node networks ({nets})",
                ip.ip(),
                ip.source()
            ),
        )
    } else {
        Check::new(DOMAIN, id, Status::Fail, format!("node IP {} (from {}) is in none of the remote node networks ({nets}): nodeadm init fails its node-ip validation, and the control plane cannot reach the kubelet", ip.ip(), ip.source()))
            .with_remedy("set --node-ip to the host's address inside a remote node network, or add the host's network to the cluster's remoteNetworkConfig (and to [cluster] remote_node_networks)")
    }
}

/// Interface name prefixes of the CNIs a hybrid node runs (Cilium, Calico,
/// Flannel and the bridge plugin): their routes and addresses *are* the pod
/// networks once the CNI is up, not a collision with the site's.
/// `cilium_host`/`cilium_vxlan`/`lxc*` (Cilium), `cali*`, `vxlan.calico`,
/// `vxlan-v6.calico`, `wireguard.cali`, `tunl0` (Calico), `flannel.*`,
/// `cni0` (Flannel, bridge).
pub const CNI_INTERFACE_PREFIXES: &[&str] = &[
    "cilium_",
    "lxc",
    "cali",
    "vxlan.calico",
    "vxlan-v6.calico",
    "wireguard.cali",
    "tunl0",
    "flannel",
    "cni0",
];

/// Whether `interface` belongs to a CNI ([`CNI_INTERFACE_PREFIXES`]).
pub fn is_cni_interface(interface: &str) -> bool {
    CNI_INTERFACE_PREFIXES
        .iter()
        .any(|p| interface.starts_with(p))
}

/// The host's routes and addresses that fall in a remote pod network, in
/// words (`route 10.200.0.0/16 on tun0 overlaps …`). The CNI's own
/// interfaces are skipped. A route counts when it lies inside the pod
/// network, or when it is on-link (no gateway) and overlaps it: a wider
/// route through a gateway (`0.0.0.0/1` of a VPN, `10.0.0.0/8` via the
/// site's router) is how pod traffic may leave, and the CNI's more specific
/// routes win over it.
pub fn pod_overlaps(pods: &[Cidr], host: &HostNetworks) -> Vec<String> {
    let mut out = Vec::new();
    for p in pods {
        for r in &host.routes {
            if is_cni_interface(&r.interface) {
                continue;
            }
            let c = Cidr {
                net: IpAddr::V4(r.destination),
                len: r.prefix_len,
            };
            let inside = r.prefix_len >= p.len && p.contains(c.net);
            // The default route overlaps everything: never a conflict.
            let on_link = r.gateway.is_none() && r.prefix_len > 0 && c.overlaps(p);
            if inside || on_link {
                out.push(format!("route {c} on {} overlaps {p}", r.interface));
            }
        }
        for a in &host.addresses {
            if p.contains(a.address) && !a.address.is_loopback() && !is_cni_interface(&a.interface)
            {
                out.push(format!(
                    "address {} on {} is inside {p}",
                    a.address, a.interface
                ));
            }
        }
    }
    out.dedup();
    out
}

/// The remote pod networks must not be the host's own networks.
pub fn pod_networks(pods: &[Cidr], overlaps: &[String]) -> Check {
    let id = "pod-networks";
    if pods.is_empty() {
        return Check::not_applicable(
            DOMAIN,
            id,
            "not judged: set [cluster] remote_pod_networks to the cluster's remote pod networks",
        );
    }
    let nets = pods
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if overlaps.is_empty() {
        Check::pass(
            DOMAIN,
            id,
            format!("no route or address of the host falls in the remote pod networks ({nets})"),
        )
    } else {
        Check::new(DOMAIN, id, Status::Fail, format!("the remote pod networks collide with the host's own: {}; pod traffic would be routed to the host's networks instead of the CNI", overlaps.join("; ")))
            .with_remedy("choose remote pod networks disjoint from the site's networks (and the CNI's pod CIDRs to match), or renumber the host network that overlaps")
    }
}

//! One endpoint, probed the way nodeadm's network validations reach it
//! (`internal/network/connection.go`, `internal/kubernetes/
//! unauthenticated.go`): resolve the name, ask the kernel for a route, a
//! TCP connect, a verified TLS handshake, and for the API server one
//! unauthenticated `GET` whose status and body are kept. Every step runs
//! under one deadline ([`DeadlineStream`]), and no step carries credentials.

use crate::deadline::DeadlineStream;
use crate::edge::route::{self, InterfaceAddress, KernelRoute, RouteError};
use crate::tls::{self, Answer, TlsError, TlsSettings};
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Where to go, and what to ask once there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `Some(path)`: send an unauthenticated `GET path` after the handshake.
    pub get: Option<String>,
}

/// How far a probe got, and what each step took.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Every address the name resolved to (the literal for an IP).
    pub addrs: Vec<IpAddr>,
    /// The address connected to.
    pub addr: Option<IpAddr>,
    /// Resolution time; `None` for an IP literal or a failed lookup.
    pub dns: Option<Duration>,
    pub tcp: Option<Duration>,
    pub tls: Option<Duration>,
    pub answer: Option<Answer>,
    /// The step that failed, if one did.
    pub failure: Option<Failure>,
}

/// The step a probe stopped at, with the reason in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The name does not resolve, or to nothing.
    Resolve(String),
    /// The kernel has no route toward the address.
    NoRoute { addr: IpAddr, reason: String },
    /// TCP connect refused or timed out.
    Connect { addr: IpAddr, reason: String },
    /// The CA given cannot be used (not PEM, no certificate).
    BadCa(String),
    /// The server's certificate does not verify against the trust given.
    Untrusted(String),
    /// The handshake failed otherwise (protocol, reset, timeout).
    Tls(String),
    /// No HTTP answer after the handshake.
    Http(String),
}

/// The host's own networks: what the pod networks must not overlap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNetworks {
    pub routes: Vec<KernelRoute>,
    pub addresses: Vec<InterfaceAddress>,
}

/// Why the host's networks are not known.
#[derive(Debug, thiserror::Error)]
pub enum HostNetError {
    #[error("cannot read /proc/net/route: {0}")]
    Routes(#[source] std::io::Error),
    #[error("{0}")]
    Addresses(#[from] RouteError),
}

/// The network as the domain sees it: a seam so that the domain's logic
/// runs in unit tests without sockets.
pub trait Network: Send + std::fmt::Debug {
    /// Probes `target` trusting `trust`, all within `timeout`.
    fn probe(&self, target: &Target, trust: &TlsSettings, timeout: Duration) -> Probe;
    /// The host's IPv4 routes and its addresses.
    fn host_networks(&self) -> Result<HostNetworks, HostNetError>;
    /// The addresses a name resolves to (the IAM Roles Anywhere node name).
    fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The real network: the C library's resolver, the kernel's routes, TCP
/// and rustls.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealNetwork;

impl Network for RealNetwork {
    fn probe(&self, target: &Target, trust: &TlsSettings, timeout: Duration) -> Probe {
        probe(target, trust, timeout)
    }

    fn host_networks(&self) -> Result<HostNetworks, HostNetError> {
        Ok(HostNetworks {
            routes: route::ipv4_routes().map_err(HostNetError::Routes)?,
            addresses: route::addresses()?,
        })
    }

    fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok((name, 0u16).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

fn probe(target: &Target, trust: &TlsSettings, timeout: Duration) -> Probe {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut p = Probe::default();
    if let Err(f) = steps(target, trust, deadline, &mut p) {
        p.failure = Some(f);
    }
    p
}

fn steps(
    target: &Target,
    trust: &TlsSettings,
    deadline: Instant,
    p: &mut Probe,
) -> Result<(), Failure> {
    let host = target.host.as_str();
    if let Ok(ip) = host.parse::<IpAddr>() {
        p.addrs = vec![ip];
    } else {
        let t = Instant::now();
        let addrs = (host, target.port)
            .to_socket_addrs()
            .map_err(|e| Failure::Resolve(format!("cannot resolve {host}: {e}")))?;
        let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
        ips.dedup();
        p.dns = Some(t.elapsed());
        if ips.is_empty() {
            return Err(Failure::Resolve(format!("{host} resolves to no address")));
        }
        p.addrs = ips;
    }
    // nodeadm's Go dialer tries IPv4 first on a dual-stack answer.
    let ip = p
        .addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(p.addrs.first())
        .copied()
        .ok_or_else(|| Failure::Resolve(format!("{host} resolves to no address")))?;
    p.addr = Some(ip);
    if let Err(e @ RouteError::NoRoute { .. }) = route::lookup(ip) {
        return Err(Failure::NoRoute {
            addr: ip,
            reason: e.to_string(),
        });
    }
    let addr = SocketAddr::new(ip, target.port);
    let t = Instant::now();
    let tcp = DeadlineStream::connect(&addr, deadline).map_err(|e| {
        let reason = format!("cannot connect to {addr}: {e}");
        // ENETUNREACH / EHOSTUNREACH: routed nowhere, or an unreachable
        // answer from a router on the way.
        if matches!(e.raw_os_error(), Some(101 | 113)) {
            Failure::NoRoute { addr: ip, reason }
        } else {
            Failure::Connect { addr: ip, reason }
        }
    })?;
    p.tcp = Some(t.elapsed());
    let config = tls::client_config(trust, false).map_err(|e| Failure::BadCa(e.to_string()))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Failure::Tls(format!("{host} is not a TLS server name: {e}")))?;
    let t = Instant::now();
    let mut session = tls::handshake(tcp, config, name).map_err(|e| {
        if e.untrusted() {
            Failure::Untrusted(e.to_string())
        } else {
            Failure::Tls(e.to_string())
        }
    })?;
    p.tls = Some(t.elapsed());
    if let Some(path) = &target.get {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hybrid-node-agent\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            authority(host, target.port)
        );
        let answer = tls::exchange(&mut session, &request, 16 * 1024).map_err(|e| match e {
            TlsError::NotHttp => Failure::Http("the answer is not HTTP".into()),
            e => Failure::Http(e.to_string()),
        })?;
        p.answer = Some(answer);
    }
    Ok(())
}

fn authority(host: &str, port: u16) -> String {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 443 {
        h
    } else {
        format!("{h}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_listening_stops_at_connect() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let p = probe(
            &Target {
                host: "127.0.0.1".into(),
                port,
                get: None,
            },
            &TlsSettings::default(),
            Duration::from_secs(1),
        );
        assert!(p.dns.is_none() && p.tcp.is_none());
        assert!(
            matches!(&p.failure, Some(Failure::Connect { reason, .. }) if reason.contains("refused")),
            "{p:?}"
        );
    }

    #[test]
    fn a_name_that_cannot_resolve_stops_at_dns() {
        let p = probe(
            &Target {
                host: "no-such-host.invalid".into(),
                port: 443,
                get: None,
            },
            &TlsSettings::default(),
            Duration::from_secs(2),
        );
        assert!(matches!(p.failure, Some(Failure::Resolve(_))), "{p:?}");
    }

    #[test]
    fn host_names_in_requests_carry_the_port_unless_443() {
        assert_eq!(authority("api.example", 443), "api.example");
        assert_eq!(authority("127.0.0.1", 6443), "127.0.0.1:6443");
        assert_eq!(authority("fd00::1", 6443), "[fd00::1]:6443");
    }
}

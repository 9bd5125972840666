//! One endpoint, probed the way nodeadm's network validations reach it
//! (`internal/network/connection.go`, `internal/kubernetes/
//! unauthenticated.go`): resolve the name, ask the kernel for a route, a
//! TCP connect, a verified TLS handshake, and for the API server one
//! unauthenticated `GET` whose status and body are kept. Every step runs
//! under one deadline ([`DeadlineStream`]), and no step carries credentials.
//!
//! With an HTTPS proxy for the host (see [`super::proxy`]) the TCP connect
//! goes to the proxy and a `CONNECT host:port` opens the tunnel the
//! handshake then runs through, as nodeadm's check does; the name is then
//! resolved by the proxy, unless the target asks for a local lookup (the
//! API server: nodeadm resolves it first).

use super::proxy::{ProxyAddr, ProxySettings};
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
    /// Resolve the name here even when a proxy would.
    pub local_dns: bool,
}

/// How far a probe got, and what each step took.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Every address the name resolved to (the literal for an IP).
    pub addrs: Vec<IpAddr>,
    /// The address connected to (the proxy's, through a proxy).
    pub addr: Option<IpAddr>,
    /// The proxy the connection went through.
    pub via: Option<String>,
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
    /// The proxy could not be reached, or refused the tunnel.
    Proxy { proxy: String, reason: String },
    /// The CA given cannot be used (not PEM, no certificate).
    BadCa(String),
    /// The server's certificate does not verify against the trust given;
    /// `kind` says why (expired, another name, another CA).
    Untrusted {
        kind: crate::tls::CertProblem,
        reason: String,
    },
    /// The handshake failed otherwise (protocol, reset, timeout).
    Tls(String),
    /// No HTTP answer after the handshake.
    Http(String),
    /// The probe's thread panicked (a bug).
    Crashed,
}

impl Probe {
    /// What a probe whose thread panicked reports.
    pub fn crashed() -> Probe {
        Probe {
            failure: Some(Failure::Crashed),
            ..Probe::default()
        }
    }
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
pub trait Network: Send + Sync + std::fmt::Debug {
    /// Probes `target` trusting `trust`, all within `timeout`.
    fn probe(&self, target: &Target, trust: &TlsSettings, timeout: Duration) -> Probe;
    /// The host's IPv4 routes and its addresses.
    fn host_networks(&self) -> Result<HostNetworks, HostNetError>;
    /// The addresses a name resolves to (the IAM Roles Anywhere node name),
    /// waiting at most `timeout` for the resolver.
    fn lookup(&self, name: &str, timeout: Duration) -> std::io::Result<Vec<IpAddr>>;
}

/// The real network: the C library's resolver, the kernel's routes, TCP
/// (through the HTTPS proxy where one applies) and rustls.
#[derive(Debug, Clone, Default)]
pub struct RealNetwork {
    pub proxy: ProxySettings,
}

impl RealNetwork {
    /// With the proxy settings of this process's environment.
    pub fn from_env() -> Self {
        RealNetwork {
            proxy: ProxySettings::from_env(),
        }
    }
}

impl Network for RealNetwork {
    fn probe(&self, target: &Target, trust: &TlsSettings, timeout: Duration) -> Probe {
        let proxy = self.proxy.proxy_for(&target.host, target.port);
        probe(target, proxy, trust, timeout)
    }

    fn host_networks(&self) -> Result<HostNetworks, HostNetError> {
        Ok(HostNetworks {
            routes: route::ipv4_routes().map_err(HostNetError::Routes)?,
            addresses: route::addresses()?,
        })
    }

    fn lookup(&self, name: &str, timeout: Duration) -> std::io::Result<Vec<IpAddr>> {
        Ok(resolve(name, 0, Instant::now() + timeout)?
            .into_iter()
            .map(|a| a.ip())
            .collect())
    }
}

/// `f` on a helper thread, waited for until `deadline`. getaddrinfo has
/// no timeout of its own: with dead nameservers it blocks for the
/// resolver's attempts × timeout (~30 s), far past the probe's deadline.
/// On time-out the thread is left to finish on its own; its answer is
/// dropped.
pub fn within<T: Send + 'static>(
    deadline: Instant,
    what: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    let wait = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(wait) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what}: no answer within {wait:.1?}"),
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(std::io::Error::other(
            format!("{what}: the resolver thread ended without an answer"),
        )),
    }
}

/// The C library's resolver for `host:port`, bounded by `deadline`.
fn resolve(host: &str, port: u16, deadline: Instant) -> std::io::Result<Vec<SocketAddr>> {
    let name = host.to_owned();
    within(deadline, "the resolver", move || {
        Ok((name.as_str(), port).to_socket_addrs()?.collect())
    })
}

fn probe(
    target: &Target,
    proxy: Option<&ProxyAddr>,
    trust: &TlsSettings,
    timeout: Duration,
) -> Probe {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut p = Probe::default();
    if let Err(f) = steps(target, proxy, trust, deadline, &mut p) {
        p.failure = Some(f);
    }
    p
}

fn steps(
    target: &Target,
    proxy: Option<&ProxyAddr>,
    trust: &TlsSettings,
    deadline: Instant,
    p: &mut Probe,
) -> Result<(), Failure> {
    let host = target.host.as_str();
    if let Ok(ip) = host.parse::<IpAddr>() {
        p.addrs = vec![ip];
    } else if proxy.is_none() || target.local_dns {
        let t = Instant::now();
        let addrs = resolve(host, target.port, deadline)
            .map_err(|e| Failure::Resolve(format!("cannot resolve {host}: {e}")))?;
        let mut ips: Vec<IpAddr> = addrs.into_iter().map(|a| a.ip()).collect();
        ips.dedup();
        p.dns = Some(t.elapsed());
        if ips.is_empty() {
            return Err(Failure::Resolve(format!("{host} resolves to no address")));
        }
        p.addrs = ips;
    }
    let tcp = match proxy {
        None => dial(&p.addrs.clone(), target.port, deadline, p, host)?,
        Some(px) => {
            p.via = Some(px.to_string());
            let shown = px.to_string();
            let addrs: Vec<IpAddr> = resolve(&px.host, px.port, deadline)
                .map_err(|e| Failure::Proxy {
                    proxy: shown.clone(),
                    reason: format!("cannot resolve {}: {e}", px.host),
                })?
                .into_iter()
                .map(|a| a.ip())
                .collect();
            let mut tcp = dial(&addrs, px.port, deadline, p, &px.host)?;
            connect_tunnel(&mut tcp, &authority_with_port(host, target.port)).map_err(
                |reason| Failure::Proxy {
                    proxy: shown,
                    reason,
                },
            )?;
            tcp
        }
    };
    let config = tls::client_config(trust, false).map_err(|e| Failure::BadCa(e.to_string()))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Failure::Tls(format!("{host} is not a TLS server name: {e}")))?;
    let t = Instant::now();
    let mut session =
        tls::handshake(tcp, config, name).map_err(|e| match e.certificate_problem() {
            Some(kind) => Failure::Untrusted {
                kind,
                reason: e.to_string(),
            },
            None => Failure::Tls(e.to_string()),
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

/// Route check and TCP connect to the first usable of `addrs` (`name`
/// resolved to them).
fn dial(
    addrs: &[IpAddr],
    port: u16,
    deadline: Instant,
    p: &mut Probe,
    name: &str,
) -> Result<DeadlineStream, Failure> {
    // nodeadm's Go dialer tries IPv4 first on a dual-stack answer.
    let ip = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| Failure::Resolve(format!("{name} resolves to no address")))?;
    p.addr = Some(ip);
    if let Err(e @ RouteError::NoRoute { .. }) = route::lookup(ip) {
        return Err(Failure::NoRoute {
            addr: ip,
            reason: e.to_string(),
        });
    }
    let addr = SocketAddr::new(ip, port);
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
    Ok(tcp)
}

/// `CONNECT authority` on a connection to a proxy; the tunnel is open on
/// a 2xx answer. The answer's head is read byte by byte: nothing of the
/// tunnel may be consumed.
fn connect_tunnel(tcp: &mut DeadlineStream, authority: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .map_err(|e| format!("sending CONNECT: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err("the proxy's answer to CONNECT has no end".into());
        }
        match tcp.read(&mut byte) {
            Ok(0) => return Err("the proxy closed the connection after CONNECT".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("reading the proxy's answer to CONNECT: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    match line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(200..=299) => Ok(()),
        _ => Err(format!("the proxy refused CONNECT {authority}: {line}")),
    }
}

fn authority_with_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
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
    use std::io::{Read, Write};

    fn target(host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
            get: None,
            local_dns: false,
        }
    }

    #[test]
    fn nothing_listening_stops_at_connect() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let p = probe(
            &target("127.0.0.1", port),
            None,
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
            &target("no-such-host.invalid", 443),
            None,
            &TlsSettings::default(),
            Duration::from_secs(2),
        );
        assert!(matches!(p.failure, Some(Failure::Resolve(_))), "{p:?}");
    }

    /// A proxy on loopback that answers CONNECT with `answer`, then closes;
    /// returns its port and the request head it got.
    fn proxy(answer: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let _ = s.write_all(answer.as_bytes());
        });
        (port, rx)
    }

    #[test]
    fn through_a_proxy_the_name_goes_in_connect_and_a_refusal_is_the_proxys() {
        let (port, got) = proxy("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        let px = ProxyAddr {
            host: "127.0.0.1".into(),
            port,
        };
        let p = probe(
            &target("sts.us-west-2.amazonaws.com", 443),
            Some(&px),
            &TlsSettings::default(),
            Duration::from_secs(2),
        );
        let head = got.recv_timeout(Duration::from_secs(2)).expect("request");
        assert!(
            head.starts_with("CONNECT sts.us-west-2.amazonaws.com:443 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            p.addrs.is_empty() && p.dns.is_none(),
            "the proxy resolves: {p:?}"
        );
        assert_eq!(p.via.as_deref(), Some(px.to_string().as_str()));
        assert!(
            matches!(&p.failure, Some(Failure::Proxy { reason, .. }) if reason.contains("refused CONNECT sts.us-west-2.amazonaws.com:443: HTTP/1.1 403 Forbidden")),
            "{p:?}"
        );
        // An open tunnel: the handshake is tried through it.
        let (port, _got) = proxy("HTTP/1.1 200 Connection established\r\n\r\n");
        let p = probe(
            &target("sts.us-west-2.amazonaws.com", 443),
            Some(&ProxyAddr {
                host: "127.0.0.1".into(),
                port,
            }),
            &TlsSettings::default(),
            Duration::from_secs(2),
        );
        assert!(matches!(&p.failure, Some(Failure::Tls(_))), "{p:?}");
        assert!(p.tcp.is_some());
    }

    #[test]
    fn host_names_in_requests_carry_the_port_unless_443() {
        assert_eq!(authority("api.example", 443), "api.example");
        assert_eq!(authority("127.0.0.1", 6443), "127.0.0.1:6443");
        assert_eq!(authority("fd00::1", 6443), "[fd00::1]:6443");
        assert_eq!(authority_with_port("fd00::1", 443), "[fd00::1]:443");
    }
}

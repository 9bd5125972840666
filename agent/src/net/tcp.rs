//! TCP connect time (for paths where ICMP is filtered) and DNS resolution
//! time.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A failed connect, by reason (a bounded label set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Timeout,
    Unreachable,
    Other,
}

impl ConnectFailure {
    pub const ALL: [ConnectFailure; 4] = [
        ConnectFailure::Refused,
        ConnectFailure::Timeout,
        ConnectFailure::Unreachable,
        ConnectFailure::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectFailure::Refused => "refused",
            ConnectFailure::Timeout => "timeout",
            ConnectFailure::Unreachable => "unreachable",
            ConnectFailure::Other => "other",
        }
    }
}

pub fn connect_time(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Duration, (ConnectFailure, String)> {
    let started = Instant::now();
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Ok(started.elapsed()),
        Err(e) => {
            let reason = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    ConnectFailure::Timeout
                }
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    ConnectFailure::Unreachable
                }
                _ => ConnectFailure::Other,
            };
            Err((reason, format!("TCP connect to {addr}: {e}")))
        }
    }
}

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {name}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} resolves to no address")]
    NoAddress { name: String },
}

/// Resolves `name` (an IP address resolves to itself without a lookup).
pub fn resolve(name: &str) -> Result<(IpAddr, Option<Duration>), ResolveError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = (name, 0)
        .to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            name: name.to_owned(),
            source,
        })?
        .collect();
    let took = started.elapsed();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| (a.ip(), Some(took)))
        .ok_or_else(|| ResolveError::NoAddress {
            name: name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        assert!(connect_time(addr, Duration::from_secs(1)).is_ok());
        drop(l);
        let e = connect_time(addr, Duration::from_secs(1)).expect_err("closed");
        assert_eq!(e.0, ConnectFailure::Refused);
    }

    #[test]
    fn ip_literals_need_no_lookup() {
        assert_eq!(
            resolve("10.0.0.1").expect("a literal"),
            ("10.0.0.1".parse().expect("ip"), None)
        );
        let (ip, took) = resolve("localhost").expect("localhost resolves");
        assert!(ip.is_loopback());
        assert!(took.is_some());
        assert!(resolve("no-such-host.invalid").is_err());
    }
}

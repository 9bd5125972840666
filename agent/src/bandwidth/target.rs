//! Where a bandwidth test goes: `host`, `host:port`, `[v6]:port` or a
//! bare IPv6 address, resolved to one socket address.

use std::net::{SocketAddr, ToSocketAddrs};

/// Why a target names no address.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the target is empty: expected HOST or HOST:PORT")]
    Empty,
    #[error("{target:?}: expected [IPV6]:PORT")]
    Syntax { target: String },
    #[error("{target:?}: port {port:?} is not a number from 1 to 65535")]
    Port { target: String, port: String },
    #[error("cannot resolve {host:?}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host:?} resolves to no address")]
    NoAddress { host: String },
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address → a socket
/// address (the first the resolver returns).
pub fn resolve(target: &str, default_port: u16) -> Result<SocketAddr, TargetError> {
    let t = target.trim();
    if t.is_empty() {
        return Err(TargetError::Empty);
    }
    let syntax = || TargetError::Syntax {
        target: t.to_owned(),
    };
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(syntax)?;
        match after.strip_prefix(':') {
            Some(p) => (h, p),
            None if after.is_empty() => (h, ""),
            None => return Err(syntax()),
        }
    } else if t.matches(':').count() == 1 {
        t.split_once(':').unwrap_or((t, ""))
    } else {
        (t, "")
    };
    let port = if port.is_empty() {
        default_port
    } else {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| TargetError::Port {
                target: t.to_owned(),
                port: port.to_owned(),
            })?
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|source| TargetError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| TargetError::NoAddress {
            host: host.to_owned(),
        })
}

//! Which interface and source address the kernel routes a target through,
//! and that interface's MTU. The lookup is the kernel's own: a UDP socket
//! connected to the target (no packet is sent) reports the source address
//! the routing table chose; the interface is the one holding it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub source: IpAddr,
    pub interface: String,
    pub mtu: Option<u32>,
}

/// Why the route toward a target is not known.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The kernel has no route (`connect` on a UDP socket failed).
    #[error("no route to {dst}: {source}")]
    NoRoute {
        dst: IpAddr,
        #[source]
        source: std::io::Error,
    },
    /// A socket call failed.
    #[error("route lookup to {dst}: {source}")]
    Socket {
        dst: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list interfaces: {0}")]
    Interfaces(#[source] nix::Error),
    /// The chosen source address is on no interface (it just went away).
    #[error("no interface holds {source_addr}, the source address toward {dst}")]
    NoInterface { dst: IpAddr, source_addr: IpAddr },
}

pub fn lookup(dst: IpAddr) -> Result<Route, RouteError> {
    let bind: IpAddr = match dst {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = |source| RouteError::Socket { dst, source };
    let s = UdpSocket::bind((bind, 0)).map_err(socket)?;
    s.connect((dst, 9))
        .map_err(|source| RouteError::NoRoute { dst, source })?;
    let source = s.local_addr().map_err(socket)?.ip();
    let interface = nix::ifaddrs::getifaddrs()
        .map_err(RouteError::Interfaces)?
        .find(|a| {
            a.address.as_ref().is_some_and(|sa| {
                sa.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())) == Some(source)
                    || sa.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())) == Some(source)
            })
        })
        .map(|a| a.interface_name)
        .ok_or(RouteError::NoInterface {
            dst,
            source_addr: source,
        })?;
    Ok(Route {
        mtu: interface_mtu(&interface),
        source,
        interface,
    })
}

/// The interface's MTU from sysfs (kernel state, read live, not under --root).
pub fn interface_mtu(interface: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// nodeadm accepts interface MTUs of 68–1500 or 8000–9001.
pub fn nodeadm_accepts(mtu: u32) -> bool {
    (68..=1500).contains(&mtu) || (8000..=9001).contains(&mtu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_through_lo() {
        let r = lookup(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("route");
        assert_eq!(r.interface, "lo");
        assert_eq!(r.source, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(r.mtu.is_some_and(|m| m >= 1500));
    }

    #[test]
    fn nodeadm_ranges() {
        for ok in [68, 1500, 8000, 9000, 9001] {
            assert!(nodeadm_accepts(ok), "{ok}");
        }
        for bad in [67, 1501, 4000, 7999, 9002, 65536] {
            assert!(!nodeadm_accepts(bad), "{bad}");
        }
    }
}

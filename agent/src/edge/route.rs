//! Which interface and source address the kernel routes a target through,
//! and that interface's MTU. The lookup is the kernel's own: a UDP socket
//! connected to the target (no packet is sent) reports the source address
//! the routing table chose; the interface is the one holding it.
//!
//! Also the host's own IPv4 routes (`/proc/net/route`) and addresses, and
//! the address kubelet falls back to for its node IP: the first global
//! unicast IPv4 address of the default route's interface (apimachinery's
//! `ChooseHostInterface`, which nodeadm's `GetNodeIP` calls through
//! `ResolveBindAddress`). Kernel state, read live (not under `--root`).

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

/// One IPv4 route of the main table, as `/proc/net/route` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub interface: String,
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
    /// Next hop; `None` for an on-link route.
    pub gateway: Option<Ipv4Addr>,
}

/// The kernel's routing table (`/proc/net/route`, of the namespace the
/// agent runs in).
pub const PROC_NET_ROUTE: &str = "/proc/net/route";

/// Reads the IPv4 routes.
pub fn ipv4_routes() -> std::io::Result<Vec<KernelRoute>> {
    Ok(parse_proc_net_route(&std::fs::read_to_string(
        PROC_NET_ROUTE,
    )?))
}

/// `/proc/net/route`: a header line, then `Iface Destination Gateway Flags
/// RefCnt Use Metric Mask …` with addresses in little-endian hex. Lines
/// that do not parse are skipped; routes that are not up (flag 0x1) too.
pub fn parse_proc_net_route(text: &str) -> Vec<KernelRoute> {
    // The kernel prints each big-endian address as a native u32: its
    // native-endian bytes are the address's bytes in order.
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dst, gw, flags, mask) = (
                hex(f.get(1)?)?,
                hex(f.get(2)?)?,
                u32::from_str_radix(f.get(3)?, 16).ok()?,
                hex(f.get(7)?)?,
            );
            (flags & 1 == 1).then(|| KernelRoute {
                interface: f[0].to_owned(),
                destination: dst,
                prefix_len: u32::from(mask).leading_ones() as u8,
                gateway: (!gw.is_unspecified()).then_some(gw),
            })
        })
        .collect()
}

/// One address on an interface, with its prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// Every address on the host's interfaces.
pub fn addresses() -> Result<Vec<InterfaceAddress>, RouteError> {
    let mut out = Vec::new();
    for a in nix::ifaddrs::getifaddrs().map_err(RouteError::Interfaces)? {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        if let (Some(v4), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            out.push(InterfaceAddress {
                interface: a.interface_name.clone(),
                address: IpAddr::V4(v4.ip()),
                prefix_len: u32::from(m.ip()).leading_ones() as u8,
            });
        } else if let (Some(v6), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            out.push(InterfaceAddress {
                interface: a.interface_name.clone(),
                address: IpAddr::V6(v6.ip()),
                prefix_len: u128::from(m.ip()).leading_ones() as u8,
            });
        }
    }
    Ok(out)
}

/// The address kubelet takes when no node IP is given: each default route
/// in turn (as apimachinery's `ChooseHostInterface` tries them), the first
/// whose interface holds a global unicast IPv4 address; that address.
/// `None` without a default route or such an address.
pub fn default_route_source(
    routes: &[KernelRoute],
    addresses: &[InterfaceAddress],
) -> Option<Ipv4Addr> {
    default_route_choice(routes, addresses).map(|(_, ip)| ip)
}

/// [`default_route_source`] with the interface that holds the address.
pub fn default_route_choice<'a>(
    routes: &'a [KernelRoute],
    addresses: &[InterfaceAddress],
) -> Option<(&'a str, Ipv4Addr)> {
    routes
        .iter()
        .filter(|r| r.prefix_len == 0 && r.destination.is_unspecified())
        .find_map(|default| {
            addresses.iter().find_map(|a| match a.address {
                IpAddr::V4(v4)
                    if a.interface == default.interface
                        && !v4.is_loopback()
                        && !v4.is_link_local()
                        && !v4.is_multicast()
                        && !v4.is_unspecified()
                        && !v4.is_broadcast() =>
                {
                    Some((default.interface.as_str(), v4))
                }
                _ => None,
            })
        })
}

/// The interface of the node IP kubelet would choose by itself (see
/// [`default_route_choice`]), from the live routes and addresses; `None`
/// when either cannot be read or there is no such interface.
pub fn node_interface() -> Option<String> {
    let routes = ipv4_routes().ok()?;
    let addresses = addresses().ok()?;
    default_route_choice(&routes, &addresses).map(|(i, _)| i.to_owned())
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
    fn proc_net_route_reads_as_routes() {
        // Recorded from a Debian host: default via 192.168.1.1 on eth0,
        // its /24 on-link, a /16 through a VPN gateway, and a route that is
        // down (flags 0).
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
tun0\t0000C80A\t0200000A\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
eth1\t0000A8C0\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r = parse_proc_net_route(text);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0].prefix_len, 0);
        assert_eq!(r[0].gateway, Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(r[1].destination, Ipv4Addr::new(192, 168, 1, 0));
        assert_eq!((r[1].prefix_len, r[1].gateway), (24, None));
        assert_eq!(r[2].destination, Ipv4Addr::new(10, 200, 0, 0));
        assert_eq!(r[2].prefix_len, 16);
        let addrs = vec![
            InterfaceAddress {
                interface: "eth0".into(),
                address: "fe80::1".parse().expect("ip"),
                prefix_len: 64,
            },
            InterfaceAddress {
                interface: "eth0".into(),
                address: "192.168.1.20".parse().expect("ip"),
                prefix_len: 24,
            },
        ];
        assert_eq!(
            default_route_source(&r, &addrs),
            Some(Ipv4Addr::new(192, 168, 1, 20))
        );
        assert_eq!(default_route_source(&r[1..], &addrs), None);
    }

    #[test]
    fn each_default_route_is_tried_until_one_has_a_global_ipv4() {
        let default = |interface: &str| KernelRoute {
            interface: interface.into(),
            destination: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
        };
        // wg0 (first, lower metric) holds only a link-local address.
        let routes = vec![default("wg0"), default("eth0")];
        let addrs = vec![
            InterfaceAddress {
                interface: "wg0".into(),
                address: "169.254.3.4".parse().expect("ip"),
                prefix_len: 16,
            },
            InterfaceAddress {
                interface: "eth0".into(),
                address: "192.168.1.20".parse().expect("ip"),
                prefix_len: 24,
            },
        ];
        assert_eq!(
            default_route_choice(&routes, &addrs),
            Some(("eth0", Ipv4Addr::new(192, 168, 1, 20)))
        );
        assert_eq!(
            default_route_source(&routes, &addrs),
            Some(Ipv4Addr::new(192, 168, 1, 20))
        );
        assert_eq!(default_route_source(&routes[..1], &addrs), None);
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

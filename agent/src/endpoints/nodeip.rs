//! The node IP as nodeadm derives it (aws/eks-hybrid v1.0.20,
//! `internal/network/utils.go` `GetNodeIP`, after kubelet's own rule): the
//! last non-empty `--node-ip=` of the NodeConfig's kubelet flags (one IPv4
//! address; `0.0.0.0` counts as unset), else — for IAM Roles Anywhere — an
//! address the node name resolves to that is one of the host's own IPv4
//! addresses, else the default route's interface address (apimachinery's
//! `ChooseHostInterface`).

use super::probe::HostNetworks;
use std::net::{IpAddr, Ipv4Addr};

/// How the node IP was found, nodeadm's way (`internal/network/utils.go`
/// `GetNodeIP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIp {
    /// From `--node-ip` in the NodeConfig's kubelet flags.
    Flag(IpAddr),
    /// The IAM Roles Anywhere node name resolves to one of the host's IPv4
    /// addresses.
    NodeName(Ipv4Addr, String),
    /// The default route's interface address.
    DefaultRoute(Ipv4Addr),
}

impl NodeIp {
    pub fn ip(&self) -> IpAddr {
        match self {
            NodeIp::Flag(ip) => *ip,
            NodeIp::NodeName(ip, _) | NodeIp::DefaultRoute(ip) => IpAddr::V4(*ip),
        }
    }

    /// The `source` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            NodeIp::Flag(_) => "flag",
            NodeIp::NodeName(..) => "node-name",
            NodeIp::DefaultRoute(_) => "default-route",
        }
    }

    /// Where it came from, in words.
    pub fn source(&self) -> String {
        match self {
            NodeIp::Flag(_) => "--node-ip in the NodeConfig's kubelet flags".into(),
            NodeIp::NodeName(_, n) => format!("the IAM Roles Anywhere node name {n}"),
            NodeIp::DefaultRoute(_) => "the default route's interface (no --node-ip)".into(),
        }
    }
}

/// Why no usable node IP was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIpError {
    #[error("--node-ip={0} is not an IP address: only one IPv4 address is allowed")]
    NotAnIp(String),
    #[error("--node-ip={0} is IPv6: hybrid nodes take IPv4 only")]
    Ipv6(String),
    #[error("no --node-ip, and no default route with a global IPv4 address: kubelet cannot choose a node IP")]
    NoDefaultRoute,
}

/// The node IP from `--node-ip` (the last `--node-ip=` flag, as nodeadm's
/// `ExtractFlagValue` reads it), the IAM Roles Anywhere node name, or the
/// default route. `Err`: the words for a node IP that cannot be used.
pub fn derive_node_ip(
    flags: &[String],
    node_name: Option<&str>,
    node_name_addrs: &[IpAddr],
    host: &HostNetworks,
) -> Result<NodeIp, NodeIpError> {
    let flag = flags
        .iter()
        .filter_map(|f| f.strip_prefix("--node-ip="))
        .rfind(|v| !v.is_empty());
    if let Some(v) = flag {
        let ip: IpAddr = v.parse().map_err(|_| NodeIpError::NotAnIp(v.to_owned()))?;
        if ip.is_ipv6() {
            return Err(NodeIpError::Ipv6(v.to_owned()));
        }
        if !ip.is_unspecified() {
            return Ok(NodeIp::Flag(ip));
        }
    }
    let own = |ip: &Ipv4Addr| host.addresses.iter().any(|a| a.address == IpAddr::V4(*ip));
    if let Some(name) = node_name.filter(|n| !n.is_empty()) {
        let usable = node_name_addrs.iter().find_map(|a| match a {
            IpAddr::V4(v4)
                if !v4.is_loopback() && !v4.is_link_local() && !v4.is_multicast() && own(v4) =>
            {
                Some(*v4)
            }
            _ => None,
        });
        if let Some(ip) = usable {
            return Ok(NodeIp::NodeName(ip, name.to_owned()));
        }
    }
    crate::edge::route::default_route_source(&host.routes, &host.addresses)
        .map(NodeIp::DefaultRoute)
        .ok_or(NodeIpError::NoDefaultRoute)
}

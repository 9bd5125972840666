//! `[cluster]`: what EKS knows about the cluster's networks and the agent
//! cannot ask without credentials (nodeadm reads them with
//! `DescribeCluster`): the remote node and pod networks, how the API
//! endpoint is reached, and the VPC's ranges. `[endpoints]`: how often and
//! how patiently the endpoints are probed.

use super::{Interval, SettingError};
use crate::model::cidr::Cidr;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The cluster's `remoteNetworkConfig.remoteNodeNetworks` CIDRs: the
    /// node IP must be in one of them.
    pub remote_node_networks: Vec<Cidr>,
    /// The cluster's `remoteNetworkConfig.remotePodNetworks` CIDRs: they must
    /// not overlap the host's own routes and addresses.
    pub remote_pod_networks: Vec<Cidr>,
    /// How the API endpoint is reached: `public`, `private`, or `any` (no
    /// expectation). `private` expects it to resolve inside `vpc_cidrs`.
    pub endpoint_access: EndpointAccess,
    /// The cluster VPC's CIDRs (needed for `endpoint_access = "private"`).
    pub vpc_cidrs: Vec<Cidr>,
}

/// The cluster's endpoint access mode as it matters to a hybrid node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointAccess {
    /// No expectation about the addresses the endpoint resolves to.
    #[default]
    Any,
    /// Public endpoint (reached over the internet or a proxy): its
    /// addresses are not judged (the check says so, not "set private").
    Public,
    /// Private endpoint: its addresses are ENIs in the cluster VPC, reached
    /// over Direct Connect or VPN.
    Private,
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), SettingError> {
        for (key, list) in [
            ("remote_node_networks", &self.remote_node_networks),
            ("remote_pod_networks", &self.remote_pod_networks),
        ] {
            // EKS accepts only IPv4 remote networks (RFC 1918 or 100.64/10).
            if let Some(v6) = list.iter().find(|c| c.net.is_ipv6()) {
                return Err(SettingError(format!(
                    "cluster.{key}: {v6} is IPv6; EKS hybrid nodes take IPv4 CIDRs only"
                )));
            }
        }
        for n in &self.remote_node_networks {
            if let Some(p) = self.remote_pod_networks.iter().find(|p| p.overlaps(n)) {
                return Err(SettingError(format!(
                    "cluster.remote_pod_networks: {p} overlaps remote node network {n}; EKS requires them disjoint"
                )));
            }
        }
        if self.endpoint_access == EndpointAccess::Private && self.vpc_cidrs.is_empty() {
            return Err(SettingError(
                "cluster.vpc_cidrs: endpoint_access = \"private\" needs the VPC's CIDRs to judge the endpoint's addresses".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointsConfig {
    /// How often the AWS and API endpoints and the node's networks are
    /// checked.
    pub interval: Interval,
    /// Per endpoint: DNS, TCP connect, TLS handshake and answer together
    /// (nodeadm dials with 5 s).
    pub timeout: Interval,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        EndpointsConfig {
            interval: Interval(Duration::from_secs(60)),
            timeout: Interval(Duration::from_secs(5)),
        }
    }
}

impl EndpointsConfig {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.timeout.get().is_zero() {
            return Err(SettingError(
                "endpoints.timeout must be more than 0s".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::config::Config, String> {
        crate::config::parse(std::path::Path::new("/etc/agent.toml"), text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn cluster_errors_name_the_key() {
        let e = parse("[cluster]\nremote_pod_networks = [\"10.200.0.0/33\"]\n").unwrap_err();
        assert!(
            e.contains("/etc/agent.toml:2:") && e.contains("cluster.remote_pod_networks"),
            "{e}"
        );
        let e = parse("[cluster]\nremote_node_networks = [\"10.0.0.0/8\"]\nremote_pod_networks = [\"10.200.0.0/16\"]\n").unwrap_err();
        assert!(
            e.contains("cluster.remote_pod_networks: 10.200.0.0/16 overlaps"),
            "{e}"
        );
        let e = parse("[cluster]\nremote_node_networks = [\"fd00::/8\"]\n").unwrap_err();
        assert!(
            e.contains("cluster.remote_node_networks: fd00::/8 is IPv6"),
            "{e}"
        );
        let e = parse("[cluster]\nendpoint_access = \"private\"\n").unwrap_err();
        assert!(e.contains("cluster.vpc_cidrs"), "{e}");
        let e = parse("[cluster]\nendpoint_access = \"secret\"\n").unwrap_err();
        assert!(e.contains("cluster.endpoint_access"), "{e}");
        let e = parse("[endpoints]\ntimeout = \"0s\"\n").unwrap_err();
        assert!(e.contains("endpoints.timeout"), "{e}");
        let ok = parse("[cluster]\nremote_node_networks = [\"10.80.0.0/16\"]\nremote_pod_networks = [\"10.85.0.0/16\"]\nendpoint_access = \"private\"\nvpc_cidrs = [\"10.0.0.0/16\"]\n").expect("valid");
        assert_eq!(ok.cluster.endpoint_access, EndpointAccess::Private);
    }
}

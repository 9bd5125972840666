//! `[[network.resolver]]`: the DNS servers on-premises names must resolve
//! through (the Route 53 Resolver inbound endpoints in the VPC), the names
//! to ask them and the address ranges the answers must fall in.

use crate::model::cidr::Cidr;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverEntry {
    /// The `resolver` label.
    pub name: String,
    /// IP address, optionally with a port: `10.0.1.100`, `10.0.1.100:53`,
    /// `[fd00::53]:53`.
    pub address: String,
    /// Names to resolve; empty: the cluster's API server endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Ranges every answer must fall in; empty: the private ranges
    /// (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). A public answer
    /// for a private endpoint means traffic leaves the Direct Connect path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<Cidr>,
}

impl ResolverEntry {
    pub fn socket_addr(&self) -> Result<SocketAddr, super::SettingError> {
        self.socket_addr_text().map_err(super::SettingError)
    }

    fn socket_addr_text(&self) -> Result<SocketAddr, String> {
        let a = self.address.trim();
        if let Ok(ip) = a.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, 53));
        }
        a.parse::<SocketAddr>().map_err(|_| {
            format!(
                "network.resolver {}: address {a:?} is not an IP address or IP:PORT",
                self.name
            )
        })
    }

    pub fn validate(&self) -> Result<(), super::SettingError> {
        self.validate_text().map_err(super::SettingError)
    }

    fn validate_text(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("network.resolver: name is empty".into());
        }
        self.socket_addr_text()?;
        for n in &self.names {
            if !is_dns_name(n) {
                return Err(format!(
                    "network.resolver {}: names: {n:?} is not a DNS name (labels of 1 to 63 characters, at most 253 in all)",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// The ranges answers are judged against.
    pub fn ranges(&self) -> Vec<Cidr> {
        if self.expected.is_empty() {
            private_ranges()
        } else {
            self.expected.clone()
        }
    }
}

pub fn private_ranges() -> Vec<Cidr> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
    ]
    .iter()
    .filter_map(|c| c.parse().ok())
    .collect()
}

/// Whether `name` can be asked at all: labels of 1 to 63 characters, at
/// most 253 in all (a trailing dot allowed). The DNS codec uses the same rule.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_ranges_are_the_private_ones() {
        let p = private_ranges();
        assert!(Cidr::any_contains(&p, "172.31.4.5".parse().expect("ip")));
        assert!(Cidr::any_contains(&p, "fd12::1".parse().expect("ip")));
        assert!(!Cidr::any_contains(&p, "54.239.1.1".parse().expect("ip")));
    }

    #[test]
    fn addresses_take_an_optional_port() {
        let mut r = ResolverEntry {
            name: "inbound".into(),
            address: "10.0.1.100".into(),
            names: vec![],
            expected: vec![],
        };
        assert_eq!(r.socket_addr(), Ok("10.0.1.100:53".parse().expect("addr")));
        r.address = "10.0.1.100:5353".into();
        assert_eq!(
            r.socket_addr(),
            Ok("10.0.1.100:5353".parse().expect("addr"))
        );
        r.address = "resolver.local".into();
        assert!(r
            .validate()
            .unwrap_err()
            .0
            .contains("network.resolver inbound"));
    }
}

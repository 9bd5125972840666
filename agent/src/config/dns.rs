//! `[[network.resolver]]`: the DNS servers on-premises names must resolve
//! through (the Route 53 Resolver inbound endpoints in the VPC), the names
//! to ask them and the address ranges the answers must fall in.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
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

/// An address range, `10.0.0.0/16` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Whether the two ranges share an address (one contains the other's
    /// network address, as aligned ranges do).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let (wide, narrow) = if self.len <= other.len {
            (self, other)
        } else {
            (other, self)
        };
        wide.contains(narrow.net)
    }

    pub fn any_contains(ranges: &[Cidr], ip: IpAddr) -> bool {
        ranges.iter().any(|c| c.contains(ip))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("invalid range {s:?}: expected ADDRESS/LENGTH such as \"10.0.0.0/16\"");
        let (a, l) = s.trim().split_once('/').ok_or_else(bad)?;
        let net: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(bad());
        }
        Ok(Cidr { net, len })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
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
    fn ranges_contain_what_they_should() {
        let c: Cidr = "10.0.0.0/16".parse().expect("cidr");
        assert!(c.contains("10.0.255.1".parse().expect("ip")));
        assert!(!c.contains("10.1.0.1".parse().expect("ip")));
        assert!(!c.contains("::1".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("54.1.2.3".parse().expect("ip")));
        let p = private_ranges();
        assert!(Cidr::any_contains(&p, "172.31.4.5".parse().expect("ip")));
        assert!(Cidr::any_contains(&p, "fd12::1".parse().expect("ip")));
        assert!(!Cidr::any_contains(&p, "54.239.1.1".parse().expect("ip")));
        assert!("10.0.0.0/33"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("10.0.0.0/16"));
    }

    #[test]
    fn overlap_is_symmetric_and_needs_a_shared_address() {
        let c = |s: &str| s.parse::<Cidr>().expect("cidr");
        assert!(c("10.0.0.0/8").overlaps(&c("10.200.0.0/16")));
        assert!(c("10.200.0.0/16").overlaps(&c("10.0.0.0/8")));
        assert!(c("10.200.3.0/24").overlaps(&c("10.200.3.7/32")));
        assert!(!c("10.200.0.0/16").overlaps(&c("10.201.0.0/16")));
        assert!(!c("192.168.0.0/16").overlaps(&c("fd00::/8")));
        assert!(c("0.0.0.0/0").overlaps(&c("172.16.0.0/12")));
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

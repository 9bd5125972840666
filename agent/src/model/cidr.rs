//! An address range, as Go's `net.ParseCIDR` takes it (the address need
//! not be the network's): the configured VPC, remote node and pod networks,
//! the ranges DNS answers must fall in, and `NO_PROXY`'s `ADDR/LEN` entries.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

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
}

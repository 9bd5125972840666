//! The host's own resolver configuration: `/etc/resolv.conf`, and behind
//! systemd-resolved's stub (127.0.0.53) the servers it really forwards to
//! (`/run/systemd/resolve/resolv.conf`).

use crate::host::Host;
use std::net::IpAddr;

pub const RESOLV_CONF: &str = "/etc/resolv.conf";
pub const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
}

pub fn parse(text: &str) -> ResolvConf {
    let mut out = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // A scoped IPv6 address ("fe80::1%eth0") keeps only the address.
                if let Some(ip) = words
                    .next()
                    .and_then(|w| w.split('%').next())
                    .and_then(|w| w.parse().ok())
                {
                    out.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => {
                out.search = words.map(str::to_owned).collect();
            }
            _ => {}
        }
    }
    out
}

/// What the host resolves through, in words, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResolver {
    pub conf: ResolvConf,
    /// systemd-resolved's stub is the nameserver; `upstream` are its servers.
    pub resolved_stub: bool,
    pub upstream: Vec<IpAddr>,
}

/// `None` when /etc/resolv.conf cannot be read.
pub fn read(host: &Host) -> Result<HostResolver, std::io::Error> {
    let conf = parse(&std::fs::read_to_string(host.path(RESOLV_CONF))?);
    let stub: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));
    let resolved_stub = conf.nameservers.contains(&stub);
    let upstream = if resolved_stub {
        std::fs::read_to_string(host.path(RESOLVED_UPSTREAM))
            .map(|t| parse(&t).nameservers)
            .unwrap_or_default()
    } else {
        conf.nameservers.clone()
    };
    Ok(HostResolver {
        conf,
        resolved_stub,
        upstream,
    })
}

impl HostResolver {
    pub fn describe(&self) -> String {
        let list = |v: &[IpAddr]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if self.resolved_stub {
            format!(
                "systemd-resolved (stub 127.0.0.53) forwarding to {}",
                list(&self.upstream)
            )
        } else {
            format!("nameservers {}", list(&self.conf.nameservers))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_and_search_are_read() {
        let c = parse("# generated\nnameserver 10.0.1.100\nnameserver fe80::1%eth0 ; x\nsearch corp.example ec2.internal\noptions edns0\n");
        assert_eq!(
            c.nameservers,
            vec![
                "10.0.1.100".parse::<IpAddr>().expect("ip"),
                "fe80::1".parse().expect("ip")
            ]
        );
        assert_eq!(c.search, vec!["corp.example", "ec2.internal"]);
    }

    #[test]
    fn the_resolved_stub_is_seen_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("run/systemd/resolve")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/resolv.conf"),
            "nameserver 127.0.0.53\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("run/systemd/resolve/resolv.conf"),
            "nameserver 10.0.1.100\n",
        )
        .expect("write");
        let r = read(&Host::new(dir.path())).expect("read");
        assert!(r.resolved_stub);
        assert_eq!(
            r.describe(),
            "systemd-resolved (stub 127.0.0.53) forwarding to 10.0.1.100"
        );
    }
}

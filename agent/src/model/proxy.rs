//! `NO_PROXY` as Go reads it (`golang.org/x/net/http/httpproxy`, what the
//! kubelet, containerd, the SSM agent and nodeadm use): one matcher for
//! the endpoints domain (which connections go through the proxy) and the
//! preflight domain (whether NO_PROXY covers what must be reached
//! directly), so the two never disagree.
//!
//! Go's rules: entries are comma-separated, trimmed, lower-cased; `*`
//! matches everything; `ADDR/LEN` matches an IP inside the range (any
//! port); `IP` or `IP:port` / `[IPv6]:port` matches that IP (and port);
//! `name`, `name:port` matches the name and its subdomains, `.name` and
//! `*.name` its subdomains only, the port when one is given. `localhost`
//! and loopback addresses are never proxied, whatever NO_PROXY says.

use super::cidr::Cidr;
use std::net::IpAddr;

/// `ADDR/LEN` as Go's `net.ParseCIDR` takes it: `Some(ip in range)` for
/// such an entry, `None` for any other.
fn cidr_contains(entry: &str, ip: Option<IpAddr>) -> Option<bool> {
    let range: Cidr = entry.parse().ok()?;
    Some(ip.is_some_and(|ip| range.contains(ip)))
}

/// The parsed `NO_PROXY` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<String>,
}

/// `host:port`, `[v6]:port` or a bare host (bare IPv6 too) → (host, port);
/// `None` port when none is written.
fn split_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, after)) = rest.split_once(']') {
            return (h, after.strip_prefix(':').filter(|p| !p.is_empty()));
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

impl NoProxy {
    /// From the variable's value.
    pub fn parse(value: &str) -> NoProxy {
        NoProxy {
            entries: value
                .split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }

    /// The entries, trimmed and lower-cased.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Whether a connection to `host:port` goes direct (Go's `useProxy`
    /// is false). `host` is a name or an IP, IPv6 with or without
    /// brackets.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host.trim_matches(['[', ']']).trim().to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        if host == "localhost" || ip.is_some_and(|i| i.is_loopback()) {
            return true;
        }
        let port = port.to_string();
        self.entries.iter().any(|e| {
            if e == "*" {
                return true;
            }
            if let Some(inside) = cidr_contains(e, ip) {
                return inside;
            }
            let (name, want) = split_port(e);
            if name.is_empty() {
                return false;
            }
            if let Ok(eip) = name.parse::<IpAddr>() {
                return ip == Some(eip) && want.is_none_or(|p| p == port);
            }
            let (suffix, itself) = match name.strip_prefix("*.") {
                Some(rest) => (format!(".{rest}"), false),
                None => match name.strip_prefix('.') {
                    Some(_) => (name.to_owned(), false),
                    None => (format!(".{name}"), true),
                },
            };
            let matches = host.ends_with(&suffix) || (itself && host == suffix[1..]);
            matches && want.is_none_or(|p| p == port)
        })
    }
}

/// `host[:port]` (a registry, an endpoint) → (host, port), 443 when none
/// is written or it does not parse.
pub fn host_and_port(authority: &str) -> (&str, u16) {
    let (h, p) = split_port(authority);
    (h, p.and_then(|p| p.parse().ok()).unwrap_or(443))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_as_go_matches_them() {
        let n = NoProxy::parse(
            " .corp, Harbor.Site:5000 ,10.0.0.0/8,192.168.1.5,[fd00::1]:443,*.internal,example.com,,",
        );
        assert_eq!(n.entries().len(), 7);
        let direct = |h: &str, p: u16| n.bypasses(h, p);
        assert!(direct("harbor.corp", 443) && !direct("corp", 443));
        assert!(direct("harbor.site", 5000) && !direct("harbor.site", 443));
        assert!(direct("registry.harbor.site", 5000));
        assert!(direct("10.1.2.3", 9999) && !direct("11.1.2.3", 443));
        assert!(!direct("fd00::10", 443), "an IPv4 range holds no IPv6");
        assert!(NoProxy::parse("fd00::/8").bypasses("fd12::1", 443));
        assert!(NoProxy::parse("10.1.2.3/8").bypasses("10.9.9.9", 443));
        assert!(direct("192.168.1.5", 80) && !direct("192.168.1.6", 80));
        assert!(direct("[fd00::1]", 443) && !direct("fd00::1", 80));
        assert!(direct("a.internal", 443) && !direct("internal", 443));
        assert!(direct("example.com", 443) && direct("a.b.example.com", 443));
        assert!(!direct("notexample.com", 443));
        // Never proxied, whatever NO_PROXY says.
        let none = NoProxy::parse("");
        assert!(none.bypasses("localhost", 80) && none.bypasses("127.0.0.1", 6443));
        assert!(none.bypasses("::1", 443) && !none.bypasses("sts.amazonaws.com", 443));
        assert!(NoProxy::parse("*").bypasses("anything", 1));
        assert_eq!(host_and_port("harbor.corp:5000"), ("harbor.corp", 5000));
        assert_eq!(host_and_port("harbor.corp"), ("harbor.corp", 443));
        assert_eq!(host_and_port("[fd00::1]:8443"), ("fd00::1", 8443));
        assert_eq!(host_and_port("fd00::1"), ("fd00::1", 443));
    }
}

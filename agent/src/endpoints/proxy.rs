//! The HTTPS proxy nodeadm's connection checks go through: Go's
//! `httpproxy.FromEnvironment` (`HTTPS_PROXY` or `https_proxy`, `NO_PROXY`
//! or `no_proxy`), which nodeadm's `network.CheckConnectionToHost` uses to
//! send a `CONNECT host:port` before any TLS. The agent reads the same
//! variables from its own environment (set them in its unit's drop-in, as
//! for nodeadm's). Proxy credentials are never shown: only host and port.

use crate::model::proxy::NoProxy;

/// Where a proxy listens (from `http://[user:pass@]host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ProxyAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The proxy and its exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub https_proxy: Option<ProxyAddr>,
    pub no_proxy: NoProxy,
}

impl ProxySettings {
    /// From variables as `get` returns them (the process environment in
    /// production); the upper-case name first, as Go reads them.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |upper: &str, lower: &str| {
            get(upper)
                .filter(|v| !v.is_empty())
                .or_else(|| get(lower).filter(|v| !v.is_empty()))
        };
        ProxySettings {
            https_proxy: var("HTTPS_PROXY", "https_proxy").and_then(|v| parse_proxy(&v)),
            no_proxy: var("NO_PROXY", "no_proxy")
                .map(|v| NoProxy::parse(&v))
                .unwrap_or_default(),
        }
    }

    /// This process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The proxy to reach `host:port` through, or `None` to dial directly
    /// ([`NoProxy::bypasses`], Go's `useProxy`).
    pub fn proxy_for(&self, host: &str, port: u16) -> Option<&ProxyAddr> {
        let proxy = self.https_proxy.as_ref()?;
        (!self.no_proxy.bypasses(host, port)).then_some(proxy)
    }
}

/// `http://user:pass@proxy.local:3128/` → proxy.local:3128 (port 80 for
/// `http`, 443 for `https` when absent; a bare `host:port` is http).
fn parse_proxy(v: &str) -> Option<ProxyAddr> {
    let (scheme, rest) = v.split_once("://").unwrap_or(("http", v));
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse().ok()?),
        _ => (authority, default),
    };
    let host = host.trim_matches(['[', ']']);
    (!host.is_empty()).then(|| ProxyAddr {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> ProxySettings {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxySettings::from_vars(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn variables_are_read_as_go_reads_them() {
        let s = settings(&[
            ("https_proxy", "http://robot:s3cret@proxy.site.local:3128/"),
            (
                "NO_PROXY",
                "localhost,.eks.amazonaws.com,10.0.0.0/8,192.168.1.5,harbor.local:5000,*.internal",
            ),
        ]);
        let p = s.https_proxy.clone().expect("proxy");
        assert_eq!(
            p.to_string(),
            "proxy.site.local:3128",
            "no credentials shown"
        );
        let via = |h: &str, port: u16| s.proxy_for(h, port).is_some();
        assert!(via("sts.us-west-2.amazonaws.com", 443));
        assert!(!via("abc.gr7.us-west-2.eks.amazonaws.com", 443));
        assert!(
            via("eks.amazonaws.com", 443),
            "a leading dot: subdomains only"
        );
        assert!(!via("10.1.2.3", 443));
        assert!(!via("192.168.1.5", 443));
        assert!(via("192.168.1.6", 443));
        assert!(!via("harbor.local", 5000));
        assert!(via("harbor.local", 443), "the port must match");
        assert!(!via("api.cluster.internal", 443));
        assert!(!via("localhost", 443) && !via("127.0.0.1", 6443));
        // Upper case wins; an empty value counts as unset.
        let s = settings(&[("HTTPS_PROXY", ""), ("https_proxy", "10.0.0.9:8080")]);
        assert_eq!(
            s.https_proxy.map(|p| p.to_string()),
            Some("10.0.0.9:8080".into())
        );
        assert!(settings(&[("NO_PROXY", "*"), ("HTTPS_PROXY", "http://p")])
            .proxy_for("sts.amazonaws.com", 443)
            .is_none());
        assert_eq!(settings(&[]).https_proxy, None);
    }
}

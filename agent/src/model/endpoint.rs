//! The cluster's API server endpoint as the host records it: where the
//! kubelet's kubeconfig keeps it after `nodeadm init`, and how a URL reads
//! as host and port.

/// The kubelet's kubeconfig after `nodeadm init`: its `server:` is the API endpoint.
pub const KUBELET_KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";

/// `https://host:port/…` → (host, port); port 443 by default.
pub fn parse_endpoint(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let authority = rest.split('/').next()?;
    if authority.is_empty() {
        return None;
    }
    Some(match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?),
        _ => (authority.to_owned(), 443),
    })
}

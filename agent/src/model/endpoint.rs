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

/// The API server as the host knows it: the kubelet kubeconfig's `server:`
/// (after init), else the NodeConfig's `apiServerEndpoint`; as host and port.
pub fn api_server(
    host: &crate::host::Host,
    nodeconfig: Option<&super::nodeconfig::Loaded>,
) -> Option<(String, u16)> {
    let from_kubeconfig = std::fs::read_to_string(host.path(KUBELET_KUBECONFIG))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("server:")
                    .map(|s| s.trim().trim_matches('"').to_owned())
            })
        });
    let url = from_kubeconfig.or_else(|| {
        nodeconfig
            .map(|nc| nc.config.spec.cluster.api_server_endpoint.clone())
            .filter(|s| !s.is_empty())
    })?;
    parse_endpoint(&url)
}

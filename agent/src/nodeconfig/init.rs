//! What `nodeadm init` does to and with the NodeConfig beyond the config
//! validator (internal/flows/init.go `Initer.Run`, v1.0.20):
//!
//! 1. `PopulateNodeConfigDefaults` (internal/node/hybrid/defaults.go) fills
//!    the IAM Roles Anywhere paths *before* validation. `nodeadm config
//!    check` (cmd/nodeadm/config/check.go) validates without them, so the two
//!    commands disagree on a file that leaves the paths out: the agent judges
//!    as `init` does and says what `config check` would print.
//! 2. The hybrid validation phases (internal/node/hybrid/hybrid.go
//!    `Validate`), then the daemons' `Configure`. Those that only need the
//!    file and the host are checked here, each named by the phase nodeadm
//!    would fail in, so a site admin can match the agent's finding to
//!    nodeadm's log line (and to `--skip <phase>`).
//!
//! DNS and the kubelet binary sit behind [`InitProbe`].

use super::validate::{Out, Severity};
use crate::model::nodeconfig::{IamRolesAnywhere, NodeConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// iamrolesanywhere.DefaultAWSConfigPath.
pub const DEFAULT_AWS_CONFIG_PATH: &str = "/etc/aws/hybrid/config";

/// nodeadm's phase names (internal/node/hybrid/hybrid.go).
pub const PHASE_ENDPOINT: &str = "api-server-endpoint-resolution-validation";
pub const PHASE_NODE_IP: &str = "node-ip-validation";
pub const PHASE_VERSION_SKEW: &str = "kubelet-version-skew-validation";
/// Not a validation: the kubelet daemon's `Configure` derives the cluster
/// DNS address from the CIDR (internal/api/net.go `GetClusterDns`).
pub const PHASE_KUBELET_CONFIG: &str = "config (configuring daemon kubelet)";

/// The IAM Roles Anywhere settings after `PopulateNodeConfigDefaults`.
pub fn with_defaults(ra: &IamRolesAnywhere) -> IamRolesAnywhere {
    let mut ra = ra.clone();
    for (field, default) in [
        (
            &mut ra.certificate_path,
            IamRolesAnywhere::DEFAULT_CERTIFICATE_PATH,
        ),
        (
            &mut ra.private_key_path,
            IamRolesAnywhere::DEFAULT_PRIVATE_KEY_PATH,
        ),
        (&mut ra.aws_config_path, DEFAULT_AWS_CONFIG_PATH),
    ] {
        if field.is_empty() {
            default.clone_into(field);
        }
    }
    ra
}

/// Why a host lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Lookup(#[from] std::io::Error),
    #[error("it resolves to no address")]
    NoAddress,
}

/// The host facts init's later rules need.
pub trait InitProbe {
    /// Resolves a host name (as Go's `net.DefaultResolver.LookupIPAddr`).
    fn resolve(&self, host: &str) -> Result<(), ResolveError>;
    /// The installed kubelet's version (`kubelet --version`), if known.
    fn kubelet_version(&self) -> Option<String>;
    /// The cluster's Kubernetes version, if known (nodeadm reads it from
    /// DescribeCluster, which the agent does not call).
    fn api_server_version(&self) -> Option<String>;
}

/// The real host: the system resolver and the kubelet on `PATH`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl InitProbe for SystemProbe {
    fn resolve(&self, host: &str) -> Result<(), ResolveError> {
        use std::net::ToSocketAddrs;
        let mut addrs = (host, 443).to_socket_addrs()?;
        addrs.next().map(|_| ()).ok_or(ResolveError::NoAddress)
    }

    fn kubelet_version(&self) -> Option<String> {
        let out = std::process::Command::new("kubelet")
            .arg("--version")
            .output()
            .ok()?;
        kubelet_semver(&String::from_utf8_lossy(&out.stdout))
    }

    fn api_server_version(&self) -> Option<String> {
        None
    }
}

/// The `v1.2.3` in `kubelet --version` output (nodeadm's `semVerRegex`).
pub fn kubelet_semver(output: &str) -> Option<String> {
    output.split_whitespace().find_map(|w| {
        let rest = w.strip_prefix('v')?;
        let parts: Vec<&str> = rest.splitn(3, '.').collect();
        (parts.len() == 3 && parts[..2].iter().all(|p| p.parse::<u64>().is_ok()))
            .then(|| w.to_owned())
    })
}

/// Warns where `nodeadm config check` and `nodeadm init` disagree because
/// only init applies the IAM Roles Anywhere defaults.
pub(crate) fn config_check_disagreement(out: &mut Out<'_>, config: &NodeConfig) {
    let Some(ra) = config
        .spec
        .hybrid
        .as_ref()
        .filter(|h| h.ssm.is_none())
        .and_then(|h| h.iam_roles_anywhere.as_ref())
    else {
        return;
    };
    // validateRolesAnywhereNode checks the certificate path before the key
    // path and stops at the first error.
    let missing = if ra.certificate_path.is_empty() {
        Some((
            "CertificatePath",
            IamRolesAnywhere::DEFAULT_CERTIFICATE_PATH,
        ))
    } else if ra.private_key_path.is_empty() {
        Some(("PrivateKeyPath", IamRolesAnywhere::DEFAULT_PRIVATE_KEY_PATH))
    } else {
        None
    };
    if let Some((field, default)) = missing {
        out.push(
            Severity::Warn,
            "credentials",
            "spec.hybrid.iamRolesAnywhere",
            "iamRolesAnywhere",
            format!(
                "`nodeadm config check` rejects this file (\"{field} is missing in hybrid iam roles anywhere \
                 configuration\") but `nodeadm init` accepts it: only init fills in the default {default}. \
                 Judged as init will run; set the path to make both agree"
            ),
        );
    }
}

/// The rules init applies after config validation.
pub(crate) fn later_rules(
    out: &mut Out<'_>,
    config: &NodeConfig,
    certificate_authority_given: bool,
    probe: &dyn InitProbe,
) {
    let cluster = &config.spec.cluster;
    // Enrich skips DescribeCluster when all three are given, and with no
    // cluster object init skips the node-IP and version-skew validations.
    let no_describe = !cluster.api_server_endpoint.is_empty()
        && certificate_authority_given
        && !cluster.cidr.is_empty();
    if no_describe {
        out.push(
            Severity::Warn,
            "cluster",
            "spec.cluster",
            "cluster",
            format!(
                "apiServerEndpoint, certificateAuthority and cidr are all set, so nodeadm init does not call \
                 DescribeCluster and skips {PHASE_NODE_IP} and {PHASE_VERSION_SKEW}: the agent checks the \
                 node IP flag and the kubelet version itself; make sure the three match the cluster"
            ),
        );
    }

    if !cluster.api_server_endpoint.is_empty() {
        let field = "spec.cluster.apiServerEndpoint";
        match request_uri_hostname(&cluster.api_server_endpoint) {
            Err(why) => out.push(
                Severity::Fail,
                "cluster",
                field,
                "apiServerEndpoint",
                format!(
                    "{field} is not a URL nodeadm can use ({why}); nodeadm init fails in {PHASE_ENDPOINT}: \
                     write it as `aws eks describe-cluster` prints it, e.g. https://ABCD.gr7.us-west-2.eks.amazonaws.com"
                ),
            ),
            Ok(host) => {
                if let Err(e) = probe.resolve(&host) {
                    out.push(
                        Severity::Fail,
                        "cluster",
                        field,
                        "apiServerEndpoint",
                        format!(
                            "the API server host {host} does not resolve ({e}); nodeadm init fails in \
                             {PHASE_ENDPOINT}: check the DNS servers and the VPC endpoint / private hosted zone"
                        ),
                    );
                }
            }
        }
    }

    if !cluster.cidr.is_empty() && parse_cidr(&cluster.cidr).is_none() {
        out.push(
            Severity::Fail,
            "cluster",
            "spec.cluster.cidr",
            "cidr",
            format!(
                "spec.cluster.cidr is not a CIDR (address/prefix, e.g. 172.20.0.0/16); nodeadm derives the \
                 cluster DNS address from it and init fails in {PHASE_KUBELET_CONFIG}: use the cluster's \
                 service IPv4 CIDR"
            ),
        );
    }

    let node_ip = network_flag_value(&config.spec.kubelet.flags, "node-ip");
    if !node_ip.is_empty() {
        if let Err(why) = check_node_ip(node_ip) {
            let (severity, tail) = if no_describe {
                (
                    Severity::Warn,
                    format!("nodeadm skips {PHASE_NODE_IP} here (see spec.cluster), but the node joins with an address it cannot use"),
                )
            } else {
                (
                    Severity::Fail,
                    format!("nodeadm init fails in {PHASE_NODE_IP}"),
                )
            };
            out.push(
                severity,
                "kubelet_flags",
                "spec.kubelet.flags",
                "flags",
                format!("--node-ip={node_ip}: {why}; {tail}: give one IPv4 address of this host"),
            );
        }
    }

    if let (Some(kubelet), Some(api)) = (probe.kubelet_version(), probe.api_server_version()) {
        if let Err(why) = version_skew(&kubelet, &api) {
            let (severity, tail) = if no_describe {
                (
                    Severity::Warn,
                    format!("nodeadm skips {PHASE_VERSION_SKEW} here (see spec.cluster)"),
                )
            } else {
                (
                    Severity::Fail,
                    format!("nodeadm init fails in {PHASE_VERSION_SKEW}"),
                )
            };
            out.push(
                severity,
                "kubelet_flags",
                "spec.kubelet",
                "kubelet",
                format!("{why}; {tail}: install a matching kubelet with `nodeadm upgrade` or `nodeadm install`"),
            );
        }
    }
}

/// internal/network/utils.go `ExtractFlagValue`: like the validator's, but a
/// flag must be longer than its prefix.
fn network_flag_value<'a>(flags: &'a [String], name: &str) -> &'a str {
    let prefix = format!("--{name}=");
    flags
        .iter()
        .filter_map(|f| f.strip_prefix(prefix.as_str()))
        .rfind(|v| !v.is_empty())
        .unwrap_or("")
}

/// `ExtractNodeIPFromFlags`: Go's `net.ParseIP`, then `To4() != nil`
/// (an IPv4-mapped IPv6 address counts as IPv4).
pub(super) fn check_node_ip(value: &str) -> Result<Ipv4Addr, String> {
    match value.parse::<IpAddr>() {
        Err(_) => Err("not a single IP address (nodeadm allows exactly one IPv4 address)".into()),
        Ok(IpAddr::V4(v4)) => Ok(v4),
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .ok_or_else(|| "an IPv6 address (nodeadm supports only IPv4 node IPs)".into()),
    }
}

/// Go's `net.ParseCIDR`.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let ip: IpAddr = match ip.parse::<Ipv4Addr>() {
        Ok(v4) => IpAddr::V4(v4),
        Err(_) => IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// The host Go's `url.ParseRequestURI(s).Hostname()` finds, or why nodeadm
/// rejects the endpoint (internal/kubernetes/connection.go).
pub(super) fn request_uri_hostname(s: &str) -> Result<String, String> {
    // A scheme: a letter, then letters, digits, `+`, `-`, `.`, then `:`.
    let scheme_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')));
    let rest = match scheme_end {
        Some(i) if i > 0 && s.as_bytes()[i] == b':' => {
            if !s.as_bytes()[0].is_ascii_alphabetic() {
                return Err("missing protocol scheme".into());
            }
            &s[i + 1..]
        }
        Some(0) if s.starts_with(':') => return Err("missing protocol scheme".into()),
        _ => {
            if s.starts_with('/') {
                return Err("no host: the hostname is empty".into());
            }
            return Err("no scheme: it must start with https://".into());
        }
    };
    let Some(authority) = rest.strip_prefix("//") else {
        return Err("no host: the hostname is empty".into());
    };
    let authority = authority.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or("an unclosed `[` in the host")?;
        if !(after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
        {
            return Err("an invalid port".into());
        }
        inside.to_owned()
    } else {
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, ""));
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("an invalid port".into());
        }
        host.to_owned()
    };
    if host.is_empty() {
        return Err("no host: the hostname is empty".into());
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("invalid characters in the host".into());
    }
    Ok(host)
}

/// internal/node/hybrid/versionskew_validator.go `validateSkew`: the kubelet
/// may not be newer than the API server, nor more than 3 minors older.
pub(super) fn version_skew(kubelet: &str, api_server: &str) -> Result<(), String> {
    let minor = |v: &str| -> Option<(u64, u64)> {
        let v = v.trim().trim_start_matches('v');
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.split(['-', '+']).next()?.parse().ok()?;
        Some((major, minor))
    };
    let k = minor(kubelet).ok_or_else(|| format!("cannot parse the kubelet version {kubelet}"))?;
    let a = minor(api_server)
        .ok_or_else(|| format!("cannot parse the kube-apiserver version {api_server}"))?;
    if k.1 > a.1 {
        return Err(format!(
            "kubelet {kubelet} is newer than the cluster's Kubernetes {api_server}"
        ));
    }
    if a.1 - k.1 > 3 {
        return Err(format!(
            "kubelet {kubelet} is more than 3 minor versions older than the cluster's Kubernetes {api_server}"
        ));
    }
    Ok(())
}

//! The agent's own configuration (`/etc/hybrid-node-agent/config.toml`).
//!
//! Typed, every key optional with a default, unknown keys rejected with the
//! file, line and column. `packaging/config.toml` documents every key; a test
//! keeps that file and this module in agreement.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the config lives when `--config` is not given (under `--root`).
pub const DEFAULT_PATH: &str = "/etc/hybrid-node-agent/config.toml";

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentConfig,
    pub lifecycle: LifecycleConfig,
    pub nodeconfig: NodeConfigConfig,
    pub containerd: ContainerdConfig,
    pub registries: RegistriesConfig,
    pub web: WebSettings,
    pub network: NetworkConfig,
    pub gpu: GpuConfig,
    /// Registries the agent manages (beside those the NodeConfig declares).
    pub registry: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Address of the HTTP endpoint (`/metrics`, `/healthz`, `/status`).
    pub listen: SocketAddr,
    /// Log filter (`info`, `debug`, `hybrid_node_agent=debug,warn`, …).
    /// `RUST_LOG` in the environment takes precedence.
    pub log_level: String,
    /// Longest a single domain run may take before it is reported as timed
    /// out.
    pub probe_timeout: Interval,
    /// Most HTTP connections served at once; further ones wait in the
    /// kernel's accept queue.
    pub max_connections: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 10063)),
            log_level: "info".to_owned(),
            probe_timeout: Interval(Duration::from_secs(20)),
            max_connections: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// How often the nodeadm phase is re-evaluated.
    pub interval: Interval,
    /// Where the kubelet serves its health endpoint (`healthzBindAddress`).
    pub kubelet_healthz: SocketAddr,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            interval: Interval(Duration::from_secs(15)),
            kubelet_healthz: SocketAddr::from(([127, 0, 0, 1], 10248)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfigConfig {
    /// The NodeConfig file nodeadm reads (host path, under `--root`).
    pub path: PathBuf,
    /// How long file events must be quiet before the file is re-read.
    pub debounce: Interval,
    /// Re-read even without a file event (a safety net for missed events).
    pub interval: Interval,
}

impl Default for NodeConfigConfig {
    fn default() -> Self {
        NodeConfigConfig {
            path: PathBuf::from("/etc/nodeadm/nodeconfig.yaml"),
            debounce: Interval(Duration::from_millis(100)),
            interval: Interval(Duration::from_secs(30)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerdConfig {
    /// How often the effective containerd config is re-analysed (also on
    /// every new good NodeConfig).
    pub interval: Interval,
    /// containerd's config directory on the host (under `--root`).
    pub config_dir: PathBuf,
    /// The containerd program used for `containerd config dump`, looked up
    /// on the agent's PATH (not under `--root`).
    pub binary: String,
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        ContainerdConfig {
            interval: Interval(Duration::from_secs(60)),
            config_dir: PathBuf::from("/etc/containerd"),
            binary: "containerd".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// How often MTUs, TCP connect times and DNS are checked and the
    /// latency verdicts refreshed.
    pub interval: Interval,
    /// How often path MTU discovery re-runs (also after a jumbo echo fails).
    pub pmtu_interval: Interval,
    /// ICMP echo requests per second per target.
    pub echo_rate: f64,
    /// Echo replies later than this count as lost.
    pub echo_timeout: Interval,
    /// Expected MTU of the path to every target unless the target says
    /// otherwise (Direct Connect private VIF 9001, transit VIF / TGW 8500).
    pub expected_mtu: u32,
    /// Also watch the cluster's API server endpoint (kubelet kubeconfig after
    /// init, else the NodeConfig's cluster.apiServerEndpoint).
    pub api_server: bool,
    pub latency_warn: Interval,
    pub latency_critical: Interval,
    pub jitter_warn: Interval,
    pub jitter_critical: Interval,
    /// Loss ratios (0.0001 = 0.01 %).
    pub loss_warn: f64,
    pub loss_critical: f64,
    /// Scheduled iperf3 bandwidth tests (`[network.bandwidth]`).
    pub bandwidth: crate::bandwidth::config::BandwidthConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<NetworkTarget>,
    /// DNS servers to query over UDP and TCP (`[[network.resolver]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolver: Vec<crate::dns::config::ResolverEntry>,
}

impl Eq for NetworkConfig {}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interval: Interval(Duration::from_secs(30)),
            pmtu_interval: Interval(Duration::from_secs(600)),
            echo_rate: 5.0,
            echo_timeout: Interval(Duration::from_secs(1)),
            expected_mtu: 9000,
            api_server: true,
            latency_warn: Interval(Duration::from_millis(5)),
            latency_critical: Interval(Duration::from_millis(10)),
            jitter_warn: Interval(Duration::from_millis(2)),
            jitter_critical: Interval(Duration::from_millis(5)),
            loss_warn: 0.0001,
            loss_critical: 0.001,
            bandwidth: Default::default(),
            target: Vec::new(),
            resolver: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    pub interval: Interval,
    /// GPUs the host must have; unset: from the node labels (gpu-count) or
    /// whatever NVML finds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_count: Option<u32>,
    /// Oldest acceptable driver major version.
    pub min_driver: u32,
    /// XIDs that fail the check until they age out of `xid_window`.
    pub xid_fatal: Vec<u64>,
    /// XIDs only counted.
    pub xid_ignore: Vec<u64>,
    pub xid_window: Interval,
    /// Warn this many °C below the slowdown threshold.
    pub thermal_margin: u32,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            interval: Interval(Duration::from_secs(30)),
            expected_count: None,
            min_driver: 550,
            xid_fatal: crate::gpu::xid::DEFAULT_FATAL.to_vec(),
            xid_ignore: crate::gpu::xid::DEFAULT_IGNORE.to_vec(),
            xid_window: Interval(Duration::from_secs(24 * 3600)),
            thermal_margin: 5,
        }
    }
}

/// One `[[network.target]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkTarget {
    /// The `target` label.
    pub name: String,
    /// IP address or DNS name.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_mtu: Option<u32>,
    /// Echo and path MTU probes (false where ICMP is filtered).
    #[serde(default = "yes")]
    pub icmp: bool,
    /// Measure TCP connect time to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_port: Option<u16>,
    /// Port of an `iperf3 -s` at this address: scheduled bandwidth tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iperf_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// Prometheus exporter-toolkit web config (TLS, client certificates,
    /// basic auth, headers), a host path. Empty: plain HTTP.
    pub config_file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistriesConfig {
    /// Whether the agent writes hosts.toml, CA files and trust-store entries;
    /// false only reports.
    pub manage: bool,
    /// The hosts.toml root containerd reads (its `config_path`).
    pub certs_d: PathBuf,
    /// Drift check and registry probe period.
    pub interval: Interval,
    /// Longest a registry probe (connect, TLS, `GET /v2/`) may take.
    pub probe_timeout: Interval,
    /// Allow `skip_verify` on a registry at all (unsafe: TLS without
    /// verification). Even then every such registry is a warning.
    pub allow_skip_verify: bool,
    /// Restart containerd (systemctl) after the OS trust store changed; Go
    /// caches the system pool, so containerd only sees new CAs after a restart.
    pub restart_containerd_on_trust_change: bool,
}

impl Default for RegistriesConfig {
    fn default() -> Self {
        RegistriesConfig {
            manage: true,
            certs_d: PathBuf::from("/etc/containerd/certs.d"),
            interval: Interval(Duration::from_secs(60)),
            probe_timeout: Interval(Duration::from_secs(5)),
            allow_skip_verify: false,
            restart_containerd_on_trust_change: false,
        }
    }
}

/// One `[[registry]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// `name`, `name:port`, or `_default` (every registry).
    pub host: String,
    /// Endpoints tried in order before the registry itself.
    #[serde(default)]
    pub mirrors: Vec<MirrorEntry>,
    /// PEM (or DER) file of the CA that signs the registry's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The CA inline, in PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    #[serde(default)]
    pub skip_verify: bool,
    /// Pull only through the mirrors: `server` is set to the first mirror,
    /// so containerd never falls back to the registry itself.
    #[serde(default)]
    pub mirror_only: bool,
    /// Also install the CA into the OS trust store.
    #[serde(default = "yes")]
    pub system_trust: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorEntry {
    pub url: String,
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<String>,
    /// The URL's path is the API root (no `/v2` appended).
    #[serde(default)]
    pub override_path: bool,
}

fn default_capabilities() -> Vec<String> {
    vec!["pull".to_owned(), "resolve".to_owned()]
}

/// The capabilities containerd knows.
pub const CAPABILITIES: [&str; 4] = ["pull", "resolve", "push", "referrers"];

impl RegistryEntry {
    fn validate(&self, allow_skip_verify: bool) -> Result<(), String> {
        let h = &self.host;
        if let Err(e) = crate::registry::name::validate(h) {
            return Err(format!(
                "registry host {h:?} must be a name, name:port or _default (no scheme or path): {e}"
            ));
        }
        if self.ca_file.is_some() && self.ca_pem.is_some() {
            return Err(format!("registry {h}: set ca_file or ca_pem, not both"));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(format!(
                "registry {h}: client_cert and client_key go together"
            ));
        }
        if self.skip_verify && !allow_skip_verify {
            return Err(format!(
                "registry {h}: skip_verify disables TLS verification; it is only accepted with \
                 registries.allow_skip_verify = true"
            ));
        }
        if self.mirror_only && self.mirrors.is_empty() {
            return Err(format!(
                "registry {h}: mirror_only needs at least one mirror"
            ));
        }
        for m in &self.mirrors {
            if let Some(shown) = crate::registry::name::redact_userinfo(&m.url) {
                return Err(format!(
                    "registry {h}: mirror url {shown:?} carries credentials; remove them from the \
                     URL (credentials belong in the registry's auth settings, not in an endpoint)"
                ));
            }
            if !(m.url.starts_with("https://") || m.url.starts_with("http://")) {
                return Err(format!(
                    "registry {h}: mirror url {:?} must start with https:// or http://",
                    m.url
                ));
            }
            if let Some(bad) = m
                .capabilities
                .iter()
                .find(|c| !CAPABILITIES.contains(&c.as_str()))
            {
                return Err(format!(
                    "registry {h}: unknown capability {bad:?}; expected one of {}",
                    CAPABILITIES.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// A duration written as a number and a unit: `500ms`, `15s`, `10m`, `1h`,
/// or a combination such as `1m30s`. Must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl Interval {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::str::FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected a duration such as \"500ms\", \"15s\", \"10m\" or \"1h30m\"";
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(format!("empty duration: {expected}"));
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("invalid duration {s:?}: {expected}"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            let part = match &rest[..unit_len] {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                "" => return Err(format!("invalid duration {s:?}: missing unit; {expected}")),
                u => {
                    return Err(format!(
                        "invalid duration {s:?}: unknown unit {u:?}; {expected}"
                    ))
                }
            };
            total = total.saturating_add(part);
            rest = &rest[unit_len..];
        }
        if total.is_zero() {
            return Err(format!("invalid duration {s:?}: must be greater than zero"));
        }
        Ok(Interval(total))
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let text = if d.subsec_millis() != 0 || d.as_secs() == 0 {
            format!("{}ms", d.as_millis())
        } else if d.as_secs() % 3600 == 0 {
            format!("{}h", d.as_secs() / 3600)
        } else if d.as_secs() % 60 == 0 {
            format!("{}m", d.as_secs() / 60)
        } else {
            format!("{}s", d.as_secs())
        };
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a config could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists (or was named explicitly) but could not be read.
    #[error("cannot read agent config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The file parsed but a value is not acceptable.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Where a config comes from and whether its absence is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// Named with `--config`: a missing file is an error rather than "use
    /// the defaults".
    pub explicit: bool,
}

impl ConfigSource {
    /// Reads and parses the config. A missing default config means all
    /// defaults; a missing explicit one is an error.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => parse(&self.path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.explicit => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// Parses config text; `path` is only used in error messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((1, 1));
        let message = e.message().trim();
        let message = match e.span().and_then(|span| field_at(text, span.start)) {
            Some(field) if !message.contains(&field) => format!("{field}: {message}"),
            _ => message.to_owned(),
        };
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })?;
    config.validate(path)?;
    Ok(config)
}

/// The field a value at `offset` belongs to (`agent.listen`), so that a
/// type error names it: the key before `=` on that line, under the last
/// table header above it. The value itself is never quoted (it may be a
/// secret).
fn field_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = before[line_start..].split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

impl Config {
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if !self.nodeconfig.path.is_absolute() {
            return Err(invalid(format!(
                "nodeconfig.path must be an absolute path, got {:?}",
                self.nodeconfig.path
            )));
        }
        if !self.containerd.config_dir.is_absolute() {
            return Err(invalid(format!(
                "containerd.config_dir must be an absolute path, got {:?}",
                self.containerd.config_dir
            )));
        }
        if !self.registries.certs_d.is_absolute() {
            return Err(invalid(format!(
                "registries.certs_d must be an absolute path, got {:?}",
                self.registries.certs_d
            )));
        }
        let n = &self.network;
        if !(n.echo_rate > 0.0 && n.echo_rate <= 100.0) {
            return Err(invalid(format!(
                "network.echo_rate must be in (0, 100] packets per second, got {}",
                n.echo_rate
            )));
        }
        if !(0.0..1.0).contains(&n.loss_warn)
            || !(0.0..1.0).contains(&n.loss_critical)
            || n.loss_warn > n.loss_critical
        {
            return Err(invalid("network.loss_warn and loss_critical must be ratios in [0, 1) with warn <= critical".into()));
        }
        if n.latency_warn > n.latency_critical || n.jitter_warn > n.jitter_critical {
            return Err(invalid(
                "network warn thresholds must not exceed the critical ones".into(),
            ));
        }
        n.bandwidth.validate().map_err(invalid)?;
        for r in &n.resolver {
            r.validate().map_err(invalid)?;
        }
        let mut names = std::collections::BTreeSet::new();
        for t in
            std::iter::once(n.expected_mtu).chain(n.target.iter().filter_map(|t| t.expected_mtu))
        {
            if !(68..=65535).contains(&t) {
                return Err(invalid(format!("expected_mtu {t} is not a valid MTU")));
            }
        }
        for t in &n.target {
            if t.name.is_empty() || !names.insert(t.name.as_str()) {
                return Err(invalid(format!(
                    "network.target name {:?} is empty or declared twice",
                    t.name
                )));
            }
            if t.address.trim().is_empty() {
                return Err(invalid(format!(
                    "network.target {}: address is empty",
                    t.name
                )));
            }
        }
        let mut hosts = std::collections::BTreeSet::new();
        for r in &self.registry {
            r.validate(self.registries.allow_skip_verify)
                .map_err(invalid)?;
            if !hosts.insert(r.host.as_str()) {
                return Err(invalid(format!("registry {} is declared twice", r.host)));
            }
        }
        if self.agent.max_connections == 0 {
            return Err(invalid(
                "agent.max_connections must be at least 1".to_owned(),
            ));
        }
        crate::logging::parse_filter(&self.agent.log_level)
            .map_err(|e| invalid(format!("agent.log_level: {e}")))?;
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/hybrid-node-agent/config.toml"), text)
    }

    #[test]
    fn empty_config_is_all_defaults() {
        assert_eq!(p("").ok(), Some(Config::default()));
        let c = Config::default();
        assert_eq!(c.agent.listen.port(), 10063);
        assert_eq!(c.lifecycle.kubelet_healthz.to_string(), "127.0.0.1:10248");
    }

    #[test]
    fn values_are_read() {
        let c = p(r#"
[agent]
listen = "127.0.0.1:9100"
log_level = "debug"
probe_timeout = "1m30s"

[lifecycle]
interval = "500ms"
"#)
        .expect("valid config");
        assert_eq!(c.agent.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.agent.probe_timeout.get(), Duration::from_secs(90));
        assert_eq!(c.lifecycle.interval.get(), Duration::from_millis(500));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = p("[agent]\nlisten = \"127.0.0.1:1\"\n  lissen = 3\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("/etc/hybrid-node-agent/config.toml:3:3: unknown field `lissen`"),
            "{msg}"
        );
        assert!(msg.contains("expected one of"), "{msg}");
    }

    #[test]
    fn unknown_table_is_rejected() {
        let err = p("[agnet]\n").unwrap_err().to_string();
        assert!(err.contains(":1:2: unknown field `agnet`"), "{err}");
    }

    #[test]
    fn bad_value_names_line_and_column() {
        let err = p("[agent]\n\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.toml:3:10:"), "{err}");
        assert!(
            err.contains("agent.listen: invalid socket address"),
            "{err}"
        );
        assert!(!err.contains("localhost"), "values are never quoted: {err}");

        let err = p("[lifecycle]\ninterval = \"10 parsecs\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.toml:2:12:"), "{err}");
        assert!(err.contains("lifecycle.interval: "), "{err}");
        assert!(err.contains("expected a duration"), "{err}");
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = p("[agent\nlisten = 1\n").unwrap_err();
        match err {
            ConfigError::Parse { line, column, .. } => assert_eq!((line, column), (1, 7)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn semantic_errors_are_reported() {
        let err = p("[agent]\nmax_connections = 0\n").unwrap_err().to_string();
        assert!(err.contains("max_connections must be at least 1"), "{err}");
        let err = p("[agent]\nlog_level = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("agent.log_level"), "{err}");
    }

    #[test]
    fn intervals() {
        let ok = |s: &str| s.parse::<Interval>().map(Interval::get);
        assert_eq!(ok("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(ok("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(ok("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "0s",
            "15",
            "s",
            "3 days",
            "1d",
            "-1s",
            "18446744073709551616s",
        ] {
            assert!(ok(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn missing_default_config_means_defaults_but_missing_explicit_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.toml");
        let implicit = ConfigSource {
            path: path.clone(),
            explicit: false,
        };
        assert_eq!(implicit.load().ok(), Some(Config::default()));
        let explicit = ConfigSource {
            path,
            explicit: true,
        };
        let err = explicit.load().unwrap_err().to_string();
        assert!(err.contains("absent.toml"), "{err}");
    }

    /// `packaging/config.toml` has every key commented out with its default.
    /// Uncommented, it must parse to the defaults and name every key.
    #[test]
    fn example_config_documents_every_key_with_its_default() {
        let text = include_str!("../../packaging/config.toml");
        assert_eq!(
            p(text).ok(),
            Some(Config::default()),
            "as shipped: all defaults"
        );
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                // `# [table]` and `# key = value`; indented lines are examples.
                Some(rest)
                    if rest.starts_with('[')
                        || (rest.starts_with(|c: char| c.is_ascii_alphabetic())
                            && rest.contains(" = ")) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            p(&uncommented).ok(),
            Some(Config::default()),
            "documented values differ from the defaults"
        );
        let documented: toml::Table = toml::from_str(&uncommented).expect("toml");
        let actual = toml::Table::try_from(Config::default()).expect("serialize");
        let keys = |t: &toml::Table| -> Vec<String> {
            let mut k: Vec<String> = t
                .iter()
                .filter(|(section, _)| section.as_str() != "registry")
                .filter(|(section, _)| section.as_str() != "target")
                .flat_map(|(section, v)| {
                    v.as_table()
                        .into_iter()
                        .flat_map(|t| t.keys())
                        .map(move |k| format!("{section}.{k}"))
                })
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&documented), keys(&actual));
    }

    #[test]
    fn registry_entries_are_validated() {
        let ok = p(r#"
[[registry]]
host = "harbor.example.internal"
ca_file = "/etc/pki/harbor-ca.pem"
mirror_only = true
mirrors = [{ url = "https://mirror.example.internal:8443" }]
"#)
        .expect("valid");
        assert_eq!(
            ok.registry[0].mirrors[0].capabilities,
            vec!["pull", "resolve"]
        );
        assert!(ok.registry[0].system_trust);
        for (text, want) in [
            ("[[registry]]\nhost = \"https://x\"\n", "no scheme or path"),
            ("[[registry]]\nhost = \"x\"\nskip_verify = true\n", "allow_skip_verify = true"),
            ("[[registry]]\nhost = \"x\"\nca_file = \"/a\"\nca_pem = \"b\"\n", "not both"),
            ("[[registry]]\nhost = \"x\"\nmirror_only = true\n", "needs at least one mirror"),
            ("[[registry]]\nhost = \"x\"\nmirrors = [{ url = \"ftp://m\" }]\n", "must start with https://"),
            ("[[registry]]\nhost = \"x\"\nmirrors = [{ url = \"https://m\", capabilities = [\"pul\"] }]\n", "unknown capability \"pul\""),
            ("[[registry]]\nhost = \"x\"\n[[registry]]\nhost = \"x\"\n", "declared twice"),
            ("[[registry]]\nhost = \"x\"\nclient_cert = \"/c\"\n", "go together"),
        ] {
            let err = p(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let unsafe_ok = p("[registries]\nallow_skip_verify = true\n[[registry]]\nhost = \"x:5000\"\nskip_verify = true\n");
        assert!(unsafe_ok.is_ok());
    }

    /// Security review (issue 15, finding 5): `.`, `..` and `[..]` passed,
    /// putting hosts.toml in the certs.d root or its parent.
    #[test]
    fn registry_hosts_that_leave_their_directory_are_rejected() {
        for host in [".", "..", "[..]", "[..]:5000", "a/b", "", "x\\\"\\ny"] {
            let text = format!("[[registry]]\nhost = \"{host}\"\n");
            let err = p(&text).expect_err(&text).to_string();
            assert!(
                err.contains("must be a name, name:port or _default"),
                "{text}: {err}"
            );
        }
        assert!(p("[[registry]]\nhost = \"[fd00::10]:5000\"\n").is_ok());
    }

    /// Security review (issue 15, finding 10): credentials in a mirror URL
    /// are refused, and the refusal does not repeat them.
    #[test]
    fn mirror_url_credentials_are_rejected_without_echoing_them() {
        let text = "[[registry]]\nhost = \"harbor.local\"\nmirrors = [{ url = \"https://robot:hunter2@mirror.local:8443\" }]\n";
        let err = p(text).expect_err("credentials in a URL").to_string();
        assert!(err.contains("registry harbor.local"), "{err}");
        assert!(err.contains("https://***@mirror.local:8443"), "{err}");
        assert!(err.contains("auth"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("robot"), "{err}");
    }

    #[test]
    fn intervals_round_trip() {
        for s in ["500ms", "15s", "10m", "1h", "90s", "1500ms"] {
            let i: Interval = s.parse().expect("parse");
            let v = toml::Value::try_from(i).expect("serialize");
            assert_eq!(v.as_str(), Some(s));
        }
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "a\nbé=c\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        assert_eq!(line_column(text, 5), (2, 3));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}

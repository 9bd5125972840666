//! The agent's own configuration (`/etc/hybrid-node-agent/config.toml`).
//!
//! Typed, every key optional with a default, unknown keys rejected with the
//! file, line and column. `packaging/config.toml` documents every key; a test
//! keeps that file and this module in agreement.

pub mod bandwidth;
pub mod cluster;
pub mod credentials;
pub mod dns;
mod gpu;
mod interval;
mod network;
pub mod preflight;
mod registries;
mod sections;
#[cfg(test)]
mod tests;

pub use cluster::{ClusterConfig, EndpointsConfig};
pub use gpu::GpuConfig;
pub use interval::Interval;
pub use network::{NetworkConfig, NetworkTarget};
pub use preflight::PreflightConfig;
pub use registries::{MirrorEntry, RegistriesConfig, RegistryEntry};
pub use sections::{AgentConfig, ContainerdConfig, LifecycleConfig, NodeConfigConfig, WebSettings};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    pub credentials: credentials::CredentialsConfig,
    pub preflight: PreflightConfig,
    pub cluster: ClusterConfig,
    pub endpoints: EndpointsConfig,
    /// Registries the agent manages (beside those the NodeConfig declares).
    pub registry: Vec<RegistryEntry>,
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
        n.bandwidth.validate().map_err(|e| invalid(e.0))?;
        self.credentials.validate().map_err(|e| invalid(e.0))?;
        self.gpu.validate().map_err(|e| invalid(e.0))?;
        for r in &n.resolver {
            r.validate().map_err(|e| invalid(e.0))?;
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
        self.cluster.validate().map_err(|e| invalid(e.0))?;
        self.endpoints.validate().map_err(|e| invalid(e.0))?;
        if self.agent.max_connections == 0 {
            return Err(invalid(
                "agent.max_connections must be at least 1".to_owned(),
            ));
        }
        self.preflight.validate().map_err(|e| invalid(e.0))?;
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

/// A setting whose value cannot be used: which one and why (the message
/// names the setting). Wrapped with the file in [`ConfigError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

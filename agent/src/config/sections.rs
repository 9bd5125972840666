//! The small sections: `[agent]`, `[lifecycle]`, `[nodeconfig]`,
//! `[containerd]`, `[web]`.

use super::Interval;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Most HTTP connections open at once; at the limit a new connection
    /// closes the one that has been quiet the longest (`metrics::conn`).
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

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// Prometheus exporter-toolkit web config (TLS, client certificates,
    /// basic auth, headers), a host path. Empty: plain HTTP.
    pub config_file: String,
}

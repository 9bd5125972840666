//! `[registries]` and the `[[registry]]` entries, with their validation.

use super::Interval;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use std::path::PathBuf;

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

pub(super) fn yes() -> bool {
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
    pub(super) fn validate(&self, allow_skip_verify: bool) -> Result<(), String> {
        let h = &self.host;
        if let Err(e) = crate::model::registry_name::validate(h) {
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
            if let Some(shown) = crate::model::registry_name::redact_userinfo(&m.url) {
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

//! The desired registry state: the NodeConfig's inline registries and the
//! agent config's `[[registry]]` entries, merged (the agent config wins).

use crate::config::RegistryEntry;
use crate::model::containerd::{normalize_host, RegistryDecl};
use crate::model::registry_name as name;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    AgentConfig,
    NodeConfig,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AgentConfig => "agent config",
            Source::NodeConfig => "NodeConfig",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A host path (under `--root`).
    File(PathBuf),
    Inline(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub capabilities: Vec<String>,
    pub override_path: bool,
}

/// One registry as the agent should configure it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// `name`, `name:port` or `_default`: the certs.d directory name.
    pub host: String,
    pub source: Source,
    pub mirrors: Vec<Endpoint>,
    pub ca: Option<CaSource>,
    /// (certificate, key) host paths.
    pub client: Option<(PathBuf, PathBuf)>,
    pub skip_verify: bool,
    pub mirror_only: bool,
    pub system_trust: bool,
    /// The NodeConfig carries credentials for it (reported, never copied).
    pub has_auth: bool,
}

impl Desired {
    /// The registry's own URL; none for `_default`.
    pub fn upstream(&self) -> Option<String> {
        match self.host.as_str() {
            "_default" => None,
            "docker.io" => Some("https://registry-1.docker.io".to_owned()),
            h => Some(format!("https://{h}")),
        }
    }

    /// The endpoints containerd will try, in order: the mirrors, then the
    /// registry itself unless `mirror_only`.
    /// A URL listed twice is tried once (hosts.toml has one entry per URL).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::with_capacity(self.mirrors.len() + 1);
        for m in &self.mirrors {
            if !out.iter().any(|e| e.url == m.url) {
                out.push(m.clone());
            }
        }
        if !self.mirror_only || out.is_empty() {
            if let Some(up) = self.upstream() {
                if !out.iter().any(|e| e.url == up) {
                    out.push(Endpoint {
                        url: up,
                        capabilities: vec!["pull".into(), "resolve".into()],
                        override_path: false,
                    });
                }
            }
        }
        out
    }
}

/// The merge result and what it had to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub registries: Vec<Desired>,
    /// One line per decision an admin should know about.
    pub conflicts: Vec<String>,
    /// Registries left out because their name or a mirror URL is not
    /// acceptable, one line each naming the registry and its source: a
    /// failing check.
    pub rejected: Vec<String>,
}

/// Where a NodeConfig registry comes from, for messages.
const NODECONFIG_FIELD: &str =
    "NodeConfig spec.containerd.config registry.mirrors/registry.configs";
/// Where an agent config registry comes from, for messages.
const AGENT_FIELD: &str = "agent config [[registry]] host";

/// Why a registry cannot be configured: its name would not be one plain
/// certs.d directory, or a mirror URL carries credentials. Messages show
/// names with `{:?}` (escaped) and URLs without their user information.
fn refusal(host: &str, mirrors: &[String], field: &str) -> Option<String> {
    if let Err(e) = name::validate(host) {
        return Some(format!(
            "registry name {host:?} from the {field} is not {}: {e}; skipped",
            name::EXPECTED
        ));
    }
    mirrors.iter().find_map(|url| {
        name::redact_userinfo(url).map(|shown| {
            format!(
                "registry {host} from the {field}: mirror {shown:?} carries credentials in the URL; \
                 skipped (credentials belong in the registry's auth settings)"
            )
        })
    })
}

pub fn merge(
    agent: &[RegistryEntry],
    nodeconfig: &[RegistryDecl],
    allow_skip_verify: bool,
) -> Merged {
    let mut out = Merged::default();
    for e in agent {
        // Also checked when the config loads; kept here so no caller can
        // plan files for a name that escapes certs.d.
        let urls: Vec<String> = e.mirrors.iter().map(|m| m.url.clone()).collect();
        if let Some(why) = refusal(&normalize_host(&e.host), &urls, AGENT_FIELD) {
            out.rejected.push(why);
            continue;
        }
        out.registries.push(Desired {
            host: normalize_host(&e.host),
            source: Source::AgentConfig,
            mirrors: e
                .mirrors
                .iter()
                .map(|m| Endpoint {
                    url: m.url.trim_end_matches('/').to_owned(),
                    capabilities: m.capabilities.clone(),
                    override_path: m.override_path,
                })
                .collect(),
            ca: e
                .ca_file
                .clone()
                .map(CaSource::File)
                .or_else(|| e.ca_pem.clone().map(CaSource::Inline)),
            client: e.client_cert.clone().zip(e.client_key.clone()),
            skip_verify: e.skip_verify,
            mirror_only: e.mirror_only,
            system_trust: e.system_trust,
            has_auth: false,
        });
    }
    for r in nodeconfig {
        let host = normalize_host(&r.host);
        if let Some(why) = refusal(&host, &r.endpoints, NODECONFIG_FIELD) {
            out.rejected.push(why);
            continue;
        }
        if let Some(existing) = out.registries.iter_mut().find(|d| d.host == host) {
            existing.has_auth |= r.has_auth;
            out.conflicts.push(format!(
                "{host} is declared in both the agent config and the NodeConfig; the agent config wins"
            ));
            continue;
        }
        let mut skip_verify = r.insecure_skip_verify;
        if skip_verify && !allow_skip_verify {
            skip_verify = false;
            out.conflicts.push(format!(
                "the NodeConfig asks insecure_skip_verify for {host}; ignored because registries.allow_skip_verify is false"
            ));
        }
        out.registries.push(Desired {
            host,
            source: Source::NodeConfig,
            mirrors: r
                .endpoints
                .iter()
                .map(|u| Endpoint {
                    url: u.trim_end_matches('/').to_owned(),
                    capabilities: vec!["pull".into(), "resolve".into()],
                    override_path: false,
                })
                .collect(),
            ca: r.ca_file.clone().map(|p| CaSource::File(PathBuf::from(p))),
            client: r
                .cert_file
                .clone()
                .zip(r.key_file.clone())
                .map(|(c, k)| (PathBuf::from(c), PathBuf::from(k))),
            skip_verify,
            mirror_only: false,
            system_trust: true,
            has_auth: r.has_auth,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MirrorEntry;

    fn agent_entry(host: &str) -> RegistryEntry {
        RegistryEntry {
            host: host.into(),
            mirrors: vec![MirrorEntry {
                url: "https://mirror.local:8443/".into(),
                capabilities: vec!["pull".into(), "resolve".into()],
                override_path: false,
            }],
            ca_file: Some("/etc/pki/a.pem".into()),
            ca_pem: None,
            client_cert: None,
            client_key: None,
            skip_verify: false,
            mirror_only: true,
            system_trust: true,
        }
    }

    /// Found by the `hosts_toml` fuzz target: a mirror listed twice gave
    /// two endpoints but one hosts.toml entry.
    #[test]
    fn a_mirror_listed_twice_is_one_endpoint() {
        let mut e = agent_entry("harbor.example.internal");
        e.mirrors.push(e.mirrors[0].clone());
        e.mirror_only = false;
        let m = merge(&[e], &[], false);
        let urls: Vec<String> = m.registries[0]
            .endpoints()
            .into_iter()
            .map(|e| e.url)
            .collect();
        assert_eq!(
            urls,
            [
                "https://mirror.local:8443",
                "https://harbor.example.internal"
            ]
        );
    }

    #[test]
    fn agent_config_wins_and_conflicts_are_reported() {
        let nc = vec![
            RegistryDecl {
                host: "harbor.example.internal".into(),
                endpoints: vec!["https://harbor.example.internal".into()],
                has_auth: true,
                ..RegistryDecl::default()
            },
            RegistryDecl {
                host: "*".into(),
                insecure_skip_verify: true,
                has_tls: true,
                ..RegistryDecl::default()
            },
        ];
        let m = merge(&[agent_entry("harbor.example.internal")], &nc, false);
        assert_eq!(m.registries.len(), 2);
        assert_eq!(m.registries[0].source, Source::AgentConfig);
        assert!(m.registries[0].has_auth);
        assert_eq!(m.registries[1].host, "_default");
        assert!(!m.registries[1].skip_verify);
        assert_eq!(m.conflicts.len(), 2, "{:?}", m.conflicts);
    }

    /// Security review (issue 15, findings 5 and 10): names from the
    /// NodeConfig's inline config were not validated at all (`evil/sub`
    /// nested under certs.d, `..` left it), and a mirror URL could carry a
    /// password into hosts.toml, summaries and labels.
    #[test]
    fn bad_names_and_credential_urls_are_skipped_and_named() {
        let nc: Vec<RegistryDecl> = ["evil/sub", "..", "", ".", "[..]", "ok.local"]
            .into_iter()
            .map(|h| RegistryDecl {
                host: h.into(),
                endpoints: vec!["https://mirror.local".into()],
                ..RegistryDecl::default()
            })
            .chain([RegistryDecl {
                host: "creds.local".into(),
                endpoints: vec!["https://robot:hunter2@mirror.local:8443/x".into()],
                ..RegistryDecl::default()
            }])
            .collect();
        let m = merge(&[], &nc, false);
        let hosts: Vec<&str> = m.registries.iter().map(|d| d.host.as_str()).collect();
        assert_eq!(hosts, ["ok.local"]);
        assert_eq!(m.rejected.len(), 6, "{:?}", m.rejected);
        assert!(
            m.rejected[0].starts_with(
                "registry name \"evil/sub\" from the NodeConfig spec.containerd.config"
            ),
            "{}",
            m.rejected[0]
        );
        let creds = &m.rejected[5];
        assert!(
            creds.contains("creds.local")
                && creds.contains("https://***@mirror.local:8443/x")
                && creds.contains("auth"),
            "{creds}"
        );
        assert!(!creds.contains("hunter2"), "{creds}");
        // The same rule for the agent config.
        let m = merge(&[agent_entry("..")], &[], false);
        assert!(m.registries.is_empty());
        assert!(
            m.rejected[0].contains("agent config [[registry]] host"),
            "{:?}",
            m.rejected
        );
    }

    #[test]
    fn endpoints_follow_mirror_only() {
        let m = merge(&[agent_entry("harbor.example.internal")], &[], false);
        let d = &m.registries[0];
        assert_eq!(d.endpoints().len(), 1, "mirror_only: no fallback");
        assert_eq!(d.endpoints()[0].url, "https://mirror.local:8443");
        let mut open = d.clone();
        open.mirror_only = false;
        let urls: Vec<String> = open.endpoints().into_iter().map(|e| e.url).collect();
        assert_eq!(
            urls,
            vec![
                "https://mirror.local:8443",
                "https://harbor.example.internal"
            ]
        );
    }
}

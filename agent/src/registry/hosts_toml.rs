//! containerd `hosts.toml`: rendering (gated by the containerd version) and
//! reading back.
//!
//! Facts this encodes: `[host]` entries do not inherit the root `ca`, so
//! every entry carries its own; containerd < 1.7.32 rejects a file with only
//! root-level keys, so there is always a `[host]` table; an unknown
//! capability (`referrers` before 2.2) makes containerd ignore the whole
//! file; `dial_timeout` exists from 2.0.7.

use super::desired::Desired;
use crate::model::containerd::Version;
use toml_edit::{value, Array, DocumentMut, Item, Table};

/// First line of every file the agent writes; files without it are never
/// modified or removed.
pub const MANAGED_HEADER: &str = "# Managed by hybrid-node-agent: edits are overwritten. Configure registries in the agent config or the NodeConfig.";

/// What the installed containerd understands. An unknown version is treated
/// as the oldest supported (1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub referrers: bool,
    pub dial_timeout: bool,
}

impl Features {
    pub fn of(version: Option<Version>) -> Features {
        let v = version.unwrap_or(Version(1, 6, 0));
        Features {
            referrers: v >= Version(2, 2, 0),
            dial_timeout: v >= Version(2, 0, 7),
        }
    }
}

/// A rendered hosts.toml and what had to be left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub notes: Vec<String>,
}

/// Renders the hosts.toml for `d`. `ca_path` is the absolute host path of
/// its CA file, if any.
pub fn render(d: &Desired, ca_path: Option<&str>, features: Features) -> Rendered {
    let mut notes = Vec::new();
    let mut doc = DocumentMut::new();
    let server = if d.mirror_only {
        d.mirrors.first().map(|m| m.url.clone())
    } else {
        d.upstream()
    };
    if let Some(server) = &server {
        doc.insert("server", value(server.as_str()));
    }
    let mut hosts = Table::new();
    hosts.set_implicit(true);
    for ep in d.endpoints() {
        let mut t = Table::new();
        let mut caps = Array::new();
        for c in &ep.capabilities {
            if c == "referrers" && !features.referrers {
                notes.push(format!(
                    "{}: capability \"referrers\" left out (containerd < 2.2 would ignore the whole file)",
                    ep.url
                ));
                continue;
            }
            caps.push(c.as_str());
        }
        t.insert("capabilities", value(caps));
        if let Some(ca) = ca_path {
            t.insert("ca", value(ca));
        }
        if let Some((cert, key)) = &d.client {
            let mut pair = Array::new();
            pair.push(cert.to_string_lossy().as_ref());
            pair.push(key.to_string_lossy().as_ref());
            t.insert(
                "client",
                value(Array::from_iter([toml_edit::Value::Array(pair)])),
            );
        }
        if d.skip_verify {
            t.insert("skip_verify", value(true));
        }
        if ep.override_path {
            t.insert("override_path", value(true));
        }
        hosts.insert(&ep.url, Item::Table(t));
    }
    doc.insert("host", Item::Table(hosts));
    Rendered {
        text: format!("{MANAGED_HEADER}\n{doc}"),
        notes,
    }
}

/// A hosts.toml as containerd reads it (the parts the agent writes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub server: Option<String>,
    pub hosts: Vec<ParsedHost>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedHost {
    pub url: String,
    pub capabilities: Vec<String>,
    pub ca: Vec<String>,
    pub skip_verify: bool,
}

/// A hosts.toml that is not TOML; says what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message().trim())]
pub struct NotToml(#[source] pub toml_edit::TomlError);

/// Reads a hosts.toml.
pub fn parse(text: &str) -> Result<Parsed, NotToml> {
    let doc: DocumentMut = text.parse().map_err(NotToml)?;
    let strings = |item: Option<&Item>| -> Vec<String> {
        match item {
            Some(i) if i.is_str() => i.as_str().map(|s| vec![s.to_owned()]).unwrap_or_default(),
            Some(i) => i
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let mut out = Parsed {
        server: doc.get("server").and_then(Item::as_str).map(str::to_owned),
        hosts: Vec::new(),
    };
    if let Some(hosts) = doc.get("host").and_then(Item::as_table_like) {
        for (url, h) in hosts.iter() {
            out.hosts.push(ParsedHost {
                url: url.to_owned(),
                capabilities: strings(h.get("capabilities")),
                ca: strings(h.get("ca")),
                skip_verify: h
                    .get("skip_verify")
                    .and_then(Item::as_bool)
                    .unwrap_or(false),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::desired::{Endpoint, Source};

    fn desired() -> Desired {
        Desired {
            host: "harbor.example.internal".into(),
            source: Source::AgentConfig,
            mirrors: vec![Endpoint {
                url: "https://mirror.local:8443".into(),
                capabilities: vec!["pull".into(), "resolve".into(), "referrers".into()],
                override_path: false,
            }],
            ca: None,
            client: None,
            skip_verify: false,
            mirror_only: false,
            system_trust: true,
            has_auth: false,
        }
    }

    #[test]
    fn every_host_entry_has_its_own_ca_and_round_trips() {
        let r = render(
            &desired(),
            Some("/etc/containerd/certs.d/harbor.example.internal/ca-0123.crt"),
            Features::of(None),
        );
        assert!(r.text.starts_with(MANAGED_HEADER));
        let p = parse(&r.text).expect("parses");
        assert_eq!(p.server.as_deref(), Some("https://harbor.example.internal"));
        assert_eq!(p.hosts.len(), 2);
        for h in &p.hosts {
            assert_eq!(
                h.ca,
                vec!["/etc/containerd/certs.d/harbor.example.internal/ca-0123.crt"]
            );
        }
        assert_eq!(
            p.hosts[0].capabilities,
            vec!["pull", "resolve"],
            "referrers gated on 1.6"
        );
        assert_eq!(r.notes.len(), 1);
    }

    #[test]
    fn referrers_kept_on_new_containerd_and_mirror_only_sets_server() {
        let mut d = desired();
        d.mirror_only = true;
        let r = render(&d, None, Features::of(Some(Version(2, 2, 0))));
        let p = parse(&r.text).expect("parses");
        assert_eq!(p.server.as_deref(), Some("https://mirror.local:8443"));
        assert_eq!(p.hosts.len(), 1);
        assert_eq!(
            p.hosts[0].capabilities,
            vec!["pull", "resolve", "referrers"]
        );
        assert!(r.notes.is_empty());
    }

    #[test]
    fn default_registry_has_no_server_but_a_host_table() {
        let mut d = desired();
        d.host = "_default".into();
        let r = render(&d, None, Features::of(None));
        let p = parse(&r.text).expect("parses");
        assert_eq!(p.server, None);
        assert_eq!(p.hosts.len(), 1);
    }
}

//! Reading containerd's TOML config: the CRI settings that decide whether
//! pulls and pods work, for config schema version 2 (containerd 1.x, plugin
//! `io.containerd.grpc.v1.cri`) and version 3 (containerd 2.x, plugins
//! `io.containerd.cri.v1.images` and `io.containerd.cri.v1.runtime`).

use toml_edit::{DocumentMut, Item, Table};

pub const CRI_V2: &str = "io.containerd.grpc.v1.cri";
pub const CRI_IMAGES_V3: &str = "io.containerd.cri.v1.images";
pub const CRI_RUNTIME_V3: &str = "io.containerd.cri.v1.runtime";

/// A registry declared in the legacy inline form (`registry.mirrors` /
/// `registry.configs`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryDecl {
    /// `harbor.example.internal`, `host:port`, or `_default` for `*`.
    pub host: String,
    /// Mirror endpoints, in order.
    pub endpoints: Vec<String>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub insecure_skip_verify: bool,
    /// Whether `configs.<host>.tls` is set (conflicts with `config_path`).
    pub has_tls: bool,
    /// Whether credentials are configured (never their values).
    pub has_auth: bool,
}

/// The default runtime and how it is launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFacts {
    pub name: String,
    pub runtime_type: Option<String>,
    pub binary_name: Option<String>,
    pub systemd_cgroup: Option<bool>,
}

/// A parsed containerd config with typed accessors.
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    pub doc: DocumentMut,
}

pub fn get<'a>(item: &'a Item, path: &[&str]) -> Option<&'a Item> {
    path.iter().try_fold(item, |cur, key| cur.get(key))
}

fn str_at(item: &Item, path: &[&str]) -> Option<String> {
    get(item, path).and_then(Item::as_str).map(str::to_owned)
}

impl ContainerdConfig {
    pub fn parse(text: &str) -> Result<Self, toml_edit::TomlError> {
        Ok(ContainerdConfig { doc: text.parse()? })
    }

    pub fn version(&self) -> i64 {
        self.doc
            .get("version")
            .and_then(Item::as_integer)
            .unwrap_or(1)
    }

    fn root(&self) -> &Item {
        self.doc.as_item()
    }

    /// Path of the plugin table holding `registry` and `sandbox_image`.
    fn images_plugin(&self) -> &'static str {
        if self.version() >= 3 {
            CRI_IMAGES_V3
        } else {
            CRI_V2
        }
    }

    /// Path of the plugin table holding `containerd.runtimes`.
    fn runtime_plugin(&self) -> &'static str {
        if self.version() >= 3 {
            CRI_RUNTIME_V3
        } else {
            CRI_V2
        }
    }

    fn registry(&self) -> Option<&Item> {
        get(self.root(), &["plugins", self.images_plugin(), "registry"])
    }

    pub fn config_path(&self) -> Option<String> {
        self.registry()
            .and_then(|r| r.get("config_path"))
            .and_then(Item::as_str)
            .map(str::to_owned)
    }

    pub fn sandbox_image(&self) -> Option<String> {
        if self.version() >= 3 {
            str_at(
                self.root(),
                &["plugins", CRI_IMAGES_V3, "pinned_images", "sandbox"],
            )
        } else {
            str_at(self.root(), &["plugins", CRI_V2, "sandbox_image"])
        }
    }

    /// Whether the file has any table of the CRI plugin(s): importing such a
    /// file replaces the main file's CRI settings wholesale.
    pub fn cri_tables(&self) -> Vec<&'static str> {
        [CRI_V2, CRI_IMAGES_V3, CRI_RUNTIME_V3]
            .into_iter()
            .filter(|p| get(self.root(), &["plugins", p]).is_some())
            .collect()
    }

    /// The registries declared with `registry.mirrors` / `registry.configs`.
    pub fn registries(&self) -> Vec<RegistryDecl> {
        let mut out: Vec<RegistryDecl> = Vec::new();
        let Some(registry) = self.registry() else {
            return out;
        };
        let entry = |out: &mut Vec<RegistryDecl>, host: &str| -> usize {
            match out.iter().position(|r| r.host == host) {
                Some(i) => i,
                None => {
                    out.push(RegistryDecl {
                        host: host.to_owned(),
                        ..RegistryDecl::default()
                    });
                    out.len() - 1
                }
            }
        };
        if let Some(mirrors) = registry.get("mirrors").and_then(Item::as_table_like) {
            for (host, m) in mirrors.iter() {
                let i = entry(&mut out, &normalize_host(host));
                out[i].endpoints = m
                    .get("endpoint")
                    .and_then(Item::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        if let Some(configs) = registry.get("configs").and_then(Item::as_table_like) {
            for (host, c) in configs.iter() {
                let i = entry(&mut out, &normalize_host(host));
                if let Some(tls) = c.get("tls") {
                    out[i].has_tls = true;
                    out[i].ca_file = tls.get("ca_file").and_then(Item::as_str).map(str::to_owned);
                    out[i].cert_file = tls
                        .get("cert_file")
                        .and_then(Item::as_str)
                        .map(str::to_owned);
                    out[i].key_file = tls
                        .get("key_file")
                        .and_then(Item::as_str)
                        .map(str::to_owned);
                    out[i].insecure_skip_verify = tls
                        .get("insecure_skip_verify")
                        .and_then(Item::as_bool)
                        .unwrap_or(false);
                }
                out[i].has_auth = c.get("auth").is_some();
            }
        }
        out
    }

    fn runtimes(&self) -> Option<&Item> {
        get(
            self.root(),
            &["plugins", self.runtime_plugin(), "containerd", "runtimes"],
        )
    }

    pub fn default_runtime_name(&self) -> String {
        str_at(
            self.root(),
            &[
                "plugins",
                self.runtime_plugin(),
                "containerd",
                "default_runtime_name",
            ],
        )
        .unwrap_or_else(|| "runc".to_owned())
    }

    pub fn runtime(&self, name: &str) -> Option<RuntimeFacts> {
        let r = self.runtimes()?.get(name)?;
        Some(RuntimeFacts {
            name: name.to_owned(),
            runtime_type: r
                .get("runtime_type")
                .and_then(Item::as_str)
                .map(str::to_owned),
            binary_name: get(r, &["options", "BinaryName"])
                .and_then(Item::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            systemd_cgroup: get(r, &["options", "SystemdCgroup"]).and_then(Item::as_bool),
        })
    }

    pub fn default_runtime(&self) -> Option<RuntimeFacts> {
        self.runtime(&self.default_runtime_name())
    }
}

/// `*` is containerd's catch-all; hosts.toml calls it `_default`.
pub fn normalize_host(host: &str) -> String {
    if host == "*" {
        "_default".to_owned()
    } else {
        host.to_owned()
    }
}

/// The table at `path`, created (implicitly, as dotted headers) if missing.
/// An inline table on the way (`"io.containerd.grpc.v1.cri" = {}`) becomes a
/// standard one, so keys can be added under it. `None` if something on the
/// path is not a table at all.
pub fn table_mut<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Option<&'a mut Table> {
    let mut cur: &mut Table = doc.as_table_mut();
    for key in path {
        if !cur.contains_key(key) {
            let mut t = Table::new();
            t.set_implicit(true);
            cur.insert(key, Item::Table(t));
        }
        let item = cur.get_mut(key)?;
        if let Some(inline) = item.as_inline_table() {
            *item = Item::Table(inline.clone().into_table());
            // `key = {` spacing would otherwise end up inside `[… ]`.
            if let Some(mut k) = cur.key_mut(key) {
                k.leaf_decor_mut().clear();
            }
        }
        cur = cur.get_mut(key)?.as_table_mut()?;
    }
    Some(cur)
}

/// A containerd release, from `containerd --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Parses `containerd github.com/containerd/containerd v1.7.27 <commit>`
    /// or Debian's `… 1.6.20~ds1 1.6.20~ds1-1+deb12u3`.
    pub fn from_version_output(out: &str) -> Option<Version> {
        out.split_whitespace().skip(1).find_map(|word| {
            let w = word.trim_start_matches('v');
            let mut parts = w.split(|c: char| !c.is_ascii_digit());
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            w.contains('.').then_some(Version(major, minor, patch))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `containerd_toml` fuzz target: toml_edit 0.23 panicked
    /// ("all items have spans") on this; a NodeConfig carrying it crashed
    /// `check`. Fixed by toml_edit 0.25.
    #[test]
    fn malformed_toml_is_an_error_not_a_panic() {
        let e = ContainerdConfig::parse("=={\n.").expect_err("not TOML");
        assert!(e.message().contains("expected"), "{}", e.message());
    }

    const HARBOR: &str = r#"version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."harbor.example.internal"]
  endpoint = ["https://harbor.example.internal", "https://mirror.example.internal:8443"]
[plugins."io.containerd.grpc.v1.cri".registry.configs."harbor.example.internal".auth]
  username = "robot$k8s-robot"
  password = "secret"
[plugins."io.containerd.grpc.v1.cri".registry.configs."harbor.example.internal".tls]
  ca_file = "/etc/ssl/certs/harbor-ca.crt"
  insecure_skip_verify = false
"#;

    #[test]
    fn registries_from_v2() {
        let c = ContainerdConfig::parse(HARBOR).expect("toml");
        let r = c.registries();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].host, "harbor.example.internal");
        assert_eq!(r[0].endpoints.len(), 2);
        assert_eq!(
            r[0].ca_file.as_deref(),
            Some("/etc/ssl/certs/harbor-ca.crt")
        );
        assert!(r[0].has_tls && r[0].has_auth && !r[0].insecure_skip_verify);
        assert_eq!(c.config_path().as_deref(), Some("/etc/containerd/certs.d"));
        assert_eq!(c.cri_tables(), vec![CRI_V2]);
    }

    #[test]
    fn v3_paths() {
        let text = r#"version = 3
[plugins."io.containerd.cri.v1.images".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.local"]
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "localhost/pause:3.10"
[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "nvidia"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia.options]
  BinaryName = "/usr/bin/nvidia-container-runtime"
  SystemdCgroup = true
"#;
        let c = ContainerdConfig::parse(text).expect("toml");
        assert_eq!(c.registries()[0].host, "docker.io");
        assert_eq!(c.sandbox_image().as_deref(), Some("localhost/pause:3.10"));
        let rt = c.default_runtime().expect("runtime");
        assert_eq!(
            rt.binary_name.as_deref(),
            Some("/usr/bin/nvidia-container-runtime")
        );
        assert_eq!(rt.systemd_cgroup, Some(true));
    }

    #[test]
    fn default_runtime_defaults_to_runc() {
        let c = ContainerdConfig::parse("version = 2\n").expect("toml");
        assert_eq!(c.default_runtime_name(), "runc");
        assert!(c.default_runtime().is_none());
        assert!(c.cri_tables().is_empty());
    }
}

//! `render`: the corrected NodeConfig `containerd.config` and the hosts.toml
//! files that replace its legacy registry settings. Pure functions: nothing
//! here touches the host.

use super::effective::NODEADM_CONFIG_PATH;
use crate::model::containerd::{
    get, table_mut, ContainerdConfig, RegistryDecl, CRI_IMAGES_V3, CRI_V2,
};
use toml_edit::{value, DocumentMut, Item, Table};

/// A corrected `containerd.config`.
#[derive(Debug, Clone)]
pub struct Corrected {
    pub text: String,
    /// Registries whose mirrors/TLS settings moved to hosts.toml.
    pub moved: Vec<RegistryDecl>,
    /// What was added back, one line each.
    pub restored: Vec<String>,
    /// What was rewritten so every containerd line loads it (version 3 as
    /// version 2, TOML 1.1 syntax as TOML 1.0), one line each.
    pub rewritten: Vec<String>,
}

/// Why a `containerd.config` could not be corrected.
#[derive(Debug, thiserror::Error)]
pub enum CorrectError {
    /// It is not TOML.
    #[error("{}", .0.message().trim())]
    NotToml(#[source] toml_edit::TomlError),
    /// The CRI plugin entry is a value, not a table, so nodeadm's settings
    /// cannot be put back into it.
    #[error("the CRI plugin entry is not a table")]
    CriNotATable,
}

/// nodeadm settings an imported CRI table must repeat. `sandbox_image` is
/// passed in when known (from the host's live config).
pub fn correct(inline: &str, sandbox_image: Option<&str>) -> Result<Corrected, CorrectError> {
    let parsed = ContainerdConfig::parse(inline).map_err(CorrectError::NotToml)?;
    let moved: Vec<RegistryDecl> = parsed
        .registries()
        .into_iter()
        .filter(|r| !r.endpoints.is_empty() || r.has_tls)
        .collect();
    let v3 = parsed.version() >= 3;
    let mut doc = parsed.doc;
    let images = if v3 { CRI_IMAGES_V3 } else { CRI_V2 };
    remove_legacy_registry(&mut doc, images);
    // Every line must load it: version 2 (1.7 refuses 3, 1.6 ignores it, 2.x
    // beside nodeadm's version 2 main file loses nodeadm's settings), and
    // nothing go-toml v1 rejects.
    let mut rewritten = super::downgrade::to_v2(&mut doc);
    let mut moved = moved;
    if v3 {
        // Tables under version 2's CRI path were inert in a version 3 file;
        // written as version 2 they take effect: move them out too, so the
        // correction is final in one pass.
        if let Ok(now_v2) = ContainerdConfig::parse(&doc.to_string()) {
            for r in now_v2.registries() {
                if (!r.endpoints.is_empty() || r.has_tls) && !moved.iter().any(|m| m.host == r.host)
                {
                    moved.push(r);
                }
            }
        }
        remove_legacy_registry(&mut doc, CRI_V2);
    }
    if super::downgrade::to_toml10(&mut doc) {
        rewritten.push(
            "TOML 1.1 syntax written as TOML 1.0 (containerd 1.x's parser rejects it)".to_owned(),
        );
    }
    let has_cri = ContainerdConfig::parse(&doc.to_string())
        .map(|c| !c.cri_tables().is_empty())
        .unwrap_or(false);

    let mut restored = Vec::new();
    if has_cri {
        restore_nodeadm(&mut doc, sandbox_image, &mut restored)?;
    }
    Ok(Corrected {
        text: doc.to_string(),
        moved,
        restored,
        rewritten,
    })
}

fn remove_legacy_registry(doc: &mut DocumentMut, plugin: &str) {
    // Look before reaching in: `get_mut` on a table inserts missing keys.
    if get(doc.as_item(), &["plugins", plugin, "registry"]).is_none() {
        return;
    }
    let Some(registry) = doc
        .get_mut("plugins")
        .and_then(|p| p.get_mut(plugin))
        .and_then(|p| p.get_mut("registry"))
        .and_then(Item::as_table_like_mut)
    else {
        return;
    };
    registry.remove("mirrors");
    let mut empty_configs = false;
    if let Some(configs) = registry
        .get_mut("configs")
        .and_then(Item::as_table_like_mut)
    {
        let hosts: Vec<String> = configs.iter().map(|(k, _)| k.to_owned()).collect();
        for host in hosts {
            if let Some(c) = configs.get_mut(&host).and_then(Item::as_table_like_mut) {
                c.remove("tls");
                if c.is_empty() {
                    configs.remove(&host);
                }
            }
        }
        empty_configs = configs.is_empty();
    }
    if empty_configs {
        registry.remove("configs");
    }
}

/// Inserts `key = item` into `table`, indented like the keys already there,
/// so the user's layout is kept.
fn insert_like_siblings(table: &mut Table, key: &str, item: Item) {
    let prefix = table
        .iter()
        .next()
        .and_then(|(k, _)| table.key(k))
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|p| p.as_str())
        .map(str::to_owned);
    table.insert(key, item);
    if let (Some(prefix), Some(mut k)) = (prefix, table.key_mut(key)) {
        k.leaf_decor_mut().set_prefix(prefix);
    }
}

fn restore_nodeadm(
    doc: &mut DocumentMut,
    sandbox_image: Option<&str>,
    restored: &mut Vec<String>,
) -> Result<(), CorrectError> {
    let missing = |doc: &DocumentMut, path: &[&str]| get(doc.as_item(), path).is_none();
    let cri = ["plugins", CRI_V2];
    let err = || CorrectError::CriNotATable;

    if missing(doc, &["plugins", CRI_V2, "registry", "config_path"]) {
        let registry = table_mut(doc, &[&cri[..], &["registry"]].concat()).ok_or_else(err)?;
        insert_like_siblings(registry, "config_path", value(NODEADM_CONFIG_PATH));
        restored.push(format!("registry.config_path = {NODEADM_CONFIG_PATH:?}"));
    }
    if let Some(image) = sandbox_image {
        if missing(doc, &["plugins", CRI_V2, "sandbox_image"]) {
            let plugin = table_mut(doc, &cri).ok_or_else(err)?;
            insert_like_siblings(plugin, "sandbox_image", value(image));
            restored.push(format!("sandbox_image = {image:?}"));
        }
    }
    if missing(doc, &["plugins", CRI_V2, "containerd", "runtimes", "runc"]) {
        let runc = table_mut(
            doc,
            &[&cri[..], &["containerd", "runtimes", "runc"]].concat(),
        )
        .ok_or_else(err)?;
        runc.insert("runtime_type", value("io.containerd.runc.v2"));
        restored.push("runtimes.runc (io.containerd.runc.v2)".to_owned());
    }
    // Every runc-based runtime must use the systemd cgroup driver, like the kubelet.
    let names: Vec<String> = get(
        doc.as_item(),
        &["plugins", CRI_V2, "containerd", "runtimes"],
    )
    .and_then(Item::as_table_like)
    .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect())
    .unwrap_or_default();
    for name in names {
        let rt = get(
            doc.as_item(),
            &["plugins", CRI_V2, "containerd", "runtimes", &name],
        );
        let runc_based = rt
            .and_then(|r| r.get("runtime_type"))
            .and_then(Item::as_str)
            .is_none_or(|t| t == "io.containerd.runc.v2");
        let has = rt
            .and_then(|r| get(r, &["options", "SystemdCgroup"]))
            .is_some();
        if runc_based && !has {
            let options = table_mut(
                doc,
                &[&cri[..], &["containerd", "runtimes", &name, "options"]].concat(),
            )
            .ok_or_else(err)?;
            insert_like_siblings(options, "SystemdCgroup", value(true));
            restored.push(format!("runtimes.{name}.options.SystemdCgroup = true"));
        }
    }
    if missing(doc, &["plugins", CRI_V2, "cni"]) {
        let cni = table_mut(doc, &[&cri[..], &["cni"]].concat()).ok_or_else(err)?;
        cni.insert("bin_dir", value("/opt/cni/bin"));
        cni.insert("conf_dir", value("/etc/cni/net.d"));
        restored.push("cni.bin_dir/conf_dir".to_owned());
    }
    Ok(())
}

/// Replaces every credential value with a placeholder, for display. The
/// TOML is parsed and walked ([`super::secrets`]), so dotted keys, quoted
/// keys, odd spacing and multi-line strings are all caught; text that does
/// not parse is not shown at all rather than shown unredacted.
pub fn redact_credentials(text: &str) -> String {
    match text.parse::<DocumentMut>() {
        Ok(mut doc) => {
            super::secrets::redact(&mut doc);
            doc.to_string()
        }
        Err(_) => "# (not shown: it is not valid TOML, so its credentials cannot be redacted)\n"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARBOR: &str = r#"version = 2

[plugins."io.containerd.grpc.v1.cri"]
  # keep this comment
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."harbor.example.internal"]
      endpoint = ["https://harbor.example.internal"]

  [plugins."io.containerd.grpc.v1.cri".registry.configs]
    [plugins."io.containerd.grpc.v1.cri".registry.configs."harbor.example.internal".auth]
      username = "robot$k8s-robot"
      password = "s3cr3t"
    [plugins."io.containerd.grpc.v1.cri".registry.configs."harbor.example.internal".tls]
      ca_file = "/etc/ssl/certs/harbor-ca.crt"
      insecure_skip_verify = false
"#;

    #[test]
    fn harbor_is_corrected() {
        let c = correct(HARBOR, None).expect("correct");
        let again = ContainerdConfig::parse(&c.text).expect("valid TOML");
        assert!(!c.text.contains("mirrors"), "{}", c.text);
        assert!(!c.text.contains(".tls"), "{}", c.text);
        assert!(c.text.contains("# keep this comment"));
        assert!(
            c.text.contains("username = \"robot$k8s-robot\""),
            "auth stays"
        );
        assert_eq!(again.config_path().as_deref(), Some(NODEADM_CONFIG_PATH));
        let runc = again.runtime("runc").expect("runc restored");
        assert_eq!(runc.systemd_cgroup, Some(true));
        assert_eq!(c.moved.len(), 1);
        assert_eq!(
            c.moved[0].ca_file.as_deref(),
            Some("/etc/ssl/certs/harbor-ca.crt")
        );
        assert!(!c.restored.is_empty());
    }

    #[test]
    fn nvidia_runtime_gets_systemd_cgroup() {
        let gpu = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"nvidia\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia.options]\n  BinaryName = \"/usr/bin/nvidia-container-runtime\"\n";
        let c = correct(gpu, Some("pause:3.10")).expect("correct");
        let again = ContainerdConfig::parse(&c.text).expect("valid");
        let rt = again.default_runtime().expect("nvidia");
        assert_eq!(rt.systemd_cgroup, Some(true));
        assert_eq!(
            rt.binary_name.as_deref(),
            Some("/usr/bin/nvidia-container-runtime")
        );
        assert_eq!(again.sandbox_image().as_deref(), Some("pause:3.10"));
        // The user's lines are kept verbatim; added keys follow their layout.
        assert!(
            c.text.contains("  default_runtime_name = \"nvidia\"\n"),
            "{}",
            c.text
        );
        assert!(
            c.text.contains(
                "  BinaryName = \"/usr/bin/nvidia-container-runtime\"\n  SystemdCgroup = true\n"
            ),
            "{}",
            c.text
        );
    }

    /// Found by the `containerd_toml` fuzz target: looking for the legacy
    /// registry tables added an empty CRI table to a config that had none.
    #[test]
    fn looking_for_legacy_tables_adds_nothing() {
        let text = "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[plugins.\"io.containerd>grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";
        let c = correct(text, Some("localhost/kubernetes/pause")).expect("corrects");
        assert_eq!(c.text, text);
    }

    /// Found by the same target: a CRI plugin written as an inline table
    /// could not be corrected ("not a table"), though containerd accepts it.
    #[test]
    fn inline_cri_table_is_corrected() {
        let text =
            "version = 2\n[plugins]\n\"io.containerd.grpc.v1.cri\" = { sandbox_image = \"x\" }\n";
        let c = correct(text, None).expect("corrects");
        let again = correct(&c.text, None).expect("the correction parses");
        assert_eq!(again.text, c.text, "correcting twice changes nothing");
        let parsed = ContainerdConfig::parse(&c.text).expect("valid TOML");
        assert_eq!(parsed.sandbox_image().as_deref(), Some("x"));
        assert!(
            c.restored.iter().any(|r| r.contains("config_path")),
            "{:?}",
            c.restored
        );
        assert!(
            c.text.contains("[plugins.\"io.containerd.grpc.v1.cri\"]\n"),
            "{}",
            c.text
        );
    }

    #[test]
    fn config_without_cri_tables_is_left_alone() {
        let text = "version = 2\n[debug]\n  level = \"debug\"\n";
        let c = correct(text, None).expect("correct");
        assert_eq!(c.text, text);
        assert!(c.restored.is_empty());
    }

    /// Security review (issue 15, finding 6): the line-by-line redaction
    /// missed dotted keys, a tab before `=`, quoted keys and multi-line
    /// strings; `render` printed those passwords in clear.
    #[test]
    fn every_credential_spelling_is_redacted_for_display() {
        let text = "version = 2\n\
[plugins.\"io.containerd.grpc.v1.cri\".registry]\n\
  configs.\"h\".auth.password = \"dotted-pw-1\"\n\
[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"h2\"]\n\
  auth.password = \"dotted-pw-2\"\n\
[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"h3\".auth]\n\
  username = \"robot$k8s\"\n\
  password\t= \"tab-pw-3\"\n\
  'identitytoken' = \"quoted-token-4\"\n\
  auth = \"\"\"\nbXVsdGk6\nline-pw-5\"\"\"\n";
        let out = redact_credentials(text);
        for s in [
            "dotted-pw-1",
            "dotted-pw-2",
            "tab-pw-3",
            "quoted-token-4",
            "line-pw-5",
            "bXVsdGk6",
        ] {
            assert!(!out.contains(s), "{s} shown:\n{out}");
        }
        assert!(out.contains("username = \"robot$k8s\""), "{out}");
        assert_eq!(
            out.matches(super::super::secrets::PLACEHOLDER).count(),
            5,
            "{out}"
        );
        assert!(!redact_credentials("password = \"unterminated").contains("unterminated"));
    }

    #[test]
    fn credentials_are_redacted_for_display() {
        let out = redact_credentials("[a]\n  username = \"u\"\n  password = \"s3cr3t\"\n");
        assert!(!out.contains("s3cr3t"));
        assert!(out.contains("username = \"u\""));
        assert!(out.ends_with('\n'));
    }

    /// Found by the `containerd_toml` fuzz target: a version 3 file with
    /// legacy registry tables under version 2's CRI path. Written as version
    /// 2 they take effect, so they must be moved out in the same pass: a
    /// second correction changes nothing.
    #[test]
    fn a_v3_file_with_v2_registry_tables_is_corrected_in_one_pass() {
        let text = "version = 3\n\
            [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"harbor.example.internal\"]\n\
            endpoint = [\"https://mirror.local:8443\"]\n\
            [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\n\
            runtime_type = \"io.containerd.runc.v2\"\n";
        let once = correct(text, Some("localhost/kubernetes/pause")).expect("corrects");
        assert!(!once.text.contains("registry.mirrors"), "{}", once.text);
        assert!(
            once.moved
                .iter()
                .any(|r| r.host == "harbor.example.internal"),
            "{:?}",
            once.moved
        );
        let twice = correct(&once.text, Some("localhost/kubernetes/pause")).expect("corrects");
        assert_eq!(twice.text, once.text);
        assert!(twice.moved.is_empty());
    }
}

//! The *effective* containerd configuration — what the daemon will actually
//! run with after merging imports. The traps in it that silently break
//! pulls or the CRI plugin are judged in [`super::checks`].
//!
//! Ground truth is `containerd --config <private copy> config dump`, which
//! merges imports exactly as the daemon does; without a containerd binary
//! the agent applies containerd 1.x's import rule itself: a plugin table in
//! an imported file *replaces* the main file's table for that plugin.

use super::secrets;
use crate::host::Host;
use crate::model::containerd::ContainerdConfig;
use std::path::Path;
use toml_edit::{DocumentMut, Item, Table};

pub const DOMAIN: &str = crate::check::names::CONTAINERD;

/// containerd's main config file.
pub const MAIN_CONFIG: &str = "/etc/containerd/config.toml";
/// Where hybrid nodeadm writes the NodeConfig's `containerd.config`.
pub const NODEADM_IMPORT: &str = "/etc/containerd/config.d/00-nodeadm.toml";
/// The `config_path` hybrid nodeadm sets.
pub const NODEADM_CONFIG_PATH: &str = super::nodeadm::CONFIG_PATH;

/// The main `config.toml` hybrid nodeadm writes ([`super::nodeadm`]),
/// `imports` pointing at the import directory in use. Its `sandbox_image`
/// is region-specific and only known after init: the projection uses
/// [`super::nodeadm::PROJECTED_SANDBOX_IMAGE`], the live analysis the real one.
pub fn nodeadm_main_config(imports_glob: &str) -> String {
    super::nodeadm::main_config(imports_glob, super::nodeadm::PROJECTED_SANDBOX_IMAGE)
}

pub use crate::edge::containerd::{Binary, ContainerdTool, DumpError};
pub use crate::model::containerd::Version;

/// Why the host's containerd configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {reason}")]
    NotToml { path: String, reason: String },
}

/// The files containerd would load: a main config and its imports, in order.
#[derive(Debug, Clone)]
pub struct ConfigSet {
    /// Where the files came from, for messages.
    pub origin: Origin,
    pub main: String,
    /// (host path, contents)
    pub imports: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// nodeadm's main config plus the NodeConfig's `containerd.config`, as
    /// `nodeadm init` would write them.
    Projected,
    /// The files under `/etc/containerd` on the host.
    Live,
}

impl ConfigSet {
    /// What `nodeadm init` would write for this NodeConfig `containerd.config`.
    pub fn projected(inline: Option<&str>) -> ConfigSet {
        ConfigSet {
            origin: Origin::Projected,
            main: nodeadm_main_config("/etc/containerd/config.d/*.toml"),
            imports: inline
                .map(|t| vec![(NODEADM_IMPORT.to_owned(), t.to_owned())])
                .unwrap_or_default(),
        }
    }

    /// The host's `config.toml` and the files its `imports` name.
    pub fn live(host: &Host, config_dir: &str) -> Result<Option<ConfigSet>, LiveError> {
        let main_path = format!("{}/config.toml", config_dir.trim_end_matches('/'));
        let main = match std::fs::read_to_string(host.path(&main_path)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LiveError::Read {
                    path: main_path,
                    source,
                })
            }
        };
        let parsed = ContainerdConfig::parse(&main).map_err(|e| LiveError::NotToml {
            path: main_path.clone(),
            reason: e.message().trim().to_owned(),
        })?;
        let mut imports = Vec::new();
        for pattern in import_patterns(&parsed.doc) {
            for path in expand_glob(host, &pattern) {
                let text = std::fs::read_to_string(host.path(&path)).map_err(|source| {
                    LiveError::Read {
                        path: path.clone(),
                        source,
                    }
                })?;
                imports.push((path, text));
            }
        }
        Ok(Some(ConfigSet {
            origin: Origin::Live,
            main,
            imports,
        }))
    }
}

fn import_patterns(doc: &DocumentMut) -> Vec<String> {
    doc.get("imports")
        .and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Expands a `dir/*.toml`-style pattern (a `*` in the file name only, as
/// containerd's imports use) under the host root, sorted like Go's Glob.
fn expand_glob(host: &Host, pattern: &str) -> Vec<String> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or((".", pattern));
    if !name.contains('*') {
        return if host.exists(pattern) {
            vec![pattern.to_owned()]
        } else {
            vec![]
        };
    }
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let mut out: Vec<String> = std::fs::read_dir(host.path(dir))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with(prefix) && n.ends_with(suffix) && n.len() >= prefix.len() + suffix.len()
        })
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

/// How the effective config was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Dump { version: Option<Version> },
    Builtin { why: String },
}

/// The effective config and what it was computed from.
#[derive(Debug, Clone)]
pub struct Effective {
    pub config: ContainerdConfig,
    pub method: Method,
}

/// Why there is no effective config: containerd will not load these files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectiveError {
    /// A file is not TOML at all (toml_edit, which accepts more than any
    /// containerd, rejects it).
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    /// The containerd binary refused the config (`config dump` failed the
    /// way the daemon fails to start); `message` is containerd's own error,
    /// with the scratch copy's paths replaced by the real ones.
    #[error("{message}")]
    Refused {
        version: Option<Version>,
        message: String,
    },
}

/// Merges `set` into the effective config: with the containerd binary if
/// there is one, else with the built-in rule.
pub fn effective(
    set: &ConfigSet,
    tool: Option<&dyn ContainerdTool>,
) -> Result<Effective, EffectiveError> {
    let syntax = |path: &str, e: toml_edit::TomlError| EffectiveError::Syntax {
        path: path.to_owned(),
        message: e.message().trim().to_owned(),
    };
    let main = ContainerdConfig::parse(&set.main).map_err(|e| syntax(MAIN_CONFIG, e))?;
    let mut imports = Vec::with_capacity(set.imports.len());
    for (path, text) in &set.imports {
        imports.push(ContainerdConfig::parse(text).map_err(|e| syntax(path, e))?);
    }
    let why = match tool {
        Some(tool) => match dump_with(set, tool) {
            Ok(text) => {
                let config = ContainerdConfig::parse(&text)
                    .map_err(|e| syntax("`config dump` output", e))?;
                return Ok(Effective {
                    config,
                    method: Method::Dump {
                        version: tool.version(),
                    },
                });
            }
            Err(DumpError::Refused(message)) => {
                return Err(EffectiveError::Refused {
                    version: tool.version(),
                    message,
                })
            }
            Err(e) => e.to_string(),
        },
        None => "no containerd binary on PATH".to_owned(),
    };
    Ok(Effective {
        config: merge(&main, &imports),
        method: Method::Builtin { why },
    })
}

/// Writes the set to a private temp dir, with `imports` pointing there, and
/// asks containerd to merge it. `check` and `apply` also run by hand under a
/// umask of 022, so the directory (0700) and files (0600) get their modes
/// explicitly; the copies carry no credentials either (the dump does not
/// need them), in case the directory is ever readable after all.
fn dump_with(set: &ConfigSet, tool: &dyn ContainerdTool) -> Result<String, DumpError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let scratch = |e: String| DumpError::Scratch(e);
    let dir = tempfile::Builder::new()
        .prefix("hna-containerd-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| scratch(format!("cannot create a temp dir: {e}")))?;
    let import_dir = dir.path().join("config.d");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&import_dir)
        .map_err(|e| scratch(format!("cannot create a temp dir: {e}")))?;
    let mut main: DocumentMut = set
        .main
        .parse()
        .map_err(|e: toml_edit::TomlError| scratch(e.message().to_owned()))?;
    let mut files = toml_edit::Array::new();
    // (scratch path, real path) for containerd's messages.
    let mut names = Vec::new();
    for (i, (real, text)) in set.imports.iter().enumerate() {
        let path = import_dir.join(format!("{i:02}.toml"));
        let mut doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| scratch(e.message().to_owned()))?;
        secrets::redact(&mut doc);
        write_private(&path, &doc.to_string()).map_err(scratch)?;
        let scratch_name = path.to_string_lossy().into_owned();
        names.push((scratch_name.clone(), real.clone()));
        files.push(scratch_name);
    }
    main.insert("imports", toml_edit::value(files));
    secrets::redact(&mut main);
    let main_path = dir.path().join("config.toml");
    write_private(&main_path, &main.to_string()).map_err(scratch)?;
    names.push((
        main_path.to_string_lossy().into_owned(),
        MAIN_CONFIG.to_owned(),
    ));
    tool.dump(&main_path).map_err(|e| match e {
        DumpError::Refused(mut message) => {
            for (scratch, real) in &names {
                message = message.replace(scratch.as_str(), real);
            }
            DumpError::Refused(message)
        }
        e => e,
    })
}

/// Creates `path` (new, mode 0600 whatever the umask) and writes `text`.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// containerd 1.x's import rule: top-level tables merge key by key, but each
/// entry under `plugins` is replaced whole by the last file that has it.
pub fn merge(main: &ContainerdConfig, imports: &[ContainerdConfig]) -> ContainerdConfig {
    let mut out = main.doc.clone();
    for import in imports {
        for (key, item) in import.doc.iter() {
            match key {
                "version" | "imports" => {}
                "plugins" => {
                    let Some(src) = item.as_table_like() else {
                        continue;
                    };
                    let dst = out
                        .entry("plugins")
                        .or_insert_with(|| Item::Table(Table::new()));
                    if let Some(dst) = dst.as_table_like_mut() {
                        for (plugin, value) in src.iter() {
                            dst.insert(plugin, value.clone());
                        }
                    }
                }
                _ => match (out.get_mut(key), item) {
                    (Some(Item::Table(d)), Item::Table(s)) => merge_table(d, s),
                    _ => {
                        out.insert(key, item.clone());
                    }
                },
            }
        }
    }
    ContainerdConfig { doc: out }
}

/// Tables merge key by key, recursively; anything else is replaced.
fn merge_table(dst: &mut Table, src: &Table) {
    for (k, v) in src.iter() {
        match (dst.get_mut(k), v) {
            (Some(Item::Table(d)), Item::Table(s)) => merge_table(d, s),
            _ => {
                dst.insert(k, v.clone());
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A GPU node's containerd.config: the NVIDIA runtime as default.
    pub(crate) const GPU: &str = r#"version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "nvidia"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
      BinaryName = "/usr/bin/nvidia-container-runtime"
"#;
    /// Records what `containerd config dump` would be able to see.
    #[derive(Debug, Default)]
    struct Spy {
        seen: std::sync::Mutex<Vec<(String, u32, String)>>,
    }

    impl ContainerdTool for Spy {
        fn version(&self) -> Option<Version> {
            None
        }
        fn dump(&self, main: &Path) -> Result<String, DumpError> {
            use std::os::unix::fs::PermissionsExt;
            let fail = |e: String| DumpError::Scratch(e);
            let mut seen = self.seen.lock().map_err(|e| fail(e.to_string()))?;
            let dir = main.parent().ok_or_else(|| fail("no parent".into()))?;
            for p in [
                dir.to_owned(),
                dir.join("config.d"),
                main.to_owned(),
                dir.join("config.d/00.toml"),
            ] {
                let mode = std::fs::metadata(&p)
                    .map_err(|e| fail(e.to_string()))?
                    .permissions()
                    .mode();
                let text = if p.is_file() {
                    std::fs::read_to_string(&p).map_err(|e| fail(e.to_string()))?
                } else {
                    String::new()
                };
                seen.push((p.display().to_string(), mode & 0o777, text));
            }
            std::fs::read_to_string(main).map_err(|e| fail(e.to_string()))
        }
    }

    /// Security review (issue 15, finding 1): the scratch copy for
    /// `containerd config dump` was world-readable under umask 022 and held
    /// the registry password; other users could read it while `check` ran.
    #[test]
    fn the_dump_copy_is_private_and_holds_no_credentials() {
        let inline = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"h\".auth]\n  username = \"robot$u\"\n  password = \"hunter2-s3cr3t\"\n";
        let spy = Spy::default();
        effective(&ConfigSet::projected(Some(inline)), Some(&spy)).expect("effective");
        let seen = spy.seen.lock().expect("lock");
        assert_eq!(seen.len(), 4, "{seen:?}");
        for (path, mode, text) in seen.iter() {
            assert_eq!(mode & 0o077, 0, "{path} is {mode:o}: readable by others");
            assert!(
                !text.contains("hunter2-s3cr3t"),
                "{path} holds the password"
            );
        }
        assert!(
            seen[3].2.contains("robot$u"),
            "the rest of the import is kept: {}",
            seen[3].2
        );
    }

    #[test]
    fn versions_parse() {
        assert_eq!(
            Version::from_version_output(
                "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
            ),
            Some(Version(1, 6, 20))
        );
        assert_eq!(
            Version::from_version_output("containerd containerd.io v2.1.4 75cb2b7193e4"),
            Some(Version(2, 1, 4))
        );
        assert_eq!(Version::from_version_output("garbage"), None);
    }

    #[test]
    fn builtin_merge_replaces_plugin_tables() {
        let set = ConfigSet::projected(Some(GPU));
        let eff = effective(&set, None).expect("effective");
        assert!(matches!(eff.method, Method::Builtin { .. }));
        assert_eq!(eff.config.config_path(), None);
        assert_eq!(eff.config.default_runtime_name(), "nvidia");
        // Top-level tables of the main file survive.
        assert!(eff.config.doc.get("grpc").is_some());
    }

    #[test]
    fn live_imports_follow_the_glob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        std::fs::create_dir_all(host.path("/etc/containerd/config.d")).expect("mkdir");
        std::fs::write(
            host.path("/etc/containerd/config.toml"),
            nodeadm_main_config("/etc/containerd/config.d/*.toml"),
        )
        .expect("write");
        std::fs::write(
            host.path("/etc/containerd/config.d/10-b.toml"),
            "version = 2\n",
        )
        .expect("write");
        std::fs::write(
            host.path("/etc/containerd/config.d/00-a.toml"),
            "version = 2\n",
        )
        .expect("write");
        std::fs::write(host.path("/etc/containerd/config.d/notes.txt"), "x").expect("write");
        let set = ConfigSet::live(&host, "/etc/containerd")
            .expect("read")
            .expect("present");
        let names: Vec<_> = set.imports.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "/etc/containerd/config.d/00-a.toml",
                "/etc/containerd/config.d/10-b.toml"
            ]
        );
        assert!(
            ConfigSet::live(&Host::new(dir.path().join("none")), "/etc/containerd")
                .expect("ok")
                .is_none()
        );
    }
}

//! The *effective* containerd configuration — what the daemon will actually
//! run with after merging imports — and the traps in it that silently break
//! pulls or the CRI plugin.
//!
//! Ground truth is `containerd --config <private copy> config dump`, which
//! merges imports exactly as the daemon does; without a containerd binary
//! the agent applies containerd 1.x's import rule itself: a plugin table in
//! an imported file *replaces* the main file's table for that plugin.

use super::secrets;
use crate::check::{Check, Status};
use crate::host::Host;
use crate::model::containerd::{ContainerdConfig, CRI_V2};
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

/// What the analysis needs besides the config set.
#[derive(Debug)]
pub struct Context<'a> {
    pub host: &'a Host,
    pub tool: Option<&'a dyn ContainerdTool>,
}

/// Every containerd check for a config set.
pub fn analyze(set: &ConfigSet, ctx: &Context<'_>) -> Vec<Check> {
    let source = match set.origin {
        Origin::Projected => "as nodeadm init would write it",
        Origin::Live => "on the host",
    };
    let eff = match effective(set, ctx.tool) {
        Ok(e) => e,
        Err(e @ EffectiveError::Syntax { .. }) => {
            return vec![Check::new(
                DOMAIN,
                "effective_config",
                Status::Fail,
                format!("cannot compute the effective containerd config ({source}): {e}"),
            )
            .with_remedy("fix the TOML syntax; containerd will not start with this config")];
        }
        Err(EffectiveError::Refused { version, message }) => {
            let which =
                version.map_or_else(|| "containerd".to_owned(), |v| format!("containerd {v}"));
            let mut checks = vec![Check::new(
                DOMAIN,
                "effective_config",
                Status::Fail,
                format!("{which} will not start with this config ({source}): {message}"),
            )
            .with_remedy(refused_remedy(set))];
            checks.push(schema_check(set, version));
            return checks;
        }
    };
    let main = ContainerdConfig::parse(&set.main).ok();
    // The dump already asked containerd for its version.
    let version = match &eff.method {
        Method::Dump { version } => *version,
        Method::Builtin { .. } => ctx.tool.and_then(|t| t.version()),
    };
    let mut checks = Vec::new();

    checks.push(match &eff.method {
        Method::Dump { version } => Check::pass(
            DOMAIN,
            "effective_config",
            format!(
                "containerd{} loads this config ({source}); effective config from `containerd config dump`",
                version.map(|v| format!(" {v}")).unwrap_or_default()
            ),
        ),
        Method::Builtin { why } => builtin_verdict(set, source, why),
    });
    checks.push(schema_check(set, version));

    // Trap 1: mirrors / configs.*.tls beside config_path.
    let config_path = eff.config.config_path().filter(|p| !p.is_empty());
    let registries = eff.config.registries();
    let mirrors: Vec<&str> = registries
        .iter()
        .filter(|r| !r.endpoints.is_empty())
        .map(|r| r.host.as_str())
        .collect();
    let tls: Vec<&str> = registries
        .iter()
        .filter(|r| r.has_tls)
        .map(|r| r.host.as_str())
        .collect();
    checks.push(match (&config_path, mirrors.is_empty() && tls.is_empty()) {
        (Some(path), false) => {
            let mut what = Vec::new();
            if !mirrors.is_empty() {
                what.push(format!("registry.mirrors ({})", mirrors.join(", ")));
            }
            if !tls.is_empty() {
                what.push(format!("registry.configs.*.tls ({})", tls.join(", ")));
            }
            Check::new(
                DOMAIN,
                "registry_conflict",
                Status::Fail,
                format!(
                    "{} set together with config_path = {path:?}: the CRI plugin refuses to load \
                     (\"`mirrors` cannot be set when `config_path` is provided\") and no pod can start",
                    what.join(" and ")
                ),
            )
            .with_remedy(
                "move the registry settings to /etc/containerd/certs.d/<host>/hosts.toml and remove them \
                 from containerd.config (`hybrid-node-agent render --nodeconfig FILE` prints both)",
            )
        }
        _ => Check::pass(DOMAIN, "registry_conflict", "no legacy registry.mirrors/configs.tls beside config_path"),
    });

    // Trap 2: an imported CRI table replacing the main file's settings.
    checks.push(import_override(set, main.as_ref(), &eff.config));

    // Trap 3: colon-separated config_path on containerd >= 2.1, when the
    // CRI plugin pulls through the transfer service.
    let pull_path = version.map(|v| super::transfer::cri_pull_path(&eff.config, v));
    checks.push(match (&config_path, version, pull_path) {
        (Some(path), Some(v), Some(super::transfer::PullPath::Transfer)) if path.contains(':') => Check::new(
            DOMAIN,
            "config_path_transfer",
            Status::Fail,
            format!(
                "containerd {v} pulls through the transfer service (none of the options that make it fall back \
                 to its local pull is set), which takes the colon-separated config_path {path:?} as one \
                 directory: hosts.toml files are not used for pulls"
            ),
        )
        .with_remedy("use a single directory in config_path (/etc/containerd/certs.d)"),
        (Some(path), Some(v), Some(super::transfer::PullPath::LocalBecause(why))) if path.contains(':') => Check::pass(
            DOMAIN,
            "config_path_transfer",
            format!(
                "containerd {v} pulls without the transfer service here ({why}), so the colon-separated \
                 config_path {path:?} is honoured; a single directory keeps it so if that option goes"
            ),
        ),
        (Some(path), None, _) if path.contains(':') => Check::new(
            DOMAIN,
            "config_path_transfer",
            Status::NotApplicable,
            "containerd version unknown (no binary): a colon-separated config_path only breaks on containerd >= 2.1",
        ),
        _ => Check::pass(DOMAIN, "config_path_transfer", "config_path is honoured for pulls"),
    });

    // Trap 4: the default runtime's binary.
    checks.push(runtime_binary(&eff.config, ctx.host));
    checks
}

/// Without a containerd binary nobody can say the config loads: the
/// verdict is unknown, unless go-toml v1's rules already say 1.x refuses it.
fn builtin_verdict(set: &ConfigSet, source: &str, why: &str) -> Check {
    let findings: Vec<String> = files(set)
        .flat_map(|(path, text)| {
            super::loadability::gotoml_v1_rejects(text)
                .into_iter()
                .map(move |f| format!("{path} {f}"))
        })
        .collect();
    if findings.is_empty() {
        return Check::new(
            DOMAIN,
            "effective_config",
            Status::Unknown,
            format!(
                "whether containerd loads this config ({source}) is unknown ({why}); effective config \
                 computed with containerd 1.x's import rule, and the TOML is strict TOML 1.0"
            ),
        )
        .with_remedy("install containerd (or set [containerd] binary) so the agent can ask it");
    }
    Check::new(
        DOMAIN,
        "effective_config",
        Status::Fail,
        format!(
            "containerd 1.6/1.7 will not start with this config ({source}; {why}): their TOML parser \
             (go-toml v1) rejects {}; containerd 2.1 accepts it",
            findings.join("; ")
        ),
    )
    .with_remedy(
        "write strict TOML 1.0 (no trailing comma in inline tables, no \\e or \\x escapes, times with seconds); \
         for an IPv6 mirror use an inline table (mirrors = { \"[fd00::10]:5000\" = { … } }) or, better, hosts.toml",
    )
}

/// The main config and its imports, as (path, text).
fn files(set: &ConfigSet) -> impl Iterator<Item = (&str, &str)> {
    std::iter::once((MAIN_CONFIG, set.main.as_str()))
        .chain(set.imports.iter().map(|(p, t)| (p.as_str(), t.as_str())))
}

fn refused_remedy(set: &ConfigSet) -> String {
    let v3 = files(set).any(|(_, t)| ContainerdConfig::parse(t).is_ok_and(|c| c.version() >= 3));
    if v3 {
        "containerd 1.x reads config version 2 only: write containerd.config as version = 2 \
         (plugin io.containerd.grpc.v1.cri), or install containerd 2.x"
            .to_owned()
    } else {
        "fix the file containerd names; containerd will not start until then".to_owned()
    }
}

/// `version = 3` files on containerd 1.x.
fn schema_check(set: &ConfigSet, version: Option<Version>) -> Check {
    use super::loadability::{schema_problem, SchemaProblem};
    let v3: Vec<&str> = files(set)
        .filter(|(_, t)| ContainerdConfig::parse(t).is_ok_and(|c| c.version() >= 3))
        .map(|(p, _)| p)
        .collect();
    if v3.is_empty() {
        return Check::pass(
            DOMAIN,
            "config_version",
            "every file uses config version 2 (read by containerd 1.6 and later)",
        );
    }
    let list = v3.join(", ");
    let remedy = "write containerd.config as version = 2 (plugin io.containerd.grpc.v1.cri): \
                  containerd 2.x reads that too";
    match version.map(|v| (v, schema_problem(3, v))) {
        Some((v, Some(SchemaProblem::Refused))) => Check::new(
            DOMAIN,
            "config_version",
            Status::Fail,
            format!("{list} uses config version 3, which needs containerd 2.0: containerd {v} refuses it and does not start"),
        )
        .with_remedy(remedy),
        Some((v, Some(SchemaProblem::Ignored))) => Check::new(
            DOMAIN,
            "config_version",
            Status::Fail,
            format!(
                "{list} uses config version 3, which needs containerd 2.0: containerd {v} starts but ignores \
                 its settings (no io.containerd.cri.v1.* plugins before 2.0)"
            ),
        )
        .with_remedy(remedy),
        Some((v, None)) => Check::pass(
            DOMAIN,
            "config_version",
            format!("{list} uses config version 3, which containerd {v} reads"),
        ),
        None => Check::new(
            DOMAIN,
            "config_version",
            Status::Warn,
            format!(
                "{list} uses config version 3, which needs containerd 2.0 (version unknown: no binary): \
                 containerd 1.7 does not start with it, 1.6 ignores its settings"
            ),
        )
        .with_remedy(remedy),
    }
}

fn import_override(
    set: &ConfigSet,
    main: Option<&ContainerdConfig>,
    eff: &ContainerdConfig,
) -> Check {
    let culprits: Vec<&str> = set
        .imports
        .iter()
        .filter(|(_, t)| ContainerdConfig::parse(t).is_ok_and(|c| !c.cri_tables().is_empty()))
        .map(|(p, _)| p.as_str())
        .collect();
    let Some(main) = main else {
        return Check::new(
            DOMAIN,
            "import_override",
            Status::Unknown,
            "main config not parseable",
        );
    };
    let mut lost = Vec::new();
    // Another non-empty config_path is a choice (a single directory is
    // what containerd 2.1's transfer service needs), not a loss.
    if let Some(path) = main.config_path().filter(|p| !p.is_empty()) {
        if eff.config_path().as_deref().unwrap_or("").is_empty() {
            lost.push(format!(
                "config_path {path:?} is now {:?} (hosts.toml files are ignored)",
                eff.config_path().unwrap_or_default()
            ));
        }
    }
    let main_cgroup = main.default_runtime().and_then(|r| r.systemd_cgroup) == Some(true);
    let eff_rt = eff.default_runtime();
    let eff_cgroup = eff_rt.as_ref().and_then(|r| r.systemd_cgroup) == Some(true);
    if main_cgroup && !eff_cgroup {
        lost.push(format!(
            "SystemdCgroup is not true for the default runtime {:?} (kubelet uses the systemd cgroup driver: pods fail or are killed)",
            eff.default_runtime_name()
        ));
    }
    if let Some(img) = main.sandbox_image() {
        // What nodeadm pre-pulls: its own lookup on the dump, which reads
        // `sandbox_image` (version 2) or `pinned_images.sandbox` (3 and 4).
        match super::nodeadm::sandbox_lookup(&eff.doc.to_string()) {
            Ok(found) if found == img => {}
            Ok(found) => lost.push(format!("sandbox_image {img:?} reverted to {found:?}")),
            Err(e) => lost.push(format!(
                "sandbox_image {img:?} is gone: nodeadm init stops (\"{e}\")"
            )),
        }
    }
    if lost.is_empty() {
        return Check::pass(
            DOMAIN,
            "import_override",
            "imports keep nodeadm's CRI settings (config_path, SystemdCgroup, sandbox_image)",
        );
    }
    let by = if culprits.is_empty() {
        String::new()
    } else {
        format!(
            " because {} replaces the CRI plugin table",
            culprits.join(", ")
        )
    };
    Check::new(
        DOMAIN,
        "import_override",
        Status::Fail,
        format!("nodeadm's CRI settings are lost{by}: {}", lost.join("; ")),
    )
    .with_remedy(
        "an imported [plugins.\"io.containerd.grpc.v1.cri\"…] table replaces the whole plugin: repeat nodeadm's \
         settings in it (`hybrid-node-agent render --nodeconfig FILE` prints a corrected containerd.config)",
    )
}

fn runtime_binary(eff: &ContainerdConfig, host: &Host) -> Check {
    let name = eff.default_runtime_name();
    let Some(rt) = eff.default_runtime() else {
        return Check::new(
            DOMAIN,
            "runtime_binary",
            Status::Fail,
            format!("default_runtime_name is {name:?} but no such runtime is configured"),
        )
        .with_remedy(format!("define [plugins.\"{CRI_V2}\".containerd.runtimes.{name}] or change default_runtime_name"));
    };
    match rt.binary_name {
        None => Check::pass(
            DOMAIN,
            "runtime_binary",
            format!("default runtime {name:?} uses runc from PATH"),
        ),
        Some(bin) if host.is_executable(&bin) => Check::pass(
            DOMAIN,
            "runtime_binary",
            format!("default runtime {name:?}: {bin} is present and executable"),
        ),
        Some(bin) => {
            let nvidia = bin.contains("nvidia");
            Check::new(
                DOMAIN,
                "runtime_binary",
                Status::Fail,
                format!("default runtime {name:?} runs {bin}, which does not exist or is not executable: every pod will fail to start"),
            )
            .with_remedy(if nvidia {
                "install the NVIDIA Container Toolkit (package nvidia-container-toolkit) before nodeadm init".to_owned()
            } else {
                format!("install {bin} or change the runtime's BinaryName")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoTool;

    fn find<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id} in {checks:?}"))
    }

    const GPU: &str = r#"version = 2
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
    fn gpu_import_loses_nodeadm_settings_and_needs_the_toolkit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        let checks = analyze(
            &ConfigSet::projected(Some(GPU)),
            &Context {
                host: &host,
                tool: None,
            },
        );
        let o = find(&checks, "import_override");
        assert_eq!(o.status, Status::Fail);
        assert!(o.summary.contains("config_path"), "{}", o.summary);
        assert!(o.summary.contains("SystemdCgroup"), "{}", o.summary);
        assert!(o.summary.contains("00-nodeadm.toml"), "{}", o.summary);
        let b = find(&checks, "runtime_binary");
        assert_eq!(b.status, Status::Fail);
        assert!(b
            .remedy
            .as_deref()
            .unwrap_or("")
            .contains("nvidia-container-toolkit"));
        assert_eq!(find(&checks, "registry_conflict").status, Status::Pass);
        let _ = NoTool;
    }

    #[test]
    fn no_inline_config_is_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        let checks = analyze(
            &ConfigSet::projected(None),
            &Context {
                host: &host,
                tool: None,
            },
        );
        // Without a binary nobody can say whether containerd loads it.
        let e = find(&checks, "effective_config");
        assert_eq!(e.status, Status::Unknown, "{e:?}");
        assert!(
            e.summary
                .contains("is unknown (no containerd binary on PATH)"),
            "{}",
            e.summary
        );
        assert!(
            checks
                .iter()
                .filter(|c| c.id != "effective_config")
                .all(|c| matches!(c.status, Status::Pass | Status::NotApplicable)),
            "{checks:?}"
        );
    }

    /// A containerd that refuses every config, as 1.7.24 refuses a version 3
    /// import (its words, with the scratch path of the copy).
    #[derive(Debug)]
    struct Refusing(Version);

    impl ContainerdTool for Refusing {
        fn version(&self) -> Option<Version> {
            Some(self.0)
        }
        fn dump(&self, main: &Path) -> Result<String, DumpError> {
            let import = main.with_file_name("config.d").join("00.toml");
            Err(DumpError::Refused(format!(
                "failed to load TOML from {}: unsupported config version `3`",
                import.display()
            )))
        }
    }

    /// Issue 16: a config containerd cannot load was a PASS (the agent fell
    /// back to its own merge rule); it is a FAIL naming the version and
    /// containerd's error, with the real file name.
    #[test]
    fn a_config_containerd_refuses_is_a_fail_naming_version_and_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        let tool = Refusing(Version(1, 7, 24));
        let v3 = "version = 3\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = \"p:1\"\n";
        let checks = analyze(
            &ConfigSet::projected(Some(v3)),
            &Context {
                host: &host,
                tool: Some(&tool),
            },
        );
        let e = find(&checks, "effective_config");
        assert_eq!(e.status, Status::Fail);
        assert_eq!(
            e.summary,
            "containerd 1.7.24 will not start with this config (as nodeadm init would write it): \
             failed to load TOML from /etc/containerd/config.d/00-nodeadm.toml: unsupported config version `3`"
        );
        assert!(e.remedy.as_deref().unwrap_or("").contains("version = 2"));
        let v = find(&checks, "config_version");
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.summary.contains("containerd 1.7.24 refuses it"),
            "{}",
            v.summary
        );
    }

    /// Without a binary the strict pre-check stands in for go-toml v1: the
    /// IPv6 mirror key 1.6/1.7 cannot parse is a FAIL, a version 3 file a
    /// warning (it depends on the containerd nodeadm installs).
    #[test]
    fn without_a_binary_the_strict_precheck_and_the_version_rule_stand_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        let ctx = Context {
            host: &host,
            tool: None,
        };
        let v3 = "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry.mirrors.\"[fd00::10]:5000\"]\n  endpoint = [\"https://[fd00::10]:5000\"]\n";
        let checks = analyze(&ConfigSet::projected(Some(v3)), &ctx);
        let e = find(&checks, "effective_config");
        assert_eq!(e.status, Status::Fail, "{e:?}");
        assert!(
            e.summary.contains("containerd 1.6/1.7 will not start")
                && e.summary
                    .contains("/etc/containerd/config.d/00-nodeadm.toml line 2:"),
            "{}",
            e.summary
        );
        let v = find(&checks, "config_version");
        assert_eq!(v.status, Status::Warn, "{v:?}");
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

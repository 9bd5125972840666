//! The containerd traps: what in the effective configuration silently
//! breaks pulls or the CRI plugin, one check each (`effective_config`,
//! `config_version`, `registry_conflict`, `config_path_transfer`,
//! `import_override`, `runtime_binary`).

use super::effective::{
    effective, ConfigSet, ContainerdTool, EffectiveError, Method, Origin, Version, DOMAIN,
    MAIN_CONFIG,
};
use crate::check::{Check, Status};
use crate::host::Host;
use crate::model::containerd::{ContainerdConfig, CRI_V2};

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
    use crate::containerd::effective::tests::GPU;
    use crate::containerd::effective::DumpError;
    use std::path::Path;

    fn find<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id} in {checks:?}"))
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
}

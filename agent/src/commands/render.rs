//! `render`: the corrected NodeConfig `containerd.config` and the
//! hosts.toml files that replace its legacy registry settings.

use super::error::AppError;
use crate::cli::RenderArgs;
use crate::host::Host;
use std::process::ExitCode;

pub fn render(
    agent: &crate::config::Config,
    host: &Host,
    args: &RenderArgs,
) -> Result<ExitCode, AppError> {
    use crate::containerd::{effective, render};
    use crate::model::containerd::ContainerdConfig;
    let path = &args.nodeconfig;
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Read {
        path: path.clone(),
        source,
    })?;
    let at = |position: Option<(usize, usize)>| {
        position
            .map(|(l, c)| format!(":{l}:{c}"))
            .unwrap_or_default()
    };
    let parsed = crate::nodeconfig::parse::parse_full(&text).map_err(|e| AppError::Invalid {
        path: path.clone(),
        at: at(e.position),
        message: e.message.clone(),
    })?;
    let config = &parsed.config;
    let Some(inline) = config.spec.containerd.config.as_deref() else {
        println!(
            "# {} has no spec.containerd.config: nothing to correct",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    // nodeadm's sandbox image is only known from a live config.
    let live = std::fs::read_to_string(host.path(effective::MAIN_CONFIG))
        .ok()
        .and_then(|t| ContainerdConfig::parse(&t).ok())
        .and_then(|c| c.sandbox_image());
    if let Some(f) =
        crate::nodeconfig::validate::containerd_toml_finding(config, &text, &parsed.positions)
    {
        return Err(AppError::Invalid {
            path: path.clone(),
            at: at(f.position),
            message: f.message,
        });
    }
    let corrected = render::correct(inline, live.as_deref()).map_err(|e| AppError::Invalid {
        path: path.clone(),
        at: String::new(),
        message: format!("spec.containerd.config: {e}"),
    })?;
    println!("# Corrected spec.containerd.config for {}", path.display());
    for r in &corrected.moved {
        println!(
            "# - registry.mirrors/configs.tls of {} moved to /etc/containerd/certs.d/{}/hosts.toml",
            r.host, r.host
        );
    }
    for r in &corrected.rewritten {
        println!("# - {r}");
    }
    for r in &corrected.restored {
        println!("# - restored nodeadm setting: {r}");
    }
    let cri = ContainerdConfig::parse(inline)
        .map(|c| !c.cri_tables().is_empty())
        .unwrap_or(false);
    if cri && live.is_none() {
        println!(
            "# - sandbox_image: nodeadm's (region-specific) value is only known after init; \
             this file replaces it with containerd's default unless you set it here"
        );
    }
    if corrected.text.contains("auth") {
        println!("# Credentials are shown redacted: keep your current values.");
    }
    print!("{}", render::redact_credentials(&corrected.text));
    // The files the agent would write for the moved registries.
    use crate::registry::{desired, files, plan_for};
    let merged = desired::merge(&[], &corrected.moved, agent.registries.allow_skip_verify);
    let certs_d = agent.registries.certs_d.to_string_lossy();
    let (plan, _) = plan_for(&merged.registries, &certs_d, &agent.containerd.binary, host);
    for note in &merged.conflicts {
        println!("\n# note: {note}");
    }
    for refused in &merged.rejected {
        println!("\n# not configured: {refused}");
    }
    for (registry, e) in &plan.failed {
        println!(
            "\n# {registry}: {e}\n# (the agent writes this registry's files once that is fixed)"
        );
    }
    for f in &plan.files {
        match f.kind {
            files::Kind::HostsToml => {
                println!("\n# --- {}", f.path);
                print!("{}", f.contents);
            }
            files::Kind::Ca | files::Kind::Trust => println!("\n# --- {} (CA certificate)", f.path),
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `reload`: systemd's ExecReload.

use super::error::AppError;
use crate::cli::ReloadArgs;
use crate::config::ConfigSource;
use std::process::ExitCode;

/// `reload`: the config is checked here first, so that `systemctl reload`
/// fails (and the journal shows why) instead of reporting success for a
/// config the agent will reject; then the agent is sent SIGHUP.
pub fn reload(source: &ConfigSource, args: &ReloadArgs) -> Result<ExitCode, AppError> {
    source.load()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(args.pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|source| AppError::Signal {
        pid: args.pid,
        source,
    })?;
    Ok(ExitCode::SUCCESS)
}

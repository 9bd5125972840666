//! Restarting a systemd service: `systemctl restart containerd` after the
//! trust store changed (`registries.restart_containerd_on_trust_change`).

use super::exec::{output, ExecError};
use std::process::Command;

/// Restarts services.
pub trait ServiceManager: Send + Sync + std::fmt::Debug {
    fn restart(&self, unit: &str) -> Result<(), ExecError>;
}

/// `systemctl` on the agent's `PATH`.
#[derive(Debug, Clone, Default)]
pub struct Systemctl;

impl ServiceManager for Systemctl {
    fn restart(&self, unit: &str) -> Result<(), ExecError> {
        output(
            Command::new("systemctl").args(["restart", unit]),
            &format!("systemctl restart {unit}"),
        )
        .map(drop)
    }
}

/// Restarts nothing: under a `--root` other than `/` the services running
/// on this machine are not the ones of the tree being checked.
#[derive(Debug, Clone, Default)]
pub struct NotThisHost;

impl ServiceManager for NotThisHost {
    fn restart(&self, unit: &str) -> Result<(), ExecError> {
        tracing::debug!("not restarting {unit}: the checked root is not this host's");
        Ok(())
    }
}

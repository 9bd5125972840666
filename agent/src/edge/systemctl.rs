//! Restarting a systemd service: `systemctl restart containerd` after the
//! trust store changed (`registries.restart_containerd_on_trust_change`);
//! asking whether one runs (`systemctl is-active`: the firewalls, a
//! kubelet left from an earlier install).

use super::exec::{output, output_within, ExecError};
use std::process::Command;
use std::time::Duration;

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

/// Whether a unit runs now.
pub trait ServiceState: Send + Sync + std::fmt::Debug {
    /// `Some(true)`: active; `Some(false)`: not running or not installed;
    /// `None`: cannot tell (no systemd, not this host's services).
    fn is_active(&self, unit: &str) -> Option<bool>;
}

/// `systemctl is-active` answers within this, or the unit counts as unknown.
const IS_ACTIVE_TIMEOUT: Duration = Duration::from_secs(5);

impl ServiceState for Systemctl {
    fn is_active(&self, unit: &str) -> Option<bool> {
        // systemctl(1): exit 0 when active, 3 when not active (inactive,
        // failed), 4 when there is no such unit; 1 when it cannot ask
        // systemd at all ("System has not been booted with systemd").
        match output_within(
            Command::new("systemctl").args(["is-active", "--quiet", unit]),
            &format!("systemctl is-active {unit}"),
            IS_ACTIVE_TIMEOUT,
        ) {
            Ok(_) => Some(true),
            Err(ExecError::Failed { status, .. }) if matches!(status.code(), Some(3 | 4)) => {
                Some(false)
            }
            Err(e) => {
                tracing::debug!("cannot tell whether {unit} runs: {e}");
                None
            }
        }
    }
}

impl ServiceState for NotThisHost {
    fn is_active(&self, _unit: &str) -> Option<bool> {
        None
    }
}

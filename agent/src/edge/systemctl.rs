//! Restarting a systemd service: `systemctl restart containerd` after the
//! trust store changed (`registries.restart_containerd_on_trust_change`);
//! asking whether one runs (`systemctl show`): the SSM agent, the IAM
//! Roles Anywhere signing helper, the firewalls, a kubelet left from an
//! earlier install.

use super::exec::{output, output_within, ExecError};
use std::process::Command;
use std::time::Duration;

/// Restarts services and tells their state.
pub trait ServiceManager: Send + Sync + std::fmt::Debug {
    fn restart(&self, unit: &str) -> Result<(), ExecError>;
    /// The unit's state as systemd sees it.
    fn state(&self, unit: &str) -> Result<UnitState, ExecError>;
    /// Whether the unit runs now: `Some(false)` when it is not running or
    /// not installed, `None` when that cannot be told (no systemd, not this
    /// host's services).
    fn is_active(&self, unit: &str) -> Option<bool> {
        match self.state(unit) {
            Ok(UnitState::NotThisHost) => None,
            Ok(UnitState::NotFound) => Some(false),
            Ok(s) => Some(s.is_active()),
            Err(e) => {
                tracing::debug!("cannot tell whether {unit} runs: {e}");
                None
            }
        }
    }
}

/// What systemd says about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitState {
    /// Not asked: the checked root is not this host's.
    NotThisHost,
    /// systemd has no such unit (`LoadState=not-found`).
    NotFound,
    /// `ActiveState` (`active`, `inactive`, `failed`, `activating`, …) and
    /// `SubState` (`running`, `dead`, `auto-restart`, …).
    Loaded { active: String, sub: String },
}

impl UnitState {
    /// Parses `systemctl show --property=LoadState,ActiveState,SubState`.
    pub fn parse(text: &str) -> UnitState {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .to_owned()
        };
        if get("LoadState") == "not-found" {
            return UnitState::NotFound;
        }
        UnitState::Loaded {
            active: get("ActiveState"),
            sub: get("SubState"),
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self, UnitState::Loaded { active, .. } if active == "active")
    }
}

/// `systemctl show` answers within this, or the state is unknown (a
/// systemd that does not answer must not hold a domain's run).
const SHOW_TIMEOUT: Duration = Duration::from_secs(5);

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

    fn state(&self, unit: &str) -> Result<UnitState, ExecError> {
        output_within(
            Command::new("systemctl").args([
                "show",
                "--property=LoadState,ActiveState,SubState",
                "--",
                unit,
            ]),
            &format!("systemctl show {unit}"),
            SHOW_TIMEOUT,
        )
        .map(|text| UnitState::parse(&text))
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

    fn state(&self, _unit: &str) -> Result<UnitState, ExecError> {
        Ok(UnitState::NotThisHost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_states_are_parsed_from_systemctl_show() {
        let s = UnitState::parse("LoadState=loaded\nActiveState=active\nSubState=running\n");
        assert!(s.is_active());
        let s = UnitState::parse("LoadState=loaded\nActiveState=failed\nSubState=failed\n");
        assert_eq!(
            s,
            UnitState::Loaded {
                active: "failed".into(),
                sub: "failed".into()
            }
        );
        assert!(!s.is_active());
        assert_eq!(
            UnitState::parse("LoadState=not-found\nActiveState=inactive\nSubState=dead\n"),
            UnitState::NotFound
        );
    }
}

//! The nodeadm phase of the host, which every domain consults to know
//! whether its checks apply yet.

use serde::Serialize;

/// The nodeadm phases, in the order a host goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    NotInstalled,
    Installed,
    Initialized,
    KubeletRunning,
    Joined,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::NotInstalled,
        Phase::Installed,
        Phase::Initialized,
        Phase::KubeletRunning,
        Phase::Joined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::NotInstalled => "not_installed",
            Phase::Installed => "installed",
            Phase::Initialized => "initialized",
            Phase::KubeletRunning => "kubelet_running",
            Phase::Joined => "joined",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

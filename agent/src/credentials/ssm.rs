//! The SSM agent as nodeadm v1.0.20 sets it up for a hybrid activation
//! (aws/eks-hybrid `internal/ssm`): installed as a snap on Ubuntu or as a
//! deb/rpm package, registered in `/var/lib/amazon/ssm/registration`.

use crate::host::Host;
use serde::Deserialize;

/// Where each install puts the agent, in the order nodeadm looks
/// (`internal/ssm/config.go`: the package's binary first), and the unit
/// each runs as.
pub const INSTALLS: [Install; 2] = [
    Install {
        how: "package",
        binary: "/usr/bin/amazon-ssm-agent",
        unit: "amazon-ssm-agent",
    },
    Install {
        how: "snap",
        binary: "/snap/amazon-ssm-agent/current/amazon-ssm-agent",
        unit: "snap.amazon-ssm-agent.amazon-ssm-agent",
    },
];

/// Where the agent keeps its registration (`internal/ssm/registration.go`);
/// the snap is classically confined and uses the same path.
pub const REGISTRATION: &str = "/var/lib/amazon/ssm/registration";

/// The credentials file the SSM agent writes for the root user, which the
/// kubelet's aws-iam-authenticator reads (`internal/ssm/daemon.go`).
pub const CREDENTIALS: &str = "/root/.aws/credentials";

/// One way the SSM agent is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Install {
    pub how: &'static str,
    pub binary: &'static str,
    pub unit: &'static str,
}

/// The install present under the root, in nodeadm's order (the package
/// first).
pub fn installed(host: &Host) -> Option<Install> {
    INSTALLS.into_iter().find(|i| host.exists(i.binary))
}

/// The unit nodeadm runs the agent as, which it picks by OS, not by the
/// binary it found (`internal/ssm/daemon.go`, `setDaemonName`): the snap's
/// on Ubuntu when the snap is installed, else `amazon-ssm-agent`.
pub fn unit(host: &Host) -> &'static str {
    let ubuntu = host
        .read_small("/etc/os-release", 64 * 1024)
        .is_ok_and(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("ID="))
                .any(|v| v.trim_matches('"').trim_matches('\'') == "ubuntu")
        });
    let snap = INSTALLS[1];
    if ubuntu && host.exists(snap.binary) {
        snap.unit
    } else {
        INSTALLS[0].unit
    }
}

/// The registration file's fields nodeadm reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Registration {
    #[serde(rename = "ManagedInstanceID", default)]
    pub managed_instance_id: String,
    #[serde(rename = "Region", default)]
    pub region: String,
}

/// Why the registration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    Read(#[from] crate::host::SmallFileError),
    #[error("{REGISTRATION} is not the registration JSON the SSM agent writes (line {line}, column {column})")]
    Json { line: usize, column: usize },
}

impl RegistrationError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistrationError::Read(e) if e.is_not_found())
    }
}

pub fn registration(host: &Host) -> Result<Registration, RegistrationError> {
    let bytes = host.read_small(REGISTRATION, 64 * 1024)?;
    // The JSON error's text may quote the file; only its position is kept.
    serde_json::from_slice(&bytes).map_err(|e| RegistrationError::Json {
        line: e.line(),
        column: e.column(),
    })
}

//! The OS trust store: where a CA goes on each distribution family and the
//! tool that rebuilds the bundles.

use crate::edge::exec::{output, ExecError};
use crate::host::Host;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Debian, Ubuntu: `/usr/local/share/ca-certificates` + `update-ca-certificates`.
    Debian,
    /// RHEL, Fedora, CentOS, Rocky, Alma, Amazon Linux:
    /// `/etc/pki/ca-trust/source/anchors` + `update-ca-trust extract`.
    Rhel,
}

/// The agent's own subdirectory on Debian (the tool reads it recursively).
pub const DEBIAN_DIR: &str = "/usr/local/share/ca-certificates/hybrid-node-agent";
pub const RHEL_DIR: &str = "/etc/pki/ca-trust/source/anchors";

impl Family {
    /// From `/etc/os-release` (`ID`, then `ID_LIKE`).
    pub fn detect(host: &Host) -> Option<Family> {
        let text = std::fs::read_to_string(host.path("/etc/os-release"))
            .or_else(|_| std::fs::read_to_string(host.path("/usr/lib/os-release")))
            .ok()?;
        Family::from_os_release(&text)
    }

    pub fn from_os_release(text: &str) -> Option<Family> {
        let field = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .flat_map(|v| {
                    v.trim()
                        .trim_matches(['"', '\''])
                        .split_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let ids = [field("ID"), field("ID_LIKE")].concat();
        ids.iter().find_map(|id| match id.as_str() {
            "debian" | "ubuntu" => Some(Family::Debian),
            "rhel" | "fedora" | "centos" | "rocky" | "almalinux" | "amzn" | "ol" => {
                Some(Family::Rhel)
            }
            _ => None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Debian => "Debian family",
            Family::Rhel => "RHEL family",
        }
    }

    /// Host path of the anchor file for a registry's CA.
    pub fn anchor(self, registry: &str, short_id: &str) -> String {
        let name = registry.replace(':', "_");
        match self {
            Family::Debian => format!("{DEBIAN_DIR}/{name}-{short_id}.crt"),
            Family::Rhel => format!("{RHEL_DIR}/hybrid-node-agent-{name}-{short_id}.pem"),
        }
    }

    /// The directory holding the agent's anchors, and the file-name prefix
    /// that marks them.
    pub fn anchor_dir(self) -> (&'static str, &'static str) {
        match self {
            Family::Debian => (DEBIAN_DIR, ""),
            Family::Rhel => (RHEL_DIR, "hybrid-node-agent-"),
        }
    }

    /// The bundle the OS builds from the anchors (the probe's system roots).
    pub fn bundle(self) -> &'static str {
        match self {
            Family::Debian => "/etc/ssl/certs/ca-certificates.crt",
            Family::Rhel => "/etc/pki/tls/certs/ca-bundle.crt",
        }
    }
}

/// Rebuilds the OS bundles after the anchors changed.
pub trait TrustTool: Send + std::fmt::Debug {
    /// Runs the tool; its last line of output on success.
    fn update(&self, family: Family, host: &Host) -> Result<String, ExecError>;
}

/// The distribution's own tool, found on the agent's PATH. Under a root
/// other than `/`, `update-ca-certificates` is pointed at that tree.
#[derive(Debug, Clone, Default)]
pub struct SystemTool;

impl TrustTool for SystemTool {
    fn update(&self, family: Family, host: &Host) -> Result<String, ExecError> {
        // The unit's UMask=0077 must not leak into the bundles the tool
        // (and its hooks) write: every TLS client on the host reads them.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "umask 022 && exec \"$0\" \"$@\""]);
        match family {
            Family::Debian => {
                cmd.arg("update-ca-certificates");
                if host.root() != std::path::Path::new("/") {
                    for (flag, path) in [
                        ("--certsconf", "/etc/ca-certificates.conf"),
                        ("--certsdir", "/usr/share/ca-certificates"),
                        ("--localcertsdir", "/usr/local/share/ca-certificates"),
                        ("--etccertsdir", "/etc/ssl/certs"),
                        ("--hooksdir", "/etc/ca-certificates/update.d"),
                    ] {
                        cmd.arg(flag).arg(host.path(path));
                    }
                }
            }
            Family::Rhel => {
                cmd.args(["update-ca-trust", "extract"]);
            }
        }
        let shown = format!("{cmd:?}");
        let out = output(&mut cmd, &shown)?;
        Ok(out.lines().last().unwrap_or("").trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_os_release() {
        let f = Family::from_os_release;
        assert_eq!(f("ID=ubuntu\nID_LIKE=debian\n"), Some(Family::Debian));
        assert_eq!(f("ID=\"rhel\"\nID_LIKE=\"fedora\"\n"), Some(Family::Rhel));
        assert_eq!(
            f("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            Some(Family::Rhel)
        );
        assert_eq!(f("ID=\"amzn\"\nID_LIKE=\"fedora\"\n"), Some(Family::Rhel));
        assert_eq!(
            f("ID=pop\nID_LIKE=\"ubuntu debian\"\n"),
            Some(Family::Debian)
        );
        assert_eq!(f("ID=alpine\n"), None);
        assert_eq!(f("VERSION_ID=12\n"), None);
    }

    #[test]
    fn anchors_are_named_per_family() {
        assert_eq!(
            Family::Debian.anchor("harbor.local:5000", "0123"),
            "/usr/local/share/ca-certificates/hybrid-node-agent/harbor.local_5000-0123.crt"
        );
        assert_eq!(
            Family::Rhel.anchor("harbor.local", "0123"),
            "/etc/pki/ca-trust/source/anchors/hybrid-node-agent-harbor.local-0123.pem"
        );
    }
}

//! The AWS files a hybrid node's credentials flow through: the shared
//! credentials file a provider refreshes (with SSM the one the kubelet
//! reads, where it is told to find it), and the AWS config nodeadm writes
//! for IAM Roles Anywhere
//! (aws/eks-hybrid v1.0.20 `internal/iamrolesanywhere/aws_config.tpl`).
//!
//! Values are never kept: a credentials file is looked at for which keys
//! it has; the AWS config only for the profile and the file paths of its
//! `credential_process`.

use super::checks::{missing_keys, CredFile};
use crate::host::Host;
use std::time::SystemTime;

/// The kubelet's environment file nodeadm writes
/// (`internal/kubelet/environment.go`).
pub const KUBELET_ENV: &str = "/etc/eks/kubelet/environment";
const VAR: &str = "AWS_SHARED_CREDENTIALS_FILE";

/// `AWS_SHARED_CREDENTIALS_FILE` from the kubelet's environment file or its
/// unit and drop-ins (an `Environment=` wins: systemd applies it after
/// `EnvironmentFile=`), if set.
pub fn kubelet_credentials_file(host: &Host) -> Option<String> {
    let mut found = host
        .read_small(KUBELET_ENV, 256 * 1024)
        .ok()
        .and_then(|bytes| env_value(&String::from_utf8_lossy(&bytes)));
    let unit = crate::edge::units::load(host, "kubelet.service", "Service");
    for a in unit.all("Environment") {
        for (k, v) in crate::edge::units::environment_pairs(&a.value) {
            if k == VAR && !v.is_empty() {
                found = Some(v);
            }
        }
    }
    found
}

/// The variable's value in `KEY="VALUE"` lines.
fn env_value(text: &str) -> Option<String> {
    text.lines().rev().find_map(|l| {
        let v = l.trim().strip_prefix(VAR)?.strip_prefix('=')?;
        let v = v.trim().trim_matches('"').trim_matches('\'');
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// Reads the credentials file at `path` (host path): which keys its
/// `[default]` profile lacks, and its age at `now`.
pub fn read_credentials(host: &Host, path: &str, now: SystemTime) -> CredFile {
    let bytes = match host.read_small(path, 64 * 1024) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return CredFile::Missing,
        Err(e) => return CredFile::Unreadable(e.to_string()),
    };
    let missing = missing_keys(&String::from_utf8_lossy(&bytes), "default");
    drop(bytes);
    let age = std::fs::metadata(host.path(path))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or_default();
    CredFile::Read { missing, age }
}

/// What nodeadm's AWS config says about the signing helper.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsConfig {
    /// `[profile default]` (or `[default]`) exists.
    pub has_default: bool,
    /// Its `credential_process` program and the files it is given.
    pub program: Option<String>,
    pub certificate: Option<String>,
    pub private_key: Option<String>,
    /// `--role-session-name`: nodeadm passes the node name.
    pub session_name: Option<String>,
}

/// Reads the profile nodeadm uses (`default`) from an AWS config file.
pub fn parse_aws_config(text: &str) -> AwsConfig {
    let mut out = AwsConfig::default();
    let mut in_default = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_default = name == "default" || name == "profile default";
            out.has_default |= in_default;
            continue;
        }
        if !in_default {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != "credential_process" {
            continue;
        }
        let mut words = v.split_whitespace();
        out.program = words.next().map(str::to_owned);
        while let Some(w) = words.next() {
            match w {
                "--certificate" => out.certificate = words.next().map(str::to_owned),
                "--private-key" => out.private_key = words.next().map(str::to_owned),
                "--role-session-name" => out.session_name = words.next().map(str::to_owned),
                _ => {}
            }
        }
    }
    out
}

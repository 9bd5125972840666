//! The containerd binary: its version and `containerd config dump`, the
//! ground truth of the configuration it would run with (and of whether it
//! would start at all).

use super::exec::{output, ExecError};
use crate::model::containerd::Version;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The containerd binary, behind a trait so tests can run without one.
pub trait ContainerdTool: Send + std::fmt::Debug {
    fn version(&self) -> Option<Version>;
    /// `containerd --config <main> config dump`.
    fn dump(&self, main: &Path) -> Result<String, DumpError>;
}

/// Why `containerd config dump` gave no config.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The binary could not be run: says nothing about the config.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// containerd ran and refused the config: it will not start with it.
    /// Holds containerd's own error line.
    #[error("{0}")]
    Refused(String),
    #[error("`containerd config dump` output is not UTF-8")]
    NotUtf8,
    /// The private scratch copy could not be made.
    #[error("cannot prepare a private copy of the config: {0}")]
    Scratch(String),
}

/// The real binary, found on the agent's `PATH` (tools are not taken from
/// under `--root`).
#[derive(Debug, Clone)]
pub struct Binary {
    pub program: PathBuf,
}

impl Binary {
    /// `None` when no such program is on `PATH`.
    pub fn find(program: &str) -> Option<Binary> {
        let p = Path::new(program);
        if p.is_absolute() {
            return p.is_file().then(|| Binary {
                program: p.to_owned(),
            });
        }
        let paths = std::env::var_os("PATH")?;
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|c| c.is_file())
            .map(|program| Binary { program })
    }
}

impl ContainerdTool for Binary {
    fn version(&self) -> Option<Version> {
        let out = Command::new(&self.program).arg("--version").output().ok()?;
        Version::from_version_output(&String::from_utf8_lossy(&out.stdout))
    }

    fn dump(&self, main: &Path) -> Result<String, DumpError> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--config").arg(main).args(["config", "dump"]);
        output(&mut cmd, "`containerd config dump`").map_err(|e| match e {
            ExecError::Spawn { source, .. } => DumpError::Spawn {
                program: self.program.clone(),
                source,
            },
            // The last line is containerd's fatal error ("containerd:
            // failed to load TOML …"); log lines come before.
            ExecError::Failed { status, detail, .. } => {
                let last = detail.trim_start_matches("containerd: ");
                DumpError::Refused(if last.is_empty() {
                    format!("exit status {status}")
                } else {
                    last.to_owned()
                })
            }
            ExecError::NotUtf8 { .. } => DumpError::NotUtf8,
            e @ ExecError::TimedOut { .. } => DumpError::Refused(e.to_string()),
        })
    }
}

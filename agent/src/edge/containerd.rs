//! The containerd binary: its version and `containerd config dump`, the
//! ground truth of the configuration it would run with.

use super::exec::{output, ExecError};
use crate::model::containerd::Version;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The containerd binary, behind a trait so tests can run without one.
pub trait ContainerdTool: Send + std::fmt::Debug {
    fn version(&self) -> Option<Version>;
    /// `containerd --config <main> config dump`.
    fn dump(&self, main: &Path) -> Result<String, ExecError>;
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

    fn dump(&self, main: &Path) -> Result<String, ExecError> {
        output(
            Command::new(&self.program)
                .arg("--config")
                .arg(main)
                .args(["config", "dump"]),
            "`containerd config dump`",
        )
    }
}

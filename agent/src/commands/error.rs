//! Every way a command fails, and the exit code of each.

use crate::config::ConfigError;
use crate::daemon::DaemonError;
use std::process::ExitCode;

pub use crate::cli::exit;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// A file named on the command line cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file named on the command line is not valid: where (`:line:column`
    /// when known) and why.
    #[error("{}{at}: {message}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        at: String,
        message: String,
    },
    /// `bandwidth`: the test could not run, or was interrupted.
    #[error(transparent)]
    Bandwidth(#[from] crate::bandwidth::command::CommandError),
    /// `reload`: the agent process could not be signalled.
    #[error("cannot signal the agent (pid {pid}) to reload: {source}")]
    Signal {
        pid: i32,
        #[source]
        source: nix::Error,
    },
}

impl AppError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            AppError::Config(_) => exit::USAGE,
            AppError::Daemon(DaemonError::Bind { .. }) => exit::UNAVAILABLE,
            AppError::Daemon(DaemonError::WebConfig(_)) => exit::USAGE,
            AppError::Daemon(DaemonError::Runtime(_)) => exit::SOFTWARE,
            AppError::Read { .. } => exit::NOINPUT,
            AppError::Invalid { .. } => exit::DATAERR,
            AppError::Signal { .. } => exit::UNAVAILABLE,
            AppError::Bandwidth(e) => e.exit_code(),
        })
    }
}

//! Every way a command fails, and the exit code of each.

use crate::config::ConfigError;
use crate::daemon::DaemonError;
use std::process::ExitCode;

/// Exit codes from `sysexits.h`, as daemons conventionally use them.
pub mod exit {
    /// Bad usage or configuration.
    pub const USAGE: u8 = 64;
    /// An input file (a NodeConfig given on the command line) is invalid.
    pub const DATAERR: u8 = 65;
    /// An input file cannot be read.
    pub const NOINPUT: u8 = 66;
    /// A needed resource (the listen address) is unavailable.
    pub const UNAVAILABLE: u8 = 69;
    /// An internal error.
    pub const SOFTWARE: u8 = 70;
}

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
        })
    }
}

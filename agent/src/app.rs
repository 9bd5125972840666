//! What each command does, and the exit code of each failure.

use crate::cli::{Cli, Command};
use crate::config::{self, ConfigError, ConfigSource};
use crate::daemon::{self, DaemonError};
use crate::host::Host;
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

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, AppError> {
    let host = Host::new(&cli.root);
    let source = match &cli.config {
        Some(path) => ConfigSource {
            path: path.clone(),
            explicit: true,
        },
        None => ConfigSource {
            path: host.path(config::DEFAULT_PATH),
            explicit: false,
        },
    };
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "hybrid-node-agent", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let man = clap_mangen::Man::new(cmd).section("8");
            let mut out = Vec::new();
            man.render(&mut out).map_err(|source| AppError::Read {
                path: "man page".into(),
                source,
            })?;
            use std::io::Write;
            let _ = std::io::stdout().write_all(&out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("hybrid-node-agent {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Render(args) => crate::commands::render::render(&source.load()?, &host, &args),
        Command::Reload(args) => crate::commands::reload::reload(&source, &args),
        Command::Check(args) => {
            let config = source.load()?;
            // The report is the output; only problems are logged.
            crate::logging::init("warn");
            Ok(crate::commands::check::check(
                &config,
                &host,
                &args,
                crate::domain::Mode::DryRun,
            ))
        }
        Command::Apply(args) => {
            let config = source.load()?;
            crate::logging::init("warn");
            Ok(crate::commands::check::check(
                &config,
                &host,
                &args,
                crate::domain::Mode::Apply,
            ))
        }
        Command::Run(args) => {
            let config = source.load()?;
            let log = crate::logging::init(&config.agent.log_level);
            daemon::run(daemon::Options {
                source,
                config,
                host,
                listen_override: args.listen,
                log,
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

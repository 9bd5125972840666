//! What each command does, and the exit code of each failure.

use crate::cli::{CheckArgs, Cli, Command, Output, When};
use crate::config::{self, ConfigError, ConfigSource};
use crate::daemon::{self, DaemonError};
use crate::facts::Facts;
use crate::host::Host;
use crate::{domain, metrics, report};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit codes from `sysexits.h`, as daemons conventionally use them.
pub mod exit {
    /// Bad usage or configuration.
    pub const USAGE: u8 = 64;
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
}

impl AppError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            AppError::Config(_) => exit::USAGE,
            AppError::Daemon(DaemonError::Bind { .. }) => exit::UNAVAILABLE,
            AppError::Daemon(DaemonError::Runtime(_)) => exit::SOFTWARE,
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
        Command::Version => {
            println!("hybrid-node-agent {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let config = source.load()?;
            crate::logging::init(&config.agent.log_level);
            Ok(check(&config, &host, &args))
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

fn check(config: &config::Config, host: &Host, args: &CheckArgs) -> ExitCode {
    let facts = Facts::default();
    // Domains register metrics as they are built; `check` does not serve them.
    let mut registry = metrics::new_registry();
    let domains = domain::build_all(config, host, &mut registry, &facts);
    let checks = domain::run_once(domains, config.agent.probe_timeout.get());
    let report = crate::check::Report::new(checks);
    let text = match args.output {
        Output::Json => report::json(&report, facts.phase()),
        Output::Table => {
            let colour = match args.color {
                When::Always => report::Colour::Always,
                When::Never => report::Colour::Never,
                When::Auto
                    if std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none() =>
                {
                    report::Colour::Always
                }
                When::Auto => report::Colour::Never,
            };
            report::table(&report, facts.phase(), colour)
        }
    };
    println!("{}", text.trim_end());
    ExitCode::from(report.exit_code())
}

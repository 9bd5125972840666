//! What each command does, and the exit code of each failure.

use crate::cli::{Cli, Command};
use crate::config::{self, ConfigSource};
use crate::daemon;
use crate::host::Host;
use std::process::ExitCode;

pub use crate::commands::error::{exit, AppError};

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
        Command::Bandwidth(args) => {
            let config = source.load()?;
            crate::logging::init("warn");
            let req = crate::bandwidth::command::Request {
                target: args.target,
                duration: args.duration,
                parallel: args.parallel,
                window: args.window,
                reverse: args.reverse,
                json: args.output == crate::cli::Output::Json,
            };
            Ok(crate::bandwidth::command::run(
                &config.network.bandwidth,
                &host,
                &req,
            )?)
        }
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

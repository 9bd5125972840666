//! What each command does, and the exit code of each failure.

use crate::cli::{CheckArgs, Cli, Command, Output, ReloadArgs, RenderArgs, When};
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
    /// A file named on the command line is not valid.
    #[error("{0}")]
    Invalid(String),
    /// `bandwidth`: the test could not run (or its arguments are bad).
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
            AppError::Invalid(_) => exit::DATAERR,
            AppError::Signal { .. } => exit::UNAVAILABLE,
            AppError::Bandwidth(e) => e.exit_code(),
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
        Command::Render(args) => render(&source.load()?, &host, &args),
        Command::Reload(args) => reload(&source, &args),
        Command::Bandwidth(args) => {
            let config = source.load()?;
            crate::logging::init("warn");
            let req = crate::bandwidth::command::Request {
                target: args.target,
                duration: args.duration,
                parallel: args.parallel,
                window: args.window,
                reverse: args.reverse,
                json: args.output == Output::Json,
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
            Ok(check(&config, &host, &args, crate::registry::Mode::DryRun))
        }
        Command::Apply(args) => {
            let config = source.load()?;
            crate::logging::init("warn");
            Ok(check(&config, &host, &args, crate::registry::Mode::Apply))
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

fn check(
    config: &config::Config,
    host: &Host,
    args: &CheckArgs,
    mode: crate::registry::Mode,
) -> ExitCode {
    let facts = Facts::default();
    // Domains register metrics as they are built; `check` does not serve them.
    let mut registry = metrics::new_registry();
    let domains = domain::build_all(config, host, &mut registry, &facts, mode);
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

/// `reload`: the config is checked here first, so that `systemctl reload`
/// fails (and the journal shows why) instead of reporting success for a
/// config the agent will reject; then the agent is sent SIGHUP.
fn reload(source: &ConfigSource, args: &ReloadArgs) -> Result<ExitCode, AppError> {
    source.load()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(args.pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|source| AppError::Signal {
        pid: args.pid,
        source,
    })?;
    Ok(ExitCode::SUCCESS)
}

fn render(agent: &config::Config, host: &Host, args: &RenderArgs) -> Result<ExitCode, AppError> {
    use crate::containerd::{config::ContainerdConfig, effective, render};
    let path = &args.nodeconfig;
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Read {
        path: path.clone(),
        source,
    })?;
    let config = crate::nodeconfig::parse::parse(&text).map_err(|e| {
        AppError::Invalid(match e.position {
            Some((l, c)) => format!("{}:{l}:{c}: {}", path.display(), e.message),
            None => format!("{}: {}", path.display(), e.message),
        })
    })?;
    let Some(inline) = config.spec.containerd.config.as_deref() else {
        println!(
            "# {} has no spec.containerd.config: nothing to correct",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    // nodeadm's sandbox image is only known from a live config.
    let live = std::fs::read_to_string(host.path(effective::MAIN_CONFIG))
        .ok()
        .and_then(|t| ContainerdConfig::parse(&t).ok())
        .and_then(|c| c.sandbox_image());
    if let Some(f) = crate::nodeconfig::validate::containerd_toml_finding(&config, &text) {
        let at = f
            .position
            .map(|(l, c)| format!(":{l}:{c}"))
            .unwrap_or_default();
        return Err(AppError::Invalid(format!(
            "{}{at}: {}",
            path.display(),
            f.message
        )));
    }
    let corrected = render::correct(inline, live.as_deref()).map_err(|e| {
        AppError::Invalid(format!("{}: spec.containerd.config: {e}", path.display()))
    })?;
    println!("# Corrected spec.containerd.config for {}", path.display());
    for r in &corrected.moved {
        println!(
            "# - registry.mirrors/configs.tls of {} moved to /etc/containerd/certs.d/{}/hosts.toml",
            r.host, r.host
        );
    }
    for r in &corrected.restored {
        println!("# - restored nodeadm setting: {r}");
    }
    let cri = ContainerdConfig::parse(inline)
        .map(|c| !c.cri_tables().is_empty())
        .unwrap_or(false);
    if cri && live.is_none() {
        println!(
            "# - sandbox_image: nodeadm's (region-specific) value is only known after init; \
             this file replaces it with containerd's default unless you set it here"
        );
    }
    if corrected.text.contains("auth") {
        println!("# Credentials are shown redacted: keep your current values.");
    }
    print!("{}", render::redact_credentials(&corrected.text));
    // The files the agent would write for the moved registries.
    use crate::registry::{desired, files, plan_for};
    let merged = desired::merge(&[], &corrected.moved, agent.registries.allow_skip_verify);
    let certs_d = agent.registries.certs_d.to_string_lossy();
    let (plan, _) = plan_for(&merged.registries, &certs_d, &agent.containerd.binary, host);
    for note in &merged.conflicts {
        println!("\n# note: {note}");
    }
    for refused in &merged.rejected {
        println!("\n# not configured: {refused}");
    }
    for (registry, e) in &plan.failed {
        println!(
            "\n# {registry}: {e}\n# (the agent writes this registry's files once that is fixed)"
        );
    }
    for f in &plan.files {
        match f.kind {
            files::Kind::HostsToml => {
                println!("\n# --- {}", f.path);
                print!("{}", f.contents);
            }
            files::Kind::Ca | files::Kind::Trust => println!("\n# --- {} (CA certificate)", f.path),
        }
    }
    Ok(ExitCode::SUCCESS)
}

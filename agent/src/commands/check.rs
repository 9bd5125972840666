//! `check` and `apply`: every domain once, then the report.

use crate::cli::{CheckArgs, Output, When};
use crate::config;
use crate::facts::Facts;
use crate::host::Host;
use crate::{metrics, report};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Runs every domain once (`mode`: whether files may be changed) and prints
/// the report; the exit code says the worst status.
pub fn check(
    config: &config::Config,
    host: &Host,
    args: &CheckArgs,
    mode: crate::domain::Mode,
) -> ExitCode {
    let facts = Facts::default();
    // Domains register metrics as they are built; `check` does not serve them.
    let mut registry = metrics::new_registry();
    let domains = crate::assemble::build_all(config, host, &mut registry, &facts, mode);
    let checks = crate::domain::run_once(domains, config.agent.probe_timeout.get());
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

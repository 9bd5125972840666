//! `hybrid-node-agent`: parse the command line, run it, map errors to exit
//! codes.

#![forbid(unsafe_code)]

use clap::Parser;
use hybrid_node_agent::{app, cli::Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "exiting: {e}");
            eprintln!("hybrid-node-agent: {e}");
            e.exit_code()
        }
    }
}

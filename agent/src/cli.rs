//! The command line.

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

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

#[derive(Debug, Parser)]
#[command(
    name = "hybrid-node-agent",
    version,
    about = "Preflight and continuous health checks for Amazon EKS hybrid nodes",
    long_about = "Checks that an on-premises host can join an Amazon EKS cluster as a hybrid \
                  node and stays healthy afterwards: nodeadm phase, NodeConfig, containerd \
                  registries and trust, NVIDIA GPUs and the network path. `check` runs \
                  everything once (before `nodeadm init`, say); `run` is the daemon systemd \
                  starts, serving Prometheus metrics."
)]
pub struct Cli {
    /// Agent config file [default: /etc/hybrid-node-agent/config.toml under --root;
    /// a missing default file means all defaults]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "HYBRID_NODE_AGENT_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Treat DIR as the host's root directory: every host path the agent
    /// reads or writes is taken under it
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: probe every domain on its schedule and serve
    /// /metrics, /status and /healthz
    Run(RunArgs),
    /// Run every check once and print a report; exit 0 if all pass,
    /// 1 on warnings, 2 on failures. Changes nothing on the host
    Check(CheckArgs),
    /// Reconcile the registry files once (hosts.toml, CA files, OS trust
    /// anchors), run every check and print the report, like `check`
    Apply(CheckArgs),
    /// Print the corrected NodeConfig `containerd.config` (legacy registry
    /// settings moved out, nodeadm's CRI settings restored) and the
    /// hosts.toml files that replace the registry settings; the host is not
    /// changed
    Render(RenderArgs),
    /// Check the config, then ask the running agent (PID) to reload it:
    /// systemd's ExecReload. An invalid config is reported with
    /// file:line:column and exit 64; the agent keeps the config in force
    Reload(ReloadArgs),
    /// Measure throughput against an iperf3 server (`iperf3 -s` in the
    /// VPC) with the built-in client; exit 0 pass, 1 warn, 2 fail against
    /// [network.bandwidth]'s thresholds
    Bandwidth(BandwidthArgs),
    /// Print the version
    Version,
    /// Print a shell completion script (bash, zsh, fish, …)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), hybrid-node-agent(8)
    #[command(hide = true)]
    Manpage,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Listen address of the HTTP endpoint, overriding agent.listen
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct BandwidthArgs {
    /// The iperf3 server: HOST, HOST:PORT or [IPV6]:PORT (port 5201 by default)
    #[arg(long, value_name = "HOST[:PORT]")]
    pub target: String,
    /// Test length (whole seconds, at most 5m)
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub duration: crate::config::Interval,
    /// Parallel TCP streams
    #[arg(long, short = 'P', value_name = "N", default_value_t = 10)]
    pub parallel: u16,
    /// Socket buffer size per stream, e.g. 512K [default: network.bandwidth.window]
    #[arg(long, short = 'w', value_name = "BYTES")]
    pub window: Option<String>,
    /// Measure the target → node direction (AWS → on-premises)
    #[arg(long, short = 'R')]
    pub reverse: bool,
    /// Output format
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    /// Process id of the running agent ($MAINPID in the unit); 0, 1 and
    /// negative ids (process groups, every process) are refused
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(i32).range(2..))]
    pub pid: i32,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The NodeConfig file (YAML or JSON)
    #[arg(long, value_name = "FILE")]
    pub nodeconfig: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Output format
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// When to colour the table
    #[arg(long, value_enum, default_value_t = When::Auto)]
    pub color: When,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum When {
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["hna", "check", "--root", "/tmp/x", "-o", "json"]).expect("parse");
        assert_eq!(cli.root, PathBuf::from("/tmp/x"));
        match cli.command {
            Command::Check(a) => assert_eq!(a.output, Output::Json),
            other => panic!("unexpected {other:?}"),
        }
    }
}

//! `hybrid-node-agent bandwidth`: one test on demand, with a progress line
//! on a terminal, judged against `[network.bandwidth]`'s thresholds.
//! Exit 0 pass, 1 warn, 2 fail (as `check`); a test that cannot run exits
//! 69, bad arguments 64, a cancelled test 130.

use super::checks;
use super::client::{self, BandwidthError, Cancel, Progress, TestResult, TestSpec};
use super::config::{
    format_bps, parse_bytes, BandwidthConfig, Direction, MAX_DURATION, MAX_PARALLEL,
};
use super::lock::{self, LockError};
use crate::check::Status;
use crate::config::Interval;
use crate::host::Host;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

/// What the command line asked for (parsed by `cli`).
#[derive(Debug, Clone)]
pub struct Request {
    pub target: String,
    pub duration: Interval,
    pub parallel: u16,
    pub window: Option<String>,
    pub reverse: bool,
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A bad argument: exit 64.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Test(#[from] BandwidthError),
    #[error("cannot wait for signals: {0}")]
    Runtime(#[source] std::io::Error),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage(_) => crate::cli::exit::USAGE,
            CommandError::Test(BandwidthError::Cancelled { .. }) => 130,
            CommandError::Lock(_) | CommandError::Test(_) => crate::cli::exit::UNAVAILABLE,
            CommandError::Runtime(_) => crate::cli::exit::SOFTWARE,
        }
    }
}

/// The report, as `--output json` prints it.
#[derive(Debug, serde::Serialize)]
struct Report<'a> {
    target: &'a str,
    address: SocketAddr,
    parallel: u16,
    window_bytes: Option<u32>,
    requested_seconds: u64,
    #[serde(flatten)]
    result: &'a TestResult,
    status: Status,
    summary: String,
    warn_below_bits_per_second: u64,
    critical_below_bits_per_second: u64,
}

pub fn run(cfg: &BandwidthConfig, host: &Host, req: &Request) -> Result<ExitCode, CommandError> {
    let d = req.duration.get();
    if d > MAX_DURATION || d.subsec_nanos() != 0 {
        return Err(CommandError::Usage(format!(
            "--duration must be whole seconds between 1s and {}s, got {}",
            MAX_DURATION.as_secs(),
            req.duration
        )));
    }
    if req.parallel == 0 || req.parallel > MAX_PARALLEL {
        return Err(CommandError::Usage(format!(
            "--parallel must be between 1 and {MAX_PARALLEL}, got {}",
            req.parallel
        )));
    }
    let window = match &req.window {
        Some(w) => parse_bytes(w).map_err(|e| CommandError::Usage(format!("--window: {e}")))?,
        None => cfg.window,
    };
    let addr = super::resolve(&req.target, super::proto::DEFAULT_PORT)
        .map_err(|e| CommandError::Usage(format!("--target: {e}")))?;
    let spec = TestSpec {
        addr,
        duration: d,
        parallel: req.parallel,
        window,
        direction: if req.reverse {
            Direction::Ingress
        } else {
            Direction::Egress
        },
    };
    let _lock = lock::try_acquire(host)?;
    let result = run_cancellable(spec.clone())?;
    let check = checks::check_for(&req.target, &result, spec.parallel, cfg);
    if req.json {
        let report = Report {
            target: &req.target,
            address: addr,
            parallel: spec.parallel,
            window_bytes: (window > 0).then_some(window),
            requested_seconds: d.as_secs(),
            result: &result,
            status: check.status,
            summary: check.summary.clone(),
            warn_below_bits_per_second: cfg.warn_below.bits_per_second(),
            critical_below_bits_per_second: cfg.critical_below.bits_per_second(),
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CommandError::Runtime(std::io::Error::other(e)))?;
        println!("{text}");
    } else {
        println!(
            "{}: {}",
            check.status.as_str().to_uppercase(),
            check.summary
        );
        println!(
            "  sender {}, receiver {} ({} bytes)",
            format_bps(result.sender_bits_per_second),
            format_bps(result.bits_per_second),
            result.bytes
        );
        if let Some(r) = &check.remedy {
            println!("  remedy: {r}");
        }
    }
    Ok(ExitCode::from(match check.status {
        Status::Fail => 2,
        Status::Warn | Status::Unknown => 1,
        Status::Pass | Status::NotApplicable => 0,
    }))
}

/// Runs the test on a thread while this one waits for SIGINT/SIGTERM, which
/// cancel it cleanly (the server is told).
fn run_cancellable(spec: TestSpec) -> Result<TestResult, CommandError> {
    let cancel = Cancel::default();
    let tty = std::io::stderr().is_terminal();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(CommandError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(CommandError::Runtime)?;
        let c = cancel.clone();
        let total = spec.duration;
        let mut job = tokio::task::spawn_blocking(move || {
            let mut show = |p: &Progress| {
                if tty {
                    let mut e = std::io::stderr().lock();
                    let _ = write!(
                        e,
                        "\r\x1b[K[{:>3}/{} s] {} {}",
                        p.elapsed.as_secs(),
                        total.as_secs(),
                        spec.direction.as_str(),
                        format_bps(p.bits_per_second)
                    );
                    let _ = e.flush();
                }
            };
            let mut r = client::run(&spec, &c, &mut show);
            // iperf3 (3.12) closes its listening socket for a moment
            // between two tests: a refused connection gets two more tries.
            for _ in 0..2 {
                match &r {
                    Err(BandwidthError::Connect { source, .. })
                        if source.kind() == std::io::ErrorKind::ConnectionRefused
                            && !c.is_cancelled() =>
                    {
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        r = client::run(&spec, &c, &mut show);
                    }
                    _ => break,
                }
            }
            if tty {
                eprint!("\r\x1b[K");
            }
            r
        });
        let joined = tokio::select! {
            r = &mut job => r,
            _ = term.recv() => { cancel.cancel(); job.await }
            _ = int.recv() => { cancel.cancel(); job.await }
        };
        joined
            .map_err(|e| CommandError::Runtime(std::io::Error::other(e)))?
            .map_err(CommandError::from)
    })
}

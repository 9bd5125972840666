//! Logging through `tracing`: structured records to the journal when stderr
//! is connected to it (systemd sets `JOURNAL_STREAM`), human-readable lines
//! on stderr otherwise. The level comes from `RUST_LOG` or the config and can
//! be changed on reload.

use std::os::unix::fs::MetadataExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Parses a filter such as `info` or `hybrid_node_agent=debug,hyper=warn`.
///
/// A directive without `=` must be a level: `tracing` would read `inof` as
/// a target name and silently log nothing.
pub fn parse_filter(spec: &str) -> Result<Targets, FilterError> {
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(FilterError::Level {
                spec: spec.to_owned(),
                level: level.to_owned(),
            });
        }
    }
    spec.trim()
        .parse::<Targets>()
        .map_err(|e| FilterError::Syntax {
            spec: spec.to_owned(),
            reason: e.to_string(),
        })
}

/// Why a log filter was refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("invalid log filter {spec:?}: {level:?} is not one of {}", LEVELS.join(", "))]
    Level { spec: String, level: String },
    #[error("invalid log filter {spec:?}: {reason}")]
    Syntax { spec: String, reason: String },
}

/// Changes the log filter of a running process.
#[derive(Debug, Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<Targets, Registry>>,
    env_override: bool,
}

impl LogControl {
    /// Applies the config's `log_level`, unless `RUST_LOG` overrides it.
    pub fn set_level(&self, spec: &str) {
        if self.env_override {
            return;
        }
        let Some(handle) = &self.handle else { return };
        match parse_filter(spec) {
            Ok(filter) => {
                if let Err(e) = handle.reload(filter) {
                    tracing::warn!(error = %e, "cannot change the log level: {e}");
                }
            }
            Err(e) => tracing::warn!(error = %e, "log level not changed: {e}"),
        }
    }
}

/// Where the log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journal,
    Stderr,
}

/// Whether stderr is the journal stream systemd connected us to: systemd sets
/// `JOURNAL_STREAM=<device>:<inode>` of the socket on stderr, and the check
/// keeps a child that merely inherited the variable from logging there.
pub fn stderr_is_journal() -> bool {
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Installs the global subscriber. `config_level` is used unless `RUST_LOG`
/// is set. Call once, before any thread is spawned.
pub fn init(config_level: &str) -> LogControl {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let env_filter = env.as_deref().and_then(|s| parse_filter(s).ok());
    let env_override = env_filter.is_some();
    let filter = env_filter
        .or_else(|| parse_filter(config_level).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let (filter, handle) = reload::Layer::new(filter);

    let sink = if stderr_is_journal() {
        Sink::Journal
    } else {
        Sink::Stderr
    };
    let output: Box<dyn Layer<_> + Send + Sync> = match sink {
        Sink::Journal => match tracing_journald::layer() {
            Ok(layer) => layer
                .with_syslog_identifier("hybrid-node-agent".into())
                .boxed(),
            Err(_) => stderr_layer(),
        },
        Sink::Stderr => stderr_layer(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok();
    LogControl {
        handle: installed.then_some(handle),
        env_override,
    }
}

fn stderr_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal;
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert!(parse_filter("info").is_ok());
        assert!(parse_filter("hybrid_node_agent=debug,hyper=warn").is_ok());
        assert!(parse_filter("warn,").is_ok());
        assert!(parse_filter("loud").is_err());
        assert!(parse_filter("hyper=loud").is_err());
        assert!(parse_filter("DEBUG").is_ok());
    }
}

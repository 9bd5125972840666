//! The domains the agent checks, behind one trait, and the one-shot runner
//! the `check` command uses. The daemon's scheduler lives in `daemon`.

use crate::check::{Check, Status};
use crate::config::Config;
use crate::facts::Facts;
use crate::host::Host;
use prometheus_client::registry::Registry;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One area of the host the agent watches (lifecycle, nodeconfig, registry,
/// gpu, network).
///
/// `run` is synchronous and may block (files, NVML, sockets): the daemon runs
/// it on a blocking thread with a timeout, so a hung probe never stalls the
/// endpoint or the other domains.
pub trait Domain: Send + std::fmt::Debug + 'static {
    /// The `domain` label value.
    fn name(&self) -> &'static str;
    /// How long to wait between runs.
    fn interval(&self) -> Duration;
    /// Probes the host and returns the domain's checks; metrics are updated
    /// as a side effect.
    fn run(&mut self) -> Vec<Check>;
    /// Takes a new, already validated config. State that is not derived from
    /// the config (counters, histories) is kept.
    fn reconfigure(&mut self, config: &Config);
    /// Domains whose facts this one uses: `check` runs them first.
    fn after(&self) -> &'static [&'static str] {
        &[]
    }
    /// Woken to run before the interval is up (a file changed, a fact this
    /// domain depends on was published).
    fn trigger(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
    /// How long to let triggers settle before running (file events come in
    /// bursts: write, close, rename).
    fn debounce(&self) -> Duration {
        Duration::ZERO
    }
}

/// Builds every domain, registering their metrics in `registry`. `mode`
/// says whether domains that manage files may change the host.
pub fn build_all(
    config: &Config,
    host: &Host,
    registry: &mut Registry,
    facts: &Facts,
    mode: crate::registry::Mode,
) -> Vec<Box<dyn Domain>> {
    vec![
        Box::new(crate::lifecycle::Lifecycle::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::nodeconfig::NodeConfigDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::containerd::ContainerdDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::registry::RegistryDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            mode,
        )),
        Box::new(crate::gpu::GpuDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::net::NetworkDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::ports::PortsDomain::new(
            config,
            host.clone(),
            facts.clone(),
        )),
        Box::new(crate::path::PathDomain::new(
            config,
            registry,
            Box::new(crate::path::probe::UdpTracer),
        )),
        Box::new(crate::dns::DnsDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            Box::new(crate::dns::query::NetLookup),
        )),
        Box::new(crate::bandwidth::BandwidthDomain::new(
            config,
            host.clone(),
            registry,
        )),
    ]
}

/// The check reported for a run that did not finish in time.
pub fn timed_out(domain: &'static str, timeout: Duration) -> Check {
    Check::new(
        domain,
        "probe",
        Status::Unknown,
        format!("the {domain} probe did not finish within {timeout:?}"),
    )
    .with_remedy("see the agent's log; raise agent.probe_timeout if the host is merely slow")
}

/// The check reported for a run that panicked (a bug, never expected).
pub fn crashed(domain: &'static str) -> Check {
    Check::new(
        domain,
        "probe",
        Status::Unknown,
        format!("the {domain} probe crashed"),
    )
    .with_remedy("see the agent's log and report the bug")
}

/// Runs every domain once, each bounded by `timeout`: in waves, a domain
/// after the domains it depends on ([`Domain::after`]), the domains of a
/// wave in parallel. A domain that does not finish in time is reported as
/// such and left behind.
pub fn run_once(domains: Vec<Box<dyn Domain>>, timeout: Duration) -> Vec<Check> {
    let mut waiting = domains;
    let mut done: Vec<&'static str> = Vec::new();
    let mut checks = Vec::new();
    while !waiting.is_empty() {
        let names: Vec<&'static str> = waiting.iter().map(|d| d.name()).collect();
        let (ready, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|d| {
            d.after()
                .iter()
                .all(|dep| done.contains(dep) || !names.contains(dep))
        });
        if ready.is_empty() {
            // A dependency cycle: run the rest together rather than never.
            done.extend(rest.iter().map(|d| d.name()));
            checks.extend(run_wave(rest, timeout));
            break;
        }
        done.extend(ready.iter().map(|d| d.name()));
        checks.extend(run_wave(ready, timeout));
        waiting = rest;
    }
    checks
}

fn run_wave(domains: Vec<Box<dyn Domain>>, timeout: Duration) -> Vec<Check> {
    let (tx, rx) = mpsc::channel();
    let mut pending = Vec::with_capacity(domains.len());
    let mut checks = Vec::new();
    for mut d in domains {
        let name = d.name();
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("check-{name}"))
            .spawn(move || {
                let checks = d.run();
                let _ = tx.send((name, checks));
            });
        match spawned {
            Ok(handle) => pending.push((name, handle)),
            Err(_) => checks.push(crashed(name)),
        }
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((name, mut c)) => {
                pending.retain(|(p, _)| *p != name);
                checks.append(&mut c);
            }
            // Timeout, or every thread has ended (the rest panicked).
            Err(_) => break,
        }
    }
    // A thread that ended without sending panicked; one still running is
    // left behind (the process exits after printing).
    checks.extend(pending.into_iter().map(|(name, handle)| {
        if handle.is_finished() {
            crashed(name)
        } else {
            timed_out(name, timeout)
        }
    }));
    checks
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A domain that returns fixed checks after an optional delay.
    #[derive(Debug)]
    pub(crate) struct Scripted {
        pub name: &'static str,
        pub delay: Duration,
        pub status: Status,
        pub panic: bool,
    }

    impl Domain for Scripted {
        fn name(&self) -> &'static str {
            self.name
        }
        fn interval(&self) -> Duration {
            Duration::from_millis(50)
        }
        fn run(&mut self) -> Vec<Check> {
            std::thread::sleep(self.delay);
            assert!(!self.panic, "scripted panic");
            vec![Check::new(self.name, "only", self.status, "scripted")]
        }
        fn reconfigure(&mut self, _: &Config) {}
    }

    fn scripted(name: &'static str, delay_ms: u64, panic: bool) -> Box<dyn Domain> {
        Box::new(Scripted {
            name,
            delay: Duration::from_millis(delay_ms),
            status: Status::Pass,
            panic,
        })
    }

    #[test]
    fn run_once_collects_times_out_and_survives_panics() {
        let checks = run_once(
            vec![
                scripted("fast", 0, false),
                scripted("slow", 5_000, false),
                scripted("broken", 0, true),
            ],
            Duration::from_millis(300),
        );
        let find = |d: &str| checks.iter().find(|c| c.domain == d).expect("present");
        assert_eq!(find("fast").status, Status::Pass);
        assert_eq!(find("slow").status, Status::Unknown);
        assert!(find("slow").summary.contains("did not finish"));
        assert_eq!(find("broken").status, Status::Unknown);
        assert_eq!(checks.len(), 3);
    }
}

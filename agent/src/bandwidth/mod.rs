//! Bandwidth toward the site's iperf3 servers (`iperf3 -s` on an instance
//! in the VPC), both ways: the adoption guide's `iperf3 -c <endpoint> -t 60
//! -P 10 -w 512K` without an iperf3 binary on the node.
//!
//! A test saturates the Direct Connect link, so scheduled tests are off by
//! default (`[network.bandwidth] enabled`), run one at a time on a worker
//! thread of their own (never inside a domain run, which must stay short),
//! and are cancelled when the agent stops or the config changes: the server
//! is told (CLIENT_TERMINATE) and is free for the next client at once. The
//! domain's `run` only turns the latest results into checks.

pub mod checks;
pub mod client;
pub mod command;
pub use crate::config::bandwidth as config;
pub mod lock;
pub mod metrics;
pub mod proto;
mod streams;
mod summary;
mod target;

use crate::check::{Check, Status};
use crate::config::{Config, NetworkTarget};
use crate::domain::Domain;
use crate::host::Host;
use client::{Cancel, TestResult, TestSpec};
use config::{BandwidthConfig, Direction};
use metrics::{Metrics, ResultLabels, TestLabels};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
pub use target::{resolve, TargetError};

pub const DOMAIN: &str = "bandwidth";
/// How long stopping waits for a cancelled test to tell its server.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Tries after the first when the server is busy with another client, and
/// the wait before each.
const BUSY_RETRIES: u32 = 3;
const BUSY_WAIT: Duration = Duration::from_secs(5);
const REFUSED_WAIT: Duration = Duration::from_secs(1);
/// The first scheduled round starts this long after the agent (or at the
/// interval, if shorter): a restart loop must not flood the link.
const FIRST_ROUND_DELAY: Duration = Duration::from_secs(60);

/// A target with an iperf3 port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scheduled {
    name: String,
    address: String,
    port: u16,
}

#[derive(Debug, Clone)]
enum Outcome {
    Done { result: TestResult, parallel: u16 },
    Failed(String),
}

type Results = Arc<Mutex<BTreeMap<(String, Direction), Outcome>>>;

#[derive(Debug)]
struct Worker {
    cancel: Cancel,
    done: mpsc::Receiver<()>,
}

impl Worker {
    /// Cancels a running test and waits (bounded) for the server to be told.
    fn stop(self) {
        self.cancel.cancel();
        let _ = self.done.recv_timeout(STOP_GRACE);
    }
}

#[derive(Debug)]
pub struct BandwidthDomain {
    cfg: BandwidthConfig,
    targets: Vec<Scheduled>,
    interval: Duration,
    host: Host,
    metrics: Metrics,
    results: Results,
    worker: Option<Worker>,
}

fn scheduled(targets: &[NetworkTarget]) -> Vec<Scheduled> {
    targets
        .iter()
        .filter_map(|t| {
            t.iperf_port.map(|port| Scheduled {
                name: t.name.clone(),
                address: t.address.clone(),
                port,
            })
        })
        .collect()
}

impl BandwidthDomain {
    pub fn new(config: &Config, host: Host, registry: &mut Registry) -> Self {
        let mut d = BandwidthDomain {
            cfg: config.network.bandwidth.clone(),
            targets: scheduled(&config.network.target),
            interval: config.network.interval.get(),
            host,
            metrics: Metrics::register(registry),
            results: Results::default(),
            worker: None,
        };
        d.start();
        d
    }

    fn start(&mut self) {
        if !self.cfg.enabled || self.targets.is_empty() {
            return;
        }
        let cancel = Cancel::default();
        let (done_tx, done) = mpsc::channel();
        let job = Job {
            cfg: self.cfg.clone(),
            targets: self.targets.clone(),
            host: self.host.clone(),
            metrics: self.metrics.clone(),
            results: self.results.clone(),
            cancel: cancel.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("hna-bandwidth".into())
            .spawn(move || {
                job.run();
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(_) => self.worker = Some(Worker { cancel, done }),
            Err(e) => tracing::error!("cannot start the bandwidth test thread: {e}"),
        }
    }
}

impl Drop for BandwidthDomain {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop();
        }
    }
}

/// The scheduled rounds, on their own thread.
struct Job {
    cfg: BandwidthConfig,
    targets: Vec<Scheduled>,
    host: Host,
    metrics: Metrics,
    results: Results,
    cancel: Cancel,
}

impl Job {
    fn run(self) {
        let mut next = Instant::now() + self.cfg.interval.get().min(FIRST_ROUND_DELAY);
        loop {
            while Instant::now() < next {
                if self.cancel.is_cancelled() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            for t in &self.targets {
                for &direction in &self.cfg.directions {
                    if self.cancel.is_cancelled() {
                        return;
                    }
                    let outcome = self.one(t, direction);
                    let labels = |result| ResultLabels {
                        target: t.name.as_str().into(),
                        direction: direction.as_str(),
                        result,
                    };
                    match &outcome {
                        Outcome::Done { result, .. } => {
                            let l = TestLabels {
                                target: t.name.as_str().into(),
                                direction: direction.as_str(),
                            };
                            self.metrics
                                .bits_per_second
                                .get_or_create(&l)
                                .set(result.bits_per_second);
                            self.metrics.last_test.get_or_create(&l).set(
                                SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .map_or(0.0, |d| d.as_secs_f64()),
                            );
                            self.metrics.tests.get_or_create(&labels("ok")).inc();
                        }
                        Outcome::Failed(e) => {
                            if self.cancel.is_cancelled() {
                                return;
                            }
                            tracing::warn!(target = %t.name, direction = direction.as_str(), "bandwidth test toward {} failed: {e}", t.name);
                            self.metrics.tests.get_or_create(&labels("error")).inc();
                        }
                    }
                    self.results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert((t.name.clone(), direction), outcome);
                }
            }
            next = Instant::now() + self.cfg.interval.get();
        }
    }

    fn one(&self, t: &Scheduled, direction: Direction) -> Outcome {
        let addr = match resolve(&t.address, t.port) {
            Ok(a) => SocketAddr::new(a.ip(), t.port),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let _lock = match lock::try_acquire(&self.host) {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let spec = TestSpec {
            addr,
            duration: self.cfg.duration.get(),
            parallel: self.cfg.parallel,
            window: self.cfg.window,
            direction,
        };
        self.metrics.running.set(1);
        // Several nodes may share one server, which runs one test at a
        // time: a busy server gets a few more tries. iperf3 (3.12) also
        // closes its listening socket for a moment between two tests: a
        // refused connection is retried sooner.
        let mut r = client::run(&spec, &self.cancel, &mut |_| {});
        for _ in 0..BUSY_RETRIES {
            let wait = match &r {
                Err(client::BandwidthError::Busy { .. }) => BUSY_WAIT,
                Err(client::BandwidthError::Connect { source, .. })
                    if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                {
                    REFUSED_WAIT
                }
                _ => break,
            };
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(100));
            }
            r = client::run(&spec, &self.cancel, &mut |_| {});
        }
        self.metrics.running.set(0);
        match r {
            Ok(result) => Outcome::Done {
                result,
                parallel: self.cfg.parallel,
            },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

impl Domain for BandwidthDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        // Results arrive from the worker; publishing them is cheap.
        self.interval
    }

    fn reconfigure(&mut self, config: &Config) {
        self.interval = config.network.interval.get();
        let targets = scheduled(&config.network.target);
        if config.network.bandwidth == self.cfg && targets == self.targets {
            return;
        }
        if let Some(w) = self.worker.take() {
            w.stop();
        }
        self.cfg = config.network.bandwidth.clone();
        self.targets = targets;
        let keep: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _), _| keep.contains(&n.as_str()));
        self.start();
    }

    fn run(&mut self) -> Vec<Check> {
        if self.targets.is_empty() {
            return vec![Check::not_applicable(
                DOMAIN,
                "bandwidth",
                "no [[network.target]] names an iperf_port; run `hybrid-node-agent bandwidth --target HOST` by hand",
            )];
        }
        if !self.cfg.enabled {
            return vec![Check::not_applicable(
                DOMAIN,
                "bandwidth",
                "scheduled bandwidth tests are off (they saturate the link): set [network.bandwidth] enabled = true, or run `hybrid-node-agent bandwidth --target HOST` by hand",
            )];
        }
        let results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for t in &self.targets {
            for &d in &self.cfg.directions {
                let id = checks::check_id(&t.name, d.as_str());
                out.push(match results.get(&(t.name.clone(), d)) {
                    Some(Outcome::Done { result, parallel }) => {
                        checks::check_for(&t.name, result, *parallel, &self.cfg)
                    }
                    Some(Outcome::Failed(e)) => Check::new(DOMAIN, id, Status::Unknown, e.clone())
                        .with_remedy("check that `iperf3 -s` runs on the target and that its port is open in the security group"),
                    None => Check::new(
                        DOMAIN,
                        id,
                        Status::Unknown,
                        format!(
                            "not measured yet: scheduled every {}",
                            self.cfg.interval
                        ),
                    ),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

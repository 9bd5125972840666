//! The long-running agent: each domain on its own schedule, the HTTP
//! endpoint, systemd notifications, and signals (SIGTERM/SIGINT stop,
//! SIGHUP reloads the config).

use crate::config::{Config, ConfigSource};
use crate::domain::{self, Domain};
use crate::facts::Facts;
use crate::host::Host;
use crate::logging::LogControl;
use crate::metrics::server::{self, Endpoint, WebState};
use crate::metrics::webconfig::{self, WebConfig};
use crate::metrics::{self, CoreMetrics};
use crate::state::{Cache, Outcome, Snapshot};
use crate::systemd::Notifier;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The tokio runtime or a signal handler could not be set up.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The web config (TLS, auth) named in the agent config is invalid.
    #[error(transparent)]
    WebConfig(#[from] crate::metrics::webconfig::WebConfigError),
    /// The HTTP endpoint's address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What `hybrid-node-agent run` was started with.
#[derive(Debug)]
pub struct Options {
    pub source: ConfigSource,
    pub config: Config,
    pub host: Host,
    /// `--listen`: wins over the config, also across reloads.
    pub listen_override: Option<SocketAddr>,
    pub log: LogControl,
}

impl Options {
    fn listen(&self, config: &Config) -> SocketAddr {
        self.listen_override.unwrap_or(config.agent.listen)
    }
}

/// Runs until SIGTERM or SIGINT.
pub fn run(options: Options) -> Result<(), DaemonError> {
    // One thread for the endpoint and the schedules; probes run on the
    // blocking pool. This keeps the idle footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(16)
        .thread_name("hna-probe")
        .build()
        .map_err(DaemonError::Runtime)?;
    let result = runtime.block_on(run_async(options));
    // A probe stuck in a blocking call (a syscall no deadline reaches) must
    // not hold the exit: its thread is abandoned, not joined, so the agent
    // stops well within systemd's TimeoutStopSec whatever a probe does.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

/// How long stopping waits for probe threads still running.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

async fn run_async(options: Options) -> Result<(), DaemonError> {
    let notifier = Notifier;
    let cache = Arc::new(Cache::default());
    let facts = Facts::default();
    let mut registry = metrics::new_registry();
    let core = CoreMetrics::register(&mut registry, cache.clone(), SystemTime::now());
    let domains = crate::assemble::build_all(
        &options.config,
        &options.host,
        &mut registry,
        &facts,
        crate::domain::Mode::Apply,
    );
    let endpoint = Arc::new(Endpoint {
        registry: Arc::new(registry),
        cache: cache.clone(),
        facts: facts.clone(),
        rendered: Default::default(),
    });

    let web = Arc::new(WebState::new(load_web(&options.config.web.config_file)?));

    let mut listen = options.listen(&options.config);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: listen,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(listen);
    tracing::info!(addr = %bound, root = %options.host.root().display(), "listening on {bound}");

    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Runtime)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Runtime)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Runtime)?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (rebind_tx, rebind_rx) = mpsc::channel(1);
    let server = tokio::spawn(server::serve(
        listener,
        endpoint,
        web.clone(),
        options.config.agent.max_connections,
        rebind_rx,
        shutdown_rx.clone(),
    ));

    let (config_tx, config_rx) = watch::channel(Arc::new(options.config.clone()));
    tokio::spawn(follow_web_config(
        web,
        config_rx.clone(),
        core.clone(),
        shutdown_rx.clone(),
    ));
    let (ran_tx, mut ran_rx) = mpsc::channel::<&'static str>(64);
    let mut waiting_for: BTreeSet<&'static str> = domains.iter().map(|d| d.name()).collect();
    for d in domains {
        tokio::spawn(schedule(
            d,
            config_rx.clone(),
            cache.clone(),
            core.clone(),
            ran_tx.clone(),
            shutdown_rx.clone(),
        ));
    }
    drop(ran_tx);

    let mut watchdog = notifier.watchdog_interval().map(tokio::time::interval);
    let mut ready = false;
    let mut last_status = String::new();
    loop {
        tokio::select! {
            Some(name) = ran_rx.recv() => {
                waiting_for.remove(name);
                let status = status_line(&cache, &facts);
                if !ready && waiting_for.is_empty() {
                    ready = true;
                    tracing::info!(status = %status, "ready: {status}");
                    notifier.ready(&status);
                    last_status = status;
                } else if ready && status != last_status {
                    notifier.status(&status);
                    last_status = status;
                }
            }
            _ = tick(&mut watchdog) => notifier.watchdog(),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                notifier.reloading();
                match reload(&options, listen, &rebind_tx).await {
                    Ok(config) => {
                        listen = options.listen(&config);
                        options.log.set_level(&config.agent.log_level);
                        core.observe_reload(true);
                        tracing::info!(path = %options.source.path.display(), "config {} reloaded", options.source.path.display());
                        config_tx.send_replace(Arc::new(config));
                    }
                    Err(e) => {
                        core.observe_reload(false);
                        tracing::error!(error = %e, "config reload failed: {e}; the previous config stays in force");
                    }
                }
                let status = status_line(&cache, &facts);
                notifier.ready(&status);
                last_status = status;
            }
        }
    }

    tracing::info!("stopping");
    notifier.stopping();
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    Ok(())
}

/// Reads the config again; moves the endpoint if the listen address
/// changed (the server binds it: see [`server::Rebind`]).
async fn reload(
    options: &Options,
    current_listen: SocketAddr,
    rebind: &mpsc::Sender<server::Rebind>,
) -> Result<Config, String> {
    let config = options.source.load().map_err(|e| e.to_string())?;
    let listen = options.listen(&config);
    if listen == current_listen {
        return Ok(config);
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    rebind
        .send(server::Rebind {
            addr: listen,
            reply,
        })
        .await
        .map_err(|_| "the HTTP server has stopped".to_owned())?;
    match answer.await {
        Ok(Ok(_)) => Ok(config),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the HTTP server has stopped".to_owned()),
    }
}

async fn triggered(trigger: Option<&tokio::sync::Notify>) {
    match trigger {
        Some(t) => t.notified().await,
        None => std::future::pending().await,
    }
}

/// The web config configures the agent itself (like `--config`), not the
/// host it inspects: its paths are taken as they are, not under `--root`.
fn load_web(path: &str) -> Result<WebConfig, DaemonError> {
    if path.is_empty() {
        return Ok(WebConfig::default());
    }
    let w = webconfig::load(&Host::default(), std::path::Path::new(path))
        .map_err(DaemonError::WebConfig)?;
    for warning in &w.warnings {
        tracing::warn!(path, "{warning}");
    }
    Ok(w)
}

/// How often the web config and the certificates it names are checked for
/// changes (certificates are renewed in place by cert-manager-like tools).
const WEB_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Reloads the web config when its file, a file it names, or its path in
/// the agent config changes. A config that does not load is logged and
/// counted; the previous one stays in force.
async fn follow_web_config(
    web: Arc<WebState>,
    mut config: watch::Receiver<Arc<Config>>,
    core: CoreMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let host = Host::default();
    let mut path = config.borrow().web.config_file.clone();
    let mut seen = webconfig::fingerprint(&host, &web.get().files);
    let mut tick = tokio::time::interval(WEB_POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
        let new_path = config.borrow_and_update().web.config_file.clone();
        let files = web.get().files.clone();
        let now = webconfig::fingerprint(&host, &files);
        if new_path == path && now == seen {
            continue;
        }
        path = new_path;
        seen = now;
        match load_web(&path) {
            Ok(w) => {
                seen = webconfig::fingerprint(&host, &w.files);
                web.set(w);
                core.observe_web_reload(true);
                tracing::info!(path, "web config {path} reloaded");
            }
            Err(e) => {
                core.observe_web_reload(false);
                tracing::error!(error = %e, "web config rejected: {e}; the previous one stays in force");
            }
        }
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `phase=initialized; 12 pass, 1 warn, 0 fail`
fn status_line(cache: &Cache, facts: &Facts) -> String {
    let phase = facts.phase().map_or("unknown", |p| p.as_str());
    format!("phase={phase}; {}", cache.report().tally())
}

/// Runs one domain forever: run, publish, wait for its interval or a config
/// change, repeat. A run that overruns `agent.probe_timeout` is published as
/// timed out; its results replace that once it does finish.
async fn schedule(
    domain: Box<dyn Domain>,
    mut config: watch::Receiver<Arc<Config>>,
    cache: Arc<Cache>,
    core: CoreMetrics,
    ran: mpsc::Sender<&'static str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = domain.name();
    core.init_domain(name);
    let mut slot = Some(domain);
    while let Some(mut d) = slot.take() {
        let timeout = config.borrow().agent.probe_timeout.get();
        let started = Instant::now();
        let mut job = tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| d.run()));
            (d, result)
        });
        let publish = |outcome: Outcome, checks, count: bool| {
            let duration = started.elapsed();
            if count {
                core.observe_run(name, outcome, duration);
            }
            cache.store(
                name,
                Snapshot {
                    checks,
                    finished_at: SystemTime::now(),
                    duration,
                    outcome,
                },
            );
        };
        let (joined, in_time) = match tokio::time::timeout(timeout, &mut job).await {
            Ok(joined) => (joined, true),
            Err(_) => {
                tracing::warn!(
                    domain = name,
                    ?timeout,
                    "the {name} probe did not finish within {timeout:?}"
                );
                publish(
                    Outcome::Timeout,
                    vec![domain::timed_out(name, timeout)],
                    true,
                );
                let _ = ran.send(name).await;
                // Its results still count when it finishes; a stop does not
                // wait for it.
                tokio::select! {
                    joined = &mut job => (joined, false),
                    _ = shutdown.changed() => break,
                }
            }
        };
        match joined {
            Ok((d, Ok(checks))) => {
                publish(Outcome::Ok, checks, in_time);
                slot = Some(d);
            }
            Ok((d, Err(_))) => {
                tracing::error!(
                    domain = name,
                    "the {name} probe panicked (a bug: please report it)"
                );
                publish(Outcome::Error, vec![domain::crashed(name)], in_time);
                slot = Some(d);
            }
            Err(e) => {
                // The blocking task itself failed; the domain is gone.
                tracing::error!(domain = name, error = %e, "the {name} probe task failed ({e}); the domain stopped");
                publish(Outcome::Error, vec![domain::crashed(name)], in_time);
            }
        }
        let _ = ran.send(name).await;
        let Some(d) = slot.as_mut() else { break };
        let trigger = d.trigger();
        let debounce = d.debounce();
        tokio::select! {
            _ = tokio::time::sleep(d.interval()) => {}
            _ = triggered(trigger.as_deref()) => {
                // Coalesce the rest of the burst into this run.
                tokio::time::sleep(debounce).await;
            }
            changed = config.changed() => {
                if changed.is_err() {
                    break;
                }
                let new = config.borrow_and_update().clone();
                d.reconfigure(&new);
            }
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::domain::tests::Scripted;
    use std::time::Duration;

    /// Runs `d` under the scheduler; returns the report after its first
    /// publication, the cache at the end and the metrics text. The stop
    /// comes `wait` after the first publication, or (`wait` zero) right
    /// after the second.
    async fn run_schedule(
        d: Scripted,
        timeout: &str,
        wait: Duration,
    ) -> (crate::check::Report, Arc<Cache>, String) {
        let mut config = Config::default();
        config.agent.probe_timeout = timeout.parse().expect("interval");
        let (_config_tx, config_rx) = watch::channel(Arc::new(config));
        let cache = Arc::new(Cache::default());
        let mut registry = metrics::new_registry();
        let core = CoreMetrics::register(&mut registry, cache.clone(), SystemTime::now());
        let (ran_tx, mut ran_rx) = mpsc::channel(64);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(schedule(
            Box::new(d),
            config_rx,
            cache.clone(),
            core,
            ran_tx,
            shutdown_rx,
        ));
        let _ = ran_rx.recv().await;
        let first = cache.report();
        tokio::time::sleep(wait).await;
        if wait.is_zero() {
            // Or until the next publication (a late result), at most 2 s.
            let _ = tokio::time::timeout(Duration::from_secs(2), ran_rx.recv()).await;
        }
        let _ = shutdown_tx.send(true);
        let _ = task.await;
        let text = metrics::encode(&registry, metrics::Format::Prometheus).unwrap_or_default();
        (first, cache, text)
    }

    /// A run stuck far past its timeout does not hold a stop: the scheduler
    /// leaves it behind instead of waiting for it.
    #[tokio::test]
    async fn a_stuck_run_does_not_hold_the_stop() {
        let d = Scripted {
            name: "stuck",
            delay: Duration::from_secs(3),
            status: Status::Pass,
            panic: false,
        };
        let started = std::time::Instant::now();
        let (first, cache, _) = run_schedule(d, "100ms", Duration::from_millis(1)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the stop waited {:?} for the stuck run",
            started.elapsed()
        );
        assert_eq!(first.checks[0].status, Status::Unknown);
        assert_eq!(cache.report().checks[0].status, Status::Unknown);
    }

    #[tokio::test]
    async fn a_slow_run_is_reported_as_timed_out_then_replaced() {
        let d = Scripted {
            name: "slow",
            delay: Duration::from_millis(300),
            status: Status::Pass,
            panic: false,
        };
        let (first, cache, text) = run_schedule(d, "100ms", Duration::ZERO).await;
        assert_eq!(first.checks[0].status, Status::Unknown, "{first:?}");
        assert!(first.checks[0]
            .summary
            .contains("did not finish within 100ms"));
        // The late result replaced the timeout once the run finished.
        assert_eq!(cache.report().checks[0].status, Status::Pass);
        assert!(
            text.contains("hybrid_node_probe_runs_total{domain=\"slow\",result=\"timeout\"} 1"),
            "{text}"
        );

        let d = Scripted {
            name: "slow",
            delay: Duration::from_millis(150),
            status: Status::Pass,
            panic: false,
        };
        let (_, cache, text) = run_schedule(d, "1s", Duration::from_millis(100)).await;
        assert_eq!(cache.report().checks[0].status, Status::Pass);
        assert!(
            text.contains("hybrid_node_probe_runs_total{domain=\"slow\",result=\"timeout\"} 0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_panicking_domain_keeps_being_scheduled() {
        let d = Scripted {
            name: "broken",
            delay: Duration::ZERO,
            status: Status::Pass,
            panic: true,
        };
        let (_, cache, text) = run_schedule(d, "1s", Duration::from_millis(200)).await;
        assert_eq!(cache.report().checks[0].summary, "the broken probe crashed");
        // Interval is 50 ms: several runs happened despite the panics.
        let runs: f64 = text
            .lines()
            .find(|l| {
                l.starts_with("hybrid_node_probe_runs_total{domain=\"broken\",result=\"error\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(runs >= 2.0, "{text}");
    }
}

//! The registry domain: turn the registries of the NodeConfig and the agent
//! config into containerd `certs.d/<host>/hosts.toml` files, CA files and
//! OS trust anchors (reconciled: render → compare → atomic write), and probe
//! every endpoint over TLS with exactly the trust containerd will use.

pub mod ca;
mod checks;
pub mod desired;
pub mod files;
pub mod hosts_toml;
mod metrics;

pub mod probe;
pub mod trust;

use crate::check::{Check, Status};
use crate::config::{Config, RegistriesConfig, RegistryEntry};
use crate::domain::Domain;
use crate::edge::containerd::{Binary, ContainerdTool};
use crate::edge::systemctl::ServiceManager;
use crate::facts::Facts;
use crate::host::Host;
use crate::metrics::ResultLabel;
use crate::time::rfc3339;
use desired::Desired;
use files::{Ledger, Outcome, Plan};
use hosts_toml::Features;
use probe::{ProbeResult, TlsSettings};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use trust::{Family as OsFamily, TrustTool};

pub const DOMAIN: &str = crate::check::names::REGISTRY;

/// The programs the registry domain runs on the host.
#[derive(Debug)]
pub struct Edges {
    /// Rebuilds the OS trust bundles.
    pub trust_tool: Box<dyn TrustTool>,
    /// Restarts containerd after the trust store changed.
    pub services: Box<dyn ServiceManager>,
}

/// The most the OS CA bundle may hold: a few hundred certificates are a
/// few hundred kilobytes.
const MAX_BUNDLE: u64 = 16 * crate::host::MAX_PEM_FILE;

use crate::domain::Mode;

use metrics::*;

/// The files `desired` needs, rendered for this host: its OS family (trust
/// anchors) and the installed containerd's version (hosts.toml features).
/// Shared by the domain and `render`.
pub fn plan_for(
    desired: &[Desired],
    certs_d: &str,
    containerd_binary: &str,
    host: &Host,
) -> (Plan, Option<OsFamily>) {
    let family = OsFamily::detect(host);
    // Only needed to render hosts.toml: spare the exec when there is none.
    let version = if desired.is_empty() {
        None
    } else {
        Binary::find(containerd_binary).and_then(|b| b.version())
    };
    let plan = files::plan(
        desired,
        certs_d,
        family,
        host,
        Features::of(version),
        SystemTime::now(),
    );
    (plan, family)
}

#[derive(Debug)]
pub struct RegistryDomain {
    host: Host,
    mode: Mode,
    settings: RegistriesConfig,
    entries: Vec<RegistryEntry>,
    containerd_binary: String,
    facts: Facts,
    wake: Arc<Notify>,
    ledger: Ledger,
    trust_tool: Box<dyn TrustTool>,
    services: Box<dyn ServiceManager>,
    metrics: Metrics,
    /// The latest trust-store update's result, reported until the next one.
    trust_update: Option<Result<String, String>>,
}

impl RegistryDomain {
    /// `edges`: the trust-store tool and the service manager it runs (built
    /// by the program's assembly; fakes in tests).
    pub fn new(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        mode: Mode,
        edges: Edges,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        facts.on_nodeconfig_change(wake.clone());
        RegistryDomain {
            host,
            mode,
            settings: config.registries.clone(),
            entries: config.registry.clone(),
            containerd_binary: config.containerd.binary.clone(),
            facts,
            wake,
            ledger: Ledger::default(),
            trust_tool: edges.trust_tool,
            services: edges.services,
            metrics: Metrics::register(registry),
            trust_update: None,
        }
    }

    fn certs_d(&self) -> String {
        self.settings.certs_d.to_string_lossy().into_owned()
    }

    /// The desired registries and the merge notes.
    fn desired(&self) -> desired::Merged {
        let from_nodeconfig = self
            .facts
            .nodeconfig()
            .map(|nc| nc.registries.clone())
            .unwrap_or_default();
        desired::merge(
            &self.entries,
            &from_nodeconfig,
            self.settings.allow_skip_verify,
        )
    }

    fn probe_all(
        &self,
        desired: &[Desired],
        plan: &Plan,
        family: Option<OsFamily>,
    ) -> Vec<(String, String, ProbeResult, bool)> {
        let system_pem = family.and_then(|f| self.host.read_small(f.bundle(), MAX_BUNDLE).ok());
        let timeout = self.settings.probe_timeout.get();
        let jobs: Vec<(String, String, bool, TlsSettings)> = desired
            .iter()
            .filter(|d| !plan.failed.contains_key(&d.host))
            .flat_map(|d| {
                let tls = TlsSettings {
                    ca_pem: plan
                        .cas
                        .iter()
                        .find(|(h, _)| *h == d.host)
                        .map(|(_, c)| c.pem.clone()),
                    system_pem: if d.system_trust {
                        system_pem.clone()
                    } else {
                        None
                    },
                    client: d.client.as_ref().and_then(|(c, k)| {
                        Some((
                            self.host.read_pem_file(c).ok()?,
                            self.host.read_pem_file(k).ok()?,
                        ))
                    }),
                    skip_verify: d.skip_verify,
                };
                d.endpoints()
                    .into_iter()
                    .map(move |e| (d.host.clone(), e.url, e.override_path, tls.clone()))
            })
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(registry, url, override_path, tls)| {
                    s.spawn(move || {
                        let r = probe::probe(&url, override_path, &tls, timeout);
                        (registry, url, r, tls.skip_verify)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    }
}

impl Domain for RegistryDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.settings.interval.get()
    }

    fn after(&self) -> &'static [&'static str] {
        &[crate::check::names::NODECONFIG]
    }

    fn trigger(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }

    fn reconfigure(&mut self, config: &Config) {
        self.settings = config.registries.clone();
        self.entries = config.registry.clone();
        self.containerd_binary = config.containerd.binary.clone();
    }

    fn run(&mut self) -> Vec<Check> {
        let merged = self.desired();
        let certs_d = self.certs_d();
        let (plan, family) = plan_for(
            &merged.registries,
            &certs_d,
            &self.containerd_binary,
            &self.host,
        );
        let apply = self.mode == Mode::Apply && self.settings.manage;
        let outcome = files::apply(
            &plan,
            &self.host,
            &certs_d,
            family,
            &mut self.ledger,
            !apply,
        );
        if apply {
            self.metrics
                .reconciles
                .get_or_create(ResultLabel::of(outcome.errors.is_empty()))
                .inc();
            for _ in &outcome.drift_restored {
                self.metrics.drift_restored.inc();
            }
            for p in &outcome.drift_restored {
                tracing::warn!(path = %p, "managed file {p} was edited by hand; restored");
            }
            // The tool also runs again after it failed, and on a first run
            // whose anchors are missing from the bundle (an earlier process
            // wrote them and died, or its tool failed): anchors must reach
            // the bundle once the tool works.
            let wants = wants_trust(&merged.registries, &plan);
            let retry = match &self.trust_update {
                Some(Ok(_)) => false,
                Some(Err(_)) => wants,
                None => {
                    wants
                        && family.is_some_and(|f| {
                            !bundle_has_all(&self.host, f, &merged.registries, &plan)
                        })
                }
            };
            if outcome.trust_changed || retry {
                if let Some(f) = family {
                    let r = self.trust_tool.update(f, &self.host);
                    if let Err(e) = &r {
                        tracing::error!(error = %e, "trust store update failed: {e}");
                    }
                    if r.is_ok() && self.settings.restart_containerd_on_trust_change {
                        if let Err(e) = self.services.restart("containerd") {
                            tracing::error!(error = %e, "cannot restart containerd: {e}");
                        }
                    }
                    self.trust_update = Some(r.map_err(|e| e.to_string()));
                }
            }
        }
        let probes = self.probe_all(&merged.registries, &plan, family);
        self.export(&plan, &outcome, &probes);
        checks::verdicts(&merged, &plan, &outcome, &probes, family, self, apply)
    }
}

/// Whether the OS bundle already holds every CA the agent puts in the trust
/// store (compared by their base64 bodies, whatever the line breaks).
fn bundle_has_all(host: &Host, family: OsFamily, regs: &[desired::Desired], plan: &Plan) -> bool {
    let Ok(bundle) = host.read_small(family.bundle(), MAX_BUNDLE) else {
        return false;
    };
    let bundle = String::from_utf8_lossy(&bundle);
    let body = |pem: &str| -> Vec<String> {
        let mut certs = Vec::new();
        let mut cur = String::new();
        for line in pem.lines().map(str::trim) {
            if line.starts_with("-----END") {
                certs.push(std::mem::take(&mut cur));
            } else if !line.starts_with("-----") && !line.starts_with('#') {
                cur.push_str(line);
            }
        }
        certs
    };
    let have: std::collections::HashSet<String> = body(&bundle).into_iter().collect();
    plan.cas
        .iter()
        .filter(|(h, _)| regs.iter().any(|r| r.system_trust && r.host == *h))
        .flat_map(|(_, ca)| body(&ca.pem))
        .all(|cert| have.contains(&cert))
}

/// Whether any registry's CA goes into the OS trust store.
fn wants_trust(regs: &[desired::Desired], plan: &Plan) -> bool {
    regs.iter()
        .any(|r| r.system_trust && plan.cas.iter().any(|(h, _)| *h == r.host))
}

//! The registry domain: turn the registries of the NodeConfig and the agent
//! config into containerd `certs.d/<host>/hosts.toml` files, CA files and
//! OS trust anchors (reconciled: render → compare → atomic write), and probe
//! every endpoint over TLS with exactly the trust containerd will use.

pub mod ca;
pub mod desired;
pub mod files;
pub mod hosts_toml;

pub mod probe;
pub mod trust;

use crate::check::{Check, Status};
use crate::config::{Config, RegistriesConfig, RegistryEntry};
use crate::domain::Domain;
use crate::edge::containerd::{Binary, ContainerdTool};
use crate::edge::systemctl::ServiceManager;
use crate::facts::Facts;
use crate::host::Host;
use crate::metrics::label::LabelValue;
use crate::metrics::ResultLabel;
use crate::time::rfc3339;
use desired::Desired;
use files::{Ledger, Outcome, Plan};
use hosts_toml::Features;
use probe::{ProbeResult, TlsSettings};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
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

pub use crate::domain::Mode;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    registry: LabelValue,
    endpoint: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CaLabels {
    registry: LabelValue,
    fingerprint: LabelValue,
}

#[derive(Debug, Clone, Default)]
struct Metrics {
    up: Family<EndpointLabels, Gauge>,
    tls_verified: Family<EndpointLabels, Gauge>,
    probe_duration: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    server_cert_expiry: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    ca_expiry: Family<CaLabels, Gauge<f64, AtomicU64>>,
    reconciles: Family<ResultLabel, Counter>,
    managed_files: Gauge,
    drift_restored: Counter,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        for l in [ResultLabel::SUCCESS, ResultLabel::FAILURE] {
            let _ = m.reconciles.get_or_create(&l);
        }
        registry.register(
            "registry_up",
            "1 if the registry endpoint answered GET /v2/ with 200 or 401",
            m.up.clone(),
        );
        registry.register(
            "registry_tls_verified",
            "1 if the endpoint's TLS certificate verified against the configured CA (and the OS roots with system_trust)",
            m.tls_verified.clone(),
        );
        registry.register_with_unit(
            "registry_probe_duration",
            "Time of the latest probe of the endpoint (connect, TLS, GET /v2/)",
            Unit::Seconds,
            m.probe_duration.clone(),
        );
        registry.register_with_unit(
            "registry_server_cert_expiry_timestamp",
            "notAfter of the certificate the endpoint presented, in seconds since the Unix epoch",
            Unit::Seconds,
            m.server_cert_expiry.clone(),
        );
        registry.register_with_unit(
            "ca_expiry_timestamp",
            "notAfter of a registry CA the agent manages, in seconds since the Unix epoch",
            Unit::Seconds,
            m.ca_expiry.clone(),
        );
        registry.register(
            "registry_reconciles",
            "Reconciles of the registry files by result (failure: a write or removal failed)",
            m.reconciles.clone(),
        );
        registry.register(
            "registry_managed_files",
            "Files the agent manages: hosts.toml, CA files and OS trust anchors",
            m.managed_files.clone(),
        );
        registry.register(
            "registry_drift_restored",
            "Managed files found edited by hand and restored",
            m.drift_restored.clone(),
        );
        m
    }
}

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

    fn export(
        &self,
        plan: &Plan,
        outcome: &Outcome,
        probes: &[(String, String, ProbeResult, bool)],
    ) {
        let m = &self.metrics;
        m.up.clear();
        m.tls_verified.clear();
        m.probe_duration.clear();
        m.server_cert_expiry.clear();
        m.ca_expiry.clear();
        for (registry, endpoint, r, _) in probes {
            let l = EndpointLabels {
                registry: registry.as_str().into(),
                endpoint: endpoint.as_str().into(),
            };
            m.up.get_or_create(&l).set(i64::from(r.up));
            m.tls_verified
                .get_or_create(&l)
                .set(i64::from(r.tls_verified));
            m.probe_duration
                .get_or_create(&l)
                .set(r.duration.as_secs_f64());
            if let Some(t) = r.server_cert_not_after {
                m.server_cert_expiry.get_or_create(&l).set(t as f64);
            }
        }
        for (registry, ca) in &plan.cas {
            m.ca_expiry
                .get_or_create(&CaLabels {
                    registry: registry.as_str().into(),
                    fingerprint: ca.short_id().into(),
                })
                .set(ca.not_after as f64);
        }
        m.managed_files
            .set(i64::try_from(outcome.managed_files).unwrap_or(i64::MAX));
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
        checks(&merged, &plan, &outcome, &probes, family, self, apply)
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

fn checks(
    merged: &desired::Merged,
    plan: &Plan,
    outcome: &Outcome,
    probes: &[(String, String, ProbeResult, bool)],
    family: Option<OsFamily>,
    d: &RegistryDomain,
    applied: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    let regs = &merged.registries;
    if !merged.rejected.is_empty() {
        let kept: Vec<String> = regs
            .iter()
            .map(|r| format!("{} ({})", r.host, r.source.as_str()))
            .collect();
        let kept = if kept.is_empty() {
            String::new()
        } else {
            format!("; configured: {}", kept.join(", "))
        };
        out.push(
            Check::new(
                DOMAIN,
                "sources",
                Status::Fail,
                merged
                    .rejected
                    .iter()
                    .chain(&merged.conflicts)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
                    + &kept,
            )
            .with_remedy(format!(
                "name each registry as {} (the certs.d directory name), and put credentials in the \
                 registry's auth settings, never in a URL",
                crate::model::registry_name::EXPECTED
            )),
        );
    } else if regs.is_empty() {
        out.push(Check::not_applicable(
            DOMAIN,
            "sources",
            "no registries configured ([[registry]] in the agent config, or registry settings in the NodeConfig)",
        ));
    } else {
        let list: Vec<String> = regs
            .iter()
            .map(|r| format!("{} ({})", r.host, r.source.as_str()))
            .collect();
        let summary = format!(
            "{} registr{}: {}",
            regs.len(),
            if regs.len() == 1 { "y" } else { "ies" },
            list.join(", ")
        );
        out.push(if merged.conflicts.is_empty() {
            Check::pass(DOMAIN, "sources", summary)
        } else {
            Check::new(
                DOMAIN,
                "sources",
                Status::Warn,
                format!("{summary}; {}", merged.conflicts.join("; ")),
            )
            .with_remedy("declare each registry in one place")
        });
    }

    let certs_d = d.certs_d();
    let files = if !d.settings.manage {
        Check::not_applicable(
            DOMAIN,
            "files",
            "registries.manage = false: the agent only reports",
        )
    } else if !outcome.errors.is_empty() {
        Check::new(
            DOMAIN,
            "files",
            Status::Fail,
            format!(
                "{}; the files already on disk stay in force",
                outcome.errors.join("; ")
            ),
        )
        .with_remedy(format!(
            "make {certs_d} and the trust store writable for the agent (check the file system \
             and its owner); under systemd a directory created after the agent started (say by \
             installing ca-certificates) stays read-only in its sandbox until \
             `systemctl restart hybrid-node-agent`"
        ))
    } else if !outcome.conflicts.is_empty() {
        Check::new(DOMAIN, "files", Status::Warn, outcome.conflicts.join("; "))
            .with_remedy("remove or rename the files the agent does not own, or let the registry be configured elsewhere")
    } else {
        let (verb, managed) = if applied {
            ("wrote", "managed files")
        } else {
            ("would write", "files")
        };
        let mut summary = format!(
            "{} {managed} under {certs_d} and the trust store",
            outcome.managed_files
        );
        if !outcome.written.is_empty() || !outcome.removed.is_empty() {
            let removed = if applied { "removed" } else { "would remove" };
            summary.push_str(&format!(
                "; {verb} {}, {removed} {}",
                outcome.written.len(),
                outcome.removed.len()
            ));
        }
        if !outcome.drift_restored.is_empty() {
            summary.push_str(&format!(
                "; restored {} edited by hand",
                outcome.drift_restored.len()
            ));
        }
        if regs.is_empty() && outcome.managed_files == 0 {
            Check::not_applicable(DOMAIN, "files", "nothing to manage")
        } else {
            Check::pass(DOMAIN, "files", summary)
        }
    };
    out.push(files);

    out.push(match (wants_trust(regs, plan), family, &d.trust_update) {
        (false, _, _) => Check::not_applicable(DOMAIN, "trust_store", "no CA to install in the OS trust store"),
        (true, None, _) => Check::new(DOMAIN, "trust_store", Status::Warn, "OS family not recognised from /etc/os-release: CAs not installed in the OS trust store")
            .with_remedy("install the CA with the distribution's tool, or set system_trust = false"),
        (true, Some(_), Some(Err(e))) => Check::new(DOMAIN, "trust_store", Status::Fail, e.clone())
            .with_remedy("install the distribution's ca-certificates package (update-ca-certificates / update-ca-trust)"),
        (true, Some(f), _) => Check::pass(
            DOMAIN,
            "trust_store",
            format!(
                "registry CAs are in the {} trust store; containerd caches it until restarted, and pulls use the CA from hosts.toml meanwhile",
                f.as_str()
            ),
        ),
    });

    for r in regs {
        let id = format!("ca/{}", r.host);
        out.push(if let Some(e) = plan.failed.get(&r.host) {
            Check::new(
                DOMAIN,
                id,
                Status::Fail,
                format!("{e}; the registry's files on disk are left as they were"),
            )
            .with_remedy(
                "give the PEM certificate of the CA that issued the registry's certificate",
            )
        } else if let Some((_, ca)) = plan.cas.iter().find(|(h, _)| *h == r.host) {
            let notes = plan.notes.get(&r.host).cloned().unwrap_or_default();
            let until = rfc3339(
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(ca.not_after).unwrap_or(0)),
            );
            if notes.is_empty() {
                Check::pass(
                    DOMAIN,
                    id,
                    format!("CA {} valid until {until}", ca.short_id()),
                )
            } else {
                Check::new(DOMAIN, id, Status::Warn, notes.join("; "))
            }
        } else {
            Check::not_applicable(DOMAIN, id, "no CA configured: the OS trust store decides")
        });

        let mine: Vec<&(String, String, ProbeResult, bool)> =
            probes.iter().filter(|(h, ..)| *h == r.host).collect();
        let id = format!("probe/{}", r.host);
        if mine.is_empty() {
            if !plan.failed.contains_key(&r.host) {
                out.push(Check::not_applicable(
                    DOMAIN,
                    id,
                    "no endpoint to probe (_default has no registry of its own)",
                ));
            }
            continue;
        }
        let up: Vec<_> = mine.iter().filter(|(_, _, p, _)| p.up).collect();
        let first_err = mine
            .iter()
            .find_map(|(_, url, p, _)| p.error.as_ref().map(|e| format!("{url}: {e}")))
            .unwrap_or_default();
        let slowest = mine
            .iter()
            .map(|(_, _, p, _)| p.duration)
            .max()
            .unwrap_or_default();
        let soon = mine.iter().find_map(|(_, url, p, _)| {
            let t = p.server_cert_not_after?;
            let now = i64::try_from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()?
                    .as_secs(),
            )
            .ok()?;
            (t - now < 30 * 86_400)
                .then(|| format!("{url} presents a certificate that expires within 30 days"))
        });
        out.push(if up.is_empty() {
            Check::new(
                DOMAIN,
                id,
                Status::Fail,
                format!("no endpoint answers: {first_err}"),
            )
            .with_remedy("check the endpoint URL, the network path and the CA")
        } else if r.skip_verify {
            Check::new(
                DOMAIN,
                id,
                Status::Warn,
                format!(
                    "{}/{} endpoints up, TLS verification disabled (skip_verify)",
                    up.len(),
                    mine.len()
                ),
            )
            .with_remedy("configure the registry's CA and remove skip_verify")
        } else if up.len() < mine.len() {
            Check::new(
                DOMAIN,
                id,
                Status::Warn,
                format!("{}/{} endpoints up; {first_err}", up.len(), mine.len()),
            )
            .with_remedy("pulls fall back to the next endpoint; fix the one that is down")
        } else if let Some(msg) = soon {
            Check::new(DOMAIN, id, Status::Warn, msg)
                .with_remedy("renew the registry's certificate")
        } else {
            Check::pass(
                DOMAIN,
                id,
                format!(
                    "{} endpoint{} up, TLS verified ({} ms)",
                    up.len(),
                    if up.len() == 1 { "" } else { "s" },
                    slowest.as_millis()
                ),
            )
        });
    }
    out
}

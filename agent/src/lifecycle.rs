//! Which nodeadm phase the host is in, so every other check can say whether
//! it applies yet: nothing installed → `nodeadm install` → `nodeadm init` →
//! kubelet running → joined.

use crate::check::{Check, Status};
use crate::config::Config;
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DOMAIN: &str = crate::check::names::LIFECYCLE;

/// Written by `nodeadm install`.
pub const TRACKER: &str = "/opt/nodeadm/tracker";
/// Written by `nodeadm init` (either is enough).
pub const INIT_FILES: [&str; 2] = [
    "/etc/eks/kubelet/environment",
    "/etc/kubernetes/kubelet/config.json",
];
/// The kubelet's serving certificate: it exists once the node has joined and
/// its CSR was approved.
pub const SERVING_CERT: &str = "/var/lib/kubelet/pki/kubelet-server-current.pem";
/// Where `nodeadm` is looked for besides `$PATH`.
const BIN_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

pub use crate::model::Phase;

/// Asks the kubelet whether it is healthy.
pub trait KubeletProbe: Send + std::fmt::Debug {
    /// `Ok` when the health endpoint answered `ok`; otherwise what went wrong.
    fn healthz(&self) -> Result<(), HealthzError>;
}

/// Why the kubelet is not known to be healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthzError {
    /// Nothing answers (the kubelet is not running, or not there yet).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The exchange broke off or overran its deadline.
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// It answered with another status.
    #[error("http://{addr}/healthz answered {status_line:?}")]
    Status {
        addr: SocketAddr,
        status_line: String,
    },
    /// It answered 200 with something other than `ok`.
    #[error("http://{addr}/healthz answered 200 with {body:?} instead of \"ok\"")]
    Body { addr: SocketAddr, body: String },
}

/// The real probe: `GET /healthz` on the kubelet's healthz address.
#[derive(Debug, Clone)]
pub struct HttpHealthz {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

impl KubeletProbe for HttpHealthz {
    fn healthz(&self) -> Result<(), HealthzError> {
        let addr = self.addr;
        // One deadline for the whole exchange, not per read.
        let deadline = std::time::Instant::now() + self.timeout;
        let mut stream = crate::deadline::DeadlineStream::connect(&addr, deadline)
            .map_err(|source| HealthzError::Connect { addr, source })?;
        let io_err = |source| HealthzError::Io { addr, source };
        let request = format!(
            "GET /healthz HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: hybrid-node-agent\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).map_err(io_err)?;
        let mut response = Vec::with_capacity(256);
        stream
            .take(4096)
            .read_to_end(&mut response)
            .map_err(io_err)?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status_line = head.lines().next().unwrap_or("");
        let code = status_line.split_whitespace().nth(1).unwrap_or("");
        if code != "200" {
            return Err(HealthzError::Status {
                addr,
                status_line: status_line.trim().to_owned(),
            });
        }
        if body.trim() != "ok" {
            return Err(HealthzError::Body {
                addr,
                body: body.trim().chars().take(64).collect(),
            });
        }
        Ok(())
    }
}

/// What was found on the host; the phase and the checks derive from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Host path of the `nodeadm` binary, if found.
    pub nodeadm: Option<PathBuf>,
    pub tracker: bool,
    /// Host paths of the init artifacts present.
    pub init_files: Vec<&'static str>,
    pub kubelet: Result<(), String>,
    pub serving_cert: bool,
}

impl Evidence {
    pub fn gather(host: &Host, probe: &dyn KubeletProbe) -> Self {
        Evidence {
            nodeadm: find_nodeadm(host),
            tracker: host.exists(TRACKER),
            init_files: INIT_FILES
                .iter()
                .copied()
                .filter(|p| host.exists(p))
                .collect(),
            // Kept as text: it becomes the kubelet check's summary.
            kubelet: probe.healthz().map_err(|e| e.to_string()),
            serving_cert: host.exists(SERVING_CERT),
        }
    }

    /// The most advanced phase with evidence on the host.
    pub fn phase(&self) -> Phase {
        if self.serving_cert {
            Phase::Joined
        } else if self.kubelet.is_ok() {
            Phase::KubeletRunning
        } else if !self.init_files.is_empty() {
            Phase::Initialized
        } else if self.nodeadm.is_some() || self.tracker {
            Phase::Installed
        } else {
            Phase::NotInstalled
        }
    }

    pub fn checks(&self, healthz: SocketAddr) -> Vec<Check> {
        let phase = self.phase();
        let mut checks = Vec::with_capacity(4);

        let next = match phase {
            Phase::NotInstalled => "next: nodeadm install",
            Phase::Installed => "next: nodeadm init",
            Phase::Initialized => "waiting for the kubelet",
            Phase::KubeletRunning => "waiting for the node to join",
            Phase::Joined => "node is part of the cluster",
        };
        checks.push(Check::pass(
            DOMAIN,
            "phase",
            format!("phase {phase} ({next})"),
        ));

        checks.push(match (&self.nodeadm, self.tracker) {
            (Some(bin), _) => Check::pass(
                DOMAIN,
                "nodeadm",
                format!("nodeadm installed at {}", bin.display()),
            ),
            (None, true) => Check::pass(
                DOMAIN,
                "nodeadm",
                format!("nodeadm install tracker present at {TRACKER} (binary not on PATH)"),
            ),
            (None, false) => Check::new(
                DOMAIN,
                "nodeadm",
                Status::Warn,
                "nodeadm is not installed (not on PATH, no install tracker)",
            )
            .with_remedy(
                "download nodeadm for this architecture and run \
                 `nodeadm install <kubernetes-version> --credential-provider <ssm|iam-ra>`",
            ),
        });

        let initialized = phase >= Phase::Initialized;
        checks.push(match &self.kubelet {
            Ok(()) => Check::pass(
                DOMAIN,
                "kubelet",
                format!("kubelet healthz on {healthz} answered ok"),
            ),
            Err(_) if !initialized => Check::not_applicable(
                DOMAIN,
                "kubelet",
                "not initialized yet: nodeadm init starts the kubelet",
            ),
            Err(e) => Check::new(
                DOMAIN,
                "kubelet",
                Status::Fail,
                format!("kubelet is not healthy: {e}"),
            )
            .with_remedy("systemctl status kubelet; journalctl -u kubelet -e"),
        });

        checks.push(if self.serving_cert {
            Check::pass(
                DOMAIN,
                "joined",
                format!("kubelet serving certificate present ({SERVING_CERT})"),
            )
        } else if self.kubelet.is_ok() {
            Check::new(
                DOMAIN,
                "joined",
                Status::Warn,
                format!("kubelet is running but has not joined yet (no {SERVING_CERT})"),
            )
            .with_remedy(
                "check the cluster access entry (type HYBRID_LINUX) for the node's role, \
                 that the API server endpoint is reachable, and pending CSRs (kubectl get csr)",
            )
        } else {
            Check::not_applicable(DOMAIN, "joined", "the kubelet is not running yet")
        });
        checks
    }
}

fn find_nodeadm(host: &Host) -> Option<PathBuf> {
    let path_var = std::env::var("PATH").unwrap_or_default();
    let mut dirs: Vec<&str> = path_var.split(':').filter(|d| d.starts_with('/')).collect();
    for d in BIN_DIRS {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs.into_iter()
        .map(|d| PathBuf::from(d).join("nodeadm"))
        .find(|p| host.is_executable(p))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// The lifecycle domain.
#[derive(Debug)]
pub struct Lifecycle {
    host: Host,
    healthz: SocketAddr,
    probe: Box<dyn KubeletProbe>,
    interval: Duration,
    phase_gauge: Family<PhaseLabel, Gauge>,
    facts: Facts,
}

impl Lifecycle {
    pub fn new(config: &Config, host: Host, registry: &mut Registry, facts: Facts) -> Self {
        let probe = HttpHealthz {
            addr: config.lifecycle.kubelet_healthz,
            timeout: Duration::from_secs(2),
        };
        Self::with_probe(config, host, registry, facts, Box::new(probe))
    }

    pub fn with_probe(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        probe: Box<dyn KubeletProbe>,
    ) -> Self {
        let phase_gauge = Family::<PhaseLabel, Gauge>::default();
        registry.register(
            "lifecycle_phase",
            "nodeadm phase of the host: 1 for the current phase, 0 for the others",
            phase_gauge.clone(),
        );
        Lifecycle {
            host,
            healthz: config.lifecycle.kubelet_healthz,
            probe,
            interval: config.lifecycle.interval.get(),
            phase_gauge,
            facts,
        }
    }
}

impl Domain for Lifecycle {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn reconfigure(&mut self, config: &Config) {
        self.interval = config.lifecycle.interval.get();
        if self.healthz != config.lifecycle.kubelet_healthz {
            self.healthz = config.lifecycle.kubelet_healthz;
            self.probe = Box::new(HttpHealthz {
                addr: self.healthz,
                timeout: Duration::from_secs(2),
            });
        }
    }

    fn run(&mut self) -> Vec<Check> {
        let evidence = Evidence::gather(&self.host, self.probe.as_ref());
        let phase = evidence.phase();
        for p in Phase::ALL {
            self.phase_gauge
                .get_or_create(&PhaseLabel { phase: p.as_str() })
                .set(i64::from(p == phase));
        }
        self.facts.set_phase(phase);
        evidence.checks(self.healthz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Debug)]
    /// `true`: healthy; `false`: nothing listening.
    struct FakeKubelet(bool);
    impl KubeletProbe for FakeKubelet {
        fn healthz(&self) -> Result<(), HealthzError> {
            if self.0 {
                Ok(())
            } else {
                Err(HealthzError::Connect {
                    addr: SocketAddr::from(([127, 0, 0, 1], 10248)),
                    source: std::io::ErrorKind::ConnectionRefused.into(),
                })
            }
        }
    }

    fn down() -> FakeKubelet {
        FakeKubelet(false)
    }

    fn touch(host: &Host, path: &str, mode: u32) {
        let p = host.path(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, "x").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn status_of(checks: &[Check], id: &str) -> Status {
        checks
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status)
            .expect("check present")
    }

    #[test]
    fn phases_follow_the_evidence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        let addr = SocketAddr::from(([127, 0, 0, 1], 10248));

        let e = Evidence::gather(&host, &down());
        assert_eq!(e.phase(), Phase::NotInstalled);
        let c = e.checks(addr);
        assert_eq!(status_of(&c, "nodeadm"), Status::Warn);
        assert_eq!(status_of(&c, "kubelet"), Status::NotApplicable);
        assert_eq!(status_of(&c, "joined"), Status::NotApplicable);

        // A non-executable file is not an installed binary.
        touch(&host, "/usr/local/bin/nodeadm", 0o644);
        assert_eq!(
            Evidence::gather(&host, &down()).phase(),
            Phase::NotInstalled
        );
        touch(&host, "/usr/local/bin/nodeadm", 0o755);
        let e = Evidence::gather(&host, &down());
        assert_eq!(e.phase(), Phase::Installed);
        assert_eq!(
            e.nodeadm.as_deref(),
            Some(std::path::Path::new("/usr/local/bin/nodeadm"))
        );

        touch(&host, "/etc/eks/kubelet/environment", 0o644);
        let e = Evidence::gather(&host, &down());
        assert_eq!(e.phase(), Phase::Initialized);
        let c = e.checks(addr);
        assert_eq!(status_of(&c, "kubelet"), Status::Fail);
        assert!(c.iter().any(|c| c.summary.contains("connection refused")));

        let up = FakeKubelet(true);
        let e = Evidence::gather(&host, &up);
        assert_eq!(e.phase(), Phase::KubeletRunning);
        assert_eq!(status_of(&e.checks(addr), "joined"), Status::Warn);

        touch(&host, SERVING_CERT, 0o600);
        let e = Evidence::gather(&host, &up);
        assert_eq!(e.phase(), Phase::Joined);
        let c = e.checks(addr);
        assert!(c.iter().all(|c| c.status == Status::Pass), "{c:?}");
    }

    #[test]
    fn tracker_alone_means_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        touch(&host, TRACKER, 0o644);
        let e = Evidence::gather(&host, &down());
        assert_eq!(e.phase(), Phase::Installed);
        assert_eq!(
            status_of(&e.checks(SocketAddr::from(([127, 0, 0, 1], 1))), "nodeadm"),
            Status::Pass
        );
    }

    #[test]
    fn the_other_init_file_counts_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        touch(&host, "/etc/kubernetes/kubelet/config.json", 0o644);
        assert_eq!(Evidence::gather(&host, &down()).phase(), Phase::Initialized);
    }

    fn serve_once(response: &'static str) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(response.as_bytes());
            }
        });
        addr
    }

    #[test]
    fn http_healthz_reads_real_answers() {
        let probe = |addr| HttpHealthz {
            addr,
            timeout: Duration::from_secs(2),
        };
        let ok = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert!(probe(ok).healthz().is_ok());

        let bad = serve_once("HTTP/1.1 500 Internal Server Error\r\n\r\n[-]syncloop failed");
        let err = probe(bad).healthz().unwrap_err().to_string();
        assert!(err.contains("500 Internal Server Error"), "{err}");

        let odd = serve_once("HTTP/1.1 200 OK\r\n\r\nnot ok");
        let err = probe(odd).healthz().unwrap_err().to_string();
        assert!(err.contains("instead of \"ok\""), "{err}");

        // Nothing listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let err = probe(closed).healthz().unwrap_err();
        assert!(matches!(err, HealthzError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }

    #[test]
    fn domain_exports_one_phase_series_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut registry = Registry::with_prefix("hybrid_node");
        let facts = Facts::default();
        let mut d = Lifecycle::with_probe(
            &Config::default(),
            Host::new(dir.path()),
            &mut registry,
            facts.clone(),
            Box::new(down()),
        );
        let checks = d.run();
        assert_eq!(checks.len(), 4);
        assert_eq!(facts.phase(), Some(Phase::NotInstalled));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("hybrid_node_lifecycle_phase{phase=\"not_installed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hybrid_node_lifecycle_phase{phase=\"joined\"} 0"),
            "{text}"
        );
    }
}

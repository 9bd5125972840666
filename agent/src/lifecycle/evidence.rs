//! What the host shows of nodeadm's work (binary, install tracker, init
//! artifacts, kubelet health, serving certificate), and the phase and checks
//! that follow from it.

use super::*;

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

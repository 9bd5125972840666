//! An earlier install left behind: `nodeadm init` warns when the kubelet
//! environment file or /etc/kubernetes exists, or a kubelet runs
//! (aws/eks-hybrid internal/node/hybrid/nodeinactive_validator.go): the
//! node was not made inactive with `nodeadm uninstall` and may still be
//! attached to a previous cluster.
//!
//! The agent runs before and after init, so presence alone cannot be the
//! verdict: after init those files are this install's. What tells a
//! leftover apart is that the host's init state does not belong to the
//! NodeConfig in force: the kubelet kubeconfig points at another API
//! server, or parts of an install are there without init's own files.

use crate::check::{Check, Status};
use crate::host::Host;

/// nodeadm's paths (nodeinactive_validator.go).
pub const KUBELET_ENV: &str = "/etc/eks/kubelet/environment";
pub const ETC_KUBERNETES: &str = "/etc/kubernetes";
/// Written by `nodeadm init` beside the environment file.
pub const KUBELET_CONFIG: &str = "/etc/kubernetes/kubelet/config.json";

/// What the host shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evidence {
    pub kubelet_env: bool,
    pub etc_kubernetes: bool,
    pub kubelet_config: bool,
    /// `None`: cannot tell (not this host's services, no systemd).
    pub kubelet_active: Option<bool>,
    /// The API server host of the kubelet kubeconfig (after init).
    pub kubeconfig_server: Option<String>,
    /// The API server host the NodeConfig in force names.
    pub nodeconfig_server: Option<String>,
}

impl Evidence {
    pub fn gather(
        host: &Host,
        kubelet_active: Option<bool>,
        kubeconfig_server: Option<String>,
        nodeconfig_server: Option<String>,
    ) -> Evidence {
        Evidence {
            kubelet_env: host.exists(KUBELET_ENV),
            etc_kubernetes: host.exists(ETC_KUBERNETES),
            kubelet_config: host.exists(KUBELET_CONFIG),
            kubelet_active,
            kubeconfig_server,
            nodeconfig_server,
        }
    }

    /// The items nodeadm would warn about.
    pub fn found(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.kubelet_env {
            v.push(KUBELET_ENV.to_owned());
        }
        if self.etc_kubernetes {
            v.push(ETC_KUBERNETES.to_owned());
        }
        if self.kubelet_active == Some(true) {
            v.push("a running kubelet".to_owned());
        }
        v
    }
}

const REMEDY: &str = "make the node inactive with `nodeadm uninstall` (it drains nothing: cordon and drain the node in its old cluster first), then run `nodeadm init` again";

/// The verdict, with the number of leftovers for the metric.
pub fn judge(domain: &'static str, e: &Evidence) -> (Check, usize) {
    let id = "leftovers";
    let found = e.found();
    if found.is_empty() {
        return (
            Check::pass(domain, id, format!("no earlier install left behind (no {KUBELET_ENV}, no {ETC_KUBERNETES}, no running kubelet)")),
            0,
        );
    }
    if let (Some(old), Some(new)) = (&e.kubeconfig_server, &e.nodeconfig_server) {
        if !old.eq_ignore_ascii_case(new) {
            return (
                Check::new(domain, id, Status::Fail, format!("an earlier install for another cluster is still here: the kubelet kubeconfig points at {old}, the NodeConfig at {new} ({})", found.join(", ")))
                    .with_remedy(REMEDY),
                found.len(),
            );
        }
    }
    let initialized = e.kubelet_env || e.kubelet_config;
    if initialized {
        return (
            Check::pass(
                domain,
                id,
                format!(
                    "initialized by nodeadm ({}): these are this install's, not leftovers",
                    found.join(", ")
                ),
            ),
            0,
        );
    }
    // Parts of an install without init's own files: what is left after a
    // partial clean-up, or from a kubeadm or distribution install.
    (
        Check::new(domain, id, Status::Warn, format!("the node is not initialized but {} {} there: an earlier install was not removed with `nodeadm uninstall`", found.join(" and "), if found.len() == 1 { "is" } else { "are" }))
            .with_remedy(REMEDY),
        found.len(),
    )
}

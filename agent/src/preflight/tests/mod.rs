//! The pure verdicts of every family, on recorded tool output and on files
//! the real tools wrote (tests/fixtures/preflight), plus one run of the
//! whole domain on a host tree. Shared fakes here; the families in
//! `clock`, `host` (swap, limits) and `net` (proxy, firewall).

use super::*;
use crate::edge::systemctl::UnitState;
use crate::edge::ExecError;
use std::fs;
use std::path::Path;

mod clock;
mod host;
mod net;

pub(super) const SYNCED: &str =
    include_str!("../../../../tests/fixtures/preflight/chrony/synced.csv");
pub(super) const UNSYNCED: &str =
    include_str!("../../../../tests/fixtures/preflight/chrony/unsynced.csv");
pub(super) const UFW_OPEN: &str =
    include_str!("../../../../tests/fixtures/preflight/ufw/user.rules.open");
pub(super) const UFW_DENY: &str =
    include_str!("../../../../tests/fixtures/preflight/ufw/user.rules.deny");
pub(super) const ZONE_DEFAULT: &str =
    include_str!("../../../../tests/fixtures/preflight/firewalld/public-default.xml");
pub(super) const ZONE_OPEN: &str =
    include_str!("../../../../tests/fixtures/preflight/firewalld/public-open.xml");

pub(super) const SHOW_NO_NTP: &str =
    include_str!("../../../../tests/fixtures/preflight/timedatectl/show-no-ntp-service.txt");
pub(super) const MS: Duration = Duration::from_millis(1);

pub(super) fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

/// Recorded answers of the time tools.
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    pub(super) chrony: Option<&'static str>,
    chrony_missing: bool,
    show: Option<&'static str>,
    timesync: Option<&'static str>,
}

pub(super) fn failed(program: &str, detail: &str) -> ExecError {
    use std::os::unix::process::ExitStatusExt;
    ExecError::Failed {
        program: program.to_owned(),
        status: std::process::ExitStatus::from_raw(1 << 8),
        detail: detail.to_owned(),
    }
}

pub(super) fn missing(program: &str) -> ExecError {
    ExecError::Spawn {
        program: program.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }
}

impl time::TimeSource for Recorded {
    fn chrony_tracking(&self) -> Result<String, ExecError> {
        match self.chrony {
            Some(t) => Ok(t.to_owned()),
            None if self.chrony_missing => Err(missing("chronyc tracking")),
            None => Err(failed("chronyc tracking", "506 Cannot talk to daemon")),
        }
    }
    fn timedatectl_show(&self) -> Result<String, ExecError> {
        self.show
            .map(str::to_owned)
            .ok_or_else(|| missing("timedatectl show"))
    }
    fn timesync_status(&self) -> Result<String, ExecError> {
        self.timesync
            .map(str::to_owned)
            .ok_or_else(|| failed("timedatectl timesync-status", "no timesyncd"))
    }
}

pub(super) fn clock(r: &Recorded, warn_ms: u64, fail_ms: u64) -> (Check, bool, Option<f64>) {
    time::judge(
        DOMAIN,
        &time::read(r),
        MS * warn_ms as u32,
        MS * fail_ms as u32,
    )
}

pub(super) const NO_TOOLS: Recorded = Recorded {
    chrony: None,
    chrony_missing: true,
    show: None,
    timesync: None,
};

#[test]
fn leftovers_are_told_from_this_install() {
    let e = leftovers::Evidence::default();
    assert_eq!(leftovers::judge(DOMAIN, &e).0.status, Status::Pass);
    let e = leftovers::Evidence {
        etc_kubernetes: true,
        ..Default::default()
    };
    let (c, n) = leftovers::judge(DOMAIN, &e);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.summary.contains("/etc/kubernetes is there"),
        "{}",
        c.summary
    );
    assert!(c.remedy.expect("remedy").contains("nodeadm uninstall"));
    assert_eq!(n, 1);
    let e = leftovers::Evidence {
        kubelet_env: true,
        etc_kubernetes: true,
        kubelet_config: true,
        kubelet_active: Some(true),
        kubeconfig_server: Some("old.eks.amazonaws.com".into()),
        nodeconfig_server: Some("new.eks.amazonaws.com".into()),
    };
    let (c, n) = leftovers::judge(DOMAIN, &e);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary
            .contains("points at old.eks.amazonaws.com, the NodeConfig at new.eks.amazonaws.com"),
        "{}",
        c.summary
    );
    assert_eq!(n, 3);
    let e = leftovers::Evidence {
        nodeconfig_server: Some("old.eks.amazonaws.com".into()),
        ..e
    };
    assert_eq!(leftovers::judge(DOMAIN, &e).0.status, Status::Pass);
}

#[derive(Debug)]
struct Running(&'static [&'static str]);

impl ServiceManager for Running {
    fn restart(&self, unit: &str) -> Result<(), ExecError> {
        panic!("preflight restarted {unit}: it only looks")
    }

    fn state(&self, unit: &str) -> Result<UnitState, ExecError> {
        let (active, sub) = if self.0.contains(&unit) {
            ("active", "running")
        } else {
            ("inactive", "dead")
        };
        Ok(UnitState::Loaded {
            active: active.into(),
            sub: sub.into(),
        })
    }
}

#[test]
fn the_domain_runs_every_family_and_exports_them() {
    let root = tempfile::tempdir().expect("tmp");
    let r = root.path();
    write(
        r,
        "/proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1024\t0\t-2\n",
    );
    write(r, "/etc/ufw/ufw.conf", "ENABLED=yes\n");
    write(r, "/etc/ufw/user.rules", UFW_OPEN);
    let mut registry = Registry::with_prefix("hybrid_node");
    let mut d = PreflightDomain::new(
        &Config::default(),
        Host::new(r),
        &mut registry,
        Facts::default(),
        Edges {
            time: Some(Box::new(Recorded {
                chrony: Some(SYNCED),
                ..NO_TOOLS
            })),
            services: Box::new(Running(&["ufw"])),
            node_interface: || None,
        },
    );
    let checks = d.run();
    let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "clock",
            "swap",
            "limits/kubelet",
            "limits/containerd",
            "proxy",
            "no_proxy",
            "firewall",
            "leftovers"
        ]
    );
    let status = |id: &str| checks.iter().find(|c| c.id == id).map(|c| c.status);
    assert_eq!(status("clock"), Some(Status::Pass));
    assert_eq!(status("swap"), Some(Status::Fail));
    assert_eq!(status("firewall"), Some(Status::Pass));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        "hybrid_node_preflight_clock_synchronized 1",
        "hybrid_node_preflight_swap_areas 1",
        "hybrid_node_preflight_swap_bytes 1048576",
        "hybrid_node_preflight_firewall_active{firewall=\"ufw\"} 1",
        "hybrid_node_preflight_firewall_active{firewall=\"firewalld\"} 0",
        "hybrid_node_preflight_firewall_port_open{port=\"8472/udp\"} 1",
        "hybrid_node_preflight_service_limit{unit=\"kubelet\",resource=\"nofile\"} 1024.0",
        "hybrid_node_preflight_proxy_consistent 1",
        "hybrid_node_preflight_leftover_artifacts 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(
        text.contains("hybrid_node_preflight_clock_offset_seconds 0.00000338"),
        "{text}"
    );
}

#[test]
fn the_lifecycle_phase_stands_in_for_systemd_under_a_root() {
    let root = tempfile::tempdir().expect("tmp");
    let r = root.path();
    write(
        r,
        "/proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1024\t0\t-2\n",
    );
    let facts = Facts::default();
    let mut registry = Registry::default();
    let mut d = PreflightDomain::new(
        &Config::default(),
        Host::new(r),
        &mut registry,
        facts.clone(),
        Edges {
            time: None,
            services: Box::new(crate::edge::systemctl::NotThisHost),
            node_interface: || None,
        },
    );
    let find = |checks: &[Check], id: &str| checks.iter().find(|c| c.id == id).cloned().expect(id);
    // Before init a swap file is nodeadm's to turn off; a kubelet answering
    // /healthz without init's files is a leftover.
    facts.set_phase(crate::model::Phase::KubeletRunning);
    let checks = d.run();
    assert_eq!(find(&checks, "clock").status, Status::NotApplicable);
    assert_eq!(
        find(&checks, "swap").status,
        Status::Fail,
        "kubelet_running is after init"
    );
    let c = find(&checks, "leftovers");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.summary.contains("a running kubelet"), "{}", c.summary);
    facts.set_phase(crate::model::Phase::Installed);
    let checks = d.run();
    assert_eq!(find(&checks, "swap").status, Status::Warn);
    assert_eq!(find(&checks, "leftovers").status, Status::Pass);
}

#[test]
fn localhost_is_not_asked_of_no_proxy() {
    // Go's httpproxy (kubelet, containerd, the SSM agent) never proxies
    // localhost: a NO_PROXY without it is no finding.
    let root = tempfile::tempdir().expect("tmp");
    let r = root.path();
    write(
        r,
        "/etc/environment",
        "HTTPS_PROXY=http://proxy.corp:3128\nNO_PROXY=.corp\n",
    );
    write(
        r,
        "/etc/systemd/system/kubelet.service.d/http-proxy.conf",
        "[Service]\nEnvironment=\"HTTPS_PROXY=http://proxy.corp:3128\" \"NO_PROXY=.corp\"\n",
    );
    let mut registry = Registry::with_prefix("hybrid_node");
    let mut d = PreflightDomain::new(
        &Config::default(),
        Host::new(r),
        &mut registry,
        Facts::default(),
        Edges {
            time: None,
            services: Box::new(crate::edge::systemctl::NotThisHost),
            node_interface: || None,
        },
    );
    let checks = d.run();
    let c = checks
        .iter()
        .find(|c| c.id == "no_proxy")
        .expect("no_proxy");
    assert_eq!(c.status, Status::NotApplicable, "{c:?}");
    assert!(!c.summary.contains("localhost"), "{c:?}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.lines()
            .any(|l| l == "hybrid_node_preflight_no_proxy_uncovered 0"),
        "{text}"
    );
}

//! The preflight domain on a booted systemd (Debian 12 under
//! systemd-nspawn, `scripts/live-host.sh`), where the agent asks systemd
//! itself: `systemctl is-active` finds a kubelet left running with no
//! nodeadm init files; the limits the agent reads from the unit files and
//! drop-ins are the ones systemd applies (`systemctl show
//! -p LimitNOFILESoft`); and `timedatectl` answers from the container's
//! systemd-timedated, which has no NTP service to synchronise with.

use hybrid_node_agent_e2e::live::{self, BootedHost};
use hybrid_node_agent_e2e::{agent_bin, check_in, json_report};

#[test]
fn preflight_on_a_booted_systemd_host() {
    if live::prerequisites().is_none() {
        return;
    }
    let base = live::prepared_root();
    let host = BootedHost::boot(&base);
    std::fs::copy(agent_bin(), host.path("/usr/bin/hybrid-node-agent")).expect("copy agent");
    // A kubelet unit as nodeadm installs it, standing in for a kubelet an
    // earlier install left running, with a drop-in lowering its limits.
    host.write(
        "/etc/systemd/system/kubelet.service",
        b"[Unit]\nDescription=Kubernetes Kubelet\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
    );
    host.write(
        "/etc/systemd/system/kubelet.service.d/20-limits.conf",
        b"[Service]\nLimitNOFILE=512:65536\n",
    );
    host.write(
        "/etc/systemd/system/containerd.service",
        b"[Service]\nExecStart=/bin/sleep infinity\nLimitNOFILE=infinity\nLimitNPROC=infinity\n",
    );
    host.ok("systemctl daemon-reload && systemctl start kubelet containerd");
    let soft = host.show("kubelet", "LimitNOFILESoft");
    assert_eq!(soft, "512", "systemd's own view of the drop-in");
    let nproc = host.show("kubelet", "LimitNPROCSoft");
    let out = host.sh("hybrid-node-agent check -o json");
    let report: serde_json::Value = json_report(&out);
    let (status, summary) = check_in(&report, "preflight", "limits/kubelet");
    assert_eq!(status, "fail", "{summary}");
    assert!(
        summary.contains(&format!(
            "LimitNOFILE soft limit {soft} (from /etc/systemd/system/kubelet.service.d/20-limits.conf:2)"
        )),
        "{summary}"
    );
    // Without a LimitNPROC of its own the kubelet gets the manager's
    // default: what the agent works out is what systemd applies.
    assert!(
        summary.contains(&format!("(LimitNPROC={nproc})")),
        "systemd says LimitNPROCSoft={nproc}: {summary}"
    );
    let (status, summary) = check_in(&report, "preflight", "limits/containerd");
    assert_eq!(status, "pass", "{summary}");
    let (status, summary) = check_in(&report, "preflight", "leftovers");
    assert_eq!(status, "warn", "{summary}");
    assert!(summary.contains("a running kubelet"), "{summary}");
    let (status, summary) = check_in(&report, "preflight", "clock");
    let show = host.sh("timedatectl show");
    let show = String::from_utf8_lossy(&show.stdout);
    // The container runs no NTP service (timesyncd does not start in a
    // container, chrony is not installed).
    assert!(show.contains("CanNTP=no"), "{show}");
    assert_eq!(status, "fail", "{summary}");
    assert!(
        summary.contains("no NTP service is installed (`timedatectl`: CanNTP=no"),
        "{summary}"
    );
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "pass", "{summary}");
    // Stopped, the kubelet is no longer a leftover.
    host.ok("systemctl stop kubelet");
    let out = host.sh("hybrid-node-agent check -o json");
    let report: serde_json::Value = json_report(&out);
    let (status, summary) = check_in(&report, "preflight", "leftovers");
    assert_eq!(status, "pass", "{summary}");
}

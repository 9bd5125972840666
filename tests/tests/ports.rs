//! The kubelet's port after init, against the kernel's socket table: in a
//! namespace of its own, a listener on TCP 10250 (iperf3 serves as one)
//! bound to loopback only fails the check, bound to every address passes.
//! The agent's root is an initialized fixture tree whose `proc` is the real
//! /proc, so the table is the namespace's own.

use hybrid_node_agent_e2e::netns::{available, ip, unique};
use hybrid_node_agent_e2e::{
    agent_bin, check_in, eventually, json_report, require_tool, root_from_fixture,
};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listen(ns: &str, iperf3: &Path, bind: &str) -> Reaped {
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(iperf3)
        .args(["-s", "-p", "10250", "-B", bind])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3");
    let up = eventually(Duration::from_secs(5), || {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Hltn", "sport = :10250"])
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then_some(())
    });
    assert!(up.is_some(), "nothing listens on 10250");
    Reaped(child)
}

fn kubelet_check(ns: &str, root: &Path) -> (String, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(agent_bin())
        .args([
            "--root",
            root.to_str().expect("utf-8"),
            "check",
            "-o",
            "json",
        ])
        .output()
        .expect("agent");
    let r: serde_json::Value = json_report(&out);
    let (s, m) = check_in(&r, "ports", "kubelet_10250");
    (s.to_owned(), m.to_owned())
}

#[test]
fn kubelet_port_must_listen_beyond_loopback_after_init() {
    let Some(iperf3) = require_tool("iperf3") else {
        return;
    };
    if available().is_none() {
        return;
    }
    let ns = Ns(format!("hna-k-{}", unique()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "10.91.0.5/24", "dev", "lo"]);
    let root = root_from_fixture("initialized");
    std::os::unix::fs::symlink("/proc", root.path().join("proc")).expect("symlink");

    let (s, m) = kubelet_check(&ns.0, root.path());
    assert_eq!(s, "fail", "{m}");
    assert!(m.contains("nothing listens on TCP 10250"), "{m}");

    let lo = listen(&ns.0, &iperf3, "127.0.0.1");
    let (s, m) = kubelet_check(&ns.0, root.path());
    assert_eq!(s, "fail", "{m}");
    assert!(m.contains("listens only on 127.0.0.1"), "{m}");
    drop(lo);

    let _all = listen(&ns.0, &iperf3, "0.0.0.0");
    let (s, m) = kubelet_check(&ns.0, root.path());
    assert_eq!(s, "pass", "{m}");
    assert!(m.contains("on every address"), "{m}");
}

//! `check`, `version` and config errors, as a site admin sees them.

use hybrid_node_agent_e2e::{fixture, root_from_fixture, run_agent, FakeKubelet};
use std::path::Path;

fn json_check(root: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let root = root.to_str().expect("utf-8 path");
    let mut args = vec!["--root", root];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["check", "--output", "json"]);
    let out = run_agent(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (out.status.code().unwrap_or(-1), v)
}

fn status_of<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    hybrid_node_agent_e2e::check_in(report, "lifecycle", id).0
}

/// A config pointing the kubelet probe at `addr`.
fn config_with_kubelet(dir: &Path, addr: std::net::SocketAddr) -> String {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!("[lifecycle]\nkubelet_healthz = \"{addr}\"\n"),
    )
    .expect("write config");
    path.to_string_lossy().into_owned()
}

#[test]
fn lifecycle_phases_from_fixture_trees() {
    // Nothing listens on this port: the kubelet is down.
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let down = config_with_kubelet(cfg_dir.path(), "127.0.0.1:9".parse().expect("addr"));

    // Before init, the missing NodeConfig is a warning too.
    let cases = [
        ("empty", "not_installed", 1, "warn", "n/a"),
        ("installed", "installed", 1, "pass", "n/a"),
        ("initialized", "initialized", 2, "pass", "fail"),
        ("joined", "joined", 2, "pass", "fail"),
    ];
    for (tree, phase, code, nodeadm, kubelet) in cases {
        let root = root_from_fixture(tree);
        let (exit, report) = json_check(root.path(), &["--config", &down]);
        assert_eq!(report["phase"], phase, "{tree}: {report}");
        assert_eq!(exit, code, "{tree}: {report}");
        assert_eq!(report["exit_code"], code);
        assert_eq!(status_of(&report, "nodeadm"), nodeadm, "{tree}");
        assert_eq!(status_of(&report, "kubelet"), kubelet, "{tree}");
    }
}

#[test]
fn kubelet_running_and_joined_with_a_live_kubelet() {
    let kubelet = FakeKubelet::start();
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let up = config_with_kubelet(cfg_dir.path(), kubelet.addr);

    let root = root_from_fixture("initialized");
    let (exit, report) = json_check(root.path(), &["--config", &up]);
    assert_eq!(report["phase"], "kubelet_running", "{report}");
    assert_eq!(status_of(&report, "kubelet"), "pass");
    assert_eq!(status_of(&report, "joined"), "warn");
    assert_eq!(exit, 1);

    let root = root_from_fixture("joined");
    // A real serving certificate (the fixture's stands in for presence only;
    // the credentials domain reads it).
    std::fs::write(
        root.path()
            .join("var/lib/kubelet/pki/kubelet-server-current.pem"),
        {
            // The kubelet keeps the key in the same file.
            let p = hybrid_node_agent_e2e::pki("joined");
            format!("{}{}", p.server_pem, p.server_key)
        },
    )
    .expect("write");
    let (exit, report) = json_check(root.path(), &["--config", &up]);
    assert_eq!(report["phase"], "joined", "{report}");
    // After init a missing NodeConfig is not a problem.
    assert_eq!(exit, 0, "{report}");
    assert_eq!(report["summary"]["fail"], 0);
}

#[test]
fn table_output_is_grouped_and_readable() {
    let root = root_from_fixture("empty");
    let out = run_agent(&[
        "--root",
        root.path().to_str().expect("utf-8"),
        "check",
        "--color",
        "never",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("lifecycle\n"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("  WARN  nodeadm ")
            && l.ends_with(" nodeadm is not installed (not on PATH, no install tracker)")),
        "{text}"
    );
    assert!(text.contains("fix: download nodeadm"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("WARNINGS: phase not_installed; 7 pass, 2 warn, 0 fail"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour when asked for none");

    let out = run_agent(&[
        "--root",
        root.path().to_str().expect("utf-8"),
        "check",
        "--color",
        "always",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\x1b[33mWARN"));
}

#[test]
fn config_errors_name_file_line_and_column_and_exit_64() {
    let out = run_agent(&[
        "--config",
        fixture("config/unknown-key.toml").to_str().expect("utf-8"),
        "check",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("unknown-key.toml:5:1: unknown field `kubelet_healthz_url`"),
        "{err}"
    );
    assert!(
        err.contains("expected `interval` or `kubelet_healthz`"),
        "{err}"
    );

    let out = run_agent(&[
        "--config",
        fixture("config/bad-listen.toml").to_str().expect("utf-8"),
        "run",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("bad-listen.toml:2:10: agent.listen: invalid socket address syntax"),
        "{err}"
    );

    let out = run_agent(&["--config", "/nonexistent/agent.toml", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("cannot read agent config /nonexistent/agent.toml"),
        "{err}"
    );
}

#[test]
fn no_config_at_all_means_defaults() {
    // The default path under an empty root does not exist.
    let root = root_from_fixture("empty");
    let (exit, report) = json_check(root.path(), &[]);
    assert_eq!(exit, 1);
    assert_eq!(report["phase"], "not_installed");
}

#[test]
fn default_config_under_root_is_read() {
    let root = root_from_fixture("empty");
    let dir = root.path().join("etc/hybrid-node-agent");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("config.toml"), "[agent]\nbogus = 1\n").expect("write");
    let out = run_agent(&["--root", root.path().to_str().expect("utf-8"), "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("etc/hybrid-node-agent/config.toml:2:1: unknown field `bogus`"),
        "{err}"
    );
}

#[test]
fn version_prints_the_crate_version() {
    let out = run_agent(&["version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("hybrid-node-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

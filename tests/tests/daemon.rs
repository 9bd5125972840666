//! The daemon as systemd and Prometheus see it: sd_notify messages, signals,
//! reloads and the HTTP endpoint.

use hybrid_node_agent_e2e::{
    eventually, http_get, http_request, root_from_fixture, run_agent, sample, Agent, FakeKubelet,
    Signal,
};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// A datagram socket standing in for systemd's notify socket.
struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl NotifySocket {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        NotifySocket {
            socket,
            path: path.to_string_lossy().into_owned(),
            _dir: dir,
        }
    }

    /// Collects messages until one contains `needle` (returns everything
    /// received so far) or `timeout` passes (panics).
    fn wait_for(&self, needle: &str, timeout: Duration, seen: &mut Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == needle || l.starts_with(needle));
                seen.push(msg);
                if hit {
                    return;
                }
            }
        }
        panic!("no {needle:?} within {timeout:?}; got {seen:?}");
    }
}

#[test]
fn systemd_ready_status_watchdog_and_stopping() {
    let notify = NotifySocket::new();
    let root = root_from_fixture("installed");
    let mut agent = Agent::start(
        &["--root", root.path().to_str().expect("utf-8")],
        &[
            ("NOTIFY_SOCKET", notify.path.as_str()),
            ("WATCHDOG_USEC", "200000"),
        ],
        None,
    );
    let mut seen = Vec::new();
    notify.wait_for("READY=1", Duration::from_secs(10), &mut seen);
    let ready = seen.last().cloned().unwrap_or_default();
    assert!(
        ready.contains("STATUS=phase=installed; 8 pass, 1 warn, 0 fail"),
        "{ready:?}"
    );
    // READY comes only once the endpoint is up.
    assert_eq!(
        http_get(agent.addr, "/healthz", &[]).map(|r| r.status).ok(),
        Some(200)
    );
    // Half of WATCHDOG_USEC: a ping about every 100 ms.
    let mut pings = Vec::new();
    notify.wait_for("WATCHDOG=1", Duration::from_secs(2), &mut pings);
    notify.wait_for("WATCHDOG=1", Duration::from_secs(2), &mut pings);

    agent.signal(Signal::SIGTERM);
    let mut stopping = Vec::new();
    notify.wait_for("STOPPING=1", Duration::from_secs(5), &mut stopping);
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .expect("agent exits");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn watchdog_is_silent_when_not_enabled() {
    let notify = NotifySocket::new();
    let root = root_from_fixture("empty");
    let mut agent = Agent::start(
        &["--root", root.path().to_str().expect("utf-8")],
        &[("NOTIFY_SOCKET", notify.path.as_str())],
        None,
    );
    let mut seen = Vec::new();
    notify.wait_for("READY=1", Duration::from_secs(10), &mut seen);
    std::thread::sleep(Duration::from_millis(400));
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.socket.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(!seen.iter().any(|m| m.contains("WATCHDOG=1")), "{seen:?}");
    agent.signal(Signal::SIGINT);
    assert!(agent
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

fn write(path: &Path, text: &str) {
    // Replace by rename, as config tools do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one() {
    let notify = NotifySocket::new();
    let root = root_from_fixture("initialized");
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_dir.path().join("agent.toml");
    // The kubelet is down: phase initialized, kubelet check fails.
    write(
        &cfg,
        "[lifecycle]\ninterval = \"100ms\"\nkubelet_healthz = \"127.0.0.1:9\"\n",
    );
    let agent = Agent::start(
        &[
            "--root",
            root.path().to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
        ],
        &[("NOTIFY_SOCKET", notify.path.as_str())],
        None,
    );
    let mut seen = Vec::new();
    notify.wait_for("READY=1", Duration::from_secs(10), &mut seen);
    let phase_is = |agent: &Agent, phase: &str| {
        sample(
            &agent.metrics(),
            &format!("hybrid_node_lifecycle_phase{{phase=\"{phase}\"}}"),
        ) == Some(1.0)
    };
    assert!(phase_is(&agent, "initialized"));

    // A broken edit, then SIGHUP: still serving, same config, failure counted.
    write(
        &cfg,
        "[lifecycle]\ninterval = \"100ms\"\nkubelet_healthz = \n",
    );
    agent.signal(Signal::SIGHUP);
    let mut reload = Vec::new();
    notify.wait_for("RELOADING=1", Duration::from_secs(5), &mut reload);
    assert!(
        reload.iter().any(|m| m.contains("MONOTONIC_USEC=")),
        "{reload:?}"
    );
    notify.wait_for("READY=1", Duration::from_secs(5), &mut reload);
    let m = agent.metrics();
    assert_eq!(
        sample(
            &m,
            "hybrid_node_agent_config_reloads_total{result=\"failure\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "hybrid_node_agent_config_last_reload_successful"),
        Some(0.0)
    );
    // The old config is still in force: runs continue every 100 ms.
    let runs = |m: &str| {
        sample(
            m,
            "hybrid_node_probe_runs_total{domain=\"lifecycle\",result=\"ok\"}",
        )
        .unwrap_or(0.0)
    };
    let before = runs(&m);
    assert!(
        eventually(Duration::from_secs(5), || (runs(&agent.metrics())
            >= before + 3.0)
            .then_some(()))
        .is_some(),
        "the old schedule stopped"
    );

    // A good edit pointing at a live kubelet: applied without a restart.
    let kubelet = FakeKubelet::start();
    write(
        &cfg,
        &format!(
            "[lifecycle]\ninterval = \"100ms\"\nkubelet_healthz = \"{}\"\n",
            kubelet.addr
        ),
    );
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(5), || phase_is(
            &agent,
            "kubelet_running"
        )
        .then_some(()))
        .is_some(),
        "the new config was not applied: {}",
        agent.metrics()
    );
    let m = agent.metrics();
    assert_eq!(
        sample(
            &m,
            "hybrid_node_agent_config_reloads_total{result=\"success\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "hybrid_node_agent_config_last_reload_successful"),
        Some(1.0)
    );
    let status = http_get(agent.addr, "/status", &[]).expect("status");
    let doc: serde_json::Value = serde_json::from_str(&status.body).expect("json");
    assert_eq!(doc["phase"], "kubelet_running");
}

#[test]
fn endpoint_routes_methods_and_formats() {
    let root = root_from_fixture("empty");
    let mut agent = Agent::start(&["--root", root.path().to_str().expect("utf-8")], &[], None);
    agent.wait_ready();

    let plain = http_get(agent.addr, "/metrics", &[]).expect("scrape");
    assert!(plain
        .head
        .contains("text/plain; version=0.0.4; charset=utf-8"));
    assert!(!plain.body.contains("# EOF"));
    assert!(plain.body.contains(&format!(
        "hybrid_node_agent_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));

    let om = http_get(
        agent.addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .expect("scrape");
    assert!(om.head.contains("application/openmetrics-text"));
    assert!(om.body.ends_with("# EOF\n"));

    // Every domain has run once (READY's condition) before the summary counts.
    let doc = eventually(Duration::from_secs(5), || {
        let status = http_get(agent.addr, "/status", &[]).ok()?;
        let doc: serde_json::Value = serde_json::from_str(&status.body).ok()?;
        (doc["domains"].as_object()?.len() == 13).then_some(doc)
    })
    .expect("all domains in /status");
    assert_eq!(doc["phase"], "not_installed");
    assert_eq!(
        doc["summary"]["warn"], 2,
        "nodeadm and the NodeConfig are missing"
    );
    assert_eq!(doc["domains"]["lifecycle"]["outcome"], "ok");

    assert_eq!(
        http_get(agent.addr, "/nope", &[]).map(|r| r.status).ok(),
        Some(404)
    );
    let post = http_request(agent.addr, "POST", "/metrics", &[]).expect("post");
    assert_eq!(post.status, 405);
    assert!(post.head.to_ascii_lowercase().contains("allow: get, head"));
    let head = http_request(agent.addr, "HEAD", "/metrics", &[]).expect("head");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn taken_port_is_a_clear_error_with_exit_69() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr").to_string();
    let root = root_from_fixture("empty");
    let started = Instant::now();
    let out = run_agent(&[
        "--root",
        root.path().to_str().expect("utf-8"),
        "run",
        "--listen",
        &addr,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}: Address already in use")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "no retry loop");
}

#[test]
fn reload_command_checks_the_config_before_signalling_the_agent() {
    let root = root_from_fixture("installed");
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_dir.path().join("agent.toml");
    write(&cfg, "[lifecycle]\ninterval = \"100ms\"\n");
    let r = root.path().to_str().expect("utf-8");
    let c = cfg.to_str().expect("utf-8");
    let mut agent = Agent::start(&["--root", r, "--config", c], &[], None);
    agent.wait_ready();
    let pid = agent.child.id().to_string();
    let reloads = |result: &str| {
        sample(
            &agent.metrics(),
            &format!("hybrid_node_agent_config_reloads_total{{result=\"{result}\"}}"),
        )
        .unwrap_or(0.0)
    };

    // A broken edit: `reload` fails with file:line:column and the cause, as
    // `systemctl reload` shows it; the agent was not signalled at all.
    write(&cfg, "[lifecycle]\ninterval = \"100ms\"\nbogus = 1\n");
    let out = run_agent(&["--root", r, "--config", c, "reload", "--pid", &pid]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(&format!("{c}:3:1")), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reloads("failure"), 0.0);
    assert_eq!(reloads("success"), 0.0);

    // A good edit: exit 0 and the agent reloads.
    write(&cfg, "[lifecycle]\ninterval = \"200ms\"\n");
    let out = run_agent(&["--root", r, "--config", c, "reload", "--pid", &pid]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        eventually(Duration::from_secs(5), || (reloads("success") == 1.0)
            .then_some(()))
        .is_some()
    );

    // Never a process group or every process.
    for bad in ["0", "1", "-1"] {
        let out = run_agent(&["--root", r, "--config", c, "reload", "--pid", bad]);
        assert_eq!(out.status.code(), Some(2), "pid {bad}: {out:?}");
    }
    // A pid that is gone: a clear error, exit 69.
    let out = run_agent(&["--root", r, "--config", c, "reload", "--pid", "999999999"]);
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot signal the agent (pid 999999999)")
    );
}

#[test]
fn reload_moves_from_the_wildcard_to_loopback_on_the_same_port() {
    let root = root_from_fixture("installed");
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_dir.path().join("agent.toml");
    let port = hybrid_node_agent_e2e::free_port();
    write(&cfg, &format!("[agent]\nlisten = \"0.0.0.0:{port}\"\n"));
    let log = cfg_dir.path().join("agent.log");
    let agent = hybrid_node_agent_e2e::KillOnDrop(
        std::process::Command::new(hybrid_node_agent_e2e::agent_bin())
            .args(["--root", root.path().to_str().expect("utf-8")])
            .args(["--config", cfg.to_str().expect("utf-8"), "run"])
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn agent"),
    );
    let healthy =
        |ip: [u8; 4]| http_get((ip, port).into(), "/healthz", &[]).is_ok_and(|h| h.status == 200);
    // The wildcard answers on any loopback address.
    assert!(
        eventually(Duration::from_secs(10), || healthy([127, 0, 0, 2])
            .then_some(()))
        .is_some()
    );

    write(&cfg, &format!("[agent]\nlisten = \"127.0.0.1:{port}\"\n"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent.pid()).expect("pid")),
        Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let m = eventually(Duration::from_secs(5), || {
        let m = http_get(([127, 0, 0, 1], port).into(), "/metrics", &[])
            .ok()?
            .body;
        (sample(
            &m,
            "hybrid_node_agent_config_reloads_total{result=\"success\"}",
        )? == 1.0)
            .then_some(m)
    })
    .expect("the move is a successful reload");
    assert_eq!(
        sample(&m, "hybrid_node_agent_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(healthy([127, 0, 0, 1]));
    assert!(!healthy([127, 0, 0, 2]), "the wildcard socket is released");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains(&format!("listening on the new address 127.0.0.1:{port}")),
        "{text}"
    );
}

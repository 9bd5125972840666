//! Bandwidth ground truth: an `iperf3 -s` (the Debian package) in a server
//! namespace, joined to the agent's namespace by a veth pair whose two ends
//! are shaped with `tc tbf` to a known rate. The agent's built-in iperf3
//! client must measure that rate within ±10 % both ways, judge it against
//! thresholds scaled to the test, run scheduled tests one at a time, and
//! tell the server when a stop cancels a test.

use hybrid_node_agent_e2e::netns::Pair;
use hybrid_node_agent_e2e::{
    agent_bin, eventually, free_port, json_report, require_tool, sample, status_check, KillOnDrop,
};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The tests of this file measure throughput: run one at a time, so that
/// one test's traffic does not take the CPU the other measures with.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const SERVER: &str = "10.79.0.2";
const PORT: u16 = 5201;

/// The agent's namespace and the server's, with iperf3 and tc at hand.
fn pair() -> Option<Pair> {
    require_tool("tc")?;
    require_tool("iperf3")?;
    Pair::new("10.79.0")
}

/// Shapes both directions to `mbit` (each end's egress).
fn shape(p: &Pair, mbit: u32) {
    let rate = format!("{mbit}mbit");
    for (ns, dev) in [(&p.client, &p.c0), (&p.server, &p.s0)] {
        p.tc(
            ns,
            &[
                "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst", "256kb",
                "latency", "50ms",
            ],
        );
    }
}

/// `iperf3 -s` in the server namespace, its output in `log`.
fn iperf3_server(p: &Pair, log: &Path) -> KillOnDrop {
    let iperf3 = require_tool("iperf3").expect("iperf3");
    let file = std::fs::File::create(log).expect("log");
    let child = p
        .exec(&p.server, &iperf3, &["-s", "-p", &PORT.to_string()])
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup"))
        .stderr(file)
        .spawn()
        .expect("iperf3 -s");
    // Listening once `ss` shows the socket.
    let ready = eventually(Duration::from_secs(5), || {
        let out = p
            .exec(
                &p.server,
                Path::new("ss"),
                &["-Hltn", &format!("sport = :{PORT}")],
            )
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then_some(())
    });
    assert!(ready.is_some(), "iperf3 -s did not listen");
    KillOnDrop(child)
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\napi_server = false\ninterval = \"1s\"\n[network.bandwidth]\nwarn_below = \"300M\"\ncritical_below = \"150M\"\n{extra}[[network.target]]\nname = \"vpc\"\naddress = \"{SERVER}\"\nicmp = false\niperf_port = {PORT}\n"
        ),
    )
    .expect("write config");
    cfg
}

/// `bandwidth -o json` in the client namespace: (exit code, report).
fn measure(p: &Pair, root: &Path, cfg: &Path, reverse: bool) -> (i32, serde_json::Value) {
    let target = format!("{SERVER}:{PORT}");
    let mut args = vec![
        "--root",
        root.to_str().expect("utf-8"),
        "--config",
        cfg.to_str().expect("utf-8"),
        "bandwidth",
        "--target",
        &target,
        "--duration",
        "4s",
        "-o",
        "json",
    ];
    if reverse {
        args.push("--reverse");
    }
    // iperf3 -s takes a moment after a test ends (the reference run just
    // before) to take the next one; meanwhile it answers "busy", which the
    // agent reports as it should. Wait that out, briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = p
            .exec(&p.client, &agent_bin(), &args)
            .output()
            .expect("agent");
        let busy = String::from_utf8_lossy(&out.stderr).contains("is busy running another test");
        if !busy || Instant::now() >= deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let report = json_report(&out);
    (out.status.code().unwrap_or(-1), report)
}

/// The real iperf3 client's receiver rate, for the log.
fn iperf3_reference(p: &Pair, reverse: bool) -> f64 {
    let iperf3 = require_tool("iperf3").expect("iperf3");
    let mut args = vec!["-c", SERVER, "-p", "5201", "-t", "4", "-P", "10", "-J"];
    if reverse {
        args.push("-R");
    }
    let out = p
        .exec(&p.client, &iperf3, &args)
        .output()
        .expect("iperf3 -c");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 -J");
    j["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("sum_received")
}

#[test]
fn measured_rate_matches_tbf_shaping_both_ways_and_is_judged_on_scaled_thresholds() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(p) = pair() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let _server = iperf3_server(&p, &dir.path().join("iperf3.log"));
    let cfg = config(dir.path(), "");
    // Thresholds scaled for the test: ≥ 300 Mbit/s pass, < 150 fail.
    for (mbit, verdict, code) in [(400u32, "pass", 0), (200, "warn", 1), (100, "fail", 2)] {
        shape(&p, mbit);
        for reverse in [false, true] {
            let (rc, r) = measure(&p, dir.path(), &cfg, reverse);
            let bps = r["bits_per_second"].as_f64().expect("bits_per_second");
            let shaped = f64::from(mbit) * 1e6;
            let reference = iperf3_reference(&p, reverse);
            eprintln!(
                "shaped {mbit} Mbit/s, {}: agent {:.1} Mbit/s ({:+.1} %), iperf3 {:.1} Mbit/s",
                r["direction"],
                bps / 1e6,
                (bps / shaped - 1.0) * 100.0,
                reference / 1e6
            );
            assert_eq!(r["direction"], if reverse { "ingress" } else { "egress" });
            assert!(
                (bps - shaped).abs() <= 0.10 * shaped,
                "{mbit} Mbit/s shaped, {:.1} Mbit/s measured: {r}",
                bps / 1e6
            );
            assert_eq!(r["status"], verdict, "{r}");
            assert_eq!(rc, code, "{r}");
            assert_eq!(r["parallel"], 10);
            assert_eq!(r["streams"].as_array().map(Vec::len), Some(10));
        }
    }
}

#[test]
fn scheduled_tests_export_the_rate_run_one_at_a_time_and_a_stop_tells_the_server() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(p) = pair() else {
        return;
    };
    let Some(curl) = require_tool("curl") else {
        return;
    };
    shape(&p, 400);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("iperf3.log");
    let _server = iperf3_server(&p, &log);
    let cfg = config(
        dir.path(),
        "enabled = true\ninterval = \"7s\"\nduration = \"3s\"\nparallel = 4\n",
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut agent = p
        .exec(
            &p.client,
            &agent_bin(),
            &[
                "--root",
                dir.path().to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "run",
                "--listen",
                &listen,
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("agent");
    let get = |path: &str| -> Option<String> {
        let out = p
            .exec(
                &p.client,
                &curl,
                &["-sf", &format!("http://{listen}{path}")],
            )
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };

    // The first round (7 s in): both directions measured, exported, judged.
    let m = eventually(Duration::from_secs(30), || {
        let m = get("/metrics")?;
        sample(
            &m,
            "hybrid_node_net_bandwidth_bits_per_second{target=\"vpc\",direction=\"ingress\"}",
        )?;
        Some(m)
    })
    .expect("a scheduled round measured both directions");
    for d in ["egress", "ingress"] {
        let bps = sample(
            &m,
            &format!(
                "hybrid_node_net_bandwidth_bits_per_second{{target=\"vpc\",direction=\"{d}\"}}"
            ),
        )
        .expect("rate");
        assert!((bps - 400e6).abs() <= 40e6, "{d}: {bps}");
        assert!(sample(
            &m,
            &format!("hybrid_node_net_bandwidth_tests_total{{target=\"vpc\",direction=\"{d}\",result=\"ok\"}}")
        )
        .is_some_and(|n| n >= 1.0));
        assert!(sample(
            &m,
            &format!("hybrid_node_net_bandwidth_last_test_timestamp_seconds{{target=\"vpc\",direction=\"{d}\"}}")
        )
        .is_some_and(|t| t > 1.7e9));
        let (s, summary) = eventually(Duration::from_secs(5), || {
            status_check(&get("/status")?, "bandwidth", &format!("bandwidth/vpc/{d}"))
                .filter(|(s, _)| s != "unknown")
        })
        .expect("check published");
        assert_eq!(s, "pass", "{summary}");
    }

    // The second round: while it runs, a test by hand is refused.
    eventually(Duration::from_secs(15), || {
        let m = get("/metrics")?;
        (sample(&m, "hybrid_node_net_bandwidth_test_running")? == 1.0).then_some(())
    })
    .expect("the second round runs");
    let out = p
        .exec(
            &p.client,
            &agent_bin(),
            &[
                "--root",
                dir.path().to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "bandwidth",
                "--target",
                SERVER,
                "--duration",
                "1s",
            ],
        )
        .output()
        .expect("agent bandwidth");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains("another bandwidth test is running"),
        "{stderr}"
    );

    // A stop mid-test: the agent exits promptly and the server hears that
    // the client ended the test (not a dropped connection).
    let stopped = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = eventually(Duration::from_secs(10), || {
        agent.0.try_wait().ok().flatten()
    })
    .expect("the agent exits");
    assert!(status.success(), "{status:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    let text = eventually(Duration::from_secs(5), || {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("the client has terminated").then_some(t)
    });
    assert!(
        text.is_some(),
        "the iperf3 server was not told: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn the_command_names_bad_targets_reports_a_dead_server_and_an_interrupt_tells_the_server() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(p) = pair() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), "");
    let run = |target: &str, extra: &[&str]| {
        let mut args = vec![
            "--root",
            dir.path().to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
            "bandwidth",
            "--target",
            target,
        ];
        args.extend_from_slice(extra);
        p.exec(&p.client, &agent_bin(), &args)
    };
    // A bad port is a usage error that names it.
    let out = run(&format!("{SERVER}:http"), &[]).output().expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("port \"http\""), "{err}");
    // Nobody listening: unavailable, with the address.
    let out = run(SERVER, &["--duration", "1s"]).output().expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains(&format!(
            "cannot connect to the iperf3 server at {SERVER}:{PORT}"
        )),
        "{err}"
    );

    // Ctrl-C two seconds into a 30-second test.
    let log = dir.path().join("iperf3.log");
    let _server = iperf3_server(&p, &log);
    shape(&p, 200);
    let mut child = run(SERVER, &["--duration", "30s", "--reverse"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    std::thread::sleep(Duration::from_secs(2));
    let interrupted = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let status = eventually(Duration::from_secs(10), || child.try_wait().ok().flatten())
        .expect("the command exits");
    let waited = interrupted.elapsed();
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("was cancelled"), "{err}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    let told = eventually(Duration::from_secs(5), || {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("the client has terminated").then_some(())
    });
    assert!(
        told.is_some(),
        "the iperf3 server was not told: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

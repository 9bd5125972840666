//! The network domain in Linux network namespaces made by the test:
//! client — router — server, joined by veth pairs. The agent runs in the
//! client namespace; the router forwards (and sends real ICMP
//! "fragmentation needed"); the server answers echo, either with its kernel
//! or with a userspace responder that injects a known delay, jitter and loss.

use hybrid_node_agent_e2e::{
    agent_bin, eventually, free_port, in_ci, json_report, require_tool, sample, status_check,
    KillOnDrop,
};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Three namespaces: client (10.9.1.1) — router (10.9.1.254 / 10.9.2.254) —
/// server (10.9.2.1). Removed when dropped.
struct Topology {
    client: String,
    router: String,
    server: String,
}

const SERVER: &str = "10.9.2.1";

impl Topology {
    /// `client_mtu`: both ends of client—router; `router_out` and
    /// `server_in`: the two ends of router—server.
    fn new(client_mtu: u32, router_out: u32, server_in: u32) -> Option<Topology> {
        require_tool("ip")?;
        if !nix::unistd::Uid::effective().is_root() {
            assert!(!in_ci(), "network namespace tests need root under CI");
            eprintln!("SKIP: network namespaces need root");
            return None;
        }
        let n = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let t = Topology {
            client: format!("hna-c-{n}"),
            router: format!("hna-r-{n}"),
            server: format!("hna-s-{n}"),
        };
        for ns in [&t.client, &t.router, &t.server] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (c0, r0, r1, s0) = (
            format!("c0{n}"),
            format!("r0{n}"),
            format!("r1{n}"),
            format!("s0{n}"),
        );
        // Interface names are at most 15 bytes.
        let short = |s: &str| s.chars().take(15).collect::<String>();
        let (c0, r0, r1, s0) = (short(&c0), short(&r0), short(&r1), short(&s0));
        ip(&[
            "link", "add", &c0, "netns", &t.client, "type", "veth", "peer", "name", &r0, "netns",
            &t.router,
        ]);
        ip(&[
            "link", "add", &r1, "netns", &t.router, "type", "veth", "peer", "name", &s0, "netns",
            &t.server,
        ]);
        let setup: [(&String, &String, &str, u32); 4] = [
            (&t.client, &c0, "10.9.1.1/24", client_mtu),
            (&t.router, &r0, "10.9.1.254/24", client_mtu),
            (&t.router, &r1, "10.9.2.254/24", router_out),
            (&t.server, &s0, "10.9.2.1/24", server_in),
        ];
        for (ns, dev, addr, mtu) in setup {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "mtu", &mtu.to_string(), "up"]);
        }
        ip(&[
            "-n",
            &t.client,
            "route",
            "add",
            "default",
            "via",
            "10.9.1.254",
        ]);
        ip(&[
            "-n",
            &t.server,
            "route",
            "add",
            "default",
            "via",
            "10.9.2.254",
        ]);
        t.sysctl(&t.router, "net.ipv4.ip_forward=1");
        Some(t)
    }

    fn sysctl(&self, ns: &str, kv: &str) {
        ip(&["netns", "exec", ns, "sysctl", "-qw", kv]);
    }

    fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]).args(args);
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.client, &self.router, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn agent_config(dir: &std::path::Path, rate: f64, expected_mtu: u32) -> PathBuf {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\napi_server = false\necho_rate = {rate}\n[[network.target]]\nname = \"server\"\naddress = \"{SERVER}\"\nexpected_mtu = {expected_mtu}\n"
        ),
    )
    .expect("write");
    cfg
}

/// `check -o json` in the client namespace; the network checks by id.
fn check_network(t: &Topology, expected_mtu: u32) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = agent_config(dir.path(), 20.0, expected_mtu);
    let bin = agent_bin();
    let out = t
        .exec(
            &t.client,
            bin.to_str().expect("utf-8"),
            &[
                "--root",
                dir.path().to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "check",
                "-o",
                "json",
            ],
        )
        .output()
        .expect("agent");
    json_report(&out)
}

fn find<'a>(report: &'a serde_json::Value, id: &str) -> (&'a str, &'a str) {
    hybrid_node_agent_e2e::check_in(report, "network", id)
}

/// The number in "… is NNNN bytes …" / "… above NNNN bytes …".
fn bytes_in(summary: &str) -> u32 {
    summary
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find_map(|w| {
            (w[1] == "bytes" || w[1] == "bytes;")
                .then(|| w[0].parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no size in {summary:?}"))
}

#[test]
fn jumbo_path_9000_passes() {
    let Some(t) = Topology::new(9000, 9000, 9000) else {
        return;
    };
    let r = check_network(&t, 9000);
    let (s, summary) = find(&r, "mtu/server");
    assert_eq!(s, "pass", "{summary}");
    assert!(summary.contains("has MTU 9000"), "{summary}");
    let (s, summary) = find(&r, "pmtu/server");
    assert_eq!(s, "pass", "{summary}");
    assert_eq!(bytes_in(summary), 9000);
    assert_eq!(find(&r, "latency/server").0, "pass");
}

#[test]
fn router_with_8500_sends_frag_needed_and_pmtu_is_8500() {
    let Some(t) = Topology::new(9000, 8500, 8500) else {
        return;
    };
    let r = check_network(&t, 9000);
    let (s, summary) = find(&r, "pmtu/server");
    assert_eq!(s, "warn", "{summary}");
    let pmtu = bytes_in(summary);
    assert!((8492..=8500).contains(&pmtu), "{summary}");
    // The interface itself is fine: the problem is further along.
    assert_eq!(find(&r, "mtu/server").0, "pass");
}

#[test]
fn far_hop_dropping_large_frames_is_a_black_hole_not_1500_ok() {
    // The router sends 9000-byte frames the server's link silently drops.
    let Some(t) = Topology::new(9000, 9000, 1500) else {
        return;
    };
    let r = check_network(&t, 9000);
    let (s, summary) = find(&r, "pmtu/server");
    assert_eq!(s, "fail", "{summary}");
    assert!(summary.contains("black hole"), "{summary}");
    // veth accepts frames up to MTU + 4 (a VLAN tag's allowance): the last
    // size that gets through is 1504.
    let size = bytes_in(summary);
    assert!((1496..=1504).contains(&size), "{summary}");
}

#[test]
fn measured_rtt_jitter_and_loss_match_the_injected_ones() {
    let Some(t) = Topology::new(9000, 9000, 9000) else {
        return;
    };
    let Some(curl) = require_tool("curl") else {
        return;
    };
    // The server's kernel stays quiet; the responder answers after
    // uniform(4 ms ± 3 ms) and drops 5 %.
    t.sysctl(&t.server, "net.ipv4.icmp_echo_ignore_all=1");
    let responder = agent_bin().with_file_name("icmp-responder");
    assert!(
        responder.exists(),
        "{} missing: cargo build --workspace --bins",
        responder.display()
    );
    let (delay, spread, loss) = (4.0f64, 3.0f64, 0.05f64);
    let _responder = KillOnDrop::spawn(
        &mut t.exec(
            &t.server,
            responder.to_str().expect("utf-8"),
            &[
                &delay.to_string(),
                &spread.to_string(),
                &loss.to_string(),
                "20261123",
            ],
        ),
        "responder",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = agent_config(dir.path(), 20.0, 9000);
    let (_agent, port) = run_in_client(&t, dir.path(), &cfg);
    let scrape = || get_in_client(&t, &curl, port, "/metrics");
    // 20 echoes/s for ~35 s.
    std::thread::sleep(Duration::from_secs(35));
    // The network domain refreshes its metrics every interval (30 s): wait
    // for a run that saw at least 600 echoes.
    let m = eventually(Duration::from_secs(40), || {
        let m = scrape()?;
        let sent = sample(&m, "hybrid_node_net_icmp_requests_total{target=\"server\"}")?;
        (sent >= 600.0).then_some(m)
    })
    .expect("600 echoes measured");
    let p50 = sample(
        &m,
        "hybrid_node_net_rtt_window_seconds{target=\"server\",window=\"1m\",stat=\"p50\"}",
    )
    .expect("p50")
        * 1000.0;
    let jitter = sample(
        &m,
        "hybrid_node_net_jitter_seconds{target=\"server\",window=\"1m\"}",
    )
    .expect("jitter")
        * 1000.0;
    let lost = sample(
        &m,
        "hybrid_node_net_packet_loss_ratio{target=\"server\",window=\"1m\"}",
    )
    .expect("loss");
    let sent = sample(&m, "hybrid_node_net_icmp_requests_total{target=\"server\"}").expect("sent");
    // Uniform(d ± a): median d; E|X - Y| = 2a/3.
    let true_jitter = 2.0 * spread / 3.0;
    let n = sent.min(1200.0);
    // ±3.9 σ: a binomial count outside it once in ~10,000 runs, not the
    // once in 20 a 95 % interval would fail a green build.
    let half = 3.9 * (loss * (1.0 - loss) / n).sqrt();
    eprintln!(
        "injected: median {delay} ms, jitter {true_jitter:.3} ms, loss {loss}; measured over ~{n} echoes: median {p50:.3} ms, jitter {jitter:.3} ms, loss {lost:.4} (3.9 σ interval {:.4}..{:.4})",
        loss - half,
        loss + half
    );
    assert!(
        (p50 - delay).abs() <= 0.3,
        "median {p50:.3} ms vs {delay} ms"
    );
    assert!(
        (jitter - true_jitter).abs() <= 0.2 * true_jitter,
        "jitter {jitter:.3} ms vs {true_jitter:.3} ms"
    );
    assert!(
        (lost - loss).abs() <= half,
        "loss {lost:.4} outside {:.4}..{:.4}",
        loss - half,
        loss + half
    );
}

/// Fault injection: the target stops answering echo mid-run. The loss check
/// fails and says so, the agent keeps serving without spinning, and once the
/// target answers again replies are counted again by themselves.
#[test]
fn target_that_stops_answering_fails_loss_and_recovers() {
    let Some(t) = Topology::new(1500, 1500, 1500) else {
        return;
    };
    let Some(curl) = require_tool("curl") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\napi_server = false\ninterval = \"2s\"\necho_rate = 20.0\necho_timeout = \"300ms\"\n[[network.target]]\nname = \"server\"\naddress = \"{SERVER}\"\nexpected_mtu = 1500\n"
        ),
    )
    .expect("write");
    let (agent, port) = run_in_client(&t, dir.path(), &cfg);
    let get = |path: &str| get_in_client(&t, &curl, port, path);
    let check = |id: &str| status_check(&get("/status")?, "network", id);
    let replies = || {
        get("/metrics")
            .and_then(|m| sample(&m, "hybrid_node_net_icmp_replies_total{target=\"server\"}"))
    };
    eventually(Duration::from_secs(20), || {
        check("latency/server").filter(|(s, _)| s == "pass")
    })
    .expect("latency passes while the target answers");

    // The target goes quiet.
    t.sysctl(&t.server, "net.ipv4.icmp_echo_ignore_all=1");
    let cpu_before = cpu_seconds(agent.pid());
    let (_, summary) = eventually(Duration::from_secs(20), || {
        check("loss/server").filter(|(s, _)| s == "fail")
    })
    .expect("loss fails while the target is silent");
    assert!(summary.contains("critical"), "{summary}");
    let quiet = replies().expect("replies");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(replies(), Some(quiet), "no replies while silent");
    // Still serving, and not spinning: 20 echoes/s cost little CPU.
    let cpu = cpu_seconds(agent.pid()) - cpu_before;
    assert!(cpu < 2.0, "{cpu:.2} s of CPU while the target was silent");

    // It answers again: replies resume, latency still measured.
    t.sysctl(&t.server, "net.ipv4.icmp_echo_ignore_all=0");
    eventually(Duration::from_secs(20), || {
        replies().filter(|r| *r >= quiet + 20.0)
    })
    .expect("replies counted again");
    let (s, summary) = check("latency/server").expect("latency");
    assert_eq!(s, "pass", "{summary}");
}

/// `run` in the client namespace on a free loopback port there.
fn run_in_client(t: &Topology, root: &std::path::Path, cfg: &std::path::Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let bin = agent_bin();
    let agent = KillOnDrop::spawn(
        &mut t.exec(
            &t.client,
            bin.to_str().expect("utf-8"),
            &[
                "--root",
                root.to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "run",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ],
        ),
        "agent",
    );
    (agent, port)
}

/// GET `path` from the agent in the client namespace (curl run there).
fn get_in_client(t: &Topology, curl: &std::path::Path, port: u16, path: &str) -> Option<String> {
    let out = t
        .exec(
            &t.client,
            curl.to_str().expect("utf-8"),
            &["-sf", &format!("http://127.0.0.1:{port}{path}")],
        )
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    ticks / hz as f64
}

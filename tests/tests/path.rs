//! Path changes against real routers: the agent's namespace reaches the
//! server's address over router A (2 hops) and, once the test switches the
//! route, over routers B1 and B2 (3 hops) — a failover onto a longer path.
//! The routers are namespaces with forwarding on; their kernels send the
//! ICMP time exceeded, the server's the port unreachable.

use hybrid_node_agent_e2e::netns::{available, ip, unique};
use hybrid_node_agent_e2e::{agent_bin, eventually, free_port, require_tool, sample, status_check};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The server's address, on its loopback: reachable over either path.
const SERVER: &str = "10.90.100.1";

struct Net {
    names: Vec<String>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// client — A — server and client — B1 — B2 — server.
fn two_paths() -> Option<Net> {
    available()?;
    let n = unique();
    let ns = |r: &str| format!("hna-{r}-{n}");
    let net = Net {
        names: ["c", "a", "b1", "b2", "s"].iter().map(|r| ns(r)).collect(),
    };
    for name in &net.names {
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }
    let [c, a, b1, b2, s] = [0, 1, 2, 3, 4].map(|i| net.names[i].clone());
    // (left ns, right ns, subnet): left gets .1, right .254.
    let links = [
        (&c, &a, "10.90.1"),
        (&s, &a, "10.90.2"),
        (&c, &b1, "10.90.3"),
        (&b1, &b2, "10.90.4"),
        (&s, &b2, "10.90.5"),
    ];
    for (i, (l, r, net24)) in links.iter().enumerate() {
        let (li, ri) = (format!("l{i}{n}"), format!("r{i}{n}"));
        let (li, ri): (String, String) =
            (li.chars().take(15).collect(), ri.chars().take(15).collect());
        ip(&[
            "link", "add", &li, "netns", l, "type", "veth", "peer", "name", &ri, "netns", r,
        ]);
        ip(&["-n", l, "addr", "add", &format!("{net24}.1/24"), "dev", &li]);
        ip(&[
            "-n",
            r,
            "addr",
            "add",
            &format!("{net24}.254/24"),
            "dev",
            &ri,
        ]);
        ip(&["-n", l, "link", "set", &li, "up"]);
        ip(&["-n", r, "link", "set", &ri, "up"]);
    }
    ip(&[
        "-n",
        &s,
        "addr",
        "add",
        &format!("{SERVER}/32"),
        "dev",
        "lo",
    ]);
    for r in [&a, &b1, &b2] {
        ip(&["netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
    let route =
        |ns: &str, dst: &str, via: &str| ip(&["-n", ns, "route", "replace", dst, "via", via]);
    // Path A.
    route(&c, SERVER, "10.90.1.254");
    route(&a, SERVER, "10.90.2.1");
    route(&s, "10.90.1.0/24", "10.90.2.254");
    // Path B: B1 (the client's neighbour) → B2 (the server's) → server.
    route(&b1, SERVER, "10.90.4.254");
    route(&b2, SERVER, "10.90.5.1");
    route(&b2, "10.90.3.0/24", "10.90.4.1");
    route(&s, "10.90.3.0/24", "10.90.5.254");
    Some(net)
}

#[test]
fn a_switch_onto_a_longer_path_is_counted_and_reported() {
    let Some(curl) = require_tool("curl") else {
        return;
    };
    let Some(net) = two_paths() else {
        return;
    };
    let client = net.names[0].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\napi_server = false\ninterval = \"2s\"\npmtu_interval = \"2s\"\n[[network.target]]\nname = \"server\"\naddress = \"{SERVER}\"\nexpected_mtu = 1500\n"
        ),
    )
    .expect("write");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _agent = Reaped(
        Command::new("ip")
            .args(["netns", "exec", &client])
            .arg(agent_bin())
            .args(["--root", dir.path().to_str().expect("utf-8")])
            .args(["--config", cfg.to_str().expect("utf-8")])
            .args(["run", "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("agent"),
    );
    let get = |path: &str| -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &client])
            .arg(&curl)
            .args(["-sf", &format!("http://{listen}{path}")])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let hops = || {
        sample(
            &get("/metrics")?,
            "hybrid_node_net_path_hops{target=\"server\"}",
        )
    };

    // Over router A: A, then the server.
    eventually(Duration::from_secs(20), || (hops()? == 2.0).then_some(()))
        .expect("2 hops over router A");
    let m = get("/metrics").expect("metrics");
    assert_eq!(
        sample(
            &m,
            "hybrid_node_net_path_hop{target=\"server\",hop=\"1\",address=\"10.90.1.254\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "hybrid_node_net_path_changes_total{target=\"server\"}"),
        Some(0.0)
    );
    let (s, summary) =
        status_check(&get("/status").expect("status"), "path", "path/server").expect("check");
    assert_eq!(s, "pass", "{summary}");
    assert!(
        summary.contains(&format!("2 hops (10.90.1.254 {SERVER})")),
        "{summary}"
    );

    // The failover: the client's route moves to router B1.
    ip(&[
        "-n",
        &client,
        "route",
        "replace",
        SERVER,
        "via",
        "10.90.3.254",
    ]);
    eventually(Duration::from_secs(20), || (hops()? == 3.0).then_some(()))
        .expect("3 hops over B1 and B2");
    let m = get("/metrics").expect("metrics");
    assert_eq!(
        sample(&m, "hybrid_node_net_path_changes_total{target=\"server\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "hybrid_node_net_path_hop{target=\"server\",hop=\"2\",address=\"10.90.4.254\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        !m.contains("address=\"10.90.1.254\""),
        "the old path's hop is gone: {m}"
    );
    // The change is reported as a warning in the round that saw it (the
    // next stable round passes again); the summary says from what to what.
    let (s, summary) = eventually(Duration::from_secs(5), || {
        status_check(&get("/status")?, "path", "path/server")
    })
    .expect("check");
    if s == "warn" {
        assert!(summary.contains("changed: 2 hops"), "{summary}");
    } else {
        assert_eq!(s, "pass", "{summary}");
        assert!(
            summary.contains("3 hops (10.90.3.254 10.90.4.254 10.90.100.1)"),
            "{summary}"
        );
    }
}

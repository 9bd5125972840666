//! The installed service, live: the real .deb in a booted Debian 12 (systemd
//! 252, `systemd-nspawn`), walked through a hybrid host's life, asserting
//! what an admin sees: `systemctl`, `journalctl -u` (default output), the
//! files, `/metrics`.
//!
//! 1. fresh host (no containerd, no nodeadm): `dpkg -i` → active, STATUS
//!    line, /metrics; `systemd-analyze security` ≤ 2.0
//! 2. a good `systemctl reload` (exit 0); network probes under the sandbox
//! 3. the NodeConfig watch sees edits inside the host
//! 4. the SSM agent's credentials under /root are readable to the sandboxed
//!    agent (ProtectHome=read-only)
//! 5. containerd installed after the agent: picked up, `config dump` runs
//!    inside the sandbox, certs.d writable without a restart
//! 6. a `[[registry]]` with a CA: hosts.toml, CA file, OS trust store, and
//!    containerd really restarted
//! 7. a bad reload: still active, the journal says file:line:column and why
//! 8. watchdog: a stopped agent is restarted by systemd
//! 9. upgrade keeps the edited config and restarts; remove stops and leaves
//!    the managed files; purge removes the config
//!
//! One test, one host: the steps build on each other as a host's life does.
//! Needs root, systemd-nspawn and debootstrap (`.ci/run` installs them) and
//! the .deb (`scripts/package.sh`); the root and the containerd packages are
//! cached by `scripts/live-host.sh`.

use hybrid_node_agent_e2e::live::{self, BootedHost};
use hybrid_node_agent_e2e::{eventually, http_get, pki, repo_root, sample, status_check};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const UNIT: &str = "hybrid-node-agent";
const ENDPOINT: ([u8; 4], u16) = ([127, 0, 0, 1], 10063);
const CONFIG: &str = "/etc/hybrid-node-agent/config.toml";
const NODECONFIG: &str = "/etc/nodeadm/nodeconfig.yaml";
const REGISTRY: &str = "harbor.example.internal:5000";

fn deb() -> Option<PathBuf> {
    hybrid_node_agent_e2e::built_package("debian", "deb")
}

/// The same package as a higher version (for the upgrade step).
fn bumped(deb: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    let tree = dir.join("tree");
    let run = |args: &[&str]| {
        let st = std::process::Command::new("dpkg-deb")
            .args(args)
            .status()
            .expect("dpkg-deb");
        assert!(st.success(), "dpkg-deb {args:?}");
    };
    run(&[
        "-R",
        deb.to_str().expect("utf-8"),
        tree.to_str().expect("utf-8"),
    ]);
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).expect("control");
    let text: String = text
        .lines()
        .map(|l| match l.strip_prefix("Version: ") {
            Some(v) => format!("Version: {v}+live1\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&control, text).expect("control");
    let out = dir.join("upgrade.deb");
    run(&[
        "-b",
        tree.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    ]);
    out
}

fn endpoint() -> SocketAddr {
    SocketAddr::from(ENDPOINT)
}

fn metrics() -> Option<String> {
    http_get(endpoint(), "/metrics", &[])
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

fn check(domain: &str, id: &str) -> Option<(String, String)> {
    status_check(&http_get(endpoint(), "/status", &[]).ok()?.body, domain, id)
}

fn wait_check(
    domain: &str,
    id: &str,
    within: Duration,
    want: impl Fn(&str, &str) -> bool,
) -> (String, String) {
    let mut last = None;
    eventually(within, || {
        last = check(domain, id);
        last.clone().filter(|(s, m)| want(s, m))
    })
    .unwrap_or_else(|| panic!("{domain}/{id} never as expected within {within:?}; last: {last:?}"))
}

/// `journalctl -u` as an admin reads it (default output, no fields).
fn journal(host: &BootedHost) -> String {
    host.ok(&format!("journalctl -u {UNIT} --no-pager -o short"))
}

/// `systemctl reload`, which must succeed.
fn reload(host: &BootedHost) {
    let out = host.sh(&format!("systemctl reload {UNIT}"));
    assert!(out.status.success(), "reload failed: {}", journal(host));
}

/// Steps are timed and printed: the closing note quotes them.
fn step(n: u32, what: &str, started: &mut Instant) {
    eprintln!(
        "live step {n} ({what}): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    *started = Instant::now();
}

fn agent_config(extra: &str) -> String {
    format!(
        "[nodeconfig]\ninterval = \"2s\"\n\
         [containerd]\ninterval = \"1s\"\n\
         [registries]\ninterval = \"1s\"\nprobe_timeout = \"1s\"\n{extra}\n\
         [credentials]\ninterval = \"2s\"\n\
         [network]\napi_server = false\ninterval = \"2s\"\necho_rate = 20.0\n\
         [[network.target]]\nname = \"loopback\"\naddress = \"127.0.0.1\"\n"
    )
}

#[test]
fn the_package_on_a_booted_systemd_host_through_its_life() {
    let (Some(()), Some(deb)) = (live::prerequisites(), deb()) else {
        return;
    };
    assert!(
        std::net::TcpListener::bind(endpoint()).is_ok(),
        "{} is taken on this machine: the live host's agent listens there",
        endpoint()
    );
    let total = Instant::now();
    let base = live::prepared_root();
    let mut t = Instant::now();
    let host = BootedHost::boot(&base);
    // The NodeConfig names a region: with this machine's resolver copied
    // in, the installed agent's dns domain would ask it for the AWS
    // endpoints. Test traffic stays on this machine.
    host.without_resolver();
    step(0, "boot", &mut t);

    // 1. A fresh host: no containerd, no nodeadm. Active within seconds.
    assert!(!host.path("/etc/containerd").exists());
    std::fs::copy(&deb, host.path("/root/agent.deb")).expect("copy deb");
    host.ok("dpkg -i /root/agent.deb");
    let active = eventually(Duration::from_secs(10), || {
        (host.show(UNIT, "ActiveState") == "active").then_some(())
    });
    assert!(
        active.is_some(),
        "not active: {}\n{}",
        host.sh(&format!("systemctl status {UNIT}")).status,
        journal(&host)
    );
    let status = host.show(UNIT, "StatusText");
    assert!(
        status.starts_with("phase=not_installed; "),
        "STATUS={status}"
    );
    let m = eventually(Duration::from_secs(5), metrics).expect("/metrics answers");
    assert!(m.contains("hybrid_node_agent_info{"), "{m}");
    assert!(
        host.path("/etc/containerd/certs.d").is_dir(),
        "systemd created certs.d"
    );
    assert_eq!(host.show(UNIT, "NRestarts"), "0");
    let security = host.ok(&format!("systemd-analyze security {UNIT} --no-pager"));
    let score: f64 = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for hybrid-node-agent.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in: {security}"));
    eprintln!("live systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{security}");
    step(1, "install on a fresh host", &mut t);

    // 2. The admin edits the config and reloads: exit 0, applied. Network
    // probes work under the unit's sandbox.
    host.write(CONFIG, agent_config("").as_bytes());
    reload(&host);
    let reloaded = eventually(Duration::from_secs(5), || {
        let m = metrics()?;
        (sample(
            &m,
            "hybrid_node_agent_config_reloads_total{result=\"success\"}",
        )? == 1.0)
            .then_some(m)
    });
    assert!(reloaded.is_some(), "reload not applied: {}", journal(&host));
    let replies = eventually(Duration::from_secs(15), || {
        sample(
            &metrics()?,
            "hybrid_node_net_icmp_replies_total{target=\"loopback\"}",
        )
        .filter(|n| *n > 0.0)
    });
    assert!(
        replies.is_some(),
        "no echo replies under the sandbox: {:?}",
        metrics()
    );
    let (pmtu, why) = wait_check(
        "network",
        "pmtu/loopback",
        Duration::from_secs(20),
        |s, _| s != "unknown",
    );
    assert_eq!(pmtu, "pass", "{why}");
    step(2, "reload and network probes", &mut t);

    // 3. nodeadm's NodeConfig appears, then a bad edit, then a good one: the
    // watch sees each.
    let nodeconfig = std::fs::read(repo_root().join("tests/fixtures/nodeconfig/gpu-h100.yaml"))
        .expect("fixture");
    host.write(NODECONFIG, &nodeconfig);
    wait_check("nodeconfig", "file", Duration::from_secs(10), |s, _| {
        s == "pass"
    });
    host.write(
        NODECONFIG,
        b"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec: [\n",
    );
    let (_, why) = wait_check("nodeconfig", "file", Duration::from_secs(10), |s, _| {
        s == "fail"
    });
    assert!(why.contains("last good"), "{why}");
    host.write(NODECONFIG, &nodeconfig);
    wait_check("nodeconfig", "file", Duration::from_secs(10), |s, _| {
        s == "pass"
    });
    let (_, before) = wait_check(
        "containerd",
        "effective_config",
        Duration::from_secs(10),
        |s, _| s != "n/a",
    );
    assert!(
        !before.contains("config dump"),
        "no containerd yet: {before}"
    );
    step(3, "NodeConfig watch", &mut t);

    // 4. The NodeConfig is SSM: the SSM agent keeps the credentials in
    // /root/.aws (0600), which the sandbox must let the agent read.
    host.write(
        "/var/lib/amazon/ssm/registration",
        br#"{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"ap-northeast-2"}"#,
    );
    host.write_mode(
        "/root/.aws/credentials",
        b"[default]\naws_access_key_id = ASIAEXAMPLE\naws_secret_access_key = EXAMPLE\naws_session_token = EXAMPLE\n",
        0o600,
    );
    host.ok("chmod 700 /root/.aws");
    let (file, why) = wait_check(
        "credentials",
        "credentials-file",
        Duration::from_secs(10),
        |s, _| s != "n/a",
    );
    assert_eq!(file, "pass", "{why}");
    assert!(why.contains("/root/.aws/credentials"), "{why}");
    step(4, "SSM credentials under /root", &mut t);

    // 5. containerd installed after the agent, as nodeadm or an admin does.
    for d in live::containerd_debs() {
        let name = d.file_name().expect("name").to_string_lossy().into_owned();
        std::fs::copy(&d, host.path(&format!("/root/{name}"))).expect("copy");
    }
    host.ok("dpkg -i /root/runc_*.deb /root/containerd_*.deb");
    let containerd_up = eventually(Duration::from_secs(20), || {
        (host.show("containerd", "ActiveState") == "active").then_some(())
    });
    assert!(
        containerd_up.is_some(),
        "containerd: {}",
        host.ok("systemctl status containerd --no-pager || true")
    );
    let (_, summary) = wait_check(
        "containerd",
        "effective_config",
        Duration::from_secs(15),
        |_, m| m.contains("config dump"),
    );
    eprintln!("live effective_config: {summary}");
    let agent_pid = host.show(UNIT, "MainPID");
    step(5, "containerd installed later", &mut t);

    // 6. A registry with a private CA: files and trust store written from
    // inside the sandbox, containerd restarted for the new trust.
    let ca = pki("live").ca_pem;
    let containerd_pid = host.show("containerd", "MainPID");
    host.write(
        CONFIG,
        agent_config(&format!(
            "restart_containerd_on_trust_change = true\n\
             [[registry]]\nhost = \"{REGISTRY}\"\nsystem_trust = true\n\
             ca_pem = \"\"\"\n{ca}\"\"\"\nmirrors = [{{ url = \"https://127.0.0.1:9\" }}]\n"
        ))
        .as_bytes(),
    );
    reload(&host);
    let hosts_toml = host.path(&format!("/etc/containerd/certs.d/{REGISTRY}/hosts.toml"));
    let written = eventually(Duration::from_secs(15), || {
        std::fs::read_to_string(&hosts_toml).ok()
    });
    let written = written.unwrap_or_else(|| panic!("no hosts.toml; {}", journal(&host)));
    assert!(written.contains("https://127.0.0.1:9"), "{written}");
    let ca_body: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
    let in_bundle = eventually(Duration::from_secs(20), || {
        let bundle =
            std::fs::read_to_string(host.path("/etc/ssl/certs/ca-certificates.crt")).ok()?;
        let flat: String = bundle.lines().collect();
        flat.contains(&ca_body).then_some(())
    });
    assert!(
        in_bundle.is_some(),
        "the CA is not in the OS bundle; {}",
        journal(&host)
    );
    let anchors =
        std::fs::read_dir(host.path("/usr/local/share/ca-certificates/hybrid-node-agent"))
            .map(|d| d.count())
            .unwrap_or(0);
    assert_eq!(anchors, 1, "one trust anchor");
    let restarted = eventually(Duration::from_secs(20), || {
        let now = host.show("containerd", "MainPID");
        (now != containerd_pid && now != "0").then_some(now)
    });
    assert!(
        restarted.is_some(),
        "containerd was not restarted; {}",
        journal(&host)
    );
    let (files, why) = wait_check("registry", "files", Duration::from_secs(10), |s, _| {
        s == "pass"
    });
    assert_eq!(files, "pass", "{why}");
    assert_eq!(
        host.show(UNIT, "MainPID"),
        agent_pid,
        "no agent restart was needed"
    );
    step(6, "registry, trust store, containerd restart", &mut t);

    // 7. A bad edit: `systemctl reload` fails, the agent stays active with
    // the old config, and the journal's plain text says where and why.
    let good = std::fs::read_to_string(host.path(CONFIG)).expect("config");
    host.write(
        CONFIG,
        format!("{good}\n[agent]\nlisten = \"nowhere\"\n").as_bytes(),
    );
    let bad = host.sh(&format!("systemctl reload {UNIT}"));
    assert!(!bad.status.success(), "a bad config must fail the reload");
    assert_eq!(host.show(UNIT, "ActiveState"), "active");
    assert_eq!(host.show(UNIT, "MainPID"), agent_pid);
    let log = journal(&host);
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{CONFIG}:")) && l.contains("agent.listen"))
        .unwrap_or_else(|| panic!("no file:line:column in the journal:\n{log}"));
    let at = line.split(&format!("{CONFIG}:")).nth(1).expect("position");
    let mut nums = at.split(':').take(2).map(|n| n.trim().parse::<u32>());
    assert!(
        matches!((nums.next(), nums.next()), (Some(Ok(_)), Some(Ok(_)))),
        "line and column in: {line}"
    );
    assert!(
        line.contains("invalid socket address"),
        "the cause in the text: {line}"
    );
    host.write(CONFIG, good.as_bytes());
    reload(&host);
    step(7, "bad reload", &mut t);

    // 8. Watchdog: an agent that stops answering is restarted by systemd.
    host.write(
        &format!("/etc/systemd/system/{UNIT}.service.d/watchdog.conf"),
        b"[Service]\nWatchdogSec=4s\n",
    );
    host.ok(&format!(
        "systemctl daemon-reload && systemctl restart {UNIT}"
    ));
    let pid = host.show(UNIT, "MainPID");
    let restarts: u32 = host.show(UNIT, "NRestarts").parse().expect("NRestarts");
    host.ok(&format!("kill -STOP {pid}"));
    let recovered = eventually(Duration::from_secs(30), || {
        let n: u32 = host.show(UNIT, "NRestarts").parse().ok()?;
        (n > restarts && host.show(UNIT, "ActiveState") == "active").then_some(n)
    });
    assert!(
        recovered.is_some(),
        "no watchdog restart: {}",
        journal(&host)
    );
    assert_ne!(host.show(UNIT, "MainPID"), pid);
    assert!(
        journal(&host).contains("Watchdog timeout"),
        "{}",
        journal(&host)
    );
    std::fs::remove_file(host.path(&format!(
        "/etc/systemd/system/{UNIT}.service.d/watchdog.conf"
    )))
    .expect("rm");
    host.ok("systemctl daemon-reload");
    step(8, "watchdog", &mut t);

    // 9. Upgrade keeps the edited config and restarts; remove stops and
    // leaves the managed files; purge removes the agent's config.
    let scratch = tempfile::tempdir().expect("tempdir");
    let upgrade = bumped(&deb, scratch.path());
    std::fs::copy(&upgrade, host.path("/root/upgrade.deb")).expect("copy");
    let before = host.show(UNIT, "MainPID");
    host.ok("dpkg -i /root/upgrade.deb");
    assert!(host
        .ok("dpkg-query -W -f='${Version}' hybrid-node-agent")
        .ends_with("+live1"));
    let moved = eventually(Duration::from_secs(10), || {
        let now = host.show(UNIT, "MainPID");
        (now != before && now != "0" && host.show(UNIT, "ActiveState") == "active").then_some(())
    });
    assert!(
        moved.is_some(),
        "not restarted on upgrade: {}",
        journal(&host)
    );
    assert_eq!(
        std::fs::read_to_string(host.path(CONFIG)).expect("config"),
        good,
        "edited config kept"
    );
    host.ok("dpkg -r hybrid-node-agent");
    assert_ne!(host.show(UNIT, "ActiveState"), "active");
    assert!(hosts_toml.is_file(), "managed files stay on remove");
    assert!(host.path(CONFIG).is_file(), "the conffile stays on remove");
    host.ok("dpkg -P hybrid-node-agent");
    assert!(
        !host.path("/etc/hybrid-node-agent").exists(),
        "purge removes the config"
    );
    assert!(hosts_toml.is_file(), "purge leaves containerd's files");
    step(9, "upgrade, remove, purge", &mut t);
    eprintln!("live suite total: {:.1} s", total.elapsed().as_secs_f64());
}

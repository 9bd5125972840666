//! The preflight domain end to end, `hybrid-node-agent --root <dir> check
//! -o json` against real parts: swap turned on for real (a swap file and a
//! loop device); ufw rules written by `ufw` and firewalld zones by
//! `firewall-offline-cmd` into copies of their configuration, the units
//! enabled with `systemctl --root`; a host tree with a proxy set
//! inconsistently and an earlier install left behind. The clock is judged
//! on this host's root only (`check` without `--root`): chronyd (`-x`: it
//! never touches the clock) following a chronyd server across two network
//! namespaces, then with no server.

use hybrid_node_agent_e2e::netns::{self, Pair};
use hybrid_node_agent_e2e::{agent_bin, check_in, in_ci, json_report, require_tool, KillOnDrop};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

fn check(root: &Path) -> (serde_json::Value, String) {
    let out = Command::new(agent_bin())
        .args([
            "--root",
            root.to_str().expect("utf-8"),
            "check",
            "-o",
            "json",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("agent");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (json_report(&out), text)
}

fn remedy(report: &serde_json::Value, id: &str) -> String {
    report["checks"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["domain"] == "preflight" && c["id"] == id)
        })
        .and_then(|c| c["remedy"].as_str())
        .unwrap_or("")
        .to_owned()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chronyd(p: &Pair, ns: &str, dir: &Path, name: &str, conf: &str) -> KillOnDrop {
    let path = dir.join(format!("{name}.conf"));
    fs::write(
        &path,
        format!(
            "{conf}\npidfile {0}/{name}.pid\ndriftfile {0}/{name}.drift\n",
            dir.display()
        ),
    )
    .expect("write chrony.conf");
    let chronyd = PathBuf::from("chronyd");
    KillOnDrop::spawn(
        &mut p.exec(
            ns,
            &chronyd,
            &[
                "-d",
                "-x",
                "-u",
                "root",
                "-f",
                path.to_str().expect("utf-8"),
            ],
        ),
        "chronyd",
    )
}

/// The agent (on this host's root: the clock is checked only there) in the
/// client namespace, in a mount namespace of its own with an empty
/// /run/chrony: chronyc then asks the namespace's chronyd over UDP
/// 127.0.0.1:323, never a chronyd the machine itself may run.
fn check_in_ns(p: &Pair) -> serde_json::Value {
    let sh = PathBuf::from("unshare");
    let out = p
        .exec(
            &p.client,
            &sh,
            &[
                "-m",
                "sh",
                "-c",
                "mkdir -p /run/chrony && mount -t tmpfs none /run/chrony && exec \"$0\" \"$@\"",
                agent_bin().to_str().expect("utf-8"),
                "check",
                "-o",
                "json",
            ],
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("agent");
    json_report(&out)
}

#[test]
fn chronyd_states_decide_the_clock_check() {
    if require_tool("chronyd").is_none() || require_tool("chronyc").is_none() {
        return;
    }
    let Some(p) = Pair::new("10.88.0") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let _server = chronyd(
        &p,
        &p.server,
        dir.path(),
        "server",
        "local stratum 8\nallow 10.88.0.0/24\nbindaddress 10.88.0.2\ncmdport 0",
    );
    let client = chronyd(
        &p,
        &p.client,
        dir.path(),
        "client",
        "server 10.88.0.2 iburst minpoll -1 maxpoll 0\nport 0\nbindcmdaddress 127.0.0.1",
    );
    let synced = hybrid_node_agent_e2e::eventually(Duration::from_secs(20), || {
        let r = check_in_ns(&p);
        (check_in(&r, "preflight", "clock").0 == "pass").then_some(r)
    })
    .expect("the client synchronises within 20 s");
    let (_, summary) = check_in(&synced, "preflight", "clock");
    assert!(
        summary.contains("chronyd synchronises the clock to 10.88.0.2 (stratum 9), offset"),
        "{summary}"
    );
    drop(client);
    // A client whose server never answers: no reference at all.
    let _lost = chronyd(
        &p,
        &p.client,
        dir.path(),
        "lost",
        "server 10.88.0.9 iburst\nport 0\nbindcmdaddress 127.0.0.1",
    );
    let lost = hybrid_node_agent_e2e::eventually(Duration::from_secs(10), || {
        let r = check_in_ns(&p);
        let (status, summary) = check_in(&r, "preflight", "clock");
        (status == "fail" && summary.contains("Not synchronised")).then_some(r)
    })
    .expect("unsynchronised client fails the check");
    assert!(remedy(&lost, "clock").contains("chrony.conf"));
}

/// Swap areas turned on for the test, off again when dropped.
struct SwapOn {
    areas: Vec<String>,
    loop_dev: Option<String>,
}

impl Drop for SwapOn {
    fn drop(&mut self) {
        for a in &self.areas {
            let _ = Command::new("swapoff").arg(a).output();
        }
        if let Some(d) = &self.loop_dev {
            let _ = Command::new("losetup").args(["-d", d]).output();
        }
    }
}

#[test]
fn active_swap_fails_with_the_steps_for_a_file_and_a_partition() {
    for tool in ["mkswap", "swapon", "swapoff", "losetup"] {
        if require_tool(tool).is_none() {
            return;
        }
    }
    if netns::available().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let root = tempfile::tempdir().expect("root");
    // The root's /proc is the machine's: /proc/swaps is the kernel's list.
    std::os::unix::fs::symlink("/proc", root.path().join("proc")).expect("link /proc");
    let mut on = SwapOn {
        areas: Vec::new(),
        loop_dev: None,
    };
    let backing = dir.path().join("disk.img");
    run(
        Command::new("truncate").args(["-s", "16M"]).arg(&backing),
        "truncate",
    );
    let dev = run(
        Command::new("losetup").args(["-f", "--show"]).arg(&backing),
        "losetup",
    )
    .trim()
    .to_owned();
    on.loop_dev = Some(dev.clone());
    run(Command::new("mkswap").arg(&dev), "mkswap");
    run(Command::new("swapon").arg(&dev), "swapon loop device");
    on.areas.push(dev.clone());
    let file = dir.path().join("swapfile");
    run(
        Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "count=16", "status=none"])
            .arg(format!("of={}", file.display())),
        "dd",
    );
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    run(Command::new("mkswap").arg(&file), "mkswap file");
    let file_on = Command::new("swapon").arg(&file).output().expect("swapon");
    if file_on.status.success() {
        on.areas.push(file.display().to_string());
    } else {
        // A property of the file system the temp dir is on, not a missing
        // component: the loop device still shows the verdict.
        eprintln!(
            "swap file not supported here: {}",
            String::from_utf8_lossy(&file_on.stderr)
        );
    }
    write(
        root.path(),
        "/etc/fstab",
        &format!("# static file system information\n{dev} none swap sw 0 0\n"),
    );
    let (report, _) = check(root.path());
    let (status, summary) = check_in(&report, "preflight", "swap");
    assert_eq!(status, "fail", "{summary}");
    assert!(summary.contains(&format!("{dev} (partition")), "{summary}");
    let r = remedy(&report, "swap");
    let unit = dev.trim_start_matches('/').replace('/', "-");
    assert!(r.contains(&format!("`swapoff {dev}`")), "{r}");
    assert!(r.contains("/etc/fstab (line 2)"), "{r}");
    assert!(r.contains(&format!("`systemctl mask {unit}.swap`")), "{r}");
    if on.areas.len() == 2 {
        assert!(
            summary.contains(&format!("{} (file", file.display())),
            "{summary}"
        );
        assert!(r.contains(&format!("`rm {}`", file.display())), "{r}");
    }
    drop(on);
    let (report, _) = check(root.path());
    let (status, summary) = check_in(&report, "preflight", "swap");
    // Other swap on the machine would still show; ours is gone.
    assert!(!summary.contains(&dev), "{status}: {summary}");
}

/// A copy of ufw's configuration as the package installs it.
fn ufw_root(root: &Path) {
    for (from, to) in [
        ("/etc/ufw", "etc"),
        ("/etc/default/ufw", "etc/default"),
        ("/lib/ufw", "lib"),
    ] {
        fs::create_dir_all(root.join(to)).expect("mkdir");
        run(
            Command::new("cp").arg("-a").arg(from).arg(root.join(to)),
            "copy ufw config",
        );
    }
}

/// `ufw --force enable` then `ufw RULE` against the copy, in a network
/// namespace of their own: ufw loads its rules into that namespace's
/// netfilter (thrown away with it), never this machine's, and writes
/// ENABLED=yes and the rule files under the root.
fn ufw_enable_and(root: &Path, rule: &str) {
    let r = root.display().to_string();
    let ufw = format!("ufw --rootdir={r} --datadir={r}");
    run(
        Command::new("unshare")
            .args(["-n", "sh", "-c"])
            .arg(format!("{ufw} --force enable && {ufw} {rule}")),
        "ufw",
    );
}

#[test]
fn ufw_rules_written_by_ufw_decide_the_firewall_check() {
    if require_tool("ufw").is_none() || require_tool("unshare").is_none() {
        return;
    }
    if netns::available().is_none() {
        return;
    }
    if !Path::new("/etc/ufw/ufw.conf").exists() {
        assert!(!in_ci(), "ufw's configuration is missing");
        return;
    }
    let root = tempfile::tempdir().expect("root");
    ufw_root(root.path());
    // Disabled as installed: nothing to open.
    let (report, _) = check(root.path());
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "pass", "{summary}");
    assert!(
        summary.contains("ufw installed but not running"),
        "{summary}"
    );
    ufw_enable_and(root.path(), "allow 10250/tcp");
    let conf = fs::read_to_string(root.path().join("etc/ufw/ufw.conf")).expect("ufw.conf");
    assert!(conf.contains("ENABLED=yes"), "{conf}");
    let (report, _) = check(root.path());
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "fail", "{summary}");
    assert!(
        summary.contains(
            "ufw does not let in 8472/udp (Cilium VXLAN): no rule, default incoming policy DROP"
        ),
        "{summary}"
    );
    assert_eq!(remedy(&report, "firewall"), "ufw allow 8472/udp");
    ufw_enable_and(root.path(), "allow 8472/udp");
    let (report, _) = check(root.path());
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "pass", "{summary}");
    assert!(summary.contains("/etc/ufw/user.rules:"), "{summary}");
    // Calico's port is another.
    write(
        root.path(),
        "/etc/hybrid-node-agent/config.toml",
        "[preflight]\ncni = \"calico\"\n",
    );
    let (report, _) = check(root.path());
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "fail", "{summary}");
    assert!(summary.contains("4789/udp (Calico VXLAN)"), "{summary}");
}

#[test]
fn firewalld_zones_written_by_firewall_offline_cmd_decide_the_firewall_check() {
    for tool in ["firewall-offline-cmd", "systemctl", "unshare"] {
        if require_tool(tool).is_none() {
            return;
        }
    }
    if netns::available().is_none() {
        return;
    }
    let unit = [
        "/lib/systemd/system/firewalld.service",
        "/usr/lib/systemd/system/firewalld.service",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("firewalld.service installed with firewalld");
    let root = tempfile::tempdir().expect("root");
    let r = root.path();
    for (from, to) in [("/etc/firewalld", "etc"), ("/usr/lib/firewalld", "usr/lib")] {
        fs::create_dir_all(r.join(to)).expect("mkdir");
        run(
            Command::new("cp").arg("-a").arg(from).arg(r.join(to)),
            "copy firewalld",
        );
    }
    fs::create_dir_all(r.join("usr/lib/systemd/system")).expect("mkdir");
    fs::copy(unit, r.join("usr/lib/systemd/system/firewalld.service")).expect("copy unit");
    let (report, _) = check(r);
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "pass", "{summary}");
    assert!(
        summary.contains("firewalld installed but not running"),
        "{summary}"
    );
    run(
        Command::new("systemctl")
            .arg(format!("--root={}", r.display()))
            .args(["enable", "firewalld.service"]),
        "systemctl --root enable",
    );
    let (report, _) = check(r);
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "fail", "{summary}");
    assert!(summary.contains("firewalld zone public"), "{summary}");
    assert!(summary.contains("10250/tcp (kubelet)"), "{summary}");
    assert!(
        remedy(&report, "firewall").contains(
            "firewall-cmd --permanent --zone=public --add-port=10250/tcp --add-port=8472/udp"
        ),
        "{}",
        remedy(&report, "firewall")
    );
    // firewall-offline-cmd edits /etc/firewalld: bound to the copy in a
    // mount namespace of its own, the machine's stays as it is.
    run(
        Command::new("unshare").args(["-m", "sh", "-c"]).arg(format!(
            "mount --bind {}/etc/firewalld /etc/firewalld && firewall-offline-cmd --add-port=10250/tcp && firewall-offline-cmd --add-port=8472/udp",
            r.display()
        )),
        "firewall-offline-cmd",
    );
    let (report, _) = check(r);
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "pass", "{summary}");
    assert!(
        summary.contains("10250/tcp (port in zone public)"),
        "{summary}"
    );
    // Rich rules, as firewall-offline-cmd writes them: one accepting VXLAN
    // from the node network only says so; one rejecting the kubelet's
    // port is evaluated before the zone's ports (firewalld's deny chain).
    let offline = |commands: &str| {
        run(
            Command::new("unshare")
                .args(["-m", "sh", "-c"])
                .arg(format!(
                    "mount --bind {}/etc/firewalld /etc/firewalld && {commands}",
                    r.display()
                )),
            commands,
        )
    };
    offline("firewall-offline-cmd --remove-port=8472/udp && firewall-offline-cmd --add-rich-rule='rule family=\"ipv4\" source address=\"10.80.0.0/16\" port port=\"8472\" protocol=\"udp\" accept'");
    let (report, _) = check(r);
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "pass", "{summary}");
    assert!(
        summary.contains(
            "8472/udp (rich rule (ipv4, from address 10.80.0.0/16 only) accepting in zone public)"
        ),
        "{summary}"
    );
    offline("firewall-offline-cmd --add-rich-rule='rule family=\"ipv4\" port port=\"10250\" protocol=\"tcp\" reject'");
    let (report, _) = check(r);
    let (status, summary) = check_in(&report, "preflight", "firewall");
    assert_eq!(status, "fail", "{summary}");
    assert!(
        summary.contains("refuses 10250/tcp (kubelet): rich rule (ipv4) rejecting in zone public"),
        "{summary}"
    );
    assert!(!summary.contains("8472"), "{summary}");
    assert!(
        remedy(&report, "firewall").contains("--remove-rich-rule"),
        "{}",
        remedy(&report, "firewall")
    );
}

#[test]
fn proxy_limits_and_leftovers_on_a_host_tree() {
    let root = tempfile::tempdir().expect("root");
    let r = root.path();
    write(r, "/etc/environment", "PATH=\"/usr/local/sbin:/usr/bin\"\nHTTPS_PROXY=http://svc:Pr0xyPass@proxy.corp:3128\nhttps_proxy=http://svc:Pr0xyPass@proxy.corp:3128\nNO_PROXY=localhost,127.0.0.1,.corp\n");
    write(
        r,
        "/etc/systemd/system/kubelet.service",
        "[Service]\nEnvironmentFile=/etc/eks/kubelet/environment\nExecStart=/usr/bin/kubelet\n",
    );
    write(r, "/etc/systemd/system/kubelet.service.d/http-proxy.conf", "[Service]\nEnvironment=\"HTTPS_PROXY=http://svc:Pr0xyPass@proxy.corp:3128\"\nEnvironment=\"NO_PROXY=localhost,127.0.0.1,.corp\"\n");
    write(
        r,
        "/usr/lib/systemd/system/containerd.service",
        "[Service]\nLimitNPROC=infinity\nLimitNOFILE=infinity\n",
    );
    write(
        r,
        "/etc/systemd/system/containerd.service.d/http-proxy.conf",
        "[Service]\nEnvironment=\"HTTPS_PROXY=http://svc:Old9ass@proxy-old.corp:3128\"\n",
    );
    write(
        r,
        "/etc/systemd/system.conf",
        "[Manager]\nDefaultLimitNOFILE=256:4096\n",
    );
    write(r, "/etc/kubernetes/manifests/.keep", "");
    let (report, all) = check(r);
    assert!(
        !all.contains("Pr0xyPass") && !all.contains("Old9ass"),
        "a proxy password was shown:\n{all}"
    );
    let (status, summary) = check_in(&report, "preflight", "proxy");
    assert_eq!(status, "fail", "{summary}");
    assert!(summary.contains("HTTPS_PROXY: /etc/systemd/system/containerd.service.d/http-proxy.conf:2 has http://***@proxy-old.corp:3128 but /etc/environment:2 has http://***@proxy.corp:3128"), "{summary}");
    assert!(
        summary.contains("containerd.service does not set NO_PROXY"),
        "{summary}"
    );
    let (status, summary) = check_in(&report, "preflight", "limits/kubelet");
    assert_eq!(status, "fail", "{summary}");
    assert!(
        summary
            .contains("LimitNOFILE soft limit 256 (from /etc/systemd/system.conf:2) is below 1024"),
        "{summary}"
    );
    let (status, summary) = check_in(&report, "preflight", "limits/containerd");
    assert_eq!(status, "pass", "{summary}");
    let (status, summary) = check_in(&report, "preflight", "leftovers");
    assert_eq!(status, "warn", "{summary}");
    assert!(summary.contains("/etc/kubernetes is there"), "{summary}");
    let (status, _) = check_in(&report, "preflight", "swap");
    assert_eq!(status, "pass");
    let (status, summary) = check_in(&report, "preflight", "clock");
    assert_eq!(
        status, "n/a",
        "the machine's clock is not the tree's: {summary}"
    );
    // Put right, with a registry NO_PROXY does not cover.
    write(r, "/etc/systemd/system/containerd.service.d/http-proxy.conf", "[Service]\nEnvironment=\"HTTPS_PROXY=http://svc:Pr0xyPass@proxy.corp:3128\" \"NO_PROXY=.corp,localhost,127.0.0.1\"\n");
    write(
        r,
        "/etc/hybrid-node-agent/config.toml",
        "[[registry]]\nhost = \"harbor.lab.example:5000\"\nsystem_trust = false\n",
    );
    let (report, _) = check(r);
    let (status, summary) = check_in(&report, "preflight", "proxy");
    assert_eq!(status, "pass", "{summary}");
    let (status, summary) = check_in(&report, "preflight", "no_proxy");
    assert_eq!(status, "warn", "{summary}");
    assert!(
        summary.contains("harbor.lab.example:5000 (registry)"),
        "{summary}"
    );
    assert!(
        summary.contains("/etc/systemd/system/kubelet.service.d/http-proxy.conf:3"),
        "{summary}"
    );
}

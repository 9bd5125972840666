//! Fault injection against a running agent, with real file systems: a
//! read-only and a full tmpfs under the managed directory, permission denied
//! (the agent as an unprivileged user), managed paths replaced by a directory
//! or a symlink pointing outside, the trust tool failing and missing, and
//! containerd missing. Each test checks the same promise: the agent keeps
//! serving, the check says what is wrong, nothing outside the managed files
//! changes, and once the fault is removed it recovers by itself.
//!
//! Needs root (mounts, setpriv). Under CI a missing capability fails.

use hybrid_node_agent_e2e::{in_ci, pki, require_tool, Agent, Signal};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(20);
const HOST: &str = "harbor.example.internal:5000";
const DIR: &str = "harbor.example.internal:5000";

fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// A tmpfs mounted at a directory for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (skip) where mounting is not allowed; under CI that fails.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=755"),
                "tmpfs",
                dir.to_str().expect("utf-8"),
            ],
        );
        if out.status.success() {
            return Some(Tmpfs(dir.to_owned()));
        }
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(!in_ci(), "cannot mount a tmpfs (root needed): {why}");
        eprintln!("skipping: cannot mount a tmpfs: {why}");
        None
    }

    fn remount(&self, mode: &str) {
        let out = sh(
            "mount",
            &[
                "-o",
                &format!("remount,{mode}"),
                self.0.to_str().expect("utf-8"),
            ],
        );
        assert!(out.status.success(), "remount {mode}: {out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = sh("umount", &["-l", self.0.to_str().unwrap_or("/nonexistent")]);
    }
}

/// Every file under `dir` with its bytes (symlinks as their target).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                stack.push(p);
            } else if t.is_symlink() {
                let target = std::fs::read_link(&p).expect("readlink");
                out.insert(p, target.into_os_string().into_encoded_bytes());
            } else {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// The agent config: one registry with `ca_pem`, checked every second.
fn write_config(path: &Path, ca_pem: &str, system_trust: bool, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[registries]\ninterval = \"1s\"\nprobe_timeout = \"200ms\"\n\
             [containerd]\nbinary = \"/nonexistent/containerd\"\n{extra}\
             [[registry]]\nhost = \"{HOST}\"\nsystem_trust = {system_trust}\n\
             ca_pem = \"\"\"\n{ca_pem}\"\"\"\nmirrors = [{{ url = \"https://127.0.0.1:9\" }}]\n"
        ),
    )
    .expect("write config");
}

fn start(root: &Path, config: &Path, envs: &[(&str, &str)]) -> Agent {
    let mut a = Agent::start(
        &[
            "--root",
            root.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
        ],
        envs,
        Some(&root.join("agent.log")),
    );
    a.wait_ready();
    a
}

fn is(status: &'static str) -> impl Fn(&str, &str) -> bool {
    move |s, _| s == status
}

/// The CA file the agent's hosts.toml for HOST names, and its contents.
fn configured_ca(root: &Path) -> (String, String) {
    let hosts = std::fs::read_to_string(
        root.join("etc/containerd/certs.d")
            .join(DIR)
            .join("hosts.toml"),
    )
    .expect("hosts.toml");
    let ca = hosts
        .lines()
        .find_map(|l| l.trim().strip_prefix("ca = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no ca in {hosts}"))
        .to_owned();
    let pem = std::fs::read_to_string(root.join(ca.trim_start_matches('/'))).expect("CA file");
    (ca, pem)
}

fn assert_serving(agent: &Agent) {
    let body = agent.metrics();
    assert!(body.contains("hybrid_node_agent_info{"), "{body}");
}

#[test]
fn read_only_and_full_file_systems_keep_the_last_files_and_recover() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let certs_d = r.join("etc/containerd/certs.d");
    let Some(fs) = Tmpfs::mount(&certs_d, "64k") else {
        return;
    };
    // The admin's own file on the same file system: never touched.
    let admin = certs_d.join("docker.io/hosts.toml");
    std::fs::create_dir_all(admin.parent().expect("parent")).expect("mkdir");
    std::fs::write(&admin, "server = \"https://registry-1.docker.io\"\n").expect("write");
    let cas: Vec<String> = ["ro-a", "ro-b", "ro-c"]
        .iter()
        .map(|n| pki(n).ca_pem)
        .collect();
    let cfg = r.join("agent.toml");
    write_config(&cfg, &cas[0], false, "");
    let agent = start(r, &cfg, &[]);
    agent.wait_check("registry", "files", SOON, is("pass"));
    assert!(configured_ca(r).1.ends_with(&cas[0]), "CA 0 in force");

    // Read-only: the new CA cannot be written; the old files stay whole.
    fs.remount("ro");
    let before = tree(&certs_d);
    write_config(&cfg, &cas[1], false, "");
    agent.signal(Signal::SIGHUP);
    let (_, why) = agent.wait_check("registry", "files", SOON, is("fail"));
    assert!(why.contains("Read-only file system"), "{why}");
    assert!(why.contains("stay in force"), "{why}");
    assert_serving(&agent);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        tree(&certs_d),
        before,
        "nothing changed on the read-only fs"
    );
    // Fault removed: the next reconcile writes the new CA by itself.
    fs.remount("rw");
    agent.wait_check("registry", "files", SOON, is("pass"));
    assert!(configured_ca(r).1.ends_with(&cas[1]), "CA 1 in force");

    // Full: a filler takes every free block.
    let filler = certs_d.join("filler");
    let _ = sh(
        "dd",
        &["if=/dev/zero", &format!("of={}", filler.display()), "bs=4k"],
    );
    let before = tree(&certs_d);
    write_config(&cfg, &cas[2], false, "");
    agent.signal(Signal::SIGHUP);
    let (_, why) = agent.wait_check("registry", "files", SOON, is("fail"));
    assert!(why.contains("No space left on device"), "{why}");
    assert_serving(&agent);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        tree(&certs_d),
        before,
        "no partial or temp file on the full fs"
    );
    std::fs::remove_file(&filler).expect("rm filler");
    agent.wait_check("registry", "files", SOON, is("pass"));
    assert!(configured_ca(r).1.ends_with(&cas[2]), "CA 2 in force");
    assert_eq!(
        std::fs::read_to_string(&admin).expect("admin file"),
        "server = \"https://registry-1.docker.io\"\n"
    );
}

#[test]
fn permission_denied_is_reported_and_recovers_once_granted() {
    let Some(setpriv) = require_tool("setpriv") else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    // The unprivileged user must reach the root, its config and a binary.
    std::fs::set_permissions(r, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let bin = r.join("hybrid-node-agent");
    std::fs::copy(hybrid_node_agent_e2e::agent_bin(), &bin).expect("copy agent");
    let certs_d = r.join("etc/containerd/certs.d");
    std::fs::create_dir_all(&certs_d).expect("mkdir");
    let cfg = r.join("agent.toml");
    write_config(&cfg, &pki("denied").ca_pem, false, "");
    let log = r.join("agent.log");
    std::fs::write(&log, "").expect("log");
    let chown = |path: &Path| {
        let out = sh(
            "chown",
            &["-R", "65534:65534", path.to_str().expect("utf-8")],
        );
        assert!(out.status.success(), "{out:?}");
    };
    chown(&log);
    let mut agent = Agent::start_via(
        &[
            setpriv.to_str().expect("utf-8"),
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &bin,
        &[
            "--root",
            r.to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
        ],
        &[],
        Some(&log),
    );
    agent.wait_ready();
    let (_, why) = agent.wait_check("registry", "files", SOON, is("fail"));
    assert!(why.contains("Permission denied"), "{why}");
    assert!(
        why.contains("/etc/containerd/certs.d"),
        "names the path: {why}"
    );
    assert!(tree(&certs_d).is_empty(), "nothing half-written");
    assert_serving(&agent);
    // Granted (as ReadWritePaths= would): it recovers by itself.
    chown(&certs_d);
    agent.wait_check("registry", "files", SOON, is("pass"));
    assert!(certs_d.join(DIR).join("hosts.toml").is_file());
}

#[test]
fn a_managed_path_replaced_by_a_symlink_or_directory_is_never_followed() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = outside.path().join("victim.toml");
    std::fs::write(&victim, "not the agent's\n").expect("write");
    let cfg = r.join("agent.toml");
    write_config(&cfg, &pki("link").ca_pem, false, "");
    let agent = start(r, &cfg, &[]);
    agent.wait_check("registry", "files", SOON, is("pass"));
    let dir = r.join("etc/containerd/certs.d").join(DIR);
    let hosts = dir.join("hosts.toml");

    // hosts.toml becomes a symlink to a file outside the managed tree.
    std::fs::remove_file(&hosts).expect("rm");
    std::os::unix::fs::symlink(&victim, &hosts).expect("symlink");
    let (_, why) = agent.wait_check("registry", "files", SOON, is("warn"));
    assert!(why.contains("not written by the agent"), "{why}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "not the agent's\n"
    );
    assert!(std::fs::symlink_metadata(&hosts)
        .expect("stat")
        .file_type()
        .is_symlink());
    assert_serving(&agent);
    std::fs::remove_file(&hosts).expect("rm link");
    agent.wait_check("registry", "files", SOON, is("pass"));
    assert!(std::fs::symlink_metadata(&hosts).expect("stat").is_file());

    // hosts.toml becomes a directory with someone's file in it.
    std::fs::remove_file(&hosts).expect("rm");
    std::fs::create_dir(&hosts).expect("mkdir");
    std::fs::write(hosts.join("keep"), "x").expect("write");
    let (_, why) = agent.wait_check("registry", "files", SOON, is("warn"));
    assert!(why.contains("hosts.toml"), "{why}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        std::fs::read_to_string(hosts.join("keep")).expect("kept"),
        "x"
    );
    std::fs::remove_dir_all(&hosts).expect("rm dir");
    agent.wait_check("registry", "files", SOON, is("pass"));

    // The registry's directory becomes a symlink to a directory outside.
    std::fs::remove_dir_all(&dir).expect("rm dir");
    std::os::unix::fs::symlink(outside.path(), &dir).expect("symlink");
    let (_, why) = agent.wait_check("registry", "files", SOON, is("warn"));
    assert!(why.contains("not followed"), "{why}");
    std::thread::sleep(Duration::from_secs(2));
    let names: Vec<_> = std::fs::read_dir(outside.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["victim.toml"], "nothing written through the link");
    std::fs::remove_file(&dir).expect("rm link");
    agent.wait_check("registry", "files", SOON, is("pass"));
}

#[test]
fn trust_tool_failing_or_missing_is_reported_and_retried() {
    let rhel = hybrid_node_agent_e2e::RhelRoot::new();
    let r = rhel.dir.path();
    let (tool, calls, path) = (&rhel.tool, &rhel.calls, &rhel.path);
    let install = |script: &str| rhel.install_tool(script);
    install("#!/bin/sh\necho 'p11-kit: cannot write /etc/pki/ca-trust/extracted' >&2\nexit 1\n");
    let cfg = r.join("agent.toml");
    write_config(&cfg, &pki("trust").ca_pem, true, "");
    let agent = start(r, &cfg, &[("PATH", path.as_str())]);
    let (_, why) = agent.wait_check("registry", "trust_store", SOON, is("fail"));
    assert!(
        why.contains("cannot write /etc/pki/ca-trust/extracted"),
        "the tool's own words: {why}"
    );
    assert_serving(&agent);
    // The tool is fixed: the next reconcile runs it again, by itself.
    install(&rhel.recording_tool());
    agent.wait_check("registry", "trust_store", SOON, is("pass"));
    assert_eq!(std::fs::read_to_string(calls).expect("called"), "extract\n");

    // Missing tool: a new CA cannot reach the bundle; said so.
    std::fs::remove_file(tool).expect("rm tool");
    write_config(&cfg, &pki("trust-2").ca_pem, true, "");
    agent.signal(Signal::SIGHUP);
    let (_, why) = agent.wait_check("registry", "trust_store", SOON, is("fail"));
    assert!(why.contains("update-ca-trust"), "names the tool: {why}");
    install(&rhel.recording_tool());
    agent.wait_check("registry", "trust_store", SOON, is("pass"));
    assert_eq!(
        std::fs::read_to_string(calls).expect("called"),
        "extract\nextract\n"
    );

    // A new process finds the anchors in place but the bundle without them
    // (its predecessor died before the tool ran): it runs the tool once.
    drop(agent);
    std::fs::remove_file(r.join("etc/pki/tls/certs/ca-bundle.crt")).expect("rm bundle");
    let agent = start(r, &cfg, &[("PATH", path.as_str())]);
    agent.wait_check("registry", "trust_store", SOON, is("pass"));
    assert_eq!(
        std::fs::read_to_string(calls).expect("called"),
        "extract\nextract\nextract\n"
    );
    // And with the bundle complete, a restart leaves the tool alone.
    drop(agent);
    let agent = start(r, &cfg, &[("PATH", path.as_str())]);
    agent.wait_check("registry", "trust_store", SOON, is("pass"));
    assert_eq!(
        std::fs::read_to_string(calls).expect("called"),
        "extract\nextract\nextract\n"
    );
}

#[test]
fn containerd_missing_then_installed_is_picked_up() {
    let Some(real) = require_tool("containerd") else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let bin = r.join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let containerd = bin.join("containerd");
    // A NodeConfig to analyse (what `nodeadm init` would write).
    std::fs::create_dir_all(r.join("etc/nodeadm")).expect("mkdir");
    std::fs::copy(
        hybrid_node_agent_e2e::fixture("nodeconfig/gpu-h100.yaml"),
        r.join("etc/nodeadm/nodeconfig.yaml"),
    )
    .expect("copy NodeConfig");
    let cfg = r.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[containerd]\ninterval = \"1s\"\nbinary = \"{}\"\n",
            containerd.display()
        ),
    )
    .expect("write");
    let agent = start(r, &cfg, &[]);
    let (_, why) = agent.wait_check("containerd", "effective_config", SOON, |_, m| {
        m.contains("effective config")
    });
    assert!(
        why.contains("no containerd binary"),
        "says containerd is missing: {why}"
    );
    assert_serving(&agent);
    std::os::unix::fs::symlink(&real, &containerd).expect("install containerd");
    let (_, why) = agent.wait_check("containerd", "effective_config", SOON, |_, m| {
        !m.contains("no containerd binary")
    });
    assert!(why.contains("containerd config dump"), "{why}");
}

#[test]
fn reload_onto_a_taken_port_keeps_serving_on_the_old_one() {
    use hybrid_node_agent_e2e::{free_port, http_get, sample, KillOnDrop};
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let cfg = r.join("agent.toml");
    let first = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr");
    let listen = |addr: std::net::SocketAddr| {
        std::fs::write(&cfg, format!("[agent]\nlisten = \"{addr}\"\n")).expect("write");
    };
    listen(first);
    let agent = KillOnDrop::spawn(
        Command::new(hybrid_node_agent_e2e::agent_bin()).args([
            "--root",
            r.to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
            "run",
        ]),
        "agent",
    );
    let healthy = |addr| http_get(addr, "/healthz", &[]).is_ok_and(|h| h.status == 200);
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(agent.pid()).expect("pid")),
            Signal::SIGHUP,
        )
        .expect("SIGHUP")
    };
    assert!(hybrid_node_agent_e2e::eventually(SOON, || healthy(first).then_some(())).is_some());

    listen(taken);
    hup();
    let reloaded = hybrid_node_agent_e2e::eventually(SOON, || {
        let m = http_get(first, "/metrics", &[]).ok()?.body;
        (sample(
            &m,
            "hybrid_node_agent_config_reloads_total{result=\"failure\"}",
        )? >= 1.0)
            .then_some(m)
    })
    .expect("the failed reload is counted, on the old address");
    assert_eq!(
        sample(&reloaded, "hybrid_node_agent_config_last_reload_successful"),
        Some(0.0)
    );
    assert!(healthy(first), "still serving where it was");

    // The port is freed; the next reload moves, and the old one is released.
    drop(holder);
    hup();
    assert!(hybrid_node_agent_e2e::eventually(SOON, || healthy(taken).then_some(())).is_some());
    assert!(
        hybrid_node_agent_e2e::eventually(SOON, || (!healthy(first)).then_some(())).is_some(),
        "the old address is released"
    );
}

/// A server that accepts connections and sends each one byte every 400 ms,
/// for up to two minutes: per-read timeouts never fire on it. (Anyone on the
/// path can do this, before any certificate is checked.)
struct Trickle {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Trickle {
    fn start() -> Trickle {
        use std::io::Write;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let flag = flag.clone();
                std::thread::spawn(move || {
                    // A TLS record header announcing 16 KiB, then its body
                    // a byte at a time.
                    if conn.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]).is_err() {
                        return;
                    }
                    for _ in 0..300 {
                        if flag.load(Ordering::Relaxed) || conn.write_all(b"\x00").is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(400));
                    }
                });
            }
        });
        Trickle { port, stop }
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn trickle_config(path: &Path, port: u16, probe_timeout: &str) {
    let ca = pki("trickle").ca_pem;
    std::fs::write(
        path,
        format!(
            "[registries]\ninterval = \"1s\"\nprobe_timeout = \"{probe_timeout}\"\n\
             [containerd]\nbinary = \"/nonexistent/containerd\"\n\
             [[registry]]\nhost = \"{HOST}\"\nsystem_trust = false\n\
             ca_pem = \"\"\"\n{ca}\"\"\"\nmirrors = [{{ url = \"https://127.0.0.1:{port}\" }}]\n"
        ),
    )
    .expect("write config");
}

#[test]
fn a_trickling_registry_neither_stalls_the_domain_nor_blocks_sigterm() {
    let server = Trickle::start();
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let cfg = r.join("agent.toml");
    trickle_config(&cfg, server.port, "1s");
    let mut agent = start(r, &cfg, &[]);

    // The probe ends at its deadline and says so.
    let probe = format!("probe/{HOST}");
    let (_, why) = agent.wait_check("registry", &probe, SOON, |s, m| {
        s == "fail" && m.contains("deadline")
    });
    assert!(why.contains(&format!("127.0.0.1:{}", server.port)), "{why}");

    // The domain keeps running: a hand edit is restored, again and again.
    let hosts = r
        .join("etc/containerd/certs.d")
        .join(DIR)
        .join("hosts.toml");
    let managed = std::fs::read_to_string(&hosts).expect("hosts.toml");
    for _ in 0..2 {
        std::fs::write(&hosts, format!("{managed}\n[host.\"https://evil\"]\n")).expect("edit");
        let restored = hybrid_node_agent_e2e::eventually(SOON, || {
            (std::fs::read_to_string(&hosts).ok()? == managed).then_some(())
        });
        assert!(restored.is_some(), "the registry domain stopped running");
    }

    // A probe allowed a whole minute is mid-flight: SIGTERM still ends the
    // agent promptly (systemd's TimeoutStopSec is 15 s).
    trickle_config(&cfg, server.port, "60s");
    agent.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_secs(3));
    assert_serving(&agent);
    let asked = std::time::Instant::now();
    agent.signal(Signal::SIGTERM);
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running {:?} after SIGTERM", asked.elapsed()));
    assert!(status.success(), "{status}");
    eprintln!(
        "stopped {:?} after SIGTERM with a probe stuck",
        asked.elapsed()
    );
}

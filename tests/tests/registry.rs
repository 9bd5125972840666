//! Registry and trust with real parts: `docker-registry` serving TLS with a
//! CA made here, a private `containerd`, `ctr` pulls through the agent's
//! hosts.toml, the real `update-ca-certificates` under a temp root, a fake
//! RHEL tool, and SIGKILLs in the middle of reconciles.

use hybrid_node_agent_e2e::oci::{push_image, start_registry};
use hybrid_node_agent_e2e::{free_port, json_report, pki, require_tool, KillOnDrop};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} not ready within {timeout:?}");
}

/// A containerd of its own: private root, state and socket, no CRI.
fn start_containerd(bin: &Path, dir: &Path) -> (KillOnDrop, PathBuf) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let sock = dir.join("c.sock");
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n",
            dir.join("root").display(),
            dir.join("state").display(),
            sock.display()
        ),
    )
    .expect("write");
    let p = KillOnDrop::spawn(
        Command::new(bin).arg("--config").arg(&cfg),
        "start containerd",
    );
    wait_until("containerd", Duration::from_secs(15), || {
        Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    (p, sock)
}

fn ctr_pull(sock: &Path, certs_d: &Path) -> (bool, String) {
    let image = "harbor.example.internal/test/app:v1";
    let _ = Command::new("ctr")
        .arg("--address")
        .arg(sock)
        .args(["images", "rm", image])
        .output();
    let out = Command::new("ctr")
        .arg("--address")
        .arg(sock)
        .args(["images", "pull", "--snapshotter", "native", "--hosts-dir"])
        .arg(certs_d)
        .arg(image)
        .output()
        .expect("ctr");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs `apply -o json` with `config` through `cmd` (the agent, or a
/// wrapper that execs it with the arguments that follow); returns the report.
fn apply_via(mut cmd: Command, root: &Path, config: &Path) -> Value {
    let out = cmd
        .args([
            "--root",
            root.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "apply",
            "-o",
            "json",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    json_report(&out)
}

fn apply(root: &Path, config: &Path) -> Value {
    apply_via(
        Command::new(hybrid_node_agent_e2e::agent_bin()),
        root,
        config,
    )
}

/// [`apply`] under `umask 077`, as the unit's `UMask=0077` does.
fn apply_umask_077(root: &Path, config: &Path) -> Value {
    let mut sh = Command::new("sh");
    sh.args(["-c", "umask 077 && exec \"$0\" \"$@\""])
        .arg(hybrid_node_agent_e2e::agent_bin());
    apply_via(sh, root, config)
}

fn check_of<'a>(report: &'a Value, id: &str) -> (&'a str, &'a str) {
    hybrid_node_agent_e2e::check_in(report, "registry", id)
}

/// A file the agent does not own, to prove it is never touched.
fn plant_unmanaged(certs_d: &Path) -> (PathBuf, Vec<u8>) {
    let p = certs_d.join("docker.io/hosts.toml");
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    let bytes = b"server = \"https://registry-1.docker.io\"\n# the admin's own file\n".to_vec();
    std::fs::write(&p, &bytes).expect("write");
    (p, bytes)
}

#[test]
fn pull_through_the_agents_hosts_toml_ca_withheld_and_rotated() {
    let (Some(registry), Some(containerd), Some(_), Some(_)) = (
        require_tool("docker-registry"),
        require_tool("containerd"),
        require_tool("ctr"),
        require_tool("curl"),
    ) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let certs_d = w.join("certs.d");
    let (unmanaged, unmanaged_bytes) = plant_unmanaged(&certs_d);
    let port = free_port();
    let ca_file = w.join("harbor-ca.pem");
    let first = pki("first");
    std::fs::write(&ca_file, &first.ca_pem).expect("write");
    let reg = start_registry(&registry, &w.join("registry"), port, &first);
    push_image(w, port, &ca_file);
    let (_containerd, sock) = start_containerd(&containerd, &w.join("containerd"));

    // The agent runs against the real root, but writes only under certs_d
    // (system_trust = false keeps the host's trust store out of it).
    let config = w.join("agent.toml");
    let write_config = |with_ca: bool| {
        let ca = if with_ca {
            format!("ca_file = \"{}\"\n", ca_file.display())
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "[nodeconfig]\npath = \"{}/none.yaml\"\n[registries]\ncerts_d = \"{}\"\n\n[[registry]]\nhost = \"harbor.example.internal\"\nmirror_only = true\nsystem_trust = false\n{ca}mirrors = [{{ url = \"https://127.0.0.1:{port}\" }}]\n",
                w.display(),
                certs_d.display()
            ),
        )
        .expect("write config");
    };

    // 1. With the agent's hosts.toml and CA, the pull succeeds through the mirror.
    write_config(true);
    let report = apply(Path::new("/"), &config);
    let (s, summary) = check_of(&report, "probe/harbor.example.internal");
    assert_eq!(s, "pass", "{summary}");
    assert!(summary.contains("TLS verified"), "{summary}");
    let (ok, log) = ctr_pull(&sock, &certs_d);
    assert!(ok, "pull failed: {log}");

    // 2. CA withheld: the pull fails on the certificate, and the agent says so.
    write_config(false);
    let report = apply(Path::new("/"), &config);
    let (s, summary) = check_of(&report, "probe/harbor.example.internal");
    assert_eq!(s, "fail", "{summary}");
    assert!(summary.contains("UnknownIssuer"), "{summary}");
    let (ok, log) = ctr_pull(&sock, &certs_d);
    assert!(!ok, "pull without the CA succeeded: {log}");
    assert!(log.contains("x509"), "{log}");

    // 3. Rotation: new CA, new server certificate; the agent's reconcile makes
    //    the next pull succeed with no containerd restart.
    drop(reg);
    let second = pki("second");
    std::fs::write(&ca_file, &second.ca_pem).expect("write");
    let _reg = start_registry(&registry, &w.join("registry"), port, &second);
    write_config(true);
    let report = apply(Path::new("/"), &config);
    let (s, summary) = check_of(&report, "probe/harbor.example.internal");
    assert_eq!(s, "pass", "{summary}");
    let (ok, log) = ctr_pull(&sock, &certs_d);
    assert!(ok, "pull after rotation failed: {log}");
    // Only the new CA file is left.
    let cas: Vec<_> = std::fs::read_dir(certs_d.join("harbor.example.internal"))
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("ca-"))
        .collect();
    assert_eq!(cas.len(), 1);

    assert_eq!(std::fs::read(&unmanaged).expect("read"), unmanaged_bytes);
}

/// A temp root with a copy of this machine's ca-certificates layout.
fn debian_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    for d in [
        "etc/ssl/certs",
        "etc/ca-certificates/update.d",
        "usr/local/share/ca-certificates",
        "usr/share",
    ] {
        std::fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    std::fs::copy(
        "/etc/ca-certificates.conf",
        r.join("etc/ca-certificates.conf"),
    )
    .expect("copy conf");
    assert!(Command::new("cp")
        .arg("-a")
        .arg("/usr/share/ca-certificates")
        .arg(r.join("usr/share/"))
        .status()
        .expect("cp")
        .success());
    std::fs::write(
        r.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n",
    )
    .expect("write");
    root
}

fn registry_config(root: &Path, ca_pem: Option<&str>) -> PathBuf {
    let cfg = root.join("agent.toml");
    let ca = ca_pem
        .map(|p| format!("ca_pem = \"\"\"\n{p}\"\"\"\n"))
        .unwrap_or_default();
    let body = if ca_pem.is_some() {
        format!("[[registry]]\nhost = \"harbor.example.internal:5000\"\n{ca}mirrors = [{{ url = \"https://127.0.0.1:9\" }}]\n")
    } else {
        String::new()
    };
    std::fs::write(
        &cfg,
        format!("[registries]\nprobe_timeout = \"500ms\"\n{body}"),
    )
    .expect("write");
    cfg
}

#[test]
fn debian_trust_store_with_the_real_update_ca_certificates() {
    let Some(_) = require_tool("update-ca-certificates") else {
        return;
    };
    let root = debian_root();
    let r = root.path();
    let (unmanaged, bytes) = plant_unmanaged(&r.join("etc/containerd/certs.d"));
    let pki = pki("debian");
    let cfg = registry_config(r, Some(&pki.ca_pem));
    let report = apply_umask_077(r, &cfg);
    let (s, summary) = check_of(&report, "trust_store");
    assert_eq!(s, "pass", "{summary}");
    // Readable by everyone despite the service's umask.
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(r.join(p)).expect(p).permissions(),
        ) & 0o777
    };
    assert_eq!(mode("etc/ssl/certs/ca-certificates.crt"), 0o644);
    assert_eq!(
        mode("usr/local/share/ca-certificates/hybrid-node-agent"),
        0o755
    );
    assert_eq!(
        mode("etc/containerd/certs.d/harbor.example.internal:5000"),
        0o755
    );
    assert_eq!(
        mode("etc/containerd/certs.d/harbor.example.internal:5000/hosts.toml"),
        0o644
    );
    let bundle =
        std::fs::read_to_string(r.join("etc/ssl/certs/ca-certificates.crt")).expect("bundle built");
    let body = pki.ca_pem.lines().nth(1).expect("pem body");
    assert!(bundle.contains(body), "the CA is in the rebuilt bundle");
    let anchors: Vec<_> =
        std::fs::read_dir(r.join("usr/local/share/ca-certificates/hybrid-node-agent"))
            .expect("anchor dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    assert_eq!(anchors.len(), 1);
    assert!(
        anchors[0].starts_with("harbor.example.internal_5000-") && anchors[0].ends_with(".crt"),
        "{anchors:?}"
    );
    // The per-certificate symlink the tool makes points at our anchor.
    let linked = std::fs::read_dir(r.join("etc/ssl/certs"))
        .expect("dir")
        .filter_map(Result::ok)
        .any(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().contains("hybrid-node-agent"))
        });
    assert!(linked);

    // The registry goes away: the anchor and the bundle entry go with it.
    let cfg = registry_config(r, None);
    apply(r, &cfg);
    let bundle =
        std::fs::read_to_string(r.join("etc/ssl/certs/ca-certificates.crt")).expect("bundle");
    assert!(!bundle.contains(body));
    assert_eq!(std::fs::read(&unmanaged).expect("read"), bytes);
}

#[test]
fn rhel_trust_store_with_a_recording_tool() {
    let rhel = hybrid_node_agent_e2e::RhelRoot::new();
    let r = rhel.dir.path();
    let (calls, path) = (&rhel.calls, &rhel.path);
    let pki = pki("rhel");
    let cfg = registry_config(r, Some(&pki.ca_pem));
    let run = || {
        let mut agent = Command::new(hybrid_node_agent_e2e::agent_bin());
        agent.env("PATH", path);
        apply_via(agent, r, &cfg)
    };
    let report = run();
    assert_eq!(check_of(&report, "trust_store").0, "pass");
    assert_eq!(
        std::fs::read_to_string(calls).expect("tool was called"),
        "extract\n"
    );
    let anchors: Vec<String> = std::fs::read_dir(r.join("etc/pki/ca-trust/source/anchors"))
        .expect("anchors")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(anchors.len(), 1);
    assert!(
        anchors[0].starts_with("hybrid-node-agent-harbor.example.internal_5000-")
            && anchors[0].ends_with(".pem")
    );
    // No change: the tool is not run again.
    run();
    assert_eq!(std::fs::read_to_string(calls).expect("calls"), "extract\n");
}

/// Every hosts.toml under `certs_d` parses, and every `ca` it names exists.
fn assert_consistent(root: &Path, certs_d: &Path, round: usize) {
    let Ok(dirs) = std::fs::read_dir(certs_d) else {
        return;
    };
    for d in dirs.filter_map(Result::ok) {
        let hosts = d.path().join("hosts.toml");
        let Ok(text) = std::fs::read_to_string(&hosts) else {
            continue;
        };
        if !text.starts_with("# Managed by hybrid-node-agent") && d.file_name() == "docker.io" {
            continue; // the admin's own file, checked byte for byte elsewhere
        }
        let doc: toml_check::Doc = toml_check::parse(&text).unwrap_or_else(|e| {
            panic!(
                "round {round}: {} is not valid: {e}\n{text}",
                hosts.display()
            )
        });
        for ca in doc.cas {
            let p = root.join(ca.trim_start_matches('/'));
            assert!(
                p.is_file(),
                "round {round}: {} names {ca}, which does not exist",
                hosts.display()
            );
        }
        assert!(
            doc.hosts > 0,
            "round {round}: {} has no [host] table",
            hosts.display()
        );
    }
}

/// Just enough TOML reading for the invariant (a separate reader from the
/// agent's: the test must not trust the code under test).
mod toml_check {
    pub struct Doc {
        pub cas: Vec<String>,
        pub hosts: usize,
    }
    pub fn parse(text: &str) -> Result<Doc, String> {
        let mut doc = Doc {
            cas: Vec::new(),
            hosts: 0,
        };
        let mut saw_header = false;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if i == 0 {
                saw_header = l.starts_with("# Managed by hybrid-node-agent");
            }
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l.starts_with("[host.\"") {
                if !l.ends_with("\"]") {
                    return Err(format!("truncated table header: {l}"));
                }
                doc.hosts += 1;
            } else if let Some(v) = l.strip_prefix("ca = \"") {
                doc.cas.push(
                    v.strip_suffix('"')
                        .ok_or_else(|| format!("truncated: {l}"))?
                        .to_owned(),
                );
            } else if !l.contains(" = ") {
                return Err(format!("not a key = value line: {l}"));
            }
        }
        if !saw_header {
            return Err("no managed header".into());
        }
        Ok(doc)
    }
}

#[test]
fn sigkill_during_reconciles_never_leaves_a_broken_hosts_toml() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    std::fs::create_dir_all(r.join("etc")).expect("mkdir");
    let certs_d = r.join("etc/containerd/certs.d");
    let (unmanaged, bytes) = plant_unmanaged(&certs_d);
    let cas: Vec<String> = (0..4).map(|i| pki(&format!("crash{i}")).ca_pem).collect();
    let cfg = r.join("agent.toml");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let spawn_apply = || {
        Command::new(hybrid_node_agent_e2e::agent_bin())
            .args([
                "--root",
                r.to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "apply",
                "-o",
                "json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let snapshot = || -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for d in std::fs::read_dir(&certs_d)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            for f in std::fs::read_dir(d.path())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
            {
                out.push((f.path(), std::fs::read(f.path()).unwrap_or_default()));
            }
        }
        out.sort();
        out
    };
    // Rounds go on until enough kills have landed both mid-run and after a
    // write (a loaded machine shifts where they land), up to a bound.
    let max_rounds = 1_500;
    let mut rounds = 0;
    let mut killed = 0;
    let mut killed_after_writing = 0;
    // Calibrate: kills land anywhere in a whole run, start to finish.
    let full: String = (0..4)
        .map(|h| format!("[[registry]]\nhost = \"reg{h}.example.internal\"\nsystem_trust = false\nca_pem = \"\"\"\n{}\"\"\"\n", cas[h]))
        .collect();
    std::fs::write(&cfg, full).expect("write");
    let t0 = Instant::now();
    spawn_apply().wait().expect("wait");
    let window = u64::try_from(t0.elapsed().as_micros())
        .unwrap_or(50_000)
        .max(1_000)
        * 3
        / 2;
    while rounds < 200 || (rounds < max_rounds && (killed < 50 || killed_after_writing < 20)) {
        let round = rounds;
        rounds += 1;
        // A changing desired state: registries come and go, CAs rotate.
        let mut body = String::from("[registries]\nprobe_timeout = \"100ms\"\n");
        for h in 0..4u64 {
            if next() % 3 == 0 {
                continue;
            }
            let ca = &cas[usize::try_from(next() % 4).unwrap_or(0)];
            body.push_str(&format!(
                "[[registry]]\nhost = \"reg{h}.example.internal\"\nsystem_trust = false\nca_pem = \"\"\"\n{ca}\"\"\"\nmirrors = [{{ url = \"https://127.0.0.1:9/m{}\" }}]\n",
                next() % 5
            ));
        }
        std::fs::write(&cfg, body).expect("write");
        let before = snapshot();
        let mut child = spawn_apply();
        std::thread::sleep(Duration::from_micros(next() % window));
        let running = child.try_wait().expect("wait").is_none();
        let _ = child.kill();
        let _ = child.wait();
        if running {
            killed += 1;
            if snapshot() != before {
                killed_after_writing += 1;
            }
        }
        assert_consistent(r, &certs_d, round);
    }
    eprintln!(
        "{killed} of {rounds} apply runs SIGKILLed before they finished, {killed_after_writing} of them after \
         writing or removing files (kill window {window} µs)"
    );
    assert!(
        killed >= 50,
        "only {killed} of {rounds} runs were killed mid-way"
    );
    assert!(
        killed_after_writing >= 20,
        "only {killed_after_writing} kills landed after a write"
    );
    assert_eq!(std::fs::read(&unmanaged).expect("read"), bytes);
}

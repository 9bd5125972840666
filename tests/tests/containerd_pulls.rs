//! Pulls through the agent's hosts.toml on each containerd line (1.6, 1.7,
//! 2.x): `docker-registry` over TLS with a CA made here, the agent's
//! `apply` writing certs.d for that line's version, and a real
//! `ctr images pull --hosts-dir` against a daemon of that line (on 2.x
//! through the transfer service, which is `ctr`'s default there, and with
//! `--local`). Each hosts.toml rule the agent encodes is tried on the line
//! it is about, with the file the agent would *not* write.

use hybrid_node_agent_e2e::containerd::{lines, start, Line};
use hybrid_node_agent_e2e::oci::{push_image, start_registry};
use hybrid_node_agent_e2e::{agent_bin, free_port, json_report, pki, require_tool};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const IMAGE: &str = "harbor.example.internal/test/app:v1";

/// `ctr images pull` of [`IMAGE`] through `certs_d`; `(ok, output)`.
fn pull(line: &Line, sock: &Path, certs_d: &Path, local: bool) -> (bool, String) {
    let ctr = |args: &[&str]| {
        let mut c = Command::new("timeout");
        c.arg("60")
            .arg(&line.ctr)
            .arg("--address")
            .arg(sock)
            .args(args);
        c
    };
    let _ = ctr(&["images", "rm", IMAGE]).output();
    let mut cmd = ctr(&["images", "pull"]);
    // 1.6 has no transfer service (and no --local); the transfer service
    // unpacks with the daemon's own snapshotter and platforms.
    if local && line.major() == 1 && line.version.starts_with("1.6.") {
        cmd.args(["--snapshotter", "native"]);
    } else if local {
        cmd.args(["--local", "--snapshotter", "native"]);
    }
    let out = cmd
        .arg("--hosts-dir")
        .arg(certs_d)
        .arg(IMAGE)
        .output()
        .expect("ctr images pull");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `apply -o json` with an agent config naming `line`'s containerd.
fn apply(line: &Line, work: &Path, certs_d: &Path, ca: &Path, port: u16) -> Value {
    std::fs::create_dir_all(work).expect("mkdir");
    let cfg = work.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[nodeconfig]\npath = \"{w}/none.yaml\"\n[containerd]\nbinary = \"{bin}\"\n[registries]\ncerts_d = \"{c}\"\n\n\
             [[registry]]\nhost = \"harbor.example.internal\"\nmirror_only = true\nsystem_trust = false\nca_file = \"{ca}\"\n\
             mirrors = [{{ url = \"https://127.0.0.1:{port}\", capabilities = [\"pull\", \"resolve\", \"referrers\"] }}]\n",
            w = work.display(),
            bin = line.containerd.display(),
            c = certs_d.display(),
            ca = ca.display(),
        ),
    )
    .expect("write");
    let out = Command::new(agent_bin())
        .args(["--root", "/", "--config"])
        .arg(&cfg)
        .args(["apply", "-o", "json"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run apply");
    json_report(&out)
}

/// The pull went to `https://harbor.example.internal` itself (the hosts.toml
/// was not used): a name that does not resolve here.
fn ignored(log: &str) -> bool {
    log.contains("harbor.example.internal")
        && (log.contains("no such host") || log.contains("lookup"))
}

fn version_at_least(line: &Line, want: (u32, u32, u32)) -> bool {
    let v: Vec<u32> = line
        .version
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    (v[0], v[1], v[2]) >= want
}

#[test]
fn pulls_through_the_agents_hosts_toml_on_each_line() {
    let (Some(lines), Some(registry), Some(_)) = (
        lines(),
        require_tool("docker-registry"),
        require_tool("curl"),
    ) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let port = free_port();
    let pki = pki("matrix");
    let ca = w.join("harbor-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write");
    let _registry = start_registry(&registry, &w.join("registry"), port, &pki);
    push_image(w, port, &ca);

    let mut failures = Vec::new();
    for line in &lines {
        let dir = w.join(format!("containerd-{}", line.version));
        let daemon = start(line, &dir, None)
            .unwrap_or_else(|e| panic!("containerd {} does not start: {e}", line.version));
        let certs_d = dir.join("certs.d");
        let report = apply(line, &dir, &certs_d, &ca, port);
        let hosts = certs_d.join("harbor.example.internal/hosts.toml");
        let written = std::fs::read_to_string(&hosts)
            .unwrap_or_else(|e| panic!("{}: {e}; report {report:#}", hosts.display()));

        // The agent's file: referrers only where the line knows it, every
        // host entry with its own CA, and a [host] table.
        let has_referrers = written.contains("\"referrers\"");
        if has_referrers != version_at_least(line, (2, 2, 0)) {
            failures.push(format!(
                "{}: referrers written = {has_referrers}:\n{written}",
                line.version
            ));
        }
        // 1.7 and 2.x: through the transfer service and the local client.
        let modes: &[bool] = if line.version.starts_with("1.6.") {
            &[true]
        } else {
            &[false, true]
        };
        for &local in modes {
            let how = if local { "local" } else { "transfer service" };
            let (ok, log) = pull(line, &daemon.sock, &certs_d, local);
            eprintln!(
                "| agent's hosts.toml | {} | {how} | {} |",
                line.version,
                if ok { "pulls" } else { "FAILS" }
            );
            if !ok {
                failures.push(format!(
                    "{} ({how}): the agent's hosts.toml does not pull: {log}",
                    line.version
                ));
            }
        }

        // The rule behind leaving `referrers` out: before 2.2 an unknown
        // capability makes containerd ignore the whole file.
        let with_referrers = written.replace("\"resolve\"]", "\"resolve\", \"referrers\"]");
        assert_ne!(
            with_referrers, written,
            "capabilities line not found:\n{written}"
        );
        let alt = dir.join("certs.d-referrers");
        std::fs::create_dir_all(alt.join("harbor.example.internal")).expect("mkdir");
        std::fs::write(
            alt.join("harbor.example.internal/hosts.toml"),
            &with_referrers,
        )
        .expect("write");
        let (ok, log) = pull(line, &daemon.sock, &alt, true);
        eprintln!(
            "| with referrers | {} | {} |",
            line.version,
            if ok { "pulls" } else { "FAILS" }
        );
        if ok != version_at_least(line, (2, 2, 0)) {
            failures.push(format!(
                "{}: hosts.toml with referrers pulls = {ok}: {log}",
                line.version
            ));
        }
        // Ignored, not misread: the pull went to the registry's own name.
        if !ok && !ignored(&log) {
            failures.push(format!(
                "{}: referrers: not the default host: {log}",
                line.version
            ));
        }

        // The rule behind always writing a [host] table: before 1.7.32 a
        // file with root-level keys only is not used as written.
        let root_only = format!(
            "server = \"https://127.0.0.1:{port}\"\nca = \"{}\"\ncapabilities = [\"pull\", \"resolve\"]\n",
            ca.display()
        );
        let alt = dir.join("certs.d-root-only");
        std::fs::create_dir_all(alt.join("harbor.example.internal")).expect("mkdir");
        std::fs::write(alt.join("harbor.example.internal/hosts.toml"), &root_only).expect("write");
        let (ok, log) = pull(line, &daemon.sock, &alt, true);
        eprintln!(
            "| root-level only | {} | {} |",
            line.version,
            if ok { "pulls" } else { "FAILS" }
        );
        if !ok && !ignored(&log) {
            failures.push(format!(
                "{}: root-level: not the default host: {log}",
                line.version
            ));
        }
        let encoded = version_at_least(line, (1, 7, 32));
        if ok != encoded {
            failures.push(format!(
                "{}: a root-level-only hosts.toml pulls = {ok}, the agent's rule says {encoded}: {log}",
                line.version
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A CRI `PullImage` of [`IMAGE`] over the daemon's socket: gRPC by hand
/// (HTTP/2 with curl, the request protobuf-encoded here), as the kubelet
/// pulls. `Ok(())` or the gRPC error message.
fn cri_pull(sock: &Path) -> Result<(), String> {
    // PullImageRequest{ image: ImageSpec{ image: IMAGE } }
    let spec = [&[0x0a, IMAGE.len() as u8][..], IMAGE.as_bytes()].concat();
    let msg = [&[0x0a, spec.len() as u8][..], &spec].concat();
    let len = u32::try_from(msg.len()).expect("small").to_be_bytes();
    let frame = [&[0u8][..], &len, &msg].concat();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-v",
            "--max-time",
            "60",
            "--http2-prior-knowledge",
            "--unix-socket",
        ])
        .arg(sock)
        .args([
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--data-binary",
            "@-",
            "-o",
            "/dev/null",
            "http://localhost/runtime.v1.ImageService/PullImage",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(&frame)?;
            c.wait_with_output()
        })
        .expect("curl");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let field = |name: &str| {
        log.lines()
            .filter_map(|l| l.strip_prefix("< "))
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    match field("grpc-status:").as_deref() {
        Some("0") => Ok(()),
        Some(_) => Err(field("grpc-message:").unwrap_or_default()),
        None => Err(format!("no gRPC status: {log}")),
    }
}

/// The colon-separated `config_path` nodeadm writes: honoured by the CRI
/// plugin of 1.6 and 1.7, and by 2.1.9 while nodeadm's
/// `discard_unpacked_layers = true` keeps it on its local pull; taken as
/// one directory by 2.1's transfer-service pulls once that setting is off.
/// The agent's `config_path_transfer` verdict follows the daemon.
#[test]
fn cri_pulls_and_the_colon_config_path_on_each_line() {
    let (Some(lines), Some(registry), Some(_)) = (
        lines(),
        require_tool("docker-registry"),
        require_tool("curl"),
    ) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let port = free_port();
    let pki = pki("cri");
    let ca = w.join("harbor-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write");
    let _registry = start_registry(&registry, &w.join("registry"), port, &pki);
    push_image(w, port, &ca);

    let mut failures = Vec::new();
    // (label, colon list, the import turns nodeadm's discard_unpacked_layers off)
    let cases = [
        ("single", false, false),
        ("a:b", true, false),
        ("a:b, no discard_unpacked_layers", true, true),
    ];
    for line in &lines {
        for (i, (label, colon, no_discard)) in cases.into_iter().enumerate() {
            let dir = w.join(format!("cri-{}-{i}", line.version));
            let certs_d = dir.join("certs.d");
            apply(line, &dir, &certs_d, &ca, port);
            let config_path = if colon {
                format!("{}:/etc/docker/certs.d", certs_d.display())
            } else {
                certs_d.display().to_string()
            };
            let mut import = format!(
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{config_path}\"\n"
            );
            if no_discard {
                import.push_str("[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  discard_unpacked_layers = false\n");
            }
            let daemon = start(line, &dir, Some(&import))
                .unwrap_or_else(|e| panic!("containerd {} does not start: {e}", line.version));
            let pulled = cri_pull(&daemon.sock);
            drop(daemon);
            eprintln!(
                "| CRI pull, config_path {label} | {} | {} |",
                line.version,
                match &pulled {
                    Ok(()) => "pulls".to_owned(),
                    Err(e) => format!("FAILS: {e}"),
                }
            );
            let report = agent_check(line, &import);
            let verdict = report["checks"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|c| c["domain"] == "containerd" && c["id"] == "config_path_transfer")
                })
                .map(|c| c["status"].as_str().unwrap_or("").to_owned())
                .unwrap_or_default();
            if pulled.is_ok() != (verdict == "pass") {
                failures.push(format!(
                    "{} config_path {config_path:?}: CRI pull {pulled:?}, config_path_transfer {verdict}",
                    line.version
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `check -o json` for a NodeConfig whose containerd.config is `toml`.
fn agent_check(line: &Line, toml: &str) -> Value {
    let root = tempfile::tempdir().expect("tempdir");
    let nc = root.path().join("etc/nodeadm/nodeconfig.yaml");
    std::fs::create_dir_all(nc.parent().expect("parent")).expect("mkdir");
    let block: String = toml.lines().map(|l| format!("      {l}\n")).collect();
    std::fs::write(
        &nc,
        format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n  hybrid:\n    ssm:\n      activationCode: \"Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ\"\n      activationId: \"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n  containerd:\n    config: |\n{block}"
        ),
    )
    .expect("write");
    let cfg = root.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!("[containerd]\nbinary = \"{}\"\n", line.containerd.display()),
    )
    .expect("write");
    let out = Command::new(agent_bin())
        .arg("--root")
        .arg(root.path())
        .arg("--config")
        .arg(&cfg)
        .args(["check", "-o", "json"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run check");
    json_report(&out)
}

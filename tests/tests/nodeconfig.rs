//! The NodeConfig and containerd domains as a site admin meets them: the
//! reference NodeConfigs, secrets, the real containerd's view of the traps,
//! `render`, and a daemon that follows edits of the file.

use hybrid_node_agent_e2e::{
    eventually, fixture, http_get, pki, require_tool, root_from_fixture, run_agent, sample, Agent,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const NODECONFIG: &str = "etc/nodeadm/nodeconfig.yaml";
/// Secrets in the reference fixtures: none may ever be shown.
const SECRETS: [&str; 3] = [
    "Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ",
    "Qw8eR7tY6uI5oP4aS3dF2gH1jK0lZ9xC",
    "s3cr3t-robot-token-do-not-log",
];

/// An empty root holding `fixture` as the NodeConfig, and an agent config
/// that uses `containerd` as the containerd binary.
fn root_with(fixture_name: &str, containerd: &str) -> (tempfile::TempDir, String) {
    let root = root_from_fixture("empty");
    let dest = root.path().join(NODECONFIG);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::copy(fixture(&format!("nodeconfig/{fixture_name}")), &dest).expect("copy");
    let cfg = root.path().join("agent.toml");
    std::fs::write(&cfg, format!("[containerd]\nbinary = \"{containerd}\"\n")).expect("write");
    let cfg = cfg.to_string_lossy().into_owned();
    (root, cfg)
}

fn check_json(root: &Path, cfg: &str) -> (i32, Value, String) {
    let out = run_agent(&[
        "--root",
        root.to_str().expect("utf-8"),
        "--config",
        cfg,
        "check",
        "-o",
        "json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), v, all)
}

fn status<'a>(report: &'a Value, domain: &str, id: &str) -> (&'a str, &'a str) {
    hybrid_node_agent_e2e::check_in(report, domain, id)
}

fn assert_no_secrets(text: &str, what: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks a secret:\n{text}");
    }
}

fn install_iam_cert(root: &Path) {
    let mut params =
        rcgen::CertificateParams::new(vec!["rack12-node07".to_owned()]).expect("params");
    // IAM Roles Anywhere's trust policy ties the session name (nodeName) to the CN.
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rack12-node07");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let pki = root.join("etc/iam/pki");
    std::fs::create_dir_all(&pki).expect("mkdir");
    std::fs::write(pki.join("server.pem"), cert.pem()).expect("write");
    std::fs::write(pki.join("server.key"), key.serialize_pem()).expect("write");
}

#[test]
fn reference_nodeconfigs_get_their_verdicts() {
    // (fixture, failing nodeconfig check or None, expected text, containerd failures)
    let cases: [(&str, Option<&str>, &str, &[&str]); 6] = [
        ("gpu-h100.yaml", None, "", &["import_override", "runtime_binary"]),
        ("harbor-ssm.yaml", None, "", &["registry_conflict", "import_override"]),
        (
            "iam-ra.json",
            Some("credentials"),
            "the node certificate /etc/iam/pki/server.pem does not exist",
            &[],
        ),
        (
            "invalid-both-credentials.yaml",
            Some("credentials"),
            "sets both ssm and iamRolesAnywhere",
            &[],
        ),
        (
            "invalid-containerd-toml.yaml",
            Some("containerd_toml"),
            "/etc/nodeadm/nodeconfig.yaml:15:86: spec.containerd.config is not valid TOML: unclosed table, expected `]`. nodeadm does not check it",
            &[],
        ),
        (
            "invalid-yaml.yaml",
            Some("parse"),
            "/etc/nodeadm/nodeconfig.yaml:6:12: mapping values are not allowed in this context",
            &[],
        ),
    ];
    for (name, failing, text, containerd_fails) in cases {
        let (root, cfg) = root_with(name, "/nonexistent/containerd");
        let (code, report, all) = check_json(root.path(), &cfg);
        assert_eq!(code, 2, "{name}: {report:#}");
        assert_no_secrets(&all, name);
        let (file_status, file_summary) = status(&report, "nodeconfig", "file");
        // nodeadm writes a containerd.config it cannot parse unchecked: the
        // NodeConfig is in force, the check warns that containerd will not start.
        if name == "invalid-containerd-toml.yaml" {
            assert_eq!(file_status, "pass", "{name}: {file_summary}");
            let (s, summary) = status(&report, "nodeconfig", "containerd_toml");
            assert_eq!(s, "warn", "{summary}");
            assert!(summary.contains(text), "{summary}");
            continue;
        }
        match failing {
            None => {
                assert_eq!(file_status, "pass", "{name}: {file_summary}");
                for c in report["checks"].as_array().expect("checks") {
                    if c["domain"] == "nodeconfig" {
                        assert_eq!(c["status"], "pass", "{name}: {c}");
                    }
                }
            }
            Some(id) => {
                assert_eq!(file_status, "fail", "{name}");
                assert!(
                    file_summary.ends_with("no good NodeConfig has been loaded yet"),
                    "{file_summary}"
                );
                let (s, summary) = status(&report, "nodeconfig", id);
                assert_eq!(s, "fail", "{name}: {summary}");
                assert!(summary.contains(text), "{name}: {summary}");
            }
        }
        for id in containerd_fails {
            assert_eq!(status(&report, "containerd", id).0, "fail", "{name}/{id}");
        }
    }

    // The IAM Roles Anywhere config passes once its certificate is there.
    let (root, cfg) = root_with("iam-ra.json", "/nonexistent/containerd");
    install_iam_cert(root.path());
    let (_, report, _) = check_json(root.path(), &cfg);
    // It leaves the certificate paths to init's defaults, which `nodeadm
    // config check` does not apply: accepted, with a warning.
    let (s, summary) = status(&report, "nodeconfig", "credentials");
    assert_eq!(s, "warn", "{summary}");
    assert!(
        summary.starts_with("/etc/nodeadm/nodeconfig.yaml:7:7: `nodeadm config check` rejects this file (\"CertificatePath is missing"),
        "{summary}"
    );
    assert_eq!(
        status(&report, "nodeconfig", "file").1,
        "/etc/nodeadm/nodeconfig.yaml (JSON, 551 bytes); in force"
    );
}

#[test]
fn secrets_never_appear_in_output_logs_or_metrics() {
    for name in ["harbor-ssm.yaml", "gpu-h100.yaml"] {
        let (root, cfg) = root_with(name, "/nonexistent/containerd");
        let r = root.path().to_str().expect("utf-8");
        for args in [
            vec!["--root", r, "--config", &cfg, "check", "--color", "never"],
            vec!["--root", r, "--config", &cfg, "check", "-o", "json"],
        ] {
            let out = run_agent(&args);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_no_secrets(&all, &format!("{args:?}"));
        }
        let nc = root.path().join(NODECONFIG);
        let out = run_agent(&["render", "--nodeconfig", nc.to_str().expect("utf-8")]);
        assert!(out.status.success());
        let rendered = String::from_utf8_lossy(&out.stdout);
        assert_no_secrets(&rendered, "render");

        // The daemon, with debug logging: logs, /metrics and /status.
        let log = root.path().join("agent.log");
        let mut agent = Agent::start(
            &["--root", r, "--config", &cfg],
            &[("RUST_LOG", "debug")],
            Some(&log),
        );
        agent.wait_ready();
        let metrics = agent.metrics();
        let status_doc = http_get(agent.addr, "/status", &[]).expect("status").body;
        drop(agent);
        let logs = std::fs::read_to_string(&log).expect("log");
        assert!(
            logs.contains("NodeConfig /etc/nodeadm/nodeconfig.yaml loaded"),
            "{logs}"
        );
        assert_no_secrets(&logs, "daemon log");
        assert_no_secrets(&metrics, "/metrics");
        assert_no_secrets(&status_doc, "/status");
    }
}

/// Runs `containerd config dump` on nodeadm's main config with `import` as
/// its only import, as hybrid nodeadm lays them out.
fn real_dump(containerd: &Path, import: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let confd = dir.path().join("config.d");
    std::fs::create_dir(&confd).expect("mkdir");
    std::fs::write(confd.join("00-nodeadm.toml"), import).expect("write");
    let main = format!(
        "version = 2\nimports = [\"{}/*.toml\"]\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = true\n",
        confd.display()
    );
    let main_path = dir.path().join("config.toml");
    std::fs::write(&main_path, main).expect("write");
    let out = std::process::Command::new(containerd)
        .arg("--config")
        .arg(&main_path)
        .args(["config", "dump"])
        .output()
        .expect("containerd config dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The part of `render`'s output that is the corrected containerd.config.
fn corrected_config(rendered: &str) -> String {
    rendered
        .split("\n# --- ")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with("# "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replaces the `config: |` block of a NodeConfig with `toml`.
fn with_containerd_config(nodeconfig: &str, toml: &str) -> String {
    let start = nodeconfig.find("    config: |\n").expect("config block") + "    config: |\n".len();
    let end = nodeconfig[start..]
        .find("\n  kubelet:")
        .map(|i| start + i + 1)
        .unwrap_or(nodeconfig.len());
    let block: String = toml.lines().map(|l| format!("      {l}\n")).collect();
    format!("{}{block}{}", &nodeconfig[..start], &nodeconfig[end..])
}

#[test]
fn real_containerd_proves_both_traps_and_the_correction() {
    let Some(containerd) = require_tool("containerd") else {
        return;
    };
    let (root, cfg) = root_with("harbor-ssm.yaml", containerd.to_str().expect("utf-8"));
    let (_, report, _) = check_json(root.path(), &cfg);
    let (s, summary) = status(&report, "containerd", "effective_config");
    assert_eq!(s, "pass");
    assert!(
        summary.starts_with("containerd ")
            && summary.contains(" loads this config (as nodeadm init would write it); effective config from `containerd config dump`"),
        "{summary}"
    );
    let (s, summary) = status(&report, "containerd", "registry_conflict");
    assert_eq!(s, "fail");
    assert!(
        summary.contains("`mirrors` cannot be set when `config_path` is provided"),
        "{summary}"
    );
    let (s, summary) = status(&report, "containerd", "import_override");
    assert_eq!(s, "fail");
    assert!(summary.contains("SystemdCgroup is not true"), "{summary}");

    // The real containerd agrees that the import as written loses the settings.
    let original = std::fs::read_to_string(root.path().join(NODECONFIG)).expect("read");
    let inline: String = original
        .split("    config: |\n")
        .nth(1)
        .and_then(|rest| rest.split("\n  kubelet:").next())
        .expect("block")
        .lines()
        .map(|l| l.strip_prefix("      ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let before = real_dump(&containerd, &inline);
    assert!(!before.contains("SystemdCgroup = true"), "{before}");

    // render's correction: both traps gone, per the agent and per containerd.
    // (The hosts.toml needs the CA the NodeConfig names, under --root.)
    let ca_dir = root.path().join("etc/ssl/certs");
    std::fs::create_dir_all(&ca_dir).expect("mkdir");
    std::fs::write(ca_dir.join("harbor-ca.crt"), pki("render").ca_pem).expect("write");
    let out = run_agent(&[
        "--root",
        root.path().to_str().expect("utf-8"),
        "render",
        "--nodeconfig",
        root.path().join(NODECONFIG).to_str().expect("utf-8"),
    ]);
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        rendered.contains("# --- /etc/containerd/certs.d/harbor.example.internal/hosts.toml"),
        "{rendered}"
    );
    let fixed = corrected_config(&rendered);
    std::fs::write(
        root.path().join(NODECONFIG),
        with_containerd_config(&original, &fixed),
    )
    .expect("write");
    let (_, report, _) = check_json(root.path(), &cfg);
    for id in ["registry_conflict", "effective_config"] {
        let (s, summary) = status(&report, "containerd", id);
        assert_eq!(s, "pass", "{id}: {summary}");
    }
    // Before init nodeadm's (region-specific) sandbox image is not known to
    // render, so on containerd 1.x the CRI table of the import still
    // replaces it; config_path and SystemdCgroup are restored.
    let (s, summary) = status(&report, "containerd", "import_override");
    assert_eq!(s, "fail", "{summary}");
    assert!(
        summary.contains("sandbox_image")
            && !summary.contains("config_path")
            && !summary.contains("SystemdCgroup"),
        "{summary}"
    );
    let after = real_dump(&containerd, &fixed);
    assert!(after.contains("SystemdCgroup = true"), "{after}");
    assert!(
        after.contains("config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\""),
        "{after}"
    );
    assert!(
        !after.contains("endpoint = [\"https://harbor.example.internal\"]"),
        "{after}"
    );
}

#[test]
fn render_without_registry_settings_and_with_bad_input() {
    let out = run_agent(&[
        "render",
        "--nodeconfig",
        fixture("nodeconfig/iam-ra.json").to_str().expect("utf-8"),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("has no spec.containerd.config"));

    let out = run_agent(&[
        "render",
        "--nodeconfig",
        fixture("nodeconfig/invalid-yaml.yaml")
            .to_str()
            .expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid-yaml.yaml:6:12:"));
    let out = run_agent(&["render", "--nodeconfig", "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(66));
}

fn valid_series(agent: &Agent) -> Option<(f64, f64, f64)> {
    let m = agent.metrics();
    Some((
        sample(&m, "hybrid_node_nodeconfig_valid")?,
        sample(
            &m,
            "hybrid_node_nodeconfig_reloads_total{result=\"success\"}",
        )?,
        sample(
            &m,
            "hybrid_node_nodeconfig_reloads_total{result=\"failure\"}",
        )?,
    ))
}

fn wait_for(agent: &Agent, want: (f64, f64, f64), step: &str) {
    let got = eventually(Duration::from_secs(5), || {
        valid_series(agent).filter(|v| *v == want)
    });
    assert!(
        got.is_some(),
        "after {step}: wanted (valid, successes, failures) = {want:?}, got {:?}",
        valid_series(agent)
    );
}

#[test]
fn watch_follows_every_kind_of_edit_and_keeps_the_last_good() {
    // The directory does not exist when the agent starts.
    let root = root_from_fixture("empty");
    let r = root.path().to_str().expect("utf-8");
    let cfg = root.path().join("agent.toml");
    // A long interval: only file events can explain a prompt reaction.
    std::fs::write(
        &cfg,
        "[nodeconfig]\ninterval = \"1h\"\n[containerd]\nbinary = \"/nonexistent\"\n",
    )
    .expect("write");
    let mut agent = Agent::start(
        &["--root", r, "--config", cfg.to_str().expect("utf-8")],
        &[],
        None,
    );
    agent.wait_ready();
    wait_for(&agent, (0.0, 0.0, 0.0), "start without the directory");

    let good = std::fs::read_to_string(fixture("nodeconfig/harbor-ssm.yaml")).expect("read");
    let good2 = good.replace("my-hybrid-cluster", "my-other-cluster");
    let bad = std::fs::read_to_string(fixture("nodeconfig/invalid-yaml.yaml")).expect("read");
    let dir = root.path().join("etc/nodeadm");
    let file = dir.join("nodeconfig.yaml");

    // 1. Directory and file created.
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(&file, &good).expect("write");
    wait_for(&agent, (1.0, 1.0, 0.0), "create");

    // 2. An invalid edit, in place: the last good stays in force.
    std::fs::write(&file, &bad).expect("write");
    wait_for(&agent, (0.0, 1.0, 1.0), "invalid in-place write");
    let doc: Value =
        serde_json::from_str(&http_get(agent.addr, "/status", &[]).expect("status").body)
            .expect("json");
    let file_check = doc["domains"]["nodeconfig"]["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == "file"))
        .expect("file check");
    assert!(
        file_check["summary"]
            .as_str()
            .unwrap_or("")
            .contains("the last good NodeConfig (loaded "),
        "{file_check}"
    );
    // containerd still analyses the last good NodeConfig.
    let m = agent.metrics();
    assert_eq!(
        sample(&m, "hybrid_node_check_status{domain=\"containerd\",check=\"registry_conflict\",status=\"fail\"}"),
        Some(1.0),
        "{m}"
    );

    // 3. Rename-over (how editors and config tools save).
    let tmp = dir.join(".nodeconfig.yaml.swp");
    std::fs::write(&tmp, &good2).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    wait_for(&agent, (1.0, 2.0, 1.0), "rename-over");

    // 4. Delete: the last good stays in force, the file is reported missing.
    std::fs::remove_file(&file).expect("rm");
    wait_for(&agent, (0.0, 2.0, 1.0), "delete");
    let m = agent.metrics();
    assert_eq!(
        sample(
            &m,
            "hybrid_node_check_status{domain=\"nodeconfig\",check=\"file\",status=\"warn\"}"
        ),
        Some(1.0)
    );

    // 5. Re-create, then an in-place edit of a valid file.
    std::fs::write(&file, &good).expect("write");
    wait_for(&agent, (1.0, 3.0, 1.0), "re-create");
    std::fs::write(&file, &good2).expect("write");
    wait_for(&agent, (1.0, 4.0, 1.0), "valid in-place write");
}

/// `apply -o json` on `root` with agent config `cfg`.
fn apply_json(root: &Path, cfg: &str) -> (Value, String) {
    let out = run_agent(&[
        "--root",
        root.to_str().expect("utf-8"),
        "--config",
        cfg,
        "apply",
        "-o",
        "json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {all}"));
    (v, all)
}

/// Security review (issue 15, finding 5): registry names from the
/// NodeConfig's inline containerd config were not validated: `evil/sub`
/// wrote through a symlinked `certs.d/evil`, and `..`, `.` and `""` put
/// hosts.toml in certs.d's root or its parent. Each is now skipped and named
/// in a failing check.
#[test]
fn nodeconfig_registry_names_cannot_leave_certs_d() {
    let (root, cfg) = root_with("harbor-ssm.yaml", "/nonexistent/containerd");
    let r = root.path();
    std::fs::write(
        &cfg,
        "[containerd]\nbinary = \"/nonexistent/containerd\"\n[registries]\nprobe_timeout = \"500ms\"\n",
    )
    .expect("write");
    let mut toml = String::from("version = 2\n");
    for name in ["evil/sub", "..", ".", ""] {
        toml.push_str(&format!(
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{name}\"]\n  endpoint = [\"https://127.0.0.1:9\"]\n"
        ));
    }
    let nc = r.join(NODECONFIG);
    let text = std::fs::read_to_string(&nc).expect("read");
    std::fs::write(&nc, with_containerd_config(&text, &toml)).expect("write");
    let certs_d = r.join("etc/containerd/certs.d");
    let outside = r.join("outside");
    std::fs::create_dir_all(&certs_d).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, certs_d.join("evil")).expect("symlink");

    let (report, all) = apply_json(r, &cfg);
    assert!(
        std::fs::read_dir(&outside).expect("read").next().is_none(),
        "written through certs.d/evil: {all}"
    );
    for p in [
        "etc/containerd/certs.d/hosts.toml",
        "etc/containerd/hosts.toml",
    ] {
        assert!(!r.join(p).exists(), "{p} written: {all}");
    }
    let (st, summary) = status(&report, "registry", "sources");
    assert_eq!(st, "fail", "{summary}");
    for name in ["\"evil/sub\"", "\"..\"", "\".\"", "\"\""] {
        assert!(
            summary.contains(&format!(
                "registry name {name} from the NodeConfig spec.containerd.config"
            )),
            "{name}: {summary}"
        );
    }
}

/// Security review (issue 15, finding 10): a mirror URL with credentials
/// (`https://user:pass@host`) was echoed in `check`, /status, labels and
/// hosts.toml. Now the registry is refused with a message that shows the URL
/// as `***@` and says where credentials belong.
#[test]
fn mirror_url_credentials_are_refused_and_never_shown() {
    let (root, cfg) = root_with("harbor-ssm.yaml", "/nonexistent/containerd");
    let r = root.path();
    let toml = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"harbor.example.internal\"]\n  endpoint = [\"https://robot:url-pass-hunter2@127.0.0.1:9/v2\"]\n";
    let nc = r.join(NODECONFIG);
    let text = std::fs::read_to_string(&nc).expect("read");
    std::fs::write(&nc, with_containerd_config(&text, toml)).expect("write");

    let (_, report, all) = check_json(r, &cfg);
    assert!(!all.contains("url-pass-hunter2"), "{all}");
    let (st, summary) = status(&report, "registry", "sources");
    assert_eq!(st, "fail", "{summary}");
    assert!(summary.contains("harbor.example.internal"), "{summary}");
    assert!(summary.contains("https://***@127.0.0.1:9/v2"), "{summary}");
    assert!(summary.contains("auth"), "{summary}");
    let table = run_agent(&[
        "--root",
        r.to_str().expect("utf-8"),
        "--config",
        &cfg,
        "check",
        "--color",
        "never",
    ]);
    assert!(!String::from_utf8_lossy(&table.stdout).contains("url-pass-hunter2"));
    let (_, all) = apply_json(r, &cfg);
    assert!(!all.contains("url-pass-hunter2"), "{all}");
    assert!(
        !r.join("etc/containerd/certs.d/harbor.example.internal")
            .exists(),
        "no hosts.toml with the password"
    );
    let out = run_agent(&["render", "--nodeconfig", nc.to_str().expect("utf-8")]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!shown.contains("url-pass-hunter2"), "{shown}");
    assert!(shown.contains("***@"), "{shown}");
}

/// Security review (issue 15, finding 4): label values were written
/// unescaped, so a mirror URL with a quote and a newline forged sample
/// lines (`hybrid_node_gpu_driver_ok{forged="yes"} 1`) and made the scrape
/// unparseable. The scrape now parses (promtool, when installed) and the
/// value stays inside its own label.
#[test]
fn hostile_label_values_cannot_forge_samples() {
    let (root, cfg) = root_with("harbor-ssm.yaml", "/nonexistent/containerd");
    let r = root.path();
    std::fs::write(
        &cfg,
        "[containerd]\nbinary = \"/nonexistent/containerd\"\n[registries]\nprobe_timeout = \"500ms\"\n[network]\napi_server = false\n",
    )
    .expect("write");
    let toml = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"harbor.example.internal\"]\n  endpoint = [\"https://127.0.0.1:9/x\\\"} 1\\nhybrid_node_gpu_driver_ok{forged=\\\"yes\\\"} 1\\n\"]\n";
    let nc = r.join(NODECONFIG);
    let text = std::fs::read_to_string(&nc).expect("read");
    std::fs::write(&nc, with_containerd_config(&text, toml)).expect("write");
    let mut agent = Agent::start(
        &["--root", r.to_str().expect("utf-8"), "--config", &cfg],
        &[],
        None,
    );
    agent.wait_ready();
    let scrape = eventually(Duration::from_secs(15), || {
        let m = agent.metrics();
        m.contains("127.0.0.1:9").then_some(m)
    })
    .expect("registry probed");
    drop(agent);
    assert!(
        !scrape
            .lines()
            .any(|l| l.contains("forged") && !l.contains("registry=")),
        "a forged sample:\n{scrape}"
    );
    let line = scrape
        .lines()
        .find(|l| l.starts_with("hybrid_node_registry_up{") && l.contains("127.0.0.1:9"))
        .unwrap_or_else(|| panic!("registry_up of the mirror in\n{scrape}"));
    assert!(
        line.contains(r#"endpoint="https://127.0.0.1:9/x\"} 1\nhybrid_node_gpu_driver_ok{forged=\"yes\"} 1\n""#),
        "{line}"
    );
    for l in scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        hybrid_node_agent::metrics::label::parse_sample(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    if let Some(report) = hybrid_node_agent_e2e::promtool_check_metrics(&scrape) {
        assert!(
            !report.contains("error while linting") && !report.contains("parse"),
            "promtool: {report}\n---\n{scrape}"
        );
    }
}

/// Security review (issue 15, finding 8): decode errors quoted a numeric
/// activation code whole, and the part of a quoted value after an escaped
/// quote, in `check`'s summaries and `render`'s error.
#[test]
fn decode_errors_never_quote_the_activation_code() {
    // nodeadm reads a numeric code as the text of its float32 value
    // ("1.2345679e+23", 13 characters): the validator rejects it, and no
    // message shows either form.
    for (body, secret, reported) in [
        (
            r#"{"activationCode": 123456789012345678901234, "activationId": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"}"#,
            "12345678",
            "activationCode must be 20 to 250 characters on one line, got 13",
        ),
        (
            r#""Xk3p\"Q9vL2mN8rT5wY7zA1bC4dE6fG0hJ""#,
            "Q9vL2mN8",
            "spec.hybrid.ssm must be a mapping, not a string",
        ),
    ] {
        let root = root_from_fixture("empty");
        let nc = root.path().join(NODECONFIG);
        std::fs::create_dir_all(nc.parent().expect("parent")).expect("mkdir");
        std::fs::write(
            &nc,
            format!(r#"{{"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig", "spec": {{"cluster": {{"name": "c", "region": "us-west-2"}}, "hybrid": {{"ssm": {body}}}}}}}"#),
        )
        .expect("write");
        let cfg = root.path().join("agent.toml");
        std::fs::write(&cfg, "[containerd]\nbinary = \"/nonexistent/containerd\"\n")
            .expect("write");
        let (_, report, all) = check_json(root.path(), cfg.to_str().expect("utf-8"));
        assert!(!all.contains(secret) && !all.contains("e+23"), "{all}");
        let summaries: Vec<&str> = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["domain"] == "nodeconfig")
            .filter_map(|c| c["summary"].as_str())
            .collect();
        assert!(
            summaries.iter().any(|s| s.contains(reported)),
            "the error is still reported: {summaries:?}"
        );
        let out = run_agent(&["render", "--nodeconfig", nc.to_str().expect("utf-8")]);
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !shown.contains(secret) && !shown.contains("e+23"),
            "{shown}"
        );
        if reported.contains("mapping") {
            assert!(shown.contains(reported), "{shown}");
        }
    }
}

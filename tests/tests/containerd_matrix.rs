//! The containerd version matrix: for each `containerd.config` input and
//! each containerd line (1.6, 1.7, 2.x), the real daemon's behaviour with
//! nodeadm's main config and the input as its import, against the agent's
//! `check` verdicts for a NodeConfig carrying that input.
//!
//! Truth per cell (tests/src/containerd.rs): does the daemon start; do its
//! CRI plugins load (`ctr plugins ls`, the daemon log); what `config dump`
//! shows for `config_path`, the default runtime's `SystemdCgroup`, the
//! sandbox image and the default runtime. Agent verdicts: `effective_config`
//! (fails exactly when the daemon does not start, quoting containerd's
//! error), `registry_conflict` (fails exactly when a CRI plugin fails),
//! `import_override` (fails exactly when nodeadm's settings are not in
//! force), `config_version` (fails exactly when the input does not take
//! effect), `runtime_binary` (names the daemon's default runtime).

use hybrid_node_agent_e2e::containerd::{lines, nodeadm_template, truth, Line, Truth, SANDBOX};
use hybrid_node_agent_e2e::{fixture, json_report, root_from_fixture, run_agent};
use serde_json::Value;

const NODECONFIG: &str = "etc/nodeadm/nodeconfig.yaml";

/// An input: its name, its TOML, and a value that is in the dump when the
/// input takes effect.
struct Input {
    name: String,
    toml: String,
    marker: Option<&'static str>,
}

/// The `config: |` block of a reference NodeConfig.
fn inline_of(nodeconfig: &str) -> String {
    let text = std::fs::read_to_string(fixture(&format!("nodeconfig/{nodeconfig}"))).expect("read");
    text.split("    config: |\n")
        .nth(1)
        .and_then(|rest| rest.split("\n  kubelet:").next())
        .expect("config block")
        .lines()
        .map(|l| l.strip_prefix("      ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn inputs() -> Vec<Input> {
    let file = |name: &str| {
        std::fs::read_to_string(fixture(&format!("containerd/matrix/{name}.toml"))).expect("read")
    };
    let mut v = vec![
        Input {
            name: "harbor-ssm (fixture)".into(),
            toml: inline_of("harbor-ssm.yaml"),
            marker: None,
        },
        Input {
            name: "gpu-h100 (fixture)".into(),
            toml: inline_of("gpu-h100.yaml"),
            marker: Some("/usr/bin/nvidia-container-runtime"),
        },
    ];
    for (name, marker) in [
        ("grpc-only", None),
        ("v3-pinned-sandbox", Some("localhost/matrix/pause:3.10")),
        ("v3-runtime-systemd", Some("/usr/local/sbin/runc-matrix")),
        ("v3-ipv6-mirror", None),
        ("v2-ipv6-mirror", None),
        ("v2-ipv6-mirror-inline", None),
        ("port-mirror", None),
        ("single-config-path", None),
        ("configs-tls-only", None),
        ("configs-auth-only", None),
        ("inline-cri-table", Some("localhost/matrix/pause:inline")),
        ("toml11-trailing-comma", None),
        ("toml11-escape", None),
    ] {
        v.push(Input {
            name: name.into(),
            toml: file(name),
            marker,
        });
    }
    v
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

/// `check -o json` for a NodeConfig carrying `toml`, with `line` as the
/// agent's containerd.
fn agent_report(line: &Line, toml: &str) -> Value {
    let root = root_from_fixture("empty");
    let dest = root.path().join(NODECONFIG);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let base = std::fs::read_to_string(fixture("nodeconfig/harbor-ssm.yaml")).expect("read");
    std::fs::write(&dest, with_containerd_config(&base, toml)).expect("write");
    let cfg = root.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!("[containerd]\nbinary = \"{}\"\n", line.containerd.display()),
    )
    .expect("write");
    let out = run_agent(&[
        "--root",
        root.path().to_str().expect("utf-8"),
        "--config",
        cfg.to_str().expect("utf-8"),
        "check",
        "-o",
        "json",
    ]);
    json_report(&out)
}

fn verdict<'a>(report: &'a Value, id: &str) -> Option<(&'a str, &'a str)> {
    report["checks"].as_array()?.iter().find_map(|c| {
        (c["domain"] == "containerd" && c["id"] == id).then(|| {
            (
                c["status"].as_str().unwrap_or(""),
                c["summary"].as_str().unwrap_or(""),
            )
        })
    })
}

/// nodeadm's settings in force: a config_path (hosts.toml used), the
/// systemd cgroup driver, nodeadm's sandbox image.
fn kept(t: &Truth) -> bool {
    t.config_path.as_deref().is_some_and(|p| !p.is_empty())
        && t.systemd_cgroup == Some(true)
        && t.sandbox_image.as_deref() == Some(SANDBOX)
}

/// One cell: the daemon's truth, the agent's verdicts, and every
/// disagreement between them.
fn cell(line: &Line, input: &Input) -> (String, Vec<String>) {
    let t = truth(line, Some(&input.toml));
    let report = agent_report(line, &input.toml);
    let mut bad = Vec::new();
    let v = |id: &str| verdict(&report, id).unwrap_or(("absent", ""));
    let (eff, eff_msg) = v("effective_config");
    if t.loads == (eff == "fail") {
        bad.push(format!(
            "loads={} but effective_config {eff}: {eff_msg}",
            t.loads
        ));
    }
    let (cv, cv_msg) = v("config_version");
    if !t.loads {
        // The agent names the version and quotes containerd's own error.
        let error = t.error.clone().unwrap_or_default();
        let tail = error.rsplit("00-nodeadm.toml").next().unwrap_or(&error);
        let want = format!(
            "containerd {} will not start with this config",
            line.version
        );
        if !eff_msg.contains(&want) || !eff_msg.contains(tail) {
            bad.push(format!(
                "refusal not named: want {want:?} and {tail:?} in {eff_msg:?}"
            ));
        }
        let v3 = input.toml.contains("version = 3");
        if v3 != (cv == "fail") {
            bad.push(format!("version 3 refused, config_version {cv}: {cv_msg}"));
        }
        let row = format!("does not start: {error}");
        return (row, bad);
    }
    let (rc, rc_msg) = v("registry_conflict");
    if t.cri_ok() != (rc == "pass") {
        bad.push(format!(
            "cri plugins {:?} but registry_conflict {rc}: {rc_msg}",
            t.cri_plugins
        ));
    }
    if !t.cri_ok() {
        let said = "`mirrors` cannot be set when `config_path` is provided";
        if !t.plugin_errors.iter().any(|e| e.contains(said)) || !rc_msg.contains(said) {
            bad.push(format!(
                "CRI error not the same: {:?} vs {rc_msg}",
                t.plugin_errors
            ));
        }
    }
    let (io, io_msg) = v("import_override");
    if kept(&t) != (io == "pass") {
        bad.push(format!(
            "config_path={:?} SystemdCgroup={:?} sandbox={:?} but import_override {io}: {io_msg}",
            t.config_path, t.systemd_cgroup, t.sandbox_image
        ));
    }
    let applied = input.marker.is_none_or(|m| t.dump.contains(m));
    if applied == (cv == "fail") {
        bad.push(format!(
            "input applied={applied} but config_version {cv}: {cv_msg}"
        ));
    }
    let (_, rb_msg) = v("runtime_binary");
    let rt = t.default_runtime.clone().unwrap_or_else(|| "runc".into());
    if !rb_msg.contains(&format!("{rt:?}")) {
        bad.push(format!(
            "default runtime {rt:?}, runtime_binary says {rb_msg}"
        ));
    }
    let row = format!(
        "starts; CRI {}; config_path {:?}; SystemdCgroup {:?}; sandbox {}; runtime {rt}{}",
        if t.cri_ok() { "ok" } else { "FAILS" },
        t.config_path.clone().unwrap_or_default(),
        t.systemd_cgroup,
        if t.sandbox_image.as_deref() == Some(SANDBOX) {
            "nodeadm's".to_owned()
        } else {
            format!("{:?}", t.sandbox_image.clone().unwrap_or_default())
        },
        if applied { "" } else { "; input IGNORED" }
    );
    (row, bad)
}

/// Every input on every line: the agent's verdicts match the daemon.
#[test]
fn agent_verdicts_match_each_containerd_line() {
    let Some(lines) = lines() else {
        return;
    };
    let names: Vec<&str> = lines.iter().map(|l| l.version.as_str()).collect();
    eprintln!("containerd lines: {names:?}");
    let inputs = inputs();
    let started = std::time::Instant::now();
    // One thread per line: the daemons are private and independent.
    let results: Vec<Vec<(String, Vec<String>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .iter()
            .map(|line| s.spawn(|| inputs.iter().map(|i| cell(line, i)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("matrix thread"))
            .collect()
    });
    let mut failures = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        for (l, line) in lines.iter().enumerate() {
            let (row, bad) = &results[l][i];
            let mark = if bad.is_empty() { "agree" } else { "DISAGREE" };
            eprintln!("| {} | {} | {row} | {mark} |", input.name, line.version);
            for b in bad {
                failures.push(format!(
                    "{} on containerd {}: {b}",
                    input.name, line.version
                ));
            }
        }
    }
    eprintln!(
        "matrix: {} cells in {:?}",
        inputs.len() * lines.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What nodeadm v1.0.20 writes is what the agent projects: the same
/// template for 1.x and 2.x.
#[test]
fn the_projection_is_nodeadms_template() {
    assert_eq!(
        hybrid_node_agent::containerd::nodeadm::main_config(
            "/etc/containerd/config.d/*.toml",
            SANDBOX
        ),
        nodeadm_template(SANDBOX)
    );
}

/// `render`'s corrected containerd.config for a NodeConfig carrying `toml`,
/// on a host whose live main config is nodeadm's (so the sandbox image is
/// known).
fn rendered(toml: &str) -> String {
    let root = root_from_fixture("empty");
    let dest = root.path().join(NODECONFIG);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let base = std::fs::read_to_string(fixture("nodeconfig/harbor-ssm.yaml")).expect("read");
    std::fs::write(&dest, with_containerd_config(&base, toml)).expect("write");
    let main = root.path().join("etc/containerd/config.toml");
    std::fs::create_dir_all(main.parent().expect("parent")).expect("mkdir");
    std::fs::write(&main, nodeadm_template(SANDBOX)).expect("write");
    let out = run_agent(&[
        "--root",
        root.path().to_str().expect("utf-8"),
        "render",
        "--nodeconfig",
        dest.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "render: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split("\n# --- ")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with("# "))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `render`'s correction of every input, loaded by each line's daemon:
/// it starts, its CRI plugins load, and nodeadm's config_path,
/// SystemdCgroup and sandbox image are in force.
#[test]
fn render_corrections_load_on_each_line_with_nodeadms_settings() {
    let Some(lines) = lines() else {
        return;
    };
    let inputs = inputs();
    let fixed: Vec<String> = inputs.iter().map(|i| rendered(&i.toml)).collect();
    let results: Vec<Vec<Truth>> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .iter()
            .map(|line| {
                s.spawn(|| {
                    fixed
                        .iter()
                        .map(|f| truth(line, Some(f)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("render thread"))
            .collect()
    });
    let mut failures = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        for (l, line) in lines.iter().enumerate() {
            let t = &results[l][i];
            // A sandbox image the input sets itself is the user's choice.
            let own_sandbox = input
                .marker
                .is_some_and(|m| t.sandbox_image.as_deref() == Some(m));
            let nodeadms = t.config_path.as_deref().is_some_and(|p| !p.is_empty())
                && t.systemd_cgroup == Some(true)
                && (t.sandbox_image.as_deref() == Some(SANDBOX) || own_sandbox);
            let ok = t.loads && t.cri_ok() && nodeadms;
            eprintln!(
                "| render of {} | {} | {} |",
                input.name,
                line.version,
                if ok {
                    "loads, nodeadm's settings intact".to_owned()
                } else {
                    format!("{t:?}")
                }
            );
            if !ok {
                failures.push(format!(
                    "{} on {}: loads {} {:?}, CRI {:?}, config_path {:?}, SystemdCgroup {:?}, sandbox {:?}\n{}",
                    input.name,
                    line.version,
                    t.loads,
                    t.error,
                    t.cri_plugins,
                    t.config_path,
                    t.systemd_cgroup,
                    t.sandbox_image,
                    fixed[i]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

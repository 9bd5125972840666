//! The containerd lines a hybrid node runs, as real daemons: Debian 12's
//! 1.6 (`/usr/bin/containerd`, installed by `.ci/run`) and 1.7 (trixie) and
//! 2.x (sid) unpacked by `scripts/containerd-versions.sh` into `target/`.
//! Each daemon runs as root without systemd, with nodeadm's main config and
//! one import, and a private root, state and socket under a temp dir.

use crate::{in_ci, repo_root, require_tool, KillOnDrop};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One containerd line: its binaries and its version.
#[derive(Debug, Clone)]
pub struct Line {
    /// `1.6`, `1.7`, `2.1`: how the matrix names it.
    pub name: String,
    /// `1.7.24` (from `containerd --version`).
    pub version: String,
    pub containerd: PathBuf,
    pub ctr: PathBuf,
}

impl Line {
    fn of(containerd: PathBuf, ctr: PathBuf) -> Line {
        let out = Command::new(&containerd)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", containerd.display()));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let version = hybrid_node_agent::containerd::effective::Version::from_version_output(&text)
            .unwrap_or_else(|| panic!("no version in {text:?}"))
            .to_string();
        let name = version
            .rsplit_once('.')
            .map(|(n, _)| n.to_owned())
            .unwrap_or_default();
        Line {
            name,
            version,
            containerd,
            ctr,
        }
    }

    pub fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

/// The three lines, or `None` (skip) outside CI when something is missing:
/// root, Debian's containerd, or the cache (filled here, from the mirror in
/// the apt sources, when it is not there yet).
pub fn lines() -> Option<Vec<Line>> {
    let (Some(containerd), Some(ctr)) = (require_tool("containerd"), require_tool("ctr")) else {
        return None;
    };
    if !nix::unistd::geteuid().is_root() {
        assert!(
            !in_ci(),
            "the containerd matrix needs root (it starts containerd daemons)"
        );
        eprintln!("SKIP: the containerd matrix needs root");
        return None;
    }
    let out = Command::new(repo_root().join("scripts/containerd-versions.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/containerd-versions.sh");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!in_ci(), "scripts/containerd-versions.sh failed: {err}");
        eprintln!("SKIP: scripts/containerd-versions.sh failed: {err}");
        return None;
    }
    let mut lines = vec![Line::of(containerd, ctr)];
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((_, bin)) = l.split_once(' ') else {
            continue;
        };
        let bin = Path::new(bin.trim());
        lines.push(Line::of(bin.join("containerd"), bin.join("ctr")));
    }
    Some(lines)
}

/// nodeadm v1.0.20's main config template (committed verbatim) with its
/// sandbox image filled in.
pub fn nodeadm_template(sandbox_image: &str) -> String {
    let t = std::fs::read_to_string(crate::fixture(
        "containerd/nodeadm-v1.0.20-config.template.toml",
    ))
    .expect("read the nodeadm template");
    t.replace("{{.SandboxImage}}", sandbox_image)
}

/// The sandbox image the matrix fills into nodeadm's template.
pub const SANDBOX: &str = "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.5";

/// nodeadm's main config pointed at `dir`: only `root`, `state`, the socket
/// and `imports` differ from what nodeadm writes; NRI and the opt plugin
/// (which would touch /var/run/nri and /opt) are kept inside `dir` by
/// tables of their own, which no input touches.
pub fn private_main(dir: &Path) -> String {
    let d = dir.display();
    let main = nodeadm_template(SANDBOX)
        .replace("\"/var/lib/containerd\"", &format!("\"{d}/root\""))
        .replace("\"/run/containerd\"", &format!("\"{d}/state\""))
        .replace(
            "\"/run/containerd/containerd.sock\"",
            &format!("\"{d}/c.sock\""),
        )
        .replace(
            "\"/etc/containerd/config.d/*.toml\"",
            &format!("\"{d}/config.d/*.toml\""),
        );
    format!(
        "{main}  [plugins.\"io.containerd.nri.v1.nri\"]\n    disable = true\n    socket_path = \"{d}/nri.sock\"\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = \"{d}/opt\"\n"
    )
}

/// What a containerd really did with nodeadm's main config and one import.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// The daemon came up and answered on its socket.
    pub loads: bool,
    /// Its last error line when it did not (without the `containerd: ` prefix).
    pub error: Option<String>,
    /// `ctr plugins ls`: (type.id, status) of every CRI plugin.
    pub cri_plugins: Vec<(String, String)>,
    /// "failed to load plugin" errors from the daemon log.
    pub plugin_errors: Vec<String>,
    /// From `config dump` (when it loads).
    pub dump: String,
    pub dump_version: i64,
    pub config_path: Option<String>,
    pub systemd_cgroup: Option<bool>,
    pub sandbox_image: Option<String>,
    pub default_runtime: Option<String>,
}

impl Truth {
    /// Every CRI plugin loaded.
    pub fn cri_ok(&self) -> bool {
        !self.cri_plugins.is_empty() && self.cri_plugins.iter().all(|(_, s)| s == "ok")
    }
}

/// A running daemon of `line` in `dir`, killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub process: KillOnDrop,
    pub sock: PathBuf,
    pub log: PathBuf,
    pub main: PathBuf,
}

/// Lays out `dir` (main config, `config.d/00-nodeadm.toml` = `import`) and
/// starts the daemon; `Err(last error line)` when it does not come up.
pub fn start(line: &Line, dir: &Path, import: Option<&str>) -> Result<Daemon, String> {
    std::fs::create_dir_all(dir.join("config.d")).expect("mkdir");
    let sock = dir.join("c.sock");
    if let Some(import) = import {
        // An import may set nodeadm's socket again (nodeadm's own test case
        // does): it must not reach the host's.
        let import = import.replace("/run/containerd/containerd.sock", &sock.to_string_lossy());
        std::fs::write(dir.join("config.d/00-nodeadm.toml"), import).expect("write");
    }
    let main = dir.join("config.toml");
    std::fs::write(&main, private_main(dir)).expect("write");
    let log = dir.join("containerd.log");
    let mut cmd = Command::new(&line.containerd);
    cmd.arg("--config")
        .arg(&main)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    let mut process = KillOnDrop(cmd.spawn().expect("spawn containerd"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(_)) = process.0.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(last_error(&text));
        }
        if sock.exists()
            && Command::new(&line.ctr)
                .arg("--address")
                .arg(&sock)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            return Ok(Daemon {
                process,
                sock,
                log,
                main,
            });
        }
        assert!(
            Instant::now() < deadline,
            "containerd {} neither started nor exited: {}",
            line.version,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn last_error(log: &str) -> String {
    log.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("containerd: ")
        .to_owned()
}

/// Starts `line` with `import`, reads what happened, stops it.
pub fn truth(line: &Line, import: Option<&str>) -> Truth {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = Truth::default();
    let daemon = match start(line, dir.path(), import) {
        Ok(d) => d,
        Err(e) => {
            t.error = Some(e);
            return t;
        }
    };
    t.loads = true;
    let out = Command::new(&line.ctr)
        .arg("--address")
        .arg(&daemon.sock)
        .args(["plugins", "ls"])
        .output()
        .expect("ctr plugins ls");
    for row in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        if let [ty, id, _platforms, status] = cols[..] {
            let name = format!("{ty}.{id}");
            if name == "io.containerd.grpc.v1.cri" || ty == "io.containerd.cri.v1" {
                t.cri_plugins.push((name, status.to_owned()));
            }
        }
    }
    drop(daemon.process);
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    t.plugin_errors = log
        .lines()
        .filter(|l| l.contains("failed to load plugin") && l.contains("cri"))
        .map(str::to_owned)
        .collect();
    let out = Command::new(&line.containerd)
        .arg("--config")
        .arg(&daemon.main)
        .args(["config", "dump"])
        .output()
        .expect("config dump");
    assert!(
        out.status.success(),
        "containerd {} started but its dump fails: {}",
        line.version,
        String::from_utf8_lossy(&out.stderr)
    );
    t.dump = String::from_utf8_lossy(&out.stdout).into_owned();
    read_dump(&mut t);
    t
}

/// The CRI settings in a dump, by its schema version (2: one CRI plugin;
/// 3: images and runtime plugins).
fn read_dump(t: &mut Truth) {
    let doc: toml_edit::DocumentMut = t.dump.parse().expect("the dump is TOML");
    let get = |path: &[&str]| -> Option<toml_edit::Item> {
        let mut cur = doc.as_item();
        for k in path {
            cur = cur.get(k)?;
        }
        Some(cur.clone())
    };
    t.dump_version = get(&["version"]).and_then(|v| v.as_integer()).unwrap_or(1);
    let (images, runtime) = if t.dump_version >= 3 {
        (
            "io.containerd.cri.v1.images",
            "io.containerd.cri.v1.runtime",
        )
    } else {
        ("io.containerd.grpc.v1.cri", "io.containerd.grpc.v1.cri")
    };
    t.config_path = get(&["plugins", images, "registry", "config_path"])
        .and_then(|v| v.as_str().map(str::to_owned));
    t.sandbox_image = if t.dump_version >= 3 {
        get(&["plugins", images, "pinned_images", "sandbox"])
    } else {
        get(&["plugins", images, "sandbox_image"])
    }
    .and_then(|v| v.as_str().map(str::to_owned));
    let rt = get(&["plugins", runtime, "containerd", "default_runtime_name"])
        .and_then(|v| v.as_str().map(str::to_owned));
    t.systemd_cgroup = rt.as_deref().and_then(|name| {
        get(&[
            "plugins",
            runtime,
            "containerd",
            "runtimes",
            name,
            "options",
            "SystemdCgroup",
        ])
        .and_then(|v| v.as_bool())
    });
    t.default_runtime = rt;
}

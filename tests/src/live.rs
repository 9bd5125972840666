//! A booted systemd host for the live suite: the Debian 12 root that
//! `scripts/live-host.sh` prepares, booted with `systemd-nspawn` on a
//! throw-away overlay (or copy) of it, commands run inside with `nsenter`.
//!
//! The container shares this machine's network namespace (no
//! `--private-network`): its ports are reachable on loopback, and its
//! network probes see the same interfaces. It is powered off (PID 1 killed)
//! when the [`BootedHost`] is dropped.

use crate::{in_ci, repo_root, require_tool};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where [`BootedHost::install_agent_binary`] puts the agent.
pub const AGENT_IN_HOST: &str = "/usr/local/sbin/hybrid-node-agent";

/// What a live test needs on this machine; `None` (skip) outside CI when
/// something is missing, a panic under CI.
pub fn prerequisites() -> Option<()> {
    for tool in [
        "systemd-nspawn",
        "debootstrap",
        "nsenter",
        "dpkg-deb",
        "apt-get",
    ] {
        require_tool(tool)?;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(!in_ci(), "the live systemd suite needs root");
        eprintln!("SKIP: the live systemd suite needs root");
        return None;
    }
    Some(())
}

/// The cache `scripts/live-host.sh` fills (`HNA_LIVE_CACHE` or
/// `target/live`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HNA_LIVE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/live"))
}

/// Runs `scripts/live-host.sh` (cached: instant once done) and returns the
/// prepared root.
pub fn prepared_root() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/live-host.sh"))
        .arg(cache_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/live-host.sh");
    assert!(
        out.status.success(),
        "scripts/live-host.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The containerd and runc packages `scripts/live-host.sh` downloaded.
pub fn containerd_debs() -> Vec<PathBuf> {
    let mut debs: Vec<PathBuf> = std::fs::read_dir(cache_dir().join("debs"))
        .expect("debs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    assert!(debs.len() >= 2, "containerd and runc debs: {debs:?}");
    debs
}

/// A Debian 12 host booted with systemd as its PID 1.
#[derive(Debug)]
pub struct BootedHost {
    nspawn: Child,
    /// The container's PID 1, as this machine numbers it.
    pub pid1: i32,
    /// The container's `/` as this machine sees it.
    pub root: PathBuf,
    overlay: bool,
    _dir: tempfile::TempDir,
}

impl BootedHost {
    /// Boots a fresh copy of `base` and waits until systemd has finished
    /// starting the system.
    pub fn boot(base: &Path) -> BootedHost {
        let dir = tempfile::Builder::new()
            .prefix("hna-live-")
            .tempdir_in(cache_dir())
            .expect("tempdir");
        let (upper, work, root) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("root"),
        );
        for d in [&upper, &work, &root] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        // An overlay costs nothing; where overlayfs is not allowed, a copy.
        let overlay = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                base.display(),
                upper.display(),
                work.display()
            ))
            .arg(&root)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !overlay {
            let ok = Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(format!("{}/.", base.display()))
                .arg(&root)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot copy the live root");
        }
        let log = std::fs::File::create(dir.path().join("console.log")).expect("log");
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--console=read-only",
            ])
            .arg("--machine=hybrid-live")
            .arg("-D")
            .arg(&root)
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start systemd-nspawn");
        let mut host = BootedHost {
            pid1: 0,
            nspawn,
            root,
            overlay,
            _dir: dir,
        };
        host.pid1 = host.wait_for_pid1();
        // systemctl cannot ask until PID 1 has its private socket up.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut state = String::new();
        while Instant::now() < deadline {
            let out = host.sh("systemctl is-system-running --wait");
            state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state == "running" || state == "degraded" {
                return host;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the container did not boot: {state:?}; {}", host.console());
    }

    fn wait_for_pid1(&mut self) -> i32 {
        let parent = self.nspawn.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn exited: {s}; {}", self.console());
            }
            let children =
                std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
                    .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                let pid: i32 = pid.parse().expect("pid");
                // nspawn's child execs systemd once the namespaces are up.
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the container's systemd did not start; {}", self.console());
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("console.log")).unwrap_or_default()
    }

    /// Runs `script` with `/bin/sh` inside the container, as root, with a
    /// clean environment.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "--"])
            .args(["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
            .args(["LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"])
            .args(["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// [`BootedHost::sh`] that must succeed; its stdout.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A path inside the container, as this machine sees it.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Writes a file inside the container (by rename, as editors do).
    pub fn write(&self, inside: &str, contents: &[u8]) {
        let path = self.path(inside);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let tmp = path.with_extension("hna-tmp");
        std::fs::write(&tmp, contents).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
    }

    /// Writes a file inside the container with `mode` (scripts 0755, keys
    /// 0600).
    pub fn write_mode(&self, inside: &str, contents: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        self.write(inside, contents);
        std::fs::set_permissions(self.path(inside), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }

    /// Copies this build's agent binary into the container as
    /// [`AGENT_IN_HOST`], for tests that run `hybrid-node-agent check` inside
    /// (with the container's own `systemctl`) without the package.
    pub fn install_agent_binary(&self) {
        let to = self.path(AGENT_IN_HOST);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(crate::agent_bin(), &to).expect("copy the agent binary in");
    }

    /// Takes `/etc/resolv.conf` away (nspawn copies or binds this machine's
    /// in): the `dns` domain's host checks are then n/a and ask nothing,
    /// so a NodeConfig's region sends no query off this machine.
    pub fn without_resolver(&self) {
        self.ok("if mountpoint -q /etc/resolv.conf; then umount /etc/resolv.conf; fi; rm -f /etc/resolv.conf");
    }

    /// `hybrid-node-agent check --output json` run inside the container as
    /// root: the report and the exit code (0 pass, 1 warn, 2 fail).
    pub fn check_json(&self) -> (serde_json::Value, i32) {
        let out = self.sh(&format!("{AGENT_IN_HOST} check --output json"));
        let text = String::from_utf8_lossy(&out.stdout);
        let report = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "check printed no JSON ({e}; {}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (report, out.status.code().unwrap_or(-1))
    }

    /// `systemctl show -p PROP --value UNIT`.
    pub fn show(&self, unit: &str, prop: &str) -> String {
        self.ok(&format!("systemctl show -p {prop} --value {unit}"))
    }
}

impl Drop for BootedHost {
    fn drop(&mut self) {
        // Killing a PID namespace's init kills everything in it.
        if self.pid1 > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid1),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        if self.overlay {
            let _ = Command::new("umount").arg("-l").arg(&self.root).status();
        }
    }
}

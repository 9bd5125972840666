//! Harness for the black-box tests in `tests/tests/`: find (or build) the
//! agent binary, start it against a temp root, talk HTTP to it, and require
//! the real external tools (`promtool`, `containerd`, …).
//!
//! Under `CI=true` a missing tool fails the test; elsewhere it is skipped
//! with a message on stderr.

pub mod apiserver;
pub mod netns;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

pub mod certs;
pub mod containerd;
pub mod live;
pub mod oci;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Test data committed under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The `hybrid-node-agent` binary of this build: `$HYBRID_NODE_AGENT_BIN`, or
/// the one in this test binary's target directory, built first if missing.
pub fn agent_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("HYBRID_NODE_AGENT_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test-binary>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps");
        let bin = profile_dir.join("hybrid-node-agent");
        if !bin.exists() {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "build",
                    "-p",
                    "hybrid-node-agent",
                    "--bin",
                    "hybrid-node-agent",
                ])
                .current_dir(repo_root())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build of the agent failed");
        }
        bin
    })
    .clone()
}

/// The scripted NVML library (tests/nvml-scripted) of this build, beside
/// the agent binary; built first if missing (`cargo build --workspace`
/// builds it too).
pub fn nvml_scripted_lib() -> PathBuf {
    let lib = agent_bin()
        .parent()
        .map(|d| d.join("libnvml_scripted.so"))
        .expect("the agent binary has a directory");
    if !lib.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "nvml-scripted"])
            .current_dir(repo_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of nvml-scripted failed");
    }
    lib
}

/// Whether missing external tools must fail rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds `tool` on PATH (or at an absolute path). Under CI a missing tool
/// panics; elsewhere the caller gets `None` and should return early.
pub fn require_tool(tool: &str) -> Option<PathBuf> {
    let found = if tool.contains('/') {
        Some(PathBuf::from(tool)).filter(|p| p.exists())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
    };
    if found.is_none() {
        assert!(
            !in_ci(),
            "{tool} is required under CI=true but was not found (.ci/run installs it)"
        );
        eprintln!("SKIP: {tool} not found; install it to run this test");
    }
    found
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Runs the agent to completion with `args`.
pub fn run_agent(args: &[&str]) -> Output {
    Command::new(agent_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run agent")
}

/// A running `hybrid-node-agent run`, killed when dropped.
#[derive(Debug)]
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Agent {
    /// Starts `run --listen 127.0.0.1:<free port>` with extra args and
    /// environment; stderr goes to `log` if given.
    pub fn start(args: &[&str], envs: &[(&str, &str)], log: Option<&Path>) -> Agent {
        Agent::start_via(&[], &agent_bin(), args, envs, log)
    }

    /// [`Agent::start`] of `bin` through a wrapper command (`setpriv …`).
    pub fn start_via(
        wrapper: &[&str],
        bin: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Agent {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listen = addr.to_string();
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(args)
            .args(["run", "--listen", &listen])
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        match log {
            Some(path) => {
                let f = std::fs::File::create(path).expect("create log");
                cmd.stderr(f);
            }
            None => {
                cmd.stderr(Stdio::null());
            }
        }
        let child = cmd.spawn().expect("spawn agent");
        Agent { child, addr }
    }

    /// Waits until `/healthz` answers.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("agent exited early: {status}");
            }
            if http_get(self.addr, "/healthz", &[]).is_ok_and(|r| r.status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent did not start serving on {}", self.addr);
    }

    pub fn signal(&self, sig: Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, sig).expect("send signal");
    }

    /// `(status, summary)` of check `domain`/`id` in `/status` now.
    pub fn check(&self, domain: &str, id: &str) -> Option<(String, String)> {
        status_check(&http_get(self.addr, "/status", &[]).ok()?.body, domain, id)
    }

    /// Waits up to `timeout` for check `domain`/`id` to satisfy `want`;
    /// panics with what it last said.
    pub fn wait_check(
        &self,
        domain: &str,
        id: &str,
        timeout: Duration,
        want: impl Fn(&str, &str) -> bool,
    ) -> (String, String) {
        let mut last = None;
        eventually(timeout, || {
            last = self.check(domain, id);
            last.clone().filter(|(s, m)| want(s, m))
        })
        .unwrap_or_else(|| {
            panic!("{domain}/{id} never as expected within {timeout:?}; last: {last:?}")
        })
    }

    pub fn metrics(&self) -> String {
        let r = http_get(self.addr, "/metrics", &[]).expect("scrape /metrics");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// A minimal HTTP/1.0 GET.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    http_request(addr, "GET", path, headers)
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The value of the first sample in `text` whose line starts with `series`
/// (name and labels exactly as exposed).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A fake kubelet: answers `GET /healthz` with `ok` until dropped.
#[derive(Debug)]
pub struct FakeKubelet {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeKubelet {
    pub fn start() -> FakeKubelet {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut buf = [0u8; 1024];
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeKubelet { addr, stop }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies a committed fixture tree into a fresh temp dir (tests must not
/// change committed files) and returns it.
pub fn root_from_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = fixture(&format!("roots/{name}"));
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success(), "copy fixture {name}");
    dir
}

/// A CA and a server certificate it issued for `harbor.example.internal`
/// and 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub server_pem: String,
    pub server_key: String,
}

pub fn pki(name: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let mut cap = CertificateParams::new(Vec::<String>::new()).expect("params");
    cap.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    cap.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    cap.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_key = KeyPair::generate().expect("key");
    let ca = cap.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(cap, ca_key);
    let mut sp =
        CertificateParams::new(vec!["harbor.example.internal".to_owned()]).expect("params");
    sp.subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    sp.distinguished_name.push(DnType::CommonName, "registry");
    let server_key = KeyPair::generate().expect("key");
    let server = sp.signed_by(&server_key, &issuer).expect("server cert");
    Pki {
        ca_pem: ca.pem(),
        server_pem: server.pem(),
        server_key: server_key.serialize_pem(),
    }
}

/// A CA named `name` and a server certificate it issued for the DNS
/// names `sans` (the first is the subject).
pub fn pki_for(name: &str, sans: &[&str]) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut cap = CertificateParams::new(Vec::<String>::new()).expect("params");
    cap.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    cap.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    cap.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_key = KeyPair::generate().expect("key");
    let ca = cap.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(cap, ca_key);
    let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut sp = CertificateParams::new(names).expect("params");
    sp.distinguished_name
        .push(DnType::CommonName, sans.first().copied().unwrap_or(name));
    let server_key = KeyPair::generate().expect("key");
    let server = sp.signed_by(&server_key, &issuer).expect("server cert");
    Pki {
        ca_pem: ca.pem(),
        server_pem: server.pem(),
        server_key: server_key.serialize_pem(),
    }
}

/// `openssl s_server -www` on 127.0.0.1: answers every GET with 200 over
/// TLS with `pki`'s server certificate. Killed when dropped.
#[derive(Debug)]
pub struct TlsServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    pub fn start(openssl: &Path, pki: &Pki) -> TlsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        std::fs::write(&cert, &pki.server_pem).expect("write");
        std::fs::write(&key, &pki.server_key).expect("write");
        let port = free_port();
        let child = Command::new(openssl)
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let up = eventually(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "openssl s_server did not start");
        TlsServer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed (and reaped) when dropped: registries, servers,
/// responders started by a test.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Spawns `cmd` with its output discarded; `what` names it in a panic.
    pub fn spawn(cmd: &mut Command, what: &str) -> KillOnDrop {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        KillOnDrop(child)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(status, summary)` of check `domain`/`id` in a `/status` document.
pub fn status_check(body: &str, domain: &str, id: &str) -> Option<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(body).ok()?;
    let c = doc["domains"][domain]["checks"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)?
        .clone();
    Some((
        c["status"].as_str()?.to_owned(),
        c["summary"].as_str()?.to_owned(),
    ))
}

/// A root whose /etc/os-release says RHEL, with a fake `update-ca-trust`
/// in `<root>/fakebin` (put first on the agent's `path`).
#[derive(Debug)]
pub struct RhelRoot {
    pub dir: tempfile::TempDir,
    pub tool: PathBuf,
    /// Where the recording tool writes its arguments, one call a line.
    pub calls: PathBuf,
    pub path: String,
}

impl RhelRoot {
    pub fn new() -> RhelRoot {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).expect("mkdir");
        std::fs::write(
            r.join("etc/os-release"),
            "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\n",
        )
        .expect("write");
        let bin = r.join("fakebin");
        std::fs::create_dir(&bin).expect("mkdir");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let root = RhelRoot {
            tool: bin.join("update-ca-trust"),
            calls: r.join("calls.log"),
            path,
            dir,
        };
        root.install_tool(&root.recording_tool());
        root
    }

    /// A tool that appends its arguments to `calls` and, like the real
    /// one, builds the bundle from the anchors.
    pub fn recording_tool(&self) -> String {
        let r = self.dir.path().display();
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nmkdir -p {r}/etc/pki/tls/certs\ncat {r}/etc/pki/ca-trust/source/anchors/*.pem > {r}/etc/pki/tls/certs/ca-bundle.crt 2>/dev/null\nexit 0\n",
            self.calls.display()
        )
    }

    /// Replaces the tool at once (rename), with `script`.
    pub fn install_tool(&self, script: &str) {
        let tmp = self.tool.with_file_name(".tool");
        std::fs::write(&tmp, script).expect("write tool");
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        std::fs::rename(&tmp, &self.tool).expect("install tool");
    }
}

impl Default for RhelRoot {
    fn default() -> Self {
        RhelRoot::new()
    }
}

/// The report a `check -o json` / `apply -o json` run printed; a run that
/// printed none fails the test with what it wrote to stdout and stderr.
pub fn json_report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): exit {}, stdout {:?}, stderr {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `(status, summary)` of check `domain`/`id` in a `check -o json` report.
pub fn check_in<'a>(report: &'a serde_json::Value, domain: &str, id: &str) -> (&'a str, &'a str) {
    let c = report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["domain"] == domain && c["id"] == id))
        .unwrap_or_else(|| panic!("no {domain}/{id} in {report:#}"));
    (
        c["status"].as_str().unwrap_or(""),
        c["summary"].as_str().unwrap_or(""),
    )
}

/// `promtool check metrics` on `scrape`: its report (empty when it finds
/// no problem), or `None` where promtool is missing outside CI. Panics when
/// promtool rejects the exposition outright.
pub fn promtool_check_metrics(scrape: &str) -> Option<String> {
    let promtool = require_tool("promtool")?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {report}\n---\n{scrape}");
    Some(report)
}

/// The package `scripts/package.sh` built under `target/<dir>` (`debian`
/// `deb`, `generate-rpm` `rpm`), if there is one built after the last
/// change to what it ships (the agent's sources, the unit, the packaging
/// files): a stale package would test yesterday's agent. Missing or stale
/// fails under CI and skips with the reason elsewhere.
pub fn built_package(dir: &str, ext: &str) -> Option<PathBuf> {
    let found = std::fs::read_dir(repo_root().join("target").join(dir))
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == ext))
        });
    let Some(package) = found else {
        assert!(
            !in_ci(),
            "no .{ext} under target/{dir}: scripts/package.sh must run first"
        );
        eprintln!("SKIP: no .{ext} package; run scripts/package.sh");
        return None;
    };
    let built = std::fs::metadata(&package).and_then(|m| m.modified()).ok();
    let newest_source = ["agent/src", "agent/Cargo.toml", "systemd", "packaging"]
        .iter()
        .filter_map(|p| newest_mtime(&repo_root().join(p)))
        .max();
    if let (Some(built), Some(source)) = (built, newest_source) {
        if source > built {
            assert!(
                !in_ci(),
                "{} is older than the sources it ships: scripts/package.sh must run first",
                package.display()
            );
            eprintln!(
                "SKIP: {} is older than the sources; run scripts/package.sh",
                package.display()
            );
            return None;
        }
    }
    Some(package)
}

/// The latest modification time of `path` or anything below it.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest_mtime(&e.path()))
        .chain(own)
        .max()
}

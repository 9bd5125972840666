//! The agent as a Prometheus scrape target: the shipped examples pass
//! promtool, a real Prometheus scrapes it over TLS with a client
//! certificate, the web config's security holds (basic auth, mTLS, no TLS
//! 1.1), it reloads without a restart, and malformed traffic leaves it
//! serving without growing.

use hybrid_node_agent_e2e::{
    eventually, free_port, http_get, pki, repo_root, require_tool, root_from_fixture, Agent,
    KillOnDrop,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn promtool() -> Option<PathBuf> {
    require_tool("promtool")
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = repo_root().join("examples/prometheus");
    let check = ok(&Command::new(&promtool)
        .args(["check", "rules", "rules.yml"])
        .current_dir(&dir)
        .output()
        .expect("promtool"));
    // Every rule of the file is found (counted from the file, so rules
    // added on several branches merge without touching this line).
    let text = std::fs::read_to_string(dir.join("rules.yml")).expect("rules.yml");
    let rules = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("- alert:") || l.starts_with("- record:")
        })
        .count();
    assert!(rules >= 36, "{rules} rules in rules.yml");
    assert!(
        check.contains(&format!("SUCCESS: {rules} rules found")),
        "{check}"
    );
    let test = ok(&Command::new(&promtool)
        .args(["test", "rules", "rules_test.yml"])
        .current_dir(&dir)
        .output()
        .expect("promtool"));
    assert!(test.contains("SUCCESS"), "{test}");
}

#[test]
fn scrape_config_passes_promtool_check_config() {
    let Some(promtool) = promtool() else { return };
    // The example names files under /etc/prometheus; promtool checks they exist.
    let dir = tempfile::tempdir().expect("tempdir");
    let files = dir.path().join("hybrid-node-agent");
    std::fs::create_dir(&files).expect("mkdir");
    let pki = pki("scrape");
    for (name, body) in [
        ("ca.crt", pki.ca_pem.as_str()),
        ("prometheus.crt", pki.server_pem.as_str()),
        ("prometheus.key", pki.server_key.as_str()),
        ("password", "secret\n"),
    ] {
        std::fs::write(files.join(name), body).expect("write");
    }
    let src = repo_root().join("examples/prometheus");
    let scrape = std::fs::read_to_string(src.join("scrape.yml"))
        .expect("scrape.yml")
        .replace(
            "/etc/prometheus/hybrid-node-agent/",
            &format!("{}/", files.display()),
        );
    std::fs::write(dir.path().join("scrape.yml"), scrape).expect("write");
    std::fs::copy(src.join("rules.yml"), dir.path().join("rules.yml")).expect("copy");
    let out = ok(&Command::new(&promtool)
        .args(["check", "config", "scrape.yml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool"));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let Some(promtool) = promtool() else { return };
    let text = std::fs::read_to_string(repo_root().join("examples/grafana/hybrid-node.json"))
        .expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(exprs.len() >= 20, "{}", exprs.len());
    // promtool parses PromQL in recording rules; Grafana variables made concrete.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$instance", ".*")
            .replace("$__rate_interval", "5m");
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&e).expect("json")
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("dash.yml"), rules).expect("write");
    ok(&Command::new(&promtool)
        .args(["check", "rules", "dash.yml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool"));
}

/// A CA for clients and a client certificate it issued.
struct ClientPki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn client_pki() -> ClientPki {
    let mut cap = CertificateParams::new(Vec::<String>::new()).expect("params");
    cap.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    cap.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    cap.distinguished_name
        .push(DnType::CommonName, "scraper client CA");
    let ca_key = KeyPair::generate().expect("key");
    let ca = cap.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(cap, ca_key);
    let mut p = CertificateParams::new(vec!["prometheus".to_owned()]).expect("params");
    p.distinguished_name.push(DnType::CommonName, "prometheus");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &issuer).expect("client cert");
    ClientPki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Files for a TLS agent: server cert/key, client CA, and the PEMs a client uses.
struct TlsSetup {
    dir: tempfile::TempDir,
}

impl TlsSetup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = pki("web");
        let client = client_pki();
        for (name, body) in [
            ("server.crt", &server.server_pem),
            ("server.key", &server.server_key),
            ("server-ca.crt", &server.ca_pem),
            ("client-ca.crt", &client.ca_pem),
            ("client.crt", &client.cert_pem),
            ("client.key", &client.key_pem),
        ] {
            std::fs::write(dir.path().join(name), body).expect("write");
        }
        TlsSetup { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// Writes web.yml (by rename, as config tools do) and returns its path.
    fn web(&self, body: &str) -> String {
        let tmp = self.dir.path().join("web.yml.tmp");
        std::fs::write(&tmp, body).expect("write");
        std::fs::rename(&tmp, self.dir.path().join("web.yml")).expect("rename");
        self.path("web.yml")
    }

    fn start_agent(&self, web: &str) -> Agent {
        let root = root_from_fixture("installed");
        let cfg = self.dir.path().join("agent.toml");
        std::fs::write(&cfg, format!("[web]\nconfig_file = \"{web}\"\n")).expect("write");
        let root_path = root.path().to_string_lossy().into_owned();
        std::mem::forget(root);
        Agent::start(
            &[
                "--root",
                &root_path,
                "--config",
                cfg.to_str().expect("utf-8"),
            ],
            &[],
            None,
        )
    }
}

fn curl(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn wait_https(agent: &Agent, extra: &[&str], ca: &str) {
    let url = format!("https://127.0.0.1:{}/healthz", agent.addr.port());
    let up = eventually(Duration::from_secs(15), || {
        let mut args = vec!["--cacert", ca];
        args.extend_from_slice(extra);
        args.push(&url);
        // Any HTTP answer (401 with basic auth) means TLS is served.
        let (code, out) = curl(&args);
        (code == Some(0) && !out.starts_with("000")).then_some(())
    });
    assert!(up.is_some(), "agent did not serve HTTPS");
}

#[test]
fn basic_auth_mtls_and_old_tls_are_enforced_and_reloaded() {
    let (Some(_), Some(openssl)) = (require_tool("curl"), require_tool("openssl")) else {
        return;
    };
    let t = TlsSetup::new();
    let hash = bcrypt::hash("right-password", 4).expect("hash");
    let web = t.web(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: client-ca.crt\n  client_auth_type: RequireAndVerifyClientCert\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prometheus: {hash}\n"
    ));
    let agent = t.start_agent(&web);
    let ca = t.path("server-ca.crt");
    let (cert, key) = (t.path("client.crt"), t.path("client.key"));
    let client = ["--cert", cert.as_str(), "--key", key.as_str()];
    wait_https(&agent, &client, &ca);
    let url = format!("https://127.0.0.1:{}/metrics", agent.addr.port());
    let authed = |user_pass: &str| {
        curl(&[
            "--cacert", &ca, "--cert", &cert, "--key", &key, "-u", user_pass, &url,
        ])
    };

    // Right password → 200; wrong or none → 401.
    let (_, out) = authed("prometheus:right-password");
    assert!(out.starts_with("200"), "{out}");
    let (_, out) = authed("prometheus:wrong");
    assert!(out.starts_with("401"), "{out}");
    let (_, out) = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]);
    assert!(out.starts_with("401"), "{out}");
    // The configured header is sent.
    let head = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cacert",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-u",
            "prometheus:right-password",
            &url,
        ])
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&head.stdout)
        .to_lowercase()
        .contains("x-content-type-options: nosniff"));

    // No client certificate → the handshake is refused.
    let (code, out) = curl(&["--cacert", &ca, "-u", "prometheus:right-password", &url]);
    assert_ne!(code, Some(0), "served without a client certificate: {out}");
    assert!(out.starts_with("000"), "{out}");

    // A TLS 1.1 client is refused (the client is allowed to offer 1.1);
    // the same client with TLS 1.2 and its certificate gets through.
    let s_client = |version: &str| {
        let s = Command::new(&openssl)
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", agent.addr.port()),
                version,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
            ])
            .args(["-cert", &cert, "-key", &key, "-CAfile", &ca])
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        (
            s.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&s.stdout),
                String::from_utf8_lossy(&s.stderr)
            ),
        )
    };
    let (ok11, out11) = s_client("-tls1_1");
    assert!(
        !ok11 && out11.contains("Cipher is (NONE)"),
        "TLS 1.1 handshake succeeded: {out11}"
    );
    assert!(out11.contains("alert"), "{out11}");
    let (ok12, out12) = s_client("-tls1_2");
    assert!(
        ok12 && out12.contains("Protocol  : TLSv1.2") && !out12.contains("Cipher is (NONE)"),
        "{out12}"
    );

    // Reload without restart: a new password works within the poll period.
    let hash2 = bcrypt::hash("new-password", 4).expect("hash");
    t.web(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: client-ca.crt\n  client_auth_type: RequireAndVerifyClientCert\nbasic_auth_users:\n  prometheus: {hash2}\n"
    ));
    let reloaded = eventually(Duration::from_secs(10), || {
        let (_, out) = authed("prometheus:new-password");
        out.starts_with("200").then_some(())
    });
    assert!(reloaded.is_some(), "new web config not applied");

    // An invalid web config is rejected; the previous one stays in force.
    t.web("tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n");
    std::thread::sleep(Duration::from_secs(3));
    let (_, out) = authed("prometheus:new-password");
    assert!(out.starts_with("200"), "{out}");
    let metrics = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-u",
            "prometheus:new-password",
            &url,
        ])
        .output()
        .expect("curl");
    let m = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        m.contains("hybrid_node_agent_web_config_last_reload_successful 0"),
        "{m}"
    );
    assert!(
        m.contains("hybrid_node_agent_web_config_reloads_total{result=\"failure\"} 1"),
        "{m}"
    );
    drop(agent);
}

#[test]
fn real_prometheus_scrapes_the_agent_over_mtls() {
    let (Some(prometheus), Some(_)) = (require_tool("prometheus"), require_tool("curl")) else {
        return;
    };
    let t = TlsSetup::new();
    let web = t.web("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: client-ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS12\n");
    let agent = t.start_agent(&web);
    let ca = t.path("server-ca.crt");
    let (cert, key) = (t.path("client.crt"), t.path("client.key"));
    wait_https(&agent, &["--cert", &cert, "--key", &key], &ca);

    let prom_port = free_port();
    let data = t.dir.path().join("tsdb");
    let cfg = t.dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: hybrid-node-agent\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n      cert_file: {cert}\n      key_file: {key}\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            agent.addr.port()
        ),
    )
    .expect("write");
    let _prom = KillOnDrop::spawn(
        Command::new(prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn"),
        "start prometheus",
    );
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], prom_port));
    let query = |q: &str| -> Option<serde_json::Value> {
        let r = http_get(api, &format!("/api/v1/query?query={q}"), &[]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["result"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|a| a[0].clone())
    };
    let up = eventually(Duration::from_secs(30), || {
        query("up").filter(|r| r["value"][1] == "1")
    });
    assert!(
        up.is_some(),
        "Prometheus never saw up == 1: {:?}",
        query("up")
    );
    let info = eventually(Duration::from_secs(10), || query("hybrid_node_agent_info"));
    let info = info.expect("hybrid_node_agent_info stored");
    assert_eq!(info["metric"]["version"], env!("CARGO_PKG_VERSION"));
    let phase = eventually(Duration::from_secs(10), || {
        query("hybrid_node_lifecycle_phase%3D%3D1")
    })
    .expect("phase");
    assert_eq!(phase["metric"]["phase"], "installed");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Sends `bytes`, half-closes, reads whatever comes back (bounded).
fn poke(addr: std::net::SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

#[test]
fn ten_thousand_malformed_requests_leave_it_serving_without_growth() {
    let root = root_from_fixture("installed");
    let mut agent = Agent::start(&["--root", root.path().to_str().expect("utf-8")], &[], None);
    agent.wait_ready();
    let addr = agent.addr;
    let pid = agent.child.id();
    // Warm up: allocator pools, connection buffers.
    for _ in 0..500 {
        poke(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    let before = rss_kib(pid);

    // Slow writers in the background: one byte every 100 ms.
    let slow: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                if let Ok(mut s) = TcpStream::connect(addr) {
                    for b in b"GET /metrics HTTP/1.1\r\nHost: slow\r\n".iter().take(20) {
                        if s.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();

    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let started = Instant::now();
    let big = "X".repeat(20_000);
    for i in 0..10_000u64 {
        let request: Vec<u8> = match i % 10 {
            0 => (0..(next() % 512 + 1))
                .map(|_| (next() & 0xff) as u8)
                .collect(),
            1 => b"GET /metr".to_vec(),
            2 => format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").into_bytes(),
            3 => b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            4 => format!("GET /nope/{} HTTP/1.1\r\nHost: x\r\n\r\n", next()).into_bytes(),
            5 => b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
            6 => b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
            7 => b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\npartial"
                .to_vec(),
            8 => b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            _ => b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n".to_vec(),
        };
        poke(addr, &request);
    }
    let elapsed = started.elapsed();
    for t in slow {
        let _ = t.join();
    }
    assert!(
        agent.child.try_wait().expect("wait").is_none(),
        "the agent died"
    );
    let r = http_get(addr, "/healthz", &[]).expect("still serving");
    assert_eq!(r.status, 200);
    assert!(http_get(addr, "/metrics", &[])
        .expect("metrics")
        .body
        .contains("hybrid_node_agent_info"));
    let after = rss_kib(pid);
    eprintln!("10000 malformed requests in {elapsed:?}; RSS {before} kB -> {after} kB");
    assert!(
        after <= before + 2048,
        "RSS grew from {before} kB to {after} kB"
    );
}

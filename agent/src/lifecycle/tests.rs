use super::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

#[derive(Debug)]
/// `true`: healthy; `false`: nothing listening.
struct FakeKubelet(bool);
impl KubeletProbe for FakeKubelet {
    fn healthz(&self) -> Result<(), HealthzError> {
        if self.0 {
            Ok(())
        } else {
            Err(HealthzError::Connect {
                addr: SocketAddr::from(([127, 0, 0, 1], 10248)),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            })
        }
    }
}

fn down() -> FakeKubelet {
    FakeKubelet(false)
}

fn touch(host: &Host, path: &str, mode: u32) {
    let p = host.path(path);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, "x").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn status_of(checks: &[Check], id: &str) -> Status {
    checks
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.status)
        .expect("check present")
}

#[test]
fn phases_follow_the_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(dir.path());
    let addr = SocketAddr::from(([127, 0, 0, 1], 10248));

    let e = Evidence::gather(&host, &down());
    assert_eq!(e.phase(), Phase::NotInstalled);
    let c = e.checks(addr);
    assert_eq!(status_of(&c, "nodeadm"), Status::Warn);
    assert_eq!(status_of(&c, "kubelet"), Status::NotApplicable);
    assert_eq!(status_of(&c, "joined"), Status::NotApplicable);

    // A non-executable file is not an installed binary.
    touch(&host, "/usr/local/bin/nodeadm", 0o644);
    assert_eq!(
        Evidence::gather(&host, &down()).phase(),
        Phase::NotInstalled
    );
    touch(&host, "/usr/local/bin/nodeadm", 0o755);
    let e = Evidence::gather(&host, &down());
    assert_eq!(e.phase(), Phase::Installed);
    assert_eq!(
        e.nodeadm.as_deref(),
        Some(std::path::Path::new("/usr/local/bin/nodeadm"))
    );

    touch(&host, "/etc/eks/kubelet/environment", 0o644);
    let e = Evidence::gather(&host, &down());
    assert_eq!(e.phase(), Phase::Initialized);
    let c = e.checks(addr);
    assert_eq!(status_of(&c, "kubelet"), Status::Fail);
    assert!(c.iter().any(|c| c.summary.contains("connection refused")));

    let up = FakeKubelet(true);
    let e = Evidence::gather(&host, &up);
    assert_eq!(e.phase(), Phase::KubeletRunning);
    assert_eq!(status_of(&e.checks(addr), "joined"), Status::Warn);

    touch(&host, SERVING_CERT, 0o600);
    let e = Evidence::gather(&host, &up);
    assert_eq!(e.phase(), Phase::Joined);
    let c = e.checks(addr);
    assert!(c.iter().all(|c| c.status == Status::Pass), "{c:?}");
}

#[test]
fn tracker_alone_means_installed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(dir.path());
    touch(&host, TRACKER, 0o644);
    let e = Evidence::gather(&host, &down());
    assert_eq!(e.phase(), Phase::Installed);
    assert_eq!(
        status_of(&e.checks(SocketAddr::from(([127, 0, 0, 1], 1))), "nodeadm"),
        Status::Pass
    );
}

#[test]
fn the_other_init_file_counts_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(dir.path());
    touch(&host, "/etc/kubernetes/kubelet/config.json", 0o644);
    assert_eq!(Evidence::gather(&host, &down()).phase(), Phase::Initialized);
}

fn serve_once(response: &'static str) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    addr
}

#[test]
fn http_healthz_reads_real_answers() {
    let probe = |addr| HttpHealthz {
        addr,
        timeout: Duration::from_secs(2),
    };
    let ok = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(probe(ok).healthz().is_ok());

    let bad = serve_once("HTTP/1.1 500 Internal Server Error\r\n\r\n[-]syncloop failed");
    let err = probe(bad).healthz().unwrap_err().to_string();
    assert!(err.contains("500 Internal Server Error"), "{err}");

    let odd = serve_once("HTTP/1.1 200 OK\r\n\r\nnot ok");
    let err = probe(odd).healthz().unwrap_err().to_string();
    assert!(err.contains("instead of \"ok\""), "{err}");

    // Nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let err = probe(closed).healthz().unwrap_err();
    assert!(matches!(err, HealthzError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[test]
fn domain_exports_one_phase_series_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut registry = Registry::with_prefix("hybrid_node");
    let facts = Facts::default();
    let mut d = Lifecycle::with_probe(
        &Config::default(),
        Host::new(dir.path()),
        &mut registry,
        facts.clone(),
        Box::new(down()),
    );
    let checks = d.run();
    assert_eq!(checks.len(), 4);
    assert_eq!(facts.phase(), Some(Phase::NotInstalled));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("hybrid_node_lifecycle_phase{phase=\"not_installed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hybrid_node_lifecycle_phase{phase=\"joined\"} 0"),
        "{text}"
    );
}

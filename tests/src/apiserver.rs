//! A stand-in for the cluster's API server: TLS (rustls) with a test PKI's
//! server certificate, answering every request with a fixed status and a
//! Kubernetes `Status` body, as kube-apiserver answers an anonymous
//! request (401 since Kubernetes 1.32, 403 before). Optionally listens in
//! a network namespace (the listening thread joins it with setns; the rest
//! of the test process stays where it is). Stopped when dropped. Beside
//! it, a CONNECT proxy stand-in.

use crate::Pki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug)]
pub struct ApiServer {
    pub addr: SocketAddr,
    /// Requests answered so far.
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The body kube-apiserver sends with `status`.
pub fn status_body(status: u16) -> String {
    let (reason, message) = match status {
        401 => ("Unauthorized", "Unauthorized".to_owned()),
        403 => (
            "Forbidden",
            r#"forbidden: User \"system:anonymous\" cannot get path \"/\""#.to_owned(),
        ),
        _ => ("", String::new()),
    };
    if reason.is_empty() {
        // What an open API server answers on `/`: its paths.
        return "{\"paths\":[\"/api\",\"/apis\",\"/livez\",\"/version\"]}".to_owned();
    }
    format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"{message}\",\"reason\":\"{reason}\",\"code\":{status}}}"
    )
}

impl ApiServer {
    /// Listens on `bind` (port 0: any) in `netns` (None: this namespace),
    /// answering `status`.
    pub fn start(pki: &Pki, netns: Option<&str>, bind: &str, status: u16) -> ApiServer {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pki.server_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("server certificate");
        let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).expect("server key");
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config"),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let netns = netns.map(|n| format!("/run/netns/{n}"));
        let bind = bind.to_owned();
        let (s, r) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            if let Some(path) = netns {
                let fd = std::fs::File::open(&path).expect("open netns");
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            }
            let listener = TcpListener::bind(&bind).expect("bind the API stand-in");
            listener.set_nonblocking(true).expect("nonblocking");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let body = status_body(status);
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        if serve(tcp, config.clone(), status, &body) {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("API stand-in listening");
        ApiServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

/// One connection: handshake, read the request head, answer. Whether a
/// request was answered (a client that rejects the certificate sends none).
fn serve(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    status: u16,
    body: &str,
) -> bool {
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return false;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Status",
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.write_all(answer.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
    true
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP CONNECT proxy (as a site's squid answers it): every tunnel is
/// opened to `upstream` whatever name the client asked for (the stand-ins
/// answer for all the names), and bytes are copied both ways. Records the
/// CONNECT lines it got. Optionally listens in a network namespace.
#[derive(Debug)]
pub struct ConnectProxy {
    pub addr: SocketAddr,
    pub connects: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    pub fn start(netns: Option<&str>, bind: &str, upstream: SocketAddr) -> ConnectProxy {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let netns = netns.map(|n| format!("/run/netns/{n}"));
        let bind = bind.to_owned();
        let (s, c) = (stop.clone(), connects.clone());
        let thread = std::thread::spawn(move || {
            if let Some(path) = netns {
                let fd = std::fs::File::open(&path).expect("open netns");
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            }
            let listener = TcpListener::bind(&bind).expect("bind the proxy");
            listener.set_nonblocking(true).expect("nonblocking");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            while !s.load(Ordering::Relaxed) {
                let Ok((mut client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => break,
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                c.lock().expect("lock").push(line);
                // The tunnel: each direction copied on its own thread; the
                // netns is per thread, and both sockets already exist.
                let Ok(server) =
                    std::net::TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    continue;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let (mut client, mut server) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut server);
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("proxy listening");
        ConnectProxy {
            addr,
            connects,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

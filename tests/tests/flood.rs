//! The endpoint under a connection flood, before authentication: clients
//! that pipeline requests and never read the answers, and clients that
//! open connections and say nothing. A scrape must keep succeeding while
//! either flood runs (the review reproduced both taking the endpoint down
//! with ~300 connections).
//!
//! Traffic stays on loopback, bounded in count and time.

use hybrid_node_agent_e2e::{http_get, root_from_fixture, Agent};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const FLOOD: usize = 300;

/// `FLOOD` connections, each with `requests` pipelined GETs written (as far
/// as the socket takes them) and never read.
fn pipeliners(addr: SocketAddr, requests: usize) -> Vec<TcpStream> {
    let batch = "GET /metrics HTTP/1.1\r\nHost: flood\r\n\r\n".repeat(requests);
    (0..FLOOD)
        .filter_map(|_| {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            s.set_nonblocking(true).ok()?;
            let _ = (&s).write(batch.as_bytes());
            Some(s)
        })
        .collect()
}

/// Scrapes every 250 ms for `how_long`; every scrape must answer `want`
/// within 3 s. Returns the slowest.
fn scrapes_keep_working(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    want: u16,
    how_long: Duration,
) -> Duration {
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    while start.elapsed() < how_long {
        let t = Instant::now();
        let r = http_get(addr, "/metrics", headers);
        let took = t.elapsed();
        match r {
            Ok(r) => assert_eq!(r.status, want, "scrape {n} after {:?}", start.elapsed()),
            Err(e) => panic!("scrape {n} failed after {:?}: {e}", start.elapsed()),
        }
        assert!(took < Duration::from_secs(3), "scrape {n} took {took:?}");
        slowest = slowest.max(took);
        n += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(n >= 10, "only {n} scrapes");
    slowest
}

fn agent_with(web: Option<&str>) -> (Agent, tempfile::TempDir) {
    let root = root_from_fixture("installed");
    let r = root.path().to_str().expect("utf-8").to_owned();
    let mut args = vec!["--root".to_owned(), r];
    if let Some(yaml) = web {
        let web = root.path().join("web.yml");
        std::fs::write(&web, yaml).expect("web");
        let cfg = root.path().join("agent.toml");
        std::fs::write(
            &cfg,
            format!("[web]\nconfig_file = \"{}\"\n", web.display()),
        )
        .expect("cfg");
        args.push("--config".to_owned());
        args.push(cfg.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Agent::start(&args, &[], None);
    if web.is_none() {
        agent.wait_ready();
    } else {
        // Basic auth: serving once it answers 401.
        let up = hybrid_node_agent_e2e::eventually(Duration::from_secs(15), || {
            http_get(agent.addr, "/healthz", &[])
                .ok()
                .filter(|r| r.status == 401)
        });
        assert!(up.is_some(), "the agent did not start serving");
    }
    (agent, root)
}

#[test]
fn scrapes_succeed_while_pipelining_clients_never_read() {
    let (agent, _root) = agent_with(None);
    let flood = pipeliners(agent.addr, 200);
    assert!(
        flood.len() >= FLOOD * 9 / 10,
        "flood opened {}",
        flood.len()
    );
    let slowest = scrapes_keep_working(agent.addr, &[], 200, Duration::from_secs(8));
    eprintln!("slowest scrape under the pipelining flood: {slowest:?}");
    drop(flood);
}

#[test]
fn scrapes_with_credentials_succeed_while_unauthenticated_clients_flood() {
    let hash = bcrypt::hash("scrape-password", 4).expect("hash");
    let (agent, _root) = agent_with(Some(&format!("basic_auth_users:\n  prometheus: {hash}\n")));
    let auth = "Basic cHJvbWV0aGV1czpzY3JhcGUtcGFzc3dvcmQ="; // prometheus:scrape-password
    let flood = pipeliners(agent.addr, 200);
    let slowest = scrapes_keep_working(
        agent.addr,
        &[("Authorization", auth)],
        200,
        Duration::from_secs(8),
    );
    eprintln!("slowest authenticated scrape under the flood: {slowest:?}");
    drop(flood);
}

#[test]
fn scrapes_succeed_while_idle_connections_are_reopened() {
    let (agent, _root) = agent_with(None);
    let addr = agent.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    // Keeps FLOOD idle connections open, replacing the oldest at ~50/s.
    let flooder = std::thread::spawn(move || {
        let mut open = std::collections::VecDeque::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                open.push_back(s);
            }
            if open.len() > FLOOD {
                open.pop_front();
            }
            std::thread::sleep(Duration::from_millis(if open.len() < FLOOD {
                1
            } else {
                20
            }));
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let slowest = scrapes_keep_working(addr, &[], 200, Duration::from_secs(8));
    eprintln!("slowest scrape under the idle flood: {slowest:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flooder.join().expect("flooder");
}

//! Continuous ICMP echo to one target, on its own thread: an unprivileged
//! ICMP datagram socket where `net.ipv4.ping_group_range` allows it, a raw
//! socket (CAP_NET_RAW) otherwise. RTTs use the kernel's receive timestamp
//! (SO_TIMESTAMPNS), not the thread's wake-up time.

use super::packet::{self, Icmp};
use super::stats::Series;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Which kind of socket the loop got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Datagram,
    Raw,
}

/// What the loop shares with the domain.
#[derive(Debug, Default)]
pub struct Shared {
    pub series: Mutex<Series>,
    pub requests: AtomicU64,
    pub replies: AtomicU64,
    /// RTTs not yet taken by the domain (for the histogram).
    pub fresh: Mutex<Vec<Duration>>,
    pub error: Mutex<Option<String>>,
}

/// A running echo loop; stops when dropped.
#[derive(Debug)]
pub struct EchoLoop {
    pub shared: Arc<Shared>,
    pub kind: SocketKind,
    stop: Arc<AtomicBool>,
    started: Instant,
}

impl Drop for EchoLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl EchoLoop {
    /// Time since the loop started (the series' clock).
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn start(
        target: Ipv4Addr,
        rate: f64,
        timeout: Duration,
        id: u16,
    ) -> std::io::Result<EchoLoop> {
        let (socket, kind) = match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
            Ok(s) => (s, SocketKind::Datagram),
            Err(_) => (
                Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?,
                SocketKind::Raw,
            ),
        };
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)?;
        // Connected, the socket gets only this target's packets: a raw socket
        // would otherwise wake for every target's replies.
        socket.connect(&SockAddr::from(SocketAddr::V4(SocketAddrV4::new(
            target, 0,
        ))))?;
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (s2, st2) = (shared.clone(), stop.clone());
        let job = Job {
            socket,
            kind,
            target,
            period: Duration::from_secs_f64(1.0 / rate),
            timeout,
            id,
            started,
        };
        std::thread::Builder::new()
            .name(format!("echo-{target}"))
            .spawn(move || job.run(&s2, &st2))?;
        Ok(EchoLoop {
            shared,
            kind,
            stop,
            started,
        })
    }
}

fn lock(m: &Mutex<Series>) -> std::sync::MutexGuard<'_, Series> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One target's echo loop, on its own thread.
struct Job {
    socket: Socket,
    kind: SocketKind,
    target: Ipv4Addr,
    period: Duration,
    timeout: Duration,
    id: u16,
    started: Instant,
}

impl Job {
    fn run(self, shared: &Shared, stop: &AtomicBool) {
        let Job {
            socket,
            kind,
            target,
            period,
            timeout,
            id,
            started,
        } = self;
        let dst = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(target, 0)));
        // seq -> (offset on the series clock, wall-clock send time)
        let mut in_flight: HashMap<u16, (Duration, SystemTime)> = HashMap::new();
        let mut seq: u16 = 0;
        let mut next_send = Instant::now();
        let mut buf = vec![0u8; 4096];
        let fd = socket.as_raw_fd();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(next_send.saturating_duration_since(Instant::now()));
            // What arrived while sleeping, with the kernel's arrival times.
            while let Some((reply_seq, rx)) = receive(fd, &mut buf, kind, id, target) {
                if let Some((at, sent)) = in_flight.remove(&reply_seq) {
                    let rtt = rx
                        .unwrap_or_else(SystemTime::now)
                        .duration_since(sent)
                        .unwrap_or_default();
                    lock(&shared.series).push(at, Some(rtt));
                    shared.replies.fetch_add(1, Ordering::Relaxed);
                    shared
                        .fresh
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(rtt);
                }
            }
            // Requests that waited too long are lost.
            let horizon = started.elapsed().saturating_sub(timeout);
            in_flight.retain(|_, (at, _)| {
                let keep = *at >= horizon;
                if !keep {
                    lock(&shared.series).push(*at, None);
                }
                keep
            });
            seq = seq.wrapping_add(1);
            let pkt = packet::echo_request(id, seq, 64);
            let sent_at = SystemTime::now();
            shared.requests.fetch_add(1, Ordering::Relaxed);
            match socket.send_to(&pkt, &dst) {
                Ok(_) => {
                    in_flight.insert(seq, (started.elapsed(), sent_at));
                }
                Err(e) => {
                    *shared.error.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(format!("sending echo to {target}: {e}"));
                    lock(&shared.series).push(started.elapsed(), None);
                }
            }
            next_send += period;
            let now = Instant::now();
            if next_send < now {
                next_send = now + period;
            }
        }
    }
}

/// One queued echo reply from `target`, without blocking: its sequence
/// number and kernel receive time. `None` when the queue is empty.
fn receive(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
    kind: SocketKind,
    id: u16,
    target: Ipv4Addr,
) -> Option<(u16, Option<SystemTime>)> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
            .ok()?;
        let rx = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmTimestampns(ts) => Some(
                    SystemTime::UNIX_EPOCH
                        + Duration::new(
                            u64::try_from(ts.tv_sec()).unwrap_or(0),
                            u32::try_from(ts.tv_nsec()).unwrap_or(0),
                        ),
                ),
                _ => None,
            })
        });
        let n = msg.bytes;
        if let Icmp::EchoReply {
            id: rid, seq, from, ..
        } = packet::parse(&buf[..n], kind == SocketKind::Raw)
        {
            // Datagram sockets get only their own replies (the kernel sets the id).
            if kind == SocketKind::Datagram || (rid == id && from == Some(target)) {
                return Some((seq, rx));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_echo_measures_small_rtts() {
        // Needs an ICMP socket: datagram (ping_group_range) or raw (root).
        let Ok(l) = EchoLoop::start(Ipv4Addr::LOCALHOST, 50.0, Duration::from_secs(1), 0x4e41)
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no ICMP socket under CI"
            );
            eprintln!("SKIP: no ICMP socket available to this user");
            return;
        };
        std::thread::sleep(Duration::from_millis(500));
        let st = l
            .shared
            .series
            .lock()
            .expect("lock")
            .stats(l.now(), Duration::from_secs(60))
            .expect("stats");
        assert!(st.sent >= 10, "{st:?}");
        assert!(st.received >= st.sent - 2, "{st:?}");
        assert!(st.p50 < Duration::from_millis(5), "{st:?}");
    }
}

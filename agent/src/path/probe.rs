//! TTL-limited probes toward a target, what `traceroute -n` does: one UDP
//! datagram per TTL to a high port, and the ICMP errors they cause read
//! from each socket's error queue (`IP_RECVERR`), so no raw socket and no
//! privilege is needed. A router that drops a probe's TTL to zero answers
//! "time exceeded" (that hop's address); the target answers "port
//! unreachable" (the path ends there). All TTLs go out at once: one round
//! takes one timeout, not one per hop.

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// traceroute's first destination port; probe n goes to BASE_PORT + n - 1.
const BASE_PORT: u16 = 33434;
const SO_EE_ORIGIN_ICMP: u8 = 2;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;

/// One TTL's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub ttl: u8,
    /// Who answered; `None`: nobody did in time (`*`).
    pub addr: Option<Ipv4Addr>,
    pub rtt: Option<Duration>,
}

/// The path as one round saw it: hops 1..=n, where n is the TTL that
/// reached the target (or the last probed TTL if none did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub hops: Vec<Hop>,
    pub reached: bool,
}

impl Trace {
    /// `10.0.0.1 10.0.1.1 * 10.9.2.1`, as traceroute -n lists them.
    pub fn describe(&self) -> String {
        self.hops
            .iter()
            .map(|h| h.addr.map_or("*".to_owned(), |a| a.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The round trip to the target (the reaching probe's).
    pub fn rtt(&self) -> Option<Duration> {
        self.reached
            .then(|| self.hops.last().and_then(|h| h.rtt))
            .flatten()
    }

    /// Whether `other` is a different path: another hop count, or another
    /// router at a TTL both rounds heard from (a silent hop is not a change:
    /// routers rate-limit their ICMP).
    pub fn differs_from(&self, other: &Trace) -> bool {
        if self.reached != other.reached || self.hops.len() != other.hops.len() {
            return true;
        }
        self.hops
            .iter()
            .zip(&other.hops)
            .any(|(a, b)| matches!((a.addr, b.addr), (Some(x), Some(y)) if x != y))
    }
}

/// Traces a path; a trait so the domain is tested without a network.
pub trait Tracer: Send + std::fmt::Debug {
    fn trace(&mut self, target: Ipv4Addr, max_hops: u8, timeout: Duration) -> io::Result<Trace>;
}

/// Real UDP probes.
#[derive(Debug, Default)]
pub struct UdpTracer;

struct Probe {
    socket: UdpSocket,
    sent: Instant,
    answer: Option<(Ipv4Addr, Duration, bool)>,
}

impl Tracer for UdpTracer {
    fn trace(&mut self, target: Ipv4Addr, max_hops: u8, timeout: Duration) -> io::Result<Trace> {
        let mut probes = Vec::with_capacity(usize::from(max_hops));
        for ttl in 1..=max_hops {
            let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
            socket.set_ttl(u32::from(ttl))?;
            setsockopt(&socket, sockopt::Ipv4RecvErr, &true).map_err(io::Error::from)?;
            socket.set_nonblocking(true)?;
            socket.connect(SocketAddrV4::new(target, BASE_PORT + u16::from(ttl) - 1))?;
            probes.push(Probe {
                socket,
                sent: Instant::now(),
                answer: None,
            });
        }
        for p in &mut probes {
            p.sent = Instant::now();
            // A send error here (no route) shows up as a silent hop.
            let _ = p.socket.send(b"hybrid-node-agent path probe....");
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64];
        loop {
            for p in probes.iter_mut().filter(|p| p.answer.is_none()) {
                p.answer = read_error(&p.socket, &mut buf, target)
                    .map(|(a, end)| (a, p.sent.elapsed(), end));
                // The target's UDP port answering is the end of the path too.
                if p.answer.is_none() && p.socket.recv(&mut buf).is_ok() {
                    p.answer = Some((target, p.sent.elapsed(), true));
                }
            }
            // Done once every TTL up to the first that reached the target
            // has answered.
            let end = probes
                .iter()
                .position(|p| p.answer.is_some_and(|(_, _, end)| end));
            let upto = end.map_or(probes.len(), |e| e + 1);
            if probes[..upto].iter().all(|p| p.answer.is_some()) || Instant::now() >= deadline {
                let hops = probes[..upto]
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Hop {
                        ttl: i as u8 + 1,
                        addr: p.answer.map(|(a, _, _)| a),
                        rtt: p.answer.map(|(_, d, _)| d),
                    })
                    .collect();
                return Ok(Trace {
                    hops,
                    reached: end.is_some(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The ICMP error queued on `socket`: who sent it, and whether it ends the
/// path (destination unreachable).
fn read_error(socket: &UdpSocket, buf: &mut [u8], _target: Ipv4Addr) -> Option<(Ipv4Addr, bool)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in);
    let msg = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
    )
    .ok()?;
    let found = msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::Ipv4RecvErr(err, Some(from)) if err.ee_origin == SO_EE_ORIGIN_ICMP => {
            let addr = Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr));
            match err.ee_type {
                ICMP_TIME_EXCEEDED => Some((addr, false)),
                // Port unreachable from the target, or a router/firewall
                // refusing: either way the probes go no further.
                ICMP_DEST_UNREACH => Some((addr, true)),
                _ => None,
            }
        }
        _ => None,
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(hops: &[Option<[u8; 4]>], reached: bool) -> Trace {
        Trace {
            hops: hops
                .iter()
                .enumerate()
                .map(|(i, a)| Hop {
                    ttl: i as u8 + 1,
                    addr: a.map(Ipv4Addr::from),
                    rtt: Some(Duration::from_millis(1)),
                })
                .collect(),
            reached,
        }
    }

    #[test]
    fn a_silent_hop_is_not_a_change_a_new_router_or_length_is() {
        let a = t(
            &[
                Some([10, 0, 0, 1]),
                Some([10, 0, 1, 1]),
                Some([10, 9, 2, 1]),
            ],
            true,
        );
        let silent = t(&[Some([10, 0, 0, 1]), None, Some([10, 9, 2, 1])], true);
        assert!(!a.differs_from(&silent));
        let other = t(
            &[
                Some([10, 0, 0, 1]),
                Some([10, 7, 1, 1]),
                Some([10, 9, 2, 1]),
            ],
            true,
        );
        assert!(a.differs_from(&other));
        let longer = t(
            &[
                Some([10, 0, 0, 1]),
                Some([10, 0, 1, 1]),
                Some([10, 5, 5, 5]),
                Some([10, 9, 2, 1]),
            ],
            true,
        );
        assert!(a.differs_from(&longer));
        assert_eq!(silent.describe(), "10.0.0.1 * 10.9.2.1");
    }

    #[test]
    fn loopback_is_reached_at_the_first_hop() {
        let trace = UdpTracer
            .trace(Ipv4Addr::LOCALHOST, 4, Duration::from_secs(2))
            .expect("trace");
        assert!(trace.reached, "{trace:?}");
        assert_eq!(trace.hops.len(), 1);
        assert_eq!(trace.hops[0].addr, Some(Ipv4Addr::LOCALHOST));
    }
}

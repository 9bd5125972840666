//! Path MTU discovery with Don't-Fragment probes: a binary search between a
//! size known to pass and the interface MTU, to within 8 bytes, paced and
//! retried, that tells a real "fragmentation needed" apart from a black hole
//! (large probes silently lost while small ones pass).
//!
//! IPv4 probes go out through a raw `IPPROTO_RAW` socket with the agent's own
//! IP header (DF set): the kernel checks only the device MTU for those, so
//! its cached path MTU never masks the path being measured. Replies and
//! "fragmentation needed" come back on a raw ICMP socket.

use super::packet::{self, Icmp};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// What one probe of a given size (the whole IP packet) met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An echo reply came back.
    Reply,
    /// A hop answered "fragmentation needed", with its next-hop MTU if given.
    TooBig(Option<u16>),
    /// The local interface cannot send it (EMSGSIZE).
    LocalTooBig,
    /// Nothing came back.
    Silent,
}

pub trait Prober {
    fn probe(&mut self, size: u32) -> Outcome;
}

/// The smallest size tried first: IPv4's 1200 is above every sane tunnel.
pub const FLOOR_V4: u32 = 1200;
/// Retries of a silent probe before it counts as lost.
pub const RETRIES: u32 = 2;
/// Search resolution.
pub const RESOLUTION: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtuResult {
    /// The largest size that got a reply.
    pub pmtu: u32,
    /// Large probes vanished without any "fragmentation needed".
    pub blackhole: bool,
    /// A hop sent "fragmentation needed".
    pub icmp_seen: bool,
    pub probes: u32,
}

/// Why no path MTU was found.
#[derive(Debug, thiserror::Error)]
pub enum PmtuError {
    /// The raw sockets could not be opened.
    #[error("cannot open raw sockets for path MTU probes: {0} (needs CAP_NET_RAW)")]
    Sockets(#[source] std::io::Error),
    /// Not even the smallest probe was answered.
    #[error("no reply even to {floor}-byte probes: the target does not answer ICMP echo, or ICMP is filtered")]
    NoReply { floor: u32 },
}

/// Searches between `floor` and `ceiling` (the interface MTU).
pub fn discover(
    prober: &mut dyn Prober,
    floor: u32,
    ceiling: u32,
) -> Result<PmtuResult, PmtuError> {
    let mut probes = 0;
    let mut try_size = |size: u32, probes: &mut u32| -> Outcome {
        for _ in 0..=RETRIES {
            *probes += 1;
            let o = prober.probe(size);
            if o != Outcome::Silent {
                return o;
            }
        }
        Outcome::Silent
    };
    let floor = floor.min(ceiling);
    if try_size(floor, &mut probes) != Outcome::Reply {
        return Err(PmtuError::NoReply { floor });
    }
    let (mut lo, mut hi) = (floor, ceiling);
    let mut icmp_seen = false;
    let mut silent = false;
    // Healthy paths answer at full size at once.
    let mut next = hi;
    while hi > lo {
        let size = next;
        match try_size(size, &mut probes) {
            Outcome::Reply => lo = size,
            Outcome::TooBig(mtu) => {
                icmp_seen = true;
                hi = size - 1;
                // The hop said what fits: try exactly that.
                if let Some(m) = mtu.map(u32::from).filter(|m| *m > lo && *m < size) {
                    hi = m;
                    next = m;
                    continue;
                }
            }
            Outcome::LocalTooBig => hi = size - 1,
            Outcome::Silent => {
                silent = true;
                hi = size - 1;
            }
        }
        if hi - lo <= RESOLUTION && lo != hi {
            // Within resolution: lo is the answer.
            hi = lo;
        }
        next = lo + (hi - lo).div_ceil(2);
    }
    Ok(PmtuResult {
        pmtu: lo,
        blackhole: silent && !icmp_seen && lo < ceiling,
        icmp_seen,
        probes,
    })
}

/// Probes an IPv4 target with raw sockets (needs CAP_NET_RAW).
#[derive(Debug)]
pub struct RawProber {
    send: Socket,
    recv: Socket,
    target: Ipv4Addr,
    id: u16,
    seq: u16,
    /// How long to wait for an answer to one probe.
    pub wait: Duration,
    /// Pause between probes.
    pub pace: Duration,
}

impl RawProber {
    pub fn new(target: Ipv4Addr, id: u16) -> std::io::Result<Self> {
        let send = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
        let recv = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        Ok(RawProber {
            send,
            recv,
            target,
            id,
            seq: 0,
            wait: Duration::from_millis(300),
            pace: Duration::from_millis(20),
        })
    }
}

impl Prober for RawProber {
    fn probe(&mut self, size: u32) -> Outcome {
        std::thread::sleep(self.pace);
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let pkt = packet::ipv4_echo_df(self.target, self.id, seq, size as usize);
        let dst = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(self.target, 0)));
        if let Err(e) = self.send.send_to(&pkt, &dst) {
            return if e.raw_os_error() == Some(nix::libc::EMSGSIZE) {
                Outcome::LocalTooBig
            } else {
                Outcome::Silent
            };
        }
        let deadline = Instant::now() + self.wait;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.recv.set_read_timeout(Some(left)).is_err() {
                return Outcome::Silent;
            }
            let n = match (&self.recv).read(&mut buf) {
                Ok(n) => n,
                Err(_) => return Outcome::Silent,
            };
            match packet::parse(&buf[..n], true) {
                Icmp::EchoReply {
                    id, seq: s, from, ..
                } if id == self.id && s == seq && from == Some(self.target) => {
                    return Outcome::Reply
                }
                Icmp::FragNeeded {
                    id,
                    seq: s,
                    next_hop_mtu,
                    ..
                } if id == self.id && s == seq => {
                    return Outcome::TooBig((next_hop_mtu >= 68).then_some(next_hop_mtu))
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated path: a hop with `mtu` that either answers "too big"
    /// (with or without the MTU) or drops silently; `lossy` drops every
    /// other probe at random sizes.
    struct Path {
        mtu: u32,
        iface: u32,
        icmp: Option<bool>,
        calls: u32,
        drop_every: u32,
    }

    impl Prober for Path {
        fn probe(&mut self, size: u32) -> Outcome {
            self.calls += 1;
            if self.drop_every > 0 && self.calls % self.drop_every == 0 {
                return Outcome::Silent;
            }
            if size > self.iface {
                Outcome::LocalTooBig
            } else if size <= self.mtu {
                Outcome::Reply
            } else {
                match self.icmp {
                    Some(true) => Outcome::TooBig(Some(u16::try_from(self.mtu).unwrap_or(0))),
                    Some(false) => Outcome::TooBig(None),
                    None => Outcome::Silent,
                }
            }
        }
    }

    fn path(mtu: u32, icmp: Option<bool>) -> Path {
        Path {
            mtu,
            iface: 9000,
            icmp,
            calls: 0,
            drop_every: 0,
        }
    }

    #[test]
    fn jumbo_path_answers_at_once() {
        let r = discover(&mut path(9000, Some(true)), FLOOR_V4, 9000).expect("ok");
        assert_eq!(
            r,
            PmtuResult {
                pmtu: 9000,
                blackhole: false,
                icmp_seen: false,
                probes: 2
            }
        );
    }

    #[test]
    fn frag_needed_with_mtu_is_exact() {
        let r = discover(&mut path(8500, Some(true)), FLOOR_V4, 9000).expect("ok");
        assert_eq!(r.pmtu, 8500);
        assert!(r.icmp_seen && !r.blackhole);
        assert!(r.probes <= 4, "{r:?}");
    }

    #[test]
    fn frag_needed_without_mtu_binary_searches_to_8_bytes() {
        let r = discover(&mut path(1500, Some(false)), FLOOR_V4, 9000).expect("ok");
        assert!(r.pmtu <= 1500 && 1500 - r.pmtu <= RESOLUTION, "{r:?}");
        assert!(!r.blackhole);
    }

    #[test]
    fn silent_drops_are_a_black_hole_not_an_ok_1500() {
        let r = discover(&mut path(1500, None), FLOOR_V4, 9000).expect("ok");
        assert!(r.blackhole, "{r:?}");
        assert!(1500 - r.pmtu <= RESOLUTION, "{r:?}");
    }

    #[test]
    fn occasional_loss_is_retried_away() {
        let mut p = path(8500, Some(true));
        p.drop_every = 3;
        let r = discover(&mut p, FLOOR_V4, 9000).expect("ok");
        assert_eq!(r.pmtu, 8500);
        assert!(!r.blackhole);
    }

    #[test]
    fn unreachable_target_is_an_error() {
        let e = discover(&mut path(0, None), FLOOR_V4, 9000).expect_err("no reply");
        assert!(matches!(e, PmtuError::NoReply { floor: 1200 }), "{e}");
        assert!(
            e.to_string().contains("no reply even to 1200-byte probes"),
            "{e}"
        );
    }

    #[test]
    fn interface_smaller_than_the_floor() {
        let r = discover(&mut path(1000, Some(true)), FLOOR_V4, 1000).expect("ok");
        assert_eq!(r.pmtu, 1000);
    }
}

//! A userspace ICMP echo responder for the network tests: run in a network
//! namespace whose kernel echo is off (`net.ipv4.icmp_echo_ignore_all=1`),
//! it answers each echo request after a seeded random delay, uniform in
//! [delay - spread, delay + spread], and drops a seeded fraction.
//!
//!   icmp-responder <delay-ms> <spread-ms> <loss> <seed>

use hybrid_node_agent::net::packet::checksum;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> f64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .expect("usage: icmp-responder <delay-ms> <spread-ms> <loss> <seed>")
    };
    let (delay, spread, loss, mut seed) = (arg(1), arg(2), arg(3), arg(4) as u64 | 1);
    let socket = Arc::new(
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
            .expect("raw ICMP socket (root)"),
    );
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(n) = (&*socket).read(&mut buf) else {
            continue;
        };
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        if n < ihl + 8 || buf[ihl] != 8 {
            continue; // not an echo request
        }
        let received = Instant::now();
        let drop = next() < loss;
        let wait = (delay + spread * (2.0 * next() - 1.0)).max(0.0);
        if drop {
            continue;
        }
        let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        let mut reply = buf[ihl..n].to_vec();
        reply[0] = 0;
        reply[2] = 0;
        reply[3] = 0;
        let c = checksum(&reply);
        reply[2..4].copy_from_slice(&c.to_be_bytes());
        let socket = socket.clone();
        let due = received + Duration::from_secs_f64(wait / 1000.0);
        std::thread::spawn(move || {
            // Sleep most of the way, spin the rest: sub-0.1 ms accuracy.
            let coarse = due
                .saturating_duration_since(Instant::now())
                .saturating_sub(Duration::from_micros(300));
            std::thread::sleep(coarse);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let _ = socket.send_to(
                &reply,
                &SockAddr::from(SocketAddr::V4(SocketAddrV4::new(src, 0))),
            );
        });
    }
}

//! ICMP echo and IPv4 packets, built and parsed by hand (RFC 792, RFC 791,
//! RFC 1191 for "fragmentation needed" with the next-hop MTU).

use std::net::Ipv4Addr;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_FRAG_NEEDED: u8 = 4;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const IPV4_HEADER: usize = 20;
pub const ICMP_HEADER: usize = 8;

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request of `len` bytes in all (header included).
pub fn echo_request(id: u16, seq: u16, len: usize) -> Vec<u8> {
    let len = len.max(ICMP_HEADER);
    let mut p = vec![0u8; len];
    p[0] = ICMP_ECHO_REQUEST;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[ICMP_HEADER..].iter_mut().enumerate() {
        *b = (i & 0xff) as u8;
    }
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// An IPv4 packet of `total` bytes carrying an echo request, with Don't
/// Fragment set, for a raw `IPPROTO_RAW` socket (the kernel fills in the
/// source address, the identification and the header checksum).
pub fn ipv4_echo_df(dst: Ipv4Addr, id: u16, seq: u16, total: usize) -> Vec<u8> {
    let total = total.max(IPV4_HEADER + ICMP_HEADER);
    let mut p = Vec::with_capacity(total);
    p.push(0x45); // version 4, 5 words
    p.push(0); // TOS
    p.extend_from_slice(&u16::try_from(total).unwrap_or(u16::MAX).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // identification: kernel
    p.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    p.push(64); // TTL
    p.push(1); // ICMP
    p.extend_from_slice(&[0, 0]); // checksum: kernel
    p.extend_from_slice(&[0, 0, 0, 0]); // source: kernel
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&echo_request(id, seq, total - IPV4_HEADER));
    p
}

/// What an ICMP message received on a socket means for a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmp {
    EchoReply {
        id: u16,
        seq: u16,
        from: Option<Ipv4Addr>,
        len: usize,
    },
    /// "Fragmentation needed" about one of our echo requests.
    FragNeeded {
        id: u16,
        seq: u16,
        next_hop_mtu: u16,
        from: Option<Ipv4Addr>,
    },
    Other,
}

/// Parses what a socket returned. Raw ICMP sockets return the IPv4 header
/// first; ICMP datagram sockets return the ICMP message alone.
pub fn parse(buf: &[u8], with_ip_header: bool) -> Icmp {
    let (icmp, from) = if with_ip_header {
        let Some(ihl) = buf.first().map(|b| usize::from(b & 0x0f) * 4) else {
            return Icmp::Other;
        };
        if buf.len() < ihl + ICMP_HEADER || buf[0] >> 4 != 4 {
            return Icmp::Other;
        }
        (
            &buf[ihl..],
            Some(Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15])),
        )
    } else {
        (buf, None)
    };
    if icmp.len() < ICMP_HEADER {
        return Icmp::Other;
    }
    let be = |i: usize| u16::from_be_bytes([icmp[i], icmp[i + 1]]);
    match (icmp[0], icmp[1]) {
        (ICMP_ECHO_REPLY, 0) => Icmp::EchoReply {
            id: be(4),
            seq: be(6),
            from,
            len: icmp.len(),
        },
        (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED) => {
            // Then the original IP header and the first 8 bytes of its payload.
            let orig = &icmp[ICMP_HEADER..];
            let Some(ihl) = orig.first().map(|b| usize::from(b & 0x0f) * 4) else {
                return Icmp::Other;
            };
            if orig.len() < ihl + ICMP_HEADER || orig[9] != 1 || orig[ihl] != ICMP_ECHO_REQUEST {
                return Icmp::Other;
            }
            let ob = |i: usize| u16::from_be_bytes([orig[ihl + i], orig[ihl + i + 1]]);
            Icmp::FragNeeded {
                id: ob(4),
                seq: ob(6),
                next_hop_mtu: be(6),
                from,
            }
        }
        _ => Icmp::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_packet_with_its_checksum_is_zero() {
        let p = echo_request(0x1234, 7, 64);
        assert_eq!(checksum(&p), 0);
        let odd = echo_request(1, 1, 33);
        assert_eq!(checksum(&odd), 0);
        // RFC 1071's example words.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn ipv4_probe_has_df_and_the_requested_size() {
        let p = ipv4_echo_df(Ipv4Addr::new(10, 0, 0, 2), 9, 3, 8972 + 28);
        assert_eq!(p.len(), 9000);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 9000);
        assert_eq!(u16::from_be_bytes([p[6], p[7]]) & 0x4000, 0x4000);
        assert_eq!(&p[16..20], &[10, 0, 0, 2]);
        assert_eq!(checksum(&p[IPV4_HEADER..]), 0);
    }

    #[test]
    fn replies_and_frag_needed_are_matched_to_the_probe() {
        // An echo reply as a raw socket sees it.
        let mut reply = ipv4_echo_df(Ipv4Addr::new(10, 0, 0, 1), 9, 3, 100);
        reply[12..16].copy_from_slice(&[10, 0, 0, 2]);
        reply[IPV4_HEADER] = ICMP_ECHO_REPLY;
        assert_eq!(
            parse(&reply, true),
            Icmp::EchoReply {
                id: 9,
                seq: 3,
                from: Some(Ipv4Addr::new(10, 0, 0, 2)),
                len: 80
            }
        );
        assert_eq!(
            parse(&reply[IPV4_HEADER..], false),
            Icmp::EchoReply {
                id: 9,
                seq: 3,
                from: None,
                len: 80
            }
        );

        // A router's "fragmentation needed, next hop MTU 8500" quoting our probe.
        let probe = ipv4_echo_df(Ipv4Addr::new(10, 0, 1, 2), 9, 4, 9000);
        let mut icmp = vec![ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0, 0, 0, 0];
        icmp.extend_from_slice(&8500u16.to_be_bytes());
        icmp.extend_from_slice(&probe[..IPV4_HEADER + 8]);
        let mut pkt = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 254, 10, 0, 0, 1,
        ];
        pkt.extend_from_slice(&icmp);
        assert_eq!(
            parse(&pkt, true),
            Icmp::FragNeeded {
                id: 9,
                seq: 4,
                next_hop_mtu: 8500,
                from: Some(Ipv4Addr::new(10, 0, 0, 254))
            }
        );
        assert_eq!(parse(&[1, 2, 3], true), Icmp::Other);
        assert_eq!(parse(&[], false), Icmp::Other);
    }
}

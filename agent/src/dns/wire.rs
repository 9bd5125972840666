//! The DNS message format (RFC 1035), as much as a stub resolver needs:
//! one question out, the A/AAAA records of the answer section back.
//! Names in answers may be compressed; they are skipped, not expanded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{0:?} is not a DNS name (empty label, label over 63 bytes or name over 253)")]
    BadName(String),
    #[error("the answer is cut short ({0} bytes)")]
    Short(usize),
    #[error("the answer is for another query (id {got:#06x}, expected {want:#06x})")]
    WrongId { got: u16, want: u16 },
    #[error("the message is not an answer")]
    NotResponse,
    #[error("a compressed name points outside the message")]
    BadPointer,
}

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, …
    pub rcode: u8,
    /// The TC bit: a UDP answer too big for its datagram.
    pub truncated: bool,
    pub addresses: Vec<IpAddr>,
    /// Whether the answer section held a CNAME on the way.
    pub cname: bool,
}

pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "error",
    }
}

/// A recursive query for `name` of type `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    if !crate::config::dns::is_dns_name(name) {
        return Err(WireError::BadName(name.to_owned()));
    }
    let name = name.trim_end_matches('.');
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// Reads the answer to query `id`.
pub fn parse(id: u16, m: &[u8]) -> Result<Answer, WireError> {
    let short = || WireError::Short(m.len());
    let u16_at = |i: usize| -> Result<u16, WireError> {
        m.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(short)
    };
    if m.len() < 12 {
        return Err(short());
    }
    let got = u16_at(0)?;
    if got != id {
        return Err(WireError::WrongId { got, want: id });
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err(WireError::NotResponse);
    }
    let (qd, an) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(m, at)? + 4;
    }
    let mut out = Answer {
        rcode: (flags & 0x000f) as u8,
        truncated: flags & 0x0200 != 0,
        addresses: Vec::new(),
        cname: false,
    };
    for _ in 0..an {
        at = skip_name(m, at)?;
        let (rtype, class, len) = (u16_at(at)?, u16_at(at + 2)?, usize::from(u16_at(at + 8)?));
        let data = m.get(at + 10..at + 10 + len).ok_or_else(short)?;
        at += 10 + len;
        if class != CLASS_IN {
            continue;
        }
        match (rtype, data.len()) {
            (TYPE_A, 4) => out.addresses.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                out.addresses.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            (TYPE_CNAME, _) => out.cname = true,
            _ => {}
        }
    }
    Ok(out)
}

/// The offset just past the name at `at`.
fn skip_name(m: &[u8], mut at: usize) -> Result<usize, WireError> {
    loop {
        let len = *m.get(at).ok_or(WireError::Short(m.len()))?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => {
                // A pointer ends the name (in this copy of it).
                let target = usize::from(u16::from_be_bytes([
                    l & 0x3f,
                    *m.get(at + 1).ok_or(WireError::Short(m.len()))?,
                ]));
                if target >= m.len() {
                    return Err(WireError::BadPointer);
                }
                return Ok(at + 2);
            }
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encodes_labels_and_refuses_bad_names() {
        let q = query(0x1234, "api.example.", TYPE_A).expect("query");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03api\x07example\x00\x00\x01\x00\x01");
        assert!(query(1, "a..b", TYPE_A).is_err());
        assert!(query(1, &"x".repeat(64), TYPE_A).is_err());
    }

    /// A response as dnsmasq writes it: the question, then a CNAME and an
    /// A record whose names are pointers to the question.
    #[test]
    fn answers_with_compressed_names_are_read() {
        let mut m = query(7, "api.example", TYPE_A).expect("query");
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2; // two answers
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 1, 20]);
        let a = parse(7, &m).expect("parse");
        assert_eq!(a.rcode, 0);
        assert!(a.cname && !a.truncated);
        assert_eq!(a.addresses, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 1, 20))]);
        assert_eq!(parse(8, &m), Err(WireError::WrongId { got: 7, want: 8 }));
        assert!(matches!(
            parse(7, &m[..m.len() - 1]),
            Err(WireError::Short(_))
        ));
    }

    #[test]
    fn nxdomain_is_an_answer_with_its_rcode() {
        let mut m = query(9, "nope.example", TYPE_A).expect("query");
        m[2] = 0x81;
        m[3] = 0x83;
        let a = parse(9, &m).expect("parse");
        assert_eq!(rcode_name(a.rcode), "NXDOMAIN");
        assert!(a.addresses.is_empty());
    }
}

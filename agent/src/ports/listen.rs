//! Listening TCP sockets from `/proc/net/tcp` and `/proc/net/tcp6` (under
//! the host root), without running `ss`.

use crate::host::Host;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const TCP_LISTEN: &str = "0A";

/// The addresses something listens on at `port`.
pub fn listeners(host: &Host, port: u16) -> std::io::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    let mut found_any = false;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(host.path(file)) {
            Ok(text) => {
                found_any = true;
                out.extend(parse(&text, port));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if !found_any {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "neither /proc/net/tcp nor /proc/net/tcp6 exists",
        ));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Listening addresses on `port` in one /proc/net/tcp{,6} table.
pub fn parse(text: &str, port: u16) -> Vec<IpAddr> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3) != Some(&TCP_LISTEN) {
                return None;
            }
            let (addr, p) = f.get(1)?.split_once(':')?;
            (u16::from_str_radix(p, 16).ok()? == port).then_some(())?;
            decode(addr)
        })
        .collect()
}

/// The kernel prints addresses as host-order 32-bit words in hex.
fn decode(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::swap_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(&hex[i * 8..i * 8 + 8])?.to_be_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_table_lists_a_listener_this_test_opened() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let found = listeners(&Host::default(), port).expect("proc");
        assert_eq!(found, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        drop(l);
        assert!(listeners(&Host::default(), port).expect("proc").is_empty());
    }

    #[test]
    fn ipv6_wildcard_and_v4_mapped_forms_decode() {
        let t = "  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000000000000:280A 00000000000000000000000000000000:0000 0A 0\n   1: 0000000000000000FFFF00000100000A:280A 00000000000000000000000000000000:0000 0A 0\n   2: 00000000000000000000000000000000:280A 00000000000000000000000000000000:0000 01 0\n";
        assert_eq!(
            parse(t, 10250),
            vec![
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                "::ffff:10.0.0.1".parse::<IpAddr>().expect("ip")
            ]
        );
    }
}

//! The result of a test from both ends' byte counts: the receiver's view
//! (the server's in the egress direction, ours in the ingress one), with
//! the sender's retransmits.

use super::client::{BandwidthError, StreamSummary, TestResult};
use super::config::Direction;
use super::proto::{self, Results};
use super::streams::Measured;
use std::net::SocketAddr;

/// The receiver's view: the server's in the egress direction, ours in the
/// ingress one.
pub(super) fn summarize(
    addr: SocketAddr,
    direction: Direction,
    ours: &Measured,
    theirs: &Results,
) -> Result<TestResult, BandwidthError> {
    let bad = |reason: String| BandwidthError::BadResults { addr, reason };
    if theirs.streams.len() != ours.bytes.len() {
        return Err(bad(format!(
            "{} streams in the server's results, {} opened",
            theirs.streams.len(),
            ours.bytes.len()
        )));
    }
    let rate = |bytes: u64, secs: f64| {
        if secs > 0.0 {
            bytes as f64 * 8.0 / secs
        } else {
            0.0
        }
    };
    let our_total: u64 = ours.bytes.iter().sum();
    let their_total: u64 = theirs.streams.iter().map(|s| s.bytes).sum();
    let their_secs = theirs
        .streams
        .iter()
        .map(|s| s.end_time - s.start_time)
        .fold(0.0f64, f64::max);
    let their_secs = if their_secs > 0.0 {
        their_secs
    } else {
        ours.seconds
    };
    let retransmits =
        (direction == Direction::Ingress && theirs.sender_has_retransmits == 1).then(|| {
            theirs
                .streams
                .iter()
                .map(|s| u64::try_from(s.retransmits).unwrap_or(0))
                .sum()
        });
    let (bytes, seconds, sender_bps) = match direction {
        Direction::Egress => (their_total, their_secs, rate(our_total, ours.seconds)),
        Direction::Ingress => (our_total, ours.seconds, rate(their_total, their_secs)),
    };
    let streams = match direction {
        Direction::Egress => theirs
            .streams
            .iter()
            .map(|s| StreamSummary {
                id: s.id,
                bytes: s.bytes,
                bits_per_second: rate(s.bytes, their_secs),
            })
            .collect(),
        Direction::Ingress => ours
            .bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| StreamSummary {
                id: proto::stream_id(i),
                bytes: b,
                bits_per_second: rate(b, ours.seconds),
            })
            .collect(),
    };
    Ok(TestResult {
        direction,
        bits_per_second: rate(bytes, seconds),
        bytes,
        seconds,
        sender_bits_per_second: sender_bps,
        retransmits,
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandwidth::proto::StreamResult;

    fn results(bytes: &[u64], secs: f64, retrans: i64) -> Results {
        Results {
            cpu_util_total: 1.0,
            cpu_util_user: 0.5,
            cpu_util_system: 0.5,
            sender_has_retransmits: retrans,
            congestion_used: Some("cubic".into()),
            streams: bytes
                .iter()
                .enumerate()
                .map(|(i, &b)| StreamResult::tcp(i, b, 3, secs))
                .collect(),
        }
    }

    const ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5201);

    #[test]
    fn egress_throughput_is_what_the_server_received() {
        let ours = Measured {
            bytes: vec![1_500_000, 1_500_000],
            seconds: 2.0,
        };
        // The server got 2.5 MB in 2.5 s: 8 Mbit/s, though 12 Mbit/s left.
        let r = summarize(
            ADDR,
            Direction::Egress,
            &ours,
            &results(&[1_250_000, 1_250_000], 2.5, -1),
        )
        .expect("summary");
        assert_eq!(r.bits_per_second, 8_000_000.0);
        assert_eq!(r.sender_bits_per_second, 12_000_000.0);
        assert_eq!(r.retransmits, None);
        assert_eq!(r.streams[1].id, 3);
    }

    #[test]
    fn ingress_throughput_is_what_this_node_received_with_the_servers_retransmits() {
        let ours = Measured {
            bytes: vec![1_000_000],
            seconds: 1.0,
        };
        let r = summarize(
            ADDR,
            Direction::Ingress,
            &ours,
            &results(&[1_100_000], 1.1, 1),
        )
        .expect("summary");
        assert_eq!(r.bits_per_second, 8_000_000.0);
        assert_eq!(r.retransmits, Some(3));
    }

    #[test]
    fn results_for_other_streams_are_refused() {
        let ours = Measured {
            bytes: vec![1, 2],
            seconds: 1.0,
        };
        let e = summarize(ADDR, Direction::Egress, &ours, &results(&[1], 1.0, 0)).unwrap_err();
        assert!(
            e.to_string()
                .contains("1 streams in the server's results, 2 opened"),
            "{e}"
        );
    }
}

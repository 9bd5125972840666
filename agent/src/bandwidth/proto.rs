//! The iperf3 control protocol (esnet/iperf `src/iperf_api.c`,
//! `iperf_client_api.c`), as much of it as a TCP client needs.
//!
//! One control connection carries the test: the client sends a 37-byte
//! cookie (36 characters and a NUL); the server answers with one signed
//! byte per state change; parameters and results travel as JSON objects
//! framed by a 4-byte big-endian length. Data streams are further TCP
//! connections to the same port, each opened with the same cookie; the
//! server numbers them 1, 3, 4, 5, … in the order it accepts them (id 2 was
//! never used, for compatibility with old versions) and matches the results
//! the client sends by those ids.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// `iperf3 -s` listens here unless told otherwise.
pub const DEFAULT_PORT: u16 = 5201;
/// 36 characters of a base32 alphabet and a NUL.
pub const COOKIE_SIZE: usize = 37;
/// The write/read size of a data stream: iperf3's TCP default (`-l 128K`).
pub const BLOCK_SIZE: usize = 128 * 1024;
/// Largest JSON object accepted from a server (results of 128 streams fit
/// many times over).
pub const MAX_JSON: u32 = 1 << 20;
/// The version the client announces; servers only print it.
pub const CLIENT_VERSION: &str = "3.12";

/// The states a server sends (and the few a client sends), `iperf_api.h`.
pub mod state {
    pub const TEST_START: i8 = 1;
    pub const TEST_RUNNING: i8 = 2;
    pub const TEST_END: i8 = 4;
    pub const PARAM_EXCHANGE: i8 = 9;
    pub const CREATE_STREAMS: i8 = 10;
    pub const SERVER_TERMINATE: i8 = 11;
    pub const CLIENT_TERMINATE: i8 = 12;
    pub const EXCHANGE_RESULTS: i8 = 13;
    pub const DISPLAY_RESULTS: i8 = 14;
    pub const IPERF_DONE: i8 = 16;
    pub const ACCESS_DENIED: i8 = -1;
    pub const SERVER_ERROR: i8 = -2;
}

/// A fresh cookie; the server uses it to tell this test's data streams from
/// strangers'.
pub fn make_cookie() -> [u8; COOKIE_SIZE] {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut random = [0u8; COOKIE_SIZE - 1];
    // The system RNG cannot fail on Linux; a cookie from a weaker source
    // would still work (it is an identifier, not a secret), so fall back to
    // the clock rather than fail the test.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in random.iter_mut().enumerate() {
            *b = (seed >> (i % 16 * 8)) as u8 ^ (i as u8).wrapping_mul(37);
        }
    }
    let mut cookie = [0u8; COOKIE_SIZE];
    for (c, r) in cookie.iter_mut().zip(random) {
        *c = ALPHABET[usize::from(r % 32)];
    }
    cookie
}

/// Writes `value` as iperf3's length-prefixed JSON.
pub fn write_json<W: Write, T: Serialize>(w: &mut W, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)
}

/// Reads one length-prefixed JSON object of at most [`MAX_JSON`] bytes.
pub fn read_json<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len == 0 || len > MAX_JSON {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("JSON frame of {len} bytes (expected 1 to {MAX_JSON})"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// The test parameters a client sends (`send_parameters`). TCP only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    pub tcp: bool,
    pub omit: u32,
    pub time: u64,
    pub num: u64,
    pub blockcount: u64,
    pub parallel: u16,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    pub len: u32,
    pub pacing_timer: u32,
    pub client_version: &'static str,
}

/// The results each side sends the other (`send_results`/`get_results`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub cpu_util_total: f64,
    pub cpu_util_user: f64,
    pub cpu_util_system: f64,
    /// 1 if the sender counted TCP retransmits, 0 if not, -1 from a receiver.
    #[serde(deserialize_with = "lenient_i64")]
    pub sender_has_retransmits: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub congestion_used: Option<String>,
    pub streams: Vec<StreamResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamResult {
    #[serde(deserialize_with = "lenient_i64")]
    pub id: i64,
    /// Bytes sent (sender) or received (receiver).
    pub bytes: u64,
    /// -1 when not counted.
    #[serde(deserialize_with = "lenient_i64")]
    pub retransmits: i64,
    pub jitter: f64,
    #[serde(deserialize_with = "lenient_i64")]
    pub errors: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub omitted_errors: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub packets: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub omitted_packets: i64,
    #[serde(default)]
    pub start_time: f64,
    #[serde(default)]
    pub end_time: f64,
}

impl StreamResult {
    /// The TCP result line of stream number `index` (0-based): `bytes`
    /// over `seconds`, `retransmits` (-1 when not counted); no UDP figures.
    pub fn tcp(index: usize, bytes: u64, retransmits: i64, seconds: f64) -> Self {
        StreamResult {
            id: stream_id(index),
            bytes,
            retransmits,
            jitter: 0.0,
            errors: 0,
            omitted_errors: 0,
            packets: 0,
            omitted_packets: 0,
            start_time: 0.0,
            end_time: seconds,
        }
    }
}

/// iperf3 3.12 writes a "not counted" -1 through an unsigned type
/// (`18446744073709551615`); any value outside i64, or a fraction, reads as -1.
fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    Ok(n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        })
        .unwrap_or(-1))
}

/// The id the server gives the `n`th data stream (0-based).
pub fn stream_id(n: usize) -> i64 {
    if n == 0 {
        1
    } else {
        n as i64 + 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_36_base32_characters_and_a_nul() {
        let c = make_cookie();
        assert_eq!(c[36], 0);
        assert!(c[..36]
            .iter()
            .all(|b| b"abcdefghijklmnopqrstuvwxyz234567".contains(b)));
        assert_ne!(make_cookie(), c);
    }

    #[test]
    fn json_frames_round_trip_and_oversized_frames_are_refused() {
        let mut buf = Vec::new();
        write_json(&mut buf, &serde_json::json!({"tcp": true})).expect("write");
        assert_eq!(&buf[..4], &[0, 0, 0, 12]);
        assert_eq!(read_json(&mut &buf[..]).expect("read"), br#"{"tcp":true}"#);
        let huge = (MAX_JSON + 1).to_be_bytes();
        let e = read_json(&mut &huge[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn parameters_carry_what_the_server_reads() {
        let p = Params {
            tcp: true,
            omit: 0,
            time: 10,
            num: 0,
            blockcount: 0,
            parallel: 10,
            reverse: true,
            window: Some(524_288),
            len: BLOCK_SIZE as u32,
            pacing_timer: 1000,
            client_version: CLIENT_VERSION,
        };
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["parallel"], 10);
        assert_eq!(v["reverse"], true);
        assert_eq!(v["window"], 524_288);
        assert_eq!(v["time"], 10);
        let forward = Params {
            reverse: false,
            window: None,
            ..p
        };
        let v = serde_json::to_value(&forward).expect("json");
        assert!(v.get("reverse").is_none() && v.get("window").is_none());
    }

    #[test]
    fn results_of_iperf3_3_12_with_an_unsigned_minus_one_are_read() {
        let text = r#"{"cpu_util_total":1.5,"cpu_util_user":0.2,"cpu_util_system":1.3,"sender_has_retransmits":18446744073709551615,"congestion_used":"cubic","streams":[{"id":1,"bytes":123,"retransmits":18446744073709551615,"jitter":0,"errors":0,"omitted_errors":0,"packets":0,"omitted_packets":0,"start_time":0,"end_time":2.000157}]}"#;
        let r: Results = serde_json::from_str(text).expect("parse");
        assert_eq!(r.sender_has_retransmits, -1);
        assert_eq!(r.streams[0].retransmits, -1);
        assert_eq!(r.streams[0].bytes, 123);
        assert_eq!(r.streams[0].end_time, 2.000157);
    }

    #[test]
    fn stream_ids_follow_the_server_numbering() {
        assert_eq!((0..4).map(stream_id).collect::<Vec<_>>(), [1, 3, 4, 5]);
    }
}

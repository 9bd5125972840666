//! Asking one DNS server one question over UDP or TCP, behind a trait so
//! the domain's verdicts are tested without a network.

use super::wire::{self, Answer, WireError};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection refused")]
    Refused,
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("bad answer: {0}")]
    Wire(#[from] WireError),
}

impl From<io::Error> for QueryError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => QueryError::Refused,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                QueryError::Timeout(Duration::ZERO)
            }
            _ => QueryError::Io(e),
        }
    }
}

/// One question to one server.
pub trait Lookup: Send + std::fmt::Debug {
    fn query(
        &self,
        server: SocketAddr,
        transport: Transport,
        name: &str,
        qtype: u16,
        timeout: Duration,
    ) -> Result<(Answer, Duration), QueryError>;
}

/// Real sockets.
#[derive(Debug, Default)]
pub struct NetLookup;

fn query_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

impl Lookup for NetLookup {
    fn query(
        &self,
        server: SocketAddr,
        transport: Transport,
        name: &str,
        qtype: u16,
        timeout: Duration,
    ) -> Result<(Answer, Duration), QueryError> {
        let id = query_id();
        let q = wire::query(id, name, qtype)?;
        let started = Instant::now();
        let timed = |e: io::Error| match QueryError::from(e) {
            QueryError::Timeout(_) => QueryError::Timeout(timeout),
            other => other,
        };
        let answer = match transport {
            Transport::Udp => {
                let bind: SocketAddr = if server.is_ipv4() {
                    "0.0.0.0:0".parse().map_err(io::Error::other)?
                } else {
                    "[::]:0".parse().map_err(io::Error::other)?
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(server)?;
                s.send(&q).map_err(timed)?;
                let deadline = started + timeout;
                let mut buf = [0u8; 4096];
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(QueryError::Timeout(timeout));
                    }
                    s.set_read_timeout(Some(left))?;
                    let n = s.recv(&mut buf).map_err(timed)?;
                    // A stray or spoofed datagram for another id: keep waiting.
                    match wire::parse(id, &buf[..n]) {
                        Err(WireError::WrongId { .. }) => continue,
                        r => break r?,
                    }
                }
            }
            Transport::Tcp => {
                let mut s = TcpStream::connect_timeout(&server, timeout).map_err(timed)?;
                let left = timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1));
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))?;
                let mut framed = (q.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&q);
                s.write_all(&framed).map_err(timed)?;
                let mut len = [0u8; 2];
                s.read_exact(&mut len).map_err(timed)?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut buf).map_err(timed)?;
                wire::parse(id, &buf)?
            }
        };
        Ok((answer, started.elapsed()))
    }
}

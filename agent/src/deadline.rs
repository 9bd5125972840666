//! One overall deadline for a blocking exchange over a TCP socket.
//!
//! Per-read timeouts alone do not bound a probe: a server (or anyone on the
//! path, before any certificate is checked) that sends one byte every
//! 400 ms never trips a 1 s read timeout, and keeps the probe — and the
//! domain that waits for it — alive forever. [`DeadlineStream`] sets each
//! read and write timeout to the time left until one deadline, and fails
//! with `TimedOut` once it has passed, so the whole exchange (connect, TLS
//! handshake, request, answer) ends by then.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A TCP stream whose every operation ends by `deadline`.
#[derive(Debug)]
pub struct DeadlineStream {
    inner: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    /// Connects to `addr`, giving up at `deadline`.
    pub fn connect(addr: &SocketAddr, deadline: Instant) -> io::Result<DeadlineStream> {
        let left = left_until(deadline)?;
        let inner = TcpStream::connect_timeout(addr, left)?;
        Ok(DeadlineStream { inner, deadline })
    }

    fn left(&self) -> io::Result<Duration> {
        left_until(self.deadline)
    }
}

fn left_until(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the probe's overall deadline passed",
        ))
    } else {
        Ok(left)
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.set_read_timeout(Some(self.left()?))?;
        self.inner.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.set_write_timeout(Some(self.left()?))?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that sends one byte every 100 ms forever (until the client
    /// goes): per-read timeouts of 300 ms would never fire.
    #[test]
    fn a_trickling_server_cannot_outlast_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                for _ in 0..100 {
                    if s.write_all(b"x").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        let started = Instant::now();
        let mut s =
            DeadlineStream::connect(&addr, started + Duration::from_millis(700)).expect("connect");
        let mut sink = Vec::new();
        let err = s.read_to_end(&mut sink).expect_err("must time out");
        let took = started.elapsed();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{err}"
        );
        assert!(!sink.is_empty(), "bytes did arrive meanwhile");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
}

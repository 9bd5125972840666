//! The data streams of a test: opened with the cookie, then written
//! (egress) or read (ingress) by their own threads until told to stop,
//! each waking every tick to see the cancel flag.

use super::client::{BandwidthError, DRAIN, STEP_TIMEOUT, TICK};
use super::proto;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The first stream failure ends the test.
pub(super) fn record(abort: &AtomicBool, failure: &Mutex<Option<io::Error>>, e: io::Error) {
    abort.store(true, Ordering::SeqCst);
    let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
    f.get_or_insert(e);
}

pub(super) struct Measured {
    pub(super) bytes: Vec<u64>,
    pub(super) seconds: f64,
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub(super) fn open_stream(
    addr: SocketAddr,
    window: u32,
    cookie: &[u8; proto::COOKIE_SIZE],
) -> Result<TcpStream, BandwidthError> {
    let step = "opening a data stream";
    let io = |source| BandwidthError::Io { addr, step, source };
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(io)?;
    if window > 0 {
        // Before connect, so the window scale is negotiated for it.
        s.set_send_buffer_size(window as usize).map_err(io)?;
        s.set_recv_buffer_size(window as usize).map_err(io)?;
    }
    s.connect_timeout(&addr.into(), STEP_TIMEOUT).map_err(io)?;
    let mut s: TcpStream = s.into();
    s.set_write_timeout(Some(STEP_TIMEOUT)).map_err(io)?;
    s.write_all(cookie).map_err(io)?;
    Ok(s)
}

/// Egress: write until told to stop.
pub(super) fn pump_out(mut s: TcpStream, counter: &AtomicU64, stop: &AtomicBool) -> io::Result<()> {
    s.set_write_timeout(Some(TICK))?;
    let mut buf = vec![0u8; proto::BLOCK_SIZE];
    // Incompressible payload, as iperf3 sends by default: a WAN optimizer
    // on the path must not flatter the result.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf);
    while !stop.load(Ordering::Relaxed) {
        match s.write(&buf) {
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ingress: read and count every stream until told to stop, then drain
/// uncounted until the server closes them (or [`DRAIN`] passes).
pub(super) fn pump_in(
    streams: Vec<TcpStream>,
    counters: &[AtomicU64],
    stop: &AtomicBool,
    abort: &AtomicBool,
) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut streams: Vec<Option<TcpStream>> = streams.into_iter().map(Some).collect();
    for s in streams.iter().flatten() {
        s.set_nonblocking(true)?;
    }
    let mut buf = vec![0u8; proto::BLOCK_SIZE];
    let mut drain_until: Option<Instant> = None;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        let stopped = stop.load(Ordering::Relaxed);
        if stopped {
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
            if Instant::now() >= until {
                return Ok(());
            }
        }
        let open: Vec<usize> = (0..streams.len())
            .filter(|&i| streams[i].is_some())
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .filter_map(|&i| streams[i].as_ref())
                .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .zip(&open)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, &i)| i)
                .collect()
        };
        for i in ready {
            let Some(s) = streams[i].as_mut() else {
                continue;
            };
            match s.read(&mut buf) {
                Ok(0) => streams[i] = None,
                Ok(n) => {
                    if !stopped {
                        counters[i].fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                // The server resets the streams it closes at the end.
                Err(_) if stopped => streams[i] = None,
                Err(e) => return Err(e),
            }
        }
    }
}

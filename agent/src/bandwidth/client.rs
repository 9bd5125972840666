//! A native iperf3 TCP client: one control connection, `parallel` data
//! streams, a timed run, the results exchange. The node needs no iperf3
//! binary; the far end is a plain `iperf3 -s`.
//!
//! Design: blocking sockets, one thread per stream (as iperf3 ≥ 3.16 does),
//! 128 KiB writes/reads. Every blocking call has a short timeout so that a
//! cancel (shutdown, Ctrl-C) is seen within ~100 ms; a cancelled test tells
//! the server (CLIENT_TERMINATE) instead of leaving it to time out, so the
//! next test can start at once.
//!
//! The number reported is the receiver's: in the egress direction the
//! bytes the server received over its own test time (iperf3's "receiver"
//! line), in the ingress direction the bytes this node received.

use super::config::Direction;
use super::proto::{self, state, Params, Results, StreamResult};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long connecting and each protocol step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often blocked calls wake to look at the cancel flag.
const TICK: Duration = Duration::from_millis(100);
/// How long to keep draining ingress streams after TEST_END.
const DRAIN: Duration = Duration::from_secs(3);

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    pub addr: SocketAddr,
    pub duration: Duration,
    pub parallel: u16,
    /// Socket buffer bytes; 0 = kernel default.
    pub window: u32,
    pub direction: Direction,
}

/// A running total, once a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub elapsed: Duration,
    /// Over the last interval, as seen by this node (sent or received).
    pub bits_per_second: f64,
}

/// One stream's share.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamSummary {
    pub id: i64,
    pub bytes: u64,
    pub bits_per_second: f64,
}

/// The outcome of one test in one direction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestResult {
    pub direction: Direction,
    /// Received bytes × 8 over the receiver's time: the throughput.
    pub bits_per_second: f64,
    /// Bytes the receiver got.
    pub bytes: u64,
    /// The receiver's test time.
    pub seconds: f64,
    /// Bytes the sender wrote, over its time.
    pub sender_bits_per_second: f64,
    /// TCP retransmits the sender counted, where it reports them (an
    /// iperf3 server sending on Linux does).
    pub retransmits: Option<u64>,
    pub streams: Vec<StreamSummary>,
}

/// Why a test did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum BandwidthError {
    #[error("cannot connect to the iperf3 server at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("iperf3 server {addr}: connection failed while {step}: {source}")]
    Io {
        addr: SocketAddr,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("iperf3 server {addr} did not answer within {timeout:?} while {step}")]
    Timeout {
        addr: SocketAddr,
        step: &'static str,
        timeout: Duration,
    },
    #[error("iperf3 server {addr} is busy running another test (access denied)")]
    Busy { addr: SocketAddr },
    #[error("iperf3 server {addr} reported error {code} (errno {errno}) while {step}")]
    Server {
        addr: SocketAddr,
        step: &'static str,
        code: i32,
        errno: i32,
    },
    #[error("iperf3 server {addr} ended the test (server terminated) while {step}")]
    ServerTerminated {
        addr: SocketAddr,
        step: &'static str,
    },
    #[error("iperf3 server {addr} sent unexpected state {state} while {step}")]
    Unexpected {
        addr: SocketAddr,
        step: &'static str,
        state: i8,
    },
    #[error("iperf3 server {addr} sent results this client cannot read: {reason}")]
    BadResults { addr: SocketAddr, reason: String },
    #[error("the bandwidth test against {addr} was cancelled")]
    Cancelled { addr: SocketAddr },
}

/// Set to stop a test; checked every [`TICK`].
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs one test. `progress` is called about once a second while data flows.
pub fn run(
    spec: &TestSpec,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TestResult, BandwidthError> {
    let addr = spec.addr;
    let mut ctrl = TcpStream::connect_timeout(&addr, STEP_TIMEOUT)
        .map_err(|source| BandwidthError::Connect { addr, source })?;
    let _ = ctrl.set_nodelay(true);
    let cookie = proto::make_cookie();
    let mut c = Control {
        addr,
        ctrl: &mut ctrl,
        cancel,
    };
    let result = c.test(spec, &cookie, progress);
    if matches!(result, Err(BandwidthError::Cancelled { .. })) {
        // Tell the server, so that it ends the test now rather than after
        // its own timeout; failing to is harmless (it times out).
        let _ = c.ctrl.write_all(&[state::CLIENT_TERMINATE as u8]);
    }
    let _ = ctrl.shutdown(std::net::Shutdown::Both);
    result
}

struct Control<'a> {
    addr: SocketAddr,
    ctrl: &'a mut TcpStream,
    cancel: &'a Cancel,
}

impl Control<'_> {
    fn io(&self, step: &'static str) -> impl Fn(io::Error) -> BandwidthError + '_ {
        move |source| BandwidthError::Io {
            addr: self.addr,
            step,
            source,
        }
    }

    fn send_state(&mut self, s: i8, step: &'static str) -> Result<(), BandwidthError> {
        let addr = self.addr;
        self.ctrl
            .write_all(&[s as u8])
            .map_err(|source| BandwidthError::Io { addr, step, source })
    }

    /// The next state byte, waiting up to [`STEP_TIMEOUT`] and watching the
    /// cancel flag. Error states become errors.
    fn next_state(&mut self, step: &'static str) -> Result<i8, BandwidthError> {
        let addr = self.addr;
        let deadline = Instant::now() + STEP_TIMEOUT;
        self.ctrl
            .set_read_timeout(Some(TICK))
            .map_err(self.io(step))?;
        let mut b = [0u8; 1];
        loop {
            if self.cancel.is_cancelled() {
                return Err(BandwidthError::Cancelled { addr });
            }
            match self.ctrl.read(&mut b) {
                Ok(0) => {
                    return Err(BandwidthError::Io {
                        addr,
                        step,
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the control connection",
                        ),
                    })
                }
                Ok(_) => return self.judge(b[0] as i8, step),
                Err(e) if is_timeout(&e) => {
                    if Instant::now() >= deadline {
                        return Err(BandwidthError::Timeout {
                            addr,
                            step,
                            timeout: STEP_TIMEOUT,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(BandwidthError::Io { addr, step, source }),
            }
        }
    }

    fn judge(&mut self, s: i8, step: &'static str) -> Result<i8, BandwidthError> {
        let addr = self.addr;
        match s {
            state::ACCESS_DENIED => Err(BandwidthError::Busy { addr }),
            state::SERVER_TERMINATE => Err(BandwidthError::ServerTerminated { addr, step }),
            state::SERVER_ERROR => {
                // Two network-order ints follow: iperf's error code, errno.
                let _ = self.ctrl.set_read_timeout(Some(STEP_TIMEOUT));
                let mut w = [0u8; 8];
                self.ctrl.read_exact(&mut w).map_err(self.io(step))?;
                Err(BandwidthError::Server {
                    addr,
                    step,
                    code: i32::from_be_bytes([w[0], w[1], w[2], w[3]]),
                    errno: i32::from_be_bytes([w[4], w[5], w[6], w[7]]),
                })
            }
            s => Ok(s),
        }
    }

    fn expect(&mut self, want: i8, step: &'static str) -> Result<(), BandwidthError> {
        match self.next_state(step)? {
            s if s == want => Ok(()),
            state => Err(BandwidthError::Unexpected {
                addr: self.addr,
                step,
                state,
            }),
        }
    }

    fn test(
        &mut self,
        spec: &TestSpec,
        cookie: &[u8; proto::COOKIE_SIZE],
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<TestResult, BandwidthError> {
        let addr = self.addr;
        self.ctrl
            .set_write_timeout(Some(STEP_TIMEOUT))
            .map_err(self.io("sending the cookie"))?;
        self.ctrl
            .write_all(cookie)
            .map_err(self.io("sending the cookie"))?;
        self.expect(state::PARAM_EXCHANGE, "waiting for the parameter exchange")?;
        let params = Params {
            tcp: true,
            omit: 0,
            time: spec.duration.as_secs().max(1),
            num: 0,
            blockcount: 0,
            parallel: spec.parallel,
            reverse: spec.direction == Direction::Ingress,
            window: (spec.window > 0).then_some(spec.window),
            len: proto::BLOCK_SIZE as u32,
            pacing_timer: 1000,
            client_version: proto::CLIENT_VERSION,
        };
        proto::write_json(self.ctrl, &params).map_err(self.io("sending the parameters"))?;
        self.expect(state::CREATE_STREAMS, "waiting to create the streams")?;
        let mut streams = Vec::with_capacity(usize::from(spec.parallel));
        for _ in 0..spec.parallel {
            if self.cancel.is_cancelled() {
                return Err(BandwidthError::Cancelled { addr });
            }
            streams.push(open_stream(addr, spec.window, cookie)?);
        }
        self.expect(state::TEST_START, "waiting for the test to start")?;
        self.expect(state::TEST_RUNNING, "waiting for the test to run")?;
        let measured = self.transfer(spec, streams, progress)?;

        self.expect(state::EXCHANGE_RESULTS, "waiting for the results exchange")?;
        let ours = Results {
            cpu_util_total: 0.0,
            cpu_util_user: 0.0,
            cpu_util_system: 0.0,
            sender_has_retransmits: match spec.direction {
                Direction::Egress => 0,
                Direction::Ingress => -1,
            },
            congestion_used: None,
            streams: measured
                .bytes
                .iter()
                .enumerate()
                .map(|(i, &bytes)| StreamResult {
                    id: proto::stream_id(i),
                    bytes,
                    retransmits: -1,
                    jitter: 0.0,
                    errors: 0,
                    omitted_errors: 0,
                    packets: 0,
                    omitted_packets: 0,
                    start_time: 0.0,
                    end_time: measured.seconds,
                })
                .collect(),
        };
        proto::write_json(self.ctrl, &ours).map_err(self.io("sending the results"))?;
        self.ctrl
            .set_read_timeout(Some(STEP_TIMEOUT))
            .map_err(self.io("reading the results"))?;
        let theirs = proto::read_json(self.ctrl).map_err(self.io("reading the results"))?;
        let theirs: Results =
            serde_json::from_slice(&theirs).map_err(|e| BandwidthError::BadResults {
                addr,
                reason: e.to_string(),
            })?;
        self.expect(state::DISPLAY_RESULTS, "waiting for the end of the test")?;
        // The server waits for this before it takes the next client.
        self.send_state(state::IPERF_DONE, "ending the test")?;
        // As iperf3's client does: wait for the server to close first, so
        // that it is ready for the next test when this one returns (a
        // server still cleaning up answers "access denied").
        let _ = self.ctrl.set_read_timeout(Some(STEP_TIMEOUT));
        let mut rest = [0u8; 64];
        while matches!(self.ctrl.read(&mut rest), Ok(n) if n > 0) {}
        summarize(addr, spec.direction, &measured, &theirs)
    }

    /// The timed part: streams run on their own threads; this thread
    /// reports progress, watches the control connection and the cancel
    /// flag, and sends TEST_END when the time is up.
    fn transfer(
        &mut self,
        spec: &TestSpec,
        streams: Vec<TcpStream>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Measured, BandwidthError> {
        let addr = self.addr;
        let counters: Vec<AtomicU64> = streams.iter().map(|_| AtomicU64::new(0)).collect();
        let stop = AtomicBool::new(false);
        let abort = AtomicBool::new(false);
        let failure: Mutex<Option<io::Error>> = Mutex::new(None);
        let send = spec.direction == Direction::Egress;
        std::thread::scope(|scope| {
            // Egress: a thread per stream, each blocked in write (the
            // kernel paces them). Ingress: one thread polls every stream, as
            // iperf3 does; ten readers racing for two cores cost more CPU in
            // wake-ups and small reads than they gain.
            let handles: Vec<_> = if send {
                streams
                    .into_iter()
                    .zip(&counters)
                    .map(|(s, counter)| {
                        let (stop, abort, failure) = (&stop, &abort, &failure);
                        scope.spawn(move || {
                            if let Err(e) = pump_out(s, counter, stop) {
                                record(abort, failure, e);
                            }
                        })
                    })
                    .collect()
            } else {
                let (counters, stop, abort, failure) = (&counters, &stop, &abort, &failure);
                vec![scope.spawn(move || {
                    if let Err(e) = pump_in(streams, counters, stop, abort) {
                        record(abort, failure, e);
                    }
                })]
            };
            let total = || {
                counters
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum::<u64>()
            };
            let started = Instant::now();
            let end = started + spec.duration;
            let (mut last_at, mut last_bytes) = (started, 0u64);
            let _ = self.ctrl.set_nonblocking(true);
            let outcome = loop {
                std::thread::sleep(TICK.min(end.saturating_duration_since(Instant::now())));
                let now = Instant::now();
                if self.cancel.is_cancelled() {
                    break Err(BandwidthError::Cancelled { addr });
                }
                if abort.load(Ordering::SeqCst) {
                    let e = failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or_else(|| io::Error::other("a data stream failed"));
                    break Err(BandwidthError::Io {
                        addr,
                        step: "transferring data",
                        source: e,
                    });
                }
                // The server may end the test early (it is stopped, or it
                // hit an error): it says so on the control connection.
                let mut b = [0u8; 1];
                match self.ctrl.read(&mut b) {
                    Ok(0) => {
                        break Err(BandwidthError::Io {
                            addr,
                            step: "transferring data",
                            source: io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the server closed the control connection",
                            ),
                        })
                    }
                    Ok(_) => {
                        let _ = self.ctrl.set_nonblocking(false);
                        break match self.judge(b[0] as i8, "transferring data") {
                            Err(e) => Err(e),
                            Ok(state) => Err(BandwidthError::Unexpected {
                                addr,
                                step: "transferring data",
                                state,
                            }),
                        };
                    }
                    Err(_) => {}
                }
                if now.duration_since(last_at) >= Duration::from_secs(1) || now >= end {
                    let bytes = total();
                    let secs = now.duration_since(last_at).as_secs_f64();
                    if secs > 0.0 {
                        progress(&Progress {
                            elapsed: now.duration_since(started),
                            bits_per_second: (bytes - last_bytes) as f64 * 8.0 / secs,
                        });
                    }
                    (last_at, last_bytes) = (now, bytes);
                }
                if now >= end {
                    break Ok(now.duration_since(started));
                }
            };
            let _ = self.ctrl.set_nonblocking(false);
            // Stop counting; senders return within one TICK.
            stop.store(true, Ordering::SeqCst);
            let seconds = match outcome {
                Ok(d) => d,
                Err(e) => {
                    abort.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            };
            let bytes: Vec<u64>;
            if send {
                for h in handles {
                    let _ = h.join();
                }
                bytes = counters.iter().map(|c| c.load(Ordering::SeqCst)).collect();
                self.send_state(state::TEST_END, "ending the test")?;
            } else {
                // Counted up to now; the streams keep draining (uncounted)
                // until the server closes them after TEST_END.
                bytes = counters.iter().map(|c| c.load(Ordering::SeqCst)).collect();
                if let Err(e) = self.send_state(state::TEST_END, "ending the test") {
                    abort.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
            Ok(Measured {
                bytes,
                seconds: seconds.as_secs_f64(),
            })
        })
    }
}

/// The first stream failure ends the test.
fn record(abort: &AtomicBool, failure: &Mutex<Option<io::Error>>, e: io::Error) {
    abort.store(true, Ordering::SeqCst);
    let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
    f.get_or_insert(e);
}

struct Measured {
    bytes: Vec<u64>,
    seconds: f64,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn open_stream(
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
fn pump_out(mut s: TcpStream, counter: &AtomicU64, stop: &AtomicBool) -> io::Result<()> {
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
fn pump_in(
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

/// The receiver's view: the server's in the egress direction, ours in the
/// ingress one.
fn summarize(
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
                .map(|(i, &b)| StreamResult {
                    id: proto::stream_id(i),
                    bytes: b,
                    retransmits: 3,
                    jitter: 0.0,
                    errors: 0,
                    omitted_errors: 0,
                    packets: 0,
                    omitted_packets: 0,
                    start_time: 0.0,
                    end_time: secs,
                })
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

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let spec = TestSpec {
            addr,
            duration: Duration::from_secs(1),
            parallel: 1,
            window: 0,
            direction: Direction::Egress,
        };
        let e = run(&spec, &Cancel::default(), &mut |_| {}).unwrap_err();
        assert!(matches!(e, BandwidthError::Connect { .. }), "{e}");
    }
}

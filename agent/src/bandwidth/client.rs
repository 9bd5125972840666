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
use super::streams::{is_timeout, open_stream, pump_in, pump_out, record, Measured};
use super::summary::summarize;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long connecting and each protocol step may take.
pub(super) const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often blocked calls wake to look at the cancel flag.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// How long to keep draining ingress streams after TEST_END.
pub(super) const DRAIN: Duration = Duration::from_secs(3);

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
                .map(|(i, &bytes)| StreamResult::tcp(i, bytes, -1, measured.seconds))
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

#[cfg(test)]
mod tests {
    use super::*;

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

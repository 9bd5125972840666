//! What one HTTP client may hold: the endpoint's connection limit, each
//! connection's deadlines, and eviction so that a new client is always
//! served.
//!
//! The endpoint is reachable before authentication, so the limit must not
//! be something a client can sit on. A connection that pipelines requests
//! and never reads the answers, or that opens and says nothing, would hold
//! its place for ever; with the limit reached, scrapes would wait in the
//! kernel's backlog until they time out. Instead:
//! - every connection makes progress (bytes read or written) or goes: a
//!   write that cannot move for [`Limits::write_stall`] (the client does not
//!   read), [`Limits::idle`] without a byte either way, or, once it is idle
//!   between requests, an age of [`Limits::max_age`] closes it;
//! - at the limit, a new connection is accepted at once and the open one
//!   that has been quiet the longest is closed for it. A scrape that has
//!   just connected is the most recent mover, so a flood of held
//!   connections only ever evicts its own members.
//!
//! Unread answers are bounded too: hyper serves a connection's pipelined
//! requests one at a time and reads the next only after the previous answer
//! has been written, so what a non-reading client can make the agent hold is
//! one answer plus its socket buffers, until the write stall closes it.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The deadlines every connection lives under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A write that has not moved a byte for this long: the client is not
    /// reading.
    pub write_stall: Duration,
    /// No byte in either direction for this long. Longer than Prometheus'
    /// usual scrape intervals, so its kept-alive connection is reused.
    pub idle: Duration,
    /// Total age after which a connection is closed once it is idle
    /// between requests (the client reconnects).
    pub max_age: Duration,
    /// How often deadlines are checked.
    pub tick: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            write_stall: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            max_age: Duration::from_secs(15 * 60),
            tick: Duration::from_secs(1),
        }
    }
}

/// Why a connection was closed by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its place was given to a new connection.
    Evicted,
    /// The client stopped reading the answers.
    WriteStalled,
    /// Nothing moved for [`Limits::idle`].
    Idle,
    /// Older than [`Limits::max_age`].
    Aged,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Evicted => "evicted for a new connection at the limit",
            Closed::WriteStalled => "the client stopped reading the answers",
            Closed::Idle => "idle",
            Closed::Aged => "reached its maximum age",
        }
    }
}

/// One open connection's progress, shared between its I/O and the table.
#[derive(Debug)]
pub struct Progress {
    opened: Instant,
    /// Milliseconds after `opened` of the last byte read or written.
    last_ms: AtomicU64,
    /// Milliseconds after `opened` (+1) since a write has been blocked; 0
    /// while no write is waiting.
    blocked_since_ms: AtomicU64,
    evict: Notify,
}

impl Progress {
    fn new(now: Instant) -> Self {
        Progress {
            opened: now,
            last_ms: AtomicU64::new(0),
            blocked_since_ms: AtomicU64::new(0),
            evict: Notify::new(),
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.opened).as_millis()).unwrap_or(u64::MAX)
    }

    fn moved(&self) {
        self.last_ms
            .store(self.ms(Instant::now()), Ordering::Relaxed);
    }

    fn write_blocked(&self, blocked: bool) {
        if blocked {
            let since = self.ms(Instant::now()).saturating_add(1);
            let _ = self.blocked_since_ms.compare_exchange(
                0,
                since,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        } else {
            self.blocked_since_ms.store(0, Ordering::Relaxed);
        }
    }

    /// When the last byte moved.
    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// The deadline this connection has passed at `now`, if any.
    pub fn expired(&self, now: Instant, limits: &Limits) -> Option<Closed> {
        let quiet = now.saturating_duration_since(self.last());
        let blocked = self.blocked_since_ms.load(Ordering::Relaxed);
        if blocked > 0 {
            let since = self.opened + Duration::from_millis(blocked - 1);
            if now.saturating_duration_since(since) >= limits.write_stall
                && quiet >= limits.write_stall
            {
                return Some(Closed::WriteStalled);
            }
            return None;
        }
        if quiet >= limits.idle {
            return Some(Closed::Idle);
        }
        // Only between requests: a scrape in progress is moving bytes.
        if now.saturating_duration_since(self.opened) >= limits.max_age && quiet >= limits.tick {
            return Some(Closed::Aged);
        }
        None
    }
}

/// The open connections of one endpoint.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    limits: Limits,
    open: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    by_id: HashMap<u64, Arc<Progress>>,
}

impl Connections {
    pub fn new(max: usize, limits: Limits) -> Arc<Connections> {
        Arc::new(Connections {
            max: max.max(1),
            limits,
            open: Mutex::new(Table::default()),
        })
    }

    /// Registers a new connection. At the limit, the open connection that
    /// has been quiet the longest is told to close (see [`Admitted::closed`]).
    pub fn admit(self: &Arc<Self>) -> Admitted {
        let progress = Arc::new(Progress::new(Instant::now()));
        let mut table = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while table.by_id.len() >= self.max {
            let Some((&victim, _)) = table.by_id.iter().min_by_key(|(_, p)| p.last()) else {
                break;
            };
            if let Some(p) = table.by_id.remove(&victim) {
                p.evict.notify_one();
            }
        }
        table.next += 1;
        let id = table.next;
        table.by_id.insert(id, progress.clone());
        Admitted {
            id,
            progress,
            connections: self.clone(),
        }
    }

    /// How many connections are open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_id
            .len()
    }
}

/// One admitted connection; leaves the table when dropped.
#[derive(Debug)]
pub struct Admitted {
    id: u64,
    progress: Arc<Progress>,
    connections: Arc<Connections>,
}

impl Admitted {
    /// Wraps the connection's socket so that its progress is seen.
    pub fn track<IO>(&self, io: IO) -> Tracked<IO> {
        Tracked {
            io,
            progress: self.progress.clone(),
        }
    }

    /// Resolves when the connection must close: evicted, or past one of its
    /// deadlines. Serve the connection in a `select!` against this.
    pub async fn closed(&self) -> Closed {
        let limits = self.connections.limits;
        loop {
            tokio::select! {
                _ = self.progress.evict.notified() => return Closed::Evicted,
                _ = tokio::time::sleep(limits.tick) => {}
            }
            if let Some(why) = self.progress.expired(Instant::now(), &limits) {
                return why;
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_id
            .remove(&self.id);
    }
}

/// Paces the requests of one connection: a burst of [`PACE_BURST`], then one
/// per [`PACE_EVERY`]. A scraper sends one request per connection per scrape
/// interval and never waits; a client that pipelines hundreds of requests
/// gets each further answer only as a token comes free, so it cannot spend
/// the endpoint's one thread on encoding answers it will never read. A
/// waiting request costs a timer, not CPU, and hyper reads nothing more from
/// that connection meanwhile.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<(f64, Instant)>,
}

/// Requests a connection may send back to back.
pub const PACE_BURST: f64 = 2.0;
/// One more request per this long once the burst is spent.
pub const PACE_EVERY: Duration = Duration::from_secs(1);

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            state: Mutex::new((PACE_BURST, Instant::now())),
        }
    }
}

impl Pacer {
    /// How long the next request must wait (and takes its token).
    pub fn delay(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let refill = now.saturating_duration_since(*last).as_secs_f64() / PACE_EVERY.as_secs_f64();
        *tokens = (*tokens + refill).min(PACE_BURST);
        *last = now;
        *tokens -= 1.0;
        if *tokens >= 0.0 {
            Duration::ZERO
        } else {
            PACE_EVERY.mul_f64(-*tokens)
        }
    }
}

/// A socket whose reads and writes record progress.
#[derive(Debug)]
pub struct Tracked<IO> {
    io: IO,
    progress: Arc<Progress>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.progress.moved();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note_write(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note_write(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.progress.write_blocked(r.is_pending());
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO> Tracked<IO> {
    fn note_write(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Pending => self.progress.write_blocked(true),
            Poll::Ready(Ok(n)) => {
                self.progress.write_blocked(false);
                if *n > 0 {
                    self.progress.moved();
                }
            }
            Poll::Ready(Err(_)) => self.progress.write_blocked(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            write_stall: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            max_age: Duration::from_secs(900),
            tick: Duration::from_secs(1),
        }
    }

    #[test]
    fn deadlines() {
        let t0 = Instant::now();
        let p = Progress::new(t0);
        let l = limits();
        assert_eq!(p.expired(t0 + Duration::from_secs(60), &l), None);
        assert_eq!(
            p.expired(t0 + Duration::from_secs(120), &l),
            Some(Closed::Idle)
        );
        // A blocked write: stalled after write_stall, not idle.
        p.blocked_since_ms.store(1, Ordering::Relaxed);
        assert_eq!(p.expired(t0 + Duration::from_secs(5), &l), None);
        assert_eq!(
            p.expired(t0 + Duration::from_secs(10), &l),
            Some(Closed::WriteStalled)
        );
        p.write_blocked(false);
        // Old and quiet between requests: aged.
        p.last_ms.store(899_000, Ordering::Relaxed);
        assert_eq!(p.expired(t0 + Duration::from_secs(899), &l), None);
        assert_eq!(
            p.expired(t0 + Duration::from_secs(901), &l),
            Some(Closed::Aged)
        );
    }

    #[test]
    fn pacing_allows_a_burst_then_one_request_per_interval() {
        let p = Pacer::default();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(p.delay(t0), Duration::ZERO);
        }
        assert_eq!(p.delay(t0), PACE_EVERY);
        assert_eq!(p.delay(t0), PACE_EVERY * 2);
        // A scraper once every 15 s never waits.
        let p = Pacer::default();
        for i in 0..10 {
            assert_eq!(p.delay(t0 + Duration::from_secs(15 * i)), Duration::ZERO);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn at_the_limit_the_quietest_connection_makes_room() {
        let c = Connections::new(2, limits());
        let a = c.admit();
        let b = c.admit();
        // `a` moved last: `b` is the quietest.
        a.progress.last_ms.store(10, Ordering::Relaxed);
        let _new = c.admit();
        assert_eq!(c.len(), 2);
        let why = tokio::time::timeout(Duration::from_millis(1), b.closed()).await;
        assert_eq!(why.ok(), Some(Closed::Evicted));
        drop(a);
        assert_eq!(c.len(), 1);
    }
}

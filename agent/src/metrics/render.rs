//! One rendering of the registry shared by every scrape that arrives
//! within a short window.
//!
//! Encoding the whole registry costs milliseconds (more with every domain
//! and GPU), and an unauthenticated client may pipeline hundreds of
//! `GET /metrics` on hundreds of connections: rendered per request, that
//! work starves the one scrape that matters for seconds. Within
//! [`FRESH_FOR`], and while no domain run or reload has landed since (the
//! cache's generation), the same format and encoding is served from the
//! last rendering instead. Only counters that move between runs (echo
//! replies, XIDs) can read up to a quarter-second old.

use super::Format;
use hyper::body::Bytes;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one rendering is served.
pub const FRESH_FOR: Duration = Duration::from_millis(250);

/// The latest body per (format, gzip), with when and at which
/// generation it was rendered.
#[derive(Debug, Default)]
pub struct Rendered {
    slots: Mutex<[Option<(Instant, u64, Bytes)>; 4]>,
}

impl Rendered {
    /// The body rendered for `format`/`gzip` within [`FRESH_FOR`] of `now`
    /// at `generation`, else `render()`'s, kept for the next scrapes. A
    /// failed rendering is not kept.
    pub fn get_or_render<E>(
        &self,
        format: Format,
        gzip: bool,
        (now, generation): (Instant, u64),
        render: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        let slot = match format {
            Format::OpenMetrics => 0,
            Format::Prometheus => 2,
        } + usize::from(gzip);
        // Held while rendering: scrapes that arrive meanwhile wait for this
        // rendering rather than start their own.
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, rendered_at, body)) = &slots[slot] {
            if *rendered_at == generation && now.saturating_duration_since(*at) < FRESH_FOR {
                return Ok(body.clone());
            }
        }
        let body = render()?;
        slots[slot] = Some((now, generation, body.clone()));
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rendering_serves_the_window_per_format_and_encoding() {
        let r = Rendered::default();
        let t0 = Instant::now();
        let renders = std::cell::Cell::new(0);
        let get = |format, gzip, at: Instant, generation: u64| {
            r.get_or_render(format, gzip, (at, generation), || {
                renders.set(renders.get() + 1);
                Ok::<_, ()>(Bytes::from(format!("{format:?} {gzip} {}", renders.get())))
            })
            .expect("render")
        };
        let a = get(Format::Prometheus, false, t0, 7);
        assert_eq!(get(Format::Prometheus, false, t0 + FRESH_FOR / 2, 7), a);
        // Another format or encoding is its own rendering.
        assert_ne!(get(Format::OpenMetrics, false, t0, 7), a);
        assert_ne!(get(Format::Prometheus, true, t0, 7), a);
        // Past the window: rendered again.
        let b = get(Format::Prometheus, false, t0 + FRESH_FOR, 7);
        assert_ne!(b, a);
        assert_eq!(renders.get(), 4);
        // A domain run landed (new generation): rendered again at once.
        assert_ne!(get(Format::Prometheus, false, t0 + FRESH_FOR, 8), b);
        assert_eq!(renders.get(), 5);
    }

    #[test]
    fn a_failed_rendering_is_not_kept() {
        let r = Rendered::default();
        let t0 = Instant::now();
        assert!(r
            .get_or_render(Format::Prometheus, false, (t0, 0), || Err::<Bytes, _>(
                "boom"
            ))
            .is_err());
        let ok = r.get_or_render(Format::Prometheus, false, (t0, 0), || {
            Ok::<_, &str>(Bytes::from("ok"))
        });
        assert_eq!(ok, Ok(Bytes::from("ok")));
    }
}

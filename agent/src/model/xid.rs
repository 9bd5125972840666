//! XID classification and ageing: a fatal XID fails the check until it ages
//! out of the window — it recovers on its own, never latches.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Fatal,
    Ignored,
    Warn,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Fatal => "fatal",
            Class::Ignored => "ignored",
            Class::Warn => "warn",
        }
    }
}

/// XIDs that fail the check until they age out: the GPU needs a reset, a
/// reboot or replacement. Each class and its sources: docs/gpu-xid.md.
pub const DEFAULT_FATAL: [u64; 19] = [
    46, 48, 54, 62, 64, 74, 79, 95, 110, 119, 120, 136, 140, 142, 143, 151, 155, 156, 158,
];
/// XIDs caused by the application, not the GPU: the NVIDIA device plugin's
/// skipped XIDs (13, 31, 43, 45, 68) less 109, which the agent warns on.
/// Everything else — 63 (row-remap recorded), 94 (contained ECC error),
/// 109 (context-switch timeout) among them — warns.
pub const DEFAULT_IGNORE: [u64; 5] = [13, 31, 43, 45, 68];

pub fn classify(xid: u64, fatal: &[u64], ignore: &[u64]) -> Class {
    if fatal.contains(&xid) {
        Class::Fatal
    } else if ignore.contains(&xid) {
        Class::Ignored
    } else {
        Class::Warn
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub at: Instant,
    pub gpu: u32,
    /// PCI (domain, bus, device) of a GPU the driver does not list, where
    /// the event came from the kernel log.
    pub pci: Option<(u32, u32, u32)>,
    pub xid: u64,
    pub class: Class,
}

/// The XIDs within the window (ignored ones are only counted, not kept).
#[derive(Debug, Default, Clone)]
pub struct History {
    events: VecDeque<Seen>,
}

/// Bound on kept events: an XID storm must not grow memory.
const MAX_KEPT: usize = 1024;

impl History {
    pub fn record(&mut self, s: Seen) {
        if s.class == Class::Ignored {
            return;
        }
        if self.events.len() == MAX_KEPT {
            // The oldest non-fatal event goes first: a storm of warn-class
            // XIDs must not evict the fatal one that fails the check.
            let oldest = self
                .events
                .iter()
                .position(|e| e.class != Class::Fatal)
                .unwrap_or(0);
            self.events.remove(oldest);
        }
        self.events.push_back(s);
    }

    /// Drops events older than `window` at `now`; returns what remains.
    pub fn current(&mut self, now: Instant, window: Duration) -> Vec<Seen> {
        // Not only from the front: events read from the kernel log at start
        // arrive in log order, not in the order they age out.
        self.events
            .retain(|e| now.saturating_duration_since(e.at) <= window);
        self.events.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_lists() {
        assert_eq!(classify(79, &DEFAULT_FATAL, &DEFAULT_IGNORE), Class::Fatal);
        assert_eq!(
            classify(13, &DEFAULT_FATAL, &DEFAULT_IGNORE),
            Class::Ignored
        );
        assert_eq!(classify(92, &DEFAULT_FATAL, &DEFAULT_IGNORE), Class::Warn);
        // A contained ECC error killed one application: warn, not ignore.
        assert_eq!(classify(94, &DEFAULT_FATAL, &DEFAULT_IGNORE), Class::Warn);
        // Where the defaults differ from the device plugin (docs/gpu-xid.md).
        assert_eq!(classify(63, &DEFAULT_FATAL, &DEFAULT_IGNORE), Class::Warn);
        assert_eq!(classify(109, &DEFAULT_FATAL, &DEFAULT_IGNORE), Class::Warn);
    }

    #[test]
    fn fatal_ages_out_of_the_window() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record(Seen {
            at: t0,
            gpu: 0,
            pci: None,
            xid: 79,
            class: Class::Fatal,
        });
        h.record(Seen {
            at: t0,
            gpu: 0,
            pci: None,
            xid: 13,
            class: Class::Ignored,
        });
        let w = Duration::from_secs(3600);
        assert_eq!(h.current(t0 + Duration::from_secs(60), w).len(), 1);
        assert!(
            h.current(t0 + Duration::from_secs(3601), w).is_empty(),
            "recovers by itself"
        );
    }

    #[test]
    fn events_recorded_out_of_order_age_out_each_on_its_own() {
        let t0 = Instant::now() + Duration::from_secs(7200);
        let mut h = History::default();
        for (ago, xid) in [(60, 79), (3000, 48)] {
            h.record(Seen {
                at: t0 - Duration::from_secs(ago),
                gpu: 0,
                pci: None,
                xid,
                class: Class::Fatal,
            });
        }
        let left = h.current(t0, Duration::from_secs(600));
        assert_eq!(left.iter().map(|s| s.xid).collect::<Vec<_>>(), [79]);
    }

    #[test]
    fn storms_are_bounded() {
        let t0 = Instant::now();
        let mut h = History::default();
        for _ in 0..5000 {
            h.record(Seen {
                at: t0,
                gpu: 1,
                pci: None,
                xid: 92,
                class: Class::Warn,
            });
        }
        assert_eq!(h.current(t0, Duration::from_secs(60)).len(), MAX_KEPT);
    }

    #[test]
    fn a_storm_of_warnings_does_not_evict_a_fatal_xid() {
        let t0 = Instant::now();
        let mut h = History::default();
        let seen = |xid, class| Seen {
            at: t0,
            gpu: 0,
            pci: None,
            xid,
            class,
        };
        h.record(seen(79, Class::Fatal));
        for _ in 0..2000 {
            h.record(seen(92, Class::Warn));
        }
        let left = h.current(t0, Duration::from_secs(60));
        assert_eq!(left.len(), MAX_KEPT);
        assert!(left.iter().any(|s| s.xid == 79), "the fatal XID stays");
    }
}

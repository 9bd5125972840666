//! Rolling windows of echo results: RTT min/avg/p50/p99/max, jitter (mean
//! absolute difference of consecutive RTTs, RFC 3550-style), standard
//! deviation and loss, with a loss verdict that waits for enough samples.

use std::collections::VecDeque;
use std::time::Duration;

/// The windows reported, as (label, length).
pub const WINDOWS: [(&str, Duration); 3] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
    ("1h", Duration::from_secs(3600)),
];

/// One echo: when it was sent (ms since the series started) and its RTT in
/// microseconds, `LOST` if no reply came in time. 8 bytes a sample: an hour
/// at 5 packets/s is 140 KiB per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    at_ms: u32,
    rtt_us: u32,
}

const LOST: u32 = u32::MAX;

#[derive(Debug, Default, Clone)]
pub struct Series {
    samples: VecDeque<Sample>,
}

/// Statistics over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub min: Duration,
    pub avg: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub jitter: Duration,
    pub stddev: Duration,
}

impl Stats {
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            (self.sent - self.received) as f64 / self.sent as f64
        }
    }
}

impl Series {
    /// Records an echo sent at `at` (since the series' start).
    pub fn push(&mut self, at: Duration, rtt: Option<Duration>) {
        let at_ms = u32::try_from(at.as_millis()).unwrap_or(u32::MAX);
        let rtt_us = rtt.map_or(LOST, |r| u32::try_from(r.as_micros()).unwrap_or(LOST - 1));
        self.samples.push_back(Sample { at_ms, rtt_us });
        // Keep the longest window only.
        let horizon = WINDOWS[WINDOWS.len() - 1].1;
        let oldest = at_ms.saturating_sub(u32::try_from(horizon.as_millis()).unwrap_or(u32::MAX));
        while self.samples.front().is_some_and(|s| s.at_ms < oldest) {
            self.samples.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Statistics over the samples sent in the last `window` before `now`.
    pub fn stats(&self, now: Duration, window: Duration) -> Option<Stats> {
        let from = now.saturating_sub(window).as_millis();
        let in_window = self.samples.iter().filter(|s| u128::from(s.at_ms) >= from);
        let mut rtts: Vec<u32> = Vec::new();
        let mut sent = 0u64;
        let mut jitter_sum = 0u64;
        let mut prev: Option<u32> = None;
        for s in in_window {
            sent += 1;
            if s.rtt_us != LOST {
                if let Some(p) = prev {
                    jitter_sum += u64::from(p.abs_diff(s.rtt_us));
                }
                prev = Some(s.rtt_us);
                rtts.push(s.rtt_us);
            }
        }
        if sent == 0 {
            return None;
        }
        let received = rtts.len() as u64;
        if rtts.is_empty() {
            let zero = Duration::ZERO;
            return Some(Stats {
                sent,
                received,
                min: zero,
                avg: zero,
                p50: zero,
                p99: zero,
                max: zero,
                jitter: zero,
                stddev: zero,
            });
        }
        let n = rtts.len() as f64;
        let mean = rtts.iter().map(|r| f64::from(*r)).sum::<f64>() / n;
        let var = rtts
            .iter()
            .map(|r| (f64::from(*r) - mean).powi(2))
            .sum::<f64>()
            / n;
        let jitter = if rtts.len() > 1 {
            jitter_sum as f64 / (n - 1.0)
        } else {
            0.0
        };
        rtts.sort_unstable();
        let pct = |p: f64| {
            let idx = ((p * n).ceil() as usize).clamp(1, rtts.len()) - 1;
            us(f64::from(rtts[idx]))
        };
        Some(Stats {
            sent,
            received,
            min: us(f64::from(rtts[0])),
            avg: us(mean),
            p50: pct(0.50),
            p99: pct(0.99),
            max: us(f64::from(rtts[rtts.len() - 1])),
            jitter: us(jitter),
            stddev: us(var.sqrt()),
        })
    }
}

fn us(v: f64) -> Duration {
    Duration::from_nanos((v * 1000.0).max(0.0) as u64)
}

/// What the loss over a window supports saying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossVerdict {
    Ok,
    Warn,
    Critical,
    /// Not enough samples to tell the loss is below `warn`.
    InsufficientData {
        needed: u64,
    },
}

/// Loss above `critical` or `warn` is reported as soon as it is observed;
/// "ok" needs the 95 % upper bound (Wilson) of the loss to be below `warn`.
pub fn loss_verdict(sent: u64, received: u64, warn: f64, critical: f64) -> LossVerdict {
    if sent == 0 {
        return LossVerdict::InsufficientData {
            needed: needed_for(warn),
        };
    }
    let lost = sent.saturating_sub(received);
    let p = lost as f64 / sent as f64;
    if p > critical {
        return LossVerdict::Critical;
    }
    if p > warn {
        return LossVerdict::Warn;
    }
    if wilson_upper(lost, sent) < warn {
        LossVerdict::Ok
    } else {
        LossVerdict::InsufficientData {
            needed: needed_for(warn),
        }
    }
}

/// Samples without loss needed before the upper bound drops below `warn`.
fn needed_for(warn: f64) -> u64 {
    // For zero losses the Wilson upper bound is z²/(n+z²).
    let z2 = 1.96f64 * 1.96;
    if warn <= 0.0 {
        return u64::MAX;
    }
    (z2 / warn - z2).ceil().max(1.0) as u64
}

/// The upper end of the Wilson score interval (95 %) of a proportion.
pub fn wilson_upper(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let z = 1.96f64;
    let n = n as f64;
    let p = k as f64 / n;
    let denom = 1.0 + z * z / n;
    let center = p + z * z / (2.0 * n);
    let margin = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt();
    ((center + margin) / denom).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn stats_over_a_window() {
        let mut s = Series::default();
        // RTTs 1, 3, lost, 2, 4 ms at 200 ms intervals.
        for (i, r) in [Some(1), Some(3), None, Some(2), Some(4)]
            .iter()
            .enumerate()
        {
            s.push(ms(200 * i as u64), r.map(ms));
        }
        let st = s.stats(ms(1000), Duration::from_secs(60)).expect("stats");
        assert_eq!((st.sent, st.received), (5, 4));
        assert_eq!(st.min, ms(1));
        assert_eq!(st.max, ms(4));
        assert_eq!(st.p50, ms(2));
        assert_eq!(st.avg, Duration::from_micros(2500));
        // |3-1| + |2-3| + |4-2| = 5 over 3 pairs.
        assert_eq!(st.jitter.as_micros(), 1666);
        assert!((st.loss() - 0.2).abs() < 1e-9);
        // A window that holds only the last two samples.
        let st = s.stats(ms(1000), ms(400)).expect("stats");
        assert_eq!((st.sent, st.received), (2, 2));
    }

    #[test]
    fn old_samples_expire_and_empty_windows_say_so() {
        let mut s = Series::default();
        s.push(ms(0), Some(ms(1)));
        s.push(Duration::from_secs(3601), Some(ms(1)));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.stats(Duration::from_secs(7300), Duration::from_secs(60)),
            None
        );
        let mut lost = Series::default();
        lost.push(ms(0), None);
        let st = lost.stats(ms(10), ms(100)).expect("stats");
        assert_eq!((st.sent, st.received), (1, 0));
        assert_eq!(st.loss(), 1.0);
    }

    #[test]
    fn loss_verdicts_need_evidence() {
        let (w, c) = (0.0001, 0.001);
        assert_eq!(
            loss_verdict(1000, 1000, w, c),
            LossVerdict::InsufficientData { needed: 38413 }
        );
        assert_eq!(loss_verdict(40_000, 40_000, w, c), LossVerdict::Ok);
        assert_eq!(loss_verdict(1000, 998, w, c), LossVerdict::Critical);
        assert_eq!(loss_verdict(10_000, 9_995, w, c), LossVerdict::Warn);
        assert_eq!(
            loss_verdict(0, 0, w, c),
            LossVerdict::InsufficientData { needed: 38413 }
        );
        assert!(wilson_upper(0, 100) > 0.03 && wilson_upper(0, 100) < 0.04);
    }
}

//! `[network.bandwidth]`: when and how the agent measures throughput against
//! the iperf3 servers named by `[[network.target]]` entries with an
//! `iperf_port`. Off by default: a test saturates the link it measures.

use crate::config::Interval;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Longest test the agent runs (per direction): a test saturates the
/// Direct Connect link, so it must stay bounded whatever the config says.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
/// Most parallel streams (iperf3 itself allows 128).
pub const MAX_PARALLEL: u16 = 128;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BandwidthConfig {
    /// Run tests on a schedule (each target with an `iperf_port`, one test
    /// at a time).
    pub enabled: bool,
    /// Time between two rounds of scheduled tests.
    pub interval: Interval,
    /// Length of one test, per direction (whole seconds, at most 5 minutes).
    pub duration: Interval,
    /// Parallel TCP streams (`iperf3 -P`).
    pub parallel: u16,
    /// Socket buffer size in bytes for every stream (`iperf3 -w`); 0 leaves
    /// the kernel's autotuning alone.
    pub window: u32,
    /// Directions a scheduled round measures.
    pub directions: Vec<Direction>,
    /// Throughput below this warns (bits per second: "10G", "800M").
    pub warn_below: Rate,
    /// Throughput below this fails.
    pub critical_below: Rate,
}

impl Default for BandwidthConfig {
    fn default() -> Self {
        BandwidthConfig {
            enabled: false,
            interval: Interval(Duration::from_secs(6 * 3600)),
            duration: Interval(Duration::from_secs(10)),
            parallel: 10,
            window: 0,
            directions: vec![Direction::Egress, Direction::Ingress],
            warn_below: Rate(10_000_000_000),
            critical_below: Rate(5_000_000_000),
        }
    }
}

impl BandwidthConfig {
    /// The section's own rules; the message names the key.
    pub fn validate(&self) -> Result<(), super::SettingError> {
        self.validate_text().map_err(super::SettingError)
    }

    fn validate_text(&self) -> Result<(), String> {
        let d = self.duration.get();
        if d > MAX_DURATION || d.subsec_nanos() != 0 {
            return Err(format!(
                "network.bandwidth.duration must be whole seconds between 1s and {}s, got {}",
                MAX_DURATION.as_secs(),
                self.duration
            ));
        }
        if self.parallel == 0 || self.parallel > MAX_PARALLEL {
            return Err(format!(
                "network.bandwidth.parallel must be between 1 and {MAX_PARALLEL}, got {}",
                self.parallel
            ));
        }
        if self.warn_below < self.critical_below {
            return Err(format!(
                "network.bandwidth.warn_below ({}) must not be below critical_below ({})",
                self.warn_below, self.critical_below
            ));
        }
        if self.enabled && self.interval.get() <= d * 2 {
            return Err(format!(
                "network.bandwidth.interval ({}) must be longer than two tests ({} each)",
                self.interval, self.duration
            ));
        }
        Ok(())
    }
}

/// Which way the data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The node sends to the target (on-premises → AWS): iperf3's default.
    Egress,
    /// The target sends to the node (AWS → on-premises): iperf3 `--reverse`.
    Ingress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }
}

/// A rate in bits per second, written as a number with an optional decimal
/// suffix: `10G`, `500M`, `2.5G`, `800000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(pub u64);

impl Rate {
    pub fn bits_per_second(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_bps(self.0 as f64))
    }
}

/// `9.41 Gbit/s`, `512 Mbit/s`.
pub fn format_bps(bps: f64) -> String {
    let (v, unit) = if bps >= 1e9 {
        (bps / 1e9, "Gbit/s")
    } else if bps >= 1e6 {
        (bps / 1e6, "Mbit/s")
    } else if bps >= 1e3 {
        (bps / 1e3, "kbit/s")
    } else {
        (bps, "bit/s")
    };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} {unit}")
}

/// `512K` → 524288 (binary multiples, as `iperf3 -w` reads them).
pub fn parse_bytes(s: &str) -> Result<u32, super::SettingError> {
    parse_bytes_text(s).map_err(super::SettingError)
}

fn parse_bytes_text(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1024u64),
        Some((i, 'M' | 'm')) => (&t[..i], 1024 * 1024),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected bytes such as 524288, 512K or 4M"))?;
    u32::try_from(n.saturating_mul(mult)).map_err(|_| format!("invalid size {s:?}: at most 4 GiB"))
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected bits per second such as \"10G\", \"500M\" or \"2.5G\"";
        let t = s.trim();
        let t = t
            .strip_suffix("bit/s")
            .or_else(|| t.strip_suffix("bps"))
            .unwrap_or(t)
            .trim_end();
        let (num, mult) = match t.chars().last() {
            Some('K' | 'k') => (&t[..t.len() - 1], 1e3),
            Some('M') => (&t[..t.len() - 1], 1e6),
            Some('G' | 'g') => (&t[..t.len() - 1], 1e9),
            Some('T' | 't') => (&t[..t.len() - 1], 1e12),
            _ => (t, 1.0),
        };
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("invalid rate {s:?}: {expected}"))?;
        if !v.is_finite() || v < 0.0 || v * mult > 1e15 {
            return Err(format!("invalid rate {s:?}: {expected}"));
        }
        Ok(Rate((v * mult).round() as u64))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        let text = if v >= 1_000_000_000 && v % 1_000_000_000 == 0 {
            format!("{}G", v / 1_000_000_000)
        } else if v >= 1_000_000 && v % 1_000_000 == 0 {
            format!("{}M", v / 1_000_000)
        } else if v >= 1_000 && v % 1_000 == 0 {
            format!("{}K", v / 1_000)
        } else {
            v.to_string()
        };
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_round_trip() {
        assert_eq!("10G".parse::<Rate>(), Ok(Rate(10_000_000_000)));
        assert_eq!("2.5G".parse::<Rate>(), Ok(Rate(2_500_000_000)));
        assert_eq!("800M".parse::<Rate>(), Ok(Rate(800_000_000)));
        assert_eq!("800 Mbit/s".parse::<Rate>(), Ok(Rate(800_000_000)));
        assert_eq!("1200".parse::<Rate>(), Ok(Rate(1200)));
        let e = "ten".parse::<Rate>().unwrap_err();
        assert!(e.contains("\"ten\"") && e.contains("10G"), "{e}");
        assert!("-1G".parse::<Rate>().is_err());
        assert_eq!(format_bps(9_410_000_000.0), "9.41 Gbit/s");
        assert_eq!(format_bps(500_000_000.0), "500 Mbit/s");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("512K"), Ok(524_288));
        assert_eq!(parse_bytes("4M"), Ok(4 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("big").unwrap_err().0.contains("512K"));
    }

    #[test]
    fn section_rules_name_the_key() {
        let mut c = BandwidthConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.duration = Interval(Duration::from_secs(301));
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("network.bandwidth.duration"));
        c.duration = Interval(Duration::from_millis(1500));
        assert!(c.validate().is_err());
        c = BandwidthConfig {
            parallel: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().0.contains("parallel"));
        c = BandwidthConfig {
            warn_below: Rate(1),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().0.contains("warn_below"));
        c = BandwidthConfig {
            enabled: true,
            interval: Interval(Duration::from_secs(15)),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().0.contains("interval"));
    }
}

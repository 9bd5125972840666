//! Pure verdicts: a measured throughput against the configured thresholds
//! (the adoption guide's > 10 Gbit/s target, 5–10 warn, < 5 critical).

use super::client::TestResult;
use super::config::{format_bps, BandwidthConfig, Rate};
use crate::check::{Check, Status};

/// Pass at or above `warn_below`, warn below it, fail below `critical_below`.
pub fn verdict(bits_per_second: f64, warn_below: Rate, critical_below: Rate) -> Status {
    if bits_per_second < critical_below.bits_per_second() as f64 {
        Status::Fail
    } else if bits_per_second < warn_below.bits_per_second() as f64 {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// `bandwidth/<target>/<direction>`.
pub fn check_id(target: &str, direction: &str) -> String {
    format!("bandwidth/{target}/{direction}")
}

/// One line a person reads: the rate, how it was measured, the thresholds.
pub fn summary(target: &str, r: &TestResult, parallel: u16, cfg: &BandwidthConfig) -> String {
    let retrans = r
        .retransmits
        .map(|n| format!(", {n} retransmits"))
        .unwrap_or_default();
    format!(
        "{} {} {target}: {} over {:.1} s with {parallel} streams{retrans} (target ≥ {}, critical < {})",
        r.direction.as_str(),
        match r.direction {
            super::config::Direction::Egress => "to",
            super::config::Direction::Ingress => "from",
        },
        format_bps(r.bits_per_second),
        r.seconds,
        cfg.warn_below,
        cfg.critical_below,
    )
}

/// The check for a finished test.
pub fn check_for(target: &str, r: &TestResult, parallel: u16, cfg: &BandwidthConfig) -> Check {
    let status = verdict(r.bits_per_second, cfg.warn_below, cfg.critical_below);
    let c = Check::new(
        super::DOMAIN,
        check_id(target, r.direction.as_str()),
        status,
        summary(target, r, parallel, cfg),
    );
    if status == Status::Pass {
        c
    } else {
        c.with_remedy(
            "compare with the Direct Connect connection's capacity and CloudWatch metrics; check \
             for a failover onto VPN, congestion, interface errors, or a window too small for the \
             RTT (raise --window / network.bandwidth.window)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::bandwidth::Direction;

    #[test]
    fn thresholds_of_the_adoption_guide() {
        let c = BandwidthConfig::default();
        let v = |g: f64| verdict(g * 1e9, c.warn_below, c.critical_below);
        assert_eq!(v(10.0), Status::Pass);
        assert_eq!(v(9.99), Status::Warn);
        assert_eq!(v(5.0), Status::Warn);
        assert_eq!(v(4.99), Status::Fail);
    }

    #[test]
    fn a_slow_result_fails_with_a_remedy_and_names_the_thresholds() {
        let r = TestResult {
            direction: Direction::Ingress,
            bits_per_second: 2.5e9,
            bytes: 0,
            seconds: 10.0,
            sender_bits_per_second: 2.6e9,
            retransmits: Some(12),
            streams: Vec::new(),
        };
        let c = check_for("vpc", &r, 10, &BandwidthConfig::default());
        assert_eq!(c.id, "bandwidth/vpc/ingress");
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.summary.contains("ingress from vpc: 2.5 Gbit/s over 10.0 s with 10 streams, 12 retransmits (target ≥ 10 Gbit/s, critical < 5 Gbit/s)"),
            "{}",
            c.summary
        );
        assert!(c.remedy.is_some());
    }
}

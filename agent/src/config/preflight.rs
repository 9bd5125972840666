//! `[preflight]`: thresholds of the host checks nodeadm runs at `init` and
//! in `nodeadm debug` (clock, swap, limits, proxy, host firewall, an earlier
//! install left behind).

use super::{Interval, SettingError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreflightConfig {
    /// How often the host checks run.
    pub interval: Interval,
    /// Clock offset from the time source above which the clock check warns.
    pub clock_offset_warn: Interval,
    /// Clock offset above which it fails: TLS, SigV4 (5 minutes at most)
    /// and certificate validity all break on a skewed clock.
    pub clock_offset_fail: Interval,
    /// Lowest acceptable open-files limit (`LimitNOFILE`) of the kubelet
    /// and containerd (nodeadm's ulimit validation: 1024).
    pub min_nofile: u64,
    /// Lowest acceptable process limit (`LimitNPROC`; nodeadm: 4096).
    pub min_nproc: u64,
    /// The CNI whose VXLAN port the host firewall must let in: `cilium`
    /// (8472/udp) or `calico` (4789/udp).
    pub cni: Cni,
}

/// The CNIs EKS hybrid nodes support, by their VXLAN port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    Cilium,
    Calico,
}

impl Cni {
    /// The UDP port its VXLAN overlay uses (Cilium's `tunnel-port` default
    /// 8472, the Linux kernel's; Calico's `vxlanPort` default 4789, IANA's).
    pub fn vxlan_port(self) -> u16 {
        match self {
            Cni::Cilium => 8472,
            Cni::Calico => 4789,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cni::Cilium => "cilium",
            Cni::Calico => "calico",
        }
    }
}

impl Default for PreflightConfig {
    fn default() -> Self {
        PreflightConfig {
            interval: Interval(Duration::from_secs(60)),
            clock_offset_warn: Interval(Duration::from_millis(100)),
            clock_offset_fail: Interval(Duration::from_secs(1)),
            min_nofile: 1024,
            min_nproc: 4096,
            cni: Cni::Cilium,
        }
    }
}

impl PreflightConfig {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.clock_offset_warn > self.clock_offset_fail {
            return Err(SettingError(format!(
                "preflight.clock_offset_warn ({}) must not exceed preflight.clock_offset_fail ({})",
                self.clock_offset_warn, self.clock_offset_fail
            )));
        }
        if self.min_nofile == 0 || self.min_nproc == 0 {
            return Err(SettingError(
                "preflight.min_nofile and preflight.min_nproc must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_validated_by_name() {
        assert_eq!(PreflightConfig::default().validate(), Ok(()));
        let c = PreflightConfig {
            clock_offset_warn: Interval(Duration::from_secs(2)),
            ..PreflightConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("preflight.clock_offset_warn"));
        let c = PreflightConfig {
            min_nproc: 0,
            ..PreflightConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("preflight.min_nproc"));
        assert_eq!(Cni::Calico.vxlan_port(), 4789);
        assert_eq!(Cni::Cilium.vxlan_port(), 8472);
    }
}

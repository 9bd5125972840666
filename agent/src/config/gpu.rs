//! `[gpu]`: expectations and thresholds of the GPU domain.

use super::Interval;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    pub interval: Interval,
    /// GPUs the host must have; unset: from the node labels (gpu-count) or
    /// whatever NVML finds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_count: Option<u32>,
    /// Oldest acceptable driver major version.
    pub min_driver: u32,
    /// XIDs that fail the check until they age out of `xid_window`.
    pub xid_fatal: Vec<u64>,
    /// XIDs only counted.
    pub xid_ignore: Vec<u64>,
    pub xid_window: Interval,
    /// Warn this many °C below the slowdown threshold.
    pub thermal_margin: u32,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            interval: Interval(Duration::from_secs(30)),
            expected_count: None,
            min_driver: 550,
            xid_fatal: crate::model::xid::DEFAULT_FATAL.to_vec(),
            xid_ignore: crate::model::xid::DEFAULT_IGNORE.to_vec(),
            xid_window: Interval(Duration::from_secs(24 * 3600)),
            thermal_margin: 5,
        }
    }
}

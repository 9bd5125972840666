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
    /// The NVML library: a name the dynamic loader finds, or a path (a
    /// containerised driver's /run/nvidia/driver/usr/lib64/libnvidia-ml.so.1).
    pub nvml_library: String,
    /// Active NVLink links every GPU must have; unset: 18 on an H100 SXM
    /// (NVLink 4), otherwise whatever NVML lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_nvlinks: Option<u32>,
}

impl GpuConfig {
    pub fn validate(&self) -> Result<(), super::SettingError> {
        if self.nvml_library.trim().is_empty() {
            return Err(super::SettingError(
                "gpu.nvml_library must name the NVML library (libnvidia-ml.so.1 or a path)".into(),
            ));
        }
        if self.nvml_library.contains('/') && !self.nvml_library.starts_with('/') {
            return Err(super::SettingError(format!(
                "gpu.nvml_library must be an absolute path or a bare library name, got {:?}",
                self.nvml_library
            )));
        }
        if self.expected_nvlinks.is_some_and(|n| n > 18) {
            return Err(super::SettingError(format!(
                "gpu.expected_nvlinks must be at most 18 (NVLink 4 links per GPU), got {}",
                self.expected_nvlinks.unwrap_or(0)
            )));
        }
        Ok(())
    }
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
            nvml_library: "libnvidia-ml.so.1".into(),
            expected_nvlinks: None,
        }
    }
}

//! A scripted GPU source for tests: the test holds a handle and changes what
//! the "hardware" reports between runs.

use super::source::{DriverInfo, GpuReading, GpuSource, SourceError, XidEvent};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default, Clone)]
pub struct Script {
    pub driver: Option<Result<DriverInfo, SourceError>>,
    pub gpus: Vec<Result<GpuReading, SourceError>>,
    pub xids: Vec<XidEvent>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeSource {
    pub script: Arc<Mutex<Script>>,
}

impl FakeSource {
    pub fn set(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl GpuSource for FakeSource {
    fn driver(&mut self) -> Result<DriverInfo, SourceError> {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .driver
            .clone()
            .unwrap_or_else(|| Err(SourceError::NoLibrary("libnvidia-ml.so.1 not found".into())))
    }

    fn count(&mut self) -> Result<u32, SourceError> {
        let s = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(u32::try_from(s.gpus.len()).unwrap_or(u32::MAX))
    }

    fn read(&mut self, index: u32) -> Result<GpuReading, SourceError> {
        let s = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        s.gpus
            .get(index as usize)
            .cloned()
            .unwrap_or(Err(SourceError::Other(format!("no GPU {index}"))))
    }

    fn xids(&mut self) -> Vec<XidEvent> {
        std::mem::take(
            &mut self
                .script
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .xids,
        )
    }
}

/// A healthy H100 SXM reading (as seen on a real H100 80GB HBM3, driver 580).
pub fn healthy_h100(index: u32) -> GpuReading {
    GpuReading {
        index,
        name: "NVIDIA H100 80GB HBM3".into(),
        uuid: format!("GPU-00000000-0000-0000-0000-00000000000{index}"),
        pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + index),
        vbios: "96.00.99.00.01".into(),
        ecc_enabled: Some(true),
        ecc_pending: Some(true),
        ecc_uncorrected_volatile: Some(0),
        ecc_uncorrected_aggregate: Some(0),
        ecc_corrected_volatile: Some(0),
        remap: Some(super::source::Remap::default()),
        retired_pages: None,
        pcie_gen: Some((5, 5)),
        pcie_width: Some((16, 16)),
        pcie_replays: Some(0),
        nvlink: None,
        persistence: Some(true),
        mig: Some((false, false)),
        clock_events: Some(0x1), // GPU idle
        temperature: Some(34),
        slowdown_temperature: Some(87),
        power_watts: Some(72.0),
        power_limit_watts: Some(700.0),
        memory_temperature: Some(40),
        memory_max_temperature: Some(95),
        nvlink_errors: None,
        fabric: None,
        recovery_action: Some(0),
    }
}

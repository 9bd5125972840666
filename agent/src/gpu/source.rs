//! What the GPU domain reads, behind a trait: NVML on a real host, a
//! scripted fake in tests.

/// The driver as NVML reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DriverInfo {
    pub version: String,
    pub cuda_version: Option<String>,
}

/// Row remapping (Hopper and Ampere), NVML field values 142–145.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Remap {
    pub correctable: u64,
    pub uncorrectable: u64,
    pub pending: bool,
    pub failure: bool,
}

/// One reading of one GPU. `None`: not supported on this GPU or driver.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuReading {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub pci_bus_id: String,
    pub vbios: String,
    pub ecc_enabled: Option<bool>,
    pub ecc_pending: Option<bool>,
    pub ecc_uncorrected_volatile: Option<u64>,
    pub ecc_uncorrected_aggregate: Option<u64>,
    pub ecc_corrected_volatile: Option<u64>,
    pub remap: Option<Remap>,
    pub retired_pages: Option<u64>,
    /// (current, max)
    pub pcie_gen: Option<(u32, u32)>,
    /// (current, max)
    pub pcie_width: Option<(u32, u32)>,
    pub pcie_replays: Option<u64>,
    /// Per link: active.
    pub nvlink: Option<Vec<bool>>,
    pub persistence: Option<bool>,
    /// (current, pending)
    pub mig: Option<(bool, bool)>,
    /// NVML clocks event reasons bitmask.
    pub clock_events: Option<u64>,
    pub temperature: Option<u32>,
    pub slowdown_temperature: Option<u32>,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    /// HBM temperature (field 82) and its slowdown limit (MEM_MAX).
    pub memory_temperature: Option<u32>,
    pub memory_max_temperature: Option<u32>,
    /// NVLink error counters summed over the GPU's links.
    pub nvlink_errors: Option<NvlinkErrors>,
    /// NVSwitch fabric registration (`nvmlDeviceGetGpuFabricInfo`).
    pub fabric: Option<Fabric>,
    /// What the driver asks for (field 230, NVML_FI_DEV_GET_GPU_RECOVERY_ACTION):
    /// 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset.
    pub recovery_action: Option<u32>,
}

/// NVLink data-link error counters (NVML_NVLINK_ERROR_DL_*), totals of all links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NvlinkErrors {
    /// CRC errors (flit and data).
    pub crc: u64,
    pub replay: u64,
    pub recovery: u64,
}

/// A GPU's NVSwitch fabric state as NVML reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fabric {
    /// NVML_GPU_FABRIC_STATE_*: 0 not supported, 1 not started, 2 in
    /// progress, 3 completed.
    pub state: u8,
    /// The registration's result (an nvmlReturn_t; 0 success).
    pub status: u32,
    /// NVML_GPU_FABRIC_HEALTH_MASK_* (0 where the driver has no v2 call).
    pub health_mask: u32,
}

/// Why a reading failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// `libnvidia-ml.so.1` is not there (no driver installed).
    #[error("NVML is not available: {0}")]
    NoLibrary(String),
    /// The loaded library and the kernel module disagree.
    #[error("NVML library and kernel module versions differ: {0}")]
    DriverMismatch(String),
    /// The GPU fell off the bus.
    #[error("GPU {0} has fallen off the bus (GPU lost)")]
    GpuLost(u32),
    #[error("{0}")]
    Other(String),
}

/// An XID event as NVML delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XidEvent {
    pub gpu: u32,
    pub xid: u64,
}

pub trait GpuSource: Send + std::fmt::Debug {
    /// The NVML library to load from now on (`gpu.nvml_library`).
    fn set_library(&mut self, _library: &str) {}
    fn driver(&mut self) -> Result<DriverInfo, SourceError>;
    fn count(&mut self) -> Result<u32, SourceError>;
    fn read(&mut self, index: u32) -> Result<GpuReading, SourceError>;
    /// XID events since the last call (fed by a waiting thread).
    fn xids(&mut self) -> Vec<XidEvent>;
}

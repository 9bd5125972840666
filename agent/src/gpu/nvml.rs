//! The real GPU source: NVML through `nvml-wrapper`, loaded from
//! `gpu.nvml_library` (default `libnvidia-ml.so.1`: the unversioned `.so`
//! often does not exist). A failed initialisation is retried with backoff
//! (the agent normally starts before the driver is loaded), and a driver
//! that stops answering (unloaded, or upgraded under the running library:
//! LIB_RM_VERSION_MISMATCH) drops the handle so the next run initialises
//! again. XID events come from a dedicated thread that blocks on an NVML
//! event set and feeds a bounded channel.

use super::source::{
    DriverInfo, GpuReading, GpuSource, NvlinkErrors, Remap, SourceError, XidEvent,
};
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    EccCounter, MemoryError, RetirementCause, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::Nvml;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// NVML field ids read in one call (nvml.h NVML_FI_DEV_*): row remapping
/// (correctable, uncorrectable, pending, failure), HBM temperature, and the
/// recovery action the driver asks for (R575 and newer).
const FIELDS: [u32; 6] = [142, 143, 144, 145, 82, 230];
/// First wait before initialising again after a failure; doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// NVLink links per GPU at most.
const MAX_LINKS: u32 = 18;

fn map_err(e: NvmlError, index: Option<u32>) -> SourceError {
    match e {
        NvmlError::LibloadingError(e) => SourceError::NoLibrary(e.to_string()),
        NvmlError::DriverNotLoaded => {
            SourceError::NoLibrary("the NVIDIA kernel driver is not loaded".into())
        }
        NvmlError::LibRmVersionMismatch => SourceError::DriverMismatch(
            "NVML reports LibRmVersionMismatch: reboot or reload the kernel module".into(),
        ),
        NvmlError::GpuLost => SourceError::GpuLost(index.unwrap_or(0)),
        other => SourceError::Other(other.to_string()),
    }
}

/// `Ok(None)` for "not supported on this GPU" — or by this library: an
/// older `libnvidia-ml` without the function reaches nvml-wrapper as a
/// symbol it could not load (`FailedToLoadSymbol`), NVML's own
/// `FunctionNotFound` where the library has it but the driver does not.
fn opt<T>(r: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(
            NvmlError::NotSupported
            | NvmlError::InvalidArg
            | NvmlError::FunctionNotFound
            | NvmlError::FailedToLoadSymbol(_),
        ) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Initialised on first use, on the domain's probe thread: NVML init can
/// take seconds on a GPU without persistence mode, and must not delay the
/// agent's start.
#[derive(Debug)]
pub struct NvmlSource {
    library: String,
    state: State,
    xids: Option<Receiver<XidEvent>>,
    /// Stops the XID thread of the current handle.
    stop: Arc<AtomicBool>,
}

#[derive(Debug)]
enum State {
    Idle,
    // Boxed: the symbol table is ~12 KiB.
    Ready(Box<Nvml>),
    Failed {
        error: SourceError,
        retry_at: Instant,
        backoff: Duration,
        attempts: u32,
    },
}

impl Drop for NvmlSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl NvmlSource {
    pub fn new(library: &str) -> Self {
        NvmlSource {
            library: library.to_owned(),
            state: State::Idle,
            xids: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Drops the handle (and stops its XID thread): the next call
    /// initialises again.
    fn reset(&mut self, error: SourceError) {
        self.stop.store(true, Ordering::Relaxed);
        self.xids = None;
        tracing::warn!("NVML stopped answering ({error}); initialising it again");
        self.state = State::Failed {
            error,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            attempts: 0,
        };
    }

    /// A driver-level error drops the handle; others pass through.
    fn check<T>(&mut self, r: Result<T, SourceError>) -> Result<T, SourceError> {
        if let Err(e @ (SourceError::NoLibrary(_) | SourceError::DriverMismatch(_))) = &r {
            self.reset(e.clone());
        }
        r
    }

    /// The NVML handle: initialised (and the XID thread started) the first
    /// time it is needed, and again after a failure once the backoff has
    /// passed.
    fn nvml(&mut self) -> Result<&Nvml, SourceError> {
        let now = Instant::now();
        let (backoff, attempts) = match &self.state {
            State::Ready(_) | State::Idle => (FIRST_BACKOFF, 0),
            State::Failed {
                error, retry_at, ..
            } if now < *retry_at => return Err(error.clone()),
            State::Failed {
                backoff, attempts, ..
            } => (*backoff, *attempts),
        };
        if !matches!(self.state, State::Ready(_)) {
            match Nvml::builder().lib_path(OsStr::new(&self.library)).init() {
                Ok(nvml) => {
                    if attempts > 0 {
                        tracing::info!(
                            attempts,
                            "NVML initialised from {} after {attempts} failed attempt(s)",
                            self.library
                        );
                    }
                    self.start_xid_thread();
                    self.state = State::Ready(Box::new(nvml));
                }
                Err(e) => {
                    let error = map_err(e, None);
                    if attempts == 0 {
                        tracing::warn!(
                            "cannot initialise NVML from {}: {error}; retrying with backoff",
                            self.library
                        );
                    }
                    self.state = State::Failed {
                        error: error.clone(),
                        retry_at: now + backoff,
                        backoff: (backoff * 2).min(MAX_BACKOFF),
                        attempts: attempts + 1,
                    };
                    return Err(error);
                }
            }
        }
        match &self.state {
            State::Ready(n) => Ok(n),
            _ => Err(SourceError::Other("NVML not initialised".into())),
        }
    }

    fn start_xid_thread(&mut self) {
        let (tx, rx) = sync_channel(256);
        self.stop = Arc::new(AtomicBool::new(false));
        let stop = self.stop.clone();
        let library = self.library.clone();
        self.xids = std::thread::Builder::new()
            .name("nvml-xid".into())
            .spawn(move || watch_xids(&library, &tx, &stop))
            .map_err(|e| tracing::warn!("cannot start the XID thread: {e}"))
            .ok()
            .map(|_| rx);
    }

    fn read_device(nvml: &Nvml, index: u32) -> Result<GpuReading, NvmlError> {
        let d = nvml.device_by_index(index)?;
        let ecc = opt(d.is_ecc_enabled())?;
        let total = |kind, counter| opt(d.total_ecc_errors(kind, counter));
        let fields: Vec<Option<u64>> = match opt(d.field_values_for(&FIELDS.map(FieldId)))? {
            Some(values) => values
                .into_iter()
                .map(|s| match s.ok().map(|s| s.value) {
                    Some(Ok(SampleValue::U64(v))) => Some(v),
                    Some(Ok(SampleValue::U32(v))) => Some(u64::from(v)),
                    Some(Ok(SampleValue::I64(v))) => u64::try_from(v).ok(),
                    _ => None,
                })
                .collect(),
            None => vec![None; FIELDS.len()],
        };
        let remap = match fields.as_slice() {
            [Some(c), Some(u), Some(p), Some(f), ..] => Some(Remap {
                correctable: *c,
                uncorrectable: *u,
                pending: *p != 0,
                failure: *f != 0,
            }),
            _ => None,
        };
        let field = |i: usize| {
            fields
                .get(i)
                .copied()
                .flatten()
                .and_then(|v| u32::try_from(v).ok())
        };
        let retired = match (
            opt(d.retired_pages(RetirementCause::MultipleSingleBitEccErrors))?,
            opt(d.retired_pages(RetirementCause::DoubleBitEccError))?,
        ) {
            (Some(a), Some(b)) => Some((a.len() + b.len()) as u64),
            _ => None,
        };
        let mut links = Vec::new();
        let mut link_errors: Option<NvlinkErrors> = None;
        for l in 0..MAX_LINKS {
            let link = d.link_wrapper_for(l);
            match link.is_active() {
                Ok(up) => links.push(up),
                Err(_) => break,
            }
            let count = |c| opt(link.error_counter(c)).ok().flatten();
            if let (Some(flit), Some(data), Some(replay), Some(recovery)) = (
                count(ErrorCounter::DlCrcFlit),
                count(ErrorCounter::DlCrcData),
                count(ErrorCounter::DlReplay),
                count(ErrorCounter::DlRecovery),
            ) {
                let e = link_errors.get_or_insert_with(NvlinkErrors::default);
                e.crc += flit + data;
                e.replay += replay;
                e.recovery += recovery;
            }
        }
        let pcie_gen = match (opt(d.current_pcie_link_gen())?, opt(d.max_pcie_link_gen())?) {
            (Some(c), Some(m)) => Some((c, m)),
            _ => None,
        };
        let pcie_width = match (
            opt(d.current_pcie_link_width())?,
            opt(d.max_pcie_link_width())?,
        ) {
            (Some(c), Some(m)) => Some((c, m)),
            _ => None,
        };
        Ok(GpuReading {
            index,
            name: d.name()?,
            uuid: d.uuid()?,
            pci_bus_id: d.pci_info().map(|p| p.bus_id).unwrap_or_default(),
            vbios: opt(d.vbios_version())?.unwrap_or_default(),
            ecc_enabled: ecc.as_ref().map(|e| e.currently_enabled),
            ecc_pending: ecc.as_ref().map(|e| e.pending_enabled),
            ecc_uncorrected_volatile: total(MemoryError::Uncorrected, EccCounter::Volatile)?,
            ecc_uncorrected_aggregate: total(MemoryError::Uncorrected, EccCounter::Aggregate)?,
            ecc_corrected_volatile: total(MemoryError::Corrected, EccCounter::Volatile)?,
            remap,
            retired_pages: retired,
            pcie_gen,
            pcie_width,
            pcie_replays: opt(d.pcie_replay_counter())?.map(u64::from),
            nvlink: (!links.is_empty()).then_some(links),
            persistence: opt(d.is_in_persistent_mode())?,
            mig: opt(d.mig_mode())?.map(|m| (m.current != 0, m.pending != 0)),
            clock_events: opt(d.current_throttle_reasons())?.map(|r| r.bits()),
            temperature: opt(d.temperature(TemperatureSensor::Gpu))?,
            slowdown_temperature: opt(d.temperature_threshold(TemperatureThreshold::Slowdown))?,
            power_watts: opt(d.power_usage())?.map(|mw| f64::from(mw) / 1000.0),
            power_limit_watts: opt(d.enforced_power_limit())?.map(|mw| f64::from(mw) / 1000.0),
            memory_temperature: field(4),
            memory_max_temperature: opt(d.temperature_threshold(TemperatureThreshold::MemoryMax))?,
            nvlink_errors: link_errors,
            fabric: opt(super::nvml_raw::fabric(nvml, &d))?.filter(|f| f.state != 0),
            recovery_action: field(5),
        })
    }
}

/// Waits for critical XID errors of every GPU: one event set per GPU (a
/// failed registration consumes its set), waited on in turn.
fn watch_xids(library: &str, tx: &SyncSender<XidEvent>, stop: &AtomicBool) {
    let nvml = match Nvml::builder().lib_path(OsStr::new(library)).init() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("XID events not available: cannot initialise NVML from {library}: {e}");
            return;
        }
    };
    let mut sets = Vec::new();
    for i in 0..nvml.device_count().unwrap_or(0) {
        let registered = nvml
            .device_by_index(i)
            .and_then(|d| Ok((d, nvml.create_event_set()?)))
            .map_err(|e| e.to_string())
            .and_then(|(d, set)| {
                d.register_events(EventTypes::CRITICAL_XID_ERROR, set)
                    .map_err(|e| e.error.to_string())
            });
        match registered {
            Ok(set) => sets.push((i, set)),
            Err(e) => {
                tracing::warn!(gpu = i, error = %e, "XID events of GPU {i} not available: {e}")
            }
        }
    }
    if sets.is_empty() {
        return;
    }
    let slice = u32::try_from(1000 / sets.len()).unwrap_or(100).max(50);
    while !stop.load(Ordering::Relaxed) {
        for (gpu, set) in &sets {
            // Drain what is queued for this GPU (an XID storm) before the
            // next one waits; bounded so one GPU cannot starve the others.
            let mut timeout = slice;
            for _ in 0..DRAIN {
                match set.wait(timeout) {
                    Ok(data) => {
                        timeout = 0;
                        if let Some(XidError::Value(xid)) = data.event_data {
                            // The set's GPU: a lost GPU's handle no longer
                            // answers nvmlDeviceGetIndex.
                            tracing::debug!(gpu, xid, "XID {xid} on GPU {gpu}");
                            if !send(tx, XidEvent { gpu: *gpu, xid }, stop) {
                                return;
                            }
                        }
                    }
                    Err(NvmlError::Timeout) => break,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(u64::from(slice)));
                        break;
                    }
                }
            }
        }
    }
}

/// Events taken from one GPU's set in a row at most.
const DRAIN: usize = 1024;

/// Hands an event to the domain. A full channel (a storm between two runs)
/// holds it here, NVML queueing the rest meanwhile. `false`: stop.
fn send(tx: &SyncSender<XidEvent>, mut event: XidEvent, stop: &AtomicBool) -> bool {
    loop {
        match tx.try_send(event) {
            Ok(()) => return true,
            Err(TrySendError::Full(e)) if !stop.load(Ordering::Relaxed) => {
                event = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => return false,
        }
    }
}

impl GpuSource for NvmlSource {
    fn set_library(&mut self, library: &str) {
        if library != self.library {
            self.library = library.to_owned();
            self.stop.store(true, Ordering::Relaxed);
            self.xids = None;
            self.state = State::Idle;
        }
    }

    fn driver(&mut self) -> Result<DriverInfo, SourceError> {
        let nvml = self.nvml()?;
        let version = nvml.sys_driver_version().map_err(|e| map_err(e, None));
        let cuda = nvml
            .sys_cuda_driver_version()
            .ok()
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
        let version = self.check(version)?;
        Ok(DriverInfo {
            version,
            cuda_version: cuda,
        })
    }

    fn count(&mut self) -> Result<u32, SourceError> {
        let nvml = self.nvml()?;
        let r = nvml.device_count().map_err(|e| map_err(e, None));
        self.check(r)
    }

    fn read(&mut self, index: u32) -> Result<GpuReading, SourceError> {
        let nvml = self.nvml()?;
        Self::read_device(nvml, index).map_err(|e| map_err(e, Some(index)))
    }

    fn xids(&mut self) -> Vec<XidEvent> {
        self.xids
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_the_library_lacks_is_not_supported_not_an_error() {
        // What nvml-wrapper reports for a symbol an older libnvidia-ml
        // does not export.
        let missing = NvmlError::FailedToLoadSymbol("nvmlDeviceGetGpuFabricInfoV".into());
        assert_eq!(opt::<u32>(Err(missing)).ok(), Some(None));
        assert_eq!(
            opt::<u32>(Err(NvmlError::FunctionNotFound)).ok(),
            Some(None)
        );
        assert!(opt::<u32>(Err(NvmlError::GpuLost)).is_err());
    }
}

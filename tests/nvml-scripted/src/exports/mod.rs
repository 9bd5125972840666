//! The exported NVML functions. Each checks the library state (initialised,
//! driver answering, GPU not lost, no forced failure), then writes through
//! the caller's out-pointers. Here: the shared helpers and the ABI check;
//! the calls in `system` (init, versions), `device` (per-GPU readings) and
//! `event` (XID event sets).

// NVML's own constant names, matched in patterns.
#![allow(non_upper_case_globals)]
use crate::scenario::{Code, Gpu};
use crate::state;
use nvml_wrapper_sys::bindings::*;
use std::ffi::{c_char, c_int, c_uint, c_ulonglong};
use std::time::{Duration, Instant};

const SUCCESS: Code = nvmlReturn_enum_NVML_SUCCESS;
const NOT_SUPPORTED: Code = nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED;
const INVALID: Code = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;

fn handle(index: u32) -> nvmlDevice_t {
    std::ptr::without_provenance_mut(index as usize + 1)
}

fn index(device: nvmlDevice_t) -> Option<u32> {
    (device.addr() as u32).checked_sub(1)
}

fn supported<T>(v: Option<T>) -> Result<T, Code> {
    v.ok_or(NOT_SUPPORTED)
}

/// Writes `v` to `out`.
///
/// # Safety
/// `out` is null or valid for a write of `T` (the NVML contract).
unsafe fn put<T>(out: *mut T, v: T) -> Code {
    if out.is_null() {
        return INVALID;
    }
    // SAFETY: non-null, and the caller passes a valid `T` out-parameter.
    unsafe { out.write(v) };
    SUCCESS
}

/// Copies `s` NUL-terminated into the caller's buffer of `len` bytes.
///
/// # Safety
/// `buf` is null or valid for `len` bytes.
unsafe fn put_str(buf: *mut c_char, len: c_uint, s: &str) -> Code {
    if buf.is_null() {
        return INVALID;
    }
    if (len as usize) < s.len() + 1 {
        return nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE;
    }
    // SAFETY: `buf` holds `len` ≥ s.len() + 1 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr().cast::<c_char>(), buf, s.len());
        buf.add(s.len()).write(0);
    }
    SUCCESS
}

fn done<T>(r: Result<T, Code>, write: impl FnOnce(T) -> Code) -> Code {
    match r {
        Ok(v) => write(v),
        Err(c) => c,
    }
}

/// `fn name(device, *mut T)`: one reading of one GPU.
macro_rules! device_value {
    ($name:ident, $t:ty, |$g:ident| $body:expr) => {
        /// # Safety
        /// NVML's contract: `out` valid for a write.
        #[no_mangle]
        pub unsafe extern "C" fn $name(device: nvmlDevice_t, out: *mut $t) -> nvmlReturn_t {
            let s = state();
            let r = s
                .gpu(index(device), stringify!($name))
                .and_then(|$g: &Gpu| $body);
            // SAFETY: forwarded from the caller.
            done(r, |v| unsafe { put(out, v) })
        }
    };
}

/// `fn name(device, *mut c_char, len)`: a string of one GPU.
macro_rules! device_string {
    ($name:ident, |$g:ident| $body:expr) => {
        /// # Safety
        /// NVML's contract: `buf` valid for `len` bytes.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            device: nvmlDevice_t,
            buf: *mut c_char,
            len: c_uint,
        ) -> nvmlReturn_t {
            let s = state();
            let r = s
                .gpu(index(device), stringify!($name))
                .and_then(|$g: &Gpu| $body);
            // SAFETY: forwarded from the caller.
            done(r, |v: String| unsafe { put_str(buf, len, &v) })
        }
    };
}

mod device;
mod event;
mod system;

use device::*;
use event::*;
use system::*;

/// Compile-time ABI check: every export coerces to the function-pointer
/// type of its field in `nvml-wrapper-sys`'s `NvmlLib`, the type the
/// agent calls it through.
#[allow(dead_code)]
fn abi(l: &NvmlLib) {
    fn same<T, E>(_: &Result<T, E>, _: T) {}
    macro_rules! check { ($($f:ident),* $(,)?) => { $( same(&l.$f, $f); )* } }
    check!(
        nvmlInit_v2,
        nvmlInitWithFlags,
        nvmlShutdown,
        nvmlErrorString,
        nvmlSystemGetDriverVersion,
        nvmlSystemGetNVMLVersion,
        nvmlSystemGetCudaDriverVersion,
        nvmlSystemGetCudaDriverVersion_v2,
        nvmlDeviceGetCount_v2,
        nvmlDeviceGetHandleByIndex_v2,
        nvmlDeviceGetIndex,
        nvmlDeviceGetName,
        nvmlDeviceGetUUID,
        nvmlDeviceGetSerial,
        nvmlDeviceGetVbiosVersion,
        nvmlDeviceGetPciInfo_v3,
        nvmlDeviceGetEccMode,
        nvmlDeviceGetTotalEccErrors,
        nvmlDeviceGetFieldValues,
        nvmlDeviceGetRetiredPages,
        nvmlDeviceGetRetiredPages_v2,
        nvmlDeviceGetNvLinkState,
        nvmlDeviceGetNvLinkErrorCounter,
        nvmlDeviceGetCurrPcieLinkGeneration,
        nvmlDeviceGetMaxPcieLinkGeneration,
        nvmlDeviceGetCurrPcieLinkWidth,
        nvmlDeviceGetMaxPcieLinkWidth,
        nvmlDeviceGetPcieReplayCounter,
        nvmlDeviceGetPersistenceMode,
        nvmlDeviceGetMigMode,
        nvmlDeviceGetCurrentClocksThrottleReasons,
        nvmlDeviceGetCurrentClocksEventReasons,
        nvmlDeviceGetTemperature,
        nvmlDeviceGetTemperatureThreshold,
        nvmlDeviceGetPowerUsage,
        nvmlDeviceGetEnforcedPowerLimit,
        nvmlDeviceGetGpuFabricInfo,
        nvmlDeviceGetGpuFabricInfoV,
        nvmlEventSetCreate,
        nvmlDeviceRegisterEvents,
        nvmlDeviceGetSupportedEventTypes,
        nvmlEventSetWait_v2,
        nvmlEventSetFree,
    );
}

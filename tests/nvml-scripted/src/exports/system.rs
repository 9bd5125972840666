//! Library and system calls: init and shutdown, error strings, driver
//! and CUDA versions.

use super::*;

fn init() -> Code {
    let mut s = state();
    let code = match &s.scenario {
        Err(_) => nvmlReturn_enum_NVML_ERROR_UNKNOWN,
        Ok(sc) => sc.init,
    };
    if code == SUCCESS {
        s.inits += 1;
        s.started.get_or_insert_with(Instant::now);
        s.loaded = s.scenario.clone().ok();
    }
    code
}

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    init()
}

#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    init()
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    let mut s = state();
    if s.inits == 0 {
        return nvmlReturn_enum_NVML_ERROR_UNINITIALIZED;
    }
    s.inits -= 1;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    let s: &'static std::ffi::CStr = match result {
        nvmlReturn_enum_NVML_SUCCESS => c"Success",
        nvmlReturn_enum_NVML_ERROR_UNINITIALIZED => c"Uninitialized",
        nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED => c"Not Supported",
        nvmlReturn_enum_NVML_ERROR_DRIVER_NOT_LOADED => c"Driver Not Loaded",
        nvmlReturn_enum_NVML_ERROR_TIMEOUT => c"Timeout",
        nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST => c"GPU is lost",
        nvmlReturn_enum_NVML_ERROR_LIB_RM_VERSION_MISMATCH => {
            c"RM has detected an NVML/RM version mismatch."
        }
        _ => c"Unknown Error",
    };
    s.as_ptr()
}

/// # Safety
/// NVML's contract: `buf` valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(buf: *mut c_char, len: c_uint) -> nvmlReturn_t {
    let s = state();
    let r = s.ready().map(|sc| sc.driver_version.clone());
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put_str(buf, len, &v) })
}

/// # Safety
/// NVML's contract: `buf` valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(buf: *mut c_char, len: c_uint) -> nvmlReturn_t {
    let s = state();
    let r = s
        .ready()
        .map(|sc| format!("{}.{}", sc.cuda_version / 1000, sc.driver_version));
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put_str(buf, len, &v) })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(out: *mut c_int) -> nvmlReturn_t {
    let s = state();
    let r = s.ready().map(|sc| sc.cuda_version);
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion(out: *mut c_int) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { nvmlSystemGetCudaDriverVersion_v2(out) }
}

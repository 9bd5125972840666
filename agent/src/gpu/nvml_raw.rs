//! The one place the agent calls NVML without `nvml-wrapper`'s safe
//! methods: `nvmlDeviceGetGpuFabricInfoV` / `nvmlDeviceGetGpuFabricInfo`
//! (NVSwitch fabric registration, nvml.h since R525), which the wrapper
//! loads (`Nvml::lib()`) but does not wrap. The workspace denies
//! `unsafe_code`; this module alone allows it, for these two calls.

#![allow(unsafe_code)]

use super::source::Fabric;
use nvml_wrapper::error::{nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{
    nvmlGpuFabricInfoV_t, nvmlGpuFabricInfo_t, nvmlGpuFabricInfo_v2_t,
};

/// `NVML_STRUCT_VERSION(GpuFabricInfo, 2)`: the struct size with the
/// version in the top byte, as nvml.h defines it. Version 2 (R550 and
/// newer) has all the agent reads — state, status, health mask; version 3
/// (R570+) only adds the health summary, and older drivers answer a v3
/// request with ARGUMENT_VERSION_MISMATCH. Newer drivers accept v2.
pub(super) const FABRIC_INFO_V2: u32 =
    std::mem::size_of::<nvmlGpuFabricInfo_v2_t>() as u32 | (2 << 24);

/// The GPU's fabric state: the versioned call (v2, with the health mask)
/// where the driver has it, else the first version.
pub(super) fn fabric(nvml: &Nvml, device: &Device) -> Result<Fabric, NvmlError> {
    let lib = nvml.lib();
    // SAFETY: `handle` is only passed back to NVML, while `device` (and the
    // `Nvml` it borrows) is alive.
    let handle = unsafe { device.handle() };
    if let Ok(get) = lib.nvmlDeviceGetGpuFabricInfoV.as_ref() {
        let mut info = nvmlGpuFabricInfo_v2_t {
            version: FABRIC_INFO_V2,
            clusterUuid: [0; 16],
            status: 0,
            cliqueId: 0,
            state: 0,
            healthMask: 0,
        };
        // SAFETY: `get` has the C signature from nvml-wrapper-sys's bindings
        // (typed for the newest struct, whose prefix v2 is); `info` is a
        // live struct whose version field tells NVML to write v2's size.
        let code = unsafe {
            get(
                handle,
                std::ptr::from_mut(&mut info).cast::<nvmlGpuFabricInfoV_t>(),
            )
        };
        match nvml_try(code) {
            Ok(()) => {
                return Ok(Fabric {
                    state: info.state,
                    status: info.status,
                    health_mask: info.healthMask,
                })
            }
            // A driver without the v2 struct answers with a version error:
            // ask the first version below.
            Err(NvmlError::GpuLost) => return Err(NvmlError::GpuLost),
            Err(_) => {}
        }
    }
    let get = lib
        .nvmlDeviceGetGpuFabricInfo
        .as_ref()
        .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
    let mut info = nvmlGpuFabricInfo_t {
        clusterUuid: [0; 16],
        status: 0,
        cliqueId: 0,
        state: 0,
    };
    // SAFETY: as above, with the unversioned struct.
    let code = unsafe { get(handle, &mut info) };
    nvml_try(code)?;
    Ok(Fabric {
        state: info.state,
        status: info.status,
        health_mask: 0,
    })
}

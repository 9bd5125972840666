//! Per-GPU calls: count and handles, identity, ECC, field values,
//! retired pages, NVLink, fabric, MIG, temperatures and power.

use super::*;

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(out: *mut c_uint) -> nvmlReturn_t {
    let s = state();
    let r = s.ready().map(|sc| sc.gpu.len() as c_uint);
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    out: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(Some(index), "nvmlDeviceGetHandleByIndex_v2")
        .map(|_| handle(index));
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetIndex(
    device: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let s = state();
    let i = index(device);
    let r = s.gpu(i, "nvmlDeviceGetIndex").map(|_| i.unwrap_or(0));
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

device_string!(nvmlDeviceGetName, |g| Ok(g.name.clone()));
device_string!(nvmlDeviceGetUUID, |g| Ok(g.uuid.clone()));
device_string!(nvmlDeviceGetSerial, |g| supported(g.serial.clone()));
device_string!(nvmlDeviceGetVbiosVersion, |g| supported(g.vbios.clone()));

/// `"00000000:18:00.0"` → (domain, bus, device).
fn pci_parts(id: &str) -> Option<(u32, u32, u32)> {
    let mut it = id.split([':', '.']);
    let d = u32::from_str_radix(it.next()?, 16).ok()?;
    let b = u32::from_str_radix(it.next()?, 16).ok()?;
    let dev = u32::from_str_radix(it.next()?, 16).ok()?;
    Some((d, b, dev))
}

fn fill(dst: &mut [c_char], s: &str) {
    let room = dst.len().saturating_sub(1);
    for (d, b) in dst.iter_mut().zip(s.bytes().take(room)) {
        *d = b as c_char;
    }
}

device_value!(nvmlDeviceGetPciInfo_v3, nvmlPciInfo_t, |g| {
    let (domain, bus, device) =
        pci_parts(&g.pci_bus_id).ok_or(nvmlReturn_enum_NVML_ERROR_UNKNOWN)?;
    let mut p = nvmlPciInfo_t {
        busIdLegacy: [0; 16],
        domain,
        bus,
        device,
        // H100 SXM5 (0x2330) by NVIDIA (0x10de).
        pciDeviceId: 0x2330_10de,
        pciSubSystemId: 0x16c1_10de,
        busId: [0; 32],
    };
    fill(&mut p.busId, &g.pci_bus_id);
    fill(
        &mut p.busIdLegacy,
        &format!("{domain:04x}:{bus:02x}:{device:02x}.0"),
    );
    Ok(p)
});

/// # Safety
/// NVML's contract: both out-pointers valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEccMode(
    device: nvmlDevice_t,
    current: *mut nvmlEnableState_t,
    pending: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(index(device), "nvmlDeviceGetEccMode")
        .and_then(|g| supported(g.ecc));
    // SAFETY: forwarded from the caller.
    done(r, |[c, p]| unsafe {
        match put(current, c as nvmlEnableState_t) {
            SUCCESS => put(pending, p as nvmlEnableState_t),
            e => e,
        }
    })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: nvmlDevice_t,
    error_type: nvmlMemoryErrorType_t,
    counter_type: nvmlEccCounterType_t,
    out: *mut c_ulonglong,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(index(device), "nvmlDeviceGetTotalEccErrors")
        .and_then(|g| {
            supported(match (error_type, counter_type) {
                (0, 0) => g.ecc_corrected_volatile,
                (0, 1) => g.ecc_corrected_aggregate,
                (1, 0) => g.ecc_uncorrected_volatile,
                (1, 1) => g.ecc_uncorrected_aggregate,
                _ => return Err(INVALID),
            })
        });
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

/// One field value of a GPU, as NVML numbers them (nvml.h NVML_FI_DEV_*).
fn field(g: &Gpu, id: u32) -> Option<u64> {
    use nvml_wrapper_sys::bindings::field_id::*;
    let remap = |i: usize| g.row_remap.map(|r| r[i]);
    match id {
        NVML_FI_DEV_MEMORY_TEMP => g.memory_temperature.map(u64::from),
        NVML_FI_DEV_REMAPPED_COR => remap(0),
        NVML_FI_DEV_REMAPPED_UNC => remap(1),
        NVML_FI_DEV_REMAPPED_PENDING => remap(2),
        NVML_FI_DEV_REMAPPED_FAILURE => remap(3),
        NVML_FI_DEV_GET_GPU_RECOVERY_ACTION => g.recovery_action.map(u64::from),
        _ => None,
    }
}

/// # Safety
/// NVML's contract: `values` holds `count` entries with `fieldId` set.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: nvmlDevice_t,
    count: c_int,
    values: *mut nvmlFieldValue_t,
) -> nvmlReturn_t {
    let s = state();
    let g = match s.gpu(index(device), "nvmlDeviceGetFieldValues") {
        Ok(g) => g,
        Err(c) => return c,
    };
    if values.is_null() || count < 0 {
        return INVALID;
    }
    // SAFETY: the caller passes `count` initialised entries.
    let values = unsafe { std::slice::from_raw_parts_mut(values, count as usize) };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    for v in values {
        v.timestamp = now;
        v.latencyUsec = 0;
        match field(g, v.fieldId) {
            Some(x) => {
                v.nvmlReturn = SUCCESS;
                v.valueType = nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
                v.value = nvmlValue_t { ullVal: x };
            }
            None => v.nvmlReturn = NOT_SUPPORTED,
        }
    }
    SUCCESS
}

/// # Safety
/// NVML's contract: `count` valid; `addresses` (and `timestamps`) null or
/// valid for `*count` entries.
unsafe fn retired(
    device: nvmlDevice_t,
    cause: nvmlPageRetirementCause_t,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: *mut c_ulonglong,
    name: &str,
) -> nvmlReturn_t {
    let s = state();
    let n = match s
        .gpu(index(device), name)
        .and_then(|g| supported(g.retired_pages))
        .and_then(|r| r.get(cause as usize).copied().ok_or(INVALID))
    {
        Ok(n) => n,
        Err(c) => return c,
    };
    if count.is_null() {
        return INVALID;
    }
    // SAFETY: non-null count from the caller.
    let room = unsafe { count.read() };
    // SAFETY: as above.
    unsafe { count.write(n) };
    if room < n {
        return nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for i in 0..n as usize {
        // SAFETY: the caller's arrays hold `room` ≥ n entries.
        unsafe {
            if !addresses.is_null() {
                addresses.add(i).write(0x1000 * (i as u64 + 1));
            }
            if !timestamps.is_null() {
                timestamps.add(i).write(1_700_000_000);
            }
        }
    }
    SUCCESS
}

/// # Safety
/// See [`retired`].
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages(
    device: nvmlDevice_t,
    cause: nvmlPageRetirementCause_t,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe {
        retired(
            device,
            cause,
            count,
            addresses,
            std::ptr::null_mut(),
            "nvmlDeviceGetRetiredPages",
        )
    }
}

/// # Safety
/// See [`retired`].
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages_v2(
    device: nvmlDevice_t,
    cause: nvmlPageRetirementCause_t,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: *mut c_ulonglong,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe {
        retired(
            device,
            cause,
            count,
            addresses,
            timestamps,
            "nvmlDeviceGetRetiredPages_v2",
        )
    }
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkState(
    device: nvmlDevice_t,
    link: c_uint,
    out: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(index(device), "nvmlDeviceGetNvLinkState")
        .and_then(|g| {
            let n = supported(g.nvlinks)?;
            if link >= n {
                return Err(INVALID);
            }
            Ok(nvmlEnableState_t::from(!g.nvlink_down.contains(&link)))
        });
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkErrorCounter(
    device: nvmlDevice_t,
    link: c_uint,
    counter: nvmlNvLinkErrorCounter_t,
    out: *mut c_ulonglong,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(index(device), "nvmlDeviceGetNvLinkErrorCounter")
        .and_then(|g| {
            let n = supported(g.nvlinks)?;
            if link >= n {
                return Err(INVALID);
            }
            // DL_REPLAY 0, DL_RECOVERY 1, DL_CRC_FLIT 2, DL_CRC_DATA 3.
            let c = usize::try_from(counter)
                .ok()
                .filter(|c| *c < 4)
                .ok_or(NOT_SUPPORTED)?;
            Ok(g.nvlink_errors
                .get(&link.to_string())
                .map(|e| e[c])
                .unwrap_or(0))
        });
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

device_value!(nvmlDeviceGetCurrPcieLinkGeneration, c_uint, |g| supported(
    g.pcie_gen.map(|p| p[0])
));
device_value!(nvmlDeviceGetMaxPcieLinkGeneration, c_uint, |g| supported(
    g.pcie_gen.map(|p| p[1])
));
device_value!(nvmlDeviceGetCurrPcieLinkWidth, c_uint, |g| supported(
    g.pcie_width.map(|p| p[0])
));
device_value!(nvmlDeviceGetMaxPcieLinkWidth, c_uint, |g| supported(
    g.pcie_width.map(|p| p[1])
));
device_value!(nvmlDeviceGetPcieReplayCounter, c_uint, |g| supported(
    g.pcie_replays
));
device_value!(nvmlDeviceGetPersistenceMode, nvmlEnableState_t, |g| {
    supported(g.persistence.map(nvmlEnableState_t::from))
});
device_value!(
    nvmlDeviceGetCurrentClocksThrottleReasons,
    c_ulonglong,
    |g| supported(g.clock_events)
);
device_value!(nvmlDeviceGetCurrentClocksEventReasons, c_ulonglong, |g| {
    supported(g.clock_events)
});
device_value!(nvmlDeviceGetPowerUsage, c_uint, |g| supported(g.power_mw));
device_value!(nvmlDeviceGetEnforcedPowerLimit, c_uint, |g| supported(
    g.power_limit_mw
));
device_value!(nvmlDeviceGetSupportedEventTypes, c_ulonglong, |_g| Ok(
    c_ulonglong::from(nvmlEventTypeXidCriticalError)
));
device_value!(nvmlDeviceGetGpuFabricInfo, nvmlGpuFabricInfo_t, |g| {
    let state = supported(g.fabric_state)?;
    Ok(nvmlGpuFabricInfo_t {
        clusterUuid: [0; 16],
        status: g.fabric_status,
        cliqueId: 0,
        state,
    })
});

/// `NVML_STRUCT_VERSION(GpuFabricInfo, n)` for the versions nvml.h has.
const FABRIC_V2: c_uint = std::mem::size_of::<nvmlGpuFabricInfo_v2_t>() as c_uint | (2 << 24);
const FABRIC_V3: c_uint = std::mem::size_of::<nvmlGpuFabricInfo_v3_t>() as c_uint | (3 << 24);

/// # Safety
/// NVML's contract: `out` valid for the struct its `version` names.
///
/// As NVML does: a version the driver does not know (newer than the
/// scenario's `fabric_max_version`, or not a real one) is
/// ARGUMENT_VERSION_MISMATCH, and only that version's struct is written.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuFabricInfoV(
    device: nvmlDevice_t,
    out: *mut nvmlGpuFabricInfoV_t,
) -> nvmlReturn_t {
    let s = state();
    let max = s.ready().map(|sc| sc.fabric_max_version).unwrap_or(3);
    let r = s
        .gpu(index(device), "nvmlDeviceGetGpuFabricInfoV")
        .and_then(|g| supported(g.fabric_state.map(|st| (st, g))));
    if out.is_null() {
        return INVALID;
    }
    // SAFETY: non-null, the caller's struct (the version field is first in
    // every version).
    let version = unsafe { (*out).version };
    let known = match version {
        FABRIC_V2 => 2,
        FABRIC_V3 => 3,
        _ => return nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
    };
    if r.is_ok() && known > max {
        return nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    done(r, |(st, g)| {
        if known == 2 {
            let v = nvmlGpuFabricInfo_v2_t {
                version,
                clusterUuid: [0; 16],
                status: g.fabric_status,
                cliqueId: 0,
                state: st,
                healthMask: g.fabric_health_mask,
            };
            // SAFETY: non-null, the caller's struct, of version 2.
            return unsafe { put(out.cast::<nvmlGpuFabricInfo_v2_t>(), v) };
        }
        let v = nvmlGpuFabricInfo_v3_t {
            version,
            clusterUuid: [0; 16],
            status: g.fabric_status,
            cliqueId: 0,
            state: st,
            healthMask: g.fabric_health_mask,
            healthSummary: 0,
        };
        // SAFETY: non-null, the caller's struct, of version 3.
        unsafe { put(out, v) }
    })
}

/// # Safety
/// NVML's contract: both out-pointers valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: nvmlDevice_t,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(index(device), "nvmlDeviceGetMigMode")
        .and_then(|g| supported(g.mig));
    // SAFETY: forwarded from the caller.
    done(r, |[c, p]| unsafe {
        match put(current, c) {
            SUCCESS => put(pending, p),
            e => e,
        }
    })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: nvmlDevice_t,
    sensor: nvmlTemperatureSensors_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(index(device), "nvmlDeviceGetTemperature")
        .and_then(|g| {
            if sensor == 0 {
                supported(g.temperature)
            } else {
                Err(INVALID)
            }
        });
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperatureThreshold(
    device: nvmlDevice_t,
    threshold: nvmlTemperatureThresholds_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let s = state();
    let r = s
        .gpu(index(device), "nvmlDeviceGetTemperatureThreshold")
        .and_then(|g| {
            match threshold {
                0 => supported(g.slowdown_temperature.map(|t| t + 5)), // shutdown
                1 => supported(g.slowdown_temperature),                // slowdown
                2 => supported(g.memory_max_temperature),              // HBM max
                _ => Err(NOT_SUPPORTED),
            }
        });
    // SAFETY: forwarded from the caller.
    done(r, |v| unsafe { put(out, v) })
}

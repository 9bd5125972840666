//! Event sets: XID events registered per GPU and delivered by
//! `nvmlEventSetWait_v2` when the scenario says they are due.

use super::*;

/// # Safety
/// NVML's contract: `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetCreate(out: *mut nvmlEventSet_t) -> nvmlReturn_t {
    let mut s = state();
    if let Err(c) = s.ready() {
        return c;
    }
    s.sets.push(Some(Vec::new()));
    let slot = s.sets.len();
    // SAFETY: forwarded from the caller.
    unsafe { put(out, std::ptr::without_provenance_mut(slot)) }
}

fn set_slot(set: nvmlEventSet_t) -> Option<usize> {
    set.addr().checked_sub(1)
}

#[no_mangle]
pub extern "C" fn nvmlDeviceRegisterEvents(
    device: nvmlDevice_t,
    types: c_ulonglong,
    set: nvmlEventSet_t,
) -> nvmlReturn_t {
    let mut s = state();
    let i = match s.gpu(index(device), "nvmlDeviceRegisterEvents") {
        Ok(_) => index(device).unwrap_or(0),
        Err(c) => return c,
    };
    if types & !c_ulonglong::from(nvmlEventTypeXidCriticalError) != 0 {
        return NOT_SUPPORTED;
    }
    match set_slot(set)
        .and_then(|k| s.sets.get_mut(k))
        .and_then(Option::as_mut)
    {
        Some(gpus) => {
            gpus.push(i);
            SUCCESS
        }
        None => INVALID,
    }
}

#[no_mangle]
pub extern "C" fn nvmlEventSetFree(set: nvmlEventSet_t) -> nvmlReturn_t {
    let mut s = state();
    match set_slot(set).and_then(|k| s.sets.get_mut(k)) {
        Some(slot @ Some(_)) => {
            *slot = None;
            SUCCESS
        }
        _ => INVALID,
    }
}

/// # Safety
/// NVML's contract: `data` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetWait_v2(
    set: nvmlEventSet_t,
    data: *mut nvmlEventData_t,
    timeout_ms: c_uint,
) -> nvmlReturn_t {
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    loop {
        {
            let mut s = state();
            if let Err(c) = s.ready() {
                return c;
            }
            let Some(gpus) = set_slot(set).and_then(|k| s.sets.get(k)).cloned().flatten() else {
                return INVALID;
            };
            let elapsed = s.elapsed();
            let xids = s.xids();
            s.delivered.resize(xids.len(), false);
            let next = xids.iter().enumerate().find(|(k, (gpu, _, due))| {
                !s.delivered[*k] && gpus.contains(gpu) && *due <= elapsed
            });
            if let Some((k, &(gpu, xid, _))) = next {
                s.delivered[k] = true;
                let event = nvmlEventData_t {
                    device: handle(gpu),
                    eventType: c_ulonglong::from(nvmlEventTypeXidCriticalError),
                    eventData: xid,
                    gpuInstanceId: 0xFFFF_FFFF,
                    computeInstanceId: 0xFFFF_FFFF,
                };
                // SAFETY: forwarded from the caller.
                return unsafe { put(data, event) };
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return nvmlReturn_enum_NVML_ERROR_TIMEOUT;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

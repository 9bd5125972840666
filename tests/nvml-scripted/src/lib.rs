//! A scripted `libnvidia-ml.so.1` for tests: exports the NVML C functions
//! the agent calls (through `nvml-wrapper`), with the ABI of
//! `nvml-wrapper-sys`'s bindings (checked at compile time in [`abi`]), and
//! answers from the scenario file named by `NVML_SCRIPTED_SCENARIO`
//! (tests/fixtures/nvml/*.toml; format in [`scenario`]).
//!
//! `nvml-wrapper-sys` resolves every symbol lazily into a
//! `Result<fn, libloading::Error>` field, so a function this library does not
//! export reaches the agent as `NvmlError::FailedToLoadSymbol` (not
//! `FunctionNotFound`, which is NVML's own return code) — as it would from
//! an older driver. Handles are small integers cast to pointers: device
//! `index + 1`, event set `slot + 1`; nothing here is dereferenced but the
//! caller's out-pointers.

mod exports;
pub mod scenario;

use scenario::{Code, Scenario};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

pub const ENV: &str = "NVML_SCRIPTED_SCENARIO";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

#[derive(Debug)]
struct State {
    stamp: Option<Stamp>,
    scenario: Result<Scenario, String>,
    /// Outstanding `nvmlInit_v2` calls (NVML reference-counts them).
    inits: u32,
    /// First successful init: the origin of `lost_after_s` and `after_s`.
    started: Option<Instant>,
    /// Event sets: the GPUs registered on each (None: freed).
    sets: Vec<Option<Vec<u32>>>,
    /// XID events already delivered, by position in the expanded list.
    delivered: Vec<bool>,
    /// The scenario of the last successful init: what a live handle keeps
    /// answering with after the scenario's driver stops initialising.
    loaded: Option<Scenario>,
}

static STATE: Mutex<State> = Mutex::new(State {
    stamp: None,
    scenario: Err(String::new()),
    inits: 0,
    started: None,
    sets: Vec::new(),
    delivered: Vec::new(),
    loaded: None,
});

fn state() -> MutexGuard<'static, State> {
    let mut s = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    s.refresh();
    s
}

impl State {
    /// Re-reads the scenario when its file changed (mtime, size or inode).
    fn refresh(&mut self) {
        let Some(path) = std::env::var_os(ENV).map(PathBuf::from) else {
            self.scenario = Err(format!("{ENV} is not set"));
            return;
        };
        let stamp = std::fs::metadata(&path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            Stamp {
                modified: m.modified().ok(),
                len: m.len(),
                ino: m.ino(),
            }
        });
        if stamp.is_some() && stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        self.scenario = scenario::load(&path);
        if let Err(e) = &self.scenario {
            eprintln!("nvml-scripted: {e}");
        }
    }

    fn elapsed(&self) -> f64 {
        self.started
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    /// The scenario if the library may be used now: initialised, and the
    /// scenario's driver state answering. As real NVML does, a handle
    /// initialised before the driver was upgraded (or its init started
    /// failing) keeps answering: the process has the old library mapped and
    /// the old kernel module still loaded; only a new `nvmlInit_v2` sees
    /// the scenario's `init` error.
    fn ready(&self) -> Result<&Scenario, Code> {
        use nvml_wrapper_sys::bindings::*;
        let current = self
            .scenario
            .as_ref()
            .map_err(|_| nvmlReturn_enum_NVML_ERROR_UNKNOWN);
        if self.inits == 0 {
            let s = current?;
            return Err(if s.init == nvmlReturn_enum_NVML_SUCCESS {
                nvmlReturn_enum_NVML_ERROR_UNINITIALIZED
            } else {
                s.init
            });
        }
        match current {
            Ok(s) if s.init == nvmlReturn_enum_NVML_SUCCESS => Ok(s),
            _ => self
                .loaded
                .as_ref()
                .ok_or(nvmlReturn_enum_NVML_ERROR_UNKNOWN),
        }
    }

    /// The GPU behind a handle, unless it is lost or `function` is forced
    /// to fail on it.
    fn gpu(&self, index: Option<u32>, function: &str) -> Result<&scenario::Gpu, Code> {
        use nvml_wrapper_sys::bindings::*;
        let elapsed = self.elapsed();
        let s = self.ready()?;
        let g = index
            .and_then(|i| s.gpu.get(i as usize))
            .ok_or(nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT)?;
        if g.lost_after_s.is_some_and(|t| elapsed >= t) {
            return Err(nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST);
        }
        if let Some(c) = g.fail.get(function) {
            return Err(*c);
        }
        Ok(g)
    }

    /// The XID events of the scenario, one per repeat: (gpu, xid, due).
    fn xids(&self) -> Vec<(u32, u64, f64)> {
        self.scenario
            .as_ref()
            .map(|s| {
                s.xid
                    .iter()
                    .flat_map(|x| (0..x.repeat).map(move |_| (x.gpu, x.xid, x.after_s)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

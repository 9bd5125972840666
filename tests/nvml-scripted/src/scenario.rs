//! The scenario file: what the "hardware" reports, re-read whenever the
//! file changes (a test rewrites it to move the host on: driver loaded,
//! driver upgraded, GPU lost), plus changes keyed by seconds since the
//! first successful `nvmlInit_v2` (`lost_after_s`, `[[xid]] after_s`).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub type Code = nvml_wrapper_sys::bindings::nvmlReturn_t;

/// An NVML return code by its name in `nvml.h` without the `NVML_ERROR_`
/// prefix ("SUCCESS" for `NVML_SUCCESS`).
pub fn code(name: &str) -> Option<Code> {
    use nvml_wrapper_sys::bindings::*;
    Some(match name {
        "SUCCESS" => nvmlReturn_enum_NVML_SUCCESS,
        "UNINITIALIZED" => nvmlReturn_enum_NVML_ERROR_UNINITIALIZED,
        "INVALID_ARGUMENT" => nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT,
        "NOT_SUPPORTED" => nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED,
        "NO_PERMISSION" => nvmlReturn_enum_NVML_ERROR_NO_PERMISSION,
        "NOT_FOUND" => nvmlReturn_enum_NVML_ERROR_NOT_FOUND,
        "DRIVER_NOT_LOADED" => nvmlReturn_enum_NVML_ERROR_DRIVER_NOT_LOADED,
        "TIMEOUT" => nvmlReturn_enum_NVML_ERROR_TIMEOUT,
        "GPU_IS_LOST" => nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST,
        "RESET_REQUIRED" => nvmlReturn_enum_NVML_ERROR_RESET_REQUIRED,
        "LIB_RM_VERSION_MISMATCH" => nvmlReturn_enum_NVML_ERROR_LIB_RM_VERSION_MISMATCH,
        "ARGUMENT_VERSION_MISMATCH" => nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
        "UNKNOWN" => nvmlReturn_enum_NVML_ERROR_UNKNOWN,
        _ => return None,
    })
}

fn de_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
    let s = String::deserialize(d)?;
    code(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown NVML return code {s:?}: expected SUCCESS, NOT_SUPPORTED, GPU_IS_LOST, \
             DRIVER_NOT_LOADED, LIB_RM_VERSION_MISMATCH, NO_PERMISSION, TIMEOUT, UNKNOWN, ..."
        ))
    })
}

fn de_codes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Code>, D::Error> {
    let m = BTreeMap::<String, String>::deserialize(d)?;
    m.into_iter()
        .map(|(k, v)| {
            code(&v).map(|c| (k.clone(), c)).ok_or_else(|| {
                serde::de::Error::custom(format!("{k}: unknown NVML return code {v:?}"))
            })
        })
        .collect()
}

fn success() -> Code {
    nvml_wrapper_sys::bindings::nvmlReturn_enum_NVML_SUCCESS
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What `nvmlInit_v2` returns; when not SUCCESS, calls on a handle
    /// initialised earlier keep answering from the scenario it was
    /// initialised under (a driver upgraded under a running agent: the old
    /// library stays mapped), and a new process gets this error.
    #[serde(default = "success", deserialize_with = "de_code")]
    pub init: Code,
    #[serde(default = "driver_version")]
    pub driver_version: String,
    /// CUDA driver version as NVML encodes it (13000 = 13.0).
    #[serde(default = "cuda_version")]
    pub cuda_version: i32,
    /// The newest `nvmlGpuFabricInfo` struct version the driver knows
    /// (3 on R570+, 2 on R550/R560); newer requests get
    /// ARGUMENT_VERSION_MISMATCH.
    #[serde(default = "fabric_max_version")]
    pub fabric_max_version: u32,
    #[serde(default)]
    pub gpu: Vec<Gpu>,
    #[serde(default)]
    pub xid: Vec<Xid>,
}

fn driver_version() -> String {
    "580.65.06".into()
}
fn cuda_version() -> i32 {
    13000
}
fn fabric_max_version() -> u32 {
    3
}

/// One GPU. A reading left out is NOT_SUPPORTED on this GPU.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub name: String,
    pub uuid: String,
    /// "00000000:18:00.0", as `nvmlPciInfo_t.busId`.
    pub pci_bus_id: String,
    pub serial: Option<String>,
    pub vbios: Option<String>,
    /// (current, pending)
    pub ecc: Option<[bool; 2]>,
    pub ecc_uncorrected_volatile: Option<u64>,
    pub ecc_uncorrected_aggregate: Option<u64>,
    pub ecc_corrected_volatile: Option<u64>,
    pub ecc_corrected_aggregate: Option<u64>,
    /// Field values 142–145: correctable, uncorrectable, pending, failure.
    pub row_remap: Option<[u64; 4]>,
    /// Retired pages (single-bit, double-bit causes).
    pub retired_pages: Option<[u32; 2]>,
    /// (current, max)
    pub pcie_gen: Option<[u32; 2]>,
    pub pcie_width: Option<[u32; 2]>,
    pub pcie_replays: Option<u32>,
    /// NVLink links; `nvlink_down` lists inactive ones.
    pub nvlinks: Option<u32>,
    #[serde(default)]
    pub nvlink_down: Vec<u32>,
    /// Per-link error counters: [replay, recovery, crc_flit, crc_data].
    #[serde(default)]
    pub nvlink_errors: BTreeMap<String, [u64; 4]>,
    pub persistence: Option<bool>,
    /// (current, pending)
    pub mig: Option<[u32; 2]>,
    pub clock_events: Option<u64>,
    pub temperature: Option<u32>,
    pub slowdown_temperature: Option<u32>,
    /// HBM temperature (field 82).
    pub memory_temperature: Option<u32>,
    /// NVML_TEMPERATURE_THRESHOLD_MEM_MAX.
    pub memory_max_temperature: Option<u32>,
    pub power_mw: Option<u32>,
    pub power_limit_mw: Option<u32>,
    /// `nvmlGpuFabricInfo`: state (0 not supported … 3 completed), status.
    pub fabric_state: Option<u8>,
    #[serde(default = "success", deserialize_with = "de_code")]
    pub fabric_status: Code,
    #[serde(default)]
    pub fabric_health_mask: u32,
    /// Field 230 (NVML_FI_DEV_GET_GPU_RECOVERY_ACTION).
    pub recovery_action: Option<u32>,
    /// Seconds after the first successful init at which the GPU falls off
    /// the bus: every call on it returns GPU_IS_LOST from then on.
    pub lost_after_s: Option<f64>,
    /// Return codes forced per NVML function name.
    #[serde(default, deserialize_with = "de_codes")]
    pub fail: BTreeMap<String, Code>,
}

/// XID events delivered through the event set of the GPU.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xid {
    pub gpu: u32,
    pub xid: u64,
    /// Seconds after the first successful init.
    #[serde(default)]
    pub after_s: f64,
    /// How many times (an XID storm).
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

/// Reads a scenario. `[gpu_template]` is merged into every `[[gpu]]`
/// (the GPU's own keys win), so an 8-GPU board states its common readings
/// once.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(toml::Value::Table(template)) = doc.remove("gpu_template") {
        if let Some(toml::Value::Array(gpus)) = doc.get_mut("gpu") {
            for g in gpus.iter_mut() {
                if let toml::Value::Table(g) = g {
                    for (k, v) in &template {
                        g.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
    }
    Scenario::deserialize(doc).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/nvml")
            .join(name)
    }

    #[test]
    fn every_fixture_loads_with_its_gpus() {
        for (name, gpus) in [
            ("hgx-h100.toml", 8),
            ("h100-pcie.toml", 1),
            ("no-driver.toml", 0),
            ("mismatch.toml", 0),
            ("gpu-lost.toml", 8),
            ("xid-storm.toml", 8),
        ] {
            let s = load(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.gpu.len(), gpus, "{name}");
        }
        let hgx = load(&fixture("hgx-h100.toml")).expect("hgx");
        // The template fills every GPU; each keeps its own identity.
        assert!(hgx
            .gpu
            .iter()
            .all(|g| g.nvlinks == Some(18) && g.fabric_state == Some(3)));
        assert_eq!(hgx.gpu[3].pci_bus_id, "00000000:5D:00.0");
        let lost = load(&fixture("gpu-lost.toml")).expect("lost");
        assert_eq!(lost.gpu[3].lost_after_s, Some(10.0));
        assert_eq!(lost.gpu[2].lost_after_s, None);
        let none = load(&fixture("no-driver.toml")).expect("none");
        assert_eq!(none.init, code("DRIVER_NOT_LOADED").expect("code"));
    }

    #[test]
    fn mistakes_name_the_file_and_the_field() {
        let dir = std::env::temp_dir().join(format!("nvml-scripted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let p = dir.join("bad.toml");
        std::fs::write(&p, "init = \"DRIVER_GONE\"\n").expect("write");
        let e = load(&p).expect_err("bad code");
        assert!(e.contains("bad.toml") && e.contains("DRIVER_GONE"), "{e}");
        std::fs::write(
            &p,
            "[[gpu]]\nname = \"x\"\nuuid = \"u\"\npci_bus_id = \"0:1:0.0\"\ntemp = 3\n",
        )
        .expect("write");
        let e = load(&p).expect_err("unknown field");
        assert!(e.contains("temp"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

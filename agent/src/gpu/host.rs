//! What the host itself says about its GPUs, besides NVML: the expected
//! count and why, NVIDIA devices on the PCI bus, the device nodes, the
//! kernel module, and whether a daemon (fabric manager) runs.

use crate::config::GpuConfig;
use crate::facts::Facts;
use crate::host::Host;
/// Why GPUs are expected on this host, if they are.
pub(super) fn expected(host: &Host, cfg: &GpuConfig, facts: &Facts) -> (Option<u32>, Vec<String>) {
    let mut why = Vec::new();
    let mut count = cfg.expected_count;
    if cfg.expected_count.is_some() {
        why.push("gpu.expected_count".to_owned());
    }
    if let Some(nc) = facts.nodeconfig() {
        if let Some(n) = nc.node_labels.get("gpu-count").and_then(|v| v.parse().ok()) {
            count = count.or(Some(n));
            why.push(format!("node label gpu-count={n}"));
        } else if nc.node_labels.contains_key("gpu") {
            why.push("node label gpu".to_owned());
        }
        if nc.default_runtime.as_ref().is_some_and(|r| {
            r.name == "nvidia"
                || r.binary_name
                    .as_deref()
                    .is_some_and(|b| b.contains("nvidia"))
        }) {
            why.push("the NodeConfig's nvidia container runtime".to_owned());
        }
    }
    let pci = pci_gpus(host);
    if pci > 0 {
        why.push(format!("{pci} NVIDIA GPU(s) on the PCI bus"));
    }
    (count, why)
}

/// NVIDIA (vendor 0x10de) display/3D controllers (class 0x03xxxx) under
/// /sys/bus/pci/devices — NVSwitches and audio functions are not GPUs.
pub(super) fn pci_gpus(host: &Host) -> u32 {
    let Ok(entries) = std::fs::read_dir(host.path("/sys/bus/pci/devices")) else {
        return 0;
    };
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let n = entries
        .filter_map(Result::ok)
        .filter(|e| {
            read(e.path().join("vendor")) == "0x10de"
                && read(e.path().join("class")).starts_with("0x03")
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `/dev/nvidia0`, `/dev/nvidia1`, …
pub(super) fn device_nodes(host: &Host) -> u32 {
    let Ok(entries) = std::fs::read_dir(host.path("/dev")) else {
        return 0;
    };
    let n = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("nvidia")
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The kernel module's version and flavour from /proc/driver/nvidia/version.
pub fn kernel_module(text: &str) -> Option<(String, &'static str)> {
    let line = text.lines().find(|l| l.contains("NVRM version"))?;
    let version = line
        .split_whitespace()
        .find(|w| {
            w.split('.').count() >= 2
                && w.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })?
        .to_owned();
    let flavour = if line.contains("Open Kernel Module") {
        "open"
    } else {
        "proprietary"
    };
    Some((version, flavour))
}

pub(super) fn process_running(host: &Host, comm: &str) -> bool {
    std::fs::read_dir(host.path("/proc"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .any(|e| {
                    std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm)
                })
        })
        .unwrap_or(false)
}

/// Where distributions install `libnvidia-ml.so.1` (Amazon Linux and RHEL,
/// Ubuntu and Debian on x86_64 and on arm64).
const LIBRARY_DIRS: [&str; 3] = [
    "/usr/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// The driver version of the NVML library installed on disk now: the
/// target of the `libnvidia-ml.so.1` link (`libnvidia-ml.so.580.65.06`),
/// found at `gpu.nvml_library` when that is absolute and a link, else in
/// the distribution's library directories. A package upgrade replaces it while
/// a running process keeps the old library mapped (and the kernel keeps the
/// old module), so NVML's own answer does not show the upgrade.
pub(super) fn installed_library(host: &Host, library: &str) -> Option<String> {
    let configured = library.starts_with('/').then(|| host.path(library));
    configured
        .into_iter()
        .chain(
            LIBRARY_DIRS
                .iter()
                .map(|d| host.path(d).join("libnvidia-ml.so.1")),
        )
        .find_map(|p| {
            let target = std::fs::read_link(&p).ok()?;
            let file = target.file_name()?.to_string_lossy().into_owned();
            let version = file.strip_prefix("libnvidia-ml.so.")?;
            (version.split('.').count() >= 2
                && version
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
            .then(|| version.to_owned())
        })
}

//! HGX verdicts: NVLink (expected links, inactive links, link recoveries),
//! the NVSwitch fabric as NVML reports it per GPU, HBM temperature and the
//! recovery action the driver asks for. Pure functions of readings.

use super::checks::DOMAIN;
use super::source::{Fabric, GpuReading};
use crate::check::{Check, Status};

/// NVLink 4 links of an H100/H200 SXM (HGX baseboard); other models: none
/// assumed (PCIe cards and passthrough GPUs have no NVLink, H100 NVL pairs
/// vary).
pub const SXM_NVLINKS: u32 = 18;

/// The NVLink links a GPU must have: the config, else 18 on an SXM Hopper.
/// NVML's names do not always say SXM ("NVIDIA H100 80GB HBM3", but plain
/// "NVIDIA H200"): a Hopper that is not a PCIe card, an NVL pair or a
/// Grace Hopper superchip (GH200, NVLink-C2C to its CPU) is the SXM part.
pub fn expected_links(model: &str, configured: Option<u32>) -> Option<u32> {
    configured.or_else(|| {
        let hopper = model.contains("H100") || model.contains("H200");
        let other = ["PCIe", "NVL", "GH200"].iter().any(|w| model.contains(w));
        (hopper && !other).then_some(SXM_NVLINKS)
    })
}

fn id(what: &str, g: &GpuReading) -> String {
    format!("{what}/gpu{}", g.index)
}

pub fn nvlink(g: &GpuReading, prev: Option<&GpuReading>, expected: Option<u32>) -> Check {
    let who = format!("GPU {} ({})", g.index, g.pci_bus_id);
    let remedy = "check nvidia-fabricmanager and the baseboard; drain the node and reset the GPUs";
    let links = match (&g.nvlink, expected) {
        (Some(l), _) if !l.is_empty() => l,
        (_, Some(n)) => {
            return Check::new(
                DOMAIN,
                id("nvlink", g),
                Status::Fail,
                format!(
                    "{who}: NVML reports no NVLink links; {n} expected on {}",
                    g.name
                ),
            )
            .with_remedy(remedy)
        }
        _ => {
            return Check::not_applicable(
                DOMAIN,
                id("nvlink", g),
                format!("NVLink not supported on {} (GPU {})", g.name, g.index),
            )
        }
    };
    let down: Vec<String> = links
        .iter()
        .enumerate()
        .filter(|(_, up)| !**up)
        .map(|(i, _)| i.to_string())
        .collect();
    let n = links.len();
    let errors = g
        .nvlink_errors
        .map(|e| {
            format!(
                " (errors: {} CRC, {} replay, {} recovery)",
                e.crc, e.replay, e.recovery
            )
        })
        .unwrap_or_default();
    if !down.is_empty() {
        return Check::new(
            DOMAIN,
            id("nvlink", g),
            Status::Fail,
            format!("{who}: NVLink link(s) {} inactive of {n}", down.join(",")),
        )
        .with_remedy(remedy);
    }
    if let Some(want) = expected.filter(|w| (n as u64) < u64::from(*w)) {
        return Check::new(
            DOMAIN,
            id("nvlink", g),
            Status::Fail,
            format!("{who}: {n} NVLink links, {want} expected"),
        )
        .with_remedy(remedy);
    }
    let recovered = match (prev.and_then(|p| p.nvlink_errors), g.nvlink_errors) {
        (Some(a), Some(b)) => b.recovery > a.recovery,
        _ => false,
    };
    if recovered {
        return Check::new(DOMAIN, id("nvlink", g), Status::Warn,
            format!("{who}: an NVLink link went through recovery since the last reading{errors}"))
            .with_remedy("a link retrained: watch hybrid_node_gpu_nvlink_errors_total; reseat or RMA if it keeps recovering");
    }
    Check::pass(
        DOMAIN,
        id("nvlink", g),
        format!("{who}: {n} NVLink links active{errors}"),
    )
}

fn state_name(state: u8) -> &'static str {
    match state {
        1 => "not started",
        2 => "in progress",
        3 => "completed",
        _ => "not supported",
    }
}

/// NVML_GPU_FABRIC_HEALTH_MASK_DEGRADED_BW (bits 0–1): 1 = true.
fn degraded_bandwidth(f: &Fabric) -> bool {
    f.health_mask & 0x3 == 1
}

/// The fabric verdict. NVML's per-GPU registration state where the driver
/// reports it (R525+, HGX); otherwise NVSwitch device nodes and the
/// fabric manager's service state (systemd; `None`: systemd did not say).
pub fn fabric(readings: &[GpuReading], nvswitch: bool, fabric_manager: Option<bool>) -> Check {
    let states: Vec<(u32, Fabric)> = readings
        .iter()
        .filter_map(|g| g.fabric.map(|f| (g.index, f)))
        .collect();
    if states.is_empty() {
        return match (nvswitch, fabric_manager) {
            (false, _) => Check::not_applicable(DOMAIN, "fabric", "no NVSwitch on this host"),
            (true, Some(true)) => Check::pass(
                DOMAIN,
                "fabric",
                "NVSwitch present and nvidia-fabricmanager running",
            ),
            (true, Some(false)) => Check::new(
                DOMAIN,
                "fabric",
                Status::Fail,
                "NVSwitch present but nvidia-fabricmanager is not running: CUDA fails on every GPU",
            )
            .with_remedy("systemctl enable --now nvidia-fabricmanager (same version as the driver)"),
            (true, None) => Check::new(
                DOMAIN,
                "fabric",
                Status::Unknown,
                "NVSwitch present, and neither NVML nor systemd says whether the fabric manager runs",
            )
            .with_remedy("systemctl status nvidia-fabricmanager; see the agent's log for why systemd did not answer"),
        };
    }
    let list = |f: &dyn Fn(&Fabric) -> bool| -> Vec<String> {
        states
            .iter()
            .filter(|(_, s)| f(s))
            .map(|(i, _)| i.to_string())
            .collect()
    };
    let pending = list(&|s| s.state != 3);
    let failed = list(&|s| s.state == 3 && s.status != 0);
    let degraded = list(&|s| s.state == 3 && s.status == 0 && degraded_bandwidth(s));
    let fm = "systemctl enable --now nvidia-fabricmanager (same version as the driver); journalctl -u nvidia-fabricmanager";
    if !pending.is_empty() {
        let first = states
            .iter()
            .find(|(_, s)| s.state != 3)
            .map(|(_, s)| state_name(s.state))
            .unwrap_or("");
        Check::new(DOMAIN, "fabric", Status::Fail,
            format!("NVSwitch fabric registration {first} on GPU(s) {}: CUDA fails on them until it completes", pending.join(",")))
            .with_remedy(fm)
    } else if !failed.is_empty() {
        Check::new(
            DOMAIN,
            "fabric",
            Status::Fail,
            format!(
                "NVSwitch fabric registration failed on GPU(s) {}",
                failed.join(",")
            ),
        )
        .with_remedy(fm)
    } else if !degraded.is_empty() {
        Check::new(
            DOMAIN,
            "fabric",
            Status::Warn,
            format!(
                "NVSwitch fabric bandwidth degraded on GPU(s) {}",
                degraded.join(",")
            ),
        )
        .with_remedy(
            "an NVSwitch or trunk link is down: check nvidia-fabricmanager's log and the baseboard",
        )
    } else {
        Check::pass(
            DOMAIN,
            "fabric",
            format!(
                "NVSwitch fabric registered on {} GPU(s) (NVML)",
                states.len()
            ),
        )
    }
}

/// Field 230: what the driver asks for after an error (nvml.h
/// nvmlDeviceGpuRecoveryAction_t).
pub fn recovery(g: &GpuReading) -> Check {
    let who = format!("GPU {} ({})", g.index, g.pci_bus_id);
    let (status, what, remedy) = match g.recovery_action {
        None => {
            return Check::not_applicable(
                DOMAIN,
                id("recovery", g),
                format!(
                    "the driver reports no recovery action on {} (GPU {})",
                    g.name, g.index
                ),
            )
        }
        Some(0) => {
            return Check::pass(
                DOMAIN,
                id("recovery", g),
                format!("{who}: no recovery action pending"),
            )
        }
        Some(1) => (
            Status::Fail,
            "a GPU reset",
            "drain the node, then nvidia-smi -r -i <gpu> (or reboot)",
        ),
        Some(2) => (
            Status::Fail,
            "a node reboot",
            "drain the node and reboot it",
        ),
        Some(3) => (
            Status::Warn,
            "draining peer-to-peer traffic",
            "let P2P jobs finish and schedule no new ones on this GPU",
        ),
        Some(4) => (
            Status::Fail,
            "a drain and a GPU reset",
            "drain the node, then reset the GPU",
        ),
        Some(n) => (
            Status::Warn,
            "an unknown recovery action",
            if n > 4 {
                "see nvidia-smi -q and NVIDIA's XID catalogue"
            } else {
                ""
            },
        ),
    };
    Check::new(
        DOMAIN,
        id("recovery", g),
        status,
        format!("{who}: the driver asks for {what}"),
    )
    .with_remedy(remedy)
}

/// HBM temperature against the memory slowdown limit (MEM_MAX).
pub fn memory_thermal(g: &GpuReading, margin: u32) -> Check {
    let who = format!("GPU {} ({})", g.index, g.pci_bus_id);
    match (g.memory_temperature, g.memory_max_temperature) {
        (Some(t), Some(max)) if t >= max => Check::new(
            DOMAIN,
            id("memory_thermal", g),
            Status::Fail,
            format!("{who}: HBM at {t} °C, at or above its limit {max} °C"),
        )
        .with_remedy("check airflow and inlet temperature; the GPU slows its memory down"),
        (Some(t), Some(max)) if t + margin >= max => Check::new(
            DOMAIN,
            id("memory_thermal", g),
            Status::Warn,
            format!("{who}: HBM at {t} °C, within {margin} °C of its limit {max} °C"),
        )
        .with_remedy("check airflow and inlet temperature"),
        (Some(t), max) => Check::pass(
            DOMAIN,
            id("memory_thermal", g),
            format!(
                "{who}: HBM at {t} °C{}",
                max.map(|m| format!(" (limit {m} °C)")).unwrap_or_default()
            ),
        ),
        (None, _) => Check::not_applicable(
            DOMAIN,
            id("memory_thermal", g),
            format!(
                "HBM temperature not available on {} (GPU {})",
                g.name, g.index
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::healthy_h100;
    use super::super::source::NvlinkErrors;
    use super::*;

    #[test]
    fn sxm_hopper_expects_18_links_and_pcie_none() {
        assert_eq!(expected_links("NVIDIA H100 80GB HBM3", None), Some(18));
        assert_eq!(expected_links("NVIDIA H100 PCIe", None), None);
        assert_eq!(expected_links("NVIDIA H100 NVL", None), None);
        assert_eq!(expected_links("NVIDIA H100 PCIe", Some(4)), Some(4));
        // An H200 SXM's NVML name says neither SXM nor HBM3.
        assert_eq!(expected_links("NVIDIA H200", None), Some(18));
        assert_eq!(expected_links("NVIDIA H200 NVL", None), None);
        assert_eq!(expected_links("NVIDIA GH200 480GB", None), None);
    }

    #[test]
    fn nvlink_missing_inactive_short_and_recovering() {
        let mut g = healthy_h100(0);
        assert_eq!(
            nvlink(&g, None, Some(18)).status,
            Status::Fail,
            "SXM without links"
        );
        assert_eq!(nvlink(&g, None, None).status, Status::NotApplicable);
        g.nvlink = Some(vec![true; 16]);
        let c = nvlink(&g, None, Some(18));
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("16 NVLink links, 18 expected"), "{c:?}");
        g.nvlink = Some(vec![true; 18]);
        g.nvlink_errors = Some(NvlinkErrors {
            crc: 3,
            replay: 1,
            recovery: 0,
        });
        let prev = g.clone();
        assert_eq!(nvlink(&g, Some(&prev), Some(18)).status, Status::Pass);
        g.nvlink_errors = Some(NvlinkErrors {
            crc: 3,
            replay: 1,
            recovery: 1,
        });
        assert_eq!(nvlink(&g, Some(&prev), Some(18)).status, Status::Warn);
        if let Some(l) = g.nvlink.as_mut() {
            l[7] = false;
        }
        let c = nvlink(&g, None, Some(18));
        assert!(c.summary.contains("link(s) 7 inactive of 18"), "{c:?}");
    }

    #[test]
    fn fabric_from_nvml_states() {
        let mut gpus: Vec<GpuReading> = (0..8).map(healthy_h100).collect();
        let done = Fabric {
            state: 3,
            status: 0,
            health_mask: 0,
        };
        for g in &mut gpus {
            g.fabric = Some(done);
        }
        // NVML's word wins over the fabric manager's state.
        assert_eq!(fabric(&gpus, true, Some(false)).status, Status::Pass);
        gpus[5].fabric = Some(Fabric { state: 2, ..done });
        let c = fabric(&gpus, true, Some(true));
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("in progress on GPU(s) 5"), "{c:?}");
        gpus[5].fabric = Some(Fabric {
            status: 999,
            ..done
        });
        assert_eq!(fabric(&gpus, true, Some(true)).status, Status::Fail);
        gpus[5].fabric = Some(Fabric {
            health_mask: 1,
            ..done
        });
        assert_eq!(fabric(&gpus, true, Some(true)).status, Status::Warn);
        for g in &mut gpus {
            g.fabric = None;
        }
        assert_eq!(fabric(&gpus, true, Some(false)).status, Status::Fail);
        assert_eq!(
            fabric(&gpus, false, Some(false)).status,
            Status::NotApplicable
        );
        // systemd did not answer: not a failure it cannot see.
        assert_eq!(fabric(&gpus, true, None).status, Status::Unknown);
    }

    #[test]
    fn recovery_actions_and_hbm() {
        let mut g = healthy_h100(0);
        assert_eq!(recovery(&g).status, Status::Pass);
        for (a, s) in [
            (1, Status::Fail),
            (2, Status::Fail),
            (3, Status::Warn),
            (4, Status::Fail),
        ] {
            g.recovery_action = Some(a);
            assert_eq!(recovery(&g).status, s, "action {a}");
        }
        g.recovery_action = None;
        assert_eq!(recovery(&g).status, Status::NotApplicable);
        assert_eq!(memory_thermal(&g, 5).status, Status::Pass);
        g.memory_temperature = Some(91);
        assert_eq!(memory_thermal(&g, 5).status, Status::Warn);
        g.memory_temperature = Some(95);
        assert_eq!(memory_thermal(&g, 5).status, Status::Fail);
    }
}

//! Per-GPU checks from one reading (and the previous one, for increases).
//! Pure functions: the fake source drives every transition in tests.

use super::source::GpuReading;
use crate::check::{Check, Status};

pub const DOMAIN: &str = crate::check::names::GPU;

/// NVML clocks event reasons (nvmlClocksEventReason*).
pub mod reason {
    pub const GPU_IDLE: u64 = 0x1;
    pub const APP_CLOCKS: u64 = 0x2;
    pub const SW_POWER_CAP: u64 = 0x4;
    pub const HW_SLOWDOWN: u64 = 0x8;
    pub const SYNC_BOOST: u64 = 0x10;
    pub const SW_THERMAL: u64 = 0x20;
    pub const HW_THERMAL: u64 = 0x40;
    pub const HW_POWER_BRAKE: u64 = 0x80;
    pub const DISPLAY_CLOCKS: u64 = 0x100;
    /// (bit, label) for `clock_event_active{reason}`.
    pub const ALL: [(u64, &str); 9] = [
        (GPU_IDLE, "gpu_idle"),
        (APP_CLOCKS, "applications_clocks"),
        (SW_POWER_CAP, "sw_power_cap"),
        (HW_SLOWDOWN, "hw_slowdown"),
        (SYNC_BOOST, "sync_boost"),
        (SW_THERMAL, "sw_thermal"),
        (HW_THERMAL, "hw_thermal"),
        (HW_POWER_BRAKE, "hw_power_brake"),
        (DISPLAY_CLOCKS, "display_clocks"),
    ];
}

/// Thresholds (from the agent config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Warn when the temperature is within this many °C of the slowdown threshold.
    pub thermal_margin: u32,
    /// Consecutive readings a HW slowdown must last to fail.
    pub sustained_readings: u32,
    /// `gpu.expected_nvlinks`.
    pub expected_nvlinks: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            thermal_margin: 5,
            sustained_readings: 2,
            expected_nvlinks: None,
        }
    }
}

fn id(what: &str, g: &GpuReading) -> String {
    format!("{what}/gpu{}", g.index)
}

/// Every per-GPU check. `prev` is the previous reading of the same GPU;
/// `hw_slow_streak` counts consecutive readings with a hardware slowdown
/// (including this one).
pub fn per_gpu(
    g: &GpuReading,
    prev: Option<&GpuReading>,
    hw_slow_streak: u32,
    limits: &Limits,
) -> Vec<Check> {
    let mut out = basic(g, prev, hw_slow_streak, limits);
    let links = super::hgx::expected_links(&g.name, limits.expected_nvlinks);
    out.push(super::hgx::nvlink(g, prev, links));
    out.push(super::hgx::memory_thermal(g, limits.thermal_margin));
    out.push(super::hgx::recovery(g));
    out
}

fn basic(
    g: &GpuReading,
    prev: Option<&GpuReading>,
    hw_slow_streak: u32,
    limits: &Limits,
) -> Vec<Check> {
    let na = |what: &str, why: &str| {
        Check::not_applicable(
            DOMAIN,
            id(what, g),
            format!("{why} on {} (GPU {})", g.name, g.index),
        )
    };
    let mut out = Vec::with_capacity(10);
    let who = format!("GPU {} ({})", g.index, g.pci_bus_id);

    // ECC.
    out.push(match (g.ecc_enabled, g.ecc_pending) {
        (None, _) => na("ecc", "ECC not supported"),
        (Some(false), Some(true)) => Check::new(
            DOMAIN,
            id("ecc", g),
            Status::Warn,
            format!("{who}: ECC is off; enabled at the next reset"),
        )
        .with_remedy("reset the GPU (drain the node first) so the pending ECC mode applies"),
        (Some(false), _) => Check::new(
            DOMAIN,
            id("ecc", g),
            Status::Fail,
            format!("{who}: ECC is disabled"),
        )
        .with_remedy("nvidia-smi -i <gpu> -e 1, then reset the GPU"),
        (Some(true), pending) => {
            let unc = g.ecc_uncorrected_volatile.unwrap_or(0);
            let grew = prev
                .and_then(|p| p.ecc_uncorrected_volatile)
                .is_some_and(|before| unc > before);
            if grew {
                Check::new(
                    DOMAIN,
                    id("ecc", g),
                    Status::Fail,
                    format!("{who}: uncorrected ECC errors rose to {unc} since the last reading"),
                )
                .with_remedy("drain the node and reset the GPU; replace it if errors recur")
            } else if unc > 0 {
                Check::new(
                    DOMAIN,
                    id("ecc", g),
                    Status::Fail,
                    format!("{who}: {unc} uncorrected ECC errors since the last driver load"),
                )
                .with_remedy("drain the node and reset the GPU; replace it if errors recur")
            } else if pending == Some(false) {
                Check::new(
                    DOMAIN,
                    id("ecc", g),
                    Status::Warn,
                    format!("{who}: ECC is on now but will be off after the next reset"),
                )
                .with_remedy("nvidia-smi -i <gpu> -e 1 to keep ECC on")
            } else {
                Check::pass(
                    DOMAIN,
                    id("ecc", g),
                    format!(
                        "{who}: ECC on, no uncorrected errors (aggregate {})",
                        g.ecc_uncorrected_aggregate.unwrap_or(0)
                    ),
                )
            }
        }
    });

    // Row remapping.
    out.push(match g.remap {
        None => match g.retired_pages {
            Some(0) => Check::pass(
                DOMAIN,
                id("row_remap", g),
                format!("{who}: no retired pages"),
            ),
            Some(n) => Check::new(
                DOMAIN,
                id("row_remap", g),
                Status::Warn,
                format!("{who}: {n} retired pages"),
            )
            .with_remedy("watch for growth; replace the GPU when it hits the retirement limit"),
            None => na(
                "row_remap",
                "row remapping and page retirement not supported",
            ),
        },
        Some(r) if r.failure => Check::new(
            DOMAIN,
            id("row_remap", g),
            Status::Fail,
            format!(
                "{who}: row remapping failed ({} uncorrectable remaps)",
                r.uncorrectable
            ),
        )
        .with_remedy("the GPU needs replacement: drain the node and open an RMA"),
        Some(r) if r.pending => Check::new(
            DOMAIN,
            id("row_remap", g),
            Status::Warn,
            format!("{who}: a row remap is pending"),
        )
        .with_remedy("drain the node and reset the GPU to apply the remap"),
        Some(r) => Check::pass(
            DOMAIN,
            id("row_remap", g),
            format!(
                "{who}: no remap pending ({} correctable, {} uncorrectable remapped rows)",
                r.correctable, r.uncorrectable
            ),
        ),
    });

    // PCIe link.
    out.push(match (g.pcie_gen, g.pcie_width) {
        (Some((gen, max_gen)), Some((w, max_w))) => {
            let replays_grew = match (prev.and_then(|p| p.pcie_replays), g.pcie_replays) {
                (Some(a), Some(b)) => b > a,
                _ => false,
            };
            if w < max_w {
                Check::new(
                    DOMAIN,
                    id("pcie", g),
                    Status::Fail,
                    format!("{who}: PCIe link x{w} of x{max_w} (gen {gen}/{max_gen})"),
                )
                .with_remedy("reseat the GPU or riser; check the slot and the BIOS link settings")
            } else if replays_grew {
                Check::new(
                    DOMAIN,
                    id("pcie", g),
                    Status::Warn,
                    format!(
                        "{who}: PCIe replay counter rose to {}",
                        g.pcie_replays.unwrap_or(0)
                    ),
                )
                .with_remedy("link errors: reseat the GPU/riser if it keeps rising")
            } else {
                // A lower current generation is normal at idle (power saving).
                Check::pass(
                    DOMAIN,
                    id("pcie", g),
                    format!("{who}: PCIe gen {gen}/{max_gen} x{w}/x{max_w}"),
                )
            }
        }
        _ => na("pcie", "PCIe link information not available"),
    });

    // Persistence mode.
    out.push(match g.persistence {
        None => na("persistence", "persistence mode not supported"),
        Some(true) => Check::pass(
            DOMAIN,
            id("persistence", g),
            format!("{who}: persistence mode on"),
        ),
        Some(false) => Check::new(
            DOMAIN,
            id("persistence", g),
            Status::Warn,
            format!("{who}: persistence mode off (slow first use, state lost between jobs)"),
        )
        .with_remedy("systemctl enable --now nvidia-persistenced"),
    });

    // MIG.
    out.push(match g.mig {
        None => na("mig", "MIG not supported"),
        Some((cur, pend)) if cur != pend => Check::new(
            DOMAIN,
            id("mig", g),
            Status::Warn,
            format!(
                "{who}: MIG is {} but {} after the next reset",
                onoff(cur),
                onoff(pend)
            ),
        )
        .with_remedy("reset the GPU to apply the pending MIG mode, or revert it"),
        Some((cur, _)) => Check::pass(DOMAIN, id("mig", g), format!("{who}: MIG {}", onoff(cur))),
    });

    // Clock event reasons.
    out.push(match g.clock_events {
        None => na("clocks", "clock event reasons not available"),
        Some(bits) => {
            let hw = bits & (reason::HW_SLOWDOWN | reason::HW_THERMAL | reason::HW_POWER_BRAKE);
            let names: Vec<&str> = reason::ALL
                .iter()
                .filter(|(b, _)| bits & b != 0)
                .map(|(_, n)| *n)
                .collect();
            if hw != 0 && hw_slow_streak >= limits.sustained_readings {
                Check::new(
                    DOMAIN,
                    id("clocks", g),
                    Status::Fail,
                    format!("{who}: sustained hardware slowdown ({})", names.join(", ")),
                )
                .with_remedy(
                    "check cooling, power supplies and the baseboard; nvidia-smi -q -d PERFORMANCE",
                )
            } else if hw != 0 || bits & reason::SW_THERMAL != 0 {
                Check::new(
                    DOMAIN,
                    id("clocks", g),
                    Status::Warn,
                    format!("{who}: clocks held back ({})", names.join(", ")),
                )
                .with_remedy("check airflow and inlet temperature")
            } else {
                Check::pass(
                    DOMAIN,
                    id("clocks", g),
                    format!(
                        "{who}: no hardware or thermal slowdown ({})",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
            }
        }
    });

    // Temperature and power.
    out.push(match (g.temperature, g.slowdown_temperature) {
        (Some(t), Some(slow)) if t >= slow => Check::new(
            DOMAIN,
            id("thermal", g),
            Status::Fail,
            format!("{who}: {t} °C, at or above the slowdown threshold {slow} °C"),
        )
        .with_remedy("check airflow, fans and inlet temperature"),
        (Some(t), Some(slow)) if t + limits.thermal_margin >= slow => Check::new(
            DOMAIN,
            id("thermal", g),
            Status::Warn,
            format!(
                "{who}: {t} °C, within {} °C of the slowdown threshold {slow} °C",
                limits.thermal_margin
            ),
        )
        .with_remedy("check airflow, fans and inlet temperature"),
        (Some(t), slow) => Check::pass(
            DOMAIN,
            id("thermal", g),
            format!(
                "{who}: {t} °C{}",
                slow.map(|s| format!(" (slowdown at {s} °C)"))
                    .unwrap_or_default()
            ),
        ),
        _ => na("thermal", "temperature not available"),
    });
    out.push(match (g.power_watts, g.power_limit_watts) {
        (Some(p), Some(l)) if p >= l => Check::new(
            DOMAIN,
            id("power", g),
            Status::Warn,
            format!("{who}: drawing {p:.0} W at its {l:.0} W limit"),
        )
        .with_remedy(
            "expected under full load; if sustained at idle, check the workload and power settings",
        ),
        (Some(p), Some(l)) => Check::pass(
            DOMAIN,
            id("power", g),
            format!("{who}: {p:.0} W of {l:.0} W"),
        ),
        _ => na("power", "power readings not available"),
    });
    out
}

fn onoff(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;

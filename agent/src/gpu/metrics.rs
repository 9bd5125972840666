//! The GPU domain's metric families (`hybrid_node_gpu_*`), per GPU by its
//! index and UUID, and how they are dropped while NVML cannot be read.

use super::source::GpuReading;
use crate::metrics::label::LabelValue;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

pub(super) type Labels = Vec<(&'static str, LabelValue)>;
pub(super) type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone, Default)]
pub(super) struct Metrics {
    pub(super) info: Family<Labels, Gauge>,
    pub(super) driver_info: Family<Labels, Gauge>,
    pub(super) count: Gauge,
    pub(super) temperature: Family<Labels, FGauge>,
    pub(super) power: Family<Labels, FGauge>,
    pub(super) power_limit: Family<Labels, FGauge>,
    pub(super) ecc_enabled: Family<Labels, Gauge>,
    pub(super) ecc_errors: Family<Labels, Counter>,
    pub(super) remapped: Family<Labels, Counter>,
    pub(super) remap_pending: Family<Labels, Gauge>,
    pub(super) remap_failed: Family<Labels, Gauge>,
    pub(super) pcie_gen: Family<Labels, Gauge>,
    pub(super) pcie_width: Family<Labels, Gauge>,
    pub(super) pcie_replays: Family<Labels, Counter>,
    pub(super) nvlink_up: Family<Labels, Gauge>,
    pub(super) clock_event: Family<Labels, Gauge>,
    pub(super) persistence: Family<Labels, Gauge>,
    pub(super) xid: Family<Labels, Counter>,
    pub(super) nvlink_errors: Family<Labels, Counter>,
    pub(super) memory_temperature: Family<Labels, FGauge>,
    pub(super) fabric_state: Family<Labels, Gauge>,
    pub(super) recovery_action: Family<Labels, Gauge>,
}

impl Metrics {
    /// Drops every reading that would otherwise stay frozen at its last
    /// value while NVML cannot be read. Counters stay: they are totals.
    pub(super) fn forget_readings(&self) {
        self.count.set(0);
        self.driver_info.clear();
        self.forget_gpus();
    }

    /// Drops every per-GPU gauge (re-exported by the sweep that follows).
    pub(super) fn forget_gpus(&self) {
        for f in [
            &self.info,
            &self.ecc_enabled,
            &self.remap_pending,
            &self.remap_failed,
            &self.pcie_gen,
            &self.pcie_width,
            &self.nvlink_up,
            &self.clock_event,
            &self.persistence,
            &self.fabric_state,
            &self.recovery_action,
        ] {
            f.clear();
        }
        for f in [
            &self.temperature,
            &self.power,
            &self.power_limit,
            &self.memory_temperature,
        ] {
            f.clear();
        }
    }

    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Metrics::default();
        r.register(
            "gpu_info",
            "GPU identity: 1 per GPU, with its PCI bus id and VBIOS",
            m.info.clone(),
        );
        r.register(
            "gpu_driver_info",
            "NVIDIA driver, CUDA driver version and kernel module flavour (open or proprietary)",
            m.driver_info.clone(),
        );
        r.register("gpu_devices", "GPUs NVML reports", m.count.clone());
        r.register_with_unit(
            "gpu_temperature",
            "GPU die temperature",
            Unit::Celsius,
            m.temperature.clone(),
        );
        r.register_with_unit(
            "gpu_power_usage",
            "GPU power draw",
            Unit::Other("watts".into()),
            m.power.clone(),
        );
        r.register_with_unit(
            "gpu_power_limit",
            "GPU enforced power limit",
            Unit::Other("watts".into()),
            m.power_limit.clone(),
        );
        r.register(
            "gpu_ecc_enabled",
            "1 if ECC is enabled now",
            m.ecc_enabled.clone(),
        );
        r.register(
            "gpu_ecc_errors",
            "ECC errors by type (corrected, uncorrected) and scope (volatile, aggregate)",
            m.ecc_errors.clone(),
        );
        r.register(
            "gpu_remapped_rows",
            "Remapped memory rows by cause (correctable, uncorrectable)",
            m.remapped.clone(),
        );
        r.register(
            "gpu_row_remap_pending",
            "1 if a row remap waits for a GPU reset",
            m.remap_pending.clone(),
        );
        r.register(
            "gpu_row_remap_failed",
            "1 if a row remap failed (the GPU needs replacement)",
            m.remap_failed.clone(),
        );
        r.register(
            "gpu_pcie_link_generation",
            "PCIe link generation, current and max",
            m.pcie_gen.clone(),
        );
        r.register(
            "gpu_pcie_link_width_lanes",
            "PCIe link width in lanes, current and max",
            m.pcie_width.clone(),
        );
        r.register(
            "gpu_pcie_replays",
            "PCIe replay counter",
            m.pcie_replays.clone(),
        );
        r.register(
            "gpu_nvlink_up",
            "1 if the NVLink link is active",
            m.nvlink_up.clone(),
        );
        r.register(
            "gpu_clock_event_active",
            "1 if the clock event reason holds clocks back now",
            m.clock_event.clone(),
        );
        r.register(
            "gpu_persistence_mode_enabled",
            "1 if persistence mode is on",
            m.persistence.clone(),
        );
        r.register(
            "gpu_nvlink_errors",
            "NVLink data-link errors of all the GPU's links by type (crc, replay, recovery)",
            m.nvlink_errors.clone(),
        );
        r.register_with_unit(
            "gpu_memory_temperature",
            "HBM temperature",
            Unit::Celsius,
            m.memory_temperature.clone(),
        );
        r.register(
            "gpu_fabric_state",
            "NVSwitch fabric registration: 1 not started, 2 in progress, 3 completed",
            m.fabric_state.clone(),
        );
        r.register(
            "gpu_recovery_action",
            "Recovery the driver asks for: 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset",
            m.recovery_action.clone(),
        );
        r.register(
            "gpu_xid_errors",
            "XID events by XID and class (fatal, warn, ignored)",
            m.xid.clone(),
        );
        m
    }
}

/// Exporting one reading: gauges set, counters advanced by the increase
/// since the last report.
impl super::GpuDomain {
    pub(super) fn count_up(
        &mut self,
        family: &Family<Labels, Counter>,
        labels: Labels,
        value: u64,
    ) {
        let key = format!("{labels:?}");
        let last = self.reported.insert(key, value).unwrap_or(0);
        let c = family.get_or_create(&labels);
        // A driver reload resets NVML's counters: the new value is what
        // happened since the reset, all of it an increase.
        if value >= last {
            c.inc_by(value - last);
        } else {
            c.inc_by(value);
        }
    }

    pub(super) fn export(&mut self, g: &GpuReading) {
        let m = self.metrics.clone();
        let base: Labels = vec![
            ("gpu", LabelValue::from(g.index.to_string())),
            ("uuid", LabelValue::from(g.uuid.clone())),
            ("model", LabelValue::from(g.name.clone())),
        ];
        let with = |k: &'static str, v: &str| {
            let mut l = base.clone();
            l.push((k, LabelValue::from(v.to_owned())));
            l
        };
        let mut info = base.clone();
        info.push(("pci_bus_id", LabelValue::from(g.pci_bus_id.clone())));
        info.push(("vbios", LabelValue::from(g.vbios.clone())));
        m.info.get_or_create(&info).set(1);
        if let Some(t) = g.temperature {
            m.temperature.get_or_create(&base).set(f64::from(t));
        }
        if let Some(p) = g.power_watts {
            m.power.get_or_create(&base).set(p);
        }
        if let Some(p) = g.power_limit_watts {
            m.power_limit.get_or_create(&base).set(p);
        }
        if let Some(e) = g.ecc_enabled {
            m.ecc_enabled.get_or_create(&base).set(i64::from(e));
        }
        for (value, kind, scope) in [
            (g.ecc_uncorrected_volatile, "uncorrected", "volatile"),
            (g.ecc_uncorrected_aggregate, "uncorrected", "aggregate"),
            (g.ecc_corrected_volatile, "corrected", "volatile"),
        ] {
            if let Some(v) = value {
                let mut l = with("type", kind);
                l.push(("scope", LabelValue::from(scope.to_owned())));
                self.count_up(&m.ecc_errors, l, v);
            }
        }
        if let Some(r) = g.remap {
            self.count_up(&m.remapped, with("cause", "correctable"), r.correctable);
            self.count_up(&m.remapped, with("cause", "uncorrectable"), r.uncorrectable);
            m.remap_pending
                .get_or_create(&base)
                .set(i64::from(r.pending));
            m.remap_failed
                .get_or_create(&base)
                .set(i64::from(r.failure));
        }
        if let Some((cur, max)) = g.pcie_gen {
            m.pcie_gen
                .get_or_create(&with("state", "current"))
                .set(i64::from(cur));
            m.pcie_gen
                .get_or_create(&with("state", "max"))
                .set(i64::from(max));
        }
        if let Some((cur, max)) = g.pcie_width {
            m.pcie_width
                .get_or_create(&with("state", "current"))
                .set(i64::from(cur));
            m.pcie_width
                .get_or_create(&with("state", "max"))
                .set(i64::from(max));
        }
        if let Some(r) = g.pcie_replays {
            self.count_up(&m.pcie_replays, base.clone(), r);
        }
        for (i, up) in g.nvlink.iter().flatten().enumerate() {
            m.nvlink_up
                .get_or_create(&with("link", &i.to_string()))
                .set(i64::from(*up));
        }
        if let Some(bits) = g.clock_events {
            for (bit, name) in super::checks::reason::ALL {
                m.clock_event
                    .get_or_create(&with("reason", name))
                    .set(i64::from(bits & bit != 0));
            }
        }
        if let Some(p) = g.persistence {
            m.persistence.get_or_create(&base).set(i64::from(p));
        }
        if let Some(t) = g.memory_temperature {
            m.memory_temperature.get_or_create(&base).set(f64::from(t));
        }
        if let Some(f) = g.fabric {
            m.fabric_state.get_or_create(&base).set(i64::from(f.state));
        }
        if let Some(a) = g.recovery_action {
            m.recovery_action.get_or_create(&base).set(i64::from(a));
        }
        if let Some(e) = g.nvlink_errors {
            for (kind, v) in [
                ("crc", e.crc),
                ("replay", e.replay),
                ("recovery", e.recovery),
            ] {
                self.count_up(&m.nvlink_errors, with("type", kind), v);
            }
        }
    }
}

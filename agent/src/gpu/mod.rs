//! The GPU domain: NVIDIA driver and NVML health of H100 hosts — driver,
//! count, ECC, row remapping, PCIe/NVLink, persistence, MIG, clocks,
//! thermals, XID events, and the NVIDIA container runtime — before and after
//! `nodeadm init`. Hosts without NVIDIA hardware get n/a checks, unless
//! something says GPUs are expected there.

pub mod checks;
#[cfg(test)]
pub mod fake;
pub mod nvml;
pub mod source;

use crate::check::{Check, Status};
use crate::config::{Config, GpuConfig};
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use crate::model::xid;
use checks::{Limits, DOMAIN};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use source::{GpuReading, GpuSource, SourceError};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

type Labels = Vec<(&'static str, LabelValue)>;
use crate::metrics::label::LabelValue;
type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone, Default)]
struct Metrics {
    info: Family<Labels, Gauge>,
    driver_info: Family<Labels, Gauge>,
    count: Gauge,
    temperature: Family<Labels, FGauge>,
    power: Family<Labels, FGauge>,
    power_limit: Family<Labels, FGauge>,
    ecc_enabled: Family<Labels, Gauge>,
    ecc_errors: Family<Labels, Counter>,
    remapped: Family<Labels, Counter>,
    remap_pending: Family<Labels, Gauge>,
    remap_failed: Family<Labels, Gauge>,
    pcie_gen: Family<Labels, Gauge>,
    pcie_width: Family<Labels, Gauge>,
    pcie_replays: Family<Labels, Counter>,
    nvlink_up: Family<Labels, Gauge>,
    clock_event: Family<Labels, Gauge>,
    persistence: Family<Labels, Gauge>,
    xid: Family<Labels, Counter>,
}

impl Metrics {
    /// Drops every reading that would otherwise stay frozen at its last
    /// value while NVML cannot be read. Counters stay: they are totals.
    fn forget_readings(&self) {
        self.count.set(0);
        for f in [
            &self.info,
            &self.driver_info,
            &self.ecc_enabled,
            &self.remap_pending,
            &self.remap_failed,
            &self.pcie_gen,
            &self.pcie_width,
            &self.nvlink_up,
            &self.clock_event,
            &self.persistence,
        ] {
            f.clear();
        }
        for f in [&self.temperature, &self.power, &self.power_limit] {
            f.clear();
        }
    }

    fn register(r: &mut Registry) -> Self {
        let m = Metrics::default();
        r.register(
            "gpu",
            "GPU identity: 1 per GPU, with its PCI bus id and VBIOS",
            m.info.clone(),
        );
        r.register(
            "gpu_driver",
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
            "gpu_xid_errors",
            "XID events by XID and class (fatal, warn, ignored)",
            m.xid.clone(),
        );
        m
    }
}

/// Why GPUs are expected on this host, if they are.
fn expected(host: &Host, cfg: &GpuConfig, facts: &Facts) -> (Option<u32>, Vec<String>) {
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
fn pci_gpus(host: &Host) -> u32 {
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
fn device_nodes(host: &Host) -> u32 {
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

#[derive(Debug)]
pub struct GpuDomain {
    host: Host,
    cfg: GpuConfig,
    facts: Facts,
    source: Box<dyn GpuSource>,
    metrics: Metrics,
    prev: BTreeMap<u32, GpuReading>,
    hw_streak: BTreeMap<u32, u32>,
    history: xid::History,
    /// Last absolute value reported per counter series, to count increases.
    reported: BTreeMap<String, u64>,
}

impl GpuDomain {
    pub fn new(config: &Config, host: Host, registry: &mut Registry, facts: Facts) -> Self {
        Self::with_source(
            config,
            host,
            registry,
            facts,
            Box::new(nvml::NvmlSource::new()),
        )
    }

    pub fn with_source(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        source: Box<dyn GpuSource>,
    ) -> Self {
        GpuDomain {
            host,
            cfg: config.gpu.clone(),
            facts,
            source,
            metrics: Metrics::register(registry),
            prev: BTreeMap::new(),
            hw_streak: BTreeMap::new(),
            history: xid::History::default(),
            reported: BTreeMap::new(),
        }
    }

    /// Adds the increase of an absolute NVML counter to a Prometheus counter.
    fn count_up(&mut self, family: &Family<Labels, Counter>, labels: Labels, value: u64) {
        let key = format!("{labels:?}");
        let last = self.reported.insert(key, value).unwrap_or(0);
        let c = family.get_or_create(&labels);
        // A driver reload resets NVML's counters: count from there.
        if value > last {
            c.inc_by(value - last);
        }
    }

    fn export(&mut self, g: &GpuReading) {
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
            for (bit, name) in checks::reason::ALL {
                m.clock_event
                    .get_or_create(&with("reason", name))
                    .set(i64::from(bits & bit != 0));
            }
        }
        if let Some(p) = g.persistence {
            m.persistence.get_or_create(&base).set(i64::from(p));
        }
    }

    fn driver_check(&mut self, expected: bool, why: &str) -> Result<Check, Vec<Check>> {
        let module = std::fs::read_to_string(self.host.path("/proc/driver/nvidia/version"))
            .ok()
            .and_then(|t| kernel_module(&t));
        match self.source.driver() {
            Err(SourceError::NoLibrary(e)) if !expected => Err(vec![Check::not_applicable(DOMAIN, "driver", format!("no NVIDIA GPU expected on this host and none found ({e})"))]),
            Err(e) => Err(vec![Check::new(DOMAIN, "driver", Status::Fail, format!("GPUs are expected ({why}) but {e}"))
                .with_remedy("install the NVIDIA driver (550 or newer) and reboot or load the module; nvidia-smi must work")]),
            Ok(d) => {
                let (flavour, mismatch) = match &module {
                    Some((v, f)) => (*f, (*v != d.version).then(|| v.clone())),
                    None => ("unknown", None),
                };
                self.metrics.driver_info.clear();
                self.metrics
                    .driver_info
                    .get_or_create(&vec![
                        ("version", LabelValue::from(d.version.clone())),
                        ("cuda_version", LabelValue::from(d.cuda_version.clone().unwrap_or_default())),
                        ("kernel_module", LabelValue::from(flavour.to_owned())),
                    ])
                    .set(1);
                let major: u32 = d.version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
                let cuda = d.cuda_version.as_deref().map(|c| format!(", CUDA {c}")).unwrap_or_default();
                Ok(if let Some(kernel) = mismatch {
                    Check::new(DOMAIN, "driver", Status::Fail, format!("NVML library {} and kernel module {kernel} differ", d.version))
                        .with_remedy("reboot (or unload and reload the nvidia modules) after a driver upgrade")
                } else if major < self.cfg.min_driver {
                    Check::new(DOMAIN, "driver", Status::Fail, format!("driver {} is older than {}", d.version, self.cfg.min_driver))
                        .with_remedy(format!("install NVIDIA driver {} or newer", self.cfg.min_driver))
                } else {
                    Check::pass(DOMAIN, "driver", format!("driver {} ({flavour} kernel module){cuda}", d.version))
                })
            }
        }
    }
}

impl Domain for GpuDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.cfg.interval.get()
    }

    fn after(&self) -> &'static [&'static str] {
        &[crate::check::names::NODECONFIG]
    }

    fn reconfigure(&mut self, config: &Config) {
        self.cfg = config.gpu.clone();
    }

    fn run(&mut self) -> Vec<Check> {
        let (expected_count, why) = expected(&self.host, &self.cfg, &self.facts);
        let expected = !why.is_empty();
        let why = why.join(", ");
        let mut out = match self.driver_check(expected, &why) {
            Ok(c) => vec![c],
            Err(checks) => {
                self.metrics.forget_readings();
                return checks;
            }
        };

        // Count: NVML, expectation, device nodes; readings.
        let count = self.source.count().unwrap_or(0);
        self.metrics.count.set(i64::from(count));
        self.metrics.info.clear();
        let mut lost = Vec::new();
        let mut readings = Vec::new();
        for i in 0..count {
            match self.source.read(i) {
                Ok(g) => readings.push(g),
                Err(SourceError::GpuLost(n)) => lost.push(n),
                Err(e) => out.push(Check::new(
                    DOMAIN,
                    format!("read/gpu{i}"),
                    Status::Unknown,
                    format!("GPU {i}: {e}"),
                )),
            }
        }
        let nodes = device_nodes(&self.host);
        out.push(if !lost.is_empty() {
            Check::new(
                DOMAIN,
                "count",
                Status::Fail,
                format!("GPU(s) {lost:?} fell off the bus (GPU lost)"),
            )
            .with_remedy(
                "drain the node and power-cycle it; check the GPU's seating and power (XID 79)",
            )
        } else if expected_count.is_some_and(|n| n != count) {
            Check::new(
                DOMAIN,
                "count",
                Status::Fail,
                format!(
                    "NVML reports {count} GPUs; {} expected ({why})",
                    expected_count.unwrap_or(0)
                ),
            )
            .with_remedy("a GPU is missing: check nvidia-smi -L, dmesg and the PCIe slots")
        } else if nodes != count && nodes > 0 {
            Check::new(
                DOMAIN,
                "count",
                Status::Warn,
                format!("NVML reports {count} GPUs but /dev has {nodes} nvidia device nodes"),
            )
            .with_remedy(
                "run nvidia-modprobe or restart nvidia-persistenced to create the device nodes",
            )
        } else {
            Check::pass(
                DOMAIN,
                "count",
                format!(
                    "{count} GPU(s){}",
                    readings
                        .first()
                        .map(|g| format!(", {}", g.name))
                        .unwrap_or_default()
                ),
            )
        });

        let limits = Limits {
            thermal_margin: self.cfg.thermal_margin,
            ..Limits::default()
        };
        for g in &readings {
            let hw = g.clock_events.is_some_and(|b| {
                b & (checks::reason::HW_SLOWDOWN
                    | checks::reason::HW_THERMAL
                    | checks::reason::HW_POWER_BRAKE)
                    != 0
            });
            let streak = self.hw_streak.entry(g.index).or_default();
            *streak = if hw { *streak + 1 } else { 0 };
            let streak = *streak;
            out.extend(checks::per_gpu(g, self.prev.get(&g.index), streak, &limits));
            self.export(g);
        }
        self.prev = readings.into_iter().map(|g| (g.index, g)).collect();

        // Fabric: NVSwitch systems need the fabric manager.
        let nvswitch = std::fs::read_dir(self.host.path("/dev"))
            .map(|d| {
                d.filter_map(Result::ok).any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("nvidia-nvswitch")
                })
            })
            .unwrap_or(false);
        out.push(if !nvswitch {
            Check::not_applicable(DOMAIN, "fabric", "no NVSwitch on this host")
        } else if process_running(&self.host, "nv-fabricmanager") {
            Check::pass(
                DOMAIN,
                "fabric",
                "NVSwitch present and nvidia-fabricmanager running",
            )
        } else {
            Check::new(
                DOMAIN,
                "fabric",
                Status::Fail,
                "NVSwitch present but nvidia-fabricmanager is not running: CUDA fails on every GPU",
            )
            .with_remedy("systemctl enable --now nvidia-fabricmanager (same version as the driver)")
        });

        // XIDs.
        let now = Instant::now();
        for e in self.source.xids() {
            let class = xid::classify(e.xid, &self.cfg.xid_fatal, &self.cfg.xid_ignore);
            self.metrics
                .xid
                .get_or_create(&vec![
                    ("gpu", LabelValue::from(e.gpu.to_string())),
                    ("xid", LabelValue::from(e.xid.to_string())),
                    ("class", LabelValue::from(class.as_str().to_owned())),
                ])
                .inc();
            self.history.record(xid::Seen {
                at: now,
                gpu: e.gpu,
                xid: e.xid,
                class,
            });
        }
        let window = self.cfg.xid_window.get();
        let current = self.history.current(now, window);
        let list = |c: xid::Class| -> Vec<String> {
            current
                .iter()
                .filter(|s| s.class == c)
                .map(|s| format!("XID {} on GPU {}", s.xid, s.gpu))
                .collect()
        };
        let (fatal, warn) = (list(xid::Class::Fatal), list(xid::Class::Warn));
        out.push(if !fatal.is_empty() {
            Check::new(DOMAIN, "xid", Status::Fail, format!("fatal XIDs within {window:?}: {}", fatal.join(", ")))
                .with_remedy("drain the node; reset or replace the GPU per NVIDIA's XID catalogue (clears after the window)")
        } else if !warn.is_empty() {
            Check::new(DOMAIN, "xid", Status::Warn, format!("XIDs within {window:?}: {}", warn.join(", ")))
                .with_remedy("see dmesg and NVIDIA's XID catalogue")
        } else {
            Check::pass(DOMAIN, "xid", format!("no XID events within {window:?}"))
        });

        // The NVIDIA container runtime the NodeConfig makes the default.
        let runtime = self
            .facts
            .nodeconfig()
            .and_then(|nc| nc.default_runtime.clone());
        out.push(match runtime.filter(|r| r.name == "nvidia" || r.binary_name.as_deref().is_some_and(|b| b.contains("nvidia"))) {
            None => Check::not_applicable(DOMAIN, "runtime", "the NodeConfig does not make nvidia the default container runtime"),
            Some(r) => match r.binary_name.as_deref() {
                Some(bin) if self.host.is_executable(bin) => Check::pass(DOMAIN, "runtime", format!("default runtime {}: {bin} is executable", r.name)),
                Some(bin) => Check::new(DOMAIN, "runtime", Status::Fail, format!("default runtime {} runs {bin}, which is missing or not executable", r.name))
                    .with_remedy("install the NVIDIA Container Toolkit (nvidia-container-toolkit)"),
                None => Check::new(DOMAIN, "runtime", Status::Warn, format!("default runtime {} has no BinaryName: it runs plain runc", r.name))
                    .with_remedy("set BinaryName = \"/usr/bin/nvidia-container-runtime\" in the runtime's options"),
            },
        });
        out
    }
}

fn process_running(host: &Host, comm: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::fake::{healthy_h100, FakeSource};
    use super::source::{DriverInfo, XidEvent};
    use super::*;

    fn domain(
        source: &FakeSource,
        host: &Host,
        cfg: impl FnOnce(&mut Config),
    ) -> (GpuDomain, Registry) {
        let mut c = Config::default();
        cfg(&mut c);
        let mut r = crate::metrics::new_registry();
        let d = GpuDomain::with_source(
            &c,
            host.clone(),
            &mut r,
            Facts::default(),
            Box::new(source.clone()),
        );
        (d, r)
    }

    fn status(checks: &[Check], id: &str) -> Status {
        checks
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status)
            .unwrap_or_else(|| panic!("{id} in {checks:?}"))
    }

    fn h100_host(dir: &std::path::Path, gpus: u32) -> Host {
        let h = Host::new(dir);
        std::fs::create_dir_all(h.path("/proc/driver/nvidia")).expect("mkdir");
        std::fs::write(
            h.path("/proc/driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16-I3-D08-1-2)  Sun Jul 27 07:09:46 UTC 2025\nGCC version:  gcc version 13.3.0\n",
        )
        .expect("write");
        std::fs::create_dir_all(h.path("/dev")).expect("mkdir");
        for i in 0..gpus {
            std::fs::write(h.path(format!("/dev/nvidia{i}")), "").expect("write");
        }
        h
    }

    fn driver(v: &str) -> Option<Result<DriverInfo, SourceError>> {
        Some(Ok(DriverInfo {
            version: v.into(),
            cuda_version: Some("13.0".into()),
        }))
    }

    #[test]
    fn no_gpu_host_is_all_na() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut d, _) = domain(&FakeSource::default(), &Host::new(dir.path()), |_| {});
        let c = d.run();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::NotApplicable);
    }

    #[test]
    fn expected_gpus_without_a_driver_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut d, _) = domain(&FakeSource::default(), &Host::new(dir.path()), |c| {
            c.gpu.expected_count = Some(8)
        });
        let c = d.run();
        assert_eq!(status(&c, "driver"), Status::Fail);
        assert!(c[0].summary.contains("gpu.expected_count"), "{c:?}");
        // PCI evidence alone also makes them expected.
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let dev = h.path("/sys/bus/pci/devices/0000:18:00.0");
        std::fs::create_dir_all(&dev).expect("mkdir");
        std::fs::write(dev.join("vendor"), "0x10de\n").expect("write");
        std::fs::write(dev.join("class"), "0x030200\n").expect("write");
        let (mut d, _) = domain(&FakeSource::default(), &h, |_| {});
        assert_eq!(status(&d.run(), "driver"), Status::Fail);
    }

    #[test]
    fn healthy_eight_gpu_host_passes_and_exports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = h100_host(dir.path(), 8);
        let src = FakeSource::default();
        src.set(|s| {
            s.driver = driver("580.65.06");
            s.gpus = (0..8).map(|i| Ok(healthy_h100(i))).collect();
        });
        let (mut d, registry) = domain(&src, &h, |c| c.gpu.expected_count = Some(8));
        let c = d.run();
        assert_eq!(status(&c, "driver"), Status::Pass);
        assert!(
            c[0].summary
                .contains("580.65.06 (open kernel module), CUDA 13.0"),
            "{}",
            c[0].summary
        );
        assert_eq!(status(&c, "count"), Status::Pass);
        assert_eq!(status(&c, "ecc/gpu7"), Status::Pass);
        assert_eq!(status(&c, "xid"), Status::Pass);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("hybrid_node_gpu_devices 8"), "{text}");
        assert!(
            text.contains("hybrid_node_gpu_temperature_celsius{gpu=\"3\""),
            "{text}"
        );
        assert!(text.contains("kernel_module=\"open\""), "{text}");
    }

    #[test]
    fn driver_mismatch_old_driver_and_lost_gpu() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = h100_host(dir.path(), 2);
        let src = FakeSource::default();
        src.set(|s| {
            s.driver = driver("575.57.08");
            s.gpus = vec![Ok(healthy_h100(0)), Ok(healthy_h100(1))];
        });
        let (mut d, _) = domain(&src, &h, |_| {});
        let c = d.run();
        assert_eq!(status(&c, "driver"), Status::Fail);
        assert!(c[0].summary.contains("differ"), "{c:?}");
        src.set(|s| s.driver = driver("535.183.01"));
        std::fs::write(h.path("/proc/driver/nvidia/version"), "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n").expect("write");
        let c = d.run();
        assert!(c[0].summary.contains("older than 550"), "{c:?}");
        // A GPU disappears mid-run.
        src.set(|s| {
            s.driver = driver("580.65.06");
            s.gpus[1] = Err(SourceError::GpuLost(1));
        });
        std::fs::write(
            h.path("/proc/driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  x\n",
        )
        .expect("write");
        let c = d.run();
        assert_eq!(status(&c, "count"), Status::Fail);
        assert!(c.iter().any(|c| c.summary.contains("fell off the bus")));
    }

    /// Fault injection: NVML stops answering mid-run (the driver is being
    /// reloaded, or the library errors), then comes back. The check fails
    /// and says why, the per-GPU series are not left frozen at their last
    /// healthy values, and the next good sweep recovers by itself.
    #[test]
    fn nvml_failing_mid_run_fails_then_recovers_by_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = h100_host(dir.path(), 2);
        let src = FakeSource::default();
        let healthy = |s: &mut super::fake::Script| {
            s.driver = driver("580.65.06");
            s.gpus = vec![Ok(healthy_h100(0)), Ok(healthy_h100(1))];
        };
        src.set(healthy);
        let (mut d, registry) = domain(&src, &h, |c| c.gpu.expected_count = Some(2));
        let encode = || {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
            text
        };
        assert_eq!(status(&d.run(), "count"), Status::Pass);
        assert!(encode().contains("hybrid_node_gpu_temperature_celsius{gpu=\"1\""));

        src.set(|s| {
            s.driver = Some(Err(SourceError::Other(
                "NVML call failed: Unknown Error".into(),
            )))
        });
        let c = d.run();
        assert_eq!(status(&c, "driver"), Status::Fail, "{c:?}");
        assert!(c[0].summary.contains("Unknown Error"), "{c:?}");
        assert!(
            encode().contains("hybrid_node_gpu_devices 0"),
            "{}",
            encode()
        );
        assert!(
            !encode().contains("hybrid_node_gpu_temperature_celsius{gpu=\"1\""),
            "stale per-GPU series after NVML failed:\n{}",
            encode()
        );

        src.set(healthy);
        let c = d.run();
        assert_eq!(status(&c, "driver"), Status::Pass, "{c:?}");
        assert_eq!(status(&c, "count"), Status::Pass, "{c:?}");
        assert!(encode().contains("hybrid_node_gpu_temperature_celsius{gpu=\"1\""));
    }

    #[test]
    fn xids_fail_warn_and_age_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = h100_host(dir.path(), 1);
        let src = FakeSource::default();
        src.set(|s| {
            s.driver = driver("580.65.06");
            s.gpus = vec![Ok(healthy_h100(0))];
            s.xids = vec![XidEvent { gpu: 0, xid: 13 }];
        });
        let (mut d, registry) = domain(&src, &h, |c| {
            c.gpu.xid_window = "200ms".parse().expect("interval")
        });
        assert_eq!(status(&d.run(), "xid"), Status::Pass, "13 is ignored");
        src.set(|s| s.xids = vec![XidEvent { gpu: 0, xid: 92 }]);
        assert_eq!(status(&d.run(), "xid"), Status::Warn);
        src.set(|s| s.xids = vec![XidEvent { gpu: 0, xid: 79 }]);
        assert_eq!(status(&d.run(), "xid"), Status::Fail);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(status(&d.run(), "xid"), Status::Pass, "aged out");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                "hybrid_node_gpu_xid_errors_total{gpu=\"0\",xid=\"79\",class=\"fatal\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn counters_count_increases_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = h100_host(dir.path(), 1);
        let src = FakeSource::default();
        let mut g = healthy_h100(0);
        g.pcie_replays = Some(5);
        src.set(|s| {
            s.driver = driver("580.65.06");
            s.gpus = vec![Ok(g.clone())];
        });
        let (mut d, registry) = domain(&src, &h, |_| {});
        d.run();
        g.pcie_replays = Some(2); // driver reload reset
        src.set(|s| s.gpus = vec![Ok(g.clone())]);
        d.run();
        g.pcie_replays = Some(4);
        src.set(|s| s.gpus = vec![Ok(g.clone())]);
        d.run();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("hybrid_node_gpu_pcie_replays_total{gpu=\"0\",uuid=\"GPU-00000000-0000-0000-0000-000000000000\",model=\"NVIDIA H100 80GB HBM3\"} 7"), "{text}");
    }

    #[test]
    fn kernel_module_versions_parse() {
        assert_eq!(
            kernel_module("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build\n"),
            Some(("580.65.06".into(), "open"))
        );
        assert_eq!(
            kernel_module("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct 8 03:22:07 UTC 2024\n"),
            Some(("550.127.05".into(), "proprietary"))
        );
        assert_eq!(kernel_module("garbage"), None);
    }
}

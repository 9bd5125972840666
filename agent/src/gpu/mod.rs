//! The GPU domain: NVIDIA driver and NVML health of H100 hosts — driver,
//! count, ECC, row remapping, PCIe/NVLink, persistence, MIG, clocks,
//! thermals, XID events, and the NVIDIA container runtime — before and after
//! `nodeadm init`. Hosts without NVIDIA hardware get n/a checks, unless
//! something says GPUs are expected there.

pub mod checks;
#[cfg(test)]
pub mod fake;
pub mod hgx;
mod host;
pub mod kernel_log;
mod metrics;
pub mod nvml;
mod nvml_raw;
pub mod source;
mod xids;

pub use host::kernel_module;

use crate::check::{Check, Status};
use crate::config::{Config, GpuConfig};
use crate::domain::Domain;
use crate::edge::systemctl::{ServiceManager, UnitState};
use crate::facts::Facts;
use crate::host::Host;
use crate::model::xid;
use checks::{Limits, DOMAIN};
use prometheus_client::registry::Registry;
use source::{GpuReading, GpuSource, SourceError};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::metrics::label::LabelValue;
use host::{device_nodes, expected, installed_library, process_running};
use metrics::Metrics;

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
    kernel: xids::KernelLog,
    /// systemd: whether nvidia-fabricmanager runs.
    services: Box<dyn ServiceManager>,
}

impl GpuDomain {
    /// `source`: NVML on a real host (built by the program's assembly), a
    /// scripted source in tests. `services`: systemd on this host,
    /// `NotThisHost` under another `--root`.
    pub fn new(
        config: &Config,
        host: Host,
        registry: &mut Registry,
        facts: Facts,
        source: Box<dyn GpuSource>,
        services: Box<dyn ServiceManager>,
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
            kernel: xids::KernelLog::default(),
            services,
        }
    }

    /// The driver as NVML, the kernel module and the library on disk report
    /// it. `Err`: NVML does not answer (the run stops at these checks).
    fn driver_check(&mut self, expected: bool, why: &str) -> Result<Check, Vec<Check>> {
        const RELOAD: &str =
            "reboot (or unload and reload the nvidia modules) after a driver upgrade";
        let module = std::fs::read_to_string(self.host.path("/proc/driver/nvidia/version"))
            .ok()
            .and_then(|t| kernel_module(&t));
        let installed = installed_library(&self.host, &self.cfg.nvml_library);
        match self.source.driver() {
            Err(SourceError::NoLibrary(e)) if !expected => Err(vec![Check::not_applicable(DOMAIN, "driver", format!("no NVIDIA GPU expected on this host and none found ({e})"))]),
            Err(e @ SourceError::DriverMismatch(_)) => Err(vec![Check::new(DOMAIN, "driver", Status::Fail, format!("GPUs are expected ({why}) but {e}"))
                .with_remedy(RELOAD)]),
            Err(e) => Err(vec![Check::new(DOMAIN, "driver", Status::Fail, format!("GPUs are expected ({why}) but {e}"))
                .with_remedy(format!("install the NVIDIA driver ({} or newer) and reboot or load the module; nvidia-smi must work", self.cfg.min_driver))]),
            Ok(d) => {
                let (flavour, mismatch) = match &module {
                    Some((v, f)) => (*f, (*v != d.version).then(|| v.clone())),
                    None => ("unknown", None),
                };
                // A live NVML handle keeps answering with the library it
                // mapped: only the file on disk shows an upgrade.
                let upgraded = match (&installed, &module) {
                    (Some(new), Some((old, _))) if new != old => Some((new.clone(), old.clone())),
                    _ => None,
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
                Ok(if let Some((new, old)) = upgraded {
                    Check::new(DOMAIN, "driver", Status::Fail, format!("driver {new} installed, kernel module {old} still loaded"))
                        .with_remedy(RELOAD)
                } else if let Some(kernel) = mismatch {
                    Check::new(DOMAIN, "driver", Status::Fail, format!("NVML library {} and kernel module {kernel} differ", d.version))
                        .with_remedy(RELOAD)
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

impl GpuDomain {
    /// Whether nvidia-fabricmanager runs, as systemd says: the agent's unit
    /// (ProtectProc=invisible) cannot see other processes in /proc, so a
    /// systemd that does not answer leaves it unknown. The /proc scan is
    /// for a `--root` test tree, where systemd is not asked.
    fn fabric_manager_running(&self) -> Option<bool> {
        match self.services.state(FABRIC_MANAGER_UNIT) {
            Ok(UnitState::NotThisHost) => Some(process_running(&self.host, "nv-fabricmanager")),
            Ok(state) => Some(state.is_active()),
            Err(e) => {
                tracing::warn!("cannot ask systemd whether {FABRIC_MANAGER_UNIT} runs: {e}");
                None
            }
        }
    }
}

/// The fabric manager's unit (NVIDIA's nvidia-fabricmanager package).
const FABRIC_MANAGER_UNIT: &str = "nvidia-fabricmanager.service";

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
        self.source.set_library(&self.cfg.nvml_library);
    }

    fn run(&mut self) -> Vec<Check> {
        let (expected_count, why) = expected(&self.host, &self.cfg, &self.facts);
        let expected = !why.is_empty();
        let why = why.join(", ");
        if expected || device_nodes(&self.host) > 0 {
            // Before NVML registers for events: what the kernel logged
            // until now, so nothing is counted twice.
            self.read_kernel_log();
        }
        let mut out = match self.driver_check(expected, &why) {
            Ok(c) => {
                self.kernel.nvml_answered();
                vec![c]
            }
            Err(checks) => {
                // Read the kernel log again once the driver answers.
                self.kernel.nvml_stopped();
                self.metrics.forget_readings();
                return checks;
            }
        };

        // Count: NVML, expectation, device nodes; readings.
        let counted = self.source.count();
        let count = counted.as_ref().map_or(0, |n| *n);
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
            expected_nvlinks: self.cfg.expected_nvlinks,
            ..Limits::default()
        };
        // A GPU gone from the sweep (lost, or a smaller count) takes its
        // series with it rather than leaving them frozen.
        if !readings
            .iter()
            .map(|g| g.index)
            .eq(self.prev.keys().copied())
        {
            self.metrics.forget_gpus();
        }
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

        // Fabric: NVML's registration state per GPU; NVSwitch device nodes
        // and the fabric manager's systemd state where the driver has no such call.
        let nvswitch = std::fs::read_dir(self.host.path("/dev"))
            .map(|d| {
                d.filter_map(Result::ok).any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("nvidia-nvswitch")
                })
            })
            .unwrap_or(false);
        let fabric_manager = if nvswitch {
            self.fabric_manager_running()
        } else {
            Some(false)
        };
        out.push(hgx::fabric(&readings, nvswitch, fabric_manager));
        self.prev = readings.iter().cloned().map(|g| (g.index, g)).collect();

        // Every GPU NVML lists was read (or is lost): a kernel-log XID whose
        // PCI address is not among them is on a GPU NVML does not list.
        // Otherwise (a count or read failing for now) it waits.
        let listed = counted.is_ok() && readings.len() + lost.len() == count as usize;
        out.push(self.xid_check(&readings, listed));

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

#[cfg(test)]
mod tests;

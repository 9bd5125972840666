use super::fake::{healthy_h100, FakeSource};
use super::source::{DriverInfo, XidEvent};
use super::*;
use crate::edge::systemctl::{ServiceManager, UnitState};

fn domain(
    source: &FakeSource,
    host: &Host,
    cfg: impl FnOnce(&mut Config),
) -> (GpuDomain, Registry) {
    domain_with(
        source,
        host,
        cfg,
        Box::new(crate::edge::systemctl::NotThisHost),
    )
}

fn domain_with(
    source: &FakeSource,
    host: &Host,
    cfg: impl FnOnce(&mut Config),
    services: Box<dyn ServiceManager>,
) -> (GpuDomain, Registry) {
    let mut c = Config::default();
    cfg(&mut c);
    let mut r = crate::metrics::new_registry();
    let d = GpuDomain::new(
        &c,
        host.clone(),
        &mut r,
        Facts::default(),
        Box::new(source.clone()),
        services,
    );
    (d, r)
}

/// systemd answering one state for every unit.
#[derive(Debug)]
struct Systemd(UnitState);

impl ServiceManager for Systemd {
    fn restart(&self, _unit: &str) -> Result<(), crate::edge::exec::ExecError> {
        Ok(())
    }

    fn state(&self, unit: &str) -> Result<UnitState, crate::edge::exec::ExecError> {
        assert_eq!(unit, "nvidia-fabricmanager.service");
        Ok(self.0.clone())
    }
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
        text.contains("hybrid_node_gpu_xid_errors_total{gpu=\"0\",xid=\"79\",class=\"fatal\"} 1"),
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
    g.pcie_replays = Some(2); // driver reload reset: 2 since then
    src.set(|s| s.gpus = vec![Ok(g.clone())]);
    d.run();
    g.pcie_replays = Some(4);
    src.set(|s| s.gpus = vec![Ok(g.clone())]);
    d.run();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains("hybrid_node_gpu_pcie_replays_total{gpu=\"0\",uuid=\"GPU-00000000-0000-0000-0000-000000000000\",model=\"NVIDIA H100 80GB HBM3\"} 9"), "5, then 2 after the reset, then 2 more: {text}");
}

#[test]
fn kernel_module_versions_parse() {
    assert_eq!(
        kernel_module(
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build\n"
        ),
        Some(("580.65.06".into(), "open"))
    );
    assert_eq!(
        kernel_module("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct 8 03:22:07 UTC 2024\n"),
        Some(("550.127.05".into(), "proprietary"))
    );
    assert_eq!(kernel_module("garbage"), None);
}

#[test]
fn kernel_log_xids_are_mapped_by_pci_address_and_taken_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = h100_host(dir.path(), 2);
    let src = FakeSource::default();
    // The driver is not loaded yet at the first run.
    let (mut d, registry) = domain(&src, &h, |c| c.gpu.expected_count = Some(2));
    let now = kernel_log::since_boot().as_micros();
    let at = now.saturating_sub(30_000_000);
    // healthy_h100(1) sits at 00000000:19:00.0.
    std::fs::write(
        h.path("/dev/kmsg"),
        format!("4,7,{at},-;NVRM: Xid (PCI:0000:19:00): 79, pid=1, name=x, GPU has fallen off the bus.\n"),
    )
    .expect("kmsg");
    assert_eq!(status(&d.run(), "driver"), Status::Fail);
    src.set(|s| {
        s.driver = driver("580.65.06");
        s.gpus = vec![Ok(healthy_h100(0)), Ok(healthy_h100(1))];
    });
    for _ in 0..3 {
        let c = d.run();
        let xid = c.iter().find(|c| c.id == "xid").expect("xid");
        assert_eq!(xid.status, Status::Fail, "{xid:?}");
        assert!(xid.summary.contains("XID 79 on GPU 1"), "{xid:?}");
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("hybrid_node_gpu_xid_errors_total{gpu=\"1\",xid=\"79\",class=\"fatal\"} 1"),
        "read again after the driver came back, counted once: {text}"
    );
}

/// Points `libnvidia-ml.so.1` under the root at the given driver's library.
fn install_library(h: &Host, version: &str) {
    let dir = h.path("/usr/lib64");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let link = dir.join("libnvidia-ml.so.1");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("libnvidia-ml.so.{version}"), &link).expect("symlink");
}

/// A driver package upgraded under the running agent: its NVML handle keeps
/// answering with the old library (as the real one does), only the link on
/// disk moves.
#[test]
fn a_driver_upgraded_on_disk_fails_while_the_old_module_is_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = h100_host(dir.path(), 1);
    install_library(&h, "580.65.06");
    let src = FakeSource::default();
    src.set(|s| {
        s.driver = driver("580.65.06");
        s.gpus = vec![Ok(healthy_h100(0))];
    });
    let (mut d, _) = domain(&src, &h, |_| {});
    assert_eq!(status(&d.run(), "driver"), Status::Pass);
    install_library(&h, "580.82.07");
    let c = d.run();
    assert_eq!(status(&c, "driver"), Status::Fail, "{c:?}");
    assert_eq!(
        c[0].summary,
        "driver 580.82.07 installed, kernel module 580.65.06 still loaded"
    );
    assert!(
        c[0].remedy.as_deref().is_some_and(|r| r.contains("reboot")),
        "{c:?}"
    );
    // The configured absolute library path is looked at first.
    let (mut d, _) = domain(&src, &h, |c| {
        c.gpu.nvml_library = "/opt/nvidia/libnvidia-ml.so.1".into()
    });
    std::fs::create_dir_all(h.path("/opt/nvidia")).expect("mkdir");
    std::os::unix::fs::symlink(
        "libnvidia-ml.so.580.65.06",
        h.path("/opt/nvidia/libnvidia-ml.so.1"),
    )
    .expect("symlink");
    assert_eq!(status(&d.run(), "driver"), Status::Pass);
}

#[test]
fn remedies_name_the_configured_minimum_and_a_reload_for_a_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = h100_host(dir.path(), 1);
    let src = FakeSource::default();
    let (mut d, _) = domain(&src, &h, |c| {
        c.gpu.expected_count = Some(1);
        c.gpu.min_driver = 570;
    });
    let c = d.run();
    assert!(
        c[0].remedy
            .as_deref()
            .is_some_and(|r| r.contains("570 or newer")),
        "{c:?}"
    );
    src.set(|s| {
        s.driver = Some(Err(SourceError::DriverMismatch(
            "NVML reports LibRmVersionMismatch".into(),
        )))
    });
    let c = d.run();
    assert_eq!(status(&c, "driver"), Status::Fail);
    assert!(
        c[0].remedy.as_deref().is_some_and(|r| r.contains("reboot")),
        "{c:?}"
    );
}

/// The agent's unit hides other processes (ProtectProc=invisible): on the
/// host itself systemd says whether the fabric manager runs.
#[test]
fn the_fabric_manager_is_asked_of_systemd_on_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = h100_host(dir.path(), 1);
    std::fs::write(h.path("/dev/nvidia-nvswitch0"), "").expect("node");
    let src = FakeSource::default();
    src.set(|s| {
        s.driver = driver("580.65.06");
        s.gpus = vec![Ok(healthy_h100(0))]; // no fabric state from NVML
    });
    let running = UnitState::Loaded {
        active: "active".into(),
        sub: "running".into(),
    };
    let (mut d, _) = domain_with(&src, &h, |_| {}, Box::new(Systemd(running)));
    assert_eq!(status(&d.run(), "fabric"), Status::Pass);
    let (mut d, _) = domain_with(&src, &h, |_| {}, Box::new(Systemd(UnitState::NotFound)));
    assert_eq!(status(&d.run(), "fabric"), Status::Fail);
    // Under a test root: the process in the tree's /proc.
    let (mut d, _) = domain(&src, &h, |_| {});
    assert_eq!(status(&d.run(), "fabric"), Status::Fail);
    std::fs::create_dir_all(h.path("/proc/4242")).expect("mkdir");
    std::fs::write(h.path("/proc/4242/comm"), "nv-fabricmanager\n").expect("comm");
    assert_eq!(status(&d.run(), "fabric"), Status::Pass);
}

/// XIDs NVML delivered live are in the kernel log too: reading the log again
/// after NVML comes back must not count them twice.
#[test]
fn xids_delivered_live_are_not_counted_again_from_the_kernel_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = h100_host(dir.path(), 2);
    std::fs::write(h.path("/dev/kmsg"), "").expect("kmsg");
    let src = FakeSource::default();
    let healthy = |s: &mut super::fake::Script| {
        s.driver = driver("580.65.06");
        s.gpus = vec![Ok(healthy_h100(0)), Ok(healthy_h100(1))];
    };
    src.set(healthy);
    let (mut d, registry) = domain(&src, &h, |_| {});
    d.run();
    // XID 79 on GPU 1: delivered live, and logged by the kernel.
    let at = kernel_log::since_boot()
        .as_micros()
        .saturating_sub(1_000_000);
    std::fs::write(
        h.path("/dev/kmsg"),
        format!("4,7,{at},-;NVRM: Xid (PCI:0000:19:00): 79, pid=1, name=x, GPU has fallen off the bus.\n"),
    )
    .expect("kmsg");
    src.set(|s| s.xids = vec![XidEvent { gpu: 1, xid: 79 }]);
    d.run();
    // NVML stops answering, then comes back: the log is read again.
    src.set(|s| s.driver = Some(Err(SourceError::Other("Unknown Error".into()))));
    d.run();
    src.set(healthy);
    let c = d.run();
    let xid = c.iter().find(|c| c.id == "xid").expect("xid");
    assert!(xid.summary.contains("(1 events)"), "{xid:?}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("hybrid_node_gpu_xid_errors_total{gpu=\"1\",xid=\"79\",class=\"fatal\"} 1"),
        "{text}"
    );
}

/// A kernel-log XID waits while NVML's GPU list is not known (a read
/// failing for now) rather than being marked unlisted for good; one on a
/// GPU NVML does not list names its PCI address.
#[test]
fn kernel_log_xids_wait_for_the_gpu_list_and_unlisted_ones_name_their_pci_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = h100_host(dir.path(), 2);
    let at = kernel_log::since_boot()
        .as_micros()
        .saturating_sub(10_000_000);
    std::fs::write(
        h.path("/dev/kmsg"),
        format!(
            "4,7,{at},-;NVRM: Xid (PCI:0000:19:00): 79, pid=1, name=x, GPU has fallen off the bus.\n\
             4,8,{at},-;NVRM: Xid (PCI:0000:aa:00): 48, pid=1, name=x, An uncorrectable double bit error\n"
        ),
    )
    .expect("kmsg");
    let src = FakeSource::default();
    src.set(|s| {
        s.driver = driver("580.65.06");
        s.gpus = vec![
            Err(SourceError::Other("Unknown Error".into())),
            Err(SourceError::Other("Unknown Error".into())),
        ];
    });
    let (mut d, _) = domain(&src, &h, |_| {});
    assert_eq!(status(&d.run(), "xid"), Status::Pass, "nothing mapped yet");
    src.set(|s| s.gpus = vec![Ok(healthy_h100(0)), Ok(healthy_h100(1))]);
    let c = d.run();
    let xid = c.iter().find(|c| c.id == "xid").expect("xid");
    assert_eq!(xid.status, Status::Fail);
    assert!(xid.summary.contains("XID 79 on GPU 1"), "{xid:?}");
    assert!(
        xid.summary
            .contains("XID 48 on PCI 0000:aa:00, a GPU NVML does not list"),
        "{xid:?}"
    );
}

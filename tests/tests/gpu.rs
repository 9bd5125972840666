//! The GPU domain on its real code path: the built agent loads the scripted
//! NVML library (tests/nvml-scripted, `gpu.nvml_library`) through
//! nvml-wrapper, as it loads libnvidia-ml.so.1 on a GPU host, and reads the
//! scenarios of tests/fixtures/nvml/: an HGX H100, a passthrough H100 PCIe,
//! no driver, a driver/library mismatch, a GPU falling off the bus and an
//! XID storm. Scenarios are rewritten under a running agent to move the
//! host on (driver loaded, driver upgraded), and XIDs the kernel logged
//! before a restart come from a /dev/kmsg file under --root.

use hybrid_node_agent_e2e::{
    agent_bin, check_in, fixture, json_report, nvml_scripted_lib, sample, Agent,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const DRIVER: &str = "580.65.06";

/// A host root with NVIDIA device nodes, the kernel module's version file,
/// an agent config naming the scripted library, and a scenario file the
/// test can rewrite.
struct GpuHost {
    dir: tempfile::TempDir,
    scenario: PathBuf,
    config: PathBuf,
}

impl GpuHost {
    fn new(scenario: &str, gpus: u32, nvswitches: u32, extra_config: &str) -> GpuHost {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("dev")).expect("mkdir");
        for i in 0..gpus {
            std::fs::write(root.join(format!("dev/nvidia{i}")), "").expect("node");
        }
        for i in 0..nvswitches {
            std::fs::write(root.join(format!("dev/nvidia-nvswitch{i}")), "").expect("node");
        }
        std::fs::create_dir_all(root.join("proc/driver/nvidia")).expect("mkdir");
        let version = if scenario == "h100-pcie.toml" {
            "570.172.08"
        } else {
            DRIVER
        };
        std::fs::write(
            root.join("proc/driver/nvidia/version"),
            format!("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build  (dvs-builder@U22-I3-AF03-09-1)  Wed Jul 23 2025\nGCC version:  gcc version 13.3.0\n"),
        )
        .expect("version");
        let config = root.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[gpu]\ninterval = \"1s\"\nnvml_library = {:?}\n{extra_config}\n",
                nvml_scripted_lib().display().to_string()
            ),
        )
        .expect("config");
        let host = GpuHost {
            scenario: root.join("scenario.toml"),
            config,
            dir,
        };
        host.switch(scenario);
        host
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the scenario (a new file renamed over the old: the library
    /// sees it changed).
    fn switch(&self, scenario: &str) {
        let tmp = self.root().join("scenario.tmp");
        std::fs::copy(fixture(&format!("nvml/{scenario}")), &tmp).expect("copy scenario");
        std::fs::rename(&tmp, &self.scenario).expect("rename scenario");
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.root().display().to_string(),
            "--config".into(),
            self.config.display().to_string(),
        ]
    }

    /// `check -o json`, once.
    fn check(&self) -> serde_json::Value {
        let out = std::process::Command::new(agent_bin())
            .args(self.args())
            .args(["check", "-o", "json"])
            .env("NVML_SCRIPTED_SCENARIO", &self.scenario)
            .env_remove("RUST_LOG")
            .output()
            .expect("run agent");
        json_report(&out)
    }

    fn start(&self) -> Agent {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let scenario = self.scenario.display().to_string();
        let mut a = Agent::start(
            &args,
            &[("NVML_SCRIPTED_SCENARIO", scenario.as_str())],
            Some(&self.root().join("agent.log")),
        );
        a.wait_ready();
        a
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("agent.log")).unwrap_or_default()
    }
}

const WAIT: Duration = Duration::from_secs(20);
/// gpu-lost.toml loses GPU 3 (and logs its XID 79) 10 s after NVML's
/// first initialisation: a wait from the agent's start covering that on a
/// loaded machine.
const LOST_WAIT: Duration = Duration::from_secs(40);

fn gpu_series<'a>(metrics: &'a str, family: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with('{'))
        .collect()
}

#[test]
fn hgx_h100_passes_with_18_nvlinks_each_and_the_fabric_from_nvml() {
    let host = GpuHost::new("hgx-h100.toml", 8, 4, "");
    let r = host.check();
    assert_eq!(check_in(&r, "gpu", "driver").0, "pass", "{r:#}");
    let (s, m) = check_in(&r, "gpu", "count");
    assert_eq!((s, m), ("pass", "8 GPU(s), NVIDIA H100 80GB HBM3"));
    for i in 0..8 {
        let (s, m) = check_in(&r, "gpu", &format!("nvlink/gpu{i}"));
        assert_eq!(s, "pass", "{m}");
        assert!(m.contains("18 NVLink links active"), "{m}");
        for what in [
            "ecc",
            "row_remap",
            "pcie",
            "memory_thermal",
            "recovery",
            "thermal",
        ] {
            let (s, m) = check_in(&r, "gpu", &format!("{what}/gpu{i}"));
            assert_eq!(s, "pass", "{what}/gpu{i}: {m}");
        }
    }
    assert!(check_in(&r, "gpu", "pcie/gpu1")
        .1
        .contains("00000000:2A:00.0"));
    assert!(check_in(&r, "gpu", "memory_thermal/gpu0")
        .1
        .contains("HBM at 40 °C (limit 95 °C)"));
    // No nv-fabricmanager process under this root: the verdict is NVML's.
    let (s, m) = check_in(&r, "gpu", "fabric");
    assert_eq!(
        (s, m),
        ("pass", "NVSwitch fabric registered on 8 GPU(s) (NVML)")
    );

    let agent = host.start();
    agent.wait_check("gpu", "count", WAIT, |s, _| s == "pass");
    let m = agent.metrics();
    assert_eq!(sample(&m, "hybrid_node_gpu_devices"), Some(8.0));
    assert_eq!(
        gpu_series(&m, "hybrid_node_gpu_nvlink_up").len(),
        8 * 18,
        "{m}"
    );
    assert_eq!(gpu_series(&m, "hybrid_node_gpu_fabric_state").len(), 8);
    assert!(gpu_series(&m, "hybrid_node_gpu_fabric_state")
        .iter()
        .all(|l| l.ends_with(" 3")));
    assert_eq!(
        gpu_series(&m, "hybrid_node_gpu_memory_temperature_celsius").len(),
        8
    );
    assert_eq!(
        gpu_series(&m, "hybrid_node_gpu_nvlink_errors_total").len(),
        8 * 3
    );
    assert_eq!(gpu_series(&m, "hybrid_node_gpu_recovery_action").len(), 8);
    assert!(
        m.contains(r#"hybrid_node_gpu_info{gpu="3",uuid="GPU-4c2a1e0b-0000-4000-8000-000000000003",model="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:5D:00.0",vbios="96.00.99.00.01"} 1"#),
        "{m}"
    );
}

/// Every `hybrid_node_gpu_*` family of docs/metrics.md, by name.
fn documented_gpu_families() -> Vec<String> {
    let doc = std::fs::read_to_string(hybrid_node_agent_e2e::repo_root().join("docs/metrics.md"))
        .expect("docs/metrics.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `hybrid_node_gpu"))
        .filter_map(|rest| rest.split('`').next())
        .map(|rest| format!("hybrid_node_gpu{rest}"))
        .collect()
}

#[test]
fn the_gpu_metrics_of_an_hgx_scrape_are_the_documented_ones() {
    let host = GpuHost::new("gpu-lost.toml", 8, 4, "");
    let agent = host.start();
    agent.wait_check("gpu", "xid", LOST_WAIT, |s, _| s == "fail");
    let m = agent.metrics();
    let scraped: Vec<String> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("hybrid_node_gpu"))
        .map(str::to_owned)
        .collect();
    let documented = documented_gpu_families();
    for name in &scraped {
        // Counters are documented with their `_total` sample name (the
        // OpenMetrics TYPE line names the family without it).
        let total = format!("{name}_total");
        assert!(
            documented.contains(name) || documented.contains(&total),
            "{name} is exported but not in docs/metrics.md"
        );
    }
    for name in &documented {
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            scraped.iter().any(|s| s == family || s == name),
            "{name} is documented but not exported: {scraped:?}"
        );
    }
}

#[test]
fn a_passthrough_h100_pcie_has_no_nvlink_or_fabric_to_check() {
    let host = GpuHost::new("h100-pcie.toml", 1, 0, "");
    let r = host.check();
    let (s, m) = check_in(&r, "gpu", "driver");
    assert_eq!(s, "pass", "{m}");
    assert!(m.contains("570.172.08") && m.contains("CUDA 12.8"), "{m}");
    assert_eq!(
        check_in(&r, "gpu", "count"),
        ("pass", "1 GPU(s), NVIDIA H100 PCIe")
    );
    for what in [
        "nvlink/gpu0",
        "memory_thermal/gpu0",
        "recovery/gpu0",
        "fabric",
    ] {
        assert_eq!(check_in(&r, "gpu", what).0, "n/a", "{what}");
    }
    for what in [
        "ecc/gpu0",
        "row_remap/gpu0",
        "pcie/gpu0",
        "thermal/gpu0",
        "power/gpu0",
    ] {
        assert_eq!(check_in(&r, "gpu", what).0, "pass", "{what}");
    }
}

#[test]
fn a_missing_library_fails_when_gpus_are_expected_and_is_na_otherwise() {
    let host = GpuHost::new("hgx-h100.toml", 0, 0, "");
    std::fs::write(
        &host.config,
        "[gpu]\nnvml_library = \"/nonexistent/libnvidia-ml.so.1\"\n",
    )
    .expect("config");
    let r = host.check();
    let (s, m) = check_in(&r, "gpu", "driver");
    assert_eq!(s, "n/a", "{m}");
    assert!(m.contains("/nonexistent/libnvidia-ml.so.1"), "{m}");
    std::fs::write(
        &host.config,
        "[gpu]\nnvml_library = \"/nonexistent/libnvidia-ml.so.1\"\nexpected_count = 8\n",
    )
    .expect("config");
    let r = host.check();
    let (s, m) = check_in(&r, "gpu", "driver");
    assert_eq!(s, "fail", "{m}");
    assert!(
        m.contains("gpu.expected_count") && m.contains("/nonexistent/libnvidia-ml.so.1"),
        "{m}"
    );
}

#[test]
fn an_agent_started_before_the_driver_reports_healthy_once_it_loads_without_a_restart() {
    let host = GpuHost::new("no-driver.toml", 8, 4, "expected_count = 8");
    let mut agent = host.start();
    let (_, m) = agent.wait_check("gpu", "driver", WAIT, |s, _| s == "fail");
    assert!(m.contains("not loaded"), "{m}");
    assert_eq!(
        sample(&agent.metrics(), "hybrid_node_gpu_devices"),
        Some(0.0)
    );
    host.switch("hgx-h100.toml");
    let (_, m) = agent.wait_check("gpu", "driver", Duration::from_secs(30), |s, _| s == "pass");
    assert!(m.contains(DRIVER), "{m}");
    agent.wait_check("gpu", "count", WAIT, |s, _| s == "pass");
    assert_eq!(
        sample(&agent.metrics(), "hybrid_node_gpu_devices"),
        Some(8.0)
    );
    assert!(
        agent.child.try_wait().expect("wait").is_none(),
        "the same process"
    );
    let log = host.log();
    assert!(log.contains("cannot initialise NVML from"), "{log}");
    assert!(log.contains("NVML initialised from"), "{log}");
}

/// Points the root's `libnvidia-ml.so.1` at a driver's library, as the
/// driver package does.
fn install_library(root: &Path, version: &str) {
    let dir = root.join("usr/lib64");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let link = dir.join("libnvidia-ml.so.1");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("libnvidia-ml.so.{version}"), &link).expect("symlink");
}

#[test]
fn a_driver_upgraded_under_the_agent_fails_until_the_module_matches_then_recovers() {
    let host = GpuHost::new("hgx-h100.toml", 8, 4, "expected_count = 8");
    install_library(host.root(), DRIVER);
    let agent = host.start();
    agent.wait_check("gpu", "driver", WAIT, |s, _| s == "pass");
    // The package upgrade: the running agent's NVML handle keeps answering
    // with the old library (the scripted one does as real NVML does), so
    // only the library on disk tells.
    host.switch("mismatch.toml");
    install_library(host.root(), "580.82.07");
    let (_, m) = agent.wait_check("gpu", "driver", WAIT, |s, _| s == "fail");
    assert_eq!(
        m,
        format!("driver 580.82.07 installed, kernel module {DRIVER} still loaded")
    );
    // The reboot (or module reload): the library and the module agree again.
    host.switch("hgx-h100.toml");
    install_library(host.root(), DRIVER);
    agent.wait_check("gpu", "driver", Duration::from_secs(30), |s, _| s == "pass");
    agent.wait_check("gpu", "count", WAIT, |s, _| s == "pass");
    // A new process on the mismatched host: NVML itself refuses.
    host.switch("mismatch.toml");
    let r = host.check();
    let (s, m) = check_in(&r, "gpu", "driver");
    assert_eq!(s, "fail", "{m}");
    assert!(m.contains("versions differ"), "{m}");
    assert!(m.contains("reboot"), "{m}");
}

/// An R550/R560 driver knows the fabric struct up to version 2: the agent
/// asks for that one and sees the health mask (degraded bandwidth).
#[test]
fn an_r550_driver_reports_degraded_fabric_bandwidth() {
    let host = GpuHost::new("hgx-h100.toml", 8, 4, "");
    let text = std::fs::read_to_string(fixture("nvml/hgx-h100.toml")).expect("fixture");
    let text = text.replace(
        "[gpu_template]\n",
        "[gpu_template]\nfabric_health_mask = 1   # NVML_GPU_FABRIC_HEALTH_MASK_DEGRADED_BW_TRUE\n",
    );
    assert!(text.contains("fabric_health_mask"), "no [gpu_template]");
    std::fs::write(&host.scenario, format!("fabric_max_version = 2\n{text}")).expect("scenario");
    let r = host.check();
    let (s, m) = check_in(&r, "gpu", "fabric");
    assert_eq!(s, "warn", "{m}");
    assert!(
        m.contains("bandwidth degraded on GPU(s) 0,1,2,3,4,5,6,7"),
        "{m}"
    );
}

#[test]
fn a_gpu_falling_off_the_bus_fails_the_count_and_the_xid_check() {
    let host = GpuHost::new("gpu-lost.toml", 8, 4, "expected_count = 8");
    let agent = host.start();
    agent.wait_check("gpu", "count", WAIT, |s, _| s == "pass");
    let (_, m) = agent.wait_check("gpu", "count", LOST_WAIT, |s, _| s == "fail");
    assert!(m.contains("[3] fell off the bus"), "{m}");
    let (_, m) = agent.wait_check("gpu", "xid", WAIT, |s, _| s == "fail");
    assert!(m.contains("XID 79 on GPU 3"), "{m}");
    let metrics = agent.metrics();
    assert_eq!(
        sample(
            &metrics,
            r#"hybrid_node_gpu_xid_errors_total{gpu="3",xid="79",class="fatal"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    // The other seven still report.
    assert_eq!(
        gpu_series(&metrics, "hybrid_node_gpu_temperature_celsius").len(),
        7,
        "{metrics}"
    );
}

#[test]
fn an_xid_storm_of_application_errors_is_counted_not_paged_and_94_warns() {
    let host = GpuHost::new("xid-storm.toml", 8, 4, "");
    let agent = host.start();
    let (_, m) = agent.wait_check("gpu", "xid", WAIT, |s, _| s == "warn");
    assert!(m.contains("XID 94 on GPU 2"), "{m}");
    assert!(!m.contains("XID 13"), "ignored XIDs are not listed: {m}");
    // Every one of the 2000 events is counted (none dropped by a full channel).
    let series = r#"hybrid_node_gpu_xid_errors_total{gpu="0",xid="13",class="ignored"}"#;
    let counted = hybrid_node_agent_e2e::eventually(Duration::from_secs(30), || {
        sample(&agent.metrics(), series).filter(|n| *n >= 2000.0)
    });
    assert_eq!(counted, Some(2000.0), "{}", agent.metrics());
    assert_eq!(
        agent.check("gpu", "xid").map(|c| c.0),
        Some("warn".to_owned())
    );
    let warn_lines = host
        .log()
        .lines()
        .filter(|l| l.contains("new XID event"))
        .count();
    assert!(
        warn_lines < 60,
        "one log line per run, not per event: {warn_lines}"
    );
}

/// CLOCK_MONOTONIC now, in microseconds: the kernel log's clock.
fn monotonic_us() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    u64::try_from(Duration::from(t).as_micros()).expect("u64")
}

#[test]
fn xids_the_kernel_logged_before_a_restart_still_fail_and_age_out() {
    // A one-minute window, an XID 48 logged 150 s ago (aged out) and an XID
    // 79 logged 5 s ago (inside it through both starts): a machine up for
    // less than that waits until it is, so the ageing is always asserted.
    const OLDEST: u64 = 150;
    let uptime = Duration::from_micros(monotonic_us());
    if uptime < Duration::from_secs(OLDEST + 5) {
        let wait = Duration::from_secs(OLDEST + 5) - uptime;
        eprintln!("uptime {uptime:?}: waiting {wait:?} so an XID can be logged {OLDEST} s ago");
        std::thread::sleep(wait);
    }
    let host = GpuHost::new("hgx-h100.toml", 8, 4, "xid_window = \"1m\"");
    let now = monotonic_us();
    let ago = |s: u64| now - s * 1_000_000;
    let kmsg = format!(
        "4,50,{},-;NVRM: Xid (PCI:0000:ab:00): 48, pid=1, name=x, An uncorrectable double bit error\n\
         6,100,{},-;NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  {DRIVER}\n\
         4,101,{},-;NVRM: Xid (PCI:0000:5d:00): 79, pid=2231, name=python3, GPU has fallen off the bus.\n \
         SUBSYSTEM=pci\n \
         DEVICE=+pci:0000:5d:00.0\n\
         4,102,{},-;NVRM: Xid (PCI:0000:2a:00): 13, pid=2231, name=python3, Graphics SM Warp Exception\n",
        ago(OLDEST),
        ago(120),
        ago(5),
        ago(4),
    );
    std::fs::write(host.root().join("dev/kmsg"), &kmsg).expect("kmsg");
    for start in 0..2 {
        let agent = host.start();
        let (_, m) = agent.wait_check("gpu", "xid", WAIT, |s, _| s == "fail");
        assert!(m.contains("XID 79 on GPU 3"), "start {start}: {m}");
        assert!(!m.contains("XID 48"), "aged out: {m}");
        let metrics = agent.metrics();
        assert_eq!(
            sample(
                &metrics,
                r#"hybrid_node_gpu_xid_errors_total{gpu="3",xid="79",class="fatal"}"#
            ),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            sample(
                &metrics,
                r#"hybrid_node_gpu_xid_errors_total{gpu="1",xid="13",class="ignored"}"#
            ),
            Some(1.0),
            "{metrics}"
        );
        drop(agent);
    }
}

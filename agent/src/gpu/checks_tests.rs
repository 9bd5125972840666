//! Unit tests of the per-GPU verdicts (`checks.rs`).

use super::super::fake::healthy_h100;
use super::super::source::Remap;
use super::*;

fn status(checks: &[Check], what: &str) -> Status {
    checks
        .iter()
        .find(|c| c.id.starts_with(&format!("{what}/")))
        .map(|c| c.status)
        .expect(what)
}

fn run(g: &GpuReading, prev: Option<&GpuReading>, streak: u32) -> Vec<Check> {
    per_gpu(g, prev, streak, &Limits::default())
}

#[test]
fn a_healthy_h100_passes_with_nvlink_na_on_a_single_gpu() {
    let mut g = healthy_h100(0);
    g.name = "NVIDIA H100 PCIe".into();
    let c = run(&g, None, 0);
    for what in [
        "ecc",
        "row_remap",
        "pcie",
        "persistence",
        "mig",
        "clocks",
        "thermal",
        "power",
    ] {
        assert_eq!(status(&c, what), Status::Pass, "{what}: {c:?}");
    }
    assert_eq!(status(&c, "nvlink"), Status::NotApplicable);
}

#[test]
fn ecc_transitions() {
    let ok = healthy_h100(0);
    let mut g = ok.clone();
    g.ecc_uncorrected_volatile = Some(2);
    assert_eq!(status(&run(&g, Some(&ok), 0), "ecc"), Status::Fail);
    g.ecc_enabled = Some(false);
    g.ecc_pending = Some(true);
    assert_eq!(status(&run(&g, None, 0), "ecc"), Status::Warn);
    g.ecc_pending = Some(false);
    assert_eq!(status(&run(&g, None, 0), "ecc"), Status::Fail);
    g.ecc_enabled = None;
    assert_eq!(status(&run(&g, None, 0), "ecc"), Status::NotApplicable);
}

#[test]
fn row_remap_transitions() {
    let mut g = healthy_h100(0);
    g.remap = Some(Remap {
        pending: true,
        ..Remap::default()
    });
    assert_eq!(status(&run(&g, None, 0), "row_remap"), Status::Warn);
    g.remap = Some(Remap {
        failure: true,
        uncorrectable: 3,
        ..Remap::default()
    });
    assert_eq!(status(&run(&g, None, 0), "row_remap"), Status::Fail);
    g.remap = None;
    g.retired_pages = Some(4);
    assert_eq!(status(&run(&g, None, 0), "row_remap"), Status::Warn);
    g.retired_pages = None;
    assert_eq!(
        status(&run(&g, None, 0), "row_remap"),
        Status::NotApplicable
    );
}

#[test]
fn pcie_width_loss_fails_and_replays_warn() {
    let ok = healthy_h100(0);
    let mut g = ok.clone();
    g.pcie_width = Some((8, 16));
    assert_eq!(status(&run(&g, None, 0), "pcie"), Status::Fail);
    let mut g = ok.clone();
    g.pcie_gen = Some((1, 5)); // idle link power saving
    assert_eq!(status(&run(&g, None, 0), "pcie"), Status::Pass);
    g.pcie_replays = Some(12);
    assert_eq!(status(&run(&g, Some(&ok), 0), "pcie"), Status::Warn);
}

#[test]
fn nvlink_persistence_mig() {
    let mut g = healthy_h100(0);
    g.nvlink = Some(vec![true; 18]);
    assert_eq!(status(&run(&g, None, 0), "nvlink"), Status::Pass);
    g.nvlink = Some({
        let mut v = vec![true; 18];
        v[3] = false;
        v
    });
    let c = run(&g, None, 0);
    assert_eq!(status(&c, "nvlink"), Status::Fail);
    assert!(c
        .iter()
        .any(|c| c.summary.contains("link(s) 3 inactive of 18")));
    g.persistence = Some(false);
    assert_eq!(status(&run(&g, None, 0), "persistence"), Status::Warn);
    g.mig = Some((false, true));
    assert_eq!(status(&run(&g, None, 0), "mig"), Status::Warn);
}

#[test]
fn clock_reasons_sustained_and_soft() {
    let mut g = healthy_h100(0);
    g.clock_events = Some(reason::SW_POWER_CAP);
    assert_eq!(
        status(&run(&g, None, 0), "clocks"),
        Status::Pass,
        "power cap is normal"
    );
    g.clock_events = Some(reason::SW_THERMAL);
    assert_eq!(status(&run(&g, None, 0), "clocks"), Status::Warn);
    g.clock_events = Some(reason::HW_SLOWDOWN);
    assert_eq!(
        status(&run(&g, None, 1), "clocks"),
        Status::Warn,
        "not yet sustained"
    );
    assert_eq!(status(&run(&g, None, 2), "clocks"), Status::Fail);
}

#[test]
fn thermal_and_power() {
    let mut g = healthy_h100(0);
    g.temperature = Some(83);
    assert_eq!(status(&run(&g, None, 0), "thermal"), Status::Warn);
    g.temperature = Some(88);
    assert_eq!(status(&run(&g, None, 0), "thermal"), Status::Fail);
    g.power_watts = Some(700.0);
    assert_eq!(status(&run(&g, None, 0), "power"), Status::Warn);
}

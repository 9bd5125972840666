//! Swap and service limits on host trees.

use super::*;

#[test]
fn swap_areas_fail_with_steps_per_kind() {
    let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap\\040file\t\t\t\tfile\t\t1048572\t\t0\t\t-2\n/dev/sda2\t\t\t\tpartition\t8388604\t\t0\t\t-3\n";
    let areas = swap::parse(swaps).expect("parse");
    assert_eq!(areas[0].name, "/swap file");
    assert_eq!(areas[0].kind, swap::Kind::File);
    assert_eq!(areas[1].size_bytes, 8388604 * 1024);
    let fstab = "UUID=abc / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n/swap\\040file none swap sw 0 0\n";
    let c = swap::judge(DOMAIN, &areas, Some(fstab), true);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("/swap file (file, 1024.0 MiB)"),
        "{}",
        c.summary
    );
    assert!(
        c.summary.contains("stops at a swap partition"),
        "{}",
        c.summary
    );
    let r = c.remedy.expect("remedy");
    assert!(r.contains("`swapoff /swap file`"), "{r}");
    assert!(r.contains("/etc/fstab (line 3)"), "{r}");
    assert!(r.contains("`systemctl mask dev-sda2.swap`"), "{r}");
    assert!(r.contains("(line 2)"), "{r}");
    assert_eq!(swap::judge(DOMAIN, &[], None, false).status, Status::Pass);
    // A swap file alone: nodeadm init turns it off (warn), after init it
    // fails.
    let c = swap::judge(DOMAIN, &areas[..1], Some(fstab), true);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.summary
            .contains("`nodeadm init` will turn swap files off"),
        "{}",
        c.summary
    );
    let c = swap::judge(DOMAIN, &areas[..1], Some(fstab), false);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert_eq!(
        swap::parse("header\n/x file 1\n"),
        Err(swap::ParseError { line: 2, fields: 3 })
    );
    assert_eq!(
        crate::edge::units::escape_path("/swap file"),
        "swap\\x20file"
    );
}

#[test]
fn limits_follow_unit_dropins_then_manager_defaults() {
    let root = tempfile::tempdir().expect("tmp");
    let host = Host::new(root.path());
    write(root.path(), "/proc/sys/kernel/threads-max", "63550\n");
    // kubelet as nodeadm installs it: no limits of its own.
    write(
        root.path(),
        "/etc/systemd/system/kubelet.service",
        "[Service]\nExecStart=/usr/bin/kubelet\n",
    );
    write(
        root.path(),
        "/etc/systemd/system.conf",
        "[Manager]\n#DefaultLimitNOFILE=1024:524288\n",
    );
    write(
        root.path(),
        "/etc/systemd/system.conf.d/10-low.conf",
        "[Manager]\nDefaultLimitNOFILE=512:4096\n",
    );
    let (unit, found) = limits::read(&host, "kubelet.service");
    let c = limits::judge(
        DOMAIN,
        "kubelet",
        "kubelet.service",
        &unit,
        &found,
        1024,
        4096,
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.contains("LimitNOFILE soft limit 512 (from /etc/systemd/system.conf.d/10-low.conf:2) is below 1024"), "{}", c.summary);
    assert!(c
        .remedy
        .expect("remedy")
        .contains("/etc/systemd/system/kubelet.service.d/limits.conf"));
    // A drop-in in /etc beats the package's unit; the later name wins.
    write(
        root.path(),
        "/usr/lib/systemd/system/containerd.service",
        "[Service]\nLimitNOFILE=infinity\nLimitNPROC=infinity\n",
    );
    write(
        root.path(),
        "/etc/systemd/system/containerd.service.d/20-nproc.conf",
        "[Service]\nLimitNPROC=2048\n",
    );
    write(
        root.path(),
        "/usr/lib/systemd/system/containerd.service.d/10-nproc.conf",
        "[Service]\nLimitNPROC=8192\n",
    );
    let (unit, found) = limits::read(&host, "containerd.service");
    assert_eq!(unit.dropins.len(), 2);
    let c = limits::judge(
        DOMAIN,
        "containerd",
        "containerd.service",
        &unit,
        &found,
        1024,
        4096,
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.contains("LimitNPROC soft limit 2048 (from /etc/systemd/system/containerd.service.d/20-nproc.conf:2)"), "{}", c.summary);
    fs::remove_file(
        root.path()
            .join("etc/systemd/system/containerd.service.d/20-nproc.conf"),
    )
    .expect("rm");
    let (unit, found) = limits::read(&host, "containerd.service");
    let c = limits::judge(
        DOMAIN,
        "containerd",
        "containerd.service",
        &unit,
        &found,
        1024,
        4096,
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.summary.contains("LimitNOFILE=infinity, LimitNPROC=8192"),
        "{}",
        c.summary
    );
    // Without any setting: systemd's 1024 files and the kernel's processes.
    fs::remove_file(root.path().join("etc/systemd/system.conf.d/10-low.conf")).expect("rm");
    let (unit, found) = limits::read(&host, "kubelet.service");
    assert_eq!(found[1].1.as_ref().and_then(|l| l.soft), Some(31775));
    let c = limits::judge(
        DOMAIN,
        "kubelet",
        "kubelet.service",
        &unit,
        &found,
        1024,
        4096,
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(limits::parse_value("1024:524288"), Some(Some(1024)));
    assert_eq!(limits::parse_value("infinity"), Some(None));
    let unlimited = limits::Limit {
        soft: None,
        from: String::new(),
    };
    assert_eq!(unlimited.value(), 18446744073709551615u64 as f64);
}

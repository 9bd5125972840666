//! The pure verdicts of every family, on recorded tool output and on files
//! the real tools wrote (tests/fixtures/preflight), plus one run of the
//! whole domain on a host tree.

use super::*;
use crate::edge::ExecError;
use std::fs;
use std::path::Path;

const SYNCED: &str = include_str!("../../../tests/fixtures/preflight/chrony/synced.csv");
const UNSYNCED: &str = include_str!("../../../tests/fixtures/preflight/chrony/unsynced.csv");
const UFW_OPEN: &str = include_str!("../../../tests/fixtures/preflight/ufw/user.rules.open");
const UFW_DENY: &str = include_str!("../../../tests/fixtures/preflight/ufw/user.rules.deny");
const ZONE_DEFAULT: &str =
    include_str!("../../../tests/fixtures/preflight/firewalld/public-default.xml");
const ZONE_OPEN: &str = include_str!("../../../tests/fixtures/preflight/firewalld/public-open.xml");

const SHOW_NO_NTP: &str =
    include_str!("../../../tests/fixtures/preflight/timedatectl/show-no-ntp-service.txt");
const MS: Duration = Duration::from_millis(1);

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

/// Recorded answers of the time tools.
#[derive(Debug, Clone)]
struct Recorded {
    chrony: Option<&'static str>,
    chrony_missing: bool,
    show: Option<&'static str>,
    timesync: Option<&'static str>,
}

fn failed(program: &str, detail: &str) -> ExecError {
    use std::os::unix::process::ExitStatusExt;
    ExecError::Failed {
        program: program.to_owned(),
        status: std::process::ExitStatus::from_raw(1 << 8),
        detail: detail.to_owned(),
    }
}

fn missing(program: &str) -> ExecError {
    ExecError::Spawn {
        program: program.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }
}

impl time::TimeSource for Recorded {
    fn chrony_tracking(&self) -> Result<String, ExecError> {
        match self.chrony {
            Some(t) => Ok(t.to_owned()),
            None if self.chrony_missing => Err(missing("chronyc tracking")),
            None => Err(failed("chronyc tracking", "506 Cannot talk to daemon")),
        }
    }
    fn timedatectl_show(&self) -> Result<String, ExecError> {
        self.show
            .map(str::to_owned)
            .ok_or_else(|| missing("timedatectl show"))
    }
    fn timesync_status(&self) -> Result<String, ExecError> {
        self.timesync
            .map(str::to_owned)
            .ok_or_else(|| failed("timedatectl timesync-status", "no timesyncd"))
    }
}

fn clock(r: &Recorded, warn_ms: u64, fail_ms: u64) -> (Check, bool, Option<f64>) {
    time::judge(
        DOMAIN,
        &time::read(r),
        MS * warn_ms as u32,
        MS * fail_ms as u32,
    )
}

const NO_TOOLS: Recorded = Recorded {
    chrony: None,
    chrony_missing: true,
    show: None,
    timesync: None,
};

#[test]
fn chrony_synced_to_a_server_passes_with_its_offset() {
    let t = time::parse_tracking(SYNCED).expect("parse");
    assert_eq!(t.reference, "10.88.0.2");
    // "0.000003381 seconds fast of NTP time": positive, the clock is fast.
    assert!((t.offset - 0.00000338).abs() < 1e-8, "{}", t.offset);
    let (c, synced, offset) = clock(
        &Recorded {
            chrony: Some(SYNCED),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.summary.contains("10.88.0.2 (stratum 9)"), "{}", c.summary);
    assert!(c.summary.contains("+3.4 µs"), "{}", c.summary);
    assert!(synced);
    assert!(offset.is_some());
}

#[test]
fn chrony_without_a_reference_fails() {
    let (c, synced, _) = clock(
        &Recorded {
            chrony: Some(UNSYNCED),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("Not synchronised"), "{}", c.summary);
    assert!(c.remedy.as_deref().unwrap_or("").contains("chrony.conf"));
    assert!(!synced);
}

#[test]
fn chrony_offsets_past_the_thresholds_warn_then_fail() {
    // The recorded state with its offset moved (chronyc prints NTP time
    // minus system time in field 5).
    let line = |offset: &str| -> &'static str {
        let mut f: Vec<String> = SYNCED.trim().split(',').map(str::to_owned).collect();
        f[4] = offset.to_owned();
        Box::leak(f.join(",").into_boxed_str())
    };
    let (c, ..) = clock(
        &Recorded {
            chrony: Some(line("-0.250")),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.summary.contains("+250.0 ms"), "{}", c.summary);
    let (c, _, off) = clock(
        &Recorded {
            chrony: Some(line("2.5")),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.contains("-2.500 s"), "{}", c.summary);
    assert_eq!(off, Some(-2.5));
}

#[test]
fn chrony_on_its_own_local_clock_warns() {
    let local = "7F7F0101,,8,1795862264.1,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.5,Normal";
    let (c, synced, _) = clock(
        &Recorded {
            chrony: Some(local),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(!synced);
    assert!(matches!(
        time::parse_tracking("A,b"),
        Err(time::TrackingError(_))
    ));
}

#[test]
fn timedatectl_answers_when_chrony_is_not_there() {
    let show_yes = "Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n";
    let status = "       Server: 10.0.0.1 (10.0.0.1)\nPoll interval: 34min 8s (min: 32s; max 34min 8s)\n         Leap: normal\n       Offset: -1.024ms\n        Delay: 512us\n";
    let (c, synced, off) = clock(
        &Recorded {
            show: Some(show_yes),
            timesync: Some(status),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(synced);
    assert!((off.expect("offset") + 0.001024).abs() < 1e-9);
    assert_eq!(
        time::parse_timesync_offset("Offset: +2min 1.5s"),
        Some(121.5)
    );
    assert_eq!(
        time::parse_timesync_offset("Offset: -312µs"),
        Some(-0.000312)
    );
    let (c, synced, _) = clock(
        &Recorded {
            show: Some("CanNTP=yes\nNTP=no\nNTPSynchronized=no\n"),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("turned off"), "{}", c.summary);
    assert!(c
        .remedy
        .as_deref()
        .unwrap_or("")
        .contains("timedatectl set-ntp true"));
    assert!(!synced);
    // Recorded from a booted Debian 12 without an NTP service.
    let (c, synced, _) = clock(
        &Recorded {
            show: Some(SHOW_NO_NTP),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("no NTP service is installed"),
        "{}",
        c.summary
    );
    assert!(c
        .remedy
        .as_deref()
        .unwrap_or("")
        .contains("install an NTP service"));
    assert!(!synced);
}

#[test]
fn no_time_daemon_fails_and_says_what_each_tool_said() {
    let (c, ..) = clock(&NO_TOOLS, 100, 1000);
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("timedatectl show"), "{}", c.summary);
    let (c, ..) = clock(
        &Recorded {
            chrony_missing: false,
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert!(
        c.summary.contains("506 Cannot talk to daemon"),
        "{}",
        c.summary
    );
}

#[test]
fn swap_areas_fail_with_steps_per_kind() {
    let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap\\040file\t\t\t\tfile\t\t1048572\t\t0\t\t-2\n/dev/sda2\t\t\t\tpartition\t8388604\t\t0\t\t-3\n";
    let areas = swap::parse(swaps).expect("parse");
    assert_eq!(areas[0].name, "/swap file");
    assert_eq!(areas[0].kind, swap::Kind::File);
    assert_eq!(areas[1].size_bytes, 8388604 * 1024);
    let fstab = "UUID=abc / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n/swap\\040file none swap sw 0 0\n";
    let c = swap::judge(DOMAIN, &areas, Some(fstab));
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
    assert_eq!(swap::judge(DOMAIN, &[], None).status, Status::Pass);
    assert_eq!(
        swap::parse("header\n/x file 1\n"),
        Err(swap::ParseError { line: 2, fields: 3 })
    );
    assert_eq!(units::escape_path("/swap file"), "swap\\x20file");
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
}

#[test]
fn proxy_disagreements_name_file_and_line_and_hide_credentials() {
    let root = tempfile::tempdir().expect("tmp");
    let host = Host::new(root.path());
    let r = root.path();
    write(r, "/etc/environment", "PATH=/usr/bin\nHTTPS_PROXY=http://user:s3cret@proxy.corp:3128\nhttps_proxy=http://user:s3cret@proxy.corp:3128\nNO_PROXY=localhost,.corp,10.0.0.0/8\n");
    write(r, "/etc/systemd/system/kubelet.service.d/http-proxy.conf", "[Service]\nEnvironment=\"HTTPS_PROXY=http://user:s3cret@proxy.corp:3128\"\nEnvironment=\"NO_PROXY=localhost,.corp,10.0.0.0/8\"\n");
    write(r, "/usr/lib/systemd/system/containerd.service.d/http-proxy.conf", "[Service]\nEnvironment=\"HTTPS_PROXY=http://user:other@proxy2.corp:3128\" \"NO_PROXY=10.0.0.0/8,.corp,localhost\"\n");
    fs::create_dir_all(r.join("etc/apt/apt.conf.d")).expect("mkdir");
    let must = vec![
        ("localhost".to_owned(), "localhost".to_owned()),
        (
            "API server endpoint".to_owned(),
            "abc.gr7.us-west-2.eks.amazonaws.com".to_owned(),
        ),
        ("registry".to_owned(), "harbor.corp".to_owned()),
        ("registry".to_owned(), "10.1.2.3".to_owned()),
    ];
    let v = proxy::judge(DOMAIN, &proxy::gather(&host), &must);
    assert_eq!(v.proxy.status, Status::Fail, "{:?}", v.proxy);
    let s = &v.proxy.summary;
    assert!(s.contains("/usr/lib/systemd/system/containerd.service.d/http-proxy.conf:2 has http://***@proxy2.corp:3128 but /etc/environment:2 has http://***@proxy.corp:3128"), "{s}");
    assert!(!s.contains("s3cret") && !s.contains("other@"), "{s}");
    assert!(v.configured && !v.consistent);
    // NO_PROXY: order does not matter; the API endpoint is not covered.
    assert_eq!(v.no_proxy.status, Status::Warn, "{:?}", v.no_proxy);
    assert!(
        v.no_proxy
            .summary
            .contains("abc.gr7.us-west-2.eks.amazonaws.com (API server endpoint)"),
        "{}",
        v.no_proxy.summary
    );
    assert!(
        !v.no_proxy.summary.contains("harbor.corp"),
        "{}",
        v.no_proxy.summary
    );
    assert_eq!(v.uncovered, 1);
    // Made consistent: apt has no proxy, which only warns.
    write(r, "/usr/lib/systemd/system/containerd.service.d/http-proxy.conf", "[Service]\nEnvironment=\"HTTPS_PROXY=http://user:s3cret@proxy.corp:3128\" \"NO_PROXY=10.0.0.0/8,.corp,localhost\"\n");
    let v = proxy::judge(DOMAIN, &proxy::gather(&host), &must[..1]);
    assert_eq!(v.proxy.status, Status::Warn, "{:?}", v.proxy);
    assert!(
        v.proxy.summary.contains("apt has no proxy set"),
        "{}",
        v.proxy.summary
    );
    write(r, "/etc/apt/apt.conf.d/proxy.conf", "Acquire::http::Proxy \"http://user:s3cret@proxy.corp:3128\";\nAcquire::https::Proxy \"http://user:s3cret@proxy.corp:3128/\";\n");
    let v = proxy::judge(DOMAIN, &proxy::gather(&host), &must[..1]);
    assert_eq!(v.proxy.status, Status::Pass, "{:?}", v.proxy);
    assert!(
        v.proxy.summary.contains("http://***@proxy.corp:3128"),
        "{}",
        v.proxy.summary
    );
    // Lower case disagreeing with upper case in one file.
    write(r, "/etc/environment", "HTTPS_PROXY=http://user:s3cret@proxy.corp:3128\nhttps_proxy=http://elsewhere:8080\nNO_PROXY=localhost,.corp,10.0.0.0/8\n");
    let v = proxy::judge(DOMAIN, &proxy::gather(&host), &must[..1]);
    assert_eq!(v.proxy.status, Status::Fail);
    assert!(v.proxy.summary.contains("/etc/environment:1 HTTPS_PROXY=http://***@proxy.corp:3128 and /etc/environment:2 https_proxy=http://elsewhere:8080 differ"), "{}", v.proxy.summary);
}

#[test]
fn a_proxy_the_kubelet_lacks_fails_and_no_proxy_anywhere_passes() {
    let root = tempfile::tempdir().expect("tmp");
    let host = Host::new(root.path());
    let v = proxy::judge(DOMAIN, &proxy::gather(&host), &[]);
    assert_eq!(v.proxy.status, Status::Pass);
    assert_eq!(v.no_proxy.status, Status::NotApplicable);
    assert!(!v.configured && v.consistent);
    write(
        root.path(),
        "/etc/environment",
        "http_proxy=http://proxy:3128\n",
    );
    let v = proxy::judge(DOMAIN, &proxy::gather(&host), &[]);
    assert_eq!(v.proxy.status, Status::Fail);
    assert!(
        v.proxy
            .summary
            .contains("kubelet.service does not set HTTP_PROXY"),
        "{}",
        v.proxy.summary
    );
    assert!(v
        .proxy
        .remedy
        .expect("remedy")
        .contains("/etc/systemd/system/kubelet.service.d/http-proxy.conf"));
}

#[test]
fn no_proxy_matches_like_go() {
    assert!(proxy::bypasses("localhost,.corp", "harbor.corp"));
    assert!(!proxy::bypasses(".corp", "corp"));
    assert!(proxy::bypasses("corp", "a.b.corp"));
    assert!(proxy::bypasses("*.corp", "a.corp"));
    assert!(proxy::bypasses("10.0.0.0/8", "10.1.2.3"));
    assert!(!proxy::bypasses("10.0.0.0/8", "11.1.2.3"));
    assert!(proxy::bypasses("harbor.corp:5000", "harbor.corp"));
    assert!(proxy::bypasses("*", "anything"));
    assert!(!proxy::bypasses("notcorp", "corp"));
    assert_eq!(proxy::redact("http://u:p@h:1/x"), "http://***@h:1/x");
    assert_eq!(proxy::redact("u:p@h:1"), "***@h:1");
    assert_eq!(proxy::redact("http://h:1"), "http://h:1");
}

fn ufw(rules: &str, enabled: bool) -> firewall::Ufw {
    firewall::Ufw {
        enabled,
        default_input: "DROP".to_owned(),
        rules: firewall::parse_ufw_rules(rules, "/etc/ufw/user.rules"),
    }
}

#[test]
fn ufw_rules_written_by_ufw_decide_the_ports() {
    let ports = required_ports(Cni::Cilium);
    let open = ufw(UFW_OPEN, true);
    let (c, series) = firewall::judge(DOMAIN, None, Some((&open, true)), &ports);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(series.iter().all(|(_, o)| *o));
    let deny = ufw(UFW_DENY, true);
    let (c, series) = firewall::judge(DOMAIN, None, Some((&deny, true)), &ports);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary.contains(
            "ufw does not let in 8472/udp (Cilium VXLAN): /etc/ufw/user.rules:20 denys it"
        ),
        "{}",
        c.summary
    );
    assert_eq!(c.remedy.as_deref(), Some("ufw allow 8472/udp"));
    assert!(series.contains(&(ports[0], true)) && series.contains(&(ports[1], false)));
    // Calico's port is allowed from 10.0.0.0/8 only: said, and counted open.
    let (c, _) = firewall::judge(
        DOMAIN,
        None,
        Some((&deny, true)),
        &required_ports(Cni::Calico),
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.summary.contains("from 10.0.0.0/8"), "{}", c.summary);
    // Installed, not running: nothing to open.
    let (c, series) = firewall::judge(DOMAIN, None, Some((&deny, false)), &ports);
    assert_eq!(c.status, Status::Pass);
    assert!(c.summary.contains("not running"), "{}", c.summary);
    assert!(series.iter().all(|(_, o)| *o));
}

#[test]
fn firewalld_zones_and_services_decide_the_ports() {
    let root = tempfile::tempdir().expect("tmp");
    let host = Host::new(root.path());
    let r = root.path();
    write(r, "/usr/lib/firewalld/zones/public.xml", ZONE_DEFAULT);
    write(r, "/usr/lib/firewalld/services/ssh.xml", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service>\n  <short>SSH</short>\n  <port protocol=\"tcp\" port=\"22\"/>\n</service>\n");
    write(r, "/etc/firewalld/firewalld.conf", "DefaultZone=public\n");
    let fw = firewall::read_firewalld(&host).expect("installed");
    assert_eq!(fw.zones.len(), 1);
    let ports = required_ports(Cni::Cilium);
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.contains("firewalld zone public (/usr/lib/firewalld/zones/public.xml) does not let in 10250/tcp (kubelet)"), "{}", c.summary);
    assert!(
        c.summary
            .contains("10250/tcp (kubelet), 8472/udp (Cilium VXLAN)"),
        "{}",
        c.summary
    );
    assert_eq!(
        c.remedy.as_deref(),
        Some("firewall-cmd --permanent --zone=public --add-port=10250/tcp --add-port=8472/udp && firewall-cmd --reload")
    );
    // The zone firewall-offline-cmd wrote in /etc overrides the shipped one.
    write(r, "/etc/firewalld/zones/public.xml", ZONE_OPEN);
    let fw = firewall::read_firewalld(&host).expect("installed");
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    // A service carrying the port counts; a trusted zone accepts all.
    write(
        r,
        "/etc/firewalld/services/kubelet.xml",
        "<service><port protocol=\"tcp\" port=\"10240-10260\"/></service>",
    );
    write(
        r,
        "/etc/firewalld/zones/internal.xml",
        "<zone target=\"ACCEPT\"><interface name=\"eno1\"/></zone>",
    );
    write(
        r,
        "/etc/firewalld/zones/public.xml",
        "<zone><service name=\"kubelet\"/><port port=\"8472\" protocol=\"udp\"/></zone>",
    );
    let fw = firewall::read_firewalld(&host).expect("installed");
    assert_eq!(fw.zones.len(), 2);
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.summary.contains("service kubelet in zone public"),
        "{}",
        c.summary
    );
    assert!(
        c.summary.contains("zone internal accepts everything"),
        "{}",
        c.summary
    );
    // Enabled under a root: the link `systemctl enable` makes.
    assert!(!firewall::firewalld_on(&host, None));
    fs::create_dir_all(r.join("etc/systemd/system/multi-user.target.wants")).expect("mkdir");
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/firewalld.service",
        r.join("etc/systemd/system/multi-user.target.wants/firewalld.service"),
    )
    .expect("link");
    assert!(firewall::firewalld_on(&host, None));
    assert!(!firewall::firewalld_on(&host, Some(false)));
    // A /proc under the root (a machine not booted with systemd): enabled
    // is not running; a firewalld process is.
    write(r, "/proc/1/comm", "process_api\n");
    assert!(!firewall::firewalld_on(&host, None));
    write(r, "/proc/812/comm", "firewalld\n");
    assert!(firewall::firewalld_on(&host, None));
}

#[test]
fn leftovers_are_told_from_this_install() {
    let e = leftovers::Evidence::default();
    assert_eq!(leftovers::judge(DOMAIN, &e).0.status, Status::Pass);
    let e = leftovers::Evidence {
        etc_kubernetes: true,
        ..Default::default()
    };
    let (c, n) = leftovers::judge(DOMAIN, &e);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.summary.contains("/etc/kubernetes is there"),
        "{}",
        c.summary
    );
    assert!(c.remedy.expect("remedy").contains("nodeadm uninstall"));
    assert_eq!(n, 1);
    let e = leftovers::Evidence {
        kubelet_env: true,
        etc_kubernetes: true,
        kubelet_config: true,
        kubelet_active: Some(true),
        kubeconfig_server: Some("old.eks.amazonaws.com".into()),
        nodeconfig_server: Some("new.eks.amazonaws.com".into()),
    };
    let (c, n) = leftovers::judge(DOMAIN, &e);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary
            .contains("points at old.eks.amazonaws.com, the NodeConfig at new.eks.amazonaws.com"),
        "{}",
        c.summary
    );
    assert_eq!(n, 3);
    let e = leftovers::Evidence {
        nodeconfig_server: Some("old.eks.amazonaws.com".into()),
        ..e
    };
    assert_eq!(leftovers::judge(DOMAIN, &e).0.status, Status::Pass);
}

#[derive(Debug)]
struct Running(&'static [&'static str]);

impl ServiceState for Running {
    fn is_active(&self, unit: &str) -> Option<bool> {
        Some(self.0.contains(&unit))
    }
}

#[test]
fn the_domain_runs_every_family_and_exports_them() {
    let root = tempfile::tempdir().expect("tmp");
    let r = root.path();
    write(
        r,
        "/proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1024\t0\t-2\n",
    );
    write(r, "/etc/ufw/ufw.conf", "ENABLED=yes\n");
    write(r, "/etc/ufw/user.rules", UFW_OPEN);
    let mut registry = Registry::with_prefix("hybrid_node");
    let mut d = PreflightDomain::new(
        &Config::default(),
        Host::new(r),
        &mut registry,
        Facts::default(),
        Edges {
            time: Box::new(Recorded {
                chrony: Some(SYNCED),
                ..NO_TOOLS
            }),
            services: Box::new(Running(&["ufw"])),
        },
    );
    let checks = d.run();
    let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "clock",
            "swap",
            "limits/kubelet",
            "limits/containerd",
            "proxy",
            "no_proxy",
            "firewall",
            "leftovers"
        ]
    );
    let status = |id: &str| checks.iter().find(|c| c.id == id).map(|c| c.status);
    assert_eq!(status("clock"), Some(Status::Pass));
    assert_eq!(status("swap"), Some(Status::Fail));
    assert_eq!(status("firewall"), Some(Status::Pass));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        "hybrid_node_preflight_clock_synchronized 1",
        "hybrid_node_preflight_swap_areas 1",
        "hybrid_node_preflight_swap_bytes 1048576",
        "hybrid_node_preflight_firewall_active{firewall=\"ufw\"} 1",
        "hybrid_node_preflight_firewall_active{firewall=\"firewalld\"} 0",
        "hybrid_node_preflight_firewall_port_open{port=\"8472/udp\"} 1",
        "hybrid_node_preflight_service_limit{unit=\"kubelet\",resource=\"nofile\"} 1024.0",
        "hybrid_node_preflight_proxy_consistent 1",
        "hybrid_node_preflight_leftover_artifacts 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(
        text.contains("hybrid_node_preflight_clock_offset_seconds 0.00000338"),
        "{text}"
    );
}

//! Proxy settings and host firewall rules.

use super::*;

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
        (
            "API server endpoint".to_owned(),
            "abc.gr7.us-west-2.eks.amazonaws.com".to_owned(),
        ),
        ("registry".to_owned(), "harbor.corp".to_owned()),
        ("registry".to_owned(), "10.1.2.3".to_owned()),
    ];
    let v = proxy::judge(DOMAIN, &proxy::gather(&host, false), &must);
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
    let v = proxy::judge(DOMAIN, &proxy::gather(&host, false), &must[..1]);
    assert_eq!(v.proxy.status, Status::Warn, "{:?}", v.proxy);
    assert!(
        v.proxy.summary.contains("apt has no proxy set"),
        "{}",
        v.proxy.summary
    );
    write(r, "/etc/apt/apt.conf.d/proxy.conf", "Acquire::http::Proxy \"http://user:s3cret@proxy.corp:3128\";\nAcquire::https::Proxy \"http://user:s3cret@proxy.corp:3128/\";\n");
    let v = proxy::judge(DOMAIN, &proxy::gather(&host, false), &must[..1]);
    assert_eq!(v.proxy.status, Status::Pass, "{:?}", v.proxy);
    assert!(
        v.proxy.summary.contains("http://***@proxy.corp:3128"),
        "{}",
        v.proxy.summary
    );
    // Lower case disagreeing with upper case in one file.
    write(r, "/etc/environment", "HTTPS_PROXY=http://user:s3cret@proxy.corp:3128\nhttps_proxy=http://elsewhere:8080\nNO_PROXY=localhost,.corp,10.0.0.0/8\n");
    let v = proxy::judge(DOMAIN, &proxy::gather(&host, false), &must[..1]);
    assert_eq!(v.proxy.status, Status::Fail);
    assert!(v.proxy.summary.contains("/etc/environment:1 HTTPS_PROXY=http://***@proxy.corp:3128 and /etc/environment:2 https_proxy=http://elsewhere:8080 differ"), "{}", v.proxy.summary);
}

#[test]
fn a_fifo_in_apt_conf_d_is_skipped_without_blocking() {
    let root = tempfile::tempdir().expect("tmp");
    let host = Host::new(root.path());
    let r = root.path();
    write(
        r,
        "/etc/apt/apt.conf.d/90proxy",
        "Acquire::https::Proxy \"http://proxy.corp:3128\";\n",
    );
    let status = std::process::Command::new("mkfifo")
        .arg(r.join("etc/apt/apt.conf.d/50fifo"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    // No writer ever opens the FIFO: a blocking read would hang forever.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(proxy::gather(&host, false));
    });
    let sources = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("gather returns although a FIFO sits in apt.conf.d");
    let apt = sources.iter().find(|s| s.name == "apt").expect("apt");
    assert_eq!(apt.settings.len(), 1, "{apt:?}");
    assert!(apt.settings[0]
        .at
        .starts_with("/etc/apt/apt.conf.d/90proxy"));
}

#[test]
fn a_proxy_the_kubelet_lacks_fails_and_no_proxy_anywhere_passes() {
    let root = tempfile::tempdir().expect("tmp");
    let host = Host::new(root.path());
    let v = proxy::judge(DOMAIN, &proxy::gather(&host, false), &[]);
    assert_eq!(v.proxy.status, Status::Pass);
    assert_eq!(v.no_proxy.status, Status::NotApplicable);
    assert!(!v.configured && v.consistent);
    write(
        root.path(),
        "/etc/environment",
        "http_proxy=http://proxy:3128\n",
    );
    let v = proxy::judge(DOMAIN, &proxy::gather(&host, false), &[]);
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
    // The SSM agent only when the NodeConfig registers through SSM: the
    // snap's unit on Ubuntu.
    assert!(
        !v.proxy.summary.contains("amazon-ssm-agent"),
        "{}",
        v.proxy.summary
    );
    write(
        root.path(),
        "/etc/os-release",
        "NAME=\"Ubuntu\"\nID=ubuntu\n",
    );
    let v = proxy::judge(DOMAIN, &proxy::gather(&host, true), &[]);
    assert!(
        v.proxy
            .summary
            .contains("snap.amazon-ssm-agent.amazon-ssm-agent.service does not set HTTP_PROXY"),
        "{}",
        v.proxy.summary
    );
    assert!(
        !v.proxy.summary.contains(" amazon-ssm-agent.service"),
        "{}",
        v.proxy.summary
    );
}

#[test]
fn no_proxy_matches_like_go() {
    assert!(proxy::bypasses("localhost,.corp", "harbor.corp"));
    assert!(!proxy::bypasses(".corp", "corp"));
    assert!(proxy::bypasses("corp", "a.b.corp"));
    assert!(proxy::bypasses("*.corp", "a.corp"));
    assert!(proxy::bypasses("10.0.0.0/8", "10.1.2.3"));
    assert!(!proxy::bypasses("10.0.0.0/8", "11.1.2.3"));
    // As Go: an entry's port must match (443 when the target has none).
    assert!(!proxy::bypasses("harbor.corp:5000", "harbor.corp"));
    assert!(proxy::bypasses("harbor.corp:5000", "harbor.corp:5000"));
    assert!(proxy::bypasses("harbor.corp", "harbor.corp:5000"));
    assert!(proxy::bypasses("*", "anything"));
    assert!(!proxy::bypasses("notcorp", "corp"));
    assert_eq!(proxy::redact("http://u:p@h:1/x"), "http://***@h:1/x");
    assert_eq!(proxy::redact("u:p@h:1"), "***@h:1");
    assert_eq!(proxy::redact("http://h:1"), "http://h:1");
}

#[test]
fn a_password_with_a_slash_is_still_redacted() {
    let shown = proxy::redact("http://user:pa/ss@proxy:3128");
    assert_eq!(shown, "http://***@proxy:3128");
    assert_eq!(proxy::redact("user:p/w@proxy:3128/"), "***@proxy:3128/");
    assert!(!proxy::redact("https://u:a/b/c@p:1").contains("a/b"));
}

#[test]
fn only_the_default_zone_and_the_node_ip_s_zone_are_judged() {
    let root = tempfile::tempdir().expect("tmp");
    let host = Host::new(root.path());
    let r = root.path();
    write(r, "/etc/firewalld/firewalld.conf", "DefaultZone=public\n");
    write(
        r,
        "/etc/firewalld/zones/public.xml",
        "<zone><port port=\"10250\" protocol=\"tcp\"/><port port=\"8472\" protocol=\"udp\"/></zone>",
    );
    // A second NIC (storage, management) in a zone that drops everything.
    write(
        r,
        "/etc/firewalld/zones/drop.xml",
        "<zone target=\"DROP\"><interface name=\"eth1\"/></zone>",
    );
    let fw = firewall::read_firewalld(&host).expect("installed");
    let ports = required_ports(Cni::Cilium);
    let (c, series) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports, Some("eth0"));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.summary.contains("not judged: zone drop on eth1"),
        "{}",
        c.summary
    );
    assert!(series.iter().all(|(_, open)| *open), "{series:?}");
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports, None);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    // The node IP's interface in that zone: the cluster's traffic is dropped.
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports, Some("eth1"));
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.contains("firewalld zone drop"), "{}", c.summary);
    assert!(
        c.remedy.as_deref().unwrap_or("").contains("--zone=drop"),
        "{c:?}"
    );
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
    let (c, series) = firewall::judge(DOMAIN, None, Some((&open, true)), &ports, None);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(series.iter().all(|(_, o)| *o));
    let deny = ufw(UFW_DENY, true);
    let (c, series) = firewall::judge(DOMAIN, None, Some((&deny, true)), &ports, None);
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
        None,
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.summary.contains("from 10.0.0.0/8"), "{}", c.summary);
    // Installed, not running: nothing to open.
    let (c, series) = firewall::judge(DOMAIN, None, Some((&deny, false)), &ports, None);
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
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports, None);
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
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports, None);
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
    let (c, _) = firewall::judge(DOMAIN, Some((&fw, true)), None, &ports, Some("eno1"));
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

/// A zone with `rules` (rich rules as firewall-offline-cmd writes them)
/// and `own` (its ports and services), judged for Cilium's ports.
fn judge_zone(own: &str, rules: &str) -> Check {
    let root = tempfile::tempdir().expect("tmp");
    let r = root.path();
    write(r, "/etc/firewalld/firewalld.conf", "DefaultZone=public\n");
    write(
        r,
        "/etc/firewalld/zones/public.xml",
        &format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone>\n  <short>Public</short>\n{own}{rules}</zone>\n"),
    );
    write(
        r,
        "/usr/lib/firewalld/services/kubelet-api.xml",
        "<service><port protocol=\"tcp\" port=\"10250\"/></service>",
    );
    let fw = firewall::read_firewalld(&Host::new(r)).expect("installed");
    firewall::judge(
        DOMAIN,
        Some((&fw, true)),
        None,
        &required_ports(Cni::Cilium),
        None,
    )
    .0
}

#[test]
fn firewalld_rich_rules_open_and_refuse_ports_in_firewalld_order() {
    const KUBELET_FROM_VPC: &str = "  <rule family=\"ipv4\">\n    <source address=\"10.20.0.0/16\"/>\n    <port port=\"10250\" protocol=\"tcp\"/>\n    <accept/>\n  </rule>\n";
    const VXLAN: &str =
        "  <rule>\n    <port port=\"8472\" protocol=\"udp\"/>\n    <accept/>\n  </rule>\n";
    // Accepting rules open the ports; one limited to a source says so.
    let c = judge_zone("", &format!("{KUBELET_FROM_VPC}{VXLAN}"));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.summary.contains(
            "10250/tcp (rich rule (ipv4, from address 10.20.0.0/16 only) accepting in zone public)"
        ),
        "{}",
        c.summary
    );
    assert!(
        c.summary
            .contains("8472/udp (rich rule accepting in zone public)"),
        "{}",
        c.summary
    );
    // A port inside a rule that rejects is not the zone's port (it used
    // to be read as one: the flat reader saw every <port>).
    let reject = "  <rule>\n    <port port=\"10250\" protocol=\"tcp\"/>\n    <reject type=\"icmp-port-unreachable\"/>\n  </rule>\n";
    let c = judge_zone("", &format!("{reject}{VXLAN}"));
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary.contains("firewalld zone public (/etc/firewalld/zones/public.xml) refuses 10250/tcp (kubelet): rich rule rejecting in zone public"),
        "{}",
        c.summary
    );
    assert!(
        c.remedy
            .as_deref()
            .unwrap_or("")
            .contains("--remove-rich-rule"),
        "{c:?}"
    );
    // Refusing rules come before the zone's own ports and services...
    let listed =
        "  <port port=\"10250\" protocol=\"tcp\"/>\n  <port port=\"8472\" protocol=\"udp\"/>\n";
    let drop_service = "  <rule>\n    <service name=\"kubelet-api\"/>\n    <drop/>\n  </rule>\n";
    let c = judge_zone(listed, drop_service);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary
            .contains("refuses 10250/tcp (kubelet): rich rule dropping"),
        "{}",
        c.summary
    );
    // ...unless an accepting rule of lower priority answers first, and a
    // rule refusing some sources only leaves the port open to the rest.
    let first = "  <rule priority=\"-10\">\n    <port port=\"10250\" protocol=\"tcp\"/>\n    <accept/>\n  </rule>\n";
    let c = judge_zone(listed, &format!("{drop_service}{first}"));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.summary.contains("rich rule (priority -10) accepting"),
        "{}",
        c.summary
    );
    let some = "  <rule family=\"ipv4\">\n    <source address=\"192.0.2.0/24\"/>\n    <port port=\"10250\" protocol=\"tcp\"/>\n    <reject/>\n  </rule>\n";
    let c = judge_zone(listed, some);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.summary.contains("10250/tcp (port in zone public)"),
        "{}",
        c.summary
    );
    // A rule for other ports, or a log-only rule, changes nothing.
    let other = "  <rule>\n    <port port=\"22\" protocol=\"tcp\"/>\n    <drop/>\n  </rule>\n  <rule>\n    <port port=\"10250\" protocol=\"tcp\"/>\n    <log prefix=\"kubelet\"/>\n  </rule>\n";
    let c = judge_zone("", other);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary
            .contains("does not let in 10250/tcp (kubelet), 8472/udp"),
        "{}",
        c.summary
    );
}

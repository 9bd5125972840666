use super::checks::*;
use super::probe::{Failure, HostNetError, HostNetworks, Network, Probe, Target};
use super::*;
use crate::config::cluster::EndpointAccess;
use crate::edge::route::{InterfaceAddress, KernelRoute};
use crate::model::cidr::Cidr;
use crate::model::nodeconfig::{Format, NodeConfig};
use crate::tls::Answer;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

fn cidr(s: &str) -> Cidr {
    s.parse().expect("cidr")
}

fn ok_probe(ip: &str, answer: Option<(u16, &str)>) -> Probe {
    Probe {
        addrs: vec![ip.parse().expect("ip")],
        addr: Some(ip.parse().expect("ip")),
        via: None,
        dns: Some(Duration::from_millis(2)),
        tcp: Some(Duration::from_millis(3)),
        tls: Some(Duration::from_millis(4)),
        answer: answer.map(|(status, body)| Answer {
            status,
            body: body.into(),
        }),
        failure: None,
    }
}

/// Answers per host name; records what was asked and with which trust.
#[derive(Debug, Default)]
struct Fake {
    probes: BTreeMap<String, Probe>,
    host: HostNetworks,
    asked: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Network for Fake {
    fn probe(&self, target: &Target, trust: &TlsSettings, _: Duration) -> Probe {
        self.asked
            .lock()
            .expect("lock")
            .push((target.host.clone(), trust.ca_pem.is_some()));
        self.probes.get(&target.host).cloned().unwrap_or(Probe {
            failure: Some(Failure::Resolve(format!("cannot resolve {}", target.host))),
            ..Probe::default()
        })
    }
    fn host_networks(&self) -> Result<HostNetworks, HostNetError> {
        Ok(self.host.clone())
    }
    fn lookup(&self, _: &str, _: Duration) -> std::io::Result<Vec<IpAddr>> {
        Ok(vec!["10.80.0.7".parse().expect("ip")])
    }
}

fn site() -> HostNetworks {
    HostNetworks {
        routes: vec![
            KernelRoute {
                interface: "eth0".into(),
                destination: Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(Ipv4Addr::new(10, 80, 0, 1)),
            },
            KernelRoute {
                interface: "eth0".into(),
                destination: Ipv4Addr::new(10, 80, 0, 0),
                prefix_len: 24,
                gateway: None,
            },
            KernelRoute {
                interface: "tun0".into(),
                destination: Ipv4Addr::new(10, 200, 0, 0),
                prefix_len: 16,
                gateway: Some(Ipv4Addr::new(10, 80, 0, 254)),
            },
        ],
        addresses: vec![
            InterfaceAddress {
                interface: "lo".into(),
                address: "127.0.0.1".parse().expect("ip"),
                prefix_len: 8,
            },
            InterfaceAddress {
                interface: "eth0".into(),
                address: "10.80.0.7".parse().expect("ip"),
                prefix_len: 24,
            },
        ],
    }
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUXU9wdUtFRUt0aGlzaXNub3RyZWFsMAoGCCqGSM49BAMC\n-----END CERTIFICATE-----\n";

fn nodeconfig(hybrid: serde_json::Value, flags: &[&str]) -> NodeConfig {
    use base64::Engine;
    serde_json::from_value(serde_json::json!({
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {
            "cluster": {
                "name": "c",
                "region": "cn-north-1",
                "apiServerEndpoint": "https://api.example.internal",
                "certificateAuthority": base64::engine::general_purpose::STANDARD.encode(CA_PEM),
            },
            "hybrid": hybrid,
            "kubelet": {"flags": flags},
        }
    }))
    .expect("nodeconfig")
}

fn domain(fake: Fake, nc: Option<NodeConfig>, config: &Config) -> (EndpointsDomain, Registry) {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc/ssl/certs")).expect("mkdir");
    std::fs::write(
        root.path().join("etc/ssl/certs/ca-certificates.crt"),
        CA_PEM,
    )
    .expect("write");
    let facts = Facts::default();
    if let Some(nc) = nc {
        facts.set_nodeconfig(Arc::new(Loaded::new(
            nc,
            "/etc/nodeadm/nodeconfig.yaml".into(),
            Format::Yaml,
        )));
    }
    let mut registry = Registry::with_prefix("hybrid_node");
    let host = Host::new(root.keep());
    let d = EndpointsDomain::new(config, host, &mut registry, facts, Box::new(fake));
    (d, registry)
}

fn find<'a>(checks: &'a [Check], id: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no {id} in {checks:#?}"))
}

fn scrape(r: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, r).expect("encode");
    out
}

#[test]
fn ssm_nodes_need_ssm_its_channels_and_sts_in_the_regions_partition() {
    let mut fake = Fake::default();
    for h in [
        "ssm.cn-north-1.amazonaws.com.cn",
        "ssmmessages.cn-north-1.amazonaws.com.cn",
        "sts.cn-north-1.amazonaws.com.cn",
    ] {
        fake.probes.insert(h.into(), ok_probe("52.80.1.1", None));
    }
    fake.probes.insert(
        "ec2messages.cn-north-1.amazonaws.com.cn".into(),
        Probe {
            addrs: vec!["52.80.1.9".parse().expect("ip")],
            failure: Some(Failure::NoRoute {
                addr: "52.80.1.9".parse().expect("ip"),
                reason: "Network is unreachable".into(),
            }),
            ..Probe::default()
        },
    );
    fake.probes.insert(
        "api.example.internal".into(),
        ok_probe(
            "10.0.1.20",
            Some((
                401,
                r#"{"kind":"Status","message":"Unauthorized","code":401}"#,
            )),
        ),
    );
    let asked = fake.asked.clone();
    let nc = nodeconfig(
        serde_json::json!({"ssm": {"activationCode": "x", "activationId": "y"}}),
        &[],
    );
    let (mut d, registry) = domain(fake, Some(nc), &Config::default());
    let checks = d.run();
    let sts = find(&checks, "aws/sts");
    assert_eq!(sts.status, Status::Pass, "{sts:?}");
    assert!(sts.summary.contains("(aws-cn partition)"), "{sts:?}");
    let ec2 = find(&checks, "aws/ec2messages");
    assert_eq!(ec2.status, Status::Fail);
    assert!(ec2.summary.contains("no route to 52.80.1.9"), "{ec2:?}");
    assert!(ec2.remedy.as_deref().unwrap_or("").contains("route"));
    assert!(checks.iter().all(|c| c.id != "aws/rolesanywhere"));
    assert_eq!(find(&checks, "api-server").status, Status::Pass);
    // AWS endpoints are verified with the OS trust, the API with the CA.
    let asked = asked.lock().expect("lock").clone();
    assert!(asked.contains(&("sts.cn-north-1.amazonaws.com.cn".into(), false)));
    assert!(asked.contains(&("api.example.internal".into(), true)));
    let m = scrape(&registry);
    assert!(
        m.contains("hybrid_node_endpoints_up{endpoint=\"ec2messages\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("hybrid_node_endpoints_up{endpoint=\"sts\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("hybrid_node_endpoints_up{endpoint=\"api-server\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("hybrid_node_endpoints_tls_handshake_seconds{endpoint=\"sts\"} 0.004"),
        "{m}"
    );
    assert!(
        !m.contains("hybrid_node_endpoints_tcp_connect_seconds{endpoint=\"ec2messages\"}"),
        "{m}"
    );
}

#[test]
fn roles_anywhere_nodes_need_rolesanywhere_and_sts() {
    let nc = nodeconfig(
        serde_json::json!({"iamRolesAnywhere": {"nodeName": "gpu-01", "trustAnchorArn": "a", "profileArn": "b", "roleArn": "c"}}),
        &[],
    );
    let (mut d, _r) = domain(Fake::default(), Some(nc), &Config::default());
    let checks = d.run();
    let ra = find(&checks, "aws/rolesanywhere");
    assert_eq!(ra.status, Status::Fail);
    assert!(
        ra.summary
            .contains("rolesanywhere.cn-north-1.amazonaws.com.cn"),
        "{ra:?}"
    );
    assert!(checks.iter().all(|c| c.id != "aws/ssm"));
}

#[test]
fn without_a_nodeconfig_nothing_applies_yet() {
    let (mut d, _r) = domain(Fake::default(), None, &Config::default());
    let checks = d.run();
    assert_eq!(find(&checks, "aws").status, Status::NotApplicable);
    assert_eq!(find(&checks, "api-server").status, Status::NotApplicable);
    assert_eq!(find(&checks, "node-ip").status, Status::NotApplicable);
    assert_eq!(find(&checks, "pod-networks").status, Status::NotApplicable);
}

#[test]
fn the_cluster_ca_must_be_pem_and_its_absence_is_not_a_failure() {
    let mut nc = nodeconfig(
        serde_json::json!({"ssm": {"activationCode": "x", "activationId": "y"}}),
        &[],
    );
    nc.spec.cluster.certificate_authority = "aGVsbG8=".into(); // "hello"
    let (mut d, _r) = domain(Fake::default(), Some(nc.clone()), &Config::default());
    let c = find(&d.run(), "api-server").clone();
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("holds no PEM certificate"), "{c:?}");
    nc.spec.cluster.certificate_authority = String::new();
    let (mut d, _r) = domain(Fake::default(), Some(nc), &Config::default());
    let c = find(&d.run(), "api-server").clone();
    assert_eq!(c.status, Status::Unknown);
    assert!(c.summary.contains("DescribeCluster"), "{c:?}");
}

#[test]
fn unauthenticated_answers_are_judged_as_nodeadm_does() {
    let status = |code, body| unauthenticated_verdict(code, body).0;
    let k8s = r#"{"kind":"Status","message":"forbidden: User \"system:anonymous\" cannot get path \"/\"","code":403}"#;
    assert_eq!(status(401, r#"{"kind":"Status"}"#), Status::Pass);
    assert_eq!(status(403, k8s), Status::Pass);
    assert!(unauthenticated_verdict(403, k8s)
        .1
        .contains("system:anonymous"));
    let (s, why) = unauthenticated_verdict(200, r#"{"paths":["/api"]}"#);
    assert_eq!(s, Status::Fail);
    assert!(why.contains("anonymous access is open"), "{why}");
    assert_eq!(status(500, "{}"), Status::Fail);
    let (s, why) = unauthenticated_verdict(401, "<html>proxy login</html>");
    assert_eq!(s, Status::Fail);
    assert!(why.contains("not a Kubernetes Status"), "{why}");
}

#[test]
fn api_failures_each_have_their_own_words() {
    let fail = |f: Failure| {
        api_server(
            "api.example.internal",
            &Probe {
                failure: Some(f),
                ..Probe::default()
            },
        )
    };
    let c = fail(Failure::Untrusted {
        kind: crate::tls::CertProblem::Untrusted,
        reason: "invalid peer certificate: UnknownIssuer".into(),
    });
    assert!(
        c.summary
            .contains("does not verify against the NodeConfig's certificateAuthority"),
        "{c:?}"
    );
    assert!(c
        .remedy
        .as_deref()
        .unwrap_or("")
        .contains("describe-cluster"));
    let c = fail(Failure::NoRoute {
        addr: "10.0.1.20".parse().expect("ip"),
        reason: "Network is unreachable".into(),
    });
    assert!(c.summary.contains("no route to 10.0.1.20"), "{c:?}");
    let c = fail(Failure::Resolve(
        "cannot resolve api.example.internal".into(),
    ));
    assert!(c
        .remedy
        .as_deref()
        .unwrap_or("")
        .contains("Route 53 Resolver"));
    let c = api_server(
        "api.example.internal",
        &ok_probe("10.0.1.20", Some((200, "{}"))),
    );
    assert_eq!(c.status, Status::Fail);
}

#[test]
fn private_endpoints_must_resolve_inside_the_vpc() {
    let vpc = [cidr("10.0.0.0/16")];
    let private: Vec<IpAddr> = vec!["10.0.1.20".parse().expect("ip")];
    let public: Vec<IpAddr> = vec![
        "10.0.1.20".parse().expect("ip"),
        "54.239.1.20".parse().expect("ip"),
    ];
    let judge = |a: &[IpAddr], access| api_addresses("api", a, access, &vpc).status;
    assert_eq!(judge(&private, EndpointAccess::Private), Status::Pass);
    assert_eq!(judge(&public, EndpointAccess::Private), Status::Fail);
    assert!(api_addresses("api", &public, EndpointAccess::Private, &vpc)
        .summary
        .contains("54.239.1.20 outside the VPC"));
    assert_eq!(
        judge(&public, EndpointAccess::Public),
        Status::NotApplicable
    );
    // Public has its own words: not the advice to set "private".
    let c = api_addresses("api", &public, EndpointAccess::Public, &vpc);
    assert!(c.summary.starts_with("public endpoint"), "{c:?}");
    assert!(!c.summary.contains("set [cluster]"), "{c:?}");
    let c = api_addresses("api", &public, EndpointAccess::Any, &vpc);
    assert!(c.summary.contains("endpoint_access = \"private\""), "{c:?}");
    assert_eq!(judge(&[], EndpointAccess::Private), Status::Unknown);
}

#[test]
fn the_node_ip_is_derived_the_way_nodeadm_does() {
    let host = site();
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // The last --node-ip= wins.
    let ip = derive_node_ip(
        &s(&["--node-ip=10.1.1.1", "--node-ip=10.80.0.9"]),
        None,
        &[],
        &host,
    );
    assert_eq!(ip, Ok(NodeIp::Flag("10.80.0.9".parse().expect("ip"))));
    let e = derive_node_ip(&s(&["--node-ip=fd00::7"]), None, &[], &host).unwrap_err();
    assert_eq!(e, NodeIpError::Ipv6("fd00::7".into()));
    assert!(e.to_string().contains("IPv4 only"), "{e}");
    let e = derive_node_ip(&s(&["--node-ip=10.0.0.1,10.0.0.2"]), None, &[], &host).unwrap_err();
    assert!(e.to_string().contains("only one IPv4"), "{e}");
    // 0.0.0.0 counts as unset; the node name resolves to an own address.
    let name_addrs: Vec<IpAddr> = vec![
        "192.0.2.1".parse().expect("ip"),
        "10.80.0.7".parse().expect("ip"),
    ];
    let ip = derive_node_ip(
        &s(&["--node-ip=0.0.0.0"]),
        Some("gpu-01"),
        &name_addrs,
        &host,
    );
    assert_eq!(
        ip,
        Ok(NodeIp::NodeName(
            Ipv4Addr::new(10, 80, 0, 7),
            "gpu-01".into()
        ))
    );
    // Else the default route's interface address.
    assert_eq!(
        derive_node_ip(
            &[],
            Some("gpu-01"),
            &["192.0.2.1".parse().expect("ip")],
            &host
        ),
        Ok(NodeIp::DefaultRoute(Ipv4Addr::new(10, 80, 0, 7)))
    );
    let no_default = HostNetworks {
        routes: host.routes[1..].to_vec(),
        addresses: host.addresses.clone(),
    };
    assert_eq!(
        derive_node_ip(&[], None, &[], &no_default),
        Err(NodeIpError::NoDefaultRoute)
    );
}

#[test]
fn the_node_ip_must_be_inside_the_remote_node_networks() {
    let ip = Ok(NodeIp::DefaultRoute(Ipv4Addr::new(10, 80, 0, 7)));
    assert_eq!(node_ip(&ip, &[cidr("10.80.0.0/16")]).status, Status::Pass);
    let c = node_ip(&ip, &[cidr("192.168.0.0/16")]);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("10.80.0.7") && c.summary.contains("192.168.0.0/16"),
        "{c:?}"
    );
    assert_eq!(node_ip(&ip, &[]).status, Status::NotApplicable);
    assert_eq!(
        node_ip(&Err(NodeIpError::NoDefaultRoute), &[cidr("10.0.0.0/8")]).status,
        Status::Fail
    );
}

#[test]
fn pod_networks_must_not_be_the_hosts_own() {
    let host = site();
    let clash = pod_overlaps(&[cidr("10.200.0.0/16")], &host);
    assert_eq!(
        clash,
        ["route 10.200.0.0/16 on tun0 overlaps 10.200.0.0/16"]
    );
    let clash = pod_overlaps(&[cidr("10.80.0.0/28")], &host);
    assert_eq!(clash.len(), 2, "{clash:?}");
    assert!(clash[1].contains("address 10.80.0.7 on eth0"), "{clash:?}");
    // The default route is not a clash; loopback neither.
    assert!(pod_overlaps(&[cidr("10.85.0.0/16"), cidr("127.0.0.0/8")], &host).is_empty());
    assert_eq!(
        pod_networks(&[cidr("10.85.0.0/16")], &[]).status,
        Status::Pass
    );
    assert_eq!(
        pod_networks(&[cidr("10.200.0.0/16")], &["x".into()]).status,
        Status::Fail
    );
}

#[test]
fn the_domain_judges_configured_networks_and_exports_them() {
    let fake = Fake {
        host: site(),
        ..Fake::default()
    };
    let mut config = Config::default();
    config.cluster.remote_node_networks = vec![cidr("192.168.0.0/16")];
    config.cluster.remote_pod_networks = vec![cidr("10.200.0.0/16")];
    let (mut d, registry) = domain(fake, None, &config);
    let checks = d.run();
    assert_eq!(find(&checks, "node-ip").status, Status::Fail);
    assert_eq!(find(&checks, "pod-networks").status, Status::Fail);
    let m = scrape(&registry);
    assert!(
        m.contains(
            "hybrid_node_endpoints_node_ip_in_remote_node_networks{source=\"default-route\"} 0"
        ),
        "{m}"
    );
    assert!(
        m.contains("hybrid_node_endpoints_pod_network_overlaps{kind=\"route\"} 1"),
        "{m}"
    );
}

#[test]
fn the_cnis_own_routes_and_wider_gateway_routes_are_no_pod_overlap() {
    let mut host = site();
    let route = |interface: &str, dst: [u8; 4], prefix_len: u8, gw: Option<[u8; 4]>| KernelRoute {
        interface: interface.into(),
        destination: Ipv4Addr::from(dst),
        prefix_len,
        gateway: gw.map(Ipv4Addr::from),
    };
    host.routes.extend([
        // Cilium: the pod CIDR via cilium_host, an address on it.
        route("cilium_host", [10, 85, 0, 0], 24, Some([10, 85, 0, 126])),
        route("cilium_host", [10, 85, 0, 126], 32, None),
        // Calico: VXLAN and per-pod routes.
        route("vxlan.calico", [10, 85, 1, 0], 26, Some([10, 85, 1, 0])),
        route("cali1234abcd", [10, 85, 0, 9], 32, None),
        // OpenVPN's redirect-gateway halves, a site supernet via a router.
        route("tun1", [0, 0, 0, 0], 1, Some([172, 16, 0, 1])),
        route("tun1", [128, 0, 0, 0], 1, Some([172, 16, 0, 1])),
        route("eth0", [10, 0, 0, 0], 8, Some([10, 80, 0, 1])),
    ]);
    host.addresses.push(InterfaceAddress {
        interface: "cilium_host".into(),
        address: "10.85.0.126".parse().expect("ip"),
        prefix_len: 32,
    });
    let pods = [cidr("10.85.0.0/16")];
    let clash = pod_overlaps(&pods, &host);
    assert!(clash.is_empty(), "{clash:?}");
    assert_eq!(pod_networks(&pods, &clash).status, Status::Pass);
    // An on-link route wider than the pod network still collides.
    host.routes.push(route("eth1", [10, 0, 0, 0], 8, None));
    assert_eq!(
        pod_overlaps(&pods, &host),
        ["route 10.0.0.0/8 on eth1 overlaps 10.85.0.0/16"]
    );
}

#[test]
fn an_expired_or_misnamed_certificate_is_not_called_the_wrong_ca() {
    use crate::tls::CertProblem;
    let untrusted = |kind, reason: &str| Failure::Untrusted {
        kind,
        reason: reason.into(),
    };
    let api = |f: Failure| {
        api_server(
            "api.example.internal",
            &Probe {
                failure: Some(f),
                ..Probe::default()
            },
        )
    };
    let aws = |f: Failure| {
        aws_endpoint(
            "aws/sts",
            "STS",
            "sts.us-west-2.amazonaws.com",
            "aws",
            &Probe {
                failure: Some(f),
                ..Probe::default()
            },
        )
    };
    for check in [api, aws] {
        let c = check(untrusted(
            CertProblem::Validity,
            "invalid peer certificate: Expired",
        ));
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("expired or not yet valid"), "{c:?}");
        let remedy = c.remedy.as_deref().unwrap_or("");
        assert!(
            remedy.contains("clock") && remedy.contains("chronyc tracking"),
            "{c:?}"
        );
        assert!(
            !remedy.contains("TLS-inspecting proxy or firewall answers"),
            "{c:?}"
        );
        assert!(!remedy.contains("not this cluster's CA"), "{c:?}");
        let c = check(untrusted(
            CertProblem::WrongName,
            "invalid peer certificate: NotValidForName",
        ));
        assert!(c.summary.contains("is not for this name"), "{c:?}");
        let remedy = c.remedy.as_deref().unwrap_or("");
        assert!(remedy.contains("not for this host"), "{c:?}");
        assert!(!remedy.contains("not this cluster's CA"), "{c:?}");
    }
    let c = api(untrusted(CertProblem::WrongName, "NotValidForName"));
    assert!(
        c.remedy
            .as_deref()
            .unwrap_or("")
            .contains("spec.cluster.apiServerEndpoint"),
        "{c:?}"
    );
    let c = aws(untrusted(CertProblem::Untrusted, "UnknownIssuer"));
    assert!(
        c.remedy
            .as_deref()
            .unwrap_or("")
            .contains("TLS-inspecting proxy"),
        "{c:?}"
    );
}

#[test]
fn a_resolver_that_hangs_is_cut_at_the_deadline() {
    let started = std::time::Instant::now();
    let r: std::io::Result<()> =
        super::probe::within(started + Duration::from_millis(100), "the resolver", || {
            // Dead nameservers: getaddrinfo blocks for its own ~30 s.
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        });
    let e = r.expect_err("timed out");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("the resolver: no answer"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // An answer in time comes through.
    let ok = super::probe::within(
        std::time::Instant::now() + Duration::from_secs(5),
        "x",
        || Ok(7),
    );
    assert_eq!(ok.expect("answer"), 7);
}

#[test]
fn emptied_pod_networks_leave_no_stale_overlap_series() {
    let fake = Fake {
        host: site(),
        ..Fake::default()
    };
    let mut config = Config::default();
    config.cluster.remote_pod_networks = vec![cidr("10.200.0.0/16")];
    let (mut d, registry) = domain(fake, None, &config);
    d.run();
    assert!(
        scrape(&registry).contains("hybrid_node_endpoints_pod_network_overlaps{kind=\"route\"} 1"),
        "{}",
        scrape(&registry)
    );
    config.cluster.remote_pod_networks.clear();
    d.reconfigure(&config);
    let checks = d.run();
    assert_eq!(find(&checks, "pod-networks").status, Status::NotApplicable);
    let m = scrape(&registry);
    assert!(
        !m.contains("hybrid_node_endpoints_pod_network_overlaps{"),
        "{m}"
    );
}

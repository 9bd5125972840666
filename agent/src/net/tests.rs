use super::*;

#[test]
fn endpoints_parse() {
    assert_eq!(
        parse_endpoint("https://ABC.gr7.us-west-2.eks.amazonaws.com"),
        Some(("ABC.gr7.us-west-2.eks.amazonaws.com".into(), 443))
    );
    assert_eq!(
        parse_endpoint("https://10.0.0.1:6443/"),
        Some(("10.0.0.1".into(), 6443))
    );
    assert_eq!(parse_endpoint(""), None);
}

#[test]
fn loopback_target_end_to_end() {
    let mut config = Config::default();
    config.network.echo_rate = 50.0;
    config.network.target.push(NetworkTarget {
        name: "lo".into(),
        address: "127.0.0.1".into(),
        expected_mtu: Some(9000),
        icmp: true,
        tcp_port: None,
        iperf_port: None,
    });
    let mut registry = crate::metrics::new_registry();
    let mut d = NetworkDomain::new(&config, Host::default(), &mut registry, Facts::default());
    let first = d.run();
    let mtu = first.iter().find(|c| c.id == "mtu/lo").expect("mtu check");
    // lo's MTU (65536) is outside nodeadm's ranges.
    assert_eq!(mtu.status, Status::Fail, "{mtu:?}");
    if first
        .iter()
        .any(|c| c.id == "latency/lo" && c.summary.contains("cannot open"))
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no ICMP socket under CI"
        );
        return;
    }
    std::thread::sleep(Duration::from_millis(400));
    let checks = d.run();
    let lat = checks
        .iter()
        .find(|c| c.id == "latency/lo")
        .expect("latency");
    assert_eq!(lat.status, Status::Pass, "{lat:?}");
    let loss = checks.iter().find(|c| c.id == "loss/lo").expect("loss");
    assert_eq!(loss.status, Status::Unknown, "{loss:?}");
    assert!(loss.summary.contains("insufficient data"));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("hybrid_node_net_rtt_seconds_bucket{le=\"0.005\",target=\"lo\"}"),
        "{text}"
    );
    assert!(
        text.contains("hybrid_node_net_icmp_requests_total{target=\"lo\"}"),
        "{text}"
    );
}

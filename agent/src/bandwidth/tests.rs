use super::*;

#[test]
fn targets_resolve_with_and_without_a_port() {
    assert_eq!(
        resolve("127.0.0.1", 5201).ok(),
        Some("127.0.0.1:5201".parse().expect("addr"))
    );
    assert_eq!(
        resolve("127.0.0.1:6000", 5201).ok(),
        Some("127.0.0.1:6000".parse().expect("addr"))
    );
    assert_eq!(
        resolve("[::1]:7", 5201).ok(),
        Some("[::1]:7".parse().expect("addr"))
    );
    assert_eq!(
        resolve("::1", 5201).ok(),
        Some("[::1]:5201".parse().expect("addr"))
    );
    let e = resolve("127.0.0.1:http", 5201).unwrap_err();
    assert!(matches!(e, TargetError::Port { .. }), "{e}");
    assert!(e.to_string().contains("port \"http\""), "{e}");
    assert!(resolve("", 1).is_err());
}

#[test]
fn off_by_default_and_says_how_to_turn_it_on() {
    let mut config = Config::default();
    config.network.target.push(NetworkTarget {
        name: "vpc".into(),
        address: "127.0.0.1".into(),
        expected_mtu: None,
        icmp: false,
        tcp_port: None,
        iperf_port: Some(5201),
    });
    let mut registry = crate::metrics::new_registry();
    let mut d = BandwidthDomain::new(&config, Host::default(), &mut registry);
    assert!(d.worker.is_none());
    let c = d.run();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].status, Status::NotApplicable);
    assert!(c[0].summary.contains("enabled = true"), "{}", c[0].summary);

    // Turned on: a worker waits for its first round; the check says the
    // target is not measured yet. Turned off again: the worker stops.
    config.network.bandwidth.enabled = true;
    d.reconfigure(&config);
    assert!(d.worker.is_some());
    let c = d.run();
    assert_eq!(c[0].id, "bandwidth/vpc/egress");
    assert_eq!(c[0].status, Status::Unknown);
    assert!(
        c[0].summary.contains("not measured yet"),
        "{}",
        c[0].summary
    );
    assert_eq!(c[1].id, "bandwidth/vpc/ingress");
    config.network.bandwidth.enabled = false;
    d.reconfigure(&config);
    assert!(d.worker.is_none());
}

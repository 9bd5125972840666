use super::*;
use query::QueryError;
use std::net::SocketAddr;

/// Answers `10.0.1.20` for `private.test`, `54.1.2.3` for anything
/// else over UDP; TCP never answers.
#[derive(Debug)]
struct Fake;

impl Lookup for Fake {
    fn query(
        &self,
        _: SocketAddr,
        t: Transport,
        name: &str,
        qtype: u16,
        timeout: Duration,
    ) -> Result<(wire::Answer, Duration), QueryError> {
        if t == Transport::Tcp {
            return Err(QueryError::Timeout(timeout));
        }
        let ip = if name == "private.test" {
            "10.0.1.20"
        } else {
            "54.1.2.3"
        };
        let addresses = if qtype == wire::TYPE_A {
            vec![ip.parse().expect("ip")]
        } else {
            vec![]
        };
        Ok((
            wire::Answer {
                rcode: 0,
                truncated: false,
                addresses,
                cname: false,
            },
            Duration::from_millis(1),
        ))
    }
}

#[test]
fn each_resolver_is_judged_per_transport() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    std::fs::write(
        dir.path().join("etc/resolv.conf"),
        "nameserver 10.0.1.100\n",
    )
    .expect("write");
    let mut config = Config::default();
    for (name, n) in [("good", "private.test"), ("leaky", "public.test")] {
        config.network.resolver.push(ResolverEntry {
            name: name.into(),
            address: "10.0.1.100".into(),
            names: vec![n.into()],
            expected: vec![],
        });
    }
    let mut registry = crate::metrics::new_registry();
    let mut d = DnsDomain::new(
        &config,
        Host::new(dir.path()),
        &mut registry,
        Facts::default(),
        Box::new(Fake),
    );
    let checks = d.run();
    let get = |id: &str| {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id}: {checks:?}"))
    };
    assert_eq!(get("host").status, Status::Pass);
    assert_eq!(get("resolver/good/udp").status, Status::Pass);
    assert_eq!(get("resolver/good/tcp").status, Status::Fail);
    assert!(get("resolver/good/tcp")
        .remedy
        .as_deref()
        .is_some_and(|r| r.contains("TCP 53")));
    assert_eq!(get("resolver/leaky/udp").status, Status::Fail);
    assert!(get("resolver/leaky/udp").summary.contains("54.1.2.3"));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(
            "hybrid_node_net_resolver_answer_expected{resolver=\"leaky\",transport=\"udp\"} 0"
        ),
        "{text}"
    );
    assert!(
        text.contains("hybrid_node_net_resolver_up{resolver=\"good\",transport=\"tcp\"} 0"),
        "{text}"
    );
}

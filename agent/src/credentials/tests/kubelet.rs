//! The kubelet's certificates: the chain to the cluster CA, and the key
//! the kubelet keeps beside each certificate in its `*-current.pem`.

use super::*;

fn with_ca(mut nc: serde_json::Value, ca_pem: &str) -> serde_json::Value {
    nc["spec"]["cluster"]["certificateAuthority"] = base64::engine::general_purpose::STANDARD
        .encode(ca_pem)
        .into();
    nc
}

#[test]
fn kubelet_certificates_chain_to_the_cluster_ca_or_are_stale() {
    let cluster = Ca::new("kubernetes", 3650);
    let earlier = Ca::new("kubernetes", 3650); // an earlier install's cluster
    let nc = with_ca(ssm_nodeconfig("us-west-2"), &cluster.pem);
    let mut rig = Rig::new(nc.clone(), &[], Config::default());
    let (cert, key) = cluster.leaf("system:node:mi-0123456789abcdef0", -1, 365);
    rig.write(certs::KUBELET_SERVING, &format!("{cert}{key}"));
    let checks = rig.run();
    let s = find(&checks, "kubelet/serving");
    assert_eq!(s.status, Status::Pass, "{s:?}");
    assert!(
        s.summary.contains("chains to the cluster CA"),
        "{}",
        s.summary
    );
    assert_eq!(
        find(&checks, "kubelet/client").status,
        Status::NotApplicable
    );
    let ca = find(&checks, "cluster-ca");
    assert_eq!(ca.status, Status::Pass, "{ca:?}");
    let scrape = rig.scrape();
    assert!(
        scrape.contains("credentials_certificate_chain_ok{kind=\"kubelet-serving\"} 1"),
        "{scrape}"
    );
    assert!(scrape.contains("kind=\"cluster-ca\""), "{scrape}");

    let mut rig = Rig::new(nc, &[], Config::default());
    let (cert, key) = earlier.leaf("system:node:mi-0123456789abcdef0", -1, 365);
    rig.write(certs::KUBELET_SERVING, &format!("{cert}{key}"));
    let checks = rig.run();
    let s = find(&checks, "kubelet/serving");
    assert_eq!(s.status, Status::Fail, "{s:?}");
    assert!(
        s.summary
            .contains("stale certificate from an earlier install"),
        "{}",
        s.summary
    );
    assert!(rig
        .scrape()
        .contains("credentials_certificate_chain_ok{kind=\"kubelet-serving\"} 0"));
}

#[test]
fn kubelet_serving_file_key_must_belong_to_its_certificate() {
    let cluster = Ca::new("kubernetes", 3650);
    let nc = with_ca(ssm_nodeconfig("us-west-2"), &cluster.pem);
    let (cert, key) = cluster.leaf("system:node:mi-0123456789abcdef0", -1, 365);
    let (_, other) = cluster.leaf("system:node:mi-0123456789abcdef0", -1, 365);
    let keys = format!("{key}{other}");
    let key_body: Vec<&str> = keys
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();
    assert!(!key_body.is_empty());
    let cases = [
        ("its own key", format!("{cert}{key}"), Status::Pass, "its key in the file matches", Some(1)),
        ("another node's key", format!("{cert}{other}"), Status::Fail,
         "/var/lib/kubelet/pki/kubelet-server-current.pem (CN=system:node:mi-0123456789abcdef0): the private key in the file does not belong to the certificate", Some(0)),
        ("no key", cert.clone(), Status::Fail,
         "/var/lib/kubelet/pki/kubelet-server-current.pem (CN=system:node:mi-0123456789abcdef0): the file holds no private key", None),
    ];
    for (case, file, want, words, gauge) in cases {
        let mut rig = Rig::new(nc.clone(), &[], Config::default());
        rig.write_key(certs::KUBELET_SERVING, &file);
        let checks = rig.run();
        let s = find(&checks, "kubelet/serving");
        assert_eq!(s.status, want, "{case}: {s:?}");
        assert!(s.summary.contains(words), "{case}: {}", s.summary);
        if want == Status::Fail {
            assert!(
                s.remedy
                    .as_deref()
                    .is_some_and(|r| r.contains("approve its new CSR")),
                "{case}: {s:?}"
            );
        }
        let scrape = rig.scrape();
        let series = "credentials_key_match{kind=\"kubelet-serving\",registry=\"\"}";
        match gauge {
            Some(v) => assert!(
                scrape.contains(&format!("{series} {v}")),
                "{case}: {scrape}"
            ),
            None => assert!(!scrape.contains(series), "{case}: {scrape}"),
        }
        // The chain is still judged beside the key.
        assert!(
            scrape.contains("certificate_chain_ok{kind=\"kubelet-serving\"} 1"),
            "{case}: {scrape}"
        );
        for line in &key_body {
            let shown = format!("{s:?}{scrape}");
            assert!(!shown.contains(line), "{case}: the key is shown");
        }
    }
}

#[test]
fn a_cluster_ca_whose_base64_has_trailing_bits_is_read_as_nodeadm_does() {
    let cluster = Ca::new("kubernetes", 3650);
    let mut pem = cluster.pem.clone();
    while pem.len() % 3 == 0 {
        pem.push('\n');
    }
    let b64 = crate::model::nodeconfig::tests::with_trailing_bits(pem.as_bytes());
    let mut nc = ssm_nodeconfig("us-west-2");
    nc["spec"]["cluster"]["certificateAuthority"] = b64.into();
    let mut rig = Rig::new(nc, &[], Config::default());
    let (cert, key) = cluster.leaf("system:node:mi-0123456789abcdef0", -1, 365);
    rig.write_key(certs::KUBELET_SERVING, &format!("{cert}{key}"));
    let checks = rig.run();
    let ca = find(&checks, "cluster-ca");
    assert_eq!(ca.status, Status::Pass, "{ca:?}");
    let s = find(&checks, "kubelet/serving");
    assert!(s.summary.contains("chains to the cluster CA"), "{s:?}");
}

//! DNS both ways against a real resolver: dnsmasq (Debian's dnsmasq-base)
//! in a server namespace stands in for a Route 53 Resolver inbound
//! endpoint, with a private answer for one name and a public answer for
//! another; then TCP 53 is silently dropped in its namespace, as a firewall
//! that only opened UDP would.

use hybrid_node_agent_e2e::netns::{self, Pair};
use hybrid_node_agent_e2e::{check_in, json_report, require_tool, KillOnDrop};
use std::path::Path;

const RESOLVER: &str = "10.81.0.2";

/// dnsmasq as the resolver in the server namespace: a private and a public
/// answer for the API names, a public one for the AWS service endpoints.
fn dnsmasq_in(p: &Pair, dnsmasq: &Path, listen: &str) -> KillOnDrop {
    p.dnsmasq(
        dnsmasq,
        listen,
        &[
            ("api.private.test", "10.0.1.20"),
            ("api.public.test", "54.239.1.20"),
            ("amazonaws.com", "54.239.28.85"),
        ],
    )
}

fn check(p: &Pair, root: &Path) -> serde_json::Value {
    let out = p
        .agent_check(root, &root.join("agent.toml"))
        .output()
        .expect("agent");
    json_report(&out)
}

#[test]
fn resolvers_are_asked_over_udp_and_tcp_and_public_answers_and_dropped_tcp_fail() {
    let Some(dnsmasq) = require_tool("dnsmasq") else {
        return;
    };
    let Some(p) = Pair::new("10.81.0") else {
        return;
    };
    let _dnsmasq = dnsmasq_in(&p, &dnsmasq, RESOLVER);
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
    std::fs::write(
        root.path().join("etc/resolv.conf"),
        format!("nameserver {RESOLVER}\n"),
    )
    .expect("write");
    std::fs::write(
        root.path().join("agent.toml"),
        format!(
            "[network]\napi_server = false\n\
             [[network.resolver]]\nname = \"inbound\"\naddress = \"{RESOLVER}\"\nnames = [\"api.private.test\"]\n\
             [[network.resolver]]\nname = \"leaky\"\naddress = \"{RESOLVER}:53\"\nnames = [\"api.public.test\"]\n\
             [[network.resolver]]\nname = \"narrow\"\naddress = \"{RESOLVER}\"\nnames = [\"api.private.test\"]\nexpected = [\"10.0.2.0/24\"]\n"
        ),
    )
    .expect("write");

    let r = check(&p, root.path());
    for t in ["udp", "tcp"] {
        let (s, summary) = check_in(&r, "dns", &format!("resolver/inbound/{t}"));
        assert_eq!(s, "pass", "{summary}");
        assert!(summary.contains("to 10.0.1.20"), "{summary}");
        let (s, summary) = check_in(&r, "dns", &format!("resolver/leaky/{t}"));
        assert_eq!(s, "fail", "{summary}");
        assert!(
            summary.contains("54.239.1.20, outside the expected ranges")
                && summary.contains("leave the Direct Connect"),
            "{summary}"
        );
        // Private, but not the VPC's range.
        let (s, summary) = check_in(&r, "dns", &format!("resolver/narrow/{t}"));
        assert_eq!(s, "fail", "{summary}");
        assert!(summary.contains("10.0.2.0/24"), "{summary}");
    }
    let (s, summary) = check_in(&r, "dns", "host");
    assert_eq!(s, "pass", "{summary}");
    assert!(summary.contains(RESOLVER), "{summary}");

    // A firewall that lets UDP 53 through and silently drops TCP 53: in
    // the resolver's namespace, a policy rule sends arriving TCP 53 to a
    // blackhole route (no firewall modules needed), ahead of local delivery.
    let ipn = |args: &[&str]| {
        let mut a = vec!["-n", p.server.as_str()];
        a.extend_from_slice(args);
        netns::ip(&a);
    };
    ipn(&[
        "rule", "add", "pref", "100", "ipproto", "tcp", "dport", "53", "lookup", "100",
    ]);
    ipn(&["route", "add", "blackhole", "default", "table", "100"]);
    ipn(&["rule", "del", "pref", "0", "lookup", "local"]);
    ipn(&["rule", "add", "pref", "200", "lookup", "local"]);
    let r = check(&p, root.path());
    let (s, summary) = check_in(&r, "dns", "resolver/inbound/udp");
    assert_eq!(s, "pass", "{summary}");
    let (s, summary) = check_in(&r, "dns", "resolver/inbound/tcp");
    assert_eq!(s, "fail", "{summary}");
    assert!(
        summary.contains("no answer for api.private.test over TCP: no answer within 2s"),
        "{summary}"
    );
    let remedy = r["checks"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["domain"] == "dns" && c["id"] == "resolver/inbound/tcp")
        })
        .and_then(|c| c["remedy"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(remedy.contains("open TCP 53"), "{remedy}");
}

/// `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over
/// /etc/resolv.conf: the namespace's C library resolver. Removed on drop.
struct NetnsResolvConf(std::path::PathBuf);

impl NetnsResolvConf {
    fn new(ns: &str, text: &str) -> Self {
        let dir = Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/NS");
        std::fs::write(dir.join("resolv.conf"), text).expect("write");
        NetnsResolvConf(dir)
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_host_resolver_is_reported_with_its_answers_for_the_api_endpoint_and_aws() {
    let Some(dnsmasq) = require_tool("dnsmasq") else {
        return;
    };
    let Some(p) = Pair::new("10.82.0") else {
        return;
    };
    // The same resolver, at this pair's address.
    let server = "10.82.0.2";
    let _dnsmasq = dnsmasq_in(&p, &dnsmasq, server);
    let resolv = format!("nameserver {server}\n");
    let _netns_resolv = NetnsResolvConf::new(&p.client, &resolv);
    let root = tempfile::tempdir().expect("tempdir");
    for dir in ["etc/nodeadm", "var/lib/kubelet"] {
        std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
    }
    std::fs::write(root.path().join("etc/resolv.conf"), &resolv).expect("write");
    // The region (for STS and SSM) from a NodeConfig; the API endpoint from
    // the kubelet's kubeconfig, as after `nodeadm init`.
    std::fs::copy(
        hybrid_node_agent_e2e::fixture("nodeconfig/harbor-ssm.yaml"),
        root.path().join("etc/nodeadm/nodeconfig.yaml"),
    )
    .expect("copy");
    std::fs::write(root.path().join("agent.toml"), "").expect("write");
    for (api, status) in [("api.private.test", "pass"), ("api.public.test", "warn")] {
        std::fs::write(
            root.path().join("var/lib/kubelet/kubeconfig"),
            format!("clusters:\n- cluster:\n    server: https://{api}\n"),
        )
        .expect("write");
        let r = check(&p, root.path());
        let (s, summary) = check_in(&r, "dns", "host");
        assert_eq!(s, "pass", "{summary}");
        assert!(
            summary.contains(&format!("nameservers {server}")),
            "{summary}"
        );
        let (s, summary) = check_in(&r, "dns", &format!("host/{api}"));
        assert_eq!(s, status, "{summary}");
        if status == "warn" {
            assert!(summary.contains("public 54.239.1.20"), "{summary}");
        } else {
            assert!(summary.contains("to 10.0.1.20 (private)"), "{summary}");
        }
        for svc in ["sts", "ssm"] {
            let (s, summary) = check_in(
                &r,
                "dns",
                &format!("host/{svc}.ap-northeast-2.amazonaws.com"),
            );
            assert_eq!(s, "pass", "{summary}");
            assert!(summary.contains("54.239.28.85 (public)"), "{summary}");
        }
    }
}

//! DNS both ways against a real resolver: dnsmasq (Debian's dnsmasq-base)
//! in a server namespace stands in for a Route 53 Resolver inbound
//! endpoint, with a private answer for one name and a public answer for
//! another; then TCP 53 is silently dropped in its namespace, as a firewall
//! that only opened UDP would.

use hybrid_node_agent_e2e::netns::{self, Pair};
use hybrid_node_agent_e2e::{agent_bin, check_in, require_tool};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

const RESOLVER: &str = "10.81.0.2";

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn check(p: &Pair, root: &Path) -> serde_json::Value {
    let cfg = root.join("agent.toml");
    let out = p
        .exec(
            &p.client,
            &agent_bin(),
            &[
                "--root",
                root.to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "check",
                "-o",
                "json",
            ],
        )
        .output()
        .expect("agent");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn resolvers_are_asked_over_udp_and_tcp_and_public_answers_and_dropped_tcp_fail() {
    let Some(dnsmasq) = require_tool("dnsmasq") else {
        return;
    };
    let Some(p) = Pair::new("10.81.0") else {
        return;
    };
    let _dnsmasq = Reaped(
        p.exec(
            &p.server,
            &dnsmasq,
            &[
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--listen-address={RESOLVER}"),
                "--pid-file=",
                "--address=/api.private.test/10.0.1.20",
                "--address=/api.public.test/54.239.1.20",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq"),
    );
    std::thread::sleep(Duration::from_millis(500));
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

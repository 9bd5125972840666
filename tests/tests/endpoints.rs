//! The endpoints domain against real parts, all inside network namespaces
//! this test makes: the agent runs in a client namespace whose resolver
//! (`/etc/netns/<ns>/resolv.conf`, bind-mounted by `ip netns exec`) is a
//! dnsmasq in the server namespace. dnsmasq answers the AWS endpoint names
//! (`sts.us-west-2.amazonaws.com`, the SSM ones) and the cluster's API
//! name with the server's address, where `openssl s_server` stands in for
//! AWS (a certificate from a CA put into the `--root` OS trust bundle) and
//! a rustls server stands in for the API server (answering anonymous
//! requests with 401, 403 or 200), and a CONNECT proxy for a site's HTTPS
//! proxy. SSM and IAM Roles Anywhere nodes each get their endpoints. Then
//! the client namespace's own routes are made to collide with the remote
//! pod network, and its node IP is judged against the remote node
//! networks. No packet leaves the namespaces.

use base64::Engine;
use hybrid_node_agent_e2e::apiserver::{ApiServer, ConnectProxy};
use hybrid_node_agent_e2e::netns::{self, Pair};
use hybrid_node_agent_e2e::{
    agent_bin, check_in, json_report, pki_for, require_tool, KillOnDrop, Pki,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const NET: &str = "10.82.0";
const SERVER: &str = "10.82.0.2";
const REGION: &str = "us-west-2";
const NODE_NAME: &str = "rack12-node07.site.test";
const AWS_NAMES: [&str; 5] = [
    "rolesanywhere.us-west-2.amazonaws.com",
    "ssm.us-west-2.amazonaws.com",
    "ssmmessages.us-west-2.amazonaws.com",
    "ec2messages.us-west-2.amazonaws.com",
    "sts.us-west-2.amazonaws.com",
];

/// `/etc/netns/<ns>/`: files `ip netns exec` mounts over `/etc/`.
struct NetnsEtc(PathBuf);

impl NetnsEtc {
    fn resolver(ns: &str, nameserver: &str) -> NetnsEtc {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/<ns>");
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\n"),
        )
        .expect("write resolv.conf");
        NetnsEtc(dir)
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dnsmasq_in(p: &Pair, dnsmasq: &Path) -> KillOnDrop {
    let node = format!("{NET}.1");
    p.dnsmasq(
        dnsmasq,
        SERVER,
        &[
            ("amazonaws.com", SERVER),
            ("api.cluster.test", SERVER),
            // The IAM Roles Anywhere node name: the client's address.
            (NODE_NAME, &node),
            // TEST-NET-1: routed nowhere from the client namespace.
            ("api.unrouted.test", "192.0.2.10"),
        ],
    )
}

/// `openssl s_server` on SERVER:443 in the server namespace, presenting a
/// certificate for the AWS endpoint names.
fn aws_stand_in(p: &Pair, openssl: &Path, pki: &Pki, dir: &Path) -> KillOnDrop {
    let cert = dir.join("aws.pem");
    let key = dir.join("aws.key");
    std::fs::write(&cert, &pki.server_pem).expect("write");
    std::fs::write(&key, &pki.server_key).expect("write");
    let child = p
        .exec(
            &p.server,
            openssl,
            &[
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &format!("{SERVER}:443"),
                "-cert",
                cert.to_str().expect("utf-8"),
                "-key",
                key.to_str().expect("utf-8"),
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let mut child = KillOnDrop(child);
    // Listening once a TCP connect from the client namespace succeeds; on
    // a loaded CI machine that can take seconds.
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let up = p
            .exec(
                &p.client,
                Path::new("bash"),
                &["-c", &format!("exec 3<>/dev/tcp/{SERVER}/443")],
            )
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if up {
            break;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("openssl s_server exited before listening: {status}");
        }
        assert!(
            std::time::Instant::now() < give_up,
            "openssl s_server not listening on {SERVER}:443 after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// A `--root` tree: the OS trust bundle (`trusted` CAs) and a NodeConfig
/// for an SSM node whose API endpoint is `endpoint` with `ca` as its CA.
fn root_with(trusted: &[&str], endpoint: &str, ca: &str, agent_toml: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/ssl/certs")).expect("mkdir");
    std::fs::create_dir_all(r.join("etc/nodeadm")).expect("mkdir");
    std::fs::write(
        r.join("etc/ssl/certs/ca-certificates.crt"),
        trusted.concat(),
    )
    .expect("write");
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca);
    std::fs::write(
        r.join("etc/nodeadm/nodeconfig.yaml"),
        format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: hybrid-e2e\n    region: {REGION}\n    apiServerEndpoint: {endpoint}\n    certificateAuthority: {ca_b64}\n  hybrid:\n    ssm:\n      activationCode: \"Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ\"\n      activationId: \"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n"
        ),
    )
    .expect("write");
    std::fs::write(
        r.join("agent.toml"),
        format!("[network]\napi_server = false\n{agent_toml}"),
    )
    .expect("write");
    root
}

/// Turns `root`'s NodeConfig into an IAM Roles Anywhere one (node name
/// [`NODE_NAME`]) with its certificate and key at nodeadm's default paths.
fn make_iam_ra(root: &Path) {
    let nc = root.join("etc/nodeadm/nodeconfig.yaml");
    let text = std::fs::read_to_string(&nc).expect("read");
    let (head, _) = text.split_once("  hybrid:").expect("hybrid");
    std::fs::write(
        &nc,
        format!(
            "{head}  hybrid:\n    iamRolesAnywhere:\n      nodeName: {NODE_NAME}\n      trustAnchorArn: arn:aws:rolesanywhere:us-west-2:111122223333:trust-anchor/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n      profileArn: arn:aws:rolesanywhere:us-west-2:111122223333:profile/ffffffff-0000-1111-2222-333333333333\n      roleArn: arn:aws:iam::111122223333:role/HybridNodesRole\n"
        ),
    )
    .expect("write");
    let mut params = rcgen::CertificateParams::new(vec![NODE_NAME.to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, NODE_NAME);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let pki = root.join("etc/iam/pki");
    std::fs::create_dir_all(&pki).expect("mkdir");
    std::fs::write(pki.join("server.pem"), cert.pem()).expect("write");
    std::fs::write(pki.join("server.key"), key.serialize_pem()).expect("write");
}

fn check(p: &Pair, root: &Path) -> serde_json::Value {
    check_with(p, root, &[])
}

/// `check -o json` in the client namespace, with `env` added to a
/// proxy-free environment.
fn check_with(p: &Pair, root: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = p.agent_check(root, &root.join("agent.toml"));
    for v in ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
        cmd.env_remove(v);
    }
    let out = cmd.envs(env.iter().copied()).output().expect("agent");
    json_report(&out)
}

fn remedy<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["domain"] == "endpoints" && c["id"] == id)
        })
        .and_then(|c| c["remedy"].as_str())
        .unwrap_or("")
}

#[test]
fn aws_and_api_endpoints_are_reached_and_verified_like_nodeadm_does() {
    let (Some(dnsmasq), Some(openssl)) = (require_tool("dnsmasq"), require_tool("openssl")) else {
        return;
    };
    let Some(p) = Pair::new(NET) else {
        return;
    };
    let _etc = NetnsEtc::resolver(&p.client, SERVER);
    let _dns = dnsmasq_in(&p, &dnsmasq);
    let work = tempfile::tempdir().expect("tempdir");
    let aws = pki_for("aws", &AWS_NAMES);
    let _aws = aws_stand_in(&p, &openssl, &aws, work.path());
    let cluster = pki_for("cluster", &["api.cluster.test"]);
    let other = pki_for("another-cluster", &["api.cluster.test"]);
    let refusing = ApiServer::start(&cluster, Some(&p.server), &format!("{SERVER}:6443"), 401);
    let open = ApiServer::start(&cluster, Some(&p.server), &format!("{SERVER}:6444"), 200);
    let forbidding = ApiServer::start(&cluster, Some(&p.server), &format!("{SERVER}:6445"), 403);

    // The AWS CA in the OS trust store, the cluster's CA in the NodeConfig,
    // an API server refusing anonymous requests with 401.
    let root = root_with(
        &[&aws.ca_pem],
        "https://api.cluster.test:6443",
        &cluster.ca_pem,
        &format!("[cluster]\nendpoint_access = \"private\"\nvpc_cidrs = [\"{NET}.0/24\"]\n"),
    );
    let r = check(&p, root.path());
    for svc in ["ssm", "ssmmessages", "ec2messages", "sts"] {
        let (s, summary) = check_in(&r, "endpoints", &format!("aws/{svc}"));
        assert_eq!(s, "pass", "{summary}");
        assert!(
            summary.contains(&format!(
                "{svc}.us-west-2.amazonaws.com (aws partition): resolves to {SERVER}"
            )) && summary.contains("TLS verified with the OS trust store"),
            "{summary}"
        );
    }
    let (s, summary) = check_in(&r, "endpoints", "api-server");
    assert_eq!(s, "pass", "{summary}");
    assert!(
        summary.contains("refused with 401 (Unauthorized)"),
        "{summary}"
    );
    assert!(refusing.requests.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let (s, summary) = check_in(&r, "endpoints", "api-server/addresses");
    assert_eq!(s, "pass", "{summary}");

    // Another cluster's CA in the NodeConfig; the AWS stand-in's CA not in
    // the trust store (as a TLS-inspecting proxy would be); the VPC
    // elsewhere.
    let root = root_with(
        &[&other.ca_pem],
        "https://api.cluster.test:6443",
        &other.ca_pem,
        "[cluster]\nendpoint_access = \"private\"\nvpc_cidrs = [\"10.0.0.0/16\"]\n",
    );
    let r = check(&p, root.path());
    let (s, summary) = check_in(&r, "endpoints", "api-server");
    assert_eq!(s, "fail", "{summary}");
    assert!(
        summary.contains("does not verify against the NodeConfig's certificateAuthority"),
        "{summary}"
    );
    assert!(remedy(&r, "api-server").contains("not this cluster's CA"));
    let (s, summary) = check_in(&r, "endpoints", "aws/sts");
    assert_eq!(s, "fail", "{summary}");
    assert!(
        summary.contains("does not verify against the OS trust store"),
        "{summary}"
    );
    assert!(remedy(&r, "aws/sts").contains("TLS-inspecting proxy"));
    let (s, summary) = check_in(&r, "endpoints", "api-server/addresses");
    assert_eq!(s, "fail", "{summary}");
    assert!(
        summary.contains(&format!(
            "resolves to {SERVER} outside the VPC (10.0.0.0/16)"
        )),
        "{summary}"
    );

    // An endpoint that lets anonymous requests in (200): nodeadm fails.
    let root = root_with(
        &[&aws.ca_pem],
        "https://api.cluster.test:6444",
        &cluster.ca_pem,
        "",
    );
    let r = check(&p, root.path());
    let (s, summary) = check_in(&r, "endpoints", "api-server");
    assert_eq!(s, "fail", "{summary}");
    assert!(
        summary.contains("answered 200") && summary.contains("anonymous access is open"),
        "{summary}"
    );
    assert!(open.requests.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let (s, _) = check_in(&r, "endpoints", "api-server/addresses");
    assert_eq!(s, "n/a");

    // An IAM Roles Anywhere node: rolesanywhere and STS; its node IP is
    // what its node name resolves to (an address of its own); an API server
    // from before Kubernetes 1.32 refuses anonymous requests with 403.
    let root = root_with(
        &[&aws.ca_pem],
        "https://api.cluster.test:6445",
        &cluster.ca_pem,
        &format!("[cluster]\nremote_node_networks = [\"{NET}.0/24\"]\n"),
    );
    make_iam_ra(root.path());
    let r = check(&p, root.path());
    assert_eq!(check_in(&r, "nodeconfig", "file").0, "pass");
    for svc in ["rolesanywhere", "sts"] {
        let (s, summary) = check_in(&r, "endpoints", &format!("aws/{svc}"));
        assert_eq!(s, "pass", "{summary}");
    }
    assert!(r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .all(|c| c["id"] != "aws/ssm"));
    let (s, summary) = check_in(&r, "endpoints", "node-ip");
    assert_eq!(s, "pass", "{summary}");
    assert!(
        summary.contains(&format!(
            "node IP {NET}.1 (from the IAM Roles Anywhere node name {NODE_NAME})"
        )),
        "{summary}"
    );
    let (s, summary) = check_in(&r, "endpoints", "api-server");
    assert_eq!(s, "pass", "{summary}");
    assert!(summary.contains("refused with 403"), "{summary}");
    assert!(
        forbidding
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    // Through a site's HTTPS proxy (the server namespace's CONNECT proxy),
    // the API server excepted by NO_PROXY: the AWS names are resolved by
    // the proxy, and the handshake runs through the tunnel.
    let proxy = ConnectProxy::start(
        Some(&p.server),
        &format!("{SERVER}:3128"),
        format!("{SERVER}:443").parse().expect("addr"),
    );
    let root = root_with(
        &[&aws.ca_pem],
        "https://api.cluster.test:6443",
        &cluster.ca_pem,
        "",
    );
    let r = check_with(
        &p,
        root.path(),
        &[
            ("HTTPS_PROXY", &format!("http://robot:s3cret@{SERVER}:3128")),
            ("NO_PROXY", "localhost,.cluster.test"),
        ],
    );
    let (s, summary) = check_in(&r, "endpoints", "aws/sts");
    assert_eq!(s, "pass", "{summary}");
    assert!(
        summary.contains(&format!("through the HTTPS proxy {SERVER}:3128"))
            && !summary.contains("s3cret"),
        "{summary}"
    );
    let (s, summary) = check_in(&r, "endpoints", "api-server");
    assert_eq!(s, "pass", "{summary}");
    assert!(!summary.contains("proxy"), "{summary}");
    let connects = proxy.connects.lock().expect("lock").clone();
    assert!(
        connects.contains(&"CONNECT sts.us-west-2.amazonaws.com:443 HTTP/1.1".to_owned())
            && !connects.iter().any(|c| c.contains("cluster.test")),
        "{connects:?}"
    );

    // An endpoint the client namespace has no route to.
    let root = root_with(
        &[&aws.ca_pem],
        "https://api.unrouted.test",
        &cluster.ca_pem,
        "",
    );
    let r = check(&p, root.path());
    let (s, summary) = check_in(&r, "endpoints", "api-server");
    assert_eq!(s, "fail", "{summary}");
    assert!(summary.contains("no route to 192.0.2.10"), "{summary}");
    assert!(remedy(&r, "api-server").contains("add a route toward 192.0.2.10"));
}

#[test]
fn node_ip_and_pod_networks_are_judged_against_the_hosts_routes() {
    let Some(p) = Pair::new("10.83.0") else {
        return;
    };
    // The client namespace's default route through the server, and a route
    // to an on-premises network that the cluster also uses for pods.
    let ipc = |args: &[&str]| {
        let mut a = vec!["-n", p.client.as_str()];
        a.extend_from_slice(args);
        netns::ip(&a);
    };
    ipc(&["route", "add", "default", "via", "10.83.0.2"]);
    ipc(&["route", "add", "10.200.0.0/16", "via", "10.83.0.2"]);
    let _etc = NetnsEtc::resolver(&p.client, "10.83.0.2");
    let ca = pki_for("cluster", &["api.cluster.test"]);

    let root = root_with(
        &[&ca.ca_pem],
        "https://10.83.0.2:6443",
        &ca.ca_pem,
        "[cluster]\nremote_node_networks = [\"192.168.0.0/16\"]\nremote_pod_networks = [\"10.200.0.0/16\"]\n",
    );
    let r = check(&p, root.path());
    let (s, summary) = check_in(&r, "endpoints", "node-ip");
    assert_eq!(s, "fail", "{summary}");
    assert!(
        summary.contains("node IP 10.83.0.1 (from the default route's interface")
            && summary.contains("none of the remote node networks (192.168.0.0/16)"),
        "{summary}"
    );
    let (s, summary) = check_in(&r, "endpoints", "pod-networks");
    assert_eq!(s, "fail", "{summary}");
    assert!(summary.contains("route 10.200.0.0/16 on "), "{summary}");

    let root = root_with(
        &[&ca.ca_pem],
        "https://10.83.0.2:6443",
        &ca.ca_pem,
        "[cluster]\nremote_node_networks = [\"10.83.0.0/24\"]\nremote_pod_networks = [\"10.85.0.0/16\"]\n",
    );
    let r = check(&p, root.path());
    let (s, summary) = check_in(&r, "endpoints", "node-ip");
    assert_eq!(s, "pass", "{summary}");
    let (s, summary) = check_in(&r, "endpoints", "pod-networks");
    assert_eq!(s, "pass", "{summary}");
    // Nothing listens on the API port: refused, with the TCP remedy.
    let (s, summary) = check_in(&r, "endpoints", "api-server");
    assert_eq!(s, "fail", "{summary}");
    assert!(summary.contains("refused"), "{summary}");
}

#[test]
fn a_bad_cluster_config_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[cluster]\nremote_node_networks = [\"10.80.0.0/16\"]\nremote_pod_networks = [\"10.80.128.0/17\"]\n",
    )
    .expect("write");
    let out = Command::new(agent_bin())
        .args(["--root", dir.path().to_str().expect("utf-8"), "--config"])
        .arg(&cfg)
        .args(["check"])
        .output()
        .expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(
            "cluster.remote_pod_networks: 10.80.128.0/17 overlaps remote node network 10.80.0.0/16"
        ),
        "{err}"
    );
}

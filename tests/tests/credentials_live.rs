//! The credentials domain on a booted systemd (Debian 12, systemd 252,
//! `systemd-nspawn`): `hybrid-node-agent check --output json` run inside
//! the host, so every unit state it reports comes from that host's own
//! systemd, as on a rack server. The host is laid out as nodeadm v1.0.20
//! and the SSM agent's package leave it after `nodeadm init` (aws/eks-hybrid
//! `internal/ssm`: the `amazon-ssm-agent` unit of the deb/rpm install,
//! `/var/lib/amazon/ssm/registration`, `/root/.aws/credentials`), then as
//! an IAM Roles Anywhere host (`internal/iamrolesanywhere`: the
//! `aws_signing_helper_update` unit nodeadm writes with
//! `enableCredentialsFile`). Stand-in programs (`sleep`) play the SSM agent
//! and the signing helper; systemd, the unit files and the files nodeadm
//! leaves are real.
//!
//! 1. SSM agent active, registered in the cluster's region, fresh
//!    credentials, kubelet serving file with its own key → pass
//! 2. `systemctl stop amazon-ssm-agent` → fail naming the unit
//! 3. the agent killed, systemd holding its restart back (the package's
//!    `RestartSec`) → fail: `activating (auto-restart)` is not running
//! 4. credentials file 50 minutes old (`touch -d`) → warn, 3 hours → fail,
//!    each with its age
//! 5. the kubelet serving file with another key → fail naming the file
//! 6. IAM Roles Anywhere: `aws_signing_helper_update.service` installed
//!    but inactive → fail; started → pass
//!
//! No credential or key of the host shows in any report. One boot for the
//! whole test. The host has no `/etc/resolv.conf`, so the NodeConfig's
//! region sends no DNS query off this machine (asserted: `dns/host` n/a).
//! Needs root, systemd-nspawn and debootstrap (`.ci/run` installs them);
//! the root is cached by `scripts/live-host.sh`.

use hybrid_node_agent_e2e::certs::Ca;
use hybrid_node_agent_e2e::live::{self, BootedHost};
use hybrid_node_agent_e2e::{check_in, repo_root};
use std::time::Instant;

const NODECONFIG: &str = "/etc/nodeadm/nodeconfig.yaml";
const SSM_UNIT: &str = "amazon-ssm-agent";
const SSM_CREDENTIALS: &str = "/root/.aws/credentials";
const SERVING: &str = "/var/lib/kubelet/pki/kubelet-server-current.pem";
const HELPER_UNIT: &str = "aws_signing_helper_update";
const NODE: &str = "mi-0a1b2c3d4e5f60718";

/// Values no report may show.
const SECRETS: [&str; 3] = [
    "ASIAQLIVEHOSTLEAKCANARY",
    "liveHostSecretKEYleakCANARYnodeagent0000",
    "FwoGZXIvYXdzLIVEHOSTSESSIONTOKENleakcanary",
];

fn credentials() -> String {
    format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
        SECRETS[0], SECRETS[1], SECRETS[2]
    )
}

/// The SSM agent's deb/rpm unit as the package installs it (type simple,
/// restarted always, 90 s apart); its program here runs until stopped.
const SSM_UNIT_FILE: &str = "[Unit]\n\
Description=Amazon SSM Agent\n\
After=network-online.target\n\
ConditionFileIsExecutable=/usr/bin/amazon-ssm-agent\n\
\n\
[Service]\n\
Type=simple\n\
WorkingDirectory=/usr/bin/\n\
ExecStart=/usr/bin/amazon-ssm-agent\n\
KillMode=process\n\
Restart=always\n\
RestartPreventExitStatus=194\n\
RestartSec=90\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n";

/// A long-running stand-in for a daemon's binary.
const STAND_IN: &[u8] =
    b"#!/bin/sh\n# stands in for the real daemon: runs until stopped\nexec sleep infinity\n";

fn ssm_nodeconfig(cluster_ca: &str) -> String {
    format!(
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: edge-cluster\n    region: us-west-2\n    certificateAuthority: {}\n  hybrid:\n    ssm:\n      activationCode: \"Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ\"\n      activationId: \"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n",
        base64(cluster_ca)
    )
}

fn base64(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64 (coreutils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed");
    let out = child.wait_with_output().expect("base64");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf8")
}

/// Runs `check` inside the host; the credentials checks (status,
/// summary), with every report checked for secrets and for DNS staying
/// on this machine.
fn check(host: &BootedHost, key_lines: &[String]) -> serde_json::Value {
    let (report, code) = host.check_json();
    assert!((0..=2).contains(&code), "exit {code}: {report:#}");
    let text = report.to_string();
    for s in SECRETS
        .iter()
        .map(|s| s.to_string())
        .chain(key_lines.iter().cloned())
    {
        assert!(
            !text.contains(&s),
            "the report shows a secret ({}…)",
            &s[..8]
        );
    }
    let dns = check_in(&report, "dns", "host");
    assert_eq!(dns.0, "n/a", "the host resolver must not be asked: {dns:?}");
    report
}

fn cred<'a>(report: &'a serde_json::Value, id: &str) -> (&'a str, &'a str) {
    check_in(report, "credentials", id)
}

fn step(n: u32, what: &str, started: &mut Instant) {
    eprintln!(
        "credentials live step {n} ({what}): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    *started = Instant::now();
}

#[test]
fn credential_providers_on_a_booted_systemd_host() {
    let Some(()) = live::prerequisites() else {
        return;
    };
    let total = Instant::now();
    let base = live::prepared_root();
    let mut t = Instant::now();
    let host = BootedHost::boot(&base);
    host.without_resolver();
    host.install_agent_binary();
    step(0, "boot and copy the agent in", &mut t);

    // 1. The SSM hybrid activation as nodeadm init leaves it, the agent
    // running under systemd, the node joined with its serving certificate.
    let cluster = Ca::new("kubernetes", 3650);
    let (cert, key) = cluster.leaf(&format!("system:node:{NODE}"), -1, 365);
    let (_, other_key) = cluster.leaf(&format!("system:node:{NODE}"), -1, 365);
    let key_lines: Vec<String> = format!("{key}{other_key}")
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_owned)
        .collect();
    host.write_mode("/usr/bin/amazon-ssm-agent", STAND_IN, 0o755);
    host.write(
        &format!("/usr/lib/systemd/system/{SSM_UNIT}.service"),
        SSM_UNIT_FILE.as_bytes(),
    );
    host.write(
        "/var/lib/amazon/ssm/registration",
        format!("{{\"ManagedInstanceID\":\"{NODE}\",\"Region\":\"us-west-2\"}}").as_bytes(),
    );
    host.write_mode(SSM_CREDENTIALS, credentials().as_bytes(), 0o600);
    host.write(NODECONFIG, ssm_nodeconfig(&cluster.pem).as_bytes());
    host.write(
        "/etc/eks/kubelet/environment",
        b"NODEADM_KUBELET_ARGS=\"--node-ip=10.80.0.12\"\n",
    );
    host.write_mode(SERVING, format!("{cert}{key}").as_bytes(), 0o600);
    host.ok(&format!(
        "systemctl daemon-reload && systemctl enable --now {SSM_UNIT}"
    ));
    assert_eq!(host.show(SSM_UNIT, "ActiveState"), "active");
    let r = check(&host, &key_lines);
    assert_eq!(
        check_in(&r, "lifecycle", "phase").1,
        "phase joined (node is part of the cluster)"
    );
    assert_eq!(
        cred(&r, "provider"),
        ("pass", "credential provider: SSM hybrid activation")
    );
    assert_eq!(
        cred(&r, "ssm/agent"),
        (
            "pass",
            "the SSM agent is installed (package, /usr/bin/amazon-ssm-agent)"
        )
    );
    assert_eq!(
        cred(&r, "ssm/service"),
        ("pass", "the SSM agent (amazon-ssm-agent) is active")
    );
    assert_eq!(
        cred(&r, "ssm/registration"),
        (
            "pass",
            "registered as managed instance mi-0a1b2c3d4e5f60718 in us-west-2"
        )
    );
    let file = cred(&r, "credentials-file");
    assert_eq!(file.0, "pass", "{file:?}");
    // Written at the start of this step; the minutes since depend on how
    // long the host took to get here.
    let mins: u64 = file
        .1
        .strip_prefix("the AWS credentials file /root/.aws/credentials has a complete [default] profile, refreshed ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{file:?}"));
    assert!(mins <= 2, "{file:?}");
    let serving = cred(&r, "kubelet/serving");
    assert_eq!(serving.0, "pass", "{serving:?}");
    assert!(
        serving.1.contains("its key in the file matches")
            && serving.1.contains("chains to the cluster CA"),
        "{serving:?}"
    );
    step(1, "SSM host, agent active", &mut t);

    // 2. An admin (or a botched upgrade) stops the agent: no refreshes.
    host.ok(&format!("systemctl stop {SSM_UNIT}"));
    let r = check(&host, &key_lines);
    let svc = cred(&r, "ssm/service");
    assert_eq!(
        svc,
        (
            "fail",
            "the SSM agent (amazon-ssm-agent) is inactive (dead)"
        )
    );
    let remedy = r["checks"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["domain"] == "credentials" && c["id"] == "ssm/service")
        })
        .and_then(|c| c["remedy"].as_str())
        .unwrap_or("");
    assert!(
        remedy.contains("systemctl restart amazon-ssm-agent"),
        "{remedy:?}"
    );
    step(2, "SSM agent stopped", &mut t);

    // 3. The agent dies; systemd holds the restart back 90 s.
    host.ok(&format!("systemctl start {SSM_UNIT}"));
    host.ok(&format!("systemctl kill --signal=KILL {SSM_UNIT}"));
    let waiting = hybrid_node_agent_e2e::eventually(std::time::Duration::from_secs(10), || {
        (host.show(SSM_UNIT, "SubState") == "auto-restart").then_some(())
    });
    assert!(waiting.is_some(), "{}", host.show(SSM_UNIT, "SubState"));
    let r = check(&host, &key_lines);
    assert_eq!(
        cred(&r, "ssm/service"),
        (
            "fail",
            "the SSM agent (amazon-ssm-agent) is activating (auto-restart)"
        )
    );
    host.ok(&format!("systemctl restart {SSM_UNIT}"));
    assert_eq!(cred(&check(&host, &key_lines), "ssm/service").0, "pass");
    step(3, "SSM agent killed", &mut t);

    // 4. The agent runs but the file is not refreshed (the SSM agent
    // rewrites it about every 30 minutes).
    host.ok(&format!("touch -d '50 minutes ago' {SSM_CREDENTIALS}"));
    let r = check(&host, &key_lines);
    let file = cred(&r, "credentials-file");
    assert_eq!(file.0, "warn", "{file:?}");
    assert!(
        file.1.contains(
            "/root/.aws/credentials was last refreshed 50 minutes ago (a refresh is overdue after 45 minutes)"
        ),
        "{file:?}"
    );
    host.ok(&format!("touch -d '3 hours ago' {SSM_CREDENTIALS}"));
    let r = check(&host, &key_lines);
    let file = cred(&r, "credentials-file");
    assert_eq!(file.0, "fail", "{file:?}");
    assert!(
        file.1.contains("/root/.aws/credentials was last refreshed 180 minutes ago: the credentials in it have expired (older than 60 minutes)"),
        "{file:?}"
    );
    step(4, "credentials file aged", &mut t);

    // 5. The kubelet's serving file with a key that is not its
    // certificate's (a hand-restored backup): named, the key never shown.
    host.write_mode(SERVING, format!("{cert}{other_key}").as_bytes(), 0o600);
    let r = check(&host, &key_lines);
    let serving = cred(&r, "kubelet/serving");
    assert_eq!(serving.0, "fail", "{serving:?}");
    assert!(
        serving.1.contains(&format!("kubelet serving certificate {SERVING} (CN=system:node:{NODE}): the private key in the file does not belong to the certificate")),
        "{serving:?}"
    );
    step(5, "kubelet serving key mismatch", &mut t);

    // 6. IAM Roles Anywhere with the credentials file: the files nodeadm
    // writes (the iam-ra fixture root), the certificate for nodeName, the
    // signing helper's unit installed but not running.
    let fixture = repo_root().join("tests/fixtures/roots/iam-ra");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture.display()))
        .arg(&host.root)
        .status()
        .expect("cp");
    assert!(copied.success(), "copy the iam-ra fixture into the host");
    let anchor = Ca::new("trust anchor CA", 3650);
    let (node_cert, node_key) = anchor.leaf("rack12-node07", -1, 365);
    host.write_mode("/etc/iam/pki/server.pem", node_cert.as_bytes(), 0o644);
    host.write_mode("/etc/iam/pki/server.key", node_key.as_bytes(), 0o600);
    host.write_mode("/usr/local/bin/aws_signing_helper", STAND_IN, 0o755);
    host.write_mode(
        "/eks-hybrid/.aws/credentials",
        credentials().as_bytes(),
        0o600,
    );
    host.ok("systemctl daemon-reload");
    assert_eq!(host.show(HELPER_UNIT, "ActiveState"), "inactive");
    let node_key_lines: Vec<String> = key_lines
        .iter()
        .cloned()
        .chain(
            node_key
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
                .map(str::to_owned),
        )
        .collect();
    let r = check(&host, &node_key_lines);
    assert_eq!(
        cred(&r, "provider"),
        ("pass", "credential provider: IAM Roles Anywhere")
    );
    assert_eq!(
        cred(&r, "iam-ra/signing-helper"),
        (
            "fail",
            "the IAM Roles Anywhere signing helper (aws_signing_helper_update) is inactive (dead)"
        )
    );
    assert_eq!(cred(&r, "iam-ra/certificate").0, "pass");
    assert_eq!(cred(&r, "iam-ra/key").0, "pass");
    assert_eq!(cred(&r, "iam-ra/aws-config").0, "pass");
    host.ok(&format!("systemctl start {HELPER_UNIT}"));
    let r = check(&host, &node_key_lines);
    assert_eq!(
        cred(&r, "iam-ra/signing-helper"),
        (
            "pass",
            "the IAM Roles Anywhere signing helper (aws_signing_helper_update) is active"
        )
    );
    let file = cred(&r, "credentials-file");
    assert_eq!(file.0, "pass", "{file:?}");
    assert!(file.1.contains("/eks-hybrid/.aws/credentials"), "{file:?}");
    step(6, "IAM Roles Anywhere signing helper", &mut t);
    eprintln!(
        "credentials live total: {:.1} s",
        total.elapsed().as_secs_f64()
    );
}

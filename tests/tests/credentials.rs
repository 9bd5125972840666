//! The credentials domain, black box: SSM and IAM Roles Anywhere host
//! layouts as nodeadm v1.0.20 leaves them (`tests/fixtures/roots/ssm`,
//! `iam-ra`), certificates generated per run in each state, `check -o json`
//! and a live `/metrics` scrape; and no secret in any output.

use hybrid_node_agent_e2e::certs::{now, Ca, DAY};
use hybrid_node_agent_e2e::{check_in, repo_root, root_from_fixture, run_agent, Agent};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The credentials the fixtures hold: none may appear in any output.
const SECRETS: [&str; 3] = [
    "ASIAQEXAMPLELEAKCANARY",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLEAKCANARYKEY",
    "FwoGZXIvYXdzEHYaDLEAKCANARYSESSIONTOKENhybridnodeagent",
];

fn write(root: &Path, path: &str, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Marks the credentials file as just rewritten by its refresher.
fn refreshed(root: &Path, path: &str, ago: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(root.join(path.trim_start_matches('/')))
        .expect("open");
    f.set_modified(SystemTime::now() - ago).expect("mtime");
}

fn base64(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("in");
    std::fs::write(&p, text).expect("write");
    let out = Command::new("base64")
        .arg("-w0")
        .arg(&p)
        .output()
        .expect("base64 (coreutils)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf8")
}

fn json_check(root: &Path) -> (serde_json::Value, String) {
    let out = run_agent(&[
        "--root",
        root.to_str().expect("utf-8"),
        "check",
        "--output",
        "json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (v, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn cred<'a>(report: &'a serde_json::Value, id: &str) -> (&'a str, &'a str) {
    // The fixtures' NodeConfig names a region, for which the dns domain
    // would ask the host resolver about sts/ssm.<region>.amazonaws.com;
    // the fixture roots have no etc/resolv.conf, so it asks nothing and
    // no query leaves this machine. Held here so a fixture change cannot
    // quietly start sending them.
    let dns = check_in(report, "dns", "host");
    assert_eq!(dns.0, "n/a", "the host resolver must not be asked: {dns:?}");
    check_in(report, "credentials", id)
}

/// The SSM fixture NodeConfig's activation code: a secret too.
const ACTIVATION_CODE: &str = "Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ";

/// The SSM layout with a cluster CA in the NodeConfig and a kubelet
/// serving certificate issued by `issuer`.
fn ssm_root(cluster: &Ca, issuer: &Ca) -> tempfile::TempDir {
    ssm_root_with_key(cluster, issuer).0
}

/// As [`ssm_root`], with the kubelet serving key it wrote.
fn ssm_root_with_key(cluster: &Ca, issuer: &Ca) -> (tempfile::TempDir, String) {
    let root = root_from_fixture("ssm");
    let nc = root.path().join("etc/nodeadm/nodeconfig.yaml");
    let text = std::fs::read_to_string(&nc).expect("nodeconfig");
    std::fs::write(
        &nc,
        text.replace("CLUSTER_CA_BASE64", &base64(&cluster.pem)),
    )
    .expect("write");
    let (cert, key) = issuer.leaf("system:node:mi-0a1b2c3d4e5f60718", -1, 365);
    write(
        root.path(),
        "/var/lib/kubelet/pki/kubelet-server-current.pem",
        &format!("{cert}{key}"),
        0o600,
    );
    refreshed(
        root.path(),
        "/root/.aws/credentials",
        Duration::from_secs(300),
    );
    (root, key)
}

#[test]
fn ssm_layout_in_check_json_and_metrics() {
    let cluster = Ca::new("kubernetes", 3650);
    let made = std::time::Instant::now();
    let root = ssm_root(&cluster, &cluster);
    let (report, _) = json_check(root.path());
    assert_eq!(
        cred(&report, "provider").1,
        "credential provider: SSM hybrid activation"
    );
    let agent = cred(&report, "ssm/agent");
    assert_eq!(agent.0, "pass", "{agent:?}");
    assert!(
        agent
            .1
            .contains("snap, /snap/amazon-ssm-agent/current/amazon-ssm-agent"),
        "{agent:?}"
    );
    // Another root's services are not this host's: not asked.
    let svc = cred(&report, "ssm/service");
    assert_eq!(svc.0, "n/a", "{svc:?}");
    assert!(
        svc.1.contains("snap.amazon-ssm-agent.amazon-ssm-agent"),
        "{svc:?}"
    );
    let reg = cred(&report, "ssm/registration");
    assert_eq!(
        reg,
        (
            "pass",
            "registered as managed instance mi-0a1b2c3d4e5f60718 in us-west-2"
        )
    );
    let file = cred(&report, "credentials-file");
    assert_eq!(file.0, "pass", "{file:?}");
    assert!(
        file.1.contains(
            "/root/.aws/credentials has a complete [default] profile, refreshed 5 minutes ago"
        ),
        "{file:?}"
    );
    let serving = cred(&report, "kubelet/serving");
    assert_eq!(serving.0, "pass", "{serving:?}");
    assert!(
        serving.1.contains("chains to the cluster CA"),
        "{serving:?}"
    );
    assert_eq!(cred(&report, "cluster-ca").0, "pass");
    assert_eq!(cred(&report, "kubelet/client").0, "n/a");

    let mut agent = Agent::start(&["--root", root.path().to_str().expect("utf-8")], &[], None);
    agent.wait_ready();
    let scrape = hybrid_node_agent_e2e::eventually(Duration::from_secs(10), || {
        let m = agent.metrics();
        // Once the NodeConfig is in (its cluster CA), not just the files.
        (m.contains("hybrid_node_credentials_file_age_seconds")
            && m.contains("kind=\"cluster-ca\""))
        .then_some(m)
    })
    .expect("credentials exported");
    let line = |prefix: &str| -> f64 {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{scrape}"))
    };
    let serving_expiry = line(
        "hybrid_node_certificate_expiry_timestamp_seconds{kind=\"kubelet-serving\",registry=\"\"}",
    );
    assert!(
        (serving_expiry - (now() + 365 * DAY) as f64).abs() < 2.0 * DAY as f64,
        "{serving_expiry}"
    );
    line("hybrid_node_certificate_expiry_timestamp_seconds{kind=\"cluster-ca\",registry=\"\"}");
    assert_eq!(
        line("hybrid_node_credentials_certificate_chain_ok{kind=\"kubelet-serving\"}"),
        1.0
    );
    assert_eq!(
        line("hybrid_node_credentials_key_match{kind=\"kubelet-serving\",registry=\"\"}"),
        1.0
    );
    let age = line("hybrid_node_credentials_file_age_seconds{provider=\"ssm\"}");
    // 300 s old when written; older by the time since, and no more.
    let most = 300.0 + made.elapsed().as_secs_f64() + 5.0;
    assert!((300.0..=most).contains(&age), "{age} not in 300..={most}");
    documented_families_are_exported(&scrape, &[]);
    promtool_accepts(&scrape);
}

/// `promtool check metrics` finds no problem with the scrape.
fn promtool_accepts(scrape: &str) {
    if let Some(report) = hybrid_node_agent_e2e::promtool_check_metrics(scrape) {
        assert!(report.trim().is_empty(), "promtool: {report}");
    }
}

/// `docs/metrics.md` rows of this domain's families against a scrape:
/// same labels (families in `absent` are not expected in this scrape).
fn documented_families_are_exported(scrape: &str, absent: &[&str]) {
    let doc = std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs");
    let rows: Vec<(String, BTreeSet<String>)> = doc
        .lines()
        .filter(|l| {
            l.starts_with("| `hybrid_node_certificate_")
                || l.starts_with("| `hybrid_node_credentials_")
        })
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let labels = cells[3]
                .split(',')
                .map(|s| s.trim().trim_matches('`').to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            (cells[1].trim_matches('`').to_owned(), labels)
        })
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (name, labels) in rows {
        if absent.contains(&name.as_str()) {
            continue;
        }
        let sample = scrape
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("{name} documented but not exported"));
        let got: BTreeSet<String> = sample
            .split_once('{')
            .and_then(|(_, r)| r.split_once('}'))
            .map(|(ls, _)| {
                ls.split(',')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, _)| k.to_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got, labels, "labels of {name}");
    }
}

#[test]
fn a_kubelet_certificate_from_an_earlier_cluster_is_a_stale_chain() {
    let cluster = Ca::new("kubernetes", 3650);
    let earlier = Ca::new("kubernetes", 3650);
    let root = ssm_root(&cluster, &earlier);
    let (report, _) = json_check(root.path());
    let serving = cred(&report, "kubelet/serving");
    assert_eq!(serving.0, "fail", "{serving:?}");
    assert!(
        serving.1.contains("does not chain to this cluster's CA"),
        "{serving:?}"
    );
    assert!(
        serving
            .1
            .contains("stale certificate from an earlier install"),
        "{serving:?}"
    );
    // Overdue refresh of the SSM credentials (every 30 minutes normally).
    refreshed(
        root.path(),
        "/root/.aws/credentials",
        Duration::from_secs(50 * 60),
    );
    let (report, _) = json_check(root.path());
    let file = cred(&report, "credentials-file");
    assert_eq!(file.0, "warn", "{file:?}");
    assert!(file.1.contains("50 minutes ago"), "{file:?}");
}

fn iam_ra_root(cert: &str, key: &str) -> tempfile::TempDir {
    let root = root_from_fixture("iam-ra");
    write(root.path(), "/etc/iam/pki/server.pem", cert, 0o644);
    write(root.path(), "/etc/iam/pki/server.key", key, 0o600);
    refreshed(
        root.path(),
        "/eks-hybrid/.aws/credentials",
        Duration::from_secs(20 * 60),
    );
    root
}

#[test]
fn iam_roles_anywhere_certificate_in_each_state() {
    let anchor = Ca::new("trust anchor CA", 3650);
    let (_, other_key) = anchor.leaf("rack12-node07", -1, 365);
    for (case, from, to, want, words) in [
        ("valid", -1, 365, "pass", "days left)"),
        ("expiring in 10 days", -355, 10, "warn", "days left)"),
        ("expired", -400, -2, "fail", "expired on"),
        ("not yet valid", 3, 365, "fail", "is not valid before"),
    ] {
        let (cert, key) = anchor.leaf("rack12-node07", from, to);
        let root = iam_ra_root(&cert, &key);
        let (report, _) = json_check(root.path());
        let c = cred(&report, "iam-ra/certificate");
        assert_eq!(c.0, want, "{case}: {c:?}");
        assert!(
            c.1.contains("/etc/iam/pki/server.pem (CN=rack12-node07)") && c.1.contains(words),
            "{case}: {c:?}"
        );
        if case == "expiring in 10 days" {
            assert!(
                c.1.contains("(9 days left)") || c.1.contains("(10 days left)"),
                "{c:?}"
            );
        }
        if want == "fail" {
            // nodeadm's validator rejects a NodeConfig whose certificate is
            // out of date; the domain reads nodeadm's AWS config instead.
            let p = cred(&report, "provider");
            assert!(
                p.1.contains("read from nodeadm's /etc/aws/hybrid/config"),
                "{case}: {p:?}"
            );
        }
        assert_eq!(cred(&report, "iam-ra/key").0, "pass", "{case}");
        assert_eq!(
            cred(&report, "iam-ra/aws-config").0,
            "pass",
            "{case}: {:?}",
            cred(&report, "iam-ra/aws-config")
        );
        assert_eq!(cred(&report, "iam-ra/signing-helper").0, "n/a", "{case}");
        let file = cred(&report, "credentials-file");
        assert_eq!(file.0, "pass", "{case}: {file:?}");
        assert!(file.1.contains("/eks-hybrid/.aws/credentials"), "{file:?}");
    }
    // Key mismatch.
    let (cert, _) = anchor.leaf("rack12-node07", -1, 365);
    let root = iam_ra_root(&cert, &other_key);
    let (report, _) = json_check(root.path());
    let k = cred(&report, "iam-ra/key");
    assert_eq!(k.0, "fail", "{k:?}");
    assert!(
        k.1.contains("/etc/iam/pki/server.key does not belong to the certificate CN=rack12-node07"),
        "{k:?}"
    );
}

/// Every output the agent has, for one root.
fn every_output(root: &Path) -> Vec<(String, String)> {
    let r = root.to_str().expect("utf-8");
    let mut outs = Vec::new();
    for args in [
        vec!["--root", r, "check", "--output", "json"],
        vec!["--root", r, "check", "--color", "never"],
    ] {
        let out = Command::new(hybrid_node_agent_e2e::agent_bin())
            .args(&args)
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .output()
            .expect("run");
        outs.push((
            format!("{args:?} stdout"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        outs.push((
            format!("{args:?} stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("agent.log");
    let mut agent = Agent::start(&["--root", r], &[("RUST_LOG", "trace")], Some(&log));
    agent.wait_ready();
    hybrid_node_agent_e2e::eventually(Duration::from_secs(10), || {
        agent.check("credentials", "credentials-file")
    })
    .expect("credentials domain ran");
    outs.push(("/metrics".into(), agent.metrics()));
    let status = hybrid_node_agent_e2e::http_get(agent.addr, "/status", &[]).expect("status");
    outs.push(("/status".into(), status.body));
    drop(agent);
    outs.push((
        "daemon log".into(),
        std::fs::read_to_string(&log).expect("log"),
    ));
    outs
}

#[test]
fn no_credential_or_key_reaches_any_output() {
    let anchor = Ca::new("trust anchor CA", 3650);
    let (cert, key) = anchor.leaf("rack12-node07", -1, 365);
    let body = |key: &str| -> Vec<String> {
        key.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(str::to_owned)
            .collect()
    };
    let iam = iam_ra_root(&cert, &key);
    let cluster = Ca::new("kubernetes", 3650);
    let (ssm, kubelet_key) = ssm_root_with_key(&cluster, &cluster);
    // The IAM Roles Anywhere key, the SSM root's kubelet key, and the
    // activation code in its NodeConfig.
    let key_body: Vec<String> = body(&key)
        .into_iter()
        .chain(body(&kubelet_key))
        .chain([ACTIVATION_CODE.to_owned()])
        .collect();
    assert!(key_body.len() > 2);
    let nodeconfig = std::fs::read_to_string(ssm.path().join("etc/nodeadm/nodeconfig.yaml"))
        .expect("nodeconfig");
    assert!(nodeconfig.contains(ACTIVATION_CODE), "the fixture's code");
    for root in [iam.path(), ssm.path()] {
        let outs = every_output(root);
        assert!(outs
            .iter()
            .any(|(w, t)| w == "/status" && t.contains("credentials-file")));
        for (what, text) in &outs {
            for s in SECRETS
                .iter()
                .map(|s| s.to_string())
                .chain(key_body.iter().cloned())
            {
                assert!(!text.contains(&s), "{what} shows a secret ({}…)", &s[..8]);
            }
        }
    }
}

use super::*;
use crate::edge::systemctl::UnitState;
use crate::edge::ExecError;
use crate::model::nodeconfig::{Format, Loaded, NodeConfig};
use crate::model::Phase;
use crate::pki::testcerts::Ca;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// systemd as a table: unit → ActiveState.
#[derive(Debug, Default)]
struct FakeSystemd(BTreeMap<String, &'static str>);

impl ServiceManager for FakeSystemd {
    fn restart(&self, _unit: &str) -> Result<(), ExecError> {
        Ok(())
    }
    fn state(&self, unit: &str) -> Result<UnitState, ExecError> {
        Ok(match self.0.get(unit) {
            None => UnitState::NotFound,
            Some(a) => UnitState::Loaded {
                active: (*a).to_owned(),
                sub: if *a == "active" { "running" } else { "dead" }.to_owned(),
            },
        })
    }
}

struct Rig {
    dir: tempfile::TempDir,
    facts: Facts,
    registry: Registry,
    domain: CredentialsDomain,
}

impl Rig {
    fn new(nodeconfig: serde_json::Value, units: &[(&str, &'static str)], config: Config) -> Rig {
        let dir = tempfile::tempdir().expect("tmp");
        let facts = Facts::default();
        let nc: NodeConfig = serde_json::from_value(nodeconfig).expect("nodeconfig");
        facts.set_nodeconfig(Arc::new(Loaded::new(
            nc,
            "/etc/nodeadm/nodeconfig.yaml".into(),
            Format::Yaml,
        )));
        facts.set_phase(Phase::Joined);
        let mut registry = Registry::default();
        let systemd = FakeSystemd(units.iter().map(|(u, s)| ((*u).to_owned(), *s)).collect());
        let domain = CredentialsDomain::new(
            &config,
            Host::new(dir.path()),
            &mut registry,
            facts.clone(),
            Box::new(systemd),
        );
        Rig {
            dir,
            facts,
            registry,
            domain,
        }
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }

    /// A private key, mode 0600 as it should be.
    fn write_key(&self, path: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        self.write(path, text);
        let p = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    fn age(&self, path: &str, minutes: u64) {
        let p = self.dir.path().join(path.trim_start_matches('/'));
        let f = std::fs::File::options().write(true).open(p).expect("open");
        f.set_modified(SystemTime::now() - Duration::from_secs(minutes * 60))
            .expect("mtime");
    }

    fn run(&mut self) -> Vec<Check> {
        self.domain.run()
    }

    fn scrape(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encode");
        out
    }
}

fn find<'a>(checks: &'a [Check], id: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no {id} in {checks:#?}"))
}

fn iam_ra_nodeconfig(credentials_file: bool) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {
            "cluster": {"name": "edge", "region": "us-west-2"},
            "hybrid": {
                "enableCredentialsFile": credentials_file,
                "iamRolesAnywhere": {
                    "nodeName": "rack12-node07",
                    "trustAnchorArn": "arn:aws:rolesanywhere:us-west-2:111122223333:trust-anchor/a",
                    "profileArn": "arn:aws:rolesanywhere:us-west-2:111122223333:profile/b",
                    "roleArn": "arn:aws:iam::111122223333:role/HybridNodesRole"
                }
            }
        }
    })
}

const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLEtokenNEVERshow";

fn credentials_text() -> String {
    format!("[default]\naws_access_key_id = ASIAEXAMPLEKEYID\naws_secret_access_key = s3cretEXAMPLEvalue\naws_session_token = {TOKEN}\n")
}

#[test]
fn iam_ra_certificate_states_are_told_apart() {
    let ca = Ca::new("trust anchor CA", 3650);
    let mut other_key = None;
    for (case, from, to, want, words) in [
        ("valid", -1, 365, Status::Pass, "days left"),
        ("expiring in 10 days", -300, 10, Status::Warn, "days left"),
        ("expired", -400, -3, Status::Fail, "expired on"),
        ("not yet valid", 3, 300, Status::Fail, "not valid before"),
    ] {
        let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
        let (cert, key) = ca.leaf("rack12-node07", from, to);
        rig.write("/etc/iam/pki/server.pem", &cert);
        rig.write_key("/etc/iam/pki/server.key", &key);
        other_key.get_or_insert(key);
        let checks = rig.run();
        let c = find(&checks, "iam-ra/certificate");
        assert_eq!(c.status, want, "{case}: {c:?}");
        assert!(c.summary.contains(words), "{case}: {}", c.summary);
        assert_eq!(find(&checks, "iam-ra/key").status, Status::Pass, "{case}");
        let scrape = rig.scrape();
        assert!(
            scrape.contains("certificate_expiry_timestamp_seconds{kind=\"iam-ra\",registry=\"\"}"),
            "{case}: {scrape}"
        );
    }
    // A key every user can read.
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    let (cert, key) = ca.leaf("rack12-node07", -1, 365);
    rig.write("/etc/iam/pki/server.pem", &cert);
    rig.write("/etc/iam/pki/server.key", &key);
    let k = rig
        .run()
        .into_iter()
        .find(|c| c.id == "iam-ra/key")
        .expect("key check");
    assert_eq!(k.status, Status::Warn, "{k:?}");
    assert!(
        k.summary.contains("every user can read it (mode 644)"),
        "{}",
        k.summary
    );
    // Key mismatch: another certificate's key.
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    rig.write(
        "/etc/iam/pki/server.pem",
        &ca.leaf("rack12-node07", -1, 365).0,
    );
    rig.write_key(
        "/etc/iam/pki/server.key",
        other_key.as_deref().expect("key"),
    );
    let checks = rig.run();
    let k = find(&checks, "iam-ra/key");
    assert_eq!(k.status, Status::Fail, "{k:?}");
    assert!(k.summary.contains("does not belong"), "{}", k.summary);
    assert!(rig
        .scrape()
        .contains("credentials_key_match{kind=\"iam-ra\",registry=\"\"} 0"));
    // CN other than nodeName.
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    let (cert, key) = ca.leaf("some-other-node", -1, 365);
    rig.write("/etc/iam/pki/server.pem", &cert);
    rig.write_key("/etc/iam/pki/server.key", &key);
    let checks = rig.run();
    let c = find(&checks, "iam-ra/certificate");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("\"some-other-node\"") && c.summary.contains("\"rack12-node07\""),
        "{}",
        c.summary
    );
    // No certificate at all.
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    let checks = rig.run();
    assert_eq!(find(&checks, "iam-ra/certificate").status, Status::Fail);
    assert_eq!(
        find(&checks, "iam-ra/signing-helper").status,
        Status::NotApplicable
    );
}

#[test]
fn iam_ra_with_credentials_file_checks_the_helper_the_config_and_the_file() {
    let ca = Ca::new("trust anchor CA", 3650);
    let (cert, key) = ca.leaf("rack12-node07", -1, 365);
    let mut rig = Rig::new(
        iam_ra_nodeconfig(true),
        &[("aws_signing_helper_update", "failed")],
        Config::default(),
    );
    rig.write("/etc/iam/pki/server.pem", &cert);
    rig.write_key("/etc/iam/pki/server.key", &key);
    rig.write(provider::SIGNING_HELPER_UNIT_FILE, "[Service]\n");
    rig.write(provider::SIGNING_HELPER_BIN, "#!/bin/sh\n");
    rig.write(
        provider::DEFAULT_AWS_CONFIG,
        "[profile default]\nregion = us-west-2\ncredential_process = /usr/local/bin/aws_signing_helper credential-process --certificate /etc/iam/pki/old.pem --private-key /etc/iam/pki/server.key --trust-anchor-arn x\n",
    );
    rig.write(provider::EKS_HYBRID_CREDENTIALS, &credentials_text());
    rig.age(provider::EKS_HYBRID_CREDENTIALS, 70);
    // nodeadm never sets this for IAM Roles Anywhere; were it set, the
    // file the helper refreshes is still the one to watch.
    rig.write(
        "/etc/eks/kubelet/environment",
        "AWS_SHARED_CREDENTIALS_FILE=\"/etc/eks/creds\"\n",
    );
    rig.write("/etc/eks/creds", &credentials_text());
    let checks = rig.run();
    let h = find(&checks, "iam-ra/signing-helper");
    assert_eq!(h.status, Status::Fail, "{h:?}");
    assert!(h.summary.contains("failed"), "{}", h.summary);
    let a = find(&checks, "iam-ra/aws-config");
    assert_eq!(a.status, Status::Fail, "{a:?}");
    assert!(
        a.summary
            .contains("/etc/iam/pki/old.pem, which does not exist"),
        "{}",
        a.summary
    );
    let f = find(&checks, "credentials-file");
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert!(
        f.summary
            .contains("/eks-hybrid/.aws/credentials was last refreshed 70 minutes ago: the credentials in it have expired (older than 60 minutes): ECR image pulls (ecr-credential-provider)"),
        "{}",
        f.summary
    );
    assert!(
        !f.summary.contains("kubelet cannot authenticate"),
        "{}",
        f.summary
    );
    let scrape = rig.scrape();
    let age: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("credentials_file_age_seconds{provider=\"iam-ra\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no age in {scrape}"));
    assert!((4200.0..4300.0).contains(&age), "{age}");
    for c in &checks {
        assert!(!format!("{c:?}").contains(TOKEN), "{c:?}");
    }
    assert!(!scrape.contains(TOKEN));
}

fn ssm_nodeconfig(region: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {
            "cluster": {"name": "edge", "region": region},
            "hybrid": {"ssm": {"activationCode": "Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ", "activationId": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"}}
        }
    })
}

#[test]
fn ssm_agent_registration_and_credentials_file() {
    let mut rig = Rig::new(
        ssm_nodeconfig("us-west-2"),
        &[("snap.amazon-ssm-agent.amazon-ssm-agent", "active")],
        Config::default(),
    );
    rig.write(ssm::INSTALLS[1].binary, "");
    rig.write("/etc/os-release", "NAME=\"Ubuntu\"\nID=ubuntu\n");
    rig.write(
        ssm::REGISTRATION,
        r#"{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"us-west-2"}"#,
    );
    rig.write(ssm::CREDENTIALS, &credentials_text());
    rig.age(ssm::CREDENTIALS, 10);
    let checks = rig.run();
    assert_eq!(find(&checks, "ssm/agent").status, Status::Pass);
    assert!(find(&checks, "ssm/agent").summary.contains("snap"));
    assert_eq!(find(&checks, "ssm/service").status, Status::Pass);
    let r = find(&checks, "ssm/registration");
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert!(r.summary.contains("mi-0123456789abcdef0"));
    let f = find(&checks, "credentials-file");
    assert_eq!(f.status, Status::Pass, "{f:?}");
    // Overdue refresh, another region, the package unit stopped.
    let mut rig = Rig::new(
        ssm_nodeconfig("eu-west-1"),
        &[("amazon-ssm-agent", "inactive")],
        Config::default(),
    );
    rig.write(ssm::INSTALLS[0].binary, "");
    rig.write(
        ssm::REGISTRATION,
        r#"{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"us-west-2"}"#,
    );
    rig.write(
        ssm::CREDENTIALS,
        "[default]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = C\n",
    );
    rig.age(ssm::CREDENTIALS, 50);
    let checks = rig.run();
    assert_eq!(find(&checks, "ssm/service").status, Status::Fail);
    assert!(find(&checks, "ssm/service")
        .summary
        .contains("amazon-ssm-agent) is inactive"));
    let r = find(&checks, "ssm/registration");
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.summary
            .contains("in us-west-2, but the cluster is in eu-west-1"),
        "{}",
        r.summary
    );
    let f = find(&checks, "credentials-file");
    assert_eq!(f.status, Status::Warn, "{f:?}");
    // A profile without its token; the kubelet told to read another file.
    rig.write("/etc/eks/kubelet/environment", "NODEADM_KUBELET_ARGS=\"--node-ip=10.0.0.5\"\nAWS_SHARED_CREDENTIALS_FILE=\"/etc/eks/creds\"\n");
    rig.write(
        "/etc/eks/creds",
        "[default]\naws_access_key_id = A\naws_secret_access_key = B\n",
    );
    let checks = rig.run();
    let f = find(&checks, "credentials-file");
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert!(
        f.summary.contains(
            "/etc/eks/creds has no aws_session_token in its [default] profile: the kubelet (aws-iam-authenticator) cannot authenticate"
        ),
        "{}",
        f.summary
    );
    // enableCredentialsFile: /eks-hybrid/.aws must be nodeadm's link.
    let mut nc = ssm_nodeconfig("us-west-2");
    nc["spec"]["hybrid"]["enableCredentialsFile"] = true.into();
    let mut rig = Rig::new(nc, &[], Config::default());
    assert_eq!(
        find(&rig.run(), "ssm/credentials-link").status,
        Status::Fail
    );
    rig.write("/eks-hybrid/.aws/credentials", &credentials_text());
    let c = rig
        .run()
        .into_iter()
        .find(|c| c.id == "ssm/credentials-link")
        .expect("link check");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.summary.contains("never refreshes"), "{}", c.summary);
    std::fs::remove_dir_all(rig.dir.path().join("eks-hybrid/.aws")).expect("rm");
    std::os::unix::fs::symlink("/root/.aws", rig.dir.path().join("eks-hybrid/.aws")).expect("ln");
    assert_eq!(
        find(&rig.run(), "ssm/credentials-link").status,
        Status::Pass
    );
    // Before nodeadm install nothing of it is expected.
    let mut rig = Rig::new(ssm_nodeconfig("us-west-2"), &[], Config::default());
    rig.facts.set_phase(Phase::NotInstalled);
    let checks = rig.run();
    for id in [
        "ssm/agent",
        "ssm/service",
        "ssm/registration",
        "credentials-file",
    ] {
        assert_eq!(find(&checks, id).status, Status::NotApplicable, "{id}");
    }
}

#[test]
fn registry_client_and_web_certificates_are_watched() {
    let ca = Ca::new("registry CA", 3650);
    let (cert, key) = ca.leaf("node-client", -1, 9);
    let (_, wrong) = ca.leaf("node-client", -1, 9);
    let config = crate::config::parse(
        Path::new("config.toml"),
        "[web]\nconfig_file = \"/etc/hybrid-node-agent/web.yml\"\n\n[[registry]]\nhost = \"harbor.example.internal\"\nclient_cert = \"/etc/pki/harbor-client.pem\"\nclient_key = \"/etc/pki/harbor-client.key\"\n",
    )
    .expect("config");
    let mut rig = Rig::new(ssm_nodeconfig("us-west-2"), &[], config);
    rig.write("/etc/pki/harbor-client.pem", &cert);
    rig.write_key("/etc/pki/harbor-client.key", &wrong);
    let (wcert, wkey) = ca.leaf("node.example.internal", -10, -1);
    rig.write(
        "/etc/hybrid-node-agent/web.yml",
        "tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\n",
    );
    rig.write("/etc/hybrid-node-agent/web.crt", &wcert);
    rig.write("/etc/hybrid-node-agent/web.key", &wkey);
    let checks = rig.run();
    let r = find(&checks, "registry-client/harbor.example.internal");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(r.summary.contains("does not belong"), "{}", r.summary);
    let w = find(&checks, "web");
    assert_eq!(w.status, Status::Fail, "{w:?}");
    assert!(w.summary.contains("expired on"), "{}", w.summary);
    let scrape = rig.scrape();
    assert!(
        scrape.contains("kind=\"registry-client\",registry=\"harbor.example.internal\""),
        "{scrape}"
    );
    assert!(scrape.contains("kind=\"web\""), "{scrape}");
    // The right key, 9 days left: a warning.
    rig.write_key("/etc/pki/harbor-client.key", &key);
    let checks = rig.run();
    assert_eq!(
        find(&checks, "registry-client/harbor.example.internal").status,
        Status::Warn
    );
    // The web key gone: the web server's problem, the expiry still told.
    std::fs::remove_file(rig.dir.path().join("etc/hybrid-node-agent/web.key")).expect("rm");
    let checks = rig.run();
    let w = find(&checks, "web");
    assert_eq!(w.status, Status::Fail, "{w:?}");
    assert!(w.summary.contains("expired on"), "{}", w.summary);
}

#[test]
fn a_bundle_is_judged_on_its_earliest_certificate() {
    // The IAM Roles Anywhere certificate with its intermediate CA after it:
    // the leaf has a year, the intermediate 5 days.
    let ca = Ca::new("intermediate CA", 5);
    let (cert, key) = ca.leaf("rack12-node07", -1, 365);
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    rig.write("/etc/iam/pki/server.pem", &format!("{cert}{}", ca.pem));
    rig.write_key("/etc/iam/pki/server.key", &key);
    let checks = rig.run();
    let c = find(&checks, "iam-ra/certificate");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.summary.contains("CN=intermediate CA")
            && c.summary
                .contains("certificate 2 of 2 in the file, the first to expire"),
        "{}",
        c.summary
    );
    assert_eq!(find(&checks, "iam-ra/key").status, Status::Pass);
}

#[test]
fn an_unusable_certificate_file_gets_the_remedy_for_its_kind() {
    let mut rig = Rig::new(ssm_nodeconfig("us-west-2"), &[], Config::default());
    rig.write_key(certs::KUBELET_SERVING, "not a certificate\n");
    let checks = rig.run();
    let s = find(&checks, "kubelet/serving");
    assert_eq!(s.status, Status::Fail, "{s:?}");
    assert_eq!(
        s.remedy.as_deref(),
        Some("delete /var/lib/kubelet/pki/kubelet-server-current.pem and restart the kubelet: it requests a new certificate (approve its CSR)")
    );
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    rig.write("/etc/iam/pki/server.pem", "not a certificate\n");
    let checks = rig.run();
    let c = find(&checks, "iam-ra/certificate");
    assert!(
        c.remedy.as_deref().is_some_and(|r| r
            .contains("certificate (issued by the trust anchor's CA) at /etc/iam/pki/server.pem")),
        "{c:?}"
    );
}

#[test]
fn a_key_of_a_kind_the_agent_cannot_read_is_unknown_not_failed() {
    let odd = crate::pki::tests::p256_pkcs8_without_public_point();
    let words = "cannot compare the key with the certificate: ";
    // IAM Roles Anywhere.
    let ca = Ca::new("trust anchor CA", 3650);
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    rig.write(
        "/etc/iam/pki/server.pem",
        &ca.leaf("rack12-node07", -1, 365).0,
    );
    rig.write_key("/etc/iam/pki/server.key", &odd);
    let checks = rig.run();
    let k = find(&checks, "iam-ra/key");
    assert_eq!(k.status, Status::Unknown, "{k:?}");
    assert!(
        k.summary.contains(&format!(
            "{words}the private key /etc/iam/pki/server.key holds"
        )),
        "{}",
        k.summary
    );
    // The kubelet's file: the certificate with such a key after it.
    let cluster = Ca::new("kubernetes", 3650);
    let mut rig = Rig::new(ssm_nodeconfig("us-west-2"), &[], Config::default());
    let (cert, _) = cluster.leaf("system:node:mi-0123456789abcdef0", -1, 365);
    rig.write_key(certs::KUBELET_SERVING, &format!("{cert}{odd}"));
    let checks = rig.run();
    let s = find(&checks, "kubelet/serving");
    assert_eq!(s.status, Status::Unknown, "{s:?}");
    assert!(s.summary.contains(words), "{}", s.summary);
    // A registry client key.
    let config = crate::config::parse(
        Path::new("config.toml"),
        "[[registry]]\nhost = \"harbor.example.internal\"\nclient_cert = \"/etc/pki/harbor-client.pem\"\nclient_key = \"/etc/pki/harbor-client.key\"\n",
    )
    .expect("config");
    let mut rig = Rig::new(ssm_nodeconfig("us-west-2"), &[], config);
    rig.write(
        "/etc/pki/harbor-client.pem",
        &ca.leaf("node-client", -1, 365).0,
    );
    rig.write_key("/etc/pki/harbor-client.key", &odd);
    let checks = rig.run();
    let r = find(&checks, "registry-client/harbor.example.internal");
    assert_eq!(r.status, Status::Unknown, "{r:?}");
    assert!(r.summary.contains(words), "{}", r.summary);
    // No key at all is still a failure.
    rig.write_key("/etc/pki/harbor-client.key", "not a key\n");
    let r = rig
        .run()
        .into_iter()
        .find(|c| c.id == "registry-client/harbor.example.internal")
        .expect("registry check");
    assert_eq!(r.status, Status::Fail, "{r:?}");
}

#[test]
fn series_are_updated_in_place_and_only_vanished_ones_removed() {
    let ca = Ca::new("trust anchor CA", 3650);
    let mut rig = Rig::new(iam_ra_nodeconfig(false), &[], Config::default());
    let (cert, key) = ca.leaf("rack12-node07", -1, 365);
    rig.write("/etc/iam/pki/server.pem", &cert);
    rig.write_key("/etc/iam/pki/server.key", &key);
    rig.run();
    let labels = certs::labels(checks::Kind::IamRa, "");
    // The series a scrape reads: it must be the one the next run sets, not
    // a replacement made after a gap.
    let live = rig.domain.metrics.expiry.get_or_create(&labels).clone();
    let first = live.get();
    let (cert, key) = ca.leaf("rack12-node07", -1, 200);
    rig.write("/etc/iam/pki/server.pem", &cert);
    rig.write_key("/etc/iam/pki/server.key", &key);
    rig.run();
    assert!(
        live.get() < first - 100.0 * 86_400.0,
        "the exported gauge was replaced, not set: {} vs {first}",
        live.get()
    );
    // A certificate that is gone takes its series with it.
    std::fs::remove_file(rig.dir.path().join("etc/iam/pki/server.pem")).expect("rm");
    rig.run();
    let scrape = rig.scrape();
    assert!(!scrape.contains("kind=\"iam-ra\""), "{scrape}");
}

#[test]
fn the_ssm_install_is_found_and_its_unit_picked_as_nodeadm_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let host = Host::new(dir.path());
    let write = |p: &str, t: &str| {
        let p = dir.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, t).expect("write");
    };
    // The snap alone, not on Ubuntu: nodeadm still runs amazon-ssm-agent.
    write(ssm::INSTALLS[1].binary, "");
    write("/etc/os-release", "ID=\"rhel\"\n");
    assert_eq!(ssm::installed(&host).map(|i| i.how), Some("snap"));
    assert_eq!(ssm::unit(&host), "amazon-ssm-agent");
    // Both installed on Ubuntu: the package is found first, the unit is
    // the snap's (Ubuntu with the snap).
    write(ssm::INSTALLS[0].binary, "");
    write("/etc/os-release", "NAME=\"Ubuntu\"\nID=ubuntu\n");
    assert_eq!(ssm::installed(&host).map(|i| i.how), Some("package"));
    assert_eq!(ssm::unit(&host), "snap.amazon-ssm-agent.amazon-ssm-agent");
}

#[test]
fn credentials_file_keys_are_found_without_keeping_values() {
    use checks::missing_keys;
    assert!(missing_keys(&credentials_text(), "default").is_empty());
    assert_eq!(
        missing_keys("[other]\naws_access_key_id = A\n", "default").len(),
        3
    );
    assert_eq!(
        missing_keys(
            "[default]\naws_access_key_id = A\naws_secret_access_key =\n# aws_session_token = x\n",
            "default"
        ),
        vec!["aws_secret_access_key", "aws_session_token"]
    );
}

mod kubelet;

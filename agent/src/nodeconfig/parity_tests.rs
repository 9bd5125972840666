//! Parity with hybrid nodeadm v1.0.20, rule by rule, through
//! [`evaluate_with`](super::evaluate_with) as `check` runs it: the verdict
//! (would nodeadm accept the file?), the check that reports it, its status
//! and where it points. Boundary values are nodeadm's exact limits.

use super::evaluate_with;
use super::init::{version_skew, InitProbe, ResolveError};
use crate::check::{Check, Status};
use crate::host::Host;
use std::path::Path;
use std::time::SystemTime;

#[derive(Default)]
struct FakeProbe {
    resolvable: Vec<&'static str>,
    kubelet: Option<&'static str>,
    api: Option<&'static str>,
}

impl InitProbe for FakeProbe {
    fn resolve(&self, host: &str) -> Result<(), ResolveError> {
        if self.resolvable.contains(&host) {
            Ok(())
        } else {
            Err(ResolveError::Lookup(std::io::Error::other("no such host")))
        }
    }
    fn kubelet_version(&self) -> Option<String> {
        self.kubelet.map(str::to_owned)
    }
    fn api_server_version(&self) -> Option<String> {
        self.api.map(str::to_owned)
    }
}

const PATH: &str = "/etc/nodeadm/nodeconfig.yaml";

/// (nodeadm accepts it, the checks)
fn eval_on(text: &str, host: &Host, probe: &FakeProbe) -> (bool, Vec<Check>) {
    match evaluate_with(text, Path::new(PATH), host, SystemTime::now(), probe) {
        Ok((_, checks)) => (true, checks),
        Err(checks) => (false, checks),
    }
}

fn eval(text: &str) -> (bool, Vec<Check>) {
    let dir = tempfile::tempdir().expect("tempdir");
    eval_on(text, &Host::new(dir.path()), &FakeProbe::default())
}

fn check<'a>(checks: &'a [Check], id: &str) -> (&'a Status, &'a str) {
    let c = checks.iter().find(|c| c.id == id).expect(id);
    (&c.status, c.summary.as_str())
}

fn ssm_with(code: &str, extra: &str) -> String {
    format!(
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n  hybrid:\n    ssm:\n      activationCode: {code}\n      activationId: 0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\n{extra}"
    )
}

fn quoted(code: &str) -> String {
    format!("\"{code}\"")
}

#[test]
fn activation_code_is_20_to_250_characters_on_one_line() {
    for (code, ok) in [
        ("Q".repeat(19), false),
        ("Q".repeat(20), true),
        ("Q".repeat(250), true),
        ("Q".repeat(251), false),
        // 250 characters, 500 bytes: Go's regexp counts characters.
        ("é".repeat(250), true),
        ("é".repeat(251), false),
    ] {
        let (accepted, checks) = eval(&ssm_with(&quoted(&code), ""));
        assert_eq!(accepted, ok, "{} chars: {checks:?}", code.chars().count());
        let (status, summary) = check(&checks, "credentials");
        if ok {
            assert_eq!(*status, Status::Pass, "{summary}");
        } else {
            assert_eq!(*status, Status::Fail);
            assert!(
                summary.starts_with(&format!("{PATH}:9:7: spec.hybrid.ssm.activationCode must be 20 to 250 characters on one line, got {}", code.chars().count())),
                "{summary}"
            );
            let head: String = code.chars().take(10).collect();
            assert!(!summary.contains(&head), "the code is never shown");
        }
    }
    // A `|` block scalar keeps its final newline: `.` does not match it.
    let code = "Xk3pQ9vL2mN8rT5wY7zA1bC4";
    let (accepted, checks) = eval(&ssm_with(&format!("|\n        {code}"), ""));
    assert!(!accepted);
    let (_, summary) = check(&checks, "credentials");
    assert!(summary.contains("contains a line break"), "{summary}");
    assert!(!summary.contains(code));
    // `|-` strips it.
    assert!(eval(&ssm_with(&format!("|-\n        {code}"), "")).0);
}

fn iam(node_name: &str, extra: &str) -> String {
    format!(
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n  hybrid:\n    iamRolesAnywhere:\n      nodeName: \"{node_name}\"\n      trustAnchorArn: arn:aws:rolesanywhere:us-west-2:1:trust-anchor/a\n      profileArn: arn:aws:rolesanywhere:us-west-2:1:profile/b\n      roleArn: arn:aws:iam::1:role/c\n{extra}"
    )
}

/// A certificate for `cn` and its key at nodeadm's default paths.
fn install_cert(host: &Host, cn: &str) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    std::fs::create_dir_all(host.path("/etc/iam/pki")).expect("mkdir");
    std::fs::write(host.path("/etc/iam/pki/server.pem"), cert.pem()).expect("write");
    std::fs::write(host.path("/etc/iam/pki/server.key"), key.serialize_pem()).expect("write");
}

const PATHS: &str = "      certificatePath: /etc/iam/pki/server.pem\n      privateKeyPath: /etc/iam/pki/server.key\n";

fn eval_iam(node_name: &str, cn: &str) -> (bool, Vec<Check>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(dir.path());
    install_cert(&host, cn);
    eval_on(&iam(node_name, PATHS), &host, &FakeProbe::default())
}

#[test]
fn node_name_is_at_most_64_bytes() {
    let ascii64 = "n".repeat(64);
    assert!(eval_iam(&ascii64, &ascii64).0);
    let ascii65 = "n".repeat(65);
    let (accepted, checks) = eval_iam(&ascii65, &ascii65);
    assert!(!accepted);
    assert!(check(&checks, "credentials")
        .1
        .contains("nodeName is 65 bytes (65 characters); nodeadm allows at most 64 bytes"));
    // 32 two-byte characters: 64 bytes, accepted by nodeadm (the agent
    // warns that it is no Kubernetes node name).
    let multi64 = "é".repeat(32);
    let (accepted, checks) = eval_iam(&multi64, &multi64);
    assert!(accepted, "{checks:?}");
    let (status, summary) = check(&checks, "credentials");
    assert_eq!(*status, Status::Warn);
    assert!(
        summary.contains("is not a valid Kubernetes node name"),
        "{summary}"
    );
    // 64 characters but 65 bytes.
    let multi65 = format!("é{}", "n".repeat(63));
    let (accepted, checks) = eval_iam(&multi65, &multi65);
    assert!(!accepted);
    assert!(check(&checks, "credentials")
        .1
        .contains("nodeName is 65 bytes (64 characters)"));
}

#[test]
fn node_name_must_match_the_certificate_cn() {
    let (accepted, checks) = eval_iam("rack12-node07", "rack12-node08");
    assert!(accepted);
    let (status, summary) = check(&checks, "credentials");
    assert_eq!(*status, Status::Warn);
    assert!(
        summary.contains("differs from the CN \"rack12-node08\""),
        "{summary}"
    );
    let (_, checks) = eval_iam("rack12-node07", "rack12-node07");
    assert_eq!(*check(&checks, "credentials").0, Status::Pass);
}

#[test]
fn init_defaults_the_iam_paths_and_config_check_disagrees() {
    // No certificatePath/privateKeyPath: init uses /etc/iam/pki/server.*
    // and accepts the file; `nodeadm config check` would reject it.
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(dir.path());
    install_cert(&host, "rack12-node07");
    let (accepted, checks) = eval_on(&iam("rack12-node07", ""), &host, &FakeProbe::default());
    assert!(accepted);
    let (status, summary) = check(&checks, "credentials");
    assert_eq!(*status, Status::Warn);
    assert!(
        summary.contains("(\"CertificatePath is missing"),
        "{summary}"
    );
    assert!(
        summary.contains("only init fills in the default /etc/iam/pki/server.pem"),
        "{summary}"
    );
    let text = iam("rack12-node07", "").replace(
        "\"rack12-node07\"\n",
        "\"rack12-node07\"\n      certificatePath: /etc/iam/pki/server.pem\n",
    );
    let (accepted, checks) = eval_on(&text, &host, &FakeProbe::default());
    assert!(accepted);
    let (status, summary) = check(&checks, "credentials");
    assert_eq!(*status, Status::Warn);
    assert!(
        summary.starts_with(&format!(
            "{PATH}:8:5: `nodeadm config check` rejects this file (\"PrivateKeyPath is missing"
        )),
        "{summary}"
    );
    // Missing certificate at the default path: init's own error.
    let (accepted, checks) = eval(&iam("rack12-node07", ""));
    assert!(!accepted);
    assert!(check(&checks, "credentials")
        .1
        .contains("/etc/iam/pki/server.pem does not exist"));
}

#[test]
fn validator_order_and_hostname_override_forms() {
    let text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  hybrid: {}\n  kubelet:\n    flags:\n      - --hostname-override=a\n      - --hostname-override=b\n";
    let (accepted, checks) = eval(text);
    assert!(!accepted);
    assert!(check(&checks, "cluster")
        .1
        .contains("spec.cluster.name is required"));
    assert!(check(&checks, "cluster").1.ends_with("(+1 more)"));
    // The last --hostname-override= wins, as in nodeadm's extractFlagValue.
    assert!(check(&checks, "kubelet_flags")
        .1
        .contains("--hostname-override=b;"));
    assert!(check(&checks, "credentials").1.contains("none is set"));

    let flags = |f: &str| {
        ssm_with(
            &quoted(&"Q".repeat(24)),
            &format!("  kubelet:\n    flags: [{f}]\n"),
        )
    };
    // An empty value passes nodeadm.
    let (accepted, checks) = eval(&flags("\"--hostname-override=\""));
    assert!(accepted);
    assert_eq!(*check(&checks, "kubelet_flags").0, Status::Pass);
    // Forms nodeadm does not see reach the kubelet: warn.
    for f in [
        "\"--hostname-override\", \"x\"",
        "\" --hostname-override=x\"",
    ] {
        let (accepted, checks) = eval(&flags(f));
        assert!(accepted, "{f}");
        let (status, summary) = check(&checks, "kubelet_flags");
        assert_eq!(*status, Status::Warn, "{f}");
        assert!(
            summary.contains("in a form nodeadm does not check"),
            "{summary}"
        );
    }
}

fn cluster(extra: &str, flags: &str) -> String {
    ssm_with(&quoted(&"Q".repeat(24)), "").replace(
        "    region: us-west-2\n",
        &format!("    region: us-west-2\n{extra}"),
    ) + &format!("  kubelet:\n    flags: [{flags}]\n")
}

#[test]
fn endpoint_must_be_a_url_whose_host_resolves() {
    let probe = FakeProbe {
        resolvable: vec!["abc.gr7.us-west-2.eks.amazonaws.com", "10.0.0.1"],
        ..FakeProbe::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(dir.path());
    for (endpoint, ok, why) in [
        ("https://abc.gr7.us-west-2.eks.amazonaws.com", true, ""),
        ("https://10.0.0.1:443/", true, ""),
        ("abc.gr7.us-west-2.eks.amazonaws.com", false, "no scheme"),
        ("https://", false, "the hostname is empty"),
        ("https://abc:port", false, "an invalid port"),
        (
            "https://gone.example.invalid",
            false,
            "does not resolve (no such host)",
        ),
    ] {
        let text = cluster(&format!("    apiServerEndpoint: {endpoint}\n"), "");
        let (accepted, checks) = eval_on(&text, &host, &probe);
        assert_eq!(accepted, ok, "{endpoint}: {checks:?}");
        let (status, summary) = check(&checks, "cluster");
        if ok {
            assert_eq!(*status, Status::Pass, "{summary}");
        } else {
            assert!(summary.starts_with(&format!("{PATH}:7:5: ")), "{summary}");
            assert!(summary.contains(why), "{summary}");
            assert!(
                summary.contains("nodeadm init fails in api-server-endpoint-resolution-validation"),
                "{summary}"
            );
        }
    }
}

#[test]
fn cidr_node_ip_and_skipped_validations() {
    let (accepted, checks) = eval(&cluster("    cidr: 172.20.0.0\n", ""));
    assert!(!accepted);
    let (_, summary) = check(&checks, "cluster");
    assert!(
        summary.starts_with(&format!("{PATH}:7:5: spec.cluster.cidr is not a CIDR")),
        "{summary}"
    );
    assert!(eval(&cluster("    cidr: 172.20.0.0/16\n", "")).0);
    assert!(eval(&cluster("    cidr: fd00::/108\n", "")).0);

    for (flag, ok) in [
        ("--node-ip=10.1.2.3", true),
        ("--node-ip=::ffff:10.1.2.3", true),
        ("--node-ip=10.1.2.3,fd00::3", false),
        ("--node-ip=fd00::3", false),
        ("--node-ip=", true),
    ] {
        let (accepted, checks) = eval(&cluster("", &quoted(flag)));
        assert_eq!(accepted, ok, "{flag}");
        if !ok {
            assert!(check(&checks, "kubelet_flags")
                .1
                .contains("nodeadm init fails in node-ip-validation"));
        }
    }

    // Endpoint, CA and CIDR all given: init skips node-ip-validation.
    let probe = FakeProbe {
        resolvable: vec!["e.test"],
        ..FakeProbe::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let text = cluster(
        "    apiServerEndpoint: https://e.test\n    certificateAuthority: aGVsbG8=\n    cidr: 172.20.0.0/16\n",
        "\"--node-ip=fd00::3\"",
    );
    let (accepted, checks) = eval_on(&text, &Host::new(dir.path()), &probe);
    assert!(accepted, "{checks:?}");
    let (status, summary) = check(&checks, "cluster");
    assert_eq!(*status, Status::Warn);
    assert!(
        summary.contains("skips node-ip-validation and kubelet-version-skew-validation"),
        "{summary}"
    );
    assert_eq!(*check(&checks, "kubelet_flags").0, Status::Warn);
}

#[test]
fn kubelet_version_skew() {
    assert!(version_skew("v1.28.5", "1.31").is_ok());
    assert!(version_skew("v1.31.0", "1.31").is_ok());
    assert!(version_skew("v1.27.9", "1.31")
        .unwrap_err()
        .contains("more than 3 minor"));
    assert!(version_skew("v1.32.0", "1.31")
        .unwrap_err()
        .contains("newer"));
    let probe = FakeProbe {
        kubelet: Some("v1.27.9"),
        api: Some("1.31"),
        ..FakeProbe::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (accepted, checks) = eval_on(&cluster("", ""), &Host::new(dir.path()), &probe);
    assert!(!accepted);
    assert!(check(&checks, "kubelet_flags")
        .1
        .contains("nodeadm init fails in kubelet-version-skew-validation"));
}

#[test]
fn decoder_findings_reach_the_schema_check() {
    let text = ssm_with(&quoted(&"Q".repeat(24)), "").replace("activationId:", "activationID:");
    let (accepted, checks) = eval(&text);
    assert!(accepted);
    let (status, summary) = check(&checks, "schema");
    assert_eq!(*status, Status::Warn);
    assert_eq!(
        summary,
        format!("{PATH}:10:7: `activationID` is read as `activationId` (nodeadm matches keys case-insensitively): write `activationId`")
    );
    let (accepted, checks) = eval(&cluster("    certificateAuthority: aGVsbG8\n", ""));
    assert!(!accepted);
    assert!(check(&checks, "parse").1.starts_with(&format!(
        "{PATH}:7:27: spec.cluster.certificateAuthority is not valid base64"
    )));
}

#[test]
fn what_nodeadm_lets_through_only_warns() {
    let (accepted, checks) = eval(&cluster("", "").replace(
        "  kubelet:",
        "  containerd:\n    config: |\n      [plugins\n  kubelet:",
    ));
    assert!(accepted, "nodeadm writes the TOML unchecked");
    assert_eq!(*check(&checks, "containerd_toml").0, Status::Warn);

    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(dir.path());
    std::fs::create_dir_all(host.path("/var/lib/amazon/ssm")).expect("mkdir");
    std::fs::write(
        host.path(super::lax::SSM_REGISTRATION),
        r#"{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"eu-west-1"}"#,
    )
    .expect("write");
    let (accepted, checks) = eval_on(&cluster("", ""), &host, &FakeProbe::default());
    assert!(accepted);
    let (status, summary) = check(&checks, "credentials");
    assert_eq!(*status, Status::Warn);
    assert!(
        summary.contains(
            "already registered with SSM as mi-0123456789abcdef0 in eu-west-1, not in us-west-2"
        ),
        "{summary}"
    );
}

/// Found by the `nodeconfig` fuzz target: a wrong `apiVersion` is quoted in
/// the schema warning, and a value the admin pasted there can hold the
/// activation code. No message may show it, whatever field carries it.
#[test]
fn the_activation_code_is_never_quoted_from_another_field() {
    let code = "Xk3pQ9vL2mN8rT5wY7zA1bC4dE6fG0hJ";
    let text = format!(
        "apiVersion: node.eks.a{code}\"\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n  hybrid:\n    ssm:\n      activationCode: \"{code}\"\n      activationId: \"0f1e2dc3-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n"
    );
    let (_, checks) = eval(&text);
    let (status, summary) = check(&checks, "schema");
    assert_eq!(*status, Status::Warn, "{summary}");
    assert!(summary.contains("apiVersion"), "{summary}");
    assert!(summary.contains("<activation code>"), "{summary}");
    for c in &checks {
        assert!(!c.summary.contains(code), "{}: {}", c.id, c.summary);
        assert!(!c.remedy.as_deref().unwrap_or("").contains(code));
    }
}

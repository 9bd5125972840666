//! hybrid nodeadm's validation rules, with messages that say what to fix.

use super::parse::{locate_key, locate_key_from};
use crate::host::Host;
use crate::model::nodeconfig::NodeConfig;
use std::time::SystemTime;

/// One problem found in a NodeConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check it belongs to (a bounded set: see [`AREAS`]).
    pub area: &'static str,
    /// The field, as a path (`spec.hybrid.ssm.activationId`).
    pub field: String,
    pub position: Option<(usize, usize)>,
    pub message: String,
}

/// The validation areas, each reported as one check.
pub const AREAS: [&str; 5] = [
    "schema",
    "cluster",
    "credentials",
    "kubelet_flags",
    "containerd_toml",
];

/// Validates a decoded NodeConfig. `text` is the file it came from (for
/// positions); IAM Roles Anywhere files are looked up on `host`.
pub fn validate(config: &NodeConfig, text: &str, host: &Host, now: SystemTime) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |area, field: &str, key: &str, message: String| {
        out.push(Finding {
            area,
            field: field.to_owned(),
            position: locate_key(text, key),
            message,
        });
    };

    for (path, key) in config.ec2_only_fields() {
        push(
            "schema",
            path,
            key,
            format!(
                "{path} is only understood by the EC2 (AL2023) nodeadm; hybrid nodeadm \
                 decodes strictly and rejects it: remove it"
            ),
        );
    }

    let cluster = &config.spec.cluster;
    if cluster.name.trim().is_empty() {
        push(
            "cluster",
            "spec.cluster.name",
            "cluster",
            "spec.cluster.name is required: the name of the EKS cluster to join".into(),
        );
    }
    if cluster.region.trim().is_empty() {
        push(
            "cluster",
            "spec.cluster.region",
            "cluster",
            "spec.cluster.region is required: the AWS Region of the cluster (e.g. us-west-2)"
                .into(),
        );
    }

    let hybrid = config.spec.hybrid.as_ref();
    let ssm = hybrid.and_then(|h| h.ssm.as_ref());
    let iam = hybrid.and_then(|h| h.iam_roles_anywhere.as_ref());
    match (ssm, iam) {
        (None, None) => push(
            "credentials",
            "spec.hybrid",
            "spec",
            "spec.hybrid must configure exactly one credential provider, ssm or iamRolesAnywhere; none is set".into(),
        ),
        (Some(_), Some(_)) => push(
            "credentials",
            "spec.hybrid",
            "hybrid",
            "spec.hybrid sets both ssm and iamRolesAnywhere; nodeadm requires exactly one: remove the one you do not use".into(),
        ),
        (Some(ssm), None) => {
            let code_len = ssm.activation_code.expose().chars().count();
            if !(20..=250).contains(&code_len) {
                push(
                    "credentials",
                    "spec.hybrid.ssm.activationCode",
                    "activationCode",
                    format!(
                        "spec.hybrid.ssm.activationCode must be 20 to 250 characters, got {code_len}: \
                         use the ActivationCode returned by `aws ssm create-activation`"
                    ),
                );
            }
            if !is_lower_hex_uuid(&ssm.activation_id) {
                push(
                    "credentials",
                    "spec.hybrid.ssm.activationId",
                    "activationId",
                    "spec.hybrid.ssm.activationId must be a lowercase hexadecimal UUID \
                     (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): use the ActivationId from `aws ssm create-activation`"
                        .into(),
                );
            }
        }
        (None, Some(ra)) => {
            let base = "spec.hybrid.iamRolesAnywhere";
            let node_name_len = ra.node_name.chars().count();
            if ra.node_name.trim().is_empty() {
                push("credentials", &format!("{base}.nodeName"), "iamRolesAnywhere", format!("{base}.nodeName is required: it becomes the node's name and the role session name"));
            } else if node_name_len > 64 {
                push("credentials", &format!("{base}.nodeName"), "nodeName", format!("{base}.nodeName is {node_name_len} characters; at most 64 are allowed (it is the IAM role session name)"));
            }
            for (value, key) in [
                (&ra.role_arn, "roleArn"),
                (&ra.profile_arn, "profileArn"),
                (&ra.trust_anchor_arn, "trustAnchorArn"),
            ] {
                if value.trim().is_empty() {
                    push("credentials", &format!("{base}.{key}"), "iamRolesAnywhere", format!("{base}.{key} is required"));
                } else if !value.starts_with("arn:") {
                    push("credentials", &format!("{base}.{key}"), key, format!("{base}.{key} must be an ARN (arn:aws:…)"));
                }
            }
            let cert = ra.certificate_path();
            let key = ra.private_key_path();
            let key_of = |explicit: &str, k: &'static str| if explicit.is_empty() { "iamRolesAnywhere" } else { k };
            if let Err(message) = check_certificate(host, cert, now) {
                push("credentials", &format!("{base}.certificatePath"), key_of(&ra.certificate_path, "certificatePath"), message);
            }
            match std::fs::metadata(host.path(key)) {
                Ok(m) if m.is_file() && m.len() > 0 => {}
                Ok(_) => push("credentials", &format!("{base}.privateKeyPath"), key_of(&ra.private_key_path, "privateKeyPath"), format!("the private key {key} is empty or not a file")),
                Err(_) => push("credentials", &format!("{base}.privateKeyPath"), key_of(&ra.private_key_path, "privateKeyPath"), format!("the private key {key} does not exist: install the key that matches the node certificate there (or set privateKeyPath)")),
            }
        }
    }

    for flag in &config.spec.kubelet.flags {
        if flag.trim_start().starts_with("--hostname-override") {
            push(
                "kubelet_flags",
                "spec.kubelet.flags",
                "flags",
                "spec.kubelet.flags sets --hostname-override; hybrid nodeadm sets the node name itself \
                 (the SSM managed instance ID or iamRolesAnywhere.nodeName): remove the flag"
                    .into(),
            );
        }
    }

    out.extend(containerd_toml_finding(config, text));
    out
}

/// The finding for an embedded `containerd.config` that is not valid TOML,
/// positioned in the NodeConfig file itself.
pub fn containerd_toml_finding(config: &NodeConfig, text: &str) -> Option<Finding> {
    let toml_text = config.spec.containerd.config.as_deref()?;
    let e = toml_text.parse::<toml_edit::DocumentMut>().err()?;
    let (toml_line, toml_col) = e
        .span()
        .map(|s| crate::config::line_column(toml_text, s.start))
        .unwrap_or((1, 1));
    let message = e
        .message()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .trim()
        .to_owned();
    let (position, context) = match embedded_block_start(text) {
        Some((first_line, indent)) => (
            Some((first_line + toml_line - 1, indent + toml_col)),
            String::new(),
        ),
        None => (
            locate_key(text, "containerd"),
            format!(" (line {toml_line}, column {toml_col} of the embedded TOML)"),
        ),
    };
    Some(Finding {
        area: "containerd_toml",
        field: "spec.containerd.config".into(),
        position,
        message: format!("spec.containerd.config is not valid TOML{context}: {message}"),
    })
}

/// Where the embedded TOML of a YAML block scalar (`config: |`) starts:
/// its first line (1-based) and indentation.
fn embedded_block_start(text: &str) -> Option<(usize, usize)> {
    let (containerd_line, _) = locate_key(text, "containerd")?;
    let (config_line, _) = locate_key_from(text, "config", containerd_line + 1)?;
    let header = text.lines().nth(config_line - 1)?;
    let value = header.split_once(':')?.1.trim();
    if !(value.starts_with('|') || value.starts_with('>')) {
        return None;
    }
    let first = text.lines().nth(config_line)?;
    let indent = first.len() - first.trim_start().len();
    Some((config_line + 1, indent))
}

fn check_certificate(host: &Host, path: &str, now: SystemTime) -> Result<(), String> {
    let bytes = host.read_pem_file(path).map_err(|e| {
        if e.is_not_found() {
            format!(
                "the node certificate {path} does not exist: install the certificate issued by your \
                 IAM Roles Anywhere trust anchor there (or set certificatePath)"
            )
        } else {
            format!("the node certificate: {e}")
        }
    })?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
        .map_err(|_| format!("{path} is not a PEM certificate"))?;
    let cert = pem
        .parse_x509()
        .map_err(|_| format!("{path} holds a PEM block that is not a valid X.509 certificate"))?;
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let validity = cert.validity();
    if now_secs > validity.not_after.timestamp() {
        return Err(format!(
            "the node certificate {path} expired on {}: renew it",
            validity.not_after
        ));
    }
    if now_secs < validity.not_before.timestamp() {
        return Err(format!(
            "the node certificate {path} is not valid before {}: check the host clock",
            validity.not_before
        ));
    }
    Ok(())
}

fn is_lower_hex_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeconfig::parse::parse;

    fn findings(text: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = parse(text).expect("parses");
        validate(&config, text, &Host::new(dir.path()), SystemTime::now())
    }

    fn ssm(extra: &str) -> String {
        format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n  hybrid:\n    ssm:\n      activationCode: \"aaaaaaaaaaaaaaaaaaaaaaaa\"\n      activationId: \"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n{extra}"
        )
    }

    #[test]
    fn good_ssm_config_has_no_findings() {
        assert_eq!(findings(&ssm("")), vec![]);
    }

    #[test]
    fn uuid_rule() {
        assert!(is_lower_hex_uuid("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"));
        assert!(!is_lower_hex_uuid("0F1E2D3C-4B5A-6978-8A9B-0C1D2E3F4A5B"));
        assert!(!is_lower_hex_uuid("0f1e2d3c4b5a69788a9b0c1d2e3f4a5b"));
        assert!(!is_lower_hex_uuid("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5"));
    }

    #[test]
    fn hostname_override_and_bad_toml_are_found_with_positions() {
        let text = ssm("  kubelet:\n    flags:\n      - --hostname-override=x\n  containerd:\n    config: |\n      version = 2\n      [plugins\n");
        let f = findings(&text);
        let areas: Vec<_> = f.iter().map(|f| f.area).collect();
        assert_eq!(areas, vec!["kubelet_flags", "containerd_toml"], "{f:?}");
        // `[plugins` is on line 17 of the YAML; the error is at its end.
        assert_eq!(f[1].position.map(|p| p.0), Some(17), "{f:?}");
    }

    const IAM_RA: &str = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n  hybrid:\n    iamRolesAnywhere:\n      nodeName: rack12-node07\n      trustAnchorArn: arn:aws:rolesanywhere:us-west-2:1:trust-anchor/a\n      profileArn: arn:aws:rolesanywhere:us-west-2:1:profile/b\n      roleArn: arn:aws:iam::1:role/c\n";

    fn install_cert(host: &Host, not_after_year: i32) {
        let mut params =
            rcgen::CertificateParams::new(vec!["rack12-node07".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        std::fs::create_dir_all(host.path("/etc/iam/pki")).expect("mkdir");
        std::fs::write(host.path("/etc/iam/pki/server.pem"), cert.pem()).expect("write");
        std::fs::write(host.path("/etc/iam/pki/server.key"), key.serialize_pem()).expect("write");
    }

    fn iam_findings(host: &Host) -> Vec<Finding> {
        let config = parse(IAM_RA).expect("parses");
        validate(&config, IAM_RA, host, SystemTime::now())
    }

    #[test]
    fn iam_roles_anywhere_certificate_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        let f = iam_findings(&host);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].message
                .contains("/etc/iam/pki/server.pem does not exist"),
            "{f:?}"
        );
        assert!(
            f[1].message
                .contains("/etc/iam/pki/server.key does not exist"),
            "{f:?}"
        );

        install_cert(&host, 2100);
        assert_eq!(iam_findings(&host), vec![]);

        install_cert(&host, 2021);
        let f = iam_findings(&host);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("expired on"), "{f:?}");

        std::fs::write(host.path("/etc/iam/pki/server.pem"), "not a certificate").expect("write");
        let f = iam_findings(&host);
        assert!(f[0].message.contains("is not a PEM certificate"), "{f:?}");
    }

    #[test]
    fn iam_roles_anywhere_required_fields() {
        let text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: r\n  hybrid:\n    iamRolesAnywhere:\n      nodeName: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n      roleArn: not-an-arn\n";
        let f = findings(text);
        let msgs: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert!(
            msgs.iter().any(|m| m.contains("nodeName is 65 characters")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("roleArn must be an ARN")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("profileArn is required")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("trustAnchorArn is required")),
            "{msgs:?}"
        );
    }

    #[test]
    fn ssm_rules() {
        let text = ssm("")
            .replace("aaaaaaaaaaaaaaaaaaaaaaaa", "short")
            .replace("0f1e2d3c-4b5a", "0F1E2D3C-4B5A");
        let f = findings(&text);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].message.contains("20 to 250 characters, got 5"));
        assert!(
            !f[0].message.contains("short"),
            "the code itself is never shown"
        );
        assert!(f[1].message.contains("lowercase hexadecimal UUID"));
        assert_eq!(f[1].position, Some((10, 7)));
    }

    #[test]
    fn ec2_only_fields_are_reported() {
        let text = ssm("  featureGates:\n    InstanceIdNodeName: true\n  instance:\n    network:\n      x: 1\n");
        let f = findings(&text);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0]
            .message
            .contains("spec.featureGates is only understood by the EC2"));
        assert_eq!(f[0].position, Some((11, 3)));
        assert_eq!(f[1].field, "spec.instance.network");
    }
}

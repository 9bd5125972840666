//! hybrid nodeadm's config validator (internal/node/hybrid/validator.go,
//! `withHybridValidators` and `validateRolesAnywhereNode`, v1.0.20), rule for
//! rule and in its order, judged on the file as `nodeadm init` sees it (after
//! `PopulateNodeConfigDefaults`, see [`init`](super::init)). nodeadm stops at
//! the first error; the findings here keep going, in the same order, so the
//! first one is what nodeadm prints.
//!
//! Limits are nodeadm's exactly: the activation code matches Go's
//! `^.{20,250}$` (characters, and `.` does not match a newline, so a `|`
//! block scalar's trailing newline fails it); `nodeName` is measured with
//! Go's `len` (bytes); `--hostname-override=` is matched as a prefix of a
//! flag, last one wins, and only a non-empty value fails.

use super::parse::{locate_key, locate_key_from};
use super::positions::KeyPositions;
use crate::host::Host;
use crate::model::nodeconfig::{IamRolesAnywhere, NodeConfig};
use std::time::SystemTime;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// nodeadm (`config check` or `init`) rejects the file: the config is invalid.
    Fail,
    /// nodeadm accepts it, but the node will not work as written, or a
    /// nodeadm command disagrees with `init`.
    Warn,
}

/// One problem found in a NodeConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check it belongs to (a bounded set: see [`AREAS`]).
    pub area: &'static str,
    /// The field, as a path (`spec.hybrid.ssm.activationId`).
    pub field: String,
    pub position: Option<(usize, usize)>,
    pub message: String,
    pub severity: Severity,
}

/// The validation areas, each reported as one check.
pub const AREAS: [&str; 5] = [
    "schema",
    "cluster",
    "credentials",
    "kubelet_flags",
    "containerd_toml",
];

/// Collects findings positioned at a key of the file.
pub(crate) struct Out<'a> {
    pub text: &'a str,
    pub positions: &'a KeyPositions,
    pub findings: Vec<Finding>,
}

impl Out<'_> {
    /// A finding at the first `key` (searched from the line of `after`, when given).
    pub fn push(
        &mut self,
        severity: Severity,
        area: &'static str,
        field: &str,
        key: &str,
        message: String,
    ) {
        let position = self.locate(field, key);
        self.findings.push(Finding {
            area,
            field: field.to_owned(),
            position,
            message,
            severity,
        });
    }

    /// Where `key` of `field` is: from the YAML tree, else searched in
    /// the text below the parent keys of the field path, so `name` finds
    /// `cluster.name`, not `metadata.name`.
    pub fn locate(&self, field: &str, key: &str) -> Option<(usize, usize)> {
        if let Some(pos) = self.positions.locate(field, key) {
            return Some(pos);
        }
        let mut line = 1;
        let parts: Vec<&str> = field.split('.').collect();
        for parent in parts.iter().take(parts.len().saturating_sub(1)) {
            if let Some((l, _)) = locate_key_from(self.text, parent, line) {
                line = l;
            }
        }
        locate_key_from(self.text, key, line).or_else(|| locate_key(self.text, key))
    }
}

/// Go's `regexp.MatchString("^.{20,250}$", code)`.
pub fn activation_code_matches(code: &str) -> bool {
    !code.contains('\n') && (20..=250).contains(&code.chars().count())
}

/// nodeadm's `extractFlagValue`: the value of the last flag that starts
/// with `--<name>=` exactly (no trimming).
pub fn nodeadm_flag_value<'a>(flags: &'a [String], name: &str) -> &'a str {
    let prefix = format!("--{name}=");
    flags
        .iter()
        .filter_map(|f| f.strip_prefix(prefix.as_str()))
        .next_back()
        .unwrap_or("")
}

/// Everything the agent judges: the decoder's notices, nodeadm's
/// validator (after init's defaults), where `config check` disagrees, the
/// rules init applies later, what nodeadm lets through, and the embedded
/// containerd TOML.
pub fn validate_full(
    parsed: &super::parse::Parsed,
    text: &str,
    host: &Host,
    now: SystemTime,
    probe: &dyn super::init::InitProbe,
) -> Vec<Finding> {
    let config = &parsed.config;
    let mut out = Out {
        text,
        positions: &parsed.positions,
        findings: parsed
            .notices
            .iter()
            .map(|n| Finding {
                area: "schema",
                field: n.field.clone(),
                position: Some(n.pos),
                message: n.message.clone(),
                severity: Severity::Warn,
            })
            .collect(),
    };
    validator(&mut out, config, host, now);
    super::init::later_rules(&mut out, config, parsed.certificate_authority_given, probe);
    super::lax::lax_rules(&mut out, config, host);
    // Last in its check: what breaks the node comes before a disagreement
    // between two nodeadm commands.
    super::init::config_check_disagreement(&mut out, config);
    if let Some(f) = containerd_toml_finding(config, text, &parsed.positions) {
        out.findings.push(f);
    }
    out.findings
}

/// `withHybridValidators`, in its order.
pub(crate) fn validator(out: &mut Out<'_>, config: &NodeConfig, host: &Host, now: SystemTime) {
    use Severity::Fail;
    let cluster = &config.spec.cluster;
    if cluster.name.is_empty() {
        out.push(Fail, "cluster", "spec.cluster.name", "cluster",
            "spec.cluster.name is required: the name of the EKS cluster to join (nodeadm: \"Name is missing in cluster configuration\")".into());
    }
    if cluster.region.is_empty() {
        out.push(Fail, "cluster", "spec.cluster.region", "cluster",
            "spec.cluster.region is required: the AWS Region of the cluster, e.g. us-west-2 (nodeadm: \"Region is missing in cluster configuration\")".into());
    }
    let hostname = nodeadm_flag_value(&config.spec.kubelet.flags, "hostname-override");
    if !hostname.is_empty() {
        out.push(Fail, "kubelet_flags", "spec.kubelet.flags", "flags", format!(
            "spec.kubelet.flags sets --hostname-override={hostname}; hybrid nodeadm rejects it and names the node itself \
             (the SSM managed instance ID or iamRolesAnywhere.nodeName): remove the flag"));
    }
    let hybrid = config.spec.hybrid.as_ref();
    let ssm = hybrid.and_then(|h| h.ssm.as_ref());
    let iam = hybrid.and_then(|h| h.iam_roles_anywhere.as_ref());
    match (ssm, iam) {
        (None, None) => out.push(Fail, "credentials", "spec.hybrid", if hybrid.is_some() { "hybrid" } else { "spec" },
            "spec.hybrid must configure exactly one credential provider, ssm or iamRolesAnywhere; none is set".into()),
        (Some(_), Some(_)) => out.push(Fail, "credentials", "spec.hybrid", "hybrid",
            "spec.hybrid sets both ssm and iamRolesAnywhere; nodeadm requires exactly one: remove the one you do not use".into()),
        (None, Some(ra)) => {
            let explicit = (!ra.certificate_path.is_empty(), !ra.private_key_path.is_empty());
            let ra = super::init::with_defaults(ra);
            iam_roles_anywhere(out, &ra, explicit, host, now);
        }
        (Some(ssm), None) => {
            let base = "spec.hybrid.ssm";
            let code = ssm.activation_code.expose();
            if code.is_empty() {
                out.push(Fail, "credentials", &format!("{base}.activationCode"), "ssm",
                    format!("{base}.activationCode is required: the ActivationCode from `aws ssm create-activation`"));
            }
            if ssm.activation_id.is_empty() {
                out.push(Fail, "credentials", &format!("{base}.activationId"), "ssm",
                    format!("{base}.activationId is required: the ActivationId from `aws ssm create-activation`"));
            }
            if !code.is_empty() && !activation_code_matches(code) {
                // Never the code itself (nodeadm prints it; we do not).
                let chars = code.chars().count();
                let why = if code.contains('\n') {
                    format!("it contains a line break (a `|` block scalar keeps one at the end: use `|-` or a quoted string), {chars} characters in all")
                } else {
                    format!("got {chars}")
                };
                out.push(Fail, "credentials", &format!("{base}.activationCode"), "activationCode", format!(
                    "{base}.activationCode must be 20 to 250 characters on one line, {why}: \
                     use the ActivationCode returned by `aws ssm create-activation`"));
            }
            if !ssm.activation_id.is_empty() && !is_lower_hex_uuid(&ssm.activation_id) {
                out.push(Fail, "credentials", &format!("{base}.activationId"), "activationId", format!(
                    "{base}.activationId must be a lowercase hexadecimal UUID \
                     (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): use the ActivationId from `aws ssm create-activation`"));
            }
        }
    }
}

/// `validateRolesAnywhereNode`, in its order, on the defaulted fields.
fn iam_roles_anywhere(
    out: &mut Out<'_>,
    ra: &IamRolesAnywhere,
    (cert_explicit, key_explicit): (bool, bool),
    host: &Host,
    now: SystemTime,
) {
    use Severity::Fail;
    let base = "spec.hybrid.iamRolesAnywhere";
    for (value, key) in [
        (&ra.role_arn, "roleArn"),
        (&ra.profile_arn, "profileArn"),
        (&ra.trust_anchor_arn, "trustAnchorArn"),
    ] {
        if value.is_empty() {
            out.push(
                Fail,
                "credentials",
                &format!("{base}.{key}"),
                "iamRolesAnywhere",
                format!("{base}.{key} is required"),
            );
        }
    }
    if ra.node_name.is_empty() {
        out.push(
            Fail,
            "credentials",
            &format!("{base}.nodeName"),
            "iamRolesAnywhere",
            format!(
                "{base}.nodeName is required: it becomes the node's name and the role session name"
            ),
        );
    } else if ra.node_name.len() > 64 {
        out.push(Fail, "credentials", &format!("{base}.nodeName"), "nodeName", format!(
            "{base}.nodeName is {} bytes ({} characters); nodeadm allows at most 64 bytes (it is the IAM role session name)",
            ra.node_name.len(), ra.node_name.chars().count()));
    }
    let key_of = |explicit: bool, k: &'static str| if explicit { k } else { "iamRolesAnywhere" };
    let cert = &ra.certificate_path;
    if let Err(message) = check_certificate(host, cert, now) {
        out.push(
            Fail,
            "credentials",
            &format!("{base}.certificatePath"),
            key_of(cert_explicit, "certificatePath"),
            message,
        );
    }
    let key = &ra.private_key_path;
    // nodeadm's file.Exists: anything stat can see, even a directory.
    if let Err(e) = std::fs::symlink_metadata(host.path(key)) {
        if e.kind() == std::io::ErrorKind::NotFound {
            out.push(Fail, "credentials", &format!("{base}.privateKeyPath"), key_of(key_explicit, "privateKeyPath"), format!(
                "the private key {key} does not exist: install the key that matches the node certificate there (or set privateKeyPath)"));
        }
    }
}

/// The finding for an embedded `containerd.config` that is not valid TOML,
/// positioned in the NodeConfig file itself.
pub fn containerd_toml_finding(
    config: &NodeConfig,
    text: &str,
    positions: &KeyPositions,
) -> Option<Finding> {
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
    let (position, context) = match embedded_block_position(text, positions, toml_text, toml_line) {
        Some((line, indent)) => (Some((line, indent + toml_col)), String::new()),
        None => (
            positions
                .get("spec.containerd")
                .or_else(|| locate_key(text, "containerd")),
            format!(" (line {toml_line}, column {toml_col} of the embedded TOML)"),
        ),
    };
    Some(Finding {
        area: "containerd_toml",
        field: "spec.containerd.config".into(),
        position,
        message: format!(
            "spec.containerd.config is not valid TOML{context}: {message}. nodeadm does not check it: \
             it writes the text to /etc/containerd/config.d/00-nodeadm.toml and containerd will not start"
        ),
        severity: Severity::Warn,
    })
}

/// The file line (1-based) and indentation of line `toml_line` of the
/// embedded TOML, when it sits in a literal block scalar (`config: |`)
/// whose lines are, one for one, the TOML's lines up to that one. The key
/// comes from the YAML tree; the block's lines are still compared with
/// the decoded value, so a quoted or folded value or an alias maps
/// nowhere (`None`), and a position never points past the end of the
/// file.
fn embedded_block_position(
    text: &str,
    positions: &KeyPositions,
    toml_text: &str,
    toml_line: usize,
) -> Option<(usize, usize)> {
    let (config_line, _) = positions.get("spec.containerd.config")?;
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.get(config_line - 1)?;
    let value = header.split_once(':')?.1.trim();
    if !value.starts_with('|') {
        return None;
    }
    let block = lines.get(config_line..)?;
    let first = block.iter().find(|l| !l.trim().is_empty())?;
    let indent = first.len() - first.trim_start().len();
    let mut wanted = toml_text.lines();
    for (i, line) in block.iter().enumerate().take(toml_line) {
        let expected = wanted.next()?;
        let content = line.get(indent..).unwrap_or_else(|| line.trim_start());
        if content.trim_end() != expected.trim_end() {
            return None;
        }
        if i + 1 == toml_line {
            return Some((config_line + 1 + i, indent));
        }
    }
    None
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
    // nodeadm's order (internal/certificate Validate): not yet valid, then expired.
    let validity = cert.validity();
    if now_secs < validity.not_before.timestamp() {
        return Err(format!(
            "the node certificate {path} is not valid before {}: check the host clock",
            validity.not_before
        ));
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(format!(
            "the node certificate {path} expired on {}: renew it",
            validity.not_after
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

    /// nodeadm's validator alone (no decoder notices, init's later rules
    /// or the lax ones), with the embedded TOML finding.
    fn validate(config: &NodeConfig, text: &str, host: &Host, now: SystemTime) -> Vec<Finding> {
        let positions = KeyPositions::from_text(text);
        let mut out = Out {
            text,
            positions: &positions,
            findings: Vec::new(),
        };
        validator(&mut out, config, host, now);
        out.findings
            .extend(containerd_toml_finding(config, text, &positions));
        out.findings
    }

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

    #[test]
    fn bad_toml_outside_a_literal_block_is_placed_at_its_key_never_past_the_file() {
        // A double-quoted value in a flow mapping: its TOML lines are not
        // file lines, and the next `config: |` in the text is part of a
        // kubelet flag's block scalar.
        let quoted = ssm("  containerd: {config: \"\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n[plugins\"}\n  kubelet:\n    flags:\n      - |\n        config: |\n          x\n");
        let f = findings(&quoted);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].position.map(|p| p.0), Some(11), "{f:?}");
        assert!(
            f[0].message.contains("(line 21, column"),
            "{}",
            f[0].message
        );
        // Folded (`>`) lines do not map one to one.
        let folded = ssm("  containerd:\n    config: >\n      version = 2\n\n      [plugins\n");
        let f = findings(&folded);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].position.map(|p| p.0), Some(11), "{f:?}");
        assert!(
            f[0].message.contains("of the embedded TOML"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn findings_point_at_the_key_in_the_yaml_tree_not_at_its_first_spelling() {
        // `cluster:` is written first inside the containerd block scalar;
        // the real key, missing its region, is on line 7.
        let text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  containerd:\n    config: |\n      cluster: not a key\n  cluster:\n    name: c\n  hybrid:\n    ssm:\n      activationCode: \"aaaaaaaaaaaaaaaaaaaaaaaa\"\n      activationId: \"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"\n";
        let f = findings(text);
        let region = f
            .iter()
            .find(|f| f.field == "spec.cluster.region")
            .unwrap_or_else(|| panic!("{f:?}"));
        assert_eq!(region.position, Some((7, 3)), "{region:?}");
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
            msgs.iter()
                .any(|m| m.contains("nodeName is 65 bytes (65 characters)")),
            "{msgs:?}"
        );
        // nodeadm does not check the ARN's shape.
        assert!(!msgs.iter().any(|m| m.contains("roleArn")), "{msgs:?}");
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
        assert!(f[0]
            .message
            .contains("20 to 250 characters on one line, got 5"));
        assert!(
            !f[0].message.contains("short"),
            "the code itself is never shown"
        );
        assert!(f[1].message.contains("lowercase hexadecimal UUID"));
        assert_eq!(f[1].position, Some((10, 7)));
    }
}

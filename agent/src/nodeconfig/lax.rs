//! What hybrid nodeadm (v1.0.20) lets through although the node will not
//! work as written. Each is a warning: nodeadm accepts the file, so the
//! agent does not call it invalid, but says what will break and why.

use super::validate::{Out, Severity};
use crate::host::Host;
use crate::model::nodeconfig::NodeConfig;

/// The SSM agent's registration file (internal/ssm/registration.go).
pub const SSM_REGISTRATION: &str = "/var/lib/amazon/ssm/registration";

pub(crate) fn lax_rules(out: &mut Out<'_>, config: &NodeConfig, host: &Host) {
    hostname_override_other_forms(out, config);
    if let Some(ra) = config
        .spec
        .hybrid
        .as_ref()
        .filter(|h| h.ssm.is_none())
        .and_then(|h| h.iam_roles_anywhere.as_ref())
    {
        let ra = super::init::with_defaults(ra);
        let field = "spec.hybrid.iamRolesAnywhere.nodeName";
        if !ra.node_name.is_empty() && !is_dns1123_subdomain(&ra.node_name) {
            out.push(
                Severity::Warn,
                "credentials",
                field,
                "nodeName",
                format!(
                    "{field} {:?} is not a valid Kubernetes node name (lowercase letters, digits, `-` and `.`, \
                     starting and ending with a letter or digit, at most 253): nodeadm accepts it, but the \
                     kubelet cannot register the node",
                    ra.node_name
                ),
            );
        }
        if let Some(cn) = certificate_cn(host, &ra.certificate_path) {
            if cn != ra.node_name && !ra.node_name.is_empty() {
                out.push(
                    Severity::Warn,
                    "credentials",
                    field,
                    "nodeName",
                    format!(
                        "{field} {:?} differs from the CN {cn:?} of {}: the role trust policy of the hybrid nodes \
                         guide requires the session name to equal the certificate CN, so AssumeRole will be denied",
                        ra.node_name, ra.certificate_path
                    ),
                );
            }
        }
    }
    if config.spec.hybrid.as_ref().is_some_and(|h| h.ssm.is_some()) {
        ssm_registration(out, config, host);
    }
}

/// nodeadm checks only `--hostname-override=<value>` at the start of a flag.
fn hostname_override_other_forms(out: &mut Out<'_>, config: &NodeConfig) {
    let flags = &config.spec.kubelet.flags;
    for (i, f) in flags.iter().enumerate() {
        let t = f.trim();
        let spaced = t == "--hostname-override" && flags.get(i + 1).is_some();
        let inline_space = t.starts_with("--hostname-override ");
        let padded = f != t && t.starts_with("--hostname-override=") && t.len() > 20;
        if spaced || inline_space || padded {
            out.push(
                Severity::Warn,
                "kubelet_flags",
                "spec.kubelet.flags",
                "flags",
                "spec.kubelet.flags sets --hostname-override in a form nodeadm does not check \
                 (separate value or surrounding spaces); it reaches the kubelet, which then registers under \
                 a name nodeadm and the credentials do not expect: remove the flag"
                    .into(),
            );
            return;
        }
    }
}

/// A Kubernetes node name: a DNS-1123 subdomain.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

fn certificate_cn(host: &Host, path: &str) -> Option<String> {
    let bytes = host.read_pem_file(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).ok()?;
    let cert = pem.parse_x509().ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

#[derive(serde::Deserialize)]
struct Registration {
    #[serde(rename = "ManagedInstanceID", default)]
    managed_instance_id: String,
    #[serde(rename = "Region", default)]
    region: String,
}

/// nodeadm skips SSM registration when this file exists, whatever it holds.
fn ssm_registration(out: &mut Out<'_>, config: &NodeConfig, host: &Host) {
    let Ok(bytes) = std::fs::read(host.path(SSM_REGISTRATION)) else {
        return;
    };
    let Ok(reg) = serde_json::from_slice::<Registration>(&bytes) else {
        out.push(
            Severity::Warn,
            "credentials",
            "spec.hybrid.ssm",
            "ssm",
            format!("{SSM_REGISTRATION} exists but is not the SSM agent's JSON: nodeadm init fails reading it; remove it or run `nodeadm uninstall`"),
        );
        return;
    };
    let region = &config.spec.cluster.region;
    if !reg.region.is_empty() && !region.is_empty() && &reg.region != region {
        out.push(
            Severity::Warn,
            "credentials",
            "spec.hybrid.ssm",
            "ssm",
            format!(
                "this host is already registered with SSM as {} in {}, not in {region}: nodeadm init skips \
                 registration, so the activation in this file is not used and the node keeps credentials \
                 from the other region. Deregister it (`nodeadm uninstall`) first",
                reg.managed_instance_id, reg.region
            ),
        );
    }
}

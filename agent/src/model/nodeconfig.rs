//! The NodeConfig (`node.eks.aws/v1alpha1`, kind `NodeConfig`) as hybrid
//! nodeadm decodes it: strictly, so an unknown field is an error.
//!
//! The fields are those of hybrid nodeadm's internal type; the decoder
//! (`nodeconfig::decode`) has already rejected anything else (fields
//! only the EC2 nodeadm knows included) and canonicalised key spellings.

use crate::model::containerd::{ContainerdConfig, RegistryDecl, RuntimeFacts};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

pub const API_VERSION: &str = "node.eks.aws/v1alpha1";
pub const KIND: &str = "NodeConfig";

/// A value that must never be printed: `Debug` shows only its length and
/// there is no `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} chars>", self.0.chars().count())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConfig {
    /// nodeadm's `file://` source does not check these two: see
    /// `parse::header_notices`.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub spec: Spec,
    /// nodeadm's internal type has a status nodeadm fills in; a file may set it.
    #[serde(default)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub cluster: Cluster,
    #[serde(default)]
    pub hybrid: Option<Hybrid>,
    #[serde(default)]
    pub containerd: Containerd,
    #[serde(default)]
    pub kubelet: Kubelet,
    #[serde(default)]
    pub instance: Instance,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub api_server_endpoint: String,
    #[serde(default)]
    pub certificate_authority: String,
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub enable_outpost: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hybrid {
    #[serde(default)]
    pub ssm: Option<Ssm>,
    #[serde(default)]
    pub iam_roles_anywhere: Option<IamRolesAnywhere>,
    #[serde(default)]
    pub enable_credentials_file: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ssm {
    #[serde(default)]
    pub activation_code: Secret,
    #[serde(default)]
    pub activation_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IamRolesAnywhere {
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub trust_anchor_arn: String,
    #[serde(default)]
    pub profile_arn: String,
    #[serde(default)]
    pub role_arn: String,
    #[serde(default)]
    pub aws_config_path: String,
    #[serde(default)]
    pub certificate_path: String,
    #[serde(default)]
    pub private_key_path: String,
}

impl IamRolesAnywhere {
    pub const DEFAULT_CERTIFICATE_PATH: &'static str = "/etc/iam/pki/server.pem";
    pub const DEFAULT_PRIVATE_KEY_PATH: &'static str = "/etc/iam/pki/server.key";

    /// The certificate path after nodeadm's defaulting.
    pub fn certificate_path(&self) -> &str {
        non_empty_or(&self.certificate_path, Self::DEFAULT_CERTIFICATE_PATH)
    }

    /// The private key path after nodeadm's defaulting.
    pub fn private_key_path(&self) -> &str {
        non_empty_or(&self.private_key_path, Self::DEFAULT_PRIVATE_KEY_PATH)
    }
}

fn non_empty_or<'a>(v: &'a str, default: &'a str) -> &'a str {
    if v.is_empty() {
        default
    } else {
        v
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Containerd {
    /// Inline containerd TOML, written verbatim to
    /// `/etc/containerd/config.d/00-nodeadm.toml`.
    #[serde(default)]
    pub config: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kubelet {
    /// Merged into the kubelet's KubeletConfiguration.
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Instance {
    #[serde(default)]
    pub local_storage: Option<serde_json::Value>,
}

/// Why `spec.cluster.certificateAuthority` cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterCaError {
    #[error("spec.cluster.certificateAuthority is not base64: {0}")]
    NotBase64(#[source] base64::DecodeError),
}

impl NodeConfig {
    /// The cluster CA PEM bytes from `spec.cluster.certificateAuthority`,
    /// decoded as nodeadm's Go (`encoding/base64.StdEncoding`) does: CR and
    /// LF skipped anywhere, full padding, non-zero trailing bits tolerated
    /// (the decoder, `nodeconfig::decode`, accepts the same). `None` when
    /// the field is empty. The bytes are not checked to be PEM.
    pub fn cluster_ca_pem(&self) -> Option<Result<Vec<u8>, ClusterCaError>> {
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        use base64::Engine;
        let b64: String = self
            .spec
            .cluster
            .certificate_authority
            .chars()
            .filter(|c| !matches!(c, '\r' | '\n'))
            .collect();
        if b64.trim().is_empty() {
            return None;
        }
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
                .with_decode_allow_trailing_bits(true),
        );
        Some(
            engine
                .decode(b64.as_bytes())
                .map_err(ClusterCaError::NotBase64),
        )
    }

    /// The kubelet flag values for `name` (`--name=value` or `--name value`).
    pub fn kubelet_flag_values(&self, name: &str) -> Vec<&str> {
        let flags = &self.spec.kubelet.flags;
        let long = format!("--{name}");
        let mut out = Vec::new();
        let mut i = 0;
        while i < flags.len() {
            let f = flags[i].trim();
            if let Some(v) = f.strip_prefix(&long).and_then(|r| r.strip_prefix('=')) {
                out.push(v);
            } else if f == long {
                if let Some(v) = flags.get(i + 1) {
                    out.push(v.as_str());
                    i += 1;
                }
            }
            i += 1;
        }
        out
    }

    /// Node labels from `--node-labels`.
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        self.kubelet_flag_values("node-labels")
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let k = k.trim();
                (!k.is_empty()).then(|| (k.to_owned(), v.trim().to_owned()))
            })
            .collect()
    }

    /// Taints from `--register-with-taints` and the kubelet config's
    /// `registerWithTaints`, as `key=value:Effect` strings.
    pub fn taints(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .kubelet_flag_values("register-with-taints")
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(serde_json::Value::Array(taints)) =
            self.spec.kubelet.config.get("registerWithTaints")
        {
            for t in taints {
                let key = t.get("key").and_then(|v| v.as_str()).unwrap_or("");
                let value = t.get("value").and_then(|v| v.as_str()).unwrap_or("");
                let effect = t.get("effect").and_then(|v| v.as_str()).unwrap_or("");
                if !key.is_empty() {
                    out.push(if value.is_empty() {
                        format!("{key}:{effect}")
                    } else {
                        format!("{key}={value}:{effect}")
                    });
                }
            }
        }
        out
    }
}

/// How the NodeConfig file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// A good NodeConfig and the facts other domains need, derived once.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: NodeConfig,
    /// Host path it was read from.
    pub path: PathBuf,
    pub format: Format,
    pub loaded_at: SystemTime,
    /// Registries declared in the inline containerd config (legacy form).
    pub registries: Vec<RegistryDecl>,
    /// The inline containerd config's default runtime, if it sets one.
    pub default_runtime: Option<RuntimeFacts>,
    pub node_labels: BTreeMap<String, String>,
    pub taints: Vec<String>,
}

impl Loaded {
    pub fn new(config: NodeConfig, path: PathBuf, format: Format) -> Self {
        let inline = config
            .spec
            .containerd
            .config
            .as_deref()
            .and_then(|t| ContainerdConfig::parse(t).ok());
        Loaded {
            registries: inline
                .as_ref()
                .map(ContainerdConfig::registries)
                .unwrap_or_default(),
            default_runtime: inline.as_ref().and_then(ContainerdConfig::default_runtime),
            node_labels: config.node_labels(),
            taints: config.taints(),
            config,
            path,
            format,
            loaded_at: SystemTime::now(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;

    /// Base64 of `bytes` (whose length is not a multiple of 3) with the
    /// unused low bits of the last symbol set: Go decodes it, a strict
    /// decoder refuses it.
    pub(crate) fn with_trailing_bits(bytes: &[u8]) -> String {
        assert_ne!(bytes.len() % 3, 0, "needs padding to have trailing bits");
        let mut b64 = base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes();
        let last = b64.iter().rposition(|c| *c != b'=').expect("a symbol");
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let i = ALPHABET
            .iter()
            .position(|c| *c == b64[last])
            .expect("alphabet");
        b64[last] = ALPHABET[i | 1];
        String::from_utf8(b64).expect("ascii")
    }

    fn with_ca(ca: &str) -> NodeConfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "spec": {"cluster": {"name": "c", "certificateAuthority": ca}}
        }))
        .expect("nodeconfig")
    }

    #[test]
    fn the_cluster_ca_is_decoded_as_go_does() {
        let mut pem = b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n".to_vec();
        while pem.len() % 3 == 0 {
            pem.push(b'\n');
        }
        let odd = with_trailing_bits(&pem);
        assert!(
            base64::engine::general_purpose::STANDARD
                .decode(&odd)
                .is_err(),
            "a strict decoder refuses {odd}"
        );
        assert_eq!(with_ca(&odd).cluster_ca_pem(), Some(Ok(pem.clone())));
        // Go skips CR and LF anywhere.
        let wrapped = format!("{}\r\n{}\n", &odd[..8], &odd[8..]);
        assert_eq!(with_ca(&wrapped).cluster_ca_pem(), Some(Ok(pem)));
        assert_eq!(with_ca("").cluster_ca_pem(), None);
        assert!(matches!(
            with_ca("not base64!").cluster_ca_pem(),
            Some(Err(ClusterCaError::NotBase64(_)))
        ));
    }
}

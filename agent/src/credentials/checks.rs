//! Pure verdicts: a certificate's validity, a chain, a key, a credentials
//! file. No I/O; `now` and thresholds are passed in.

use crate::check::{Check, Status};
use crate::pki::{format_time, Cert, KeyError, Validity};
use std::time::Duration;

use super::DOMAIN;

/// Which certificate (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    KubeletServing,
    KubeletClient,
    ClusterCa,
    IamRa,
    RegistryClient,
    Web,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::KubeletServing => "kubelet-serving",
            Kind::KubeletClient => "kubelet-client",
            Kind::ClusterCa => "cluster-ca",
            Kind::IamRa => "iam-ra",
            Kind::RegistryClient => "registry-client",
            Kind::Web => "web",
        }
    }

    /// How a person names it.
    pub fn what(self) -> &'static str {
        match self {
            Kind::KubeletServing => "kubelet serving certificate",
            Kind::KubeletClient => "kubelet client certificate",
            Kind::ClusterCa => "cluster CA",
            Kind::IamRa => "IAM Roles Anywhere certificate",
            Kind::RegistryClient => "registry client certificate",
            Kind::Web => "web TLS certificate",
        }
    }

    /// What to do when the file at `path` cannot be read as a certificate.
    pub fn unusable(self, path: &str) -> String {
        match self {
            // nodeadm's certificate validator says the same
            // (`internal/kubelet/certificate_validator.go`).
            Kind::KubeletServing | Kind::KubeletClient => {
                format!("delete {path} and restart the kubelet: it requests a new certificate (approve its CSR)")
            }
            Kind::ClusterCa => "set spec.cluster.certificateAuthority to the base64 of the cluster's CA PEM (aws eks describe-cluster --query cluster.certificateAuthority.data)".to_owned(),
            Kind::IamRa => format!("install the node's PEM certificate (issued by the trust anchor's CA) at {path}, or set spec.hybrid.iamRolesAnywhere.certificatePath"),
            Kind::RegistryClient => format!("install the registry's PEM client certificate at {path}, or fix client_cert in the [[registry]] entry"),
            Kind::Web => format!("install a PEM certificate at {path}, or fix tls_server_config.cert_file in the web config"),
        }
    }

    /// What to do once it has expired or is about to.
    fn renew(self) -> &'static str {
        match self {
            Kind::KubeletServing => "the kubelet renews it through a CSR (serverTLSBootstrap): look for pending CSRs (kubectl get csr) and approve them; journalctl -u kubelet shows rotation errors",
            Kind::KubeletClient => "the kubelet renews it when rotateCertificates is on: journalctl -u kubelet shows rotation errors",
            Kind::ClusterCa => "the CA is rotated with the cluster: put the new CA in spec.cluster.certificateAuthority and rerun nodeadm init",
            Kind::IamRa => "issue a new certificate from the trust anchor's CA and install it with its key at the NodeConfig's certificatePath/privateKeyPath (aws_signing_helper reads them on every refresh)",
            Kind::RegistryClient => "issue a new client certificate for the registry and install it at client_cert/client_key",
            Kind::Web => "renew the certificate named by tls_server_config.cert_file; the agent reloads it when the file changes",
        }
    }
}

/// Validity of `cert` (read from `path`) at `now`: fail when expired or not
/// yet valid, warn within `warn_days`.
pub fn validity(id: &str, kind: Kind, path: &str, cert: &Cert, now: i64, warn_days: u32) -> Check {
    let what = kind.what();
    let subject = &cert.subject;
    match cert.validity_at(now) {
        Validity::Expired => Check::new(
            DOMAIN,
            id,
            Status::Fail,
            format!(
                "{what} {path} ({subject}) expired on {}",
                format_time(cert.not_after)
            ),
        )
        .with_remedy(kind.renew()),
        Validity::NotYetValid => Check::new(
            DOMAIN,
            id,
            Status::Fail,
            format!(
                "{what} {path} ({subject}) is not valid before {}",
                format_time(cert.not_before)
            ),
        )
        .with_remedy("check the host clock (timedatectl; NTP must be in sync), or install a certificate that is valid now"),
        Validity::Valid(left) => {
            let days = left / 86_400;
            let text = format!(
                "{what} {path} ({subject}) is valid until {} ({days} days left)",
                format_time(cert.not_after)
            );
            if left < i64::from(warn_days) * 86_400 {
                Check::new(DOMAIN, id, Status::Warn, text).with_remedy(kind.renew())
            } else {
                Check::pass(DOMAIN, id, text)
            }
        }
    }
}

/// Validity of a bundle read from `path`: judged on its earliest-expiring
/// certificate (the one the expiry series exports), named when it is not
/// the first.
pub fn bundle_validity(
    id: &str,
    kind: Kind,
    path: &str,
    certs: &[Cert],
    now: i64,
    warn_days: u32,
) -> Check {
    let Some((i, c)) = certs.iter().enumerate().min_by_key(|(_, c)| c.not_after) else {
        return Check::new(
            DOMAIN,
            id,
            Status::Fail,
            format!("{} {path} holds no certificate", kind.what()),
        );
    };
    let mut check = validity(id, kind, path, c, now, warn_days);
    if i > 0 {
        check.summary.push_str(&format!(
            " (certificate {} of {} in the file, the first to expire)",
            i + 1,
            certs.len()
        ));
    }
    check
}

/// The earliest-expiring certificate of a bundle.
pub fn earliest(certs: &[Cert]) -> Option<&Cert> {
    certs.iter().min_by_key(|c| c.not_after)
}

/// Worse of two checks about the same thing (the first on a tie).
pub fn worst(a: Check, b: Check) -> Check {
    if b.status > a.status {
        b
    } else {
        a
    }
}

/// The kubelet's `*-current.pem` holds its certificate and, after it, the
/// private key; a key that does not belong to the certificate (or none)
/// means the kubelet cannot use the pair. `problem` says which, never the
/// key.
pub fn kubelet_key(id: &str, kind: Kind, path: &str, cert: &Cert, problem: &str) -> Check {
    Check::new(
        DOMAIN,
        id,
        Status::Fail,
        format!(
            "{} {path} ({}): {problem}: the kubelet cannot use this certificate and key pair",
            kind.what(),
            cert.subject
        ),
    )
    .with_remedy("stop the kubelet, remove /var/lib/kubelet/pki/kubelet-server-* (or kubelet-client-*), start the kubelet and approve its new CSR (kubectl get csr)")
}

/// A key of a kind the agent cannot parse (`KeyError::Unsupported`: a
/// PKCS#8 EC key without its public point, P-521, ...) may be the right
/// one: unknown, not a failure. `key` names it ("the private key /path").
pub fn key_not_compared(id: &str, key: &str, e: &KeyError) -> Check {
    Check::new(
        DOMAIN,
        id,
        Status::Unknown,
        format!("cannot compare the key with the certificate: {key} {e}"),
    )
}

/// The kubelet certificate does not chain to the cluster CA.
pub fn stale_chain(id: &str, kind: Kind, path: &str, cert: &Cert, ca: &Cert) -> Check {
    Check::new(
        DOMAIN,
        id,
        Status::Fail,
        format!(
            "{} {path} ({}, issued by another CA) does not chain to this cluster's CA ({}): a stale certificate from an earlier install; kubectl logs/exec to this node fail",
            kind.what(),
            cert.subject,
            ca.subject
        ),
    )
    .with_remedy("stop the kubelet, remove /var/lib/kubelet/pki/kubelet-server-* (and kubelet-client-* if present), start the kubelet and approve its new CSR")
}

/// What reading an AWS shared credentials file found; never its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredFile {
    Missing,
    Unreadable(String),
    Read {
        /// Keys of the profile that are absent or empty.
        missing: Vec<&'static str>,
        /// Since the last write.
        age: Duration,
    },
}

/// The keys a usable profile has.
pub const CREDENTIAL_KEYS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Which of [`CREDENTIAL_KEYS`] the INI `profile` section of `text` lacks
/// (absent or empty). Values are looked at for emptiness only.
pub fn missing_keys(text: &str, profile: &str) -> Vec<&'static str> {
    let mut section = String::new();
    let mut found = [false; 3];
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if section != profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if let Some(i) = CREDENTIAL_KEYS.iter().position(|w| *w == k.trim()) {
                found[i] |= !v.trim().is_empty();
            }
        }
    }
    CREDENTIAL_KEYS
        .iter()
        .zip(found)
        .filter(|(_, f)| !f)
        .map(|(k, _)| *k)
        .collect()
}

/// Thresholds for a credentials file's age.
#[derive(Debug, Clone, Copy)]
pub struct Ages {
    pub warn: Duration,
    pub fail: Duration,
}

/// A threshold as the age beside it is told ("45 minutes"), not as the
/// config writes it ("45m").
fn threshold(d: Duration) -> String {
    let secs = d.as_secs();
    if secs % 60 == 0 {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} seconds")
    }
}

/// Who reads a provider's credentials file, and what breaks when it is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileReader {
    /// SSM: the kubelet's aws-iam-authenticator reads the file the SSM
    /// agent refreshes.
    Ssm,
    /// IAM Roles Anywhere: the kubelet authenticates with
    /// `aws_signing_helper credential-process` (AWS_CONFIG_FILE and
    /// AWS_PROFILE in its kubeconfig), not the file; the file is read by
    /// ecr-credential-provider and pods mounting `/eks-hybrid/.aws`.
    IamRa,
}

impl FileReader {
    /// What a missing, incomplete or expired file breaks.
    pub fn impact(self) -> &'static str {
        match self {
            FileReader::Ssm => "the kubelet (aws-iam-authenticator) cannot authenticate to the cluster",
            FileReader::IamRa => "ECR image pulls (ecr-credential-provider) and pods mounting /eks-hybrid/.aws get no valid credentials (the kubelet itself authenticates with aws_signing_helper credential-process)",
        }
    }
}

/// The verdict on a provider's AWS credentials file. `refresher` names
/// what rewrites it; `reader` who reads it.
pub fn credentials_file(
    path: &str,
    found: &CredFile,
    ages: Ages,
    refresher: &str,
    reader: FileReader,
) -> Check {
    let id = "credentials-file";
    let impact = reader.impact();
    match found {
        CredFile::Missing => Check::new(
            DOMAIN,
            id,
            Status::Fail,
            format!("the AWS credentials file {path} is missing: {impact}"),
        )
        .with_remedy(format!(
            "{refresher} writes it: check that it runs (systemctl status) and its journal"
        )),
        CredFile::Unreadable(e) => Check::new(
            DOMAIN,
            id,
            Status::Fail,
            format!("cannot read the AWS credentials file {path}: {e}"),
        ),
        CredFile::Read { missing, age } => {
            let mins = age.as_secs() / 60;
            if !missing.is_empty() {
                return Check::new(
                    DOMAIN,
                    id,
                    Status::Fail,
                    format!(
                        "the AWS credentials file {path} has no {} in its [default] profile: {impact}",
                        missing.join(", ")
                    ),
                )
                .with_remedy(format!("{refresher} rewrites it: restart it and watch its journal"));
            }
            if *age > ages.fail {
                Check::new(
                    DOMAIN,
                    id,
                    Status::Fail,
                    format!(
                        "the AWS credentials file {path} was last refreshed {mins} minutes ago: the credentials in it have expired (older than {}): {impact}",
                        threshold(ages.fail)
                    ),
                )
                .with_remedy(format!("{refresher} has stopped refreshing: check that it runs and reaches its endpoint (journalctl)"))
            } else if *age > ages.warn {
                Check::new(
                    DOMAIN,
                    id,
                    Status::Warn,
                    format!(
                        "the AWS credentials file {path} was last refreshed {mins} minutes ago (a refresh is overdue after {})",
                        threshold(ages.warn)
                    ),
                )
                .with_remedy(format!("{refresher} should have refreshed it by now: check its journal"))
            } else {
                Check::pass(
                    DOMAIN,
                    id,
                    format!("the AWS credentials file {path} has a complete [default] profile, refreshed {mins} minutes ago"),
                )
            }
        }
    }
}

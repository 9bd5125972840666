//! Certificate files under watch: reading them, their validity checks and
//! expiry series; the kubelet's certificates against the cluster CA;
//! registry client certificates with their keys; the agent's own web
//! certificate.

use super::checks::{self, Kind};
use super::metrics::{CertLabels, KindLabels, ProviderLabels};
use super::DOMAIN;
use crate::check::{Check, Status};
use crate::host::Host;
use crate::model::nodeconfig::NodeConfig;
use crate::pki::{self, Cert};
use std::path::PathBuf;

/// The kubelet's current certificates (`--cert-dir`, the default nodeadm
/// keeps), symlinks to the latest rotated file holding certificate and key.
pub const KUBELET_SERVING: &str = "/var/lib/kubelet/pki/kubelet-server-current.pem";
pub const KUBELET_CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// Where nodeadm writes the cluster CA for the kubelet
/// (aws/eks-hybrid `internal/kubelet/cert.go`).
pub const CLUSTER_CA_FILE: &str = "/etc/kubernetes/pki/ca.crt";

/// What one run found: checks, and the series to export at its end (so a
/// scrape during a run sees the previous set whole).
#[derive(Debug, Default)]
pub struct Findings {
    pub checks: Vec<Check>,
    pub expiry: Vec<(CertLabels, f64)>,
    pub chain_ok: Vec<(KindLabels, i64)>,
    pub key_match: Vec<(CertLabels, i64)>,
    pub file_age: Vec<(ProviderLabels, f64)>,
}

impl Findings {
    pub fn expiry(&mut self, kind: Kind, registry: &str, certs: &[Cert]) {
        if let Some(c) = checks::earliest(certs) {
            self.expiry
                .push((labels(kind, registry), c.not_after as f64));
        }
    }
}

pub fn labels(kind: Kind, registry: &str) -> CertLabels {
    CertLabels {
        kind: kind.as_str(),
        registry: registry.into(),
    }
}

/// A certificate file read.
#[derive(Debug)]
pub enum Read {
    Missing,
    /// Why not (names the file; never its contents).
    Bad(String),
    Certs(Vec<Cert>),
}

pub fn read(host: &Host, path: &str) -> Read {
    parse(path, &host.read_pem_file(path))
}

/// The certificates in what reading `path` gave (read once by a caller
/// that needs the bytes for more, such as the key beside them).
pub fn parse(path: &str, read: &Result<Vec<u8>, crate::host::SmallFileError>) -> Read {
    match read {
        Err(e) if e.is_not_found() => Read::Missing,
        Err(e) => Read::Bad(e.to_string()),
        Ok(bytes) => match pki::certificates(bytes) {
            Ok(c) => Read::Certs(c),
            Err(e) => Read::Bad(format!("{path} {e}")),
        },
    }
}

/// The common watch of one certificate file: read it, export its expiry,
/// judge its validity.
#[derive(Debug)]
pub struct Watch<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub registry: &'a str,
    pub path: &'a str,
    pub now: i64,
    pub warn_days: u32,
}

impl Watch<'_> {
    /// The certificates (for further checks) and the validity check; or
    /// the check to give instead (n/a when the file does not exist).
    pub fn run(&self, host: &Host, f: &mut Findings) -> Result<(Vec<Cert>, Check), Check> {
        self.judge(read(host, self.path), f)
    }

    /// As [`Watch::run`], on a file already read.
    pub fn judge(&self, read: Read, f: &mut Findings) -> Result<(Vec<Cert>, Check), Check> {
        match read {
            Read::Missing => Err(Check::new(
                DOMAIN,
                self.id,
                Status::NotApplicable,
                format!("no {} at {}", self.kind.what(), self.path),
            )),
            Read::Bad(e) => Err(Check::new(
                DOMAIN,
                self.id,
                Status::Fail,
                format!("cannot use the {}: {e}", self.kind.what()),
            )
            .with_remedy(self.kind.unusable(self.path))),
            Read::Certs(certs) => {
                f.expiry(self.kind, self.registry, &certs);
                let check = checks::bundle_validity(
                    self.id,
                    self.kind,
                    self.path,
                    &certs,
                    self.now,
                    self.warn_days,
                );
                Ok((certs, check))
            }
        }
    }
}

/// The cluster CA: the NodeConfig's `spec.cluster.certificateAuthority`
/// (base64 of PEM, decoded as nodeadm does), else the file nodeadm wrote
/// from it. `(where, certs)`; the error says what is wrong with `where`.
pub fn cluster_ca(
    host: &Host,
    nc: Option<&NodeConfig>,
) -> Option<(String, Result<Vec<Cert>, String>)> {
    if let Some(pem) = nc.and_then(NodeConfig::cluster_ca_pem) {
        let what = "spec.cluster.certificateAuthority".to_owned();
        let certs = pem
            .map_err(|e| e.to_string())
            .and_then(|pem| pki::certificates(&pem).map_err(|e| format!("{what} {e}")));
        return Some((what, certs));
    }
    match read(host, CLUSTER_CA_FILE) {
        Read::Missing => None,
        Read::Bad(e) => Some((CLUSTER_CA_FILE.to_owned(), Err(e))),
        Read::Certs(c) => Some((CLUSTER_CA_FILE.to_owned(), Ok(c))),
    }
}

/// The cluster CA's own expiry; returns the roots to chain the kubelet's
/// certificates to.
pub fn check_cluster_ca(
    host: &Host,
    nc: Option<&NodeConfig>,
    now: i64,
    warn_days: u32,
    f: &mut Findings,
) -> Vec<Cert> {
    let id = "cluster-ca";
    match cluster_ca(host, nc) {
        None => {
            f.checks.push(Check::not_applicable(DOMAIN, id, format!("no cluster CA yet: neither a NodeConfig with spec.cluster.certificateAuthority nor {CLUSTER_CA_FILE}")));
            Vec::new()
        }
        Some((_, Err(e))) => {
            f.checks.push(
                Check::new(
                    DOMAIN,
                    id,
                    Status::Fail,
                    format!("the cluster CA cannot be used: {e}"),
                )
                .with_remedy(Kind::ClusterCa.unusable(CLUSTER_CA_FILE)),
            );
            Vec::new()
        }
        Some((what, Ok(certs))) => {
            f.expiry(Kind::ClusterCa, "", &certs);
            f.checks.push(checks::bundle_validity(
                id,
                Kind::ClusterCa,
                &what,
                &certs,
                now,
                warn_days,
            ));
            certs
        }
    }
}

/// The kubelet's serving and client certificates: validity, and chain to
/// the cluster CA (`roots`).
pub fn check_kubelet(host: &Host, roots: &[Cert], now: i64, warn_days: u32, f: &mut Findings) {
    for (id, kind, path, absent) in [
        ("kubelet/serving", Kind::KubeletServing, KUBELET_SERVING,
         "the kubelet writes it once its serving CSR is approved (after nodeadm init)"),
        ("kubelet/client", Kind::KubeletClient, KUBELET_CLIENT,
         "hybrid nodes authenticate with aws-iam-authenticator; the kubelet has a client certificate only with TLS bootstrapping"),
    ] {
        let w = Watch { id, kind, registry: "", path, now, warn_days };
        // Read once: certificate and key are judged from the same bytes, so
        // a rotation between two reads cannot pair an old certificate with
        // a new key.
        let bytes = host.read_pem_file(path);
        let (certs, check) = match w.judge(parse(path, &bytes), f) {
            Ok(x) => x,
            Err(c) if c.status == Status::NotApplicable => {
                f.checks.push(Check::not_applicable(DOMAIN, id, format!("no {} at {path}: {absent}", kind.what())));
                continue;
            }
            Err(c) => {
                f.checks.push(c);
                continue;
            }
        };
        let key = bytes.as_deref().unwrap_or_default();
        let check = match kubelet_key(id, kind, path, &certs[0], key, f) {
            Some(bad) => checks::worst(check, bad),
            None => {
                let mut c = check;
                c.summary.push_str("; its key in the file matches");
                c
            }
        };
        let Some(ca) = roots.first() else {
            let mut c = check;
            c.summary.push_str(" (chain not checked: the cluster CA is not known)");
            f.checks.push(c);
            continue;
        };
        let ok = pki::chains_to(&certs[0], &certs[1..], roots);
        f.chain_ok.push((KindLabels { kind: kind.as_str() }, i64::from(ok)));
        f.checks.push(if ok {
            let mut c = check;
            c.summary.push_str("; chains to the cluster CA");
            c
        } else {
            checks::worst(checks::stale_chain(id, kind, path, &certs[0], ca), check)
        });
    }
}

/// `[[registry]]` client certificates (`clients`: host, client_cert,
/// client_key): validity, and the key against the certificate.
pub fn check_registry_clients(
    root: &Host,
    clients: &[(String, PathBuf, Option<PathBuf>)],
    now: i64,
    warn_days: u32,
    f: &mut Findings,
) {
    for (host, cert, key) in clients {
        let id = format!("registry-client/{host}");
        let path = cert.display().to_string();
        let w = Watch {
            id: &id,
            kind: Kind::RegistryClient,
            registry: host,
            path: &path,
            now,
            warn_days,
        };
        let (certs, mut check) = match w.run(root, f) {
            Ok(x) => x,
            Err(c) if c.status == Status::NotApplicable => {
                f.checks.push(Check::new(DOMAIN, id, Status::Fail, format!("registry {host}: client_cert {path} does not exist"))
                        .with_remedy("install the client certificate, or remove client_cert/client_key from the [[registry]] entry"));
                continue;
            }
            Err(c) => {
                f.checks.push(c);
                continue;
            }
        };
        if let Some(key) = key {
            let shown = key.display();
            let labels = labels(Kind::RegistryClient, host);
            let other = match root.read_pem_file(key) {
                Err(e) => Some(Check::new(
                    DOMAIN,
                    id.clone(),
                    Status::Fail,
                    format!("registry {host}: cannot compare the client key: {e}"),
                )),
                Ok(b) => match crate::pki::key_matches(&certs[0], &b) {
                    Ok(true) => {
                        f.key_match.push((labels, 1));
                        None
                    }
                    Ok(false) => {
                        f.key_match.push((labels, 0));
                        Some(Check::new(DOMAIN, id.clone(), Status::Fail, format!("registry {host}: client_key {shown} does not belong to client_cert {path}"))
                                .with_remedy("install the key the client certificate was issued for"))
                    }
                    Err(e) if e.is_unsupported() => Some(checks::key_not_compared(
                        &id,
                        &format!("registry {host}: client_key {shown}"),
                        &e,
                    )),
                    Err(e) => Some(Check::new(
                        DOMAIN,
                        id.clone(),
                        Status::Fail,
                        format!("registry {host}: cannot compare the client key: {shown} {e}"),
                    )),
                },
            };
            if let Some(other) = other {
                check = checks::worst(check, other);
            }
        }
        f.checks.push(check);
    }
}

/// The agent's own web TLS certificate, named by the web config
/// (`web_config`, empty when none).
pub fn check_web(root: &Host, web_config: &str, now: i64, warn_days: u32, f: &mut Findings) {
    if web_config.is_empty() {
        return;
    }
    let path = std::path::Path::new(web_config);
    let cert = match crate::metrics::webconfig::cert_file(root, path) {
        Ok(c) => c,
        Err(e) => {
            f.checks.push(Check::new(
                DOMAIN,
                "web",
                Status::Unknown,
                format!("cannot read the web config: {e}"),
            ));
            return;
        }
    };
    let Some(cert) = cert else {
        f.checks.push(Check::not_applicable(
            DOMAIN,
            "web",
            "the web config sets no TLS: plain HTTP",
        ));
        return;
    };
    let path = cert.display().to_string();
    let w = Watch {
        id: "web",
        kind: Kind::Web,
        registry: "",
        path: &path,
        now,
        warn_days,
    };
    let check = match w.run(root, f) {
        Ok((_, c)) | Err(c) => c,
    };
    f.checks.push(check);
}

/// The private key beside the certificate in a kubelet `*-current.pem`
/// (the kubelet's certificate manager writes both into one file), from the
/// bytes the certificate was read from: `None` when it belongs to the
/// certificate, else the check to give. No part of the key reaches the
/// check.
fn kubelet_key(
    id: &str,
    kind: Kind,
    path: &str,
    leaf: &Cert,
    file: &[u8],
    f: &mut Findings,
) -> Option<Check> {
    let problem = match pki::key_matches(leaf, file) {
        Ok(true) => {
            f.key_match.push((labels(kind, ""), 1));
            return None;
        }
        Ok(false) => {
            f.key_match.push((labels(kind, ""), 0));
            "the private key in the file does not belong to the certificate".to_owned()
        }
        Err(e) if e.is_unsupported() => {
            return Some(checks::key_not_compared(
                id,
                &format!("the file {path}"),
                &e,
            ));
        }
        Err(e) => format!("the file {e}"),
    };
    Some(checks::kubelet_key(id, kind, path, leaf, &problem))
}

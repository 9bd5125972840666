//! The credential provider the NodeConfig names: the SSM hybrid activation
//! or IAM Roles Anywhere, each with the files and services nodeadm v1.0.20
//! sets up for it (aws/eks-hybrid `internal/ssm`, `internal/iamrolesanywhere`).

use super::awsfiles::{self, parse_aws_config};
use super::certs::{labels, Findings, Watch};
use super::checks::{self, Ages, CredFile, FileReader, Kind};
use super::metrics::ProviderLabels;
use super::ssm;
use super::DOMAIN;
use crate::check::{Check, Status};
use crate::edge::systemctl::{ServiceManager, UnitState};
use crate::host::Host;
use crate::model::nodeconfig::IamRolesAnywhere;
use crate::model::Phase;
use std::time::SystemTime;

/// The signing helper's unit and file (`internal/iamrolesanywhere/daemon.go`,
/// `install.go`, `aws_config.go`).
pub const SIGNING_HELPER_UNIT: &str = "aws_signing_helper_update";
pub const SIGNING_HELPER_UNIT_FILE: &str = "/etc/systemd/system/aws_signing_helper_update.service";
pub const SIGNING_HELPER_BIN: &str = "/usr/local/bin/aws_signing_helper";
pub const EKS_HYBRID_CREDENTIALS: &str = "/eks-hybrid/.aws/credentials";
pub const DEFAULT_AWS_CONFIG: &str = "/etc/aws/hybrid/config";

/// What the provider checks run against.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub host: &'a Host,
    pub services: &'a dyn ServiceManager,
    pub phase: Option<Phase>,
    pub now: SystemTime,
    pub now_secs: i64,
    pub warn_days: u32,
    pub ssm_ages: Ages,
    pub iam_ra_ages: Ages,
}

impl Ctx<'_> {
    /// `nodeadm init` has run (or the lifecycle domain has not said yet,
    /// when the files decide).
    fn initialized(&self) -> bool {
        self.phase.is_none_or(|p| p >= Phase::Initialized)
    }

    fn service(&self, id: &str, unit: &str, what: &str, remedy: &str) -> Check {
        match self.services.state(unit) {
            Ok(UnitState::NotThisHost) => Check::not_applicable(
                DOMAIN,
                id,
                format!("{unit} not asked: the checked root is not this host's"),
            ),
            Ok(s) if s.is_active() => Check::pass(DOMAIN, id, format!("{what} ({unit}) is active")),
            Ok(s) => {
                let state = match s {
                    UnitState::Loaded { active, sub } => format!("{active} ({sub})"),
                    _ => "not loaded".to_owned(),
                };
                let status = if self.initialized() {
                    Status::Fail
                } else {
                    Status::NotApplicable
                };
                Check::new(DOMAIN, id, status, format!("{what} ({unit}) is {state}"))
                    .with_remedy(remedy.to_owned())
            }
            Err(e) => Check::new(
                DOMAIN,
                id,
                Status::Unknown,
                format!("cannot ask systemd about {unit}: {e}"),
            ),
        }
    }

    fn credentials_file(
        &self,
        f: &mut Findings,
        provider: &'static str,
        path: &str,
        ages: Ages,
        refresher: &str,
        reader: FileReader,
    ) {
        let found = awsfiles::read_credentials(self.host, path, self.now);
        if let CredFile::Read { age, .. } = &found {
            f.file_age
                .push((ProviderLabels { provider }, age.as_secs_f64()));
        }
        f.checks.push(if found == CredFile::Missing && !self.initialized() {
            Check::not_applicable(DOMAIN, "credentials-file", format!("no AWS credentials file at {path} yet: {refresher} writes it after nodeadm init"))
        } else {
            checks::credentials_file(path, &found, ages, refresher, reader)
        });
    }
}

/// The SSM hybrid activation: agent installed and running, registered in
/// the cluster's region, and the credentials file it refreshes.
pub fn check_ssm(cx: &Ctx<'_>, region: &str, credentials_link: bool, f: &mut Findings) {
    let install = ssm::installed(cx.host);
    f.checks.push(match install {
        Some(i) => Check::pass(
            DOMAIN,
            "ssm/agent",
            format!("the SSM agent is installed ({}, {})", i.how, i.binary),
        ),
        None => {
            let status = if cx.phase.is_some_and(|p| p < Phase::Installed) {
                Status::NotApplicable
            } else {
                Status::Fail
            };
            Check::new(
                DOMAIN,
                "ssm/agent",
                status,
                format!(
                    "the SSM agent is not installed (neither {} nor {})",
                    ssm::INSTALLS[0].binary,
                    ssm::INSTALLS[1].binary
                ),
            )
            .with_remedy("nodeadm install <version> --credential-provider ssm installs it")
        }
    });
    let unit = ssm::unit(cx.host);
    f.checks.push(cx.service(
        "ssm/service",
        unit,
        "the SSM agent",
        &format!(
            "systemctl restart {unit}; journalctl -u {unit} (nodeadm init registers and starts it)"
        ),
    ));
    f.checks.push(match ssm::registration(cx.host) {
        Err(e) if e.is_not_found() => {
            let status = if cx.initialized() { Status::Fail } else { Status::NotApplicable };
            Check::new(DOMAIN, "ssm/registration", status, format!("the SSM agent is not registered (no {})", ssm::REGISTRATION))
                .with_remedy("nodeadm init registers it with spec.hybrid.ssm activationCode/activationId; an expired activation must be recreated (aws ssm create-activation)")
        }
        Err(e) => Check::new(DOMAIN, "ssm/registration", Status::Fail, format!("cannot read the SSM registration: {e}")),
        Ok(r) if r.managed_instance_id.is_empty() => Check::new(DOMAIN, "ssm/registration", Status::Fail, format!("{} has no ManagedInstanceID", ssm::REGISTRATION)),
        Ok(r) if !region.is_empty() && r.region != region => Check::new(
            DOMAIN,
            "ssm/registration",
            Status::Fail,
            format!("the SSM agent is registered as {} in {}, but the cluster is in {region}", r.managed_instance_id, r.region),
        )
        .with_remedy("create the hybrid activation in the cluster's region, then nodeadm uninstall and init again"),
        Ok(r) => Check::pass(DOMAIN, "ssm/registration", format!("registered as managed instance {} in {}", r.managed_instance_id, r.region)),
    });
    let path =
        awsfiles::kubelet_credentials_file(cx.host).unwrap_or_else(|| ssm::CREDENTIALS.to_owned());
    cx.credentials_file(
        f,
        "ssm",
        &path,
        cx.ssm_ages,
        &format!("the SSM agent ({unit})"),
        FileReader::Ssm,
    );
    if credentials_link {
        f.checks.push(check_ssm_link(cx));
    }
}

/// With `enableCredentialsFile`, nodeadm links `/eks-hybrid/.aws` to
/// `/root/.aws` (`internal/ssm/daemon.go`, `PostLaunch`), so that pods
/// mounting `/eks-hybrid/.aws/credentials` read what the SSM agent refreshes.
fn check_ssm_link(cx: &Ctx<'_>) -> Check {
    let id = "ssm/credentials-link";
    let link = "/eks-hybrid/.aws";
    match std::fs::symlink_metadata(cx.host.path(link)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let status = if cx.initialized() { Status::Fail } else { Status::NotApplicable };
            Check::new(DOMAIN, id, status, format!("enableCredentialsFile is on but {link} does not exist"))
                .with_remedy("rerun nodeadm init: it links /eks-hybrid/.aws to /root/.aws")
        }
        Err(e) => Check::new(DOMAIN, id, Status::Unknown, format!("cannot inspect {link}: {e}")),
        Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(cx.host.path(link)) {
            Ok(t) if t == std::path::Path::new("/root/.aws") => {
                Check::pass(DOMAIN, id, format!("{link} links to /root/.aws, where the SSM agent refreshes the credentials"))
            }
            Ok(t) => Check::new(DOMAIN, id, Status::Warn, format!("{link} links to {}, not /root/.aws where the SSM agent refreshes the credentials", t.display()))
                .with_remedy("rerun nodeadm init: it links /eks-hybrid/.aws to /root/.aws"),
            Err(e) => Check::new(DOMAIN, id, Status::Unknown, format!("cannot read the link {link}: {e}")),
        },
        Ok(_) => Check::new(DOMAIN, id, Status::Warn, format!("{link} is not nodeadm's link to /root/.aws: pods reading {link}/credentials get a copy the SSM agent never refreshes"))
            .with_remedy("remove it and rerun nodeadm init, which links it to /root/.aws"),
    }
}

/// IAM Roles Anywhere: the certificate and key, the AWS config nodeadm
/// wrote, and (with `enableCredentialsFile`) the signing helper service and
/// the credentials file it refreshes.
pub fn check_iam_ra(
    cx: &Ctx<'_>,
    iam: &IamRolesAnywhere,
    credentials_file: bool,
    f: &mut Findings,
) {
    let cert_path = iam.certificate_path();
    let key_path = iam.private_key_path();
    let w = Watch {
        id: "iam-ra/certificate",
        kind: Kind::IamRa,
        registry: "",
        path: cert_path,
        now: cx.now_secs,
        warn_days: cx.warn_days,
    };
    match w.run(cx.host, f) {
        Err(c) if c.status == Status::NotApplicable => {
            f.checks.push(Check::new(DOMAIN, "iam-ra/certificate", Status::Fail, format!("no IAM Roles Anywhere certificate at {cert_path}: nodeadm init and the signing helper need it"))
                .with_remedy("install the node's certificate (issued by the trust anchor's CA, CN = nodeName) there, or set spec.hybrid.iamRolesAnywhere.certificatePath"));
            f.checks.push(Check::not_applicable(
                DOMAIN,
                "iam-ra/key",
                "no certificate to compare the key with",
            ));
        }
        Err(c) => {
            f.checks.push(c);
            f.checks.push(Check::not_applicable(
                DOMAIN,
                "iam-ra/key",
                "no certificate to compare the key with",
            ));
        }
        Ok((certs, validity)) => {
            let leaf = &certs[0];
            let cn = leaf.common_name.as_deref().unwrap_or("");
            let node = iam.node_name.as_str();
            f.checks.push(if !node.is_empty() && cn != node {
                checks::worst(
                    Check::new(DOMAIN, "iam-ra/certificate", Status::Fail, format!("the IAM Roles Anywhere certificate {cert_path} has CN {cn:?} but nodeName is {node:?}: the role session name must equal the certificate's CN"))
                        .with_remedy("issue the certificate with CN = nodeName, or set nodeName to its CN (the EKS hybrid nodes role's trust policy requires sts:RoleSessionName = x509Subject/CN)"),
                    validity,
                )
            } else {
                validity
            });
            let key = check_key(cx.host, leaf, key_path, f);
            f.checks.push(key);
        }
    }
    check_aws_config(cx, iam, f);
    if !credentials_file {
        f.checks.push(Check::not_applicable(DOMAIN, "iam-ra/signing-helper", "enableCredentialsFile is off: the kubelet runs aws_signing_helper credential-process on demand (no refresh service)"));
        return;
    }
    f.checks.push(if cx.host.exists(SIGNING_HELPER_UNIT_FILE) || !cx.initialized() {
        cx.service("iam-ra/signing-helper", SIGNING_HELPER_UNIT, "the IAM Roles Anywhere signing helper", "systemctl restart aws_signing_helper_update; journalctl -u aws_signing_helper_update")
    } else {
        Check::new(DOMAIN, "iam-ra/signing-helper", Status::Fail, format!("enableCredentialsFile is on but {SIGNING_HELPER_UNIT_FILE} is missing"))
            .with_remedy("rerun nodeadm init: it writes and starts the aws_signing_helper_update service")
    });
    // Always this path: the helper unit writes it (`--credentials-file`,
    // `internal/iamrolesanywhere/daemon.go`) and nodeadm never points the
    // kubelet at it, which authenticates through credential_process.
    cx.credentials_file(
        f,
        "iam-ra",
        EKS_HYBRID_CREDENTIALS,
        cx.iam_ra_ages,
        "aws_signing_helper update (aws_signing_helper_update.service)",
        FileReader::IamRa,
    );
}

fn check_key(host: &Host, leaf: &crate::pki::Cert, key_path: &str, f: &mut Findings) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let id = "iam-ra/key";
    let bytes = match host.read_pem_file(key_path) {
        Err(e) if e.is_not_found() => {
            return Check::new(DOMAIN, id, Status::Fail, format!("no private key at {key_path}"))
                .with_remedy("install the certificate's private key there (mode 0600), or set spec.hybrid.iamRolesAnywhere.privateKeyPath");
        }
        Err(e) => {
            return Check::new(
                DOMAIN,
                id,
                Status::Fail,
                format!("cannot read the private key: {e}"),
            )
        }
        Ok(b) => b,
    };
    let matched = crate::pki::key_matches(leaf, &bytes);
    drop(bytes);
    match matched {
        Err(e) if e.is_unsupported() => {
            checks::key_not_compared(id, &format!("the private key {key_path}"), &e)
        }
        Err(e) => Check::new(
            DOMAIN,
            id,
            Status::Fail,
            format!("the private key {key_path} {e}"),
        ),
        Ok(false) => {
            f.key_match.push((labels(Kind::IamRa, ""), 0));
            Check::new(DOMAIN, id, Status::Fail, format!("the private key {key_path} does not belong to the certificate {}", leaf.subject))
                .with_remedy("install the key the certificate was issued for (the signing helper cannot sign with this one)")
        }
        Ok(true) => {
            f.key_match.push((labels(Kind::IamRa, ""), 1));
            let mode = std::fs::metadata(host.path(key_path))
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o004 != 0 {
                Check::new(DOMAIN, id, Status::Warn, format!("the private key {key_path} matches the certificate but every user can read it (mode {:o})", mode & 0o777))
                    .with_remedy(format!("chmod 600 {key_path}"))
            } else {
                Check::pass(
                    DOMAIN,
                    id,
                    format!("the private key {key_path} matches the certificate"),
                )
            }
        }
    }
}

fn check_aws_config(cx: &Ctx<'_>, iam: &IamRolesAnywhere, f: &mut Findings) {
    let id = "iam-ra/aws-config";
    let path = if iam.aws_config_path.is_empty() {
        DEFAULT_AWS_CONFIG
    } else {
        iam.aws_config_path.as_str()
    };
    let bytes = match cx.host.read_small(path, 256 * 1024) {
        Err(e) if e.is_not_found() => {
            let status = if cx.initialized() {
                Status::Fail
            } else {
                Status::NotApplicable
            };
            f.checks.push(
                Check::new(
                    DOMAIN,
                    id,
                    status,
                    format!("no AWS config at {path}: nodeadm init writes it"),
                )
                .with_remedy("rerun nodeadm init"),
            );
            return;
        }
        Err(e) => {
            f.checks.push(Check::new(
                DOMAIN,
                id,
                Status::Fail,
                format!("cannot read the AWS config: {e}"),
            ));
            return;
        }
        Ok(b) => b,
    };
    let c = parse_aws_config(&String::from_utf8_lossy(&bytes));
    let mut problems = Vec::new();
    let mut stale = false;
    if !c.has_default {
        problems.push("has no [profile default]".to_owned());
    }
    match c.program.as_deref() {
        None => problems.push("has no credential_process in [profile default]".to_owned()),
        Some(p) if !cx.host.exists(p) => problems.push(format!("runs {p}, which does not exist")),
        Some(_) => {}
    }
    for (flag, named, want) in [
        (
            "--certificate",
            c.certificate.as_deref(),
            iam.certificate_path(),
        ),
        (
            "--private-key",
            c.private_key.as_deref(),
            iam.private_key_path(),
        ),
    ] {
        match named {
            None => problems.push(format!("gives no {flag}")),
            Some(p) if !cx.host.exists(p) => {
                problems.push(format!("gives {flag} {p}, which does not exist"))
            }
            Some(p) if p != want => {
                stale = true;
                problems.push(format!("gives {flag} {p}, but the NodeConfig says {want}"));
            }
            Some(_) => {}
        }
    }
    f.checks.push(if problems.is_empty() {
        Check::pass(DOMAIN, id, format!("the AWS config {path} runs the signing helper with the NodeConfig's certificate and key"))
    } else {
        let status = if stale && problems.len() == 1 { Status::Warn } else { Status::Fail };
        Check::new(DOMAIN, id, status, format!("the AWS config {path} {}", problems.join("; ")))
            .with_remedy("rerun nodeadm init: it rewrites the config from the NodeConfig")
    });
}

/// The provider as nodeadm left it on the host, for when no good NodeConfig
/// is loaded: the file is often removed after init (it holds the activation
/// code), and nodeadm's own validator rejects it once the IAM Roles
/// Anywhere certificate has expired, which is when this domain matters
/// most. IAM Roles Anywhere from nodeadm's AWS config (its
/// `credential_process` names the certificate, key and node name); SSM
/// from the registration or an installed agent.
pub fn from_host(cx: &Ctx<'_>, f: &mut Findings) -> bool {
    if let Ok(bytes) = cx.host.read_small(DEFAULT_AWS_CONFIG, 256 * 1024) {
        let c = parse_aws_config(&String::from_utf8_lossy(&bytes));
        let iam = IamRolesAnywhere {
            node_name: c.session_name.unwrap_or_default(),
            certificate_path: c.certificate.unwrap_or_default(),
            private_key_path: c.private_key.unwrap_or_default(),
            ..IamRolesAnywhere::default()
        };
        f.checks.push(Check::pass(DOMAIN, "provider", format!("credential provider: IAM Roles Anywhere (no good NodeConfig loaded: read from nodeadm's {DEFAULT_AWS_CONFIG})")));
        check_iam_ra(cx, &iam, cx.host.exists(SIGNING_HELPER_UNIT_FILE), f);
        return true;
    }
    if cx.host.exists(ssm::REGISTRATION) || ssm::installed(cx.host).is_some() {
        f.checks.push(Check::pass(DOMAIN, "provider", "credential provider: SSM hybrid activation (no good NodeConfig loaded: found nodeadm's SSM setup)"));
        check_ssm(cx, "", cx.host.exists("/eks-hybrid/.aws"), f);
        return true;
    }
    false
}

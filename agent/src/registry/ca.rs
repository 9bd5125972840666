//! CA intake: what the agent accepts as a registry CA, and why it refuses the
//! rest. Only certificates, in PEM (DER is converted); it must be a CA (or a
//! self-signed certificate, with a warning), currently valid, signed without
//! MD5/SHA-1, with an RSA key of at least 2048 bits or an EC key of at least
//! 256 bits.

use std::time::{Duration, SystemTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Warn this long before a CA expires.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// An accepted CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ca {
    /// The certificate(s), re-encoded as PEM.
    pub pem: String,
    /// SHA-256 of the first certificate's DER, lowercase hex.
    pub fingerprint: String,
    /// Earliest `notAfter` among the certificates, in Unix seconds.
    pub not_after: i64,
    /// Acceptable but worth saying (self-signed leaf, close to expiry, DER).
    pub warnings: Vec<String>,
}

impl Ca {
    /// A short, file-name-safe identifier (first 16 hex digits).
    pub fn short_id(&self) -> &str {
        &self.fingerprint[..16.min(self.fingerprint.len())]
    }
}

const WEAK_SIGNATURES: [(&str, &str); 5] = [
    ("1.2.840.113549.1.1.4", "MD5 with RSA"),
    ("1.2.840.113549.1.1.5", "SHA-1 with RSA"),
    ("1.2.840.10045.4.1", "ECDSA with SHA-1"),
    ("1.2.840.10040.4.3", "DSA with SHA-1"),
    ("1.3.14.3.2.29", "SHA-1 with RSA (OIW)"),
];

/// Why a CA was not accepted. `origin`/`which` name the file or setting
/// (and the certificate, in a bundle).
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{origin} contains a private key: give only the CA certificate, and keep the key off this host")]
    PrivateKey { origin: String },
    #[error("{origin} is not valid PEM: {reason}")]
    Pem { origin: String, reason: String },
    #[error("{origin} holds a {label:?} PEM block; only CERTIFICATE blocks are accepted")]
    NotCertificate { origin: String, label: String },
    #[error("{origin} is neither a PEM nor a DER X.509 certificate")]
    Unrecognised { origin: String },
    #[error("{origin} holds no certificate")]
    Empty { origin: String },
    #[error("{which} is not a valid X.509 certificate: {reason}")]
    X509 { which: String, reason: String },
    /// A well-formed certificate that cannot serve as the registry's CA.
    #[error("{which} ({subject}) {problem}")]
    Refused {
        which: String,
        subject: String,
        problem: CaProblem,
    },
}

/// What disqualifies a certificate as a CA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaProblem {
    #[error("is not a CA certificate (basicConstraints CA is not true): give the CA that issued the registry's certificate")]
    NotCa,
    #[error("is a CA whose key usage does not allow keyCertSign")]
    NoKeyCertSign,
    #[error("expired on {0}")]
    Expired(String),
    #[error("is not valid before {0}: check the host clock")]
    NotYetValid(String),
    #[error("is signed with {0}, which is no longer accepted: reissue it with SHA-256 or better")]
    WeakSignature(&'static str),
    #[error("has a {0}-bit RSA key; at least 2048 bits are required")]
    SmallRsaKey(usize),
    #[error("has a {0}-bit EC key; at least P-256 is required")]
    SmallEcKey(usize),
}

/// Checks `bytes` (a file's content or inline PEM) and returns the CA.
/// `origin` names it in messages.
pub fn intake(bytes: &[u8], origin: &str, now: SystemTime) -> Result<Ca, CaError> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("PRIVATE KEY-----") {
        return Err(CaError::PrivateKey {
            origin: origin.to_owned(),
        });
    }
    let mut warnings = Vec::new();
    let ders: Vec<Vec<u8>> = if text.contains("-----BEGIN ") {
        let mut out = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| CaError::Pem {
                origin: origin.to_owned(),
                reason: e.to_string(),
            })?;
            if pem.label != "CERTIFICATE" {
                return Err(CaError::NotCertificate {
                    origin: origin.to_owned(),
                    label: pem.label,
                });
            }
            out.push(pem.contents);
        }
        out
    } else if bytes.first() == Some(&0x30) {
        warnings.push(format!("{origin} is DER; the agent writes it as PEM"));
        vec![bytes.to_vec()]
    } else {
        return Err(CaError::Unrecognised {
            origin: origin.to_owned(),
        });
    };
    if ders.is_empty() {
        return Err(CaError::Empty {
            origin: origin.to_owned(),
        });
    }
    let now_secs = i64::try_from(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    )
    .unwrap_or(i64::MAX);
    let mut not_after = i64::MAX;
    for (i, der) in ders.iter().enumerate() {
        let which = if ders.len() == 1 {
            origin.to_owned()
        } else {
            format!("{origin} (certificate {})", i + 1)
        };
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| CaError::X509 {
            which: which.clone(),
            reason: e.to_string(),
        })?;
        check_cert(&cert, &which, now_secs, &mut warnings)?;
        not_after = not_after.min(cert.validity().not_after.timestamp());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &ders[0]);
    Ok(Ca {
        pem: ders.iter().map(|d| to_pem(d)).collect(),
        fingerprint: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        not_after,
        warnings,
    })
}

fn check_cert(
    cert: &X509Certificate<'_>,
    which: &str,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<(), CaError> {
    let subject = cert.subject().to_string();
    let refuse = |problem: CaProblem| CaError::Refused {
        which: which.to_owned(),
        subject: subject.clone(),
        problem,
    };
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let can_sign = cert
        .key_usage()
        .ok()
        .flatten()
        .is_none_or(|ku| ku.value.key_cert_sign());
    let self_signed = cert.subject() == cert.issuer();
    if !(is_ca && can_sign) {
        if self_signed {
            warnings.push(format!(
                "{which} ({subject}) is a self-signed certificate, not a CA: it works for this one server, \
                 but a CA (basicConstraints CA=true, keyCertSign) survives certificate renewals"
            ));
        } else if !is_ca {
            return Err(refuse(CaProblem::NotCa));
        } else {
            return Err(refuse(CaProblem::NoKeyCertSign));
        }
    }
    let validity = cert.validity();
    let (nb, na) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now > na {
        return Err(refuse(CaProblem::Expired(fmt_ts(na))));
    }
    if now < nb {
        return Err(refuse(CaProblem::NotYetValid(fmt_ts(nb))));
    }
    let left = na - now;
    let window = i64::try_from(EXPIRY_WARNING.as_secs()).unwrap_or(i64::MAX);
    if left < window {
        warnings.push(format!(
            "{which} ({subject}) expires on {} (in {} days)",
            fmt_ts(na),
            left / 86_400
        ));
    }
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    if let Some((_, name)) = WEAK_SIGNATURES.iter().find(|(o, _)| *o == oid) {
        return Err(refuse(CaProblem::WeakSignature(name)));
    }
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() < 2048 => {
            Err(refuse(CaProblem::SmallRsaKey(rsa.key_size())))
        }
        Ok(PublicKey::EC(ec)) if ec.key_size() < 256 => {
            Err(refuse(CaProblem::SmallEcKey(ec.key_size())))
        }
        _ => Ok(()),
    }
}

fn fmt_ts(secs: i64) -> String {
    crate::pki::format_time(secs)
}

/// PEM-encodes one DER certificate (64-column base64).
pub fn to_pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
                b64.push(char::from(ALPHABET[idx]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

    fn ca(not_after: (i32, u8, u8)) -> (String, Vec<u8>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = p
            .self_signed(&KeyPair::generate().expect("key"))
            .expect("cert");
        (cert.pem(), cert.der().to_vec())
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn a_good_ca_is_accepted_with_a_stable_fingerprint() {
        let (pem, der) = ca((2100, 1, 1));
        let a = intake(pem.as_bytes(), "ca.pem", now()).expect("accepted");
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert_eq!(a.fingerprint.len(), 64);
        assert_eq!(a.pem.trim(), pem.trim(), "re-encoding is byte-identical");
        // DER is converted, with a note.
        let b = intake(&der, "ca.der", now()).expect("DER accepted");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(b.pem, a.pem);
        assert!(b.warnings[0].contains("is DER"));
    }

    #[test]
    fn expiry_window_and_expired() {
        let (pem, _) = ca((2100, 1, 1));
        // 2096: years away from expiry, no warning.
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        assert!(intake(pem.as_bytes(), "ca.pem", later)
            .expect("ok")
            .warnings
            .is_empty());
        let (old, _) = ca((2021, 1, 1));
        let err = intake(old.as_bytes(), "old.pem", now())
            .expect_err("expired")
            .to_string();
        assert!(err.contains("expired on 2021-01-01T00:00:00Z"), "{err}");
        // 10 days before expiry: a warning.
        let near = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800 - 10 * 86_400);
        let w = intake(pem.as_bytes(), "ca.pem", near).expect("ok").warnings;
        assert!(
            w[0].contains("expires on 2100-01-01T00:00:00Z (in 10 days)"),
            "{w:?}"
        );
    }

    #[test]
    fn private_keys_and_garbage_are_refused() {
        let key = KeyPair::generate().expect("key").serialize_pem();
        let (pem, _) = ca((2100, 1, 1));
        let err = intake(format!("{pem}{key}").as_bytes(), "bundle.pem", now())
            .expect_err("key")
            .to_string();
        assert!(err.contains("contains a private key"), "{err}");
        assert!(!err.contains("BEGIN"), "the key is never echoed");
        let err = intake(b"hello", "x.pem", now())
            .expect_err("garbage")
            .to_string();
        assert!(err.contains("neither a PEM nor a DER"), "{err}");
        let err = intake(
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            "x.pem",
            now(),
        )
        .expect_err("bad pem")
        .to_string();
        assert!(err.contains("x.pem"), "{err}");
    }

    #[test]
    fn leaf_certificates() {
        // A self-signed leaf: accepted with a warning.
        let leaf =
            rcgen::generate_simple_self_signed(vec!["registry.local".to_owned()]).expect("leaf");
        let a = intake(leaf.cert.pem().as_bytes(), "leaf.pem", now()).expect("accepted");
        assert!(
            a.warnings[0].contains("self-signed certificate, not a CA"),
            "{:?}",
            a.warnings
        );
        // A leaf issued by a CA: refused.
        let mut cap = CertificateParams::new(Vec::<String>::new()).expect("params");
        cap.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        cap.distinguished_name = rcgen::DistinguishedName::new();
        cap.distinguished_name
            .push(rcgen::DnType::CommonName, "Test Issuing CA");
        let ca_key = KeyPair::generate().expect("key");
        let ca_cert = cap.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(cap, ca_key);
        let mut lp = CertificateParams::new(vec!["registry.local".to_owned()]).expect("params");
        lp.distinguished_name = rcgen::DistinguishedName::new();
        lp.distinguished_name
            .push(rcgen::DnType::CommonName, "registry.local");
        let issued = lp
            .signed_by(&KeyPair::generate().expect("key"), &issuer)
            .expect("leaf");
        let err = intake(issued.pem().as_bytes(), "issued.pem", now())
            .expect_err("not a CA")
            .to_string();
        assert!(err.contains("is not a CA certificate"), "{err}");
        let _ = ca_cert;
    }

    #[test]
    fn weak_cas_are_refused() {
        let err = intake(
            include_bytes!("../../testdata/rsa1024-ca.pem"),
            "rsa.pem",
            now(),
        )
        .expect_err("weak")
        .to_string();
        assert!(err.contains("1024-bit RSA key; at least 2048"), "{err}");
        let err = intake(
            include_bytes!("../../testdata/sha1-ca.pem"),
            "sha1.pem",
            now(),
        )
        .expect_err("sha1")
        .to_string();
        assert!(err.contains("signed with SHA-1 with RSA"), "{err}");
    }
}

//! Reading the certificates and private keys a host holds: PEM bundles (or
//! one DER certificate), validity, the subject's common name, whether a
//! certificate was issued by another, and whether a private key belongs to
//! a certificate.
//!
//! Shared by the domains that watch certificates (registry CAs and server
//! certificates, the credentials domain's kubelet, IAM Roles Anywhere,
//! registry client and web certificates), so none imports another.
//!
//! Secrets: a key file is read into memory only to derive its public key
//! (through `ring`), which is compared with the certificate's; nothing of
//! the key, not even the public half, goes into an error, a log line or a
//! summary. PEM blocks other than certificates in a certificate file (the
//! kubelet keeps its key in `kubelet-server-current.pem`) are skipped
//! unread.

use crate::time::rfc3339;
use std::time::{Duration, SystemTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// One parsed certificate: what the checks need, and its DER for
/// signature checks.
#[derive(Clone, PartialEq, Eq)]
pub struct Cert {
    der: Vec<u8>,
    /// The subject, as `CN=…, O=…`.
    pub subject: String,
    /// The subject's first common name.
    pub common_name: Option<String>,
    /// `notBefore` and `notAfter`, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// basicConstraints CA=true.
    pub is_ca: bool,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cert")
            .field("subject", &self.subject)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Where a certificate stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    NotYetValid,
    Expired,
    /// Valid, with this many seconds left.
    Valid(i64),
}

/// Why a file gave no certificate. Never carries file contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    #[error("is not valid PEM: {0}")]
    Pem(String),
    #[error("is neither PEM nor a DER certificate")]
    Unrecognised,
    #[error("holds no certificate")]
    NoCertificate,
    #[error("holds a certificate that is not valid X.509: {0}")]
    X509(String),
}

/// Why a private key could not be compared with a certificate. Never
/// carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("holds no private key")]
    NoKey,
    #[error("holds an encrypted private key, which cannot be compared without its passphrase")]
    Encrypted,
    #[error("holds a private key of a kind the agent cannot read ({0})")]
    Unsupported(&'static str),
    #[error("is not valid PEM")]
    Pem,
}

impl KeyError {
    /// A key that may well be valid but is of a kind the agent cannot
    /// parse: the comparison is unknown, not failed.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, KeyError::Unsupported(_))
    }
}

impl Cert {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Cert, PkiError> {
        let (_, c) = X509Certificate::from_der(der).map_err(|e| PkiError::X509(e.to_string()))?;
        let v = c.validity();
        let common_name = c
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        Ok(Cert {
            subject: c.subject().to_string(),
            common_name,
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
            is_ca: c
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|bc| bc.value.ca),
            der: der.to_vec(),
        })
    }

    fn parsed(&self) -> Option<X509Certificate<'_>> {
        X509Certificate::from_der(&self.der).ok().map(|(_, c)| c)
    }

    /// Where it stands at `now` (Unix seconds).
    pub fn validity_at(&self, now: i64) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid(self.not_after - now)
        }
    }

    /// Whether `issuer` signed this certificate: its subject is this one's
    /// issuer and the signature verifies with its public key.
    pub fn issued_by(&self, issuer: &Cert) -> bool {
        let (Some(c), Some(i)) = (self.parsed(), issuer.parsed()) else {
            return false;
        };
        c.issuer().as_raw() == i.subject().as_raw()
            && c.verify_signature(Some(i.public_key())).is_ok()
    }

    /// The subjectPublicKey bits (for comparison with a private key).
    fn public_key_bits(&self) -> Option<Vec<u8>> {
        self.parsed()
            .map(|c| c.public_key().subject_public_key.data.to_vec())
    }
}

/// Every certificate in `bytes`: PEM (other blocks, keys included, are
/// skipped) or one DER certificate.
pub fn certificates(bytes: &[u8]) -> Result<Vec<Cert>, PkiError> {
    let mut out = Vec::new();
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| PkiError::Pem(e.to_string()))?;
            if pem.label == "CERTIFICATE" {
                out.push(Cert::from_der(&pem.contents)?);
            }
        }
    } else if bytes.first() == Some(&0x30) {
        out.push(Cert::from_der(bytes)?);
    } else {
        return Err(PkiError::Unrecognised);
    }
    if out.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    Ok(out)
}

/// `notAfter` of one DER certificate, Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(_, c)| c.validity().not_after.timestamp())
}

/// Whether `leaf` chains to one of `roots`, through `intermediates` (a
/// bundle's other certificates) if needed; at most 8 links.
pub fn chains_to(leaf: &Cert, intermediates: &[Cert], roots: &[Cert]) -> bool {
    let mut at = leaf.clone();
    for _ in 0..8 {
        if roots.iter().any(|r| at.issued_by(r) || *r == at) {
            return true;
        }
        match intermediates.iter().find(|i| **i != at && at.issued_by(i)) {
            Some(next) => at = next.clone(),
            None => return false,
        }
    }
    false
}

/// Whether the private key in `key_file` (PEM: PKCS#8, PKCS#1 RSA or SEC1
/// EC) is the one `cert` was issued for. Compares public keys; the key's
/// bytes are dropped on return and never shown.
pub fn key_matches(cert: &Cert, key_file: &[u8]) -> Result<bool, KeyError> {
    let mut found = None;
    for pem in x509_parser::pem::Pem::iter_from_buffer(key_file) {
        let pem = pem.map_err(|_| KeyError::Pem)?;
        if pem.label.ends_with("PRIVATE KEY") {
            found = Some(pem);
            break;
        }
    }
    let pem = found.ok_or(KeyError::NoKey)?;
    let public = match pem.label.as_str() {
        "PRIVATE KEY" => pkcs8_public(&pem.contents)?,
        "RSA PRIVATE KEY" => ring::signature::RsaKeyPair::from_der(&pem.contents)
            .map(|k| ring::signature::KeyPair::public_key(&k).as_ref().to_vec())
            .map_err(|_| KeyError::Unsupported("an RSA key ring refuses"))?,
        "EC PRIVATE KEY" => sec1_public(&pem.contents)?,
        "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
        _ => return Err(KeyError::Unsupported("an unknown PEM label")),
    };
    Ok(cert.public_key_bits().is_some_and(|bits| bits == public))
}

fn pkcs8_public(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    use ring::signature::{self as sig, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    for alg in [
        &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
        &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
    ] {
        if let Ok(k) = sig::EcdsaKeyPair::from_pkcs8(alg, der, &rng) {
            return Ok(k.public_key().as_ref().to_vec());
        }
    }
    if let Ok(k) = sig::RsaKeyPair::from_pkcs8(der) {
        return Ok(k.public_key().as_ref().to_vec());
    }
    if let Ok(k) = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        return Ok(k.public_key().as_ref().to_vec());
    }
    Err(KeyError::Unsupported(
        "PKCS#8 other than EC P-256/P-384 with its public point, RSA 2048+ or Ed25519",
    ))
}

/// SEC1 `ECPrivateKey`: the private scalar and the public point it carries,
/// checked against each other by `ring`.
fn sec1_public(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    use ring::signature::{self as sig, KeyPair};
    let bad = KeyError::Unsupported("an EC key without its public point");
    let (tag, body, _) = tlv(der).ok_or(bad.clone())?;
    if tag != 0x30 {
        return Err(bad);
    }
    let (_, _, rest) = tlv(body).ok_or(bad.clone())?; // version
    let (tag, private, mut rest) = tlv(rest).ok_or(bad.clone())?;
    if tag != 0x04 {
        return Err(bad);
    }
    let mut public = None;
    while let Some((tag, value, next)) = tlv(rest) {
        if tag == 0xa1 {
            if let Some((0x03, bits, _)) = tlv(value) {
                public = bits.split_first().map(|(_, b)| b);
            }
        }
        rest = next;
    }
    let public = public.ok_or(bad)?;
    let alg = match private.len() {
        32 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
        48 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => return Err(KeyError::Unsupported("an EC curve other than P-256/P-384")),
    };
    let rng = ring::rand::SystemRandom::new();
    let k = sig::EcdsaKeyPair::from_private_key_and_public_key(alg, private, public, &rng)
        .map_err(|_| KeyError::Unsupported("an EC key whose halves do not agree"))?;
    Ok(k.public_key().as_ref().to_vec())
}

/// One DER tag-length-value: `(tag, value, rest)`.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&len, mut b) = b.split_first()?;
    let len = if len < 0x80 {
        usize::from(len)
    } else {
        let n = usize::from(len & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let l = b[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        b = &b[n..];
        l
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn format_time(secs: i64) -> String {
    let secs = u64::try_from(secs).unwrap_or(0);
    rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
#[path = "../../tests/src/certs.rs"]
pub(crate) mod testcerts;
#[cfg(test)]
pub(crate) mod tests;

//! The endpoint's web config, in the Prometheus exporter-toolkit format
//! (`web.config_file`): TLS (rustls; certificates read with the
//! `rustls-pki-types` PEM API), client certificates, basic auth with bcrypt
//! hashes, and extra response headers.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt            # relative paths: to this file's directory
//!   key_file: server.key
//!   client_ca_file: clients-ca.crt
//!   client_auth_type: RequireAndVerifyClientCert
//!   min_version: TLS12
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! basic_auth_users:
//!   prometheus: $2y$10$…             # bcrypt
//! ```

use super::basic_auth::{check_bcrypt_hash, BasicAuth};
use crate::host::Host;
use hyper::header::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    // Accepted for compatibility; rustls chooses among its own safe suites.
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    http2: Option<bool>,
}

/// Headers the web config may add (the exporter-toolkit's list).
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

/// A loaded web config, ready to serve with.
#[derive(Debug, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    pub auth: Option<BasicAuth>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Every file it was built from (host paths), for change detection.
    pub files: Vec<PathBuf>,
    /// `tls_server_config.cert_file` (host path), for its expiry.
    pub cert_file: Option<PathBuf>,
    /// Settings accepted but not acted on.
    pub warnings: Vec<String>,
}

/// Why a web config was refused. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config: {0}")]
    Read(#[source] crate::host::SmallFileError),
    #[error("cannot read web config {}: not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    /// Not YAML, or not the web config's shape; `at` is `:line:column`.
    #[error("{}{at}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        at: String,
        message: String,
    },
    /// A setting, or a file it names, is not usable.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Reads and deserializes `path` (a host path); nothing it names is read.
fn parse(host: &Host, path: &Path) -> Result<File, WebConfigError> {
    let bytes = host
        .read_small(path, crate::host::MAX_PEM_FILE)
        .map_err(WebConfigError::Read)?;
    let text = String::from_utf8(bytes).map_err(|_| WebConfigError::NotUtf8 {
        path: path.to_owned(),
    })?;
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        let msg = e.to_string();
        let msg = msg.lines().next().unwrap_or("");
        let msg = msg
            .split_once(": ")
            .filter(|(p, _)| p.starts_with("line "))
            .map_or(msg, |(_, m)| m);
        WebConfigError::Syntax {
            path: path.to_owned(),
            at,
            message: msg.to_owned(),
        }
    })
}

/// `p` as named in the web config at `path`: relative to its directory.
fn resolve_in(path: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        path.parent().unwrap_or(Path::new("/")).join(p)
    }
}

/// `tls_server_config.cert_file` of the web config at `path` (host path),
/// resolved, for watching its expiry: the config is only deserialized, the
/// key and certificates are not read (a problem with them is the web
/// server's to report, and must not hide the expiry).
pub fn cert_file(host: &Host, path: &Path) -> Result<Option<PathBuf>, WebConfigError> {
    Ok(parse(host, path)?
        .tls_server_config
        .map(|t| resolve_in(path, &t.cert_file)))
}

/// Loads `path` (a host path). Errors name the file, and the line and
/// column for YAML errors.
pub fn load(host: &Host, path: &Path) -> Result<WebConfig, WebConfigError> {
    let file = parse(host, path)?;
    let resolve = |p: &Path| resolve_in(path, p);
    let mut out = WebConfig {
        files: vec![path.to_owned()],
        ..WebConfig::default()
    };
    let err = |message: String| WebConfigError::Invalid {
        path: path.to_owned(),
        message,
    };

    if let Some(tls) = &file.tls_server_config {
        if tls.cipher_suites.is_some()
            || tls.curve_preferences.is_some()
            || tls.prefer_server_cipher_suites.is_some()
        {
            out.warnings.push(
                "cipher_suites, curve_preferences and prefer_server_cipher_suites are ignored: rustls uses its own safe defaults"
                    .into(),
            );
        }
        let cert_path = resolve(&tls.cert_file);
        let key_path = resolve(&tls.key_file);
        // Read through the bounded helper: a device, FIFO or huge file
        // named here must fail the load, not hang or exhaust it.
        let pem = |field: &str, p: &Path| {
            host.read_pem_file(p)
                .map_err(|e| err(format!("tls_server_config.{field}: {e}")))
        };
        let cert_pem = pem("cert_file", &cert_path)?;
        let key_pem = pem("key_file", &key_path)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                err(format!(
                    "tls_server_config.cert_file {}: {e}",
                    cert_path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(err(format!(
                "tls_server_config.cert_file {} holds no certificate",
                cert_path.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            err(format!(
                "tls_server_config.key_file {}: {e}",
                key_path.display()
            ))
        })?;
        out.files.push(cert_path.clone());
        out.files.push(key_path.clone());
        out.cert_file = Some(cert_path.clone());

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = versions(
            tls.min_version.as_deref(),
            tls.max_version.as_deref(),
            &mut out.warnings,
        )
        .map_err(err)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| err(e.to_string()))?;
        let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
        let roots = match &tls.client_ca_file {
            Some(ca) => {
                let ca_path = resolve(ca);
                let mut roots = RootCertStore::empty();
                let ca_pem = pem("client_ca_file", &ca_path)?;
                for c in CertificateDer::pem_slice_iter(&ca_pem) {
                    let c = c.map_err(|e| {
                        err(format!(
                            "tls_server_config.client_ca_file {}: {e}",
                            ca_path.display()
                        ))
                    })?;
                    roots.add(c).map_err(|e| {
                        err(format!(
                            "tls_server_config.client_ca_file {}: {e}",
                            ca_path.display()
                        ))
                    })?;
                }
                out.files.push(ca_path);
                Some(Arc::new(roots))
            }
            None => None,
        };
        let verify = |roots: Option<Arc<RootCertStore>>,
                      optional: bool|
         -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
            let roots = roots
                .ok_or_else(|| err(format!("client_auth_type {auth_type} needs client_ca_file")))?;
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if optional {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build().map_err(|e| err(e.to_string()))
        };
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth_type {
            "NoClientCert" => None,
            "RequestClientCert" => Some(Arc::new(AnyClientCert { mandatory: false, provider: provider.clone() })),
            "RequireAnyClientCert" => Some(Arc::new(AnyClientCert { mandatory: true, provider: provider.clone() })),
            "VerifyClientCertIfGiven" => Some(verify(roots, true)?),
            "RequireAndVerifyClientCert" => Some(verify(roots, false)?),
            other => {
                return Err(err(format!(
                    "client_auth_type {other:?}: expected NoClientCert, RequestClientCert, RequireAnyClientCert, \
                     VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                )))
            }
        };
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| err(format!("certificate and key do not go together: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        out.tls = Some(Arc::new(config));
    }

    if let Some(http) = &file.http_server_config {
        if http.http2.is_some() {
            out.warnings
                .push("http_server_config.http2 is ignored: the endpoint speaks HTTP/1.1".into());
        }
        for (name, value) in &http.headers {
            if !ALLOWED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                return Err(err(format!(
                    "http_server_config.headers: {name:?} may not be set; allowed: {}",
                    ALLOWED_HEADERS.join(", ")
                )));
            }
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| err(format!("header {name:?}: {e}")))?;
            let v =
                HeaderValue::from_str(value).map_err(|e| err(format!("header {name:?}: {e}")))?;
            out.headers.push((n, v));
        }
    }

    if !file.basic_auth_users.is_empty() {
        for (user, hash) in &file.basic_auth_users {
            check_bcrypt_hash(hash).map_err(|e| err(format!("basic_auth_users.{user}: {e}")))?;
        }
        out.auth = Some(BasicAuth::new(file.basic_auth_users.clone()));
    }
    Ok(out)
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |v: &str, key: &str| match v {
        "TLS10" | "TLS11" => Ok(1),
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        other => Err(format!(
            "{key} {other:?}: expected TLS10, TLS11, TLS12 or TLS13"
        )),
    };
    let lo = min
        .map(|v| rank(v, "min_version"))
        .transpose()?
        .unwrap_or(2);
    let hi = max
        .map(|v| rank(v, "max_version"))
        .transpose()?
        .unwrap_or(3);
    if lo == 1 {
        warnings.push("TLS 1.0 and 1.1 are never offered; the minimum is TLS 1.2".into());
    }
    if hi == 1 {
        return Err(
            "max_version below TLS12 leaves no protocol: TLS 1.0 and 1.1 are not supported".into(),
        );
    }
    if lo.max(2) > hi {
        return Err("min_version is above max_version".into());
    }
    let mut out = Vec::new();
    if lo <= 2 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 3 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// `RequestClientCert` / `RequireAnyClientCert`: a certificate is asked
/// for (or required) but not verified against a CA, as in Go's tls package.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A fingerprint of the files a web config was built from: their sizes and
/// modification times. A change means: reload.
pub fn fingerprint(host: &Host, files: &[PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(host.path(f))
                .ok()
                .map(|m| (m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn tls_files(dir: &Path) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        write(dir, "server.crt", &cert.cert.pem());
        write(dir, "server.key", &cert.signing_key.serialize_pem());
        write(dir, "ca.crt", &cert.cert.pem());
    }

    /// Security review (issue 15, finding 9): TLS files were read whole,
    /// whatever they were: `/dev/zero` grew the process without bound.
    #[test]
    fn tls_files_must_be_small_regular_files() {
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir().expect("tempdir");
        tls_files(dir.path());
        let big = std::fs::File::create(dir.path().join("big.crt")).expect("create");
        big.set_len(1 << 30).expect("sparse 1 GiB");
        for (field, file, want) in [
            ("cert_file", "/dev/zero", "tls_server_config.cert_file: /dev/zero is not a regular file (it is a character device)"),
            ("key_file", "/dev/zero", "tls_server_config.key_file: /dev/zero is not a regular file"),
            ("cert_file", "big.crt", "big.crt is larger than 1 MiB"),
        ] {
            let (cert, key) = match field {
                "cert_file" => (file, "server.key"),
                _ => ("server.crt", file),
            };
            let p = write(
                dir.path(),
                "web.yml",
                &format!("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"),
            );
            let e = load(&Host::new("/"), &p).expect_err(file).to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn full_config_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        tls_files(dir.path());
        let hash = bcrypt::hash("secret", 4).expect("hash");
        let p = write(
            dir.path(),
            "web.yml",
            &format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS12\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: {hash}\n"
            ),
        );
        let host = Host::new("/");
        let w = load(&host, &p).expect("loads");
        assert!(w.tls.is_some());
        assert_eq!(w.files.len(), 4);
        assert_eq!(w.headers.len(), 1);
        assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
        let auth = w.auth.expect("auth");
        let header = |s: &str| Some(crate::metrics::basic_auth::basic_header(s));
        assert!(auth.allows(header("prometheus:secret").as_ref()));
        assert!(auth.allows(header("prometheus:secret").as_ref()), "cached");
        assert!(!auth.allows(header("prometheus:wrong").as_ref()));
        assert!(!auth.allows(header("nobody:secret").as_ref()));
        assert!(!auth.allows(None));
        assert!(!auth.allows(HeaderValue::from_str("Basic !!!").ok().as_ref()));
    }

    #[test]
    fn errors_are_specific() {
        let dir = tempfile::tempdir().expect("tempdir");
        tls_files(dir.path());
        let host = Host::new("/");
        let cases = [
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n", "expected NoClientCert"),
            ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n", "nope.crt"),
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS11\n", "not supported"),
            ("basic_auth_users:\n  u: plaintext\n", "not a bcrypt hash"),
            // Cost 31 would take days to check one password: refused at load,
            // without running it.
            ("basic_auth_users:\n  u: $2y$31$ABCDEFGHIJKLMNOPQRSTUuABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n", "bcrypt cost 31 is outside 4..=14"),
            ("basic_auth_users:\n  u: $2y$10$ABCDEFGHIJKLMNOPQRSTU!ABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n", "not bcrypt base64"),
            ("http_server_config:\n  headers:\n    Content-Type: text/html\n", "may not be set"),
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  bogus: 1\n", "unknown field `bogus`"),
        ];
        for (text, want) in cases {
            let p = write(dir.path(), "web.yml", text);
            let e = load(&host, &p).expect_err(text).to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("web.yml"), "{e}");
        }
        let p = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: [\n",
        );
        let e = load(&host, &p).expect_err("syntax");
        assert!(matches!(e, WebConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains("web.yml:"), "{e}");
    }

    #[test]
    fn empty_file_means_plain_http() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "web.yml", "");
        let w = load(&Host::new("/"), &p).expect("loads");
        assert!(w.tls.is_none() && w.auth.is_none());
    }
}

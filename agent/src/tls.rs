//! TLS client plumbing shared by the probes that speak HTTPS (registry
//! mirrors, the API server, the AWS endpoints): a rustls client config from
//! PEM roots, a handshake over a [`DeadlineStream`], and one HTTP/1.1
//! exchange read back as a status line and a bounded body.
//!
//! Errors are typed: a caller tells an untrusted certificate (wrong CA)
//! from a failed handshake or a silent server; text is made where an error
//! becomes a check's summary.

use crate::deadline::DeadlineStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned,
};
use std::io::{Read, Write};
use std::sync::Arc;

/// The OS trust bundles, Debian family first, then RHEL family (host
/// paths, read under `--root`).
pub const SYSTEM_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Why a TLS exchange did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input (`what`: CA, client certificate, …) cannot be used.
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    /// No usable certificate among the roots.
    #[error("{what}: no certificate in it")]
    NoRoots { what: &'static str },
    /// rustls refused the configuration or the server name.
    #[error("{0}")]
    Setup(String),
    /// The handshake failed; see [`TlsError::untrusted`].
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
    #[error("sending the request: {0}")]
    Send(#[source] std::io::Error),
    #[error("reading the answer: {0}")]
    Read(#[source] std::io::Error),
    #[error("the answer is not HTTP")]
    NotHttp,
}

/// Why the server's certificate was refused: each has its own remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertProblem {
    /// Expired, or not valid yet, at this host's clock: often the clock.
    Validity,
    /// Valid, but for other names than the one dialed.
    WrongName,
    /// Does not chain to the trusted roots (or any other refusal).
    Untrusted,
}

impl CertProblem {
    /// The kind of a rustls certificate error.
    pub fn of(e: &rustls::CertificateError) -> CertProblem {
        use rustls::CertificateError as C;
        match e {
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => CertProblem::Validity,
            C::NotValidForName | C::NotValidForNameContext { .. } => CertProblem::WrongName,
            _ => CertProblem::Untrusted,
        }
    }
}

impl TlsError {
    /// Why the server's certificate was refused, when that is what failed
    /// (the handshake itself worked): `None` for any other failure.
    pub fn certificate_problem(&self) -> Option<CertProblem> {
        let TlsError::Handshake(e) = self else {
            return None;
        };
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())?
        {
            rustls::Error::InvalidCertificate(c) => Some(CertProblem::of(c)),
            _ => None,
        }
    }

    /// The server's certificate was refused (any [`CertProblem`]).
    pub fn untrusted(&self) -> bool {
        self.certificate_problem().is_some()
    }
}

/// What to trust and present.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM of a CA to trust (the registry's, the cluster's).
    pub ca_pem: Option<String>,
    /// PEM bundle of the OS roots.
    pub system_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
    /// Report, but still connect, when verification fails.
    pub skip_verify: bool,
}

/// A client config trusting `tls`'s roots; `insecure` accepts any
/// certificate (only for `skip_verify`, after a verified handshake failed
/// and was reported).
pub fn client_config(tls: &TlsSettings, insecure: bool) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        let mut add = |pem: &[u8], what: &'static str| -> Result<(), TlsError> {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| TlsError::Pem {
                    what,
                    reason: e.to_string(),
                })?;
                // A bundle may hold certificates rustls cannot use; skip them.
                let _ = roots.add(cert);
            }
            Ok(())
        };
        if let Some(ca) = &tls.ca_pem {
            add(ca.as_bytes(), "CA")?;
        }
        if let Some(system) = &tls.system_pem {
            add(system, "system trust bundle")?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match &tls.client {
        Some((chain, key)) => {
            let pem = |e: rustls::pki_types::pem::Error| TlsError::Pem {
                what: "client certificate",
                reason: e.to_string(),
            };
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<_, _>>()
                .map_err(pem)?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
                what: "client key",
                reason: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Pem {
                    what: "client certificate",
                    reason: e.to_string(),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Whether `pem` holds at least one certificate (a CA a caller was given).
pub fn has_certificate(pem: &[u8]) -> bool {
    CertificateDer::pem_slice_iter(pem).any(|c| c.is_ok())
}

/// A TLS session over `tcp`, handshake done.
pub type Session = StreamOwned<ClientConnection, DeadlineStream>;

/// Completes a handshake with `name` over `tcp`.
pub fn handshake(
    tcp: DeadlineStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<Session, TlsError> {
    let conn = ClientConnection::new(config, name).map_err(|e| TlsError::Setup(e.to_string()))?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(TlsError::Handshake)?;
    }
    Ok(tls)
}

/// The leaf certificate's `notAfter`, in Unix seconds.
pub fn peer_not_after(session: &Session) -> Option<i64> {
    session
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| crate::pki::not_after(der))
}

/// An HTTP answer: its status and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// At most the `body_limit` given to [`exchange`], lossily decoded.
    pub body: String,
}

/// Whether the header block (status line and headers, no blank line)
/// declares `Transfer-Encoding: chunked` (the last coding, as HTTP/1.1
/// requires of it).
fn is_chunked(headers: &str) -> bool {
    headers.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.rsplit(',')
                    .next()
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
        })
    })
}

/// Decodes a chunked body (RFC 9112 §7.1) from what has arrived, keeping
/// at most `limit` bytes. Returns the data and whether decoding is done:
/// the last chunk seen, `limit` reached, or a malformed size line (what
/// was decoded stands).
fn decode_chunked(raw: &[u8], limit: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let line = String::from_utf8_lossy(&rest[..eol]);
        // Chunk extensions (`;name=value`) are ignored.
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            return (out, true);
        };
        if size == 0 {
            return (out, true);
        }
        let data = &rest[eol + 2..];
        let take = size.min(data.len()).min(limit - out.len());
        out.extend_from_slice(&data[..take]);
        if out.len() >= limit {
            return (out, true);
        }
        if data.len() < size + 2 {
            return (out, false);
        }
        rest = &data[size + 2..];
    }
}

/// Sends `request` and reads the status line, then up to `body_limit`
/// bytes of body (0: stop after the status line); a chunked body is
/// decoded.
pub fn exchange<S: Read + Write>(
    s: &mut S,
    request: &str,
    body_limit: usize,
) -> Result<Answer, TlsError> {
    s.write_all(request.as_bytes()).map_err(TlsError::Send)?;
    s.flush().map_err(TlsError::Send)?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    let enough = |head: &[u8]| {
        if body_limit == 0 {
            return head.windows(2).any(|w| w == b"\r\n") || head.len() >= 8192;
        }
        if head.len() >= 8192 + body_limit {
            return true;
        }
        // A server that keeps the connection open despite `Connection:
        // close` has said all once Content-Length bytes of body are in.
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        if is_chunked(&String::from_utf8_lossy(&head[..end])) {
            return decode_chunked(&head[end + 4..], body_limit).1;
        }
        let length = String::from_utf8_lossy(&head[..end]).lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        length.is_some_and(|n| head.len() - (end + 4) >= n.min(body_limit))
    };
    while !enough(&head) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            // A server that closes without close_notify still answered.
            Err(_) if !head.is_empty() && body_limit > 0 => break,
            Err(e) => return Err(TlsError::Read(e)),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(TlsError::NotHttp)?;
    let body = match head.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) if is_chunked(&String::from_utf8_lossy(&head[..end])) => {
            let (data, _) = decode_chunked(&head[end + 4..], body_limit);
            String::from_utf8_lossy(&data)
                .chars()
                .take(body_limit)
                .collect()
        }
        Some(end) => String::from_utf8_lossy(&head[end + 4..])
            .chars()
            .take(body_limit)
            .collect(),
        None => String::new(),
    };
    Ok(Answer { status, body })
}

/// Accepts any certificate: only for `skip_verify`, after a verified
/// handshake already failed and was reported.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_status_and_bounded_body() {
        let mut s = std::io::Cursor::new(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n{\"kind\":\"Status\",\"code\":401}".to_vec(),
        );
        // Cursor: writes go after the bytes, reads start at 0.
        let mut rw = ReadWrite(&mut s);
        let a = exchange(&mut rw, "", 8).expect("answer");
        assert_eq!(a.status, 401);
        assert_eq!(a.body, "{\"kind\":");
        // Content-Length ends the read even if the connection stays open.
        let mut kept_open = Trickle(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            0,
        );
        let a = exchange(&mut kept_open, "", 1024).expect("answer");
        assert_eq!((a.status, a.body.as_str()), (403, "{}"));
        let mut junk = std::io::Cursor::new(b"SSH-2.0-OpenSSH\r\n".to_vec());
        assert!(matches!(
            exchange(&mut ReadWrite(&mut junk), "", 0),
            Err(TlsError::NotHttp)
        ));
    }

    #[test]
    fn a_chunked_answer_is_decoded() {
        // A Kubernetes 401 as an API server behind a proxy sends it:
        // chunked, the connection kept open after the last chunk.
        let status = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"Unauthorized\",\"code\":401}";
        let (a, b) = status.split_at(20);
        let raw = format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        let mut kept_open = Trickle(raw.clone().into_bytes(), 0);
        let answer = exchange(&mut kept_open, "", 16 * 1024).expect("answer");
        assert_eq!(answer.status, 401);
        assert_eq!(answer.body, status);
        let v: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(v["code"], 401);
        // The limit holds inside a chunk too.
        let mut s = std::io::Cursor::new(raw.into_bytes());
        let answer = exchange(&mut ReadWrite(&mut s), "", 8).expect("answer");
        assert_eq!(answer.body, "{\"kind\":");
        assert!(!is_chunked(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip"
        ));
    }

    /// Gives its bytes; a further read panics (on a connection left open
    /// it would block until the deadline).
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            assert!(self.1 < self.0.len(), "read past the answer");
            let n = b.len().min(self.0.len() - self.1).min(7);
            b[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct ReadWrite<'a>(&'a mut std::io::Cursor<Vec<u8>>);
    impl Read for ReadWrite<'_> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Write for ReadWrite<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_certificate_refusal_has_its_kind() {
        use rustls::CertificateError as C;
        let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000));
        let refused = |c: C| {
            TlsError::Handshake(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(c),
            ))
            .certificate_problem()
        };
        for c in [
            C::Expired,
            C::ExpiredContext {
                time: t,
                not_after: t,
            },
            C::NotValidYet,
            C::NotValidYetContext {
                time: t,
                not_before: t,
            },
        ] {
            assert_eq!(refused(c), Some(CertProblem::Validity));
        }
        for c in [
            C::NotValidForName,
            C::NotValidForNameContext {
                expected: ServerName::try_from("api.example").expect("name"),
                presented: vec!["other.example".into()],
            },
        ] {
            assert_eq!(refused(c), Some(CertProblem::WrongName));
        }
        assert_eq!(refused(C::UnknownIssuer), Some(CertProblem::Untrusted));
        assert_eq!(refused(C::BadSignature), Some(CertProblem::Untrusted));
        let reset = TlsError::Handshake(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(reset.certificate_problem(), None);
        assert!(!reset.untrusted());
    }

    #[test]
    fn a_bad_ca_is_a_pem_error_naming_it() {
        let tls = TlsSettings {
            ca_pem: Some("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".into()),
            ..TlsSettings::default()
        };
        let e = client_config(&tls, false).unwrap_err();
        assert!(matches!(e, TlsError::Pem { what: "CA", .. }), "{e}");
        assert!(!has_certificate(b"not pem"));
    }
}

//! Registry probe: TCP, a TLS handshake trusting only the configured CA
//! (plus the OS roots when `system_trust`), then `GET /v2/`, which a
//! registry answers with 200 or 401.

use crate::deadline::DeadlineStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned,
};
use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one endpoint answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// `GET /v2/` answered 200 or 401.
    pub up: bool,
    /// The server's certificate verified against the configured trust.
    pub tls_verified: bool,
    pub status: Option<u16>,
    pub duration: Duration,
    /// The server certificate's `notAfter`, in Unix seconds.
    pub server_cert_not_after: Option<i64>,
    /// Why it is down or unverified.
    pub error: Option<String>,
}

/// What to trust and present.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM of the registry's CA.
    pub ca_pem: Option<String>,
    /// PEM bundle of the OS roots, when `system_trust`.
    pub system_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
    /// Report, but still connect, when verification fails.
    pub skip_verify: bool,
}

struct Url<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_url(url: &str) -> Result<Url<'_>, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url}: not an http(s) URL"));
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse().map_err(|_| format!("{url}: bad port"))?)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    Ok(Url {
        tls,
        host: host.trim_start_matches('[').trim_end_matches(']'),
        port,
        path,
    })
}

/// Probes `url` (`override_path`: the URL's path is the API root).
pub fn probe(url: &str, override_path: bool, tls: &TlsSettings, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let mut result = ProbeResult {
        up: false,
        tls_verified: false,
        status: None,
        duration: Duration::ZERO,
        server_cert_not_after: None,
        error: None,
    };
    let outcome = (|| -> Result<(), String> {
        let u = parse_url(url)?;
        let path = if override_path {
            format!("/{}", u.path.trim_end_matches('/'))
        } else {
            "/v2/".to_owned()
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hybrid-node-agent\r\nConnection: close\r\n\r\n",
            u.host
        );
        // One deadline for everything below (both handshakes with
        // skip_verify): a server that trickles bytes cannot hold the probe.
        let deadline = started + timeout;
        let connect = || -> Result<DeadlineStream, String> {
            let addr = (u.host, u.port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {}: {e}", u.host))?
                .next()
                .ok_or_else(|| format!("{} has no address", u.host))?;
            DeadlineStream::connect(&addr, deadline)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))
        };
        if !u.tls {
            let mut s = connect()?;
            result.status = Some(exchange(&mut s, &request)?);
            return Ok(());
        }
        let name =
            ServerName::try_from(u.host.to_owned()).map_err(|e| format!("{}: {e}", u.host))?;
        let verified = client_config(tls, false)
            .and_then(|cfg| handshake(connect()?, cfg, name.clone(), &request));
        let (status, cert) = match verified {
            Ok(ok) => {
                result.tls_verified = true;
                ok
            }
            Err(e) if tls.skip_verify => {
                result.error = Some(format!("TLS not verified (skip_verify): {e}"));
                handshake(connect()?, client_config(tls, true)?, name, &request)?
            }
            Err(e) => return Err(e),
        };
        result.status = Some(status);
        result.server_cert_not_after = cert;
        Ok(())
    })();
    result.duration = started.elapsed();
    match outcome {
        Ok(()) => {
            result.up = matches!(result.status, Some(200 | 401));
            if !result.up {
                result.error.get_or_insert_with(|| {
                    format!(
                        "GET /v2/ answered {}",
                        result.status.map_or("nothing".into(), |s| s.to_string())
                    )
                });
            }
        }
        Err(e) => result.error = Some(e),
    }
    result
}

fn client_config(tls: &TlsSettings, insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        let mut add = |pem: &[u8], what: &str| -> Result<(), String> {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("{what}: {e}"))?;
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
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn handshake(
    tcp: DeadlineStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    request: &str,
) -> Result<(u16, Option<i64>), String> {
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
    }
    let not_after = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| crate::pki::not_after(der));
    let status = exchange(&mut tls, request)?;
    Ok((status, not_after))
}

/// Sends the request and reads the status code.
fn exchange<S: Read + Write>(s: &mut S, request: &str) -> Result<u16, String> {
    s.write_all(request.as_bytes())
        .map_err(|e| format!("sending GET: {e}"))?;
    s.flush().map_err(|e| format!("sending GET: {e}"))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "the answer is not HTTP".to_owned())
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
    fn urls() {
        let u = parse_url("https://mirror.local:8443/v2/proxy").expect("url");
        assert!(u.tls);
        assert_eq!((u.host, u.port, u.path), ("mirror.local", 8443, "v2/proxy"));
        let u = parse_url("http://127.0.0.1").expect("url");
        assert_eq!((u.host, u.port), ("127.0.0.1", 80));
        let u = parse_url("https://[::1]:5000").expect("url");
        assert_eq!((u.host, u.port), ("::1", 5000));
        assert!(parse_url("ftp://x").is_err());
    }

    #[test]
    fn nothing_listening_is_down_with_a_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let r = probe(
            &format!("https://127.0.0.1:{port}"),
            false,
            &TlsSettings::default(),
            Duration::from_secs(1),
        );
        assert!(!r.up && !r.tls_verified);
        assert!(
            r.error.as_deref().unwrap_or("").contains("cannot connect"),
            "{r:?}"
        );
    }
}

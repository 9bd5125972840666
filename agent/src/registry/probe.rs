//! Registry probe: TCP, a TLS handshake trusting only the configured CA
//! (plus the OS roots when `system_trust`), then `GET /v2/`, which a
//! registry answers with 200 or 401.

use crate::deadline::DeadlineStream;
pub use crate::tls::TlsSettings;
use rustls::pki_types::ServerName;
use std::net::ToSocketAddrs;
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

fn handshake(
    tcp: DeadlineStream,
    config: std::sync::Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    request: &str,
) -> Result<(u16, Option<i64>), String> {
    let mut session = crate::tls::handshake(tcp, config, name).map_err(|e| e.to_string())?;
    let not_after = crate::tls::peer_not_after(&session);
    let status = exchange(&mut session, request)?;
    Ok((status, not_after))
}

fn exchange<S: std::io::Read + std::io::Write>(s: &mut S, request: &str) -> Result<u16, String> {
    crate::tls::exchange(s, request, 0)
        .map(|a| a.status)
        .map_err(|e| match e {
            crate::tls::TlsError::Send(e) => format!("sending GET: {e}"),
            e => e.to_string(),
        })
}

fn client_config(
    tls: &TlsSettings,
    insecure: bool,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    crate::tls::client_config(tls, insecure).map_err(|e| e.to_string())
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

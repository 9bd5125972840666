//! The HTTP endpoint: `/metrics`, `/healthz` and `/status`, over hyper's
//! HTTP/1 server. Every response is built from cached state; nothing here
//! waits on a probe.

use super::webconfig::WebConfig;
use super::{encode, Format};
use crate::check::Tally;
use crate::facts::Facts;
use crate::state::{Cache, Snapshot};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING,
    CONTENT_TYPE, VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

/// A client has this long to send a request's headers (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted; hyper answers 431 beyond it.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long connections may take to finish on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A client has this long to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The web config in force; replaced whole on reload. Each connection takes
/// the one current when it was accepted.
#[derive(Debug, Default)]
pub struct WebState {
    current: RwLock<Arc<WebConfig>>,
}

impl WebState {
    pub fn new(config: WebConfig) -> Self {
        WebState {
            current: RwLock::new(Arc::new(config)),
        }
    }

    pub fn get(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, config: WebConfig) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

/// What the handlers read.
#[derive(Debug)]
pub struct Endpoint {
    pub registry: Arc<Registry>,
    pub cache: Arc<Cache>,
    pub facts: Facts,
}

type Body = Full<Bytes>;

/// Serves until `shutdown` turns true, then drains open connections.
/// A listener sent on `rebind` replaces the current one (config reload).
pub async fn serve(
    mut listener: TcpListener,
    endpoint: Arc<Endpoint>,
    web: Arc<WebState>,
    max_connections: usize,
    mut rebind: mpsc::Receiver<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let builder = http_builder();
    loop {
        // Past the limit, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let web = web.get();
                    let tls = web.tls.clone();
                    let service = Handler { endpoint: endpoint.clone(), web };
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let result = match tls {
                            None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                            Some(config) => {
                                let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
                                    Ok(Ok(tls)) => watcher.watch(builder.serve_connection(TokioIo::new(tls), service)).await,
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                                        Ok(())
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "TLS handshake timed out");
                                        Ok(())
                                    }
                                }
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(new) = rebind.recv() => {
                if let Ok(addr) = new.local_addr() {
                    tracing::info!(%addr, "listening on the new address");
                }
                listener = new;
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("HTTP connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}

/// The HTTP/1 settings every connection is served with.
pub fn http_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(true);
    builder
}

/// The service behind every connection: [`respond`] under the web config
/// that was current when the connection was accepted.
#[derive(Debug, Clone)]
pub struct Handler {
    pub endpoint: Arc<Endpoint>,
    pub web: Arc<WebConfig>,
}

impl Service<Request<Incoming>> for Handler {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        std::future::ready(Ok(respond(&self.endpoint, &self.web, &req)))
    }
}

/// Answers one request under the web config: basic auth first, then the
/// route, then the configured headers.
pub fn respond<B>(endpoint: &Endpoint, web: &WebConfig, req: &Request<B>) -> Response<Body> {
    let mut r = match &web.auth {
        Some(auth) if !auth.allows(req.headers().get(AUTHORIZATION)) => {
            let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hybrid-node-agent\""),
            );
            r
        }
        _ => handle(endpoint, req),
    };
    for (name, value) in &web.headers {
        r.headers_mut().insert(name.clone(), value.clone());
    }
    r
}

/// Routes one request. Only GET and HEAD on the known paths are served.
pub fn handle<B>(endpoint: &Endpoint, req: &Request<B>) -> Response<Body> {
    route(endpoint, req.method(), req.uri().path(), req.headers())
}

fn route(endpoint: &Endpoint, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
    let known = matches!(path, "/metrics" | "/healthz" | "/status" | "/");
    if !known {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /status or /healthz\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {
            let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let gzip = headers
                .get(ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
            match encode(&endpoint.registry, format) {
                Ok(body) if gzip => {
                    let mut r = response(
                        StatusCode::OK,
                        format.content_type(),
                        gzip_bytes(body.as_bytes()).into(),
                    );
                    r.headers_mut()
                        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    r.headers_mut()
                        .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
                    r
                }
                Ok(body) => response(StatusCode::OK, format.content_type(), body.into()),
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/status" => match status_document(endpoint) {
            Ok(body) => response(StatusCode::OK, "application/json", body.into()),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
        },
        _ => text(
            StatusCode::OK,
            "hybrid-node-agent: /metrics (Prometheus), /status (JSON), /healthz\n",
        ),
    }
}

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct StatusDocument<'a> {
    pub version: &'static str,
    pub phase: Option<crate::lifecycle::Phase>,
    pub summary: Tally,
    pub domains: &'a BTreeMap<&'static str, Snapshot>,
}

/// The `/status` body, encoded straight from the cache.
fn status_document(endpoint: &Endpoint) -> serde_json::Result<Vec<u8>> {
    endpoint.cache.with_snapshots(|domains| {
        serde_json::to_vec_pretty(&StatusDocument {
            version: env!("CARGO_PKG_VERSION"),
            phase: endpoint.facts.phase(),
            summary: Tally::of(domains.values().flat_map(|s| s.checks.iter())),
            domains,
        })
    })
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn endpoint() -> Endpoint {
        let cache = Arc::new(Cache::default());
        let mut registry = super::super::new_registry();
        super::super::CoreMetrics::register(
            &mut registry,
            cache.clone(),
            std::time::SystemTime::now(),
        );
        Endpoint {
            registry: Arc::new(registry),
            cache,
            facts: Facts::default(),
        }
    }

    async fn get(
        e: &Endpoint,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let req = req.body(()).expect("request");
        let (parts, body) = handle(e, &req).into_parts();
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        };
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn routes() {
        let e = endpoint();
        let (s, h, body) = get(&e, Method::GET, "/metrics", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h[CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
        assert!(body.contains("hybrid_node_agent_info{version="), "{body}");

        let (_, h, body) = get(
            &e,
            Method::GET,
            "/metrics",
            Some("application/openmetrics-text; version=1.0.0"),
        )
        .await;
        assert!(h[CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("application/openmetrics-text"));
        assert!(body.ends_with("# EOF\n"));

        assert_eq!(
            get(&e, Method::GET, "/healthz", None).await.0,
            StatusCode::OK
        );
        let (s, h, body) = get(&e, Method::GET, "/status", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h[CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

        assert_eq!(
            get(&e, Method::GET, "/nope", None).await.0,
            StatusCode::NOT_FOUND
        );
        let (s, h, _) = get(&e, Method::POST, "/metrics", None).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(h[ALLOW], "GET, HEAD");
        assert_eq!(
            get(&e, Method::HEAD, "/metrics", None).await.0,
            StatusCode::OK
        );
    }
}

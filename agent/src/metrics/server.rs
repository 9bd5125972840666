//! The HTTP endpoint: `/metrics`, `/healthz` and `/status`, over hyper's
//! HTTP/1 server. Every response is built from cached state; nothing here
//! waits on a probe.

use super::basic_auth::Decision;
use super::conn::{Connections, Limits, Pacer};
use super::webconfig::WebConfig;
use super::{encode, Format};
use crate::check::Tally;
use crate::facts::Facts;
use crate::state::{Cache, Snapshot};
use http_body_util::Full;
use hyper::body::Bytes;
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
use std::net::SocketAddr;
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
    /// The latest `/metrics` bodies, shared by scrapes close together.
    pub rendered: super::render::Rendered,
}

type Body = Full<Bytes>;

/// A request to move the endpoint to `addr` (a config reload changed
/// `agent.listen`); the outcome is sent on `reply`.
#[derive(Debug)]
pub struct Rebind {
    pub addr: SocketAddr,
    pub reply: tokio::sync::oneshot::Sender<Result<SocketAddr, RebindError>>,
}

/// Why the endpoint could not move; it stays where it was.
#[derive(Debug, thiserror::Error)]
pub enum RebindError {
    #[error("cannot listen on {addr}: {source}; still listening on {kept}")]
    Bind {
        addr: SocketAddr,
        kept: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The old address was released for a conflicting new one, the new one
    /// failed, and the old one could not be taken back.
    #[error("cannot listen on {addr} ({new_error}) nor again on {old} ({source}): the endpoint is down until the next reload")]
    Lost {
        addr: SocketAddr,
        old: SocketAddr,
        new_error: std::io::Error,
        #[source]
        source: std::io::Error,
    },
}

/// Whether binding `new` while `old` is bound fails on Linux (same port,
/// and the same address or either one a wildcard of the same family).
fn conflicts(old: SocketAddr, new: SocketAddr) -> bool {
    old.port() == new.port()
        && old.is_ipv4() == new.is_ipv4()
        && (old.ip() == new.ip() || old.ip().is_unspecified() || new.ip().is_unspecified())
}

/// Binds `addr` and makes it the listener. The new address is bound while
/// the old one still serves; only when the two conflict (`0.0.0.0:10063` →
/// `127.0.0.1:10063`) is the old one released first, and taken back if the
/// new one cannot be bound. Open connections are not affected.
async fn move_listener(
    listener: &mut TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, RebindError> {
    let old = listener.local_addr().unwrap_or(addr);
    let first = match TcpListener::bind(addr).await {
        Ok(new) => {
            *listener = new;
            return Ok(listener.local_addr().unwrap_or(addr));
        }
        Err(e) => e,
    };
    if first.kind() != std::io::ErrorKind::AddrInUse || !conflicts(old, addr) {
        return Err(RebindError::Bind {
            addr,
            kept: old,
            source: first,
        });
    }
    // Release the old socket (a placeholder on loopback takes its place
    // for the moment), then bind the new address.
    let loopback: std::net::IpAddr = if old.is_ipv4() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        std::net::Ipv6Addr::LOCALHOST.into()
    };
    let placeholder = match TcpListener::bind(SocketAddr::new(loopback, 0)).await {
        Ok(p) => p,
        Err(source) => {
            return Err(RebindError::Bind {
                addr,
                kept: old,
                source,
            })
        }
    };
    drop(std::mem::replace(listener, placeholder));
    match TcpListener::bind(addr).await {
        Ok(new) => {
            *listener = new;
            Ok(listener.local_addr().unwrap_or(addr))
        }
        Err(new_error) => match TcpListener::bind(old).await {
            Ok(back) => {
                *listener = back;
                Err(RebindError::Bind {
                    addr,
                    kept: old,
                    source: new_error,
                })
            }
            Err(source) => Err(RebindError::Lost {
                addr,
                old,
                new_error,
                source,
            }),
        },
    }
}

/// Serves until `shutdown` turns true, then drains open connections.
/// A [`Rebind`] moves the endpoint to another address (config reload).
pub async fn serve(
    mut listener: TcpListener,
    endpoint: Arc<Endpoint>,
    web: Arc<WebState>,
    max_connections: usize,
    mut rebind: mpsc::Receiver<Rebind>,
    mut shutdown: watch::Receiver<bool>,
) {
    // At the limit a new connection evicts the quietest one (see `conn`).
    let connections = Connections::new(max_connections, Limits::default());
    let graceful = GracefulShutdown::new();
    let builder = http_builder();
    let verify_slots = verify_slots();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let admitted = connections.admit();
                    let stream = admitted.track(stream);
                    let web = web.get();
                    let tls = web.tls.clone();
                    let service = Handler::new(endpoint.clone(), web, verify_slots.clone());
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let serve = async {
                            match tls {
                                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                                Some(config) => {
                                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
                                        Ok(Ok(tls)) => watcher.watch(builder.serve_connection(TokioIo::new(tls), service)).await,
                                        Ok(Err(e)) => {
                                            tracing::debug!(%peer, error = %e, "TLS handshake with {peer} refused: {e}");
                                            Ok(())
                                        }
                                        Err(_) => {
                                            tracing::debug!(%peer, "TLS handshake with {peer} timed out");
                                            Ok(())
                                        }
                                    }
                                }
                            }
                        };
                        // Dropping the connection's future closes it.
                        tokio::select! {
                            result = serve => if let Err(e) = result {
                                tracing::debug!(%peer, error = %e, "HTTP connection from {peer} ended with an error: {e}");
                            },
                            why = admitted.closed() => {
                                tracing::debug!(%peer, "HTTP connection from {peer} closed: {}", why.as_str());
                            }
                        }
                        drop(admitted);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(Rebind { addr, reply }) = rebind.recv() => {
                let result = move_listener(&mut listener, addr).await;
                match &result {
                    Ok(bound) => tracing::info!(addr = %bound, "listening on the new address {bound}"),
                    Err(e) => tracing::warn!("{e}"),
                }
                let _ = reply.send(result);
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

/// bcrypt verifications of new credentials run at most this many at a time,
/// on the blocking pool; credentials already verified never wait for them.
const VERIFY_SLOTS: usize = 2;

/// The service behind every connection: the web config that was current
/// when the connection was accepted, basic auth, then the route.
#[derive(Debug, Clone)]
pub struct Handler {
    endpoint: Arc<Endpoint>,
    web: Arc<WebConfig>,
    verify_slots: Arc<Semaphore>,
    /// This connection's request pacing (one handler per connection).
    pacer: Arc<Pacer>,
}

impl Handler {
    /// `verify_slots` is shared by every connection (see [`verify_slots`]).
    pub fn new(endpoint: Arc<Endpoint>, web: Arc<WebConfig>, verify_slots: Arc<Semaphore>) -> Self {
        Handler {
            endpoint,
            web,
            verify_slots,
            pacer: Arc::default(),
        }
    }
}

/// The bcrypt slots one server shares between its connections.
pub fn verify_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(VERIFY_SLOTS))
}

type Answer = Result<Response<Body>, Infallible>;

impl<B: Send + 'static> Service<Request<B>> for Handler {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let wait = self.pacer.delay(std::time::Instant::now());
        if !wait.is_zero() {
            let this = self.clone();
            return Box::pin(async move {
                tokio::time::sleep(wait).await;
                this.serve(req).await
            });
        }
        self.serve(req)
    }
}

impl Handler {
    fn serve<B: Send + 'static>(
        &self,
        req: Request<B>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>> {
        let authorized = match &self.web.auth {
            None => true,
            Some(auth) => match auth.decide(req.headers().get(AUTHORIZATION)) {
                Decision::Known(ok) => ok,
                Decision::Verify(pending) => {
                    // bcrypt is slow on purpose: never on the runtime thread,
                    // which must keep serving scrapes meanwhile.
                    let this = self.clone();
                    return Box::pin(async move {
                        let ok = match this.verify_slots.clone().acquire_owned().await {
                            Ok(permit) => {
                                let web = this.web.clone();
                                tokio::task::spawn_blocking(move || {
                                    let _permit = permit;
                                    web.auth.as_ref().is_some_and(|a| a.verify(pending))
                                })
                                .await
                                .unwrap_or(false)
                            }
                            Err(_) => false,
                        };
                        Ok(answer(&this.endpoint, &this.web, &req, ok))
                    });
                }
            },
        };
        Box::pin(std::future::ready(Ok(answer(
            &self.endpoint,
            &self.web,
            &req,
            authorized,
        ))))
    }
}

/// Answers one request under the web config once basic auth is decided:
/// 401 or the route, then the configured headers.
pub fn answer<B>(
    endpoint: &Endpoint,
    web: &WebConfig,
    req: &Request<B>,
    authorized: bool,
) -> Response<Body> {
    let mut r = if authorized {
        handle(endpoint, req)
    } else {
        let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"hybrid-node-agent\""),
        );
        r
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
            let body = endpoint.rendered.get_or_render(
                format,
                gzip,
                (std::time::Instant::now(), endpoint.cache.generation()),
                || {
                    encode(&endpoint.registry, format).map(|text| {
                        if gzip {
                            Bytes::from(gzip_bytes(text.as_bytes()))
                        } else {
                            Bytes::from(text)
                        }
                    })
                },
            );
            match body {
                Ok(body) => {
                    let mut r = response(StatusCode::OK, format.content_type(), body);
                    if gzip {
                        r.headers_mut()
                            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                        r.headers_mut()
                            .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
                    }
                    r
                }
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
    pub phase: Option<crate::model::Phase>,
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
            rendered: Default::default(),
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

    /// A flood of requests with new (wrong) credentials, each a bcrypt run,
    /// must not hold up a scrape whose credentials were already verified:
    /// bcrypt runs on the blocking pool, two at a time.
    #[tokio::test(flavor = "current_thread")]
    async fn bcrypt_never_blocks_scrapes_with_known_credentials() {
        use base64::Engine;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("good", 10).expect("hash");
        let file = dir.path().join("web.yml");
        std::fs::write(&file, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
        let web = crate::metrics::webconfig::load(&crate::host::Host::new("/"), &file)
            .expect("web config");
        let handler = Handler::new(Arc::new(endpoint()), Arc::new(web), verify_slots());
        let request = |user: &str, password: &str| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Request::builder()
                .uri("/healthz")
                .header(AUTHORIZATION, format!("Basic {token}"))
                .body(())
                .expect("request")
        };
        // Prometheus's credentials, verified once.
        let first = handler
            .call(request("prometheus", "good"))
            .await
            .expect("answer");
        assert_eq!(first.status(), StatusCode::OK);

        let done = Arc::new(AtomicUsize::new(0));
        let mut flood = Vec::new();
        for i in 0..8 {
            // Each guess on a connection of its own (as a flood would be:
            // one connection's requests are paced).
            let h = Handler::new(
                handler.endpoint.clone(),
                handler.web.clone(),
                handler.verify_slots.clone(),
            );
            let done = done.clone();
            let req = request("mallory", &format!("guess-{i}"));
            flood.push(tokio::spawn(async move {
                let r = h.call(req).await.expect("answer");
                done.fetch_add(1, Ordering::SeqCst);
                r.status()
            }));
        }
        tokio::task::yield_now().await;
        let scrape = handler
            .call(request("prometheus", "good"))
            .await
            .expect("answer");
        assert_eq!(scrape.status(), StatusCode::OK);
        assert!(
            done.load(Ordering::SeqCst) < 8,
            "the known scrape waited for every bcrypt run of the flood"
        );
        for f in flood {
            assert_eq!(f.await.expect("task"), StatusCode::UNAUTHORIZED);
        }
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

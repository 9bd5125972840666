//! HTTP request handling: raw bytes from a client, served by the agent's own
//! HTTP/1 settings and handler over an in-memory connection. Invariants: no
//! panic, no hang; whatever the client sends, the agent either answers with
//! well-formed HTTP/1.x responses or closes the connection.
#![no_main]

use hybrid_node_agent::facts::Facts;
use hybrid_node_agent::metrics::server::{http_builder, verify_slots, Endpoint, Handler};
use hybrid_node_agent::metrics::webconfig::WebConfig;
use hybrid_node_agent::metrics::{new_registry, CoreMetrics};
use hybrid_node_agent::state::Cache;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    runtime: tokio::runtime::Runtime,
    handler: Handler,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let cache = Arc::new(Cache::default());
        let mut registry = new_registry();
        CoreMetrics::register(&mut registry, cache.clone(), std::time::SystemTime::now());
        let web = WebConfig {
            headers: vec![(
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            )],
            ..WebConfig::default()
        };
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            handler: Handler::new(
                Arc::new(Endpoint {
                    registry: Arc::new(registry),
                    cache,
                    facts: Facts::default(),
                }),
                Arc::new(web),
                verify_slots(),
            ),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let answer = w.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let conn = http_builder().serve_connection(TokioIo::new(server), w.handler.clone());
        let talk = async {
            client.write_all(data).await.expect("send");
            client.shutdown().await.expect("half-close");
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.expect("read");
            answer
        };
        let (_, answer) = tokio::join!(conn, talk);
        answer
    });
    if !answer.is_empty() {
        assert!(
            answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
            "not an HTTP/1.x response: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
    }
});

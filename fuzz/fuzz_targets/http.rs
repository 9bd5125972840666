//! HTTP request handling: raw bytes from a client, served by the agent's own
//! HTTP/1 settings and handler over an in-memory connection. Invariants: no
//! panic, no hang; whatever the client sends, the agent either answers with
//! well-formed HTTP/1.x responses or closes the connection. The same bytes
//! are also a label value (as a hostile registry endpoint would be): the
//! metric output, in both formats, stays one well-formed sample per line,
//! and the value reads back unchanged from its own sample.
#![no_main]

use hybrid_node_agent::facts::Facts;
use hybrid_node_agent::metrics::label::{parse_sample, LabelValue};
use hybrid_node_agent::metrics::server::{http_builder, verify_slots, Endpoint, Handler};
use hybrid_node_agent::metrics::webconfig::WebConfig;
use hybrid_node_agent::metrics::{encode, new_registry, CoreMetrics, Format};
use hybrid_node_agent::state::Cache;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Hostile = Family<Vec<(&'static str, LabelValue)>, Gauge>;

struct World {
    runtime: tokio::runtime::Runtime,
    /// A handler per connection, as the server makes them: one
    /// connection's requests are paced, so sharing one would slow every
    /// input after the first two requests.
    endpoint: Arc<Endpoint>,
    web: Arc<WebConfig>,
    slots: Arc<tokio::sync::Semaphore>,
    registry: Arc<prometheus_client::registry::Registry>,
    hostile: Hostile,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let cache = Arc::new(Cache::default());
        let mut registry = new_registry();
        CoreMetrics::register(&mut registry, cache.clone(), std::time::SystemTime::now());
        let hostile = Hostile::default();
        registry.register(
            "fuzz_hostile",
            "A label value from the fuzzer",
            hostile.clone(),
        );
        let registry = Arc::new(registry);
        let web = WebConfig {
            headers: vec![(
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            )],
            ..WebConfig::default()
        };
        World {
            // Paused time: the pacing of a long pipeline and hyper's timers
            // advance at once instead of in real seconds.
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("runtime"),
            endpoint: Arc::new(Endpoint {
                registry: registry.clone(),
                cache,
                facts: Facts::default(),
                rendered: Default::default(),
            }),
            web: Arc::new(web),
            slots: verify_slots(),
            registry,
            hostile,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let answer = w.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let handler = Handler::new(w.endpoint.clone(), w.web.clone(), w.slots.clone());
        let conn = http_builder().serve_connection(TokioIo::new(server), handler);
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

    let value = String::from_utf8_lossy(data);
    w.hostile.clear();
    w.hostile
        .get_or_create(&vec![("registry", LabelValue::from(value.as_ref()))])
        .set(1);
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let text = encode(&w.registry, format).expect("encode");
        let mut found = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, labels, _) =
                parse_sample(line).unwrap_or_else(|e| panic!("{format:?}: {e}: {line:?}"));
            if name == "hybrid_node_fuzz_hostile" {
                found += 1;
                assert_eq!(
                    labels,
                    [("registry".to_owned(), value.clone().into_owned())]
                );
            }
        }
        assert_eq!(
            found, 1,
            "{format:?}: one sample for the hostile value:\n{text}"
        );
    }
});

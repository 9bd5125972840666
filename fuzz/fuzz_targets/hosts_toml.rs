//! hosts.toml round trip: registries from the agent config and the NodeConfig
//! are merged, rendered, and read back with the project's hosts.toml reader;
//! what containerd would read must be what was desired.
#![no_main]

use arbitrary::Arbitrary;
use hybrid_node_agent::config::{MirrorEntry, RegistryEntry};
use hybrid_node_agent::model::containerd::RegistryDecl;
use hybrid_node_agent::model::containerd::Version;
use hybrid_node_agent::registry::desired::merge;
use hybrid_node_agent::registry::hosts_toml::{parse, render, Features};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Mirror {
    url: String,
    capabilities: Vec<String>,
    override_path: bool,
}

#[derive(Debug, Arbitrary)]
struct AgentRegistry {
    host: String,
    mirrors: Vec<Mirror>,
    client: Option<(String, String)>,
    skip_verify: bool,
    mirror_only: bool,
}

#[derive(Debug, Arbitrary)]
struct NodeConfigRegistry {
    host: String,
    endpoints: Vec<String>,
    insecure_skip_verify: bool,
}

#[derive(Debug, Arbitrary)]
struct Input {
    agent: Vec<AgentRegistry>,
    nodeconfig: Vec<NodeConfigRegistry>,
    allow_skip_verify: bool,
    ca_path: Option<String>,
    version: Option<(u8, u8, u8)>,
}

fuzz_target!(|input: Input| {
    let agent: Vec<RegistryEntry> = input
        .agent
        .into_iter()
        .map(|a| RegistryEntry {
            host: a.host,
            mirrors: a
                .mirrors
                .into_iter()
                .map(|m| MirrorEntry {
                    url: m.url,
                    capabilities: m.capabilities,
                    override_path: m.override_path,
                })
                .collect(),
            ca_file: None,
            ca_pem: None,
            client_cert: a.client.as_ref().map(|c| c.0.clone().into()),
            client_key: a.client.map(|c| c.1.into()),
            skip_verify: a.skip_verify,
            mirror_only: a.mirror_only,
            system_trust: true,
        })
        .collect();
    let nodeconfig: Vec<RegistryDecl> = input
        .nodeconfig
        .into_iter()
        .map(|r| RegistryDecl {
            host: r.host,
            endpoints: r.endpoints,
            insecure_skip_verify: r.insecure_skip_verify,
            ..RegistryDecl::default()
        })
        .collect();
    let features = Features::of(
        input
            .version
            .map(|(a, b, c)| Version(a.into(), b.into(), c.into())),
    );
    let merged = merge(&agent, &nodeconfig, input.allow_skip_verify);
    for d in &merged.registries {
        let rendered = render(d, input.ca_path.as_deref(), features);
        let back = parse(&rendered.text).unwrap_or_else(|e| {
            panic!("rendered hosts.toml does not parse: {e}\n{}", rendered.text)
        });
        let server = if d.mirror_only {
            d.mirrors.first().map(|m| m.url.clone())
        } else {
            d.upstream()
        };
        assert_eq!(back.server, server, "server");
        let endpoints = d.endpoints();
        let urls: Vec<&str> = back.hosts.iter().map(|h| h.url.as_str()).collect();
        let want: Vec<&str> = endpoints.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, want, "host entries, in order\n{}", rendered.text);
        for (h, e) in back.hosts.iter().zip(&endpoints) {
            let caps: Vec<&String> = e
                .capabilities
                .iter()
                .filter(|c| features.referrers || c.as_str() != "referrers")
                .collect();
            assert_eq!(h.capabilities.iter().collect::<Vec<_>>(), caps, "{}", e.url);
            let ca: Vec<String> = input.ca_path.iter().cloned().collect();
            assert_eq!(h.ca, ca, "every host entry carries its own ca");
            assert_eq!(h.skip_verify, d.skip_verify, "skip_verify");
        }
    }
});

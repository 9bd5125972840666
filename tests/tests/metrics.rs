//! The metric contract: real `promtool` accepts a live scrape, and
//! `docs/metrics.md` matches what the agent exports.

use hybrid_node_agent_e2e::{pki, repo_root, require_tool, root_from_fixture, Agent, TlsServer};
use std::collections::{BTreeMap, BTreeSet};

/// A scrape of an agent with every family populated: a registry served over
/// TLS (by `openssl s_server`) with a CA the agent manages, and a network
/// target by name (DNS), with ICMP (root or ping_group_range) and a TCP port.
fn live_scrape() -> Option<String> {
    let openssl = require_tool("openssl")?;
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            !hybrid_node_agent_e2e::in_ci(),
            "the full scrape needs root (ICMP) under CI"
        );
        eprintln!("SKIP: the full scrape needs root for ICMP probes");
        return None;
    }
    let pki = pki("metrics");
    let server = TlsServer::start(&openssl, &pki);
    let root = root_from_fixture("installed");
    let cfg = root.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[registry]]\nhost = \"harbor.example.internal\"\nsystem_trust = false\nmirror_only = true\nca_pem = \"\"\"\n{}\"\"\"\nmirrors = [{{ url = \"https://127.0.0.1:{}\" }}]\n[network]\napi_server = false\n[[network.target]]\nname = \"localhost\"\naddress = \"localhost\"\ntcp_port = {}\n",
            pki.ca_pem, server.port, server.port
        ),
    )
    .expect("write");
    let mut agent = Agent::start(
        &[
            "--root",
            root.path().to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
        ],
        &[],
        None,
    );
    agent.wait_ready();
    let up = hybrid_node_agent_e2e::eventually(std::time::Duration::from_secs(10), || {
        let m = agent.metrics();
        (m.contains("hybrid_node_registry_tls_verified{")
            && m.contains("hybrid_node_net_rtt_window_seconds{")
            && m.contains("hybrid_node_net_path_mtu_bytes{"))
        .then_some(m)
    });
    Some(up.expect("registry probed"))
}

#[test]
fn promtool_check_metrics_reports_no_problems() {
    let Some(scrape) = live_scrape() else {
        return;
    };
    let Some(report) = hybrid_node_agent_e2e::promtool_check_metrics(&scrape) else {
        return;
    };
    assert!(
        report.trim().is_empty(),
        "promtool found problems: {report}"
    );
}

/// name -> (type, label names) from the exposition text.
fn families(scrape: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE line");
            out.insert(name.to_owned(), (ty.to_owned(), BTreeSet::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let labels = line
                .split_once('{')
                .and_then(|(_, rest)| rest.rsplit_once('}'))
                .map(|(labels, _)| labels)
                .unwrap_or("");
            // Histogram samples belong to their family; `le` is theirs alone.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| out.get(*base).is_some_and(|(ty, _)| ty == "histogram"))
                })
                .unwrap_or(name)
                .to_owned();
            let entry = out
                .get_mut(&family)
                .unwrap_or_else(|| panic!("sample {name} before its TYPE line"));
            // Label values here never contain `",`; split on it.
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let key = pair.split('=').next().unwrap_or("").trim_start_matches(',');
                if key != "le" {
                    entry.1.insert(key.to_owned());
                }
            }
        }
    }
    out
}

/// Families documented as present only on NVIDIA hosts or once a
/// scheduled bandwidth test has run, with `[[network.resolver]]`, a
/// NodeConfig or `[cluster]` networks, or with credentials and
/// certificates to watch (`tests/tests/credentials.rs` holds those rows to
/// a live scrape).
fn conditional() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs/metrics.md");
    doc.lines()
        .filter(|l| {
            l.starts_with("| `hybrid_node_")
                && (l.contains("(NVIDIA hosts)")
                    || l.contains("(after a bandwidth test)")
                    || l.contains("(with a resolver)")
                    || l.contains("(with credentials)")
                    || l.contains("(with a NodeConfig)")
                    || l.contains("(with [cluster] networks)"))
        })
        .filter_map(|l| {
            l.split('|')
                .nth(1)
                .map(|c| c.trim().trim_matches('`').to_owned())
        })
        .collect()
}

fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc =
        std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs/metrics.md");
    doc.lines()
        .filter(|l| l.starts_with("| `hybrid_node_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            let ty = cells[2].to_owned();
            let labels = cells[3]
                .split(',')
                .map(|s| s.trim().trim_matches('`').to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            (name, (ty, labels))
        })
        .collect()
}

#[test]
fn docs_match_the_live_scrape() {
    let Some(scrape) = live_scrape() else {
        return;
    };
    let scraped = families(&scrape);
    let doc = documented();
    for (name, (ty, labels)) in &scraped {
        let Some((doc_ty, doc_labels)) = doc.get(name) else {
            panic!("{name} is exported but not documented in docs/metrics.md");
        };
        assert_eq!(ty, doc_ty, "type of {name}");
        assert_eq!(labels, doc_labels, "labels of {name}");
    }
    let optional = conditional();
    assert!(optional.len() >= 10, "{optional:?}");
    for name in doc.keys().filter(|n| !optional.contains(*n)) {
        assert!(
            scraped.contains_key(name),
            "{name} is documented but not exported:\n{}",
            scrape
                .lines()
                .filter(|l| l.contains("_net_"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

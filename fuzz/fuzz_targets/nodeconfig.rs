//! NodeConfig parsing and validation, as `check` and the daemon run them.
//! Invariants: no panic; check ids come from the fixed set (they are metric
//! labels); error positions point inside the file; the SSM activation code
//! never appears in a message.
#![no_main]

use hybrid_node_agent::host::Host;
use hybrid_node_agent::nodeconfig::init::{InitProbe, ResolveError};
use hybrid_node_agent::nodeconfig::{evaluate_with, validate::AREAS};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// No lookups: a fuzz input's endpoint host must never reach a resolver.
/// Names under `.invalid` fail as an unknown name would, the rest resolve.
#[derive(Debug)]
struct Offline;

impl InitProbe for Offline {
    fn resolve(&self, host: &str) -> Result<(), ResolveError> {
        if host.ends_with(".invalid") {
            Err(ResolveError::NoAddress)
        } else {
            Ok(())
        }
    }
    fn kubelet_version(&self) -> Option<String> {
        None
    }
    fn api_server_version(&self) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An empty root: no file the config names exists.
    let host = Host::new("/nonexistent-fuzz-root");
    let now = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let path = Path::new("/etc/nodeadm/nodeconfig.yaml");
    let (config, checks) = match evaluate_with(text, path, &host, now, &Offline) {
        Ok((config, checks)) => (Some(config), checks),
        Err(checks) => (None, checks),
    };
    // YAML breaks lines at CR LF, CR and LF.
    let lines = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .count()
        + 1;
    for c in &checks {
        assert!(
            c.id == "parse" || AREAS.contains(&c.id.as_str()),
            "unexpected check id {:?}",
            c.id
        );
        if let Some(rest) = c.summary.strip_prefix("/etc/nodeadm/nodeconfig.yaml:") {
            if let Some(line) = rest.split(':').next().and_then(|l| l.parse::<usize>().ok()) {
                assert!(
                    line >= 1 && line <= lines,
                    "line {line} outside a {lines}-line file"
                );
            }
        }
    }
    let code = config
        .as_ref()
        .and_then(|c| c.spec.hybrid.as_ref())
        .and_then(|h| h.ssm.as_ref())
        .map(|s| s.activation_code.expose().to_owned());
    if let Some(code) = code.filter(|c| c.len() >= 12) {
        let said = |checks: &[hybrid_node_agent::check::Check]| {
            checks.iter().any(|c| {
                c.summary.contains(&code) || c.remedy.as_deref().unwrap_or("").contains(&code)
            })
        };
        if said(&checks) {
            // Leaked, or the code happens to spell part of a fixed message:
            // with another code of the same length, a fixed message stays.
            let other: String = code
                .chars()
                .map(|c| if c == 'Q' { 'R' } else { 'Q' })
                .collect();
            let again =
                match evaluate_with(&text.replace(&code, &other), path, &host, now, &Offline) {
                    Ok((_, c)) | Err(c) => c,
                };
            assert!(said(&again), "activation code in a message: {checks:?}");
        }
    }
});

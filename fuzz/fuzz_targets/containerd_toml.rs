//! The NodeConfig's embedded `containerd.config`: the merged-config analysis
//! and the correction `render` offers. Invariants: no panic; check ids carry
//! no input; a correction is valid TOML that, corrected again, stays the same;
//! what `render` shows of it holds no credential value (every value of a
//! key named password, auth, identitytoken, token, … is the placeholder).
#![no_main]

use hybrid_node_agent::containerd::checks::{analyze, Context};
use hybrid_node_agent::containerd::effective::ConfigSet;
use hybrid_node_agent::containerd::render::{correct, redact_credentials};
use hybrid_node_agent::containerd::secrets::unredacted;
use hybrid_node_agent::host::Host;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let host = Host::new("/nonexistent-fuzz-root");
    let ctx = Context {
        host: &host,
        tool: None,
    };
    for check in analyze(&ConfigSet::projected(Some(text)), &ctx) {
        assert!(
            check
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "check id {:?} is not a fixed identifier",
            check.id
        );
    }
    if let Ok(fixed) = correct(text, Some("localhost/kubernetes/pause")) {
        let again = correct(&fixed.text, Some("localhost/kubernetes/pause"))
            .unwrap_or_else(|e| panic!("the correction does not parse: {e}\n{}", fixed.text));
        assert_eq!(again.text, fixed.text, "correcting twice changed the text");
        assert!(
            again.moved.is_empty(),
            "registries left after the correction"
        );
        let shown = redact_credentials(&fixed.text);
        let doc: toml_edit::DocumentMut = shown
            .parse()
            .unwrap_or_else(|e| panic!("the redacted text does not parse: {e}\n{shown}"));
        let left = unredacted(&doc);
        assert!(left.is_empty(), "credentials shown: {left:?}\n{shown}");
    }
});

//! The endpoint's web config (exporter-toolkit format), loaded from a file
//! under a host root as the daemon does. Invariants: no panic; every error
//! names the file.
#![no_main]

use hybrid_node_agent::host::Host;
use hybrid_node_agent::metrics::webconfig::load;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A host root of its own for this process, with a CA and certificate pair
/// the seeds may name (`scripts/fuzz.sh` puts them in the corpus directory's
/// `../pki`).
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hna-fuzz-web-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc/hybrid-node-agent")).expect("fuzz root");
        if let Ok(pki) = std::env::var("HNA_FUZZ_PKI") {
            for f in ["server.crt", "server.key", "ca.crt"] {
                let _ = std::fs::copy(
                    Path::new(&pki).join(f),
                    dir.join("etc/hybrid-node-agent").join(f),
                );
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let root = root();
    let file = Path::new("/etc/hybrid-node-agent/web.yml");
    let host = Host::new(root);
    std::fs::write(host.path(file), data).expect("write the web config");
    if let Err(e) = load(&host, file) {
        assert!(
            e.to_string().contains("/etc/hybrid-node-agent/"),
            "error does not name the file: {e}"
        );
    }
});

//! CA intake (file or inline PEM/DER). Invariants: no panic; an accepted CA
//! written back as PEM is accepted again with the same fingerprint; a file
//! holding a private key is always refused.
#![no_main]

use hybrid_node_agent::registry::ca::intake;
use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

fuzz_target!(|data: &[u8]| {
    // The seed certificates are generated when the corpus is seeded.
    let now = SystemTime::now();
    let result = intake(data, "fuzz.pem", now);
    if String::from_utf8_lossy(data).contains("PRIVATE KEY-----") {
        assert!(result.is_err(), "a private key was accepted");
    }
    if let Ok(ca) = result {
        assert_eq!(ca.fingerprint.len(), 64);
        let back = intake(ca.pem.as_bytes(), "fuzz.pem", now)
            .unwrap_or_else(|e| panic!("written PEM refused: {e}"));
        assert_eq!(back.fingerprint, ca.fingerprint);
        assert_eq!(back.not_after, ca.not_after);
    }
});

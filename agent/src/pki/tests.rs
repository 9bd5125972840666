use super::testcerts::{now, Ca, DAY};
use super::*;

fn one(pem: &str) -> Cert {
    certificates(pem.as_bytes()).expect("cert").remove(0)
}

#[test]
fn validity_is_read_for_each_state() {
    let ca = Ca::new("test CA", 3650);
    let t = now();
    let valid = one(&ca.leaf("node", -1, 365).0);
    assert!(matches!(valid.validity_at(t), Validity::Valid(s) if s > 363 * DAY));
    let soon = one(&ca.leaf("node", -1, 10).0);
    match soon.validity_at(t) {
        Validity::Valid(s) => assert!((9 * DAY..=10 * DAY).contains(&s), "{s}"),
        v => panic!("{v:?}"),
    }
    assert_eq!(
        one(&ca.leaf("node", -30, -2).0).validity_at(t),
        Validity::Expired
    );
    assert_eq!(
        one(&ca.leaf("node", 2, 30).0).validity_at(t),
        Validity::NotYetValid
    );
    assert_eq!(valid.common_name.as_deref(), Some("node"));
    assert!(!valid.is_ca);
    assert!(one(&ca.pem).is_ca);
}

#[test]
fn keys_match_only_their_certificate() {
    let ca = Ca::new("test CA", 3650);
    let (cert, key) = ca.leaf("node", -1, 365);
    let (_, other_key) = ca.leaf("node", -1, 365);
    let cert = one(&cert);
    assert_eq!(key_matches(&cert, key.as_bytes()), Ok(true));
    assert_eq!(key_matches(&cert, other_key.as_bytes()), Ok(false));
    assert_eq!(
        key_matches(
            &cert,
            b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"
        ),
        Err(KeyError::NoKey)
    );
    let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMA==\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert_eq!(key_matches(&cert, enc.as_bytes()), Err(KeyError::Encrypted));
}

/// A valid PKCS#8 P-256 key that leaves out its optional public point
/// (RFC 5915 makes it optional; `ring` needs it): the kind of key the agent
/// cannot compare.
pub(crate) fn p256_pkcs8_without_public_point() -> String {
    use base64::Engine;
    let mut der = vec![
        0x30, 0x41, // PrivateKeyInfo
        0x02, 0x01, 0x00, // version 0
        0x30, 0x13, // AlgorithmIdentifier
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
        0x04, 0x27, // privateKey OCTET STRING
        0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20, // ECPrivateKey v1, 32-byte scalar
    ];
    der.extend([0x11; 32]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

#[test]
fn keys_the_agent_cannot_read_are_unsupported_not_wrong() {
    let ca = Ca::new("test CA", 3650);
    let (cert, key) = ca.leaf("node", -1, 365);
    let cert = one(&cert);
    let e = key_matches(&cert, p256_pkcs8_without_public_point().as_bytes()).unwrap_err();
    assert!(
        matches!(e, KeyError::Unsupported(why) if why.contains("public point")),
        "{e:?}"
    );
    assert!(e.is_unsupported());
    let odd = key.replace("PRIVATE KEY", "DSA PRIVATE KEY");
    assert!(key_matches(&cert, odd.as_bytes())
        .unwrap_err()
        .is_unsupported());
    for e in [KeyError::NoKey, KeyError::Encrypted, KeyError::Pem] {
        assert!(!e.is_unsupported(), "{e:?}");
    }
}

#[test]
fn sec1_ec_keys_are_compared_too() {
    // openssl writes SEC1 (`EC PRIVATE KEY`) by default; convert rcgen's
    // PKCS#8 when the tool is here.
    let Ok(out) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        assert!(std::env::var("CI").is_err(), "openssl is required under CI");
        return;
    };
    assert!(out.status.success());
    let ca = Ca::new("test CA", 3650);
    let (cert, key) = ca.leaf("node", -1, 365);
    let dir = tempfile::tempdir().expect("tmp");
    let p8 = dir.path().join("k.p8");
    std::fs::write(&p8, &key).expect("write");
    let sec1 = std::process::Command::new("openssl")
        .args(["ec", "-in"])
        .arg(&p8)
        .output()
        .expect("openssl ec");
    assert!(sec1.status.success());
    let text = String::from_utf8(sec1.stdout).expect("utf8");
    assert!(text.contains("BEGIN EC PRIVATE KEY"), "{text}");
    assert_eq!(key_matches(&one(&cert), text.as_bytes()), Ok(true));
    let other = one(&ca.leaf("other", -1, 365).0);
    assert_eq!(key_matches(&other, text.as_bytes()), Ok(false));
}

#[test]
fn chains_are_followed_and_wrong_ones_refused() {
    let ca = Ca::new("cluster CA", 3650);
    let stale = Ca::new("cluster CA", 3650); // same name, other key
    let leaf = one(&ca.leaf("node", -1, 365).0);
    let roots = certificates(ca.pem.as_bytes()).expect("ca");
    assert!(chains_to(&leaf, &[], &roots));
    let other = certificates(stale.pem.as_bytes()).expect("ca");
    assert!(!chains_to(&leaf, &[], &other), "same name, other key");
    assert!(chains_to(&leaf, &[], &[other[0].clone(), roots[0].clone()]));
}

#[test]
fn key_blocks_in_a_certificate_file_are_skipped_and_junk_refused() {
    let ca = Ca::new("test CA", 3650);
    let (cert, key) = ca.leaf("node", -1, 365);
    // The kubelet keeps certificate and key in one file.
    let both = format!("{cert}{key}");
    assert_eq!(certificates(both.as_bytes()).expect("certs").len(), 1);
    assert_eq!(certificates(key.as_bytes()), Err(PkiError::NoCertificate));
    assert_eq!(certificates(b"hello"), Err(PkiError::Unrecognised));
    assert!(not_after(&[0x30, 0x00]).is_none());
}

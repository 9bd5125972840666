//! Certificates made per test run with rcgen (never committed, so they
//! never expire under a test): a CA, and leaves it issues with a chosen
//! common name and validity window relative to now. One file for both the
//! black-box tests (this crate) and the agent's unit tests (`pki.rs`
//! includes it under `cfg(test)`).

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub const DAY: i64 = 86_400;

pub fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("secs")
}

/// Civil date of Unix seconds (H. Hinnant's days-from-civil inverse).
fn ymd(secs: i64) -> (i32, u8, u8) {
    let z = secs.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        i32::try_from(y).expect("year"),
        u8::try_from(m).expect("month"),
        u8::try_from(d).expect("day"),
    )
}

fn window(p: &mut CertificateParams, from_days: i64, to_days: i64) {
    let (y, m, d) = ymd(now() + from_days * DAY);
    p.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = ymd(now() + to_days * DAY);
    p.not_after = date_time_ymd(y, m, d);
}

/// A certificate authority.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

impl Ca {
    /// A CA valid from a day ago to `days` from now.
    pub fn new(name: &str, days: i64) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name.push(DnType::CommonName, name);
        window(&mut p, -1, days);
        let key = KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("ca");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf for `cn`, valid from `from_days` to `to_days` relative to
    /// now: `(certificate PEM, PKCS#8 key PEM)`.
    pub fn leaf(&self, cn: &str, from_days: i64, to_days: i64) -> (String, String) {
        let mut p = CertificateParams::new(vec![cn.to_owned()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        window(&mut p, from_days, to_days);
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }
}

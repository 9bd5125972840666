//! Basic auth for the endpoint against bcrypt hashes (`basic_auth_users`
//! of the web config): hashes checked at load, verdicts cached, unknown
//! users verified at the configured cost so that names cannot be told
//! apart by time.

use base64::Engine;
use hyper::header::HeaderValue;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

/// The highest bcrypt cost accepted: each new password is checked on the
/// request path, and cost 14 already takes about a second.
const MAX_BCRYPT_COST: u32 = 14;
/// bcrypt's own minimum.
const MIN_BCRYPT_COST: u32 = 4;

/// A hash bcrypt cannot use fails every login, and a huge cost stalls every
/// request that carries new credentials: say so at load. The hash is tried
/// once at the lowest cost, so loading never runs the expensive rounds.
pub(super) fn check_bcrypt_hash(hash: &str) -> Result<(), String> {
    let parts: bcrypt::HashParts = hash
        .parse()
        .map_err(|_| "not a bcrypt hash (expected $2y$<cost>$<53 characters>)".to_owned())?;
    let cost = parts.get_cost();
    if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside {MIN_BCRYPT_COST}..={MAX_BCRYPT_COST}"
        ));
    }
    // "$2b$NN$" then salt and digest; the same at cost 4.
    let whole = parts.to_string();
    let cheap = format!("$2b$04${}", whole.get(7..).unwrap_or_default());
    bcrypt::verify("", &cheap)
        .map(|_| ())
        .map_err(|_| "not a bcrypt hash (its salt or digest is not bcrypt base64)".to_owned())
}
/// Basic auth against bcrypt hashes. bcrypt is deliberately slow, so
/// verdicts are cached (keyed by a keyed hash of the credentials; bounded).
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// The configured hash of the highest cost (see [`BasicAuth::new`]).
    dummy: Option<String>,
    cache: Mutex<HashMap<u64, bool>>,
    hasher: std::collections::hash_map::RandomState,
}

const CACHE_LIMIT: usize = 1024;

/// What [`BasicAuth::decide`] could tell without bcrypt.
#[derive(Debug)]
pub enum Decision {
    Known(bool),
    Verify(Pending),
}

/// Credentials waiting for a bcrypt verification.
pub struct Pending {
    user: String,
    password: String,
    key: u64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}
/// A fallback for [`BasicAuth::dummy`] (there is always a configured hash).
fn default_dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("hybrid-node-agent", bcrypt::DEFAULT_COST).unwrap_or_default())
}

impl BasicAuth {
    pub(super) fn new(users: BTreeMap<String, String>) -> Self {
        // Unknown users are verified against the configured hash of the
        // highest cost, so their answer takes as long as a known user's (a
        // fixed cost-12 dummy beside cost-10 hashes told names apart by
        // time). Its verdict is discarded: the user is unknown.
        let dummy = users
            .values()
            .filter_map(|h| Some((h.parse::<bcrypt::HashParts>().ok()?.get_cost(), h)))
            .max_by_key(|(cost, _)| *cost)
            .map(|(_, h)| h.clone());
        BasicAuth {
            users,
            dummy,
            cache: Mutex::new(HashMap::new()),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The hash an unknown user's password is verified against.
    fn dummy(&self) -> &str {
        self.dummy
            .as_deref()
            .unwrap_or_else(|| default_dummy_hash())
    }

    /// Whether an `Authorization` header value grants access, bcrypt
    /// included (the server uses [`BasicAuth::decide`] and runs
    /// [`BasicAuth::verify`] off the runtime thread).
    #[cfg(test)]
    pub fn allows(&self, header: Option<&HeaderValue>) -> bool {
        match self.decide(header) {
            Decision::Known(ok) => ok,
            Decision::Verify(v) => self.verify(v),
        }
    }

    /// Answers at once when it can (no or malformed credentials, or ones
    /// already verified); otherwise says what must still be verified.
    pub fn decide(&self, header: Option<&HeaderValue>) -> Decision {
        let Some(encoded) = header.and_then(|h| h.to_str().ok()).and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        }) else {
            return Decision::Known(false);
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return Decision::Known(false);
        };
        let Some((user, password)) = std::str::from_utf8(&decoded)
            .ok()
            .and_then(|s| s.split_once(':'))
        else {
            return Decision::Known(false);
        };
        let key = {
            let mut h = self.hasher.build_hasher();
            user.hash(&mut h);
            password.hash(&mut h);
            h.finish()
        };
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Decision::Known(*v);
        }
        Decision::Verify(Pending {
            user: user.to_owned(),
            password: password.to_owned(),
            key,
        })
    }

    /// Runs bcrypt for `p` (slow on purpose) and remembers the answer.
    pub fn verify(&self, p: Pending) -> bool {
        let ok = match self.users.get(&p.user) {
            Some(hash) => bcrypt::verify(&p.password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(&p.password, self.dummy());
                false
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(p.key, ok);
        ok
    }
}

/// The `Authorization` header a client sends for `user:password`.
#[cfg(test)]
pub(crate) fn basic_header(credentials: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security review (issue 15, finding 7): unknown users were checked
    /// against a cost-12 dummy while the configured hashes had cost 10
    /// (142 ms against 564 ms): user names could be told apart by time.
    #[test]
    fn unknown_users_are_checked_at_the_configured_cost() {
        let users = BTreeMap::from([
            ("a".to_owned(), bcrypt::hash("pa", 4).expect("hash")),
            ("b".to_owned(), bcrypt::hash("pb", 5).expect("hash")),
        ]);
        let auth = BasicAuth::new(users);
        let cost = |h: &str| h.parse::<bcrypt::HashParts>().expect("bcrypt").get_cost();
        assert_eq!(cost(auth.dummy()), 5, "the highest configured cost");
        let header = basic_header;
        // The dummy's own password does not let an unknown user in.
        assert!(!auth.allows(Some(&header("nobody:pb"))));
        assert!(auth.allows(Some(&header("b:pb"))));
    }

    #[test]
    fn htpasswd_2y_hashes_are_accepted() {
        // htpasswd -B writes $2y$; the algorithm is the same as $2b$.
        let hash = bcrypt::hash("pw", 4)
            .expect("hash")
            .replacen("$2b$", "$2y$", 1);
        let auth = BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)]));
        assert!(auth.allows(Some(&basic_header("u:pw"))));
    }
}

//! Registry names and mirror URLs as the agent accepts them from either
//! source. A name becomes a directory under certs.d
//! (`certs.d/<name>/hosts.toml`), a trust anchor file name and a metric
//! label, so it must be exactly one plain path component: `host`,
//! `host:port`, `[IPv6]` or `[IPv6]:port`, or `_default`. Both sources —
//! the agent config's `[[registry]]` and the NodeConfig's inline
//! containerd config — are checked by [`validate`] alone.

use std::fmt;

/// Why a name is not a registry name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// Holds a character no host name has (`/`, a quote, a control
    /// character, a space, …).
    Character(char),
    /// An empty label (`.`, `..`, `a..b`, a leading or trailing dot), a
    /// label over 63 bytes, or one that starts or ends with `-`.
    Label,
    TooLong,
    /// Not 1–65535.
    Port,
    /// `[…]` that does not hold an IPv6 address.
    Ipv6,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("it is empty"),
            NameError::Character(c) => write!(f, "it contains {c:?}"),
            NameError::Label => f.write_str(
                "it has an empty label (`.`, `..`, a leading or trailing dot) or a label that is \
                 over 63 characters or starts or ends with `-`",
            ),
            NameError::TooLong => f.write_str("it is longer than 253 characters"),
            NameError::Port => f.write_str("its port is not a number from 1 to 65535"),
            NameError::Ipv6 => f.write_str("the part in brackets is not an IPv6 address"),
        }
    }
}

/// What a registry name may look like, for messages.
pub const EXPECTED: &str = "host, host:port, [IPv6]:port or _default";

/// Checks that `name` is a registry name (see the module doc).
pub fn validate(name: &str) -> Result<(), NameError> {
    if name == "_default" {
        return Ok(());
    }
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
    {
        return Err(NameError::Character(c));
    }
    if let Some(rest) = name.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or(NameError::Ipv6)?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| NameError::Ipv6)?;
        return match after {
            "" => Ok(()),
            _ => after.strip_prefix(':').map_or(Err(NameError::Ipv6), port),
        };
    }
    let host = match name.split_once(':') {
        Some((host, p)) => {
            port(p)?;
            host
        }
        None => name,
    };
    if let Some(c) = host.chars().find(|c| matches!(c, ':' | '[' | ']')) {
        return Err(NameError::Character(c));
    }
    if host.len() > 253 {
        return Err(NameError::TooLong);
    }
    let label_ok =
        |l: &str| (1..=63).contains(&l.len()) && !l.starts_with('-') && !l.ends_with('-');
    if !host.split('.').all(label_ok) {
        return Err(NameError::Label);
    }
    Ok(())
}

/// `url` with its user information (`user:password@`) shown as `***@`, or
/// `None` when it has none. Credentials belong in the registry's `auth`
/// settings: in a mirror URL they would end up in hosts.toml, check
/// summaries and metric labels.
pub fn redact_userinfo(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (_, host) = rest[..authority_end].rsplit_once('@')?;
    let sep = if url.contains("://") { "://" } else { "" };
    Some(format!("{scheme}{sep}***@{host}{}", &rest[authority_end..]))
}

fn port(p: &str) -> Result<(), NameError> {
    let ok = !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok_and(|n| n > 0);
    if ok {
        Ok(())
    } else {
        Err(NameError::Port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("https://robot:s3cr3t@mirror.local:8443/v2?x=a@b").as_deref(),
            Some("https://***@mirror.local:8443/v2?x=a@b")
        );
        assert_eq!(
            redact_userinfo("https://u:p@ss@m").as_deref(),
            Some("https://***@m")
        );
        assert_eq!(redact_userinfo("https://mirror.local/a@b"), None);
        assert_eq!(redact_userinfo("https://mirror.local"), None);
    }

    #[test]
    fn registry_names() {
        for ok in [
            "_default",
            "harbor.example.internal",
            "harbor.example.internal:5000",
            "localhost",
            "10.0.0.5:443",
            "[fd00::10]:5000",
            "[::1]",
            "docker.io",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", NameError::Empty),
            (".", NameError::Label),
            ("..", NameError::Label),
            ("a..b", NameError::Label),
            (".hidden", NameError::Label),
            ("-x", NameError::Label),
            ("[..]", NameError::Ipv6),
            ("[..]:5000", NameError::Ipv6),
            ("[fd00::10]5000", NameError::Ipv6),
            ("evil/sub", NameError::Character('/')),
            ("../etc", NameError::Character('/')),
            ("https://x", NameError::Character('/')),
            ("x\"\ny", NameError::Character('"')),
            ("x y", NameError::Character(' ')),
            ("h:0", NameError::Port),
            ("h:65536", NameError::Port),
            ("h:+1", NameError::Character('+')),
            ("h:5000:1", NameError::Port),
            ("*", NameError::Character('*')),
        ] {
            assert_eq!(validate(bad), Err(why), "{bad:?}");
        }
        assert_eq!(validate(&"a".repeat(64)), Err(NameError::Label));
        assert_eq!(validate(&"a".repeat(254)), Err(NameError::TooLong));
        assert_eq!(
            validate(&vec!["a".repeat(60); 5].join(".")),
            Err(NameError::TooLong)
        );
    }
}

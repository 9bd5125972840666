use super::*;
use std::time::Duration;

fn p(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("/etc/hybrid-node-agent/config.toml"), text)
}

#[test]
fn empty_config_is_all_defaults() {
    assert_eq!(p("").ok(), Some(Config::default()));
    let c = Config::default();
    assert_eq!(c.agent.listen.port(), 10063);
    assert_eq!(c.lifecycle.kubelet_healthz.to_string(), "127.0.0.1:10248");
}

#[test]
fn values_are_read() {
    let c = p(r#"
[agent]
listen = "127.0.0.1:9100"
log_level = "debug"
probe_timeout = "1m30s"

[lifecycle]
interval = "500ms"
"#)
    .expect("valid config");
    assert_eq!(c.agent.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(c.agent.probe_timeout.get(), Duration::from_secs(90));
    assert_eq!(c.lifecycle.interval.get(), Duration::from_millis(500));
}

#[test]
fn unknown_key_names_line_and_column() {
    let err = p("[agent]\nlisten = \"127.0.0.1:1\"\n  lissen = 3\n").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("/etc/hybrid-node-agent/config.toml:3:3: unknown field `lissen`"),
        "{msg}"
    );
    assert!(msg.contains("expected one of"), "{msg}");
}

#[test]
fn unknown_table_is_rejected() {
    let err = p("[agnet]\n").unwrap_err().to_string();
    assert!(err.contains(":1:2: unknown field `agnet`"), "{err}");
}

#[test]
fn bad_value_names_line_and_column() {
    let err = p("[agent]\n\nlisten = \"localhost\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.toml:3:10:"), "{err}");
    assert!(
        err.contains("agent.listen: invalid socket address"),
        "{err}"
    );
    assert!(!err.contains("localhost"), "values are never quoted: {err}");

    let err = p("[lifecycle]\ninterval = \"10 parsecs\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.toml:2:12:"), "{err}");
    assert!(err.contains("lifecycle.interval: "), "{err}");
    assert!(err.contains("expected a duration"), "{err}");
}

#[test]
fn syntax_error_names_line_and_column() {
    let err = p("[agent\nlisten = 1\n").unwrap_err();
    match err {
        ConfigError::Parse { line, column, .. } => assert_eq!((line, column), (1, 7)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn semantic_errors_are_reported() {
    let err = p("[agent]\nmax_connections = 0\n").unwrap_err().to_string();
    assert!(err.contains("max_connections must be at least 1"), "{err}");
    let err = p("[agent]\nlog_level = \"loud\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("agent.log_level"), "{err}");
}

#[test]
fn intervals() {
    let ok = |s: &str| s.parse::<Interval>().map(Interval::get);
    assert_eq!(ok("15s"), Ok(Duration::from_secs(15)));
    assert_eq!(ok("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(ok("250ms"), Ok(Duration::from_millis(250)));
    for bad in [
        "",
        "0s",
        "15",
        "s",
        "3 days",
        "1d",
        "-1s",
        "18446744073709551616s",
    ] {
        assert!(ok(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn missing_default_config_means_defaults_but_missing_explicit_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let implicit = ConfigSource {
        path: path.clone(),
        explicit: false,
    };
    assert_eq!(implicit.load().ok(), Some(Config::default()));
    let explicit = ConfigSource {
        path,
        explicit: true,
    };
    let err = explicit.load().unwrap_err().to_string();
    assert!(err.contains("absent.toml"), "{err}");
}

/// `packaging/config.toml` has every key commented out with its default.
/// Uncommented, it must parse to the defaults and name every key.
#[test]
fn example_config_documents_every_key_with_its_default() {
    let text = include_str!("../../../packaging/config.toml");
    assert_eq!(
        p(text).ok(),
        Some(Config::default()),
        "as shipped: all defaults"
    );
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            // `# [table]` and `# key = value`; indented lines are examples.
            Some(rest)
                if rest.starts_with('[')
                    || (rest.starts_with(|c: char| c.is_ascii_alphabetic())
                        && rest.contains(" = ")) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        p(&uncommented).ok(),
        Some(Config::default()),
        "documented values differ from the defaults"
    );
    let documented: toml::Table = toml::from_str(&uncommented).expect("toml");
    let actual = toml::Table::try_from(Config::default()).expect("serialize");
    let keys = |t: &toml::Table| -> Vec<String> {
        let mut k: Vec<String> = t
            .iter()
            .filter(|(section, _)| section.as_str() != "registry")
            .filter(|(section, _)| section.as_str() != "target")
            .flat_map(|(section, v)| {
                v.as_table()
                    .into_iter()
                    .flat_map(|t| t.keys())
                    .map(move |k| format!("{section}.{k}"))
            })
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&documented), keys(&actual));
}

#[test]
fn registry_entries_are_validated() {
    let ok = p(r#"
[[registry]]
host = "harbor.example.internal"
ca_file = "/etc/pki/harbor-ca.pem"
mirror_only = true
mirrors = [{ url = "https://mirror.example.internal:8443" }]
"#)
    .expect("valid");
    assert_eq!(
        ok.registry[0].mirrors[0].capabilities,
        vec!["pull", "resolve"]
    );
    assert!(ok.registry[0].system_trust);
    for (text, want) in [
        ("[[registry]]\nhost = \"https://x\"\n", "no scheme or path"),
        ("[[registry]]\nhost = \"x\"\nskip_verify = true\n", "allow_skip_verify = true"),
        ("[[registry]]\nhost = \"x\"\nca_file = \"/a\"\nca_pem = \"b\"\n", "not both"),
        ("[[registry]]\nhost = \"x\"\nmirror_only = true\n", "needs at least one mirror"),
        ("[[registry]]\nhost = \"x\"\nmirrors = [{ url = \"ftp://m\" }]\n", "must start with https://"),
        ("[[registry]]\nhost = \"x\"\nmirrors = [{ url = \"https://m\", capabilities = [\"pul\"] }]\n", "unknown capability \"pul\""),
        ("[[registry]]\nhost = \"x\"\n[[registry]]\nhost = \"x\"\n", "declared twice"),
        ("[[registry]]\nhost = \"x\"\nclient_cert = \"/c\"\n", "go together"),
    ] {
        let err = p(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
    let unsafe_ok = p("[registries]\nallow_skip_verify = true\n[[registry]]\nhost = \"x:5000\"\nskip_verify = true\n");
    assert!(unsafe_ok.is_ok());
}

/// Security review (issue 15, finding 5): `.`, `..` and `[..]` passed,
/// putting hosts.toml in the certs.d root or its parent.
#[test]
fn registry_hosts_that_leave_their_directory_are_rejected() {
    for host in [".", "..", "[..]", "[..]:5000", "a/b", "", "x\\\"\\ny"] {
        let text = format!("[[registry]]\nhost = \"{host}\"\n");
        let err = p(&text).expect_err(&text).to_string();
        assert!(
            err.contains("must be a name, name:port or _default"),
            "{text}: {err}"
        );
    }
    assert!(p("[[registry]]\nhost = \"[fd00::10]:5000\"\n").is_ok());
}

/// Security review (issue 15, finding 10): credentials in a mirror URL
/// are refused, and the refusal does not repeat them.
#[test]
fn mirror_url_credentials_are_rejected_without_echoing_them() {
    let text = "[[registry]]\nhost = \"harbor.local\"\nmirrors = [{ url = \"https://robot:hunter2@mirror.local:8443\" }]\n";
    let err = p(text).expect_err("credentials in a URL").to_string();
    assert!(err.contains("registry harbor.local"), "{err}");
    assert!(err.contains("https://***@mirror.local:8443"), "{err}");
    assert!(err.contains("auth"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("robot"), "{err}");
}

#[test]
fn intervals_round_trip() {
    for s in ["500ms", "15s", "10m", "1h", "90s", "1500ms"] {
        let i: Interval = s.parse().expect("parse");
        let v = toml::Value::try_from(i).expect("serialize");
        assert_eq!(v.as_str(), Some(s));
    }
}

#[test]
fn line_column_counts_characters() {
    let text = "a\nbé=c\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 2), (2, 1));
    assert_eq!(line_column(text, 5), (2, 3));
    assert_eq!(line_column(text, 999), (3, 1));
}

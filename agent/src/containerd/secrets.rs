//! Credentials inside a containerd config (`registry.configs.<host>.auth`):
//! found by walking the parsed TOML, so every spelling of a key — dotted
//! (`configs."h".auth.password = …`), quoted, inline tables, multi-line
//! strings — is recognised the same way. Used to redact `render`'s output
//! and to strip the scratch copy handed to `containerd config dump`.

use toml_edit::{DocumentMut, Item, Table, Value};

/// What a credential's value becomes.
pub const PLACEHOLDER: &str = "<redacted: keep your current value>";

/// Keys whose values are credentials (compared ignoring ASCII case):
/// containerd's `auth` table holds `password`, `auth` (base64 user:password)
/// and `identitytoken`; the rest are common spellings of the same thing.
const SECRET_KEYS: [&str; 7] = [
    "password",
    "auth",
    "identitytoken",
    "identity_token",
    "token",
    "registrytoken",
    "secret",
];

/// Whether `key` names a credential.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// Replaces every credential value in `doc` with [`PLACEHOLDER`], keeping
/// the layout. A table under a secret key (`auth = { username = …, … }`) is
/// walked, not replaced: the user name is not a secret and helps the reader.
pub fn redact(doc: &mut DocumentMut) {
    redact_table(doc.as_table_mut());
}

fn redact_table(t: &mut Table) {
    for (key, item) in t.iter_mut() {
        let secret = is_secret_key(key.get());
        redact_item(item, secret);
    }
}

fn redact_item(item: &mut Item, secret: bool) {
    match item {
        Item::Table(t) => redact_table(t),
        Item::ArrayOfTables(a) => a.iter_mut().for_each(redact_table),
        Item::Value(v) => redact_value(v, secret),
        Item::None => {}
    }
}

fn redact_value(v: &mut Value, secret: bool) {
    match v {
        Value::InlineTable(t) => {
            for (key, v) in t.iter_mut() {
                let secret = is_secret_key(key.get());
                redact_value(v, secret);
            }
        }
        _ if secret => {
            let decor = v.decor().clone();
            *v = Value::from(PLACEHOLDER);
            *v.decor_mut() = decor;
        }
        Value::Array(a) => a.iter_mut().for_each(|v| redact_value(v, false)),
        _ => {}
    }
}

/// Every credential value left in `doc` that is not the placeholder, as
/// (dotted key path, value as written): empty once [`redact`] ran. For tests
/// and the fuzz targets' invariants.
pub fn unredacted(doc: &DocumentMut) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk_table(doc.as_table(), "", &mut out);
    out
}

fn walk_table(t: &Table, path: &str, out: &mut Vec<(String, String)>) {
    for (key, item) in t.iter() {
        let p = format!("{path}.{key}");
        let secret = is_secret_key(key);
        match item {
            Item::Table(t) => walk_table(t, &p, out),
            Item::ArrayOfTables(a) => a.iter().for_each(|t| walk_table(t, &p, out)),
            Item::Value(v) => walk_value(v, &p, secret, out),
            Item::None => {}
        }
    }
}

fn walk_value(v: &Value, path: &str, secret: bool, out: &mut Vec<(String, String)>) {
    match v {
        Value::InlineTable(t) => {
            for (key, v) in t.iter() {
                walk_value(v, &format!("{path}.{key}"), is_secret_key(key), out);
            }
        }
        _ if secret && v.as_str() != Some(PLACEHOLDER) => {
            out.push((path.to_owned(), v.to_string()));
        }
        _ if secret => {}
        Value::Array(a) => a.iter().for_each(|v| walk_value(v, path, false, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_is_redacted() {
        let text = "version = 2\n\
[plugins.\"io.containerd.grpc.v1.cri\".registry]\n\
configs.\"h1\".auth.password = \"dotted-secret\"\n\
[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"h2\"]\n\
auth.password = \"dotted2-secret\"\n\
[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"h3\".auth]\n\
username = \"robot$u\"\n\
password\t= \"tab-secret\"\n\
'identitytoken' = \"single-quoted-secret\"\n\
auth = \"\"\"\nmulti\nline-secret\"\"\"\n\
[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"h4\"]\n\
auth = { username = \"u4\", password = \"inline-secret\" }\n\
[[x]]\n\
token = ['array-secret']\n";
        let mut doc: DocumentMut = text.parse().expect("toml");
        assert_eq!(unredacted(&doc).len(), 7, "{:?}", unredacted(&doc));
        redact(&mut doc);
        let out = doc.to_string();
        for s in [
            "dotted-secret",
            "dotted2-secret",
            "tab-secret",
            "single-quoted-secret",
            "line-secret",
            "inline-secret",
            "array-secret",
        ] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert!(out.contains("username = \"robot$u\""), "{out}");
        assert!(out.contains("username = \"u4\""), "{out}");
        let again: DocumentMut = out.parse().expect("still TOML");
        assert!(unredacted(&again).is_empty(), "{out}");
    }
}

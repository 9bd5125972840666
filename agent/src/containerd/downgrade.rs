//! Making a `containerd.config` loadable by every containerd line, for
//! `render`: a `version = 3` file becomes version 2 (1.7 refuses version 3,
//! 1.6 ignores it, and beside nodeadm's version 2 main config 2.x loses
//! nodeadm's settings; a version 2 import is read by all three and merged
//! by 2.x), and syntax go-toml v1 rejects is rewritten in TOML 1.0.

use crate::model::containerd::{CRI_IMAGES_V3, CRI_RUNTIME_V3, CRI_V2};
use toml_edit::{DocumentMut, Item, Table, Value};

/// Where a key of the version 3 images plugin lives in version 2, as a path
/// under the CRI plugin; `None`: it has no version 2 form and is dropped.
fn images_key_v2(key: &str) -> Option<&'static [&'static str]> {
    Some(match key {
        "snapshotter" => &["containerd", "snapshotter"],
        "disable_snapshot_annotations" => &["containerd", "disable_snapshot_annotations"],
        "discard_unpacked_layers" => &["containerd", "discard_unpacked_layers"],
        "registry" => &["registry"],
        "image_decryption" => &["image_decryption"],
        "max_concurrent_downloads" => &["max_concurrent_downloads"],
        "image_pull_progress_timeout" => &["image_pull_progress_timeout"],
        "image_pull_with_sync_fs" => &["image_pull_with_sync_fs"],
        "stats_collect_period" => &["stats_collect_period"],
        _ => return None,
    })
}

/// Rewrites a version 3 document as version 2 in place; returns one line
/// per change for `render`'s notes.
pub fn to_v2(doc: &mut DocumentMut) -> Vec<String> {
    let mut notes = Vec::new();
    if doc.get("version").and_then(Item::as_integer).unwrap_or(1) < 3 {
        return notes;
    }
    doc.insert("version", toml_edit::value(2));
    notes.push(
        "version = 3 written as version = 2 (read by containerd 1.6, 1.7 and 2.x)".to_owned(),
    );
    let Some(plugins) = doc.get_mut("plugins").and_then(Item::as_table_like_mut) else {
        return notes;
    };
    let images = plugins.remove(CRI_IMAGES_V3).and_then(into_table);
    let runtime = plugins.remove(CRI_RUNTIME_V3).and_then(into_table);
    if images.is_none() && runtime.is_none() {
        return notes;
    }
    let mut cri = plugins
        .remove(CRI_V2)
        .and_then(into_table)
        .unwrap_or_default();
    cri.set_implicit(true);
    if let Some(runtime) = runtime {
        for (k, v) in runtime {
            merge(&mut cri, &[k.as_str()], v);
        }
        notes.push(format!(
            "[plugins.\"{CRI_RUNTIME_V3}\"] moved to [plugins.\"{CRI_V2}\"]"
        ));
    }
    if let Some(images) = images {
        for (k, v) in images {
            if k == "pinned_images" {
                let sandbox = v.get("sandbox").and_then(Item::as_str).map(str::to_owned);
                if let Some(s) = sandbox {
                    merge(&mut cri, &["sandbox_image"], toml_edit::value(s));
                    notes.push("pinned_images.sandbox written as sandbox_image".to_owned());
                }
                continue;
            }
            match images_key_v2(&k) {
                Some(path) => merge(&mut cri, path, v),
                None => notes.push(format!(
                    "{CRI_IMAGES_V3} {k} dropped: it has no version 2 form"
                )),
            }
        }
        notes.push(format!(
            "[plugins.\"{CRI_IMAGES_V3}\"] moved to [plugins.\"{CRI_V2}\"]"
        ));
    }
    plugins.insert(CRI_V2, Item::Table(cri));
    notes
}

fn into_table(item: Item) -> Option<Table> {
    match item {
        Item::Table(t) => Some(t),
        Item::Value(Value::InlineTable(t)) => Some(t.into_table()),
        _ => None,
    }
}

/// Puts `item` at `path` under `table`, merging tables key by key.
fn merge(table: &mut Table, path: &[&str], item: Item) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = table;
    for key in parents {
        if !cur.contains_key(key) {
            let mut t = Table::new();
            t.set_implicit(true);
            cur.insert(key, Item::Table(t));
        }
        let Some(next) = cur.get_mut(key).and_then(|i| {
            if let Item::Value(Value::InlineTable(t)) = i {
                *i = Item::Table(t.clone().into_table());
            }
            i.as_table_mut()
        }) else {
            return;
        };
        cur = next;
    }
    let existing = cur.get_mut(last).and_then(|i| {
        if let Item::Value(Value::InlineTable(t)) = i {
            *i = Item::Table(t.clone().into_table());
        }
        i.as_table_mut()
    });
    match (existing, into_table(item.clone())) {
        (Some(dst), Some(src)) => {
            for (k, v) in src {
                merge(dst, &[k.as_str()], v);
            }
        }
        _ => {
            cur.insert(last, item);
        }
    }
}

/// Rewrites, in TOML 1.0, what go-toml v1 rejects: trailing commas in
/// inline tables, `\e`/`\xHH` escapes (the string is re-encoded), times
/// without seconds. Quoted table keys containing `]` cannot be rewritten
/// as tables; `render` moves the registry settings that hold them to
/// hosts.toml, so none is left. Returns whether anything changed.
pub fn to_toml10(doc: &mut DocumentMut) -> bool {
    let mut changed = false;
    fix_table(doc.as_table_mut(), &mut changed);
    changed
}

fn fix_table(table: &mut Table, changed: &mut bool) {
    for (_, item) in table.iter_mut() {
        fix_item(item, changed);
    }
}

fn fix_item(item: &mut Item, changed: &mut bool) {
    match item {
        Item::Table(t) => fix_table(t, changed),
        Item::ArrayOfTables(a) => {
            for t in a.iter_mut() {
                fix_table(t, changed);
            }
        }
        Item::Value(v) => fix_value(v, changed),
        Item::None => {}
    }
}

fn fix_value(value: &mut Value, changed: &mut bool) {
    match value {
        Value::InlineTable(t) => {
            if t.trailing_comma() {
                t.set_trailing_comma(false);
                *changed = true;
            }
            for (_, v) in t.iter_mut() {
                fix_value(v, changed);
            }
        }
        Value::Array(a) => {
            for v in a.iter_mut() {
                fix_value(v, changed);
            }
        }
        Value::String(s) => {
            let raw = s.display_repr();
            if raw.starts_with('"') && (raw.contains("\\e") || raw.contains("\\x")) {
                s.fmt();
                *changed = true;
            }
        }
        Value::Datetime(d) => {
            // A time without seconds (TOML 1.1): write them, as 00.
            let mut value = *d.value();
            if let Some(t) = value.time.as_mut().filter(|t| t.second.is_none()) {
                t.second = Some(0);
                let decor = d.decor().clone();
                *d = toml_edit::Formatted::new(value);
                *d.decor_mut() = decor;
                *changed = true;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containerd::loadability::gotoml_v1_rejects;
    use crate::model::containerd::ContainerdConfig;

    #[test]
    fn version_3_becomes_version_2() {
        let mut doc: DocumentMut = "version = 3\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = \"p:1\"\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n"
            .parse()
            .expect("toml");
        let notes = to_v2(&mut doc);
        assert!(!notes.is_empty());
        let c = ContainerdConfig::parse(&doc.to_string()).expect("toml");
        assert_eq!(c.version(), 2);
        assert_eq!(c.sandbox_image().as_deref(), Some("p:1"));
        assert_eq!(c.config_path().as_deref(), Some("/etc/containerd/certs.d"));
        assert_eq!(c.runtime("runc").and_then(|r| r.systemd_cgroup), Some(true));
        assert_eq!(c.cri_tables(), vec![CRI_V2], "{doc}");
    }

    #[test]
    fn toml_1_1_syntax_is_rewritten() {
        let text = "version = 2\nnote = \"bell\\e\"\nx = { a = 1, }\nt = 07:32\n";
        let mut doc: DocumentMut = text.parse().expect("toml");
        assert!(to_toml10(&mut doc));
        let out = doc.to_string();
        assert!(gotoml_v1_rejects(&out).is_empty(), "{out}");
        let again: DocumentMut = out.parse().expect("toml");
        assert_eq!(again.get("note").and_then(Item::as_str), Some("bell\u{1b}"));
    }
}

//! systemd units as files under `--root` (the preflight limits, proxy and
//! firewall checks, the credentials domain's kubelet environment): where a unit's file and drop-ins
//! are, their `[Service]` assignments in the order systemd applies them
//! (with file and line, so a verdict can name them), and whether a unit is
//! enabled. Read from disk rather than asked of `systemctl show`, so the
//! same code judges this host and a tree under `--root`, before the units
//! are even loaded.
//!
//! Search paths and precedence are systemd.unit(5)'s "Unit File Load Path"
//! for the system manager; drop-ins (`<unit>.d/*.conf`, and the
//! `service.d/*.conf` that applies to every service) are applied in the
//! lexical order of their file names, a file in an earlier directory
//! masking one of the same name in a later one.

use crate::host::read_text;
use crate::host::Host;
use std::collections::BTreeMap;

/// The system unit directories, highest precedence first.
pub const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// One `Key=value` line of a unit file, with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    /// Host path of the file.
    pub file: String,
    pub line: usize,
}

impl Assignment {
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A unit as systemd would load it: its file, then its drop-ins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    /// Host path of the unit file; `None`: not installed (drop-ins may
    /// still exist, written ahead of the package).
    pub file: Option<String>,
    /// Host paths of the drop-ins, in the order they apply.
    pub dropins: Vec<String>,
    /// Every assignment in `section`, in the order they apply.
    pub assignments: Vec<Assignment>,
}

impl Unit {
    /// The effective value of `key`: the last assignment wins, and an empty
    /// one resets it (systemd.exec(5)). `None`: not set.
    pub fn last(&self, key: &str) -> Option<&Assignment> {
        match self.assignments.iter().rev().find(|a| a.key == key) {
            Some(a) if a.value.trim().is_empty() => None,
            other => other,
        }
    }

    /// Every assignment of `key` since the last empty one (for list
    /// settings such as `Environment=`).
    pub fn all(&self, key: &str) -> Vec<&Assignment> {
        let mut out = Vec::new();
        for a in self.assignments.iter().filter(|a| a.key == key) {
            if a.value.trim().is_empty() {
                out.clear();
            } else {
                out.push(a);
            }
        }
        out
    }
}

/// Reads `name` (`kubelet.service`) and its drop-ins, keeping the
/// assignments of `section` (`Service`).
pub fn load(host: &Host, name: &str, section: &str) -> Unit {
    let file = UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| host.path(p).is_file());
    // Drop-in file name → host path: every directory's drop-ins are applied
    // together in the lexical order of their names; of two files with one
    // name, the unit's own directory beats `service.d/`, and a directory
    // earlier in the search path beats a later one.
    let mut dropins: BTreeMap<String, String> = BTreeMap::new();
    let kind = name.rsplit_once('.').map_or("service", |(_, k)| k);
    let dirs = UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{name}.d"))
        .chain(UNIT_DIRS.iter().map(|d| format!("{d}/{kind}.d")));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(host.path(&dir)) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".conf") {
                dropins
                    .entry(n.clone())
                    .or_insert_with(|| format!("{dir}/{n}"));
            }
        }
    }
    let mut unit = Unit {
        file: file.clone(),
        dropins: dropins.into_values().collect(),
        assignments: Vec::new(),
    };
    for path in file.iter().chain(unit.dropins.clone().iter()) {
        if let Ok(text) = read_text(host, path) {
            unit.assignments.extend(parse_section(&text, section, path));
        }
    }
    unit
}

/// The `Key=value` lines of `[section]` in an INI-style systemd file
/// (unit files, `system.conf`), continuation lines (`\` at the end) joined.
pub fn parse_section(text: &str, section: &str, file: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut pending: Option<(String, String, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        if let Some((key, mut value, at)) = pending.take() {
            let (part, more) = match raw.trim_end().strip_suffix('\\') {
                Some(p) => (p, true),
                None => (raw.trim_end(), false),
            };
            value.push(' ');
            value.push_str(part.trim());
            if more {
                pending = Some((key, value, at));
            } else if current == section {
                out.push(Assignment {
                    key,
                    value,
                    file: file.to_owned(),
                    line: at,
                });
            }
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim().to_owned(), value.trim());
        match value.strip_suffix('\\') {
            Some(v) => pending = Some((key, v.trim().to_owned(), line_no)),
            None if current == section => out.push(Assignment {
                key,
                value: value.to_owned(),
                file: file.to_owned(),
                line: line_no,
            }),
            None => {}
        }
    }
    out
}

/// Whether `name` is enabled: a link to it in a `*.wants`/`*.requires`
/// directory under `/etc/systemd/system` (what `systemctl enable` makes),
/// and it is not masked.
pub fn enabled(host: &Host, name: &str) -> bool {
    let etc = "/etc/systemd/system";
    if let Ok(target) = std::fs::read_link(host.path(format!("{etc}/{name}"))) {
        if target == std::path::Path::new("/dev/null") {
            return false;
        }
    }
    let Ok(entries) = std::fs::read_dir(host.path(etc)) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let dir = e.file_name().to_string_lossy().into_owned();
        (dir.ends_with(".wants") || dir.ends_with(".requires"))
            && std::fs::symlink_metadata(e.path().join(name)).is_ok()
    })
}

/// Splits an `Environment=` value into `NAME=value` pairs: space-separated,
/// each optionally in double or single quotes (systemd.exec(5)).
pub fn environment_pairs(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == first {
                    break;
                }
                if c == '\\' && first == '"' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                    continue;
                }
                word.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        if let Some((k, v)) = word.split_once('=') {
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

/// A path as systemd names its unit (`systemd-escape --path`):
/// `/dev/sda2` → `dev-sda2`, `/swap file` → `swap\x20file`.
pub fn escape_path(path: &str) -> String {
    let trimmed: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if trimmed.is_empty() {
        return "-".to_owned();
    }
    let joined = trimmed.join("/");
    let mut out = String::new();
    for (i, b) in joined.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

//! The shape the design asks of `agent/src`, checked on every test run:
//!
//! - imports between top-level modules form no circle;
//! - shared modules (models, edges, the check/config/host vocabulary,
//!   metrics infrastructure) import no domain;
//! - a domain imports no other domain (they meet in `model` and `facts`);
//! - only the program's entry points (`app`, `commands`, `daemon`) import
//!   `assemble`, the module that lists every domain;
//! - no domain's `mod.rs` is over 400 lines;
//! - no public function or trait method returns `Result<_, String>`;
//! - no test fake is compiled into the release binary;
//! - `unsafe` appears in one module only (gpu/nvml_raw.rs, an NVML call
//!   nvml-wrapper does not wrap): the workspace denies it everywhere else.
//!
//! The graph is read from the source (`crate::x` paths, test modules left
//! out): a text scan, not a compiler, so it errs on the side of seeing an
//! edge.

use hybrid_node_agent_e2e::repo_root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOMAINS: [&str; 13] = [
    "lifecycle",
    "nodeconfig",
    "containerd",
    "registry",
    "gpu",
    "net",
    "dns",
    "path",
    "ports",
    "bandwidth",
    "credentials",
    "preflight",
    "endpoints",
];
const ENTRY: [&str; 4] = ["app", "commands", "daemon", "assemble"];

fn src() -> PathBuf {
    repo_root().join("agent/src")
}

/// Every `.rs` file of a top-level module.
fn files_of(module: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{module}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut stack = vec![src().join(module)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn modules() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(src())
        .expect("agent/src")
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_stem()?.to_str()?.to_owned();
            (p.is_dir() || (p.extension()? == "rs" && name != "lib" && name != "main"))
                .then_some(name)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The source without `#[cfg(test)]` items and comments.
fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // Skip the item: up to its `;` or its balanced `{…}` block.
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named by `crate::x` paths (also inside `crate::{…}`).
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| known.contains(m));
    out
}

fn graph() -> BTreeMap<String, BTreeMap<String, Vec<PathBuf>>> {
    let mods = modules();
    let known: BTreeSet<String> = mods.iter().cloned().collect();
    let mut g: BTreeMap<String, BTreeMap<String, Vec<PathBuf>>> = BTreeMap::new();
    for m in &mods {
        let edges = g.entry(m.clone()).or_default();
        for f in files_of(m) {
            for to in imports(&production_code(&f), &known) {
                if &to != m {
                    edges.entry(to).or_default().push(f.clone());
                }
            }
        }
    }
    g
}

fn shown(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.strip_prefix(src()).unwrap_or(f).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let g = graph();
    // Depth-first search with colours; a grey successor closes a circle.
    fn visit<'a>(
        m: &'a str,
        g: &'a BTreeMap<String, BTreeMap<String, Vec<PathBuf>>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(m, 1);
        path.push(m);
        for to in g.get(m).map(|e| e.keys()).into_iter().flatten() {
            match state.get(to.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == to).unwrap_or(0);
                    let mut circle: Vec<String> =
                        path[start..].iter().map(|s| (*s).to_owned()).collect();
                    circle.push(to.clone());
                    return Some(circle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(to, g, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(m, 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        if !state.contains_key(m.as_str()) {
            if let Some(circle) = visit(m, &g, &mut state, &mut Vec::new()) {
                let why: Vec<String> = circle
                    .windows(2)
                    .map(|w| format!("{} -> {} ({})", w[0], w[1], shown(&g[&w[0]][&w[1]])))
                    .collect();
                panic!("import circle: {}", why.join("; "));
            }
        }
    }
}

#[test]
fn domains_import_no_other_domain_and_shared_modules_import_none() {
    let g = graph();
    let mut wrong = Vec::new();
    for (from, edges) in &g {
        if ENTRY.contains(&from.as_str()) {
            continue;
        }
        for (to, files) in edges {
            if DOMAINS.contains(&to.as_str()) {
                let what = if DOMAINS.contains(&from.as_str()) {
                    "domain imports domain"
                } else {
                    "shared module imports a domain"
                };
                wrong.push(format!("{what}: {from} -> {to} ({})", shown(files)));
            }
            if to == "assemble" {
                wrong.push(format!(
                    "only entry points list the domains: {from} -> assemble"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_domain_mod_rs_over_400_lines() {
    let mut long = Vec::new();
    for d in DOMAINS {
        let file = [src().join(d).join("mod.rs"), src().join(format!("{d}.rs"))]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("domain {d} has no mod.rs"));
        let n = std::fs::read_to_string(&file)
            .expect("read")
            .lines()
            .count();
        if n > 400 {
            long.push(format!("{} has {n} lines", file.display()));
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn no_string_errors_across_module_or_trait_boundaries() {
    let mut found = Vec::new();
    for m in modules() {
        for f in files_of(&m) {
            let code = production_code(&f);
            // Signatures run from `fn` to the body or `;`.
            for (i, _) in code.match_indices("fn ") {
                let sig = &code[i..];
                let sig = &sig[..sig.find(['{', ';']).unwrap_or(sig.len())];
                let line_start = code[..i].rfind('\n').map_or(0, |n| n + 1);
                let prefix = code[line_start..i].trim();
                let public = prefix.starts_with("pub") && !prefix.starts_with("pub(");
                // Trait methods: inside `trait … {` with no `impl` between.
                let before = &code[..i];
                let in_trait = before.rfind("trait ").is_some_and(|t| {
                    before.rfind("impl ").is_none_or(|im| im < t) && !before[t..].contains("\n}")
                });
                let flat: String = sig.split_whitespace().collect::<Vec<_>>().join(" ");
                let returns_string_error = flat
                    .split("->")
                    .nth(1)
                    .is_some_and(|r| r.contains("Result<") && r.trim_end().ends_with(", String>"));
                if (public || in_trait) && returns_string_error {
                    found.push(format!("{}: {flat}", shown(std::slice::from_ref(&f))));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "Result<_, String> at a boundary:\n{}",
        found.join("\n")
    );
}

#[test]
fn test_fakes_are_not_compiled_into_the_release_binary() {
    let gpu = std::fs::read_to_string(src().join("gpu/mod.rs")).expect("gpu/mod.rs");
    let declared = gpu
        .lines()
        .position(|l| l.trim() == "pub mod fake;" || l.trim() == "mod fake;");
    if let Some(at) = declared {
        let lines: Vec<&str> = gpu.lines().collect();
        assert!(
            at > 0 && lines[at - 1].trim() == "#[cfg(test)]",
            "gpu/fake.rs must be #[cfg(test)]"
        );
    }
}

#[test]
fn unsafe_code_is_confined_to_the_raw_nvml_module() {
    let allowed = src().join("gpu/nvml_raw.rs");
    let mut found = Vec::new();
    for m in modules() {
        for f in files_of(&m) {
            let code = production_code(&f);
            let uses = [
                "unsafe {",
                "unsafe fn",
                "unsafe impl",
                "unsafe extern",
                "unsafe_code",
            ]
            .iter()
            .any(|k| code.contains(k));
            if f != allowed && uses {
                found.push(f.display().to_string());
            }
        }
    }
    assert!(
        found.is_empty(),
        "unsafe outside gpu/nvml_raw.rs: {found:?}"
    );
    let raw = std::fs::read_to_string(&allowed).expect("nvml_raw.rs");
    let blocks = raw.matches("unsafe {").count();
    let reasons = raw.matches("// SAFETY:").count();
    assert!(
        blocks > 0 && blocks == reasons,
        "{blocks} unsafe blocks, {reasons} SAFETY comments"
    );
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    assert!(
        lib.contains("#![deny(unsafe_code)]"),
        "agent/src/lib.rs denies unsafe code"
    );
}

//! Reconcile: render the files the registries need, compare with the disk,
//! and write only what changed — atomically, CA files before the hosts.toml
//! that references them, stale files removed last. Files without the managed
//! header are never modified or removed: they are reported.

use super::ca::{self, Ca};
use super::desired::{CaSource, Desired};
use super::hosts_toml::{self, Features, MANAGED_HEADER};
use super::trust::Family;
use crate::host::{create_dirs, write_atomic, Host};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Written first: hosts.toml files reference them.
    Ca,
    /// The same CA in the OS trust store.
    Trust,
    HostsToml,
}

/// A file the agent should own, at a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub path: String,
    pub contents: String,
    pub kind: Kind,
    pub registry: String,
}

/// Everything one reconcile should write, and what stands in the way.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub files: Vec<Planned>,
    /// Accepted CAs, per registry.
    pub cas: Vec<(String, Ca)>,
    /// Registries whose CA (or client files) could not be used: their files
    /// on disk stay as they are, the last good state in force.
    pub failed: BTreeMap<String, String>,
    /// Warnings per registry (CA warnings, capabilities left out).
    pub notes: BTreeMap<String, Vec<String>>,
}

fn managed(contents: &str) -> String {
    format!("{MANAGED_HEADER}\n{contents}")
}

/// Renders every file for `desired`.
pub fn plan(
    desired: &[Desired],
    certs_d: &str,
    family: Option<Family>,
    host: &Host,
    features: Features,
    now: SystemTime,
) -> Plan {
    let mut plan = Plan::default();
    for d in desired {
        let dir = format!("{}/{}", certs_d.trim_end_matches('/'), d.host);
        let mut notes = Vec::new();
        let ca = match &d.ca {
            None => None,
            Some(source) => {
                let (bytes, origin) = match source {
                    CaSource::File(p) => (
                        host.read_pem_file(p).map_err(|e| e.to_string()),
                        p.display().to_string(),
                    ),
                    CaSource::Inline(pem) => (
                        Ok(pem.clone().into_bytes()),
                        format!("ca_pem of {}", d.host),
                    ),
                };
                match bytes
                    .map_err(|e| format!("cannot read the CA: {e}"))
                    .and_then(|b| ca::intake(&b, &origin, now).map_err(|e| e.to_string()))
                {
                    Ok(ca) => Some(ca),
                    Err(e) => {
                        plan.failed.insert(d.host.clone(), e);
                        continue;
                    }
                }
            }
        };
        if let Some((cert, key)) = &d.client {
            if let Some(missing) = [cert, key].into_iter().find(|p| !host.path(p).is_file()) {
                plan.failed.insert(
                    d.host.clone(),
                    format!(
                        "client certificate file {} does not exist",
                        missing.display()
                    ),
                );
                continue;
            }
        }
        let ca_path = ca
            .as_ref()
            .map(|c| format!("{dir}/ca-{}.crt", c.short_id()));
        if let (Some(c), Some(path)) = (&ca, &ca_path) {
            notes.extend(c.warnings.iter().cloned());
            plan.files.push(Planned {
                path: path.clone(),
                contents: managed(&c.pem),
                kind: Kind::Ca,
                registry: d.host.clone(),
            });
            if let (true, Some(family)) = (d.system_trust, family) {
                plan.files.push(Planned {
                    path: family.anchor(&d.host, c.short_id()),
                    contents: managed(&c.pem),
                    kind: Kind::Trust,
                    registry: d.host.clone(),
                });
            }
        }
        let rendered = hosts_toml::render(d, ca_path.as_deref(), features);
        notes.extend(rendered.notes);
        plan.files.push(Planned {
            path: format!("{dir}/hosts.toml"),
            contents: rendered.text,
            kind: Kind::HostsToml,
            registry: d.host.clone(),
        });
        if let Some(c) = ca {
            plan.cas.push((d.host.clone(), c));
        }
        if !notes.is_empty() {
            plan.notes.insert(d.host.clone(), notes);
        }
    }
    plan.files.sort_by_key(|f| f.kind);
    plan
}

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub written: Vec<String>,
    pub removed: Vec<String>,
    /// Managed files that had been edited by hand and were restored.
    pub drift_restored: Vec<String>,
    /// Files and directories the agent does not own that stand in the way.
    pub conflicts: Vec<String>,
    /// Writes or removals that failed.
    pub errors: Vec<String>,
    /// Whether any OS trust anchor was written or removed.
    pub trust_changed: bool,
    /// Managed files on disk after the reconcile.
    pub managed_files: usize,
}

/// Remembers what the agent wrote, to tell a hand edit (drift) from an
/// update.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    written: HashMap<String, u64>,
}

fn hash(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn is_managed_file(path: &Path) -> bool {
    use std::io::Read;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() {
        return false;
    }
    let mut head = vec![0u8; MANAGED_HEADER.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == MANAGED_HEADER.as_bytes())
}

/// Managed files present now, as host paths: in each `certs.d/<host>/`, and
/// the agent's trust anchors.
fn inventory(
    host: &Host,
    certs_d: &str,
    family: Option<Family>,
    out: &mut Outcome,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let scan = |dir: &str, prefix: &str, found: &mut BTreeSet<String>| {
        // Temp files of an agent killed mid-write (before the header was in).
        crate::host::remove_stale_temps(&host.path(dir), |target| {
            target.starts_with(prefix)
                && (target == "hosts.toml" || target.ends_with(".crt") || target.ends_with(".pem"))
        });
        let Ok(entries) = std::fs::read_dir(host.path(dir)) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && is_managed_file(&e.path()) {
                found.insert(format!("{dir}/{name}"));
            }
        }
    };
    let base = certs_d.trim_end_matches('/');
    if let Some(link) = symlinked_component(host, base, base) {
        out.conflicts.push(not_followed(&link));
    } else if let Ok(entries) = std::fs::read_dir(host.path(base)) {
        let names: BTreeSet<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for name in &names {
            let dir = format!("{base}/{name}");
            let meta = std::fs::symlink_metadata(host.path(&dir));
            if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            if !meta.is_ok_and(|m| m.is_dir()) {
                continue;
            }
            scan(&dir, "", &mut found);
            // `host_port_` and `host:port` hide each other.
            if let Some(stem) = name.strip_suffix('_') {
                if let Some((h, p)) = stem.rsplit_once('_') {
                    if names.contains(&format!("{h}:{p}")) {
                        out.conflicts.push(format!(
                            "{base}/{name} and {base}/{h}:{p} both exist: containerd uses only one of them"
                        ));
                    }
                }
            }
        }
    }
    if let Some(f) = family {
        let (dir, prefix) = f.anchor_dir();
        match symlinked_component(host, dir, dir) {
            Some(link) => out.conflicts.push(not_followed(&link)),
            None => scan(dir, prefix, &mut found),
        }
    }
    found
}

/// The first of `base` and the directories below it on the way to `path`
/// (`path` itself excluded) that is a symbolic link. The agent never writes,
/// reads or removes through one: a link planted in certs.d (or certs.d
/// itself, or the anchor directory) would otherwise redirect root's writes
/// anywhere.
fn symlinked_component(host: &Host, base: &str, path: &str) -> Option<String> {
    let is_link =
        |p: &str| std::fs::symlink_metadata(host.path(p)).is_ok_and(|m| m.file_type().is_symlink());
    if is_link(base) {
        return Some(base.to_owned());
    }
    let rest = path.strip_prefix(base)?.trim_start_matches('/');
    let mut parts: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    parts.pop(); // `path` itself: checked by the caller with its own message
    let mut cur = base.to_owned();
    for part in parts {
        cur = format!("{cur}/{part}");
        if is_link(&cur) {
            return Some(cur);
        }
    }
    None
}

fn not_followed(link: &str) -> String {
    format!("{link} is a symbolic link; not followed, nothing written or removed through it")
}

/// The directory a planned file must stay under.
fn base_of(kind: Kind, certs_d: &str, family: Option<Family>) -> &str {
    match (kind, family) {
        (Kind::Trust, Some(f)) => f.anchor_dir().0,
        _ => certs_d.trim_end_matches('/'),
    }
}

/// Applies `plan`: writes what differs, restores drift, removes stale
/// managed files (except those of `plan.failed` registries). With
/// `dry_run`, only reports what it would do.
pub fn apply(
    plan: &Plan,
    host: &Host,
    certs_d: &str,
    family: Option<Family>,
    ledger: &mut Ledger,
    dry_run: bool,
) -> Outcome {
    let mut out = Outcome::default();
    let before = inventory(host, certs_d, family, &mut out);
    let base = certs_d.trim_end_matches('/');

    // Registries that someone else owns are left alone entirely, and so
    // are those whose files would be written through a symbolic link.
    let mut blocked: BTreeSet<String> = BTreeSet::new();
    for f in &plan.files {
        let under = base_of(f.kind, certs_d, family);
        if let Some(link) = symlinked_component(host, under, &f.path) {
            let msg = not_followed(&link);
            if !out.conflicts.contains(&msg) {
                out.conflicts.push(msg);
            }
            blocked.insert(f.registry.clone());
        }
    }
    for f in plan.files.iter().filter(|f| f.kind == Kind::HostsToml) {
        if blocked.contains(&f.registry) {
            continue;
        }
        let dir = format!("{base}/{}", f.registry);
        let dir_meta = std::fs::symlink_metadata(host.path(&dir));
        if dir_meta.as_ref().is_ok_and(|m| !m.is_dir()) {
            out.conflicts.push(format!(
                "{dir} is not a directory (a symlink or a file); not followed, not replaced"
            ));
            blocked.insert(f.registry.clone());
            continue;
        }
        let p = host.path(&f.path);
        if std::fs::symlink_metadata(&p).is_ok() && !is_managed_file(&p) {
            out.conflicts.push(format!(
                "{} exists and was not written by the agent; left as it is",
                f.path
            ));
            blocked.insert(f.registry.clone());
        }
    }

    // A certs.d/<host> directory without a hosts.toml hides _default for
    // that host: containerd stops looking once the directory exists.
    if plan.files.iter().any(|f| f.registry == "_default") {
        if let Ok(entries) = std::fs::read_dir(host.path(base)) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let planned_here = plan.files.iter().any(|f| f.registry == name);
                if name != "_default"
                    && !planned_here
                    && e.path().is_dir()
                    && !e.path().join("hosts.toml").exists()
                {
                    out.conflicts.push(format!(
                        "{base}/{name} has no hosts.toml: containerd uses it for {name} instead of {base}/_default"
                    ));
                }
            }
        }
    }

    let mut failed_ca: BTreeSet<String> = BTreeSet::new();
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for f in &plan.files {
        if blocked.contains(&f.registry)
            || (f.kind == Kind::HostsToml && failed_ca.contains(&f.registry))
        {
            continue;
        }
        kept.insert(f.path.clone());
        let p = host.path(&f.path);
        let current = std::fs::symlink_metadata(&p);
        if let Ok(meta) = &current {
            if !meta.file_type().is_file() || !is_managed_file(&p) {
                out.conflicts.push(format!(
                    "{} exists and was not written by the agent; left as it is",
                    f.path
                ));
                if f.kind == Kind::Ca {
                    failed_ca.insert(f.registry.clone());
                }
                continue;
            }
            let on_disk = std::fs::read_to_string(&p).unwrap_or_default();
            if on_disk == f.contents {
                ledger.written.insert(f.path.clone(), hash(&f.contents));
                continue;
            }
            if ledger
                .written
                .get(&f.path)
                .is_some_and(|h| *h != hash(&on_disk))
            {
                out.drift_restored.push(f.path.clone());
            }
        }
        let result = if dry_run {
            Ok(())
        } else {
            p.parent()
                .map_or(Ok(()), |d| create_dirs(d, 0o755))
                .and_then(|()| write_atomic(&p, f.contents.as_bytes(), 0o644))
        };
        match result {
            Ok(()) => {
                ledger.written.insert(f.path.clone(), hash(&f.contents));
                out.written.push(f.path.clone());
                out.trust_changed |= f.kind == Kind::Trust;
            }
            Err(e) => {
                out.errors.push(format!("cannot write {}: {e}", f.path));
                if f.kind == Kind::Ca {
                    failed_ca.insert(f.registry.clone());
                }
            }
        }
    }

    // Stale managed files: hosts.toml first, then the CAs they referenced.
    // certs.d/<registry>/… or a trust anchor named <registry>-<id>.
    let registry_of = |path: &str| -> Option<String> {
        if let Some(rest) = path.strip_prefix(base) {
            return rest
                .trim_start_matches('/')
                .split('/')
                .next()
                .map(str::to_owned);
        }
        let (dir, prefix) = family?.anchor_dir();
        let name = path
            .strip_prefix(dir)?
            .trim_start_matches('/')
            .strip_prefix(prefix)?;
        name.rsplit_once('-').map(|(r, _)| r.to_owned())
    };
    // Both spellings: anchor names write `:` as `_`.
    let failed_names: BTreeSet<String> = plan
        .failed
        .keys()
        .chain(blocked.iter())
        .chain(failed_ca.iter())
        .flat_map(|r| [r.clone(), r.replace(':', "_")])
        .collect();
    let planned: BTreeSet<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    let mut stale: Vec<&String> = before
        .iter()
        .filter(|p| !planned.contains(p.as_str()) && !kept.contains(*p))
        .filter(|p| {
            let r = registry_of(p).unwrap_or_default();
            let is_temp = p
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with('.') && n.contains(".tmp."));
            is_temp || !failed_names.contains(&r)
        })
        .collect();
    stale.sort_by_key(|p| (!p.ends_with("/hosts.toml"), p.to_string()));
    for p in stale {
        let removed = if dry_run {
            Ok(())
        } else {
            std::fs::remove_file(host.path(p))
        };
        match removed {
            Ok(()) => {
                out.trust_changed |= !p.starts_with(base);
                ledger.written.remove(p);
                out.removed.push(p.clone());
                if let Some(dir) = Path::new(p).parent().filter(|_| !dry_run) {
                    // Only empties directories; fails harmlessly otherwise.
                    let _ = std::fs::remove_dir(host.path(dir));
                }
            }
            Err(e) => out.errors.push(format!("cannot remove {p}: {e}")),
        }
    }
    out.managed_files = inventory(host, certs_d, family, &mut Outcome::default()).len();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::desired::{Endpoint, Source};
    use std::os::unix::fs::symlink;

    fn ca_pem() -> String {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&rcgen::KeyPair::generate().expect("key"))
            .expect("cert")
            .pem()
    }

    fn desired(host: &str, ca: Option<String>) -> Desired {
        Desired {
            host: host.into(),
            source: Source::AgentConfig,
            mirrors: vec![Endpoint {
                url: "https://127.0.0.1:5000".into(),
                capabilities: vec!["pull".into(), "resolve".into()],
                override_path: false,
            }],
            ca: ca.map(CaSource::Inline),
            client: None,
            skip_verify: false,
            mirror_only: false,
            system_trust: true,
            has_auth: false,
        }
    }

    const CERTS_D: &str = "/etc/containerd/certs.d";

    fn run(h: &Host, d: &[Desired], ledger: &mut Ledger) -> Outcome {
        let p = plan(
            d,
            CERTS_D,
            Some(Family::Debian),
            h,
            Features::of(None),
            SystemTime::now(),
        );
        apply(&p, h, CERTS_D, Some(Family::Debian), ledger, false)
    }

    #[test]
    fn writes_updates_restores_drift_and_removes_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let mut ledger = Ledger::default();
        let pem = ca_pem();
        let o = run(
            &h,
            &[desired("harbor.local", Some(pem.clone()))],
            &mut ledger,
        );
        assert_eq!(o.written.len(), 3, "{o:?}");
        assert!(o.written[0].contains("/ca-"), "CA first: {o:?}");
        assert!(o.written[1].starts_with("/usr/local/share/ca-certificates/hybrid-node-agent/"));
        assert!(o.written[2].ends_with("/hosts.toml"));
        assert!(o.trust_changed);
        assert_eq!(o.managed_files, 3);

        // Nothing changed: nothing written.
        let o = run(
            &h,
            &[desired("harbor.local", Some(pem.clone()))],
            &mut ledger,
        );
        assert!(o.written.is_empty() && o.removed.is_empty(), "{o:?}");

        // A hand edit is restored and counted.
        let hosts = h.path(format!("{CERTS_D}/harbor.local/hosts.toml"));
        let mut edited = std::fs::read_to_string(&hosts).expect("read");
        edited.push_str("# local tweak\n");
        std::fs::write(&hosts, &edited).expect("write");
        let o = run(&h, &[desired("harbor.local", Some(pem))], &mut ledger);
        assert_eq!(o.drift_restored.len(), 1, "{o:?}");
        assert!(!std::fs::read_to_string(&hosts)
            .expect("read")
            .contains("local tweak"));

        // CA rotation: new file, old one removed after the hosts.toml moved on.
        let o = run(&h, &[desired("harbor.local", Some(ca_pem()))], &mut ledger);
        assert_eq!(o.removed.len(), 2, "old CA and old anchor: {o:?}");
        assert!(!o.trust_changed || o.written.iter().any(|w| w.contains("ca-certificates")));

        // The registry goes away: its files and directory go too.
        let o = run(&h, &[], &mut ledger);
        assert_eq!(o.removed.len(), 3, "{o:?}");
        assert!(!h.path(format!("{CERTS_D}/harbor.local")).exists());
        assert_eq!(o.managed_files, 0);
    }

    #[test]
    fn unmanaged_files_and_symlinks_are_never_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let mut ledger = Ledger::default();
        // Someone else's hosts.toml.
        let theirs = h.path(format!("{CERTS_D}/harbor.local/hosts.toml"));
        std::fs::create_dir_all(theirs.parent().expect("parent")).expect("mkdir");
        std::fs::write(&theirs, "server = \"https://theirs\"\n").expect("write");
        // A symlinked registry directory pointing outside.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        symlink(&outside, h.path(format!("{CERTS_D}/evil.local"))).expect("symlink");
        // host_port_ beside host:port.
        std::fs::create_dir_all(h.path(format!("{CERTS_D}/reg.local:5000"))).expect("mkdir");
        std::fs::create_dir_all(h.path(format!("{CERTS_D}/reg.local_5000_"))).expect("mkdir");

        let o = run(
            &h,
            &[desired("harbor.local", None), desired("evil.local", None)],
            &mut ledger,
        );
        assert_eq!(
            std::fs::read_to_string(&theirs).expect("read"),
            "server = \"https://theirs\"\n"
        );
        assert!(
            std::fs::read_dir(&outside).expect("read").next().is_none(),
            "nothing written through the link"
        );
        assert_eq!(o.conflicts.len(), 3, "{o:?}");
        assert!(o.written.is_empty(), "{o:?}");
        // An unmanaged file in a managed directory is not removed either.
        let o = run(&h, &[], &mut ledger);
        assert!(o.removed.is_empty());
        assert!(theirs.exists());
    }

    /// Security review (issue 15, finding 5): only the registry's own
    /// directory was checked, so a symlinked certs.d (or anchor directory)
    /// sent root's writes wherever it pointed.
    #[test]
    fn nothing_is_written_through_a_symlinked_certs_d_or_anchor_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::create_dir_all(h.path("/etc/containerd")).expect("mkdir");
        symlink(&outside, h.path(CERTS_D)).expect("symlink");
        let mut ledger = Ledger::default();
        let o = run(&h, &[desired("harbor.local", Some(ca_pem()))], &mut ledger);
        assert!(o.written.is_empty(), "{o:?}");
        assert!(
            std::fs::read_dir(&outside).expect("read").next().is_none(),
            "nothing written through the link"
        );
        assert!(
            o.conflicts
                .iter()
                .any(|c| c.contains("/etc/containerd/certs.d is a symbolic link")),
            "{o:?}"
        );

        // The trust anchor directory, likewise.
        std::fs::remove_file(h.path(CERTS_D)).expect("unlink");
        let (anchors, _) = Family::Debian.anchor_dir();
        std::fs::create_dir_all(h.path(anchors).parent().expect("parent")).expect("mkdir");
        symlink(&outside, h.path(anchors)).expect("symlink");
        let o = run(&h, &[desired("harbor.local", Some(ca_pem()))], &mut ledger);
        assert!(
            std::fs::read_dir(&outside).expect("read").next().is_none(),
            "{o:?}"
        );
        assert!(
            o.conflicts
                .iter()
                .any(|c| c.contains(&format!("{anchors} is a symbolic link"))),
            "{o:?}"
        );
    }

    /// Security review (issue 15, finding 9): `ca_file = "/dev/zero"` grew
    /// the process past 2 GB and a FIFO hung the domain.
    #[test]
    fn a_ca_file_that_is_a_device_fifo_or_huge_fails_fast() {
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        assert!(std::process::Command::new("mkfifo")
            .arg(h.path("/fifo.crt"))
            .status()
            .expect("mkfifo")
            .success());
        std::fs::File::create(h.path("/big.crt"))
            .and_then(|f| f.set_len(1 << 30))
            .expect("sparse 1 GiB");
        for (path, want) in [
            (
                "/fifo.crt",
                "cannot read the CA: /fifo.crt is not a regular file (it is a FIFO)",
            ),
            (
                "/big.crt",
                "cannot read the CA: /big.crt is larger than 1 MiB",
            ),
        ] {
            let mut d = desired("harbor.local", None);
            d.ca = Some(CaSource::File(path.into()));
            let p = plan(
                &[d],
                CERTS_D,
                None,
                &h,
                Features::of(None),
                SystemTime::now(),
            );
            assert!(p.failed["harbor.local"].starts_with(want), "{:?}", p.failed);
            assert!(p.files.is_empty());
        }
        let mut d = desired("harbor.local", None);
        d.ca = Some(CaSource::File("/dev/zero".into()));
        let p = plan(
            &[d],
            CERTS_D,
            None,
            &Host::default(),
            Features::of(None),
            SystemTime::now(),
        );
        assert!(
            p.failed["harbor.local"]
                .contains("/dev/zero is not a regular file (it is a character device)"),
            "{:?}",
            p.failed
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn an_empty_directory_shadowing_default_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        std::fs::create_dir_all(h.path(format!("{CERTS_D}/quay.io"))).expect("mkdir");
        let o = run(&h, &[desired("_default", None)], &mut Ledger::default());
        assert_eq!(o.conflicts.len(), 1, "{o:?}");
        assert!(
            o.conflicts[0].contains("quay.io has no hosts.toml"),
            "{o:?}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(h.path(format!("{CERTS_D}/_default")))
                .expect("meta")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn a_bad_ca_keeps_the_last_good_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let mut ledger = Ledger::default();
        run(&h, &[desired("harbor.local", Some(ca_pem()))], &mut ledger);
        let hosts = h.path(format!("{CERTS_D}/harbor.local/hosts.toml"));
        let good = std::fs::read_to_string(&hosts).expect("read");
        let p = plan(
            &[desired("harbor.local", Some("garbage".into()))],
            CERTS_D,
            Some(Family::Debian),
            &h,
            Features::of(None),
            SystemTime::now(),
        );
        assert!(p.failed["harbor.local"].contains("neither a PEM nor a DER"));
        let o = apply(&p, &h, CERTS_D, Some(Family::Debian), &mut ledger, false);
        assert!(o.removed.is_empty(), "{o:?}");
        assert_eq!(std::fs::read_to_string(&hosts).expect("read"), good);
    }

    #[test]
    fn dry_run_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let p = plan(
            &[desired("harbor.local", Some(ca_pem()))],
            CERTS_D,
            Some(Family::Debian),
            &h,
            Features::of(None),
            SystemTime::now(),
        );
        let o = apply(
            &p,
            &h,
            CERTS_D,
            Some(Family::Debian),
            &mut Ledger::default(),
            true,
        );
        assert_eq!(o.written.len(), 3);
        assert!(!h.path(CERTS_D).exists());
    }

    #[test]
    fn leftover_temp_files_are_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let mut ledger = Ledger::default();
        run(&h, &[desired("harbor.local", None)], &mut ledger);
        let tmp = h.path(format!("{CERTS_D}/harbor.local/.hosts.toml.tmp.999"));
        std::fs::write(&tmp, format!("{MANAGED_HEADER}\npartial")).expect("write");
        // Killed before a byte was written: no header to recognise it by.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        let empty = h.path(format!("{CERTS_D}/harbor.local/.hosts.toml.tmp.{dead}"));
        std::fs::write(&empty, "").expect("write");
        let o = run(&h, &[desired("harbor.local", None)], &mut ledger);
        assert!(!tmp.exists(), "{o:?}");
        assert!(!empty.exists(), "{o:?}");
    }
}

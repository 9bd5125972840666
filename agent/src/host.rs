//! The host as a parameter: every host path the agent reads or writes goes
//! through [`Host`], whose root is `/` in production and a temp dir in tests.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    root: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host::new("/")
    }
}

impl Host {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Host { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real location of an absolute host path such as `/etc/eks`.
    ///
    /// `..` components are dropped rather than resolved, so a path can never
    /// climb out of the root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.root.clone();
        for c in host_path.as_ref().components() {
            if let Component::Normal(part) = c {
                out.push(part);
            }
        }
        out
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }

    /// Whether `host_path` is a regular file with an execute bit set.
    pub fn is_executable(&self, host_path: impl AsRef<Path>) -> bool {
        fs::metadata(self.path(host_path))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
}

/// Creates `dir` and its missing ancestors with `mode`, whatever the umask
/// (the unit runs with `UMask=0077`; containerd and the trust tools must
/// still be able to traverse what the agent creates). Existing directories
/// keep their mode.
pub fn create_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(mode))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The most a certificate, key or CA bundle file the agent reads may hold.
/// Real ones are kilobytes; the cap keeps a wrong path (`/dev/zero`, a
/// disk image) from growing the process without bound.
pub const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Why a small file (certificate, key, CA, config) could not be read. Each
/// names the host path and what was expected of it.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{} is not a regular file (it is {kind}); expected a file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is larger than {}; expected a file of at most that size", path.display(), size_text(*limit))]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

impl SmallFileError {
    /// Whether the file does not exist (callers word that case themselves).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SmallFileError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn size_text(bytes: u64) -> String {
    if bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

impl Host {
    /// Reads the host file `host_path`, which must be a regular file of at
    /// most `limit` bytes. Opened non-blocking, so a FIFO fails at once
    /// instead of hanging the domain; the type is checked on the open file
    /// (no race with a rename); the read goes through `take(limit + 1)`, so
    /// a file that grows while it is read cannot exceed the cap either.
    pub fn read_small(
        &self,
        host_path: impl AsRef<Path>,
        limit: u64,
    ) -> Result<Vec<u8>, SmallFileError> {
        use std::io::Read;
        use std::os::unix::fs::FileTypeExt;
        let shown = host_path.as_ref().to_owned();
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(self.path(&shown))
            .map_err(|source| SmallFileError::Open {
                path: shown.clone(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| SmallFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let t = meta.file_type();
        if !t.is_file() {
            let kind = if t.is_dir() {
                "a directory"
            } else if t.is_fifo() {
                "a FIFO"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_block_device() {
                "a block device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a file"
            };
            return Err(SmallFileError::NotRegular { path: shown, kind });
        }
        if meta.len() > limit {
            return Err(SmallFileError::TooLarge { path: shown, limit });
        }
        let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|source| SmallFileError::Read {
                path: shown.clone(),
                source,
            })?;
        if out.len() as u64 > limit {
            return Err(SmallFileError::TooLarge { path: shown, limit });
        }
        Ok(out)
    }

    /// [`Host::read_small`] of a certificate, key or CA file.
    pub fn read_pem_file(&self, host_path: impl AsRef<Path>) -> Result<Vec<u8>, SmallFileError> {
        self.read_small(host_path, MAX_PEM_FILE)
    }
}

/// Writes `contents` to `path` so that a reader (or a crash) sees either the
/// old file or the whole new one, never a part: a temp file in the same
/// directory, fsync, rename over the target, fsync the directory.
///
/// The target must not be a directory or a symlink: the agent never writes
/// through a link it did not create.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a regular file; refusing to replace it",
                    path.display()
                ),
            ));
        }
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A temp file left by a crash of an earlier process with the same pid.
    // `create_new` below never follows a link planted at this name.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode given to open(2).
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    if let Some(name) = name.to_str() {
        remove_stale_temps(dir, |target| target == name);
    }
    result
}

/// Removes the temp files [`write_atomic`] left in `dir` when its process
/// was killed between creating and renaming them: `.<target>.tmp.<pid>`
/// whose pid is no longer running and whose target the caller `owns`.
/// Nothing else is touched.
pub fn remove_stale_temps(dir: &Path, owns: impl Fn(&str) -> bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let file = entry.file_name();
        let Some((target, pid)) = file
            .to_str()
            .and_then(|f| f.strip_prefix('.'))
            .and_then(|f| f.rsplit_once(".tmp."))
            .and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?)))
        else {
            continue;
        };
        if !owns(target) {
            continue;
        }
        // Only ESRCH means gone (EPERM: running, as another user).
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if gone && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    /// Security review (issue 15, finding 9): `ca_file = "/dev/zero"` grew
    /// the process past 2 GB, a 1 GiB file took 1 GB, and a FIFO hung the
    /// domain. Each now fails at once, naming the path and what was wrong.
    #[test]
    fn small_reads_refuse_devices_fifos_and_big_files() {
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        let e = Host::default()
            .read_pem_file("/dev/zero")
            .expect_err("a device");
        assert_eq!(
            e.to_string(),
            "/dev/zero is not a regular file (it is a character device); expected a file"
        );
        let status = std::process::Command::new("mkfifo")
            .arg(h.path("/fifo"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let e = h.read_pem_file("/fifo").expect_err("a FIFO");
        assert!(
            e.to_string()
                .starts_with("/fifo is not a regular file (it is a FIFO)"),
            "{e}"
        );
        let big = File::create(h.path("/big.pem")).expect("create");
        big.set_len(1 << 30).expect("sparse 1 GiB");
        let e = h.read_pem_file("/big.pem").expect_err("too big");
        assert_eq!(
            e.to_string(),
            "/big.pem is larger than 1 MiB; expected a file of at most that size"
        );
        fs::create_dir(h.path("/d")).expect("mkdir");
        let e = h.read_pem_file("/d").expect_err("a directory");
        assert!(e.to_string().contains("(it is a directory)"), "{e}");
        assert!(h
            .read_pem_file("/missing")
            .expect_err("missing")
            .is_not_found());
        fs::write(h.path("/ok.pem"), b"abc").expect("write");
        assert_eq!(h.read_pem_file("/ok.pem").expect("read"), b"abc");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    use super::*;

    #[test]
    fn temp_files_of_killed_writers_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        let keep = [
            ".hosts.toml.tmp.1".to_owned(), // pid 1 is always running
            ".hosts.toml.tmp.x".to_owned(),
            "hosts.toml.tmp.7".to_owned(),
            format!(".other.toml.tmp.{dead}"),
        ];
        for f in &keep {
            fs::write(dir.path().join(f), "x").expect("write");
        }
        let stale = dir.path().join(format!(".hosts.toml.tmp.{dead}"));
        fs::write(&stale, "half a file").expect("write");
        write_atomic(&dir.path().join("hosts.toml"), b"whole\n", 0o644).expect("write");
        assert!(!stale.exists(), "the killed writer's temp file is gone");
        for f in &keep {
            assert!(
                dir.path().join(f).exists(),
                "{f} is not the agent's to remove"
            );
        }
    }

    #[test]
    fn paths_stay_under_the_root() {
        let h = Host::new("/tmp/root");
        assert_eq!(
            h.path("/etc/eks/kubelet/environment"),
            PathBuf::from("/tmp/root/etc/eks/kubelet/environment")
        );
        assert_eq!(
            h.path("/../../etc/passwd"),
            PathBuf::from("/tmp/root/etc/passwd")
        );
        assert_eq!(Host::default().path("/etc"), PathBuf::from("/etc"));
    }

    #[test]
    fn executable_detection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host::new(dir.path());
        fs::create_dir_all(h.path("/usr/bin")).expect("mkdir");
        fs::write(h.path("/usr/bin/tool"), "#!/bin/sh\n").expect("write");
        assert!(!h.is_executable("/usr/bin/tool"));
        fs::set_permissions(h.path("/usr/bin/tool"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert!(h.is_executable("/usr/bin/tool"));
        assert!(!h.is_executable("/usr/bin"));
        assert!(!h.is_executable("/usr/bin/absent"));
    }

    #[test]
    fn atomic_write_replaces_whole_file_with_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts.toml");
        write_atomic(&path, b"first", 0o644).expect("write");
        write_atomic(&path, b"second", 0o600).expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("readdir")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("hosts.toml")]);
    }

    #[test]
    fn atomic_write_refuses_symlinks_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        fs::write(&outside, "precious").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        assert!(write_atomic(&link, b"x", 0o644).is_err());
        assert_eq!(fs::read_to_string(&outside).expect("read"), "precious");
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).expect("mkdir");
        assert!(write_atomic(&sub, b"x", 0o644).is_err());
        assert!(sub.is_dir());
    }

    #[test]
    fn created_directories_get_their_mode_despite_the_umask() {
        let dir = tempfile::tempdir().expect("tempdir");
        let existing = dir.path().join("existing");
        fs::create_dir(&existing).expect("mkdir");
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o700)).expect("chmod");
        let deep = existing.join("a/b");
        create_dirs(&deep, 0o755).expect("create");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&existing.join("a")), 0o755);
        assert_eq!(mode(&deep), 0o755);
        assert_eq!(
            mode(&existing),
            0o700,
            "existing directories are left alone"
        );
        create_dirs(&deep, 0o755).expect("idempotent");
    }

    #[test]
    fn atomic_write_into_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write_atomic(&dir.path().join("no/such/file"), b"x", 0o644);
        assert!(err.is_err());
    }
}

/// Configuration and `/proc` files as text, read through
/// [`Host::read_small`]: a FIFO planted in a scanned directory
/// (`/etc/apt/apt.conf.d`, firewalld's zones, unit drop-ins) fails at once
/// instead of blocking a domain, and a huge file is refused instead of read
/// whole (`/proc` files report size 0; the read itself is capped).
/// The most a configuration or `/proc` file read here may hold: real ones
/// are a few KiB (`/proc/swaps` with thousands of areas stays below).
pub const MAX_TEXT_FILE: u64 = 256 * 1024;

/// The host file `path` as text (invalid UTF-8 replaced), at most
/// [`MAX_TEXT_FILE`] bytes, only if it is a regular file.
pub fn read_text(host: &Host, path: &str) -> Result<String, SmallFileError> {
    host.read_small(path, MAX_TEXT_FILE)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod read_text_tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_huge_file_is_refused_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        std::fs::create_dir_all(host.path("/etc")).expect("mkdir");
        nix::unistd::mkfifo(&host.path("/etc/fifo"), nix::sys::stat::Mode::S_IRWXU)
            .expect("mkfifo");
        std::fs::write(
            host.path("/etc/big"),
            vec![b'#'; MAX_TEXT_FILE as usize + 1],
        )
        .expect("write");
        std::fs::write(host.path("/etc/ok"), "a=b\n").expect("write");
        assert!(matches!(
            read_text(&host, "/etc/fifo"),
            Err(SmallFileError::NotRegular { kind: "a FIFO", .. })
        ));
        assert!(matches!(
            read_text(&host, "/etc/big"),
            Err(SmallFileError::TooLarge { .. })
        ));
        assert_eq!(read_text(&host, "/etc/ok").expect("read"), "a=b\n");
    }
}

//! One bandwidth test at a time on a host, whoever starts it (the daemon's
//! schedule or a person running `bandwidth`): two tests at once would share
//! the link and both report half of it. An advisory `flock` on a file under
//! /run; the kernel drops it when the holder exits, so a crash never leaves
//! it stale.

use crate::host::Host;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

pub const LOCK_PATH: &str = "/run/hybrid-node-agent/bandwidth.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another bandwidth test is running on this host (it holds {path})")]
    Busy { path: PathBuf },
    #[error("cannot take the bandwidth test lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held while a test runs.
#[derive(Debug)]
pub struct TestLock {
    _lock: Flock<File>,
}

/// Takes the lock without waiting.
pub fn try_acquire(host: &Host) -> Result<TestLock, LockError> {
    let path = host.path(LOCK_PATH);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::host::create_dirs(dir, 0o755).map_err(io)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(TestLock { _lock: lock }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Busy { path }),
        Err((_, e)) => Err(io(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_test_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        let first = try_acquire(&host).expect("first");
        let e = try_acquire(&host).unwrap_err();
        assert!(matches!(e, LockError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("another bandwidth test is running"));
        drop(first);
        try_acquire(&host).expect("free again");
    }
}

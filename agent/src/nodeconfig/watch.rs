//! Watching the NodeConfig's directory. Editors and config tools replace
//! files by rename, so the directory (not the file) is watched; when the
//! directory does not exist yet, its nearest existing ancestor is, until it
//! appears.
//!
//! The watcher only wakes the domain; the scheduler waits the debounce
//! before it runs, so a burst of events is one run and an idle agent has no
//! timer thread ticking (a debouncer thread ticking every few milliseconds
//! cost more CPU than everything else the idle agent does).

use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;

/// A live watch on one directory; dropping it stops the watch.
pub struct DirWatch {
    dir: PathBuf,
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatch").field("dir", &self.dir).finish()
    }
}

impl DirWatch {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The directory to watch for `file`: its parent, or the nearest ancestor
/// that exists.
pub fn watch_target(file: &Path) -> Option<PathBuf> {
    file.ancestors()
        .skip(1)
        .find(|d| d.is_dir())
        .map(Path::to_path_buf)
}

/// Watches `dir` (not recursively); `wake` is notified on every event.
pub fn watch(dir: &Path, wake: Arc<Notify>) -> notify::Result<DirWatch> {
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        if let Err(e) = &result {
            tracing::warn!(error = %e, "NodeConfig file watch error: {e}");
        }
        // Errors too: the run re-reads the file and re-establishes the watch.
        wake.notify_one();
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(DirWatch {
        dir: dir.to_owned(),
        _watcher: watcher,
    })
}

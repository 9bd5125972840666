//! Watching the NodeConfig's directory. Editors and config tools replace
//! files by rename, so the directory (not the file) is watched; when the
//! directory does not exist yet, its nearest existing ancestor is, until it
//! appears.

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A live watch on one directory; dropping it stops the watch.
pub struct DirWatch {
    dir: PathBuf,
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
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

/// Watches `dir` (not recursively); `wake` is notified after events have
/// been quiet for `debounce`.
pub fn watch(dir: &Path, debounce: Duration, wake: Arc<Notify>) -> notify::Result<DirWatch> {
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) if !events.is_empty() => wake.notify_one(),
        Ok(_) => {}
        Err(errors) => {
            for e in errors {
                tracing::warn!(error = %e, "file watch error");
            }
            // Re-read: the periodic check will also re-establish the watch.
            wake.notify_one();
        }
    };
    let mut debouncer = new_debouncer(debounce, None, handler)
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(DirWatch {
        dir: dir.to_owned(),
        _debouncer: debouncer,
    })
}

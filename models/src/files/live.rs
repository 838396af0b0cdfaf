//! The temporaries being written right now, so that an interrupt (Ctrl-C) can remove them before the process
//! ends: a process-wide registry, because a signal handler has no other way to find them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

static LIVE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn lock() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A temporary in the registry; leaves it when dropped.
#[derive(Debug)]
pub(super) struct Registration(PathBuf);

impl Registration {
    pub(super) fn new(path: &Path) -> Self {
        lock().insert(path.to_path_buf());
        Self(path.to_path_buf())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock().remove(&self.0);
    }
}

/// The registry held while a temporary is renamed into place, so that an interrupt sees either the temporary
/// or the renamed artefact, never a path that is neither.
pub(super) struct Renaming(MutexGuard<'static, BTreeSet<PathBuf>>);

impl Renaming {
    pub(super) fn start() -> Self {
        Self(lock())
    }

    /// The temporary at `path` is gone (renamed or removed).
    pub(super) fn done(&mut self, path: &Path) {
        self.0.remove(path);
    }
}

/// Removes every temporary file or folder this process is writing, then ends the process with `code`
/// (130 after Ctrl-C). Writers waiting to rename stay blocked until the end, so none completes half-way.
pub fn remove_live_temporaries(code: i32) -> ! {
    let mut live = lock();
    for path in std::mem::take(&mut *live) {
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
    std::process::exit(code)
}

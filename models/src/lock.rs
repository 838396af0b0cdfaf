//! One writer per folder: a run folder, a study run, the built-in data set.
//!
//! A [`FolderLock`] holds an advisory lock (`flock`, through `fs4`) on a lock file in the folder and writes
//! into that file who holds it (`host <name> pid <id>`), so that a second writer's error names the holder.
//! On file systems without working advisory locks (some NFS and Lustre mounts), the file's contents are the
//! lock: a holder on this host whose process is gone is stale and is replaced; a holder on another host is
//! trusted until its line is removed. The kernel drops the advisory lock of a killed process, so a crash never
//! leaves a folder locked where locks work.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs4::{FileExt, TryLockError};

use crate::files::FileError;

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "{}: another process is writing here ({holder}); wait for it to finish, or stop it. If no such process \
         exists any more, remove {}",
        folder.display(),
        lock_file.display()
    )]
    Held {
        folder: PathBuf,
        lock_file: PathBuf,
        /// `host NAME pid ID`, as the holder wrote it.
        holder: String,
    },
}

/// An exclusive lock on a folder, released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct FolderLock {
    file: File,
    path: PathBuf,
}

/// Whether to fail at once or wait when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail with [`LockError::Held`] (two writers of one run folder are a mistake).
    No,
    /// Wait until the holder is done (runs sharing the built-in data: one makes it, the others then use it).
    Yes,
}

impl FolderLock {
    /// Locks `folder` (created if missing) through its lock file `file_name` (e.g. `weatherlens.lock`).
    pub fn acquire(folder: &Path, file_name: &str, wait: Wait) -> Result<Self, LockError> {
        crate::files::create_dir_all(folder)?;
        let path = folder.join(file_name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(FileError::at("opening", &path))?;
        let held = |file: &File| LockError::Held {
            folder: folder.to_path_buf(),
            lock_file: path.clone(),
            holder: read_holder(file).unwrap_or_else(|| "holder unknown".into()),
        };
        loop {
            let outcome = match FileExt::try_lock(&file) {
                Ok(()) => Ok(true),
                Err(TryLockError::WouldBlock) => Ok(false),
                Err(TryLockError::Error(e)) if locks_unsupported(&e) => {
                    Ok(holder_is_gone(read_holder(&file).as_deref()))
                }
                Err(TryLockError::Error(e)) => Err(FileError::new("locking", &path, e)),
            }?;
            if outcome {
                let mut lock = Self { file, path };
                lock.write_holder()?;
                return Ok(lock);
            }
            if wait == Wait::No {
                return Err(held(&file));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_holder(&mut self) -> Result<(), FileError> {
        let line = holder_line();
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| self.file.write_all(line.as_bytes()))
            .and_then(|()| self.file.flush())
            .map_err(FileError::at("writing", &self.path))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // An empty lock file is a free lock where advisory locks do not work.
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

/// `host NAME pid ID` of this process.
fn holder_line() -> String {
    format!("host {} pid {}\n", host_name(), std::process::id())
}

fn read_holder(mut file: &File) -> Option<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Where advisory locks are not implemented, the holder line decides: free when empty, or when it names a
/// process of this host that no longer runs.
fn holder_is_gone(holder: Option<&str>) -> bool {
    let Some(holder) = holder else {
        return true;
    };
    let words: Vec<&str> = holder.split_whitespace().collect();
    match words.as_slice() {
        ["host", host, "pid", pid] if *host == host_name() => pid.parse::<u32>().is_ok_and(|pid| {
            pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists()
        }),
        ["host", ..] => false,
        _ => true,
    }
}

fn locks_unsupported(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS)
    ) || error.kind() == std::io::ErrorKind::Unsupported
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_and_the_lock_is_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path(), "weatherlens.lock", Wait::No).unwrap();
        let err = FolderLock::acquire(dir.path(), "weatherlens.lock", Wait::No).unwrap_err();
        let message = err.to_string();
        let pid = format!("pid {}", std::process::id());
        assert!(matches!(err, LockError::Held { .. }), "{message}");
        assert!(
            message.contains(&pid) && message.contains("weatherlens.lock"),
            "{message}"
        );
        drop(first);
        let again = FolderLock::acquire(dir.path(), "weatherlens.lock", Wait::No).unwrap();
        assert_eq!(again.path(), dir.path().join("weatherlens.lock"));
    }

    #[test]
    fn a_waiting_writer_gets_the_lock_when_the_holder_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path(), "data.lock", Wait::No).unwrap();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let _lock = FolderLock::acquire(&path, "data.lock", Wait::Yes).unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(500));
        drop(first);
        assert!(waiter.join().unwrap() >= Duration::from_millis(400));
    }

    #[test]
    fn without_advisory_locks_the_holder_line_decides() {
        let here = host_name();
        assert!(holder_is_gone(None));
        assert!(holder_is_gone(Some("garbage")));
        assert!(!holder_is_gone(Some("host other-node-17 pid 1")));
        // pid 1 runs on every Linux host; a pid above the kernel's maximum never does.
        assert!(!holder_is_gone(Some(&format!("host {here} pid 1"))));
        assert!(holder_is_gone(Some(&format!("host {here} pid 4294967"))));
    }
}

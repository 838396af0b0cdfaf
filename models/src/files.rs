//! Writing outputs as units, and naming the file in every I/O error. Every crate writes through here.
//!
//! An artefact is written under a temporary name (`.<name>.<random>.tmp`) in its destination folder and
//! renamed into place once complete, so no reader, and no resumed run, ever sees half of one:
//! - [`write_atomic`]: a file written in one go;
//! - [`AtomicFile`]: a file written in pieces (seek-writes, or by a library that takes a path);
//! - [`AtomicDir`]: a folder whose files belong together (a checkpoint, a study stage), renamed as one.
//!
//! A temporary that is dropped without [`AtomicFile::commit`] / [`AtomicDir::commit`] is removed; one left by a
//! process that was interrupted (Ctrl-C: [`remove_live_temporaries`], called by the binary's signal handler) is
//! removed too, and one left by a killed process is removed by the next writer of its folder
//! ([`remove_stale_temporaries`], under the folder's [`crate::lock::FolderLock`]). Created files get the
//! permissions the umask allows (`tempfile`'s own default, 0600, would hide outputs from a group).
//!
//! Fault injection for tests ([`fault`]): every write of an artefact (a commit here, or an [`append`]) is
//! numbered from 1 in each process, and the environment can make one of them fail or kill the process.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub mod fault;
mod live;

pub use live::remove_live_temporaries;
use live::{Registration, Renaming};

/// An I/O failure on a named file: "writing runs/x/metrics.csv: No space left on device".
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FileError {
    /// What was being done: "reading", "writing", "creating", "renaming into", "removing", ...
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A closure for `map_err`: `fs::read(&p).map_err(FileError::at("reading", &p))`.
    pub fn at<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::new(action, path, source)
    }
}

/// Reads a whole file, naming it on failure.
pub fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(FileError::at("reading", path))
}

/// Reads a whole UTF-8 file, naming it on failure.
pub fn read_to_string(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(FileError::at("reading", path))
}

/// Creates `dir` and its parents, naming it on failure.
pub fn create_dir_all(dir: &Path) -> Result<(), FileError> {
    std::fs::create_dir_all(dir).map_err(FileError::at("creating", dir))
}

/// Writes `contents` to `path` as one unit (temporary file, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let mut file = AtomicFile::create(path)?;
    file.file()
        .write_all(contents)
        .map_err(FileError::at("writing", path))?;
    file.commit()
}

/// A file being written under a temporary name beside its destination.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    registration: Registration,
}

impl AtomicFile {
    /// Opens a temporary file in `target`'s folder (which must exist).
    pub fn create(target: &Path) -> Result<Self, FileError> {
        let folder = parent(target);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", file_name(target)))
            .suffix(".tmp")
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(folder)
            .map_err(FileError::at("creating a temporary file in", folder))?;
        Ok(Self {
            registration: Registration::new(temp.path()),
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// The temporary file's path, for libraries that write to a path (plots).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The destination.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the file and renames it onto its destination (replacing any file there).
    pub fn commit(mut self) -> Result<(), FileError> {
        let target = self.target.clone();
        self.temp
            .as_file_mut()
            .flush()
            .map_err(FileError::at("writing", &target))?;
        fault::before_commit(&target)?;
        let Self {
            temp, registration, ..
        } = self;
        let temp_path = temp.path().to_path_buf();
        let mut renaming = Renaming::start();
        // On failure `persist` hands the temporary back; dropping it removes it.
        let result = temp
            .persist(&target)
            .map(|_| ())
            .map_err(|e| FileError::new("renaming into", &target, e.error));
        renaming.done(&temp_path);
        drop(renaming);
        drop(registration);
        result
    }
}

/// A folder being filled under a temporary name beside its destination, renamed into place as one unit.
#[derive(Debug)]
pub struct AtomicDir {
    temp: Option<tempfile::TempDir>,
    target: PathBuf,
    /// Leaves the registry of live temporaries when the unit is dropped (committed or not).
    _registration: Registration,
}

impl AtomicDir {
    /// Creates an empty temporary folder in `target`'s parent folder (created if missing).
    pub fn create(target: &Path) -> Result<Self, FileError> {
        let folder = parent(target);
        create_dir_all(folder)?;
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", file_name(target)))
            .suffix(".tmp")
            .permissions(Permissions::from_mode(0o777))
            .tempdir_in(folder)
            .map_err(FileError::at("creating a temporary folder in", folder))?;
        Ok(Self {
            _registration: Registration::new(temp.path()),
            temp: Some(temp),
            target: target.to_path_buf(),
        })
    }

    /// The temporary folder: write the unit's files here.
    pub fn path(&self) -> &Path {
        self.temp.as_ref().map_or(&self.target, |t| t.path())
    }

    /// The destination.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the folder onto its destination. A folder already there is moved aside first and removed
    /// after, so the destination always holds either the old unit or the new one, never a mix. On failure
    /// the temporary folder is removed and the old unit is back in place.
    pub fn commit(mut self) -> Result<(), FileError> {
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        let target = self.target.clone();
        let temp_path = temp.path().to_path_buf();
        if let Err(e) = fault::before_commit(&target) {
            drop(temp);
            return Err(e);
        }
        let mut renaming = Renaming::start();
        let temp = temp.keep();
        let aside = target.exists().then(|| {
            parent(&target).join(format!(
                ".{}.{}.old",
                file_name(&target),
                std::process::id()
            ))
        });
        let renamed = (|| {
            if let Some(aside) = &aside {
                std::fs::rename(&target, aside).map_err(FileError::at("moving aside", &target))?;
            }
            if let Err(e) = std::fs::rename(&temp, &target) {
                if let Some(aside) = &aside {
                    let _ = std::fs::rename(aside, &target);
                }
                return Err(FileError::new("renaming into", &target, e));
            }
            Ok(())
        })();
        if renamed.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        renaming.done(&temp_path);
        drop(renaming);
        renamed?;
        if let Some(aside) = aside {
            std::fs::remove_dir_all(&aside).map_err(FileError::at("removing", &aside))?;
        }
        Ok(())
    }
}

/// Appends `contents` to `path` (created if missing) as one write: a log that grows by whole records
/// (`metrics.csv`). Counted as an artefact write for fault injection.
pub fn append(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    fault::before_commit(path)?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(FileError::at("opening", path))?;
    file.write_all(contents)
        .map_err(FileError::at("writing", path))
}

/// The name [`check_writable`] tries (its temporary is removed at once; one a killed process left is a
/// temporary like the others).
pub const WRITE_CHECK: &str = ".weatherlens-write-check";

/// Checks that files can be created in `dir` (created if missing) before work whose output goes there
/// starts: a read-only or missing output folder is found in a moment, not after minutes of computing.
pub fn check_writable(dir: &Path) -> Result<(), FileError> {
    create_dir_all(dir)?;
    let probe = dir.join(WRITE_CHECK);
    let file = AtomicFile::create(&probe)?;
    drop(file);
    Ok(())
}

/// Removes the temporaries ([`is_temporary`]) that interrupted writers left in `dir` and in its folders
/// (two levels down). Call it only while holding the folder's lock, so that no live writer's temporary is
/// taken. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, FileError> {
    fn sweep(dir: &Path, depth: usize) -> Result<usize, FileError> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(FileError::at("listing", dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let Some(original) = moved_aside_name(&name).map(|n| dir.join(n))
                && is_dir
                && !original.exists()
            {
                // Interrupted between moving the old unit aside and renaming the new one in: the old one
                // is complete, so it goes back.
                std::fs::rename(&path, &original).map_err(FileError::at("restoring", &original))?;
                removed += 1;
            } else if is_temporary(&name) {
                if is_dir {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
                .map_err(FileError::at("removing", &path))?;
                removed += 1;
            } else if is_dir && depth > 0 {
                removed += sweep(&path, depth - 1)?;
            }
        }
        Ok(removed)
    }
    sweep(dir, 2)
}

/// Removes the temporaries of the artefacts `names` ([`is_temporary`] names starting `.<name>.`) that interrupted writers left
/// directly in `dir`, leaving every other file alone (a data folder may hold other work). Call it only while
/// holding the lock of those artefacts. Returns how many were removed.
pub fn remove_stale_temporaries_of(dir: &Path, names: &[&str]) -> Result<usize, FileError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(FileError::at("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = names
            .iter()
            .any(|n| name.starts_with(&format!(".{n}.")) && is_temporary(&name));
        if ours {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .map_err(FileError::at("removing", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The folder a unit moved aside by [`AtomicDir::commit`] (`.<name>.<pid>.old`) was called.
fn moved_aside_name(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(".old")?;
    let (original, pid) = inner.rsplit_once('.')?;
    (!original.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(original)
}

/// Whether `name` is one of the temporaries written here (`.<name>.<random>.tmp`, or a folder moved aside).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && (name.ends_with(".tmp") || name.ends_with(".old"))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_appears_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        write_atomic(&path, b"layer,value\n").unwrap();
        write_atomic(&path, b"layer,value\n0,1.5\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"layer,value\n0,1.5\n");
        assert_eq!(names(dir.path()), ["x.csv"]);
    }

    #[test]
    fn an_uncommitted_file_is_removed_and_the_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.file().write_all(b"half").unwrap();
        assert_eq!(names(dir.path()).len(), 2);
        drop(file);
        assert_eq!(names(dir.path()), ["model.safetensors"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn files_follow_the_umask_not_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"{}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // 0o666 minus whatever the umask removes; the group/other read bits survive any usual umask.
        assert_eq!(mode & 0o044, 0o044, "mode {mode:o}");
    }

    #[test]
    fn a_folder_replaces_the_old_one_as_a_unit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("checkpoint-000010");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("stale.bin"), b"x").unwrap();
        let unit = AtomicDir::create(&target).unwrap();
        std::fs::write(unit.path().join("model.safetensors"), b"m").unwrap();
        std::fs::write(unit.path().join("run.json"), b"{}").unwrap();
        assert!(target.join("stale.bin").exists(), "untouched until commit");
        unit.commit().unwrap();
        assert_eq!(names(&target), ["model.safetensors", "run.json"]);
        assert_eq!(names(dir.path()), ["checkpoint-000010"]);
        let dropped = AtomicDir::create(&dir.path().join("stage")).unwrap();
        drop(dropped);
        assert_eq!(names(dir.path()), ["checkpoint-000010"]);
    }

    #[test]
    fn errors_name_the_file_and_the_action() {
        let missing = Path::new("/nonexistent-weatherlens/x/y.json");
        let message = write_atomic(missing, b"{}").unwrap_err().to_string();
        assert!(message.contains("/nonexistent-weatherlens/x"), "{message}");
        let message = read(missing).unwrap_err().to_string();
        assert!(
            message.starts_with("reading /nonexistent-weatherlens/x/y.json"),
            "{message}"
        );
        assert!(is_temporary(".x.csv.a1B2c3.tmp") && !is_temporary("x.csv"));
    }
}

//! Writing outputs as units, and naming the file in every I/O error. Every crate writes through here.
//!
//! An artefact is written under a temporary name (`.<name>.<random>.tmp`) in its destination folder and
//! renamed into place once complete, so no reader, and no resumed run, ever sees half of one:
//! - [`write_atomic`]: a file written in one go;
//! - [`AtomicFile`]: a file written in pieces (seek-writes, or by a library that takes a path);
//! - [`AtomicDir`]: a folder whose files belong together (a checkpoint, a study stage), renamed as one.
//!
//! A temporary that is dropped without [`AtomicFile::commit`] / [`AtomicDir::commit`] is removed. Created files
//! get the permissions the umask allows (`tempfile`'s own default, 0600, would hide outputs from a group).
//!
//! Fault injection for tests: with `WEATHERLENS_FAIL_WRITE=N` in the environment, the N-th commit of the
//! process (counting from 1) fails as a full disk would, after writing and before the rename.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

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
        injected_failure(&target)?;
        self.temp
            .persist(&target)
            .map_err(|e| FileError::new("renaming into", &target, e.error))?;
        Ok(())
    }
}

/// A folder being filled under a temporary name beside its destination, renamed into place as one unit.
#[derive(Debug)]
pub struct AtomicDir {
    temp: Option<tempfile::TempDir>,
    target: PathBuf,
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
    /// after, so the destination always holds either the old unit or the new one, never a mix.
    pub fn commit(mut self) -> Result<(), FileError> {
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        let target = self.target.clone();
        if let Err(e) = injected_failure(&target) {
            drop(temp);
            return Err(e);
        }
        let temp = temp.keep();
        let aside = target.exists().then(|| {
            parent(&target).join(format!(
                ".{}.{}.old",
                file_name(&target),
                std::process::id()
            ))
        });
        if let Some(aside) = &aside {
            std::fs::rename(&target, aside).map_err(FileError::at("moving aside", &target))?;
        }
        if let Err(e) = std::fs::rename(&temp, &target) {
            if let Some(aside) = &aside {
                let _ = std::fs::rename(aside, &target);
            }
            let _ = std::fs::remove_dir_all(&temp);
            return Err(FileError::new("renaming into", &target, e));
        }
        if let Some(aside) = aside {
            std::fs::remove_dir_all(&aside).map_err(FileError::at("removing", &aside))?;
        }
        Ok(())
    }
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

/// Commits so far in this process, for `WEATHERLENS_FAIL_WRITE`.
static COMMITS: AtomicUsize = AtomicUsize::new(0);

fn injected_failure(target: &Path) -> Result<(), FileError> {
    let commit = COMMITS.fetch_add(1, Ordering::SeqCst) + 1;
    let fail_at = std::env::var("WEATHERLENS_FAIL_WRITE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if fail_at == Some(commit) {
        return Err(FileError::new(
            "writing",
            target,
            std::io::Error::other(format!(
                "injected write failure (WEATHERLENS_FAIL_WRITE={commit})"
            )),
        ));
    }
    Ok(())
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

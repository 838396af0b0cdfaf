//! The built `weatherlens` binary as the end-to-end tests call it: one way to run it and to require success or a
//! clean failure, and CSV rows by header. Each test file uses a part (`mod common;`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `weatherlens ARGS -q` in `dir` (HDF5 file locking off, file-creation mask 022 whatever the caller's).
pub fn run(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weatherlens"));
    command
        .args(args)
        .arg("-q")
        .current_dir(dir)
        .env("HDF5_USE_FILE_LOCKING", "FALSE");
    // SAFETY: umask(2) only sets the new process's file-creation mask; it is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    command.output().unwrap()
}

/// Runs and requires success; returns (stdout, stderr).
pub fn ok_with_stderr(dir: &Path, args: &[&str]) -> (String, String) {
    let out = run(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "weatherlens {args:?} failed:\n{stderr}"
    );
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Runs and requires success; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    ok_with_stderr(dir, args).0
}

/// Runs and requires a clean failure (exit 1, not a panic); returns stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "weatherlens {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The rows of a CSV file, each a map from header name to text.
pub fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            headers
                .iter()
                .zip(r.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

//! Fault injection for tests. The artefact writes of a process (each commit of an [`super::AtomicFile`] or
//! [`super::AtomicDir`], each [`super::append`]) are numbered from 1, and the environment can act on one:
//!
//! - `WEATHERLENS_FAIL_WRITE=N`: the N-th write fails as a full disk would, after its data is written and
//!   before it is renamed into place (the temporary is removed, the error names the file);
//! - `WEATHERLENS_KILL_AT=N`: the process is killed (SIGKILL) at that moment of the N-th write;
//!   `WEATHERLENS_KILL_AT=N:int` sends SIGINT instead (Ctrl-C) and waits for its handler to end the process;
//! - `WEATHERLENS_WRITE_LOG=FILE`: each write appends `N<TAB>PATH` to FILE, so a test can list the writes.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::FileError;

pub const FAIL_WRITE: &str = "WEATHERLENS_FAIL_WRITE";
pub const KILL_AT: &str = "WEATHERLENS_KILL_AT";
pub const WRITE_LOG: &str = "WEATHERLENS_WRITE_LOG";

/// Writes so far in this process.
static WRITES: AtomicUsize = AtomicUsize::new(0);

/// Called by every artefact write after its data is written and before it becomes visible.
pub(super) fn before_commit(target: &Path) -> Result<(), FileError> {
    let write = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(log) = std::env::var_os(WRITE_LOG) {
        let line = format!("{write}\t{}\n", target.display());
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
    let numbered = |name: &str| -> Option<(usize, String)> {
        let value = std::env::var(name).ok()?;
        let (number, rest) = value.split_once(':').unwrap_or((value.as_str(), ""));
        Some((number.trim().parse().ok()?, rest.to_string()))
    };
    if let Some((at, how)) = numbered(KILL_AT).filter(|(at, _)| *at == write) {
        stop_process(&how, at);
    }
    if numbered(FAIL_WRITE).is_some_and(|(at, _)| at == write) {
        return Err(FileError::new(
            "writing",
            target,
            std::io::Error::other(format!("injected write failure ({FAIL_WRITE}={write})")),
        ));
    }
    Ok(())
}

/// Ends the process by a signal, as `kill` from outside would.
fn stop_process(how: &str, write: usize) -> ! {
    let signal = if how == "int" {
        libc::SIGINT
    } else {
        libc::SIGKILL
    };
    eprintln!("{KILL_AT}={write}: sending {how:?} signal {signal} to this process");
    // SAFETY: kill(2) on our own pid with a valid signal number; no memory is involved.
    unsafe {
        libc::kill(libc::getpid(), signal);
    }
    // SIGINT is handled on another thread (which removes the temporaries and exits): wait for it, doing
    // nothing more here, as a process interrupted at this point would.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

//! `weatherlens`: the command line over the `weatherlens` library (its stages, study, reports and benchmarks).
//! Only argument parsing and wiring live here; every computation is a library call.

mod commands;

use std::io::IsTerminal;

use clap::Parser;

/// A pooling allocator: burn's large temporary buffers are reused instead of being returned to the OS and
/// faulted in again (page faults were half the CPU time of a mesh-level-5 step with glibc malloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its index in the C enum `mi_option_e` (v2 and v3), for which
/// libmimalloc-sys defines no constant.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed pages mapped instead of returning them to the OS. A train step frees and allocates the same
/// large buffers every step; faulting them in again (zeroed by the kernel) cost a third of the R5 processor
/// step (`weatherlens bench processor --mesh-level 5 --layers 16`: 6.2 s -> 4.3 s). Peak memory is unchanged;
/// resident memory stays at the peak until the process ends. A MIMALLOC_PURGE_DELAY set in the environment wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator; valid at any time, from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP remove the temporary files being written before the process ends, which
/// exits with 128 + the signal (130 for Ctrl-C) as a shell reports; every finished artefact stays as it was.
///
/// The signals are blocked in every thread (threads started later inherit the mask) and taken by one thread
/// with `sigwait`, so the cleanup runs as ordinary code, not in a signal handler.
fn remove_temporaries_on_interrupt() {
    // SAFETY: sigemptyset/sigaddset fill a sigset_t we own; pthread_sigmask changes this thread's mask only;
    // both are called before any other thread exists.
    let signals = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            tracing::warn!("cannot take Ctrl-C: an interrupt may leave temporary files");
            return;
        }
        set
    };
    let spawned = std::thread::Builder::new()
        .name("interrupts".into())
        .spawn(move || {
            let mut signal: libc::c_int = 0;
            // SAFETY: sigwait reads the set and writes the signal number into a local.
            while unsafe { libc::sigwait(&signals, &mut signal) } != 0 {}
            weatherlens_models::files::remove_live_temporaries(128 + signal);
        });
    if spawned.is_err() {
        tracing::warn!("cannot take Ctrl-C: an interrupt may leave temporary files");
    }
}

fn main() {
    keep_freed_memory();
    let cli = commands::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.log_level()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    remove_temporaries_on_interrupt();
    if let Err(error) = commands::run(cli) {
        eprintln!("error: {}", message(&error));
        std::process::exit(1);
    }
}

/// The error and its causes in one line, each cause once: library errors already quote their source in their
/// own message, so a cause whose text is already there is not repeated.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

//! Fault injection: `train`, `study` and `data make-synthetic` are stopped at points spread over their work —
//! killed (SIGKILL), interrupted (SIGINT, as Ctrl-C), or made to fail one artefact write (a full disk, through
//! the failing writer behind the atomic-write helper, `WEATHERLENS_FAIL_WRITE`) — and then run again as a user
//! would. The re-run must finish, and its outputs must equal those of an uninterrupted run: metrics equal but
//! for the wall-clock column, every tensor equal, checkpoint files byte-equal, every other output byte-equal;
//! no temporary file may be left, and an interrupt must leave none even before the re-run.
//!
//! The faults are placed by the binary itself at its numbered artefact writes (`WEATHERLENS_KILL_AT`,
//! `WEATHERLENS_FAIL_WRITE`; `WEATHERLENS_WRITE_LOG` lists them), so every point is reproducible; the
//! simulation of `make-synthetic`, which writes nothing for a while, is also interrupted from outside.
//! Each test prints its counts (faults injected by kind, outputs compared).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use weatherlens_models::files::is_temporary;
use weatherlens_training::dataset::{AxisChoices, Reader};

const TINY: &str = include_str!("configs/tiny.toml");

/// The fault study: one run of the tiny config, with a short probe.
const STUDY: &str = r#"
name = "faults"
base = "tiny.toml"
[probe]
samples = 2
every_hours = 6
bootstrap = 10
[[runs]]
name = "gnn"
"#;

/// A small, quick built-in atmosphere for `make-synthetic`.
const ATMOSPHERE: &str = "spin_up_days = 2.0\ntruncation = 21\ntime_step_s = 1800.0\n";
const MAKE_SYNTHETIC: &[&str] = &[
    "data",
    "make-synthetic",
    "--out",
    "made",
    "--days",
    "100",
    "--resolution",
    "22.5",
    "--config",
    "atmosphere.toml",
];

/// Files that are not outputs: locks name their holder, the write log is the test's.
fn ignored(name: &str) -> bool {
    name.ends_with(".lock") || name == "writes.log"
}

/// How one attempt was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// SIGKILL at the N-th artefact write (after its data, before its rename).
    Kill(usize),
    /// SIGINT at the N-th artefact write; the handler removes the temporaries and exits with 130.
    Interrupt(usize),
    /// The N-th artefact write fails (exit status 1, an error naming the file).
    FailWrite(usize),
    /// SIGKILL or SIGINT from outside after this many milliseconds.
    KillAfterMs(u64),
    InterruptAfterMs(u64),
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Fault::Kill(_) => "SIGKILL at a write",
            Fault::Interrupt(_) => "SIGINT at a write",
            Fault::FailWrite(_) => "failed write",
            Fault::KillAfterMs(_) => "SIGKILL from outside",
            Fault::InterruptAfterMs(_) => "SIGINT from outside",
        }
    }
}

fn binary(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weatherlens"));
    command
        .args(args)
        .arg("-q")
        .current_dir(dir)
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .env_remove("WEATHERLENS_FAIL_WRITE")
        .env_remove("WEATHERLENS_KILL_AT")
        .env_remove("WEATHERLENS_WRITE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Waits for `child` for at most five minutes (a hung process fails the test instead of CI).
fn wait(mut child: Child, what: &str) -> (ExitStatus, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            return (status, stderr);
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("{what}: still running after 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs to the end and requires success.
fn run_ok(dir: &Path, args: &[&str]) {
    let (status, stderr) = wait(binary(dir, args).spawn().unwrap(), &format!("{args:?}"));
    assert!(
        status.success(),
        "weatherlens {args:?} in {}: {stderr}",
        dir.display()
    );
}

/// The artefact writes of an uninterrupted run of `args` in `dir`: (number, path) in order.
fn write_log(dir: &Path, args: &[&str]) -> Vec<(usize, String)> {
    let log = dir.join("writes.log");
    let (status, stderr) = wait(
        binary(dir, args)
            .env("WEATHERLENS_WRITE_LOG", &log)
            .spawn()
            .unwrap(),
        "write log",
    );
    assert!(status.success(), "{stderr}");
    let text = fs::read_to_string(&log).unwrap();
    fs::remove_file(&log).unwrap();
    text.lines()
        .map(|line| {
            let (n, path) = line.split_once('\t').unwrap();
            (n.parse().unwrap(), path.to_string())
        })
        .collect()
}

/// Runs `args` in `dir` stopped by `fault`, and checks how it ended.
fn run_with_fault(dir: &Path, args: &[&str], fault: Fault, writes: &[(usize, String)]) {
    let mut command = binary(dir, args);
    match fault {
        Fault::Kill(n) => {
            command.env("WEATHERLENS_KILL_AT", n.to_string());
        }
        Fault::Interrupt(n) => {
            command.env("WEATHERLENS_KILL_AT", format!("{n}:int"));
        }
        Fault::FailWrite(n) => {
            command.env("WEATHERLENS_FAIL_WRITE", n.to_string());
        }
        Fault::KillAfterMs(_) | Fault::InterruptAfterMs(_) => {}
    }
    let child = command.spawn().unwrap();
    match fault {
        Fault::KillAfterMs(ms) | Fault::InterruptAfterMs(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            let signal = if matches!(fault, Fault::KillAfterMs(_)) {
                libc::SIGKILL
            } else {
                libc::SIGINT
            };
            // SAFETY: kill(2) on the child's pid (it has not been waited for, so the pid is still its own).
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
        _ => {}
    }
    let (status, stderr) = wait(child, &format!("{args:?} with {fault:?}"));
    assert!(!stderr.contains("panicked"), "{fault:?}: {stderr}");
    match fault {
        Fault::Kill(_) => assert_eq!(status.signal(), Some(libc::SIGKILL), "{fault:?}: {stderr}"),
        Fault::Interrupt(_) => {
            assert_eq!(status.code(), Some(130), "{fault:?}: {stderr}");
            assert_no_temporaries(dir, &format!("right after {fault:?}"));
        }
        Fault::FailWrite(n) => {
            assert_eq!(status.code(), Some(1), "{fault:?}: {stderr}");
            let path = &writes[n - 1].1;
            let name = Path::new(path).file_name().unwrap().to_string_lossy();
            assert!(
                stderr.contains("injected write failure") && stderr.contains(name.as_ref()),
                "{fault:?}: the error names the file {name}: {stderr}"
            );
            assert_no_temporaries(dir, &format!("right after {fault:?}"));
        }
        Fault::KillAfterMs(_) => {}
        Fault::InterruptAfterMs(_) => {
            // Ended by the handler (130), or finished before the signal came (0).
            assert!(
                matches!(status.code(), Some(130 | 0)),
                "{fault:?}: {status:?} {stderr}"
            );
            assert_no_temporaries(dir, &format!("right after {fault:?}"));
        }
    }
}

/// Every file below `dir` (relative paths), temporaries included, outputs only.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if ignored(&name) {
                continue;
            }
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() && !is_temporary(&name) {
                stack.push(path);
            } else {
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files
}

fn assert_no_temporaries(dir: &Path, when: &str) {
    let left: Vec<PathBuf> = tree(dir)
        .into_iter()
        .filter(|p| {
            p.components()
                .any(|c| is_temporary(&c.as_os_str().to_string_lossy()))
        })
        .collect();
    assert!(left.is_empty(), "{when}: temporaries left: {left:?}");
}

/// Rows of a metrics table without the wall-clock column.
fn metrics_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = fs::read_to_string(path).unwrap();
    if path.extension().is_some_and(|e| e == "jsonl") {
        return text
            .lines()
            .map(|line| {
                let mut row: BTreeMap<String, serde_json::Value> =
                    serde_json::from_str(line).unwrap();
                row.remove("samples_per_s");
                row.into_iter().map(|(k, v)| (k, v.to_string())).collect()
            })
            .collect();
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            headers
                .iter()
                .zip(record.unwrap().iter())
                .filter(|(h, _)| *h != "samples_per_s")
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Every tensor of a safetensors file: name -> (dtype, shape, bytes).
fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                (
                    format!("{:?}", view.dtype()),
                    view.shape().to_vec(),
                    view.data().to_vec(),
                ),
            )
        })
        .collect()
}

/// A data set as read: channels, latitudes and longitudes (bits), times, every value (bits).
type DatasetBits = (Vec<String>, Vec<u64>, Vec<u64>, Vec<i64>, Vec<u32>);

/// The fields of a NetCDF file as read: channels, coordinates, times and every value's bits.
fn dataset_bits(path: &Path) -> DatasetBits {
    let data = Reader::open_with(&[path.to_path_buf()], &[], &AxisChoices::default())
        .unwrap()
        .read_all()
        .unwrap();
    (
        data.channels.iter().map(|c| c.name.clone()).collect(),
        data.lat.iter().map(|v| v.to_bits()).collect(),
        data.lon.iter().map(|v| v.to_bits()).collect(),
        data.time_hours.clone(),
        data.data.iter().map(|v| v.to_bits()).collect(),
    )
}

/// A study report without its notes of reused stages (`"skipped": [..]` in JSON, "done (reused: ..)" in words).
fn without_reuse_notes(bytes: &[u8]) -> Vec<u8> {
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        fn strip(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::Object(map) => {
                    map.remove("skipped");
                    map.values_mut().for_each(strip);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        strip(&mut value);
        return serde_json::to_vec(&value).unwrap();
    }
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    while let Some(start) = text.find(" (reused: ") {
        let end = text[start..]
            .find(')')
            .map_or(text.len(), |e| start + e + 1);
        text.replace_range(start..end, "");
    }
    text.into_bytes()
}

/// Compares the outputs of `case` with the uninterrupted run's in `reference`, file by file, and returns how
/// many files were compared.
fn assert_same_outputs(reference: &Path, case: &Path, roots: &[&str], what: &str) -> usize {
    let mut compared = 0;
    for root in roots {
        let (a, b) = (reference.join(root), case.join(root));
        let (files_a, files_b) = (tree(&a), tree(&b));
        assert_eq!(files_a, files_b, "{what}: the files of {root} differ");
        for file in &files_a {
            let (x, y) = (a.join(file), b.join(file));
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let context = format!("{what}: {root}/{}", file.display());
            if name == "metrics.csv" || name == "metrics.jsonl" {
                assert_eq!(metrics_rows(&x), metrics_rows(&y), "{context}");
            } else if name == "probes.safetensors" {
                // Tensors equal; the header also holds the recording's random id.
                assert_eq!(tensors(&x), tensors(&y), "{context}");
            } else if name == "probes.json" {
                let strip = |p: &Path| {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
                    v.as_object_mut().unwrap().remove("recording_id");
                    v
                };
                assert_eq!(strip(&x), strip(&y), "{context}");
            } else if root.starts_with("runs")
                && (file.starts_with("faults/report") || name == "outcome.json")
            {
                // The study report and each run's recorded outcome also say which stages were reused this time.
                assert_eq!(
                    without_reuse_notes(&fs::read(&x).unwrap()),
                    without_reuse_notes(&fs::read(&y).unwrap()),
                    "{context}"
                );
            } else if name.ends_with(".nc") {
                assert!(
                    dataset_bits(&x) == dataset_bits(&y),
                    "{context}: the data differ"
                );
            } else {
                assert!(
                    fs::read(&x).unwrap() == fs::read(&y).unwrap(),
                    "{context}: the bytes differ"
                );
            }
            compared += 1;
        }
    }
    compared
}

/// Copies the files of `from` into `to` (folders created).
fn copy_tree(from: &Path, to: &Path) {
    for file in tree(from) {
        let target = to.join(&file);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(from.join(&file), target).unwrap();
    }
}

/// The built-in data of the tiny config, made once for every test (in cargo's target tmp folder).
fn tiny_data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-data");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("tiny.toml"), TINY).unwrap();
        run_ok(
            &dir,
            &[
                "train",
                "--config",
                "tiny.toml",
                "--out",
                "warm-up",
                "--stop-at",
                "1",
            ],
        );
        assert!(
            dir.join("data/tiny/synthetic.nc").is_file(),
            "training makes the data"
        );
        dir.join("data")
    })
}

/// A fresh folder holding the configs and a copy of the tiny data.
fn workspace(name: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir()
        .unwrap()
        .keep();
    fs::write(dir.join("tiny.toml"), TINY).unwrap();
    fs::write(dir.join("study.toml"), STUDY).unwrap();
    fs::write(dir.join("atmosphere.toml"), ATMOSPHERE).unwrap();
    copy_tree(tiny_data(), &dir.join("data"));
    dir
}

/// Counts of one suite, printed at its end.
#[derive(Default)]
struct Tally {
    faults: BTreeMap<&'static str, usize>,
    compared: usize,
}

impl Tally {
    fn print(&self, suite: &str, started: Instant) {
        let total: usize = self.faults.values().sum();
        println!(
            "{suite}: {total} faults injected ({}), {} outputs compared with the uninterrupted run, {:.0} s",
            self.faults
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.compared,
            started.elapsed().as_secs_f64()
        );
    }
}

/// One command under fault injection: how a user re-runs it, which output folders to compare, and the
/// uninterrupted run's artefact writes and outputs.
struct Suite<'a> {
    name: &'a str,
    command: &'a [&'a str],
    recover: &'a dyn Fn(&Path) -> Vec<String>,
    roots: &'a [&'a str],
    writes: &'a [(usize, String)],
    reference: &'a Path,
}

impl Suite<'_> {
    /// Runs every fault of `faults` on a fresh copy, re-runs as the user would, and compares with the reference.
    fn exercise(&self, faults: &[Fault], tally: &mut Tally) {
        for &fault in faults {
            let case = workspace(self.name);
            run_with_fault(&case, self.command, fault, self.writes);
            let again = (self.recover)(&case);
            let again: Vec<&str> = again.iter().map(String::as_str).collect();
            run_ok(&case, &again);
            assert_no_temporaries(
                &case,
                &format!("{} after {fault:?} and a re-run", self.name),
            );
            tally.compared += assert_same_outputs(
                self.reference,
                &case,
                self.roots,
                &format!("{} {fault:?}", self.name),
            );
            *tally.faults.entry(fault.kind()).or_default() += 1;
            fs::remove_dir_all(&case).unwrap();
        }
    }
}

/// `count` write numbers spread evenly over 1..=total (first and last included).
fn spread(total: usize, count: usize) -> Vec<usize> {
    let count = count.min(total).max(1);
    let mut picks: Vec<usize> = (0..count)
        .map(|k| 1 + k * (total - 1) / (count - 1).max(1))
        .collect();
    picks.dedup();
    picks
}

#[test]
fn train_recovers_from_every_failed_write_and_from_kills() {
    let started = Instant::now();
    let command = ["train", "--config", "tiny.toml", "--out", "run"];
    let reference = workspace("train-reference");
    let writes = write_log(&reference, &command);
    assert!(writes.len() >= 20, "{writes:?}");
    // The user's way back: resume when a checkpoint exists, else start again.
    let recover = |dir: &Path| -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let has_checkpoint = fs::read_dir(dir.join("run")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
        });
        if has_checkpoint {
            args.extend(["--resume".to_string(), "run".to_string()]);
        }
        args
    };
    let mut faults: Vec<Fault> = (1..=writes.len()).map(Fault::FailWrite).collect();
    faults.extend(spread(writes.len(), 8).into_iter().map(Fault::Kill));
    faults.extend(spread(writes.len(), 4).into_iter().map(Fault::Interrupt));
    let mut tally = Tally::default();
    Suite {
        name: "train",
        command: &command,
        recover: &recover,
        roots: &["run"],
        writes: &writes,
        reference: &reference,
    }
    .exercise(&faults, &mut tally);
    tally.print("train", started);
}

#[test]
fn study_recovers_from_every_failed_write_and_from_kills() {
    let started = Instant::now();
    let command = ["study", "--config", "study.toml", "--nulls", "0"];
    let reference = workspace("study-reference");
    let writes = write_log(&reference, &command);
    assert!(writes.len() >= 20, "{writes:?}");
    let recover = |_: &Path| command.iter().map(|s| s.to_string()).collect();
    let mut faults: Vec<Fault> = (1..=writes.len()).map(Fault::FailWrite).collect();
    faults.extend(spread(writes.len(), 8).into_iter().map(Fault::Kill));
    faults.extend(spread(writes.len(), 4).into_iter().map(Fault::Interrupt));
    let mut tally = Tally::default();
    Suite {
        name: "study",
        command: &command,
        recover: &recover,
        roots: &["runs"],
        writes: &writes,
        reference: &reference,
    }
    .exercise(&faults, &mut tally);
    tally.print("study", started);
}

#[test]
fn make_synthetic_recovers_from_every_failed_write_and_from_kills() {
    let started = Instant::now();
    let reference = workspace("synthetic-reference");
    let writes = write_log(&reference, MAKE_SYNTHETIC);
    // The data file, then its settings.
    assert_eq!(writes.len(), 2, "{writes:?}");
    let recover = |_: &Path| MAKE_SYNTHETIC.iter().map(|s| s.to_string()).collect();
    let mut faults = vec![
        Fault::FailWrite(1),
        Fault::FailWrite(2),
        Fault::Kill(1),
        Fault::Kill(2),
        Fault::Interrupt(1),
        Fault::Interrupt(2),
        // During the simulation, which writes nothing until it is done.
        Fault::KillAfterMs(400),
        Fault::InterruptAfterMs(400),
    ];
    faults.sort();
    let mut tally = Tally::default();
    Suite {
        name: "make-synthetic",
        command: MAKE_SYNTHETIC,
        recover: &recover,
        roots: &["made"],
        writes: &writes,
        reference: &reference,
    }
    .exercise(&faults, &mut tally);
    // An interrupted re-make of a folder that holds data never leaves new data beside old settings.
    let case = workspace("synthetic-remake");
    run_ok(&case, MAKE_SYNTHETIC);
    let mut longer: Vec<&str> = MAKE_SYNTHETIC.to_vec();
    longer[5] = "101";
    run_with_fault(&case, &longer, Fault::Kill(2), &writes);
    assert!(
        !case.join("made/synthetic.json").exists(),
        "the settings of the 100-day data are gone once the 101-day data replaced it"
    );
    *tally.faults.entry(Fault::Kill(2).kind()).or_default() += 1;
    fs::remove_dir_all(&case).unwrap();
    tally.print("make-synthetic", started);
}

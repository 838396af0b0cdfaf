//! Every artefact read back is validated before use, and every output is written as a unit: one end-to-end test
//! per way a run could panic or use wrong data (issue 17, items 1-16), each checking the error names the file
//! and the problem, or that the output holds the right value.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use weatherlens_models::lock::{FolderLock, Wait};
use weatherlens_training::schedule::LrSchedule;

const TINY: &str = include_str!("configs/tiny.toml");

mod common;
use common::{csv_rows, fails, ok_with_stderr as ok};

/// A trained tiny run (12 steps), its data and a full-mesh recording, made once (in cargo's target tmp folder).
fn shared() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("integrity-shared");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("tiny.toml"), TINY).unwrap();
        ok(&dir, &["train", "--config", "tiny.toml", "--out", "run"]);
        ok(
            &dir,
            &[
                "probe",
                "--checkpoint",
                "run",
                "--samples",
                "2",
                "--every-hours",
                "6",
            ],
        );
        dir
    })
}

/// A fresh folder holding tiny.toml, the shared data and (when `with_run`) a copy of the shared run.
fn workspace(with_run: bool) -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    let shared = shared();
    fs::write(temp.path().join("tiny.toml"), TINY).unwrap();
    let mut folders = vec!["data"];
    if with_run {
        folders.push("run");
    }
    for folder in folders {
        copy(&shared.join(folder), &temp.path().join(folder));
    }
    temp
}

fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &serde_json::Value) {
    fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// Metrics rows without the measured throughput.
fn metrics(path: &Path) -> Vec<HashMap<String, String>> {
    csv_rows(path)
        .into_iter()
        .map(|mut r| {
            r.remove("samples_per_s");
            r
        })
        .collect()
}

const NEWEST: &str = "run/checkpoint-00000012";

// 1. A recording whose probes.json lists fewer node latitudes than the tensors have nodes, and a tensor file
//    from another recording beside a description (the state a full disk between two renames left).
#[test]
fn a_recording_that_does_not_match_its_tensors_is_an_error_not_a_panic() {
    let ws = workspace(true);
    let dir = ws.path();
    let compare = [
        "compare",
        "run/probes",
        "run/probes",
        "--tensor",
        "processor.0.resid_pre",
        "--region",
        "tropics",
        "--nulls",
        "0",
    ];
    ok(dir, &compare);
    let meta_path = dir.join("run/probes/probes.json");
    let mut meta = json(&meta_path);
    let nodes = meta["node_lat"].as_array().unwrap().len();
    assert_eq!(nodes, 42, "a level-1 mesh");
    meta["node_lat"].as_array_mut().unwrap().pop();
    write_json(&meta_path, &meta);
    let err = fails(dir, &compare);
    assert!(
        err.contains("probes.json") && err.contains("42 node indices but 41 latitudes"),
        "{err}"
    );

    // A second recording of the same model: its own id. Its tensors beside the first's description.
    copy(&shared().join("run/probes"), &dir.join("run/probes"));
    ok(
        dir,
        &[
            "probe",
            "--checkpoint",
            "run",
            "--samples",
            "2",
            "--every-hours",
            "6",
            "--out",
            "again",
        ],
    );
    let first = json(&dir.join("run/probes/probes.json"));
    let second = json(&dir.join("again/probes.json"));
    let (a, b) = (
        first["recording_id"].as_str().unwrap(),
        second["recording_id"].as_str().unwrap(),
    );
    assert!(a.len() == 32 && b.len() == 32 && a != b, "{a} {b}");
    fs::copy(
        dir.join("again/probes.safetensors"),
        dir.join("run/probes/probes.safetensors"),
    )
    .unwrap();
    for args in [
        &compare[..],
        &["analyze", "run/probes", "--out", "analysis"][..],
    ] {
        let err = fails(dir, args);
        assert!(
            err.contains("different recordings") && err.contains(a) && err.contains(b),
            "{err}"
        );
    }
    assert!(
        !dir.join("analysis").exists(),
        "a failed analysis writes nothing"
    );
}

// 2. An optimiser state of another model (latent 8) in a latent-16 checkpoint.
#[test]
fn an_optimiser_state_of_another_model_is_refused_on_resume() {
    let ws = workspace(true);
    let dir = ws.path();
    fs::write(
        dir.join("narrow.toml"),
        TINY.replace("latent_size = 16", "latent_size = 8"),
    )
    .unwrap();
    ok(
        dir,
        &[
            "train",
            "--config",
            "narrow.toml",
            "--out",
            "narrow",
            "--stop-at",
            "4",
        ],
    );
    let checkpoint = dir.join("run/checkpoint-00000008");
    fs::copy(
        dir.join("narrow/checkpoint-00000004/optimizer.bpk"),
        checkpoint.join("optimizer.bpk"),
    )
    .unwrap();
    let err = fails(
        dir,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "resumed",
            "--resume",
            "run/checkpoint-00000008",
        ],
    );
    assert!(
        err.contains("checkpoint-00000008/optimizer.bpk") && err.contains("not for this model"),
        "{err}"
    );
    assert!(
        err.contains("[8, 8]") || err.contains("[16, 16]") || err.contains("shape"),
        "{err}"
    );
}

// 3. and 11. A run.json whose normalisation has one channel fewer than the data, or a zero std.
#[test]
fn a_run_json_with_unusable_normalisation_is_refused_naming_it() {
    let ws = workspace(true);
    let dir = ws.path();
    let run_json = dir.join(NEWEST).join("run.json");
    let original = json(&run_json);

    let mut fewer = original.clone();
    let removed = fewer["normalisation"]["channels"]
        .as_array_mut()
        .unwrap()
        .pop()
        .unwrap();
    write_json(&run_json, &fewer);
    for args in [
        &["evaluate", "--checkpoint", "run"][..],
        &["probe", "--checkpoint", "run", "--out", "rec"][..],
    ] {
        let err = fails(dir, args);
        assert!(
            err.contains("checkpoint-00000012/run.json")
                && err.contains("normalisation has 3 channels")
                && err.contains("the data has 4"),
            "{err}"
        );
    }
    assert!(removed["name"].is_string());

    let mut zero = original.clone();
    zero["normalisation"]["channels"][0]["std"] = serde_json::json!(0.0);
    write_json(&run_json, &zero);
    let err = fails(dir, &["evaluate", "--checkpoint", "run"]);
    assert!(
        err.contains("run.json") && err.contains("std must be positive"),
        "{err}"
    );
    assert!(!dir.join("run/evaluation").exists());
}

// 4. A half-written last row of metrics.csv (and metrics.jsonl) does not block --resume.
#[test]
fn a_half_written_metrics_row_is_dropped_on_resume() {
    let ws = workspace(false);
    let dir = ws.path();
    ok(
        dir,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "run",
            "--stop-at",
            "8",
        ],
    );
    // Killed while appending step 9's row, after the checkpoint of step 8.
    for (file, half) in [
        ("metrics.csv", "9,0,0.0010"),
        ("metrics.jsonl", "{\"step\":9,\"ep"),
    ] {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.join("run").join(file))
            .unwrap();
        f.write_all(half.as_bytes()).unwrap();
    }
    ok(
        dir,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "run",
            "--resume",
            "run",
        ],
    );
    assert_eq!(
        metrics(&dir.join("run/metrics.csv")),
        metrics(&shared().join("run/metrics.csv")),
        "the resumed metrics equal an uninterrupted run's"
    );
    let lines = fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 12);
    assert!(
        lines
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

// 5. A study stage is done only when all its outputs exist.
#[test]
fn a_study_stage_missing_an_output_is_done_again() {
    let ws = workspace(false);
    let dir = ws.path();
    fs::write(
        dir.join("study.toml"),
        "name = \"s\"\nbase = \"tiny.toml\"\n[probe]\nsamples = 2\nevery_hours = 6\nbootstrap = 10\n\
         [[runs]]\nname = \"gnn\"\n",
    )
    .unwrap();
    ok(dir, &["study", "--config", "study.toml", "--nulls", "0"]);
    let evaluation = dir.join("runs/s/gnn/evaluation");
    let listed = json(&evaluation.join("outputs.json"));
    let plot = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .find(|f| f.ends_with(".png"))
        .expect("the evaluation lists its plots");
    let scorecard = fs::read(evaluation.join("scorecard.csv")).unwrap();
    // As if interrupted after the tables and before the plots.
    fs::remove_file(evaluation.join(&plot)).unwrap();
    ok(dir, &["study", "--config", "study.toml", "--nulls", "0"]);
    assert!(evaluation.join(&plot).is_file(), "{plot} was made again");
    assert_eq!(
        fs::read(evaluation.join("scorecard.csv")).unwrap(),
        scorecard
    );
    let report = json(&dir.join("runs/s/report/report.json"));
    let skipped = report["runs"][0]["skipped"].as_array().unwrap();
    assert!(skipped.contains(&serde_json::json!("train")), "{skipped:?}");
    assert!(
        !skipped.contains(&serde_json::json!("evaluate")),
        "{skipped:?}"
    );
}

// 6. `probe --layers 1,2` then `analyze`: the rows keep the layers' real indices, and no NaN is reported.
#[test]
fn analysed_layers_keep_their_real_indices() {
    let ws = workspace(true);
    let dir = ws.path();
    ok(
        dir,
        &[
            "probe",
            "--checkpoint",
            "run",
            "--layers",
            "2,1",
            "--samples",
            "2",
            "--every-hours",
            "6",
            "--out",
            "rec",
        ],
    );
    let (stdout, _) = ok(dir, &["analyze", "rec", "--out", "analysis", "--json"]);
    let analysis: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let layers: Vec<u64> = analysis["velocity"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(layers, [1, 2]);
    let centroid: Vec<u64> = analysis["centroid"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(centroid, [1, 2]);
    assert!(analysis["velocity"]["decay"]["layer_p_value"].is_null());
    // Layer 1's turn from layer 0 is unknown (layer 0 was not recorded); layer 2's is measured.
    assert!(analysis["velocity"]["layers"][0]["cos_prev"].is_null());
    assert!(analysis["velocity"]["layers"][1]["cos_prev"].is_f64());
    let rows = csv_rows(&dir.join("analysis/velocity.csv"));
    assert_eq!(rows[0]["layer"], "1");
    assert_eq!(rows[1]["layer"], "2");
    let report = fs::read_to_string(dir.join("analysis/report.md")).unwrap();
    assert!(!report.contains("NaN"), "{report}");
    assert!(
        report.contains("| 1 |") && report.contains("| 2 |"),
        "{report}"
    );
}

// 7. `make-synthetic --out` into a folder `train` made writes its settings with its data.
#[test]
fn make_synthetic_writes_its_data_and_settings_as_one_unit() {
    let ws = workspace(false);
    let dir = ws.path();
    let settings = |dir: &Path| json(&dir.join("data/tiny/synthetic.json"));
    assert_eq!(settings(dir)["days"], 20.0);
    fs::write(
        dir.join("atmosphere.toml"),
        "spin_up_days = 2.0\ntruncation = 21\ntime_step_s = 1800.0\n",
    )
    .unwrap();
    ok(
        dir,
        &[
            "data",
            "make-synthetic",
            "--out",
            "data/tiny",
            "--days",
            "3",
            "--resolution",
            "22.5",
            "--config",
            "atmosphere.toml",
        ],
    );
    let made = settings(dir);
    assert_eq!(made["days"], 3.0);
    assert_eq!(made["atmosphere"]["output_n_lat"], 8);
    let (stdout, _) = ok(
        dir,
        &["data", "inspect", "data/tiny/synthetic.nc", "--json"],
    );
    let inspect: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(inspect["dims"]["latitude"], 8);
    // Training with the 20-day settings sees data made otherwise, and makes its own again.
    ok(
        dir,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "run",
            "--stop-at",
            "1",
        ],
    );
    assert_eq!(settings(dir), settings(shared()));
}

// 8. Changing [data.synthetic] and resuming is refused before the shared data is touched.
#[test]
fn a_refused_resume_touches_no_data() {
    let ws = workspace(true);
    let dir = ws.path();
    let data = fs::read(dir.join("data/tiny/synthetic.nc")).unwrap();
    let settings = fs::read(dir.join("data/tiny/synthetic.json")).unwrap();
    fs::write(
        dir.join("longer.toml"),
        TINY.replace("days = 20\n", "days = 21\n"),
    )
    .unwrap();
    let err = fails(
        dir,
        &[
            "train",
            "--config",
            "longer.toml",
            "--out",
            "run",
            "--resume",
            "run",
        ],
    );
    assert!(err.contains("data.synthetic.days 20.0 -> 21.0"), "{err}");
    assert_eq!(fs::read(dir.join("data/tiny/synthetic.nc")).unwrap(), data);
    assert_eq!(
        fs::read(dir.join("data/tiny/synthetic.json")).unwrap(),
        settings
    );
    // And a fresh run into a folder that holds checkpoints is refused too (resume it, or choose another).
    let err = fails(dir, &["train", "--config", "tiny.toml", "--out", "run"]);
    assert!(err.contains("--resume") && err.contains("step 12"), "{err}");
}

// 9. A second writer of a run folder gets an error naming the holder.
#[test]
fn a_second_writer_of_a_run_folder_is_refused() {
    let ws = workspace(false);
    let dir = ws.path();
    let started = Instant::now();
    let holder = FolderLock::acquire(&dir.join("run"), "weatherlens.lock", Wait::No).unwrap();
    let err = fails(dir, &["train", "--config", "tiny.toml", "--out", "run"]);
    assert!(
        err.contains("another process is writing here")
            && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at once"
    );
    assert!(!dir.join("run/metrics.csv").exists(), "nothing written");
    drop(holder);
    // Two real processes: the second is refused while the first trains.
    fs::write(
        dir.join("long.toml"),
        TINY.replace("steps = 12", "steps = 100000"),
    )
    .unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_weatherlens"))
        .args(["train", "--config", "long.toml", "--out", "long", "-q"])
        .current_dir(dir)
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .spawn()
        .unwrap();
    let lock_file = dir.join("long/weatherlens.lock");
    while !fs::read_to_string(&lock_file).is_ok_and(|t| !t.is_empty()) {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = fails(dir, &["train", "--config", "long.toml", "--out", "long"]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
}

// 10. Optimiser and schedule changes on resume are warned about and recorded with their step.
#[test]
fn config_changes_on_resume_are_recorded_with_their_step() {
    let ws = workspace(false);
    let dir = ws.path();
    ok(
        dir,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "run",
            "--stop-at",
            "4",
        ],
    );
    fs::write(
        dir.join("slower.toml"),
        TINY.replace("lr = 3e-3", "lr = 1e-3\nweight_decay = 0.05"),
    )
    .unwrap();
    let (_, stderr) = ok(
        dir,
        &[
            "train",
            "--config",
            "slower.toml",
            "--out",
            "run",
            "--resume",
            "run",
        ],
    );
    assert!(
        stderr.contains("training.lr") && stderr.contains("training.weight_decay"),
        "{stderr}"
    );
    let state = json(&dir.join(NEWEST).join("run.json"));
    assert_eq!(state["config"]["training"]["lr"], 1e-3);
    let changes = state["config_changes"].as_array().unwrap();
    let summary: Vec<(u64, &str, f64, f64)> = changes
        .iter()
        .map(|c| {
            (
                c["step"].as_u64().unwrap(),
                c["key"].as_str().unwrap(),
                c["from"].as_f64().unwrap(),
                c["to"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (4, "training.lr", 3e-3, 1e-3),
            (4, "training.weight_decay", 0.1, 0.05)
        ]
    );
    // Steps 1-4 ran with the old schedule, 5-12 with the new one (row k holds update k + 1).
    let rows = csv_rows(&dir.join("run/metrics.csv"));
    let schedule = |peak: f64| LrSchedule {
        peak,
        final_lr: 1e-5,
        warmup_steps: 2,
        total_steps: 12,
    };
    for (k, row) in rows.iter().enumerate() {
        let expected = schedule(if k < 4 { 3e-3 } else { 1e-3 }).lr(k);
        let lr: f64 = row["lr"].parse().unwrap();
        assert!(
            (lr - expected).abs() <= 1e-15 * expected,
            "step {}: {lr} vs {expected}",
            k + 1
        );
    }
}

// 12. A checkpoint folder without run.json is named as such.
#[test]
fn a_checkpoint_without_run_json_names_the_missing_file() {
    let ws = workspace(true);
    let dir = ws.path();
    fs::remove_file(dir.join(NEWEST).join("run.json")).unwrap();
    let err = fails(dir, &["evaluate", "--checkpoint", NEWEST]);
    assert!(
        err.contains("checkpoint-00000012/run.json: missing")
            && !err.contains("no checkpoint folder"),
        "{err}"
    );
}

// 14. latent_size = 1 is refused by validation, and a failed analysis leaves no partial output.
#[test]
fn what_later_stages_need_is_validated_and_failures_leave_nothing() {
    let ws = workspace(true);
    let dir = ws.path();
    fs::write(
        dir.join("one.toml"),
        TINY.replace("latent_size = 16", "latent_size = 1"),
    )
    .unwrap();
    let err = fails(dir, &["train", "--config", "one.toml", "--out", "one"]);
    assert!(
        err.contains("one.toml") && err.contains("model.latent_size") && err.contains("at least 2"),
        "{err}"
    );
    // The analysis's third file write fails: no analysis folder, no temporary.
    let out = Command::new(env!("CARGO_BIN_EXE_weatherlens"))
        .args(["analyze", "run/probes", "--out", "analysis", "-q"])
        .current_dir(dir)
        .env("WEATHERLENS_FAIL_WRITE", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("analysis")), "{names:?}");
}

// 15. Output folders are checked before minutes of work, and checkpoints follow the umask.
#[test]
fn unwritable_outputs_fail_fast_and_checkpoints_follow_the_umask() {
    let ws = workspace(false);
    let dir = ws.path();
    fs::write(dir.join("in-the-way"), "").unwrap();
    let started = Instant::now();
    // The default two years take minutes to simulate: the folder is checked first.
    let err = fails(dir, &["data", "make-synthetic", "--out", "in-the-way/data"]);
    assert!(err.contains("in-the-way"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for file in ["model.safetensors", "optimizer.bpk", "run.json"] {
        assert_eq!(mode(&shared().join(NEWEST).join(file)), 0o644, "{file}");
    }
}

// 16. Two identical runs write byte-identical checkpoints, and analyses.
#[test]
fn identical_runs_write_identical_bytes() {
    let ws = workspace(false);
    let dir = ws.path();
    ok(dir, &["train", "--config", "tiny.toml", "--out", "run"]);
    for file in ["model.safetensors", "optimizer.bpk", "run.json"] {
        assert!(
            fs::read(dir.join(NEWEST).join(file)).unwrap()
                == fs::read(shared().join(NEWEST).join(file)).unwrap(),
            "{file} differs between two identical runs"
        );
    }
    for out in ["a", "b"] {
        ok(
            dir,
            &[
                "analyze",
                &shared().join("run/probes").display().to_string(),
                "--out",
                out,
            ],
        );
    }
    for file in ["analysis.json", "velocity.csv", "centroid.csv", "report.md"] {
        assert_eq!(
            fs::read(dir.join("a").join(file)).unwrap(),
            fs::read(dir.join("b").join(file)).unwrap(),
            "{file}"
        );
    }
}

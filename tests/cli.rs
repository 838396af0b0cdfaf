//! End-to-end tests of the `weatherlens` binary on a tiny run of the built-in atmosphere (seconds each).
//!
//! The commands that work on a trained model share one run ([`shared`]: trained, evaluated and probed once);
//! each has its own test. Tables are read by their header names.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TINY: &str = include_str!("configs/tiny.toml");

/// A working directory holding `tiny.toml` (its data folder is created on first use).
struct Workspace {
    dir: PathBuf,
    /// Removes the directory at the end of a test; the shared run's lives in cargo's target tmp folder.
    _temp: Option<tempfile::TempDir>,
}

impl Workspace {
    fn new(config_edit: impl Fn(&str) -> String) -> Self {
        let temp = tempfile::tempdir().unwrap();
        fs::write(temp.path().join("tiny.toml"), config_edit(TINY)).unwrap();
        Self {
            dir: temp.path().to_path_buf(),
            _temp: Some(temp),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_weatherlens"))
            .args(args)
            .arg("-q")
            .current_dir(&self.dir)
            .env("HDF5_USE_FILE_LOCKING", "FALSE")
            .output()
            .unwrap()
    }

    /// Run and require success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "weatherlens {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run and require a clean failure (exit 1, not a panic); returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "weatherlens {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

/// The rows of a CSV file, each a map from header name to text.
fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

fn number(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column].parse().unwrap()
}

/// One tiny run trained, evaluated and probed once for all the tests below (in cargo's target tmp folder).
fn shared() -> &'static Workspace {
    static RUN: OnceLock<Workspace> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-shared-run");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("tiny.toml"), TINY).unwrap();
        let ws = Workspace { dir, _temp: None };
        ws.ok(&["train", "--config", "tiny.toml", "--out", "run"]);
        ws.ok(&["evaluate", "--checkpoint", "run"]);
        ws.ok(&[
            "probe",
            "--checkpoint",
            "run",
            "--samples",
            "3",
            "--every-hours",
            "6",
        ]);
        ws
    })
}

#[test]
fn train_writes_a_row_per_update_validation_and_the_last_checkpoints() {
    let ws = shared();
    let metrics = csv_rows(&ws.path("run/metrics.csv"));
    assert_eq!(metrics.len(), 12, "one row per update");
    let steps: Vec<f64> = metrics.iter().map(|r| number(r, "step")).collect();
    assert_eq!(steps, (1..=12).map(f64::from).collect::<Vec<_>>());
    let validated: Vec<f64> = metrics
        .iter()
        .filter(|r| !r["val_loss"].is_empty())
        .map(|r| number(r, "step"))
        .collect();
    assert_eq!(validated, [4.0, 8.0, 12.0], "validation every 4 steps");
    assert!(
        ws.path("run/checkpoint-00000012/model.safetensors")
            .is_file()
    );
    assert!(ws.path("run/checkpoint-00000008/run.json").is_file());
    assert!(
        !ws.path("run/checkpoint-00000004").exists(),
        "keep_last = 2"
    );
}

#[test]
fn evaluate_scores_every_forecaster_and_keeps_every_case() {
    let ws = shared();
    let scorecard = csv_rows(&ws.path("run/evaluation/scorecard.csv"));
    // 4 forecasters (tiny, persistence, climatology, physics) x 4 channels x 4 leads (6..24 h).
    assert_eq!(scorecard.len(), 4 * 4 * 4);
    let models: std::collections::BTreeSet<&str> =
        scorecard.iter().map(|r| r["model"].as_str()).collect();
    assert_eq!(
        models.into_iter().collect::<Vec<_>>(),
        ["climatology", "persistence", "physics", "tiny"]
    );
    let first = &scorecard[0];
    let cases = number(first, "n_cases") as usize;
    let errors = csv_rows(&ws.path("run/evaluation/errors.csv"));
    assert_eq!(errors.len(), scorecard.len() * cases, "one row per case");
    // The mean RMSE in the scorecard is the mean of the per-case RMSEs in errors.csv.
    let same = |r: &HashMap<String, String>| {
        ["model", "variable", "lead_hours"]
            .iter()
            .all(|c| r[*c] == first[*c])
    };
    let per_case: Vec<f64> = errors
        .iter()
        .filter(|r| same(r))
        .map(|r| number(r, "rmse"))
        .collect();
    assert_eq!(per_case.len(), cases);
    let mean_of_cases = per_case.iter().sum::<f64>() / cases as f64;
    let scored = number(first, "rmse");
    assert!((mean_of_cases - scored).abs() < 1e-9 * scored.abs().max(1.0));
    assert!(ws.path("run/evaluation/rmse_z500.png").is_file());
}

#[test]
fn errors_correlates_the_cases_of_every_forecaster() {
    let ws = shared();
    let errors = ws.json(&[
        "errors",
        "run/evaluation/errors.csv",
        "--lead-hours",
        "24",
        "--out",
        "error_correlation",
        "--json",
    ]);
    let r: Vec<f64> = errors["correlation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(r.len(), 16, "4 forecasters");
    for i in 0..4 {
        assert!((r[i * 4 + i] - 1.0).abs() < 1e-12);
        for j in 0..4 {
            assert!((r[i * 4 + j] - r[j * 4 + i]).abs() < 1e-12, "symmetric");
        }
    }
    assert!(ws.path("error_correlation.png").is_file());
}

#[test]
fn probe_records_every_layer_at_every_node() {
    let ws = shared();
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(ws.path("run/probes/probes.json")).unwrap()).unwrap();
    assert_eq!(meta["layers"], serde_json::json!([0, 1, 2]));
    assert_eq!(
        meta["node_indices"].as_array().unwrap().len(),
        42,
        "all nodes of mesh level 1"
    );
    assert_eq!(meta["sample_times"].as_array().unwrap().len(), 3);
}

#[test]
fn analyze_writes_one_row_per_layer() {
    let ws = shared();
    let analysis = ws.json(&[
        "analyze",
        "run",
        "--bootstrap",
        "20",
        "--out",
        "analysis-test",
        "--json",
    ]);
    assert_eq!(analysis["velocity"]["layers"].as_array().unwrap().len(), 3);
    let velocity = csv_rows(&ws.path("analysis-test/velocity.csv"));
    let layers: Vec<f64> = velocity.iter().map(|r| number(r, "layer")).collect();
    assert_eq!(layers, [0.0, 1.0, 2.0]);
    assert!(velocity.iter().all(|r| number(r, "norm_mean") > 0.0));
    let centroid = csv_rows(&ws.path("analysis-test/centroid.csv"));
    assert_eq!(centroid.len(), 3);
    assert!(ws.path("analysis-test/report.md").is_file());
}

#[test]
fn jacobian_reaches_the_longest_edge_of_a_level_one_gnn() {
    // A level-1 GNN step reaches exactly its longest multimesh edge (the level-0 edge, 63.43°) from the coarse
    // nodes, and its Jacobian asymmetry lies in [0, 2].
    let ws = shared();
    let jacobian = ws.json(&[
        "jacobian",
        "--checkpoint",
        "run",
        "--layers",
        "0,2",
        "--receivers",
        "42",
        "--out",
        "jacobian-test",
        "--json",
    ]);
    let layers = jacobian["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for layer in layers {
        let a = layer["asymmetry"]["asymmetry"].as_f64().unwrap();
        assert!((0.0..=2.0).contains(&a), "{a}");
        let reach = layer["range"]["reach_deg"].as_f64().unwrap();
        assert!((reach - 63.43).abs() < 0.01, "the level-0 edge: {reach}");
    }
    let rows = csv_rows(&ws.path("jacobian-test/jacobian.csv"));
    let layers: Vec<f64> = rows.iter().map(|r| number(r, "layer")).collect();
    assert_eq!(layers, [0.0, 2.0], "real layer indices");
    assert!(!csv_rows(&ws.path("jacobian-test/influence.csv")).is_empty());
    assert!(ws.path("jacobian-test/asymmetry.png").is_file());
}

#[test]
fn compare_finds_a_representation_perfectly_aligned_with_itself() {
    let ws = shared();
    let compared = ws.json(&[
        "compare",
        "run/probes",
        "run/probes",
        "--tensor",
        "processor.2.resid_post",
        "--nulls",
        "10",
        "--ci-draws",
        "0",
        "--json",
    ]);
    assert_eq!(compared["n"], 3 * 42);
    for metric in ["cka_biased", "cka_unbiased", "cknna", "mutual_knn"] {
        let value = compared["metrics"][metric].as_f64().unwrap();
        assert!((value - 1.0).abs() < 1e-9, "{metric} = {value}");
    }
    // Layer-by-layer CKA of one model with itself: ones on the diagonal, symmetric, a heat map written.
    let layers = ws.json(&[
        "compare",
        "run/probes",
        "run/probes",
        "--layers",
        "--out",
        "layer_cka",
        "--json",
    ]);
    let cka: Vec<f64> = layers["cka"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(cka.len(), 9);
    for i in 0..3 {
        assert!((cka[i * 3 + i] - 1.0).abs() < 1e-9);
        for j in 0..3 {
            assert!((cka[i * 3 + j] - cka[j * 3 + i]).abs() < 1e-9);
        }
    }
    assert!(ws.path("layer_cka.png").is_file());
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let straight = Workspace::new(str::to_string);
    straight.ok(&["train", "--config", "tiny.toml", "--out", "run"]);
    let resumed = Workspace::new(str::to_string);
    resumed.ok(&[
        "train",
        "--config",
        "tiny.toml",
        "--out",
        "run",
        "--stop-at",
        "8",
    ]);
    resumed.ok(&[
        "train",
        "--config",
        "tiny.toml",
        "--out",
        "run",
        "--resume",
        "run",
    ]);
    // Everything but the measured throughput must be bit-identical.
    let strip = |rows: Vec<HashMap<String, String>>| -> Vec<HashMap<String, String>> {
        rows.into_iter()
            .map(|mut r| {
                r.remove("samples_per_s");
                r
            })
            .collect()
    };
    assert_eq!(
        strip(csv_rows(&straight.path("run/metrics.csv"))),
        strip(csv_rows(&resumed.path("run/metrics.csv")))
    );
    // The weights too (tensor by tensor: the file's JSON header may list them in another order).
    let weights = |ws: &Workspace| {
        let bytes = fs::read(ws.path("run/checkpoint-00000012/model.safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<(String, Vec<u8>)> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.data().to_vec()))
            .collect();
        tensors.sort();
        tensors
    };
    let (a, b) = (weights(&straight), weights(&resumed));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "tensor {name} differs after resume");
    }
}

#[test]
fn fused_kernels_train_like_the_plain_reference() {
    // 20 updates with the rollout curriculum (1, 2, then 3 steps), once with the fused CPU kernels and once
    // with burn's own ops: the loss curves must agree to 1e-4 (relative).
    let edit = |c: &str| {
        c.replace("steps = 12", "steps = 20")
            .replace("rollout_start = 6", "rollout_start = 8")
            .replace("rollout_every = 3", "rollout_every = 6")
            .replace("lead_steps = 2", "lead_steps = 3")
    };
    let fused = Workspace::new(edit);
    fused.ok(&["train", "--config", "tiny.toml", "--out", "run"]);
    let plain = Workspace::new(edit);
    plain.ok(&[
        "--kernels",
        "plain",
        "train",
        "--config",
        "tiny.toml",
        "--out",
        "run",
    ]);
    let losses = |ws: &Workspace| -> Vec<f64> {
        csv_rows(&ws.path("run/metrics.csv"))
            .iter()
            .map(|r| number(r, "train_loss"))
            .collect()
    };
    let (a, b) = (losses(&fused), losses(&plain));
    assert_eq!(a.len(), 20);
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * y.abs(),
            "step {}: fused loss {x} vs plain {y}",
            step + 1
        );
    }
}

#[test]
fn training_loss_falls_on_the_built_in_data() {
    let ws = Workspace::new(|c| {
        c.replace("steps = 12", "steps = 60")
            .replace("lr = 3e-3", "lr = 1e-2")
            .replace("val_every = 4", "val_every = 10")
            .replace("rollout_start = 6", "rollout_start = 1000")
    });
    ws.ok(&["train", "--config", "tiny.toml", "--out", "run"]);
    // The validation loss is measured on the same fixed batches each time, so its trend is the learning.
    let val: Vec<f64> = csv_rows(&ws.path("run/metrics.csv"))
        .iter()
        .filter(|r| !r["val_loss"].is_empty())
        .map(|r| number(r, "val_loss"))
        .collect();
    assert_eq!(val.len(), 6);
    assert!(val[5] < 0.9 * val[0], "validation loss {val:?}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let ws = Workspace::new(str::to_string);
    let err = ws.fails(&["train", "--config", "missing.toml"]);
    assert!(err.contains("missing.toml"), "{err}");
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the cause once: {err}"
    );

    fs::write(
        ws.path("typo.toml"),
        TINY.replace("steps = 12", "steps = 12\nstpes = 1"),
    )
    .unwrap();
    let err = ws.fails(&["train", "--config", "typo.toml"]);
    assert!(err.contains("typo.toml") && err.contains("stpes"), "{err}");

    fs::write(ws.path("not.nc"), "plain text").unwrap();
    let err = ws.fails(&["data", "inspect", "not.nc"]);
    assert!(err.contains("not.nc"), "{err}");

    ws.ok(&[
        "train",
        "--config",
        "tiny.toml",
        "--out",
        "run",
        "--stop-at",
        "4",
    ]);
    // Resuming with another model config is refused.
    fs::write(
        ws.path("wider.toml"),
        TINY.replace("latent_size = 16", "latent_size = 24"),
    )
    .unwrap();
    let err = ws.fails(&[
        "train",
        "--config",
        "wider.toml",
        "--out",
        "run",
        "--resume",
        "run",
    ]);
    assert!(err.contains("model.latent_size 16 -> 24"), "{err}");

    // A truncated checkpoint is named in the error and nothing panics.
    let weights = ws.path("run/checkpoint-00000004/model.safetensors");
    let bytes = fs::read(&weights).unwrap();
    fs::write(&weights, &bytes[..bytes.len() / 3]).unwrap();
    let err = ws.fails(&["evaluate", "--checkpoint", "run"]);
    assert!(err.contains("model.safetensors"), "{err}");

    // A run folder that cannot be created (a file is in the way).
    fs::write(ws.path("blocked"), "").unwrap();
    let err = ws.fails(&["train", "--config", "tiny.toml", "--out", "blocked/run"]);
    assert!(err.contains("blocked"), "{err}");
}

#[test]
fn diverging_training_stops_with_the_step_and_keeps_the_last_good_checkpoint() {
    let ws = Workspace::new(|c| {
        c.replace("lr = 3e-3", "lr = 1e12")
            .replace("warmup_steps = 2", "warmup_steps = 0")
            .replace("checkpoint_every = 4", "checkpoint_every = 1")
    });
    let err = ws.fails(&["train", "--config", "tiny.toml", "--out", "run"]);
    assert!(err.contains("at step"), "{err}");
    let checkpoints: Vec<String> = fs::read_dir(ws.path("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    // A checkpoint is written after every update (checkpoint_every = 1), so one precedes the divergence.
    assert!(
        !checkpoints.is_empty(),
        "no checkpoint was written before the divergence: {err}"
    );
    // The error names the last good checkpoint, and that one is complete and loads.
    let named = checkpoints
        .iter()
        .find(|name| err.contains(name.as_str()))
        .unwrap_or_else(|| panic!("the error names no checkpoint of {checkpoints:?}: {err}"));
    assert!(ws.path(&format!("run/{named}/run.json")).is_file());
    ws.ok(&[
        "evaluate",
        "--checkpoint",
        &format!("run/{named}"),
        "--out",
        "eval-of-last-good",
    ]);
    assert!(
        !fs::read_dir(ws.path("run")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
}

#[test]
fn study_runs_reports_and_skips_finished_runs() {
    let ws = Workspace::new(str::to_string);
    fs::write(
        ws.path("study.toml"),
        include_str!("configs/study-tiny.toml"),
    )
    .unwrap();
    let first = ws.run(&["study", "--config", "study.toml", "--nulls", "10"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report_dir = ws.path("runs/study-tiny/report");
    for file in [
        "report.md",
        "report.html",
        "report.json",
        "scorecard.csv",
        "alignment.csv",
        "error_correlation.png",
    ] {
        assert!(report_dir.join(file).is_file(), "{file}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(report_dir.join("report.json")).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs[0]["error"].is_null() && runs[1]["error"].is_null());
    assert!(
        runs[2]["error"].as_str().unwrap().contains("test split"),
        "the broken run is reported"
    );
    assert!(
        fs::read_to_string(report_dir.join("report.md"))
            .unwrap()
            .contains("**failed**")
    );

    // The report's figures equal those recomputed from the per-run files.
    let gnn_scorecard = csv_rows(&ws.path("runs/study-tiny/gnn/evaluation/scorecard.csv"));
    let reported: Vec<&serde_json::Value> = report["scorecard"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == "gnn")
        .collect();
    assert_eq!(
        reported.len(),
        gnn_scorecard.iter().filter(|r| r["model"] == "gnn").count()
    );
    for (row, json) in gnn_scorecard
        .iter()
        .filter(|r| r["model"] == "gnn")
        .zip(&reported)
    {
        // Equal up to the float round trip through CSV text.
        let (from_csv, reported) = (number(row, "rmse"), json["rmse"].as_f64().unwrap());
        assert!(
            (from_csv - reported).abs() <= 1e-12 * from_csv.abs(),
            "{from_csv} vs {reported}"
        );
    }
    // Pearson r of gnn vs shared day-1 z500 errors, from errors.csv.
    let errors = |run: &str| -> Vec<(String, f64)> {
        let mut rows: Vec<(String, f64)> =
            csv_rows(&ws.path(&format!("runs/study-tiny/{run}/evaluation/errors.csv")))
                .into_iter()
                .filter(|r| r["model"] == run && r["variable"] == "z500" && r["lead_hours"] == "24")
                .map(|r| (r["init_time"].clone(), number(&r, "rmse")))
                .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let (a, b) = (errors("gnn"), errors("shared"));
    let (x, y): (Vec<f64>, Vec<f64>) = (
        a.iter().map(|r| r.1).collect(),
        b.iter().map(|r| r.1).collect(),
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mx, my) = (mean(&x), mean(&y));
    let cov: f64 = x.iter().zip(&y).map(|(p, q)| (p - mx) * (q - my)).sum();
    let r = cov
        / (x.iter().map(|p| (p - mx).powi(2)).sum::<f64>()
            * y.iter().map(|q| (q - my).powi(2)).sum::<f64>())
        .sqrt();
    let models: Vec<&str> = report["error_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let m = models.len();
    let (i, j) = (
        models.iter().position(|&n| n == "gnn").unwrap(),
        models.iter().position(|&n| n == "shared").unwrap(),
    );
    let reported_r = report["error_correlation"][i * m + j].as_f64().unwrap();
    assert!((reported_r - r).abs() < 1e-9, "{reported_r} vs {r}");

    // Re-running reuses both finished runs.
    let second = ws.run(&["study", "--config", "study.toml", "--nulls", "10"]);
    assert!(second.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(report_dir.join("report.json")).unwrap()).unwrap();
    for run in &report["runs"].as_array().unwrap()[..2] {
        let skipped: Vec<&str> = run["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(
            skipped,
            ["train", "evaluate", "probe", "analyze", "jacobian"],
            "{run}"
        );
    }
}

//! End-to-end tests of the `weatherlens` binary on a tiny run of the built-in atmosphere (seconds each).
//!
//! The commands that work on a trained model share one run ([`shared`]: trained, evaluated and probed once);
//! each has its own test. Tables are read by their header names.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

mod common;
use common::csv_rows;

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
        common::run(&self.dir, args)
    }

    /// Run and require success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        common::ok(&self.dir, args)
    }

    /// Run and require a clean failure (exit 1, not a panic); returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        common::fails(&self.dir, args)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
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
    // The model's input fields at the nodes (the input baseline): [samples, nodes, 2 × 4 channels + 3 static].
    assert!(meta["inputs"].as_str().unwrap().contains("nearest"));
    let bytes = fs::read(ws.path("run/probes/probes.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("inputs").unwrap().shape(), &[3, 42, 11]);
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

/// Every tensor of a checkpoint's `model.safetensors` as (name, f32 values), sorted by name.
fn checkpoint_weights(ws: &Workspace, checkpoint: &str) -> Vec<(String, Vec<f32>)> {
    let bytes = fs::read(ws.path(&format!("run/{checkpoint}/model.safetensors"))).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

#[test]
fn data_parallel_training_equals_one_device_and_resumes_bit_identically() {
    // 20 updates of batches of 2 samples; on ["flex", "flex"] each batch is split into two shards of one
    // sample, each on its own replica and thread, and their gradients are summed into one update.
    let edit = |c: &str| c.replace("steps = 12", "steps = 20");
    let parallel_edit = |c: &str| {
        edit(c).replace(
            "keep_last = 2",
            "keep_last = 2\ndevices = [\"flex\", \"flex\"]",
        )
    };
    let one = Workspace::new(edit);
    one.ok(&["train", "--config", "tiny.toml", "--out", "run"]);
    let two = Workspace::new(parallel_edit);
    two.ok(&["train", "--config", "tiny.toml", "--out", "run"]);

    let (a, b) = (
        checkpoint_weights(&one, "checkpoint-00000020"),
        checkpoint_weights(&two, "checkpoint-00000020"),
    );
    assert_eq!(a.len(), b.len());
    let mut worst = 0.0f32;
    for ((name, x), (other, y)) in a.iter().zip(&b) {
        assert_eq!(name, other);
        for (p, q) in x.iter().zip(y) {
            worst = worst.max((p - q).abs());
        }
    }
    assert!(
        worst <= 1e-6,
        "weights differ by up to {worst:e} after 20 steps"
    );
    let losses = |ws: &Workspace| -> Vec<f64> {
        csv_rows(&ws.path("run/metrics.csv"))
            .iter()
            .map(|r| number(r, "train_loss"))
            .collect()
    };
    let (la, lb) = (losses(&one), losses(&two));
    assert_eq!(la.len(), 20);
    let loss_difference = la
        .iter()
        .zip(&lb)
        .map(|(x, y)| (x - y).abs() / x.abs())
        .fold(0.0, f64::max);
    for (step, (x, y)) in la.iter().zip(&lb).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs(),
            "step {}: loss {x} on one device, {y} on two",
            step + 1
        );
    }
    eprintln!(
        "data-parallel [flex, flex] vs [flex]: max |weight difference| after 20 steps {worst:.2e}, \
         max relative loss difference {loss_difference:.2e}"
    );

    // Interrupted after 8 updates and resumed (devices from the flag this time): bit-identical to `two`.
    let resumed = Workspace::new(edit);
    let devices = ["--devices", "flex,flex"];
    let train = ["train", "--config", "tiny.toml", "--out", "run"];
    resumed.ok(&[&train[..], &devices, &["--stop-at", "8"]].concat());
    resumed.ok(&[&train[..], &devices, &["--resume", "run"]].concat());
    assert_eq!(
        checkpoint_weights(&two, "checkpoint-00000020"),
        checkpoint_weights(&resumed, "checkpoint-00000020"),
        "resumed data-parallel run differs"
    );
    let strip = |ws: &Workspace| -> Vec<HashMap<String, String>> {
        csv_rows(&ws.path("run/metrics.csv"))
            .into_iter()
            .map(|mut r| {
                r.remove("samples_per_s");
                r
            })
            .collect()
    };
    assert_eq!(strip(&two), strip(&resumed));

    // A device this build cannot open is a clear error naming the backend.
    #[cfg(not(feature = "cuda"))]
    {
        let err = resumed.fails(&[&train[..], &["--devices", "flex,cuda:1"]].concat());
        assert!(err.contains("--features cuda"), "{err}");
    }
    let out = resumed.run(&[&train[..], &["--devices", "tpu"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown device `tpu`"),
        "{err}"
    );
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

    // A recording that is not there is named as missing, before any question about its tensors.
    let err = ws.fails(&["compare", "nope", "not.nc"]);
    assert!(err.contains("nope: no such file"), "{err}");

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
    // Each run's controls stage recorded the architecture at initialisation; every pooled figure has the
    // untrained control and both input baselines beside it, and the per-location figures exist.
    assert!(
        ws.path("runs/study-tiny/gnn/untrained/probes.json")
            .is_file()
    );
    // Each unordered pair of the compared runs once per region, as every metric is symmetric.
    let pooled_pairs: Vec<(String, String, String)> = report["alignment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut pair = [p["a"].to_string(), p["b"].to_string()];
            pair.sort();
            let [a, b] = pair;
            (p["region"].to_string(), a, b)
        })
        .collect();
    let mut unique = pooled_pairs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(pooled_pairs.len(), unique.len(), "{pooled_pairs:?}");
    let mut compared: Vec<&String> = pooled_pairs.iter().flat_map(|(_, a, b)| [a, b]).collect();
    compared.sort();
    compared.dedup();
    let global = pooled_pairs
        .iter()
        .filter(|(region, _, _)| region == "\"global\"");
    assert!(compared.len() >= 2);
    assert_eq!(global.count(), compared.len() * (compared.len() - 1) / 2);
    let pooled = &report["alignment"][0];
    for control in ["untrained", "input_x", "input_y"] {
        assert!(
            pooled["controls"][control]["cknna"].is_number(),
            "{control}: {pooled}"
        );
    }
    assert!(
        pooled["excess"]["cka_unbiased"]["verdict"].is_string(),
        "{pooled}"
    );
    let local = &report["local_alignment"]["pairs"][0];
    assert_eq!(
        (local["x"].as_str(), local["y"].as_str()),
        (Some("gnn"), Some("shared"))
    );
    assert_eq!(local["summaries"][0]["group"], "global");
    assert_eq!(local["summaries"][0]["locations"], 42);
    assert!(report_dir.join("cknna_map_gnn_shared.png").is_file());
    let locations = csv_rows(&report_dir.join("locations_gnn_shared.csv"));
    assert_eq!(locations.len(), 42);
    let meta: serde_json::Value = serde_json::from_slice(
        &fs::read(ws.path("runs/study-tiny/gnn/probes/probes.json")).unwrap(),
    )
    .unwrap();
    let times = meta["sample_times"].as_array().unwrap().len();
    assert!(times >= 5, "{times} samples recorded");
    assert!(locations.iter().all(|r| number(r, "n") == times as f64));
    let summaries = csv_rows(&report_dir.join("local_alignment.csv"));
    assert!(
        summaries
            .iter()
            .any(|r| r["group"] == "tropics" && r["metric"] == "cknna")
    );
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
            [
                "train", "evaluate", "probe", "controls", "analyze", "jacobian"
            ],
            "{run}"
        );
    }

    // The report rebuilt from the run folders alone (each run's outcome.json and outputs) is the same.
    let written = report;
    fs::remove_dir_all(&report_dir).unwrap();
    ws.ok(&[
        "study",
        "--config",
        "study.toml",
        "--nulls",
        "10",
        "--report-only",
    ]);
    let rebuilt: serde_json::Value =
        serde_json::from_slice(&fs::read(report_dir.join("report.json")).unwrap()).unwrap();
    for key in [
        "runs",
        "scorecard",
        "error_models",
        "error_correlation",
        "dynamics",
    ] {
        assert_eq!(rebuilt[key], written[key], "{key}");
    }
    // One run by its index (what a Slurm array task runs): finished, so every stage is skipped; the broken
    // one fails with exit status 1; an index past the plan is a clear error.
    ws.ok(&["study", "--config", "study.toml", "--run-index", "1"]);
    let err = ws.fails(&["study", "--config", "study.toml", "--run-index", "2"]);
    assert!(err.contains("run `broken` failed"), "{err}");
    let err = ws.fails(&["study", "--config", "study.toml", "--run-index", "3"]);
    assert!(
        err.contains("--run-index 3") && err.contains("3 runs"),
        "{err}"
    );
    let err = ws.fails(&["study", "--config", "study.toml", "--wait"]);
    assert!(err.contains("--dispatch slurm"), "{err}");
}

/// The Python exporter's stand-in recording (docs/recording.md), copied into `ws`.
fn exported(ws: &Workspace) -> PathBuf {
    let path = ws.path("standin.safetensors");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exported/standin.safetensors"),
        &path,
    )
    .unwrap();
    path
}

#[test]
fn analyze_and_compare_read_a_recording_exported_from_pytorch() {
    let ws = Workspace::new(str::to_string);
    exported(&ws);
    // analyze FILE: 3 layers of the stand-in model on 42 shuffled icosahedron nodes, centroid at the recorded
    // positions; outputs beside the file.
    let analysis = ws.json(&[
        "analyze",
        "standin.safetensors",
        "--bootstrap",
        "20",
        "--json",
    ]);
    assert_eq!(analysis["samples"], 16);
    assert_eq!(analysis["nodes"], 42);
    let layers: Vec<u64> = analysis["centroid"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(layers, [0, 1, 2]);
    assert!(
        analysis["centroid"]["rows"][0]["centroid_x"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    // Three layers cannot reach p < 0.05: the verdict is withheld, with the reason.
    assert_eq!(analysis["velocity"]["trend"]["direction"], "undetermined");
    assert_eq!(csv_rows(&ws.path("standin-analysis/velocity.csv")).len(), 3);

    // compare FILE FILE: the same recording twice, last layer's output by default; the inputs give both input
    // baselines, and the rows pair each node with itself (distance 0).
    let compared = ws.json(&[
        "compare",
        "standin.safetensors",
        "standin.safetensors",
        "--nulls",
        "10",
        "--json",
    ]);
    assert_eq!(compared["n"], 16 * 42);
    assert_eq!(compared["pairing"]["tensor_a"], "processor.2.resid_post");
    assert_eq!(compared["pairing"]["distance_b"]["max_deg"], 0.0);
    for metric in ["cka_biased", "cka_unbiased", "cknna", "mutual_knn"] {
        let value = compared["metrics"][metric].as_f64().unwrap();
        assert!((value - 1.0).abs() < 1e-9, "{metric} = {value}");
    }
    assert!(compared["controls"]["input_x"]["cka_unbiased"].is_number());
    assert!(compared["excess"]["cknna"]["verdict"].is_string());
    // A derived increment by name (layer 0's delta is stored; layer 2's output is resid_post).
    let derived = ws.json(&[
        "compare",
        "standin.safetensors",
        "standin.safetensors",
        "--tensor",
        "processor.1.resid_post",
        "--node",
        "5",
        "--nulls",
        "0",
        "--ci-draws",
        "0",
        "--json",
    ]);
    assert_eq!(derived["n"], 16, "rows = the 16 times at one node");
    assert!(
        derived["pairing"]["tensor_a"]
            .as_str()
            .unwrap()
            .contains('=')
    );
    assert!(
        derived["warnings"][0]
            .as_str()
            .unwrap()
            .contains("n = 16 < 5k = 50")
    );

    // Per location: 42 locations of 16 times each, CSV and map written.
    let local = ws.json(&[
        "compare",
        "standin.safetensors",
        "standin.safetensors",
        "--per-location",
        "--k",
        "3",
        "--out",
        "local",
        "--json",
    ]);
    assert_eq!(local["points"], 42);
    assert_eq!(local["pairs"][0]["summaries"][0]["times"], 16);
    assert_eq!(csv_rows(&ws.path("local/locations_A_B.csv")).len(), 42);
    assert!(ws.path("local/cknna_map_A_B.svg").is_file());
    // Layer-by-layer CKA of a plain recording with itself (outputs of layers 0 and 1 derived from the next
    // layer's input): ones on the diagonal.
    let layers = ws.json(&[
        "compare",
        "standin.safetensors",
        "standin.safetensors",
        "--layers",
        "--json",
    ]);
    assert_eq!(layers["layers_a"], serde_json::json!([0, 1, 2]));
    for i in 0..3 {
        assert!((layers["cka"][i * 3 + i].as_f64().unwrap() - 1.0).abs() < 1e-9);
    }
    assert!(ws.path("standin.layer_cka.png").is_file());
    // The exported times span every season, so --seasons forms the seasonal groups.
    let seasonal = ws.json(&[
        "compare",
        "standin.safetensors",
        "standin.safetensors",
        "--per-location",
        "--seasons",
        "--k",
        "2",
        "--out",
        "local-seasons",
        "--json",
    ]);
    assert_eq!(seasonal["seasons"], true);
}

#[test]
fn bad_recordings_give_clear_errors() {
    let ws = Workspace::new(str::to_string);
    fs::write(ws.path("junk.safetensors"), b"not a safetensors file").unwrap();
    let err = ws.fails(&["analyze", "junk.safetensors"]);
    assert!(
        err.contains("junk.safetensors") && err.contains("not a readable safetensors file"),
        "{err}"
    );
    assert!(!err.contains("Not a directory"), "{err}");
    // A safetensors file without coordinates: the format's rule 7.
    let tensors = vec![(
        "processor.0.resid_pre".to_string(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3, 1], &[0u8; 24])
            .unwrap(),
    )];
    safetensors::serialize_to_file(tensors, None, &ws.path("bare.safetensors")).unwrap();
    let err = ws.fails(&["analyze", "bare.safetensors"]);
    assert!(err.contains("no `node_lat` tensor"), "{err}");
    exported(&ws);
    let err = ws.fails(&[
        "compare",
        "standin.safetensors",
        "standin.safetensors",
        "--tensor",
        "processor.9.delta",
    ]);
    assert!(
        err.contains("processor.9.delta") && err.contains("it has:"),
        "{err}"
    );
    let err = ws.fails(&[
        "compare",
        "standin.safetensors",
        "standin.safetensors",
        "--untrained-a",
        "standin.safetensors",
    ]);
    assert!(err.contains("--untrained-b"), "{err}");
}

#[test]
fn compare_subsamples_a_hundred_thousand_rows_of_half_precision_recordings() {
    // 100 samples × 1,000 scattered nodes × latent 8: A in BF16, B the same values in F16 plus a small
    // perturbation. compare reads a seeded subsample of 20,000 rows (reported) and finds them nearly identical.
    let ws = Workspace::new(str::to_string);
    let (samples, nodes, latent) = (100usize, 1000usize, 8usize);
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    let lat: Vec<f64> = (0..nodes)
        .map(|k| {
            (1.0 - 2.0 * (k as f64 + 0.5) / nodes as f64)
                .asin()
                .to_degrees()
        })
        .collect();
    let lon: Vec<f64> = (0..nodes)
        .map(|k| (golden * k as f64).to_degrees() % 360.0)
        .collect();
    // Value = sin(0.7·s + 1.3·c) · cos(lat) + 0.1·c·sin(lon·(c + 1)): smooth, distinct rows.
    let value = |s: usize, n: usize, c: usize| -> f32 {
        ((0.7 * s as f64 + 1.3 * c as f64).sin() * lat[n].to_radians().cos()
            + 0.1 * c as f64 * (lon[n].to_radians() * (c + 1) as f64).sin()) as f32
    };
    let bf16 = |v: f32| ((v.to_bits() + 0x7fff + ((v.to_bits() >> 16) & 1)) >> 16) as u16;
    let f16 = |v: f32| -> u16 {
        // Round to nearest f16 for |v| in [2^-14, 65504] (normal range) or 0.
        if v == 0.0 {
            return 0;
        }
        let bits = v.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
        let mantissa = bits & 0x7f_ffff;
        if exponent <= 0 {
            return sign;
        }
        let rounded = ((exponent as u32) << 10 | (mantissa >> 13)) + ((mantissa >> 12) & 1);
        sign | rounded as u16
    };
    let mut a = Vec::with_capacity(samples * nodes * latent * 2);
    let mut b = Vec::with_capacity(samples * nodes * latent * 2);
    for s in 0..samples {
        for n in 0..nodes {
            for c in 0..latent {
                let v = value(s, n, c);
                a.extend(bf16(v).to_le_bytes());
                b.extend(f16(v + 1e-3 * ((s * 31 + n * 7 + c) % 5) as f32).to_le_bytes());
            }
        }
    }
    let coords =
        |values: &[f64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let (lat_bytes, lon_bytes) = (coords(&lat), coords(&lon));
    let times: Vec<u8> = (0..samples as i64)
        .flat_map(|t| (438_288 + 6 * t).to_le_bytes())
        .collect();
    for (name, dtype, data) in [
        ("a.safetensors", safetensors::Dtype::BF16, &a),
        ("b.safetensors", safetensors::Dtype::F16, &b),
    ] {
        let tensors = vec![
            (
                "node_lat".to_string(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F64,
                    vec![nodes],
                    &lat_bytes,
                )
                .unwrap(),
            ),
            (
                "node_lon".to_string(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F64,
                    vec![nodes],
                    &lon_bytes,
                )
                .unwrap(),
            ),
            (
                "sample_time".to_string(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::I64,
                    vec![samples],
                    &times,
                )
                .unwrap(),
            ),
            (
                "processor.0.resid_pre".to_string(),
                safetensors::tensor::TensorView::new(dtype, vec![samples, nodes, latent], data)
                    .unwrap(),
            ),
        ];
        safetensors::serialize_to_file(tensors, None, &ws.path(name)).unwrap();
    }
    let compared = ws.json(&[
        "compare",
        "a.safetensors",
        "b.safetensors",
        "--tensor",
        "processor.0.resid_pre",
        "--nulls",
        "0",
        "--ci-draws",
        "0",
        "--json",
    ]);
    assert_eq!(compared["rows"]["total"], 100_000);
    assert_eq!(compared["rows"]["used"], 20_000);
    assert_eq!(compared["rows"]["subsample_seed"], 0);
    assert_eq!(compared["n"], 20_000);
    let cka = compared["metrics"]["cka_unbiased"].as_f64().unwrap();
    assert!(cka > 0.99, "{cka}");
}

#[test]
fn an_untrained_recording_is_the_control_that_untrained_alignment_does_not_exceed() {
    // The run's architecture at initialisation on the same samples and inputs; compared with itself as its own
    // untrained control, the excess is 0 and the report says "not above controls".
    let ws = shared();
    ws.ok(&[
        "probe",
        "--checkpoint",
        "run",
        "--samples",
        "3",
        "--every-hours",
        "6",
        "--untrained",
        "--out",
        "untrained-test",
    ]);
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(ws.path("untrained-test/probes.json")).unwrap()).unwrap();
    assert!(
        meta["model"].as_str().unwrap().contains("untrained"),
        "{meta}"
    );
    let trained: serde_json::Value =
        serde_json::from_slice(&fs::read(ws.path("run/probes/probes.json")).unwrap()).unwrap();
    assert_eq!(
        meta["sample_times"], trained["sample_times"],
        "the same samples"
    );
    // Its analysis goes beside it, not into a folder another recording's analysis uses.
    ws.ok(&["analyze", "untrained-test", "--bootstrap", "10"]);
    let analysis: serde_json::Value = serde_json::from_slice(
        &fs::read(ws.path("untrained-test-analysis/analysis.json")).unwrap(),
    )
    .unwrap();
    assert!(
        analysis["model"].as_str().unwrap().contains("untrained"),
        "{analysis}"
    );
    assert!(!ws.path("analysis").exists());
    let compared = ws.json(&[
        "compare",
        "untrained-test",
        "untrained-test",
        "--untrained-a",
        "untrained-test",
        "--untrained-b",
        "untrained-test",
        "--k",
        "5",
        "--nulls",
        "10",
        "--json",
    ]);
    assert_eq!(compared["n"], 3 * 42);
    for metric in ["cka_biased", "cka_unbiased", "cknna", "mutual_knn"] {
        let excess = &compared["excess"][metric];
        assert!(
            excess["value"].as_f64().unwrap().abs() < 1e-12,
            "{metric}: {excess}"
        );
        assert_eq!(
            excess["verdict"], "not_above_controls",
            "{metric}: {excess}"
        );
    }
    // Trained vs untrained weights of the same run differ: their CKA is below 1.
    let against = ws.json(&[
        "compare",
        "run/probes",
        "untrained-test",
        "--nulls",
        "0",
        "--json",
    ]);
    assert!(against["metrics"]["cka_unbiased"].as_f64().unwrap() < 0.999);
}

#[test]
fn forecast_of_a_trained_model_writes_every_predicted_channel_at_each_lead() {
    use weatherlens_training::dataset::{batch_datetimes, open_source, read_variable};
    let ws = shared();
    let data = "data/tiny/synthetic.nc";
    let summary = ws.json(&[
        "forecast",
        "--checkpoint",
        "run",
        "--inputs",
        data,
        "--steps",
        "2",
        "--out",
        "forecast-2.nc",
        "--json",
    ]);
    assert_eq!(summary["model_kind"], "weatherlens", "{summary}");
    assert_eq!(summary["lead_hours"], serde_json::json!([6, 12]));
    ws.ok(&[
        "forecast",
        "--checkpoint",
        "run",
        "--inputs",
        data,
        "--steps",
        "1",
        "--out",
        "forecast-1.nc",
    ]);
    let variables: Vec<String> = summary["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(variables.iter().any(|v| v == "z500"), "{variables:?}");
    let two = open_source(&ws.path("forecast-2.nc")).unwrap();
    let one = open_source(&ws.path("forecast-1.nc")).unwrap();
    let file_times =
        weatherlens_training::dataset::Reader::open_path(&ws.path(data), &[], &Default::default())
            .unwrap()
            .time_hours()[2..4]
            .to_vec();
    assert_eq!(
        batch_datetimes(two.as_ref()).unwrap().unwrap().member(0),
        file_times
    );
    for name in &variables {
        let stored = read_variable(two.as_ref(), name).unwrap();
        assert_eq!(stored.dims, ["batch", "time", "lat", "lon"], "{name}");
        assert_eq!(stored.shape[..2], [1, 2], "{name}");
        assert!(stored.values.iter().all(|v| v.is_finite()), "{name}");
        // The first lead of a 2-step forecast is the 1-step forecast.
        let first = read_variable(one.as_ref(), name).unwrap();
        assert_eq!(stored.values[..first.values.len()], first.values, "{name}");
    }
    // Too few times for the steps: both counts named.
    let error = ws.fails(&[
        "forecast",
        "--checkpoint",
        "run",
        "--inputs",
        data,
        "--steps",
        "100000",
        "--out",
        "never.nc",
    ]);
    assert!(error.contains("need 100002 times"), "{error}");
}

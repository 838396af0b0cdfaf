//! The published-GraphCast path of the `weatherlens` binary on the fixtures written by GraphCast's own code
//! (`tests/fixtures/graphcast`): `import graphcast` -> `forecast` -> `probe` -> `analyze`, the forecast against
//! GraphCast's JAX rollout and the recording against its per-step latents (max |a − b| <= 1e-5 · max |b|), and
//! one clear error for each broken import.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use weatherlens_training::dataset::{batch_datetimes, open_source, read_variable};

mod common;
use common::ok;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graphcast")
}

/// Runs and requires one clean error line (exit 1, no panic); returns it.
fn fails(dir: &Path, args: &[&str]) -> String {
    let stderr = common::fails(dir, args).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

/// f32 tensors of a safetensors file with their shapes.
fn load(path: &Path) -> HashMap<String, (Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .filter(|(_, view)| view.dtype() == safetensors::Dtype::F32)
        .map(|(key, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (key, (values, view.shape().to_vec()))
        })
        .collect()
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: sizes");
    let scale = expected.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let worst = actual
        .iter()
        .zip(expected)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-5 * scale,
        "{what}: max |a - b| = {worst:e} > 1e-5 · max |b| = {:e}",
        1e-5 * scale
    );
}

/// Imports fixture `name` into `dir/name`; returns the folder's path as text.
fn import(dir: &Path, name: &str) -> String {
    let f = fixtures();
    let out = dir.join(name);
    let summary: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &[
            "import",
            "graphcast",
            "--params",
            f.join(format!("params/{name}.npz")).to_str().unwrap(),
            "--stats",
            f.join("stats").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(summary["latent_size"], 32, "{summary}");
    assert_eq!(summary["processor_steps"], 2, "{summary}");
    out.to_str().unwrap().to_string()
}

fn batch_file(name: &str) -> String {
    fixtures()
        .join(format!("dataset/{name}_example_batch.nc"))
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn imported_graphcast_forecasts_graphcast_s_jax_rollout() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["fixture_a", "fixture_b"] {
        let checkpoint = import(dir.path(), name);
        let out = dir.path().join(format!("{name}.nc"));
        let summary: serde_json::Value = serde_json::from_str(&ok(
            dir.path(),
            &[
                "forecast",
                "--checkpoint",
                &checkpoint,
                "--inputs",
                &batch_file(name),
                "--steps",
                "2",
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        ))
        .unwrap();
        assert_eq!(summary["steps"], 2, "{summary}");
        assert_eq!(summary["batch"], 2, "{summary}");
        assert_eq!(summary["lead_hours"], serde_json::json!([6, 12]));
        // The grid's mesh2grid ties as the fixture script counted them with GraphCast's geometry; every one
        // that rounding decides takes the pick recorded from GraphCast's code.
        let fixture: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("reference/{name}.json"))).unwrap(),
        )
        .unwrap();
        let (ties, theirs) = (&summary["mesh2grid_ties"], &fixture["mesh2grid_ties"]);
        assert_eq!(
            ties["within_tolerance"], theirs["ties_trimesh_tol"],
            "{name}"
        );
        assert_eq!(ties["decided_by_rounding"], theirs["fragile"], "{name}");
        assert_eq!(ties["recorded"], theirs["fragile"], "{name}");
        let reference = load(&fixtures().join(format!("reference/{name}_outputs.safetensors")));
        let source = open_source(&out).unwrap();
        let mut compared = 0;
        for (key, (expected, shape)) in &reference {
            let Some(variable) = key.strip_prefix("rollout/") else {
                continue;
            };
            let stored = read_variable(source.as_ref(), variable).unwrap();
            assert_eq!(&stored.shape, shape, "{name}: {variable}");
            let ours: Vec<f32> = stored.values.iter().map(|&v| v as f32).collect();
            assert_close(
                &ours,
                expected,
                &format!("{name}: 2-step rollout of {variable}"),
            );
            compared += 1;
        }
        assert!(compared >= 4, "{name}: {compared} variables compared");
        assert_eq!(
            read_variable(source.as_ref(), "time").unwrap().values,
            [6.0, 12.0]
        );
        // Valid times: each member's third and fourth input times.
        let file_times =
            batch_datetimes(open_source(Path::new(&batch_file(name))).unwrap().as_ref())
                .unwrap()
                .unwrap();
        let valid = batch_datetimes(source.as_ref()).unwrap().unwrap();
        for b in 0..2 {
            assert_eq!(
                valid.member(b),
                &file_times.member(b)[2..4],
                "{name}: member {b}"
            );
        }
    }
}

#[test]
fn probe_of_an_imported_graphcast_records_its_per_step_latents_and_analyze_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["fixture_a", "fixture_b"] {
        let checkpoint = import(dir.path(), name);
        let recording = dir.path().join(format!("{name}-probes"));
        ok(
            dir.path(),
            &[
                "probe",
                "--checkpoint",
                &checkpoint,
                "--inputs",
                &batch_file(name),
                "--out",
                recording.to_str().unwrap(),
            ],
        );
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(recording.join("probes.json")).unwrap())
                .unwrap();
        let nodes = meta["node_lat"].as_array().unwrap().len();
        assert_eq!(meta["node_lon"].as_array().unwrap().len(), nodes);
        assert_eq!(meta["sample_times"].as_array().unwrap().len(), 2, "{meta}");
        let recorded = load(&recording.join("probes.safetensors"));
        let activations =
            load(&fixtures().join(format!("reference/{name}_activations.safetensors")));
        for k in 0..2 {
            let (ours, shape) = &recorded[&format!("processor.{k}.resid_post")];
            assert_eq!(shape, &[2, nodes, 32]);
            let per_member = nodes * 32;
            // [nodes, batch, latent] for both members, or member 0 alone as [nodes, latent].
            let (theirs, members) = match activations.get(&format!("mesh_step{k}_mesh_nodes")) {
                Some((values, shape)) => {
                    let mut batch_first = vec![0.0; values.len()];
                    for n in 0..nodes {
                        for b in 0..shape[1] {
                            for w in 0..32 {
                                batch_first[(b * nodes + n) * 32 + w] =
                                    values[(n * shape[1] + b) * 32 + w];
                            }
                        }
                    }
                    (batch_first, shape[1])
                }
                None => (
                    activations[&format!("mesh_step{k}_mesh_nodes_b0")]
                        .0
                        .clone(),
                    1,
                ),
            };
            assert_close(
                &ours[..members * per_member],
                &theirs,
                &format!("{name}: processor.{k}.resid_post"),
            );
        }
        let analysis: serde_json::Value = serde_json::from_str(&ok(
            dir.path(),
            &[
                "analyze",
                recording.to_str().unwrap(),
                "--out",
                dir.path()
                    .join(format!("{name}-analysis"))
                    .to_str()
                    .unwrap(),
                "--json",
            ],
        ))
        .unwrap();
        let layers: Vec<i64> = analysis["centroid"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["layer"].as_i64().unwrap())
            .collect();
        assert_eq!(layers, [0, 1], "{name}");
    }
}

#[test]
fn probe_all_times_slides_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = import(dir.path(), "fixture_a");
    let (first, all) = (dir.path().join("first"), dir.path().join("all"));
    for (out, extra) in [(&first, None), (&all, Some("--all-times"))] {
        let mut args = vec!["probe", "--checkpoint", &checkpoint, "--inputs"];
        let inputs = batch_file("fixture_a");
        args.push(&inputs);
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra);
        ok(dir.path(), &args);
    }
    let meta = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("probes.json")).unwrap()).unwrap()
    };
    // 4 times: windows (0, 1) and (1, 2), each followed by the time its step's forcings come from; 2 members.
    let times: Vec<String> = meta(&all)["sample_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let first_times = meta(&first)["sample_times"].clone();
    assert_eq!(times.len(), 4, "{times:?}");
    assert_eq!(serde_json::json!(times[..2]), first_times);
    assert!(times[2] > times[0] && times[3] > times[1], "{times:?}");
    let (one, slid) = (
        load(&first.join("probes.safetensors")),
        load(&all.join("probes.safetensors")),
    );
    let key = "processor.1.resid_post";
    let window_0 = &slid[key].0[..one[key].0.len()];
    assert_eq!(
        window_0,
        one[key].0.as_slice(),
        "the first window is the first step"
    );
    assert_ne!(&slid[key].0[one[key].0.len()..], window_0);

    // The untrained control: the same architecture at initialisation, on the same inputs and nodes; it records
    // the same input fields (the input baseline) but other latents.
    let untrained = dir.path().join("untrained");
    let inputs = batch_file("fixture_a");
    ok(
        dir.path(),
        &[
            "probe",
            "--checkpoint",
            &checkpoint,
            "--inputs",
            &inputs,
            "--untrained",
            "--out",
            untrained.to_str().unwrap(),
        ],
    );
    assert!(
        meta(&untrained)["model"]
            .as_str()
            .unwrap()
            .contains("untrained"),
        "{}",
        meta(&untrained)
    );
    assert_eq!(meta(&untrained)["sample_times"], first_times);
    let control = load(&untrained.join("probes.safetensors"));
    assert_eq!(control["inputs"].0, one["inputs"].0);
    assert_ne!(control[key].0, one[key].0);
}

/// A copy of fixture a's params with every occurrence of `from` in the archive replaced by `to` (same length:
/// the zip's member names change, its structure does not).
fn renamed_params(dir: &Path, from: &str, to: &str) -> PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(fixtures().join("params/fixture_a.npz")).unwrap();
    let mut replaced = 0;
    let mut at = 0;
    while let Some(k) = bytes[at..]
        .windows(from.len())
        .position(|w| w == from.as_bytes())
    {
        bytes[at + k..at + k + from.len()].copy_from_slice(to.as_bytes());
        at += k + from.len();
        replaced += 1;
    }
    assert!(replaced > 0);
    let path = dir.join("renamed.npz");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn broken_imports_give_one_clear_error_each() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let stats = f.join("stats");
    let import = |params: &Path, stats: &Path, out: &str| {
        fails(
            dir.path(),
            &[
                "import",
                "graphcast",
                "--params",
                params.to_str().unwrap(),
                "--stats",
                stats.to_str().unwrap(),
                "--out",
                out,
            ],
        )
    };
    // Truncated archive.
    let bytes = std::fs::read(f.join("params/fixture_a.npz")).unwrap();
    let truncated = dir.path().join("truncated.npz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let error = import(&truncated, &stats, "a");
    assert!(error.contains("truncated.npz"), "{error}");
    // A statistics folder without diffs_stddev_by_level.nc.
    let partial = dir.path().join("partial-stats");
    std::fs::create_dir(&partial).unwrap();
    for file in ["mean_by_level.nc", "stddev_by_level.nc"] {
        std::fs::copy(stats.join(file), partial.join(file)).unwrap();
    }
    let error = import(&f.join("params/fixture_a.npz"), &partial, "b");
    assert!(
        error.contains("partial-stats/diffs_stddev_by_level.nc"),
        "{error}"
    );
    // A file of another kind where a statistics file belongs.
    let wrong = dir.path().join("wrong-stats");
    std::fs::create_dir(&wrong).unwrap();
    for file in ["stddev_by_level.nc", "diffs_stddev_by_level.nc"] {
        std::fs::copy(stats.join(file), wrong.join(file)).unwrap();
    }
    std::fs::copy(batch_file("fixture_a"), wrong.join("mean_by_level.nc")).unwrap();
    let error = import(&f.join("params/fixture_a.npz"), &wrong, "c");
    assert!(error.contains("wrong-stats/mean_by_level.nc"), "{error}");
    // Params of another config: processor step 1's parameters under a step GraphCast does not have.
    let renamed = renamed_params(
        dir.path(),
        "processor_edges_1_mesh",
        "processor_edges_7_mesh",
    );
    let error = import(&renamed, &stats, "d");
    assert!(
        error.contains("renamed.npz") && error.contains("processor_edges_1_mesh"),
        "{error}"
    );
    // An unknown model_config field.
    let renamed = renamed_params(
        dir.path(),
        "model_config:latent_size",
        "model_config:latent_sizz",
    );
    let error = import(&renamed, &stats, "e");
    assert!(error.contains("latent_sizz"), "{error}");
    // Nothing was written for any of them.
    for out in ["a", "b", "c", "d", "e"] {
        assert!(!dir.path().join(out).exists(), "{out}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // An existing folder is never overwritten.
    let checkpoint = self::import(dir.path(), "fixture_a");
    let error = import(&f.join("params/fixture_a.npz"), &stats, &checkpoint);
    assert!(error.contains("already exists"), "{error}");
}

#[test]
fn stages_that_cannot_use_an_imported_graphcast_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = import(dir.path(), "fixture_a");
    let inputs = batch_file("fixture_a");
    // Two initial times + 3 steps need 5 times; the file has 4.
    let error = fails(
        dir.path(),
        &[
            "forecast",
            "--checkpoint",
            &checkpoint,
            "--inputs",
            &inputs,
            "--steps",
            "3",
            "--out",
            "f.nc",
        ],
    );
    assert!(
        error.contains("need 5 times")
            && error.contains("has 4")
            && error.contains("example_batch.nc"),
        "{error}"
    );
    assert!(!dir.path().join("f.nc").exists());
    let error = fails(dir.path(), &["probe", "--checkpoint", &checkpoint]);
    assert!(error.contains("--inputs"), "{error}");
    let error = fails(dir.path(), &["evaluate", "--checkpoint", &checkpoint]);
    assert!(error.contains("imported GraphCast"), "{error}");
    // The Jacobian diagnostics work on it with an input file.
    let report: serde_json::Value = serde_json::from_str(&ok(
        dir.path(),
        &[
            "jacobian",
            "--checkpoint",
            &checkpoint,
            "--inputs",
            &inputs,
            "--probes",
            "2",
            "--receivers",
            "1",
            "--out",
            "jacobian",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(report["layers"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["nodes"], 162);
}

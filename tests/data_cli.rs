//! End-to-end tests of `data inspect/stats --json` and of training on the data-layout fixtures
//! (`tests/fixtures/layouts/`, written by netCDF4-python / xarray / zarr-python; right answers in its
//! `expected.json`, computed by its script).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::run;

fn layouts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layouts")
}

fn expected(key: &str) -> Value {
    let text = fs::read_to_string(layouts().join("expected.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["fixtures"][key].clone()
}

/// Runs and requires success with exactly one JSON object on stdout.
fn json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "weatherlens {args:?} failed:\n{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Runs and requires a clean failure (exit 1, no panic) with nothing on stdout; returns stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let stderr = common::fails(dir, args);
    assert!(
        run(dir, args).stdout.is_empty(),
        "nothing on stdout on failure"
    );
    stderr
}

fn fixture(key: &str) -> String {
    layouts()
        .join(key.trim_end_matches('/'))
        .display()
        .to_string()
}

/// `data stats --json` figures against expected.json's `stats`.
fn check_stats(key: &str, stats: &Value) {
    let want = expected(key);
    let tol = want["abs_tol"].as_f64().unwrap();
    let channels = stats["channels"].as_array().unwrap();
    assert_eq!(
        channels.len(),
        want["stats"].as_object().unwrap().len(),
        "{key}: {stats}"
    );
    for channel in channels {
        let name = channel["name"].as_str().unwrap();
        let w = &want["stats"][name];
        for figure in ["mean", "std", "diff_std"] {
            match (channel[figure].as_f64(), w[figure].as_f64()) {
                (Some(a), Some(b)) => {
                    assert!((a - b).abs() <= tol, "{key} {name} {figure}: {a} vs {b}")
                }
                (a, b) => assert_eq!(a, b, "{key} {name} {figure}"),
            }
        }
        assert_eq!(channel["missing"], w["missing"], "{key} {name} missing");
    }
}

#[test]
fn inspect_and_stats_read_netcdf4_netcdf3_and_zarr_with_one_json_contract() {
    let dir = tempfile::tempdir().unwrap();
    for (key, format) in [
        ("axes/era5_lon_lat_order.nc", "NETCDF4"),
        ("formats/era5_classic.nc", "NETCDF3_CLASSIC"),
        ("formats/era5_64bit_offset.nc", "NETCDF3_64BIT_OFFSET"),
        ("axes/wb2_lon_lat_order.zarr", "zarr v2"),
        ("zarr_v3/era5_like.zarr", "zarr v3"),
        ("missing/fill_kinds.nc", "NETCDF4"),
        (
            "missing/unlimited_default_fill_64bit.nc",
            "NETCDF3_64BIT_OFFSET",
        ),
    ] {
        let path = fixture(key);
        let inspection = json(dir.path(), &["data", "inspect", &path, "--json"]);
        for contract_key in ["dims", "variables", "time", "nan_count"] {
            assert!(
                inspection.get(contract_key).is_some(),
                "{key}: {inspection}"
            );
        }
        assert_eq!(inspection["format"], format, "{key}");
        let want = expected(key);
        assert_eq!(
            inspection["nan_count"], want["inspect"]["nan_count"],
            "{key}"
        );
        let time = &want["resolution"]["time"];
        assert_eq!(inspection["time"]["count"], time["count"], "{key}");
        assert_eq!(inspection["time"]["start"], time["first"], "{key}");
        assert_eq!(
            inspection["time"]["step_hours"], time["step_hours"],
            "{key}"
        );
        for (name, variable) in inspection["variables"].as_object().unwrap() {
            assert!(
                variable["dims"].is_array() && variable["units"].is_string(),
                "{key} {name}"
            );
            assert!(variable["resolved"].is_string(), "{key} {name}");
        }
        let stats = json(dir.path(), &["data", "stats", &path, "--json"]);
        check_stats(key, &stats);
    }
    // The stored dimensions as stored, and how WeatherLens resolves them.
    let transposed = json(
        dir.path(),
        &[
            "data",
            "inspect",
            &fixture("axes/era5_lon_lat_order.nc"),
            "--json",
        ],
    );
    assert_eq!(
        transposed["variables"]["z"]["dims"],
        serde_json::json!(["time", "level", "longitude", "latitude"])
    );
    let resolved = transposed["variables"]["z"]["resolved"].as_str().unwrap();
    assert!(resolved.contains("z500, z850"), "{resolved}");
}

#[test]
fn files_with_extra_axes_are_described_not_refused_by_inspect() {
    let dir = tempfile::tempdir().unwrap();
    for (key, variable, words) in [
        ("axes/era5_expver.nc", "t2m", &["expver", "merged"][..]),
        ("axes/ens_number.nc", "t2m", &["number", "member"][..]),
        (
            "axes/extra_height_axis.nc",
            "ws",
            &["height", "not read"][..],
        ),
        ("axes/graphcast_batch1.nc", "land_sea_mask", &["static"][..]),
        ("axes/cfgrib_time_step.nc", "t2m", &["t2m"][..]),
    ] {
        let inspection = json(dir.path(), &["data", "inspect", &fixture(key), "--json"]);
        let resolved = inspection["variables"][variable]["resolved"]
            .as_str()
            .unwrap()
            .to_string();
        for word in words {
            assert!(resolved.contains(word), "{key} {variable}: {resolved}");
        }
    }
    // Refused at the file level (two GraphCast batch members): described, with the reason.
    let batch2 = json(
        dir.path(),
        &[
            "data",
            "inspect",
            &fixture("axes/graphcast_batch2.nc"),
            "--json",
        ],
    );
    let axis = batch2["time_axis"].as_str().unwrap();
    assert!(
        axis.contains("batch") && axis.contains("2 members"),
        "{axis}"
    );
    // cfgrib's (time, step) flattened to 6 valid times.
    let cfgrib = json(
        dir.path(),
        &[
            "data",
            "inspect",
            &fixture("axes/cfgrib_time_step.nc"),
            "--json",
        ],
    );
    assert_eq!(cfgrib["time"]["count"], 6);
    assert_eq!(cfgrib["time"]["end"], "2020-01-02T06:00:00Z");
}

#[test]
fn unreadable_layouts_fail_with_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (command, key, words) in [
        (
            "inspect",
            "formats/cds_download_zip.nc",
            &["ZIP", "unzip", "stepType-instant"][..],
        ),
        (
            "stats",
            "axes/era5_expver_both.nc",
            &["expver", "2023-03-31T06"][..],
        ),
        (
            "stats",
            "axes/ens_number.nc",
            &["number", "3 ensemble members", "member"][..],
        ),
        (
            "stats",
            "axes/cfgrib_overlap.nc",
            &["valid time 2020-01-01T06", "twice"][..],
        ),
        (
            "stats",
            "axes/graphcast_batch2.nc",
            &["batch", "2 members"][..],
        ),
        (
            "stats",
            "axes/extra_height_axis.nc",
            &["ws", "(time, height, latitude, longitude)"][..],
        ),
        (
            "stats",
            "series/wb_overlap/",
            &["overlap", "1980-01-01T00"][..],
        ),
        (
            "stats",
            "series/wb_gap/",
            &["gap", "1979-12-31T23", "1980-01-01T03"][..],
        ),
    ] {
        let stderr = fails(dir.path(), &["data", command, &fixture(key), "--json"]);
        for word in words {
            assert!(stderr.contains(word), "{key}: `{word}` not in {stderr}");
        }
        assert!(!stderr.contains("cannot write"), "{stderr}");
    }
    // The member chosen on the command line reads; 12-hourly data has no 6-hour differences and says so.
    let member = json(
        dir.path(),
        &[
            "data",
            "stats",
            &fixture("axes/ens_number.nc"),
            "--member",
            "2",
            "--json",
        ],
    );
    let want = expected("axes/ens_number.nc");
    let t2m = &member["channels"][0];
    assert!(
        (t2m["diff_std"].as_f64().unwrap()
            - want["by_member"]["2"]["stats"]["t2m"]["diff_std"]
                .as_f64()
                .unwrap())
        .abs()
            < 1e-4
    );
    let only_t2m = json(
        dir.path(),
        &[
            "data",
            "stats",
            &fixture("axes/extra_height_axis.nc"),
            "--variable",
            "t2m",
            "--json",
        ],
    );
    assert_eq!(only_t2m["channels"].as_array().unwrap().len(), 1);
    let zstd = fixture("formats/zstd_compressed.nc");
    let out = run(dir.path(), &["data", "inspect", &zstd, "--json"]);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("32015") && stderr.contains("HDF5_PLUGIN_PATH"),
            "{stderr}"
        );
    }
}

#[test]
fn stats_give_six_hour_diff_std_whatever_the_stored_step_and_join_files_into_one_series() {
    let dir = tempfile::tempdir().unwrap();
    let hourly = json(
        dir.path(),
        &["data", "stats", &fixture("hourly/t2m_hourly.nc"), "--json"],
    );
    let diff_std = hourly["channels"][0]["diff_std"].as_f64().unwrap();
    assert!((diff_std - 3.0).abs() < 1e-3, "{diff_std}");
    assert_eq!(hourly["diff_hours"], 6);
    let out = run(
        dir.path(),
        &[
            "data",
            "stats",
            &fixture("hourly/t2m_12hourly.nc"),
            "--json",
        ],
    );
    assert!(out.status.success());
    let twelve: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(twelve["channels"][0]["diff_std"].is_null());
    assert!(twelve["channels"][0]["mean"].is_number());
    let note = twelve["notes"][0].as_str().unwrap();
    assert!(note.contains("12 h") && note.contains("6-hour"), "{note}");
    let series = json(
        dir.path(),
        &[
            "data",
            "stats",
            &fixture("series/wb_consecutive/"),
            "--json",
        ],
    );
    check_stats("series/wb_consecutive/", &series);
    assert_eq!(series["time"]["count"], 12);
    check_stats(
        "formats/cds_unzipped/",
        &json(
            dir.path(),
            &["data", "stats", &fixture("formats/cds_unzipped/"), "--json"],
        ),
    );
}

/// A run config training on `data` (a small model, a few steps), with the given windows.
fn config(name: &str, data: &str, windows: &str, extra_data: &str) -> String {
    format!(
        r#"name = "{name}"
seed = 3

[data]
source = "netcdf"
path = "{data}"
{extra_data}

[data.windows]
step_hours = 6
lead_steps = 1
batch_size = 1
{windows}

[model]
mesh_level = 1
latent_size = 8
num_layers = 2

[training]
steps = 4
warmup_steps = 1
val_every = 2
val_batches = 1
checkpoint_every = 2
keep_last = 3

[evaluation]
max_lead_hours = 6
init_every_hours = 6
headline_channel = "t2m"
"#
    )
}

fn train(dir: &Path, config_text: &str, extra: &[&str]) -> Output {
    fs::write(dir.join("run.toml"), config_text).unwrap();
    let mut args = vec!["train", "--config", "run.toml", "--out", "run"];
    args.extend_from_slice(extra);
    run(dir, &args)
}

fn run_state(dir: &Path, checkpoint: &str) -> Value {
    serde_json::from_str(
        &fs::read_to_string(dir.join("run").join(checkpoint).join("run.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn an_expver_file_trains_as_one_merged_series() {
    let dir = tempfile::tempdir().unwrap();
    let windows = r#"train = { start = "2023-03-30", end = "2023-03-31" }
val = { start = "2023-03-31", end = "2023-04-01" }
test = { start = "2023-04-01", end = "2023-04-02" }"#;
    let out = train(
        dir.path(),
        &config("expver", &fixture("axes/era5_expver.nc"), windows, ""),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = run_state(dir.path(), "checkpoint-00000004");
    let names: Vec<&str> = state["normalisation"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t2m", "msl"]);
    assert_eq!(state["data"]["last_time"], "2023-03-31T18:00:00Z");
}

#[test]
fn static_fields_are_model_inputs_and_are_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    let windows = r#"train = { start = "2021-06-01", end = "2021-06-02" }
val = { start = "2021-06-02", end = "2021-06-03" }
test = { start = "2021-06-03", end = "2021-06-04" }"#;
    let out = train(
        dir.path(),
        &config("static", &fixture("static/era5_static.nc"), windows, ""),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let state = run_state(dir.path(), "checkpoint-00000004");
    let flags: Vec<(String, bool)> = state["normalisation"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["static"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        flags,
        [
            ("t2m".to_string(), false),
            ("lsm".to_string(), true),
            ("z".to_string(), true)
        ]
    );
    // The probes build the model's input as the emulator does (static channels once, last).
    json(
        dir.path(),
        &[
            "jacobian",
            "--checkpoint",
            "run",
            "--split",
            "val",
            "--json",
        ],
    );
    let out = run(
        dir.path(),
        &[
            "probe",
            "--checkpoint",
            "run",
            "--split",
            "val",
            "--out",
            "rec",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A dry spell (tp = 0 everywhere: std 0 and diff_std 0) is a static input too, never divided by. A new run:
    // a fresh `train` refuses a folder holding another run's checkpoints.
    fs::remove_dir_all(dir.path().join("run")).unwrap();
    let dry = train(
        dir.path(),
        &config("dry", &fixture("static/era5_dry.nc"), windows, ""),
        &[],
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let metrics = fs::read_to_string(dir.path().join("run/metrics.csv")).unwrap();
    assert!(
        !metrics.contains("NaN") && !metrics.contains("inf"),
        "{metrics}"
    );
}

/// Writes 16 six-hourly times of t2m (varying) and lsm (constant) with the library's own writer.
fn write_static_series(path: &Path) {
    use weatherlens_training::dataset::{Channel, Dataset, write_era5};
    let lat = vec![60.0, 20.0, -20.0, -60.0];
    let lon = vec![0.0, 90.0, 180.0, 270.0];
    let channel = |name: &str, units: &str| Channel {
        name: name.into(),
        variable: name.into(),
        level: None,
        units: units.into(),
    };
    let times = 16;
    let mut data = Vec::new();
    for k in 0..times {
        for (i, la) in lat.iter().enumerate() {
            for (j, _) in lon.iter().enumerate() {
                data.push(280.0 + la / 8.0 + (k as f64 * 0.7 + j as f64).sin() * 2.0 + i as f64);
            }
        }
        for i in 0..lat.len() {
            for j in 0..lon.len() {
                data.push(((i + j) % 2) as f64);
            }
        }
    }
    let dataset = Dataset {
        channels: vec![channel("t2m", "K"), channel("lsm", "(0 - 1)")],
        lat,
        lon,
        time_hours: (0..times as i64).map(|k| 438_288 + 6 * k).collect(),
        data: data.into_iter().map(|v| v as f32).collect(),
    };
    write_era5(path, &dataset).unwrap();
}

#[test]
fn evaluation_scores_predicted_channels_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("static.nc");
    write_static_series(&data);
    let windows = r#"train = { start = "2020-01-01", end = "2020-01-03" }
val = { start = "2020-01-03", end = "2020-01-04" }
test = { start = "2020-01-04", end = "2020-01-05" }"#;
    let out = train(
        dir.path(),
        &config("eval", &data.display().to_string(), windows, ""),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(dir.path(), &["evaluate", "--checkpoint", "run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scorecard = fs::read_to_string(dir.path().join("run/evaluation/scorecard.csv")).unwrap();
    assert!(scorecard.contains(",t2m,"), "{scorecard}");
    assert!(!scorecard.contains(",lsm,"), "{scorecard}");
}

#[test]
fn resuming_on_revised_data_refuses_naming_the_channel_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("era5.nc");
    fs::copy(layouts().join("revision/era5_v1.nc"), &data).unwrap();
    let windows = r#"train = { start = "2020-01-01", end = "2020-01-04" }
val = { start = "2020-01-04", end = "2020-01-05" }
test = { start = "2020-01-05", end = "2020-01-06" }"#;
    let text = config("revision", &data.display().to_string(), windows, "");
    let out = train(dir.path(), &text, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = run_state(dir.path(), "checkpoint-00000002")["normalisation"].clone();
    // The checkpoint's statistics are those of the training period (k = 0..11) of v1, from expected.json.
    let want = expected("revision/era5_v1.nc")["training_stats"].clone();
    for channel in before["channels"].as_array().unwrap() {
        let name = channel["name"].as_str().unwrap();
        for figure in ["mean", "std", "diff_std"] {
            let (a, b) = (
                channel[figure].as_f64().unwrap(),
                want[name][figure].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-3, "{name} {figure}: {a} vs {b}");
        }
    }
    let climatology = fs::read(dir.path().join("run/climatology.json")).unwrap();

    fs::copy(layouts().join("revision/era5_v2.nc"), &data).unwrap();
    let resume = ["--resume", "run/checkpoint-00000002"];
    let out = train(dir.path(), &text, &resume);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("data changed") && stderr.contains("t2m") && !stderr.contains("z500 ("),
        "{stderr}"
    );
    assert!(stderr.contains("--accept-data-change"), "{stderr}");
    assert_eq!(
        fs::read(dir.path().join("run/climatology.json")).unwrap(),
        climatology
    );

    let mut accept = resume.to_vec();
    accept.push("--accept-data-change");
    let out = train(dir.path(), &text, &accept);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = run_state(dir.path(), "checkpoint-00000004")["normalisation"].clone();
    assert_eq!(after, before, "the checkpoint's statistics are kept");
    assert_eq!(
        fs::read(dir.path().join("run/climatology.json")).unwrap(),
        climatology,
        "climatology.json is the run's original"
    );
    // Resumed into another folder, the run takes its original climatology along.
    let out = run(
        dir.path(),
        &[
            "train",
            "--config",
            "run.toml",
            "--out",
            "elsewhere",
            "--resume",
            "run/checkpoint-00000002",
            "--accept-data-change",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(dir.path().join("elsewhere/climatology.json")).unwrap(),
        climatology
    );
}

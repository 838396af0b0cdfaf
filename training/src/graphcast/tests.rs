//! The GraphCast data path against what GraphCast's own code computed on the fixtures
//! (`tests/fixtures/graphcast`, written by its `make_fixtures.py`): channel names, forcings, the normalised
//! input, de-normalisation and the two-step rollout, each within max|a − b| <= 1e-5 · max|b|.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::graphcast as graphs;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::graphcast::{GraphCastCheckpoint, ImportedModel};
use weatherlens_models::hooks::Hooks;

use super::*;
use crate::dataset::{self, Channel, Dataset, open_source, read_variable, take_turn, write_era5};

fn fixtures() -> PathBuf {
    crate::dataset::fixture_path("graphcast")
}

/// f32 tensors of a safetensors file (integers converted) with their shapes.
fn load(path: &Path) -> HashMap<String, (Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(key, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::I32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                _ => Vec::new(),
            };
            (key, (values, view.shape().to_vec()))
        })
        .collect()
}

/// max|a − b| / max|b|, asserted <= 1e-5 and printed (for the record).
fn check(actual: &[f32], expected: &[f32], what: &str) -> f64 {
    assert_eq!(actual.len(), expected.len(), "{what}: sizes");
    let scale = expected
        .iter()
        .fold(0.0f64, |m, &x| m.max(f64::from(x).abs()));
    let worst = actual.iter().zip(expected).fold(0.0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    let relative = worst / scale.max(1e-30);
    eprintln!("{what}: max |a - b| / max |b| = {relative:.2e}");
    assert!(relative <= 1e-5, "{what}: {relative:e} > 1e-5");
    relative
}

/// [grid, batch, C] (GraphCast's layout) -> [batch, grid, C]; a `_b0` [grid, C] is member 0.
fn batch_first(values: &[f32], shape: &[usize]) -> Vec<f32> {
    match *shape {
        [nodes, batch, width] => {
            let mut out = vec![0.0; values.len()];
            for n in 0..nodes {
                for b in 0..batch {
                    let from = (n * batch + b) * width;
                    let to = (b * nodes + n) * width;
                    out[to..to + width].copy_from_slice(&values[from..from + width]);
                }
            }
            out
        }
        _ => values.to_vec(),
    }
}

struct Fixture {
    name: &'static str,
    checkpoint: GraphCastCheckpoint,
    task: GraphCastTask,
    meta: serde_json::Value,
    activations: HashMap<String, (Vec<f32>, Vec<usize>)>,
    outputs: HashMap<String, (Vec<f32>, Vec<usize>)>,
}

fn fixture(name: &'static str) -> Fixture {
    let checkpoint =
        GraphCastCheckpoint::read(&fixtures().join(format!("params/{name}.npz"))).unwrap();
    let task = GraphCastTask::new(&checkpoint.task, &fixtures().join("stats")).unwrap();
    let reference = fixtures().join("reference");
    let meta = serde_json::from_str(
        &std::fs::read_to_string(reference.join(format!("{name}.json"))).unwrap(),
    )
    .unwrap();
    Fixture {
        name,
        activations: load(&reference.join(format!("{name}_activations.safetensors"))),
        outputs: load(&reference.join(format!("{name}_outputs.safetensors"))),
        checkpoint,
        task,
        meta,
    }
}

impl Fixture {
    fn batch_file(&self, suffix: &str) -> PathBuf {
        fixtures().join(format!("dataset/{}_example_batch{suffix}.nc", self.name))
    }

    /// The model and its graphs with the mesh2grid choices GraphCast's code made on this grid.
    fn model_output(
        &self,
        grid: &weatherlens_models::grid::LatLonGrid,
    ) -> impl FnMut(Tensor<3>) -> Tensor<3> {
        let graph_ref =
            load(&fixtures().join(format!("reference/{}_graph.safetensors", self.name)));
        let picks: Vec<(usize, usize)> = graph_ref["tie_grid_index"]
            .0
            .iter()
            .zip(&graph_ref["tie_picked_face"].0)
            .map(|(&g, &f)| (g as usize, f as usize))
            .collect();
        let imported = ImportedModel::from_checkpoint(&self.checkpoint).unwrap();
        let config = &imported.config;
        let graph = graphs::build_with(
            grid,
            config.mesh_level,
            config.grid2mesh_radius_fraction,
            config.mesh2grid_edge_normalisation,
            &picks,
        )
        .unwrap();
        let device = Device::flex();
        let tensors = GraphTensors::new(&graph, None, Kernels::Fused, &device);
        let model = imported.build(&device).unwrap();
        move |x| model.forward(&tensors, x, &Hooks::none())
    }

    /// `rollout/<var>` (or `no_toa/rollout/<var>`) at step `step`: [batch, (level), lat, lon].
    fn rollout_step(&self, prefix: &str, variable: &str, step: usize) -> Vec<f32> {
        let (values, shape) = &self.outputs[&format!("{prefix}rollout/{variable}")];
        let (batch, steps) = (shape[0], shape[1]);
        let per = values.len() / (batch * steps);
        (0..batch)
            .flat_map(|b| {
                values[(b * steps + step) * per..(b * steps + step + 1) * per]
                    .iter()
                    .copied()
            })
            .collect()
    }
}

#[test]
fn channel_names_are_graphcast_s() {
    for name in ["fixture_a", "fixture_b"] {
        let f = fixture(name);
        let names = |key: &str| -> Vec<String> {
            f.meta[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            f.task.input_channel_names(),
            names("input_channels"),
            "{name}"
        );
        assert_eq!(
            f.task.output_channel_names(),
            names("output_channels"),
            "{name}"
        );
        let imported = ImportedModel::from_checkpoint(&f.checkpoint).unwrap();
        assert_eq!(f.task.layout().inputs.len(), imported.input_channels);
        assert_eq!(f.task.layout().outputs.len(), imported.output_channels);
    }
    // Precipitation is the one target that is not an input: predicted directly, not as a residual.
    let f = fixture("fixture_a");
    for channel in &f.task.layout().outputs {
        assert_eq!(
            channel.residual,
            channel.variable != "total_precipitation_6hr",
            "{}",
            channel.name
        );
    }
}

#[test]
fn progress_forcings_equal_graphcast_s() {
    for name in ["fixture_a", "fixture_b"] {
        let f = fixture(name);
        let inputs = f.task.read_inputs(&f.batch_file("")).unwrap();
        let (n_lat, n_lon) = (inputs.grid().n_lat(), inputs.grid().n_lon());
        for variable in names::PROGRESS {
            for (prefix, times) in [("inputs", [0, 1]), ("forcings", [2, 3])] {
                // year_progress_*: [batch, 2]; day_progress_*: [batch, 2, lon]. Ours: [batch, lat, lon].
                let (expected, shape) = &f.outputs[&format!("{prefix}/{variable}")];
                let mut ours = Vec::new();
                for b in 0..inputs.batch() {
                    for t in times {
                        let field = inputs.forcing(variable, t).unwrap();
                        let row = &field[b * n_lat * n_lon..b * n_lat * n_lon + n_lon];
                        ours.extend(if shape.len() == 2 { &row[..1] } else { row });
                    }
                }
                check(&ours, expected, &format!("{name} {prefix}/{variable}"));
            }
        }
    }
}

#[test]
fn computed_toa_radiation_equals_graphcast_s() {
    let f = fixture("fixture_a");
    let inputs = f.task.read_inputs(&f.batch_file("_no_toa")).unwrap();
    let stored = f.task.read_inputs(&f.batch_file("")).unwrap();
    let points = inputs.grid().num_points();
    for (prefix, times) in [("inputs", [0, 1]), ("forcings", [2, 3])] {
        let mut ours = Vec::new();
        let mut file = Vec::new();
        for b in 0..inputs.batch() {
            for t in times {
                let at = b * points..(b + 1) * points;
                ours.extend_from_slice(&inputs.forcing(names::TOA, t).unwrap()[at.clone()]);
                file.extend_from_slice(&stored.forcing(names::TOA, t).unwrap()[at]);
            }
        }
        let key = format!("no_toa/{prefix}/toa_incident_solar_radiation");
        check(&ours, &f.outputs[&key].0, &format!("fixture_a {key}"));
        // A file's own TOA radiation is used as it is.
        let key = format!("{prefix}/toa_incident_solar_radiation");
        check(
            &file,
            &f.outputs[&key].0,
            &format!("fixture_a stored {key}"),
        );
    }
}

#[test]
fn the_normalised_input_equals_graphcast_s() {
    for name in ["fixture_a", "fixture_b"] {
        let f = fixture(name);
        // (The TOA-less file has no recorded input: its computed TOA is checked above, its rollout below.)
        let inputs = f.task.read_inputs(&f.batch_file("")).unwrap();
        let ours = f.task.initial_input(&inputs).unwrap();
        let (values, shape) = f
            .activations
            .get("input_grid_node_features")
            .or_else(|| f.activations.get("input_grid_node_features_b0"))
            .unwrap();
        let expected = batch_first(values, shape);
        check(
            &ours[..expected.len()],
            &expected,
            &format!("{name} input_grid_node_features"),
        );
    }
}

#[test]
fn de_normalised_decoder_output_is_graphcast_s_first_step() {
    for name in ["fixture_a", "fixture_b"] {
        let f = fixture(name);
        let inputs = f.task.read_inputs(&f.batch_file("")).unwrap();
        let (values, shape) = &f.activations["mesh2grid_output"];
        let output = batch_first(values, shape);
        let points = inputs.grid().num_points();
        let predictions = f
            .task
            .denormalise(&output, &inputs.states, inputs.batch(), points);
        for (variable, ours) in predictions {
            check(
                &ours,
                &f.rollout_step("", &variable, 0),
                &format!("{name} step 1 {variable} from the decoder output"),
            );
        }
    }
}

#[test]
fn the_rollout_equals_graphcast_s() {
    for (name, suffix, prefix) in [
        ("fixture_a", "", ""),
        ("fixture_a", "_no_toa", "no_toa/"),
        ("fixture_b", "", ""),
    ] {
        let f = fixture(name);
        let inputs = f.task.read_inputs(&f.batch_file(suffix)).unwrap();
        let mut model = f.model_output(inputs.grid());
        let mut seen = Vec::new();
        let forecast = f
            .task
            .rollout(&inputs, 2, &Device::flex(), |x| {
                seen.push(x.to_data().convert::<f32>().try_into_vec::<f32>().unwrap());
                model(x)
            })
            .unwrap();
        assert_eq!(forecast.lead_hours, [6, 12]);
        for (b, valid) in forecast.valid_hours.iter().enumerate() {
            assert_eq!(valid, &inputs.datetimes(b)[2..4]);
        }
        if let (Some((values, _)), "") = (
            f.outputs.get("rollout_step2_input_grid_node_features_b0"),
            suffix,
        ) {
            check(
                &seen[1][..values.len()],
                values,
                &format!("{name} step 2 input (member 0)"),
            );
        }
        for variable in &forecast.variables {
            let per_step = variable.values.len() / (forecast.batch * 2);
            for step in 0..2 {
                let ours: Vec<f32> = (0..forecast.batch)
                    .flat_map(|b| {
                        let at = (b * 2 + step) * per_step;
                        variable.values[at..at + per_step].iter().copied()
                    })
                    .collect();
                check(
                    &ours,
                    &f.rollout_step(prefix, &variable.name, step),
                    &format!("{name}{suffix} rollout step {} {}", step + 1, variable.name),
                );
            }
        }
    }
}

#[test]
fn a_file_too_short_for_the_steps_is_refused_naming_both_counts() {
    let f = fixture("fixture_b");
    let inputs = f.task.read_inputs(&f.batch_file("")).unwrap();
    assert_eq!(inputs.max_steps(), 2);
    let error = f
        .task
        .rollout(&inputs, 3, &Device::flex(), |x| x)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("3 steps need 5 times")
            && error.contains("has 4")
            && error.contains("fixture_b_example_batch.nc"),
        "{error}"
    );
    let error = f
        .task
        .rollout(&inputs, 1, &Device::flex(), |x| x)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("model output of step 0 has shape"),
        "{error}"
    );
}

#[test]
fn missing_statistics_are_refused_naming_file_variable_and_level() {
    let f = fixture("fixture_a");
    let mut config = f.checkpoint.task.clone();
    config.pressure_levels.push(975);
    let error = GraphCastTask::new(&config, &fixtures().join("stats"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("mean_by_level.nc")
            && error.contains("`geopotential`")
            && error.contains("975"),
        "{error}"
    );
}

/// Member 0 of fixture a as an ERA5 download would hold it: short names, latitude north to south, static
/// fields at every time, the surface geopotential under its long name (ERA5's `z` is taken by the levels).
fn era5_copy(path: &Path) -> Dataset {
    let source = open_source(&fixtures().join("dataset/fixture_a_example_batch.nc")).unwrap();
    let source = source.as_ref();
    let lat = read_variable(source, "lat").unwrap().values;
    let lon = read_variable(source, "lon").unwrap().values;
    let levels = read_variable(source, "level").unwrap().values;
    let (n_lat, n_lon) = (lat.len(), lon.len());
    let field = n_lat * n_lon;
    let mut channels = Vec::new();
    let mut planes: Vec<Vec<f64>> = Vec::new();
    for (long, short) in [
        ("2m_temperature", "t2m"),
        ("mean_sea_level_pressure", "msl"),
        ("temperature", "t"),
        ("geopotential", "z"),
        ("u_component_of_wind", "u"),
        ("v_component_of_wind", "v"),
        ("toa_incident_solar_radiation", "tisr"),
        ("land_sea_mask", "lsm"),
        ("geopotential_at_surface", "geopotential_at_surface"),
    ] {
        let array = read_variable(source, long).unwrap();
        let times = if array.dims.contains(&"time".to_string()) {
            4
        } else {
            1
        };
        let file_levels: Vec<Option<f64>> = if array.dims.contains(&"level".to_string()) {
            levels.iter().map(|&l| Some(l)).collect()
        } else {
            vec![None]
        };
        let level_count = file_levels.len();
        for (l, &level) in file_levels.iter().enumerate() {
            channels.push(Channel {
                name: dataset::channel_name(short, level),
                variable: short.into(),
                level,
                units: String::new(),
            });
            // member 0: [time, level, lat, lon]; reversed latitude rows.
            let mut plane = Vec::new();
            for t in 0..4 {
                let at = ((t.min(times - 1)) * level_count + l) * field;
                for i in (0..n_lat).rev() {
                    plane.extend_from_slice(&array.values[at + i * n_lon..at + (i + 1) * n_lon]);
                }
            }
            planes.push(plane);
        }
    }
    let hours = crate::dataset::batch_datetimes(source)
        .unwrap()
        .unwrap()
        .member(0)
        .to_vec();
    let mut data = Vec::new();
    for t in 0..4 {
        for plane in &planes {
            data.extend(plane[t * field..(t + 1) * field].iter().map(|&v| v as f32));
        }
    }
    let dataset = Dataset {
        channels,
        lat: lat.iter().rev().copied().collect(),
        lon,
        time_hours: hours,
        data,
    };
    write_era5(path, &dataset).unwrap();
    dataset
}

#[test]
fn an_era5_layout_file_gives_the_same_input_on_its_own_grid() {
    let f = fixture("fixture_a");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("era5.nc");
    let hourly = dir.path().join("hourly.nc");
    {
        let _turn = take_turn();
        let mut dataset = era5_copy(&path);
        let start = dataset.time_hours[0];
        dataset.time_hours = (start..start + 4).collect();
        write_era5(&hourly, &dataset).unwrap();
    }
    let error = f.task.read_inputs(&hourly).unwrap_err().to_string();
    assert!(
        error.contains("hourly.nc") && error.contains("time step 1 h") && error.contains("6 h"),
        "{error}"
    );
    let inputs = f.task.read_inputs(&path).unwrap();
    assert_eq!(inputs.batch(), 1);
    assert_eq!(
        inputs.grid().lat()[0],
        90.0,
        "the file's order: north first"
    );
    let ours = f.task.initial_input(&inputs).unwrap();
    // GraphCast's member-0 input, its latitude rows reversed to the ERA5 file's order.
    let (values, shape) = &f.activations["input_grid_node_features"];
    let expected = batch_first(values, shape);
    let (n_lat, n_lon, channels) = (19, 36, shape[2]);
    let row = n_lon * channels;
    let reversed: Vec<f32> = (0..n_lat)
        .rev()
        .flat_map(|i| expected[i * row..(i + 1) * row].iter().copied())
        .collect();
    check(
        &ours,
        &reversed,
        "fixture_a member 0 from an ERA5-layout file",
    );
}

#[test]
fn a_forecast_file_reads_back_as_graphcast_s_layout() {
    let f = fixture("fixture_b");
    let inputs = f.task.read_inputs(&f.batch_file("")).unwrap();
    let forecast = f
        .task
        .rollout(&inputs, 2, &Device::flex(), f.model_output(inputs.grid()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forecast.nc");
    {
        let _turn = take_turn();
        forecast.write_netcdf(&path).unwrap();
    }
    // Through the project's own reader: the batch layout's valid times, and every value.
    let source = open_source(&path).unwrap();
    let times = crate::dataset::batch_datetimes(source.as_ref())
        .unwrap()
        .unwrap();
    assert_eq!(times.members, 2);
    for b in 0..2 {
        assert_eq!(times.member(b), forecast.valid_hours[b]);
    }
    assert_eq!(
        read_variable(source.as_ref(), "time").unwrap().values,
        [6.0, 12.0]
    );
    assert_eq!(
        read_variable(source.as_ref(), "lat").unwrap().values,
        inputs.grid().lat()
    );
    for variable in &forecast.variables {
        let stored = read_variable(source.as_ref(), &variable.name).unwrap();
        let expected_dims: &[&str] = if variable.has_level {
            &["batch", "time", "level", "lat", "lon"]
        } else {
            &["batch", "time", "lat", "lon"]
        };
        assert_eq!(stored.dims, expected_dims);
        let back: Vec<f32> = stored.values.iter().map(|&v| v as f32).collect();
        assert_eq!(back, variable.values, "{}", variable.name);
    }
}

#[test]
fn a_file_without_a_variable_or_level_is_refused_naming_them() {
    let f = fixture("fixture_b");
    // fixture b's file holds 500, 850 and 1000 hPa; the statistics all 13 WeatherBench levels.
    let mut config = f.checkpoint.task.clone();
    config.pressure_levels = vec![500, 300];
    let task = GraphCastTask::new(&config, &fixtures().join("stats")).unwrap();
    let error = task.read_inputs(&f.batch_file("")).unwrap_err().to_string();
    assert!(
        error.contains("fixture_b_example_batch.nc") && error.contains("no level 300 hPa"),
        "{error}"
    );
    let mut config = f.checkpoint.task.clone();
    for list in [&mut config.input_variables, &mut config.target_variables] {
        list.push("specific_humidity".into());
    }
    let task = GraphCastTask::new(&config, &fixtures().join("stats")).unwrap();
    let error = task.read_inputs(&f.batch_file("")).unwrap_err().to_string();
    assert!(
        error.contains("`specific_humidity`") && error.contains("`q`"),
        "{error}"
    );
}

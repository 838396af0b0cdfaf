//! The forecast stage: an autoregressive forecast of N 6-hour steps from the first two times of an input file,
//! written as NetCDF-4 in GraphCast's example-batch layout (`(batch, time, [level], lat, lon)`, `time` the lead
//! time, `datetime(batch, time)` the valid time; [`weatherlens_training::dataset::write_forecast`]).
//!
//! * An imported GraphCast reads the file as GraphCast does (its example-batch layout or an ERA5 layout, each
//!   batch member with its own dates), runs [`GraphCastTask::rollout`] (lead k takes the forcings of file time
//!   2 + k − 1) and writes its target variables on the file's grid.
//! * A WeatherLens-trained model reads the file with the run's variable selection (any format the readers
//!   know: ERA5 NetCDF, WeatherBench, Zarr), which must give the channels and grid it was trained on; it rolls
//!   out with [`weatherlens_training::emulator::Emulator::forecast`] and writes one variable per predicted
//!   channel (`z500`, `t2m`, ...; static channels are left out), batch 1.
//!
//! Either way the file must hold 2 + N times (the initial conditions, then one valid time per lead), 6 h apart.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use weatherlens_models::graph::graphcast::GraphCastTies;
use weatherlens_models::hooks::Hooks;
use weatherlens_training::data::axis_choices;
use weatherlens_training::dataset::{
    ForecastFile, ForecastVariable, Reader, iso8601, write_forecast,
};
use weatherlens_training::graphcast::{GraphCastDataError, STEP_HOURS};
use weatherlens_training::restore::Restored;

use super::StageError;
use super::loaded::{ImportedGraphCast, LoadedModel};

/// Initial conditions a forecast starts from (the file's first two times).
pub const INITIAL_TIMES: usize = 2;

/// What a forecast wrote (the `--json` output of `weatherlens forecast`).
#[derive(Debug, Clone, Serialize)]
pub struct ForecastSummary {
    pub out: PathBuf,
    /// `graphcast` or `weatherlens`.
    pub model_kind: String,
    pub steps: usize,
    pub batch: usize,
    pub lead_hours: Vec<i64>,
    /// The initial time (the second input time) of each batch member, ISO 8601.
    pub initial_times: Vec<String>,
    pub variables: Vec<String>,
    /// Wall time of the rollout (model steps, input assembly and de-normalisation), seconds.
    pub rollout_seconds: f64,
    /// An imported GraphCast: the grid points whose mesh2grid face is a tie (where rounding decides,
    /// GraphCast's own pick, and so its output at the point, varies); none for a trained model.
    pub mesh2grid_ties: Option<GraphCastTies>,
}

/// Forecasts `steps` steps of `model` from the first two times of `inputs` into the new file `out`.
pub fn forecast(
    model: &LoadedModel,
    inputs: &Path,
    steps: usize,
    out: &Path,
) -> Result<ForecastSummary, StageError> {
    if steps == 0 {
        return Err(StageError::Invalid(
            "--steps 0: forecast at least one step".into(),
        ));
    }
    match model {
        LoadedModel::GraphCast(imported) => graphcast_forecast(imported, inputs, steps, out),
        LoadedModel::Trained(restored) => trained_forecast(restored, inputs, steps, out),
    }
}

/// The refusal of a file with `times` times for `steps` steps.
fn too_few_times(path: &Path, steps: usize, times: usize) -> StageError {
    GraphCastDataError::TooFewTimes {
        path: path.to_path_buf(),
        steps,
        inputs: INITIAL_TIMES,
        needed: INITIAL_TIMES + steps,
        times,
    }
    .into()
}

fn graphcast_forecast(
    imported: &ImportedGraphCast,
    path: &Path,
    steps: usize,
    out: &Path,
) -> Result<ForecastSummary, StageError> {
    let inputs = imported.read_inputs(path, 0)?;
    if inputs.times() < INITIAL_TIMES + steps {
        return Err(too_few_times(path, steps, inputs.times()));
    }
    let on_grid = imported.on_grid(inputs.grid())?;
    let started = Instant::now();
    let forecast = imported
        .task
        .rollout(&inputs, steps, imported.device(), |x| {
            imported.model.forward(&on_grid.tensors, x, &Hooks::none())
        })?;
    let rollout_seconds = started.elapsed().as_secs_f64();
    forecast.write_netcdf(out)?;
    Ok(ForecastSummary {
        out: out.to_path_buf(),
        model_kind: "graphcast".into(),
        steps,
        batch: forecast.batch,
        lead_hours: forecast.lead_hours.clone(),
        initial_times: inputs.initial_times().into_iter().map(iso8601).collect(),
        variables: forecast.variables.iter().map(|v| v.name.clone()).collect(),
        rollout_seconds,
        mesh2grid_ties: Some(on_grid.ties),
    })
}

fn trained_forecast(
    restored: &Restored,
    path: &Path,
    steps: usize,
    out: &Path,
) -> Result<ForecastSummary, StageError> {
    let state = &restored.state;
    let reader = Reader::open_path(
        path,
        &state.config.data.variables,
        &axis_choices(&state.config.data),
    )?;
    let times = reader.time_hours().len();
    if times < INITIAL_TIMES + steps {
        return Err(too_few_times(path, steps, times));
    }
    let data = reader.read_times(0..INITIAL_TIMES + steps)?;
    let mismatch = |what: &str| {
        StageError::Invalid(format!(
            "{}: its {what} differ from those the model was trained on ({})",
            path.display(),
            restored.checkpoint.display()
        ))
    };
    if data
        .channels
        .iter()
        .map(|c| &c.name)
        .ne(state.data.channels.iter().map(|c| &c.name))
    {
        return Err(mismatch("channels"));
    }
    if data.lat != state.data.lat || data.lon != state.data.lon {
        return Err(mismatch("grid coordinates"));
    }
    if let Some(w) = data
        .time_hours
        .windows(2)
        .find(|w| w[1] - w[0] != STEP_HOURS)
    {
        return Err(StageError::Invalid(format!(
            "{}: times {} and {} are {} h apart; a forecast steps {STEP_HOURS} h",
            path.display(),
            iso8601(w[0]),
            iso8601(w[1]),
            w[1] - w[0]
        )));
    }
    let emulator = &restored.emulator;
    let started = Instant::now();
    let initial: Vec<f32> = [data.frame(0), data.frame(1)].concat();
    let leads = emulator.forecast(&initial, 1, steps);
    let rollout_seconds = started.elapsed().as_secs_f64();
    let field = data.lat.len() * data.lon.len();
    let is_static = state.normalisation.static_flags();
    // Per predicted channel: [batch 1, step, lat, lon].
    let predicted: Vec<(usize, Vec<f32>)> = (0..data.channels.len())
        .filter(|&c| !is_static[c])
        .map(|c| {
            let values = leads
                .iter()
                .flat_map(|frame| frame[c * field..(c + 1) * field].iter().copied())
                .collect();
            (c, values)
        })
        .collect();
    let lead_hours: Vec<i64> = (1..=steps as i64).map(|k| k * STEP_HOURS).collect();
    let file = ForecastFile {
        lat: &data.lat,
        lon: &data.lon,
        levels: &[],
        lead_hours: &lead_hours,
        valid_hours: &data.time_hours[INITIAL_TIMES..],
        batch: 1,
        variables: predicted
            .iter()
            .map(|(c, values)| ForecastVariable {
                name: &data.channels[*c].name,
                has_level: false,
                units: Some(data.channels[*c].units.as_str()).filter(|u| !u.is_empty()),
                values,
            })
            .collect(),
    };
    write_forecast(out, &file)?;
    Ok(ForecastSummary {
        out: out.to_path_buf(),
        model_kind: "weatherlens".into(),
        steps,
        batch: 1,
        lead_hours,
        initial_times: vec![iso8601(data.time_hours[INITIAL_TIMES - 1])],
        variables: predicted
            .iter()
            .map(|(c, _)| data.channels[*c].name.clone())
            .collect(),
        rollout_seconds,
        mesh2grid_ties: None,
    })
}

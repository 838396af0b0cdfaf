//! One GraphCast step between physical fields and the model's tensors, and the autoregressive rollout
//! (graphcast `normalization.InputsAndResiduals`, `rollout.chunked_prediction`, spec §5-§8).
//!
//! Step k (from 0) sees a window of `input_frames` physical states (file times k .. k + frames − 1 at the start;
//! predictions later), the static fields, the forcing variables' values at the window's times (their input
//! copies) and the forcings at the target time `frames + k`. The model input is every channel normalised,
//! `(x − mean) / stddev` in f32, as [batch, grid point, channel]. The output [batch, grid point, output channel]
//! becomes physical fields: `output · diffs_stddev + last input frame` for targets that are inputs,
//! `output · stddev + mean` for the others. The next window drops its oldest frame and appends the predictions of
//! the carried variables; forcings come from the file's times (or are computed), never from predictions.

use std::collections::BTreeMap;

use burn::prelude::*;

use super::GraphCastTask;
use super::channels::{InputKind, STEP_HOURS};
use super::error::GraphCastDataError;
use super::inputs::GraphCastInputs;

/// Physical values of the carried input variables: per variable [batch, frame, level, grid point].
pub(crate) type Window = BTreeMap<String, Vec<f32>>;

/// Forcing values by file time: time -> variable -> [batch, grid point].
struct ForcingCache<'a> {
    inputs: &'a GraphCastInputs,
    names: Vec<String>,
    times: BTreeMap<usize, BTreeMap<String, Vec<f32>>>,
}

impl<'a> ForcingCache<'a> {
    fn new(inputs: &'a GraphCastInputs, names: &[String]) -> Self {
        Self {
            inputs,
            names: names.to_vec(),
            times: BTreeMap::new(),
        }
    }

    /// Every forcing at file time `time`; times before `keep_from` are dropped.
    fn at(
        &mut self,
        time: usize,
        keep_from: usize,
    ) -> Result<&BTreeMap<String, Vec<f32>>, GraphCastDataError> {
        self.times.retain(|&t, _| t >= keep_from);
        if !self.times.contains_key(&time) {
            let mut values = BTreeMap::new();
            for name in &self.names {
                values.insert(name.clone(), self.inputs.forcing(name, time)?);
            }
            self.times.insert(time, values);
        }
        Ok(&self.times[&time])
    }
}

/// A forecast: every target variable at every lead, in physical units, on the input file's grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Latitudes and longitudes as the input file stores them (degrees, file order).
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
    pub batch: usize,
    /// Pressure levels (hPa) of the level variables, in the task's order.
    pub levels: Vec<i64>,
    /// Lead times, hours after the initial time: 6, 12, ...
    pub lead_hours: Vec<i64>,
    /// Valid times, hours since 1970-01-01T00:00:00Z: [batch][step].
    pub valid_hours: Vec<Vec<i64>>,
    /// In sorted name order (the output channels' order).
    pub variables: Vec<ForecastVariable>,
}

/// One predicted variable.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastVariable {
    /// GraphCast's name, e.g. `2m_temperature`.
    pub name: String,
    /// True for a variable on the forecast's pressure levels.
    pub has_level: bool,
    /// [batch, step, (level), lat, lon] row-major (GraphCast's `rollout/<var>` layout, batch first).
    pub values: Vec<f32>,
}

impl Forecast {
    /// The variable called `name`.
    pub fn variable(&self, name: &str) -> Option<&ForecastVariable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Writes the forecast as NetCDF-4 in GraphCast's example-batch layout (dims (batch, time, [level], lat,
    /// lon); `time` the lead time as a timedelta, `datetime(batch, time)` the valid time); see
    /// [`crate::dataset::write_forecast`]. The file appears under `path` only once complete.
    pub fn write_netcdf(&self, path: &std::path::Path) -> Result<(), GraphCastDataError> {
        let valid: Vec<i64> = self.valid_hours.iter().flatten().copied().collect();
        let file = crate::dataset::ForecastFile {
            lat: &self.lat,
            lon: &self.lon,
            levels: if self.variables.iter().any(|v| v.has_level) {
                self.levels.as_slice()
            } else {
                &[]
            },
            lead_hours: &self.lead_hours,
            valid_hours: &valid,
            batch: self.batch,
            variables: self
                .variables
                .iter()
                .map(|v| crate::dataset::ForecastVariable {
                    name: &v.name,
                    has_level: v.has_level,
                    units: super::names::units(&v.name),
                    values: &v.values,
                })
                .collect(),
        };
        Ok(crate::dataset::write_forecast(path, &file)?)
    }
}

impl GraphCastTask {
    /// The normalised model input of step `step`: [batch, grid point, input channel] row-major.
    ///
    /// `window`: the carried variables' physical frames; forcings for file times `step .. step + frames` from
    /// `forcings`.
    fn assemble(
        &self,
        inputs: &GraphCastInputs,
        window: &Window,
        forcings: &mut ForcingCache,
        step: usize,
    ) -> Result<Vec<f32>, GraphCastDataError> {
        let layout = &self.layout;
        let frames = layout.input_frames;
        let (batch, points) = (inputs.batch(), inputs.grid().num_points());
        let channels = layout.inputs.len();
        let mut out = vec![0.0_f32; batch * points * channels];
        // Each channel's [batch, grid point] plane, then normalised into place.
        let mut plane = vec![0.0_f32; batch * points];
        for (c, channel) in layout.inputs.iter().enumerate() {
            let level = self.level_index(channel.level);
            let levels = if channel.level.is_some() {
                self.config.pressure_levels.len()
            } else {
                1
            };
            match channel.kind {
                InputKind::Static => plane.copy_from_slice(&inputs.statics[&channel.variable]),
                InputKind::Forcing => {
                    plane.copy_from_slice(&forcings.at(frames + step, step)?[&channel.variable])
                }
                InputKind::Input { frame } => match window.get(&channel.variable) {
                    Some(values) => {
                        for b in 0..batch {
                            let at = ((b * frames + frame) * levels + level) * points;
                            plane[b * points..(b + 1) * points]
                                .copy_from_slice(&values[at..at + points]);
                        }
                    }
                    None => {
                        plane.copy_from_slice(&forcings.at(step + frame, step)?[&channel.variable])
                    }
                },
            }
            let (mean, stddev) = (channel.mean, channel.stddev);
            for (n, &x) in plane.iter().enumerate() {
                out[n * channels + c] = (x - mean) / stddev;
            }
        }
        Ok(out)
    }

    fn level_index(&self, level: Option<i64>) -> usize {
        level
            .and_then(|l| self.config.pressure_levels.iter().position(|&p| p == l))
            .unwrap_or(0)
    }

    /// Physical predictions from a model output: per target variable [batch, level, grid point].
    ///
    /// output: [batch, grid point, output channel]; `window` the step's inputs (residual targets add their last
    /// frame).
    pub(crate) fn denormalise(
        &self,
        output: &[f32],
        window: &Window,
        batch: usize,
        points: usize,
    ) -> BTreeMap<String, Vec<f32>> {
        let frames = self.layout.input_frames;
        let outputs = &self.layout.outputs;
        let mut predictions: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for (o, channel) in outputs.iter().enumerate() {
            let levels = if channel.level.is_some() {
                self.config.pressure_levels.len()
            } else {
                1
            };
            let level = self.level_index(channel.level);
            let values = predictions
                .entry(channel.variable.clone())
                .or_insert_with(|| vec![0.0; batch * levels * points]);
            let last = channel
                .residual
                .then(|| &window[&channel.variable])
                .map(|w| (w, frames - 1));
            for b in 0..batch {
                for p in 0..points {
                    let y = output[(b * points + p) * outputs.len() + o];
                    let base = match last {
                        Some((w, frame)) => w[((b * frames + frame) * levels + level) * points + p],
                        None => channel.offset,
                    };
                    values[(b * levels + level) * points + p] = y * channel.scale + base;
                }
            }
        }
        predictions
    }

    /// The normalised model input of the first step: [batch, grid point, input channel] row-major.
    pub fn initial_input(&self, inputs: &GraphCastInputs) -> Result<Vec<f32>, GraphCastDataError> {
        let mut forcings = ForcingCache::new(inputs, &self.forcing_names());
        self.assemble(inputs, &inputs.states, &mut forcings, 0)
    }

    /// [`Self::initial_input`] as a tensor on `device`: [batch, grid point, input channel].
    pub fn initial_input_tensor(
        &self,
        inputs: &GraphCastInputs,
        device: &Device,
    ) -> Result<Tensor<3>, GraphCastDataError> {
        let values = self.initial_input(inputs)?;
        let shape = [
            inputs.batch(),
            inputs.grid().num_points(),
            self.layout.inputs.len(),
        ];
        Ok(Tensor::<3>::from_data(
            TensorData::new(values, shape),
            device,
        ))
    }

    /// Runs `steps` autoregressive steps: step k's normalised input ([batch, grid point, input channel] on
    /// `device`) goes through `model_output`, which returns [batch, grid point, output channel]; every step's
    /// physical predictions are kept.
    ///
    /// The file must hold `input_frames + steps` times (the forcings of lead k are those of file time
    /// `input_frames + k − 1`).
    pub fn rollout(
        &self,
        inputs: &GraphCastInputs,
        steps: usize,
        device: &Device,
        mut model_output: impl FnMut(Tensor<3>) -> Tensor<3>,
    ) -> Result<Forecast, GraphCastDataError> {
        let frames = self.layout.input_frames;
        if inputs.times() < frames + steps {
            return Err(GraphCastDataError::TooFewTimes {
                path: inputs.path().to_path_buf(),
                steps,
                inputs: frames,
                needed: frames + steps,
                times: inputs.times(),
            });
        }
        let (batch, points) = (inputs.batch(), inputs.grid().num_points());
        let (channels, outputs) = (self.layout.inputs.len(), self.layout.outputs.len());
        let mut forcings = ForcingCache::new(inputs, &self.forcing_names());
        let mut window = inputs.states.clone();
        let mut predicted: Vec<BTreeMap<String, Vec<f32>>> = Vec::with_capacity(steps);
        for step in 0..steps {
            let x = self.assemble(inputs, &window, &mut forcings, step)?;
            let x = Tensor::<3>::from_data(TensorData::new(x, [batch, points, channels]), device);
            let y = model_output(x);
            let expected = vec![batch, points, outputs];
            let found = y.dims().to_vec();
            let wrong = |found: Vec<usize>| GraphCastDataError::ModelOutput {
                step,
                found,
                expected: expected.clone(),
            };
            if found != expected {
                return Err(wrong(found));
            }
            let y = y
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|_| wrong(found.clone()))?;
            let predictions = self.denormalise(&y, &window, batch, points);
            for (name, values) in window.iter_mut() {
                let new = &predictions[name];
                let per_frame = values.len() / (batch * frames);
                for b in 0..batch {
                    let member = &mut values[b * frames * per_frame..(b + 1) * frames * per_frame];
                    member.copy_within(per_frame.., 0);
                    member[(frames - 1) * per_frame..]
                        .copy_from_slice(&new[b * per_frame..(b + 1) * per_frame]);
                }
            }
            predicted.push(predictions);
        }
        Ok(self.collect(inputs, predicted))
    }

    /// Puts the steps' predictions into a [`Forecast`] ([batch, step, level, point] per variable).
    fn collect(
        &self,
        inputs: &GraphCastInputs,
        predicted: Vec<BTreeMap<String, Vec<f32>>>,
    ) -> Forecast {
        let (batch, steps) = (inputs.batch(), predicted.len());
        let frames = self.layout.input_frames;
        let mut names: Vec<&String> = self.config.target_variables.iter().collect();
        names.sort();
        names.dedup();
        let variables = names
            .into_iter()
            .map(|name| {
                let per_member = predicted.first().map_or(0, |p| p[name].len() / batch);
                let mut values = Vec::with_capacity(batch * steps * per_member);
                for b in 0..batch {
                    for step in &predicted {
                        values.extend_from_slice(&step[name][b * per_member..(b + 1) * per_member]);
                    }
                }
                ForecastVariable {
                    name: name.clone(),
                    has_level: super::names::is_atmospheric(name),
                    values,
                }
            })
            .collect();
        Forecast {
            lat: inputs.grid().lat().to_vec(),
            lon: inputs.grid().lon().to_vec(),
            batch,
            levels: self.config.pressure_levels.clone(),
            lead_hours: (1..=steps as i64).map(|k| k * STEP_HOURS).collect(),
            valid_hours: (0..batch)
                .map(|b| inputs.datetimes(b)[frames..frames + steps].to_vec())
                .collect(),
            variables,
        }
    }
}

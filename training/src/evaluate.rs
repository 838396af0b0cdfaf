//! Evaluation: autoregressive forecasts over the test split, scored per channel and lead time with
//! latitude-weighted RMSE and ACC, for the model and for three baselines — persistence, the training-period
//! climatology, and (on the built-in atmosphere) the coarse physics model ("NWP").
//!
//! Mean scores follow WeatherBench (Rasp et al. 2020): the per-case RMSE averaged over cases. Every case's
//! RMSE is kept too (`errors.csv`): the error-correlation analysis needs the series, not only the mean.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use weatherlens_models::fused::Kernels;

use crate::atmosphere::{AtmosphereError, PhysicsBaseline};
use crate::config::DataSource;
use crate::dataset::{DatasetError, iso8601};
use crate::metrics::{weighted_acc, weighted_rmse};
use crate::normalise::{Climatology, NormaliseError};
use crate::restore::{RestoreError, Restored, restore};
use crate::trainer::CLIMATOLOGY_FILE;
use crate::windows::{FrameSource, Split, WindowConfig, WindowError, Windows};

pub const SCORECARD_CSV: &str = "scorecard.csv";
pub const ERRORS_CSV: &str = "errors.csv";

/// Names of the reference forecasts in scorecards.
pub const PERSISTENCE: &str = "persistence";
pub const CLIMATOLOGY: &str = "climatology";
pub const PHYSICS: &str = "physics";

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("test samples: {0}")]
    Windows(#[from] WindowError),
    #[error("climatology: {0}")]
    Climatology(#[from] NormaliseError),
    #[error("physics baseline: {0}")]
    Physics(#[from] AtmosphereError),
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error(
        "the test split has no forecast case of {lead_hours} h: check data.windows.test and the data's time range"
    )]
    NoCases { lead_hours: i64 },
}

/// One row of `scorecard.csv`: the mean over forecast cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    pub model: String,
    pub variable: String,
    pub lead_hours: i64,
    pub rmse: f64,
    pub acc: f64,
    pub n_cases: usize,
}

/// One row of `errors.csv`: one forecast case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRow {
    pub model: String,
    pub variable: String,
    pub lead_hours: i64,
    pub init_time: String,
    pub rmse: f64,
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The model's name in the tables (the run's name).
    pub model: String,
    pub scores: Vec<ScoreRow>,
    pub cases: Vec<CaseRow>,
    pub forecasts_per_second: f64,
}

impl Evaluation {
    /// The mean RMSE of `model` for `variable` at `lead_hours`, if scored.
    pub fn rmse(&self, model: &str, variable: &str, lead_hours: i64) -> Option<f64> {
        self.scores
            .iter()
            .find(|r| r.model == model && r.variable == variable && r.lead_hours == lead_hours)
            .map(|r| r.rmse)
    }

    /// Lead times scored, ascending.
    pub fn lead_hours(&self) -> Vec<i64> {
        let mut leads: Vec<i64> = self.scores.iter().map(|r| r.lead_hours).collect();
        leads.sort_unstable();
        leads.dedup();
        leads
    }

    /// Models scored, in table order (the model first, then the baselines).
    pub fn models(&self) -> Vec<String> {
        let mut models: Vec<String> = Vec::new();
        for row in &self.scores {
            if !models.contains(&row.model) {
                models.push(row.model.clone());
            }
        }
        models
    }
}

/// The forecast cases: test-split samples whose whole forecast lies in the split, `every_hours` apart.
fn cases(
    config: &WindowConfig,
    time_hours: &[i64],
    lead_steps: usize,
    every_hours: i64,
    max_cases: usize,
) -> Result<(Windows, Vec<usize>), WindowError> {
    let windows = Windows::new(
        &WindowConfig {
            lead_steps,
            ..config.clone()
        },
        time_hours,
    )?;
    let mut picked: Vec<usize> = Vec::new();
    for &anchor in windows.anchors(Split::Test) {
        let due = picked
            .last()
            .is_none_or(|&last| time_hours[anchor] - time_hours[last] >= every_hours);
        if due {
            picked.push(anchor);
        }
    }
    if max_cases > 0 {
        picked.truncate(max_cases);
    }
    Ok((windows, picked))
}

/// Evaluate the checkpoint in `checkpoint_dir` (a run folder or checkpoint folder) on its config's test split.
pub fn evaluate(
    checkpoint_dir: &Path,
    device: &Device,
    kernels: Kernels,
) -> Result<Evaluation, EvaluateError> {
    let Restored {
        checkpoint,
        state,
        dataset,
        graph,
        emulator,
    } = restore(checkpoint_dir, device, kernels)?;
    let config = &state.config;
    let channel_names: Vec<String> = dataset.channels.iter().map(|c| c.name.clone()).collect();
    // Static inputs (land-sea mask, orography) are not forecast: they are not scored.
    let is_static = state.normalisation.static_flags();
    let climatology = Climatology::load(
        &checkpoint
            .parent()
            .unwrap_or(Path::new("."))
            .join(CLIMATOLOGY_FILE),
        &channel_names,
    )?;
    let step_hours = config.data.windows.step_hours;
    let lead_steps = (config.evaluation.max_lead_hours / step_hours).max(1) as usize;
    let (windows, anchors) = cases(
        &config.data.windows,
        &dataset.time_hours,
        lead_steps,
        config.evaluation.init_every_hours,
        config.evaluation.max_cases,
    )?;
    if anchors.is_empty() {
        return Err(EvaluateError::NoCases {
            lead_hours: config.evaluation.max_lead_hours,
        });
    }
    let physics = match config.data.source {
        DataSource::Synthetic => Some(PhysicsBaseline::new(
            &config.data.synthetic.atmosphere.physics_baseline(),
        )?),
        DataSource::Netcdf => None,
    };

    let row_weights = graph.grid().latitude_weights();
    let n_lon = dataset.lon.len();
    let weights: Vec<f64> = (0..dataset.lat.len() * n_lon)
        .map(|p| row_weights[p / n_lon])
        .collect();
    let field_len = weights.len();
    let source: Arc<dyn FrameSource> = Arc::new(dataset);
    let model_name = config.name.clone();
    let mut cases_out = Vec::new();
    let mut acc_sums: std::collections::BTreeMap<(String, usize, usize), (f64, f64, usize)> =
        Default::default();
    let started = std::time::Instant::now();
    for &anchor in &anchors {
        let ([before, now], targets) = windows.sample_times(anchor);
        let mut inputs = source.read_frames(before..before + 1)?;
        let initial = source.read_frames(now..now + 1)?;
        inputs.extend_from_slice(&initial);
        let truth: Vec<Vec<f32>> = targets
            .iter()
            .map(|&t| source.read_frames(t..t + 1))
            .collect::<Result<_, _>>()?;
        let mut forecasts: Vec<(String, Vec<Vec<f32>>)> = vec![
            (
                model_name.clone(),
                emulator.forecast(&inputs, 1, lead_steps),
            ),
            (PERSISTENCE.to_string(), vec![initial.clone(); lead_steps]),
            (
                CLIMATOLOGY.to_string(),
                vec![climatology.mean.clone(); lead_steps],
            ),
        ];
        if let Some(physics) = &physics {
            let lat = &state.data.lat;
            let lon = &state.data.lon;
            forecasts.push((
                PHYSICS.to_string(),
                physics.forecast(&initial, lat, lon, lead_steps)?,
            ));
        }
        let init_time = iso8601(source.time_hours()[now]);
        for (name, frames) in &forecasts {
            for (k, (forecast, observed)) in frames.iter().zip(&truth).enumerate() {
                for (c, channel) in channel_names.iter().enumerate() {
                    if is_static.get(c).copied().unwrap_or(false) {
                        continue;
                    }
                    let span = c * field_len..(c + 1) * field_len;
                    let rmse =
                        weighted_rmse(&forecast[span.clone()], &observed[span.clone()], &weights);
                    let acc = weighted_acc(
                        &forecast[span.clone()],
                        &observed[span.clone()],
                        &climatology.mean[span],
                        &weights,
                    );
                    cases_out.push(CaseRow {
                        model: name.clone(),
                        variable: channel.clone(),
                        lead_hours: (k as i64 + 1) * step_hours,
                        init_time: init_time.clone(),
                        rmse,
                    });
                    let entry = acc_sums
                        .entry((name.clone(), c, k))
                        .or_insert((0.0, 0.0, 0));
                    entry.0 += rmse;
                    if acc.is_finite() {
                        entry.1 += acc;
                    }
                    entry.2 += 1;
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut model_order: Vec<String> =
        vec![model_name.clone(), PERSISTENCE.into(), CLIMATOLOGY.into()];
    if physics.is_some() {
        model_order.push(PHYSICS.into());
    }
    let mut scores = Vec::new();
    for name in &model_order {
        for (c, channel) in channel_names.iter().enumerate() {
            for k in 0..lead_steps {
                if let Some(&(rmse_sum, acc_sum, n)) = acc_sums.get(&(name.clone(), c, k)) {
                    scores.push(ScoreRow {
                        model: name.clone(),
                        variable: channel.clone(),
                        lead_hours: (k as i64 + 1) * step_hours,
                        rmse: rmse_sum / n as f64,
                        // Climatology's anomaly is zero: its ACC is undefined, reported as NaN.
                        acc: if name == CLIMATOLOGY {
                            f64::NAN
                        } else {
                            acc_sum / n as f64
                        },
                        n_cases: n,
                    });
                }
            }
        }
    }
    Ok(Evaluation {
        model: model_name,
        scores,
        cases: cases_out,
        forecasts_per_second: anchors.len() as f64 / seconds.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::weighted_rmse;

    /// Persistence scored on a field that moves by a known amount has the hand-computed RMSE.
    #[test]
    fn persistence_of_a_translated_field() {
        // A field f(lon) = sin(lon) on one latitude row of 8 points, translated eastward by one grid step
        // (45°) per time step. Persistence error after one step: sin(λ) − sin(λ − 45°); its mean square over
        // the full circle is 2 (1 − cos 45°) / 2 = 1 − cos 45°.
        let n = 8;
        let field = |shift: usize| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    ((i as f64 - shift as f64) * std::f64::consts::TAU / n as f64).sin() as f32
                })
                .collect()
        };
        let weights = vec![1.0; n];
        let rmse = weighted_rmse(&field(0), &field(1), &weights);
        let expected = (1.0 - std::f64::consts::FRAC_PI_4.cos()).sqrt();
        assert!((rmse - expected).abs() < 1e-6, "{rmse} vs {expected}");
        // Two steps: 1 − cos 90° = 1.
        assert!((weighted_rmse(&field(0), &field(2), &weights) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cases_are_spaced_and_inside_the_test_split() {
        let hours: Vec<i64> = (0..40).map(|i| 262_968 + 6 * i).collect(); // 2000-01-01 onwards
        let config: WindowConfig = toml::from_str(
            r#"
train = { start = "2000-01-01", end = "2000-01-04" }
val = { start = "2000-01-04", end = "2000-01-06" }
test = { start = "2000-01-06", end = "2000-01-11" }
"#,
        )
        .unwrap();
        let (windows, anchors) = cases(&config, &hours, 4, 12, 0).unwrap();
        // Test times: indices 20..40 (2000-01-06T00 .. 01-10T18). Anchor a needs a−1 and a+4 inside.
        assert_eq!(anchors, vec![21, 23, 25, 27, 29, 31, 33, 35]);
        let (inputs, targets) = windows.sample_times(35);
        assert_eq!(inputs, [34, 35]);
        assert_eq!(targets, vec![36, 37, 38, 39]);
        let (_, capped) = cases(&config, &hours, 4, 12, 3).unwrap();
        assert_eq!(capped.len(), 3);
    }
}

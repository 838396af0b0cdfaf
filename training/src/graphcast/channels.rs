//! The channel layout of a GraphCast task: which value of which variable each model input and output channel
//! holds, with the names the fixtures record (`2m_temperature[time=-6h]`, `geopotential[time=+0h,level=500]`,
//! `land_sea_mask`, `day_progress_cos[time=+6h]`).
//!
//! Inputs (graphcast `model_utils.dataset_to_stacked`, `graphcast.py` `_inputs_to_grid_node_features`): the
//! inputs block, then the forcings block, each in sorted variable order (Python string order). A variable's
//! channels flatten its non-(batch, lat, lon) dimensions in its own dimension order, time-major then level-minor
//! (levels in `pressure_levels` order). The inputs block holds every input variable at every input time — the
//! forcing variables that are inputs too (their input-time copies) — and the static fields once; the forcings
//! block holds the forcing variables at the target time.
//!
//! Outputs (`model_utils.stacked_to_dataset`): the targets in sorted order, atmospheric ones per level. A target
//! that is also an input is predicted as a residual over its last input (`normalization.InputsAndResiduals`).
//!
//! Which variables have levels and which are static is not in the task config: GraphCast reads it off the
//! data. Here it is GraphCast's own lists (`graphcast.py` `ALL_ATMOSPHERIC_VARS`, `STATIC_VARS`), which every
//! published task draws from.

use gc_names::{is_atmospheric, is_static};
use weatherlens_models::graphcast::GraphCastTaskConfig;

use super::error::GraphCastDataError;
use super::names as gc_names;
use super::stats::Statistics;

/// The time step of GraphCast's published models and of its example data, hours (`graphcast_demo.ipynb`,
/// `data_utils.extract_inputs_targets_forcings` lead times at 6 h).
pub const STEP_HOURS: i64 = 6;

/// One model input channel.
#[derive(Debug, Clone, PartialEq)]
pub struct InputChannel {
    /// e.g. `geopotential[time=-6h,level=500]`.
    pub name: String,
    /// GraphCast's variable name.
    pub variable: String,
    pub kind: InputKind,
    /// Pressure level in hPa, for atmospheric variables.
    pub level: Option<i64>,
    /// Normalisation: (x − mean) / stddev, in f32.
    pub mean: f32,
    pub stddev: f32,
}

/// Where an input channel's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A variable at input frame `frame` (0 = the oldest; the window's last frame is the initial time).
    Input { frame: usize },
    /// A field without time (`geopotential_at_surface`, `land_sea_mask`).
    Static,
    /// A forcing at the target time of the step.
    Forcing,
}

/// One model output channel and how it becomes a physical value.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputChannel {
    /// e.g. `geopotential[time=+6h,level=500]`.
    pub name: String,
    pub variable: String,
    pub level: Option<i64>,
    /// True when the target is also an input: prediction = output · scale + the last input frame; otherwise
    /// prediction = output · scale + offset.
    pub residual: bool,
    /// `diffs_stddev_by_level` (residual) or `stddev_by_level`.
    pub scale: f32,
    /// `mean_by_level` for direct targets, 0 for residual ones.
    pub offset: f32,
}

/// The input and output channels of a task with their statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelLayout {
    pub inputs: Vec<InputChannel>,
    pub outputs: Vec<OutputChannel>,
    /// Input frames: the input duration over [`STEP_HOURS`] (2 for GraphCast's "12h").
    pub input_frames: usize,
}

/// Hours of a pandas timedelta string as GraphCast's task configs write it ("12h", "12H", "0.5d", "1 days").
fn duration_hours(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let hours_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "h" | "hour" | "hours" | "hr" => 1.0,
        "d" | "day" | "days" => 24.0,
        "min" | "m" | "minute" | "minutes" | "t" => 1.0 / 60.0,
        "s" | "sec" | "second" | "seconds" => 1.0 / 3600.0,
        _ => return None,
    };
    Some(number * hours_per_unit)
}

/// `-6h`, `+0h`, `+6h`.
pub(crate) fn time_label(hours: i64) -> String {
    if hours < 0 {
        format!("{hours}h")
    } else {
        format!("+{hours}h")
    }
}

fn channel_name(variable: &str, time_hours: Option<i64>, level: Option<i64>) -> String {
    let mut parts = Vec::new();
    if let Some(hours) = time_hours {
        parts.push(format!("time={}", time_label(hours)));
    }
    if let Some(level) = level {
        parts.push(format!("level={level}"));
    }
    if parts.is_empty() {
        variable.to_string()
    } else {
        format!("{variable}[{}]", parts.join(","))
    }
}

/// Variables in Python's `sorted` order (by Unicode code point, which byte order of UTF-8 preserves).
fn sorted(names: &[String]) -> Vec<&str> {
    let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    names
}

impl ChannelLayout {
    /// Lays out `task`'s channels and looks up every channel's statistics.
    pub fn new(task: &GraphCastTaskConfig, stats: &Statistics) -> Result<Self, GraphCastDataError> {
        let duration = duration_hours(&task.input_duration).ok_or_else(|| {
            GraphCastDataError::Config(format!(
                "input_duration {:?} is not a duration such as \"12h\"",
                task.input_duration
            ))
        })?;
        let frames = duration / STEP_HOURS as f64;
        if frames < 1.0 || frames.fract() != 0.0 {
            return Err(GraphCastDataError::Config(format!(
                "input_duration {:?} is not a whole number of {STEP_HOURS} h steps",
                task.input_duration
            )));
        }
        let input_frames = frames as usize;
        if task.pressure_levels.is_empty()
            && task
                .input_variables
                .iter()
                .chain(&task.target_variables)
                .any(|v| is_atmospheric(v))
        {
            return Err(GraphCastDataError::Config(
                "atmospheric variables but no pressure_levels".into(),
            ));
        }
        let levels_of = |variable: &str| -> Vec<Option<i64>> {
            if is_atmospheric(variable) {
                task.pressure_levels.iter().map(|&l| Some(l)).collect()
            } else {
                vec![None]
            }
        };
        let mut inputs = Vec::new();
        let input = |variable: &str, kind: InputKind, time: Option<i64>, level: Option<i64>| {
            Ok::<_, GraphCastDataError>(InputChannel {
                name: channel_name(variable, time, level),
                variable: variable.to_string(),
                kind,
                level,
                mean: stats.mean.get(variable, level)?,
                stddev: stats.stddev.get(variable, level)?,
            })
        };
        for variable in sorted(&task.input_variables) {
            if is_static(variable) {
                inputs.push(input(variable, InputKind::Static, None, None)?);
                continue;
            }
            for frame in 0..input_frames {
                let hours = (frame as i64 + 1 - input_frames as i64) * STEP_HOURS;
                for level in levels_of(variable) {
                    inputs.push(input(
                        variable,
                        InputKind::Input { frame },
                        Some(hours),
                        level,
                    )?);
                }
            }
        }
        for variable in sorted(&task.forcing_variables) {
            for level in levels_of(variable) {
                inputs.push(input(
                    variable,
                    InputKind::Forcing,
                    Some(STEP_HOURS),
                    level,
                )?);
            }
        }
        let mut outputs = Vec::new();
        for variable in sorted(&task.target_variables) {
            let residual = task.input_variables.iter().any(|v| v == variable);
            for level in levels_of(variable) {
                let (scale, offset) = if residual {
                    (stats.diffs_stddev.get(variable, level)?, 0.0)
                } else {
                    (
                        stats.stddev.get(variable, level)?,
                        stats.mean.get(variable, level)?,
                    )
                };
                outputs.push(OutputChannel {
                    name: channel_name(variable, Some(STEP_HOURS), level),
                    variable: variable.to_string(),
                    level,
                    residual,
                    scale,
                    offset,
                });
            }
        }
        Ok(Self {
            inputs,
            outputs,
            input_frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_pandas_writes_them() {
        assert_eq!(duration_hours("12h"), Some(12.0));
        assert_eq!(duration_hours("12H"), Some(12.0));
        assert_eq!(duration_hours("1 days"), Some(24.0));
        assert_eq!(duration_hours("twelve"), None);
        assert_eq!(time_label(-6), "-6h");
        assert_eq!(time_label(0), "+0h");
        assert_eq!(
            channel_name("t", Some(6), Some(500)),
            "t[time=+6h,level=500]"
        );
    }
}

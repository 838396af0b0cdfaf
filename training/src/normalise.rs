//! Normalisation statistics and climatology of a training period.
//!
//! * [`NormalisationStats`]: per channel, the mean and standard deviation over every training time and grid point,
//!   and the standard deviation of the change over `diff_hours` (6 h by default, the model step). Inputs are
//!   normalised as `(x - mean) / std`; a model predicting increments scales them by `diff_std`, as GraphCast does
//!   (Lam et al. 2023, "Learning skillful medium-range global weather forecasting", section 3.3). Grid points
//!   count equally (no area weighting), as in GraphCast's per-level statistics.
//! * [`Climatology`]: the **time mean at each grid point** of each channel over the training period.
//!   WeatherBench's climatology is by day of year (and hour) over 30 years. With the few years WeatherLens trains
//!   on, a day-of-year mean rests on about `years × 4` six-hourly values per day and point, so its sampling noise
//!   (about `σ / √12` for three years) is comparable to real anomalies and would be scored as a forecast error. The
//!   time mean rests on thousands of values per point. Its cost: the seasonal cycle is part of the anomaly, so an
//!   anomaly correlation computed against it is higher than WeatherBench's day-of-year ACC and must be reported as
//!   such. [`Climatology::years_covered`] says how many years the mean spans; a value far from a whole number means
//!   some seasons weigh more than others.
//!
//! Zero spread is never divided by:
//!
//! * Static channels (the same field at every time: land-sea mask, surface geopotential; see
//!   [`find_static_channels`]) are model inputs, not prediction targets: they are normalised by their mean and
//!   std (by 1 where their std is 0, a field constant in space too), and their `diff_std` (0) is never used.
//! * A predicted channel whose `diff_hours` differences have zero spread (every point changes by the same amount,
//!   or an accumulation that resets every `diff_hours`) has its increments scaled by its std instead
//!   ([`ChannelNormalisation::increment_scale`]); training says so in its log.
//!
//! Both are saved as JSON; loading checks that the channel names are the ones expected.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{Channel, Dataset, DatasetError, Moments, Reader, iso8601};

/// Default interval of the differences whose spread scales increments: the 6-hour model step.
pub const DEFAULT_DIFF_HOURS: i64 = 6;
/// Hours in a mean Gregorian-ish year of 365.25 days, for [`Climatology::years_covered`].
const HOURS_PER_YEAR: f64 = 365.25 * 24.0;

/// Errors computing, saving or loading statistics.
#[derive(Debug, thiserror::Error)]
pub enum NormaliseError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not valid statistics JSON: {error}")]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{path}: statistics are for channels {found:?}, expected {expected:?}")]
    ChannelMismatch {
        path: PathBuf,
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("normalisation of channel `{channel}`: {detail}")]
    Degenerate { channel: String, detail: String },
    #[error("normalisation: {0}")]
    Input(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

/// The time span a statistic was computed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First and last valid time used, ISO 8601.
    pub start: String,
    pub end: String,
    /// Number of times used.
    pub count: usize,
}

/// Normalisation statistics of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelNormalisation {
    pub name: String,
    pub mean: f64,
    /// Population standard deviation over time and grid points.
    pub std: f64,
    /// Standard deviation of `x(t + diff_hours) - x(t)`.
    pub diff_std: f64,
    /// A static input: the same field at every time (never predicted; its zero `diff_std` is never used).
    #[serde(default, rename = "static", skip_serializing_if = "is_false")]
    pub is_static: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl ChannelNormalisation {
    /// The divisor of normalisation: `std`, or 1 for a static channel whose std is 0 (constant in space too).
    pub fn scale(&self) -> f64 {
        if self.std > 0.0 { self.std } else { 1.0 }
    }

    /// The physical size of one unit of the model's increment: `diff_std` (GraphCast), or the normalisation
    /// divisor [`Self::scale`] when the differences have zero spread.
    pub fn increment_scale(&self) -> f64 {
        if self.diff_std > 0.0 {
            self.diff_std
        } else {
            self.scale()
        }
    }
}

/// Per-channel normalisation statistics (small: stored in a checkpoint's `run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalisationStats {
    pub channels: Vec<ChannelNormalisation>,
    /// Interval of the differences behind `diff_std`.
    pub diff_hours: i64,
    pub period: Period,
}

/// What the climatology is; one kind for now (see the module documentation for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClimatologyKind {
    /// The mean over every time of the period, separately at each grid point.
    TimeMeanPerGridPoint,
}

/// Per-channel, per-grid-point mean over the training period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Climatology {
    pub kind: ClimatologyKind,
    pub channels: Vec<String>,
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
    pub period: Period,
    /// Span of the period in years of 365.25 days (count × step).
    pub years_covered: f64,
    /// [channel, lat, lon] row-major.
    pub mean: Vec<f32>,
}

impl NormalisationStats {
    /// Channel names in order.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name.clone()).collect()
    }

    /// [channel] means as f32, for the trainer's tensors.
    pub fn means(&self) -> Vec<f32> {
        self.channels.iter().map(|c| c.mean as f32).collect()
    }

    /// [channel] divisors of normalisation as f32: the standard deviations, 1 for a static channel whose std is
    /// 0 ([`ChannelNormalisation::scale`]).
    pub fn stds(&self) -> Vec<f32> {
        self.channels.iter().map(|c| c.scale() as f32).collect()
    }

    /// [channel] true for static channels (inputs only).
    pub fn static_flags(&self) -> Vec<bool> {
        self.channels.iter().map(|c| c.is_static).collect()
    }

    /// Number of channels the model predicts (all but the static ones).
    pub fn dynamic_count(&self) -> usize {
        self.channels.iter().filter(|c| !c.is_static).count()
    }

    /// The channels whose statistics differ from `fresh`'s, each with what changed.
    ///
    /// Tolerance: a mean or std differs when it moves by more than 1e-6 of the channel's std, a `diff_std` when it
    /// moves by more than 1e-6 of itself. Statistics of unchanged data recomputed are equal to rounding (1e-12 or
    /// less); a revision of a few times in a training period moves them by 1e-3 of the std or more.
    pub fn differences(&self, fresh: &Self) -> Vec<String> {
        const TOLERANCE: f64 = 1e-6;
        let mut changed = Vec::new();
        for old in &self.channels {
            let Some(new) = fresh.channels.iter().find(|c| c.name == old.name) else {
                changed.push(format!("{} (not in the data now)", old.name));
                continue;
            };
            let scale = old.scale().max(f64::MIN_POSITIVE);
            // NaN on either side counts as moved.
            let moved = |a: f64, b: f64, unit: f64| {
                (a - b).abs().partial_cmp(&(TOLERANCE * unit)) != Some(std::cmp::Ordering::Less)
                    && a != b
            };
            let mut what = Vec::new();
            if moved(old.mean, new.mean, scale) {
                what.push(format!("mean {} -> {}", old.mean, new.mean));
            }
            if moved(old.std, new.std, scale) {
                what.push(format!("std {} -> {}", old.std, new.std));
            }
            if moved(
                old.diff_std,
                new.diff_std,
                old.diff_std.abs().max(f64::MIN_POSITIVE),
            ) {
                what.push(format!("diff_std {} -> {}", old.diff_std, new.diff_std));
            }
            if old.is_static != new.is_static {
                what.push(format!("static {} -> {}", old.is_static, new.is_static));
            }
            if !what.is_empty() {
                changed.push(format!("{} ({})", old.name, what.join(", ")));
            }
        }
        for new in &fresh.channels {
            if !self.channels.iter().any(|c| c.name == new.name) {
                changed.push(format!("{} (new in the data)", new.name));
            }
        }
        changed
    }

    /// [channel] standard deviations of `diff_hours` differences as f32.
    pub fn diff_stds(&self) -> Vec<f32> {
        self.channels.iter().map(|c| c.diff_std as f32).collect()
    }

    /// [channel] sizes of one unit of the model's increment as f32 ([`ChannelNormalisation::increment_scale`]).
    pub fn increment_scales(&self) -> Vec<f32> {
        self.channels
            .iter()
            .map(|c| c.increment_scale() as f32)
            .collect()
    }

    /// Predicted channels whose differences have zero spread (their increments are scaled by their std).
    pub fn zero_spread_channels(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter(|c| !c.is_static && c.diff_std == 0.0)
            .map(|c| c.name.clone())
            .collect()
    }

    /// `(x - mean) / std` in place.
    ///
    /// frames: [.., channel, lat, lon] row-major with `field_len = lat × lon`.
    pub fn normalise(&self, frames: &mut [f32], field_len: usize) {
        self.map_fields(frames, field_len, |x, c| {
            ((f64::from(x) - c.mean) / c.scale()) as f32
        });
    }

    /// `x * std + mean` in place, the inverse of [`Self::normalise`].
    ///
    /// frames: [.., channel, lat, lon] row-major with `field_len = lat × lon`.
    pub fn denormalise(&self, frames: &mut [f32], field_len: usize) {
        self.map_fields(frames, field_len, |x, c| {
            (f64::from(x) * c.scale() + c.mean) as f32
        });
    }

    fn map_fields(
        &self,
        frames: &mut [f32],
        field_len: usize,
        f: impl Fn(f32, &ChannelNormalisation) -> f32,
    ) {
        let frame_len = field_len * self.channels.len();
        if frame_len == 0 {
            return;
        }
        for frame in frames.chunks_mut(frame_len) {
            for (field, channel) in frame.chunks_mut(field_len).zip(&self.channels) {
                field.iter_mut().for_each(|x| *x = f(*x, channel));
            }
        }
    }

    /// Checks that every statistic can be used: all finite, std and diff_std >= 0, and std > 0 for a predicted
    /// channel (a channel with std 0 is the same everywhere and at every time: static, or nothing to learn).
    pub fn validate(&self) -> Result<(), NormaliseError> {
        for c in &self.channels {
            let degenerate = |detail: String| NormaliseError::Degenerate {
                channel: c.name.clone(),
                detail,
            };
            let finite = c.mean.is_finite() && c.std.is_finite() && c.diff_std.is_finite();
            if !finite || c.std < 0.0 || c.diff_std < 0.0 || (!c.is_static && c.std <= 0.0) {
                return Err(degenerate(format!(
                    "mean {}, std {}, diff_std {}: std must be positive and all finite",
                    c.mean, c.std, c.diff_std
                )));
            }
        }
        Ok(())
    }

    /// Writes pretty JSON (temporary name, then rename).
    pub fn save(&self, path: &Path) -> Result<(), NormaliseError> {
        save_json(path, self)
    }

    /// Reads statistics saved by [`Self::save`] and checks they are for `expected_channels`, in that order.
    pub fn load(path: &Path, expected_channels: &[String]) -> Result<Self, NormaliseError> {
        let stats: Self = load_json(path)?;
        check_channels(path, expected_channels, &stats.channel_names())?;
        stats.validate().map_err(|e| NormaliseError::Invalid {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(stats)
    }
}

impl Climatology {
    /// Writes JSON (temporary name, then rename).
    pub fn save(&self, path: &Path) -> Result<(), NormaliseError> {
        save_json(path, self)
    }

    /// Reads a climatology saved by [`Self::save`], checking channel names and the size of `mean`.
    pub fn load(path: &Path, expected_channels: &[String]) -> Result<Self, NormaliseError> {
        let climatology: Self = load_json(path)?;
        check_channels(path, expected_channels, &climatology.channels)?;
        let expected_len =
            climatology.channels.len() * climatology.lat.len() * climatology.lon.len();
        if climatology.mean.len() != expected_len {
            return Err(NormaliseError::Invalid {
                path: path.to_path_buf(),
                detail: format!(
                    "mean has {} values, expected {expected_len}",
                    climatology.mean.len()
                ),
            });
        }
        Ok(climatology)
    }

    /// The mean field of channel `c`: [lat, lon].
    pub fn field(&self, c: usize) -> &[f32] {
        let n = self.lat.len() * self.lon.len();
        &self.mean[c * n..(c + 1) * n]
    }
}

fn check_channels(
    path: &Path,
    expected: &[String],
    found: &[String],
) -> Result<(), NormaliseError> {
    if expected == found {
        Ok(())
    } else {
        Err(NormaliseError::ChannelMismatch {
            path: path.to_path_buf(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}

fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NormaliseError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| NormaliseError::Json {
        path: path.to_path_buf(),
        error: source,
    })?;
    weatherlens_models::files::write_atomic(path, text.as_bytes()).map_err(|e| NormaliseError::Io {
        path: e.path,
        error: std::io::Error::new(e.source.kind(), format!("{}: {}", e.action, e.source)),
    })
}

fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, NormaliseError> {
    let text = std::fs::read_to_string(path).map_err(|source| NormaliseError::Io {
        path: path.to_path_buf(),
        error: source,
    })?;
    serde_json::from_str(&text).map_err(|source| NormaliseError::Json {
        path: path.to_path_buf(),
        error: source,
    })
}

/// Accumulates statistics over consecutive time chunks, so that a training period larger than memory can be
/// streamed from a [`Reader`].
#[derive(Debug, Clone)]
pub struct NormalisationAccumulator {
    channels: Vec<Channel>,
    lat: Vec<f64>,
    lon: Vec<f64>,
    time_step_hours: i64,
    diff_hours: i64,
    values: Vec<Moments>,
    diffs: Vec<Moments>,
    /// Channels marked static ([`Self::mark_static`]).
    is_static: Vec<bool>,
    /// The last `diff_hours / time_step_hours` frames, oldest first.
    history: VecDeque<Vec<f32>>,
    /// [channel, lat, lon] sums and counts for the climatology.
    point_sum: Vec<f64>,
    point_count: Vec<u64>,
    first_time: Option<i64>,
    last_time: Option<i64>,
    time_count: usize,
}

impl NormalisationAccumulator {
    /// Starts accumulating for data on this grid with this time step.
    ///
    /// `diff_hours` must be a positive multiple of `time_step_hours`.
    pub fn new(
        channels: &[Channel],
        lat: &[f64],
        lon: &[f64],
        time_step_hours: i64,
        diff_hours: i64,
    ) -> Result<Self, NormaliseError> {
        if time_step_hours <= 0 || diff_hours <= 0 || diff_hours % time_step_hours != 0 {
            return Err(NormaliseError::Input(format!(
                "differences over {diff_hours} h need a positive multiple of the {time_step_hours} h time step"
            )));
        }
        let frame_len = channels.len() * lat.len() * lon.len();
        Ok(Self {
            channels: channels.to_vec(),
            lat: lat.to_vec(),
            lon: lon.to_vec(),
            time_step_hours,
            diff_hours,
            values: vec![Moments::default(); channels.len()],
            diffs: vec![Moments::default(); channels.len()],
            is_static: vec![false; channels.len()],
            history: VecDeque::new(),
            point_sum: vec![0.0; frame_len],
            point_count: vec![0; frame_len],
            first_time: None,
            last_time: None,
            time_count: 0,
        })
    }

    /// Marks channels `names` as static inputs (see the module documentation); unknown names are an error.
    pub fn mark_static(&mut self, names: &[String]) -> Result<(), NormaliseError> {
        for name in names {
            let index = self
                .channels
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| {
                    NormaliseError::Input(format!("no channel `{name}` to mark static"))
                })?;
            self.is_static[index] = true;
        }
        Ok(())
    }

    /// Adds the next chunk; its first time must follow the previous chunk's last time by one step.
    pub fn push(&mut self, chunk: &Dataset) -> Result<(), NormaliseError> {
        let same_layout = chunk
            .channels
            .iter()
            .map(|c| &c.name)
            .eq(self.channels.iter().map(|c| &c.name))
            && chunk.lat == self.lat
            && chunk.lon == self.lon;
        if !same_layout {
            return Err(NormaliseError::Input(
                "chunk has other channels or another grid".to_string(),
            ));
        }
        chunk.check_shape().map_err(NormaliseError::Input)?;
        let field_len = self.lat.len() * self.lon.len();
        let frame_len = self.point_sum.len();
        let lag = (self.diff_hours / self.time_step_hours) as usize;
        for (k, &time) in chunk.time_hours.iter().enumerate() {
            if let Some(last) = self.last_time
                && time != last + self.time_step_hours
            {
                return Err(NormaliseError::Input(format!(
                    "time {} does not follow {} by {} h",
                    iso8601(time),
                    iso8601(last),
                    self.time_step_hours
                )));
            }
            let frame = &chunk.data[k * frame_len..(k + 1) * frame_len];
            for c in 0..self.channels.len() {
                let field = &frame[c * field_len..(c + 1) * field_len];
                self.values[c].push_finite(field.iter().map(|&v| f64::from(v)));
                if self.history.len() == lag {
                    let before = &self.history[0][c * field_len..(c + 1) * field_len];
                    self.diffs[c].push_finite(
                        field
                            .iter()
                            .zip(before)
                            .map(|(&a, &b)| f64::from(a) - f64::from(b)),
                    );
                }
            }
            for ((sum, count), &v) in self
                .point_sum
                .iter_mut()
                .zip(&mut self.point_count)
                .zip(frame)
            {
                if v.is_finite() {
                    *sum += f64::from(v);
                    *count += 1;
                }
            }
            self.history.push_back(frame.to_vec());
            if self.history.len() > lag {
                self.history.pop_front();
            }
            self.first_time.get_or_insert(time);
            self.last_time = Some(time);
            self.time_count += 1;
        }
        Ok(())
    }

    /// The statistics and climatology of everything pushed.
    pub fn finish(self) -> Result<(NormalisationStats, Climatology), NormaliseError> {
        let (Some(first), Some(last)) = (self.first_time, self.last_time) else {
            return Err(NormaliseError::Input("no times were pushed".to_string()));
        };
        let period = Period {
            start: iso8601(first),
            end: iso8601(last),
            count: self.time_count,
        };
        let channels = self
            .channels
            .iter()
            .zip(self.values.iter().zip(&self.diffs))
            .zip(&self.is_static)
            .map(|((channel, (values, diffs)), &is_static)| {
                let missing = |what: &str| NormaliseError::Degenerate {
                    channel: channel.name.clone(),
                    detail: format!(
                        "no {what} (too few times for differences over {} h?)",
                        self.diff_hours
                    ),
                };
                Ok(ChannelNormalisation {
                    name: channel.name.clone(),
                    mean: values.mean().ok_or_else(|| missing("values"))?,
                    std: values.std().ok_or_else(|| missing("values"))?,
                    // A static field's differences are 0 by definition, with or without pairs to show it.
                    diff_std: match diffs.std() {
                        Some(diff_std) => diff_std,
                        None if is_static => 0.0,
                        None => return Err(missing("differences")),
                    },
                    is_static,
                })
            })
            .collect::<Result<Vec<_>, NormaliseError>>()?;
        let stats = NormalisationStats {
            channels,
            diff_hours: self.diff_hours,
            period: period.clone(),
        };
        stats.validate()?;
        let mean = self
            .point_sum
            .iter()
            .zip(&self.point_count)
            .map(|(&sum, &count)| {
                if count == 0 {
                    f32::NAN
                } else {
                    (sum / count as f64) as f32
                }
            })
            .collect();
        let climatology = Climatology {
            kind: ClimatologyKind::TimeMeanPerGridPoint,
            channels: self.channels.iter().map(|c| c.name.clone()).collect(),
            lat: self.lat,
            lon: self.lon,
            years_covered: (self.time_count as i64 * self.time_step_hours) as f64 / HOURS_PER_YEAR,
            period,
            mean,
        };
        Ok((stats, climatology))
    }
}

/// The channels of `dataset` that are the same field at every time (bit for bit, NaN where NaN): static inputs
/// such as a land-sea mask or surface geopotential. Nothing is static in a dataset of fewer than two times.
pub fn find_static_channels(dataset: &Dataset) -> Vec<String> {
    let field_len = dataset.lat.len() * dataset.lon.len();
    if dataset.time_count() < 2 || field_len == 0 || dataset.check_shape().is_err() {
        return Vec::new();
    }
    let first = dataset.frame(0);
    dataset
        .channels
        .iter()
        .enumerate()
        .filter(|&(c, _)| {
            let span = c * field_len..(c + 1) * field_len;
            (1..dataset.time_count()).all(|t| {
                dataset.frame(t)[span.clone()]
                    .iter()
                    .zip(&first[span.clone()])
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            })
        })
        .map(|(_, channel)| channel.name.clone())
        .collect()
}

/// Statistics of a whole in-memory dataset (which must have evenly spaced times), every channel a prediction
/// target.
pub fn compute_from_dataset(
    dataset: &Dataset,
    diff_hours: i64,
) -> Result<(NormalisationStats, Climatology), NormaliseError> {
    compute_statistics(dataset, diff_hours, &[])
}

/// Statistics of a whole in-memory dataset (which must have evenly spaced times) with channels
/// `static_channels` marked static (inputs only).
pub fn compute_statistics(
    dataset: &Dataset,
    diff_hours: i64,
    static_channels: &[String],
) -> Result<(NormalisationStats, Climatology), NormaliseError> {
    let step = crate::dataset::uniform_step_hours(&dataset.time_hours)
        .map_err(|(index, step, first)| {
            NormaliseError::Input(format!(
                "uneven time step at index {index}: {step} h after {first} h"
            ))
        })?
        .unwrap_or(diff_hours);
    let mut accumulator = NormalisationAccumulator::new(
        &dataset.channels,
        &dataset.lat,
        &dataset.lon,
        step,
        diff_hours,
    )?;
    accumulator.mark_static(static_channels)?;
    accumulator.push(dataset)?;
    accumulator.finish()
}

/// Statistics of times `times` of a file, streamed `times_per_chunk` times at a time; channels stored without a
/// time axis are static (time-constant fields stored with one are found by [`find_static_channels`] on data in
/// memory).
pub fn compute_from_reader(
    reader: &Reader,
    times: Range<usize>,
    diff_hours: i64,
    times_per_chunk: usize,
) -> Result<(NormalisationStats, Climatology), NormaliseError> {
    let step = reader.time_step_hours().unwrap_or(diff_hours);
    let mut accumulator = NormalisationAccumulator::new(
        reader.channels(),
        reader.lat(),
        reader.lon(),
        step,
        diff_hours,
    )?;
    let stored_static: Vec<String> = reader
        .channels()
        .iter()
        .zip(reader.stored_static())
        .filter(|(_, is_static)| *is_static)
        .map(|(channel, _)| channel.name.clone())
        .collect();
    accumulator.mark_static(&stored_static)?;
    let chunk = times_per_chunk.max(1);
    for start in times.clone().step_by(chunk) {
        accumulator.push(&reader.read_times(start..(start + chunk).min(times.end))?)?;
    }
    accumulator.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> Channel {
        Channel {
            name: name.to_string(),
            variable: name.to_string(),
            level: None,
            units: String::new(),
        }
    }

    /// Two channels on a 1 × 2 grid, times 0, 6, 12, 18 h.
    ///
    /// a: t0 [1, 3], t1 [2, 4], t2 [4, 6], t3 [7, 9]
    /// b: constant 5 except b(t3) = [5, 13]
    fn tiny() -> Dataset {
        let data = vec![
            1.0, 3.0, 5.0, 5.0, //
            2.0, 4.0, 5.0, 5.0, //
            4.0, 6.0, 5.0, 5.0, //
            7.0, 9.0, 5.0, 13.0,
        ];
        Dataset {
            channels: vec![channel("a"), channel("b")],
            lat: vec![0.0],
            lon: vec![0.0, 180.0],
            time_hours: vec![0, 6, 12, 18],
            data,
        }
    }

    #[test]
    fn statistics_match_hand_computation() {
        let (stats, climatology) = compute_from_dataset(&tiny(), 6).unwrap();
        // a: values 1,3,2,4,4,6,7,9 -> mean 36/8 = 4.5; squared deviations 12.25+2.25+6.25+0.25+0.25+2.25+6.25+20.25
        //    = 50 -> std sqrt(50/8) = 2.5. 6-h differences: 1,1,2,2,3,3 -> mean 2, var (1+1+0+0+1+1)/6 = 2/3.
        let a = &stats.channels[0];
        assert!((a.mean - 4.5).abs() < 1e-12);
        assert!((a.std - 2.5).abs() < 1e-12);
        assert!((a.diff_std - (2.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        // b: 5 x7 and 13 -> mean 6, var (7*1 + 49)/8 = 7 -> std sqrt 7; differences 0,0,0,0,0,8 -> mean 4/3,
        //    var = 64/6 - 16/9 = 80/9.
        let b = &stats.channels[1];
        assert!((b.mean - 6.0).abs() < 1e-12);
        assert!((b.std - 7.0_f64.sqrt()).abs() < 1e-12);
        assert!((b.diff_std - (80.0_f64 / 9.0).sqrt()).abs() < 1e-12);
        // Climatology: per-point time means. a: (1+2+4+7)/4 = 3.5, (3+4+6+9)/4 = 5.5; b: 5, 7.
        assert_eq!(climatology.mean, vec![3.5, 5.5, 5.0, 7.0]);
        assert_eq!(climatology.period.count, 4);
        assert_eq!(stats.period.start, "1970-01-01T00:00:00Z");
        assert_eq!(stats.period.end, "1970-01-01T18:00:00Z");
    }

    #[test]
    fn twelve_hour_differences_skip_a_step() {
        let (stats, _) = compute_from_dataset(&tiny(), 12).unwrap();
        // a: 12-h differences 3,3,5,5 -> mean 4, var 1 -> std 1.
        assert!((stats.channels[0].diff_std - 1.0).abs() < 1e-12);
        assert!(compute_from_dataset(&tiny(), 9).is_err());
    }

    #[test]
    fn chunked_accumulation_equals_one_pass() {
        let whole = tiny();
        let mut accumulator =
            NormalisationAccumulator::new(&whole.channels, &whole.lat, &whole.lon, 6, 6).unwrap();
        for range in [0..1, 1..3, 3..4] {
            let n = whole.frame_len();
            let chunk = Dataset {
                time_hours: whole.time_hours[range.clone()].to_vec(),
                data: whole.data[range.start * n..range.end * n].to_vec(),
                ..whole.clone()
            };
            accumulator.push(&chunk).unwrap();
        }
        let (chunked, _) = accumulator.finish().unwrap();
        let (single, _) = compute_from_dataset(&whole, 6).unwrap();
        for (a, b) in chunked.channels.iter().zip(&single.channels) {
            assert!((a.mean - b.mean).abs() < 1e-12 && (a.std - b.std).abs() < 1e-12);
            assert!((a.diff_std - b.diff_std).abs() < 1e-12);
        }
        // A gap in time is refused.
        let mut gap =
            NormalisationAccumulator::new(&whole.channels, &whole.lat, &whole.lon, 6, 6).unwrap();
        gap.push(&whole).unwrap();
        assert!(gap.push(&whole).is_err());
    }

    #[test]
    fn normalise_then_denormalise_is_identity_and_uses_the_stats() {
        let (stats, _) = compute_from_dataset(&tiny(), 6).unwrap();
        let mut frames = tiny().data;
        stats.normalise(&mut frames, 2);
        // a(t0) = 1 -> (1 - 4.5) / 2.5 = -1.4
        assert!((frames[0] + 1.4).abs() < 1e-6);
        stats.denormalise(&mut frames, 2);
        for (x, y) in frames.iter().zip(&tiny().data) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    fn saved_stats_load_only_for_the_same_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("norm.json");
        let (stats, climatology) = compute_from_dataset(&tiny(), 6).unwrap();
        stats.save(&path).unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(NormalisationStats::load(&path, &names).unwrap(), stats);
        let swapped = vec!["b".to_string(), "a".to_string()];
        assert!(matches!(
            NormalisationStats::load(&path, &swapped),
            Err(NormaliseError::ChannelMismatch { .. })
        ));
        let clim_path = dir.path().join("clim.json");
        climatology.save(&clim_path).unwrap();
        assert_eq!(Climatology::load(&clim_path, &names).unwrap(), climatology);
        std::fs::write(&path, "{\"channels\": [], \"extra\": 1}").unwrap();
        assert!(matches!(
            NormalisationStats::load(&path, &names),
            Err(NormaliseError::Json { .. })
        ));
        assert!(matches!(
            NormalisationStats::load(&dir.path().join("absent.json"), &names),
            Err(NormaliseError::Io { .. })
        ));
    }

    #[test]
    fn constant_channel_is_degenerate() {
        let mut constant = tiny();
        constant
            .data
            .iter_mut()
            .skip(2)
            .step_by(4)
            .for_each(|v| *v = 5.0);
        constant
            .data
            .iter_mut()
            .skip(3)
            .step_by(4)
            .for_each(|v| *v = 5.0);
        assert!(matches!(
            compute_from_dataset(&constant, 6),
            Err(NormaliseError::Degenerate { .. })
        ));
    }

    #[test]
    fn static_channels_are_found_and_never_divided_by_zero_spread() {
        // b constant in time and space, c constant in time only; a varies.
        let mut data = Vec::new();
        for t in 0..4 {
            data.extend([t as f32, 1.0 + t as f32, 5.0, 5.0, 1.0, 3.0]);
        }
        let dataset = Dataset {
            channels: vec![channel("a"), channel("b"), channel("c")],
            lat: vec![0.0],
            lon: vec![0.0, 180.0],
            time_hours: vec![0, 6, 12, 18],
            data,
        };
        let found = find_static_channels(&dataset);
        assert_eq!(found, ["b", "c"]);
        // Unmarked, the constant channel is degenerate; marked static, it is an input with scale 1.
        assert!(matches!(
            compute_from_dataset(&dataset, 6),
            Err(NormaliseError::Degenerate { .. })
        ));
        let (stats, _) = compute_statistics(&dataset, 6, &found).unwrap();
        let b = &stats.channels[1];
        assert!(b.is_static && b.std == 0.0 && b.diff_std == 0.0 && b.scale() == 1.0);
        let c = &stats.channels[2];
        assert!(c.is_static && (c.std - 1.0).abs() < 1e-12 && c.scale() == c.std);
        assert_eq!(stats.static_flags(), [false, true, true]);
        assert_eq!(stats.dynamic_count(), 1);
        let mut frames = dataset.data.clone();
        stats.normalise(&mut frames, 2);
        assert!(frames.iter().all(|v| v.is_finite()));
        assert_eq!(&frames[2..4], &[0.0, 0.0], "b - mean, divided by 1");
        // Saved with the flag, loaded back; a stats file without flags (older runs) loads as all predicted.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("norm.json");
        stats.save(&path).unwrap();
        let names = stats.channel_names();
        assert_eq!(NormalisationStats::load(&path, &names).unwrap(), stats);
        let (plain, _) = compute_from_dataset(&tiny(), 6).unwrap();
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("static"), "{text}");
        // a's 6-hour differences are all 1 (zero spread, though it changes): scaled by its std, never by 0.
        let a = &stats.channels[0];
        assert_eq!(a.diff_std, 0.0);
        assert_eq!(a.increment_scale(), a.std);
        assert_eq!(stats.zero_spread_channels(), ["a"]);
    }

    #[test]
    fn differences_name_the_channels_whose_statistics_moved() {
        let (stats, _) = compute_from_dataset(&tiny(), 6).unwrap();
        assert!(stats.differences(&stats.clone()).is_empty());
        let mut moved = stats.clone();
        // 1e-7 of a's std (2.5): within tolerance; 1e-5: named.
        moved.channels[0].mean += 2.5e-7;
        assert!(stats.differences(&moved).is_empty());
        moved.channels[0].mean += 2.5e-5;
        moved.channels[1].diff_std *= 1.0 + 1e-3;
        let changed = stats.differences(&moved);
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(changed[0].starts_with("a (mean") && changed[1].starts_with("b (diff_std"));
        moved.channels.pop();
        assert!(stats.differences(&moved)[1].contains("b (not in the data now)"));
    }

    /// `tests/fixtures/layouts/revision/`: the training period's statistics match the fixture script's, and a
    /// revised download changes t2m's, not z500's.
    #[test]
    fn statistics_of_a_training_period_and_of_its_revision() {
        let layouts =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/layouts");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(layouts.join("expected.json")).unwrap())
                .unwrap();
        let training_stats = |version: &str| {
            let dataset = Reader::open(&[layouts.join(format!("revision/era5_{version}.nc"))], &[])
                .unwrap()
                .read_times(0..12)
                .unwrap();
            let (stats, _) =
                compute_statistics(&dataset, 6, &find_static_channels(&dataset)).unwrap();
            let want =
                &expected["fixtures"][format!("revision/era5_{version}.nc")]["training_stats"];
            for c in &stats.channels {
                for (figure, value) in [("mean", c.mean), ("std", c.std), ("diff_std", c.diff_std)]
                {
                    let right = want[&c.name][figure].as_f64().unwrap();
                    assert!(
                        (value - right).abs() < 1e-6 * right.abs().max(1.0),
                        "{version} {} {figure}",
                        c.name
                    );
                }
            }
            stats
        };
        let (v1, v2) = (training_stats("v1"), training_stats("v2"));
        let changed = v1.differences(&v2);
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(
            changed[0].starts_with("t2m (mean 284.859375 -> 285.109375"),
            "{changed:?}"
        );
    }

    /// `tests/fixtures/layouts/static/hourly_accum_reset.nc`: tp changes every hour but not over 6 hours; it is
    /// not static, and its zero 6-hour spread is never divided by.
    #[test]
    fn an_accumulation_reset_every_six_hours_is_not_static() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/layouts/static/hourly_accum_reset.nc");
        let dataset = Reader::open(&[path], &[]).unwrap().read_all().unwrap();
        let found = find_static_channels(&dataset);
        assert!(found.is_empty(), "{found:?}");
        let (stats, _) = compute_statistics(&dataset, 6, &found).unwrap();
        assert_eq!(stats.zero_spread_channels(), ["tp"]);
        let tp = &stats.channels[1];
        assert!(tp.std > 0.0 && tp.increment_scale() == tp.std);
    }
}

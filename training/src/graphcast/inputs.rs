//! Reading a GraphCast input file: the grid as stored, every batch member's valid times, the initial
//! conditions, the static fields and the forcings the file holds.
//!
//! Two layouts, dimensions found by name:
//! * GraphCast's example batch: `(batch, time, level, lat, lon)`, `time` a timedelta, `datetime(batch, time)`
//!   the valid times (each member its own dates), static fields on `(lat, lon)`;
//! * the ERA5 layouts the readers know (`time` or `valid_time`, `level` or `pressure_level`, `latitude` /
//!   `lat`, ...): one member, variables by GraphCast name or ERA5 short name ([`super::names`]).
//!
//! Latitude may run either way and longitude over 0..360 or −180..180: the grid is returned as stored, its
//! nodes lat-major in the file's order (GraphCast's `graphcast.py` uses the file's coordinates as they are).
//! The times must be 6 h apart; the first `input_frames` (2) are the initial conditions and lead k (from 1)
//! takes its forcings from time `input_frames + k − 1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weatherlens_models::grid::LatLonGrid;

use super::channels::STEP_HOURS;
use super::error::GraphCastDataError;
use super::names::{self, PRECIPITATION_6H, TOA};
use super::{progress, solar};
use crate::dataset::{
    self, DatasetError, GriddedSource, SpaceAxes, batch_datetimes, iso8601, open_source,
    resolve_space, resolve_time,
};

/// What the task asks of a file.
pub(crate) struct Wanted<'a> {
    /// Inputs carried from step to step (inputs that are neither static nor forcings), sorted.
    pub states: &'a [String],
    pub statics: &'a [String],
    /// Forcing variables other than the generated progress features.
    pub file_forcings: &'a [String],
    pub levels: &'a [i64],
    pub input_frames: usize,
    /// The file's time (in time order) read as its first: earlier times are left out.
    pub first_time: usize,
}

/// A GraphCast input file, read for a task.
#[derive(Debug, Clone)]
pub struct GraphCastInputs {
    path: PathBuf,
    grid: LatLonGrid,
    /// The stored coordinates as the f32 GraphCast computes forcings from.
    lat_f32: Vec<f32>,
    lon_f32: Vec<f32>,
    batch: usize,
    /// Valid times, hours since 1970-01-01T00:00:00Z: [batch][time].
    datetimes: Vec<Vec<i64>>,
    input_frames: usize,
    /// Per carried input variable: [batch, input frame, level (1 for surface), grid point] in physical units.
    pub(crate) states: BTreeMap<String, Vec<f32>>,
    /// Per static field: [batch, grid point].
    pub(crate) statics: BTreeMap<String, Vec<f32>>,
    /// Forcings stored in the file: [batch, time, grid point].
    stored_forcings: BTreeMap<String, Vec<f32>>,
}

impl GraphCastInputs {
    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The grid as stored: grid point `i_lat · n_lon + i_lon` in the file's latitude and longitude order.
    pub fn grid(&self) -> &LatLonGrid {
        &self.grid
    }

    /// Number of batch members (1 for an ERA5-layout file).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of times in the file: `input_frames` initial conditions, then one per lead.
    pub fn times(&self) -> usize {
        self.datetimes.first().map_or(0, Vec::len)
    }

    /// Steps the file's times allow (one per time after the initial conditions).
    pub fn max_steps(&self) -> usize {
        self.times().saturating_sub(self.input_frames)
    }

    /// Valid times of member `b`, hours since 1970-01-01T00:00:00Z.
    pub fn datetimes(&self, b: usize) -> &[i64] {
        &self.datetimes[b]
    }

    /// The initial time (the last input frame) of every member, hours since 1970-01-01T00:00:00Z.
    pub fn initial_times(&self) -> Vec<i64> {
        self.datetimes
            .iter()
            .map(|d| d[self.input_frames - 1])
            .collect()
    }

    /// The physical value of forcing `name` at file time `time` for every member: [batch, grid point].
    ///
    /// Year and day progress are always computed from the valid times; stored forcings (TOA radiation) are
    /// taken from the file, and TOA radiation is computed as GraphCast computes it when the file lacks it.
    pub fn forcing(&self, name: &str, time: usize) -> Result<Vec<f32>, GraphCastDataError> {
        let points = self.grid.num_points();
        if time >= self.times() {
            return Err(GraphCastDataError::TooFewTimes {
                path: self.path.clone(),
                steps: time + 1 - self.input_frames,
                inputs: self.input_frames,
                needed: time + 1,
                times: self.times(),
            });
        }
        if let Some(values) = self.stored_forcings.get(name) {
            let times = self.times();
            return Ok((0..self.batch)
                .flat_map(|b| {
                    let at = (b * times + time) * points;
                    values[at..at + points].iter().copied()
                })
                .collect());
        }
        let mut out = Vec::with_capacity(self.batch * points);
        for member in &self.datetimes {
            let seconds = member[time] * 3600;
            if name == TOA {
                out.extend(solar::toa_incident_solar_radiation(
                    seconds,
                    &self.lat_f32,
                    &self.lon_f32,
                ));
                continue;
            }
            let row: Vec<f32> = self
                .lon_f32
                .iter()
                .map(|&lon| progress::forcing(name, seconds, lon))
                .collect::<Option<_>>()
                .ok_or_else(|| GraphCastDataError::MissingVariable {
                    path: self.path.clone(),
                    variable: name.to_string(),
                    tried: names::stored_names(name)
                        .iter()
                        .map(|n| n.to_string())
                        .collect(),
                    available: Vec::new(),
                })?;
            for _ in 0..self.lat_f32.len() {
                out.extend_from_slice(&row);
            }
        }
        Ok(out)
    }

    /// Reads what `wanted` asks for from `path`.
    pub(crate) fn read(path: &Path, wanted: &Wanted) -> Result<Self, GraphCastDataError> {
        let source = open_source(path)?;
        let mut file = File::open(source.as_ref())?;
        file.start_at(wanted.first_time)?;
        let points = file.space.lat.len() * file.space.lon.len();
        let times = file.datetimes[0].len();
        if times < wanted.input_frames {
            return Err(GraphCastDataError::TooFewTimes {
                path: path.to_path_buf(),
                steps: 0,
                inputs: wanted.input_frames,
                needed: wanted.input_frames,
                times,
            });
        }
        let mut states = BTreeMap::new();
        for name in wanted.states {
            let levelled = names::is_atmospheric(name);
            let stored = file.locate(name, levelled)?;
            if name == PRECIPITATION_6H && stored.name == "tp" {
                tracing::warn!(
                    "{}: `tp` read as GraphCast's total_precipitation_6hr: it must hold 6-hour accumulations \
                     (ERA5 files hold 1-hour ones; sum six of them)",
                    path.display()
                );
            }
            let level_indices = file.level_indices(&stored, levelled.then_some(wanted.levels))?;
            if !stored.roles.contains(&Role::Time) {
                return Err(file.bad(&stored.name, "has no time axis".into()));
            }
            let mut values =
                vec![0.0_f32; file.batch * wanted.input_frames * level_indices.len() * points];
            for frame in 0..wanted.input_frames {
                for (l, &level) in level_indices.iter().enumerate() {
                    let field = file.read_field(&stored, Some(frame), level)?;
                    for b in 0..file.batch {
                        let at =
                            ((b * wanted.input_frames + frame) * level_indices.len() + l) * points;
                        values[at..at + points]
                            .copy_from_slice(&field[b * points..(b + 1) * points]);
                    }
                }
            }
            states.insert(name.clone(), values);
        }
        let mut statics = BTreeMap::new();
        for name in wanted.statics {
            let stored = file.locate(name, false)?;
            // A static field stored with a time axis (ERA5 downloads) is taken at the first input time.
            let time = stored.roles.contains(&Role::Time).then_some(0);
            statics.insert(name.clone(), file.read_field(&stored, time, None)?);
        }
        let mut stored_forcings = BTreeMap::new();
        for name in wanted.file_forcings {
            let stored = match file.locate(name, false) {
                Ok(stored) => stored,
                // GraphCast computes TOA radiation when the file lacks it (data_utils.py `add_tisr_var`).
                Err(GraphCastDataError::MissingVariable { .. }) if name == TOA => continue,
                Err(error) => return Err(error),
            };
            if !stored.roles.contains(&Role::Time) {
                return Err(file.bad(&stored.name, "a forcing without a time axis".into()));
            }
            let mut values = vec![0.0_f32; file.batch * times * points];
            for t in 0..times {
                let field = file.read_field(&stored, Some(t), None)?;
                for b in 0..file.batch {
                    let at = (b * times + t) * points;
                    values[at..at + points].copy_from_slice(&field[b * points..(b + 1) * points]);
                }
            }
            stored_forcings.insert(name.clone(), values);
        }
        let grid = LatLonGrid::from_coordinates(file.space.lat.clone(), file.space.lon.clone())
            .map_err(|e| GraphCastDataError::Grid {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            lat_f32: file.space.lat.iter().map(|&x| x as f32).collect(),
            lon_f32: file.space.lon.iter().map(|&x| x as f32).collect(),
            grid,
            batch: file.batch,
            datetimes: file.datetimes,
            input_frames: wanted.input_frames,
            states,
            statics,
            stored_forcings,
        })
    }
}

/// What a dimension of a stored variable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Batch,
    Time,
    Level,
    Lat,
    Lon,
    /// Any other dimension of length 1 (index 0).
    One,
}

/// A stored variable and the role of each of its dimensions.
struct Stored {
    name: String,
    roles: Vec<Role>,
    shape: Vec<usize>,
}

/// An open input file with its axes resolved.
struct File<'a> {
    source: &'a dyn GriddedSource,
    space: SpaceAxes,
    /// GraphCast's `batch` dimension, when the file has one.
    batch_dim: Option<String>,
    time_dim: String,
    /// Index along `time_dim` of each time, in time order.
    time_index: Vec<usize>,
    batch: usize,
    /// Valid times: [batch][time].
    datetimes: Vec<Vec<i64>>,
}

impl<'a> File<'a> {
    fn open(source: &'a dyn GriddedSource) -> Result<Self, GraphCastDataError> {
        let path = source.path();
        let space = resolve_space(source)?;
        let times_error = |detail: String| GraphCastDataError::Times {
            path: path.to_path_buf(),
            detail,
        };
        let (batch_dim, time_dim, time_index, datetimes) = match batch_datetimes(source)? {
            Some(batch) => {
                let index = (0..batch.times()).collect();
                let datetimes = (0..batch.members)
                    .map(|b| batch.member(b).to_vec())
                    .collect();
                (Some(batch.batch_dim), batch.time_dim, index, datetimes)
            }
            None => {
                let (axis, _) =
                    resolve_time(source)?.ok_or_else(|| DatasetError::MissingVariable {
                        path: path.to_path_buf(),
                        variable: "time, valid_time or datetime".into(),
                        available: source.variables().iter().map(|v| v.name.clone()).collect(),
                    })?;
                let [dim] = axis.dims.as_slice() else {
                    return Err(times_error(format!(
                        "valid times along ({}): GraphCast reads one series of times; write one forecast per file",
                        axis.dims.join(", ")
                    )));
                };
                let index = axis.index.iter().map(|i| i[0]).collect();
                (None, dim.clone(), index, vec![axis.hours])
            }
        };
        for (b, member) in datetimes.iter().enumerate() {
            if let Some(w) = member.windows(2).find(|w| w[1] - w[0] != STEP_HOURS) {
                return Err(times_error(format!(
                    "{}time step {} h from {} to {}: GraphCast steps {STEP_HOURS} h (keep every {STEP_HOURS}th \
                     hour, e.g. xarray `ds.sel(time=ds.time.dt.hour % {STEP_HOURS} == 0)`)",
                    if batch_dim.is_some() {
                        format!("batch member {b}: ")
                    } else {
                        String::new()
                    },
                    w[1] - w[0],
                    iso8601(w[0]),
                    iso8601(w[1])
                )));
            }
        }
        Ok(Self {
            source,
            space,
            batch_dim,
            time_dim,
            time_index,
            batch: datetimes.len(),
            datetimes,
        })
    }

    /// Leaves out the times before `first` (in time order): the file is read as if it began there.
    fn start_at(&mut self, first: usize) -> Result<(), GraphCastDataError> {
        let times = self.time_index.len();
        if first >= times {
            return Err(GraphCastDataError::Times {
                path: self.source.path().to_path_buf(),
                detail: format!("no time {first} (from 0): the file has {times} times"),
            });
        }
        self.time_index.drain(..first);
        for member in &mut self.datetimes {
            member.drain(..first);
        }
        Ok(())
    }

    fn bad(&self, variable: &str, detail: String) -> GraphCastDataError {
        GraphCastDataError::BadVariable {
            path: self.source.path().to_path_buf(),
            variable: variable.to_string(),
            detail,
        }
    }

    /// The stored variable holding GraphCast's `name` (by its own name or an ERA5 short name), with a level axis
    /// when `levelled` (ERA5's `z` is `geopotential` on levels and `geopotential_at_surface` without).
    fn locate(&self, name: &str, levelled: bool) -> Result<Stored, GraphCastDataError> {
        let level_dim = self.space.level.as_ref().and_then(|l| l.dim.as_deref());
        let tried = names::stored_names(name);
        let info = tried
            .iter()
            .filter_map(|candidate| self.source.variable(candidate))
            .find(|info| {
                let has_level = level_dim.is_some_and(|d| info.dims.iter().any(|x| x == d));
                info.name == name || has_level == levelled
            })
            .ok_or_else(|| GraphCastDataError::MissingVariable {
                path: self.source.path().to_path_buf(),
                variable: name.to_string(),
                tried: tried.iter().map(|n| format!("`{n}`")).collect(),
                available: self
                    .source
                    .variables()
                    .iter()
                    .map(|v| v.name.clone())
                    .collect(),
            })?;
        let mut roles = Vec::with_capacity(info.dims.len());
        for (dim, &len) in info.dims.iter().zip(&info.shape) {
            let role = if *dim == self.space.lat_dim {
                Role::Lat
            } else if *dim == self.space.lon_dim {
                Role::Lon
            } else if *dim == self.time_dim {
                Role::Time
            } else if Some(dim.as_str()) == self.batch_dim.as_deref() {
                Role::Batch
            } else if Some(dim.as_str()) == level_dim && (levelled || len != 1) {
                Role::Level
            } else if len == 1 {
                Role::One
            } else {
                return Err(self.bad(
                    &info.name,
                    format!(
                        "dimension `{dim}` (length {len}) is none of batch, time, level, latitude, longitude"
                    ),
                ));
            };
            roles.push(role);
        }
        let has = |role| roles.contains(&role);
        if !has(Role::Lat) || !has(Role::Lon) {
            return Err(self.bad(
                &info.name,
                format!(
                    "dimensions ({}) lack latitude or longitude",
                    info.dims.join(", ")
                ),
            ));
        }
        if has(Role::Level) != levelled {
            return Err(self.bad(
                &info.name,
                if levelled {
                    "GraphCast's variable is on pressure levels but this one has no level axis"
                        .into()
                } else {
                    "has a level axis but GraphCast's variable is a single-level one".into()
                },
            ));
        }
        Ok(Stored {
            name: info.name.clone(),
            roles,
            shape: info.shape.clone(),
        })
    }

    /// Indices along the file's level axis of `levels` (by value), or `[None]` for a single-level variable.
    fn level_indices(
        &self,
        stored: &Stored,
        levels: Option<&[i64]>,
    ) -> Result<Vec<Option<usize>>, GraphCastDataError> {
        let Some(levels) = levels else {
            return Ok(vec![None]);
        };
        let available = self
            .space
            .level
            .as_ref()
            .map(|l| l.values_hpa.clone())
            .unwrap_or_default();
        levels
            .iter()
            .map(|&level| {
                available
                    .iter()
                    .position(|&v| (v - level as f64).abs() < 1e-6)
                    .map(Some)
                    .ok_or_else(|| GraphCastDataError::MissingLevel {
                        path: self.source.path().to_path_buf(),
                        variable: stored.name.clone(),
                        level,
                        available: available.clone(),
                    })
            })
            .collect()
    }

    /// One field of every member at time `time` (position in time order; `None` for a variable without time)
    /// and level index `level`: [batch, lat, lon] in file order, members broadcast when the variable has no
    /// batch axis.
    fn read_field(
        &self,
        stored: &Stored,
        time: Option<usize>,
        level: Option<usize>,
    ) -> Result<Vec<f32>, GraphCastDataError> {
        let (n_lat, n_lon) = (self.space.lat.len(), self.space.lon.len());
        let mut start = vec![0; stored.roles.len()];
        let mut count = vec![1; stored.roles.len()];
        for (d, role) in stored.roles.iter().enumerate() {
            match role {
                Role::Batch => count[d] = stored.shape[d],
                Role::Time => start[d] = self.time_index[time.unwrap_or(0)],
                Role::Level => start[d] = level.unwrap_or(0),
                Role::Lat => count[d] = n_lat,
                Role::Lon => count[d] = n_lon,
                Role::One => {}
            }
        }
        let raw = dataset::read_decoded(self.source, &stored.name, &start, &count)?;
        let mut strides = vec![1_usize; count.len()];
        for d in (0..count.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * count[d + 1];
        }
        let stride = |role: Role| {
            stored
                .roles
                .iter()
                .position(|&r| r == role)
                .map_or(0, |d| strides[d])
        };
        let (batch_stride, lat_stride, lon_stride) =
            (stride(Role::Batch), stride(Role::Lat), stride(Role::Lon));
        if let Some(d) = stored.roles.iter().position(|&r| r == Role::Batch)
            && stored.shape[d] != self.batch
        {
            return Err(self.bad(
                &stored.name,
                format!(
                    "{} batch members but `datetime` has {}",
                    stored.shape[d], self.batch
                ),
            ));
        }
        let mut out = Vec::with_capacity(self.batch * n_lat * n_lon);
        for b in 0..self.batch {
            for i in 0..n_lat {
                for j in 0..n_lon {
                    out.push(raw[b * batch_stride + i * lat_stride + j * lon_stride] as f32);
                }
            }
        }
        Ok(out)
    }
}

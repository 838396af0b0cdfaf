//! [`Reader`]: the one decoding path over every [`GriddedSource`] — files of any supported format (one file, a
//! folder of files forming one series, or a Zarr store) opened as one dataset and read by time chunks.
//!
//! Opening reads coordinates and attributes only: each file's axes are resolved by name ([`super::axes`]), files
//! holding the same variables on consecutive times are joined into one series, and the selection is resolved to
//! channels. [`Reader::read_times`] then reads the fields of a range of times, so a dataset larger than memory can
//! be streamed chunk by chunk. Every channel comes out unpacked ([`super::decode::Decoding`]), in the stored axes'
//! meaning whatever their order, with `expver` slots merged, in [`Orientation`]'s normalised grid (latitude
//! 90 -> -90, longitude ascending in [0, 360)), and checked: a missing value (fill, `missing_value`, netCDF
//! default fill, NaN) or an infinity is an error that says where it is — or NaN, for statistics.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::axes::{AxisChoices, AxisRole, Convention, FileAxes, resolve_axes};
use super::cf_time;
use super::error::DatasetError;
use super::grid::Orientation;
use super::selection::{ChannelPlan, SourcePlan, resolve_selection};
pub use super::selection::{VariableSelection, channel_name};
use super::series::join_series;
use super::source::{GriddedSource, SourceFormat, input_files, open_source};
use super::{Channel, Dataset};

/// What to do with missing values (fill, `missing_value`, NaN) and infinities while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MissingPolicy {
    /// Stop with [`DatasetError::MissingData`] saying where (training data must be complete).
    Error,
    /// Store NaN (statistics skip them).
    AsNan,
}

/// One or more files (or one Zarr store) on one grid and one time series, opened for chunked reading.
pub struct Reader {
    sources: Vec<Box<dyn GriddedSource>>,
    axes: Vec<FileAxes>,
    channels: Vec<Channel>,
    plans: Vec<ChannelPlan>,
    /// Per file group: for each series time, (source, index into that source's time axis).
    series_maps: Vec<Vec<(usize, usize)>>,
    convention: Convention,
    /// Coordinates in file order, for error messages.
    file_lat: Vec<f64>,
    file_lon: Vec<f64>,
    orientation: Orientation,
    time_hours: Vec<i64>,
    time_step_hours: Option<i64>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("paths", &self.paths())
            .field(
                "channels",
                &self.channels.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("times", &self.time_hours.len())
            .field("lat", &self.orientation.lat.len())
            .field("lon", &self.orientation.lon.len())
            .finish()
    }
}

impl Reader {
    /// Opens files (any supported format) and resolves `selection` to channels (see [`Self::open_with`]).
    pub fn open(
        paths: &[impl AsRef<Path>],
        selection: &[VariableSelection],
    ) -> Result<Self, DatasetError> {
        Self::open_with(paths, selection, &AxisChoices::default())
    }

    /// Opens `path` — a file, a Zarr store, or a folder whose NetCDF files (at any depth) form one dataset.
    pub fn open_path(
        path: &Path,
        selection: &[VariableSelection],
        choices: &AxisChoices,
    ) -> Result<Self, DatasetError> {
        Self::open_with(&input_files(path)?, selection, choices)
    }

    /// Opens NetCDF-4, netCDF-3 files or Zarr stores and resolves `selection` to channels, reading coordinates
    /// and attributes only.
    ///
    /// Files holding the same variables on consecutive, non-overlapping times (WeatherBench's one file per
    /// variable per year) are one series; every set of files must cover the same times, on the same grid. An
    /// empty `selection` takes every field (variable on the latitude and longitude axes) of every file, with all
    /// its levels. The series must be non-empty and evenly spaced.
    pub fn open_with(
        paths: &[impl AsRef<Path>],
        selection: &[VariableSelection],
        choices: &AxisChoices,
    ) -> Result<Self, DatasetError> {
        let Some(first_path) = paths.first().map(|p| p.as_ref().to_path_buf()) else {
            return Err(DatasetError::MissingFile {
                path: PathBuf::new(),
            });
        };
        let sources = paths
            .iter()
            .map(|p| open_source(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let axes = sources
            .iter()
            .map(|s| resolve_axes(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        for (source, file_axes) in sources.iter().zip(&axes).skip(1) {
            if file_axes.lat != axes[0].lat || file_axes.lon != axes[0].lon {
                return Err(DatasetError::GridMismatch {
                    path: source.path().to_path_buf(),
                    other: first_path.clone(),
                    detail: "different latitudes or longitudes".to_string(),
                });
            }
        }
        if axes.iter().all(|a| a.time.is_none()) {
            return Err(DatasetError::MissingVariable {
                path: first_path,
                variable: super::axes::TIME_NAMES.join(" or "),
                available: sources[0]
                    .variables()
                    .iter()
                    .map(|v| v.name.clone())
                    .collect(),
            });
        }
        let reference = &axes[0];
        let orientation = Orientation::from_file_coordinates(&reference.lat, &reference.lon)
            .map_err(|e| DatasetError::BadCoordinate {
                path: first_path.clone(),
                coordinate: format!("{}/{}", reference.lat_name, reference.lon_name),
                detail: e.to_string(),
            })?;
        if let Some(change) = orientation.describe() {
            tracing::info!("{}: {change}", first_path.display());
        }

        // Files holding the same fields form a group; a group with time is one series.
        let fields: Vec<Vec<String>> = sources
            .iter()
            .zip(&axes)
            .map(|(source, file_axes)| {
                source
                    .variables()
                    .iter()
                    .filter(|v| file_axes.is_field(v))
                    .map(|v| v.name.clone())
                    .collect()
            })
            .collect();
        let mut groups: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
        for (s, names) in fields.iter().enumerate() {
            let mut key = names.clone();
            key.sort();
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(s),
                None => groups.push((key, vec![s])),
            }
        }
        let mut series_maps = Vec::with_capacity(groups.len());
        let mut series: Option<(Vec<i64>, usize)> = None;
        for (g, (_, members)) in groups.iter().enumerate() {
            let timed = members.iter().filter(|&&s| axes[s].time.is_some()).count();
            if timed == 0 {
                series_maps.push(Vec::new());
                continue;
            }
            if timed != members.len() {
                let untimed = members.iter().find(|&&s| axes[s].time.is_none());
                return Err(DatasetError::GridMismatch {
                    path: untimed.map_or(first_path.clone(), |&s| sources[s].path().to_path_buf()),
                    other: sources[members[0]].path().to_path_buf(),
                    detail: "the same variables, one file with a time axis and one without"
                        .to_string(),
                });
            }
            let (hours, map) = join_series(&sources, &axes, members)?;
            match &series {
                None => series = Some((hours, g)),
                Some((reference_hours, reference_group)) if *reference_hours != hours => {
                    let describe = |h: &[i64]| match (h.first(), h.last()) {
                        (Some(&a), Some(&b)) => format!(
                            "{} times {} .. {}",
                            h.len(),
                            cf_time::iso8601(a),
                            cf_time::iso8601(b)
                        ),
                        _ => "no times".to_string(),
                    };
                    return Err(DatasetError::GridMismatch {
                        path: sources[members[0]].path().to_path_buf(),
                        other: sources[groups[*reference_group].1[0]].path().to_path_buf(),
                        detail: format!(
                            "different times ({} against {})",
                            describe(&hours),
                            describe(reference_hours)
                        ),
                    });
                }
                Some(_) => {}
            }
            series_maps.push(map);
        }
        let Some((time_hours, series_group)) = series else {
            return Err(DatasetError::MissingVariable {
                path: first_path,
                variable: super::axes::TIME_NAMES.join(" or "),
                available: Vec::new(),
            });
        };
        let series_path = sources[groups[series_group].1[0]].path().to_path_buf();
        let time_step_hours = cf_time::uniform_step_hours(&time_hours).map_err(
            |(index, step_hours, first_step_hours)| DatasetError::NonUniformTimeStep {
                path: series_path.clone(),
                index,
                step_hours,
                first_step_hours,
            },
        )?;

        let wanted = if selection.is_empty() {
            // "Every field" must not quietly mean "every field that could be read": a variable the file lists
            // but cannot be read (corrupt metadata, a codec this build lacks) is an error naming it.
            for source in &sources {
                for variable in source.variables() {
                    source.check_readable(&variable.name)?;
                }
            }
            let mut every: Vec<VariableSelection> = Vec::new();
            for names in &fields {
                for name in names {
                    if !every.iter().any(|w| &w.variable == name) {
                        every.push(VariableSelection::new(name, &[]));
                    }
                }
            }
            every
        } else {
            selection.to_vec()
        };
        if wanted.is_empty() {
            let names: Vec<String> = sources
                .iter()
                .flat_map(|s| s.variables().iter().map(|v| v.name.clone()))
                .collect();
            return Err(DatasetError::NoFields {
                path: first_path,
                detail: format!(
                    "no variable has both {} and {} axes (variables: {})",
                    reference.lat_dim,
                    reference.lon_dim,
                    names.join(", ")
                ),
            });
        }
        let mut channels: Vec<Channel> = Vec::new();
        let mut plans = Vec::new();
        for choice in &wanted {
            for (channel, plan) in resolve_selection(&sources, &axes, &groups, choice, choices)? {
                if channels.iter().any(|c| c.name == channel.name) {
                    return Err(DatasetError::InvalidDataset {
                        path: first_path.clone(),
                        detail: format!("reading: channel `{}` is selected twice", channel.name),
                    });
                }
                channels.push(channel);
                plans.push(plan);
            }
        }
        Ok(Self {
            convention: reference.convention,
            file_lat: reference.lat.clone(),
            file_lon: reference.lon.clone(),
            sources,
            axes,
            channels,
            plans,
            series_maps,
            orientation,
            time_hours,
            time_step_hours,
        })
    }

    pub fn paths(&self) -> Vec<&Path> {
        self.sources.iter().map(|s| s.path()).collect()
    }

    /// The stored format of each file read.
    pub fn formats(&self) -> Vec<SourceFormat> {
        self.sources.iter().map(|s| s.format()).collect()
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// For each channel: true when its variable has no time axis (the same field at every time).
    pub fn stored_static(&self) -> Vec<bool> {
        self.plans.iter().map(|p| p.is_static).collect()
    }

    /// For each channel: the stored variable it is read from.
    pub fn stored_variables(&self) -> Vec<&str> {
        self.plans.iter().map(|p| p.variable.as_str()).collect()
    }

    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// Latitudes of the data returned, 90 -> -90.
    pub fn lat(&self) -> &[f64] {
        &self.orientation.lat
    }

    /// Longitudes of the data returned, ascending in [0, 360).
    pub fn lon(&self) -> &[f64] {
        &self.orientation.lon
    }

    /// How the files' grid was reoriented (see [`Orientation::describe`]).
    pub fn orientation(&self) -> &Orientation {
        &self.orientation
    }

    /// Valid times, hours since 1970-01-01T00:00:00Z.
    pub fn time_hours(&self) -> &[i64] {
        &self.time_hours
    }

    /// The time step in hours; `None` for data with one time.
    pub fn time_step_hours(&self) -> Option<i64> {
        self.time_step_hours
    }

    /// Values in one time slice: channels × lat × lon.
    pub fn frame_len(&self) -> usize {
        self.channels.len() * self.orientation.lat.len() * self.orientation.lon.len()
    }

    /// Reads times `times` (indices along the series) of every channel.
    ///
    /// Returns a [`Dataset`] whose `data` is [times, channel, lat, lon].
    pub fn read_times(&self, times: Range<usize>) -> Result<Dataset, DatasetError> {
        self.read_times_with(times, MissingPolicy::Error)
    }

    /// Reads every time: only for data that fits in memory; see [`Self::chunks`] otherwise.
    pub fn read_all(&self) -> Result<Dataset, DatasetError> {
        self.read_times(0..self.time_hours.len())
    }

    /// Consecutive chunks of at most `times_per_chunk` times covering the whole time axis.
    pub fn chunks(
        &self,
        times_per_chunk: usize,
    ) -> impl Iterator<Item = Result<Dataset, DatasetError>> + '_ {
        let step = times_per_chunk.max(1);
        (0..self.time_hours.len()).step_by(step).map(move |start| {
            let end = (start + step).min(self.time_hours.len());
            self.read_times(start..end)
        })
    }

    pub(crate) fn read_times_with(
        &self,
        times: Range<usize>,
        policy: MissingPolicy,
    ) -> Result<Dataset, DatasetError> {
        let count = self.time_hours.len();
        if times.start > times.end || times.end > count {
            return Err(DatasetError::TimeRangeOutOfBounds {
                path: self.sources[0].path().to_path_buf(),
                start: times.start,
                end: times.end,
                count,
            });
        }
        let field_len = self.file_lat.len() * self.file_lon.len();
        let n_channels = self.channels.len();
        let mut data = vec![0.0_f32; times.len() * n_channels * field_len];
        let mut oriented = vec![0.0_f64; field_len];
        let mut store = |t: usize, c: usize, field: &[f64]| {
            self.orientation.apply(field, &mut oriented);
            let offset = ((t - times.start) * n_channels + c) * field_len;
            for (out, &value) in data[offset..offset + field_len].iter_mut().zip(&oriented) {
                *out = value as f32;
            }
        };
        for (c, plan) in self.plans.iter().enumerate() {
            if times.is_empty() {
                break;
            }
            if plan.is_static {
                let (s, source_plan) = plan
                    .per_source
                    .iter()
                    .enumerate()
                    .find_map(|(s, p)| p.as_ref().map(|p| (s, p)))
                    .ok_or_else(|| self.no_source(plan))?;
                let field =
                    self.read_fields(plan, s, source_plan, &[], 1, &[times.start], policy)?;
                for t in times.clone() {
                    store(t, c, &field);
                }
                continue;
            }
            let map = &self.series_maps[plan.group];
            let mut t = times.start;
            while t < times.end {
                let (s, k) = map[t];
                let time_axis = self.axes[s]
                    .time
                    .as_ref()
                    .ok_or_else(|| self.no_source(plan))?;
                let first_index = &time_axis.index[k];
                // Extend the run while the next times are the next entries of the same single time dimension.
                let mut run = 1;
                if first_index.len() == 1 {
                    while t + run < times.end {
                        let (s_next, k_next) = map[t + run];
                        let consecutive = s_next == s
                            && time_axis.index.get(k_next).map(|i| i[0])
                                == Some(first_index[0] + run);
                        if !consecutive {
                            break;
                        }
                        run += 1;
                    }
                }
                let source_plan = plan.per_source[s]
                    .as_ref()
                    .ok_or_else(|| self.no_source(plan))?;
                let series_times: Vec<usize> = (t..t + run).collect();
                let fields = self.read_fields(
                    plan,
                    s,
                    source_plan,
                    first_index,
                    run,
                    &series_times,
                    policy,
                )?;
                for (r, field) in fields.chunks_exact(field_len).enumerate() {
                    store(t + r, c, field);
                }
                t += run;
            }
        }
        Ok(Dataset {
            channels: self.channels.clone(),
            lat: self.orientation.lat.clone(),
            lon: self.orientation.lon.clone(),
            time_hours: self.time_hours[times].to_vec(),
            data,
        })
    }

    fn no_source(&self, plan: &ChannelPlan) -> DatasetError {
        DatasetError::InvalidDataset {
            path: self.sources[0].path().to_path_buf(),
            detail: format!(
                "reading: no file holds `{}` at the times asked",
                plan.variable
            ),
        }
    }

    /// Reads `run` consecutive fields of a channel from source `s`, starting at `time_index` along the source's
    /// time dimensions (empty for a static field), decoded into [run, lat, lon] in file order.
    #[allow(clippy::too_many_arguments)]
    fn read_fields(
        &self,
        plan: &ChannelPlan,
        s: usize,
        source_plan: &SourcePlan,
        time_index: &[usize],
        run: usize,
        series_times: &[usize],
        policy: MissingPolicy,
    ) -> Result<Vec<f64>, DatasetError> {
        let source = self.sources[s].as_ref();
        let info = source.require(&plan.variable)?;
        let (n_lat, n_lon) = (self.file_lat.len(), self.file_lon.len());
        let roles = &source_plan.roles;
        let mut start = vec![0; roles.len()];
        let mut count = vec![1; roles.len()];
        for (d, role) in roles.iter().enumerate() {
            match role {
                AxisRole::Time(i) => {
                    start[d] = time_index[*i];
                    count[d] = if time_index.len() == 1 { run } else { 1 };
                }
                AxisRole::Level | AxisRole::Member | AxisRole::Batch => {
                    start[d] = source_plan.fixed[d];
                }
                AxisRole::Expver => count[d] = info.shape[d],
                AxisRole::Lat => count[d] = n_lat,
                AxisRole::Lon => count[d] = n_lon,
            }
        }
        let raw = source.read(&plan.variable, &start, &count)?;
        if raw.len() != count.iter().product::<usize>() {
            return Err(DatasetError::InvalidDataset {
                path: source.path().to_path_buf(),
                detail: format!(
                    "reading `{}`: {} values for a box of {count:?}",
                    plan.variable,
                    raw.len()
                ),
            });
        }
        let mut strides = vec![1_usize; count.len()];
        for d in (0..count.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * count[d + 1];
        }
        let position = |role: AxisRole| roles.iter().position(|&r| r == role);
        let time_stride = roles
            .iter()
            .position(|r| matches!(r, AxisRole::Time(_)))
            .map_or(0, |d| strides[d]);
        let lat_stride = position(AxisRole::Lat).map_or(0, |d| strides[d]);
        let lon_stride = position(AxisRole::Lon).map_or(0, |d| strides[d]);
        let expver = position(AxisRole::Expver).map(|d| (count[d], strides[d]));
        let decoding = &source_plan.decoding;
        let file_time_index = |r: usize| -> usize {
            match time_index {
                [single] => single + r,
                _ => self.series_maps[plan.group]
                    .get(series_times[r])
                    .map_or(0, |&(_, k)| k),
            }
        };
        let field_len = n_lat * n_lon;
        // Fields stored (.., lat, lon) are contiguous and decoded in one pass; any other order by strides.
        let contiguous = lon_stride == 1 && lat_stride == n_lon;
        let mut fields = Vec::with_capacity(run * field_len);
        for r in 0..run {
            let time_hours = self.time_hours[series_times[r.min(series_times.len() - 1)]];
            let mut base = r * time_stride;
            if let Some((slots, stride)) = expver {
                let holding: Vec<usize> = (0..slots)
                    .filter(|&e| {
                        let at = base + e * stride;
                        (0..n_lat).any(|i| {
                            (0..n_lon).any(|j| {
                                decoding
                                    .classify(raw[at + i * lat_stride + j * lon_stride])
                                    .is_none()
                            })
                        })
                    })
                    .collect();
                if holding.len() > 1 {
                    return Err(DatasetError::ExpverOverlap {
                        path: source.path().to_path_buf(),
                        variable: plan.variable.clone(),
                        time_hours,
                        slots: holding
                            .iter()
                            .map(|&e| {
                                source_plan
                                    .expver_labels
                                    .get(e)
                                    .map_or_else(|| format!("slot {e}"), |l| format!("expver {l}"))
                            })
                            .collect(),
                    });
                }
                base += holding.first().copied().unwrap_or(0) * stride;
            }
            // The field, row-major [lat, lon] in file order; the first unusable value stops reading with
            // MissingPolicy::Error.
            let start = fields.len();
            let mut bad: Option<(usize, &'static str)> = None;
            let mut push = |n: usize, value: f64| match decoding.decode(value) {
                Ok(physical) => fields.push(physical),
                Err(what) => {
                    fields.push(f64::NAN);
                    if policy == MissingPolicy::Error && bad.is_none() {
                        bad = Some((n, what));
                    }
                }
            };
            if contiguous {
                for (n, &value) in raw[base..base + field_len].iter().enumerate() {
                    push(n, value);
                }
            } else {
                for i in 0..n_lat {
                    for j in 0..n_lon {
                        push(i * n_lon + j, raw[base + i * lat_stride + j * lon_stride]);
                    }
                }
            }
            debug_assert_eq!(fields.len() - start, field_len);
            if let Some((n, what)) = bad {
                return Err(DatasetError::MissingData {
                    path: source.path().to_path_buf(),
                    variable: plan.variable.clone(),
                    level: plan.level,
                    time_index: file_time_index(r),
                    time_hours,
                    lat: self.file_lat[n / n_lon],
                    lon: self.file_lon[n % n_lon],
                    what,
                });
            }
        }
        Ok(fields)
    }
}

impl crate::windows::FrameSource for Reader {
    fn time_hours(&self) -> &[i64] {
        Reader::time_hours(self)
    }
    fn frame_len(&self) -> usize {
        Reader::frame_len(self)
    }
    fn read_frames(&self, times: Range<usize>) -> Result<Vec<f32>, DatasetError> {
        Ok(self.read_times(times)?.data)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture_path;
    use super::*;

    /// Value of channel `c` at (time k, row i, column j) of a dataset.
    fn at(dataset: &Dataset, k: usize, c: usize, i: usize, j: usize) -> f32 {
        let (n_lat, n_lon) = (dataset.lat.len(), dataset.lon.len());
        dataset.frame(k)[(c * n_lat + i) * n_lon + j]
    }

    #[test]
    fn old_era5_packed_ints_decode_to_the_script_values() {
        let reader = Reader::open(
            &[fixture_path("era5_old_packed.nc")],
            &[
                VariableSelection::new("z", &[]),
                VariableSelection::new("t2m", &[]),
            ],
        )
        .unwrap();
        assert_eq!(reader.convention(), Convention::Era5Cds);
        let names: Vec<&str> = reader.channels().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z500", "z850", "t2m"]);
        assert_eq!(reader.channels()[0].units, "m**2 s**-2");
        assert_eq!(reader.channels()[1].level, Some(850.0));
        assert_eq!(reader.time_hours(), &[78_888, 78_894, 78_900]);
        assert_eq!(reader.time_step_hours(), Some(6));
        assert!(reader.orientation().is_identity());
        let dataset = reader.read_all().unwrap();
        assert_eq!(dataset.lat, vec![90.0, 0.0, -90.0]);
        assert_eq!(dataset.lon, vec![0.0, 90.0, 180.0, 270.0]);
        for k in 0..3 {
            for i in 0..3 {
                for j in 0..4 {
                    for l in 0..2 {
                        let raw = 1000 * k * k + 100 * l + 10 * i + j;
                        assert_eq!(
                            at(&dataset, k, l, i, j),
                            50_000.0 + 0.5 * raw as f32,
                            "z k{k} l{l} i{i} j{j}"
                        );
                    }
                    let raw = 100 * k + 10 * i + j;
                    assert!((at(&dataset, k, 2, i, j) - (250.0 + 0.01 * raw as f32)).abs() < 1e-4);
                }
            }
        }
        // The script's worked example: z500 at (k=2, i=1, j=3) = 52006.5.
        assert_eq!(at(&dataset, 2, 0, 1, 3), 52_006.5);
    }

    #[test]
    fn new_era5_names_ascending_latitude_and_signed_longitude_are_normalised() {
        let reader = Reader::open(
            &[fixture_path("era5_new_names.nc")],
            &[
                VariableSelection::new("t", &[500.0, 850.0]),
                VariableSelection::new("u10", &[]),
            ],
        )
        .unwrap();
        assert_eq!(reader.convention(), Convention::Era5CdsNew);
        assert!(reader.orientation().lat_reversed && reader.orientation().lon_rewrapped);
        let dataset = reader.read_all().unwrap();
        let names: Vec<&str> = dataset.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["t500", "t850", "u10"]);
        assert_eq!(dataset.time_hours, vec![473_352, 473_358, 473_364]);
        assert_eq!(dataset.lat, vec![45.0, -45.0]);
        assert_eq!(dataset.lon, vec![0.0, 90.0, 180.0, 270.0]);
        for k in 0..3 {
            for (i, &lat) in dataset.lat.iter().enumerate() {
                for (j, &lon) in dataset.lon.iter().enumerate() {
                    for (c, p) in [(0, 500.0), (1, 850.0)] {
                        let expected = 200.0 + 10.0 * k as f64 + p / 50.0 + lat / 4.0 + lon / 8.0;
                        assert_eq!(f64::from(at(&dataset, k, c, i, j)), expected);
                    }
                    let expected = 1.0 + k as f64 + lat / 4.0 + lon / 16.0;
                    assert_eq!(f64::from(at(&dataset, k, 2, i, j)), expected);
                }
            }
        }
    }

    #[test]
    fn empty_selection_takes_every_gridded_variable_in_file_order() {
        let reader = Reader::open(&[fixture_path("era5_new_names.nc")], &[]).unwrap();
        let names: Vec<&str> = reader.channels().iter().map(|c| c.name.as_str()).collect();
        // `number` (scalar) and `expver` (strings) are not gridded; levels come in file order [850, 500].
        assert_eq!(names, ["t850", "t500", "u10"]);
    }

    #[test]
    fn chunks_put_together_equal_one_read() {
        let reader = Reader::open(&[fixture_path("era5_old_packed.nc")], &[]).unwrap();
        let whole = reader.read_all().unwrap();
        let mut data = Vec::new();
        let mut times = Vec::new();
        for chunk in reader.chunks(2) {
            let chunk = chunk.unwrap();
            times.extend(chunk.time_hours);
            data.extend(chunk.data);
        }
        assert_eq!((times, data), (whole.time_hours, whole.data));
        assert!(matches!(
            reader.read_times(2..4),
            Err(DatasetError::TimeRangeOutOfBounds { count: 3, .. })
        ));
    }

    #[test]
    fn weatherbench_files_join_into_one_dataset() {
        let paths = [
            fixture_path("wb_geopotential_500.nc"),
            fixture_path("wb_temperature.nc"),
        ];
        let reader = Reader::open(
            &paths,
            &[
                VariableSelection::new("z", &[]),
                VariableSelection::new("t", &[850.0]),
            ],
        )
        .unwrap();
        assert_eq!(reader.convention(), Convention::WeatherBench);
        assert_eq!(reader.time_step_hours(), Some(1));
        let dataset = reader.read_all().unwrap();
        let names: Vec<&str> = dataset.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z500", "t850"]);
        assert_eq!(dataset.time_hours, vec![78_888, 78_889, 78_890]);
        assert_eq!(dataset.lat, vec![-70.3125, -75.9375, -81.5625, -87.1875]);
        assert_eq!(dataset.lon, vec![0.0, 5.625, 11.25, 16.875]);
        for k in 0..3 {
            for (i, &lat) in dataset.lat.iter().enumerate() {
                for (j, &lon) in dataset.lon.iter().enumerate() {
                    let z = 50_000.0 + 100.0 * k as f64 + lat + lon / 8.0;
                    assert_eq!(f64::from(at(&dataset, k, 0, i, j)), z);
                    let t = 250.0 + k as f64 + 8.5 + lat / 16.0;
                    assert!((f64::from(at(&dataset, k, 1, i, j)) - t).abs() < 1e-4);
                }
            }
        }
        let wrong_level = Reader::open(&paths[..1], &[VariableSelection::new("z", &[850.0])]);
        assert!(
            matches!(wrong_level, Err(DatasetError::MissingLevel { level, .. }) if level == 850.0)
        );
    }

    fn missing_data(variable: &str) -> (String, Option<f64>, usize, String, f64, f64, String) {
        let reader = Reader::open(
            &[fixture_path("era5_fill.nc")],
            &[VariableSelection::new(variable, &[])],
        )
        .unwrap();
        let error = reader.read_all().unwrap_err();
        let message = error.to_string();
        match error {
            DatasetError::MissingData {
                variable,
                level,
                time_index,
                time_hours,
                lat,
                lon,
                what,
                ..
            } => {
                let time = cf_time::iso8601(time_hours);
                assert!(
                    message.contains(&time) && message.contains("era5_fill.nc"),
                    "{message}"
                );
                (
                    variable,
                    level,
                    time_index,
                    time,
                    lat,
                    lon,
                    what.to_string(),
                )
            }
            other => panic!("expected MissingData for {variable}, got {other:?}"),
        }
    }

    #[test]
    fn fill_values_nan_and_missing_values_are_errors_that_say_where() {
        assert_eq!(
            missing_data("z"),
            (
                "z".into(),
                Some(500.0),
                1,
                "1979-01-01T06:00:00Z".into(),
                -90.0,
                270.0,
                "fill value".into()
            )
        );
        assert_eq!(
            missing_data("t"),
            (
                "t".into(),
                Some(850.0),
                2,
                "1979-01-01T12:00:00Z".into(),
                90.0,
                90.0,
                "NaN".into()
            )
        );
        assert_eq!(
            missing_data("q"),
            (
                "q".into(),
                Some(850.0),
                0,
                "1979-01-01T00:00:00Z".into(),
                0.0,
                180.0,
                "missing_value".into()
            )
        );
        let clean = Reader::open(
            &[fixture_path("era5_fill.nc")],
            &[VariableSelection::new("t2m", &[])],
        )
        .unwrap();
        assert_eq!(at(&clean.read_all().unwrap(), 2, 0, 1, 1), 282.0);
    }

    #[test]
    fn each_bad_input_has_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = std::fs::read(fixture_path("era5_old_packed.nc")).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let open = |path: &std::path::Path| Reader::open(&[path], &[]);

        let absent = dir.path().join("absent.nc");
        assert!(matches!(
            open(&absent),
            Err(DatasetError::MissingFile { .. })
        ));
        let text = write("notes.nc", b"this is not a NetCDF file");
        assert!(matches!(open(&text), Err(DatasetError::NotNetcdf { .. })));
        let empty = write("empty.nc", b"");
        assert!(matches!(open(&empty), Err(DatasetError::NotNetcdf { .. })));
        let classic = write("classic.nc", b"CDF\x01\0\0\0\0\0\0\0\0");
        assert!(
            matches!(open(&classic), Err(DatasetError::NotNetcdf { detail, .. }) if detail.contains("truncated"))
        );
        // A whole header with a tag netCDF-3 does not have: another tool may still read it.
        let mut odd = b"CDF\x01\0\0\0\0\0\0\0\x99".to_vec();
        odd.resize(64, 0);
        let odd = write("odd.nc", &odd);
        assert!(
            matches!(open(&odd), Err(DatasetError::NotNetcdf { detail, .. }) if detail.contains("nccopy")),
            "{:?}",
            open(&odd).err()
        );
        let truncated = write("truncated.nc", &good[..good.len() / 2]);
        assert!(matches!(
            open(&truncated),
            Err(DatasetError::Truncated { expected_bytes, actual_bytes, .. })
                if expected_bytes == good.len() as u64 && actual_bytes == (good.len() / 2) as u64
        ));
        let cut_in_superblock = write("cut.nc", &good[..20]);
        assert!(matches!(
            open(&cut_in_superblock),
            Err(DatasetError::Truncated { .. })
        ));

        let packed = fixture_path("era5_old_packed.nc");
        let missing = Reader::open(&[&packed], &[VariableSelection::new("q", &[])]);
        assert!(
            matches!(missing, Err(DatasetError::MissingVariable { variable, available, .. })
            if variable == "q" && available.contains(&"z".to_string()))
        );
        let no_level = Reader::open(&[&packed], &[VariableSelection::new("z", &[300.0])]);
        assert!(
            matches!(no_level, Err(DatasetError::MissingLevel { available, .. }) if available == [500.0, 850.0])
        );
        // Dimensions are found by name: z(time, longitude, latitude) reads (its values are all 0); an axis that
        // is none of the known ones is refused naming the variable and its dimensions.
        let transposed = Reader::open(
            &[fixture_path("bad_dims.nc")],
            &[VariableSelection::new("z", &[])],
        )
        .unwrap()
        .read_all()
        .unwrap();
        assert_eq!((transposed.lat.len(), transposed.lon.len()), (3, 4));
        assert!(transposed.data.len() == 36 && transposed.data.iter().all(|&v| v == 0.0));
        let unknown_axis = Reader::open(
            &[fixture_path("layouts/axes/extra_height_axis.nc")],
            &[VariableSelection::new("ws", &[])],
        );
        assert!(
            matches!(unknown_axis, Err(DatasetError::UnreadableVariable { variable, dims, .. })
            if variable == "ws" && dims == ["time", "height", "latitude", "longitude"])
        );
        assert!(matches!(
            open(&fixture_path("empty_time.nc")),
            Err(DatasetError::EmptyTimeAxis { .. })
        ));
        assert!(matches!(
            open(&fixture_path("bad_time_step.nc")),
            Err(DatasetError::NonUniformTimeStep {
                index: 2,
                step_hours: 12,
                first_step_hours: 6,
                ..
            })
        ));
        let twice = Reader::open(
            &[&packed],
            &[
                VariableSelection::new("z", &[500.0]),
                VariableSelection::new("z", &[]),
            ],
        );
        assert!(matches!(twice, Err(DatasetError::InvalidDataset { .. })));
        let mismatch = Reader::open(
            &[fixture_path("wb_geopotential_500.nc"), packed.clone()],
            &[],
        );
        assert!(matches!(mismatch, Err(DatasetError::GridMismatch { .. })));
        // Every message names the file.
        let message = open(&truncated).unwrap_err().to_string();
        assert!(message.contains("truncated.nc"), "{message}");

        // netCDF-3 cut inside its header (892 of 1,784 bytes) or inside its data: named as truncated, with no
        // advice to convert the file.
        let classic = std::fs::read(fixture_path("layouts/formats/era5_classic.nc")).unwrap();
        let cut_header = write("cut_header.nc", &classic[..892]);
        let message = open(&cut_header).unwrap_err().to_string();
        assert!(
            message.contains("cut_header.nc")
                && message.contains("truncated")
                && !message.contains("nccopy"),
            "{message}"
        );
        let cut_data = write("cut_data.nc", &classic[..classic.len() - 200]);
        let message = match open(&cut_data) {
            Err(e) => e.to_string(),
            Ok(reader) => reader.read_all().unwrap_err().to_string(),
        };
        assert!(
            message.contains("cut_data.nc") && message.contains("it is truncated"),
            "{message}"
        );
    }
}

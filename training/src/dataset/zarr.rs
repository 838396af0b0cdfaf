//! [`ZarrReader`]: a local WeatherBench2-style Zarr store (a folder, zarr v2 as xarray's `to_zarr` writes it, or
//! zarr v3) opened for reading by time chunks.
//!
//! The store is read the way xarray reads it, with the same conventions as [`super::GridReader`]:
//!
//! * dimensions come from `_ARRAY_DIMENSIONS` (v2) or `dimension_names` (v3); the coordinate arrays are those
//!   [`super::coordinates`] accepts (`time`/`valid_time`, `level`/`pressure_level`, `latitude`/`lat`,
//!   `longitude`/`lon`);
//! * variables are chosen by ECMWF short name (`z`) or WeatherBench2 long name (`geopotential`), and channels are
//!   named by short name and level (`z500`);
//! * time is decoded from the CF `units` and `calendar` attributes;
//! * `scale_factor` / `add_offset` are applied; `_FillValue` (an attribute, or the v2 array `fill_value` that
//!   xarray uses as `_FillValue`), `missing_value`, NaN and infinity are [`DatasetError::MissingData`];
//! * the grid comes out in [`Orientation`]'s order: latitude 90 -> -90, longitude ascending in [0, 360).
//!
//! Opening reads metadata and the coordinate arrays only; [`ZarrReader::read_times`] decodes just the chunks
//! that hold the requested times. Chunks may be uncompressed or compressed with blosc (xarray's default for v2,
//! and WeatherBench2's), zstd (the v3 default), gzip or zlib: the codecs enabled in the workspace's `zarrs`
//! dependency. Sharded v3 arrays are not read.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::data_type::{
    Float32DataType, Float64DataType, Int8DataType, Int16DataType, Int32DataType, Int64DataType,
    UInt8DataType, UInt16DataType, UInt32DataType, UInt64DataType,
};
use zarrs::array::{Array, ArrayMetadata, ArraySubset};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::Group;

use super::cf_time::{self, CfTimeUnits};
use super::coordinates::{LAT_NAMES, LEVEL_NAMES, LON_NAMES, TIME_NAMES};
use super::error::DatasetError;
use super::grid::Orientation;
use super::known_variables;
use super::netcdf::Packing;
use super::reader::{VariableSelection, channel_name};
use super::{Channel, Dataset};

/// Metadata files that mark a folder as a Zarr store: v3, v2 group, v2 consolidated, v2 array.
const STORE_MARKERS: &[&str] = &["zarr.json", ".zgroup", ".zmetadata", ".zarray"];

type StoreArray = Array<FilesystemStore>;

/// Where one channel's values are in the store.
struct ZarrChannelSource {
    /// Array name in the store, e.g. `geopotential`.
    array_name: String,
    /// Shared by the channels of one array (one per level).
    array: Arc<StoreArray>,
    element: Element,
    /// Index along the array's level dimension; `None` for (time, lat, lon) arrays.
    level_index: Option<usize>,
    packing: Packing,
}

/// A Zarr store on the local disk, opened for chunked reading.
pub struct ZarrReader {
    path: PathBuf,
    sources: Vec<ZarrChannelSource>,
    channels: Vec<Channel>,
    /// Coordinates in store order, for error messages.
    store_lat: Vec<f64>,
    store_lon: Vec<f64>,
    orientation: Orientation,
    time_hours: Vec<i64>,
    time_step_hours: Option<i64>,
}

impl std::fmt::Debug for ZarrReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrReader")
            .field("path", &self.path)
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

/// True when `path` is a folder holding Zarr metadata at its top (`zarr.json`, `.zgroup`, `.zmetadata` or
/// `.zarray`).
pub fn is_zarr_store(path: &Path) -> bool {
    path.is_dir() && STORE_MARKERS.iter().any(|m| path.join(m).is_file())
}

impl ZarrReader {
    /// Opens the store at `path` and resolves `selection` to channels, reading metadata and coordinates only.
    ///
    /// A selection names a variable by short name (`z`) or WeatherBench2 long name (`geopotential`); an empty
    /// `selection` takes every array laid out (time, (level), lat, lon), in name order. The time axis must be
    /// non-empty and evenly spaced.
    pub fn open(path: &Path, selection: &[VariableSelection]) -> Result<Self, DatasetError> {
        let store = open_store(path)?;
        let arrays = array_names(path, &store)?;
        let find = |candidates: &[&str]| {
            candidates
                .iter()
                .find(|c| arrays.iter().any(|a| a == *c))
                .map(|c| c.to_string())
        };
        let require = |candidates: &[&str]| {
            find(candidates).ok_or_else(|| DatasetError::MissingVariable {
                path: path.to_path_buf(),
                variable: candidates.join(" or "),
                available: arrays.clone(),
            })
        };
        let time_name = require(TIME_NAMES)?;
        let lat_name = require(LAT_NAMES)?;
        let lon_name = require(LON_NAMES)?;
        let level_name = find(LEVEL_NAMES);
        let names = AxisNames {
            time: time_name.clone(),
            level: level_name.clone(),
            lat: lat_name.clone(),
            lon: lon_name.clone(),
        };

        let time_hours = read_time_axis(path, &store, &time_name)?;
        if time_hours.is_empty() {
            return Err(DatasetError::EmptyTimeAxis {
                path: path.to_path_buf(),
                variable: time_name,
            });
        }
        let time_step_hours = cf_time::uniform_step_hours(&time_hours).map_err(
            |(index, step_hours, first_step_hours)| DatasetError::NonUniformTimeStep {
                path: path.to_path_buf(),
                index,
                step_hours,
                first_step_hours,
            },
        )?;
        let store_lat = read_axis(path, &store, &lat_name)?;
        let store_lon = read_axis(path, &store, &lon_name)?;
        let levels_hpa = level_name
            .as_deref()
            .map(|name| read_level_axis(path, &store, name))
            .transpose()?
            .unwrap_or_default();
        let orientation =
            Orientation::from_file_coordinates(&store_lat, &store_lon).map_err(|e| {
                DatasetError::BadCoordinate {
                    path: path.to_path_buf(),
                    coordinate: format!("{lat_name}/{lon_name}"),
                    detail: e.to_string(),
                }
            })?;
        if let Some(change) = orientation.describe() {
            tracing::info!("{}: {change}", path.display());
        }

        let wanted = if selection.is_empty() {
            every_gridded_array(path, &store, &arrays, &names)?
        } else {
            selection.to_vec()
        };
        let mut sources = Vec::new();
        let mut channels: Vec<Channel> = Vec::new();
        for choice in &wanted {
            let (array_name, short_name) = resolve_name(path, &arrays, &choice.variable)?;
            let array = Arc::new(open_array(path, &store, &array_name)?);
            let has_level = layout(&dimension_names(path, &array, &array_name)?, &names)
                .ok_or_else(|| DatasetError::WrongDimensions {
                    path: path.to_path_buf(),
                    variable: array_name.clone(),
                    expected: names.expected(),
                    found: dimension_names(path, &array, &array_name).unwrap_or_default(),
                })?;
            let element = Element::of(path, &array, &array_name)?;
            let packing = packing(path, &array, &array_name, element)?;
            let units = array
                .attributes()
                .get("units")
                .and_then(|u| u.as_str())
                .unwrap_or_default()
                .to_string();
            let missing_level = |level: f64| DatasetError::MissingLevel {
                path: path.to_path_buf(),
                variable: choice.variable.clone(),
                level,
                available: if has_level {
                    levels_hpa.clone()
                } else {
                    Vec::new()
                },
            };
            let level_indices: Vec<Option<usize>> = if !has_level {
                if let Some(&wanted) = choice.levels.first() {
                    return Err(missing_level(wanted));
                }
                vec![None]
            } else if choice.levels.is_empty() {
                (0..levels_hpa.len()).map(Some).collect()
            } else {
                choice
                    .levels
                    .iter()
                    .map(|&wanted| {
                        levels_hpa
                            .iter()
                            .position(|&l| same_level(l, wanted))
                            .map(Some)
                            .ok_or_else(|| missing_level(wanted))
                    })
                    .collect::<Result<_, _>>()?
            };
            for level_index in level_indices {
                let level = level_index.map(|i| levels_hpa[i]);
                let channel = Channel {
                    name: channel_name(&short_name, level),
                    variable: short_name.clone(),
                    level,
                    units: units.clone(),
                };
                if channels.iter().any(|c| c.name == channel.name) {
                    return Err(DatasetError::InvalidDataset {
                        path: path.to_path_buf(),
                        detail: format!("channel `{}` is selected twice", channel.name),
                    });
                }
                channels.push(channel);
                sources.push(ZarrChannelSource {
                    array_name: array_name.clone(),
                    array: Arc::clone(&array),
                    element,
                    level_index,
                    packing: packing.clone(),
                });
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            sources,
            channels,
            store_lat,
            store_lon,
            orientation,
            time_hours,
            time_step_hours,
        })
    }

    /// The store folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Latitudes of the data returned, 90 -> -90.
    pub fn lat(&self) -> &[f64] {
        &self.orientation.lat
    }

    /// Longitudes of the data returned, ascending in [0, 360).
    pub fn lon(&self) -> &[f64] {
        &self.orientation.lon
    }

    /// How the store's grid was reoriented (see [`Orientation::describe`]).
    pub fn orientation(&self) -> &Orientation {
        &self.orientation
    }

    /// Valid times, hours since 1970-01-01T00:00:00Z.
    pub fn time_hours(&self) -> &[i64] {
        &self.time_hours
    }

    /// The time step in hours; `None` for a store with one time.
    pub fn time_step_hours(&self) -> Option<i64> {
        self.time_step_hours
    }

    /// Values in one time slice: channels × lat × lon.
    pub fn frame_len(&self) -> usize {
        self.channels.len() * self.orientation.lat.len() * self.orientation.lon.len()
    }

    /// Reads times `times` (indices along the time axis) of every channel, decoding only the chunks they touch.
    ///
    /// Returns a [`Dataset`] whose `data` is [times, channel, lat, lon].
    pub fn read_times(&self, times: Range<usize>) -> Result<Dataset, DatasetError> {
        let count = self.time_hours.len();
        if times.start > times.end || times.end > count {
            return Err(DatasetError::TimeRangeOutOfBounds {
                path: self.path.clone(),
                start: times.start,
                end: times.end,
                count,
            });
        }
        let (n_lat, n_lon) = (self.store_lat.len(), self.store_lon.len());
        let field_len = n_lat * n_lon;
        let n_channels = self.channels.len();
        let mut data = vec![0.0_f32; times.len() * n_channels * field_len];
        let mut unpacked = vec![0.0_f64; field_len];
        let mut oriented = vec![0.0_f64; field_len];
        let time_range = times.start as u64..times.end as u64;
        for (c, (source, channel)) in self.sources.iter().zip(&self.channels).enumerate() {
            let mut ranges = vec![time_range.clone()];
            if let Some(level) = source.level_index {
                ranges.push(level as u64..level as u64 + 1);
            }
            ranges.extend([0..n_lat as u64, 0..n_lon as u64]);
            let raw = source
                .element
                .retrieve(&source.array, &ArraySubset::new_with_ranges(&ranges))
                .map_err(|e| DatasetError::Zarr {
                    path: self.path.clone(),
                    array: source.array_name.clone(),
                    detail: format!("cannot read times {times:?}: {e}"),
                })?;
            for (k, field) in raw.chunks_exact(field_len).enumerate() {
                for (index, (&value, out)) in field.iter().zip(unpacked.iter_mut()).enumerate() {
                    let physical = source.packing.unpack(value);
                    let problem = source.packing.classify(value).or_else(|| {
                        let single = physical as f32;
                        single.is_infinite().then_some("value beyond the f32 range")
                    });
                    if let Some(what) = problem {
                        let time_index = times.start + k;
                        return Err(DatasetError::MissingData {
                            path: self.path.clone(),
                            variable: source.array_name.clone(),
                            level: channel.level,
                            time_index,
                            time_hours: self.time_hours[time_index],
                            lat: self.store_lat[index / n_lon],
                            lon: self.store_lon[index % n_lon],
                            what,
                        });
                    }
                    *out = physical;
                }
                self.orientation.apply(&unpacked, &mut oriented);
                let offset = (k * n_channels + c) * field_len;
                for (out, &value) in data[offset..offset + field_len].iter_mut().zip(&oriented) {
                    *out = value as f32;
                }
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

    /// Reads every time: only for stores that fit in memory; see [`Self::chunks`] otherwise.
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
}

impl crate::windows::FrameSource for ZarrReader {
    fn time_hours(&self) -> &[i64] {
        ZarrReader::time_hours(self)
    }
    fn frame_len(&self) -> usize {
        ZarrReader::frame_len(self)
    }
    fn read_frames(&self, times: Range<usize>) -> Result<Vec<f32>, DatasetError> {
        Ok(self.read_times(times)?.data)
    }
}

/// The names of the store's coordinate arrays.
struct AxisNames {
    time: String,
    level: Option<String>,
    lat: String,
    lon: String,
}

impl AxisNames {
    /// The layouts a gridded variable may have, for error messages.
    fn expected(&self) -> String {
        let (t, y, x) = (&self.time, &self.lat, &self.lon);
        match &self.level {
            Some(l) => format!("({t}, {l}, {y}, {x}) or ({t}, {y}, {x})"),
            None => format!("({t}, {y}, {x})"),
        }
    }
}

/// `Some(true)` for (time, level, lat, lon), `Some(false)` for (time, lat, lon), `None` for anything else.
fn layout(dims: &[String], names: &AxisNames) -> Option<bool> {
    let (t, y, x) = (&names.time, &names.lat, &names.lon);
    match dims {
        [a, b, c] if a == t && b == y && c == x => Some(false),
        [a, l, b, c] if a == t && Some(l) == names.level.as_ref() && b == y && c == x => Some(true),
        _ => None,
    }
}

fn same_level(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(1.0)
}

/// Opens the folder as a store after checking that it exists and holds Zarr metadata.
fn open_store(path: &Path) -> Result<Arc<FilesystemStore>, DatasetError> {
    if !path.exists() {
        return Err(DatasetError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    let not_zarr = |detail: String| DatasetError::NotZarr {
        path: path.to_path_buf(),
        detail,
    };
    if !path.is_dir() {
        return Err(not_zarr(
            "a Zarr store is a folder, this is a file".to_string(),
        ));
    }
    if !is_zarr_store(path) {
        return Err(not_zarr(format!(
            "the folder has none of {}",
            STORE_MARKERS.join(", ")
        )));
    }
    FilesystemStore::new(path)
        .map(Arc::new)
        .map_err(|e| not_zarr(e.to_string()))
}

/// Names of the arrays at the top of the store, sorted.
fn array_names(path: &Path, store: &Arc<FilesystemStore>) -> Result<Vec<String>, DatasetError> {
    let not_zarr = |detail: String| DatasetError::NotZarr {
        path: path.to_path_buf(),
        detail,
    };
    let group = Group::open(store.clone(), "/")
        .map_err(|e| not_zarr(format!("cannot open the root group: {e}")))?;
    let mut names: Vec<String> = group
        .child_array_paths()
        .map_err(|e| not_zarr(format!("cannot list the arrays: {e}")))?
        .iter()
        .map(|p| p.as_str().trim_start_matches('/').to_string())
        .collect();
    names.sort();
    Ok(names)
}

fn open_array(
    path: &Path,
    store: &Arc<FilesystemStore>,
    name: &str,
) -> Result<StoreArray, DatasetError> {
    Array::open(store.clone(), &format!("/{name}")).map_err(|e| DatasetError::Zarr {
        path: path.to_path_buf(),
        array: name.to_string(),
        detail: format!(
            "cannot open: {e} (this build decodes uncompressed, blosc, zstd, gzip and zlib chunks)"
        ),
    })
}

/// The array's dimension names: v3 `dimension_names`, else xarray's v2 `_ARRAY_DIMENSIONS` attribute.
fn dimension_names(
    path: &Path,
    array: &StoreArray,
    name: &str,
) -> Result<Vec<String>, DatasetError> {
    if let Some(dims) = array.dimension_names() {
        return Ok(dims.iter().map(|d| d.clone().unwrap_or_default()).collect());
    }
    let listed = array
        .attributes()
        .get("_ARRAY_DIMENSIONS")
        .and_then(|v| v.as_array())
        .map(|dims| {
            dims.iter()
                .map(|d| d.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
    match listed {
        Some(Some(dims)) if dims.len() == array.dimensionality() => Ok(dims),
        _ => Err(DatasetError::Zarr {
            path: path.to_path_buf(),
            array: name.to_string(),
            detail: "has no dimension names (`dimension_names` in v3, `_ARRAY_DIMENSIONS` in v2, one per axis)"
                .to_string(),
        }),
    }
}

/// The store's array for `variable` (its own name, else the WeatherBench2 name of that short name) and the
/// short name its channels take (the short name of a WeatherBench2 name, else the array name).
fn resolve_name(
    path: &Path,
    arrays: &[String],
    variable: &str,
) -> Result<(String, String), DatasetError> {
    let present = |name: &str| arrays.iter().any(|a| a == name);
    let array_name = if present(variable) {
        variable.to_string()
    } else {
        match known_variables::weatherbench2_name(variable) {
            Some(long) if present(long) => long.to_string(),
            _ => {
                return Err(DatasetError::MissingVariable {
                    path: path.to_path_buf(),
                    variable: variable.to_string(),
                    available: arrays.to_vec(),
                });
            }
        }
    };
    let short_name = known_variables::short_name_of_weatherbench2(&array_name)
        .map_or_else(|| array_name.clone(), str::to_string);
    Ok((array_name, short_name))
}

/// Every numeric array laid out (time, (level), lat, lon), in name order.
fn every_gridded_array(
    path: &Path,
    store: &Arc<FilesystemStore>,
    arrays: &[String],
    names: &AxisNames,
) -> Result<Vec<VariableSelection>, DatasetError> {
    let mut selection = Vec::new();
    for name in arrays {
        let array = open_array(path, store, name)?;
        let gridded =
            dimension_names(path, &array, name).is_ok_and(|dims| layout(&dims, names).is_some());
        if gridded && Element::of(path, &array, name).is_ok() {
            selection.push(VariableSelection::new(name, &[]));
        }
    }
    Ok(selection)
}

/// Reads a one-dimensional array as f64.
fn read_axis(
    path: &Path,
    store: &Arc<FilesystemStore>,
    name: &str,
) -> Result<Vec<f64>, DatasetError> {
    let array = open_array(path, store, name)?;
    if array.dimensionality() != 1 {
        return Err(DatasetError::WrongDimensions {
            path: path.to_path_buf(),
            variable: name.to_string(),
            expected: format!("({name})"),
            found: dimension_names(path, &array, name).unwrap_or_default(),
        });
    }
    Element::of(path, &array, name)?
        .retrieve(&array, &array.subset_all())
        .map_err(|e| DatasetError::Zarr {
            path: path.to_path_buf(),
            array: name.to_string(),
            detail: format!("cannot read: {e}"),
        })
}

/// Reads the time axis, converting CF `units` (and `calendar`) to whole hours since 1970.
fn read_time_axis(
    path: &Path,
    store: &Arc<FilesystemStore>,
    name: &str,
) -> Result<Vec<i64>, DatasetError> {
    let bad = |detail: String| DatasetError::BadTime {
        path: path.to_path_buf(),
        variable: name.to_string(),
        detail,
    };
    let values = read_axis(path, store, name)?;
    let array = open_array(path, store, name)?;
    let text = |key: &str| array.attributes().get(key).and_then(|v| v.as_str());
    let units_text = text("units").ok_or_else(|| bad("has no `units` attribute".to_string()))?;
    let units = CfTimeUnits::parse(units_text).map_err(|e| bad(e.0))?;
    cf_time::check_calendar(text("calendar"), &units).map_err(|e| bad(e.0))?;
    values
        .iter()
        .map(|&v| units.to_hours_since_epoch(v).map_err(|e| bad(e.0)))
        .collect()
}

/// Reads the level axis in hPa (`units = "Pa"` is divided by 100; millibars and hPa are the same).
fn read_level_axis(
    path: &Path,
    store: &Arc<FilesystemStore>,
    name: &str,
) -> Result<Vec<f64>, DatasetError> {
    let values = read_axis(path, store, name)?;
    let array = open_array(path, store, name)?;
    let in_pa = array
        .attributes()
        .get("units")
        .and_then(|v| v.as_str())
        .is_some_and(|u| u.trim() == "Pa");
    Ok(values
        .into_iter()
        .map(|v| if in_pa { v * 0.01 } else { v })
        .collect())
}

/// `scale_factor`, `add_offset`, and the raw values that mean "no data": the `_FillValue` attribute (xarray
/// writes it for v3, as a number or as base64 bytes of a float), the v2 array `fill_value` (which xarray reads as
/// `_FillValue`), and `missing_value`.
fn packing(
    path: &Path,
    array: &StoreArray,
    name: &str,
    element: Element,
) -> Result<Packing, DatasetError> {
    let bad = |attribute: &str, detail: String| DatasetError::BadAttribute {
        path: path.to_path_buf(),
        variable: name.to_string(),
        attribute: attribute.to_string(),
        detail,
    };
    let attributes = array.attributes();
    let scalar = |key: &str| -> Result<Option<f64>, DatasetError> {
        attributes
            .get(key)
            .map(|v| attribute_number(v).ok_or_else(|| bad(key, format!("not a number: {v}"))))
            .transpose()
    };
    let own_precision = |v: f64| {
        if element == Element::F32 {
            f64::from(v as f32)
        } else {
            v
        }
    };
    let mut missing = Vec::new();
    if let ArrayMetadata::V2(metadata) = array.metadata() {
        let fill = serde_json::to_value(&metadata.fill_value).unwrap_or_default();
        if !fill.is_null() {
            let value = attribute_number(&fill)
                .ok_or_else(|| bad("fill_value", format!("not a number: {fill}")))?;
            missing.push((own_precision(value), "fill value"));
        }
    }
    for (key, kind) in [
        ("_FillValue", "fill value"),
        ("missing_value", "missing_value"),
    ] {
        if let Some(value) = scalar(key)? {
            missing.push((own_precision(value), kind));
        }
    }
    Ok(Packing {
        scale_factor: scalar("scale_factor")?.unwrap_or(1.0),
        add_offset: scalar("add_offset")?.unwrap_or(0.0),
        missing,
    })
}

/// A number from JSON metadata: a number, `"NaN"` / `"Infinity"` / `"-Infinity"`, or base64 of the 8 (or 4)
/// little-endian bytes of a float, as xarray writes float `_FillValue`s in zarr v3.
fn attribute_number(value: &serde_json::Value) -> Option<f64> {
    use base64::Engine;
    if let Some(number) = value.as_f64() {
        return Some(number);
    }
    match value.as_str()? {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        text => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?;
            match bytes.len() {
                8 => Some(f64::from_le_bytes(bytes.try_into().ok()?)),
                4 => Some(f64::from(f32::from_le_bytes(bytes.try_into().ok()?))),
                _ => None,
            }
        }
    }
}

/// The numeric element types read (each converted to f64 exactly, except 64-bit integers beyond 2^53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl Element {
    fn of(path: &Path, array: &StoreArray, name: &str) -> Result<Self, DatasetError> {
        let data_type = array.data_type();
        let found = [
            (data_type.is::<Float32DataType>(), Self::F32),
            (data_type.is::<Float64DataType>(), Self::F64),
            (data_type.is::<Int8DataType>(), Self::I8),
            (data_type.is::<Int16DataType>(), Self::I16),
            (data_type.is::<Int32DataType>(), Self::I32),
            (data_type.is::<Int64DataType>(), Self::I64),
            (data_type.is::<UInt8DataType>(), Self::U8),
            (data_type.is::<UInt16DataType>(), Self::U16),
            (data_type.is::<UInt32DataType>(), Self::U32),
            (data_type.is::<UInt64DataType>(), Self::U64),
        ]
        .into_iter()
        .find_map(|(is, element)| is.then_some(element));
        found.ok_or_else(|| DatasetError::Zarr {
            path: path.to_path_buf(),
            array: name.to_string(),
            detail: format!(
                "unsupported data type {} (only 8-64 bit integers and 32/64 bit floats)",
                data_type_name(array)
            ),
        })
    }

    /// Decodes `subset` of `array` as f64, row-major.
    fn retrieve(
        self,
        array: &StoreArray,
        subset: &ArraySubset,
    ) -> Result<Vec<f64>, zarrs::array::ArrayError> {
        fn widen<T: zarrs::array::ElementOwned + Copy>(
            array: &StoreArray,
            subset: &ArraySubset,
            to_f64: fn(T) -> f64,
        ) -> Result<Vec<f64>, zarrs::array::ArrayError> {
            Ok(array
                .retrieve_array_subset::<Vec<T>>(subset)?
                .into_iter()
                .map(to_f64)
                .collect())
        }
        match self {
            Self::F32 => widen::<f32>(array, subset, f64::from),
            Self::F64 => widen::<f64>(array, subset, |v| v),
            Self::I8 => widen::<i8>(array, subset, f64::from),
            Self::I16 => widen::<i16>(array, subset, f64::from),
            Self::I32 => widen::<i32>(array, subset, f64::from),
            Self::I64 => widen::<i64>(array, subset, |v| v as f64),
            Self::U8 => widen::<u8>(array, subset, f64::from),
            Self::U16 => widen::<u16>(array, subset, f64::from),
            Self::U32 => widen::<u32>(array, subset, f64::from),
            Self::U64 => widen::<u64>(array, subset, |v| v as f64),
        }
    }
}

/// The data type as the metadata spells it (`<f4`, `float32`, ...), for messages.
fn data_type_name(array: &StoreArray) -> String {
    let metadata = serde_json::to_value(array.metadata()).unwrap_or_default();
    let name = metadata.get("dtype").or_else(|| metadata.get("data_type"));
    name.map_or_else(|| "(unknown)".to_string(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::fixture_path;
    use super::*;
    use crate::windows::FrameSource;

    /// Value of channel `c` at (time k, row i, column j) of a dataset.
    fn at(dataset: &Dataset, k: usize, c: usize, i: usize, j: usize) -> f64 {
        let (n_lat, n_lon) = (dataset.lat.len(), dataset.lon.len());
        f64::from(dataset.frame(k)[(c * n_lat + i) * n_lon + j])
    }

    /// The script's longitude (-180..180) of a normalised longitude (0..360).
    fn signed(lon: f64) -> f64 {
        if lon >= 180.0 { lon - 360.0 } else { lon }
    }

    /// The formulas of `tests/fixtures/make_zarr_fixture.py`.
    fn z(k: usize, p: f64, lat: f64, lon: f64) -> f64 {
        1000.0 * k as f64 + 50.0 * p + 4.0 * lat + signed(lon) / 8.0
    }
    fn t(k: usize, p: f64, lat: f64, lon: f64) -> f64 {
        250.0 + k as f64 + p / 100.0 + lat / 10.0 + signed(lon) / 100.0
    }
    fn t2m(k: usize, lat: f64, lon: f64) -> f64 {
        280.0 + k as f64 + lat / 4.0 + signed(lon) / 16.0
    }

    fn names(channels: &[Channel]) -> Vec<&str> {
        channels.iter().map(|c| c.name.as_str()).collect()
    }

    fn check_script_values(store: &str) {
        let reader = ZarrReader::open(
            &fixture_path(store),
            &[
                VariableSelection::new("z", &[]),
                VariableSelection::new("temperature", &[850.0, 500.0]),
            ],
        )
        .unwrap();
        assert_eq!(names(reader.channels()), ["z500", "z850", "t850", "t500"]);
        assert_eq!(reader.channels()[0].variable, "z");
        assert_eq!(reader.channels()[0].units, "m**2 s**-2");
        assert_eq!(reader.channels()[2].units, "K");
        assert_eq!(reader.channels()[3].level, Some(500.0));
        // 2020-01-01T00:00:00Z is 18262 days after 1970-01-01.
        assert_eq!(reader.time_hours(), &[438_288, 438_294, 438_300]);
        assert_eq!(reader.time_step_hours(), Some(6));
        assert!(reader.orientation().lat_reversed && reader.orientation().lon_rewrapped);
        let dataset = reader.read_all().unwrap();
        assert_eq!(dataset.check_shape(), Ok(()));
        assert_eq!(dataset.lat, vec![67.5, 22.5, -22.5, -67.5]);
        assert_eq!(
            dataset.lon,
            vec![0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
        );
        for k in 0..3 {
            for (i, &lat) in dataset.lat.iter().enumerate() {
                for (j, &lon) in dataset.lon.iter().enumerate() {
                    for (c, p) in [(0, 500.0), (1, 850.0)] {
                        assert_eq!(at(&dataset, k, c, i, j), z(k, p, lat, lon), "{store} z");
                    }
                    for (c, p) in [(2, 850.0), (3, 500.0)] {
                        let error = (at(&dataset, k, c, i, j) - t(k, p, lat, lon)).abs();
                        assert!(
                            error < 1e-4,
                            "{store} t k{k} p{p} lat{lat} lon{lon}: {error}"
                        );
                    }
                }
            }
        }
        // The script's worked example: z at (k=2, p=850, lat=67.5, lon=135) = 44786.875.
        assert_eq!(at(&dataset, 2, 1, 0, 3), 44_786.875);
    }

    #[test]
    fn zarr_v2_store_decodes_to_the_script_values() {
        check_script_values("wb2_small.zarr");
    }

    #[test]
    fn zarr_v3_store_decodes_to_the_script_values() {
        check_script_values("wb2_small_v3.zarr");
    }

    #[test]
    fn zarr_time_chunks_put_together_equal_one_read() {
        let reader = ZarrReader::open(
            &fixture_path("wb2_small.zarr"),
            &[VariableSelection::new("geopotential", &[850.0])],
        )
        .unwrap();
        let whole = reader.read_all().unwrap();
        let mut data = Vec::new();
        let mut times = Vec::new();
        for chunk in reader.chunks(2) {
            let chunk = chunk.unwrap();
            times.extend(chunk.time_hours);
            data.extend(chunk.data);
        }
        assert_eq!((times, data), (whole.time_hours, whole.data.clone()));
        let frame_len = FrameSource::frame_len(&reader);
        assert_eq!(frame_len, 32);
        assert_eq!(
            reader.read_frames(1..3).unwrap(),
            whole.data[frame_len..3 * frame_len]
        );
        assert!(matches!(
            reader.read_times(2..4),
            Err(DatasetError::TimeRangeOutOfBounds { count: 3, .. })
        ));
    }

    #[test]
    fn zarr_empty_selection_takes_every_gridded_array_in_name_order() {
        let reader = ZarrReader::open(&fixture_path("wb2_small.zarr"), &[]).unwrap();
        assert_eq!(
            names(reader.channels()),
            ["t2m", "z500", "z850", "t500", "t850"]
        );
        // Reopening with the channels' own selection gives the same channels.
        let again = ZarrReader::open(
            &fixture_path("wb2_small.zarr"),
            &VariableSelection::for_channels(reader.channels()),
        )
        .unwrap();
        assert_eq!(again.channels(), reader.channels());
    }

    #[test]
    fn zarr_fill_value_is_an_error_that_says_where() {
        for store in ["wb2_small.zarr", "wb2_small_v3.zarr"] {
            let reader =
                ZarrReader::open(&fixture_path(store), &[VariableSelection::new("t2m", &[])])
                    .unwrap();
            let first = reader.read_times(0..1).unwrap();
            assert_eq!(first.channels[0].level, None);
            for (i, &lat) in first.lat.iter().enumerate() {
                for (j, &lon) in first.lon.iter().enumerate() {
                    assert_eq!(at(&first, 0, 0, i, j), t2m(0, lat, lon));
                }
            }
            let error = reader.read_all().unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(store) && message.contains("2020-01-01T06:00:00Z"),
                "{message}"
            );
            match error {
                DatasetError::MissingData {
                    variable,
                    level,
                    time_index,
                    lat,
                    lon,
                    what,
                    ..
                } => assert_eq!(
                    (variable.as_str(), level, time_index, lat, lon, what),
                    ("2m_temperature", None, 1, 22.5, -90.0, "fill value"),
                    "{store}"
                ),
                other => panic!("{store}: expected MissingData, got {other:?}"),
            }
        }
    }

    /// Copies the v2 fixture into `dir` so that a test can spoil one file of it.
    fn copy_store(dir: &Path) -> PathBuf {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        let store = dir.join("copy.zarr");
        copy(&fixture_path("wb2_small.zarr"), &store);
        store
    }

    /// Rewrites one JSON metadata file of a store.
    fn edit_json(file: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        edit(&mut value);
        std::fs::write(file, value.to_string()).unwrap();
    }

    #[test]
    fn each_bad_zarr_input_has_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let open = |path: &Path, variable: &str, levels: &[f64]| {
            ZarrReader::open(path, &[VariableSelection::new(variable, levels)])
        };

        let absent = dir.path().join("absent.zarr");
        assert!(matches!(
            open(&absent, "z", &[]),
            Err(DatasetError::MissingFile { path }) if path == absent
        ));
        let plain = dir.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        let error = open(&plain, "z", &[]).unwrap_err();
        assert!(matches!(error, DatasetError::NotZarr { .. }), "{error:?}");
        assert!(error.to_string().contains("plain"), "{error}");
        let file = dir.path().join("file.zarr");
        std::fs::write(&file, b"not a folder").unwrap();
        assert!(matches!(
            open(&file, "z", &[]),
            Err(DatasetError::NotZarr { .. })
        ));

        let good = fixture_path("wb2_small.zarr");
        assert!(
            matches!(open(&good, "q", &[]), Err(DatasetError::MissingVariable { variable, available, .. })
            if variable == "q" && available.contains(&"geopotential".to_string()))
        );
        assert!(
            matches!(open(&good, "z", &[300.0]), Err(DatasetError::MissingLevel { available, .. })
            if available == [500.0, 850.0])
        );
        assert!(
            matches!(open(&good, "t2m", &[500.0]), Err(DatasetError::MissingLevel { available, .. })
            if available.is_empty())
        );
        let twice = ZarrReader::open(
            &good,
            &[
                VariableSelection::new("z", &[500.0]),
                VariableSelection::new("geopotential", &[]),
            ],
        );
        assert!(matches!(twice, Err(DatasetError::InvalidDataset { .. })));

        let store = copy_store(dir.path());
        edit_json(&store.join("geopotential/.zattrs"), |attrs| {
            attrs["_ARRAY_DIMENSIONS"] =
                serde_json::json!(["time", "level", "longitude", "latitude"]);
        });
        assert!(
            matches!(open(&store, "z", &[]), Err(DatasetError::WrongDimensions { variable, found, .. })
            if variable == "geopotential" && found == ["time", "level", "longitude", "latitude"])
        );
        edit_json(&store.join("temperature/.zarray"), |metadata| {
            metadata["compressor"] = serde_json::json!({"id": "no-such-codec"});
        });
        let error = open(&store, "t", &[]).unwrap_err();
        assert!(
            matches!(&error, DatasetError::Zarr { array, .. } if array == "temperature"),
            "{error:?}"
        );
        assert!(error.to_string().contains("copy.zarr"), "{error}");
        edit_json(&store.join("2m_temperature/.zarray"), |metadata| {
            metadata["dtype"] = serde_json::json!("|b1");
            metadata["fill_value"] = serde_json::json!(false);
        });
        let error = open(&store, "t2m", &[]).unwrap_err();
        assert!(
            matches!(&error, DatasetError::Zarr { detail, .. } if detail.contains("unsupported data type")),
            "{error:?}"
        );
    }
}

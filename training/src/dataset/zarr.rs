//! [`ZarrSource`]: a local Zarr store (a folder; v2 as xarray's `to_zarr` and WeatherBench2 write it, or v3).
//!
//! Each array is a variable. Its dimensions come from `dimension_names` (v3) or xarray's `_ARRAY_DIMENSIONS`
//! attribute (v2); its attributes are the store's JSON attributes, with xarray's encodings of numbers undone:
//! a float `_FillValue` written as `"NaN"` or as base64 of its little-endian bytes (v3) is a number, and the v2
//! array `fill_value` is the variable's `_FillValue` (xarray moves `_FillValue` there). Chunks may be
//! uncompressed or compressed with blosc (xarray's v2 default, and WeatherBench2's), zstd (the v3 default), gzip
//! or zlib: the codecs enabled in the workspace's `zarrs` dependency. Sharded v3 arrays are not read.
//!
//! An array that cannot be opened (an unknown codec) or decoded (a non-numeric data type) stays listed and
//! says why when it is read or selected, so that one odd array does not hide the rest of a store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::data_type::{
    Float32DataType, Float64DataType, Int8DataType, Int16DataType, Int32DataType, Int64DataType,
    UInt8DataType, UInt16DataType, UInt32DataType, UInt64DataType,
};
use zarrs::array::{Array, ArrayMetadata, ArraySubset};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::Group;

use super::error::DatasetError;
use super::source::{
    AttrValue, Dimension, GriddedSource, SourceFormat, ValueType, VariableInfo, check_box,
};

/// Metadata files that mark a folder as a Zarr store: v3, v2 group, v2 consolidated, v2 array.
const STORE_MARKERS: &[&str] = &["zarr.json", ".zgroup", ".zmetadata", ".zarray"];

/// Attributes holding numbers that xarray may write as text (`"NaN"`, base64 bytes).
const NUMERIC_ATTRIBUTES: &[&str] = &[
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "valid_min",
    "valid_max",
    "valid_range",
];

type StoreArray = Array<FilesystemStore>;

/// True when `path` is a folder holding Zarr metadata at its top (`zarr.json`, `.zgroup`, `.zmetadata` or
/// `.zarray`).
pub fn is_zarr_store(path: &Path) -> bool {
    path.is_dir() && STORE_MARKERS.iter().any(|m| path.join(m).is_file())
}

/// A Zarr store on the local disk with the metadata of every top-level array read.
pub struct ZarrSource {
    path: PathBuf,
    format: SourceFormat,
    dimensions: Vec<Dimension>,
    variables: Vec<VariableInfo>,
    /// Per variable: the open array and its element type, or why it cannot be read.
    arrays: Vec<Result<(Arc<StoreArray>, Element), String>>,
}

impl std::fmt::Debug for ZarrSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrSource")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("variables", &self.variables.len())
            .finish()
    }
}

impl ZarrSource {
    /// Opens the store at `path`, reading the metadata of its top-level arrays (in name order).
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        let store = open_store(path)?;
        let format = if path.join("zarr.json").is_file() {
            SourceFormat::ZarrV3
        } else {
            SourceFormat::ZarrV2
        };
        let mut dimensions: Vec<Dimension> = Vec::new();
        let mut variables = Vec::new();
        let mut arrays = Vec::new();
        for name in array_names(path, &store)? {
            let opened = Array::open(store.clone(), &format!("/{name}")).map_err(|e| {
                let text = e.to_string();
                let codec = ["codec", "compressor", "filter"]
                    .iter()
                    .any(|word| text.to_lowercase().contains(word));
                if codec {
                    format!(
                        "cannot open: {text} (this build decodes uncompressed, blosc, zstd, gzip and zlib chunks)"
                    )
                } else {
                    format!("cannot open: {text}")
                }
            });
            let described =
                opened.and_then(|array| dimension_names(&array).map(|dims| (array, dims)));
            let (array, dims) = match described {
                Ok(described) => described,
                Err(problem) => {
                    // Listed (so `data inspect` shows it) but unreadable: reading it gives `problem`.
                    variables.push(VariableInfo {
                        name,
                        dims: Vec::new(),
                        shape: Vec::new(),
                        value_type: ValueType::Other,
                        attributes: Vec::new(),
                    });
                    arrays.push(Err(problem));
                    continue;
                }
            };
            let shape: Vec<usize> = array.shape().iter().map(|&n| n as usize).collect();
            for (dim, &len) in dims.iter().zip(&shape) {
                match dimensions.iter().find(|d| &d.name == dim) {
                    Some(known) if known.len != len => {
                        return Err(DatasetError::Zarr {
                            path: path.to_path_buf(),
                            array: name.clone(),
                            detail: format!(
                                "dimension `{dim}` has length {len} here but {} in another array",
                                known.len
                            ),
                        });
                    }
                    Some(_) => {}
                    None => dimensions.push(Dimension {
                        name: dim.clone(),
                        len,
                        unlimited: false,
                    }),
                }
            }
            let element = Element::of(&array);
            let value_type = element.map_or(ValueType::Other, Element::value_type);
            let attributes = attributes_of(&array);
            variables.push(VariableInfo {
                name,
                dims,
                shape,
                value_type,
                attributes,
            });
            arrays.push(match element {
                Some(element) => Ok((Arc::new(array), element)),
                None => Err(format!(
                    "unsupported data type {} (only 8-64 bit integers and 32/64 bit floats)",
                    data_type_name(&array)
                )),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            format,
            dimensions,
            variables,
            arrays,
        })
    }

    /// Why variable `name` cannot be read, when it cannot.
    pub(crate) fn problem(&self, name: &str) -> Option<DatasetError> {
        let index = self.variables.iter().position(|v| v.name == name)?;
        self.arrays[index]
            .as_ref()
            .err()
            .map(|detail| DatasetError::Zarr {
                path: self.path.clone(),
                array: name.to_string(),
                detail: detail.clone(),
            })
    }
}

impl GriddedSource for ZarrSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> SourceFormat {
        self.format
    }

    fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    fn variables(&self) -> &[VariableInfo] {
        &self.variables
    }

    fn check_readable(&self, variable: &str) -> Result<(), DatasetError> {
        match self.problem(variable) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn read(
        &self,
        variable: &str,
        start: &[usize],
        count: &[usize],
    ) -> Result<Vec<f64>, DatasetError> {
        let info = self.require(variable)?;
        check_box(&self.path, info, start, count)?;
        let index = self
            .variables
            .iter()
            .position(|v| v.name == variable)
            .unwrap_or_default();
        let (array, element) =
            self.arrays[index]
                .as_ref()
                .map_err(|detail| DatasetError::Zarr {
                    path: self.path.clone(),
                    array: variable.to_string(),
                    detail: detail.clone(),
                })?;
        if count.contains(&0) {
            return Ok(Vec::new());
        }
        let ranges: Vec<std::ops::Range<u64>> = start
            .iter()
            .zip(count)
            .map(|(&s, &c)| s as u64..(s + c) as u64)
            .collect();
        element
            .retrieve(array, &ArraySubset::new_with_ranges(&ranges))
            .map_err(|e| DatasetError::Zarr {
                path: self.path.clone(),
                array: variable.to_string(),
                detail: format!("reading {start:?} + {count:?}: {e}"),
            })
    }
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

/// The array's dimension names: v3 `dimension_names`, else xarray's v2 `_ARRAY_DIMENSIONS` attribute.
fn dimension_names(array: &StoreArray) -> Result<Vec<String>, String> {
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
        _ => Err(
            "has no dimension names (`dimension_names` in v3, `_ARRAY_DIMENSIONS` in v2, one per axis)"
                .to_string(),
        ),
    }
}

/// The array's attributes as netCDF attributes: text, or numbers (xarray's text encodings of numbers undone),
/// with the v2 `fill_value` as `_FillValue` when no such attribute is present.
fn attributes_of(array: &StoreArray) -> Vec<(String, AttrValue)> {
    let mut attributes = Vec::new();
    for (key, value) in array.attributes() {
        if key == "_ARRAY_DIMENSIONS" {
            continue;
        }
        let numeric = NUMERIC_ATTRIBUTES.contains(&key.as_str());
        let converted = match value {
            serde_json::Value::String(text) if numeric => {
                Some(attribute_number(value).map_or_else(
                    || AttrValue::Text(text.clone()),
                    |n| AttrValue::Numbers(vec![n]),
                ))
            }
            serde_json::Value::String(text) => Some(AttrValue::Text(text.clone())),
            serde_json::Value::Number(_) => {
                attribute_number(value).map(|n| AttrValue::Numbers(vec![n]))
            }
            serde_json::Value::Array(items) => items
                .iter()
                .map(attribute_number)
                .collect::<Option<Vec<f64>>>()
                .map(AttrValue::Numbers),
            _ => None,
        };
        if let Some(converted) = converted {
            attributes.push((key.clone(), converted));
        }
    }
    if let ArrayMetadata::V2(metadata) = array.metadata()
        && !attributes.iter().any(|(key, _)| key == "_FillValue")
    {
        let fill = serde_json::to_value(&metadata.fill_value).unwrap_or_default();
        if !fill.is_null() {
            let value = attribute_number(&fill).map_or_else(
                || AttrValue::Text(fill.to_string()),
                |n| AttrValue::Numbers(vec![n]),
            );
            attributes.push(("_FillValue".to_string(), value));
        }
    }
    attributes
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
    fn of(array: &StoreArray) -> Option<Self> {
        let data_type = array.data_type();
        [
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
        .find_map(|(is, element)| is.then_some(element))
    }

    fn value_type(self) -> ValueType {
        match self {
            Self::F32 => ValueType::F32,
            Self::F64 => ValueType::F64,
            Self::I8 => ValueType::I8,
            Self::I16 => ValueType::I16,
            Self::I32 => ValueType::I32,
            Self::I64 => ValueType::I64,
            Self::U8 => ValueType::U8,
            Self::U16 => ValueType::U16,
            Self::U32 => ValueType::U32,
            Self::U64 => ValueType::U64,
        }
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
    use std::path::{Path, PathBuf};

    use super::super::reader::{Reader, VariableSelection};
    use super::super::{Channel, Dataset, DatasetError, fixture_path};
    use crate::windows::FrameSource;

    /// The store's channels read through the one reader core, as `ZarrReader::open` did.
    fn open_store(path: &Path, selection: &[VariableSelection]) -> Result<Reader, DatasetError> {
        Reader::open(&[path], selection)
    }

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
        let reader = open_store(
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
        let reader = open_store(
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
        let reader = open_store(&fixture_path("wb2_small.zarr"), &[]).unwrap();
        assert_eq!(
            names(reader.channels()),
            ["t2m", "z500", "z850", "t500", "t850"]
        );
        // Reopening with the channels' own selection gives the same channels.
        let again = open_store(
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
                open_store(&fixture_path(store), &[VariableSelection::new("t2m", &[])]).unwrap();
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
        copy_fixture("wb2_small.zarr", dir)
    }

    /// A copy of fixture store `name` as `dir/copy.zarr`.
    fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
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
        copy(&fixture_path(name), &store);
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
            open_store(path, &[VariableSelection::new(variable, levels)])
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
        let twice = open_store(
            &good,
            &[
                VariableSelection::new("z", &[500.0]),
                VariableSelection::new("geopotential", &[]),
            ],
        );
        assert!(matches!(twice, Err(DatasetError::InvalidDataset { .. })));

        // Dimension names that contradict the stored shape (longitude 4 here, 8 in the coordinate) are refused
        // naming the array; a store really laid out (time, level, longitude, latitude) reads by name
        // (tests/fixtures/layouts/axes/wb2_lon_lat_order.zarr).
        let swapped = copy_store(&dir.path().join("swapped"));
        edit_json(&swapped.join("geopotential/.zattrs"), |attrs| {
            attrs["_ARRAY_DIMENSIONS"] =
                serde_json::json!(["time", "level", "longitude", "latitude"]);
        });
        let error = open(&swapped, "z", &[]).unwrap_err();
        assert!(
            matches!(&error, DatasetError::Zarr { array, detail, .. }
            if array == "geopotential" && detail.contains("longitude")),
            "{error:?}"
        );
        let store = copy_store(dir.path());
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

        // Reading every field of a store one of whose arrays has unreadable metadata is an error naming that
        // array (not the other fields without it), and a parse error gets no advice about codecs.
        let broken = copy_fixture("layouts/zarr_v3/era5_like.zarr", &dir.path().join("broken"));
        std::fs::write(broken.join("geopotential/zarr.json"), "{\"broken").unwrap();
        let error = open_store(&broken, &[]).unwrap_err();
        assert!(
            matches!(&error, DatasetError::Zarr { array, detail, .. }
            if array == "geopotential" && !detail.contains("this build decodes")),
            "{error:?}"
        );
    }
}

//! [`GriddedSource`]: what every stored format offers the one decoding path — dimensions, variables with named
//! dimensions and attributes, and box reads of stored numbers.
//!
//! Three formats implement it: NetCDF-4/HDF5 ([`super::netcdf4::Netcdf4Source`]), netCDF-3 classic and 64-bit
//! offset ([`super::netcdf3::Netcdf3Source`]) and Zarr v2/v3 ([`super::zarr::ZarrSource`]). A source knows its
//! format's storage quirks (HDF5 dimension scales, variables shorter than their unlimited dimension, Zarr fill
//! values written as base64) and nothing about what the axes mean: unpacking, missing values, axis resolution and
//! orientation are done once, on top, by [`super::decode`], [`super::axes`] and [`super::reader::Reader`].
//!
//! [`open_source`] recognises the format from the first bytes of a file (or from Zarr metadata in a folder) and
//! names what it is when it is not one of them (a ZIP archive, a GRIB file, CDF-5).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::DatasetError;
use super::netcdf3::Netcdf3Source;
use super::netcdf4::Netcdf4Source;
use super::zarr::{ZarrSource, is_zarr_store};

/// The stored element type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// Characters or strings.
    Text,
    /// Compounds, enums, references, ...
    Other,
}

impl ValueType {
    /// Integers and floating-point numbers.
    pub fn is_numeric(self) -> bool {
        !matches!(self, Self::Text | Self::Other)
    }

    /// netCDF's default fill value for the type (`NC_FILL_*` in `netcdf.h`), which a variable without a
    /// `_FillValue` attribute holds wherever nothing was written. `None` for 8-bit types, whose default fill is a
    /// valid value in most data (netCDF4-python does not mask it either), and for non-numbers.
    pub fn netcdf_default_fill(self) -> Option<f64> {
        match self {
            Self::I16 => Some(-32_767.0),
            Self::U16 => Some(65_535.0),
            Self::I32 => Some(-2_147_483_647.0),
            Self::U32 => Some(4_294_967_295.0),
            Self::I64 => Some(-9_223_372_036_854_775_806.0),
            Self::U64 => Some(18_446_744_073_709_551_614.0),
            // NC_FILL_FLOAT = 9.9692099683868690e+36f, NC_FILL_DOUBLE = 9.9692099683868690e+36.
            Self::F32 => Some(f64::from(9.969_21e36_f32)),
            Self::F64 => Some(9.969_209_968_386_869e36),
            Self::I8 | Self::U8 | Self::Text | Self::Other => None,
        }
    }
}

/// An attribute value: text, or numbers (a scalar attribute is one number).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Text(String),
    Numbers(Vec<f64>),
}

/// A variable as stored: name, named dimensions, shape and attributes (read when the source is opened).
#[derive(Debug, Clone, PartialEq)]
pub struct VariableInfo {
    pub name: String,
    /// Dimension names in storage order, e.g. `["time", "level", "longitude", "latitude"]`.
    pub dims: Vec<String>,
    /// The lengths of those dimensions (for a variable on an unlimited dimension, the dimension's length even
    /// when fewer records of this variable were written).
    pub shape: Vec<usize>,
    pub value_type: ValueType,
    /// In stored order; storage bookkeeping (HDF5 dimension-scale attributes) left out.
    pub attributes: Vec<(String, AttrValue)>,
}

impl VariableInfo {
    pub fn attribute(&self, name: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// A text attribute, `None` when absent or numeric.
    pub fn text_attr(&self, name: &str) -> Option<&str> {
        match self.attribute(name) {
            Some(AttrValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// A coordinate variable: one dimension, named like the variable.
    pub fn is_coordinate(&self) -> bool {
        self.dims.len() == 1 && self.dims[0] == self.name
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dimension of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    pub name: String,
    pub len: usize,
    /// NetCDF's unlimited (record) dimension.
    pub unlimited: bool,
}

/// The stored format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SourceFormat {
    /// NetCDF-4 (HDF5), as netCDF4-python's `NETCDF4`.
    #[serde(rename = "NETCDF4")]
    Netcdf4,
    /// netCDF-3 classic (`CDF\x01`).
    #[serde(rename = "NETCDF3_CLASSIC")]
    Netcdf3Classic,
    /// netCDF-3 64-bit offset (`CDF\x02`).
    #[serde(rename = "NETCDF3_64BIT_OFFSET")]
    Netcdf3Offset64,
    #[serde(rename = "zarr v2")]
    ZarrV2,
    #[serde(rename = "zarr v3")]
    ZarrV3,
}

impl SourceFormat {
    /// True for the netCDF formats, where a variable without `_FillValue` holds netCDF's default fill wherever
    /// nothing was written.
    pub fn uses_netcdf_default_fill(self) -> bool {
        matches!(
            self,
            Self::Netcdf4 | Self::Netcdf3Classic | Self::Netcdf3Offset64
        )
    }
}

/// A gridded dataset as stored: dimensions, variables with named dimensions, and box reads.
///
/// Implemented by [`Netcdf4Source`], [`Netcdf3Source`] and [`ZarrSource`]; decoding is not its business.
pub trait GriddedSource: Send + Sync + std::fmt::Debug {
    /// The file or store folder.
    fn path(&self) -> &Path;

    fn format(&self) -> SourceFormat;

    /// Dimensions in stored order.
    fn dimensions(&self) -> &[Dimension];

    /// Every variable in stored order (Zarr: array names in name order).
    fn variables(&self) -> &[VariableInfo];

    /// Stored numbers of the box `start .. start + count` of `variable`, converted to f64, row-major over the
    /// variable's dimensions ([count[0], count[1], ..]). Positions that hold no stored value (records past a
    /// variable's own extent on an unlimited dimension) come back as its fill value, as netCDF-C returns them.
    fn read(
        &self,
        variable: &str,
        start: &[usize],
        count: &[usize],
    ) -> Result<Vec<f64>, DatasetError>;

    /// Why `variable` cannot be read, as found when the source was opened (a filter HDF5 cannot load, a Zarr
    /// codec or data type that is not decoded); `Ok` when nothing is known against it.
    fn check_readable(&self, _variable: &str) -> Result<(), DatasetError> {
        Ok(())
    }

    /// The variable called `name`.
    fn variable(&self, name: &str) -> Option<&VariableInfo> {
        self.variables().iter().find(|v| v.name == name)
    }

    /// Variable `name`, or [`DatasetError::MissingVariable`] listing what the source has.
    fn require(&self, name: &str) -> Result<&VariableInfo, DatasetError> {
        self.variable(name)
            .ok_or_else(|| DatasetError::MissingVariable {
                path: self.path().to_path_buf(),
                variable: name.to_string(),
                available: self.variables().iter().map(|v| v.name.clone()).collect(),
            })
    }

    /// Every value of variable `name`.
    fn read_all(&self, name: &str) -> Result<Vec<f64>, DatasetError> {
        let variable = self.require(name)?;
        let start = vec![0; variable.shape.len()];
        let count = variable.shape.clone();
        self.read(name, &start, &count)
    }
}

/// Checks that `start + count` lies inside `shape`; the error names the variable and the box.
pub(crate) fn check_box(
    path: &Path,
    variable: &VariableInfo,
    start: &[usize],
    count: &[usize],
) -> Result<(), DatasetError> {
    let within = start.len() == variable.shape.len()
        && count.len() == variable.shape.len()
        && start
            .iter()
            .zip(count)
            .zip(&variable.shape)
            .all(|((s, c), n)| s.checked_add(*c).is_some_and(|end| end <= *n));
    if within {
        Ok(())
    } else {
        Err(DatasetError::InvalidDataset {
            path: path.to_path_buf(),
            detail: format!(
                "reading: box {start:?} + {count:?} is outside `{}` of shape {:?}",
                variable.name, variable.shape
            ),
        })
    }
}

/// Copies the box `start .. start + count` out of a row-major array of `shape`, reading element `n` with
/// `value(n)`; box positions at or beyond `available` (per axis, at most `shape`) get `fill`.
///
/// Returns [count[0], count[1], ..] row-major.
pub(crate) fn copy_box(
    shape: &[usize],
    available: &[usize],
    start: &[usize],
    count: &[usize],
    fill: f64,
    value: impl Fn(usize) -> f64,
) -> Vec<f64> {
    let total: usize = count.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let rank = shape.len();
    if rank == 0 {
        out.push(value(0));
        return out;
    }
    let mut strides = vec![1_usize; rank];
    for axis in (0..rank.saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    // Odometer over every axis but the last; the last is copied as a run.
    let mut index = vec![0_usize; rank];
    let last = rank - 1;
    loop {
        let outer_inside = (0..last).all(|a| start[a] + index[a] < available[a]);
        let base: usize = (0..last).map(|a| (start[a] + index[a]) * strides[a]).sum();
        for j in 0..count[last] {
            let position = start[last] + j;
            if outer_inside && position < available[last] {
                out.push(value(base + position));
            } else {
                out.push(fill);
            }
        }
        // Advance the odometer.
        let mut axis = last;
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            index[axis] += 1;
            if index[axis] < count[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// HDF5's format signature, found at byte 0 or at 512, 1024, 2048, ... after a user block.
pub(crate) const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// Opens a file or Zarr store as whatever format it is, recognised by content (not by name).
pub fn open_source(path: &Path) -> Result<Box<dyn GriddedSource>, DatasetError> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DatasetError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(DatasetError::Io {
                path: path.to_path_buf(),
                error: source,
            });
        }
    };
    let not_netcdf = |detail: &str| DatasetError::NotNetcdf {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if metadata.is_dir() && !is_zarr_store(path) {
        return Err(DatasetError::NotZarr {
            path: path.to_path_buf(),
            detail:
                "a folder without Zarr metadata (a folder of NetCDF files is read as one series by \
                     `data stats` and run configs; `data inspect` takes one file)"
                    .to_string(),
        });
    }
    if metadata.is_dir() || path.extension().is_some_and(|x| x == "zarr") {
        return Ok(Box::new(ZarrSource::open(path)?));
    }
    let io_error = |source| DatasetError::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let mut head = Vec::new();
    std::fs::File::open(path)
        .map_err(io_error)?
        .take(65_536 + 128)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    if head.is_empty() {
        return Err(not_netcdf("the file is empty"));
    }
    let hdf5_at = std::iter::once(0)
        .chain((9..=16).map(|p| 1_usize << p))
        .find(|&offset| head.get(offset..offset + 8) == Some(&HDF5_SIGNATURE[..]));
    if let Some(offset) = hdf5_at {
        return Ok(Box::new(Netcdf4Source::open(
            path,
            &head,
            offset,
            metadata.len(),
        )?));
    }
    match head.get(..4) {
        Some([b'C', b'D', b'F', 1 | 2]) => Ok(Box::new(Netcdf3Source::open(path)?)),
        Some([b'C', b'D', b'F', 5]) => Err(not_netcdf(
            "it is netCDF CDF-5 (64-bit data), which is not read; convert it with `nccopy -k nc4 IN OUT`",
        )),
        Some([b'P', b'K', 3 | 5, 4 | 6]) => Err(DatasetError::ZipArchive {
            path: path.to_path_buf(),
            members: zip_members(path),
        }),
        Some(b"GRIB") => Err(not_netcdf(
            "it is a GRIB file; convert it to NetCDF first (e.g. `grib_to_netcdf` or xarray with cfgrib)",
        )),
        Some([0x1f, 0x8b, ..]) => Err(not_netcdf("it is gzip-compressed; gunzip it first")),
        _ => Err(not_netcdf("no HDF5 or netCDF-3 signature")),
    }
}

/// The names of the files in a ZIP archive, for the message that asks to unzip it (empty when unreadable).
fn zip_members(path: &Path) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    match zip::ZipArchive::new(file) {
        Ok(archive) => archive
            .file_names()
            .filter_map(|name| name.ok().map(|n| n.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The files to read for `path`: the file itself, a Zarr store, or the NetCDF files (`.nc`, `.nc4`) anywhere
/// below a folder (WeatherBench ships one folder per variable), in path order.
pub fn input_files(path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if !path.exists() {
        return Err(DatasetError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    if !path.is_dir() || is_zarr_store(path) || path.extension().is_some_and(|x| x == "zarr") {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|source| DatasetError::Io {
            path: folder.clone(),
            error: source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| DatasetError::Io {
                path: folder.clone(),
                error: source,
            })?;
            let entry_path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if entry_path.is_dir() {
                if !is_zarr_store(&entry_path) {
                    folders.push(entry_path);
                }
            } else if entry_path
                .extension()
                .is_some_and(|x| x == "nc" || x == "nc4")
            {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DatasetError::NotNetcdf {
            path: path.to_path_buf(),
            detail: "a folder with no .nc or .nc4 files and no Zarr metadata".to_string(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_box_takes_the_box_and_fills_beyond_the_extent() {
        // A 3 x 4 array with value 10 i + j; only the first 2 rows exist.
        let shape = [3, 4];
        let values: Vec<f64> = (0..12).map(|n| (10 * (n / 4) + n % 4) as f64).collect();
        let out = copy_box(&shape, &[2, 4], &[1, 1], &[2, 2], -1.0, |n| values[n]);
        assert_eq!(out, vec![11.0, 12.0, -1.0, -1.0]);
        let all = copy_box(&shape, &shape, &[0, 0], &[3, 4], -1.0, |n| values[n]);
        assert_eq!(all, values);
        assert_eq!(
            copy_box(&[], &[], &[], &[], 0.0, |_| 7.0),
            vec![7.0],
            "a scalar"
        );
    }

    #[test]
    fn default_fills_are_those_of_netcdf_h() {
        assert_eq!(ValueType::I16.netcdf_default_fill(), Some(-32767.0));
        assert_eq!(
            ValueType::F32.netcdf_default_fill(),
            Some(9.969_209_968_386_869e36)
        );
        assert_eq!(ValueType::I8.netcdf_default_fill(), None);
    }
}

//! [`Netcdf4Source`]: a NetCDF-4 file seen through HDF5.
//!
//! NetCDF-4 stores each variable as an HDF5 dataset. A dimension is a dataset marked as a dimension scale
//! (`CLASS = "DIMENSION_SCALE"`), and a variable names its dimensions through `DIMENSION_LIST`, one object
//! reference per axis. A variable on an unlimited dimension has its own extent: records never written to it
//! are not stored, and netCDF-C returns them as the variable's fill value, as [`Netcdf4Source`] does. A variable
//! compressed with a filter HDF5 cannot load (a plugin such as zstd, 32015) is named with the filter's id when it
//! is read.

use std::path::{Path, PathBuf};

use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenArray, VarLenAscii, VarLenUnicode};
use hdf5::{IndexType, IterationOrder, ObjectReference1, ReferencedObject};

use super::error::DatasetError;
use super::hdf5_raw;
use super::source::{
    AttrValue, Dimension, GriddedSource, SourceFormat, ValueType, VariableInfo, check_box, copy_box,
};

/// The `NAME` netCDF-C gives a dimension that has no coordinate variable (followed by a number).
const DIMENSION_WITHOUT_VARIABLE: &str = "This is a netCDF dimension but not a netCDF variable";

/// HDF5 and netCDF-4 bookkeeping attributes, not part of the netCDF data model.
const BOOKKEEPING: &[&str] = &[
    "CLASS",
    "NAME",
    "DIMENSION_LIST",
    "REFERENCE_LIST",
    "_Netcdf4Dimid",
    "_Netcdf4Coordinates",
    "_nc3_strict",
    "_NCProperties",
    "_SuperblockVersion",
    "_IsNetcdf4",
];

/// An open NetCDF-4 (HDF5) file with its metadata read.
pub struct Netcdf4Source {
    path: PathBuf,
    /// Kept open for the datasets' lifetime.
    _file: hdf5::File,
    dimensions: Vec<Dimension>,
    variables: Vec<VariableInfo>,
    stored: Vec<StoredVariable>,
}

/// What reading one variable needs beyond its [`VariableInfo`].
struct StoredVariable {
    dataset: hdf5::Dataset,
    /// The dataset's own extent (shorter than the dimension on an unlimited axis when records were not written).
    stored_shape: Vec<usize>,
    /// Returned where nothing is stored: `_FillValue`, else netCDF's default fill for the type.
    fill: f64,
    /// A filter of the dataset's pipeline that this HDF5 library cannot load: (id, name).
    missing_filter: Option<(i32, String)>,
}

impl std::fmt::Debug for Netcdf4Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netcdf4Source")
            .field("path", &self.path)
            .field("variables", &self.variables.len())
            .finish()
    }
}

impl Netcdf4Source {
    /// Opens a file whose first bytes `head` (at least 64 KiB or the whole file) hold the HDF5 signature at
    /// `signature_at`, after checking that the file is not shorter than its superblock says.
    pub(crate) fn open(
        path: &Path,
        head: &[u8],
        signature_at: usize,
        file_bytes: u64,
    ) -> Result<Self, DatasetError> {
        match superblock_end_of_file(&head[signature_at..]) {
            SuperblockEnd::Address(expected_bytes) if expected_bytes > file_bytes => {
                return Err(DatasetError::Truncated {
                    path: path.to_path_buf(),
                    expected_bytes,
                    actual_bytes: file_bytes,
                });
            }
            SuperblockEnd::CutShort(needed) => {
                return Err(DatasetError::Truncated {
                    path: path.to_path_buf(),
                    expected_bytes: signature_at as u64 + needed,
                    actual_bytes: file_bytes,
                });
            }
            SuperblockEnd::Address(_) | SuperblockEnd::Unknown => {}
        }
        let file =
            hdf5::File::open(path).map_err(|e| DatasetError::hdf5(path, "opening the file", e))?;
        let hdf5_error = |action: String| move |e| DatasetError::hdf5(path, action, e);

        // Datasets of the root group, in creation order when the file tracks it (netCDF-C files do).
        let names = file
            .member_names_by(IndexType::CreationOrder, IterationOrder::Increasing)
            .or_else(|_| file.member_names())
            .map_err(hdf5_error("listing variables".to_string()))?;
        let mut dimensions = Vec::new();
        let mut datasets = Vec::new();
        for name in names {
            let Ok(dataset) = file.dataset(&name) else {
                continue;
            };
            let is_scale = text_attr(&dataset, "CLASS")
                .map_err(hdf5_error(format!("reading CLASS of `{name}`")))?
                .as_deref()
                == Some("DIMENSION_SCALE");
            let placeholder = text_attr(&dataset, "NAME")
                .map_err(hdf5_error(format!("reading NAME of `{name}`")))?
                .is_some_and(|n| n.starts_with(DIMENSION_WITHOUT_VARIABLE));
            if is_scale {
                // netCDF-C numbers dimensions in `_Netcdf4Dimid`: their order in the file's header.
                let dimid = dataset
                    .attr("_Netcdf4Dimid")
                    .and_then(|a| a.read_raw::<i64>())
                    .ok()
                    .and_then(|ids| ids.first().copied())
                    .unwrap_or(i64::MAX);
                dimensions.push((
                    dimid,
                    Dimension {
                        name: name.clone(),
                        len: dataset.shape().first().copied().unwrap_or(0),
                        unlimited: dataset.is_resizable(),
                    },
                ));
            }
            if !placeholder {
                datasets.push((name, dataset, is_scale));
            }
        }

        dimensions.sort_by_key(|(dimid, _)| *dimid);
        let mut dimensions: Vec<Dimension> = dimensions.into_iter().map(|(_, d)| d).collect();
        let mut variables = Vec::with_capacity(datasets.len());
        let mut stored = Vec::with_capacity(datasets.len());
        for (name, dataset, is_scale) in datasets {
            let dims = dimension_names(&file, path, &name, &dataset, is_scale)?;
            let stored_shape = dataset.shape();
            let shape: Vec<usize> = dims
                .iter()
                .zip(&stored_shape)
                .map(|(dim, &own)| {
                    dimensions
                        .iter()
                        .find(|d| &d.name == dim)
                        .map_or(own, |d| d.len.max(own))
                })
                .collect();
            for (dim, &len) in dims.iter().zip(&shape) {
                if !dimensions.iter().any(|d| &d.name == dim) {
                    dimensions.push(Dimension {
                        name: dim.clone(),
                        len,
                        unlimited: false,
                    });
                }
            }
            let value_type = dataset
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map(|d| value_type_of(&d))
                .map_err(hdf5_error(format!("reading the type of `{name}`")))?;
            let attributes = attributes_of(&dataset)
                .map_err(hdf5_error(format!("reading the attributes of `{name}`")))?;
            let info = VariableInfo {
                name,
                dims,
                shape,
                value_type,
                attributes,
            };
            let fill = match info.attribute("_FillValue") {
                Some(AttrValue::Numbers(values)) if !values.is_empty() => values[0],
                _ => value_type.netcdf_default_fill().unwrap_or(f64::NAN),
            };
            let missing_filter = dataset
                .filters()
                .iter()
                .find(|f| !f.is_available())
                .map(|f| (f.id(), filter_name(f.id()).to_string()));
            stored.push(StoredVariable {
                dataset,
                stored_shape,
                fill,
                missing_filter,
            });
            variables.push(info);
        }
        Ok(Self {
            path: path.to_path_buf(),
            _file: file,
            dimensions,
            variables,
            stored,
        })
    }
}

impl GriddedSource for Netcdf4Source {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> SourceFormat {
        SourceFormat::Netcdf4
    }

    fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    fn variables(&self) -> &[VariableInfo] {
        &self.variables
    }

    fn check_readable(&self, variable: &str) -> Result<(), DatasetError> {
        let missing = self
            .variables
            .iter()
            .zip(&self.stored)
            .find(|(v, _)| v.name == variable)
            .and_then(|(_, stored)| stored.missing_filter.as_ref());
        match missing {
            Some((filter_id, filter_name)) => Err(DatasetError::MissingFilter {
                path: self.path.clone(),
                variable: variable.to_string(),
                filter_id: *filter_id,
                filter_name: filter_name.clone(),
            }),
            None => Ok(()),
        }
    }

    fn read(
        &self,
        variable: &str,
        start: &[usize],
        count: &[usize],
    ) -> Result<Vec<f64>, DatasetError> {
        let Some((info, stored)) = self
            .variables
            .iter()
            .zip(&self.stored)
            .find(|(v, _)| v.name == variable)
        else {
            return Err(DatasetError::MissingVariable {
                path: self.path.clone(),
                variable: variable.to_string(),
                available: self.variables.iter().map(|v| v.name.clone()).collect(),
            });
        };
        check_box(&self.path, info, start, count)?;
        self.check_readable(variable)?;
        let read_error = |e| DatasetError::hdf5(&self.path, format!("reading `{variable}`"), e);
        let inside = start
            .iter()
            .zip(count)
            .zip(&stored.stored_shape)
            .all(|((s, c), n)| s + c <= *n);
        if inside {
            return hdf5_raw::read_box::<f64>(&stored.dataset, start, count).map_err(read_error);
        }
        // Part of the box lies past the variable's own extent: read what is stored, fill the rest.
        let inner: Vec<usize> = start
            .iter()
            .zip(count)
            .zip(&stored.stored_shape)
            .map(|((&s, &c), &n)| (s + c).min(n).saturating_sub(s))
            .collect();
        let values = if inner.contains(&0) {
            Vec::new()
        } else {
            hdf5_raw::read_box::<f64>(&stored.dataset, start, &inner).map_err(read_error)?
        };
        let origin = vec![0; count.len()];
        Ok(copy_box(&inner, &inner, &origin, count, stored.fill, |n| {
            values[n]
        }))
    }
}

/// Dimension names of a dataset: itself for a dimension scale of one axis, the scales referenced by
/// `DIMENSION_LIST` otherwise, and netCDF-C's `phony_dim_<i>` for axes without a scale.
fn dimension_names(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    dataset: &hdf5::Dataset,
    is_scale: bool,
) -> Result<Vec<String>, DatasetError> {
    let ndim = dataset.ndim();
    let phony = |axis: usize| format!("phony_dim_{axis}");
    if ndim == 1 && is_scale {
        return Ok(vec![name.to_string()]);
    }
    let hdf5_error = |action: &str| {
        let action = format!("{action} of `{name}`");
        move |e| DatasetError::hdf5(path, action, e)
    };
    let attributes = dataset
        .attr_names()
        .map_err(hdf5_error("listing attributes"))?;
    if !attributes.iter().any(|a| a == "DIMENSION_LIST") {
        return Ok((0..ndim).map(phony).collect());
    }
    let lists = dataset
        .attr("DIMENSION_LIST")
        .and_then(|a| a.read_raw::<VarLenArray<ObjectReference1>>())
        .map_err(hdf5_error("reading DIMENSION_LIST"))?;
    let mut names = Vec::with_capacity(ndim);
    for (axis, list) in lists.iter().enumerate() {
        let scale_name = match list.as_slice().first() {
            Some(reference) => match file.dereference(reference) {
                Ok(ReferencedObject::Dataset(scale)) => {
                    scale.name().trim_start_matches('/').to_string()
                }
                _ => phony(axis),
            },
            None => phony(axis),
        };
        names.push(scale_name);
    }
    names.truncate(ndim);
    while names.len() < ndim {
        names.push(phony(names.len()));
    }
    Ok(names)
}

fn value_type_of(descriptor: &TypeDescriptor) -> ValueType {
    match descriptor {
        TypeDescriptor::Integer(IntSize::U1) => ValueType::I8,
        TypeDescriptor::Integer(IntSize::U2) => ValueType::I16,
        TypeDescriptor::Integer(IntSize::U4) => ValueType::I32,
        TypeDescriptor::Integer(IntSize::U8) => ValueType::I64,
        TypeDescriptor::Unsigned(IntSize::U1) => ValueType::U8,
        TypeDescriptor::Unsigned(IntSize::U2) => ValueType::U16,
        TypeDescriptor::Unsigned(IntSize::U4) => ValueType::U32,
        TypeDescriptor::Unsigned(IntSize::U8) => ValueType::U64,
        TypeDescriptor::Float(FloatSize::U4) => ValueType::F32,
        TypeDescriptor::Float(FloatSize::U8) => ValueType::F64,
        TypeDescriptor::FixedAscii(_)
        | TypeDescriptor::FixedUnicode(_)
        | TypeDescriptor::VarLenAscii
        | TypeDescriptor::VarLenUnicode => ValueType::Text,
        _ => ValueType::Other,
    }
}

/// The netCDF attributes of a dataset (text or numbers), in creation order when tracked.
fn attributes_of(dataset: &hdf5::Dataset) -> hdf5::Result<Vec<(String, AttrValue)>> {
    let names = dataset
        .attr_names_by(IndexType::CreationOrder, IterationOrder::Increasing)
        .or_else(|_| dataset.attr_names())?;
    let mut attributes = Vec::with_capacity(names.len());
    for name in names {
        if BOOKKEEPING.contains(&name.as_str()) {
            continue;
        }
        let attribute = dataset.attr(&name)?;
        let descriptor = attribute.dtype()?.to_descriptor()?;
        let value = match value_type_of(&descriptor) {
            ValueType::Text => text_attr(dataset, &name)?.map(AttrValue::Text),
            ValueType::Other => None,
            _ => Some(AttrValue::Numbers(attribute.read_raw::<f64>()?)),
        };
        if let Some(value) = value {
            attributes.push((name, value));
        }
    }
    Ok(attributes)
}

/// A text attribute (fixed or variable length, ASCII or UTF-8); `None` when absent or not text.
fn text_attr(location: &hdf5::Location, name: &str) -> hdf5::Result<Option<String>> {
    if !location.attr_names()?.iter().any(|n| n == name) {
        return Ok(None);
    }
    let attribute = location.attr(name)?;
    if attribute.space()?.size() == 0 {
        return Ok(Some(String::new()));
    }
    let text = match attribute.dtype()?.to_descriptor()? {
        TypeDescriptor::FixedAscii(size) | TypeDescriptor::FixedUnicode(size) => {
            hdf5_raw::read_fixed_text_attr(&attribute, size)?
                .into_iter()
                .next()
        }
        TypeDescriptor::VarLenAscii => attribute
            .read_raw::<VarLenAscii>()?
            .first()
            .map(|s| s.as_str().to_string()),
        TypeDescriptor::VarLenUnicode => attribute
            .read_raw::<VarLenUnicode>()?
            .first()
            .map(|s| s.as_str().to_string()),
        _ => None,
    };
    Ok(text)
}

/// The usual name of a registered HDF5 filter (https://github.com/HDFGroup/hdf5_plugins, registered filters).
fn filter_name(id: i32) -> &'static str {
    match id {
        1 => "deflate",
        2 => "shuffle",
        3 => "fletcher32",
        4 => "szip",
        5 => "nbit",
        6 => "scaleoffset",
        307 => "bzip2",
        32000 => "lzf",
        32001 => "blosc",
        32004 => "lz4",
        32008 => "bitshuffle",
        32013 => "zfp",
        32015 => "zstd",
        32017 => "sz",
        32026 => "blosc2",
        _ => "an unregistered or plugin filter",
    }
}

enum SuperblockEnd {
    /// The end-of-file address recorded in the superblock.
    Address(u64),
    /// The file ends inside the superblock, which needs this many bytes.
    CutShort(u64),
    /// A superblock version this check does not know, or an undefined address: leave it to HDF5.
    Unknown,
}

/// Reads the end-of-file address from a superblock (HDF5 File Format Specification, section II.A).
///
/// Versions 0 and 1: signature, 16 (v0) or 20 (v1) bytes of versions/sizes/flags, then base address, free-space
/// address, end-of-file address. Versions 2 and 3: signature, version, sizes and flags (4 bytes), then base address,
/// superblock-extension address, end-of-file address. HDF5 itself refuses a file shorter than this address.
fn superblock_end_of_file(superblock: &[u8]) -> SuperblockEnd {
    let Some(&version) = superblock.get(8) else {
        return SuperblockEnd::CutShort(9);
    };
    // (byte holding the size of offsets, byte where the base address starts)
    let (offset_size_at, base_address_at) = match version {
        0 => (13, 24),
        1 => (13, 28),
        2 | 3 => (9, 12),
        _ => return SuperblockEnd::Unknown,
    };
    let Some(&offset_size) = superblock.get(offset_size_at) else {
        return SuperblockEnd::CutShort(offset_size_at as u64 + 1);
    };
    let offset_size = usize::from(offset_size);
    if !matches!(offset_size, 2 | 4 | 8) {
        return SuperblockEnd::Unknown;
    }
    // The end-of-file address is the third address field in every version.
    let at = base_address_at + 2 * offset_size;
    let Some(bytes) = superblock.get(at..at + offset_size) else {
        return SuperblockEnd::CutShort((at + offset_size) as u64);
    };
    let mut address = 0_u64;
    for (i, &b) in bytes.iter().enumerate() {
        address |= u64::from(b) << (8 * i);
    }
    let undefined = bytes.iter().all(|&b| b == 0xff);
    if undefined {
        SuperblockEnd::Unknown
    } else {
        SuperblockEnd::Address(address)
    }
}

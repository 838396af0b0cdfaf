//! A NetCDF-4 file seen through HDF5: variables, their named dimensions, attributes, packing, and box reads.
//!
//! NetCDF-4 stores each variable as an HDF5 dataset. A dimension is a dataset marked as a dimension scale
//! (`CLASS = "DIMENSION_SCALE"`), and a variable names its dimensions through `DIMENSION_LIST`, one object
//! reference per axis. `scale_factor`, `add_offset`, `_FillValue` and `missing_value` are plain attributes that
//! HDF5 does not apply, so [`Packing`] does.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use hdf5::types::{TypeDescriptor, VarLenArray, VarLenAscii, VarLenUnicode};
use hdf5::{IndexType, IterationOrder, ObjectReference1, ReferencedObject};

use super::error::DatasetError;
use super::hdf5_raw;

/// The `NAME` netCDF-C gives a dimension that has no coordinate variable (followed by a number).
const DIMENSION_WITHOUT_VARIABLE: &str = "This is a netCDF dimension but not a netCDF variable";

/// An open NetCDF-4 (HDF5) file.
pub(crate) struct NcFile {
    path: PathBuf,
    file: hdf5::File,
}

/// One variable (HDF5 dataset) with its dimension names; cloning shares the open dataset.
#[derive(Debug, Clone)]
pub(crate) struct NcVariable {
    pub name: String,
    /// Dimension names in storage order, e.g. `["time", "level", "latitude", "longitude"]`.
    pub dims: Vec<String>,
    pub shape: Vec<usize>,
    dataset: hdf5::Dataset,
    path: PathBuf,
}

/// How stored numbers become physical values: `physical = raw * scale_factor + add_offset`, except the raw values
/// listed as fill or missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Packing {
    pub scale_factor: f64,
    pub add_offset: f64,
    /// Raw values meaning "no data", from `_FillValue` then `missing_value`, each rounded to the variable's own
    /// precision so that comparisons with stored values are exact.
    pub missing: Vec<(f64, &'static str)>,
}

impl Packing {
    /// What is wrong with a raw value, or `None` when it is a usable number.
    pub fn classify(&self, raw: f64) -> Option<&'static str> {
        if let Some((_, kind)) = self
            .missing
            .iter()
            .find(|(m, _)| *m == raw || (m.is_nan() && raw.is_nan()))
        {
            return Some(kind);
        }
        if raw.is_nan() {
            Some("NaN")
        } else if raw.is_infinite() {
            Some("infinity")
        } else {
            None
        }
    }

    /// The physical value of a raw value.
    pub fn unpack(&self, raw: f64) -> f64 {
        raw * self.scale_factor + self.add_offset
    }
}

impl NcFile {
    /// Opens a file after checking that it exists, is HDF5 and is not truncated, so that each failure gets its own
    /// error instead of a generic HDF5 one.
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        check_container(path)?;
        let file =
            hdf5::File::open(path).map_err(|e| DatasetError::hdf5(path, "opening the file", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn hdf5_error(
        &self,
        action: impl Into<String>,
    ) -> impl FnOnce(hdf5::Error) -> DatasetError + '_ {
        let action = action.into();
        move |e| DatasetError::hdf5(&self.path, action, e)
    }

    /// Names of the root group's datasets, in creation order when the file tracks it (netCDF-C files do).
    fn dataset_names(&self) -> Result<Vec<String>, DatasetError> {
        let names = self
            .file
            .member_names_by(IndexType::CreationOrder, IterationOrder::Increasing)
            .or_else(|_| self.file.member_names())
            .map_err(self.hdf5_error("listing variables"))?;
        Ok(names
            .into_iter()
            .filter(|name| self.file.dataset(name).is_ok())
            .collect())
    }

    /// Variable names, leaving out the placeholder datasets netCDF-C creates for dimensions without a variable.
    pub fn variable_names(&self) -> Result<Vec<String>, DatasetError> {
        let mut variables = Vec::new();
        for name in self.dataset_names()? {
            let dataset = self
                .file
                .dataset(&name)
                .map_err(self.hdf5_error(format!("opening `{name}`")))?;
            let placeholder = text_attr(&dataset, "NAME")
                .map_err(self.hdf5_error(format!("reading NAME of `{name}`")))?
                .is_some_and(|n| n.starts_with(DIMENSION_WITHOUT_VARIABLE));
            if !placeholder {
                variables.push(name);
            }
        }
        Ok(variables)
    }

    /// Dimensions (dimension-scale datasets) and their lengths.
    pub fn dimensions(&self) -> Result<Vec<(String, usize)>, DatasetError> {
        let mut dimensions = Vec::new();
        for name in self.dataset_names()? {
            let dataset = self
                .file
                .dataset(&name)
                .map_err(self.hdf5_error(format!("opening `{name}`")))?;
            if is_dimension_scale(&dataset)
                .map_err(self.hdf5_error(format!("reading CLASS of `{name}`")))?
            {
                dimensions.push((name, dataset.shape().first().copied().unwrap_or(0)));
            }
        }
        Ok(dimensions)
    }

    pub fn has_variable(&self, name: &str) -> bool {
        self.file.dataset(name).is_ok()
    }

    /// Opens variable `name`; [`DatasetError::MissingVariable`] lists what the file has instead.
    pub fn variable(&self, name: &str) -> Result<NcVariable, DatasetError> {
        let Ok(dataset) = self.file.dataset(name) else {
            return Err(DatasetError::MissingVariable {
                path: self.path.clone(),
                variable: name.to_string(),
                available: self.variable_names()?,
            });
        };
        let dims = self.dimension_names(name, &dataset)?;
        Ok(NcVariable {
            name: name.to_string(),
            shape: dataset.shape(),
            dims,
            dataset,
            path: self.path.clone(),
        })
    }

    /// Dimension names of a dataset: itself for a coordinate variable, the scales referenced by `DIMENSION_LIST`
    /// otherwise, and netCDF-C's `phony_dim_<i>` for axes without a scale.
    fn dimension_names(
        &self,
        name: &str,
        dataset: &hdf5::Dataset,
    ) -> Result<Vec<String>, DatasetError> {
        let ndim = dataset.ndim();
        let phony = |axis: usize| format!("phony_dim_{axis}");
        if ndim == 1
            && is_dimension_scale(dataset).map_err(self.hdf5_error(format!("reading `{name}`")))?
        {
            return Ok(vec![name.to_string()]);
        }
        let has_list = dataset
            .attr_names()
            .map_err(self.hdf5_error(format!("listing attributes of `{name}`")))?;
        if !has_list.iter().any(|a| a == "DIMENSION_LIST") {
            return Ok((0..ndim).map(phony).collect());
        }
        let lists = dataset
            .attr("DIMENSION_LIST")
            .and_then(|a| a.read_raw::<VarLenArray<ObjectReference1>>())
            .map_err(self.hdf5_error(format!("reading DIMENSION_LIST of `{name}`")))?;
        let mut names = Vec::with_capacity(ndim);
        for (axis, list) in lists.iter().enumerate() {
            let scale_name = match list.as_slice().first() {
                Some(reference) => match self.file.dereference(reference) {
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
}

impl NcVariable {
    fn hdf5_error(
        &self,
        action: impl Into<String>,
    ) -> impl FnOnce(hdf5::Error) -> DatasetError + '_ {
        let action = format!("{} of `{}`", action.into(), self.name);
        move |e| DatasetError::hdf5(&self.path, action, e)
    }

    /// A text attribute, `None` when absent or not text.
    pub fn text_attr(&self, name: &str) -> Result<Option<String>, DatasetError> {
        text_attr(&self.dataset, name)
            .map_err(self.hdf5_error(format!("reading attribute `{name}`")))
    }

    /// A numeric attribute's values, `None` when absent; [`DatasetError::BadAttribute`] when it is not numeric.
    pub fn number_attr(&self, name: &str) -> Result<Option<Vec<f64>>, DatasetError> {
        let names = self
            .dataset
            .attr_names()
            .map_err(self.hdf5_error("listing attributes"))?;
        if !names.iter().any(|n| n == name) {
            return Ok(None);
        }
        let attribute = self
            .dataset
            .attr(name)
            .map_err(self.hdf5_error(format!("opening attribute `{name}`")))?;
        let numeric = attribute
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map(|d| is_numeric_descriptor(&d))
            .map_err(self.hdf5_error(format!("reading the type of attribute `{name}`")))?;
        if !numeric {
            return Err(DatasetError::BadAttribute {
                path: self.path.clone(),
                variable: self.name.clone(),
                attribute: name.to_string(),
                detail: "expected a number".to_string(),
            });
        }
        attribute
            .read_raw::<f64>()
            .map(Some)
            .map_err(self.hdf5_error(format!("reading attribute `{name}`")))
    }

    /// The first value of a numeric attribute; an empty attribute is a [`DatasetError::BadAttribute`].
    fn scalar_attr(&self, name: &str) -> Result<Option<f64>, DatasetError> {
        match self.number_attr(name)? {
            None => Ok(None),
            Some(values) => {
                values
                    .first()
                    .copied()
                    .map(Some)
                    .ok_or_else(|| DatasetError::BadAttribute {
                        path: self.path.clone(),
                        variable: self.name.clone(),
                        attribute: name.to_string(),
                        detail: "has no value".to_string(),
                    })
            }
        }
    }

    fn descriptor(&self) -> Result<TypeDescriptor, DatasetError> {
        self.dataset
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(self.hdf5_error("reading the type"))
    }

    /// True for integer and floating-point variables (not strings or compounds).
    pub fn is_numeric(&self) -> Result<bool, DatasetError> {
        Ok(is_numeric_descriptor(&self.descriptor()?))
    }

    /// True when the dataset is a dimension scale (a coordinate variable or a bare dimension).
    pub fn is_dimension_scale(&self) -> Result<bool, DatasetError> {
        is_dimension_scale(&self.dataset).map_err(self.hdf5_error("reading CLASS"))
    }

    /// `scale_factor`, `add_offset`, `_FillValue` and `missing_value`, with their CF defaults.
    pub fn packing(&self) -> Result<Packing, DatasetError> {
        let single_precision = matches!(
            self.descriptor()?,
            TypeDescriptor::Float(hdf5::types::FloatSize::U4)
        );
        let own_precision = |v: f64| {
            if single_precision {
                f64::from(v as f32)
            } else {
                v
            }
        };
        let mut missing = Vec::new();
        for (attribute, kind) in [
            ("_FillValue", "fill value"),
            ("missing_value", "missing_value"),
        ] {
            for value in self.number_attr(attribute)?.unwrap_or_default() {
                missing.push((own_precision(value), kind));
            }
        }
        Ok(Packing {
            scale_factor: self.scalar_attr("scale_factor")?.unwrap_or(1.0),
            add_offset: self.scalar_attr("add_offset")?.unwrap_or(0.0),
            missing,
        })
    }

    /// Reads the box `start .. start + count` as stored numbers (not unpacked), converted to f64.
    ///
    /// Returns [count[0], count[1], ..] row-major.
    pub fn read_raw(&self, start: &[usize], count: &[usize]) -> Result<Vec<f64>, DatasetError> {
        let within = start.len() == self.shape.len()
            && count.len() == self.shape.len()
            && start
                .iter()
                .zip(count)
                .zip(&self.shape)
                .all(|((s, c), n)| s + c <= *n);
        if !within {
            return Err(DatasetError::InvalidDataset {
                path: self.path.clone(),
                detail: format!(
                    "box {start:?} + {count:?} is outside `{}` of shape {:?}",
                    self.name, self.shape
                ),
            });
        }
        hdf5_raw::read_box::<f64>(&self.dataset, start, count)
            .map_err(self.hdf5_error("reading values"))
    }

    /// Reads the whole variable as stored numbers, converted to f64.
    pub fn read_all_raw(&self) -> Result<Vec<f64>, DatasetError> {
        let start = vec![0; self.shape.len()];
        self.read_raw(&start, &self.shape.clone())
    }
}

fn is_numeric_descriptor(descriptor: &TypeDescriptor) -> bool {
    matches!(
        descriptor,
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_)
    )
}

fn is_dimension_scale(dataset: &hdf5::Dataset) -> hdf5::Result<bool> {
    Ok(text_attr(dataset, "CLASS")?.as_deref() == Some("DIMENSION_SCALE"))
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

/// HDF5's format signature, found at byte 0 or at 512, 1024, 2048, ... after a user block.
const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// Checks existence, the HDF5 signature and the superblock's end-of-file address before handing the file to HDF5.
fn check_container(path: &Path) -> Result<(), DatasetError> {
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DatasetError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(DatasetError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let not_netcdf = |detail: &str| DatasetError::NotNetcdf {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if metadata.is_dir() {
        return Err(not_netcdf("it is a directory (a Zarr store?)"));
    }
    let actual_bytes = metadata.len();
    let io_error = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io_error)?;
    // Enough for the signature search up to a 64 KiB user block and a superblock after it.
    let mut head = Vec::new();
    file.by_ref()
        .take(65_536 + 128)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    if head.is_empty() {
        return Err(not_netcdf("the file is empty"));
    }
    let signature_at = std::iter::once(0)
        .chain((9..=16).map(|p| 1_usize << p))
        .find(|&offset| head.get(offset..offset + 8) == Some(&HDF5_SIGNATURE[..]));
    let Some(offset) = signature_at else {
        return Err(match head.get(..4) {
            Some([b'C', b'D', b'F', 1 | 2 | 5]) => not_netcdf(
                "it is NetCDF classic/64-bit-offset/CDF5, not NetCDF-4; convert it with `nccopy -k nc4 IN OUT`",
            ),
            _ => not_netcdf("no HDF5 signature"),
        });
    };
    match superblock_end_of_file(&head[offset..]) {
        SuperblockEnd::Address(expected_bytes) if expected_bytes > actual_bytes => {
            Err(DatasetError::Truncated {
                path: path.to_path_buf(),
                expected_bytes,
                actual_bytes,
            })
        }
        SuperblockEnd::CutShort(needed) => Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            expected_bytes: offset as u64 + needed,
            actual_bytes,
        }),
        SuperblockEnd::Address(_) | SuperblockEnd::Unknown => Ok(()),
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

//! [`Netcdf3Source`]: netCDF-3 classic and 64-bit offset files (what the old CDS API, MARS and `grib_to_netcdf`
//! write), read with the `netcdf3` crate.
//!
//! The crate's reader holds the file open through a non-`Send` handle, so the source keeps only the metadata
//! and opens the file again for each read (parsing a header costs microseconds next to reading fields). Record
//! variables (on the unlimited dimension) are read record by record; a fixed-size variable can only be read
//! whole, so it is read once and kept in its stored type.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use netcdf3::{DataType, DataVector, FileReader, Version};

use super::error::DatasetError;
use super::source::{
    AttrValue, Dimension, GriddedSource, SourceFormat, ValueType, VariableInfo, check_box, copy_box,
};

/// A netCDF-3 file with its header read.
pub struct Netcdf3Source {
    path: PathBuf,
    format: SourceFormat,
    dimensions: Vec<Dimension>,
    variables: Vec<VariableInfo>,
    /// Per variable: whether it is a record variable (its first dimension is the unlimited one).
    record: Vec<bool>,
    /// Fixed-size variables read so far, in their stored type.
    whole: Mutex<HashMap<String, Arc<DataVector>>>,
}

impl std::fmt::Debug for Netcdf3Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netcdf3Source")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("variables", &self.variables.len())
            .finish()
    }
}

impl Netcdf3Source {
    /// Reads the header of a classic or 64-bit offset file.
    pub(crate) fn open(path: &Path) -> Result<Self, DatasetError> {
        let reader = FileReader::open(path).map_err(|e| DatasetError::NotNetcdf {
            path: path.to_path_buf(),
            detail: if e.header_is_incomplete() {
                "it starts like netCDF-3 but ends inside its header: the file is truncated (an interrupted \
                 download or copy?)"
                    .to_string()
            } else {
                format!(
                    "it starts like netCDF-3 but its header cannot be read ({e}); if another tool reads it, \
                     convert it with `nccopy -k nc4 IN OUT`"
                )
            },
        })?;
        let format = match reader.version() {
            Version::Classic => SourceFormat::Netcdf3Classic,
            Version::Offset64Bit => SourceFormat::Netcdf3Offset64,
        };
        let data_set = reader.data_set();
        let dimensions = data_set
            .get_dims()
            .iter()
            .map(|d| Dimension {
                name: d.name(),
                len: d.size(),
                unlimited: d.is_unlimited(),
            })
            .collect();
        let mut variables = Vec::new();
        let mut record = Vec::new();
        for variable in data_set.get_vars() {
            let name = variable.name().to_string();
            let dims = variable.get_dims();
            let value_type = match variable.data_type() {
                DataType::I8 => ValueType::I8,
                DataType::U8 => ValueType::Text,
                DataType::I16 => ValueType::I16,
                DataType::I32 => ValueType::I32,
                DataType::F32 => ValueType::F32,
                DataType::F64 => ValueType::F64,
            };
            let attributes = data_set
                .get_var_attrs(&name)
                .unwrap_or_default()
                .into_iter()
                .map(|attribute| {
                    let value = match attribute.data_type() {
                        DataType::U8 => {
                            AttrValue::Text(attribute.get_as_string().unwrap_or_default())
                        }
                        DataType::I8 => numbers(attribute.get_i8()),
                        DataType::I16 => numbers(attribute.get_i16()),
                        DataType::I32 => numbers(attribute.get_i32()),
                        DataType::F32 => numbers(attribute.get_f32()),
                        DataType::F64 => numbers(attribute.get_f64()),
                    };
                    (attribute.name().to_string(), value)
                })
                .collect();
            record.push(variable.is_record_var());
            variables.push(VariableInfo {
                dims: dims.iter().map(|d| d.name()).collect(),
                shape: dims.iter().map(|d| d.size()).collect(),
                name,
                value_type,
                attributes,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            format,
            dimensions,
            variables,
            record,
            whole: Mutex::new(HashMap::new()),
        })
    }

    fn read_error(&self, variable: &str, error: netcdf3::ReadError) -> DatasetError {
        DatasetError::Netcdf3 {
            path: self.path.clone(),
            detail: match error {
                netcdf3::ReadError::IOErrorKind(std::io::ErrorKind::UnexpectedEof) => format!(
                    "reading `{variable}`: the file ends before the data its header describes: it is truncated \
                     (an interrupted download or copy?)"
                ),
                other => format!("reading `{variable}`: {other} (a truncated file?)"),
            },
        }
    }

    fn open_reader(&self, variable: &str) -> Result<FileReader, DatasetError> {
        FileReader::open(&self.path).map_err(|e| self.read_error(variable, e))
    }
}

fn numbers<T: Copy + Into<f64>>(values: Option<&[T]>) -> AttrValue {
    AttrValue::Numbers(
        values
            .unwrap_or_default()
            .iter()
            .map(|&v| v.into())
            .collect(),
    )
}

/// Element `n` of a vector of any netCDF-3 type, as f64 (text bytes as their code).
fn element(values: &DataVector, n: usize) -> f64 {
    match values {
        DataVector::I8(v) => f64::from(v[n]),
        DataVector::U8(v) => f64::from(v[n]),
        DataVector::I16(v) => f64::from(v[n]),
        DataVector::I32(v) => f64::from(v[n]),
        DataVector::F32(v) => f64::from(v[n]),
        DataVector::F64(v) => v[n],
    }
}

impl GriddedSource for Netcdf3Source {
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

    fn read(
        &self,
        variable: &str,
        start: &[usize],
        count: &[usize],
    ) -> Result<Vec<f64>, DatasetError> {
        let index = self.variables.iter().position(|v| v.name == variable);
        let Some(index) = index else {
            return Err(DatasetError::MissingVariable {
                path: self.path.clone(),
                variable: variable.to_string(),
                available: self.variables.iter().map(|v| v.name.clone()).collect(),
            });
        };
        let info = &self.variables[index];
        check_box(&self.path, info, start, count)?;
        if count.contains(&0) {
            return Ok(Vec::new());
        }
        let short = |values: &DataVector, expected: usize| {
            (values.len() < expected).then(|| DatasetError::Netcdf3 {
                path: self.path.clone(),
                detail: format!(
                    "reading `{variable}`: {} values where the header promises {expected} (a truncated file?)",
                    values.len()
                ),
            })
        };
        if self.record[index] && !info.shape.is_empty() {
            // One record = the variable's values at one index of the unlimited (first) dimension.
            let mut reader = self.open_reader(variable)?;
            let record_shape = &info.shape[1..];
            let record_len: usize = record_shape.iter().product();
            let mut out = Vec::with_capacity(count.iter().product());
            for r in start[0]..start[0] + count[0] {
                let values = reader
                    .read_record(variable, r)
                    .map_err(|e| self.read_error(variable, e))?;
                if let Some(error) = short(&values, record_len) {
                    return Err(error);
                }
                out.extend(copy_box(
                    record_shape,
                    record_shape,
                    &start[1..],
                    &count[1..],
                    f64::NAN,
                    |n| element(&values, n),
                ));
            }
            return Ok(out);
        }
        let cached = self
            .whole
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(variable)
            .cloned();
        let values = match cached {
            Some(values) => values,
            None => {
                let values = Arc::new(
                    self.open_reader(variable)?
                        .read_var(variable)
                        .map_err(|e| self.read_error(variable, e))?,
                );
                if let Some(error) = short(&values, info.len()) {
                    return Err(error);
                }
                self.whole
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(variable.to_string(), Arc::clone(&values));
                values
            }
        };
        Ok(copy_box(
            &info.shape,
            &info.shape,
            start,
            count,
            f64::NAN,
            |n| element(&values, n),
        ))
    }
}

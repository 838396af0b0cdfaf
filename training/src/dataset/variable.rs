//! Decoded reads of any variable by its named dimensions, gridded or not: a box of a field, a statistics file's
//! per-level vector, a scalar. The same unpacking and missing-value rules as every channel ([`Decoding`]), but
//! no axis resolution: the caller says which index of which dimension it wants.

use super::decode::Decoding;
use super::error::DatasetError;
use super::source::GriddedSource;

/// A whole variable in physical units with its named dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray {
    pub name: String,
    /// Dimension names in storage order (empty for a scalar).
    pub dims: Vec<String>,
    pub shape: Vec<usize>,
    /// Values row-major over `shape`.
    pub values: Vec<f64>,
}

/// Reads every value of `name`, decoded; a missing value is an error naming where it is.
pub fn read_variable(source: &dyn GriddedSource, name: &str) -> Result<NamedArray, DatasetError> {
    let info = source.require(name)?;
    let (dims, shape) = (info.dims.clone(), info.shape.clone());
    let values = read_decoded(source, name, &vec![0; shape.len()], &shape)?;
    Ok(NamedArray {
        name: name.to_string(),
        dims,
        shape,
        values,
    })
}

/// Reads the box `start .. start + count` of `name` in physical units: [count[0], count[1], ..] row-major.
///
/// A fill value, `missing_value`, netCDF default fill, NaN or infinity is [`DatasetError::MissingValue`] naming
/// the variable and the position along each dimension.
pub fn read_decoded(
    source: &dyn GriddedSource,
    name: &str,
    start: &[usize],
    count: &[usize],
) -> Result<Vec<f64>, DatasetError> {
    let info = source.require(name)?;
    source.check_readable(name)?;
    let decoding = Decoding::of(source, info)?;
    let mut values = source.read(name, start, count)?;
    for (n, value) in values.iter_mut().enumerate() {
        match decoding.decode(*value) {
            Ok(physical) => *value = physical,
            Err(what) => {
                let mut rest = n;
                let mut position = vec![0; count.len()];
                for d in (0..count.len()).rev() {
                    position[d] = start[d] + rest % count[d].max(1);
                    rest /= count[d].max(1);
                }
                return Err(DatasetError::MissingValue {
                    path: source.path().to_path_buf(),
                    variable: name.to_string(),
                    position: info.dims.iter().cloned().zip(position).collect(),
                    what,
                });
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::open_source;

    fn graphcast_fixture(name: &str) -> std::path::PathBuf {
        super::super::fixture_path("graphcast").join(name)
    }

    #[test]
    fn a_statistics_vector_and_a_scalar_read_with_their_dimensions() {
        let source = open_source(&graphcast_fixture("stats/mean_by_level.nc")).unwrap();
        let levels = read_variable(source.as_ref(), "level").unwrap();
        assert_eq!(levels.dims, ["level"]);
        assert_eq!(levels.values.len(), 13);
        assert_eq!(levels.values[0], 50.0);
        let geopotential = read_variable(source.as_ref(), "geopotential").unwrap();
        assert_eq!(
            (geopotential.dims.as_slice(), geopotential.shape.as_slice()),
            (&["level".to_string()][..], &[13][..])
        );
        let scalar = read_variable(source.as_ref(), "2m_temperature").unwrap();
        assert!(scalar.dims.is_empty() && scalar.values.len() == 1);
        assert!(matches!(
            read_variable(source.as_ref(), "nothing"),
            Err(DatasetError::MissingVariable { .. })
        ));
    }

    #[test]
    fn a_box_of_a_batch_field_comes_back_row_major() {
        let source = open_source(&graphcast_fixture("dataset/fixture_a_example_batch.nc")).unwrap();
        let whole = read_variable(source.as_ref(), "temperature").unwrap();
        assert_eq!(whole.dims, ["batch", "time", "level", "lat", "lon"]);
        let [_, t, l, y, x] = whole.shape[..] else {
            panic!("{:?}", whole.shape)
        };
        let part = read_decoded(
            source.as_ref(),
            "temperature",
            &[1, 2, 3, 0, 0],
            &[1, 1, 1, y, x],
        )
        .unwrap();
        let offset = ((t + 2) * l + 3) * y * x;
        assert_eq!(part, whole.values[offset..offset + y * x]);
    }
}

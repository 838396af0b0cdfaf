//! Tables and documents of the application's outputs, each written as one unit through
//! [`weatherlens_models::files`].

use std::path::Path;

use serde::Serialize;
use weatherlens_models::files::{self, FileError};

/// `rows` as CSV with a header line (the field names).
///
/// # Errors
/// Only for rows that serde cannot write as CSV (nested values): a programming error, reported with the file.
pub fn csv_bytes<T: Serialize>(rows: &[T]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// Writes `rows` to `path` as CSV with a header line.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), FileError> {
    let bytes =
        csv_bytes(rows).map_err(|e| FileError::new("writing", path, std::io::Error::other(e)))?;
    files::write_atomic(path, &bytes)
}

/// Writes `value` to `path` as indented JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| FileError::new("writing", path, std::io::Error::other(e)))?;
    files::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        layer: usize,
        value: f64,
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        let rows = [
            Row {
                layer: 0,
                value: 1.5,
            },
            Row {
                layer: 1,
                value: -2.0,
            },
        ];
        write_csv(&path, &rows).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "layer,value\n0,1.5\n1,-2.0\n"
        );
    }
}

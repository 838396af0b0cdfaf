//! Writing result files so that a reader never sees half of one: write a temporary sibling, then rename.

use std::path::Path;

use serde::Serialize;

/// Write `contents` to `path` through `path.tmp` and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// `rows` as CSV with a header line (the field names).
pub fn csv_bytes<T: Serialize>(rows: &[T]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
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
    fn csv_has_a_header_and_the_file_no_temporary_left() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = csv_bytes(&[
            Row {
                layer: 0,
                value: 1.5,
            },
            Row {
                layer: 1,
                value: -2.0,
            },
        ])
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "layer,value\n0,1.5\n1,-2.0\n"
        );
        let path = dir.path().join("x.csv");
        write_atomic(&path, &bytes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert!(!dir.path().join("x.tmp").exists());
    }
}

//! Where the representations compared by `weatherlens compare` come from: a probe recording (folder with
//! `probes.safetensors` + `probes.json`) or any safetensors file holding a [samples, features] or
//! [samples, nodes, latent] tensor (e.g. latents exported from GraphCast or Aurora in Python).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::{META_FILE, RecordError, TENSORS_FILE, read_meta, read_tensor};

/// A latitude band of mesh nodes, for region-wise alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    Global,
    /// |lat| <= 23.5°.
    Tropics,
    /// 30°N to 60°N.
    NhMid,
    /// 60°S to 30°S.
    ShMid,
}

impl Region {
    pub fn contains(self, lat: f64) -> bool {
        match self {
            Region::Global => true,
            Region::Tropics => lat.abs() <= 23.5,
            Region::NhMid => (30.0..=60.0).contains(&lat),
            Region::ShMid => (-60.0..=-30.0).contains(&lat),
        }
    }
}

/// How a [samples, nodes, latent] tensor becomes a [rows, latent] matrix.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rows {
    /// Keep one sample (time): rows are nodes.
    pub sample: Option<usize>,
    /// Keep one node: rows are times.
    pub node: Option<usize>,
    /// Keep nodes in this band (recordings only).
    pub region: Option<Region>,
}

/// A matrix ready for the alignment metrics.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub source: String,
    /// [rows, features] row-major.
    pub data: Vec<f64>,
    pub rows: usize,
    pub features: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Load tensor `name` from `path` (a recording folder or a safetensors file) and cut its rows.
pub fn load_matrix(path: &Path, name: &str, rows: Rows) -> Result<Matrix, InputError> {
    let (file, node_lat) = if path.is_dir() {
        let meta = read_meta(path)?;
        (path.join(TENSORS_FILE), Some(meta.node_lat))
    } else {
        (path.to_path_buf(), None)
    };
    let invalid = |reason: String| InputError::Invalid {
        path: file.clone(),
        reason,
    };
    let (values, shape) = read_tensor(&file, name)?;
    let source = format!("{}:{name}", path.display());
    match shape.as_slice() {
        &[samples, features] => {
            if rows.sample.is_some() || rows.node.is_some() || rows.region.is_some() {
                return Err(invalid(format!(
                    "`{name}` is [samples, features]: --sample, --node and --region need [samples, nodes, latent]"
                )));
            }
            Ok(Matrix {
                source,
                data: values,
                rows: samples,
                features,
            })
        }
        &[samples, nodes, latent] => {
            let keep_node = |n: usize| -> Result<bool, InputError> {
                if let Some(node) = rows.node {
                    return Ok(n == node);
                }
                match (rows.region, &node_lat) {
                    (None, _) => Ok(true),
                    (Some(region), Some(lat)) => Ok(region.contains(lat[n])),
                    (Some(_), None) => Err(invalid(format!(
                        "--region needs a recording folder (with {META_FILE}) to know node latitudes"
                    ))),
                }
            };
            if let Some(s) = rows.sample.filter(|&s| s >= samples) {
                return Err(invalid(format!(
                    "--sample {s}: `{name}` has {samples} samples"
                )));
            }
            if let Some(n) = rows.node.filter(|&n| n >= nodes) {
                return Err(invalid(format!("--node {n}: `{name}` has {nodes} nodes")));
            }
            let mut data = Vec::new();
            let mut count = 0;
            for s in 0..samples {
                if rows.sample.is_some_and(|keep| keep != s) {
                    continue;
                }
                for n in 0..nodes {
                    if keep_node(n)? {
                        let start = (s * nodes + n) * latent;
                        data.extend_from_slice(&values[start..start + latent]);
                        count += 1;
                    }
                }
            }
            Ok(Matrix {
                source,
                data,
                rows: count,
                features: latent,
            })
        }
        other => Err(invalid(format!(
            "`{name}` has shape {other:?}; [samples, features] or [samples, nodes, latent] expected"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_safetensors(path: &Path, name: &str, shape: &[usize], values: &[f32]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let header = serde_json::json!({ name: {"dtype": "F32", "shape": shape, "data_offsets": [0, bytes.len()]} });
        let mut h = serde_json::to_vec(&header).unwrap();
        h.resize(h.len().div_ceil(8) * 8, b' ');
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        out.extend(bytes);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn rows_are_cut_by_sample_and_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        // [2 samples, 3 nodes, 2 latent]: value = 100 s + 10 n + c
        let values: Vec<f32> = (0..2)
            .flat_map(|s| {
                (0..3).flat_map(move |n| (0..2).map(move |c| (100 * s + 10 * n + c) as f32))
            })
            .collect();
        write_safetensors(&path, "latent", &[2, 3, 2], &values);
        let all = load_matrix(&path, "latent", Rows::default()).unwrap();
        assert_eq!((all.rows, all.features), (6, 2));
        let one_time = load_matrix(
            &path,
            "latent",
            Rows {
                sample: Some(1),
                ..Rows::default()
            },
        )
        .unwrap();
        assert_eq!(
            one_time.data,
            vec![100.0, 101.0, 110.0, 111.0, 120.0, 121.0]
        );
        let one_node = load_matrix(
            &path,
            "latent",
            Rows {
                node: Some(2),
                ..Rows::default()
            },
        )
        .unwrap();
        assert_eq!(one_node.data, vec![20.0, 21.0, 120.0, 121.0]);
        let err = load_matrix(
            &path,
            "latent",
            Rows {
                region: Some(Region::Tropics),
                ..Rows::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--region"), "{err}");
        let err = load_matrix(&path, "nope", Rows::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("latent"), "{err}");
        let err = load_matrix(
            &path,
            "latent",
            Rows {
                sample: Some(5),
                ..Rows::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("2 samples"), "{err}");
    }
}

//! Recording hook points to disk: `probes.safetensors` (one [samples, nodes, latent] f32 tensor per hook name)
//! plus `probes.json` (what was recorded, where and when).
//!
//! The tensor shapes are known before the first forward pass, so the safetensors header is written first and
//! each batch is written straight to its place in the file: memory stays at one batch of the chosen nodes, not
//! the whole run. The file is written under a temporary name and renamed when complete.
//!
//! Both files carry the same random recording id (`recording_id` in `probes.json`, and in the safetensors
//! header's `__metadata__`), and [`read_meta`] checks every fact of `probes.json` against the tensors before
//! anyone uses it: a pair from two different recordings (an interrupted re-recording, a copied file) is an
//! error naming both, never an index out of bounds.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use weatherlens_models::files::{self, AtomicFile, FileError};
use weatherlens_models::hooks::{HookPoint, Observer};

use crate::stats::seeded_subsample;

pub const TENSORS_FILE: &str = "probes.safetensors";
pub const META_FILE: &str = "probes.json";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("recording expected {expected} samples but the forward passes gave {got}")]
    SampleCount { expected: usize, got: usize },
    #[error("hook point {point} produced non-finite values (sample {sample})")]
    NotFinite { point: String, sample: usize },
}

/// Which mesh nodes to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NodeSelection {
    All,
    /// Nodes with lat_min <= lat <= lat_max (degrees).
    Band {
        lat_min: f64,
        lat_max: f64,
    },
    /// `count` nodes drawn without replacement with `seed`, kept in index order.
    Random {
        count: usize,
        seed: u64,
    },
}

impl NodeSelection {
    /// The selected node indices (ascending) given every mesh node's latitude in degrees.
    pub fn indices(&self, node_lat: &[f64]) -> Vec<u32> {
        match self {
            NodeSelection::All => (0..node_lat.len() as u32).collect(),
            NodeSelection::Band { lat_min, lat_max } => (0..node_lat.len())
                .filter(|&n| node_lat[n] >= *lat_min && node_lat[n] <= *lat_max)
                .map(|n| n as u32)
                .collect(),
            NodeSelection::Random { count, seed } => {
                seeded_subsample(node_lat.len(), *count, *seed)
                    .into_iter()
                    .map(|n| n as u32)
                    .collect()
            }
        }
    }
}

/// Everything `probes.json` says about a recording; Python readers rely on these names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    /// Random id shared with the safetensors header (`__metadata__.recording_id`): which tensors this
    /// description belongs to. Empty in recordings made before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recording_id: String,
    /// Free text naming the model (e.g. the run name and processor kind).
    pub model: String,
    /// The checkpoint folder the weights came from.
    pub checkpoint: String,
    /// Hook names recorded, each a tensor [samples, nodes, latent] in `probes.safetensors`.
    pub hooks: Vec<String>,
    /// Processor layers recorded.
    pub layers: Vec<usize>,
    /// Valid time of each sample's initial state (ISO 8601).
    pub sample_times: Vec<String>,
    /// Mesh node indices kept, and their coordinates in degrees.
    pub node_indices: Vec<u32>,
    pub node_lat: Vec<f64>,
    pub node_lon: Vec<f64>,
    pub latent_size: usize,
    /// Icosahedral level of the mesh the node indices refer to.
    pub mesh_level: u32,
}

/// An [`Observer`] that streams the chosen hook points to `probes.safetensors`.
///
/// Call [`ProbeRecorder::end_batch`] after each forward pass, and [`ProbeRecorder::finish`] at the end.
pub struct ProbeRecorder {
    points: Vec<HookPoint>,
    node_index: Tensor<1, Int>,
    /// Whether `node_index` is 0, 1, .., nodes − 1: then a tensor of exactly `nodes` rows is kept as it is.
    all_nodes_in_order: bool,
    nodes: usize,
    latent: usize,
    samples: usize,
    offsets: BTreeMap<String, u64>,
    data_start: u64,
    recording_id: String,
    /// `probes.safetensors` under its temporary name until [`Self::finish`].
    file: RefCell<AtomicFile>,
    cursor: Cell<usize>,
    batch: Cell<usize>,
    failure: RefCell<Option<RecordError>>,
}

impl ProbeRecorder {
    /// Prepare `out_dir/probes.safetensors` for `samples` samples of `points`, keeping `node_indices`.
    pub fn create(
        out_dir: &Path,
        points: Vec<HookPoint>,
        node_indices: &[u32],
        latent: usize,
        samples: usize,
        device: &Device,
    ) -> Result<Self, RecordError> {
        files::create_dir_all(out_dir)?;
        let nodes = node_indices.len();
        let bytes_per_tensor = (samples * nodes * latent * 4) as u64;
        let recording_id = new_recording_id();
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".into(),
            serde_json::json!({ "recording_id": recording_id, "producer": "weatherlens" }),
        );
        let mut offsets = BTreeMap::new();
        for (k, point) in points.iter().enumerate() {
            let start = k as u64 * bytes_per_tensor;
            let name = point.to_string();
            header.insert(
                name.clone(),
                serde_json::json!({
                    "dtype": "F32",
                    "shape": [samples, nodes, latent],
                    "data_offsets": [start, start + bytes_per_tensor],
                }),
            );
            offsets.insert(name, start);
        }
        let mut header = serde_json::to_vec(&header).expect("a JSON map always serialises");
        // The data section must start 8-byte aligned: pad the header with spaces.
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let data_start = 8 + header.len() as u64;
        let mut file = AtomicFile::create(&out_dir.join(TENSORS_FILE))?;
        let target = file.target().to_path_buf();
        let disk = file.file();
        disk.set_len(data_start + points.len() as u64 * bytes_per_tensor)
            .and_then(|_| disk.write_all_at(&(header.len() as u64).to_le_bytes(), 0))
            .and_then(|_| disk.write_all_at(&header, 8))
            .map_err(FileError::at("writing", &target))?;
        let index: Vec<i64> = node_indices.iter().map(|&n| i64::from(n)).collect();
        Ok(Self {
            points,
            node_index: Tensor::from_data(TensorData::new(index, [nodes]), device),
            all_nodes_in_order: node_indices
                .iter()
                .enumerate()
                .all(|(k, &n)| n as usize == k),
            nodes,
            latent,
            samples,
            offsets,
            data_start,
            recording_id,
            file: RefCell::new(file),
            cursor: Cell::new(0),
            batch: Cell::new(0),
            failure: RefCell::new(None),
        })
    }

    /// The id written into the safetensors header: put it into the recording's [`RecordingMeta`].
    pub fn recording_id(&self) -> &str {
        &self.recording_id
    }

    /// Mark the end of one forward pass of `batch` samples.
    pub fn end_batch(&self, batch: usize) {
        self.cursor.set(self.cursor.get() + batch);
        self.batch.set(0);
    }

    /// Complete the file and rename it into place (on failure the temporary file is removed). Returns its
    /// path.
    pub fn finish(self) -> Result<PathBuf, RecordError> {
        if let Some(error) = self.failure.into_inner() {
            return Err(error);
        }
        if self.cursor.get() != self.samples {
            return Err(RecordError::SampleCount {
                expected: self.samples,
                got: self.cursor.get(),
            });
        }
        let file = self.file.into_inner();
        let target = file.target().to_path_buf();
        file.commit()?;
        Ok(target)
    }

    /// The destination file, for messages.
    fn target(&self) -> PathBuf {
        self.file.borrow().target().to_path_buf()
    }

    fn write(&self, point: HookPoint, tensor: &Tensor<3>) -> Result<(), RecordError> {
        let [batch, _, latent] = tensor.dims();
        let name = point.to_string();
        if latent != self.latent || self.cursor.get() + batch > self.samples {
            return Err(RecordError::Invalid {
                path: self.target(),
                reason: format!(
                    "{name}: got a [{batch}, _, {latent}] tensor at sample {} of {} (latent {})",
                    self.cursor.get(),
                    self.samples,
                    self.latent
                ),
            });
        }
        // Every copy here is a pass over the recorded data, which is as large as the activations themselves:
        // gather only when a subset of nodes is kept, convert only when the tensor is not f32 already.
        let kept = if self.all_nodes_in_order && tensor.dims()[1] == self.nodes {
            tensor.clone()
        } else {
            tensor.clone().select(1, self.node_index.clone())
        };
        let data = kept.into_data();
        let data = if data.dtype() == burn::tensor::DType::F32 {
            data
        } else {
            data.convert::<f32>()
        };
        let values = data.as_slice::<f32>().map_err(|e| RecordError::Invalid {
            path: self.target(),
            reason: format!("{name}: {e:?}"),
        })?;
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            return Err(RecordError::NotFinite {
                point: name,
                sample: self.cursor.get() + bad / (self.nodes * self.latent),
            });
        }
        let row_bytes = (self.nodes * self.latent * 4) as u64;
        let at = self.data_start + self.offsets[&name] + self.cursor.get() as u64 * row_bytes;
        // safetensors is little-endian: on such a host the values are the bytes.
        let bytes: Cow<[u8]> = if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(values))
        } else {
            Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        let mut file = self.file.borrow_mut();
        let target = file.target().to_path_buf();
        file.file()
            .write_all_at(&bytes, at)
            .map_err(|e| FileError::new("writing", &target, e).into())
    }
}

impl Observer for ProbeRecorder {
    fn wants(&self, point: HookPoint) -> bool {
        self.points.contains(&point)
    }

    fn observe(&self, point: HookPoint, tensor: &Tensor<3>) {
        if self.failure.borrow().is_some() {
            return;
        }
        self.batch.set(tensor.dims()[0]);
        if let Err(error) = self.write(point, tensor) {
            *self.failure.borrow_mut() = Some(error);
        }
    }
}

/// Write `probes.json` beside the tensors (temp name, then rename).
pub fn write_meta(out_dir: &Path, meta: &RecordingMeta) -> Result<PathBuf, RecordError> {
    let path = out_dir.join(META_FILE);
    let json = serde_json::to_vec_pretty(meta).expect("RecordingMeta always serialises");
    files::write_atomic(&path, &json)?;
    Ok(path)
}

/// 128 random bits in hex: unique to one recording.
fn new_recording_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Read `probes.json` of the recording folder `dir` and check it against `probes.safetensors` beside it:
/// the same recording id, one latitude and longitude per recorded node, every listed hook present as a
/// [samples, nodes, latent] tensor with the counts `probes.json` gives, and a resid_pre and delta tensor for
/// every listed layer.
pub fn read_meta(dir: &Path) -> Result<RecordingMeta, RecordError> {
    let path = dir.join(META_FILE);
    let bytes = files::read(&path)?;
    let meta: RecordingMeta = serde_json::from_slice(&bytes).map_err(|e| RecordError::Invalid {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    check_meta(&meta, &path, &dir.join(TENSORS_FILE))?;
    Ok(meta)
}

/// A safetensors header read without its data: `__metadata__`, and tensor name -> (dtype, shape).
struct Header {
    metadata: BTreeMap<String, String>,
    tensors: BTreeMap<String, (String, Vec<usize>)>,
}

/// The header of a safetensors file, read without its data.
fn read_header(file: &Path) -> Result<Header, RecordError> {
    use std::io::Read;
    let invalid = |reason: String| RecordError::Invalid {
        path: file.to_path_buf(),
        reason,
    };
    let mut handle = std::fs::File::open(file).map_err(FileError::at("reading", file))?;
    let mut length = [0u8; 8];
    handle
        .read_exact(&mut length)
        .map_err(|e| invalid(format!("not a safetensors file ({e})")))?;
    let length = u64::from_le_bytes(length);
    let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
    if length > size.saturating_sub(8) || length > 100_000_000 {
        return Err(invalid(format!(
            "not a safetensors file (header of {length} bytes in a file of {size})"
        )));
    }
    let mut header = vec![0u8; length as usize];
    handle
        .read_exact(&mut header)
        .map_err(FileError::at("reading", file))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| invalid(format!("not a safetensors header ({e})")))?;
    let mut metadata = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (name, value) in header {
        if name == "__metadata__" {
            if let Some(map) = value.as_object() {
                for (key, value) in map {
                    if let Some(text) = value.as_str() {
                        metadata.insert(key.clone(), text.to_string());
                    }
                }
            }
            continue;
        }
        let dtype = value["dtype"].as_str().unwrap_or("").to_string();
        let shape = value["shape"]
            .as_array()
            .map(|dims| {
                dims.iter()
                    .map(|d| d.as_u64().unwrap_or(0) as usize)
                    .collect()
            })
            .unwrap_or_default();
        tensors.insert(name, (dtype, shape));
    }
    Ok(Header { metadata, tensors })
}

fn check_meta(
    meta: &RecordingMeta,
    meta_path: &Path,
    tensors_path: &Path,
) -> Result<(), RecordError> {
    let invalid = |reason: String| RecordError::Invalid {
        path: meta_path.to_path_buf(),
        reason,
    };
    let nodes = meta.node_indices.len();
    if meta.node_lat.len() != nodes || meta.node_lon.len() != nodes {
        return Err(invalid(format!(
            "{nodes} node indices but {} latitudes and {} longitudes",
            meta.node_lat.len(),
            meta.node_lon.len()
        )));
    }
    if let Some(bad) = meta
        .node_lat
        .iter()
        .find(|lat| !(lat.is_finite() && (-90.0..=90.0).contains(*lat)))
    {
        return Err(invalid(format!("node latitude {bad} is not in [-90, 90]")));
    }
    let Header { metadata, tensors } = read_header(tensors_path)?;
    let file_id = metadata.get("recording_id").map_or("", String::as_str);
    if file_id != meta.recording_id {
        let name = |id: &str| {
            if id.is_empty() {
                "none".to_string()
            } else {
                id.to_string()
            }
        };
        return Err(invalid(format!(
            "describes recording {} but {} holds recording {}: the two files are from different recordings \
             (an interrupted or partly copied recording?); record again",
            name(&meta.recording_id),
            tensors_path.display(),
            name(file_id)
        )));
    }
    let expected = [meta.sample_times.len(), nodes, meta.latent_size];
    let mut needed: Vec<String> = meta.hooks.clone();
    for &layer in &meta.layers {
        for point in [HookPoint::ResidPre(layer), HookPoint::Delta(layer)] {
            let name = point.to_string();
            if !needed.contains(&name) {
                needed.push(name);
            }
        }
    }
    for name in &needed {
        match tensors.get(name) {
            None => {
                return Err(invalid(format!(
                    "lists `{name}`, which {} does not hold",
                    tensors_path.display()
                )));
            }
            Some((_, shape)) if name.contains("edge") => {
                // Edge tensors are [samples, edges, latent].
                if shape.len() != 3 || shape[0] != expected[0] || shape[2] != expected[2] {
                    return Err(invalid(format!(
                        "says `{name}` is [samples, edges, latent] with {} samples and latent {}, but {} holds \
                         it as {shape:?}",
                        expected[0],
                        expected[2],
                        tensors_path.display()
                    )));
                }
            }
            Some((_, shape)) if shape.as_slice() != expected => {
                return Err(invalid(format!(
                    "says `{name}` is [samples, nodes, latent] = {expected:?} ({} sample times, {nodes} nodes, \
                     latent {}), but {} holds it as {shape:?}",
                    meta.sample_times.len(),
                    meta.latent_size,
                    tensors_path.display()
                )));
            }
            Some((dtype, _)) if dtype != "F32" && dtype != "F64" => {
                return Err(invalid(format!(
                    "`{name}` is {dtype} in {}; F32 or F64 expected",
                    tensors_path.display()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A tensor of a safetensors file by name, as f64 values with its shape (F32 or F64 on disk).
pub fn read_tensor(file: &Path, name: &str) -> Result<(Vec<f64>, Vec<usize>), RecordError> {
    let invalid = |reason: String| RecordError::Invalid {
        path: file.to_path_buf(),
        reason,
    };
    let bytes = files::read(file)?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| invalid(format!("not a readable safetensors file ({e})")))?;
    let view = tensors.tensor(name).map_err(|_| {
        let mut names = tensors.names();
        names.sort();
        names.truncate(12);
        invalid(format!("no tensor `{name}` (it has: {})", names.join(", ")))
    })?;
    let values: Vec<f64> = match view.dtype() {
        safetensors::Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        safetensors::Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect(),
        other => {
            return Err(invalid(format!(
                "tensor `{name}` is {other:?}; F32 or F64 expected"
            )));
        }
    };
    Ok((values, view.shape().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_file_is_a_valid_safetensors_with_the_chosen_nodes() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let points = vec![HookPoint::ResidPre(0), HookPoint::Delta(0)];
        let recorder =
            ProbeRecorder::create(dir.path(), points.clone(), &[1, 3], 2, 3, &device).unwrap();
        // Two forward passes: batch 2 then batch 1. Value = 100·sample + 10·node + channel.
        let batch = |first: usize, count: usize| {
            let values: Vec<f32> = (first..first + count)
                .flat_map(|s| {
                    (0..4).flat_map(move |n| (0..2).map(move |c| (100 * s + 10 * n + c) as f32))
                })
                .collect();
            Tensor::<3>::from_data(TensorData::new(values, [count, 4, 2]), &device)
        };
        for (first, count) in [(0, 2), (2, 1)] {
            let t = batch(first, count);
            recorder.observe(HookPoint::ResidPre(0), &t);
            recorder.observe(HookPoint::Delta(0), &(t * 2.0));
            assert!(!recorder.wants(HookPoint::ResidPost(0)));
            recorder.end_batch(count);
        }
        let path = recorder.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let pre = file.tensor("processor.0.resid_pre").unwrap();
        assert_eq!(pre.shape(), &[3, 2, 2]);
        let read: Vec<f32> = pre
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let expected: Vec<f32> = (0..3)
            .flat_map(|s| {
                [1, 3]
                    .into_iter()
                    .flat_map(move |n| (0..2).map(move |c| (100 * s + 10 * n + c) as f32))
            })
            .collect();
        assert_eq!(read, expected);
        let delta = file.tensor("processor.0.delta").unwrap();
        assert_eq!(
            f32::from_le_bytes(delta.data()[4..8].try_into().unwrap()),
            2.0 * 11.0
        );
    }

    #[test]
    fn too_few_samples_and_nan_are_errors_and_leave_no_file() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let recorder =
            ProbeRecorder::create(dir.path(), vec![HookPoint::Delta(1)], &[0], 1, 2, &device)
                .unwrap();
        recorder.observe(HookPoint::Delta(1), &Tensor::<3>::zeros([1, 1, 1], &device));
        recorder.end_batch(1);
        assert!(matches!(
            recorder.finish(),
            Err(RecordError::SampleCount {
                expected: 2,
                got: 1
            })
        ));
        assert!(!dir.path().join(TENSORS_FILE).exists());

        let recorder =
            ProbeRecorder::create(dir.path(), vec![HookPoint::Delta(1)], &[0], 1, 1, &device)
                .unwrap();
        let nan = Tensor::<3>::from_data(TensorData::new(vec![f32::NAN], [1, 1, 1]), &device);
        recorder.observe(HookPoint::Delta(1), &nan);
        recorder.end_batch(1);
        let err = recorder.finish().unwrap_err().to_string();
        assert!(err.contains("processor.1.delta"), "{err}");
    }

    #[test]
    fn node_selections() {
        let lat = [-80.0, -10.0, 0.0, 10.0, 80.0];
        assert_eq!(NodeSelection::All.indices(&lat), vec![0, 1, 2, 3, 4]);
        let band = NodeSelection::Band {
            lat_min: -15.0,
            lat_max: 15.0,
        };
        assert_eq!(band.indices(&lat), vec![1, 2, 3]);
        let random = NodeSelection::Random { count: 3, seed: 9 };
        let picked = random.indices(&lat);
        assert_eq!(picked.len(), 3);
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(picked, random.indices(&lat), "same seed, same nodes");
    }
}

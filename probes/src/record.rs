//! Recording hook points to disk: `probes.safetensors` (one [samples, nodes, latent] f32 tensor per hook name)
//! plus `probes.json` (what was recorded, where and when).
//!
//! The tensor shapes are known before the first forward pass, so the safetensors header is written first and
//! each batch is written straight to its place in the file by a writer thread: memory stays at a bounded queue
//! of copies, not the whole run, and the forward pass does not wait for the disk. The file is written under a
//! temporary name and renamed when complete.
//!
//! Both files carry the same random recording id (`recording_id` in `probes.json`, and in the safetensors
//! header's `__metadata__`), and [`read_meta`] checks every fact of `probes.json` against the tensors before
//! anyone uses it: a pair from two different recordings (an interrupted re-recording, a copied file) is an
//! error naming both, never an index out of bounds.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use weatherlens_models::files::{self, AtomicFile, FileError};
use weatherlens_models::hooks::{HookPoint, Observer};

use crate::stats::seeded_subsample;

pub const TENSORS_FILE: &str = "probes.safetensors";
pub const META_FILE: &str = "probes.json";
/// The tensor holding the model's input fields at the recorded nodes, [samples, nodes, channels].
pub const INPUTS: &str = "inputs";

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
    /// What the `inputs` tensor [samples, nodes, channels] of `probes.safetensors` holds, when it was recorded
    /// (the model's input fields at the nodes: the input-baseline control of alignment). Absent in older
    /// recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
}

/// An [`Observer`] that streams the chosen hook points to `probes.safetensors`.
///
/// The forward pass only pays for copying each observed tensor off the device: a writer thread checks the
/// values and writes them at their place in the file, while the model goes on. At most
/// [`ProbeRecorder::queue_bytes`] of copies wait for the writer, so memory stays bounded however large the
/// recording. `processor.{i+1}.resid_pre` is the tensor `processor.{i}.resid_post` just was (X_{i+1}), so its
/// copy is reused rather than made again.
///
/// Call [`ProbeRecorder::end_batch`] after each forward pass, and [`ProbeRecorder::finish`] at the end.
pub struct ProbeRecorder {
    points: Vec<HookPoint>,
    node_index: Tensor<1, Int>,
    /// Whether `node_index` is 0, 1, .., nodes − 1: then a tensor of exactly `nodes` rows is kept as it is.
    all_nodes_in_order: bool,
    nodes: usize,
    latent: usize,
    /// Channels of the `inputs` tensor, when one is recorded.
    input_channels: Option<usize>,
    samples: usize,
    offsets: BTreeMap<String, u64>,
    data_start: u64,
    recording_id: String,
    /// `probes.safetensors` under its temporary name until [`Self::finish`].
    file: AtomicFile,
    cursor: Cell<usize>,
    /// The copy of the last `processor.{i}.resid_post` seen in this forward pass, for `resid_pre` of `i + 1`.
    last_resid_post: RefCell<Option<(usize, Arc<Vec<f32>>)>>,
    writer: Writer,
    failure: RefCell<Option<RecordError>>,
}

/// One tensor's values and where they go in the file.
struct Job {
    point: String,
    /// Byte offset in the file.
    at: u64,
    /// The sample index of the first row, for messages.
    first_sample: usize,
    /// Values per sample.
    row_values: usize,
    values: Arc<Vec<f32>>,
}

/// The writer thread and the bounded queue to it.
struct Writer {
    queue: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<(), RecordError>>>,
}

impl Writer {
    fn start(file: File, target: PathBuf, capacity: usize) -> Self {
        let (queue, jobs) = sync_channel::<Job>(capacity);
        let thread = std::thread::spawn(move || {
            // After a failure keep receiving (and dropping) so the forward pass never blocks on a full queue.
            let mut result = Ok(());
            for job in jobs {
                if result.is_ok() {
                    result = write_job(&file, &target, &job);
                }
            }
            result
        });
        Self {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    fn send(&self, job: Job) {
        if let Some(queue) = &self.queue {
            // The thread only ends once the queue is closed, so a send cannot fail before `finish`.
            let _ = queue.send(job);
        }
    }

    /// Close the queue and wait for every queued write.
    fn finish(&mut self) -> Result<(), RecordError> {
        self.queue = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // An abandoned recording: let the thread drain and end; its file is removed with the AtomicFile.
        let _ = self.finish();
    }
}

/// Check `job`'s values and write them at their offset.
fn write_job(file: &File, target: &Path, job: &Job) -> Result<(), RecordError> {
    if let Some(bad) = job.values.iter().position(|v| !v.is_finite()) {
        return Err(RecordError::NotFinite {
            point: job.point.clone(),
            sample: job.first_sample + bad / job.row_values.max(1),
        });
    }
    // safetensors is little-endian: on such a host the values are the bytes.
    let bytes: Cow<[u8]> = if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(job.values.as_slice()))
    } else {
        Cow::Owned(job.values.iter().flat_map(|v| v.to_le_bytes()).collect())
    };
    file.write_all_at(&bytes, job.at)
        .map_err(|e| FileError::new("writing", target, e).into())
}

impl ProbeRecorder {
    /// Bytes of tensor copies that may wait for the writer thread (at least two tensors wait whatever their
    /// size).
    pub const fn queue_bytes() -> usize {
        512 << 20
    }

    /// Prepare `out_dir/probes.safetensors` for `samples` samples of `points`, keeping `node_indices`.
    pub fn create(
        out_dir: &Path,
        points: Vec<HookPoint>,
        node_indices: &[u32],
        latent: usize,
        samples: usize,
        device: &Device,
    ) -> Result<Self, RecordError> {
        Self::create_with_inputs(out_dir, points, node_indices, latent, samples, None, device)
    }

    /// As [`Self::create`], with room for an `inputs` tensor [samples, nodes, input_channels] (F32) written by
    /// [`Self::write_inputs`] when `input_channels` is given.
    pub fn create_with_inputs(
        out_dir: &Path,
        points: Vec<HookPoint>,
        node_indices: &[u32],
        latent: usize,
        samples: usize,
        input_channels: Option<usize>,
        device: &Device,
    ) -> Result<Self, RecordError> {
        files::create_dir_all(out_dir)?;
        let nodes = node_indices.len();
        let recording_id = new_recording_id();
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".into(),
            serde_json::json!({ "recording_id": recording_id, "producer": "weatherlens" }),
        );
        let mut offsets = BTreeMap::new();
        let mut start = 0u64;
        let tensors = points
            .iter()
            .map(|point| (point.to_string(), latent))
            .chain(input_channels.map(|c| (INPUTS.to_string(), c)));
        for (name, width) in tensors {
            let bytes = (samples * nodes * width * 4) as u64;
            header.insert(
                name.clone(),
                serde_json::json!({
                    "dtype": "F32",
                    "shape": [samples, nodes, width],
                    "data_offsets": [start, start + bytes],
                }),
            );
            offsets.insert(name, start);
            start += bytes;
        }
        let mut header = serde_json::to_vec(&header).expect("a JSON map always serialises");
        // The data section must start 8-byte aligned: pad the header with spaces.
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let data_start = 8 + header.len() as u64;
        let mut file = AtomicFile::create(&out_dir.join(TENSORS_FILE))?;
        let target = file.target().to_path_buf();
        let disk = file.file();
        let writer_handle = disk
            .set_len(data_start + start)
            .and_then(|_| disk.write_all_at(&(header.len() as u64).to_le_bytes(), 0))
            .and_then(|_| disk.write_all_at(&header, 8))
            .and_then(|_| disk.try_clone())
            .map_err(FileError::at("writing", &target))?;
        let sample_bytes = (nodes * latent * 4).max(1);
        let capacity = (Self::queue_bytes() / sample_bytes).clamp(2, 64);
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
            input_channels,
            samples,
            offsets,
            data_start,
            recording_id,
            writer: Writer::start(writer_handle, target, capacity),
            file,
            cursor: Cell::new(0),
            last_resid_post: RefCell::new(None),
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
        self.last_resid_post.borrow_mut().take();
    }

    /// Write the input fields of the current forward pass (call before [`Self::end_batch`]); the writer thread
    /// checks and writes them as it does the hook points' tensors.
    ///
    /// values: [batch, nodes, input_channels] row-major, the recorded nodes in the recorder's order.
    pub fn write_inputs(&self, values: Vec<f32>, batch: usize) -> Result<(), RecordError> {
        let Some(channels) = self.input_channels else {
            return Err(RecordError::Invalid {
                path: self.file.target().to_path_buf(),
                reason: "this recording was created without an inputs tensor".into(),
            });
        };
        if values.len() != batch * self.nodes * channels || self.cursor.get() + batch > self.samples
        {
            return Err(RecordError::Invalid {
                path: self.file.target().to_path_buf(),
                reason: format!(
                    "{INPUTS}: {} values for a batch of {batch} at sample {} of {} ([batch, {}, {channels}] \
                     expected)",
                    values.len(),
                    self.cursor.get(),
                    self.samples,
                    self.nodes
                ),
            });
        }
        let row_bytes = (self.nodes * channels * 4) as u64;
        self.writer.send(Job {
            point: INPUTS.into(),
            at: self.data_start + self.offsets[INPUTS] + self.cursor.get() as u64 * row_bytes,
            first_sample: self.cursor.get(),
            row_values: self.nodes * channels,
            values: Arc::new(values),
        });
        Ok(())
    }

    /// Wait for the writer, complete the file and rename it into place (on failure the temporary file is
    /// removed). Returns its path.
    pub fn finish(mut self) -> Result<PathBuf, RecordError> {
        let written = self.writer.finish();
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
        written?;
        if self.cursor.get() != self.samples {
            return Err(RecordError::SampleCount {
                expected: self.samples,
                got: self.cursor.get(),
            });
        }
        let target = self.file.target().to_path_buf();
        self.file.commit()?;
        Ok(target)
    }

    /// The values of `tensor` at the kept nodes, copied off the device as f32.
    fn copy(&self, point: HookPoint, tensor: &Tensor<3>) -> Result<Arc<Vec<f32>>, RecordError> {
        if let HookPoint::ResidPre(i) = point
            && let Some((layer, values)) = self.last_resid_post.borrow().as_ref()
            && i == layer + 1
        {
            return Ok(values.clone());
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
        let values = data
            .try_into_vec::<f32>()
            .map_err(|e| RecordError::Invalid {
                path: self.file.target().to_path_buf(),
                reason: format!("{point}: {e:?}"),
            })?;
        let values = Arc::new(values);
        if let HookPoint::ResidPost(i) = point {
            *self.last_resid_post.borrow_mut() = Some((i, values.clone()));
        }
        Ok(values)
    }

    fn record(&self, point: HookPoint, tensor: &Tensor<3>) -> Result<(), RecordError> {
        let [batch, _, latent] = tensor.dims();
        let name = point.to_string();
        if latent != self.latent || self.cursor.get() + batch > self.samples {
            return Err(RecordError::Invalid {
                path: self.file.target().to_path_buf(),
                reason: format!(
                    "{name}: got a [{batch}, _, {latent}] tensor at sample {} of {} (latent {})",
                    self.cursor.get(),
                    self.samples,
                    self.latent
                ),
            });
        }
        let values = self.copy(point, tensor)?;
        let row_bytes = (self.nodes * self.latent * 4) as u64;
        self.writer.send(Job {
            at: self.data_start + self.offsets[&name] + self.cursor.get() as u64 * row_bytes,
            point: name,
            first_sample: self.cursor.get(),
            row_values: self.nodes * self.latent,
            values,
        });
        Ok(())
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
        if let Err(error) = self.record(point, tensor) {
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

    /// Keeps every tensor the hooks show, by name, appended over forward passes.
    #[derive(Default)]
    struct Collect(RefCell<BTreeMap<String, Vec<f32>>>);

    impl Observer for Collect {
        fn wants(&self, _: HookPoint) -> bool {
            true
        }
        fn observe(&self, point: HookPoint, tensor: &Tensor<3>) {
            let values = tensor.to_data().try_into_vec::<f32>().unwrap();
            self.0
                .borrow_mut()
                .entry(point.to_string())
                .or_default()
                .extend(values);
        }
    }

    #[test]
    fn a_recorded_forward_equals_what_the_hooks_show() {
        use weatherlens_models::config::ModelConfig;
        use weatherlens_models::fused::Kernels;
        use weatherlens_models::graph::ModelGraph;
        use weatherlens_models::graph_tensors::GraphTensors;
        use weatherlens_models::grid::{LatLonGrid, LatitudeOrder, PoleRows};
        use weatherlens_models::hooks::Hooks;
        use weatherlens_models::model::WeatherModel;
        use weatherlens_models::seed::seeded;

        let device = Device::flex();
        let grid =
            LatLonGrid::equiangular(8, 16, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        let config = ModelConfig {
            mesh_level: 1,
            latent_size: 8,
            num_layers: 3,
            ..ModelConfig::default()
        };
        let graph = ModelGraph::for_model(&grid, &config).unwrap();
        let tensors = GraphTensors::new(&graph, None, Kernels::Fused, &device);
        let model = seeded(3, &device, || WeatherModel::new(&config, 4, 2, &device));
        let points: Vec<HookPoint> = (0..3)
            .flat_map(|i| {
                [
                    HookPoint::ResidPre(i),
                    HookPoint::Delta(i),
                    HookPoint::ResidPost(i),
                ]
            })
            .collect();
        let nodes: Vec<u32> = (0..graph.num_mesh_nodes() as u32).collect();
        let dir = tempfile::tempdir().unwrap();
        let recorder =
            ProbeRecorder::create(dir.path(), points.clone(), &nodes, 8, 3, &device).unwrap();
        let collect = Collect::default();
        // Two forward passes (batch 2, then 1) of different inputs.
        for (batch, offset) in [(2, 0.0), (1, 0.5)] {
            let count = batch * grid.num_points() * 4;
            let values: Vec<f32> = (0..count)
                .map(|k| (k as f32 * 0.37).sin() + offset)
                .collect();
            let input = Tensor::<3>::from_data(
                TensorData::new(values, [batch, grid.num_points(), 4]),
                &device,
            );
            model.forward(
                &tensors,
                input,
                &Hooks::none().with(&recorder).with(&collect),
            );
            recorder.end_batch(batch);
        }
        let path = recorder.finish().unwrap();
        for point in &points {
            let (recorded, shape) = read_tensor(&path, &point.to_string()).unwrap();
            assert_eq!(shape, vec![3, nodes.len(), 8]);
            let seen = &collect.0.borrow()[&point.to_string()];
            let recorded: Vec<f32> = recorded.iter().map(|&v| v as f32).collect();
            assert_eq!(&recorded, seen, "{point}");
        }
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

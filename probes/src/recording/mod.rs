//! Reading recordings of any model's latents, in either form of docs/recording.md:
//!
//! - a **plain recording**: one safetensors file carrying its own node coordinates (`node_lat`, `node_lon`),
//!   optionally `inputs`, `sample_time` and stages on other node sets (`<stage>.node_lat`), as written by the
//!   Python exporter (`python/weatherlens_export`) for Aurora, anemoi or any PyTorch model;
//! - a **recording folder**: `probes.safetensors` + `probes.json`, as written by `weatherlens probe`.
//!
//! [`Recording::open`] applies the format's validation rules in their documented order with their error texts
//! (rule 17, finite values, is applied to every value as it is read: a reader that uses a subsample of rows does
//! not scan the whole file). Tensors are read with positioned reads of the rows asked for, converted to f64 on the
//! way, so memory holds the rows in use, not the file. Increments and output states missing from a file are
//! derived as the format says ([`Recording::source`]): v_i = X_{i+1} − X_i from `resid_post` or the next layer's
//! `resid_pre`, X_{i+1} = X_i + v_i.

mod container;
mod names;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use weatherlens_models::files::FileError;

pub use container::{Dtype, f16_to_f64};
pub use names::{Name, Role, STATE_POINTS};

use crate::record::{META_FILE, RecordError, TENSORS_FILE, read_meta};
use container::{Container, Entry, shape_text};

/// The format version this reader reads.
pub const FORMAT_VERSION: &str = "1";
/// `__metadata__["format"]` of a plain recording, when present.
pub const FORMAT: &str = "weatherlens.recording";

/// Why a recording cannot be read; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl RecordingError {
    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        RecordingError::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The mesh a recording folder's nodes come from (`weatherlens probe` keeps mesh node indices).
#[derive(Debug, Clone, PartialEq)]
pub struct MeshNodes {
    pub level: u32,
    /// Mesh node index of each recorded node.
    pub indices: Vec<u32>,
}

/// One stage: a node set and the layers recorded on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    /// Degrees, one per node.
    pub node_lat: Vec<f64>,
    pub node_lon: Vec<f64>,
    /// Where the coordinates came from (`node_lat`, `encoder.node_lat`, `probes.json`).
    pub coordinates: String,
    /// Layers with a `resid_pre`, ascending.
    pub layers: Vec<usize>,
    /// D of the stage's `resid_pre`/`delta`/`resid_post` tensors (None for a stage without layers).
    pub latent: Option<usize>,
    /// Present for recording folders: which mesh nodes these are.
    pub mesh: Option<MeshNodes>,
}

impl Stage {
    pub fn nodes(&self) -> usize {
        self.node_lat.len()
    }
}

/// A [samples, nodes, width] quantity of a recording: one stored tensor, or a sum or difference of stored
/// tensors (a derived increment or state).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The name asked for.
    pub name: String,
    /// Σ sign · tensor.
    terms: Vec<(f64, String)>,
    pub samples: usize,
    pub nodes: usize,
    pub width: usize,
    /// The stage whose nodes the rows lie on; None for `inputs` (the top-level nodes).
    pub stage: Option<String>,
}

impl Source {
    /// Whether the values are stored as they are (not derived).
    pub fn is_stored(&self) -> bool {
        self.terms.len() == 1 && self.terms[0].1 == self.name
    }

    /// `processor.0.delta` or `processor.0.delta = processor.1.resid_pre − processor.0.resid_pre`.
    pub fn describe(&self) -> String {
        if self.is_stored() {
            return self.name.clone();
        }
        let mut text = format!("{} =", self.name);
        for (k, (sign, term)) in self.terms.iter().enumerate() {
            let op = match (k, *sign < 0.0) {
                (0, false) => " ",
                (0, true) => " −",
                (_, false) => " + ",
                (_, true) => " − ",
            };
            text.push_str(op);
            text.push_str(term);
        }
        text
    }
}

/// Which form a recording was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Plain,
    Folder,
}

/// A recording, opened and checked; values are read on demand.
#[derive(Debug)]
pub struct Recording {
    /// The path given (a file or a folder).
    path: PathBuf,
    form: Form,
    container: Container,
    label: String,
    samples: usize,
    stages: BTreeMap<String, Stage>,
    /// Top-level coordinates (those of `inputs` and of every stage without its own).
    node_lat: Vec<f64>,
    node_lon: Vec<f64>,
    sample_hours: Option<Vec<f64>>,
    metadata: BTreeMap<String, String>,
    warnings: Vec<String>,
}

/// The stage-by-stage layout the header rules establish.
struct Layout {
    samples: usize,
    stages: BTreeMap<String, StageLayout>,
}

struct StageLayout {
    /// The stage's own coordinate tensors (lat, lon), if it has them.
    own_coordinates: Option<(String, String)>,
    layers: BTreeMap<usize, BTreeSet<String>>,
    latent: Option<usize>,
}

impl Recording {
    /// Opens a plain recording (a file) or a recording folder (a folder holding `probes.json`), applying the
    /// format's rules in order.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        if path.is_dir() {
            Self::open_folder(path)
        } else {
            Self::open_plain(path)
        }
    }

    fn open_plain(path: &Path) -> Result<Self, RecordingError> {
        if !path.exists() {
            return Err(FileError::new(
                "reading",
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
            .into());
        }
        let container = Container::open(path)?;
        let metadata = check_metadata(path, container.metadata.as_ref())?;
        let layout = check_layout(path, &container.entries, None)?;
        let node_lat = container.read_all("node_lat")?;
        let node_lon = container.read_all("node_lon")?;
        let mut stages = BTreeMap::new();
        let mut coordinates: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
        for (name, stage) in &layout.stages {
            let (coords, lat, lon) = match &stage.own_coordinates {
                Some((lat_name, lon_name)) => (
                    lat_name.clone(),
                    container.read_all(lat_name)?,
                    container.read_all(lon_name)?,
                ),
                None => ("node_lat".to_string(), node_lat.clone(), node_lon.clone()),
            };
            if stage.own_coordinates.is_some() {
                coordinates.push((name.clone(), lat.clone(), lon.clone()));
            }
            stages.insert(
                name.clone(),
                Stage {
                    name: name.clone(),
                    node_lat: lat,
                    node_lon: lon,
                    coordinates: coords,
                    layers: stage.layers.keys().copied().collect(),
                    latent: stage.latent,
                    mesh: None,
                },
            );
        }
        // Rule 16, coordinates in name order: node_lat, node_lon, then the stages' own.
        let mut named: Vec<(String, &[f64], bool)> = vec![
            ("node_lat".into(), &node_lat, true),
            ("node_lon".into(), &node_lon, false),
        ];
        for (stage, lat, lon) in &coordinates {
            named.push((format!("{stage}.node_lat"), lat, true));
            named.push((format!("{stage}.node_lon"), lon, false));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, values, latitude) in &named {
            check_coordinates(path, name, values, *latitude)?;
        }
        let mut warnings = Vec::new();
        for (name, values, latitude) in &named {
            if *latitude {
                let lon_name = format!("{}lon", name.trim_end_matches("lat"));
                let lon = named
                    .iter()
                    .find(|(n, _, _)| *n == lon_name)
                    .map(|(_, v, _)| *v)
                    .unwrap_or(&[]);
                if looks_like_radians(values, lon) {
                    warnings.push(format!(
                        "{}: warning: `{name}`/`{lon_name}` all lie within |lat| <= pi/2, |lon| <= 2 pi: are \
                         they radians? The format wants degrees",
                        path.display()
                    ));
                }
            }
        }
        let sample_hours = if container.entries.contains_key("sample_time") {
            let times = container.read_all("sample_time")?;
            check_times(path, &times)?;
            Some(times)
        } else {
            None
        };
        let label = metadata.get("model").cloned().unwrap_or_else(|| {
            path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into(),
            )
        });
        Ok(Self {
            path: path.to_path_buf(),
            form: Form::Plain,
            container,
            label,
            samples: layout.samples,
            stages,
            node_lat,
            node_lon,
            sample_hours,
            metadata,
            warnings,
        })
    }

    fn open_folder(dir: &Path) -> Result<Self, RecordingError> {
        // read_meta checks probes.json against the tensors' header (node counts, sample count, shapes,
        // recording id); what follows checks what only a reader of values needs.
        let meta = read_meta(dir)?;
        let meta_path = dir.join(META_FILE);
        let nodes = meta.node_indices.len();
        let file = dir.join(TENSORS_FILE);
        let container = Container::open(&file)?;
        let layout = check_layout(&file, &container.entries, Some(nodes))?;
        for (name, values, latitude) in [
            ("node_lat", &meta.node_lat, true),
            ("node_lon", &meta.node_lon, false),
        ] {
            check_coordinates(&meta_path, name, values, latitude)?;
        }
        let hours = meta
            .sample_times
            .iter()
            .enumerate()
            .map(|(k, text)| {
                hours_from_iso8601(text).ok_or_else(|| {
                    RecordingError::invalid(
                        &meta_path,
                        format!("sample_times[{k}] = {text:?} is not YYYY-MM-DDTHH:MM:SSZ"),
                    )
                })
            })
            .collect::<Result<Vec<f64>, _>>()?;
        check_times(&meta_path, &hours)?;
        let mesh = MeshNodes {
            level: meta.mesh_level,
            indices: meta.node_indices.clone(),
        };
        let stages = layout
            .stages
            .into_iter()
            .map(|(name, stage)| {
                let on_grid = name == "decoder";
                let value = Stage {
                    name: name.clone(),
                    node_lat: if on_grid {
                        Vec::new()
                    } else {
                        meta.node_lat.clone()
                    },
                    node_lon: if on_grid {
                        Vec::new()
                    } else {
                        meta.node_lon.clone()
                    },
                    coordinates: META_FILE.to_string(),
                    layers: stage.layers.keys().copied().collect(),
                    latent: stage.latent,
                    mesh: (!on_grid).then(|| mesh.clone()),
                };
                (name, value)
            })
            .collect();
        Ok(Self {
            path: dir.to_path_buf(),
            form: Form::Folder,
            container,
            label: meta.model.clone(),
            samples: layout.samples,
            stages,
            node_lat: meta.node_lat,
            node_lon: meta.node_lon,
            sample_hours: Some(hours),
            metadata: BTreeMap::new(),
            warnings: Vec::new(),
        })
    }

    /// The path given to [`Recording::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn form(&self) -> Form {
        self.form
    }

    /// The model's name: `__metadata__["model"]`, the file stem, or probes.json's `model`.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Hours since 1970-01-01T00Z of each sample's input state, when the recording says.
    pub fn sample_hours(&self) -> Option<&[f64]> {
        self.sample_hours.as_deref()
    }

    /// Top-level node coordinates (degrees): those of `inputs` and of stages without their own.
    pub fn node_lat(&self) -> &[f64] {
        &self.node_lat
    }

    pub fn node_lon(&self) -> &[f64] {
        &self.node_lon
    }

    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.stages.values()
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.get(name)
    }

    /// The `processor` stage (every recording has one, rule 8).
    pub fn processor(&self) -> &Stage {
        &self.stages["processor"]
    }

    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Warnings found while opening (coordinates that look like radians).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether a tensor of this name is stored.
    pub fn has(&self, name: &str) -> bool {
        self.container.entries.contains_key(name)
    }

    /// Stored tensor names, ascending.
    pub fn tensor_names(&self) -> Vec<&str> {
        self.container.entries.keys().map(String::as_str).collect()
    }

    fn stored(&self, name: &str) -> Result<Source, RecordingError> {
        let entry = &self.container.entries[name];
        let parsed = Name::parse(name);
        if entry.shape.len() != 3 {
            return Err(self.invalid(format!(
                "tensor `{name}` has shape {}; a [samples, nodes, width] tensor is needed",
                shape_text(&entry.shape)
            )));
        }
        Ok(Source {
            name: name.to_string(),
            terms: vec![(1.0, name.to_string())],
            samples: entry.shape[0],
            nodes: entry.shape[1],
            width: entry.shape[2],
            stage: parsed.and_then(|n| n.stage().map(str::to_string)),
        })
    }

    fn derived(&self, name: &str, terms: Vec<(f64, String)>) -> Result<Source, RecordingError> {
        let first = self.stored(&terms[0].1)?;
        Ok(Source {
            name: name.to_string(),
            terms,
            ..first
        })
    }

    /// The quantity called `name`: a stored [samples, nodes, width] tensor, or a state point of a layer derived
    /// as the format says: `<stage>.<i>.delta` = `resid_post` − `resid_pre` (or the next layer's `resid_pre` −
    /// this one's), `<stage>.<i>.resid_post` = `resid_pre` + `delta` (or the next layer's `resid_pre`).
    pub fn source(&self, name: &str) -> Result<Source, RecordingError> {
        if self.has(name) {
            return self.stored(name);
        }
        if let Some(Name::Layer {
            stage,
            layer,
            point,
        }) = Name::parse(name)
            && self.has(&format!("{stage}.{layer}.resid_pre"))
        {
            let at = |i: usize, p: &str| format!("{stage}.{i}.{p}");
            let derived = match point.as_str() {
                "delta" => self.increment_terms(&stage, layer),
                "resid_post" => {
                    if self.has(&at(layer, "delta")) {
                        Some(vec![
                            (1.0, at(layer, "resid_pre")),
                            (1.0, at(layer, "delta")),
                        ])
                    } else if self.has(&at(layer + 1, "resid_pre")) {
                        Some(vec![(1.0, at(layer + 1, "resid_pre"))])
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(terms) = derived {
                return self.derived(name, terms);
            }
        }
        let mut names = self.tensor_names();
        names.truncate(16);
        Err(self.invalid(format!(
            "no tensor `{name}`, and it cannot be derived (it has: {}{})",
            names.join(", "),
            if self.container.entries.len() > 16 {
                ", ..."
            } else {
                ""
            }
        )))
    }

    fn increment_terms(&self, stage: &str, layer: usize) -> Option<Vec<(f64, String)>> {
        let at = |i: usize, p: &str| format!("{stage}.{i}.{p}");
        if self.has(&at(layer, "delta")) {
            return Some(vec![(1.0, at(layer, "delta"))]);
        }
        let next = [at(layer, "resid_post"), at(layer + 1, "resid_pre")]
            .into_iter()
            .find(|n| self.has(n))?;
        Some(vec![(1.0, next), (-1.0, at(layer, "resid_pre"))])
    }

    /// X_i of a layer (its `resid_pre`).
    pub fn state(&self, stage: &str, layer: usize) -> Result<Source, RecordingError> {
        self.source(&format!("{stage}.{layer}.resid_pre"))
    }

    /// v_i of a layer, stored or derived; None when the recording does not determine it (rule 3 of "States and
    /// increments": no delta, no resid_post and no next layer).
    pub fn increment(&self, stage: &str, layer: usize) -> Option<Source> {
        self.source(&format!("{stage}.{layer}.delta")).ok()
    }

    /// X_{i+1} of a layer, stored or derived; None when undetermined.
    pub fn output(&self, stage: &str, layer: usize) -> Option<Source> {
        self.source(&format!("{stage}.{layer}.resid_post")).ok()
    }

    /// `inputs`, when recorded.
    pub fn inputs(&self) -> Option<Source> {
        self.has("inputs")
            .then(|| self.source("inputs"))
            .and_then(Result::ok)
    }

    /// Coordinates of a source's rows: its stage's node set, or the top-level nodes for `inputs`.
    pub fn coordinates_of(&self, source: &Source) -> (&[f64], &[f64]) {
        match source.stage.as_deref().and_then(|s| self.stages.get(s)) {
            Some(stage) if stage.nodes() == source.nodes => (&stage.node_lat, &stage.node_lon),
            _ => (&self.node_lat, &self.node_lon),
        }
    }

    /// Rows (sample, node) of `source`: [rows.len(), width] row-major, f64. Each stored term is read with
    /// positioned reads (consecutive rows in one read) and every value checked finite (rule 17).
    pub fn read_rows(
        &self,
        source: &Source,
        rows: &[(usize, usize)],
    ) -> Result<Vec<f64>, RecordingError> {
        let (nodes, width) = (source.nodes, source.width);
        if let Some(&(s, n)) = rows
            .iter()
            .find(|&&(s, n)| s >= source.samples || n >= nodes)
        {
            return Err(self.invalid(format!(
                "row (sample {s}, node {n}) is outside `{}` [{}, {nodes}, {width}]",
                source.name, source.samples
            )));
        }
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &(s, n) in rows {
            let first = (s * nodes + n) * width;
            match runs.last_mut() {
                Some((start, count)) if *start + *count == first => *count += width,
                _ => runs.push((first, width)),
            }
        }
        let file = File::open(&self.container.path)
            .map_err(FileError::at("reading", &self.container.path))?;
        let mut out: Vec<f64> = Vec::new();
        for (sign, term) in &source.terms {
            let values = self.container.read_runs(&file, term, &runs)?;
            if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
                let (s, n) = rows[bad / width];
                let axis = if Name::parse(term).is_some_and(|p| p.role() == Role::Edges) {
                    "edge"
                } else {
                    "node"
                };
                return Err(self.invalid(format!(
                    "tensor `{term}` has a non-finite value at sample {s}, {axis} {n}, channel {}",
                    bad % width
                )));
            }
            if out.is_empty() {
                out = values.into_iter().map(|v| sign * v).collect();
            } else {
                out.iter_mut().zip(values).for_each(|(o, v)| *o += sign * v);
            }
        }
        Ok(out)
    }

    /// Every node of the given samples: [samples.len(), nodes, width] row-major.
    pub fn read_samples(
        &self,
        source: &Source,
        samples: &[usize],
    ) -> Result<Vec<f64>, RecordingError> {
        let rows: Vec<(usize, usize)> = samples
            .iter()
            .flat_map(|&s| (0..source.nodes).map(move |n| (s, n)))
            .collect();
        self.read_rows(source, &rows)
    }

    /// The whole of `source`: [samples, nodes, width].
    pub fn read(&self, source: &Source) -> Result<Vec<f64>, RecordingError> {
        self.read_samples(source, &(0..source.samples).collect::<Vec<_>>())
    }

    fn invalid(&self, reason: String) -> RecordingError {
        RecordingError::invalid(&self.container.path, reason)
    }
}

/// Rule 2: metadata values are strings; a known format and version.
fn check_metadata(
    path: &Path,
    metadata: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<BTreeMap<String, String>, RecordingError> {
    let mut out = BTreeMap::new();
    for (key, value) in metadata.into_iter().flatten() {
        let Some(text) = value.as_str() else {
            return Err(RecordingError::invalid(
                path,
                format!("__metadata__ entry `{key}`: keys and values must be strings, got {value}"),
            ));
        };
        out.insert(key.clone(), text.to_string());
    }
    if let Some(format) = out.get("format").filter(|f| *f != FORMAT) {
        return Err(RecordingError::invalid(
            path,
            format!("__metadata__ format is `{format}`; `{FORMAT}` expected"),
        ));
    }
    if let Some(version) = out.get("format_version").filter(|v| *v != FORMAT_VERSION) {
        return Err(RecordingError::invalid(
            path,
            format!(
                "recording format version {version} is not supported by this reader (it reads version \
                 {FORMAT_VERSION})"
            ),
        ));
    }
    Ok(out)
}

/// Rules 3–15, from the header alone. `folder_nodes`: the node count of a recording folder (its coordinates come
/// from probes.json; the `decoder` stage lies on the grid and is exempt from the node rule).
fn check_layout(
    path: &Path,
    entries: &BTreeMap<String, Entry>,
    folder_nodes: Option<usize>,
) -> Result<Layout, RecordingError> {
    let bad = |reason: String| RecordingError::invalid(path, reason);
    // 3: names
    let mut parsed: BTreeMap<&str, Name> = BTreeMap::new();
    for name in entries.keys() {
        let Some(p) = Name::parse(name) else {
            return Err(bad(format!(
                "tensor `{name}`: not a recording name (expected {})",
                names::NAME_HELP
            )));
        };
        parsed.insert(name, p);
    }
    // 4: dtypes; 5: ranks; 6: empty axes (each pass in name order)
    for (name, p) in &parsed {
        let allowed = p.role().dtypes();
        let dtype = entries[*name].dtype.name();
        if !allowed.contains(&dtype) {
            return Err(bad(format!(
                "tensor `{name}` has dtype {dtype}; {} expected",
                allowed.join(" or ")
            )));
        }
    }
    for (name, p) in &parsed {
        let shape = &entries[*name].shape;
        if shape.len() != p.role().rank() {
            return Err(bad(format!(
                "tensor `{name}` has shape {}; {} expected",
                shape_text(shape),
                p.role().shape_words()
            )));
        }
    }
    for name in parsed.keys() {
        let shape = &entries[*name].shape;
        if shape.contains(&0) {
            return Err(bad(format!(
                "tensor `{name}` has an empty axis (shape {})",
                shape_text(shape)
            )));
        }
    }
    // 7: coordinates present (plain recordings)
    if folder_nodes.is_none() {
        for coordinate in ["node_lat", "node_lon"] {
            if !entries.contains_key(coordinate) {
                return Err(bad(format!(
                    "no `{coordinate}` tensor: a plain recording carries the node coordinates node_lat and \
                     node_lon (a probes.safetensors written by `weatherlens probe` is read with its folder, \
                     beside probes.json)"
                )));
            }
        }
    }
    // 8: a processor layer
    let has_processor = parsed.values().any(|p| {
        matches!(p, Name::Layer { stage, point, .. } if stage == "processor" && point == "resid_pre")
    });
    if !has_processor {
        return Err(bad(
            "no processor layer: a recording holds processor.{i}.resid_pre for at least one layer i".into(),
        ));
    }
    // 9: top-level coordinates agree
    let top_nodes = match folder_nodes {
        Some(nodes) => nodes,
        None => {
            let (lat, lon) = (entries["node_lat"].shape[0], entries["node_lon"].shape[0]);
            if lat != lon {
                return Err(bad(format!(
                    "`node_lon` has {lon} nodes but `node_lat` has {lat}: one of each per node"
                )));
            }
            lat
        }
    };
    // 10, 11: stage coordinates in pairs, belonging to stages with tensors
    let coordinate_stages: BTreeSet<&str> = parsed
        .values()
        .filter_map(|p| match p {
            Name::Coordinate { stage, .. } => Some(stage.as_str()),
            _ => None,
        })
        .collect();
    let tensor_stages: BTreeSet<&str> = parsed
        .values()
        .filter(|p| !matches!(p, Name::Coordinate { .. }))
        .filter_map(|p| p.stage())
        .collect();
    for stage in &coordinate_stages {
        let (lat, lon) = (format!("{stage}.node_lat"), format!("{stage}.node_lon"));
        match (entries.get(&lat), entries.get(&lon)) {
            (Some(a), Some(b)) if a.shape[0] != b.shape[0] => {
                return Err(bad(format!(
                    "`{lon}` has {} nodes but `{lat}` has {}: one of each per node",
                    b.shape[0], a.shape[0]
                )));
            }
            (Some(_), Some(_)) => {}
            (Some(_), None) => {
                return Err(bad(format!(
                    "`{lat}` has no `{lon}`: a stage carries both coordinates or neither"
                )));
            }
            _ => {
                return Err(bad(format!(
                    "`{lon}` has no `{lat}`: a stage carries both coordinates or neither"
                )));
            }
        }
    }
    for stage in &coordinate_stages {
        if !tensor_stages.contains(stage) {
            return Err(bad(format!(
                "`{stage}.node_lat`: no tensor belongs to stage `{stage}`"
            )));
        }
    }
    // 12: one sample count
    let mut first: Option<(&str, usize)> = None;
    for (name, p) in &parsed {
        if p.role() == Role::Coordinate {
            continue;
        }
        let count = entries[*name].shape[0];
        match first {
            None => first = Some((name, count)),
            Some((first_name, first_count)) if count != first_count => {
                return Err(bad(format!(
                    "tensor `{name}` has {count} samples but `{first_name}` has {first_count}: every tensor \
                     holds the same samples"
                )));
            }
            _ => {}
        }
    }
    let samples = first.map_or(0, |f| f.1);
    // 13: node counts; collect the layers
    let mut stages: BTreeMap<String, StageLayout> = BTreeMap::new();
    for stage in &tensor_stages {
        let own = coordinate_stages
            .contains(stage)
            .then(|| (format!("{stage}.node_lat"), format!("{stage}.node_lon")));
        stages.insert(
            stage.to_string(),
            StageLayout {
                own_coordinates: own,
                layers: BTreeMap::new(),
                latent: None,
            },
        );
    }
    for (name, p) in &parsed {
        let shape = &entries[*name].shape;
        let (nodes, whose, coordinates) = match p {
            Name::Coordinate { .. } | Name::Top("node_lat" | "node_lon" | "sample_time") => {
                continue;
            }
            Name::Top(_) => (
                top_nodes,
                "the recording".to_string(),
                "node_lat".to_string(),
            ),
            Name::Layer { stage, .. } | Name::Point { stage, .. } => {
                let layout = stages
                    .get_mut(stage.as_str())
                    .expect("every stage was listed");
                if let Name::Layer { layer, point, .. } = p {
                    layout
                        .layers
                        .entry(*layer)
                        .or_default()
                        .insert(point.clone());
                }
                if p.role() == Role::Edges || (folder_nodes.is_some() && stage == "decoder") {
                    continue;
                }
                match &layout.own_coordinates {
                    Some((lat, _)) => (
                        entries[lat].shape[0],
                        format!("stage `{stage}`"),
                        lat.clone(),
                    ),
                    None => (
                        top_nodes,
                        format!("stage `{stage}`"),
                        if folder_nodes.is_some() {
                            format!("node_indices in {META_FILE}")
                        } else {
                            "node_lat".to_string()
                        },
                    ),
                }
            }
        };
        if shape[1] != nodes {
            return Err(bad(format!(
                "tensor `{name}` has {} nodes but {whose} has {nodes} (the length of `{coordinates}`)",
                shape[1]
            )));
        }
    }
    // 14: every layer has its resid_pre
    for (stage, layout) in &stages {
        for (layer, points) in &layout.layers {
            if !points.contains("resid_pre") {
                let other = points.iter().next().map_or("", String::as_str);
                return Err(bad(format!(
                    "tensor `{stage}.{layer}.{other}`: layer {layer} of stage `{stage}` has no \
                     `{stage}.{layer}.resid_pre`"
                )));
            }
        }
    }
    // 15: one state shape per stage
    for (stage, layout) in stages.iter_mut() {
        let mut first: Option<(String, Vec<usize>)> = None;
        for layer in layout.layers.keys() {
            for point in STATE_POINTS {
                let name = format!("{stage}.{layer}.{point}");
                let Some(entry) = entries.get(&name) else {
                    continue;
                };
                match &first {
                    None => first = Some((name, entry.shape.clone())),
                    Some((first_name, shape)) if *shape != entry.shape => {
                        return Err(bad(format!(
                            "tensor `{name}` has shape {} but `{first_name}` has {}: the resid_pre, delta and \
                             resid_post tensors of a stage share one shape",
                            shape_text(&entry.shape),
                            shape_text(shape)
                        )));
                    }
                    _ => {}
                }
            }
        }
        layout.latent = first.map(|(_, shape)| shape[2]);
    }
    Ok(Layout { samples, stages })
}

/// Rule 16: finite, |lat| ≤ 90, |lon| ≤ 360.
fn check_coordinates(
    path: &Path,
    name: &str,
    values: &[f64],
    latitude: bool,
) -> Result<(), RecordingError> {
    let limit = if latitude { 90.0 } else { 360.0 };
    if let Some((k, value)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || v.abs() > limit)
    {
        return Err(RecordingError::invalid(
            path,
            format!("{name}[{k}] = {value} is outside [-{limit}, {limit}] degrees"),
        ));
    }
    Ok(())
}

/// Rule 18: finite sample times without repeats.
fn check_times(path: &Path, times: &[f64]) -> Result<(), RecordingError> {
    if let Some(k) = times.iter().position(|t| !t.is_finite()) {
        return Err(RecordingError::invalid(
            path,
            format!("sample_time[{k}] is not finite"),
        ));
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[a].total_cmp(&times[b]).then(a.cmp(&b)));
    if let Some(pair) = order.windows(2).find(|w| times[w[0]] == times[w[1]]) {
        let (a, b) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
        return Err(RecordingError::invalid(
            path,
            format!(
                "sample_time[{a}] and sample_time[{b}] are both {} h: each sample needs its own time",
                times[a]
            ),
        ));
    }
    Ok(())
}

/// Every |lat| ≤ π/2 and every |lon| ≤ 2π for at least 3 nodes: coordinates that are probably radians.
pub fn looks_like_radians(lat: &[f64], lon: &[f64]) -> bool {
    lat.len() >= 3
        && lat.iter().all(|v| v.abs() <= std::f64::consts::FRAC_PI_2)
        && lon.iter().all(|v| v.abs() <= std::f64::consts::TAU)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month 1..=12, day) of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The calendar month (1..=12) of a time in hours since 1970-01-01T00Z.
pub fn month_of_hours(hours: f64) -> u32 {
    civil_from_days((hours / 24.0).floor() as i64).1
}

/// `YYYY-MM-DDTHH:MM:SSZ` -> hours since 1970-01-01T00Z.
pub fn hours_from_iso8601(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    if bytes.len() != 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[19] != b'Z'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    Some(days as f64 * 24.0 + hour as f64 + minute as f64 / 60.0 + second as f64 / 3600.0)
}

//! Reading a GraphCast checkpoint: the `.npz` that graphcast's `checkpoint.dump` writes (an uncompressed zip of
//! `.npy` members, keys flattened with `:`) into typed configs and named f32 arrays.
//!
//! Keys (graphcast `checkpoint.py`, `graphcast.py` ModelConfig / TaskConfig): `params:<haiku module path>:<w|b|
//! scale|offset>`; `model_config:<field>` (0-d, a field set to None is absent); `task_config:<field>` with tuple
//! fields as `task_config:<field>:<index>`; `description`, `license` (0-d unicode strings).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use npyz::npz::NpzArchive;

/// Why a GraphCast checkpoint cannot be read; each names the file, and the key where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum GraphCastError {
    #[error("reading {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: key `{key}`: {reason}")]
    Key {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{path}: missing key `{key}` ({what})")]
    Missing {
        path: PathBuf,
        key: String,
        what: String,
    },
}

/// `model_config` of a GraphCast checkpoint (graphcast `ModelConfig`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphCastModelConfig {
    /// Grid spacing of the data it was trained on, degrees.
    pub resolution: f64,
    /// Finest refinement level of the multimesh.
    pub mesh_size: u32,
    pub latent_size: usize,
    /// Message-passing steps of the processor.
    pub gnn_msg_steps: usize,
    /// Hidden layers of every MLP.
    pub hidden_layers: usize,
    /// grid2mesh radius as a fraction of the finest mesh's longest edge.
    pub radius_query_fraction_edge_length: f64,
    /// A fixed divisor of the mesh2grid edge features (None: their longest edge).
    pub mesh2grid_edge_normalization_factor: Option<f64>,
}

/// `task_config` of a GraphCast checkpoint (graphcast `TaskConfig`): what goes in and comes out.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphCastTaskConfig {
    pub input_variables: Vec<String>,
    pub target_variables: Vec<String>,
    pub forcing_variables: Vec<String>,
    /// Pressure levels in hPa, in the order the channels stack them.
    pub pressure_levels: Vec<i64>,
    /// Span of the input times as a pandas timedelta string, e.g. "12h" (two inputs 6 h apart).
    pub input_duration: String,
}

/// One parameter array: values row-major with their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Everything a GraphCast `.npz` holds.
#[derive(Debug, Clone)]
pub struct GraphCastCheckpoint {
    pub path: PathBuf,
    pub model: GraphCastModelConfig,
    pub task: GraphCastTaskConfig,
    pub description: String,
    pub license: String,
    /// haiku parameter path (`<module path>:<name>`, without the `params:` prefix) -> array.
    pub params: BTreeMap<String, Array>,
}

impl GraphCastCheckpoint {
    /// Reads and checks the whole archive at `path`. Unknown keys, missing keys and values of the wrong type
    /// are errors naming the key.
    pub fn read(path: &Path) -> Result<Self, GraphCastError> {
        let unreadable = |reason: String| GraphCastError::Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
        let mut archive = NpzArchive::new(BufReader::new(file)).map_err(|e| {
            unreadable(format!(
                "not a numpy .npz archive (a zip of .npy files): {e}"
            ))
        })?;
        let names: Vec<String> = archive.array_names().map(str::to_string).collect();
        let mut reader = Members {
            path,
            archive: &mut archive,
        };
        let mut params = BTreeMap::new();
        let (mut model, mut task) = (BTreeMap::new(), BTreeMap::new());
        let (mut description, mut license) = (None, None);
        for name in &names {
            if let Some(param) = name.strip_prefix("params:") {
                params.insert(param.to_string(), reader.floats(name)?);
            } else if let Some(field) = name.strip_prefix("model_config:") {
                model.insert(field.to_string(), name.clone());
            } else if let Some(field) = name.strip_prefix("task_config:") {
                task.insert(field.to_string(), name.clone());
            } else if name == "description" {
                description = Some(reader.string(name)?);
            } else if name == "license" {
                license = Some(reader.string(name)?);
            } else {
                return Err(reader.key_error(name, "not a key of a GraphCast checkpoint"));
            }
        }
        let model_config = reader.model_config(&model)?;
        let task_config = reader.task_config(&task)?;
        if params.is_empty() {
            return Err(GraphCastError::Missing {
                path: path.to_path_buf(),
                key: "params:...".into(),
                what: "the model's parameters".into(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            model: model_config,
            task: task_config,
            description: description.unwrap_or_default(),
            license: license.unwrap_or_default(),
            params,
        })
    }
}

/// Typed reads of the archive's members, each error naming the member.
struct Members<'a> {
    path: &'a Path,
    archive: &'a mut NpzArchive<BufReader<File>>,
}

impl Members<'_> {
    fn key_error(&self, key: &str, reason: impl Into<String>) -> GraphCastError {
        GraphCastError::Key {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    fn missing(&self, key: &str, what: &str) -> GraphCastError {
        GraphCastError::Missing {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            what: what.to_string(),
        }
    }

    /// The member `key` as values of type T with its shape.
    fn read<T: npyz::Deserialize>(
        &mut self,
        key: &str,
    ) -> Result<(Vec<usize>, Vec<T>), GraphCastError> {
        let path = self.path.to_path_buf();
        let key_error = |reason: String| GraphCastError::Key {
            path: path.clone(),
            key: key.to_string(),
            reason,
        };
        let npy = match self.archive.by_name(key) {
            Ok(Some(npy)) => npy,
            Ok(None) => return Err(key_error("listed but absent".into())),
            Err(e) => {
                return Err(key_error(format!(
                    "unreadable ({e}); the file may be truncated"
                )));
            }
        };
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        let dtype = npy.dtype();
        let values = npy
            .into_vec::<T>()
            .map_err(|e| key_error(format!("stored as {}: {e}", dtype.descr())))?;
        let expected: usize = shape.iter().product();
        if values.len() != expected {
            return Err(self.key_error(
                key,
                format!(
                    "{} values for shape {shape:?}; the file may be truncated",
                    values.len()
                ),
            ));
        }
        Ok((shape, values))
    }

    fn floats(&mut self, key: &str) -> Result<Array, GraphCastError> {
        let (shape, values) = self.read::<f32>(key)?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(self.key_error(key, format!("holds the non-finite value {bad}")));
        }
        Ok(Array { shape, values })
    }

    fn scalar<T: npyz::Deserialize + Copy>(&mut self, key: &str) -> Result<T, GraphCastError> {
        let (_, values) = self.read::<T>(key)?;
        match values.as_slice() {
            [value] => Ok(*value),
            _ => Err(self.key_error(
                key,
                format!("{} values where one is expected", values.len()),
            )),
        }
    }

    fn string(&mut self, key: &str) -> Result<String, GraphCastError> {
        let (_, values) = self.read::<String>(key)?;
        values
            .into_iter()
            .next()
            .ok_or_else(|| self.key_error(key, "an empty string array"))
    }

    fn model_config(
        &mut self,
        fields: &BTreeMap<String, String>,
    ) -> Result<GraphCastModelConfig, GraphCastError> {
        const KNOWN: [&str; 7] = [
            "resolution",
            "mesh_size",
            "latent_size",
            "gnn_msg_steps",
            "hidden_layers",
            "radius_query_fraction_edge_length",
            "mesh2grid_edge_normalization_factor",
        ];
        if let Some(unknown) = fields.keys().find(|f| !KNOWN.contains(&f.as_str())) {
            return Err(self.key_error(&fields[unknown], "not a field of GraphCast's ModelConfig"));
        }
        let key = |field: &str| -> Result<String, GraphCastError> {
            fields.get(field).cloned().ok_or_else(|| {
                self.missing(&format!("model_config:{field}"), "a ModelConfig field")
            })
        };
        let (resolution, mesh_size, latent, steps, hidden, radius) = (
            key("resolution")?,
            key("mesh_size")?,
            key("latent_size")?,
            key("gnn_msg_steps")?,
            key("hidden_layers")?,
            key("radius_query_fraction_edge_length")?,
        );
        let normalisation = fields.get("mesh2grid_edge_normalization_factor").cloned();
        let count = |members: &mut Self, key: &str| -> Result<usize, GraphCastError> {
            let value = members.scalar::<i64>(key)?;
            usize::try_from(value)
                .map_err(|_| members.key_error(key, format!("{value} is not a count")))
        };
        Ok(GraphCastModelConfig {
            resolution: self.scalar::<f64>(&resolution)?,
            mesh_size: count(self, &mesh_size)? as u32,
            latent_size: count(self, &latent)?,
            gnn_msg_steps: count(self, &steps)?,
            hidden_layers: count(self, &hidden)?,
            radius_query_fraction_edge_length: self.scalar::<f64>(&radius)?,
            mesh2grid_edge_normalization_factor: normalisation
                .map(|key| self.scalar::<f64>(&key))
                .transpose()?,
        })
    }

    fn task_config(
        &mut self,
        fields: &BTreeMap<String, String>,
    ) -> Result<GraphCastTaskConfig, GraphCastError> {
        let mut lists: BTreeMap<&str, Vec<(usize, String)>> = BTreeMap::new();
        let mut input_duration = None;
        for (field, key) in fields {
            match field.split_once(':') {
                Some((name, index)) => {
                    let index: usize = index
                        .parse()
                        .map_err(|_| self.key_error(key, "the tuple index is not a number"))?;
                    lists.entry(name).or_default().push((index, key.clone()));
                }
                None if field == "input_duration" => input_duration = Some(self.string(key)?),
                None => return Err(self.key_error(key, "not a field of GraphCast's TaskConfig")),
            }
        }
        let mut strings = |name: &str| -> Result<Vec<String>, GraphCastError> {
            let mut items = lists.remove(name).ok_or_else(|| {
                self.missing(&format!("task_config:{name}:0"), "a TaskConfig field")
            })?;
            items.sort();
            items.iter().map(|(_, key)| self.string(key)).collect()
        };
        let input_variables = strings("input_variables")?;
        let target_variables = strings("target_variables")?;
        let forcing_variables = strings("forcing_variables")?;
        let mut levels = lists.remove("pressure_levels").unwrap_or_default();
        levels.sort();
        let pressure_levels = levels
            .iter()
            .map(|(_, key)| self.scalar::<i64>(key))
            .collect::<Result<_, _>>()?;
        if let Some(name) = lists.keys().next() {
            let key = format!("task_config:{name}");
            return Err(self.key_error(&key, "not a field of GraphCast's TaskConfig"));
        }
        Ok(GraphCastTaskConfig {
            input_variables,
            target_variables,
            forcing_variables,
            pressure_levels,
            input_duration: input_duration
                .ok_or_else(|| self.missing("task_config:input_duration", "a TaskConfig field"))?,
        })
    }
}

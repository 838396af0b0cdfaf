//! GraphCast's parameters as WeatherLens's: the model config that builds the same network, and every haiku
//! array under the name of the [`crate::model::WeatherModel`] parameter it becomes.
//!
//! GraphCast's three networks (`graphcast.py`, `deep_typed_graph_net.py`) are WeatherLens's encoder, processor and
//! decoder: the same interaction network with post-LayerNorm MLPs, messages summed into receivers, residual
//! node and edge updates. The correspondences:
//!
//! ```text
//! grid2mesh_gnn  encoder_nodes_grid_nodes      -> encoder.grid_embed
//!                encoder_nodes_mesh_nodes      -> encoder.mesh_embed (its C rows for the zeroed data
//!                                                 channels dropped: they multiply zeros)
//!                encoder_edges_grid2mesh       -> encoder.grid2mesh_edge_embed
//!                processor_edges_0_grid2mesh   -> encoder.grid2mesh.edge_mlp
//!                processor_nodes_0_mesh_nodes  -> encoder.grid2mesh.node_mlp
//!                processor_nodes_0_grid_nodes  -> encoder.grid_update
//! mesh_gnn       encoder_edges_mesh            -> encoder.mesh_edge_embed
//!                processor_edges_k_mesh        -> processor.layers.k.edge_mlp
//!                processor_nodes_k_mesh_nodes  -> processor.layers.k.node_mlp
//! mesh2grid_gnn  encoder_edges_mesh2grid       -> decoder.mesh2grid_edge_embed
//!                processor_edges_0_mesh2grid   -> decoder.mesh2grid.edge_mlp
//!                processor_nodes_0_grid_nodes  -> decoder.mesh2grid.node_mlp
//!                decoder_nodes_grid_nodes      -> decoder.head (no LayerNorm)
//!                processor_nodes_0_mesh_nodes  -> (unused: its output is discarded by GraphCast too)
//! ```
//!
//! haiku's `Linear` keeps `w` as [in, out] like burn's; `LayerNorm` `scale`, `offset` are burn's `gamma`, `beta`.

use super::checkpoint::{Array, GraphCastCheckpoint, GraphCastError};
use crate::config::{Aggregation, GraphRules, ModelConfig, ProcessorKind};
use crate::graph::NODE_FEATURES;
use crate::mlp::NormPlacement;

/// The network an imported checkpoint builds and its parameters under WeatherLens names.
#[derive(Debug, Clone)]
pub struct ImportedModel {
    pub config: ModelConfig,
    /// Channels of the model input at each grid point (inputs at both times, forcings, static fields).
    pub input_channels: usize,
    /// Channels of the output (the targets, levels flattened).
    pub output_channels: usize,
    /// WeatherLens parameter name (as `burn`'s safetensors store writes it) -> array.
    pub tensors: Vec<(String, Array)>,
}

/// One GraphCast MLP and where it goes.
struct Mapping {
    network: &'static str,
    prefix: String,
    target: String,
    layer_norm: bool,
}

/// The MLPs of a GraphCast with `steps` message-passing steps, in module order.
fn mappings(steps: usize) -> Vec<Mapping> {
    let mlp = |network, prefix: &str, target: &str, layer_norm| Mapping {
        network,
        prefix: prefix.to_string(),
        target: target.to_string(),
        layer_norm,
    };
    let mut list = vec![
        mlp(
            "grid2mesh_gnn",
            "encoder_nodes_grid_nodes",
            "encoder.grid_embed",
            true,
        ),
        mlp(
            "grid2mesh_gnn",
            "encoder_nodes_mesh_nodes",
            "encoder.mesh_embed",
            true,
        ),
        mlp(
            "grid2mesh_gnn",
            "encoder_edges_grid2mesh",
            "encoder.grid2mesh_edge_embed",
            true,
        ),
        mlp(
            "grid2mesh_gnn",
            "processor_edges_0_grid2mesh",
            "encoder.grid2mesh.edge_mlp",
            true,
        ),
        mlp(
            "grid2mesh_gnn",
            "processor_nodes_0_mesh_nodes",
            "encoder.grid2mesh.node_mlp",
            true,
        ),
        mlp(
            "grid2mesh_gnn",
            "processor_nodes_0_grid_nodes",
            "encoder.grid_update",
            true,
        ),
        mlp(
            "mesh_gnn",
            "encoder_edges_mesh",
            "encoder.mesh_edge_embed",
            true,
        ),
    ];
    for k in 0..steps {
        let layer = format!("processor.layers.{k}.Interaction");
        list.push(mlp(
            "mesh_gnn",
            &format!("processor_edges_{k}_mesh"),
            &format!("{layer}.edge_mlp"),
            true,
        ));
        list.push(mlp(
            "mesh_gnn",
            &format!("processor_nodes_{k}_mesh_nodes"),
            &format!("{layer}.node_mlp"),
            true,
        ));
    }
    list.extend([
        mlp(
            "mesh2grid_gnn",
            "encoder_edges_mesh2grid",
            "decoder.mesh2grid_edge_embed",
            true,
        ),
        mlp(
            "mesh2grid_gnn",
            "processor_edges_0_mesh2grid",
            "decoder.mesh2grid.edge_mlp",
            true,
        ),
        mlp(
            "mesh2grid_gnn",
            "processor_nodes_0_grid_nodes",
            "decoder.mesh2grid.node_mlp",
            true,
        ),
        mlp(
            "mesh2grid_gnn",
            "decoder_nodes_grid_nodes",
            "decoder.head",
            false,
        ),
    ]);
    list
}

/// The one MLP of GraphCast's whose output GraphCast itself discards: the decoder's mesh-node update.
const UNUSED: &str = "mesh2grid_gnn/~_networks_builder/processor_nodes_0_mesh_nodes";

impl ImportedModel {
    /// The WeatherLens model of `checkpoint`. Fails, naming the key, when a parameter is missing, has an
    /// unexpected shape, or belongs to no part of the configured network (params of another config).
    pub fn from_checkpoint(checkpoint: &GraphCastCheckpoint) -> Result<Self, GraphCastError> {
        let path = &checkpoint.path;
        let model = &checkpoint.model;
        let key_error = |key: &str, reason: String| GraphCastError::Key {
            path: path.clone(),
            key: key.to_string(),
            reason,
        };
        if model.hidden_layers != 1 {
            return Err(key_error(
                "model_config:hidden_layers",
                format!(
                    "{} hidden layers: WeatherLens's MLPs have one (as every published GraphCast)",
                    model.hidden_layers
                ),
            ));
        }
        let latent = model.latent_size;
        let param = |key: &str| -> Result<&Array, GraphCastError> {
            checkpoint
                .params
                .get(key)
                .ok_or_else(|| GraphCastError::Missing {
                    path: path.clone(),
                    key: format!("params:{key}"),
                    what: format!(
                        "a parameter of a GraphCast with {} processor steps",
                        model.gnn_msg_steps
                    ),
                })
        };
        let grid_embed =
            param("grid2mesh_gnn/~_networks_builder/encoder_nodes_grid_nodes_mlp/~/linear_0:w")?;
        let head =
            param("mesh2grid_gnn/~_networks_builder/decoder_nodes_grid_nodes_mlp/~/linear_1:w")?;
        let (input_channels, output_channels) = match (
            grid_embed.shape.as_slice(),
            head.shape.as_slice(),
        ) {
            ([inputs, _], [_, outputs]) if *inputs > NODE_FEATURES => {
                (inputs - NODE_FEATURES, *outputs)
            }
            _ => {
                return Err(key_error(
                    "params:grid2mesh_gnn/~_networks_builder/encoder_nodes_grid_nodes_mlp/~/linear_0:w",
                    format!("shape {:?} is not [channels + 3, latent]", grid_embed.shape),
                ));
            }
        };
        let mut used = vec![format!("{UNUSED}_mlp/~/linear_0:w")];
        used.extend(
            ["linear_0:b", "linear_1:w", "linear_1:b"].map(|p| format!("{UNUSED}_mlp/~/{p}")),
        );
        used.extend(["scale", "offset"].map(|p| format!("{UNUSED}_layer_norm:{p}")));
        let mut tensors = Vec::new();
        for m in mappings(model.gnn_msg_steps) {
            let module = format!("{}/~_networks_builder/{}", m.network, m.prefix);
            let inputs = |array: &Array| array.shape.first().copied().unwrap_or(0);
            let first = param(&format!("{module}_mlp/~/linear_0:w"))?;
            let outputs = if m.target == "decoder.head" {
                output_channels
            } else {
                latent
            };
            let mut parts = vec![
                (
                    "hidden.weight",
                    "_mlp/~/linear_0:w",
                    vec![inputs(first), latent],
                ),
                ("hidden.bias", "_mlp/~/linear_0:b", vec![latent]),
                ("output.weight", "_mlp/~/linear_1:w", vec![latent, outputs]),
                ("output.bias", "_mlp/~/linear_1:b", vec![outputs]),
            ];
            if m.layer_norm {
                parts.push(("norm.gamma", "_layer_norm:scale", vec![latent]));
                parts.push(("norm.beta", "_layer_norm:offset", vec![latent]));
            }
            for (name, suffix, shape) in parts {
                let key = format!("{module}{suffix}");
                let array = param(&key)?;
                if array.shape != shape {
                    return Err(key_error(
                        &format!("params:{key}"),
                        format!(
                            "shape {:?}, expected {shape:?} for this model_config",
                            array.shape
                        ),
                    ));
                }
                let array = if m.target == "encoder.mesh_embed" && name == "hidden.weight" {
                    // GraphCast feeds mesh nodes [zeros for the C data channels, 3 node features]: only the
                    // last 3 rows of the weight meet non-zero inputs.
                    let skip = (shape[0] - NODE_FEATURES) * latent;
                    Array {
                        shape: vec![NODE_FEATURES, latent],
                        values: array.values[skip..].to_vec(),
                    }
                } else {
                    array.clone()
                };
                tensors.push((format!("{}.{name}", m.target), array));
                used.push(key);
            }
        }
        if let Some(extra) = checkpoint.params.keys().find(|k| !used.contains(k)) {
            return Err(key_error(
                &format!("params:{extra}"),
                format!(
                    "not a parameter of a GraphCast with {} processor steps: the params belong to another config",
                    model.gnn_msg_steps
                ),
            ));
        }
        let config = ModelConfig {
            mesh_level: model.mesh_size,
            latent_size: latent,
            num_layers: model.gnn_msg_steps,
            processor: ProcessorKind::Gnn,
            norm: NormPlacement::Post,
            residual_scale: None,
            aggregation: Aggregation::Messages,
            graph: GraphRules::Graphcast,
            grid2mesh_radius_fraction: model.radius_query_fraction_edge_length,
            mesh2grid_edge_normalisation: model.mesh2grid_edge_normalization_factor,
            ..ModelConfig::default()
        };
        config
            .validate()
            .map_err(|(field, reason)| key_error(&format!("model_config ({field})"), reason))?;
        Ok(Self {
            config,
            input_channels,
            output_channels,
            tensors,
        })
    }
}

//! The model's hyper-parameters, read from the `[model]` table of a run config (TOML).

use serde::{Deserialize, Serialize};

use crate::mlp::NormPlacement;

/// Which processor sits between the encoder and decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProcessorKind {
    /// Interaction network on the multimesh with unshared layers (GraphCast).
    #[default]
    Gnn,
    /// Multi-head self-attention over mesh nodes (a stand-in for Aurora's / anemoi's transformer processors).
    Transformer,
    /// One interaction layer applied `num_layers` times, residual scaled by 1/L: the neural-ODE form.
    Shared,
    /// Control: each node evolves alone (an MLP per node, no messages between nodes).
    Selfloop,
}

impl ProcessorKind {
    /// Whether the processor's layers carry latents on mesh edges (interaction networks do).
    pub fn passes_messages_on_edges(self) -> bool {
        matches!(self, ProcessorKind::Gnn | ProcessorKind::Shared)
    }
}

/// What a node sums over its incoming edges in every interaction step ([`crate::interaction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The edge MLP's outputs (the messages), as GraphCast sums them (`typed_graph_net.py`,
    /// `_InteractionNetwork`); the rule for new models.
    #[default]
    Messages,
    /// The updated edge latents `e + m`: WeatherLens's rule before GraphCast import. A run.json without an
    /// `aggregation` key was trained with it and loads with it.
    UpdatedEdges,
}

/// How the graphs are built from the geometry ([`crate::graph::ModelGraph::for_model`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GraphRules {
    /// f64 geometry; a grid point receives from the mesh triangle containing it.
    #[default]
    Weatherlens,
    /// As DeepMind's GraphCast code builds them, f32 geometry and trimesh's closest face
    /// ([`crate::graph::graphcast`]): what imported GraphCast checkpoints run on.
    Graphcast,
}

/// Which mesh nodes a transformer node attends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AttentionScope {
    /// Itself and its multimesh neighbours (the senders of its incoming edges).
    #[default]
    Neighbours,
    /// Every mesh node.
    Global,
}

/// `[model]` in a run config. Unknown keys are rejected so that typos never pass silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Icosahedral refinement level R of the multimesh (R = 6 in GraphCast).
    pub mesh_level: u32,
    /// Width of every latent vector (512 in GraphCast).
    pub latent_size: usize,
    /// Number of processor layers L (16 in GraphCast).
    pub num_layers: usize,
    pub processor: ProcessorKind,
    /// LayerNorm after each MLP (GraphCast) or before it.
    pub norm: NormPlacement,
    /// Multiplies every increment: `X_{i+1} = X_i + s·v_i(X_i)`. Default 1, or 1/L for `shared`.
    pub residual_scale: Option<f64>,
    /// Attention heads (transformer only).
    pub num_heads: usize,
    /// Attention neighbourhood (transformer only).
    pub attention: AttentionScope,
    /// What each interaction step sums into a receiving node.
    pub aggregation: Aggregation,
    /// How the graphs are built.
    pub graph: GraphRules,
    /// grid2mesh radius as a fraction of the finest mesh level's longest edge (GraphCast:
    /// `radius_query_fraction_edge_length = 0.6`).
    pub grid2mesh_radius_fraction: f64,
    /// A fixed divisor of the mesh2grid edge features instead of their longest edge (GraphCast's
    /// `mesh2grid_edge_normalization_factor`).
    pub mesh2grid_edge_normalisation: Option<f64>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            mesh_level: 3,
            latent_size: 64,
            num_layers: 8,
            processor: ProcessorKind::Gnn,
            norm: NormPlacement::Post,
            residual_scale: None,
            num_heads: 4,
            attention: AttentionScope::Neighbours,
            aggregation: Aggregation::Messages,
            graph: GraphRules::Weatherlens,
            grid2mesh_radius_fraction: 0.6,
            mesh2grid_edge_normalisation: None,
        }
    }
}

impl ModelConfig {
    /// The residual scale actually used: the configured one, else 1/L for `shared` and 1 otherwise.
    pub fn effective_residual_scale(&self) -> f64 {
        self.residual_scale.unwrap_or(match self.processor {
            ProcessorKind::Shared => 1.0 / self.num_layers as f64,
            _ => 1.0,
        })
    }

    /// Checks values that serde cannot: returns the offending key and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, why: &str| Err((format!("model.{key}"), why.to_string()));
        if self.mesh_level > 7 {
            return fail("mesh_level", "must be at most 7 (R = 7 has 163,842 nodes)");
        }
        if self.latent_size < 2 {
            // Every MLP ends in a LayerNorm, which maps a single value to its learned offset: with one latent
            // channel every node carries the same constant, and the analyses of its spread have nothing to see.
            return fail(
                "latent_size",
                "must be at least 2 (a LayerNorm over one channel outputs a constant)",
            );
        }
        if self.num_layers == 0 {
            return fail("num_layers", "must be positive");
        }
        if self.processor == ProcessorKind::Transformer
            && (self.num_heads == 0 || !self.latent_size.is_multiple_of(self.num_heads))
        {
            return fail("num_heads", "must be positive and divide latent_size");
        }
        if let Some(s) = self.residual_scale
            && !(s.is_finite() && s > 0.0)
        {
            return fail("residual_scale", "must be a positive finite number");
        }
        let fraction = self.grid2mesh_radius_fraction;
        if !(fraction.is_finite() && fraction > 0.0) {
            return fail(
                "grid2mesh_radius_fraction",
                "must be a positive finite number",
            );
        }
        if let Some(f) = self.mesh2grid_edge_normalisation
            && !(f.is_finite() && f > 0.0)
        {
            return fail(
                "mesh2grid_edge_normalisation",
                "must be a positive finite number",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = toml::from_str::<ModelConfig>("latent_size = 8\nlatnet = 3\n").unwrap_err();
        assert!(err.to_string().contains("latnet"), "{err}");
    }

    #[test]
    fn wrong_type_is_rejected() {
        let err = toml::from_str::<ModelConfig>("num_layers = \"eight\"\n").unwrap_err();
        assert!(err.to_string().contains("num_layers"), "{err}");
    }

    #[test]
    fn shared_defaults_to_one_over_depth() {
        let config: ModelConfig =
            toml::from_str("processor = \"shared\"\nnum_layers = 8\n").unwrap();
        assert_eq!(config.effective_residual_scale(), 0.125);
        let config: ModelConfig = toml::from_str("processor = \"gnn\"\n").unwrap();
        assert_eq!(config.effective_residual_scale(), 1.0);
    }

    #[test]
    fn validation_names_the_key() {
        let config = ModelConfig {
            processor: ProcessorKind::Transformer,
            latent_size: 10,
            num_heads: 4,
            ..ModelConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().0, "model.num_heads");
    }
}

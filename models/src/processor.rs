//! The processor: L layers that each add an increment to the mesh latent, `X_{i+1} = X_i + v_i(X_i)`.
//!
//! Variants (see [`ProcessorKind`]) share this loop; only the layer that computes `v_i` differs.

use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::config::{ModelConfig, ProcessorKind};
use crate::hooks::{HookPoint, Hooks};
use crate::interaction::{EdgeIndex, InteractionNetwork};
use crate::mlp::{Mlp, NormPlacement};

/// What a processor layer may look at besides the node latents: the mesh graph and the attention mask.
pub struct MeshContext<'a> {
    pub edges: &'a EdgeIndex,
    /// mask: [mesh_nodes, mesh_nodes], true where attention is *blocked*; `None` = global attention.
    pub attention_mask: Option<&'a Tensor<2, Bool>>,
}

/// Pre-LN transformer block over mesh nodes: `v = Attn(LN(x)); v = v + MLP(x + v)` (MLP pre-normed).
#[derive(Module, Debug)]
pub struct AttentionBlock {
    norm: LayerNorm,
    attention: MultiHeadAttention,
    mlp: Mlp,
}

impl AttentionBlock {
    fn new(latent_size: usize, num_heads: usize, device: &Device) -> Self {
        Self {
            norm: LayerNormConfig::new(latent_size).init(device),
            attention: MultiHeadAttentionConfig::new(latent_size, num_heads)
                .with_dropout(0.0)
                .init(device),
            mlp: Mlp::new(
                latent_size,
                latent_size,
                latent_size,
                NormPlacement::Pre,
                device,
            ),
        }
    }

    /// x: [batch, nodes, latent] -> increment [batch, nodes, latent]
    fn increment(&self, x: Tensor<3>, mask: Option<&Tensor<2, Bool>>) -> Tensor<3> {
        let [batch, nodes, _] = x.dims();
        let mut input = MhaInput::self_attn(self.norm.forward(x.clone()));
        if let Some(mask) = mask {
            input = input.mask_attn(mask.clone().unsqueeze::<3>().expand([batch, nodes, nodes]));
        }
        let attended = self.attention.forward(input).context;
        let mlp_out = self.mlp.forward(x + attended.clone());
        attended + mlp_out
    }
}

/// One processor layer; the variant is a config value, the residual loop is shared.
#[derive(Module, Debug)]
pub enum ProcessorLayer {
    Interaction(InteractionNetwork),
    Attention(AttentionBlock),
    /// Control with no messages: `v = MLP(x)` node by node.
    SelfLoop(Mlp),
}

impl ProcessorLayer {
    /// x: [batch, nodes, latent], edges: [batch, mesh_edges, latent] (interaction layers only) ->
    /// (node increment [batch, nodes, latent], edge increment [batch, mesh_edges, latent] if the layer has one)
    fn increments(
        &self,
        mesh: &MeshContext,
        x: Tensor<3>,
        edges: Option<&Tensor<3>>,
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        match self {
            ProcessorLayer::Interaction(net) => {
                let edges = edges
                    .expect("the encoder embeds mesh edges for message-passing processors")
                    .clone();
                let (v, edge_v) = net.increments(mesh.edges, x.clone(), x, edges);
                (v, Some(edge_v))
            }
            ProcessorLayer::Attention(block) => (block.increment(x, mesh.attention_mask), None),
            ProcessorLayer::SelfLoop(mlp) => (mlp.forward(x), None),
        }
    }

    fn zero_output(self) -> Self {
        match self {
            ProcessorLayer::Interaction(net) => ProcessorLayer::Interaction(net.zero_output()),
            ProcessorLayer::Attention(block) => ProcessorLayer::Attention(AttentionBlock {
                mlp: block.mlp.zero_output(),
                attention: zero_attention_output(block.attention),
                norm: block.norm,
            }),
            ProcessorLayer::SelfLoop(mlp) => ProcessorLayer::SelfLoop(mlp.zero_output()),
        }
    }
}

fn zero_attention_output(mut attention: MultiHeadAttention) -> MultiHeadAttention {
    attention.output.weight = attention.output.weight.map(|t| t.zeros_like());
    attention.output.bias = attention.output.bias.map(|b| b.map(|t| t.zeros_like()));
    attention
}

/// The processor: `num_steps` residual updates of the mesh latent.
#[derive(Module, Debug)]
pub struct Processor {
    /// One layer per step, or a single layer reused at every step (`shared`).
    layers: Vec<ProcessorLayer>,
    num_steps: usize,
    /// s in `X_{i+1} = X_i + s·v_i(X_i)`.
    residual_scale: f64,
}

impl Processor {
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let latent = config.latent_size;
        let make = || match config.processor {
            ProcessorKind::Gnn | ProcessorKind::Shared => {
                ProcessorLayer::Interaction(InteractionNetwork::new(latent, config.norm, device))
            }
            ProcessorKind::Transformer => {
                ProcessorLayer::Attention(AttentionBlock::new(latent, config.num_heads, device))
            }
            ProcessorKind::Selfloop => {
                ProcessorLayer::SelfLoop(Mlp::new(latent, latent, latent, config.norm, device))
            }
        };
        let distinct_layers = match config.processor {
            ProcessorKind::Shared => 1,
            _ => config.num_layers,
        };
        Self {
            layers: (0..distinct_layers).map(|_| make()).collect(),
            num_steps: config.num_layers,
            residual_scale: config.effective_residual_scale(),
        }
    }

    pub fn num_steps(&self) -> usize {
        self.num_steps
    }

    /// x: [batch, mesh_nodes, latent], edges: [batch, mesh_edges, latent] (message-passing processors) ->
    /// X_L: [batch, mesh_nodes, latent]
    pub fn forward(
        &self,
        mesh: &MeshContext,
        mut x: Tensor<3>,
        mut edges: Option<Tensor<3>>,
        hooks: &Hooks,
    ) -> Tensor<3> {
        for i in 0..self.num_steps {
            let layer = &self.layers[i % self.layers.len()];
            hooks.at(HookPoint::ResidPre(i), &x);
            let (v, edge_v) = layer.increments(mesh, x.clone(), edges.as_ref());
            let v = self.scaled(v);
            hooks.at(HookPoint::Delta(i), &v);
            x = x + v;
            if let (Some(e), Some(edge_v)) = (edges.take(), edge_v) {
                let edge_v = self.scaled(edge_v);
                hooks.at(HookPoint::EdgeDelta(i), &edge_v);
                edges = Some(e + edge_v);
            }
            hooks.at(HookPoint::ResidPost(i), &x);
        }
        x
    }

    /// `s·v`, skipping the multiply when s = 1 so the plain model's arithmetic is untouched.
    fn scaled(&self, v: Tensor<3>) -> Tensor<3> {
        if self.residual_scale == 1.0 {
            v
        } else {
            v * self.residual_scale
        }
    }

    /// Zero every layer's output weights so every increment is exactly zero (tests, ablations).
    pub fn zero_output(self) -> Self {
        Self {
            layers: self
                .layers
                .into_iter()
                .map(ProcessorLayer::zero_output)
                .collect(),
            ..self
        }
    }
}

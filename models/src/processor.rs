//! The processor: L layers that each add an increment to the mesh latent, `X_{i+1} = X_i + v_i(X_i)`.
//!
//! Variants (see [`ProcessorKind`]) share this loop; only the layer that computes `v_i` differs.

use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

use crate::config::{ModelConfig, ProcessorKind};
use crate::hooks::{HookPoint, Hooks};
use crate::interaction::{EdgeIndex, InteractionNetwork};
use crate::mlp::{Mlp, NormPlacement};

/// What a processor layer may look at besides the node latents: the mesh graph and whom attention may see.
pub struct MeshContext<'a> {
    pub edges: &'a EdgeIndex,
    /// Neighbourhood attention: each node attends over these edges into it (the mesh edges plus a self loop per
    /// node); `None` = global attention over all nodes.
    pub attention_edges: Option<&'a EdgeIndex>,
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
    fn increment(&self, x: Tensor<3>, neighbours: Option<&EdgeIndex>) -> Tensor<3> {
        let normed = self.norm.forward(x.clone());
        let attended = match neighbours {
            Some(edges) => self.neighbour_attention(normed, edges),
            None => self.attention.forward(MhaInput::self_attn(normed)).context,
        };
        let mlp_out = self.mlp.forward(x + attended.clone());
        attended + mlp_out
    }

    /// Multi-head attention of every node over the senders of its incoming `edges`, evaluated edge by edge:
    /// O(edges) work instead of the O(nodes²) of a masked dense attention, with the same parameters and result
    /// as burn's `MultiHeadAttention` under the mask that blocks all other pairs
    /// ([`Self::neighbour_attention_reference`]).
    ///
    /// ```text
    /// s_kh = q_{rcv(k),h} · k_{snd(k),h} / √d_k             scores      [batch, edges, heads]
    /// a_kh = exp(s_kh − m_{rcv(k),h}) / Σ_{j into rcv(k)}    softmax per receiver (m: its max, a constant)
    /// c_n  = Σ_{k into n} a_k · v_{snd(k)}                   context     [batch, nodes, latent]
    /// ```
    ///
    /// x: [batch, nodes, latent] -> [batch, nodes, latent]
    fn neighbour_attention(&self, x: Tensor<3>, edges: &EdgeIndex) -> Tensor<3> {
        let mha = &self.attention;
        let [batch, nodes, latent] = x.dims();
        let (heads, d_k, count) = (mha.n_heads, mha.d_k, edges.num_edges());
        let (senders, receivers) = (&edges.senders.index, &edges.receivers.index);
        let per_head = |t: Tensor<3>| t.reshape([batch, count, heads, d_k]);
        let q = mha.query.forward(x.clone()).select(1, receivers.clone());
        let k = mha.key.forward(x.clone()).select(1, senders.clone());
        let v = mha.value.forward(x).select(1, senders.clone());
        let scores = (per_head(q) * per_head(k))
            .sum_dim(3)
            .reshape([batch, count, heads])
            .div_scalar((d_k as f32).sqrt());
        // The per-receiver maximum only keeps exp() in range; softmax does not depend on it, so it is taken off
        // the autodiff graph.
        let plain = scores.clone().inner();
        let max = Tensor::<3>::full([batch, nodes, heads], f32::MIN, &plain.device())
            .select_assign(1, receivers.clone().inner(), plain, IndexingUpdateOp::Max);
        let weights = (scores - max.select(1, receivers.clone().inner())).exp();
        let totals = edges.sum_into_receivers(weights.clone());
        let weights = weights / totals.select(1, receivers.clone());
        let context = (per_head(v) * weights.unsqueeze_dim::<4>(3)).reshape([batch, count, latent]);
        let context = edges.sum_into_receivers(context);
        mha.output.forward(context)
    }

    /// [`Self::neighbour_attention`] as burn's dense attention with a [nodes, nodes] mask: the reference.
    #[cfg(test)]
    fn neighbour_attention_reference(&self, x: Tensor<3>, mask: &Tensor<2, Bool>) -> Tensor<3> {
        let [batch, nodes, _] = x.dims();
        let mask = mask.clone().unsqueeze::<3>().expand([batch, nodes, nodes]);
        self.attention
            .forward(MhaInput::self_attn(x).mask_attn(mask))
            .context
    }
}

/// One processor layer; the variant is a config value, the residual loop is shared.
// A model holds a handful of these, so the variants' size difference (the attention block is the largest) costs
// nothing; boxing one would only add an indirection to the module tree.
#[allow(clippy::large_enum_variant)]
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
            ProcessorLayer::Attention(block) => (block.increment(x, mesh.attention_edges), None),
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

    /// The processor's state entering each step, by the same arithmetic as [`Self::forward`]: entry `i` is
    /// (X_i, E_i) for i = 0..=num_steps, so the last entry is (X_L, E_L). X_i is what `processor.{i}.resid_pre`
    /// shows; E_i are the edge latents that step i reads (message-passing processors; `None` otherwise).
    ///
    /// x: [batch, mesh_nodes, latent], edges: [batch, mesh_edges, latent] ->
    /// (num_steps + 1) × ([batch, mesh_nodes, latent], [batch, mesh_edges, latent])
    pub fn states(
        &self,
        mesh: &MeshContext,
        mut x: Tensor<3>,
        mut edges: Option<Tensor<3>>,
    ) -> Vec<(Tensor<3>, Option<Tensor<3>>)> {
        let mut states = Vec::with_capacity(self.num_steps + 1);
        for i in 0..self.num_steps {
            states.push((x.clone(), edges.clone()));
            let layer = &self.layers[i % self.layers.len()];
            let (v, edge_v) = layer.increments(mesh, x.clone(), edges.as_ref());
            x = x + self.scaled(v);
            if let (Some(e), Some(edge_v)) = (edges.take(), edge_v) {
                edges = Some(e + self.scaled(edge_v));
            }
        }
        states.push((x, edges));
        states
    }

    /// The scaled node increment `s·v_i(X)` of step `layer` as a function of the node latents alone, the edge
    /// latents held at `edges` (E_i from [`Self::states`]: they depend on X_0..X_{i-1}, not on X_i, so this is
    /// the exact function that `processor.{i}.delta` evaluates at X_i). The same arithmetic as
    /// [`Self::forward`], so `layer_increment(mesh, i, X_i, E_i)` equals `processor.{i}.delta` bit for bit.
    ///
    /// x: [batch, mesh_nodes, latent], edges: [batch, mesh_edges, latent] -> [batch, mesh_nodes, latent]
    ///
    /// # Panics
    /// If `layer >= num_steps`, or if a message-passing processor gets no edges.
    pub fn layer_increment(
        &self,
        mesh: &MeshContext,
        layer: usize,
        x: Tensor<3>,
        edges: Option<Tensor<3>>,
    ) -> Tensor<3> {
        assert!(
            layer < self.num_steps,
            "layer {layer} of a {}-step processor",
            self.num_steps
        );
        let (v, _) = self.layers[layer % self.layers.len()].increments(mesh, x, edges.as_ref());
        self.scaled(v)
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

#[cfg(test)]
mod tests {

    use burn::tensor::Distribution;

    use super::*;
    use crate::config::AttentionScope;
    use crate::graph::ModelGraph;
    use crate::graph_tensors::GraphTensors;
    use crate::grid::{LatLonGrid, LatitudeOrder, PoleRows};

    use crate::hooks::test_support::{Recorder, values};

    #[test]
    fn edgewise_neighbour_attention_equals_masked_dense_attention_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(21);
        let grid =
            LatLonGrid::equiangular(8, 16, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        let graph = ModelGraph::build(&grid, 1).unwrap();
        let tensors = GraphTensors::new(&graph, Some(AttentionScope::Neighbours), &device);
        let edges = tensors.attention_edges.as_ref().unwrap();
        let nodes = graph.num_mesh_nodes();
        // The mask burn's attention takes: blocked unless an attention edge n <- m exists.
        let mut blocked = vec![true; nodes * nodes];
        let mesh = graph.mesh_edges();
        for (&s, &r) in mesh.senders().iter().zip(mesh.receivers()) {
            blocked[r as usize * nodes + s as usize] = false;
        }
        for n in 0..nodes {
            blocked[n * nodes + n] = false;
        }
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(blocked, [nodes, nodes]), &device);
        let block = AttentionBlock::new(8, 2, &device);
        let x = Tensor::<3>::random([2, nodes, 8], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<3>::random([2, nodes, 8], Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let x = Tensor::from_data(x.to_data(), &device).require_grad();
            let y = if fast {
                block.neighbour_attention(x.clone(), edges)
            } else {
                block.neighbour_attention_reference(x.clone(), &mask)
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let query = block.attention.query.weight.val().grad(&grads).unwrap();
            let grad_x = x.grad(&grads).unwrap();
            [values(y), values(grad_x), values(query.unsqueeze::<3>())]
        };
        let (fast, reference) = (run(true), run(false));
        for (what, (a, b)) in ["output", "grad x", "grad W_q"]
            .iter()
            .zip(fast.iter().zip(&reference))
        {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "{what}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn states_and_layer_increment_repeat_the_forward_pass_bit_for_bit() {
        let device = Device::flex();
        let grid =
            LatLonGrid::equiangular(8, 16, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        let graph = ModelGraph::build(&grid, 1).unwrap();
        let latent = 8;
        let num_layers = 3;
        for (processor, residual_scale) in [
            (ProcessorKind::Gnn, None),
            (ProcessorKind::Gnn, Some(0.5)),
            (ProcessorKind::Shared, None),
            (ProcessorKind::Transformer, None),
            (ProcessorKind::Selfloop, None),
        ] {
            device.seed(5);
            let config = ModelConfig {
                mesh_level: 1,
                latent_size: latent,
                num_layers,
                processor,
                residual_scale,
                num_heads: 2,
                attention: AttentionScope::Neighbours,
                ..ModelConfig::default()
            };
            let attention = (processor == ProcessorKind::Transformer).then_some(config.attention);
            let tensors = GraphTensors::new(&graph, attention, &device);
            let mesh = tensors.mesh_context();
            let model = Processor::new(&config, &device);
            let normal = Distribution::Normal(0.0, 1.0);
            let x = Tensor::<3>::random([2, graph.num_mesh_nodes(), latent], normal, &device);
            let edges = processor.passes_messages_on_edges().then(|| {
                Tensor::<3>::random([2, tensors.mesh.num_edges(), latent], normal, &device)
            });
            let recorder = Recorder::default();
            let out = model.forward(
                &mesh,
                x.clone(),
                edges.clone(),
                &Hooks::none().with(&recorder),
            );
            let states = model.states(&mesh, x, edges);
            assert_eq!(states.len(), num_layers + 1);
            let seen = recorder.seen.borrow();
            for (i, (x_i, e_i)) in states.iter().take(num_layers).enumerate() {
                let label = format!("{processor:?} {residual_scale:?} layer {i}");
                assert_eq!(
                    values(x_i.clone()),
                    seen[&HookPoint::ResidPre(i).to_string()],
                    "{label}"
                );
                let v = model.layer_increment(&mesh, i, x_i.clone(), e_i.clone());
                assert_eq!(values(v), seen[&HookPoint::Delta(i).to_string()], "{label}");
                assert_eq!(e_i.is_some(), processor.passes_messages_on_edges());
            }
            assert_eq!(values(states[num_layers].0.clone()), values(out));
        }
    }
}

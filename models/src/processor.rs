//! The processor: L layers that each add an increment to the mesh latent, `X_{i+1} = X_i + v_i(X_i)`.
//!
//! Variants (see [`ProcessorKind`]) share this loop; only the layer that computes `v_i` differs.

use burn::prelude::*;

use crate::attention::AttentionBlock;
use crate::config::{ModelConfig, ProcessorKind};
use crate::fused::Kernels;
use crate::hooks::{HookPoint, Hooks};
use crate::interaction::{EdgeIndex, InteractionNetwork};
use crate::mlp::Mlp;

/// What a processor layer may look at besides the node latents: the mesh graph and whom attention may see.
pub struct MeshContext<'a> {
    pub edges: &'a EdgeIndex,
    /// Neighbourhood attention: each node attends over these edges into it (the mesh edges plus a self loop per
    /// node); `None` = global attention over all nodes.
    pub attention_edges: Option<&'a EdgeIndex>,
    /// Which implementation the layers' ops run.
    pub kernels: Kernels,
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
                let (v, edge_v) = net.increments(mesh.edges, x.clone(), x, edges, mesh.kernels);
                (v, Some(edge_v))
            }
            ProcessorLayer::Attention(block) => {
                (block.increment(x, mesh.attention_edges, mesh.kernels), None)
            }
            ProcessorLayer::SelfLoop(mlp) => (mlp.forward(x, mesh.kernels), None),
        }
    }

    fn zero_output(self) -> Self {
        match self {
            ProcessorLayer::Interaction(net) => ProcessorLayer::Interaction(net.zero_output()),
            ProcessorLayer::Attention(block) => ProcessorLayer::Attention(block.zero_output()),
            ProcessorLayer::SelfLoop(mlp) => ProcessorLayer::SelfLoop(mlp.zero_output()),
        }
    }
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
            ProcessorKind::Gnn | ProcessorKind::Shared => ProcessorLayer::Interaction(
                InteractionNetwork::new(latent, config.norm, config.aggregation, device),
            ),
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
        x: Tensor<3>,
        edges: Option<Tensor<3>>,
        hooks: &Hooks,
    ) -> Tensor<3> {
        self.run(mesh, x, edges, hooks, |_, _| {}).0
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
        x: Tensor<3>,
        edges: Option<Tensor<3>>,
    ) -> Vec<(Tensor<3>, Option<Tensor<3>>)> {
        let mut states = Vec::with_capacity(self.num_steps + 1);
        let last = self.run(mesh, x, edges, &Hooks::none(), |x, e| {
            states.push((x.clone(), e.cloned()))
        });
        states.push(last);
        states
    }

    /// The scaled node increment `s·v_i(X)` of step `layer` as a function of the node latents alone, the edge
    /// latents held at `edges` (E_i from [`Self::states`]: they depend on X_0..X_{i-1}, not on X_i, so this is
    /// the exact function that `processor.{i}.delta` evaluates at X_i). The same step function as
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
        self.step(mesh, layer, x, edges.as_ref()).0
    }

    /// The residual loop, `X_{i+1} = X_i + v_i(X_i)` and `E_{i+1} = E_i + Δe_i`, with the hooks beside it;
    /// `entering(X_i, E_i)` sees the state entering each step. Returns (X_L, E_L).
    fn run(
        &self,
        mesh: &MeshContext,
        mut x: Tensor<3>,
        mut edges: Option<Tensor<3>>,
        hooks: &Hooks,
        mut entering: impl FnMut(&Tensor<3>, Option<&Tensor<3>>),
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        for i in 0..self.num_steps {
            entering(&x, edges.as_ref());
            hooks.at(HookPoint::ResidPre(i), &x);
            let (v, edge_v) = self.step(mesh, i, x.clone(), edges.as_ref());
            hooks.at(HookPoint::Delta(i), &v);
            x = x + v;
            if let (Some(e), Some(edge_v)) = (edges.take(), edge_v) {
                hooks.at(HookPoint::EdgeDelta(i), &edge_v);
                edges = Some(e + edge_v);
            }
            hooks.at(HookPoint::ResidPost(i), &x);
        }
        (x, edges)
    }

    /// Step `i`'s scaled increments (s·v_i, s·Δe_i) at (X_i, E_i); the one place a layer is applied.
    fn step(
        &self,
        mesh: &MeshContext,
        i: usize,
        x: Tensor<3>,
        edges: Option<&Tensor<3>>,
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        let layer = &self.layers[i % self.layers.len()];
        let (v, edge_v) = layer.increments(mesh, x, edges);
        (self.scaled(v), edge_v.map(|e| self.scaled(e)))
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

    use super::*;
    use crate::config::AttentionScope;
    use crate::graph::ModelGraph;
    use crate::graph_tensors::GraphTensors;
    use crate::grid::{LatLonGrid, LatitudeOrder, PoleRows};
    use crate::seed::seeded;
    use crate::test_support::{Recorder, random, values};

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
            let tensors = GraphTensors::new(&graph, attention, Kernels::Fused, &device);
            let mesh = tensors.mesh_context();
            let model = seeded(5, &device, || Processor::new(&config, &device));
            let x = random([2, graph.num_mesh_nodes(), latent], 6, &device);
            let edges = processor
                .passes_messages_on_edges()
                .then(|| random([2, tensors.mesh.num_edges(), latent], 7, &device));
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

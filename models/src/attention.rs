//! The transformer processor layer: pre-LN multi-head self-attention over mesh nodes followed by a pre-LN
//! MLP (a stand-in for the transformer processors of Aurora and anemoi's GraphTransformer).

use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

use crate::fused::Kernels;
use crate::interaction::EdgeIndex;
use crate::mlp::{Mlp, NormPlacement};

/// Pre-LN transformer block over mesh nodes: `v = Attn(LN(x)); v = v + MLP(x + v)` (MLP pre-normed).
#[derive(Module, Debug)]
pub struct AttentionBlock {
    norm: LayerNorm,
    attention: MultiHeadAttention,
    mlp: Mlp,
}

impl AttentionBlock {
    pub fn new(latent_size: usize, num_heads: usize, device: &Device) -> Self {
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
    ///
    /// `neighbours`: the edges each node attends over (its incoming mesh edges and a self loop); `None` =
    /// every node attends to every node.
    pub fn increment(
        &self,
        x: Tensor<3>,
        neighbours: Option<&EdgeIndex>,
        kernels: Kernels,
    ) -> Tensor<3> {
        let normed = self.norm.forward(x.clone());
        let attended = match neighbours {
            Some(edges) => self.neighbour_attention(normed, edges, kernels),
            None => self.attention.forward(MhaInput::self_attn(normed)).context,
        };
        let mlp_out = self.mlp.forward(x + attended.clone(), kernels);
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
    fn neighbour_attention(&self, x: Tensor<3>, edges: &EdgeIndex, kernels: Kernels) -> Tensor<3> {
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
        let totals = edges.sum_into_receivers(weights.clone(), kernels);
        let weights = weights / totals.select(1, receivers.clone());
        let context = (per_head(v) * weights.unsqueeze_dim::<4>(3)).reshape([batch, count, latent]);
        let context = edges.sum_into_receivers(context, kernels);
        mha.output.forward(context)
    }

    /// [`Self::neighbour_attention`] as burn's dense attention with a [nodes, nodes] mask: the reference.
    #[cfg(test)]
    fn masked_dense_attention(&self, x: Tensor<3>, mask: &Tensor<2, Bool>) -> Tensor<3> {
        let [batch, nodes, _] = x.dims();
        let mask = mask.clone().unsqueeze::<3>().expand([batch, nodes, nodes]);
        self.attention
            .forward(MhaInput::self_attn(x).mask_attn(mask))
            .context
    }

    /// Zeroes the output projection of the attention and of the MLP so the increment is exactly zero.
    pub fn zero_output(mut self) -> Self {
        let zeros = |t: Tensor<1>| t.zeros_like();
        self.attention.output.weight = self.attention.output.weight.map(|t| t.zeros_like());
        self.attention.output.bias = self.attention.output.bias.map(|b| b.map(zeros));
        self.mlp = self.mlp.zero_output();
        self
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
    use crate::test_support::{assert_close, random};

    /// burn's dense attention with a mask blocking all pairs but the attention edges.
    fn mask_of(edges: &EdgeIndex, nodes: usize, device: &Device) -> Tensor<2, Bool> {
        let senders = edges
            .senders
            .index
            .to_data()
            .iter::<i64>()
            .collect::<Vec<_>>();
        let receivers = edges
            .receivers
            .index
            .to_data()
            .iter::<i64>()
            .collect::<Vec<_>>();
        let mut blocked = vec![true; nodes * nodes];
        for (&s, &r) in senders.iter().zip(&receivers) {
            blocked[r as usize * nodes + s as usize] = false;
        }
        Tensor::<2, Bool>::from_data(TensorData::new(blocked, [nodes, nodes]), device)
    }

    /// Output, ∂(Σ w·y)/∂x and ∂(Σ w·y)/∂W_q of `attend` at `x`.
    fn output_and_grads(
        block: &AttentionBlock,
        x: &Tensor<3>,
        w: &Tensor<3>,
        attend: impl Fn(Tensor<3>) -> Tensor<3>,
    ) -> [Tensor<3>; 3] {
        let x = Tensor::from_data(x.to_data(), &x.device()).require_grad();
        let y = attend(x.clone());
        let grads = (y.clone() * w.clone()).sum().backward();
        let query = block.attention.query.weight.val().grad(&grads).unwrap();
        [y, x.grad(&grads).unwrap(), query.unsqueeze::<3>()]
    }

    #[test]
    fn edgewise_neighbour_attention_equals_masked_dense_attention_with_gradients() {
        let device = Device::flex().autodiff();
        let grid =
            LatLonGrid::equiangular(8, 16, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        let graph = ModelGraph::build(&grid, 1).unwrap();
        let tensors = GraphTensors::new(
            &graph,
            Some(AttentionScope::Neighbours),
            Kernels::Fused,
            &device,
        );
        let edges = tensors.attention_edges.as_ref().unwrap();
        let nodes = graph.num_mesh_nodes();
        let mask = mask_of(edges, nodes, &device);
        let block = seeded(21, &device, || AttentionBlock::new(8, 2, &device));
        let x = random([2, nodes, 8], 1, &device);
        let w = random([2, nodes, 8], 2, &device);
        for kernels in [Kernels::Fused, Kernels::Plain] {
            let fast = output_and_grads(&block, &x, &w, |x| {
                block.neighbour_attention(x, edges, kernels)
            });
            let dense =
                output_and_grads(&block, &x, &w, |x| block.masked_dense_attention(x, &mask));
            for (what, (a, b)) in ["output", "grad x", "grad W_q"]
                .iter()
                .zip(fast.into_iter().zip(dense))
            {
                assert_close(a, b, &format!("{kernels}: {what}"));
            }
        }
    }

    /// Global attention is neighbourhood attention on the complete graph (every node attends to every node,
    /// itself included).
    #[test]
    fn global_attention_is_neighbour_attention_on_the_complete_graph() {
        let device = Device::flex();
        let nodes = 12;
        let senders: Vec<u32> = (0..nodes * nodes).map(|k| (k % nodes) as u32).collect();
        let receivers: Vec<u32> = (0..nodes * nodes).map(|k| (k / nodes) as u32).collect();
        let complete = EdgeIndex::new(&senders, &receivers, nodes, nodes, &device);
        let block = seeded(22, &device, || AttentionBlock::new(8, 2, &device));
        let x = random([2, nodes, 8], 3, &device);
        let global = block.increment(x.clone(), None, Kernels::Fused);
        let neighbours = block.increment(x, Some(&complete), Kernels::Fused);
        assert_close(
            neighbours,
            global,
            "complete-graph neighbourhood vs global attention",
        );
    }
}

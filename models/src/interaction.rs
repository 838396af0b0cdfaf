//! The interaction network (Battaglia et al. 2018), the one message-passing block that GraphCast's encoder,
//! processor and decoder all use, configured three ways.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

use crate::mlp::{Mlp, NormPlacement};

/// Directed edges from a sender node set to a receiver node set, as device index tensors.
#[derive(Debug, Clone)]
pub struct EdgeIndex {
    /// senders: [edges] indices into the sender nodes.
    pub senders: Tensor<1, Int>,
    /// receivers: [edges] indices into the receiver nodes.
    pub receivers: Tensor<1, Int>,
    pub num_senders: usize,
    pub num_receivers: usize,
}

impl EdgeIndex {
    /// Index tensors from host arrays; `senders[k] -> receivers[k]` is edge k.
    pub fn new(
        senders: &[u32],
        receivers: &[u32],
        num_senders: usize,
        num_receivers: usize,
        device: &Device,
    ) -> Self {
        let to_tensor = |idx: &[u32]| {
            let data: Vec<i64> = idx.iter().map(|&i| i64::from(i)).collect();
            Tensor::<1, Int>::from_data(TensorData::new(data, [idx.len()]), device)
        };
        Self {
            senders: to_tensor(senders),
            receivers: to_tensor(receivers),
            num_senders,
            num_receivers,
        }
    }

    pub fn num_edges(&self) -> usize {
        self.senders.dims()[0]
    }

    /// Sum edge values into their receivers: `agg_n = Σ_{edges k into n} e_k`.
    ///
    /// edges: [batch, edges, latent] -> [batch, receivers, latent]
    pub fn sum_into_receivers(&self, edges: Tensor<3>) -> Tensor<3> {
        let [batch, _, latent] = edges.dims();
        Tensor::zeros([batch, self.num_receivers, latent], &edges.device()).select_assign(
            1,
            self.receivers.clone(),
            edges,
            IndexingUpdateOp::Add,
        )
    }
}

/// One interaction-network step:
///
/// ```text
/// e'    = e + MLP_e([e, x_snd[senders], x_rcv[receivers]])
/// agg_n = Σ_{edges into n} e'
/// Δx_n  = MLP_n([x_rcv_n, agg_n])
/// ```
///
/// It returns the node increment Δx rather than adding it, so the caller writes the residual update itself
/// (`x = x + v` in the processor is the equation `X_{i+1} = X_i + v_i(X_i)`).
///
/// The edge MLP's first layer on `[e, x_snd, x_rcv]` is evaluated as `e·W_e + (x_snd·W_s)[senders] +
/// (x_rcv·W_r)[receivers]` ([`Mlp::forward_parts`]): the same parameters and maths with about half the edge
/// FLOPs. [`InteractionNetwork::increments_reference`] keeps the plain concatenating form; tests hold the two
/// equal.
#[derive(Module, Debug)]
pub struct InteractionNetwork {
    edge_mlp: Mlp,
    node_mlp: Mlp,
}

impl InteractionNetwork {
    pub fn new(latent_size: usize, placement: NormPlacement, device: &Device) -> Self {
        Self {
            edge_mlp: Mlp::new(3 * latent_size, latent_size, latent_size, placement, device),
            node_mlp: Mlp::new(2 * latent_size, latent_size, latent_size, placement, device),
        }
    }

    /// x_senders: [batch, senders, latent], x_receivers: [batch, receivers, latent],
    /// edges: [batch, edges, latent] -> (node increment [batch, receivers, latent], edge increment
    /// [batch, edges, latent]).
    pub fn increments(
        &self,
        graph: &EdgeIndex,
        x_senders: Tensor<3>,
        x_receivers: Tensor<3>,
        edges: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let from = x_senders.select(1, graph.senders.clone());
        let to = x_receivers.clone().select(1, graph.receivers.clone());
        let edge_delta = self
            .edge_mlp
            .forward(Tensor::cat(vec![edges.clone(), from, to], 2));
        let aggregated = graph.sum_into_receivers(edges + edge_delta.clone());
        let node_delta = self
            .node_mlp
            .forward(Tensor::cat(vec![x_receivers, aggregated], 2));
        (node_delta, edge_delta)
    }

    /// Zero the output layers so that both increments are exactly zero (tests, ablations).
    pub fn zero_output(self) -> Self {
        Self {
            edge_mlp: self.edge_mlp.zero_output(),
            node_mlp: self.node_mlp.zero_output(),
        }
    }
}

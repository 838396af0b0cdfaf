//! The interaction network (Battaglia et al. 2018), the one message-passing block that GraphCast's encoder,
//! processor and decoder all use, configured three ways.

use burn::prelude::*;

use crate::fused::{self, Segments};
use crate::mlp::{Mlp, NormPlacement};

/// Directed edges from a sender node set to a receiver node set, as device index tensors grouped for the
/// fused gather and segment-sum kernels.
#[derive(Debug, Clone)]
pub struct EdgeIndex {
    /// senders: [edges] indices into the sender nodes.
    pub senders: Segments,
    /// receivers: [edges] indices into the receiver nodes.
    pub receivers: Segments,
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
        Self {
            senders: Segments::new(senders, num_senders, device),
            receivers: Segments::new(receivers, num_receivers, device),
        }
    }

    pub fn num_edges(&self) -> usize {
        self.senders.len()
    }

    /// Sum updated edge values into their receivers: `agg_n = Σ_{edges k into n} (e_k + Δe_k)`, without
    /// materialising `e + Δe`.
    ///
    /// edges, delta: [batch, edges, latent] -> [batch, receivers, latent]
    pub fn sum_updated_into_receivers(&self, edges: Tensor<3>, delta: Tensor<3>) -> Tensor<3> {
        fused::segment_sum(edges, delta, &self.receivers)
    }

    /// Sum edge values into their receivers: `agg_n = Σ_{edges k into n} e_k`. (The fused kernel sums two
    /// inputs; the second is zero here, one extra pass over a [batch, edges, width] buffer.)
    ///
    /// values: [batch, edges, width] -> [batch, receivers, width]
    pub fn sum_into_receivers(&self, values: Tensor<3>) -> Tensor<3> {
        let zeros = values.zeros_like();
        fused::segment_sum(values, zeros, &self.receivers)
    }

    /// [`Self::sum_into_receivers`] with plain burn ops (a scatter-add).
    pub fn sum_into_receivers_reference(&self, edges: Tensor<3>) -> Tensor<3> {
        fused::reference::segment_sum(edges, &self.receivers)
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
/// FLOPs, and the gathers, segment sum, bias + SiLU and LayerNorm run as fused kernels ([`crate::fused`]).
/// [`InteractionNetwork::increments_reference`] keeps the plain concatenating form in burn's own ops; tests
/// hold the two equal.
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
        if !fused::enabled() {
            return self.increments_reference(graph, x_senders, x_receivers, edges);
        }
        let edge_delta = self.edge_mlp.forward_parts(vec![
            (edges.clone(), None),
            (x_senders, Some(&graph.senders)),
            (x_receivers.clone(), Some(&graph.receivers)),
        ]);
        let aggregated = graph.sum_updated_into_receivers(edges, edge_delta.clone());
        let node_delta = self
            .node_mlp
            .forward_parts(vec![(x_receivers, None), (aggregated, None)]);
        (node_delta, edge_delta)
    }

    /// [`Self::increments`] written plainly with burn's own ops: gather, concatenate, MLP, scatter-add. The
    /// reference the fast form is tested against.
    pub fn increments_reference(
        &self,
        graph: &EdgeIndex,
        x_senders: Tensor<3>,
        x_receivers: Tensor<3>,
        edges: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let from = x_senders.select(1, graph.senders.index.clone());
        let to = x_receivers.clone().select(1, graph.receivers.index.clone());
        let edge_delta = self
            .edge_mlp
            .forward_reference(Tensor::cat(vec![edges.clone(), from, to], 2));
        let aggregated = graph.sum_into_receivers_reference(edges + edge_delta.clone());
        let node_delta = self
            .node_mlp
            .forward_reference(Tensor::cat(vec![x_receivers, aggregated], 2));
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

#[cfg(test)]
mod tests {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Distribution;

    use super::*;

    /// A small random graph: 5 senders -> 4 receivers, 9 edges with repeats.
    fn graph(device: &Device) -> EdgeIndex {
        EdgeIndex::new(
            &[0, 1, 2, 3, 4, 0, 1, 2, 4],
            &[0, 0, 1, 1, 2, 3, 3, 3, 2],
            5,
            4,
            device,
        )
    }

    fn max_abs_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    struct Grads<'a>(&'a burn::tensor::Gradients, Vec<Vec<f32>>);
    impl ModuleVisitor for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = param
                .val()
                .grad(self.0)
                .expect("every parameter has a gradient");
            self.1.push(g.into_data().try_into_vec::<f32>().unwrap());
        }
    }

    #[test]
    fn fast_form_equals_the_plain_reference_with_gradients() {
        for (placement, seed) in [(NormPlacement::Post, 11), (NormPlacement::Pre, 12)] {
            let device = Device::flex().autodiff();
            device.seed(seed);
            let net = InteractionNetwork::new(8, placement, &device);
            let g = graph(&device);
            let normal = Distribution::Normal(0.0, 1.0);
            let xs = Tensor::<3>::random([2, 5, 8], normal, &device);
            let xr = Tensor::<3>::random([2, 4, 8], normal, &device);
            let e = Tensor::<3>::random([2, 9, 8], normal, &device);
            let (v_fast, e_fast) = net.increments(&g, xs.clone(), xr.clone(), e.clone());
            let (v_ref, e_ref) = net.increments_reference(&g, xs, xr, e);
            assert!(max_abs_diff(v_fast.clone(), v_ref.clone()) < 1e-5);
            assert!(max_abs_diff(e_fast.clone(), e_ref.clone()) < 1e-5);

            // A linear loss with fixed random weights: every output element matters and no gradient is a
            // cancellation of much larger terms (which would measure f32 round-off, not the kernels).
            let wv = Tensor::<3>::random(v_ref.shape(), normal, &device);
            let we = Tensor::<3>::random(e_ref.shape(), normal, &device);
            let grads_of = |v: Tensor<3>, e: Tensor<3>| {
                let loss = (v * wv.clone()).sum() + (e * we.clone()).sum();
                let grads = loss.backward();
                let mut visitor = Grads(&grads, Vec::new());
                net.visit(&mut visitor);
                visitor.1
            };
            let fast = grads_of(v_fast, e_fast);
            let reference = grads_of(v_ref, e_ref);
            assert_eq!(fast.len(), reference.len());
            for (f, r) in fast.iter().zip(&reference) {
                for (a, b) in f.iter().zip(r) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{placement:?}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn segment_sum_matches_hand_computation_and_is_deterministic() {
        let device = Device::flex();
        let g = graph(&device);
        let values: Vec<f32> = (0..9).map(|k| (k + 1) as f32).collect();
        let edges = Tensor::<3>::from_data(TensorData::new(values, [1, 9, 1]), &device);
        let sum = g.sum_into_receivers(edges.clone());
        // receiver 0 <- edges 0,1 (1+2); 1 <- 2,3 (3+4); 2 <- 4,8 (5+9); 3 <- 5,6,7 (6+7+8)
        let expected = vec![3.0, 7.0, 14.0, 21.0];
        assert_eq!(
            sum.clone().into_data().try_into_vec::<f32>().unwrap(),
            expected
        );
        let normal = Distribution::Normal(0.0, 1.0);
        let big = EdgeIndex::new(
            &(0..20_000u32).map(|k| k % 997).collect::<Vec<_>>(),
            &(0..20_000u32)
                .map(|k| (k * 7919) % 1000)
                .collect::<Vec<_>>(),
            997,
            1000,
            &device,
        );
        let e = Tensor::<3>::random([1, 20_000, 16], normal, &device);
        let first = big
            .sum_updated_into_receivers(e.clone(), e.clone())
            .into_data();
        let second = big.sum_updated_into_receivers(e.clone(), e).into_data();
        assert_eq!(first, second, "bit-identical across runs");
    }
}

//! The interaction network (Battaglia et al. 2018), the one message-passing block that GraphCast's encoder,
//! processor and decoder all use, configured three ways.

use burn::prelude::*;

use crate::config::Aggregation;
use crate::fused::{self, Kernels, Segments};
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

    /// Sum edge values into their receivers: `agg_n = Σ_{edges k into n} values_k`, through the fused segment
    /// sum (parallel over receivers, deterministic) or burn's scatter-add ([`Kernels::Plain`]).
    ///
    /// values: [batch, edges, width] -> [batch, receivers, width]
    pub fn sum_into_receivers(&self, values: Tensor<3>, kernels: Kernels) -> Tensor<3> {
        match kernels {
            Kernels::Fused => fused::segment_sum(values, &self.receivers),
            Kernels::Plain => fused::reference::segment_sum(values, &self.receivers),
        }
    }
}

/// One interaction-network step (Battaglia et al. 2018, as GraphCast uses it):
///
/// ```text
/// m_k   = MLP_e([e_k, x_snd[senders_k], x_rcv[receivers_k]])     message of edge k
/// agg_n = Σ_{edges k into n} m_k              (Aggregation::Messages, GraphCast)
///       or Σ_{edges k into n} (e_k + m_k)     (Aggregation::UpdatedEdges, WeatherLens < 0.2)
/// Δx_n  = MLP_n([x_rcv_n, agg_n])
/// ```
///
/// It returns the node increment Δx and the edge increment m rather than adding them, so the caller writes
/// the residual updates itself (`x = x + v` in the processor is the equation `X_{i+1} = X_i + v_i(X_i)`).
///
/// With [`Kernels::Fused`] the MLPs' first layers run on their parts ([`Mlp::forward_edges`],
/// [`Mlp::forward_nodes`]) and the gathers, segment sum, bias + SiLU and LayerNorm as fused kernels
/// ([`crate::fused`]); [`Kernels::Plain`] gathers, concatenates and scatter-adds with burn's own ops, the
/// reference the tests hold the fused form to.
#[derive(Module, Debug)]
pub struct InteractionNetwork {
    edge_mlp: Mlp,
    node_mlp: Mlp,
    #[module(skip)]
    aggregation: Aggregation,
}

impl InteractionNetwork {
    pub fn new(
        latent_size: usize,
        placement: NormPlacement,
        aggregation: Aggregation,
        device: &Device,
    ) -> Self {
        Self {
            edge_mlp: Mlp::new(3 * latent_size, latent_size, latent_size, placement, device),
            node_mlp: Mlp::new(2 * latent_size, latent_size, latent_size, placement, device),
            aggregation,
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
        kernels: Kernels,
    ) -> (Tensor<3>, Tensor<3>) {
        let messages = self.edge_mlp.forward_edges(
            edges.clone(),
            (x_senders, &graph.senders),
            (x_receivers.clone(), &graph.receivers),
            kernels,
        );
        let aggregated = match self.aggregation {
            Aggregation::Messages => graph.sum_into_receivers(messages.clone(), kernels),
            Aggregation::UpdatedEdges => {
                graph.sum_into_receivers(edges + messages.clone(), kernels)
            }
        };
        let node_delta = self
            .node_mlp
            .forward_nodes(x_receivers, aggregated, kernels);
        (node_delta, messages)
    }

    /// Zero the output layers so that both increments are exactly zero (tests, ablations).
    pub fn zero_output(self) -> Self {
        Self {
            edge_mlp: self.edge_mlp.zero_output(),
            node_mlp: self.node_mlp.zero_output(),
            aggregation: self.aggregation,
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, ModuleVisitor, Param};

    use super::*;
    use crate::seed::seeded;
    use crate::test_support::{assert_close, random, values};

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

    /// Every parameter's gradient, in module order.
    struct Grads<'a>(&'a burn::tensor::Gradients, Vec<Tensor<1>>);
    impl ModuleVisitor for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = param
                .val()
                .grad(self.0)
                .expect("every parameter has a gradient");
            self.1.push(g.flatten(0, D - 1));
        }
    }

    #[test]
    fn fused_kernels_equal_the_plain_reference_with_gradients() {
        let device = Device::flex().autodiff();
        let g = graph(&device);
        let xs = random([2, 5, 8], 1, &device);
        let xr = random([2, 4, 8], 2, &device);
        let e = random([2, 9, 8], 3, &device);
        // A linear loss with fixed random weights: every output element matters and no gradient is a
        // cancellation of much larger terms (which would measure f32 round-off, not the kernels).
        let wv = random([2, 4, 8], 4, &device);
        let we = random([2, 9, 8], 5, &device);
        for placement in [NormPlacement::Post, NormPlacement::Pre] {
            for aggregation in [Aggregation::Messages, Aggregation::UpdatedEdges] {
                let net = seeded(11, &device, || {
                    InteractionNetwork::new(8, placement, aggregation, &device)
                });
                let run = |kernels| {
                    let (v, m) = net.increments(&g, xs.clone(), xr.clone(), e.clone(), kernels);
                    let loss = (v.clone() * wv.clone()).sum() + (m.clone() * we.clone()).sum();
                    let grads = loss.backward();
                    let mut visitor = Grads(&grads, Vec::new());
                    net.visit(&mut visitor);
                    (v, m, visitor.1)
                };
                let label = format!("{placement:?} {aggregation:?}");
                let (v_fused, m_fused, g_fused) = run(Kernels::Fused);
                let (v_plain, m_plain, g_plain) = run(Kernels::Plain);
                assert_close(v_fused, v_plain, &format!("{label}: node increment"));
                assert_close(m_fused, m_plain, &format!("{label}: messages"));
                assert_eq!(g_fused.len(), g_plain.len());
                for (k, (a, b)) in g_fused.into_iter().zip(g_plain).enumerate() {
                    assert_close(a, b, &format!("{label}: gradient of parameter {k}"));
                }
            }
        }
    }

    #[test]
    fn segment_sum_matches_hand_computation_and_is_deterministic() {
        let device = Device::flex();
        let g = graph(&device);
        let edge_values: Vec<f32> = (0..9).map(|k| (k + 1) as f32).collect();
        let edges = Tensor::<3>::from_data(TensorData::new(edge_values, [1, 9, 1]), &device);
        // receiver 0 <- edges 0,1 (1+2); 1 <- 2,3 (3+4); 2 <- 4,8 (5+9); 3 <- 5,6,7 (6+7+8)
        let expected = vec![3.0, 7.0, 14.0, 21.0];
        for kernels in [Kernels::Fused, Kernels::Plain] {
            let sum = g.sum_into_receivers(edges.clone(), kernels);
            assert_eq!(values(sum), expected, "{kernels}");
        }
        let big = EdgeIndex::new(
            &(0..20_000u32).map(|k| k % 997).collect::<Vec<_>>(),
            &(0..20_000u32)
                .map(|k| (k * 7919) % 1000)
                .collect::<Vec<_>>(),
            997,
            1000,
            &device,
        );
        let e = random([1, 20_000, 16], 6, &device);
        let first = big
            .sum_into_receivers(e.clone(), Kernels::Fused)
            .into_data();
        let second = big.sum_into_receivers(e, Kernels::Fused).into_data();
        assert_eq!(first, second, "bit-identical across runs");
    }
}

//! The GraphCast-style encoder-processor-decoder on a lat-lon grid and an icosahedral multimesh.

use burn::prelude::*;

use crate::config::ModelConfig;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::graph_tensors::GraphTensors;
use crate::hooks::{HookPoint, Hooks};
use crate::processor::Processor;

#[derive(Module, Debug)]
pub struct WeatherModel {
    encoder: Encoder,
    processor: Processor,
    decoder: Decoder,
}

impl WeatherModel {
    /// A freshly initialised model, its weights drawn from burn's generator (build it inside
    /// [`crate::seed::seeded`] for reproducible weights).
    pub fn new(
        config: &ModelConfig,
        input_channels: usize,
        output_channels: usize,
        device: &Device,
    ) -> Self {
        Self {
            encoder: Encoder::new(config, input_channels, device),
            processor: Processor::new(config, device),
            decoder: Decoder::new(config, output_channels, device),
        }
    }

    /// input: [batch, grid_points, input_channels] -> [batch, grid_points, output_channels]
    ///
    /// Hooks only observe: the output is the same with or without them.
    pub fn forward(&self, graph: &GraphTensors, input: Tensor<3>, hooks: &Hooks) -> Tensor<3> {
        let encoded = self.encoder.forward(graph, input);
        hooks.at(HookPoint::EncoderOut, &encoded.mesh);
        let mesh = self.processor.forward(
            &graph.mesh_context(),
            encoded.mesh,
            encoded.mesh_edges,
            hooks,
        );
        let output = self.decoder.forward(graph, mesh, encoded.grid);
        hooks.at(HookPoint::DecoderOut, &output);
        output
    }

    /// The encoder alone: X_0 and the initial mesh edge latents for `input`, for probes that evaluate the
    /// processor as a function (Jacobians) rather than observe it.
    ///
    /// input: [batch, grid_points, input_channels] -> [`crate::encoder::Encoded`]
    pub fn encode(&self, graph: &GraphTensors, input: Tensor<3>) -> crate::encoder::Encoded {
        self.encoder.forward(graph, input)
    }

    /// The processor, for probes that evaluate one step as a function of its input (Jacobians).
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    pub fn num_layers(&self) -> usize {
        self.processor.num_steps()
    }

    /// The same model with every processor increment switched off (v_i = 0): tests and ablations.
    pub fn with_zeroed_processor(self) -> Self {
        Self {
            processor: self.processor.zero_output(),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {

    use burn::module::{ModuleVisitor, Param};

    use super::*;
    use crate::config::ProcessorKind;
    use crate::fused::Kernels;
    use crate::graph::ModelGraph;
    use crate::grid::{LatLonGrid, LatitudeOrder, PoleRows};
    use crate::interaction::EdgeIndex;
    use crate::processor::{MeshContext, Processor};
    use crate::seed::seeded;
    use crate::test_support::{Recorder, random, values};

    const CHANNELS: usize = 3;

    fn tiny_graph() -> ModelGraph {
        let grid =
            LatLonGrid::equiangular(8, 16, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        ModelGraph::build(&grid, 1).unwrap()
    }

    fn tiny_config(processor: ProcessorKind) -> ModelConfig {
        ModelConfig {
            mesh_level: 1,
            latent_size: 8,
            num_layers: 3,
            processor,
            num_heads: 2,
            ..ModelConfig::default()
        }
    }

    fn setup(processor: ProcessorKind, device: &Device) -> (WeatherModel, GraphTensors, Tensor<3>) {
        let config = tiny_config(processor);
        let graph = tiny_graph();
        let attention = (processor == ProcessorKind::Transformer).then_some(config.attention);
        let tensors = GraphTensors::new(&graph, attention, Kernels::Fused, device);
        let model = seeded(7, device, || {
            WeatherModel::new(&config, 2 * CHANNELS, CHANNELS, device)
        });
        let input = random([2, graph.num_grid_points(), 2 * CHANNELS], 8, device);
        (model, tensors, input)
    }

    #[test]
    fn every_variant_maps_grid_inputs_to_grid_outputs() {
        let device = Device::flex();
        for kind in [
            ProcessorKind::Gnn,
            ProcessorKind::Transformer,
            ProcessorKind::Shared,
            ProcessorKind::Selfloop,
        ] {
            let (model, graph, input) = setup(kind, &device);
            let [batch, points, _] = input.dims();
            let out = model.forward(&graph, input, &Hooks::none());
            assert_eq!(out.dims(), [batch, points, CHANNELS], "{kind:?}");
            assert!(values(out).iter().all(|v| v.is_finite()), "{kind:?}");
        }
    }

    #[test]
    fn hooks_see_every_point_and_do_not_change_the_output() {
        let device = Device::flex();
        for kind in [ProcessorKind::Gnn, ProcessorKind::Transformer] {
            let (model, graph, input) = setup(kind, &device);
            let plain = values(model.forward(&graph, input.clone(), &Hooks::none()));
            let recorder = Recorder::default();
            let hooked = values(model.forward(&graph, input, &Hooks::none().with(&recorder)));
            assert_eq!(plain, hooked, "bit-identical output with hooks ({kind:?})");
            let seen = recorder.seen.borrow();
            for i in 0..3 {
                for name in ["resid_pre", "delta", "resid_post"] {
                    assert!(seen.contains_key(&format!("processor.{i}.{name}")));
                }
                // X_{i+1} = X_i + v_i exactly.
                let pre = &seen[&format!("processor.{i}.resid_pre")];
                let delta = &seen[&format!("processor.{i}.delta")];
                let post = &seen[&format!("processor.{i}.resid_post")];
                for k in 0..pre.len() {
                    assert_eq!(post[k], pre[k] + delta[k]);
                }
            }
            assert!(seen.contains_key("encoder.out") && seen.contains_key("decoder.out"));
            assert_eq!(seen["decoder.out"], plain);
            assert_eq!(
                seen.contains_key("processor.0.edge_delta"),
                kind == ProcessorKind::Gnn
            );
        }
    }

    #[test]
    fn zeroed_processor_adds_nothing() {
        let device = Device::flex();
        for kind in [
            ProcessorKind::Gnn,
            ProcessorKind::Transformer,
            ProcessorKind::Shared,
            ProcessorKind::Selfloop,
        ] {
            let (model, graph, input) = setup(kind, &device);
            let model = model.with_zeroed_processor();
            let recorder = Recorder::default();
            model.forward(&graph, input, &Hooks::none().with(&recorder));
            let seen = recorder.seen.borrow();
            for i in 0..3 {
                assert!(
                    seen[&format!("processor.{i}.delta")]
                        .iter()
                        .all(|&v| v == 0.0)
                );
                assert_eq!(
                    seen[&format!("processor.{i}.resid_pre")],
                    seen[&format!("processor.{i}.resid_post")],
                    "{kind:?} layer {i}"
                );
            }
            assert_eq!(seen["encoder.out"], seen["processor.2.resid_post"]);
        }
    }

    #[test]
    fn selfloop_nodes_evolve_alone() {
        let device = Device::flex();
        let config = tiny_config(ProcessorKind::Selfloop);
        let graph = tiny_graph();
        let mesh = graph.mesh_edges();
        let nodes = graph.num_mesh_nodes();
        let edges = EdgeIndex::new(mesh.senders(), mesh.receivers(), nodes, nodes, &device);
        let context = MeshContext {
            edges: &edges,
            attention_edges: None,
            kernels: Kernels::Fused,
        };
        let processor = seeded(3, &device, || Processor::new(&config, &device));
        let x = random([1, nodes, 8], 4, &device);
        let e = None;
        let before = values(processor.forward(&context, x.clone(), e.clone(), &Hooks::none()));
        // Change node 0's latent only.
        let bump = Tensor::<3>::zeros([1, nodes, 8], &device)
            .slice_assign([0..1, 0..1, 0..8], Tensor::<3>::ones([1, 1, 8], &device));
        let after = values(processor.forward(&context, x + bump, e, &Hooks::none()));
        assert_ne!(before[..8], after[..8], "node 0 itself changes");
        assert_eq!(before[8..], after[8..], "no other node sees node 0");
    }

    /// Counts parameters whose gradient is missing or identically zero.
    struct DeadGradients<'a> {
        grads: &'a burn::tensor::Gradients,
        dead: usize,
        total: usize,
    }

    impl ModuleVisitor for DeadGradients<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.total += 1;
            let alive = param
                .val()
                .grad(self.grads)
                .is_some_and(|g| g.abs().max().into_scalar::<f32>() > 0.0);
            if !alive {
                self.dead += 1;
            }
        }
    }

    #[test]
    fn gradients_reach_every_parameter() {
        let device = Device::flex().autodiff();
        for kind in [
            ProcessorKind::Gnn,
            ProcessorKind::Transformer,
            ProcessorKind::Shared,
            ProcessorKind::Selfloop,
        ] {
            let (model, graph, input) = setup(kind, &device);
            let target = random(
                [2, graph.grid_node_features.dims()[0], CHANNELS],
                9,
                &device,
            );
            let loss = (model.forward(&graph, input, &Hooks::none()) - target)
                .powi_scalar(2)
                .mean();
            let grads = loss.backward();
            let mut visitor = DeadGradients {
                grads: &grads,
                dead: 0,
                total: 0,
            };
            model.visit(&mut visitor);
            assert!(visitor.total > 20, "{kind:?}: {} params", visitor.total);
            assert_eq!(
                visitor.dead, 0,
                "{kind:?}: {} of {} params got no gradient",
                visitor.dead, visitor.total
            );
        }
    }
}

//! The GPU path: burn's `wgpu` backend against `flex` on the same inputs and weights.
//!
//! Built only with `--features wgpu`; needs a wgpu adapter. Without a GPU, Mesa's lavapipe is one (a CPU Vulkan
//! device: `apt-get install mesa-vulkan-drivers libvulkan1`):
//!
//! ```sh
//! cargo test --release --workspace --features wgpu --test wgpu
//! ```
//!
//! What is compared: the fused-kernel entry points (on `flex` the fused CPU kernels, on `wgpu` their fallback to
//! burn's own ops) with their gradients; the model's forward and backward (GNN and transformer processors); one
//! training step through the trainer, and data-parallel training over a `flex` and a `wgpu` device; a probe
//! recording. Tolerances (1e-5 for one operation, 1e-4 for a model, a training step or a recording) are relative
//! to the largest magnitude of each compared tensor ([`assert_equal`]): the same f32 maths in another order (GPU
//! reductions, another matmul) differs by a few 1e-7 per operation; on lavapipe the largest differences seen were
//! 3.4e-7 (fused ops) and 1.2e-6 (a model's gradients). The initial weights are drawn on the CPU for every device
//! (`build_model`), so both runs start from the same model.
#![cfg(feature = "wgpu")]

use std::path::Path;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use weatherlens::stages::probe::{CaptureOptions, probe};
use weatherlens_models::config::{ModelConfig, ProcessorKind};
use weatherlens_models::fused::{self, Kernels, Segments};
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::grid::LatLonGrid;
use weatherlens_models::hooks::Hooks;
use weatherlens_models::model::WeatherModel;
use weatherlens_models::seed::seeded;
use weatherlens_training::config::RunConfig;
use weatherlens_training::restore::restore;
use weatherlens_training::trainer::{TrainOptions, read_metrics, train_on_devices};

fn flex() -> Device {
    Device::flex().autodiff()
}

fn wgpu() -> Device {
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff()
}

fn random(count: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| rng.random_range(-2.0..2.0)).collect()
}

fn leaf<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), device).require_grad()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn largest(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Asserts that every named tensor of `wgpu` equals the one of `flex` within `tolerance`, relative to the
/// tensor's largest magnitude or, for a tensor below 1e-4 of the largest of all, to that floor: a gradient that is
/// zero in exact arithmetic (an attention key bias: softmax ignores a shift shared by all keys) is round-off on
/// both backends, ~1e-11 here. Returns the largest relative difference.
fn assert_equal(
    what: &str,
    flex: &[(String, Vec<f32>)],
    wgpu: &[(String, Vec<f32>)],
    tolerance: f32,
) -> f32 {
    assert_eq!(flex.len(), wgpu.len(), "{what}");
    let floor = 1e-4 * flex.iter().map(|(_, v)| largest(v)).fold(0.0f32, f32::max);
    let mut worst = 0.0f32;
    for ((name, a), (other, b)) in wgpu.iter().zip(flex) {
        assert_eq!(name, other, "{what}");
        assert_eq!(a.len(), b.len(), "{what}: {name}");
        assert!(
            a.iter().all(|v| v.is_finite()),
            "{what}: {name} is not finite on wgpu"
        );
        let difference = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        let d = difference / largest(b).max(floor).max(f32::MIN_POSITIVE);
        assert!(
            d <= tolerance,
            "{what}: {name} differs by {d:e} (tolerance {tolerance:e})"
        );
        worst = worst.max(d);
    }
    eprintln!("{what}: wgpu vs flex, largest relative difference {worst:.2e}");
    worst
}

/// Output and input gradients of one fused operation on `device`, for a loss Σ w·y with fixed random w.
fn fused_ops(device: &Device) -> Vec<(String, Vec<f32>)> {
    let (batch, rows, count, width) = (2, 9, 4, 8);
    // 9 edges onto 4 nodes: repeats, an unsorted order, node 2 without edges.
    let senders: Vec<u32> = vec![3, 0, 1, 1, 3, 0, 3, 1, 0];
    let receivers: Vec<u32> = vec![0, 1, 0, 3, 3, 1, 0, 0, 1];
    let sender_rows = Segments::new(&senders, count, device);
    let receiver_rows = Segments::new(&receivers, count, device);
    let mut out = Vec::new();
    let mut record = |name: &str,
                      y: Tensor<3>,
                      inputs: Vec<(&str, Tensor<3>)>,
                      vectors: Vec<(&str, Tensor<1>)>| {
        let dims = y.dims();
        let w = Tensor::<3>::from_data(
            TensorData::new(random(dims.iter().product(), 99), dims),
            device,
        );
        let grads: Gradients = (y.clone() * w).sum().backward();
        out.push((format!("{name}: output"), host(y)));
        for (input, t) in inputs {
            out.push((format!("{name}: d/d{input}"), host(t.grad(&grads).unwrap())));
        }
        for (input, t) in vectors {
            out.push((format!("{name}: d/d{input}"), host(t.grad(&grads).unwrap())));
        }
    };
    let x3 = |seed| {
        leaf(
            &random(batch * rows * width, seed),
            [batch, rows, width],
            device,
        )
    };
    let nodes = |seed| {
        leaf(
            &random(batch * count * width, seed),
            [batch, count, width],
            device,
        )
    };
    let vector = |seed| leaf(&random(width, seed), [width], device);

    let (base, s, r, bias) = (x3(1), nodes(2), nodes(3), vector(4));
    let y = fused::gathered_bias_silu(
        base.clone(),
        (s.clone(), &sender_rows),
        (r.clone(), &receiver_rows),
        bias.clone(),
    );
    record(
        "gathered_bias_silu",
        y,
        vec![("base", base), ("senders", s), ("receivers", r)],
        vec![("bias", bias)],
    );

    let values = x3(5);
    let y = fused::segment_sum(values.clone(), &receiver_rows);
    record("segment_sum", y, vec![("values", values)], vec![]);

    let (z, bias) = (x3(6), vector(7));
    let y = fused::bias_silu(z.clone(), bias.clone());
    record("bias_silu", y, vec![("z", z)], vec![("bias", bias)]);

    let (x, bias, gamma, beta) = (x3(8), vector(9), vector(10), vector(11));
    let y = fused::layer_norm(x.clone(), bias.clone(), gamma.clone(), beta.clone(), 1e-5);
    record(
        "layer_norm",
        y,
        vec![("x", x)],
        vec![("bias", bias), ("gamma", gamma), ("beta", beta)],
    );

    let (x, w) = (x3(12), leaf(&random(width * 5, 13), [width, 5], device));
    let y = fused::linear(x.clone(), w.clone());
    let dims = y.dims();
    let weights = Tensor::<3>::from_data(
        TensorData::new(random(dims.iter().product(), 99), dims),
        device,
    );
    let grads = (y.clone() * weights).sum().backward();
    out.push(("linear: output".into(), host(y)));
    out.push(("linear: d/dx".into(), host(x.grad(&grads).unwrap())));
    out.push(("linear: d/dw".into(), host(w.grad(&grads).unwrap())));
    out
}

#[test]
fn fused_kernel_fallback_on_wgpu_equals_the_flex_kernels() {
    // On flex these run the fused CPU kernels with their own backward; on wgpu, burn's ops.
    assert_equal("fused ops", &fused_ops(&flex()), &fused_ops(&wgpu()), 1e-5);
}

/// Every parameter's gradient, in the module's order.
fn parameter_grads(model: &WeatherModel, grads: &Gradients) -> Vec<(String, Vec<f32>)> {
    struct Collect<'a>(&'a Gradients, Vec<(String, Vec<f32>)>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = param
                .val()
                .grad(self.0)
                .expect("every parameter has a gradient");
            self.1
                .push((format!("parameter {}", self.1.len()), host(grad)));
        }
    }
    let mut collect = Collect(grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

/// The model's output on a random input and the gradients of mean(output²), on `device`.
fn forward_backward(
    model: &WeatherModel,
    config: &ModelConfig,
    graph: &ModelGraph,
    device: &Device,
) -> Vec<(String, Vec<f32>)> {
    let model = model.clone().fork(device);
    let attention = (config.processor == ProcessorKind::Transformer).then_some(config.attention);
    let tensors = GraphTensors::new(graph, attention, Kernels::Fused, device);
    let points = graph.num_grid_points();
    let input = Tensor::<3>::from_data(
        TensorData::new(random(2 * points * 6, 21), [2, points, 6]),
        device,
    );
    let output = model.forward(&tensors, input, &Hooks::none());
    let grads = output.clone().powi_scalar(2).mean().backward();
    let mut out = vec![("output".to_string(), host(output))];
    out.extend(parameter_grads(&model, &grads));
    out
}

#[test]
fn model_forward_and_backward_on_wgpu_equal_flex() {
    let lat: Vec<f64> = (0..8).map(|i| 78.75 - 22.5 * i as f64).collect();
    let lon: Vec<f64> = (0..16).map(|i| 22.5 * i as f64).collect();
    let graph = ModelGraph::build(&LatLonGrid::from_coordinates(lat, lon).unwrap(), 1).unwrap();
    for processor in [ProcessorKind::Gnn, ProcessorKind::Transformer] {
        let config = ModelConfig {
            mesh_level: 1,
            latent_size: 16,
            num_layers: 3,
            processor,
            ..ModelConfig::default()
        };
        let device = flex();
        let model = seeded(7, &device, || WeatherModel::new(&config, 6, 3, &device));
        assert_equal(
            &format!("{processor:?} model forward + backward"),
            &forward_backward(&model, &config, &graph, &flex()),
            &forward_backward(&model, &config, &graph, &wgpu()),
            1e-4,
        );
    }
}

/// The tiny run config with its data in `data` and `steps` updates at the peak learning rate.
fn tiny(data: &Path, steps: usize) -> RunConfig {
    let text = include_str!("configs/tiny.toml")
        .replace(
            "path = \"data/tiny\"",
            &format!("path = {:?}", data.display().to_string()),
        )
        .replace("steps = 12", &format!("steps = {steps}"))
        .replace("warmup_steps = 2", "warmup_steps = 0");
    RunConfig::parse(&text, Path::new("tiny.toml")).unwrap()
}

fn train(config: &RunConfig, dir: &Path, devices: &[Device]) {
    let devices: Vec<Device> = devices.iter().map(|d| d.clone().inner()).collect();
    train_on_devices(
        config,
        &TrainOptions {
            run_dir: dir.to_path_buf(),
            resume: None,
            progress: indicatif::ProgressBar::hidden(),
            kernels: Kernels::Fused,
            stop_at: None,
            accept_data_change: false,
        },
        &devices,
    )
    .unwrap();
}

fn checkpoint_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn losses(run: &Path) -> Vec<(String, Vec<f32>)> {
    read_metrics(run)
        .unwrap()
        .iter()
        .map(|row| {
            let mut values = vec![row.train_loss as f32];
            values.extend(row.val_loss.map(|v| v as f32));
            (format!("step {} losses", row.step), values)
        })
        .collect()
}

#[test]
fn a_training_step_data_parallel_training_and_a_probe_recording_on_wgpu_equal_flex() {
    let temp = tempfile::tempdir().unwrap();
    let one_step = tiny(&temp.path().join("data"), 1);
    let (on_flex, on_wgpu) = (temp.path().join("flex"), temp.path().join("wgpu"));
    train(&one_step, &on_flex, &[flex()]);
    train(&one_step, &on_wgpu, &[wgpu()]);
    // The loss before the update, the validation loss after it, and the weights after it.
    assert_equal(
        "one training step: losses",
        &losses(&on_flex),
        &losses(&on_wgpu),
        1e-4,
    );
    let weights =
        |run: &Path| checkpoint_tensors(&run.join("checkpoint-00000001/model.safetensors"));
    assert_equal(
        "one training step: weights",
        &weights(&on_flex),
        &weights(&on_wgpu),
        1e-4,
    );

    // Data-parallel over two distinct devices (the shards' gradients cross backends) against one device.
    let three_steps = tiny(&temp.path().join("data"), 3);
    let (single, split) = (temp.path().join("single"), temp.path().join("split"));
    train(&three_steps, &single, &[flex()]);
    train(&three_steps, &split, &[flex(), wgpu()]);
    assert_equal(
        "data-parallel [flex, wgpu] vs [flex]: losses",
        &losses(&single),
        &losses(&split),
        1e-4,
    );

    // A probe recording of the flex-trained model, restored on each device.
    let record = |device: Device, out: &Path| {
        let restored = restore(&on_flex, &device.inner(), Kernels::Fused).unwrap();
        let capture = CaptureOptions {
            samples: 3,
            every_hours: 6,
            ..CaptureOptions::default()
        };
        probe(&restored, &capture, out).unwrap();
        checkpoint_tensors(&out.join("probes.safetensors"))
    };
    let (a, b) = (
        record(flex(), &temp.path().join("probe-flex")),
        record(wgpu(), &temp.path().join("probe-wgpu")),
    );
    assert!(
        a.iter().any(|(name, _)| name == "processor.2.delta"),
        "{:?}",
        a.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    assert_equal("probe recording", &a, &b, 1e-4);
}

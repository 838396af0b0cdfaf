//! Benchmarks that print figures (no timed tests): the processor train step of DESIGN.md, which any other
//! framework can run too, and the full model's forward / train step.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::Serialize;
use weatherlens_models::config::{ModelConfig, ProcessorKind};
use weatherlens_models::hooks::Hooks;
use weatherlens_models::interaction::EdgeIndex;
use weatherlens_models::mesh::{MeshError, Multimesh};
use weatherlens_models::processor::{MeshContext, Processor};

/// What one benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct StepBenchmark {
    /// Median wall time of one step over the timed steps, in milliseconds.
    pub ms_per_step: f64,
    pub nodes: usize,
    pub edges: usize,
    pub backend: String,
    /// Matmul FLOPs of forward + backward (≈ 3 × forward) per step / median step time.
    pub gflops: f64,
    /// Peak resident memory of the process so far (VmHWM), in MiB; `None` where /proc is unavailable.
    pub peak_rss_mib: Option<f64>,
    pub steps: usize,
}

/// The processor-only train step: multimesh of `mesh_level`, random node latents x [N, D], edge latents
/// e [E, D] and target [N, D]; `layers` interaction layers (post-LN MLPs); loss = mean((x_L − target)²);
/// Adam (ε = 1e-8, as PyTorch and optax). One warm-up step, then the median of `steps` timed steps.
pub fn processor_step(
    mesh_level: u32,
    latent_size: usize,
    layers: usize,
    steps: usize,
    kind: ProcessorKind,
    device: &Device,
) -> Result<StepBenchmark, MeshError> {
    let device = device.clone().autodiff();
    device.seed(0);
    let mesh = Multimesh::new(mesh_level)?;
    let (nodes, edges) = (mesh.num_nodes(), mesh.num_edges());
    let config = ModelConfig {
        mesh_level,
        latent_size,
        num_layers: layers,
        processor: kind,
        ..ModelConfig::default()
    };
    let mut processor = Processor::new(&config, &device);
    let mesh_edges = EdgeIndex::new(mesh.senders(), mesh.receivers(), nodes, nodes, &device);
    let context = MeshContext {
        edges: &mesh_edges,
        attention_mask: None,
    };
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<3>::random([1, nodes, latent_size], normal, &device);
    let e = Tensor::<3>::random([1, edges, latent_size], normal, &device);
    let target = Tensor::<3>::random([1, nodes, latent_size], normal, &device);
    let mut optimiser = AdamConfig::new().with_epsilon(1e-8).init();

    let mut times = Vec::with_capacity(steps);
    for step in 0..=steps {
        let start = Instant::now();
        let out = processor.forward(&context, x.clone(), Some(e.clone()), &Hooks::none());
        let loss = (out - target.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &processor);
        processor = optimiser.step(1e-3, processor, grads);
        // Reading the loss back forces the step to finish on asynchronous backends.
        let _ = loss.into_scalar::<f32>();
        if step > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let ms_per_step = median(&mut times);
    let d = latent_size as f64;
    let forward_flops = layers as f64
        * (edges as f64 * 2.0 * (3.0 * d * d + d * d) + nodes as f64 * 2.0 * (2.0 * d * d + d * d));
    Ok(StepBenchmark {
        ms_per_step,
        nodes,
        edges,
        backend: backend_name(&device),
        gflops: 3.0 * forward_flops / (ms_per_step * 1e-3) / 1e9,
        peak_rss_mib: peak_rss_mib(),
        steps,
    })
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    }
}

/// A short name of the device's backend, e.g. `flex` or `cuda:0`.
pub fn backend_name(device: &Device) -> String {
    format!("{device:?}")
}

/// Peak resident set size (VmHWM) of this process in MiB, read from /proc/self/status.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}

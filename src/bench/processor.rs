//! The processor-only train step of DESIGN.md: multimesh of level R, random node and edge latents, L
//! interaction layers, loss mean((x_L − target)²), Adam; the same work `bench/peers/` runs in PyTorch and JAX.

use std::path::Path;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use serde::Serialize;
use weatherlens_models::config::{ModelConfig, ProcessorKind};
use weatherlens_models::files;
use weatherlens_models::fused::Kernels;
use weatherlens_models::hooks::Hooks;
use weatherlens_models::interaction::EdgeIndex;
use weatherlens_models::mesh::Multimesh;
use weatherlens_models::processor::{MeshContext, Processor};
use weatherlens_models::seed::seeded;

use super::{BenchError, backend_name, median, peak_rss_mib, random};

/// What the processor benchmark measured. The first four keys are DESIGN.md's `bench processor --json`
/// contract; the rest are extra.
#[derive(Debug, Clone, Serialize)]
pub struct StepBenchmark {
    /// Median wall time of one step over the timed steps, in milliseconds.
    pub ms_per_step: f64,
    pub nodes: usize,
    pub edges: usize,
    /// Short backend name, e.g. `flex+autodiff` ([`backend_name`]).
    pub backend: String,
    /// Matmul FLOPs of one step ([`processor_step_flops`]) / median step time, in GFLOP/s.
    pub gflops: f64,
    /// Peak resident memory of the process so far (VmHWM), in MiB; `None` where /proc is unavailable.
    pub peak_rss_mib: Option<f64>,
    pub steps: usize,
    pub mesh_level: u32,
    pub latent: usize,
    pub layers: usize,
    pub kind: ProcessorKind,
    /// Rayon worker threads (burn-flex runs its kernels on rayon's global pool).
    pub threads: usize,
    /// `fused` (the fused CPU kernels, the default) or `plain` (burn's own ops, `--kernels plain`).
    pub kernels: String,
    /// Every timed step, in milliseconds, in order.
    pub step_ms: Vec<f64>,
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
    kernels: Kernels,
    device: &Device,
) -> Result<StepBenchmark, BenchError> {
    if latent_size == 0 || layers == 0 || steps == 0 {
        return Err(BenchError::Invalid(
            "latent, layers and steps must be positive".into(),
        ));
    }
    let device = device.clone().autodiff();
    let mesh = Multimesh::new(mesh_level)?;
    let (nodes, edges) = (mesh.num_nodes(), mesh.num_edges());
    let config = ModelConfig {
        mesh_level,
        latent_size,
        num_layers: layers,
        processor: kind,
        ..ModelConfig::default()
    };
    config.validate().map_err(|(key, reason)| {
        BenchError::Invalid(format!("{key} {reason} (from the bench flags)"))
    })?;
    let mut processor = seeded(0, &device, || Processor::new(&config, &device));
    let mesh_edges = EdgeIndex::new(mesh.senders(), mesh.receivers(), nodes, nodes, &device);
    let context = MeshContext {
        edges: &mesh_edges,
        attention_edges: None,
        kernels,
    };
    let x = random([1, nodes, latent_size], 1, &device);
    let e = random([1, edges, latent_size], 2, &device);
    let target = random([1, nodes, latent_size], 3, &device);
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
    let ms_per_step = median(&times);
    let flops = processor_step_flops(kind, nodes, edges, latent_size, layers);
    Ok(StepBenchmark {
        ms_per_step,
        nodes,
        edges,
        backend: backend_name(&device),
        gflops: flops / (ms_per_step * 1e-3) / 1e9,
        peak_rss_mib: peak_rss_mib(),
        steps,
        mesh_level,
        latent: latent_size,
        layers,
        kind,
        threads: rayon::current_num_threads(),
        kernels: kernels.name().into(),
        step_ms: times,
    })
}

/// Matmul FLOPs (2 per multiply-add) of one processor train step, forward + backward ≈ 3 × forward (the
/// backward pass takes one product for the input gradient and one for the weight gradient per forward
/// product). Element-wise work (SiLU, LayerNorm, gathers, the scatter-sum, Adam) is not counted.
///
/// Forward multiply-adds per layer, N nodes, E edges, latent D:
/// - interaction layer (`gnn`, `shared`), as evaluated by `InteractionNetwork::increments` with the factored
///   first edge layer `e·W_e + (x·W_s)[snd] + (x·W_r)[rcv]`: edge MLP E·D² (first layer on e) + 2·N·D² (the
///   sender and receiver products, taken on nodes before the gather) + E·D² (second layer); node MLP
///   N·2D·D + N·D². Total 2·E·D² + 5·N·D². (The plain concatenating form, which the peers in `bench/peers/`
///   run, is 4·E·D² + 3·N·D².)
/// - attention layer (`transformer`, global attention, as the benchmark runs it): Q, K, V and output
///   projections 4·N·D², scores and weighted sum 2·N²·D, the pre-LN MLP 2·N·D². Total 6·N·D² + 2·N²·D.
pub fn processor_step_flops(
    kind: ProcessorKind,
    nodes: usize,
    edges: usize,
    latent: usize,
    layers: usize,
) -> f64 {
    let (n, e, d) = (nodes as f64, edges as f64, latent as f64);
    let multiply_adds_per_layer = match kind {
        ProcessorKind::Gnn | ProcessorKind::Shared => 2.0 * e * d * d + 5.0 * n * d * d,
        ProcessorKind::Transformer => 6.0 * n * d * d + 2.0 * n * n * d,
        ProcessorKind::Selfloop => 2.0 * n * d * d,
    };
    3.0 * 2.0 * multiply_adds_per_layer * layers as f64
}

/// The multimesh's directed edges as JSON, `{"mesh_level", "nodes", "edges", "senders", "receivers"}`, for the
/// peer benchmarks in `bench/peers/` (edge k goes from `senders[k]` to `receivers[k]`).
pub fn export_mesh(mesh_level: u32, path: &Path) -> Result<(), BenchError> {
    #[derive(Serialize)]
    struct MeshFile<'a> {
        mesh_level: u32,
        nodes: usize,
        edges: usize,
        senders: &'a [u32],
        receivers: &'a [u32],
    }
    let mesh = Multimesh::new(mesh_level)?;
    let file = MeshFile {
        mesh_level,
        nodes: mesh.num_nodes(),
        edges: mesh.num_edges(),
        senders: mesh.senders(),
        receivers: mesh.receivers(),
    };
    let text = serde_json::to_string(&file).expect("numbers and arrays always serialise");
    Ok(files::write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_of_the_reference_size() {
        // R4, D128, L8: 2,562 nodes, 20,460 edges (DESIGN.md). Per layer 2·E·D² + 5·N·D² multiply-adds,
        // × 2 FLOPs × 3 (forward + backward) × 8 layers.
        let (n, e, d) = (2562.0, 20460.0, 128.0);
        let expected = 3.0 * 2.0 * (2.0 * e * d * d + 5.0 * n * d * d) * 8.0;
        let counted = processor_step_flops(ProcessorKind::Gnn, 2562, 20460, 128, 8);
        assert_eq!(counted, expected);
        assert!((counted / 1e9 - 42.25).abs() < 0.01, "{counted}");
    }

    #[test]
    fn exported_mesh_has_the_multimesh_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.json");
        export_mesh(1, &path).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // Level 1: 42 nodes; 30 + 120 undirected edges of levels 0 and 1 merged, both directions = 300.
        assert_eq!(value["nodes"], 42);
        assert_eq!(value["edges"], 300);
        assert_eq!(value["senders"].as_array().unwrap().len(), 300);
        assert_eq!(value["receivers"].as_array().unwrap().len(), 300);
    }
}

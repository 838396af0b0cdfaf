//! What recording costs a forward pass: a config's model on random inputs, timed without observers and with a
//! [`ProbeRecorder`] keeping X_i, v_i and X_{i+1} of every processor layer at every mesh node (what
//! `weatherlens probe` records by default), the two alternating so that drift in machine load hits both alike.

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use serde::Serialize;
use weatherlens_models::config::ProcessorKind;
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::hooks::{HookPoint, Hooks};
use weatherlens_probes::record::ProbeRecorder;
use weatherlens_training::config::RunConfig;
use weatherlens_training::trainer::build_model;

use super::model::config_data_shape;
use super::{BenchError, median, random};

/// Medians over the timed forward passes, after one warm-up each.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingOverhead {
    pub forward_ms: f64,
    pub recorded_forward_ms: f64,
    /// (recorded − plain) / plain · 100
    pub overhead_percent: f64,
    /// Hook points recorded per forward pass (3 per processor layer).
    pub points: usize,
    pub mesh_nodes: usize,
    pub batch_size: usize,
    /// Bytes written to `probes.safetensors` per forward pass.
    pub bytes_per_forward: usize,
    pub steps: usize,
}

/// Times `steps` forward passes of `config`'s model (a batch of the config's size) with and without recording
/// into a `probes.safetensors` under `scratch`.
pub fn recording_overhead(
    config: &RunConfig,
    steps: usize,
    scratch: &Path,
    kernels: Kernels,
    device: &Device,
) -> Result<RecordingOverhead, BenchError> {
    if steps == 0 {
        return Err(BenchError::Invalid("steps must be positive".into()));
    }
    let (grid, channels) = config_data_shape(config)?;
    let graph = ModelGraph::for_model(&grid, &config.model)?;
    let attention =
        (config.model.processor == ProcessorKind::Transformer).then_some(config.model.attention);
    let tensors = GraphTensors::new(&graph, attention, kernels, device);
    let model = build_model(config, channels, device);
    let batch = config.data.windows.batch_size;
    let input = random([batch, graph.num_grid_points(), 2 * channels], 1, device);
    let latent = config.model.latent_size;
    let points: Vec<HookPoint> = (0..model.processor().num_steps())
        .flat_map(|i| {
            [
                HookPoint::ResidPre(i),
                HookPoint::Delta(i),
                HookPoint::ResidPost(i),
            ]
        })
        .collect();
    let nodes: Vec<u32> = (0..graph.num_mesh_nodes() as u32).collect();
    let recorder = ProbeRecorder::create(
        scratch,
        points.clone(),
        &nodes,
        latent,
        batch * (steps + 1),
        device,
    )?;
    let timed = |hooks: &Hooks| {
        let start = Instant::now();
        let out = model.forward(&tensors, input.clone(), hooks);
        // Reading a value back forces the work to finish on asynchronous backends.
        let _ = out.sum().into_scalar::<f32>();
        start.elapsed().as_secs_f64() * 1e3
    };
    let (mut plain, mut recorded) = (Vec::new(), Vec::new());
    for step in 0..=steps {
        let t_plain = timed(&Hooks::none());
        let t_recorded = timed(&Hooks::none().with(&recorder));
        recorder.end_batch(batch);
        if step > 0 {
            plain.push(t_plain);
            recorded.push(t_recorded);
        }
    }
    recorder.finish()?;
    let (forward_ms, recorded_forward_ms) = (median(&plain), median(&recorded));
    Ok(RecordingOverhead {
        forward_ms,
        recorded_forward_ms,
        overhead_percent: (recorded_forward_ms - forward_ms) / forward_ms * 100.0,
        points: points.len(),
        mesh_nodes: nodes.len(),
        batch_size: batch,
        bytes_per_forward: points.len() * batch * nodes.len() * latent * 4,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_three_points_per_layer_and_counts_their_bytes() {
        let text = include_str!("../../tests/configs/tiny.toml");
        let config = RunConfig::parse(text, Path::new("tiny.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r =
            recording_overhead(&config, 1, dir.path(), Kernels::Fused, &Device::flex()).unwrap();
        // tiny.toml: 3 layers, latent 16, batch 2, mesh level 1 (42 nodes)
        assert_eq!((r.points, r.mesh_nodes, r.batch_size), (9, 42, 2));
        assert_eq!(r.bytes_per_forward, 9 * 2 * 42 * 16 * 4);
        assert!(r.forward_ms > 0.0 && r.recorded_forward_ms > 0.0);
        // The recording was completed: one tensor per point, every sample written.
        let (values, shape) = weatherlens_probes::record::read_tensor(
            &dir.path().join("probes.safetensors"),
            "processor.2.delta",
        )
        .unwrap();
        assert_eq!(shape, vec![4, 42, 16]);
        assert!(values.iter().all(|v| v.is_finite()));
    }
}

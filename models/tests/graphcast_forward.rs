//! An imported GraphCast computes what DeepMind's JAX code computes: every stage of the fixtures' forward pass
//! (written by GraphCast's own code, `tests/fixtures/graphcast`) within max|a − b| <= 1e-5 · max|b|.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use burn::prelude::*;
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::graphcast;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::graphcast::{GraphCastCheckpoint, GraphCastError, ImportedModel};
use weatherlens_models::grid::LatLonGrid;
use weatherlens_models::hooks::{HookPoint, Hooks, Observer};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/graphcast")
}

/// f32 tensors of a safetensors file (integers converted) with their shapes.
fn load(path: PathBuf) -> HashMap<String, (Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(key, view)| {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => bytemuck_f32(data),
                safetensors::Dtype::I32 => data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                safetensors::Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{key}: {other:?}"),
            };
            (key, (values, view.shape().to_vec()))
        })
        .collect()
}

fn bytemuck_f32(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Keeps every hook point's tensor.
#[derive(Default)]
struct Seen(RefCell<HashMap<String, Vec<f32>>>);

impl Observer for Seen {
    fn wants(&self, _: HookPoint) -> bool {
        true
    }
    fn observe(&self, point: HookPoint, tensor: &Tensor<3>) {
        let values = tensor
            .to_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        self.0.borrow_mut().insert(point.to_string(), values);
    }
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: sizes");
    let scale = expected.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let worst = actual
        .iter()
        .zip(expected)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-5 * scale,
        "{what}: max |a - b| = {worst:e} > 1e-5 · max |b| = {:e}",
        1e-5 * scale
    );
}

/// [nodes, batch, width] (GraphCast's layout) -> [batch, nodes, width], or a `_b0` [nodes, width] as batch 0.
fn batch_first(values: &[f32], shape: &[usize]) -> (Vec<f32>, usize) {
    match *shape {
        [nodes, batch, width] => {
            let mut out = vec![0.0; values.len()];
            for n in 0..nodes {
                for b in 0..batch {
                    for w in 0..width {
                        out[(b * nodes + n) * width + w] = values[(n * batch + b) * width + w];
                    }
                }
            }
            (out, batch)
        }
        [_, _] => (values.to_vec(), 1),
        _ => panic!("shape {shape:?}"),
    }
}

fn check_fixture(name: &str, kernels: Kernels) {
    let checkpoint =
        GraphCastCheckpoint::read(&fixtures().join(format!("params/{name}.npz"))).unwrap();
    let imported = ImportedModel::from_checkpoint(&checkpoint).unwrap();
    let reference = fixtures().join("reference");
    let graph_ref = load(reference.join(format!("{name}_graph.safetensors")));
    let acts = load(reference.join(format!("{name}_activations.safetensors")));
    let get = |key: &str| {
        acts.get(key)
            .or_else(|| acts.get(&format!("{key}_b0")))
            .unwrap_or_else(|| panic!("{name}: no {key}"))
    };
    let axis = |key: &str| graph_ref[key].0.iter().map(|&x| f64::from(x)).collect();
    let grid = LatLonGrid::from_coordinates(axis("grid_lat"), axis("grid_lon")).unwrap();
    let picks: Vec<(usize, usize)> = graph_ref["tie_grid_index"]
        .0
        .iter()
        .zip(&graph_ref["tie_picked_face"].0)
        .map(|(&g, &f)| (g as usize, f as usize))
        .collect();
    let config = &imported.config;
    let graph = graphcast::build_with(
        &grid,
        config.mesh_level,
        config.grid2mesh_radius_fraction,
        config.mesh2grid_edge_normalisation,
        &picks,
    )
    .unwrap();
    let device = Device::flex();
    let tensors = GraphTensors::new(&graph, None, kernels, &device);
    let model = imported.build(&device).unwrap();
    let (input, batch) = {
        let (values, shape) = get("input_grid_node_features");
        batch_first(values, shape)
    };
    let points = grid.num_points();
    let input = Tensor::<3>::from_data(
        TensorData::new(input, [batch, points, imported.input_channels]),
        &device,
    );
    let seen = Seen::default();
    let output = model.forward(&tensors, input, &Hooks::none().with(&seen));
    let seen = seen.0.borrow();
    let label = |what: &str| format!("{name} ({kernels}): {what}");
    let reference_for = |key: &str, _batch: usize| {
        let (values, shape) = get(key);
        batch_first(values, shape).0
    };
    let keep =
        |ours: &[f32], theirs_batch: usize| ours[..ours.len() / batch * theirs_batch].to_vec();
    let (_, mesh_shape) = get("grid2mesh_out_mesh_nodes");
    let theirs_batch = if mesh_shape.len() == 3 {
        mesh_shape[1]
    } else {
        1
    };
    assert_close(
        &keep(&seen["encoder.out"], theirs_batch),
        &reference_for("grid2mesh_out_mesh_nodes", theirs_batch),
        &label("mesh latents after grid2mesh"),
    );
    for k in 0..config.num_layers {
        let key = format!("mesh_step{k}_mesh_nodes");
        let (_, shape) = get(&key);
        let theirs_batch = if shape.len() == 3 { shape[1] } else { 1 };
        assert_close(
            &keep(&seen[&format!("processor.{k}.resid_post")], theirs_batch),
            &reference_for(&key, theirs_batch),
            &label(&format!("mesh latents after processor step {k}")),
        );
    }
    let output = output.into_data().try_into_vec::<f32>().unwrap();
    // The reference may hold more batch members than the recorded input (fixture b keeps member 0's input).
    let expected = reference_for("mesh2grid_output", batch);
    assert_close(&output, &expected[..output.len()], &label("decoder output"));
}

#[test]
fn every_stage_equals_graphcast_s_jax_forward() {
    for name in ["fixture_a", "fixture_b"] {
        check_fixture(name, Kernels::Fused);
    }
    check_fixture("fixture_a", Kernels::Plain);
}

#[test]
fn broken_checkpoints_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let original = fixtures().join("params/fixture_a.npz");
    let bytes = std::fs::read(&original).unwrap();
    // Truncated: the zip directory at the end is gone.
    let truncated = dir.path().join("truncated.npz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = GraphCastCheckpoint::read(&truncated)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.npz"), "{err}");
    // Not a zip at all.
    let text = dir.path().join("text.npz");
    std::fs::write(&text, "hello").unwrap();
    let err = GraphCastCheckpoint::read(&text).unwrap_err().to_string();
    assert!(err.contains("text.npz") && err.contains(".npz"), "{err}");
    // Params of another config: fixture b's params under fixture a's model_config (mesh 3, other channels)
    // still parse, but the shapes do not fit; a missing step is named.
    let mut checkpoint = GraphCastCheckpoint::read(&original).unwrap();
    checkpoint.model.gnn_msg_steps = 3;
    let err = ImportedModel::from_checkpoint(&checkpoint).unwrap_err();
    assert!(matches!(err, GraphCastError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("processor_edges_2_mesh"), "{err}");
    let mut checkpoint = GraphCastCheckpoint::read(&original).unwrap();
    checkpoint.model.latent_size = 16;
    let err = ImportedModel::from_checkpoint(&checkpoint)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shape") && err.contains("fixture_a.npz"),
        "{err}"
    );
    let mut checkpoint = GraphCastCheckpoint::read(&original).unwrap();
    checkpoint.model.gnn_msg_steps = 1;
    let err = ImportedModel::from_checkpoint(&checkpoint)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another config"), "{err}");
}

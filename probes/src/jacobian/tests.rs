use rand_chacha::ChaCha8Rng;
use weatherlens_models::config::{ModelConfig, ProcessorKind};
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::grid::{LatLonGrid, LatitudeOrder, PoleRows};
use weatherlens_models::interaction::EdgeIndex;
use weatherlens_models::mesh::Multimesh;
use weatherlens_models::seed::seeded;

use rand::SeedableRng;
use weatherlens_models::sphere::great_circle_distance;

use super::range::summarise_influence;
use super::*;
use crate::stats::standard_normal;

fn gaussian_host(count: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| standard_normal(&mut rng)).collect()
}

fn state(nodes: usize, latent: usize, seed: u64, device: &Device) -> Tensor<3> {
    let values = gaussian_host(nodes * latent, seed)
        .into_iter()
        .map(|a| a as f32)
        .collect();
    tensor(values, [1, nodes, latent], device)
}

fn matrix(values: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = values.iter().map(|&a| a as f32).collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// The linear field v = M x on the flattened state (row-major n × n `m`).
fn linear_field(
    m: &[f64],
    nodes: usize,
    latent: usize,
    device: &Device,
) -> impl Fn(Tensor<3>) -> Tensor<3> {
    let n = nodes * latent;
    // Row vectors: v_row = x_row · Mᵀ.
    let transposed: Vec<f64> = (0..n * n).map(|k| m[(k % n) * n + k / n]).collect();
    let mt = matrix(&transposed, n, n, device);
    move |x: Tensor<3>| {
        let batch = x.dims()[0];
        x.reshape([batch, n])
            .matmul(mt.clone())
            .reshape([batch, nodes, latent])
    }
}

/// (S, R): a random symmetric and a random antisymmetric n × n matrix.
fn symmetric_and_antisymmetric(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let g = gaussian_host(n * n, seed);
    let h = gaussian_host(n * n, seed + 1);
    let s = (0..n * n)
        .map(|k| 0.5 * (g[k] + g[(k % n) * n + k / n]))
        .collect();
    let r = (0..n * n)
        .map(|k| 0.5 * (h[k] - h[(k % n) * n + k / n]))
        .collect();
    (s, r)
}

fn frobenius(values: &[f64]) -> f64 {
    values.iter().map(|a| a * a).sum::<f64>().sqrt()
}

#[test]
fn gradient_fields_are_symmetric() {
    let device = Device::flex();
    let (nodes, latent) = (32, 8);
    let n = nodes * latent;
    let x = state(nodes, latent, 1, &device);
    let options = AsymmetryOptions::default();

    // v = ∇(½ xᵀ S x) = S x.
    let (s, _) = symmetric_and_antisymmetric(n, 2);
    let quadratic =
        jacobian_asymmetry(linear_field(&s, nodes, latent, &device), &x, &options).unwrap();
    assert!(quadratic.asymmetry < 1e-3, "{quadratic:?}");
    let expected_norm = frobenius(&s);
    assert!(
        (quadratic.jacobian_frobenius / expected_norm - 1.0).abs() < 0.2,
        "‖S‖_F = {expected_norm}, estimated {quadratic:?}"
    );

    // v = ∇ Σ_j c_j tanh(a_j · x) = Σ_j c_j (1 − tanh²(a_j · x)) a_j: J = Aᵀ diag(..) A is symmetric.
    let terms = 64;
    let a: Vec<f64> = gaussian_host(terms * n, 3)
        .into_iter()
        .map(|e| e / (n as f64).sqrt())
        .collect();
    let c: Vec<f64> = gaussian_host(terms, 4);
    let a_rows = matrix(&a, terms, n, &device);
    let a_cols = a_rows.clone().transpose();
    let c = matrix(&c, 1, terms, &device);
    let tanh_field = move |x: Tensor<3>| {
        let batch = x.dims()[0];
        let t = x.reshape([batch, n]).matmul(a_cols.clone()).tanh();
        let weight = (t.clone() * t).neg().add_scalar(1.0) * c.clone();
        weight
            .matmul(a_rows.clone())
            .reshape([batch, nodes, latent])
    };
    let result = jacobian_asymmetry(tanh_field, &x, &options).unwrap();
    assert!(result.asymmetry < 1e-3, "{result:?}");
    assert!(result.fd_relative_error < 1e-3, "{result:?}");
}

#[test]
fn a_rotation_field_has_asymmetry_two() {
    let device = Device::flex();
    let (nodes, latent) = (32, 8);
    let (_, r) = symmetric_and_antisymmetric(nodes * latent, 5);
    let x = state(nodes, latent, 6, &device);
    for distribution in [ProbeDistribution::Rademacher, ProbeDistribution::Gaussian] {
        let options = AsymmetryOptions {
            distribution,
            ..AsymmetryOptions::default()
        };
        let result =
            jacobian_asymmetry(linear_field(&r, nodes, latent, &device), &x, &options).unwrap();
        // J − Jᵀ = 2R and ‖Jz‖ = ‖Jᵀz‖ for every z, so every probe gives exactly 2.
        assert!((result.asymmetry - 2.0).abs() < 1e-3, "{result:?}");
        assert!(result.standard_error < 1e-3, "{result:?}");
    }
}

#[test]
fn a_mixed_field_gives_the_hand_computed_asymmetry() {
    let device = Device::flex();
    let (nodes, latent) = (64, 8);
    let n = nodes * latent;
    let (s, r) = symmetric_and_antisymmetric(n, 7);
    // Weight the rotation so that A is well inside (0, 2).
    let m: Vec<f64> = s.iter().zip(&r).map(|(a, b)| a + 0.5 * b).collect();
    // S ⟂ R in the Frobenius inner product: ‖J − Jᵀ‖ = ‖2 · 0.5R‖, ‖J‖² = ‖S‖² + ‖0.5R‖².
    let expected = frobenius(&r) / (frobenius(&s).powi(2) + 0.25 * frobenius(&r).powi(2)).sqrt();
    let transposed_difference: Vec<f64> =
        (0..n * n).map(|k| m[k] - m[(k % n) * n + k / n]).collect();
    let direct = frobenius(&transposed_difference) / frobenius(&m);
    assert!((direct - expected).abs() < 1e-9, "{direct} vs {expected}");
    let options = AsymmetryOptions {
        probes: 32,
        ..AsymmetryOptions::default()
    };
    let x = state(nodes, latent, 8, &device);
    let result =
        jacobian_asymmetry(linear_field(&m, nodes, latent, &device), &x, &options).unwrap();
    let error = (result.asymmetry - expected).abs();
    assert!(
        error < 0.02 && error < 4.0 * result.standard_error + 1e-3,
        "expected {expected}, got {result:?}"
    );
    assert!(result.standard_error < 0.02, "{result:?}");
}

#[test]
fn bad_arguments_are_errors() {
    let device = Device::flex();
    let x = state(4, 2, 1, &device);
    let identity = |x: Tensor<3>| x;
    let two = Tensor::cat(vec![x.clone(), x.clone()], 0);
    assert!(jacobian_asymmetry(identity, &two, &AsymmetryOptions::default()).is_err());
    let one_probe = AsymmetryOptions {
        probes: 1,
        ..AsymmetryOptions::default()
    };
    assert!(jacobian_asymmetry(identity, &x, &one_probe).is_err());
    let shrink = |x: Tensor<3>| x.slice([0..1, 0..2, 0..2]);
    let err = jacobian_asymmetry(shrink, &x, &AsymmetryOptions::default()).unwrap_err();
    assert!(err.to_string().contains("keep the shape"), "{err}");
    let lat = [0.0; 3];
    assert!(interaction_range(identity, &x, &lat, &lat, &RangeOptions::default()).is_err());
}

#[test]
fn range_and_bins_of_hand_made_pairs() {
    let pairs = vec![(0.0, 5.0), (10.0, 3.0), (20.0, 2.0), (19.0, 0.0)];
    let summary = |fraction| {
        summarise_influence(
            vec![0],
            pairs.clone(),
            5.0,
            &RangeOptions {
                fraction,
                ..RangeOptions::default()
            },
        )
    };
    let ninety = summary(0.9);
    // Cumulative influence by distance: 5, 8, 8, 10 of 10.
    assert_eq!(ninety.range_deg, 20.0);
    assert_eq!(summary(0.5).range_deg, 0.0);
    assert_eq!(summary(0.8).range_deg, 10.0);
    assert_eq!(ninety.reach_deg, 20.0);
    assert_eq!(ninety.self_share, 0.5);
    // 2.5° bins: 0 -> 0, 10 -> 4, 19 -> 8 (7.6 rounds up), 20 -> 8.
    let rows: Vec<(f64, f64, usize)> = ninety
        .bins
        .iter()
        .map(|b| (b.distance_deg, b.influence, b.count))
        .collect();
    assert_eq!(rows, vec![(0.0, 5.0, 1), (10.0, 3.0, 1), (20.0, 1.0, 2)]);
}

fn level_one_mesh(device: &Device) -> (Multimesh, EdgeIndex, f64) {
    let mesh = Multimesh::new(1).unwrap();
    let nodes = mesh.num_nodes();
    let edges = EdgeIndex::new(mesh.senders(), mesh.receivers(), nodes, nodes, device);
    let longest = mesh
        .senders()
        .iter()
        .zip(mesh.receivers())
        .map(|(&s, &r)| {
            let p = mesh.positions();
            great_circle_distance(p[s as usize], p[r as usize]).to_degrees()
        })
        .fold(0.0, f64::max);
    (mesh, edges, longest)
}

#[test]
fn a_local_field_has_all_its_influence_at_zero_distance() {
    let device = Device::flex();
    let (mesh, _, _) = level_one_mesh(&device);
    let latent = 4;
    let w = matrix(&gaussian_host(latent * latent, 9), latent, latent, &device);
    let local = move |x: Tensor<3>| x.matmul(w.clone().unsqueeze::<3>()).tanh();
    let x = state(mesh.num_nodes(), latent, 10, &device);
    let result = interaction_range(
        local,
        &x,
        mesh.node_lat(),
        mesh.node_lon(),
        &RangeOptions::default(),
    )
    .unwrap();
    assert_eq!(result.receivers.len(), 4);
    assert_eq!(result.bins[0].distance_deg, 0.0);
    assert_eq!(result.bins[0].count, 4);
    assert!(result.bins[0].influence > 0.0);
    assert!(result.bins[1..].iter().all(|b| b.influence == 0.0));
    assert_eq!(
        result.bins.iter().map(|b| b.count).sum::<usize>(),
        4 * mesh.num_nodes()
    );
    assert_eq!(result.range_deg, 0.0);
    assert_eq!(result.reach_deg, 0.0);
    assert_eq!(result.self_share, 1.0);
}

#[test]
fn a_neighbour_field_reaches_exactly_its_farthest_neighbour() {
    let device = Device::flex();
    let (mesh, edges, longest) = level_one_mesh(&device);
    let latent = 4;
    let own = matrix(&gaussian_host(latent * latent, 11), latent, latent, &device);
    let other = matrix(&gaussian_host(latent * latent, 12), latent, latent, &device);
    // v_n = tanh(x_n W + Σ_{m -> n} x_m W').
    let coupled = move |x: Tensor<3>| {
        let messages = x
            .clone()
            .select(1, edges.senders.index.clone())
            .matmul(other.clone().unsqueeze::<3>());
        let incoming = edges.sum_into_receivers(messages, Kernels::Fused);
        (x.matmul(own.clone().unsqueeze::<3>()) + incoming).tanh()
    };
    let x = state(mesh.num_nodes(), latent, 13, &device);
    let options = RangeOptions {
        receivers: mesh.num_nodes(),
        ..RangeOptions::default()
    };
    let result =
        interaction_range(coupled, &x, mesh.node_lat(), mesh.node_lon(), &options).unwrap();
    assert_eq!(result.receivers.len(), mesh.num_nodes());
    // The level-0 icosahedron edge, 63.43°, is the multimesh's longest.
    assert!((longest - 63.43).abs() < 0.01, "{longest}");
    assert!((result.reach_deg - longest).abs() < 1e-6, "{result:?}");
    let beyond: Vec<&InfluenceBin> = result
        .bins
        .iter()
        .filter(|b| b.distance_deg - 0.5 * options.bin_deg > longest)
        .collect();
    // Most node pairs of the 42-node mesh lie beyond the longest edge: the test is not vacuous.
    let far_pairs: usize = beyond.iter().map(|b| b.count).sum();
    assert!(far_pairs > 42 * 20, "{far_pairs} far pairs");
    assert!(beyond.iter().all(|b| b.influence == 0.0));
    assert!(result.range_deg <= longest && result.range_deg > 0.0);
    assert!(result.self_share > 0.0 && result.self_share < 1.0);
}

#[test]
fn processor_layers_reach_their_longest_edge_or_stay_local() {
    let device = Device::flex();
    let grid =
        LatLonGrid::equiangular(8, 16, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
    let graph = ModelGraph::build(&grid, 1).unwrap();
    let (_, _, longest) = level_one_mesh(&device);
    let mesh = graph.multimesh();
    let latent = 8;
    // Message passing and neighbourhood attention see exactly the multimesh neighbours; the self-loop
    // control sees nothing but the node itself.
    for (processor, reach) in [
        (ProcessorKind::Gnn, longest),
        (ProcessorKind::Transformer, longest),
        (ProcessorKind::Selfloop, 0.0),
    ] {
        let config = ModelConfig {
            mesh_level: 1,
            latent_size: latent,
            num_layers: 2,
            processor,
            ..ModelConfig::default()
        };
        let model = seeded(3, &device, || WeatherModel::new(&config, 2, 1, &device));
        let attention = (processor == ProcessorKind::Transformer).then_some(config.attention);
        let tensors = GraphTensors::new(&graph, attention, Kernels::Fused, &device);
        let input = state(graph.num_grid_points(), 2, 4, &device);
        let states = processor_states(&model, &tensors, input);
        let (x, edges) = &states[1];
        let v = layer_function(&model, &tensors, 1, edges.clone());
        let options = RangeOptions {
            receivers: 8,
            ..RangeOptions::default()
        };
        let range = interaction_range(&v, x, mesh.node_lat(), mesh.node_lon(), &options).unwrap();
        assert!(
            (range.reach_deg - reach).abs() < 1e-6,
            "{processor:?}: {range:?}"
        );
        let asymmetry = jacobian_asymmetry(&v, x, &AsymmetryOptions::default()).unwrap();
        assert!(asymmetry.asymmetry.is_finite() && asymmetry.asymmetry <= 2.0);
        assert!(asymmetry.fd_relative_error < 1e-2, "{asymmetry:?}");
    }
}

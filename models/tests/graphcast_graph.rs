//! The graphs of GraphCast's fixtures (`tests/fixtures/graphcast`, written by DeepMind's code) rebuilt by
//! `graph::graphcast`: vertices bit for bit, the same edge sets, the same features to f32 rounding, and the
//! mesh2grid faces equal except where the fixture lists a tie decided by rounding.

use std::collections::HashMap;
use std::path::PathBuf;

use weatherlens_models::config::{GraphRules, ModelConfig};
use weatherlens_models::graph::{ModelGraph, graphcast};
use weatherlens_models::grid::LatLonGrid;

fn reference(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/graphcast/reference")
        .join(name)
}

/// Tensors of a safetensors file as f64 values (F32, F64, I32 or I64 on disk) with their shapes.
fn load(name: &str) -> HashMap<String, (Vec<f64>, Vec<usize>)> {
    let bytes = std::fs::read(reference(name)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(key, view)| {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
                    .collect(),
                safetensors::Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::I32 => data
                    .chunks_exact(4)
                    .map(|b| f64::from(i32::from_le_bytes(b.try_into().unwrap())))
                    .collect(),
                safetensors::Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                other => panic!("{key}: dtype {other:?}"),
            };
            (key, (values, view.shape().to_vec()))
        })
        .collect()
}

struct Fixture {
    graph: HashMap<String, (Vec<f64>, Vec<usize>)>,
    mesh_size: u32,
    normalisation: Option<f64>,
}

fn fixture(name: &str) -> Fixture {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reference(&format!("{name}.json"))).unwrap())
            .unwrap();
    let config = &json["model_config"];
    Fixture {
        graph: load(&format!("{name}_graph.safetensors")),
        mesh_size: config["mesh_size"].as_u64().unwrap() as u32,
        normalisation: config["mesh2grid_edge_normalization_factor"].as_f64(),
    }
}

impl Fixture {
    fn values(&self, key: &str) -> &[f64] {
        &self.graph[key].0
    }

    fn grid(&self) -> LatLonGrid {
        LatLonGrid::from_coordinates(
            self.values("grid_lat").to_vec(),
            self.values("grid_lon").to_vec(),
        )
        .unwrap()
    }

    /// The (grid point, face) choices GraphCast's code made at the fixture's ties.
    fn tie_picks(&self) -> Vec<(usize, usize)> {
        self.values("tie_grid_index")
            .iter()
            .zip(self.values("tie_picked_face"))
            .map(|(&g, &f)| (g as usize, f as usize))
            .collect()
    }

    fn build(&self) -> ModelGraph {
        graphcast::build_with(
            &self.grid(),
            self.mesh_size,
            0.6,
            self.normalisation,
            &self.tie_picks(),
        )
        .unwrap()
    }
}

/// (sender, receiver) -> features of every edge of an edge set.
fn edges_by_pair(
    senders: &[f64],
    receivers: &[f64],
    features: &[f64],
) -> HashMap<(u32, u32), Vec<f64>> {
    senders
        .iter()
        .zip(receivers)
        .enumerate()
        .map(|(k, (&s, &r))| ((s as u32, r as u32), features[4 * k..4 * k + 4].to_vec()))
        .collect()
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    let scale = expected.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let worst = actual
        .iter()
        .zip(expected)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-5 * scale,
        "{what}: max |a - b| = {worst:e}, max |b| = {scale}"
    );
}

#[test]
fn mesh_vertices_are_graphcast_s_bit_for_bit() {
    for name in ["fixture_a", "fixture_b"] {
        let f = fixture(name);
        let ours = graphcast::vertices_f32(f.mesh_size);
        let theirs = f.values("mesh_vertices");
        assert_eq!(ours.len() * 3, theirs.len());
        for (k, (p, q)) in ours.iter().flatten().zip(theirs).enumerate() {
            assert_eq!(f64::from(*p), *q, "{name}: coordinate {k}");
        }
    }
}

#[test]
fn edge_sets_and_features_equal_graphcast_s() {
    for name in ["fixture_a", "fixture_b"] {
        let f = fixture(name);
        let graph = f.build();
        for (set, edges) in [
            ("grid2mesh", graph.grid2mesh()),
            ("mesh", graph.mesh_edges()),
            ("mesh2grid", graph.mesh2grid()),
        ] {
            let theirs = edges_by_pair(
                f.values(&format!("{set}_senders")),
                f.values(&format!("{set}_receivers")),
                f.values(&format!("{set}_edge_features")),
            );
            let as_f64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
            let ours = edges_by_pair(
                &edges
                    .senders()
                    .iter()
                    .map(|&s| f64::from(s))
                    .collect::<Vec<_>>(),
                &edges
                    .receivers()
                    .iter()
                    .map(|&r| f64::from(r))
                    .collect::<Vec<_>>(),
                &as_f64(edges.features()),
            );
            assert_eq!(ours.len(), theirs.len(), "{name} {set}: edge count");
            let mut ordered_ours = Vec::new();
            let mut ordered_theirs = Vec::new();
            for (pair, features) in &theirs {
                let mine = ours
                    .get(pair)
                    .unwrap_or_else(|| panic!("{name} {set}: edge {pair:?} missing"));
                ordered_ours.extend_from_slice(mine);
                ordered_theirs.extend_from_slice(features);
            }
            assert_close(
                &ordered_ours,
                &ordered_theirs,
                &format!("{name} {set} features"),
            );
            let normalisation = f.values(&format!("{set}_edge_normalization"))[0];
            assert!(
                (edges.normalisation() - normalisation).abs() <= 1e-6 * normalisation,
                "{name} {set}: normalisation {} vs {normalisation}",
                edges.normalisation()
            );
        }
        let as_f64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        assert_close(
            &as_f64(graph.mesh_node_features()),
            f.values("mesh_node_features"),
            &format!("{name} mesh node features"),
        );
        assert_close(
            &as_f64(graph.grid_node_features()),
            f.values("grid2mesh_grid_node_features"),
            &format!("{name} grid node features"),
        );
    }
}

#[test]
fn mesh2grid_faces_differ_from_trimesh_only_at_ties_decided_by_rounding() {
    for name in ["fixture_a", "fixture_b"] {
        let f = fixture(name);
        let mesh = graphcast::multimesh(f.mesh_size).unwrap();
        let grid = f.grid();
        let points: Vec<[f64; 3]> = f
            .values("grid_positions")
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        let (faces, ties) = graphcast::mesh2grid_faces(mesh.finest_mesh(), &points, &[]).unwrap();
        let trimesh = f.values("mesh2grid_face_index");
        let fragile: Vec<usize> = f
            .values("tie_grid_index")
            .iter()
            .zip(f.values("tie_fragile"))
            .filter(|(_, flag)| **flag != 0.0)
            .map(|(&g, _)| g as usize)
            .collect();
        let differing: Vec<usize> = (0..grid.num_points())
            .filter(|&g| faces[g] as f64 != trimesh[g])
            .collect();
        assert!(
            differing.iter().all(|g| fragile.contains(g)),
            "{name}: faces differ off the fragile ties at {differing:?}"
        );
        // The fixtures' own tie counts (fixture json: 12 fragile points on each grid).
        assert_eq!(fragile.len(), 12, "{name}");
        assert!(
            ties.decided_by_rounding >= differing.len(),
            "{name}: {ties:?}"
        );
        eprintln!(
            "{name}: {} of {} points tie within trimesh's tolerance, {} decided by rounding, {} differ",
            ties.within_tolerance,
            grid.num_points(),
            ties.decided_by_rounding,
            differing.len()
        );
    }
}

#[test]
fn the_graph_rules_are_a_model_option() {
    let f = fixture("fixture_a");
    let config = ModelConfig {
        mesh_level: f.mesh_size,
        graph: GraphRules::Graphcast,
        ..ModelConfig::default()
    };
    let graph = ModelGraph::for_model(&f.grid(), &config).unwrap();
    assert_eq!(
        graph.grid2mesh().num_edges(),
        f.values("grid2mesh_senders").len()
    );
    assert_eq!(
        graph.mesh_edges().num_edges(),
        f.values("mesh_senders").len()
    );
}

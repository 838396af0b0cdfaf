//! Node and edge features of GraphCast (Lam et al. 2023, section 3.1; `graphcast.py` and `model_utils.py`):
//! node features [sin(lat), cos(lon), sin(lon)]; edge features [|d|, d_x, d_y, d_z] with d the sender's
//! position minus the receiver's, rotated so the receiver sits at (lat 0, lon 0), all four divided by the
//! longest |d| of that graph.

use rayon::prelude::*;

use crate::sphere::{Mat3, Vec3, mat_vec, norm, sub};

/// Features per node: [sin(lat), cos(lon), sin(lon)].
pub const NODE_FEATURES: usize = 3;

/// Features per edge: [length, d_x, d_y, d_z].
pub const EDGE_FEATURES: usize = 4;

/// Directed edges from one node set to another, with GraphCast edge features.
#[derive(Debug, Clone)]
pub struct EdgeSet {
    senders: Vec<u32>,
    receivers: Vec<u32>,
    features: Vec<f32>,
    max_edge_length: f64,
    normalisation: f64,
}

impl EdgeSet {
    /// Computes the features of edges `senders[k] -> receivers[k]`.
    ///
    /// sender_positions: [senders, 3]; receiver_positions, receiver_rotations: [receivers] (rotation
    /// of each receiver node to the reference point). The features are divided by `normalisation`, or by
    /// the longest edge when it is `None` (GraphCast divides by the longest edge of each graph unless its
    /// config fixes a factor, as `mesh2grid_edge_normalization_factor` does).
    pub fn new(
        senders: Vec<u32>,
        receivers: Vec<u32>,
        sender_positions: &[Vec3],
        receiver_positions: &[Vec3],
        receiver_rotations: &[Mat3],
        normalisation: Option<f64>,
    ) -> Self {
        let displacements: Vec<Vec3> = senders
            .par_iter()
            .zip(receivers.par_iter())
            .map(|(&s, &r)| {
                let d = sub(sender_positions[s as usize], receiver_positions[r as usize]);
                mat_vec(&receiver_rotations[r as usize], d)
            })
            .collect();
        let max_edge_length = displacements.iter().map(|&d| norm(d)).fold(0.0, f64::max);
        // A graph whose edges all have zero length (a grid point on a mesh node, alone) keeps raw
        // features rather than dividing by zero.
        let normalisation = match normalisation {
            Some(factor) => factor,
            None if max_edge_length > 0.0 => max_edge_length,
            None => 1.0,
        };
        let features = displacements
            .iter()
            .flat_map(|&d| [norm(d), d[0], d[1], d[2]].map(|x| (x / normalisation) as f32))
            .collect();
        Self {
            senders,
            receivers,
            features,
            max_edge_length,
            normalisation,
        }
    }

    pub fn num_edges(&self) -> usize {
        self.senders.len()
    }

    /// [edges] sender node of each edge (index into the sender node set).
    pub fn senders(&self) -> &[u32] {
        &self.senders
    }

    /// [edges] receiver node of each edge (index into the receiver node set), non-decreasing.
    pub fn receivers(&self) -> &[u32] {
        &self.receivers
    }

    /// [edges, 4] row-major: [length, d_x, d_y, d_z] / max length; d_x is the radial (up) component
    /// at the receiver, d_y the eastward and d_z the northward one.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The longest edge (chord on the unit sphere).
    pub fn max_edge_length(&self) -> f64 {
        self.max_edge_length
    }

    /// What the features were divided by: the longest edge unless a factor was given.
    pub fn normalisation(&self) -> f64 {
        self.normalisation
    }
}

/// [nodes, 3] row-major: [sin(lat), cos(lon), sin(lon)] from degrees.
pub fn node_features(lat_lon: impl Iterator<Item = (f64, f64)>) -> Vec<f32> {
    lat_lon
        .flat_map(|(lat, lon)| {
            let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
            [lat.to_radians().sin(), cos_lon, sin_lon].map(|x| x as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ModelGraph;
    use crate::grid::{LatLonGrid, LatitudeOrder, PoleRows};
    use crate::sphere::{
        REFERENCE_POINT, chord_distance, cross, dot, lat_lon_to_unit, rotation_to_reference,
    };

    fn grid_5625() -> LatLonGrid {
        LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap()
    }

    #[test]
    fn node_features_known_values() {
        let grid = LatLonGrid::from_coordinates(vec![30.0], vec![0.0, 90.0]).unwrap();
        let graph = ModelGraph::build(&grid, 0).unwrap();
        let expected = [0.5, 1.0, 0.0, 0.5, 0.0, 1.0];
        for (x, e) in graph.grid_node_features().iter().zip(expected) {
            assert!((x - e).abs() < 1e-7);
        }
        let f = graph.mesh_node_features();
        for node in 0..graph.num_mesh_nodes() {
            let p = graph.multimesh().positions()[node];
            // sin(lat) = z; (cos lon, sin lon) = (x, y) / horizontal length.
            let horizontal = p[0].hypot(p[1]);
            assert!((f64::from(f[3 * node]) - p[2]).abs() < 1e-6);
            assert!((f64::from(f[3 * node + 1]) - p[0] / horizontal).abs() < 1e-6);
            assert!((f64::from(f[3 * node + 2]) - p[1] / horizontal).abs() < 1e-6);
        }
    }

    /// Compares each edge's features with values computed another way: the local frame at the
    /// receiver r is up = r, east = (−sin lon, cos lon, 0), north = up × east; for unit vectors the
    /// radial component (s − r)·r equals −chord²/2.
    ///
    /// senders: [sender nodes] positions; receivers, receiver_lon: [receiver nodes].
    fn check_edge_features(
        edges: &EdgeSet,
        senders: &[Vec3],
        receivers: &[Vec3],
        receiver_lon: &[f64],
    ) {
        let max = edges.max_edge_length();
        let mut longest = 0.0f64;
        for k in 0..edges.num_edges() {
            let receiver = edges.receivers()[k] as usize;
            let s = senders[edges.senders()[k] as usize];
            let r = receivers[receiver];
            let feature = [0, 1, 2, 3].map(|i| f64::from(edges.features()[4 * k + i]));
            let chord = chord_distance(s, r);
            longest = longest.max(chord);
            let lon = receiver_lon[receiver].to_radians();
            let east = [-lon.sin(), lon.cos(), 0.0];
            let north = cross(r, east);
            let d = sub(s, r);
            let expected = [chord, -chord * chord / 2.0, dot(d, east), dot(d, north)];
            for i in 0..4 {
                assert!(
                    (feature[i] - expected[i] / max).abs() < 1e-6,
                    "edge {k}: {feature:?}"
                );
            }
        }
        assert!((longest - max).abs() < 1e-15);
    }

    #[test]
    fn edge_features_are_receiver_frame_displacements() {
        let grid = grid_5625();
        let graph = ModelGraph::build(&grid, 2).unwrap();
        let mesh_positions = graph.multimesh().positions();
        let mesh_lon = graph.multimesh().node_lon();
        let grid_positions = grid.positions();
        let grid_lon: Vec<f64> = (0..grid.num_points()).map(|k| grid.lat_lon(k).1).collect();
        check_edge_features(graph.mesh_edges(), mesh_positions, mesh_positions, mesh_lon);
        check_edge_features(graph.grid2mesh(), &grid_positions, mesh_positions, mesh_lon);
        check_edge_features(
            graph.mesh2grid(),
            mesh_positions,
            &grid_positions,
            &grid_lon,
        );
    }

    #[test]
    fn rotated_receiver_sits_at_reference_point() {
        let grid = grid_5625();
        let graph = ModelGraph::build(&grid, 1).unwrap();
        let mm = graph.multimesh();
        for (node, &p) in mm.positions().iter().enumerate() {
            let r = rotation_to_reference(mm.node_lat()[node], mm.node_lon()[node]);
            let rotated = mat_vec(&r, p);
            assert!(chord_distance(rotated, REFERENCE_POINT) < 1e-14);
        }
        let p = lat_lon_to_unit(-87.1875, 5.625);
        let rotated = mat_vec(&rotation_to_reference(-87.1875, 5.625), p);
        assert!(chord_distance(rotated, REFERENCE_POINT) < 1e-14);
    }
}

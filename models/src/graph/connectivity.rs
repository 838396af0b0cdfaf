//! Which grid points send to which mesh nodes: GraphCast's radius rule (`grid_mesh_connectivity.py`), a
//! grid point sends to every mesh node within chord distance [`GRID2MESH_RADIUS_FACTOR`] × the longest edge of
//! the finest mesh level. (mesh2grid connectivity is the containing triangle of
//! [`super::interpolation::MeshToGridInterpolation`].)

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;

use super::GraphError;
use crate::mesh::Multimesh;
use crate::sphere::Vec3;

/// grid2mesh radius as a fraction of the finest mesh's longest edge (GraphCast, `graphcast.py`:
/// `radius_query_fraction_edge_length = 0.6`).
pub const GRID2MESH_RADIUS_FACTOR: f64 = 0.6;

/// A k-d tree over unit vectors, for radius and nearest queries.
pub(crate) fn build_kd_tree(points: &[Vec3]) -> Result<ImmutableKdTree<f64, 3>, GraphError> {
    ImmutableKdTree::new_from_slice(points).map_err(|e| GraphError::KdTree {
        points: points.len(),
        message: format!("{e:?}"),
    })
}

/// grid2mesh edges (sender grid point, receiver mesh node) by GraphCast's radius rule with the radius
/// `fraction` × the finest level's longest edge, sorted by receiver then sender.
pub fn grid2mesh_edges(
    multimesh: &Multimesh,
    grid_positions: &[Vec3],
    fraction: f64,
) -> Result<(Vec<u32>, Vec<u32>), GraphError> {
    let radius = fraction * multimesh.finest_max_edge_length();
    radius_edges(multimesh.positions(), grid_positions, radius)
}

/// Every (grid point, mesh node) pair within chord distance `radius` (inclusive) as (senders = grid points,
/// receivers = mesh nodes), sorted by receiver then sender.
///
/// mesh_positions: [mesh_nodes, 3], grid_positions: [grid_points, 3] unit vectors.
pub fn radius_edges(
    mesh_positions: &[Vec3],
    grid_positions: &[Vec3],
    radius: f64,
) -> Result<(Vec<u32>, Vec<u32>), GraphError> {
    let tree = build_kd_tree(mesh_positions)?;
    let mut keys: Vec<u64> = grid_positions
        .par_iter()
        .enumerate()
        .flat_map_iter(|(grid_point, p)| {
            tree.query(p)
                .within::<SquaredEuclidean<f64>>(radius * radius)
                .unsorted()
                .execute()
                .into_iter()
                .map(move |found| (u64::from(found.item) << 32) | grid_point as u64)
        })
        .collect();
    keys.par_sort_unstable();
    Ok((
        keys.iter().map(|&k| k as u32).collect(),
        keys.iter().map(|&k| (k >> 32) as u32).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{LatLonGrid, LatitudeOrder, PoleRows};
    use crate::sphere::chord_distance;

    #[test]
    fn grid2mesh_matches_all_pairs_radius_search() {
        let grid =
            LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap();
        let mm = Multimesh::new(2).unwrap();
        let positions = grid.positions();
        let (senders, receivers) =
            grid2mesh_edges(&mm, &positions, GRID2MESH_RADIUS_FACTOR).unwrap();
        let radius = 0.6 * mm.finest_max_edge_length();
        let mut expected = Vec::new();
        for (node, &m) in mm.positions().iter().enumerate() {
            for (point, &g) in positions.iter().enumerate() {
                if chord_distance(m, g) <= radius {
                    expected.push((node as u32, point as u32));
                }
            }
        }
        let found: Vec<(u32, u32)> = receivers.into_iter().zip(senders).collect();
        assert_eq!(found, expected);
    }
}

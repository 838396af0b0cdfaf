//! Linear interpolation from mesh nodes to grid points through the containing triangle: the decoder's
//! mesh2grid connectivity and the operator that puts mesh fields on a grid for spectra.

use kiddo::SquaredEuclidean;
use rayon::prelude::*;

use super::GraphError;
use super::connectivity::build_kd_tree;
use crate::grid::LatLonGrid;
use crate::mesh::TriangularMesh;
use crate::sphere::{Vec3, add, chord_distance, dot, triple_product};

/// Linear interpolation from mesh nodes to grid points: each grid point takes a weighted sum of the 3
/// vertices of the mesh triangle containing it.
///
/// Barycentric definition: the grid point's direction p is projected along the ray from the centre
/// onto the plane of the flat triangle (a, b, c), q = t·p; the weights are q's planar barycentric
/// coordinates, computed as w_a ∝ det[p, b, c], w_b ∝ det[a, p, c], w_c ∝ det[a, b, p] normalised to
/// sum 1 (Cramer's rule for p = λ_a a + λ_b b + λ_c c, scaled by 1/t). The weights are ≥ 0 exactly
/// when p lies in the spherical triangle, and they reproduce any linear function of position at q.
#[derive(Debug, Clone)]
pub struct MeshToGridInterpolation {
    num_mesh_nodes: usize,
    mesh_nodes: Vec<u32>,
    weights: Vec<f64>,
}

impl MeshToGridInterpolation {
    /// Finds each grid point's containing triangle of `mesh` and its weights.
    ///
    /// Candidate triangles come from a k-d tree of triangle centres queried within the largest
    /// centre-to-vertex chord: a spherical triangle lies inside the cap around its centre through its
    /// farthest vertex, so the containing triangle is always a candidate. A point on an edge or vertex
    /// shared by several triangles is contained by each of them (some weight is 0, up to rounding);
    /// the candidate with the largest smallest weight is taken, ties going to the lower face index,
    /// and rounding-level negative weights are clipped to 0 before renormalising. Interpolation is
    /// the same whichever of the sharing triangles is used, since it depends only on the shared
    /// vertices there.
    pub fn new(mesh: &TriangularMesh, grid: &LatLonGrid) -> Result<Self, GraphError> {
        let vertex = |i: u32| mesh.vertices[i as usize];
        let centres = mesh.face_centres();
        let cap_radius = mesh
            .faces
            .iter()
            .zip(&centres)
            .flat_map(|(face, &centre)| face.map(|v| chord_distance(centre, vertex(v))))
            .fold(0.0, f64::max);
        // Slack well above rounding so a point exactly on the cap's rim is still found.
        let search_radius = cap_radius * (1.0 + 1e-9);
        let tree = build_kd_tree(&centres)?;
        let per_point: Vec<([u32; 3], [f64; 3])> = grid
            .positions()
            .par_iter()
            .map(|&p| {
                let candidates = tree
                    .query(&p)
                    .within::<SquaredEuclidean<f64>>(search_radius * search_radius)
                    .unsorted()
                    .execute();
                let best = best_face(mesh, p, candidates.iter().map(|found| found.item as usize))
                    .filter(|&(_, weights)| min3(weights) > -1e-9)
                    // Unreachable in exact arithmetic; an exhaustive search keeps a miss from
                    // silently producing a wrong operator.
                    .or_else(|| best_face(mesh, p, 0..mesh.faces.len()));
                // `best` is None only if no face faces p, impossible on a closed mesh.
                best.map(|(face, weights)| sorted_by_node(mesh.faces[face], clip(weights)))
                    .unwrap_or(([0; 3], [1.0, 0.0, 0.0]))
            })
            .collect();
        Ok(Self {
            num_mesh_nodes: mesh.vertices.len(),
            mesh_nodes: per_point.iter().flat_map(|(nodes, _)| *nodes).collect(),
            weights: per_point.iter().flat_map(|(_, weights)| *weights).collect(),
        })
    }

    pub fn num_grid_points(&self) -> usize {
        self.mesh_nodes.len() / 3
    }

    pub fn num_mesh_nodes(&self) -> usize {
        self.num_mesh_nodes
    }

    /// [grid_points, 3] the containing triangle's vertices for each grid point, ascending.
    pub fn mesh_nodes(&self) -> &[u32] {
        &self.mesh_nodes
    }

    /// [grid_points, 3] barycentric weights aligned with [`Self::mesh_nodes`]; each ≥ 0, rows sum to 1.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// mesh_field: [mesh_nodes, channels] row-major -> [grid_points, channels].
    pub fn interpolate<T: Copy + Into<f64>>(
        &self,
        mesh_field: &[T],
        channels: usize,
    ) -> Result<Vec<f64>, GraphError> {
        if mesh_field.len() != self.num_mesh_nodes * channels {
            return Err(GraphError::FieldShape {
                len: mesh_field.len(),
                mesh_nodes: self.num_mesh_nodes,
                channels,
            });
        }
        let mut out = vec![0.0; self.num_grid_points() * channels];
        for (point, row) in out.chunks_exact_mut(channels.max(1)).enumerate() {
            for k in 3 * point..3 * point + 3 {
                let node = self.mesh_nodes[k] as usize;
                let weight = self.weights[k];
                let values = &mesh_field[node * channels..(node + 1) * channels];
                for (o, &v) in row.iter_mut().zip(values) {
                    *o += weight * v.into();
                }
            }
        }
        Ok(out)
    }
}

/// Normalised barycentric weights of direction `p` in face `face` of `mesh` (see
/// [`MeshToGridInterpolation`]); negative outside the spherical triangle.
fn barycentric_weights(mesh: &TriangularMesh, face: usize, p: Vec3) -> [f64; 3] {
    let [a, b, c] = mesh.faces[face].map(|i| mesh.vertices[i as usize]);
    let lambda = [
        triple_product(p, b, c),
        triple_product(a, p, c),
        triple_product(a, b, p),
    ];
    let total = lambda[0] + lambda[1] + lambda[2];
    lambda.map(|l| l / total)
}

/// The candidate face whose smallest weight for `p` is largest (ties: lowest face index).
fn best_face(
    mesh: &TriangularMesh,
    p: Vec3,
    candidates: impl Iterator<Item = usize>,
) -> Option<(usize, [f64; 3])> {
    candidates
        .filter(|&face| {
            // Faces on the far side of the sphere cannot contain p (and make the weights' total 0).
            let [a, b, c] = mesh.faces[face].map(|i| mesh.vertices[i as usize]);
            dot(add(add(a, b), c), p) > 0.0
        })
        .map(|face| (face, barycentric_weights(mesh, face, p)))
        .max_by(|(face_x, x), (face_y, y)| {
            min3(*x)
                .total_cmp(&min3(*y))
                .then_with(|| face_y.cmp(face_x))
        })
}

fn min3(x: [f64; 3]) -> f64 {
    x[0].min(x[1]).min(x[2])
}

/// Clips rounding-level negative weights to 0 and renormalises to sum 1.
fn clip(weights: [f64; 3]) -> [f64; 3] {
    let clipped = weights.map(|w| w.max(0.0));
    let total = clipped[0] + clipped[1] + clipped[2];
    clipped.map(|w| w / total)
}

/// Orders a triangle's nodes ascending, carrying the weights along.
fn sorted_by_node(nodes: [u32; 3], weights: [f64; 3]) -> ([u32; 3], [f64; 3]) {
    let mut order = [0, 1, 2];
    order.sort_by_key(|&k| nodes[k]);
    (order.map(|k| nodes[k]), order.map(|k| weights[k]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{LatitudeOrder, PoleRows};
    use crate::sphere::{cross, normalize, scale, sub};

    fn grid_5625() -> LatLonGrid {
        LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap()
    }

    fn grid_1deg() -> LatLonGrid {
        LatLonGrid::equiangular(181, 360, PoleRows::Included, LatitudeOrder::Descending).unwrap()
    }

    /// The point where the ray through `p` meets the plane of triangle (a, b, c), computed directly.
    fn ray_plane_point(p: Vec3, [a, b, c]: [Vec3; 3]) -> Vec3 {
        let normal = cross(sub(b, a), sub(c, a));
        scale(p, dot(normal, a) / dot(normal, p))
    }

    /// Sign-test containment counts by brute force over all faces: every point lies in exactly one
    /// triangle's interior, or on a shared edge/vertex (weight ~0) of 2..=6 triangles. Checks the
    /// operator chose the interior triangle, or one of the touching ones, and returns how many
    /// points were on an edge or vertex.
    fn check_containment_brute_force(mesh: &TriangularMesh, grid: &LatLonGrid) -> usize {
        const TOL: f64 = 1e-12;
        let interp = MeshToGridInterpolation::new(mesh, grid).unwrap();
        let mut on_boundary = 0;
        for point in 0..grid.num_points() {
            let p = grid.position(point);
            let weights: Vec<(usize, [f64; 3])> = (0..mesh.faces.len())
                .filter(|&f| {
                    let [a, b, c] = mesh.faces[f].map(|i| mesh.vertices[i as usize]);
                    dot(add(add(a, b), c), p) > 0.0
                })
                .map(|f| (f, barycentric_weights(mesh, f, p)))
                .collect();
            let strict: Vec<usize> = weights
                .iter()
                .filter(|(_, w)| min3(*w) > TOL)
                .map(|(f, _)| *f)
                .collect();
            let touching: Vec<(usize, [f64; 3])> = weights
                .iter()
                .filter(|(_, w)| min3(*w) >= -TOL)
                .copied()
                .collect();
            assert!(strict.len() <= 1, "point {point} inside {strict:?}");
            if strict.is_empty() {
                on_boundary += 1;
                assert!(
                    (2..=6).contains(&touching.len()),
                    "point {point}: {touching:?}"
                );
                assert!(touching.iter().all(|(_, w)| min3(*w).abs() <= TOL));
            } else {
                assert_eq!(touching.len(), 1, "point {point}");
            }
            let mut chosen_nodes = [0, 1, 2].map(|k| interp.mesh_nodes()[3 * point + k]);
            chosen_nodes.sort_unstable();
            let chosen_is_touching = touching.iter().any(|(f, _)| {
                let mut nodes = mesh.faces[*f];
                nodes.sort_unstable();
                nodes == chosen_nodes
            });
            assert!(chosen_is_touching, "point {point}: chose {chosen_nodes:?}");
            let chosen = &interp.weights()[3 * point..3 * point + 3];
            assert!(chosen.iter().all(|&w| w >= 0.0));
            assert!((chosen.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        }
        on_boundary
    }

    #[test]
    fn every_grid_point_lies_in_one_triangle() {
        // GraphCast's icosahedron (a face centred on each pole) has mirror planes through the poles
        // at meridians 0°, 60°, ..., 300° that contain mesh edges, so grid points on those meridians
        // lie on shared edges: the boundary branch is exercised by real grids, not only by the
        // constructed points of the next test.
        let meshes = TriangularMesh::hierarchy(4);
        for mesh in &meshes {
            assert!(check_containment_brute_force(mesh, &grid_5625()) > 0);
        }
        // Pole rows and 1° spacing; level 2 keeps the brute force small.
        assert!(check_containment_brute_force(&meshes[2], &grid_1deg()) > 0);
    }

    #[test]
    fn points_on_edges_and_vertices_are_handled() {
        // A grid point exactly on a mesh vertex (shared by 5 or 6 triangles) and one on an edge
        // (shared by 2); the interpolated position must be the point itself.
        let mesh = &TriangularMesh::hierarchy(2)[2];
        let vertex = mesh.vertices[5];
        let [a, b, _] = mesh.faces[7].map(|i| mesh.vertices[i as usize]);
        let on_edge = normalize(add(scale(a, 0.3), scale(b, 0.7)));
        for p in [vertex, on_edge] {
            let (lat, lon) = crate::sphere::unit_to_lat_lon(p);
            let grid = LatLonGrid::from_coordinates(vec![lat], vec![lon]).unwrap();
            assert_eq!(check_containment_brute_force(mesh, &grid), 1);
            let interp = MeshToGridInterpolation::new(mesh, &grid).unwrap();
            let w = interp.weights();
            let q: Vec3 = (0..3).fold([0.0; 3], |acc, k| {
                add(
                    acc,
                    scale(mesh.vertices[interp.mesh_nodes()[k] as usize], w[k]),
                )
            });
            assert!(chord_distance(normalize(q), p) < 1e-12);
        }
    }

    #[test]
    fn barycentric_weights_reproduce_linear_functions() {
        let g = [0.3, -1.7, 2.2];
        let h = 0.45;
        let f = |x: Vec3| dot(g, x) + h;
        for (grid, level) in [(grid_5625(), 4), (grid_1deg(), 5)] {
            let mesh = &TriangularMesh::hierarchy(level)[level as usize];
            let interp = MeshToGridInterpolation::new(mesh, &grid).unwrap();
            // Two channels: f and 2f.
            let field: Vec<f64> = mesh
                .vertices
                .iter()
                .flat_map(|&v| [f(v), 2.0 * f(v)])
                .collect();
            let on_grid = interp.interpolate(&field, 2).unwrap();
            for point in 0..grid.num_points() {
                let nodes = &interp.mesh_nodes()[3 * point..3 * point + 3];
                let weights = &interp.weights()[3 * point..3 * point + 3];
                assert!(nodes[0] < nodes[1] && nodes[1] < nodes[2]);
                assert!(weights.iter().all(|&w| w >= 0.0));
                assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-14);
                let corners = [0, 1, 2].map(|k| mesh.vertices[nodes[k] as usize]);
                let q = ray_plane_point(grid.position(point), corners);
                assert!((on_grid[2 * point] - f(q)).abs() < 1e-12, "point {point}");
                assert!((on_grid[2 * point + 1] - 2.0 * f(q)).abs() < 2e-12);
            }
        }
    }

    #[test]
    fn interpolate_rejects_wrong_shape() {
        let mesh = TriangularMesh::icosahedron();
        let interp = MeshToGridInterpolation::new(&mesh, &grid_5625()).unwrap();
        assert!(matches!(
            interp.interpolate(&[0.0f32; 11], 1),
            Err(GraphError::FieldShape {
                len: 11,
                mesh_nodes: 12,
                channels: 1
            })
        ));
        // f32 input works too: a constant field stays constant.
        let ones = interp.interpolate(&[1.0f32; 24], 2).unwrap();
        assert!(ones.iter().all(|&x| (x - 1.0).abs() < 1e-15));
    }
}

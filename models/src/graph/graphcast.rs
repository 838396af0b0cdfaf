//! GraphCast's graphs as DeepMind's code builds them (google-deepmind/graphcast at 08cf736:
//! `icosahedral_mesh.py`, `grid_mesh_connectivity.py`, `model_utils.py`, `graphcast.py`), so that an imported
//! GraphCast checkpoint runs on the graph it was trained on. Where its arithmetic decides which edges exist,
//! it is reproduced operation by operation:
//!
//! - mesh vertices in f32: the icosahedron scaled and rotated in f64 then rounded, every refinement
//!   midpoint `(a + b) / 2` divided by its norm in f32, the norm's squares accumulated in f64 as OpenBLAS's
//!   `sdot` does (this gives GraphCast's vertices bit for bit at every level up to 6);
//! - grid positions from the f32 latitudes and longitudes with f32 trigonometry;
//! - grid2mesh: the radius is the finest level's longest edge (f32 norms) times the fraction, in f32; a
//!   (grid point, mesh node) pair is an edge when their chord, in f64 from the f32 positions, is within it;
//! - mesh2grid: the face of the finest mesh that `trimesh.proximity.closest_point` (trimesh 5.2) returns — the
//!   face nearest to the grid point in Euclidean distance, and between two faces within 1e-8 of each other
//!   (squared distances, both above 1e-8) the one whose normal points more towards the point. On a few grid
//!   points the nearest faces tie to rounding and GraphCast's own choice depends on its machine; for the
//!   grids of the published checkpoints those choices, recorded by running GraphCast's code, are applied
//!   (`graphcast_mesh2grid.txt`), and [`GraphCastTies`] counts such points for any grid.
//!
//! Node and edge features then follow `model_utils.py` from the f32 latitudes and longitudes; their rounding
//! differs from GraphCast's by parts in 10⁷, which no edge decision depends on.

use kiddo::SquaredEuclidean;
use rayon::prelude::*;

use super::connectivity::{build_kd_tree, radius_edges};
use super::{FeatureGeometry, GraphError, MeshToGridInterpolation, ModelGraph};
use crate::grid::LatLonGrid;
use crate::mesh::{Multimesh, TriangularMesh};
use crate::sphere::{Vec3, add, cross, dot, norm, normalize, scale, sub};

/// trimesh's `tol.merge`: squared distances closer than this are a tie, settled by the face normals.
const TRIMESH_TOLERANCE: f64 = 1e-8;

/// The recorded choices of GraphCast's code at grid points where rounding decides the mesh2grid face.
const RECORDED_FACES: &str = include_str!("graphcast_mesh2grid.txt");

/// How many grid points of a graph lie where the mesh2grid face is a tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct GraphCastTies {
    /// Points whose two nearest faces are within trimesh's tolerance (settled by the face normals).
    pub within_tolerance: usize,
    /// Points whose choice rounding decides (distances equal to 1e-15, or normals equal to 1e-9): there
    /// GraphCast's own pick depends on its machine.
    pub decided_by_rounding: usize,
    /// Of those, points where the recorded choice of GraphCast's code was applied.
    pub recorded: usize,
}

/// The multimesh of `mesh_size` with GraphCast's f32 vertices (as f64 values), and the f32 latitudes and
/// longitudes GraphCast derives from them.
pub fn multimesh(mesh_size: u32) -> Result<Multimesh, GraphError> {
    let multimesh = Multimesh::new(mesh_size)?;
    let vertices = vertices_f32(mesh_size);
    let (lat, lon): (Vec<f64>, Vec<f64>) = vertices
        .iter()
        .map(|&v| {
            let (lat, lon) = lat_lon_f32(v);
            (f64::from(lat), f64::from(lon))
        })
        .unzip();
    let positions = vertices.iter().map(|v| v.map(f64::from)).collect();
    Ok(multimesh.with_geometry(positions, lat, lon))
}

/// [vertices] the finest level's vertices as GraphCast computes them in f32 (`icosahedral_mesh.py`:
/// `get_icosahedron`, `_two_split_unit_sphere_triangle_faces`), in its vertex order.
pub fn vertices_f32(level: u32) -> Vec<[f32; 3]> {
    let phi = (1.0 + 5f64.sqrt()) / 2.0;
    let phi_f32 = phi as f32;
    let scale_by = (1.0 + phi * phi).sqrt();
    let angle = (std::f64::consts::PI - 2.0 * (phi / 3f64.sqrt()).asin()) / 2.0;
    let (sin_a, cos_a) = angle.sin_cos();
    let mut vertices: Vec<[f32; 3]> = Vec::with_capacity(10 * 4usize.pow(level) + 2);
    for c1 in [1.0f32, -1.0] {
        for c2 in [phi_f32, -phi_f32] {
            for corner in [[c1, c2, 0.0], [0.0, c1, c2], [c2, 0.0, c1]] {
                let [x, y, z] = corner.map(|c| f64::from(c) / scale_by);
                // Row vector times the rotation about y: v·R, in f64 from the f32-rounded corner.
                let [x, y, z] = [x as f32, y as f32, z as f32].map(f64::from);
                vertices.push([
                    (x * cos_a - z * sin_a) as f32,
                    y as f32,
                    (x * sin_a + z * cos_a) as f32,
                ]);
            }
        }
    }
    let mut faces = TriangularMesh::icosahedron().faces;
    for _ in 0..level {
        let mut midpoint_of_edge = std::collections::HashMap::with_capacity(faces.len() * 3 / 2);
        let mut midpoint = |a: u32, b: u32, vertices: &mut Vec<[f32; 3]>| -> u32 {
            *midpoint_of_edge
                .entry((a.min(b), a.max(b)))
                .or_insert_with(|| {
                    let (p, q) = (vertices[a as usize], vertices[b as usize]);
                    let mean = [0, 1, 2].map(|i| (p[i] + q[i]) / 2.0);
                    let length = sdot_norm(mean);
                    vertices.push(mean.map(|x| x / length));
                    (vertices.len() - 1) as u32
                })
        };
        let mut finer = Vec::with_capacity(faces.len() * 4);
        for [v1, v2, v3] in faces {
            let m12 = midpoint(v1, v2, &mut vertices);
            let m23 = midpoint(v2, v3, &mut vertices);
            let m31 = midpoint(v3, v1, &mut vertices);
            finer.extend([
                [v1, m12, m31],
                [m12, v2, m23],
                [m31, m23, v3],
                [m12, m23, m31],
            ]);
        }
        faces = finer;
    }
    vertices
}

/// `np.linalg.norm` of an f32 3-vector: `sqrt(x·x)` with OpenBLAS's `sdot`, which multiplies in f32 and
/// accumulates the products in f64 before rounding the sum to f32.
fn sdot_norm(v: [f32; 3]) -> f32 {
    let sum: f64 = v.iter().map(|&x| f64::from(x * x)).sum();
    (sum as f32).sqrt()
}

/// GraphCast's (lat, lon) in degrees of a unit vector, in f32 (`model_utils.cartesian_to_spherical` then
/// `spherical_to_lat_lon`): lon in [0, 360).
fn lat_lon_f32([x, y, z]: [f32; 3]) -> (f32, f32) {
    let degrees = (180.0 / std::f64::consts::PI) as f32;
    let lon = (y.atan2(x) * degrees).rem_euclid(360.0);
    let lat = 90.0 - z.acos() * degrees;
    (lat, lon)
}

/// The unit vector of (lat, lon) degrees in f32 arithmetic, as `grid_mesh_connectivity._grid_lat_lon_to_
/// coordinates` and `model_utils.spherical_to_cartesian` compute it from f32 coordinates.
fn unit_f32(lat: f32, lon: f32) -> [f32; 3] {
    let radians = (std::f64::consts::PI / 180.0) as f32;
    let (phi, theta) = (lon * radians, (90.0 - lat) * radians);
    let (sin_theta, cos_theta) = theta.sin_cos();
    [phi.cos() * sin_theta, phi.sin() * sin_theta, cos_theta]
}

/// [3] GraphCast's node features of (lat, lon) in f32: [cos θ, cos φ, sin φ] (θ the colatitude).
fn node_features_f32(lat: f32, lon: f32) -> [f32; 3] {
    let radians = (std::f64::consts::PI / 180.0) as f32;
    let (phi, theta) = (lon * radians, (90.0 - lat) * radians);
    [theta.cos(), phi.cos(), phi.sin()]
}

/// Builds the graphs of a GraphCast model: `mesh_size`, the grid2mesh radius `fraction` of the longest finest
/// edge, and an optional fixed mesh2grid edge normalisation (`mesh2grid_edge_normalization_factor`), with
/// the recorded mesh2grid choices of GraphCast's code where the grid is a published checkpoint's.
pub(crate) fn build(
    grid: &LatLonGrid,
    mesh_size: u32,
    fraction: f64,
    mesh2grid_normalisation: Option<f64>,
) -> Result<ModelGraph, GraphError> {
    let recorded = recorded_faces(grid, mesh_size);
    build_with(
        grid,
        mesh_size,
        fraction,
        mesh2grid_normalisation,
        &recorded,
    )
}

/// [`build`] with the mesh2grid face of the given grid points fixed: `recorded` lists (grid point, face)
/// pairs, e.g. the choices GraphCast's code made on a test grid.
pub fn build_with(
    grid: &LatLonGrid,
    mesh_size: u32,
    fraction: f64,
    mesh2grid_normalisation: Option<f64>,
    recorded: &[(usize, usize)],
) -> Result<ModelGraph, GraphError> {
    let multimesh = multimesh(mesh_size)?;
    let grid_lat_lon = grid_lat_lon_f32(grid);
    let grid_points = unit_points_f32(&grid_lat_lon);
    let finest = multimesh.finest_mesh();
    let longest = finest
        .directed_edges()
        .map(|(s, r)| {
            let [a, b] = [s, r].map(|v| finest.vertices[v as usize].map(|x| x as f32));
            let d = [0, 1, 2].map(|i| a[i] - b[i]);
            (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
        })
        .fold(0.0f32, f32::max);
    let radius = f64::from(longest * fraction as f32);
    let grid2mesh = radius_edges(multimesh.positions(), &grid_points, radius)?;
    let (faces, _) = mesh2grid_faces(finest, &grid_points, recorded)?;
    let mesh2grid_senders = faces.iter().flat_map(|&face| finest.faces[face]).collect();
    let point = |(lat, lon): (f32, f32)| {
        (
            unit_f32(lat, lon).map(f64::from),
            (f64::from(lat), f64::from(lon)),
            node_features_f32(lat, lon),
        )
    };
    let mesh_lat_lon: Vec<(f32, f32)> = multimesh
        .node_lat()
        .iter()
        .zip(multimesh.node_lon())
        .map(|(&lat, &lon)| (lat as f32, lon as f32))
        .collect();
    let geometry = FeatureGeometry::from_points(
        mesh_lat_lon.into_iter().map(point),
        grid_lat_lon.into_iter().map(point),
    );
    let interpolation = MeshToGridInterpolation::new(multimesh.finest_mesh(), grid)?;
    Ok(ModelGraph::assemble(
        grid,
        multimesh,
        &geometry,
        grid2mesh,
        mesh2grid_senders,
        mesh2grid_normalisation,
        interpolation,
    ))
}

/// The grid's latitudes and longitudes as the f32 GraphCast computes its geometry from, grid point order.
fn grid_lat_lon_f32(grid: &LatLonGrid) -> Vec<(f32, f32)> {
    (0..grid.num_points())
        .map(|k| {
            let (lat, lon) = grid.lat_lon(k);
            (lat as f32, lon as f32)
        })
        .collect()
}

/// Unit vectors of f32 (lat, lon) pairs, computed in f32 and given as f64 values.
fn unit_points_f32(lat_lon: &[(f32, f32)]) -> Vec<Vec3> {
    lat_lon
        .iter()
        .map(|&(lat, lon)| unit_f32(lat, lon).map(f64::from))
        .collect()
}

/// How many grid points of `grid` have a tied mesh2grid face at `mesh_size`, and how many of those take a
/// recorded choice of GraphCast's code ([`recorded_faces`]): where rounding decides, GraphCast's own outputs
/// may differ from WeatherLens's at those points (the graph [`build`] makes is otherwise GraphCast's).
pub fn mesh2grid_ties(grid: &LatLonGrid, mesh_size: u32) -> Result<GraphCastTies, GraphError> {
    let multimesh = multimesh(mesh_size)?;
    let points = unit_points_f32(&grid_lat_lon_f32(grid));
    let recorded = recorded_faces(grid, mesh_size);
    let (_, ties) = mesh2grid_faces(multimesh.finest_mesh(), &points, &recorded)?;
    Ok(ties)
}

/// The recorded choice of GraphCast's code at grid points of `grid` (by position) where rounding decides,
/// for the published checkpoints' grids; empty for other grids.
pub fn recorded_faces(grid: &LatLonGrid, mesh_size: u32) -> Vec<(usize, usize)> {
    let rows: Vec<(f64, u32, f64, f64, usize)> = RECORDED_FACES
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [resolution, mesh, lat, lon, face] = fields.as_slice() else {
                return None;
            };
            Some((
                resolution.parse().ok()?,
                mesh.parse().ok()?,
                lat.parse().ok()?,
                lon.parse().ok()?,
                face.parse().ok()?,
            ))
        })
        .collect();
    let spacing = |values: &[f64]| values.get(1).map_or(0.0, |v| (v - values[0]).abs());
    let (lat_step, lon_step) = (spacing(grid.lat()), spacing(grid.lon()));
    let index_of = |value: f64, axis: &[f64]| axis.iter().position(|&a| (a - value).abs() < 1e-9);
    rows.into_iter()
        .filter(|&(resolution, mesh, ..)| {
            mesh == mesh_size
                && (lat_step - resolution).abs() < 1e-9
                && (lon_step - resolution).abs() < 1e-9
                && grid.n_lon() as f64 * resolution == 360.0
        })
        .filter_map(|(_, _, lat, lon, face)| {
            let lon = lon.rem_euclid(360.0);
            let i = index_of(lat, grid.lat())?;
            let j = index_of(lon, grid.lon()).or_else(|| index_of(lon - 360.0, grid.lon()))?;
            Some((i * grid.n_lon() + j, face))
        })
        .collect()
}

/// The mesh2grid face of every grid point (see the module docs), with `recorded` (grid point, face) choices
/// applied, and the count of ties.
///
/// points: [grid_points] unit vectors (f64 values of the f32 positions) -> ([grid_points] face indices, ties)
pub fn mesh2grid_faces(
    mesh: &TriangularMesh,
    points: &[Vec3],
    recorded: &[(usize, usize)],
) -> Result<(Vec<usize>, GraphCastTies), GraphError> {
    let vertex = |i: u32| mesh.vertices[i as usize];
    let centres = mesh.face_centres();
    let normals: Vec<Vec3> = mesh
        .faces
        .iter()
        .map(|&[a, b, c]| normalize(cross(sub(vertex(b), vertex(a)), sub(vertex(c), vertex(a)))))
        .collect();
    // The nearest face lies within the cap through a triangle's farthest vertex around the containing
    // triangle's centre, or next to it: twice that radius holds every candidate.
    let cap = mesh
        .faces
        .iter()
        .zip(&centres)
        .flat_map(|(face, &centre)| face.map(|v| norm(sub(centre, vertex(v)))))
        .fold(0.0, f64::max);
    let search = 2.0 * cap;
    let tree = build_kd_tree(&centres)?;
    let picks: Vec<(usize, bool, bool)> = points
        .par_iter()
        .map(|&p| {
            let mut candidates: Vec<(f64, usize, Vec3)> = tree
                .query(&p)
                .within::<SquaredEuclidean<f64>>(search * search)
                .unsorted()
                .execute()
                .into_iter()
                .map(|found| {
                    let face = found.item as usize;
                    let [a, b, c] = mesh.faces[face].map(vertex);
                    let closest = closest_point_on_triangle(p, a, b, c);
                    let d = sub(p, closest);
                    (dot(d, d), face, closest)
                })
                .collect();
            candidates.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            let (d0, f0, c0) = candidates[0];
            let Some(&(d1, f1, c1)) = candidates.get(1) else {
                return (f0, false, false);
            };
            let towards = |face: usize, closest: Vec3| {
                let away = sub(p, closest);
                dot(normals[face], scale(away, 1.0 / norm(away)))
            };
            let within = d1 - d0 < TRIMESH_TOLERANCE;
            if within && d0 > TRIMESH_TOLERANCE && d1 > TRIMESH_TOLERANCE {
                let (t0, t1) = (towards(f0, c0), towards(f1, c1));
                let third_close = candidates
                    .get(2)
                    .is_some_and(|&(d2, ..)| (d2 - d1).abs() < 1e-15);
                let fragile = (t0 - t1).abs() < 1e-9 || third_close;
                (if t1 > t0 { f1 } else { f0 }, within, fragile)
            } else {
                let fragile = (d1 - d0).abs() < 1e-15
                    || ((d0 - TRIMESH_TOLERANCE).abs() < 1e-15)
                    || ((d1 - d0 - TRIMESH_TOLERANCE).abs() < 1e-15);
                (f0, within, fragile)
            }
        })
        .collect();
    let mut faces: Vec<usize> = picks.iter().map(|&(face, ..)| face).collect();
    let mut ties = GraphCastTies {
        within_tolerance: picks.iter().filter(|p| p.1).count(),
        decided_by_rounding: picks.iter().filter(|p| p.2).count(),
        recorded: 0,
    };
    for &(point, face) in recorded {
        if point < faces.len() && face < mesh.faces.len() {
            faces[point] = face;
            ties.recorded += 1;
        }
    }
    Ok((faces, ties))
}

/// The point of triangle (a, b, c) nearest to p (Ericson, "Real-Time Collision Detection", 5.1.5): the
/// computation trimesh's `closest_point_corresponding` follows, in f64.
fn closest_point_on_triangle(p: Vec3, a: Vec3, b: Vec3, c: Vec3) -> Vec3 {
    let (ab, ac, ap) = (sub(b, a), sub(c, a), sub(p, a));
    let (d1, d2) = (dot(ab, ap), dot(ac, ap));
    if d1 <= 0.0 && d2 <= 0.0 {
        return a;
    }
    let bp = sub(p, b);
    let (d3, d4) = (dot(ab, bp), dot(ac, bp));
    if d3 >= 0.0 && d4 <= d3 {
        return b;
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        return add(a, scale(ab, d1 / (d1 - d3)));
    }
    let cp = sub(p, c);
    let (d5, d6) = (dot(ab, cp), dot(ac, cp));
    if d6 >= 0.0 && d5 <= d6 {
        return c;
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        return add(a, scale(ac, d2 / (d2 - d6)));
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
        return add(b, scale(sub(c, b), (d4 - d3) / ((d4 - d3) + (d5 - d6))));
    }
    let denominator = 1.0 / (va + vb + vc);
    let (v, w) = (vb * denominator, vc * denominator);
    add(a, add(scale(ab, v), scale(ac, w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_points_of_a_triangle_by_region() {
        let (a, b, c) = ([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
        let near = |p: Vec3, q: Vec3| (0..3).all(|i| (p[i] - q[i]).abs() < 1e-15);
        // Above the interior: the foot of the perpendicular.
        assert!(near(
            closest_point_on_triangle([0.2, 0.3, 5.0], a, b, c),
            [0.2, 0.3, 0.0]
        ));
        // Beyond a vertex, beyond an edge.
        assert!(near(
            closest_point_on_triangle([-1.0, -1.0, 1.0], a, b, c),
            a
        ));
        assert!(near(
            closest_point_on_triangle([0.5, -2.0, 0.0], a, b, c),
            [0.5, 0.0, 0.0]
        ));
        // Beyond the hypotenuse: the point (0.5, 0.5) of edge bc.
        assert!(near(
            closest_point_on_triangle([1.0, 1.0, 0.0], a, b, c),
            [0.5, 0.5, 0.0]
        ));
    }

    #[test]
    fn f32_vertices_are_unit_and_start_with_the_rotated_icosahedron() {
        let v = vertices_f32(2);
        assert_eq!(v.len(), 162);
        for p in &v {
            let length = sdot_norm(*p);
            assert!((length - 1.0).abs() < 1e-6, "{length}");
        }
        // The rotated icosahedron has a face centred on each pole, at every level: no vertex on a pole.
        assert!(v.iter().all(|p| p[2].abs() < 0.999));
        // And in f64 the same construction gives the same points to f32 rounding.
        let exact = Multimesh::new(2).unwrap();
        for (p, q) in v.iter().zip(exact.positions()) {
            for i in 0..3 {
                assert!((f64::from(p[i]) - q[i]).abs() < 1e-6);
            }
        }
    }
}

//! The icosahedral mesh hierarchy and GraphCast's multimesh.
//!
//! Level 0 is a regular icosahedron inscribed in the unit sphere; level r + 1 splits every triangle of
//! level r into 4 and projects the new edge midpoints onto the sphere. Level r has 10·4^r + 2 vertices,
//! 30·4^r edges and 20·4^r faces. The multimesh of level R keeps the vertices of level R and the edges
//! of all levels 0..=R, so long coarse edges carry information far in one message-passing step
//! (GraphCast, Lam et al. 2023, section 3.1).

use std::collections::HashMap;

use thiserror::Error;

use crate::sphere::{Vec3, add, chord_distance, normalize, unit_to_lat_lon};

/// The finest level [`Multimesh::new`] accepts: level 8 already has 655,362 nodes and 5.2 million
/// directed edges; the cap keeps a mistyped level from exhausting memory (GraphCast uses 6).
pub const MAX_MESH_LEVEL: u32 = 8;

/// Failures a caller can cause when asking for a mesh.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MeshError {
    #[error("mesh level {level} is above the supported maximum {max}")]
    LevelTooHigh { level: u32, max: u32 },
}

/// A triangulated sphere: unit-length vertices and faces listed counter-clockwise seen from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct TriangularMesh {
    /// [vertices, 3] unit vectors.
    pub vertices: Vec<Vec3>,
    /// [faces, 3] indices into `vertices`, counter-clockwise seen from outside the sphere.
    pub faces: Vec<[u32; 3]>,
}

impl TriangularMesh {
    /// The unit vector through each face's centroid: [faces] (normalised sum of its three vertices).
    pub fn face_centres(&self) -> Vec<Vec3> {
        let vertex = |i: u32| self.vertices[i as usize];
        self.faces
            .iter()
            .map(|&[a, b, c]| normalize(add(add(vertex(a), vertex(b)), vertex(c))))
            .collect()
    }

    /// The regular icosahedron (12 vertices, 20 faces), oriented exactly as GraphCast's
    /// `icosahedral_mesh.get_icosahedron`: the vertices (±1, ±φ, 0) and their cyclic permutations, in
    /// GraphCast's order and with its face list, rotated about y so that a face is centred on each
    /// pole. No mesh vertex then sits on a pole at any level, and vertex indices match GraphCast's.
    pub fn icosahedron() -> Self {
        let phi = (1.0 + 5f64.sqrt()) / 2.0;
        let mut corners = Vec::with_capacity(12);
        for c1 in [1.0, -1.0] {
            for c2 in [phi, -phi] {
                corners.push([c1, c2, 0.0]);
                corners.push([0.0, c1, c2]);
                corners.push([c2, 0.0, c1]);
            }
        }
        // Half the supplement of the dihedral angle 2·asin(φ/√3) turns the face next to the top
        // edge flat.
        let dihedral_angle = 2.0 * (phi / 3f64.sqrt()).asin();
        let (sin_a, cos_a) = ((std::f64::consts::PI - dihedral_angle) / 2.0).sin_cos();
        let vertices = corners
            .into_iter()
            .map(|[x, y, z]| normalize([x * cos_a - z * sin_a, y, x * sin_a + z * cos_a]))
            .collect();
        let faces = vec![
            [0, 1, 2],
            [0, 6, 1],
            [8, 0, 2],
            [8, 4, 0],
            [3, 8, 2],
            [3, 2, 7],
            [7, 2, 1],
            [0, 4, 6],
            [4, 11, 6],
            [6, 11, 5],
            [1, 5, 7],
            [4, 10, 11],
            [4, 8, 10],
            [10, 8, 3],
            [10, 3, 9],
            [11, 10, 9],
            [11, 9, 5],
            [5, 9, 7],
            [9, 3, 7],
            [1, 6, 5],
        ];
        Self { vertices, faces }
    }

    /// Splits every face into 4, keeping orientation; the midpoint of each edge is projected onto the
    /// sphere and created once however many faces share the edge. The old vertices keep their
    /// indices, so this mesh's vertices are a prefix of the result's.
    pub fn subdivide(&self) -> Self {
        let mut vertices = self.vertices.clone();
        vertices.reserve(self.faces.len() * 3 / 2);
        let mut midpoint_of_edge: HashMap<(u32, u32), u32> =
            HashMap::with_capacity(self.faces.len() * 3 / 2);
        let mut midpoint = |a: u32, b: u32| -> u32 {
            let key = (a.min(b), a.max(b));
            *midpoint_of_edge.entry(key).or_insert_with(|| {
                let position = add(self.vertices[a as usize], self.vertices[b as usize]);
                vertices.push(normalize(position));
                (vertices.len() - 1) as u32
            })
        };
        let mut faces = Vec::with_capacity(self.faces.len() * 4);
        for &[v1, v2, v3] in &self.faces {
            let m12 = midpoint(v1, v2);
            let m23 = midpoint(v2, v3);
            let m31 = midpoint(v3, v1);
            faces.extend([
                [v1, m12, m31],
                [m12, v2, m23],
                [m31, m23, v3],
                [m12, m23, m31],
            ]);
        }
        Self { vertices, faces }
    }

    /// Levels 0..=`level`, coarsest first.
    pub fn hierarchy(level: u32) -> Vec<Self> {
        let mut meshes = vec![Self::icosahedron()];
        for _ in 0..level {
            let finer = meshes[meshes.len() - 1].subdivide();
            meshes.push(finer);
        }
        meshes
    }

    /// Directed edges (sender, receiver) along each face's boundary: a→b, b→c, c→a. On a closed,
    /// consistently oriented mesh every edge is shared by two faces traversing it in opposite
    /// directions, so this lists each undirected edge exactly once in each direction.
    pub fn directed_edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.faces
            .iter()
            .flat_map(|&[a, b, c]| [(a, b), (b, c), (c, a)])
    }

    /// The longest chord among this mesh's edges.
    pub fn max_edge_length(&self) -> f64 {
        self.directed_edges()
            .map(|(s, r)| chord_distance(self.vertices[s as usize], self.vertices[r as usize]))
            .fold(0.0, f64::max)
    }
}

/// GraphCast's multimesh of level R: the vertices of level R and, in both directions, the edges of
/// every level 0..=R, sorted by receiver then sender (a deterministic order for segment sums).
#[derive(Debug, Clone)]
pub struct Multimesh {
    level: u32,
    finest: TriangularMesh,
    lat: Vec<f64>,
    lon: Vec<f64>,
    senders: Vec<u32>,
    receivers: Vec<u32>,
    finest_max_edge_length: f64,
}

impl Multimesh {
    /// Builds the multimesh of `level` (0..=[`MAX_MESH_LEVEL`]).
    pub fn new(level: u32) -> Result<Self, MeshError> {
        if level > MAX_MESH_LEVEL {
            return Err(MeshError::LevelTooHigh {
                level,
                max: MAX_MESH_LEVEL,
            });
        }
        let mut meshes = TriangularMesh::hierarchy(level);
        // Key = receiver in the high half, sender in the low half: sorting the keys sorts the edges
        // by receiver, then sender. Coarse edges never coincide with finer ones (a level-r edge
        // skips the level-(r+1) midpoint between its ends); dedup only guards that invariant.
        let mut keys: Vec<u64> = meshes
            .iter()
            .flat_map(|mesh| mesh.directed_edges())
            .map(|(s, r)| (u64::from(r) << 32) | u64::from(s))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let senders = keys.iter().map(|&k| k as u32).collect();
        let receivers = keys.iter().map(|&k| (k >> 32) as u32).collect();
        let finest = meshes.pop().unwrap_or_else(TriangularMesh::icosahedron);
        let (lat, lon) = finest.vertices.iter().map(|&v| unit_to_lat_lon(v)).unzip();
        let finest_max_edge_length = finest.max_edge_length();
        Ok(Self {
            level,
            finest,
            lat,
            lon,
            senders,
            receivers,
            finest_max_edge_length,
        })
    }

    /// The same multimesh with its node positions (unit vectors, [nodes]) and latitudes / longitudes
    /// (degrees) replaced: GraphCast's f32 vertices differ from the f64 ones in the last bits.
    pub(crate) fn with_geometry(
        mut self,
        positions: Vec<Vec3>,
        lat: Vec<f64>,
        lon: Vec<f64>,
    ) -> Self {
        self.finest.vertices = positions;
        self.finest_max_edge_length = self.finest.max_edge_length();
        (self.lat, self.lon) = (lat, lon);
        self
    }

    /// The refinement level R.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// 10·4^R + 2.
    pub fn num_nodes(&self) -> usize {
        self.finest.vertices.len()
    }

    /// Directed edges: 60·(4^(R+1) − 1)/3.
    pub fn num_edges(&self) -> usize {
        self.senders.len()
    }

    /// [nodes, 3] unit vectors of the nodes.
    pub fn positions(&self) -> &[Vec3] {
        &self.finest.vertices
    }

    /// [faces, 3] faces of the finest level, counter-clockwise seen from outside.
    pub fn faces(&self) -> &[[u32; 3]] {
        &self.finest.faces
    }

    /// The finest level as a triangular mesh (nodes and faces).
    pub fn finest_mesh(&self) -> &TriangularMesh {
        &self.finest
    }

    /// [edges] sender node of each directed edge.
    pub fn senders(&self) -> &[u32] {
        &self.senders
    }

    /// [edges] receiver node of each directed edge (non-decreasing).
    pub fn receivers(&self) -> &[u32] {
        &self.receivers
    }

    /// [nodes] latitude of each node, degrees.
    pub fn node_lat(&self) -> &[f64] {
        &self.lat
    }

    /// [nodes] longitude of each node, degrees in [0, 360).
    pub fn node_lon(&self) -> &[f64] {
        &self.lon
    }

    /// Chord length of the longest edge of the finest level (sets GraphCast's grid2mesh radius).
    pub fn finest_max_edge_length(&self) -> f64 {
        self.finest_max_edge_length
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::sphere::{dot, norm, triple_product};

    fn nodes_formula(level: u32) -> usize {
        10 * 4usize.pow(level) + 2
    }

    fn multimesh_edges_formula(level: u32) -> usize {
        60 * (4usize.pow(level + 1) - 1) / 3
    }

    fn undirected_edges(mesh: &TriangularMesh) -> HashSet<(u32, u32)> {
        mesh.directed_edges()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect()
    }

    #[test]
    fn multimesh_counts_match_formulas() {
        for level in 0..=5 {
            let mm = Multimesh::new(level).expect("valid level");
            assert_eq!(mm.num_nodes(), nodes_formula(level), "nodes at R={level}");
            assert_eq!(
                mm.num_edges(),
                multimesh_edges_formula(level),
                "edges at R={level}"
            );
            assert_eq!(mm.faces().len(), 20 * 4usize.pow(level));
            assert_eq!(mm.node_lat().len(), mm.num_nodes());
        }
    }

    #[test]
    fn multimesh_counts_match_published_figures() {
        // REFERENCE.md / GraphCast paper: R=6 has 40,962 nodes and 327,660 directed edges.
        for (level, nodes, edges) in [(2, 162, 1260), (4, 2562, 20460), (5, 10242, 81900)] {
            let mm = Multimesh::new(level).expect("valid level");
            assert_eq!((mm.num_nodes(), mm.num_edges()), (nodes, edges));
        }
        assert_eq!(nodes_formula(6), 40962);
        assert_eq!(multimesh_edges_formula(6), 327660);
    }

    #[test]
    fn level_above_maximum_is_an_error() {
        assert_eq!(
            Multimesh::new(MAX_MESH_LEVEL + 1).unwrap_err(),
            MeshError::LevelTooHigh {
                level: MAX_MESH_LEVEL + 1,
                max: MAX_MESH_LEVEL
            }
        );
    }

    #[test]
    fn euler_characteristic_is_two_at_every_level() {
        for (level, mesh) in TriangularMesh::hierarchy(5).iter().enumerate() {
            let v = mesh.vertices.len() as i64;
            let e = undirected_edges(mesh).len() as i64;
            let f = mesh.faces.len() as i64;
            assert_eq!(v - e + f, 2, "level {level}");
            assert_eq!(e, 30 * 4i64.pow(level as u32));
        }
    }

    #[test]
    fn vertices_are_unit_and_faces_counter_clockwise() {
        for mesh in TriangularMesh::hierarchy(4) {
            assert!(mesh.vertices.iter().all(|&v| (norm(v) - 1.0).abs() < 1e-15));
            for &[a, b, c] in &mesh.faces {
                let [a, b, c] = [a, b, c].map(|i| mesh.vertices[i as usize]);
                assert!(triple_product(a, b, c) > 0.0);
            }
        }
    }

    #[test]
    fn coarse_vertices_are_a_prefix_of_finer_levels() {
        let meshes = TriangularMesh::hierarchy(4);
        for pair in meshes.windows(2) {
            let (coarse, fine) = (&pair[0], &pair[1]);
            assert_eq!(coarse.vertices[..], fine.vertices[..coarse.vertices.len()]);
        }
    }

    #[test]
    fn no_duplicate_vertices() {
        let mesh = &TriangularMesh::hierarchy(4)[4];
        let mut keys: Vec<[i64; 3]> = mesh
            .vertices
            .iter()
            .map(|v| v.map(|x| (x * 1e9).round() as i64))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), mesh.vertices.len());
    }

    #[test]
    fn icosahedron_is_regular_with_a_face_centred_on_each_pole() {
        let ico = TriangularMesh::icosahedron();
        // Edge chord of the icosahedron inscribed in the unit sphere: 4 / sqrt(10 + 2 sqrt 5).
        let edge = 4.0 / (10.0 + 2.0 * 5f64.sqrt()).sqrt();
        for (s, r) in ico.directed_edges() {
            let length = chord_distance(ico.vertices[s as usize], ico.vertices[r as usize]);
            assert!((length - edge).abs() < 1e-14);
        }
        for pole in [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]] {
            let centred = ico.faces.iter().any(|&[a, b, c]| {
                let centroid = normalize(add(
                    add(ico.vertices[a as usize], ico.vertices[b as usize]),
                    ico.vertices[c as usize],
                ));
                dot(centroid, pole) > 1.0 - 1e-14
            });
            assert!(centred, "no face centred on {pole:?}");
        }
    }

    #[test]
    fn every_directed_edge_has_its_reverse_and_edges_are_sorted() {
        let mm = Multimesh::new(4).expect("valid level");
        let pairs: Vec<(u32, u32)> = mm
            .receivers()
            .iter()
            .zip(mm.senders())
            .map(|(&r, &s)| (r, s))
            .collect();
        assert!(
            pairs.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for &(r, s) in &pairs {
            assert_ne!(r, s, "self-loop");
            assert!(
                pairs.binary_search(&(s, r)).is_ok(),
                "missing reverse of {s}->{r}"
            );
        }
    }

    #[test]
    fn mean_edge_length_roughly_halves_per_level() {
        // Splitting an equilateral spherical triangle with edges of central angle θ: the half-edges
        // have chord 2 sin(θ/4), ratio 1 / (2 cos(θ/4)) to the parent's 2 sin(θ/2); the edges joining
        // two midpoints (a+b)/|a+b| and (b+c)/|b+c| have chord |a − c| / (2 cos(θ/2)), ratio
        // 1 / (2 cos(θ/2)). Half the new edges are of each kind, so from the icosahedron
        // (θ = 63.43°) the mean shrinks by exactly (1/cos(θ/4) + 1/cos(θ/2)) / 4 = 0.5538; both
        // ratios exceed 1/2 and fall towards it as θ shrinks, so later ratios decrease towards 0.5.
        let meshes = TriangularMesh::hierarchy(5);
        let mean_length = |mesh: &TriangularMesh| {
            let edges = undirected_edges(mesh);
            let total: f64 = edges
                .iter()
                .map(|&(a, b)| chord_distance(mesh.vertices[a as usize], mesh.vertices[b as usize]))
                .sum();
            total / edges.len() as f64
        };
        let means: Vec<f64> = meshes.iter().map(mean_length).collect();
        let ratios: Vec<f64> = means.windows(2).map(|pair| pair[1] / pair[0]).collect();
        let theta = 2.0 * (2.0 / (10.0 + 2.0 * 5f64.sqrt()).sqrt()).asin();
        let first = (1.0 / (theta / 4.0).cos() + 1.0 / (theta / 2.0).cos()) / 4.0;
        assert!((ratios[0] - first).abs() < 1e-12, "{ratios:?}");
        assert!(
            ratios.windows(2).all(|pair| pair[1] < pair[0]),
            "{ratios:?}"
        );
        assert!(ratios.iter().all(|&ratio| ratio > 0.5), "{ratios:?}");
        assert!(ratios[4] < 0.501, "{ratios:?}");
    }

    #[test]
    fn node_lat_lon_match_positions() {
        let mm = Multimesh::new(2).expect("valid level");
        for (k, &p) in mm.positions().iter().enumerate() {
            let q = crate::sphere::lat_lon_to_unit(mm.node_lat()[k], mm.node_lon()[k]);
            assert!(chord_distance(p, q) < 1e-14);
            assert!((0.0..360.0).contains(&mm.node_lon()[k]));
        }
    }
}

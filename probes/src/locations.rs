//! Places on the sphere shared by two models: the node of each node set nearest (by great-circle distance) to
//! each of a list of common points, with the distance reported. Two models' node 52 and token 52 are different
//! places; alignment pairs rows at the same place.
//!
//! Ties (several nodes equally near, as for a point in the middle of a lat/lon cell) go to the lowest node
//! index, so a matching is the same on every machine.

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use serde::Serialize;
use weatherlens_models::sphere::{Vec3, great_circle_distance, lat_lon_to_unit};

/// Relative slack under which two chord distances count as a tie.
const TIE_TOLERANCE: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocationError {
    #[error("{what}: no nodes to match against")]
    Empty { what: String },
    #[error("{what}: node_lat has {lat} values but node_lon has {lon}")]
    Lengths {
        what: String,
        lat: usize,
        lon: usize,
    },
    #[error(
        "{what}: coordinate {index} ({lat}, {lon}) is not a finite latitude in [-90, 90] and longitude"
    )]
    BadCoordinate {
        what: String,
        index: usize,
        lat: f64,
        lon: f64,
    },
    #[error("{what}: cannot index the nodes ({message})")]
    Index { what: String, message: String },
}

/// The nearest node to a point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Nearest {
    pub node: usize,
    /// Great-circle distance, degrees.
    pub distance_deg: f64,
}

/// A node set indexed for nearest-node queries.
pub struct NodeSet {
    positions: Vec<Vec3>,
    tree: ImmutableKdTree<f64, 3>,
}

impl std::fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeSet({} nodes)", self.positions.len())
    }
}

/// Unit vectors of (lat, lon) pairs in degrees, checked.
pub fn positions(what: &str, lat: &[f64], lon: &[f64]) -> Result<Vec<Vec3>, LocationError> {
    if lat.len() != lon.len() {
        return Err(LocationError::Lengths {
            what: what.to_string(),
            lat: lat.len(),
            lon: lon.len(),
        });
    }
    lat.iter()
        .zip(lon)
        .enumerate()
        .map(|(index, (&la, &lo))| {
            if la.is_finite() && lo.is_finite() && la.abs() <= 90.0 {
                Ok(lat_lon_to_unit(la, lo))
            } else {
                Err(LocationError::BadCoordinate {
                    what: what.to_string(),
                    index,
                    lat: la,
                    lon: lo,
                })
            }
        })
        .collect()
}

impl NodeSet {
    /// `what` names the node set in errors (a file and stage).
    pub fn new(what: &str, lat: &[f64], lon: &[f64]) -> Result<Self, LocationError> {
        let positions = positions(what, lat, lon)?;
        if positions.is_empty() {
            return Err(LocationError::Empty {
                what: what.to_string(),
            });
        }
        let tree =
            ImmutableKdTree::new_from_slice(&positions).map_err(|e| LocationError::Index {
                what: what.to_string(),
                message: format!("{e:?}"),
            })?;
        Ok(Self { positions, tree })
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The nearest node to `point` (a unit vector); ties to the lowest index.
    pub fn nearest_to(&self, point: Vec3) -> Nearest {
        let best = self
            .tree
            .query(&point)
            .nearest_one::<SquaredEuclidean<f64>>()
            .execute();
        let limit = best.distance * (1.0 + TIE_TOLERANCE) + 1e-24;
        let node = self
            .tree
            .query(&point)
            .within::<SquaredEuclidean<f64>>(limit)
            .unsorted()
            .execute()
            .into_iter()
            .map(|found| found.item as usize)
            .min()
            .unwrap_or(best.item as usize);
        Nearest {
            node,
            distance_deg: great_circle_distance(point, self.positions[node]).to_degrees(),
        }
    }

    /// The nearest node to each (lat, lon) point, in degrees.
    pub fn nearest(&self, lat: &[f64], lon: &[f64]) -> Result<Vec<Nearest>, LocationError> {
        let points = positions("points", lat, lon)?;
        Ok(points.par_iter().map(|&p| self.nearest_to(p)).collect())
    }
}

/// One common point and the node of each model nearest to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PointMatch {
    pub lat: f64,
    pub lon: f64,
    pub a: Nearest,
    pub b: Nearest,
}

/// Matches every common point (degrees) to its nearest node of `a` and of `b`.
pub fn match_points(
    lat: &[f64],
    lon: &[f64],
    a: &NodeSet,
    b: &NodeSet,
) -> Result<Vec<PointMatch>, LocationError> {
    let (near_a, near_b) = (a.nearest(lat, lon)?, b.nearest(lat, lon)?);
    Ok((0..lat.len())
        .map(|k| PointMatch {
            lat: lat[k],
            lon: lon[k],
            a: near_a[k],
            b: near_b[k],
        })
        .collect())
}

/// Summary of the matching distances, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MatchDistances {
    pub mean_deg: f64,
    pub max_deg: f64,
}

impl MatchDistances {
    pub fn of(distances: impl Iterator<Item = f64>) -> Self {
        let (sum, max, count) = distances.fold((0.0, 0.0f64, 0usize), |(s, m, c), d| {
            (s + d, m.max(d), c + 1)
        });
        Self {
            mean_deg: if count == 0 {
                f64::NAN
            } else {
                sum / count as f64
            },
            max_deg: max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regular grid of cell `step` degrees whose points sit at `offset` + k·step.
    fn grid(step: f64, lat_offset: f64, lon_offset: f64) -> (Vec<f64>, Vec<f64>) {
        let n_lat = (180.0 / step) as usize;
        let n_lon = (360.0 / step) as usize;
        let mut lat = Vec::new();
        let mut lon = Vec::new();
        for i in 0..n_lat {
            for j in 0..n_lon {
                lat.push(-90.0 + lat_offset + i as f64 * step);
                lon.push(lon_offset + j as f64 * step);
            }
        }
        (lat, lon)
    }

    #[test]
    fn grids_offset_by_half_a_cell_pair_each_point_with_its_nearest_and_report_the_distance() {
        // Grid A: 10° cells centred at -85, -75, ... in latitude and 5, 15, ... in longitude. Grid B: the
        // same shifted by half a cell in longitude only (0, 10, 20, ...): each A point lies midway between two
        // B points on its own parallel, at an arc distance of 2·asin(cos φ · sin 2.5°). Ties go to the lower
        // index, which is the western neighbour (longitude 10·j), except at j = 35 where the eastern one is
        // node 0 of that row.
        let (lat_a, lon_a) = grid(10.0, 5.0, 5.0);
        let (lat_b, lon_b) = grid(10.0, 5.0, 0.0);
        let a = NodeSet::new("A", &lat_a, &lon_a).unwrap();
        let b = NodeSet::new("B", &lat_b, &lon_b).unwrap();
        let matched = match_points(&lat_a, &lon_a, &a, &b).unwrap();
        for (k, m) in matched.iter().enumerate() {
            assert_eq!(m.a.node, k);
            assert!(m.a.distance_deg < 1e-6);
            let (row, column) = (k / 36, k % 36);
            let expected_node = row * 36 + if column == 35 { 0 } else { column };
            assert_eq!(
                m.b.node, expected_node,
                "point {k} at ({}, {})",
                m.lat, m.lon
            );
            let phi = m.lat.to_radians();
            let expected = 2.0 * (phi.cos() * 2.5f64.to_radians().sin()).asin();
            assert!(
                (m.b.distance_deg - expected.to_degrees()).abs() < 1e-9,
                "{}",
                m.b.distance_deg
            );
        }
        // Offset by half a cell in both directions (grid C at 10° multiples, its pole row left out): the
        // nearest node agrees with a brute-force search, and no point is farther than half a cell diagonal.
        let (lat_c, lon_c) = grid(10.0, 0.0, 0.0);
        let (lat_c, lon_c) = (&lat_c[36..], &lon_c[36..]);
        let c = NodeSet::new("C", lat_c, lon_c).unwrap();
        let near = c.nearest(&lat_a, &lon_a).unwrap();
        let c_positions = positions("C", lat_c, lon_c).unwrap();
        for (k, n) in near.iter().enumerate() {
            let p = lat_lon_to_unit(lat_a[k], lon_a[k]);
            let brute = c_positions
                .iter()
                .map(|&q| great_circle_distance(p, q))
                .fold(f64::INFINITY, f64::min);
            assert!(
                (n.distance_deg - brute.to_degrees()).abs() < 1e-9,
                "point {k}"
            );
            assert!((great_circle_distance(p, c_positions[n.node]) - brute).abs() < 1e-12);
            assert!(
                n.distance_deg <= 7.08,
                "half the diagonal of a 10° cell at most"
            );
        }
        let summary = MatchDistances::of(matched.iter().map(|m| m.b.distance_deg));
        assert!(
            (summary.max_deg
                - 2.0
                    * (5f64.to_radians().cos() * 2.5f64.to_radians().sin())
                        .asin()
                        .to_degrees())
            .abs()
                < 1e-9
        );
    }

    #[test]
    fn bad_coordinates_are_named() {
        assert!(matches!(
            NodeSet::new("x", &[0.0, 91.0], &[0.0, 0.0]),
            Err(LocationError::BadCoordinate { index: 1, .. })
        ));
        assert!(matches!(
            NodeSet::new("x", &[0.0], &[0.0, 1.0]),
            Err(LocationError::Lengths { .. })
        ));
        assert!(matches!(
            NodeSet::new("x", &[], &[]),
            Err(LocationError::Empty { .. })
        ));
    }
}

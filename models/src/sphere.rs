//! Geometry on the unit sphere: latitude/longitude <-> 3-D unit vectors, distances, and the rotation
//! GraphCast uses to express an edge in its receiver's local frame.
//!
//! Convention: x points to (lat 0, lon 0), y to (lat 0, lon 90° E), z to the north pole. Latitude and
//! longitude are in degrees everywhere in the public API.

/// A point or displacement in 3-D space: [x, y, z].
pub type Vec3 = [f64; 3];

/// A 3x3 matrix, row-major: `m[row][column]`.
pub type Mat3 = [[f64; 3]; 3];

/// The reference point every receiver is rotated to for edge features: (lat 0, lon 0).
pub const REFERENCE_POINT: Vec3 = [1.0, 0.0, 0.0];

/// Unit vector of the point at `lat_deg` north, `lon_deg` east.
pub fn lat_lon_to_unit(lat_deg: f64, lon_deg: f64) -> Vec3 {
    let (sin_lat, cos_lat) = lat_deg.to_radians().sin_cos();
    let (sin_lon, cos_lon) = lon_deg.to_radians().sin_cos();
    [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat]
}

/// (latitude, longitude) in degrees of the direction of `v` (need not be unit length, must be non-zero).
///
/// Longitude is in [0, 360), matching the ERA5 layout; at the poles, where longitude is undefined, it is 0.
pub fn unit_to_lat_lon(v: Vec3) -> (f64, f64) {
    let horizontal = v[0].hypot(v[1]);
    let lat = v[2].atan2(horizontal).to_degrees();
    if horizontal == 0.0 {
        return (lat, 0.0);
    }
    let mut lon = v[1].atan2(v[0]).to_degrees();
    if lon < 0.0 {
        lon += 360.0;
    }
    // -tiny + 360 rounds to 360, which is the same meridian as 0.
    if lon >= 360.0 {
        lon = 0.0;
    }
    (lat, lon)
}

/// a + b.
pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// a - b.
pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// s · a.
pub fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// Dot product a · b.
pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Cross product a × b.
pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Euclidean length |a|.
pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// a / |a| (a must be non-zero).
pub fn normalize(a: Vec3) -> Vec3 {
    scale(a, 1.0 / norm(a))
}

/// Triple product det[a, b, c] = a · (b × c): six times the signed volume of the tetrahedron
/// (0, a, b, c); positive when a, b, c run counter-clockwise seen from outside the sphere.
pub fn triple_product(a: Vec3, b: Vec3, c: Vec3) -> f64 {
    dot(a, cross(b, c))
}

/// Straight-line (chord) distance |a − b|; on the unit sphere, 2 sin(θ/2) for central angle θ.
pub fn chord_distance(a: Vec3, b: Vec3) -> f64 {
    norm(sub(a, b))
}

/// Great-circle distance in radians between the directions of `a` and `b` (the central angle).
///
/// Uses atan2(|a × b|, a · b), which stays accurate for nearly equal and nearly antipodal points,
/// unlike acos of the dot product.
pub fn great_circle_distance(a: Vec3, b: Vec3) -> f64 {
    norm(cross(a, b)).atan2(dot(a, b))
}

/// m · v.
pub fn mat_vec(m: &Mat3, v: Vec3) -> Vec3 {
    [dot(m[0], v), dot(m[1], v), dot(m[2], v)]
}

/// The rotation that carries the point (`lat_deg`, `lon_deg`) to [`REFERENCE_POINT`] (lat 0, lon 0).
///
/// As in GraphCast (`model_utils.get_rotation_matrices_to_local_coordinates`): first a rotation about
/// z by −lon (the point moves to longitude 0), then about y by +lat (it moves down to the equator).
/// The rows of the matrix are the point's local radial (up), east and north unit vectors, so a
/// displacement `d` maps to (radial, eastward, northward) components. Longitude matters even at a
/// pole, where it fixes which way "east" points.
pub fn rotation_to_reference(lat_deg: f64, lon_deg: f64) -> Mat3 {
    let (sin_lat, cos_lat) = lat_deg.to_radians().sin_cos();
    let (sin_lon, cos_lon) = lon_deg.to_radians().sin_cos();
    [
        [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat],
        [-sin_lon, cos_lon, 0.0],
        [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-14;

    fn assert_vec_close(a: Vec3, b: Vec3, tol: f64) {
        for k in 0..3 {
            assert!((a[k] - b[k]).abs() <= tol, "{a:?} != {b:?}");
        }
    }

    /// Points spread over the sphere, poles and the date line included.
    fn sample_lat_lon() -> Vec<(f64, f64)> {
        let mut points = vec![(90.0, 0.0), (-90.0, 0.0), (0.0, 0.0), (0.0, 180.0)];
        for i in 0..13 {
            for j in 0..17 {
                points.push((-84.0 + 14.0 * i as f64, 3.0 + 21.0 * j as f64));
            }
        }
        points
    }

    #[test]
    fn lat_lon_to_unit_known_points() {
        assert_vec_close(lat_lon_to_unit(0.0, 0.0), [1.0, 0.0, 0.0], TOL);
        assert_vec_close(lat_lon_to_unit(0.0, 90.0), [0.0, 1.0, 0.0], TOL);
        assert_vec_close(lat_lon_to_unit(90.0, 123.0), [0.0, 0.0, 1.0], TOL);
        assert_vec_close(lat_lon_to_unit(-90.0, 0.0), [0.0, 0.0, -1.0], TOL);
        let half = 0.5f64.sqrt();
        assert_vec_close(lat_lon_to_unit(45.0, 180.0), [-half, 0.0, half], TOL);
    }

    #[test]
    fn lat_lon_round_trip() {
        for (lat, lon) in sample_lat_lon() {
            let v = lat_lon_to_unit(lat, lon);
            assert!((norm(v) - 1.0).abs() < TOL);
            let (lat2, lon2) = unit_to_lat_lon(v);
            assert!((lat - lat2).abs() < 1e-12, "lat {lat} -> {lat2}");
            if lat.abs() < 90.0 {
                assert!((lon - lon2).abs() < 1e-12, "lon {lon} -> {lon2}");
            }
        }
        // Negative longitudes come back in [0, 360).
        let (_, lon) = unit_to_lat_lon(lat_lon_to_unit(10.0, -30.0));
        assert!((lon - 330.0).abs() < 1e-12);
        assert_eq!(unit_to_lat_lon([0.0, 0.0, 2.0]), (90.0, 0.0));
    }

    #[test]
    fn distances_known_values() {
        let x = [1.0, 0.0, 0.0];
        let y = [0.0, 1.0, 0.0];
        assert!((chord_distance(x, y) - 2f64.sqrt()).abs() < TOL);
        assert!((great_circle_distance(x, y) - std::f64::consts::FRAC_PI_2).abs() < TOL);
        assert!((great_circle_distance(x, [-1.0, 0.0, 0.0]) - std::f64::consts::PI).abs() < TOL);
        // Chord = 2 sin(θ/2) for every pair; a tiny angle keeps its precision.
        for theta in [1e-9f64, 0.1, 1.0, 3.0] {
            let p = [theta.cos(), theta.sin(), 0.0];
            assert!((great_circle_distance(x, p) - theta).abs() < 1e-15 * theta.max(1.0) * 4.0);
            assert!((chord_distance(x, p) - 2.0 * (theta / 2.0).sin()).abs() < 1e-15);
        }
    }

    #[test]
    fn triple_product_orientation() {
        let (x, y, z) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]);
        assert_eq!(triple_product(x, y, z), 1.0);
        assert_eq!(triple_product(y, x, z), -1.0);
        assert_eq!(cross(x, y), z);
    }

    #[test]
    fn rotation_sends_point_to_reference_and_is_orthonormal() {
        for (lat, lon) in sample_lat_lon() {
            let r = rotation_to_reference(lat, lon);
            let p = lat_lon_to_unit(lat, lon);
            assert_vec_close(mat_vec(&r, p), REFERENCE_POINT, 1e-15);
            // Orthonormal rows, determinant +1 (a rotation, not a reflection).
            for i in 0..3 {
                for j in 0..3 {
                    let expected = if i == j { 1.0 } else { 0.0 };
                    assert!((dot(r[i], r[j]) - expected).abs() < 1e-15);
                }
            }
            assert!((triple_product(r[0], r[1], r[2]) - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn rotation_preserves_lengths_and_angles() {
        let points = sample_lat_lon();
        for (k, &(lat, lon)) in points.iter().enumerate() {
            let r = rotation_to_reference(lat, lon);
            let (lat_b, lon_b) = points[(k * 7 + 3) % points.len()];
            let (lat_c, lon_c) = points[(k * 11 + 5) % points.len()];
            let b = scale(lat_lon_to_unit(lat_b, lon_b), 1.7);
            let c = lat_lon_to_unit(lat_c, lon_c);
            assert!((norm(mat_vec(&r, b)) - norm(b)).abs() < 1e-14);
            assert!((dot(mat_vec(&r, b), mat_vec(&r, c)) - dot(b, c)).abs() < 1e-14);
        }
    }

    #[test]
    fn rotation_rows_are_up_east_north() {
        // At (0, 90): up = +y, east = -x, north = +z.
        let r = rotation_to_reference(0.0, 90.0);
        assert_vec_close(r[0], [0.0, 1.0, 0.0], TOL);
        assert_vec_close(r[1], [-1.0, 0.0, 0.0], TOL);
        assert_vec_close(r[2], [0.0, 0.0, 1.0], TOL);
        // A small step east of (30, 40) has a positive second component only.
        let p = lat_lon_to_unit(30.0, 40.0);
        let q = lat_lon_to_unit(30.0, 40.001);
        let d = mat_vec(&rotation_to_reference(30.0, 40.0), sub(q, p));
        assert!(d[1] > 0.0 && d[1].abs() > 1e3 * d[2].abs() && d[1].abs() > 1e3 * d[0].abs());
    }
}

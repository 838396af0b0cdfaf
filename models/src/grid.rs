//! Regular latitude/longitude grids: the nodes the data lives on.
//!
//! Points are flattened row-major, `index = i_lat * n_lon + i_lon`, the order of a `[lat, lon]`
//! array, so a field read from a file maps onto grid nodes without reordering.

use thiserror::Error;

use crate::sphere::{Vec3, lat_lon_to_unit};

/// Which axis of a grid a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Latitude,
    Longitude,
}

impl std::fmt::Display for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Axis::Latitude => "latitude",
            Axis::Longitude => "longitude",
        })
    }
}

/// Coordinates a caller can get wrong.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GridError {
    #[error("the {axis} axis is empty")]
    Empty { axis: Axis },
    #[error("{axis}[{index}] = {value} is not finite")]
    NotFinite {
        axis: Axis,
        index: usize,
        value: f64,
    },
    #[error("{axis}[{index}] = {value} is outside {min}..={max} degrees")]
    OutOfRange {
        axis: Axis,
        index: usize,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error(
        "{axis} is not strictly monotonic at index {index} ({previous} then {value}); latitude may \
         ascend or descend, longitude must ascend"
    )]
    NotMonotonic {
        axis: Axis,
        index: usize,
        previous: f64,
        value: f64,
    },
    #[error("longitude spans {span} degrees; a grid must not repeat a meridian (span < 360)")]
    LongitudeWraps { span: f64 },
    #[error("an equiangular grid including both poles needs at least 2 latitudes, got {n_lat}")]
    TooFewLatitudes { n_lat: usize },
    #[error("{n_lat} x {n_lon} grid points do not fit in u32 node indices")]
    TooManyPoints { n_lat: usize, n_lon: usize },
}

/// Whether an equiangular grid has rows on the poles (ERA5 1°: 181 rows) or offset half a step from
/// them (WeatherBench 5.625°: 32 rows at ±87.1875, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoleRows {
    Included,
    Excluded,
}

/// The order of the latitude rows: ERA5 files run north to south, WeatherBench files south to north.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatitudeOrder {
    Ascending,
    Descending,
}

/// A latitude/longitude grid (degrees), validated: latitudes strictly monotonic in [-90, 90],
/// longitudes strictly increasing in [-180, 360] spanning less than a full turn.
#[derive(Debug, Clone, PartialEq)]
pub struct LatLonGrid {
    lat: Vec<f64>,
    lon: Vec<f64>,
}

impl LatLonGrid {
    /// An equiangular global grid: `n_lon` meridians at 0, 360/n_lon, ... and `n_lat` rows either
    /// from pole to pole or at the centres of `n_lat` equal bands.
    pub fn equiangular(
        n_lat: usize,
        n_lon: usize,
        poles: PoleRows,
        order: LatitudeOrder,
    ) -> Result<Self, GridError> {
        if poles == PoleRows::Included && n_lat == 1 {
            return Err(GridError::TooFewLatitudes { n_lat });
        }
        let mut lat: Vec<f64> = (0..n_lat)
            .map(|i| match poles {
                PoleRows::Included => -90.0 + 180.0 * i as f64 / (n_lat - 1) as f64,
                PoleRows::Excluded => -90.0 + 180.0 * (i as f64 + 0.5) / n_lat as f64,
            })
            .collect();
        if order == LatitudeOrder::Descending {
            lat.reverse();
        }
        let lon = (0..n_lon)
            .map(|j| 360.0 * j as f64 / n_lon as f64)
            .collect();
        Self::from_coordinates(lat, lon)
    }

    /// A grid from coordinate vectors as read from a file, after checking they describe one.
    pub fn from_coordinates(lat: Vec<f64>, lon: Vec<f64>) -> Result<Self, GridError> {
        check_axis(Axis::Latitude, &lat, -90.0, 90.0)?;
        check_axis(Axis::Longitude, &lon, -180.0, 360.0)?;
        let descending = lat.len() > 1 && lat[1] < lat[0];
        check_strictly_monotonic(Axis::Latitude, &lat, descending)?;
        check_strictly_monotonic(Axis::Longitude, &lon, false)?;
        let span = lon[lon.len() - 1] - lon[0];
        if span >= 360.0 {
            return Err(GridError::LongitudeWraps { span });
        }
        if lat
            .len()
            .checked_mul(lon.len())
            .is_none_or(|points| points > u32::MAX as usize)
        {
            return Err(GridError::TooManyPoints {
                n_lat: lat.len(),
                n_lon: lon.len(),
            });
        }
        Ok(Self { lat, lon })
    }

    /// [lat] latitudes, degrees, in file order.
    pub fn lat(&self) -> &[f64] {
        &self.lat
    }

    /// [lon] longitudes, degrees, increasing.
    pub fn lon(&self) -> &[f64] {
        &self.lon
    }

    pub fn n_lat(&self) -> usize {
        self.lat.len()
    }

    pub fn n_lon(&self) -> usize {
        self.lon.len()
    }

    /// n_lat · n_lon.
    pub fn num_points(&self) -> usize {
        self.lat.len() * self.lon.len()
    }

    /// (latitude, longitude) in degrees of flat point `index` (= i_lat * n_lon + i_lon).
    /// Panics if `index >= num_points()`, like slice indexing.
    pub fn lat_lon(&self, index: usize) -> (f64, f64) {
        let n_lon = self.lon.len();
        (self.lat[index / n_lon], self.lon[index % n_lon])
    }

    /// Unit vector of flat point `index`. Panics if `index >= num_points()`.
    pub fn position(&self, index: usize) -> Vec3 {
        let (lat, lon) = self.lat_lon(index);
        lat_lon_to_unit(lat, lon)
    }

    /// [lat * lon, 3] unit vectors of all points, in flat order.
    pub fn positions(&self) -> Vec<Vec3> {
        (0..self.num_points()).map(|k| self.position(k)).collect()
    }

    /// [lat] area weight of each row, ∝ cos(lat) and normalised to mean 1 over rows (hence over all
    /// points), as in WeatherBench (Rasp et al. 2020) and the GraphCast loss. Pole rows get ~0.
    pub fn latitude_weights(&self) -> Vec<f64> {
        let cosines: Vec<f64> = self.lat.iter().map(|lat| lat.to_radians().cos()).collect();
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        cosines.iter().map(|c| c / mean).collect()
    }
}

fn check_axis(axis: Axis, values: &[f64], min: f64, max: f64) -> Result<(), GridError> {
    if values.is_empty() {
        return Err(GridError::Empty { axis });
    }
    for (index, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(GridError::NotFinite { axis, index, value });
        }
        if !(min..=max).contains(&value) {
            return Err(GridError::OutOfRange {
                axis,
                index,
                value,
                min,
                max,
            });
        }
    }
    Ok(())
}

fn check_strictly_monotonic(axis: Axis, values: &[f64], descending: bool) -> Result<(), GridError> {
    for (k, pair) in values.windows(2).enumerate() {
        let ordered = if descending {
            pair[1] < pair[0]
        } else {
            pair[1] > pair[0]
        };
        if !ordered {
            return Err(GridError::NotMonotonic {
                axis,
                index: k + 1,
                previous: pair[0],
                value: pair[1],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weatherbench_5625_grid_excludes_poles() {
        let grid =
            LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap();
        assert_eq!(grid.num_points(), 2048);
        assert_eq!(grid.lat()[0], -87.1875);
        assert_eq!(grid.lat()[31], 87.1875);
        assert_eq!(grid.lat()[16], 2.8125);
        assert_eq!(&grid.lon()[..3], &[0.0, 5.625, 11.25]);
        assert_eq!(grid.lon()[63], 354.375);
    }

    #[test]
    fn era5_one_degree_grid_includes_poles_descending() {
        let grid = LatLonGrid::equiangular(181, 360, PoleRows::Included, LatitudeOrder::Descending)
            .unwrap();
        assert_eq!(grid.num_points(), 65160);
        assert_eq!(grid.lat()[0], 90.0);
        assert_eq!(grid.lat()[90], 0.0);
        assert_eq!(grid.lat()[180], -90.0);
        assert_eq!(grid.lon()[359], 359.0);
    }

    #[test]
    fn flat_index_is_row_major() {
        let grid =
            LatLonGrid::equiangular(4, 8, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        // Row 2 (lat -22.5), column 3 (lon 135).
        assert_eq!(grid.lat_lon(2 * 8 + 3), (-22.5, 135.0));
        let p = grid.position(2 * 8 + 3);
        let (s, c) = (22.5f64.to_radians().sin(), 22.5f64.to_radians().cos());
        let half = 0.5f64.sqrt();
        let expected = [-c * half, c * half, -s];
        for k in 0..3 {
            assert!((p[k] - expected[k]).abs() < 1e-15);
        }
        assert_eq!(grid.positions().len(), 32);
    }

    #[test]
    fn latitude_weights_are_cosine_with_mean_one() {
        let grid =
            LatLonGrid::equiangular(3, 4, PoleRows::Included, LatitudeOrder::Ascending).unwrap();
        // cos(-90), cos(0), cos(90) = 0, 1, 0 -> mean 1/3 -> weights 0, 3, 0.
        let w = grid.latitude_weights();
        assert!(w[0].abs() < 1e-15 && w[2].abs() < 1e-15);
        assert!((w[1] - 3.0).abs() < 1e-15);
        let grid =
            LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap();
        let w = grid.latitude_weights();
        assert!((w.iter().sum::<f64>() / 32.0 - 1.0).abs() < 1e-14);
        // Symmetric about the equator; ratio equals the cosine ratio.
        assert!((w[0] - w[31]).abs() < 1e-15);
        let expected = 87.1875f64.to_radians().cos() / 2.8125f64.to_radians().cos();
        assert!((w[0] / w[16] - expected).abs() < 1e-14);
    }

    #[test]
    fn from_coordinates_accepts_either_latitude_order() {
        assert!(LatLonGrid::from_coordinates(vec![-10.0, 0.0, 10.0], vec![0.0, 90.0]).is_ok());
        assert!(LatLonGrid::from_coordinates(vec![10.0, 0.0, -10.0], vec![-90.0, 90.0]).is_ok());
        assert!(LatLonGrid::from_coordinates(vec![45.0], vec![0.0]).is_ok());
    }

    #[test]
    fn from_coordinates_rejects_non_monotone_input() {
        assert_eq!(
            LatLonGrid::from_coordinates(vec![-10.0, 0.0, -5.0], vec![0.0]),
            Err(GridError::NotMonotonic {
                axis: Axis::Latitude,
                index: 2,
                previous: 0.0,
                value: -5.0
            })
        );
        assert!(matches!(
            LatLonGrid::from_coordinates(vec![0.0, 0.0], vec![0.0]),
            Err(GridError::NotMonotonic {
                axis: Axis::Latitude,
                ..
            })
        ));
        assert!(matches!(
            LatLonGrid::from_coordinates(vec![0.0], vec![0.0, 10.0, 10.0]),
            Err(GridError::NotMonotonic {
                axis: Axis::Longitude,
                index: 2,
                ..
            })
        ));
        assert!(matches!(
            LatLonGrid::from_coordinates(vec![0.0], vec![350.0, 0.0]),
            Err(GridError::NotMonotonic {
                axis: Axis::Longitude,
                ..
            })
        ));
    }

    #[test]
    fn from_coordinates_rejects_bad_ranges() {
        assert!(matches!(
            LatLonGrid::from_coordinates(vec![0.0, 91.0], vec![0.0]),
            Err(GridError::OutOfRange {
                axis: Axis::Latitude,
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            LatLonGrid::from_coordinates(vec![0.0], vec![0.0, 361.0]),
            Err(GridError::OutOfRange {
                axis: Axis::Longitude,
                ..
            })
        ));
        assert!(matches!(
            LatLonGrid::from_coordinates(vec![f64::NAN], vec![0.0]),
            Err(GridError::NotFinite { .. })
        ));
        assert_eq!(
            LatLonGrid::from_coordinates(vec![], vec![0.0]),
            Err(GridError::Empty {
                axis: Axis::Latitude
            })
        );
        assert_eq!(
            LatLonGrid::from_coordinates(vec![0.0], vec![0.0, 180.0, 360.0]),
            Err(GridError::LongitudeWraps { span: 360.0 })
        );
        assert_eq!(
            LatLonGrid::equiangular(1, 4, PoleRows::Included, LatitudeOrder::Ascending),
            Err(GridError::TooFewLatitudes { n_lat: 1 })
        );
        assert!(matches!(
            LatLonGrid::equiangular(0, 4, PoleRows::Excluded, LatitudeOrder::Ascending),
            Err(GridError::Empty { .. })
        ));
    }
}

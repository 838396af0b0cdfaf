//! One grid orientation for every source: latitude 90 -> -90 (north first, as in ERA5) and longitude ascending
//! in [0, 360).
//!
//! Files come with latitude in either order (WeatherBench ascending, ERA5 descending) and longitude in 0..360
//! or -180..180. Readers compute an [`Orientation`] once from the file's coordinates and apply it to every field,
//! so all datasets downstream share one layout and can be compared point by point.

/// How to map a field stored in file order to the normalised orientation.
#[derive(Debug, Clone, PartialEq)]
pub struct Orientation {
    /// Normalised latitudes, strictly decreasing.
    pub lat: Vec<f64>,
    /// Normalised longitudes in [0, 360), strictly increasing.
    pub lon: Vec<f64>,
    /// `lat_source[i]`: index in the file of normalised latitude row `i`.
    pub lat_source: Vec<usize>,
    /// `lon_source[j]`: index in the file of normalised longitude column `j`.
    pub lon_source: Vec<usize>,
    /// True when the file's latitudes were ascending and have been reversed.
    pub lat_reversed: bool,
    /// True when longitudes were shifted into [0, 360) and/or rotated to start at the smallest one.
    pub lon_rewrapped: bool,
}

/// Why coordinates cannot be put into the normalised orientation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrientationError {
    #[error("latitudes must be present, strictly monotonic, finite and within [-90, 90]")]
    Latitude,
    #[error(
        "longitudes must be present, finite and, once wrapped into [0, 360), strictly increasing around the circle \
         (a duplicated 0/360 column is not allowed)"
    )]
    Longitude,
}

impl Orientation {
    /// Works out the mapping for the file's coordinates.
    ///
    /// lat: [lat] degrees in file order; lon: [lon] degrees in file order.
    pub fn from_file_coordinates(lat: &[f64], lon: &[f64]) -> Result<Self, OrientationError> {
        if lat.is_empty() || lat.iter().any(|l| !l.is_finite() || l.abs() > 90.0) {
            return Err(OrientationError::Latitude);
        }
        let descending = lat.windows(2).all(|w| w[0] > w[1]);
        let ascending = lat.windows(2).all(|w| w[0] < w[1]);
        let lat_reversed = ascending && !descending;
        if !descending && !ascending {
            return Err(OrientationError::Latitude);
        }
        let lat_source: Vec<usize> = if lat_reversed {
            (0..lat.len()).rev().collect()
        } else {
            (0..lat.len()).collect()
        };

        if lon.is_empty() || lon.iter().any(|l| !l.is_finite()) {
            return Err(OrientationError::Longitude);
        }
        let wrapped: Vec<f64> = lon.iter().map(|l| l.rem_euclid(360.0)).collect();
        let start = (0..wrapped.len())
            .min_by(|&a, &b| wrapped[a].total_cmp(&wrapped[b]))
            .unwrap_or(0);
        let lon_source: Vec<usize> = (0..wrapped.len())
            .map(|j| (start + j) % wrapped.len())
            .collect();
        let lon_normalised: Vec<f64> = lon_source.iter().map(|&j| wrapped[j]).collect();
        if lon_normalised.windows(2).any(|w| w[0] >= w[1]) {
            return Err(OrientationError::Longitude);
        }
        let lon_rewrapped = start != 0 || wrapped.iter().zip(lon).any(|(w, l)| w != l);
        Ok(Self {
            lat: lat_source.iter().map(|&i| lat[i]).collect(),
            lon: lon_normalised,
            lat_source,
            lon_source,
            lat_reversed,
            lon_rewrapped,
        })
    }

    /// True when fields can be copied as stored.
    pub fn is_identity(&self) -> bool {
        !self.lat_reversed && self.lon_source.iter().enumerate().all(|(j, &s)| j == s)
    }

    /// A sentence for logs saying what was changed, or `None` when nothing was.
    pub fn describe(&self) -> Option<String> {
        let mut changes = Vec::new();
        if self.lat_reversed {
            changes.push("latitude reversed to run 90 -> -90".to_string());
        }
        if self.lon_rewrapped {
            changes.push("longitude wrapped into [0, 360) ascending".to_string());
        }
        (!changes.is_empty()).then(|| changes.join("; "))
    }

    /// Copies one field into the normalised orientation.
    ///
    /// field: [lat, lon] in file order -> out: [lat, lon] normalised (both row-major, same length).
    pub fn apply<T: Copy>(&self, field: &[T], out: &mut [T]) {
        let width = self.lon_source.len();
        for (row_out, &row_in) in out.chunks_exact_mut(width).zip(&self.lat_source) {
            let source = &field[row_in * width..(row_in + 1) * width];
            for (value, &column) in row_out.iter_mut().zip(&self.lon_source) {
                *value = source[column];
            }
        }
    }

    /// The file's (row, column) of normalised grid point (i, j), to report where a bad value was found.
    pub fn file_index(&self, i: usize, j: usize) -> (usize, usize) {
        (self.lat_source[i], self.lon_source[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era5_orientation_is_left_alone() {
        let o = Orientation::from_file_coordinates(&[90.0, 0.0, -90.0], &[0.0, 90.0, 180.0, 270.0])
            .unwrap();
        assert!(o.is_identity());
        assert_eq!(o.describe(), None);
    }

    #[test]
    fn ascending_latitude_and_signed_longitude_are_normalised() {
        // File grid: lat [-45, 45], lon [-180, -90, 0, 90]; value = 10 * lat_index + lon_index.
        let lat = [-45.0, 45.0];
        let lon = [-180.0, -90.0, 0.0, 90.0];
        let field: Vec<f64> = (0..2)
            .flat_map(|i| (0..4).map(move |j| (10 * i + j) as f64))
            .collect();
        let o = Orientation::from_file_coordinates(&lat, &lon).unwrap();
        assert_eq!(o.lat, vec![45.0, -45.0]);
        assert_eq!(o.lon, vec![0.0, 90.0, 180.0, 270.0]);
        assert!(o.lat_reversed && o.lon_rewrapped);
        let mut out = vec![0.0; 8];
        o.apply(&field, &mut out);
        // Row 0 is the file's lat index 1; columns start at the file's lon index 2 (0 degrees).
        assert_eq!(out, vec![12.0, 13.0, 10.0, 11.0, 2.0, 3.0, 0.0, 1.0]);
        assert_eq!(o.file_index(0, 0), (1, 2));
    }

    #[test]
    fn bad_coordinates_are_refused() {
        assert_eq!(
            Orientation::from_file_coordinates(&[0.0, 10.0, 5.0], &[0.0]),
            Err(OrientationError::Latitude)
        );
        assert_eq!(
            Orientation::from_file_coordinates(&[95.0, 0.0], &[0.0]),
            Err(OrientationError::Latitude)
        );
        assert_eq!(
            Orientation::from_file_coordinates(&[0.0], &[0.0, 180.0, 360.0]),
            Err(OrientationError::Longitude)
        );
        assert_eq!(
            Orientation::from_file_coordinates(&[0.0], &[0.0, 270.0, 180.0]),
            Err(OrientationError::Longitude)
        );
        assert_eq!(
            Orientation::from_file_coordinates(&[], &[0.0]),
            Err(OrientationError::Latitude)
        );
        assert_eq!(
            Orientation::from_file_coordinates(&[0.0], &[]),
            Err(OrientationError::Longitude)
        );
    }
}

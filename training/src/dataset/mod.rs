//! One in-memory dataset type that every source (ERA5 NetCDF, WeatherBench, the built-in atmosphere) produces.

/// One channel of a dataset: a variable at one level (or a surface variable).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Channel {
    /// Channel name used everywhere downstream, e.g. `z500`, `t850`, `u500` (short name + level in hPa).
    pub name: String,
    /// Variable short name in the file, e.g. `z`.
    pub variable: String,
    /// Pressure level in hPa, `None` for single-level variables.
    pub level: Option<f64>,
    /// CF units string, e.g. `m**2 s**-2`.
    pub units: String,
}

/// Gridded fields on a regular lat-lon grid.
///
/// `data`: [time, channel, lat, lon] row-major, f32, physical units (packing already undone).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub channels: Vec<Channel>,
    /// Latitudes in degrees, in the order stored in `data` (either 90 -> -90 or ascending).
    pub lat: Vec<f64>,
    /// Longitudes in degrees, in the order stored in `data`.
    pub lon: Vec<f64>,
    /// Valid times as hours since 1970-01-01T00:00:00Z.
    pub time_hours: Vec<i64>,
    pub data: Vec<f32>,
}

impl Dataset {
    /// Number of values in one time slice: channels × lat × lon.
    pub fn frame_len(&self) -> usize {
        self.channels.len() * self.lat.len() * self.lon.len()
    }

    /// The fields at time index `t`: [channel, lat, lon].
    pub fn frame(&self, t: usize) -> &[f32] {
        let n = self.frame_len();
        &self.data[t * n..(t + 1) * n]
    }
}

//! TOA incident solar radiation as GraphCast computes it when a file lacks it (`solar_radiation.py`
//! `get_toa_incident_solar_radiation`, ERA5's `tisr`): the instantaneous flux integrated over the hour ending at
//! each time, J m⁻², by the trapezoid rule over 361 samples 10 s apart.
//!
//! GraphCast runs this in f32 JAX. What matters at the 1e-5 level is that the days since J2000 of the time,
//! and of each sample (the time plus an offset in days), are f32 numbers: from 2016 on their spacing is 2⁻¹¹ to
//! 2⁻¹⁰ day (42 to 84 s), so the samples sit on that lattice, not 10 s apart. An f64 implementation misses
//! GraphCast's values by up to 2.3e-5 of the maximum in 2022 (graphcast-spec §7.2). Here the days since J2000
//! and the samples are rounded as GraphCast rounds them and everything after is f64 (agreement ~1e-6).

use rayon::prelude::*;

/// solar_radiation.py `_J2000_EPOCH` (Julian date of 2000-01-01T12:00).
const J2000_EPOCH: f64 = 2_451_545.0;
/// Julian date of 1970-01-01T00:00:00Z.
const UNIX_EPOCH_JULIAN_DATE: f64 = 2_440_587.5;
/// solar_radiation.py `_JULIAN_YEAR_LENGTH_IN_DAYS`.
const JULIAN_YEAR_DAYS: f64 = 365.25;
/// solar_radiation.py `_DEFAULT_NUM_INTEGRATION_BINS` over `_DEFAULT_INTEGRATION_PERIOD` (1 h).
const BINS: usize = 360;
const PERIOD_SECONDS: i64 = 3600;
/// Angle between Earth's rotational and orbital axes, radians (`repsm`).
const OBLIQUITY: f64 = 0.409093;

/// solar_radiation.py `era5_tsi_data`: yearly TSI (W m⁻²) at the middle of 1951..2034 as used for ERA5 (IFS
/// cycle 41r2), before the 0.9965 scaling; 1996-2008 repeats as a 13-year cycle.
const TSI_FIRST_YEAR: f64 = 1951.5;
const TSI_SCALE: f64 = 0.9965;
const TSI_1951_1995: [f64; 45] = [
    1365.7765, 1365.7676, 1365.6284, 1365.6564, 1365.7773, 1366.3109, 1366.6681, 1366.6328,
    1366.3828, 1366.2767, 1365.9199, 1365.7484, 1365.6963, 1365.6976, 1365.7341, 1365.9178,
    1366.1143, 1366.1644, 1366.2476, 1366.2426, 1365.9580, 1366.0525, 1365.7991, 1365.7271,
    1365.5345, 1365.6453, 1365.8331, 1366.2747, 1366.6348, 1366.6482, 1366.6951, 1366.2859,
    1366.1992, 1365.8103, 1365.6416, 1365.6379, 1365.7899, 1366.0826, 1366.6479, 1366.5533,
    1366.4457, 1366.3021, 1366.0286, 1365.7971, 1365.6996,
];
const TSI_CYCLE: [f64; 13] = [
    1365.6121, 1365.7399, 1366.1021, 1366.3851, 1366.6836, 1366.6022, 1366.6807, 1366.2300,
    1366.0480, 1365.8545, 1365.8107, 1365.7240, 1365.6918,
];

/// The TSI table's value for table year index `i` (0 = 1951.5), 84 entries.
fn tsi_entry(i: usize) -> f64 {
    let raw = if i < TSI_1951_1995.len() {
        TSI_1951_1995[i]
    } else {
        TSI_CYCLE[(i - TSI_1951_1995.len()) % TSI_CYCLE.len()]
    };
    TSI_SCALE * raw
}
const TSI_ENTRIES: usize = 45 + 3 * 13;

/// solar_radiation.py `get_tsi`: the table linearly interpolated at the fractional year of `seconds` since 1970
/// (numpy `interp`: constant beyond the ends).
fn tsi(seconds: i64) -> f64 {
    let date = chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .naive_utc();
    use chrono::{Datelike, Timelike};
    let year = date.year();
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let day_fraction = f64::from(date.num_seconds_from_midnight()) / 86_400.0;
    let fraction =
        (f64::from(date.ordinal() - 1) + day_fraction) / if leap { 366.0 } else { 365.0 };
    let x = f64::from(year) + fraction;
    let position = x - TSI_FIRST_YEAR;
    if position <= 0.0 {
        return tsi_entry(0);
    }
    let last = TSI_ENTRIES - 1;
    if position >= last as f64 {
        return tsi_entry(last);
    }
    let i = position.floor() as usize;
    let t = position - i as f64;
    tsi_entry(i) + (tsi_entry(i + 1) - tsi_entry(i)) * t
}

/// Days since J2000 of `seconds` since 1970 as pandas' `Timestamp.to_julian_date() - 2451545.0` gives them
/// (whole days, then the day fraction added), rounded to f32 as `jnp.array` does.
fn j2000_days_f32(seconds: i64) -> f32 {
    let days = seconds.div_euclid(86_400);
    let fraction = seconds.rem_euclid(86_400) as f64 / 86_400.0;
    ((UNIX_EPOCH_JULIAN_DATE + days as f64 + fraction) - J2000_EPOCH) as f32
}

/// The sun's position for one instant (solar_radiation.py `_get_orbital_parameters`).
struct Orbit {
    rotational_phase: f64,
    sin_declination: f64,
    cos_declination: f64,
    eq_of_time_seconds: f64,
    distance_au: f64,
}

impl Orbit {
    fn at(j2000_days: f64) -> Self {
        let theta = j2000_days / JULIAN_YEAR_DAYS;
        let rotational_phase = j2000_days.rem_euclid(1.0);
        let rel = 1.7535 + 6.283076 * theta;
        let rem = 6.240041 + 6.283020 * theta;
        let rlls = 4.8951 + 6.283076 * theta;
        let rllls = 4.8952 + 6.283320 * theta
            - 0.0075 * rel.sin()
            - 0.0326 * rel.cos()
            - 0.0003 * (2.0 * rel).sin()
            + 0.0002 * (2.0 * rel).cos();
        let sin_declination = OBLIQUITY.sin() * rllls.sin();
        let eq_of_time_seconds = 591.8 * (2.0 * rlls).sin() - 459.4 * rem.sin()
            + 39.5 * rem.sin() * (2.0 * rlls).cos()
            - 12.7 * (4.0 * rlls).sin()
            - 4.8 * (2.0 * rem).sin();
        Self {
            rotational_phase,
            sin_declination,
            cos_declination: (1.0 - sin_declination * sin_declination).sqrt(),
            eq_of_time_seconds,
            distance_au: 1.0001 - 0.0163 * rel.sin() + 0.0037 * rel.cos(),
        }
    }
}

/// TOA incident solar radiation integrated over the hour ending at `seconds` since 1970-01-01T00:00:00Z, at
/// every point of the grid `lat` × `lon` (degrees, the file's f32 coordinates, in file order).
///
/// Returns [lat, lon] row-major, J m⁻², f32.
pub fn toa_incident_solar_radiation(seconds: i64, lat: &[f32], lon: &[f32]) -> Vec<f32> {
    let j = j2000_days_f32(seconds);
    let tsi = tsi(seconds) as f32;
    let n_lon = lon.len();
    // Per sample k: the flux factor, the declination and cos(hour angle) at every longitude.
    let samples: Vec<(f64, f64, f64, Vec<f64>)> = (0..=BINS)
        .map(|k| {
            let offset_seconds = (k as i64) * PERIOD_SECONDS / BINS as i64 - PERIOD_SECONDS;
            let offset = (offset_seconds as f64 / 86_400.0) as f32;
            let orbit = Orbit::at(f64::from(j + offset));
            let solar_time = orbit.rotational_phase + orbit.eq_of_time_seconds / 86_400.0;
            let cos_hour_angle = lon
                .iter()
                .map(|&l| {
                    (2.0 * std::f64::consts::PI * solar_time + f64::from(l.to_radians())).cos()
                })
                .collect();
            let weight = if k == 0 || k == BINS { 0.5 } else { 1.0 };
            let factor = weight * f64::from(tsi) / (orbit.distance_au * orbit.distance_au);
            (
                factor,
                orbit.sin_declination,
                orbit.cos_declination,
                cos_hour_angle,
            )
        })
        .collect();
    let dx = PERIOD_SECONDS as f64 / BINS as f64;
    let mut out = vec![0.0_f32; lat.len() * n_lon];
    out.par_chunks_mut(n_lon.max(1))
        .zip(lat.par_iter())
        .for_each(|(row, &lat)| {
            let (sin_lat, cos_lat) = f64::from(lat.to_radians()).sin_cos();
            let mut sum = vec![0.0_f64; n_lon];
            for (factor, sin_dec, cos_dec, cos_hour) in &samples {
                let (a, b) = (cos_lat * cos_dec, sin_lat * sin_dec);
                for (s, &c) in sum.iter_mut().zip(cos_hour) {
                    *s += factor * (a * c + b).max(0.0);
                }
            }
            for (out, s) in row.iter_mut().zip(sum) {
                *out = (dx * s) as f32;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsi_follows_the_era5_table() {
        // 2016-07-02T00:00 (day 184 of a leap year) is 2016.5: exactly the table's 2016 entry (cycle index 7).
        let seconds = chrono::NaiveDate::from_ymd_opt(2016, 7, 2)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert!((tsi(seconds) - TSI_SCALE * 1366.2300).abs() < 1e-9);
        assert_eq!(tsi(0), {
            // 1970.0 lies between 1969.5 (index 18) and 1970.5.
            let (a, b) = (tsi_entry(18), tsi_entry(19));
            a + (b - a) * 0.5
        });
        assert_eq!(tsi(i64::from(i32::MAX) * 10), tsi_entry(TSI_ENTRIES - 1));
    }

    #[test]
    fn the_hour_integral_of_a_full_sun_is_about_the_solar_constant_times_an_hour() {
        // At the subsolar point around noon the hour's mean flux is close to TSI / d²: 1361 W m-2 × 3600 s.
        let seconds = 1_592_697_600 + 12 * 3600; // 2020-06-21T12:00Z
        let toa = toa_incident_solar_radiation(seconds, &[23.44, -80.0], &[0.0, 180.0]);
        let noon = f64::from(toa[0]) / 3600.0;
        assert!((1290.0..1340.0).contains(&noon), "{noon}");
        assert_eq!(toa[1], 0.0, "midnight");
        assert_eq!(toa[2], 0.0, "polar night at noon");
    }
}

//! Year and day progress, GraphCast's generated forcings (`data_utils.py` `get_year_progress`,
//! `get_day_progress`, `featurize_progress`), with its dtype sequence: the progress is computed in f64 from
//! whole seconds since 1970 (longitudes' offsets in f32) and rounded to f32; the phase `progress · 2π` and its
//! sine and cosine are f32.

/// data_utils.py `_AVG_DAY_PER_YEAR`.
const AVG_DAYS_PER_YEAR: f64 = 365.24219;
/// data_utils.py `SEC_PER_DAY`.
const SECONDS_PER_DAY: i64 = 86_400;

/// Fraction of the (mean tropical) year since 1970 at `seconds` since 1970-01-01T00:00:00Z, in [0, 1).
pub fn year_progress(seconds: i64) -> f32 {
    (seconds as f64 / SECONDS_PER_DAY as f64 / AVG_DAYS_PER_YEAR).rem_euclid(1.0) as f32
}

/// Fraction of the local solar day at longitude `lon` (degrees, the file's f32 coordinate) at `seconds` since
/// 1970-01-01T00:00:00Z, in [0, 1).
pub fn day_progress(seconds: i64, lon: f32) -> f32 {
    let greenwich = seconds.rem_euclid(SECONDS_PER_DAY) as f64 / SECONDS_PER_DAY as f64;
    // numpy: deg2rad of an f32 array and its division by the (weak) Python float 2π stay f32.
    let offset = lon.to_radians() / std::f32::consts::TAU;
    (greenwich + f64::from(offset)).rem_euclid(1.0) as f32
}

/// (sin, cos) of the phase `progress · 2π`, all f32.
pub fn features(progress: f32) -> (f32, f32) {
    (progress * std::f32::consts::TAU).sin_cos()
}

/// The value of a generated forcing (`year_progress_sin`, ..., `day_progress_cos`) at `seconds` and longitude
/// `lon`; `None` for any other name.
pub fn forcing(name: &str, seconds: i64, lon: f32) -> Option<f32> {
    let (sin, cos) = match name {
        "year_progress_sin" | "year_progress_cos" => features(year_progress(seconds)),
        "day_progress_sin" | "day_progress_cos" => features(day_progress(seconds, lon)),
        _ => return None,
    };
    Some(if name.ends_with("_sin") { sin } else { cos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_at_known_instants() {
        assert_eq!(year_progress(0), 0.0);
        assert_eq!(day_progress(6 * 3600, 0.0), 0.25);
        // 90°E is 6 h ahead of Greenwich; -90 wraps like 270.
        assert!((day_progress(0, 90.0) - 0.25).abs() < 1e-7);
        assert!((day_progress(0, -90.0) - 0.75).abs() < 1e-7);
        assert!(
            (year_progress(-3600) - (1.0 - 1.0 / 24.0 / AVG_DAYS_PER_YEAR) as f32).abs() < 1e-7
        );
        assert_eq!(forcing("land_sea_mask", 0, 0.0), None);
        assert!((forcing("day_progress_cos", 12 * 3600, 0.0).unwrap() + 1.0).abs() < 1e-6);
    }
}

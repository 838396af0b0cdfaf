//! Forecast skill metrics on the grid (WeatherBench, Rasp et al. 2020): latitude-weighted RMSE and anomaly
//! correlation against a climatology. Computed on the host in f64.

/// Latitude-weighted RMSE of one field: `sqrt(Σ_g w_g (f_g − o_g)² / Σ_g w_g)`.
///
/// forecast, truth: [grid_points]; weights: [grid_points] ∝ cos(lat).
pub fn weighted_rmse(forecast: &[f32], truth: &[f32], weights: &[f64]) -> f64 {
    let (mut sum, mut norm) = (0.0, 0.0);
    for ((&f, &o), &w) in forecast.iter().zip(truth).zip(weights) {
        let d = f64::from(f) - f64::from(o);
        sum += w * d * d;
        norm += w;
    }
    (sum / norm).sqrt()
}

/// Latitude-weighted anomaly correlation coefficient:
/// `Σ w f' o' / sqrt(Σ w f'² · Σ w o'²)` with `f' = f − c`, `o' = o − c` (anomalies not re-centred, as in
/// WeatherBench). NaN when either anomaly is identically zero.
///
/// forecast, truth, climatology: [grid_points]; weights: [grid_points].
pub fn weighted_acc(forecast: &[f32], truth: &[f32], climatology: &[f32], weights: &[f64]) -> f64 {
    let (mut fo, mut ff, mut oo) = (0.0, 0.0, 0.0);
    for (((&f, &o), &c), &w) in forecast.iter().zip(truth).zip(climatology).zip(weights) {
        let fa = f64::from(f) - f64::from(c);
        let oa = f64::from(o) - f64::from(c);
        fo += w * fa * oa;
        ff += w * fa * fa;
        oo += w * oa * oa;
    }
    fo / (ff * oo).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmse_by_hand() {
        // errors 1, 2 with weights 3, 1: sqrt((3·1 + 1·4) / 4) = sqrt(7/4)
        let rmse = weighted_rmse(&[1.0, 2.0], &[0.0, 0.0], &[3.0, 1.0]);
        assert!((rmse - (7.0f64 / 4.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn acc_by_hand() {
        let clim = [0.0f32; 3];
        let w = [1.0, 1.0, 2.0];
        // Perfect forecast -> 1; sign-flipped anomaly -> −1.
        assert!(
            (weighted_acc(&[1.0, -1.0, 2.0], &[1.0, -1.0, 2.0], &clim, &w) - 1.0).abs() < 1e-12
        );
        assert!(
            (weighted_acc(&[-1.0, 1.0, -2.0], &[1.0, -1.0, 2.0], &clim, &w) + 1.0).abs() < 1e-12
        );
        // f' = (1, 0, 1), o' = (1, 1, 0): Σwfo = 1, Σwff = 3, Σwoo = 2 -> 1/sqrt(6)
        let acc = weighted_acc(&[1.0, 0.0, 1.0], &[1.0, 1.0, 0.0], &clim, &w);
        assert!((acc - 1.0 / 6f64.sqrt()).abs() < 1e-12);
    }
}

//! GraphCast's training objective: MSE of normalised residual targets, weighted by cos(latitude) and by a
//! per-channel weight.

use burn::prelude::*;

/// Per-(grid point, channel) loss weights `w_lat(g) · w_c` as a [1, grid_points, channels] tensor.
///
/// lat_weights: [grid_points] ∝ cos(lat), mean 1; channel_weights: [channels].
pub fn loss_weights(lat_weights: &[f64], channel_weights: &[f64], device: &Device) -> Tensor<3> {
    let values: Vec<f32> = lat_weights
        .iter()
        .flat_map(|&w| channel_weights.iter().map(move |&c| (w * c) as f32))
        .collect();
    Tensor::from_data(
        TensorData::new(values, [1, lat_weights.len(), channel_weights.len()]),
        device,
    )
}

/// `mean_{b,g,c} w(g, c) · (prediction − target)²`
///
/// prediction, target: [batch, grid_points, channels]; weights: [1, grid_points, channels] -> scalar [1]
pub fn weighted_mse(prediction: Tensor<3>, target: Tensor<3>, weights: &Tensor<3>) -> Tensor<1> {
    ((prediction - target).powi_scalar(2) * weights.clone()).mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_mse_matches_hand_computation() {
        let device = Device::flex();
        // Two grid points (weights 1.5 and 0.5, mean 1), two channels (weights 1 and 2), batch 1.
        let weights = loss_weights(&[1.5, 0.5], &[1.0, 2.0], &device);
        let prediction = Tensor::<3>::from_data([[[1.0, 2.0], [3.0, 4.0]]], &device);
        let target = Tensor::<3>::from_data([[[0.0, 0.0], [1.0, 1.0]]], &device);
        // errors² = [[1, 4], [4, 9]]; weights = [[1.5, 3], [0.5, 1]];
        // weighted = [1.5, 12, 2, 9] -> mean = 24.5 / 4 = 6.125
        let loss = weighted_mse(prediction, target, &weights).into_scalar::<f32>();
        assert!((loss - 6.125).abs() < 1e-6, "{loss}");
    }
}

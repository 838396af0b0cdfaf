//! The interaction range of one processor step: how far across the sphere the inputs of v_i at a node reach.

use burn::prelude::*;
use serde::Serialize;
use weatherlens_models::sphere::{great_circle_distance, lat_lon_to_unit};

use super::{JacobianError, checked, host, tensor};
use crate::stats::seeded_subsample;

#[derive(Debug, Clone)]
pub struct RangeOptions {
    /// Receiver nodes n, drawn without replacement with `seed` (all nodes if there are fewer). Most nodes of a
    /// multimesh belong to the finest level only and receive only its short edges (480 of the 642 nodes at
    /// level 3), so a few random receivers describe those; the reach of the coarse-level nodes needs more.
    pub receivers: usize,
    pub seed: u64,
    /// Width of the distance bins in degrees; bin k holds distances in [(k − ½)w, (k + ½)w), so bin 0 is the
    /// node itself and its nearest surroundings.
    pub bin_deg: f64,
    /// The share of the total influence that [`InteractionRange::range_deg`] must hold.
    pub fraction: f64,
}

impl Default for RangeOptions {
    fn default() -> Self {
        Self {
            receivers: 4,
            seed: 0,
            bin_deg: 2.5,
            fraction: 0.9,
        }
    }
}

/// One distance bin of the influence profile (a row of `influence.csv` without its layer).
#[derive(Debug, Clone, Serialize)]
pub struct InfluenceBin {
    /// Bin centre, degrees of great-circle distance between receiver n and source m.
    pub distance_deg: f64,
    /// Mean over the (n, m) pairs in the bin of ‖∂v^n/∂X^m‖_F (the latent × latent block).
    pub influence: f64,
    /// (n, m) pairs in the bin.
    pub count: usize,
}

/// How far the inputs of one step reach.
#[derive(Debug, Clone, Serialize)]
pub struct InteractionRange {
    /// The receiver nodes n averaged over.
    pub receivers: Vec<usize>,
    /// Non-empty bins in order of distance.
    pub bins: Vec<InfluenceBin>,
    /// The smallest distance d such that the pairs with distance ≤ d hold `fraction` of the summed influence
    /// Σ_{n,m} ‖∂v^n/∂X^m‖_F (pairs pooled over receivers; exact distances, not bins).
    pub range_deg: f64,
    pub fraction: f64,
    /// The largest distance with a non-zero influence: a message-passing step cannot reach past its longest
    /// edge, so this is exact structure, not an estimate.
    pub reach_deg: f64,
    /// The share of the summed influence that is self-influence (m = n).
    pub self_share: f64,
}

/// The influence ‖∂v^n/∂X^m‖_F of every node m on a few receiver nodes n, as a function of the great-circle
/// distance between them, binned; plus the distance holding `fraction` of the influence.
///
/// The block ∂v^n/∂X^m (latent × latent) is computed exactly, not estimated: one backward pass per receiver
/// over a batch of `latent` copies of X, copy a picking output component a of node n, gives the rows
/// ∂v^n_a/∂X for every a at once.
///
/// `v` must map [batch, nodes, latent] to [batch, nodes, latent], batch elements independently.
///
/// x: [1, nodes, latent]; node_lat, node_lon: [nodes] degrees
pub fn interaction_range<F>(
    v: F,
    x: &Tensor<3>,
    node_lat: &[f64],
    node_lon: &[f64],
    options: &RangeOptions,
) -> Result<InteractionRange, JacobianError>
where
    F: Fn(Tensor<3>) -> Tensor<3>,
{
    let (nodes, latent) = super::one_sample(x)?;
    if node_lat.len() != nodes || node_lon.len() != nodes {
        return Err(JacobianError::Invalid(format!(
            "{nodes} nodes but {} latitudes and {} longitudes",
            node_lat.len(),
            node_lon.len()
        )));
    }
    if !(options.bin_deg.is_finite() && options.bin_deg > 0.0) {
        return Err(JacobianError::Invalid(format!(
            "the bin width must be positive, got {}",
            options.bin_deg
        )));
    }
    if !(options.fraction > 0.0 && options.fraction <= 1.0) {
        return Err(JacobianError::Invalid(format!(
            "the influence fraction must be in (0, 1], got {}",
            options.fraction
        )));
    }
    let receivers = seeded_subsample(nodes, options.receivers.max(1), options.seed);
    let device = x.device();
    let plain = device.clone().inner();
    let x_host = host(x.clone());
    let repeated: Vec<f32> = (0..latent).flat_map(|_| x_host.iter().copied()).collect();
    let identity: Vec<f32> = (0..latent * latent)
        .map(|k| if k / latent == k % latent { 1.0 } else { 0.0 })
        .collect();
    let identity = tensor(identity, [latent, 1, latent], &plain);
    let positions: Vec<_> = node_lat
        .iter()
        .zip(node_lon)
        .map(|(&lat, &lon)| lat_lon_to_unit(lat, lon))
        .collect();
    // (distance in degrees, influence) for every (receiver, node) pair.
    let mut pairs: Vec<(f64, f64)> = Vec::with_capacity(receivers.len() * nodes);
    let mut self_influence = 0.0;
    for &n in &receivers {
        let leaf = tensor(
            repeated.clone(),
            [latent, nodes, latent],
            &device.clone().autodiff(),
        )
        .require_grad();
        let out = checked(&v, leaf.clone(), [latent, nodes, latent])?;
        let index = Tensor::<1, Int>::from_data(TensorData::new(vec![n as i64], [1]), &plain);
        // Copy a keeps output component a of node n: Σ_a v^n_a(X_a), whose gradient in X_a is ∂v^n_a/∂X.
        let picked = (out.select(1, index) * identity.clone()).sum();
        let grads = picked.backward();
        let rows = host(leaf.grad(&grads).ok_or_else(|| {
            JacobianError::Invalid(
                "v(X) does not depend on X through autodiff-tracked operations".into(),
            )
        })?);
        for m in 0..nodes {
            let mut block = 0.0;
            for a in 0..latent {
                let start = (a * nodes + m) * latent;
                block += rows[start..start + latent]
                    .iter()
                    .map(|&g| f64::from(g).powi(2))
                    .sum::<f64>();
            }
            let influence = block.sqrt();
            let distance = great_circle_distance(positions[n], positions[m]).to_degrees();
            if m == n {
                self_influence += influence;
            }
            pairs.push((distance, influence));
        }
    }
    Ok(summarise_influence(
        receivers,
        pairs,
        self_influence,
        options,
    ))
}

/// Bins (distance, influence) pairs and finds the range and reach.
pub(super) fn summarise_influence(
    receivers: Vec<usize>,
    mut pairs: Vec<(f64, f64)>,
    self_influence: f64,
    options: &RangeOptions,
) -> InteractionRange {
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for &(distance, influence) in &pairs {
        let bin = (distance / options.bin_deg).round() as usize;
        if sums.len() <= bin {
            sums.resize(bin + 1, (0.0, 0));
        }
        sums[bin].0 += influence;
        sums[bin].1 += 1;
    }
    let bins = sums
        .iter()
        .enumerate()
        .filter(|(_, (_, count))| *count > 0)
        .map(|(k, &(sum, count))| InfluenceBin {
            distance_deg: k as f64 * options.bin_deg,
            influence: sum / count as f64,
            count,
        })
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    let mut range_deg = 0.0;
    let mut held = 0.0;
    for &(distance, influence) in &pairs {
        if total > 0.0 && held >= options.fraction * total {
            break;
        }
        held += influence;
        range_deg = distance;
    }
    let reach_deg = pairs
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|p| p.0)
        .fold(0.0, f64::max);
    InteractionRange {
        receivers,
        bins,
        range_deg,
        fraction: options.fraction,
        reach_deg,
        self_share: if total > 0.0 {
            self_influence / total
        } else {
            0.0
        },
    }
}

//! The asymmetry of the Jacobian of one processor step: how far v_i is from a gradient field.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{JacobianError, checked, host, tensor};
use crate::stats::{jackknife_standard_error, standard_normal};

/// The distribution of the probe vectors z (independent entries, mean 0, variance 1, so E[z zᵀ] = I).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeDistribution {
    /// ±1 with equal probability: the lower-variance choice for Hutchinson-type estimators.
    Rademacher,
    /// Standard normal.
    Gaussian,
}

#[derive(Debug, Clone)]
pub struct AsymmetryOptions {
    /// Probe vectors z (at least 2, for the standard error).
    pub probes: usize,
    pub distribution: ProbeDistribution,
    /// Finite-difference step for J z relative to the RMS of X: h = relative_step · rms(X).
    pub relative_step: f64,
    pub seed: u64,
}

impl Default for AsymmetryOptions {
    fn default() -> Self {
        Self {
            probes: 8,
            distribution: ProbeDistribution::Rademacher,
            relative_step: 1e-2,
            seed: 0,
        }
    }
}

/// The asymmetry of J = ∂v/∂X at one state X, with the estimator's diagnostics.
#[derive(Debug, Clone, Serialize)]
pub struct Asymmetry {
    /// A = ‖J − Jᵀ‖_F / ‖J‖_F: 0 for a gradient field, √2 when J_ij and J_ji are uncorrelated, 2 for a pure
    /// rotation (J = −Jᵀ).
    pub asymmetry: f64,
    /// Jackknife standard error of `asymmetry` over the probes.
    pub standard_error: f64,
    /// Estimate of ‖J‖_F.
    pub jacobian_frobenius: f64,
    /// Estimate of ‖J − Jᵀ‖_F.
    pub antisymmetric_frobenius: f64,
    pub probes: usize,
    /// The absolute finite-difference step h.
    pub step: f64,
    /// ‖J z (h) − J z (h/2)‖ / ‖J z (h)‖ on the first probe: the size of the finite-difference error in J z
    /// (for a truncation-dominated error the error of the h estimate is about 4/3 of this).
    pub fd_relative_error: f64,
}

/// Estimates the Jacobian asymmetry A = ‖J − Jᵀ‖_F / ‖J‖_F of `v` at `x`, where J = ∂v/∂X over the whole
/// flattened (nodes × latent) state.
///
/// Estimator: for probe vectors z_k with independent, zero-mean, unit-variance entries (E[z zᵀ] = I),
/// E‖K z‖² = tr(Kᵀ K) = ‖K‖²_F for any matrix K (Hutchinson). With a_k = ‖J z_k − Jᵀ z_k‖² and
/// b_k = ½(‖J z_k‖² + ‖Jᵀ z_k‖²), both unbiased for ‖J − Jᵀ‖²_F and ‖J‖²_F, the estimate is
/// A = sqrt(Σ a_k / Σ b_k), a ratio of means (consistent, not unbiased, for few probes), and always in [0, 2].
/// The standard error is the jackknife over probes. Each probe sees all nodes × latent directions, so with a
/// Jacobian of high effective rank a handful of probes suffices. For a purely symmetric or antisymmetric J the
/// estimate is exact probe by probe (0 or 2) up to the error in J z. J is the Jacobian of the increment, not
/// of the step X -> X + v: the identity changes ‖J‖_F but not J − Jᵀ.
///
/// - Jᵀ z is exact: one backward pass of Σ_k ⟨v(X), z_k⟩ with respect to X (burn's autodiff, first order
///   only).
/// - J z has no first-order autodiff form in burn (no forward mode, no double backward), so it is the central
///   difference (v(X + h z) − v(X − h z)) / 2h evaluated in f32, h = `relative_step` · rms(X). Its error is
///   the truncation O(h² ‖∂³v‖) plus rounding O(u ‖v‖ / h) (u = 2⁻²⁴; this includes rounding X ± h z to
///   f32). With h = 1e-2 · rms(X) it is 1e-4 to 7e-4 of ‖J z‖ on the trained demo model (mesh level 3, latent
///   48), and A moved by less than 2e-5 when h went from 2.5e-3 to 4e-2 · rms(X). This error sets the floor
///   of A: a gradient field reads ~1e-4 (the tanh test field: 2.5e-4), not 0. [`Asymmetry::fd_relative_error`]
///   measures it on every call.
///
/// `v` must map [batch, nodes, latent] to [batch, nodes, latent], batch elements independently, and be smooth
/// near `x`. It may be called on tensors with or without autodiff.
///
/// x: [1, nodes, latent]
pub fn jacobian_asymmetry<F>(
    v: F,
    x: &Tensor<3>,
    options: &AsymmetryOptions,
) -> Result<Asymmetry, JacobianError>
where
    F: Fn(Tensor<3>) -> Tensor<3>,
{
    let (nodes, latent) = super::one_sample(x)?;
    if options.probes < 2 {
        return Err(JacobianError::Invalid(
            "at least 2 probe vectors are needed for a standard error".into(),
        ));
    }
    if !(options.relative_step.is_finite() && options.relative_step > 0.0) {
        return Err(JacobianError::Invalid(format!(
            "the finite-difference step must be positive, got {}",
            options.relative_step
        )));
    }
    let size = nodes * latent;
    let device = x.device();
    let plain = device.clone().inner();
    let x_host = host(x.clone());
    let rms = (x_host.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() / size as f64).sqrt();
    let step = options.relative_step * if rms > 0.0 { rms } else { 1.0 };
    let probes = options.probes;
    let z = probe_vectors(probes * size, options.distribution, options.seed);

    // J z_k by central differences: one batch of 2·probes (+2 for the h/2 check on the first probe) states.
    let mut shifted = Vec::with_capacity((2 * probes + 2) * size);
    for (k, h) in (0..probes)
        .map(|k| (k, step))
        .chain(std::iter::once((0, step / 2.0)))
    {
        for sign in [1.0, -1.0] {
            let z_k = &z[k * size..(k + 1) * size];
            shifted.extend(
                x_host
                    .iter()
                    .zip(z_k)
                    .map(|(&a, &b)| (f64::from(a) + sign * h * f64::from(b)) as f32),
            );
        }
    }
    let outputs = host(checked(
        &v,
        tensor(shifted, [2 * probes + 2, nodes, latent], &plain),
        [2 * probes + 2, nodes, latent],
    )?);
    let central = |pair: usize, h: f64| -> Vec<f64> {
        let plus = &outputs[2 * pair * size..(2 * pair + 1) * size];
        let minus = &outputs[(2 * pair + 1) * size..(2 * pair + 2) * size];
        plus.iter()
            .zip(minus)
            .map(|(&p, &m)| (f64::from(p) - f64::from(m)) / (2.0 * h))
            .collect()
    };
    let jz: Vec<Vec<f64>> = (0..probes).map(|k| central(k, step)).collect();
    let jz_half = central(probes, step / 2.0);
    let fd_difference: f64 = jz[0]
        .iter()
        .zip(&jz_half)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let fd_relative_error = if fd_difference > 0.0 {
        (fd_difference / squared_norm(&jz[0])).sqrt()
    } else {
        0.0
    };

    // Jᵀ z_k: one backward of Σ_k ⟨v(X_k), z_k⟩ with X_k = X, each copy its own leaf row.
    let repeated: Vec<f32> = (0..probes).flat_map(|_| x_host.iter().copied()).collect();
    let leaf = tensor(
        repeated,
        [probes, nodes, latent],
        &device.clone().autodiff(),
    )
    .require_grad();
    let out = checked(&v, leaf.clone(), [probes, nodes, latent])?;
    let probe_tensor = tensor(z.clone(), [probes, nodes, latent], &plain);
    let grads = (out * probe_tensor).sum().backward();
    let jtz = host(leaf.grad(&grads).ok_or_else(|| {
        JacobianError::Invalid(
            "v(X) does not depend on X through autodiff-tracked operations".into(),
        )
    })?);

    let mut antisymmetric = Vec::with_capacity(probes);
    let mut total = Vec::with_capacity(probes);
    for (k, jz_k) in jz.iter().enumerate() {
        let jtz_k: Vec<f64> = jtz[k * size..(k + 1) * size]
            .iter()
            .map(|&a| f64::from(a))
            .collect();
        antisymmetric.push(
            jz_k.iter()
                .zip(&jtz_k)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>(),
        );
        total.push(0.5 * (squared_norm(jz_k) + squared_norm(&jtz_k)));
    }
    let (asymmetry, standard_error) = ratio_with_jackknife(&antisymmetric, &total);
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    Ok(Asymmetry {
        asymmetry,
        standard_error,
        jacobian_frobenius: mean(&total).sqrt(),
        antisymmetric_frobenius: mean(&antisymmetric).sqrt(),
        probes,
        step,
        fd_relative_error,
    })
}

fn squared_norm(values: &[f64]) -> f64 {
    values.iter().map(|a| a * a).sum()
}

/// `count` probe entries, independent, mean 0, variance 1.
fn probe_vectors(count: usize, distribution: ProbeDistribution, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match distribution {
        ProbeDistribution::Rademacher => (0..count)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect(),
        ProbeDistribution::Gaussian => (0..count)
            .map(|_| standard_normal(&mut rng) as f32)
            .collect(),
    }
}

/// sqrt(Σa / Σb) and its jackknife standard error over the (a_k, b_k) pairs.
fn ratio_with_jackknife(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (sum_a, sum_b) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    let ratio = |num: f64, den: f64| if den > 0.0 { (num / den).sqrt() } else { 0.0 };
    let leave_one_out: Vec<f64> = (0..a.len())
        .map(|k| ratio(sum_a - a[k], sum_b - b[k]))
        .collect();
    (
        ratio(sum_a, sum_b),
        jackknife_standard_error(&leave_one_out),
    )
}

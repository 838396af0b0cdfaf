//! Stochastic vorticity forcing ("stirring"): a random field of vorticity tendency confined to a band of total
//! wavenumbers and red in time (a first-order autoregressive, discretised Ornstein–Uhlenbeck, process).
//!
//! Why: without it the jets' instability saturates into a wave train that repeats every few days, so
//! persistence scores well again at +5 days. Random synoptic-scale stirring is the standard way to keep a
//! forced-dissipative barotropic flow turbulent (Vallis, Gerber, Kushner & Cash 2004, J. Atmos. Sci. 61,
//! 264–280: total wavenumbers 10–14, decorrelation time 2 days); it stands in for the baroclinic eddy sources
//! a one-layer model lacks. The forecast models (the physics baseline) never see it: it is the part of the
//! truth no model can know in advance.
//!
//! The process, per time step Δt with memory `r = exp(−Δt/τ)`: `F ← r F + √(1 − r²) ξ`, ξ a fresh band-limited
//! Gaussian field with expected area mean of ξ² equal to `vorticity_rms²`; it starts from a draw of its
//! stationary distribution, so the expected mean square of F is `vorticity_rms²` at every step.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use weatherlens_models::sht::{Complex64, coefficient_count, coefficient_index};

/// ChaCha stream of the stirring, so for one seed its numbers are independent of the initial perturbation's
/// (stream 0, [`super::forcing::initial_state`]).
const STIRRING_STREAM: u64 = 1;

/// The stirring's parameters in model units.
#[derive(Debug, Clone, PartialEq)]
pub struct Stirring {
    /// Expected root-mean-square over the sphere of the vorticity tendency, s⁻².
    pub vorticity_rms: f64,
    /// Smallest forced total wavenumber l (at least 1: l = 0 vorticity is not a flow).
    pub min_degree: usize,
    /// Largest forced total wavenumber l (clipped to the model's truncation).
    pub max_degree: usize,
    /// e-folding time of the forcing's autocorrelation τ, s.
    pub decorrelation_s: f64,
    /// Seed of the random numbers; the forcing is a deterministic function of it and the time step.
    pub seed: u64,
}

/// The stirring of one integration: its generator and its current value.
#[derive(Debug, Clone)]
pub struct StirringProcess {
    stirring: Stirring,
    truncation: usize,
    /// Correlation of the forcing one time step apart, `exp(−Δt/τ)`.
    memory: f64,
    rng: ChaCha8Rng,
    /// Current vorticity tendency, s⁻²: [coefficient_count(truncation)]
    forcing: Vec<Complex64>,
}

impl StirringProcess {
    /// The process for a model at `truncation` stepping by `time_step` seconds, started in its stationary
    /// distribution.
    pub fn new(stirring: &Stirring, truncation: usize, time_step: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(stirring.seed);
        rng.set_stream(STIRRING_STREAM);
        let mut process = StirringProcess {
            stirring: stirring.clone(),
            truncation,
            memory: (-time_step / stirring.decorrelation_s).exp(),
            rng,
            forcing: Vec::new(),
        };
        process.forcing = process.draw();
        process
    }

    /// Current vorticity tendency, s⁻²: [coefficient_count(truncation)]
    pub fn forcing(&self) -> &[Complex64] {
        &self.forcing
    }

    /// Moves the process on by one time step.
    pub fn advance(&mut self) {
        let fresh = self.draw();
        let innovation = (1.0 - self.memory * self.memory).sqrt();
        for (f, x) in self.forcing.iter_mut().zip(&fresh) {
            *f = *f * self.memory + x * innovation;
        }
    }

    /// A band-limited Gaussian field whose expected area mean square is `vorticity_rms²`: each of the
    /// `Σ_l (2l + 1)` real degrees of freedom in the band has variance `vorticity_rms² / Σ_l (2l + 1)`
    /// (an m > 0 coefficient holds two, counted twice by the area mean, see
    /// [`weatherlens_models::sht::power_spectrum`]). -> [coefficient_count(truncation)]
    fn draw(&mut self) -> Vec<Complex64> {
        let mut field = vec![Complex64::ZERO; coefficient_count(self.truncation)];
        let (min_degree, max_degree) = (
            self.stirring.min_degree.max(1),
            self.stirring.max_degree.min(self.truncation),
        );
        if min_degree > max_degree {
            return field;
        }
        let freedoms: usize = (min_degree..=max_degree).map(|l| 2 * l + 1).sum();
        let deviation = self.stirring.vorticity_rms / (freedoms as f64).sqrt();
        for m in 0..=max_degree {
            for l in m.max(min_degree)..=max_degree {
                let (a, b) = self.normal_pair();
                field[coefficient_index(self.truncation, l, m)] = if m == 0 {
                    Complex64::new(a * deviation, 0.0)
                } else {
                    Complex64::new(a, b) * (deviation * std::f64::consts::FRAC_1_SQRT_2)
                };
            }
        }
        field
    }

    /// Two independent standard normal numbers (Box–Muller).
    fn normal_pair(&mut self) -> (f64, f64) {
        let uniform_open: f64 = 1.0 - self.rng.random::<f64>();
        let angle = std::f64::consts::TAU * self.rng.random::<f64>();
        let radius = (-2.0 * uniform_open.ln()).sqrt();
        (radius * angle.cos(), radius * angle.sin())
    }
}

#[cfg(test)]
mod tests {
    use weatherlens_models::sht::power_spectrum;

    use super::*;

    fn stirring(seed: u64) -> Stirring {
        Stirring {
            vorticity_rms: 3e-11,
            min_degree: 8,
            max_degree: 16,
            decorrelation_s: 2.0 * 86_400.0,
            seed,
        }
    }

    /// Area mean of the product of two real fields given by their coefficients (the cross term of
    /// [`power_spectrum`]).
    fn area_mean_product(truncation: usize, a: &[Complex64], b: &[Complex64]) -> f64 {
        let mut sum = 0.0;
        for m in 0..=truncation {
            let multiplicity = if m == 0 { 1.0 } else { 2.0 };
            for l in m..=truncation {
                let i = coefficient_index(truncation, l, m);
                sum += multiplicity * (a[i].re * b[i].re + a[i].im * b[i].im);
            }
        }
        sum
    }

    #[test]
    fn the_forcing_is_deterministic_for_a_seed_and_differs_between_seeds() {
        let mut first = StirringProcess::new(&stirring(3), 21, 1800.0);
        let mut again = StirringProcess::new(&stirring(3), 21, 1800.0);
        let other = StirringProcess::new(&stirring(4), 21, 1800.0);
        assert_ne!(first.forcing(), other.forcing());
        for _ in 0..10 {
            assert_eq!(first.forcing(), again.forcing());
            first.advance();
            again.advance();
        }
    }

    #[test]
    fn the_forcing_stays_in_its_band_with_the_stated_mean_square_and_memory() {
        // T21, band 8..=16, τ = 2 days, Δt = 1 h. Over 40 000 steps (about 830 τ) the time mean of the area
        // mean square must be rms² within 10 % (its standard error is about √(1/830) ≈ 3.5 %, since the band
        // has 225 degrees of freedom and each decorrelates over τ); the lag-τ autocorrelation, averaged over
        // the band the same way, is e⁻¹ ≈ 0.37 (within 0.05).
        let stirring = stirring(0);
        let truncation = 21;
        let mut process = StirringProcess::new(&stirring, truncation, 3600.0);
        let lag = 48;
        let mut recent = std::collections::VecDeque::new();
        let (mut mean_square, mut lagged, mut lagged_count, steps) = (0.0, 0.0, 0, 40_000);
        for _ in 0..steps {
            let spectrum = power_spectrum(truncation, process.forcing());
            for (l, power) in spectrum.iter().enumerate() {
                if !(8..=16).contains(&l) {
                    assert_eq!(*power, 0.0, "power at l = {l}");
                }
            }
            mean_square += spectrum.iter().sum::<f64>() / steps as f64;
            recent.push_back(process.forcing().to_vec());
            if recent.len() > lag {
                let past = recent.pop_front().unwrap();
                lagged += area_mean_product(truncation, process.forcing(), &past);
                lagged_count += 1;
            }
            process.advance();
        }
        let expected = stirring.vorticity_rms.powi(2);
        assert!(
            (mean_square / expected - 1.0).abs() < 0.1,
            "mean square {mean_square}, expected {expected}"
        );
        let correlation = lagged / lagged_count as f64 / mean_square;
        assert!(
            (correlation - (-1.0f64).exp()).abs() < 0.05,
            "lag-τ correlation {correlation}"
        );
    }

    #[test]
    fn a_band_above_the_truncation_forces_nothing() {
        let stirring = Stirring {
            min_degree: 30,
            max_degree: 40,
            ..stirring(0)
        };
        let process = StirringProcess::new(&stirring, 21, 1800.0);
        assert!(process.forcing().iter().all(|c| *c == Complex64::ZERO));
    }
}

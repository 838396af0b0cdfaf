//! Spectral shallow-water dynamics on the rotating sphere in vorticity–divergence form.
//!
//! Equations (Hack & Jakob 1992, NCAR/TN-343, eqs. 2.1–2.3; η = ζ + f, Φ = g·depth, Φ_s = g·bottom height):
//! - `∂ζ/∂t = −∇·(η v)`
//! - `∂δ/∂t = k·∇×(η v) − ∇²(|v|²/2 + Φ + Φ_s)`
//! - `∂Φ/∂t = −∇·(Φ v)`
//! - `∂q/∂t = −v·∇q` for the passive tracer q,
//!
//! plus the optional forcing and damping of [`Relaxation`] and [`Damping`], and the optional random vorticity
//! forcing of [`Stirring`] (added to `∂ζ/∂t`).
//!
//! Time stepping: leapfrog with a Robert–Asselin filter (Asselin 1972, Mon. Wea. Rev. 100, 487–490). The gravity-
//! wave terms (`−∇²Φ` in the divergence equation, `−Φ̄ δ` in the geopotential equation, Φ̄ a constant reference)
//! are averaged over the n−1 and n+1 levels (semi-implicit, Robert 1969), so the step is limited by advection,
//! not by the ~230 m/s gravity waves. Damping and relaxation are applied implicitly (backward Euler over 2Δt)
//! after the dynamical step. The first step is a forward semi-implicit (Crank–Nicolson) step of Δt.

use weatherlens_models::sht::{Complex64, Sht, coefficient_count, kinetic_energy_spectrum};

use super::stirring::{Stirring, StirringProcess};

/// The prognostic fields as spherical-harmonic coefficients, each [coefficient_count(truncation)].
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralState {
    /// Relative vorticity ζ, s⁻¹.
    pub vorticity: Vec<Complex64>,
    /// Divergence δ, s⁻¹.
    pub divergence: Vec<Complex64>,
    /// Layer geopotential `g·depth` minus the model's reference geopotential Φ̄, m² s⁻².
    pub geopotential: Vec<Complex64>,
    /// Temperature-like passive tracer, K.
    pub tracer: Vec<Complex64>,
}

impl SpectralState {
    /// All fields zero at `truncation`.
    pub fn zeros(truncation: usize) -> Self {
        let zero = vec![Complex64::ZERO; coefficient_count(truncation)];
        SpectralState {
            vorticity: zero.clone(),
            divergence: zero.clone(),
            geopotential: zero.clone(),
            tracer: zero,
        }
    }

    /// False once any coefficient is NaN or infinite (the model has blown up).
    pub fn is_finite(&self) -> bool {
        [
            &self.vorticity,
            &self.divergence,
            &self.geopotential,
            &self.tracer,
        ]
        .iter()
        .all(|field| field.iter().all(|c| c.re.is_finite() && c.im.is_finite()))
    }

    /// `self + weight · (a − 2 self + b)` field by field (the Robert–Asselin filter).
    fn filtered(
        &self,
        previous: &SpectralState,
        next: &SpectralState,
        weight: f64,
    ) -> SpectralState {
        let filter = |current: &[Complex64], a: &[Complex64], b: &[Complex64]| -> Vec<Complex64> {
            current
                .iter()
                .zip(a)
                .zip(b)
                .map(|((&c, &a), &b)| c + (a - c * 2.0 + b) * weight)
                .collect()
        };
        SpectralState {
            vorticity: filter(&self.vorticity, &previous.vorticity, &next.vorticity),
            divergence: filter(&self.divergence, &previous.divergence, &next.divergence),
            geopotential: filter(
                &self.geopotential,
                &previous.geopotential,
                &next.geopotential,
            ),
            tracer: filter(&self.tracer, &previous.tracer, &next.tracer),
        }
    }
}

/// Newtonian relaxation toward an equilibrium: the model's stand-in for radiative forcing.
#[derive(Debug, Clone, PartialEq)]
pub struct Relaxation {
    /// Target of [`SpectralState::geopotential`]: [coefficient_count]
    pub geopotential_target: Vec<Complex64>,
    /// Relaxation rate of the geopotential, s⁻¹.
    pub geopotential_rate: f64,
    /// Target of the tracer, K: [coefficient_count]
    pub tracer_target: Vec<Complex64>,
    /// Relaxation rate of the tracer, s⁻¹.
    pub tracer_rate: f64,
}

/// Linear drag and hyperdiffusion `(−∇²)^p`, whose rate is given at the truncation wavenumber N:
/// `rate(l) = rate_N · (l(l+1) / (N(N+1)))^p`.
#[derive(Debug, Clone, PartialEq)]
pub struct Damping {
    /// Rayleigh drag on vorticity and divergence, s⁻¹.
    pub drag_rate: f64,
    /// Hyperdiffusion rate at l = N on vorticity, divergence and geopotential, s⁻¹.
    pub hyperdiffusion_rate: f64,
    /// Hyperdiffusion rate at l = N on the tracer, s⁻¹.
    pub tracer_hyperdiffusion_rate: f64,
    /// Power p of the Laplacian.
    pub power: u32,
}

/// The model at one truncation: transform, constants, forcing, and the time step.
#[derive(Debug, Clone)]
pub struct ShallowWaterModel {
    sht: Sht,
    rotation_rate: f64,
    reference_geopotential: f64,
    time_step: f64,
    robert_asselin: f64,
    /// Bottom geopotential `g·h_s`: [coefficient_count]
    topography: Vec<Complex64>,
    /// Coriolis parameter `2Ω sin φ` per Gaussian latitude: [lat]
    coriolis: Vec<f64>,
    /// Total degree l of each coefficient: [coefficient_count]
    degree: Vec<usize>,
    relaxation: Option<Relaxation>,
    damping: Option<Damping>,
    stirring: Option<Stirring>,
}

/// A leapfrog integration in progress: the two time levels and the time reached.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Filtered n−1 level; `None` before the first (forward) step.
    previous: Option<SpectralState>,
    current: SpectralState,
    /// The random vorticity forcing of this run, when the model has one.
    stirring: Option<StirringProcess>,
    /// Simulated time since the start, s.
    pub elapsed_s: f64,
}

impl Integration {
    /// The current (n) time level.
    pub fn state(&self) -> &SpectralState {
        &self.current
    }
}

impl ShallowWaterModel {
    /// An unforced, undamped model without topography (the Williamson test-case setting).
    ///
    /// `sht` must carry the planet's radius; `reference_geopotential` Φ̄ is the constant about which the
    /// gravity-wave terms are treated implicitly (choose it near the largest layer geopotential).
    pub fn new(
        sht: Sht,
        rotation_rate: f64,
        reference_geopotential: f64,
        time_step: f64,
        robert_asselin: f64,
    ) -> Self {
        let truncation = sht.truncation();
        let coriolis = sht
            .sin_lat()
            .iter()
            .map(|mu| 2.0 * rotation_rate * mu)
            .collect();
        let mut degree = vec![0; coefficient_count(truncation)];
        for m in 0..=truncation {
            for l in m..=truncation {
                degree[sht.index(l, m)] = l;
            }
        }
        ShallowWaterModel {
            topography: vec![Complex64::ZERO; sht.coefficient_count()],
            sht,
            rotation_rate,
            reference_geopotential,
            time_step,
            robert_asselin,
            coriolis,
            degree,
            relaxation: None,
            damping: None,
            stirring: None,
        }
    }

    /// Adds bottom topography, as geopotential `g·h_s`: [coefficient_count]
    pub fn with_topography(mut self, topography: Vec<Complex64>) -> Self {
        assert_eq!(
            topography.len(),
            self.sht.coefficient_count(),
            "topography must match the truncation"
        );
        self.topography = topography;
        self
    }

    pub fn with_relaxation(mut self, relaxation: Relaxation) -> Self {
        self.relaxation = Some(relaxation);
        self
    }

    pub fn with_damping(mut self, damping: Damping) -> Self {
        self.damping = Some(damping);
        self
    }

    /// Adds the random vorticity forcing; every [`start`](Self::start) begins the realisation drawn from the
    /// stirring's seed, so a run stays a deterministic function of the seed and the initial state.
    pub fn with_stirring(mut self, stirring: Stirring) -> Self {
        self.stirring = Some(stirring);
        self
    }

    /// The same model without random forcing, so a run is a deterministic function of its initial state.
    pub fn without_stirring(mut self) -> Self {
        self.stirring = None;
        self
    }

    pub fn stirring(&self) -> Option<&Stirring> {
        self.stirring.as_ref()
    }

    pub fn sht(&self) -> &Sht {
        &self.sht
    }
    pub fn time_step(&self) -> f64 {
        self.time_step
    }
    pub fn rotation_rate(&self) -> f64 {
        self.rotation_rate
    }
    pub fn reference_geopotential(&self) -> f64 {
        self.reference_geopotential
    }
    /// Bottom geopotential `g·h_s`: [coefficient_count]
    pub fn topography(&self) -> &[Complex64] {
        &self.topography
    }

    /// Starts an integration at `state`.
    pub fn start(&self, state: SpectralState) -> Integration {
        Integration {
            previous: None,
            current: state,
            stirring: self.stirring.as_ref().map(|stirring| {
                StirringProcess::new(stirring, self.sht.truncation(), self.time_step)
            }),
            elapsed_s: 0.0,
        }
    }

    /// Geopotential of the free surface `Φ̄ + Φ' + Φ_s` (the output's "z500"): [coefficient_count]
    pub fn free_surface_geopotential(&self, state: &SpectralState) -> Vec<Complex64> {
        let mut z: Vec<Complex64> = state
            .geopotential
            .iter()
            .zip(&self.topography)
            .map(|(a, b)| a + b)
            .collect();
        z[0] += self.reference_geopotential;
        z
    }

    /// Area mean of `|v|² / 2`, m² s⁻².
    pub fn kinetic_energy(&self, state: &SpectralState) -> f64 {
        let spectrum = kinetic_energy_spectrum(
            self.sht.truncation(),
            self.sht.radius(),
            &state.vorticity,
            &state.divergence,
        );
        spectrum.iter().sum()
    }

    /// The explicit tendencies of all four fields at one time level.
    pub fn tendencies(&self, state: &SpectralState) -> SpectralState {
        let sht = &self.sht;
        let ((vorticity, geopotential), ((u, v), (tracer_east, tracer_north))) = rayon::join(
            || {
                rayon::join(
                    || sht.synthesise(&state.vorticity),
                    || sht.synthesise(&state.geopotential),
                )
            },
            || {
                rayon::join(
                    || sht.winds(&state.vorticity, &state.divergence),
                    || sht.gradient(&state.tracer),
                )
            },
        );
        let n_lon = sht.n_lon();
        let points = vorticity.len();
        let mut absolute_flux = (vec![0.0; points], vec![0.0; points]);
        let mut mass_flux = (vec![0.0; points], vec![0.0; points]);
        let mut kinetic = vec![0.0; points];
        let mut advection = vec![0.0; points];
        for i in 0..points {
            let absolute_vorticity = vorticity[i] + self.coriolis[i / n_lon];
            absolute_flux.0[i] = absolute_vorticity * u[i];
            absolute_flux.1[i] = absolute_vorticity * v[i];
            mass_flux.0[i] = geopotential[i] * u[i];
            mass_flux.1[i] = geopotential[i] * v[i];
            kinetic[i] = 0.5 * (u[i] * u[i] + v[i] * v[i]);
            advection[i] = -(u[i] * tracer_east[i] + v[i] * tracer_north[i]);
        }
        let (((absolute_divergence, absolute_curl), mass_divergence), (kinetic, advection)) =
            rayon::join(
                || {
                    rayon::join(
                        || sht.divergence_curl(&absolute_flux.0, &absolute_flux.1),
                        || sht.divergence(&mass_flux.0, &mass_flux.1),
                    )
                },
                || rayon::join(|| sht.analyse(&kinetic), || sht.analyse(&advection)),
            );
        let mut tendency = SpectralState::zeros(sht.truncation());
        for (i, &l) in self.degree.iter().enumerate() {
            let minus_laplacian = -sht.laplacian_eigenvalue(l);
            tendency.vorticity[i] = -absolute_divergence[i];
            tendency.divergence[i] = absolute_curl[i]
                + (kinetic[i] + state.geopotential[i] + self.topography[i]) * minus_laplacian;
            tendency.geopotential[i] =
                -mass_divergence[i] - state.divergence[i] * self.reference_geopotential;
            tendency.tracer[i] = advection[i];
        }
        tendency
    }

    /// Advances `run` by one time step. The stirring, when present, is held over the step (its value at level n
    /// joins the explicit tendency) and then moves on by Δt.
    pub fn step(&self, run: &mut Integration) {
        let mut tendency = self.tendencies(&run.current);
        if let Some(stirring) = &mut run.stirring {
            for (t, f) in tendency.vorticity.iter_mut().zip(stirring.forcing()) {
                *t += f;
            }
            stirring.advance();
        }
        let next = match &run.previous {
            Some(previous) => {
                self.implicit_update(previous, &run.current, &tendency, 2.0 * self.time_step)
            }
            None => self.implicit_update(&run.current, &run.current, &tendency, self.time_step),
        };
        let filtered = match &run.previous {
            Some(previous) => run.current.filtered(previous, &next, self.robert_asselin),
            None => run.current.clone(),
        };
        run.previous = Some(filtered);
        run.current = next;
        run.elapsed_s += self.time_step;
    }

    /// Advances `run` by `steps` time steps.
    pub fn advance(&self, run: &mut Integration, steps: usize) {
        for _ in 0..steps {
            self.step(run);
        }
    }

    /// The n+1 level from n−1 (`previous`), n (`current`) and the explicit tendency at n, over `span` = 2Δt
    /// (or Δt for the forward first step). Per coefficient, with `L = l(l+1)/a²` and `τ = span/2`:
    /// `δ⁺ = A_δ + τ L Φ⁺`, `Φ⁺ = A_Φ − τ Φ̄ δ⁺`, solved as `Φ⁺ = (A_Φ − τ Φ̄ A_δ) / (1 + τ² Φ̄ L)`.
    fn implicit_update(
        &self,
        previous: &SpectralState,
        current: &SpectralState,
        tendency: &SpectralState,
        span: f64,
    ) -> SpectralState {
        let tau = 0.5 * span;
        let phi_bar = self.reference_geopotential;
        let truncation_factor = {
            let n = self.sht.truncation() as f64;
            n * (n + 1.0)
        };
        let mut next = SpectralState::zeros(self.sht.truncation());
        for (i, &l) in self.degree.iter().enumerate() {
            let minus_laplacian = -self.sht.laplacian_eigenvalue(l);
            let a_divergence = previous.divergence[i]
                + tendency.divergence[i] * span
                + (previous.geopotential[i] - current.geopotential[i] * 2.0)
                    * (tau * minus_laplacian);
            let a_geopotential = previous.geopotential[i] + tendency.geopotential[i] * span
                - (previous.divergence[i] - current.divergence[i] * 2.0) * (tau * phi_bar);
            let mut geopotential = (a_geopotential - a_divergence * (tau * phi_bar))
                / (1.0 + tau * tau * phi_bar * minus_laplacian);
            let mut divergence = a_divergence + geopotential * (tau * minus_laplacian);
            let mut vorticity = previous.vorticity[i] + tendency.vorticity[i] * span;
            let mut tracer = previous.tracer[i] + tendency.tracer[i] * span;

            let (mut flow_rate, mut geopotential_rate, mut tracer_rate) = (0.0, 0.0, 0.0);
            if let Some(damping) = &self.damping {
                let scale = ((l * (l + 1)) as f64 / truncation_factor).powi(damping.power as i32);
                flow_rate = damping.drag_rate + damping.hyperdiffusion_rate * scale;
                geopotential_rate = damping.hyperdiffusion_rate * scale;
                tracer_rate = damping.tracer_hyperdiffusion_rate * scale;
            }
            vorticity /= 1.0 + span * flow_rate;
            divergence /= 1.0 + span * flow_rate;
            if let Some(relaxation) = &self.relaxation {
                geopotential +=
                    relaxation.geopotential_target[i] * (span * relaxation.geopotential_rate);
                geopotential_rate += relaxation.geopotential_rate;
                tracer += relaxation.tracer_target[i] * (span * relaxation.tracer_rate);
                tracer_rate += relaxation.tracer_rate;
            }
            geopotential /= 1.0 + span * geopotential_rate;
            tracer /= 1.0 + span * tracer_rate;

            next.vorticity[i] = vorticity;
            next.divergence[i] = divergence;
            next.geopotential[i] = geopotential;
            next.tracer[i] = tracer;
        }
        next
    }
}

//! Settings of the built-in atmosphere, with every default in one place ([`Default`] impls below).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AtmosphereError, SNAPSHOT_INTERVAL_S};

/// What to simulate and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AtmosphereConfig {
    /// Triangular truncation T_N of the model (42 for the truth, 31 for the physics baseline).
    pub truncation: usize,
    /// Time step, s; must divide the 6-hour snapshot interval.
    pub time_step_s: f64,
    /// Days integrated before the first snapshot, so the output starts in the statistically steady state.
    pub spin_up_days: f64,
    /// Output latitudes: equiangular cell centres, 90 -> -90, poles excluded (32 gives 5.625°).
    pub output_n_lat: usize,
    /// Output longitudes: 0 .. 360 eastward (64 gives 5.625°).
    pub output_n_lon: usize,
    /// Seed of the random initial perturbation; the run is a deterministic function of the config.
    pub seed: u64,
    /// Mean depth of the layer, m; its geopotential is the "500 hPa height" of the output.
    pub mean_depth_m: f64,
    /// Robert–Asselin filter coefficient of the leapfrog scheme.
    pub robert_asselin: f64,
    pub forcing: ForcingConfig,
}

/// Forcing and dissipation that keep the flow turbulent and weather-like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForcingConfig {
    /// Jets of the equilibrium state the free surface is relaxed toward (the "radiative equilibrium").
    pub jets: Vec<JetConfig>,
    /// Relaxation time of the free-surface height toward the jets' balanced height, days.
    pub relaxation_days: f64,
    /// Linear (Rayleigh) drag time on vorticity and divergence, days.
    pub drag_days: f64,
    /// Power p of the hyperdiffusion `(−∇²)^p` (4 gives ∇⁸).
    pub hyperdiffusion_power: u32,
    /// e-folding time of the hyperdiffusion at the truncation wavenumber, days (scaled with the truncation,
    /// so a coarser model damps its own smallest scales equally fast).
    pub hyperdiffusion_days: f64,
    /// Bottom topography: a sum of zonal waves in Gaussian latitude bands.
    pub topography: Vec<TopographyWave>,
    /// Equilibrium of the temperature-like tracer at the equator and at the poles, K (`T_eq = T_pole +
    /// (T_equator − T_pole) cos² φ`).
    pub tracer_equator_k: f64,
    pub tracer_pole_k: f64,
    /// Relaxation time of the tracer toward its equilibrium, days.
    pub tracer_relaxation_days: f64,
    /// e-folding time of the tracer's hyperdiffusion at the truncation wavenumber, days.
    pub tracer_hyperdiffusion_days: f64,
    /// Random vorticity forcing of the truth; the physics baseline forecasts without it.
    pub stirring: StirringConfig,
}

/// Random vorticity forcing ("stirring", [`super::stirring`]): a band of total wavenumbers forced by a red-noise
/// (AR(1)) process, as in forced barotropic turbulence studies (Vallis et al. 2004, J. Atmos. Sci. 61, 264–280).
/// Without it the jets' eddies lock into a wave train that repeats every ~5 days, and 5-day persistence beats
/// climatology; with it the flow decorrelates like weather.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StirringConfig {
    /// Expected root-mean-square over the sphere of the random vorticity tendency, s⁻¹ per day; 0 turns the
    /// stirring off and reproduces the unstirred model exactly.
    pub vorticity_rms_per_day: f64,
    /// Smallest forced total wavenumber l (l = 10 is a wavelength of about 3 800 km).
    pub min_degree: usize,
    /// Largest forced total wavenumber l; must not exceed the truncation while the stirring is on.
    pub max_degree: usize,
    /// e-folding time of the forcing's autocorrelation, days.
    pub decorrelation_days: f64,
}

/// A Gaussian jet `u_eq = speed · exp(−((φ − lat)/width)²)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetConfig {
    pub speed_m_s: f64,
    pub lat_deg: f64,
    pub width_deg: f64,
}

/// One zonal wave of bottom height `height · exp(−((φ − lat)/width)²) · cos(m (λ − crest_lon))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopographyWave {
    pub wavenumber: usize,
    pub height_m: f64,
    pub crest_lon_deg: f64,
    pub lat_deg: f64,
    pub width_deg: f64,
}

impl Default for AtmosphereConfig {
    fn default() -> Self {
        AtmosphereConfig {
            truncation: 42,
            time_step_s: 1200.0,
            spin_up_days: 60.0,
            output_n_lat: 32,
            output_n_lon: 64,
            seed: 0,
            // Close to Earth's mean 500 hPa height, so z500 has a familiar magnitude.
            mean_depth_m: 5600.0,
            robert_asselin: 0.05,
            forcing: ForcingConfig::default(),
        }
    }
}

impl Default for ForcingConfig {
    fn default() -> Self {
        ForcingConfig {
            jets: vec![
                JetConfig {
                    speed_m_s: 80.0,
                    lat_deg: 40.0,
                    width_deg: 9.0,
                },
                JetConfig {
                    speed_m_s: 60.0,
                    lat_deg: -48.0,
                    width_deg: 9.0,
                },
            ],
            // Fast relaxation and weak drag keep the jets barotropically unstable, so eddies never stop
            // growing; with 10-day relaxation and 15-day drag the flow settles into steady stationary waves.
            relaxation_days: 1.5,
            drag_days: 40.0,
            hyperdiffusion_power: 4,
            hyperdiffusion_days: 0.2,
            topography: vec![
                TopographyWave {
                    wavenumber: 2,
                    height_m: 800.0,
                    crest_lon_deg: 100.0,
                    lat_deg: 45.0,
                    width_deg: 14.0,
                },
                TopographyWave {
                    wavenumber: 3,
                    height_m: 500.0,
                    crest_lon_deg: 250.0,
                    lat_deg: 38.0,
                    width_deg: 12.0,
                },
                TopographyWave {
                    wavenumber: 3,
                    height_m: 250.0,
                    crest_lon_deg: 290.0,
                    lat_deg: -35.0,
                    width_deg: 12.0,
                },
            ],
            tracer_equator_k: 268.0,
            tracer_pole_k: 234.0,
            tracer_relaxation_days: 8.0,
            tracer_hyperdiffusion_days: 0.2,
            stirring: StirringConfig::default(),
        }
    }
}

impl Default for StirringConfig {
    fn default() -> Self {
        StirringConfig {
            // Tuned on 730-day T42 runs (seed 0): 1e-6 still leaves a 5-day wave train (persistence RMSE of z500
            // falls from 600 at +60 h to 350 at +120 h); 2.5e-6 makes it rise to saturation (≈ √2 × climatology)
            // by +5 days while the RMS 6-hour z500 change stays near 100 m² s⁻² (95 unstirred).
            vorticity_rms_per_day: 2.5e-6,
            // Synoptic scales, as Vallis et al. (2004) stir l = 10..14 with a 2-day decorrelation time.
            min_degree: 8,
            max_degree: 16,
            decorrelation_days: 2.0,
        }
    }
}

impl AtmosphereConfig {
    /// Reads a TOML file holding exactly these keys (missing keys take the defaults) and validates it.
    pub fn load(path: &Path) -> Result<Self, AtmosphereError> {
        let text = std::fs::read_to_string(path).map_err(|source| AtmosphereError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let config: AtmosphereConfig =
            toml::from_str(&text).map_err(|source| AtmosphereError::ParseConfig {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        config.validate_from(Some(path))?;
        Ok(config)
    }

    /// The same atmosphere at a coarser truncation, as the physics baseline runs it: T31 (the finest the 5.625°
    /// output grid resolves) with a 30-minute step. At T21 the baseline loses to persistence at +6 h in t500 and
    /// u500, because the truth holds more structure at degrees 22–31 than it changes in 6 hours (it still wins
    /// everywhere from +24 h); set `truncation = 21` for a weaker "NWP" model. The stirring settings are kept,
    /// but [`PhysicsBaseline`](super::PhysicsBaseline) drops the random forcing: a forecast model cannot know
    /// the future noise, and its forecasts stay deterministic functions of the initial frame.
    pub fn physics_baseline(&self) -> Self {
        AtmosphereConfig {
            truncation: 31,
            time_step_s: 1800.0,
            ..self.clone()
        }
    }

    /// Checks every value a user can set; the error names the key.
    pub fn validate(&self) -> Result<(), AtmosphereError> {
        self.validate_from(None)
    }

    /// Time steps per 6-hour snapshot interval (validated to be a whole number).
    pub fn steps_per_snapshot(&self) -> usize {
        (SNAPSHOT_INTERVAL_S / self.time_step_s).round() as usize
    }

    fn validate_from(&self, path: Option<&Path>) -> Result<(), AtmosphereError> {
        let fail = |key: &str, reason: String| AtmosphereError::InvalidConfig {
            path: path.map(PathBuf::from),
            key: key.to_string(),
            reason,
        };
        let positive = |key: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(fail(key, format!("must be a positive number, got {value}")))
            }
        };
        let inside_poles = |key: &str, lat: f64| {
            if lat.is_finite() && lat.abs() < 90.0 {
                Ok(())
            } else {
                Err(fail(key, format!("must be inside (-90, 90), got {lat}")))
            }
        };
        if !(5..=340).contains(&self.truncation) {
            return Err(fail(
                "truncation",
                format!("must be between 5 and 340, got {}", self.truncation),
            ));
        }
        positive("time_step_s", self.time_step_s)?;
        let steps = SNAPSHOT_INTERVAL_S / self.time_step_s;
        if (steps - steps.round()).abs() > 1e-9 || steps.round() < 1.0 {
            return Err(fail(
                "time_step_s",
                format!(
                    "must divide 21600 s (6 h) into whole steps, got {}",
                    self.time_step_s
                ),
            ));
        }
        if !(self.spin_up_days.is_finite() && self.spin_up_days >= 0.0) {
            return Err(fail(
                "spin_up_days",
                format!("must be zero or positive, got {}", self.spin_up_days),
            ));
        }
        if self.output_n_lat < 2 {
            return Err(fail(
                "output_n_lat",
                format!("must be at least 2, got {}", self.output_n_lat),
            ));
        }
        if self.output_n_lon < 4 {
            return Err(fail(
                "output_n_lon",
                format!("must be at least 4, got {}", self.output_n_lon),
            ));
        }
        positive("mean_depth_m", self.mean_depth_m)?;
        if !(0.0..0.5).contains(&self.robert_asselin) {
            return Err(fail(
                "robert_asselin",
                format!("must be in [0, 0.5), got {}", self.robert_asselin),
            ));
        }
        let forcing = &self.forcing;
        positive("forcing.relaxation_days", forcing.relaxation_days)?;
        positive("forcing.drag_days", forcing.drag_days)?;
        positive("forcing.hyperdiffusion_days", forcing.hyperdiffusion_days)?;
        positive(
            "forcing.tracer_relaxation_days",
            forcing.tracer_relaxation_days,
        )?;
        positive(
            "forcing.tracer_hyperdiffusion_days",
            forcing.tracer_hyperdiffusion_days,
        )?;
        if !(1..=8).contains(&forcing.hyperdiffusion_power) {
            return Err(fail(
                "forcing.hyperdiffusion_power",
                format!("must be 1 to 8, got {}", forcing.hyperdiffusion_power),
            ));
        }
        for (key, value) in [
            ("forcing.tracer_equator_k", forcing.tracer_equator_k),
            ("forcing.tracer_pole_k", forcing.tracer_pole_k),
        ] {
            positive(key, value)?;
        }
        let stirring = &forcing.stirring;
        if !(stirring.vorticity_rms_per_day.is_finite() && stirring.vorticity_rms_per_day >= 0.0) {
            return Err(fail(
                "forcing.stirring.vorticity_rms_per_day",
                format!(
                    "must be zero or positive, got {}",
                    stirring.vorticity_rms_per_day
                ),
            ));
        }
        positive(
            "forcing.stirring.decorrelation_days",
            stirring.decorrelation_days,
        )?;
        if stirring.min_degree < 1 {
            return Err(fail(
                "forcing.stirring.min_degree",
                "must be at least 1, got 0".to_string(),
            ));
        }
        if stirring.max_degree < stirring.min_degree {
            return Err(fail(
                "forcing.stirring.max_degree",
                format!(
                    "must not be below min_degree {}, got {}",
                    stirring.min_degree, stirring.max_degree
                ),
            ));
        }
        if stirring.vorticity_rms_per_day > 0.0 && stirring.max_degree > self.truncation {
            return Err(fail(
                "forcing.stirring.max_degree",
                format!(
                    "must not exceed the truncation {} while the stirring is on, got {}",
                    self.truncation, stirring.max_degree
                ),
            ));
        }
        for (i, jet) in forcing.jets.iter().enumerate() {
            let key = |field: &str| format!("forcing.jets[{i}].{field}");
            if !jet.speed_m_s.is_finite() || jet.speed_m_s.abs() > 200.0 {
                return Err(fail(
                    &key("speed_m_s"),
                    format!("must be within ±200 m/s, got {}", jet.speed_m_s),
                ));
            }
            inside_poles(&key("lat_deg"), jet.lat_deg)?;
            positive(&key("width_deg"), jet.width_deg)?;
        }
        for (i, wave) in forcing.topography.iter().enumerate() {
            let key = |field: &str| format!("forcing.topography[{i}].{field}");
            if wave.wavenumber > self.truncation {
                return Err(fail(
                    &key("wavenumber"),
                    format!(
                        "must not exceed the truncation {}, got {}",
                        self.truncation, wave.wavenumber
                    ),
                ));
            }
            if !(wave.height_m.is_finite() && wave.height_m.abs() < 0.5 * self.mean_depth_m) {
                return Err(fail(
                    &key("height_m"),
                    format!(
                        "must be finite and below half the mean depth, got {}",
                        wave.height_m
                    ),
                ));
            }
            inside_poles(&key("lat_deg"), wave.lat_deg)?;
            if !wave.crest_lon_deg.is_finite() {
                return Err(fail(
                    &key("crest_lon_deg"),
                    format!("must be finite, got {}", wave.crest_lon_deg),
                ));
            }
            positive(&key("width_deg"), wave.width_deg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let config = AtmosphereConfig::default();
        config.validate().unwrap();
        config.physics_baseline().validate().unwrap();
        assert_eq!(config.steps_per_snapshot(), 18);
        let text = toml::to_string(&config).unwrap();
        let back: AtmosphereConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn bad_values_name_their_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atmosphere.toml");
        std::fs::write(&path, "truncation = 42\ntime_step_s = 1000.0\n").unwrap();
        let message = AtmosphereConfig::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("time_step_s") && message.contains("atmosphere.toml"),
            "{message}"
        );
        std::fs::write(&path, "[forcing]\ndrag_days = -1.0\n").unwrap();
        let message = AtmosphereConfig::load(&path).unwrap_err().to_string();
        assert!(message.contains("forcing.drag_days"), "{message}");
        std::fs::write(&path, "[forcing.stirring]\nmax_degree = 50\n").unwrap();
        let message = AtmosphereConfig::load(&path).unwrap_err().to_string();
        assert!(message.contains("forcing.stirring.max_degree"), "{message}");
        std::fs::write(&path, "[forcing.stirring]\nvorticity_rms_per_day = -1e-6\n").unwrap();
        let message = AtmosphereConfig::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("forcing.stirring.vorticity_rms_per_day"),
            "{message}"
        );
        // Off, the band is not checked against the truncation.
        std::fs::write(
            &path,
            "[forcing.stirring]\nvorticity_rms_per_day = 0.0\nmax_degree = 50\n",
        )
        .unwrap();
        AtmosphereConfig::load(&path).unwrap();
        std::fs::write(&path, "trunctation = 42\n").unwrap();
        assert!(matches!(
            AtmosphereConfig::load(&path),
            Err(AtmosphereError::ParseConfig { .. })
        ));
    }
}

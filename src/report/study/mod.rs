//! The cross-model report of a study (`runs/<study>/report/`): a joint scorecard, the error-correlation
//! matrix (models + physics + persistence), CKA / CKNNA between models at the last processor layer by region
//! with permutation nulls, velocity and centroid curves overlaid, and `report.md` / `report.html` /
//! `report.json`.
//!
//! [`collect`] builds the report from the per-run output files alone (so every figure can be recomputed from
//! them, and a report can be rebuilt without rerunning anything); [`render`] writes it.

mod alignment;
mod collect;
mod html;
mod markdown;
mod render;

pub use collect::collect;
pub use html::html;
pub use markdown::markdown;
pub use render::{render, write_local_alignment};

use serde::{Deserialize, Serialize};
use weatherlens_probes::alignment::{Controls, Excess, MetricSet, NullSummary};
use weatherlens_probes::inputs::Region;
use weatherlens_probes::local_alignment::LocalAlignment;
use weatherlens_probes::trend::Direction;
use weatherlens_training::evaluate::ScoreRow;

use crate::study::{RunOutcome, StudyAlignment};

/// Pooled alignment of one ordered pair of models in one region (rows = sample × node pairs), with its
/// controls.
#[derive(Debug, Clone, Serialize)]
pub struct PairAlignment {
    pub region: Region,
    /// X (row model) and Y (column model); CKNNA depends on the order.
    pub a: String,
    pub b: String,
    /// Rows used (a seeded subsample of `rows_total` when that exceeds the study's `pooled_rows`).
    pub n: usize,
    pub rows_total: usize,
    pub metrics: MetricSet<f64>,
    pub null: Option<MetricSet<NullSummary>>,
    /// 95 % intervals over subsamples of whole sample times.
    pub ci: Option<MetricSet<[f64; 2]>>,
    /// The untrained control (the two architectures at initialisation) and both input baselines.
    pub controls: Controls,
    /// metric − max(controls), with its interval and verdict.
    pub excess: Option<MetricSet<Excess>>,
    pub warnings: Vec<String>,
    /// The two runs differ only in their seed (the analogue of two GraphCast versions).
    pub seeds_only: bool,
}

/// Per-model physics figures read from the run's `analysis.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelDynamics {
    pub model: String,
    pub decay_rho: f64,
    pub decay_ci: Option<[f64; 2]>,
    /// Permutation p-value of the decay trend over the layers.
    pub decay_p: f64,
    pub straightness: f64,
    /// mean |v_{L-1}| / mean |v_0|: how much the increments shrink (below 1) or grow over the depth.
    pub last_over_first: Option<f64>,
    /// The velocity verdict (significance and size) and why.
    pub verdict: Direction,
    pub verdict_reason: String,
    /// The centroid verdict of v_i, when a centroid was computed.
    pub centroid_verdict_v: Option<Direction>,
    /// Whether the run's processor is the no-message control.
    pub control: bool,
    pub centroid_trend_x: Option<f64>,
    pub centroid_trend_v: Option<f64>,
    /// Jacobian asymmetry ‖J − Jᵀ‖/‖J‖ of each layer's increment (0 = locally a gradient field), from
    /// `jacobian/jacobian.json`.
    pub jacobian_asymmetry: Vec<f64>,
}

/// Everything in `report.json`: what [`collect`] gathers from the run folders and [`render`] writes.
#[derive(Debug, Clone, Serialize)]
pub struct StudyReport {
    pub study: String,
    pub runs: Vec<RunOutcome>,
    pub headline_channel: String,
    pub headline_lead_hours: i64,
    pub scorecard: Vec<ScoreRow>,
    pub error_models: Vec<String>,
    pub error_correlation: Vec<f64>,
    pub error_cases: usize,
    /// Mean Pearson r over pairs of AI models, and between AI models and the physics model.
    pub mean_r_ai_ai: Option<f64>,
    pub mean_r_ai_physics: Option<f64>,
    pub alignment: Vec<PairAlignment>,
    /// The seed's protocol: per-location alignment with regional (and seasonal) summaries.
    pub local_alignment: Option<LocalAlignment>,
    /// Why an alignment figure is missing, when one is.
    pub alignment_notes: Vec<String>,
    pub alignment_settings: StudyAlignment,
    pub dynamics: Vec<ModelDynamics>,
    /// Per model: (layer, |v_i| / |X_i|) and (layer, centroid of v_i), for the overlaid curves.
    pub velocity_curves: Vec<(String, Vec<(f64, f64)>)>,
    pub centroid_curves: Vec<(String, Vec<(f64, f64)>)>,
}

/// The file-name label of a region.
pub(crate) fn region_label(region: Region) -> &'static str {
    match region {
        Region::Global => "global",
        Region::Tropics => "tropics",
        Region::NhMid => "nh-mid",
        Region::ShMid => "sh-mid",
    }
}

//! Every report the application writes, and the one place figures are drawn:
//!
//! - [`plot`]: line plots and annotated heat maps, PNG + SVG;
//! - [`skill`]: RMSE-by-lead plots and the skill section (evaluation);
//! - [`analysis`]: one recording's velocity and centroid figures and `report.md`;
//! - [`jacobian`]: the gradient-flow diagnostics' tables, plots and `jacobian.md`;
//! - [`study`]: the cross-model report of a study, collected from run folders and then rendered;
//! - [`demo`]: `runs/demo/report.md`, the demo model's skill and the study's headline figures.

pub mod analysis;
pub mod demo;
pub mod jacobian;
pub mod plot;
pub mod skill;
pub mod study;

use std::path::PathBuf;

use weatherlens_models::files::FileError;

pub use plot::PlotError;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// An input of the report (a run's output file) is missing or unreadable.
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("no run of the study finished; nothing to compare")]
    NothingFinished,
}

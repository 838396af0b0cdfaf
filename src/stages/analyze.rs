//! The analyze stage: velocity decay, straightness and spectral centroid of a recording (a recording folder or
//! a plain recording file from any model), written as `analysis.json`, `velocity.csv`, `centroid.csv`, plots
//! and `report.md`.

use std::path::Path;

use weatherlens_probes::analysis::{self, Analysis, AnalyzeOptions};

use super::{StageError, output_unit};
use crate::report::analysis::write_analysis;

/// Analyses the recording at `recording` and writes the outputs into `out_dir` as one unit.
pub fn analyze(
    recording: &Path,
    out_dir: &Path,
    bootstrap_draws: usize,
) -> Result<Analysis, StageError> {
    analyze_with(
        recording,
        out_dir,
        &AnalyzeOptions {
            bootstrap_draws,
            ..AnalyzeOptions::default()
        },
    )
}

/// [`analyze`] with every option.
pub fn analyze_with(
    recording: &Path,
    out_dir: &Path,
    options: &AnalyzeOptions,
) -> Result<Analysis, StageError> {
    let unit = output_unit(out_dir, "analysis.json")?;
    let result = analysis::analyze(recording, options)?;
    write_analysis(&result, unit.path())?;
    unit.commit()?;
    Ok(result)
}

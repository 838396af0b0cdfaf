//! The analyze stage: velocity decay, straightness and spectral centroid of a recording, written as
//! `analysis.json`, `velocity.csv`, `centroid.csv`, plots and `report.md`.

use std::path::Path;

use weatherlens_probes::analysis::{self, Analysis};

use super::{StageError, output_unit};
use crate::report::analysis::write_analysis;

/// Analyses the recording in `recording` and writes the outputs into `out_dir` as one unit.
pub fn analyze(
    recording: &Path,
    out_dir: &Path,
    bootstrap_draws: usize,
) -> Result<Analysis, StageError> {
    let unit = output_unit(out_dir, "analysis.json")?;
    let result = analysis::analyze(recording, bootstrap_draws)?;
    write_analysis(&result, unit.path())?;
    unit.commit()?;
    Ok(result)
}

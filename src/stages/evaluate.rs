//! The evaluate stage: forecasts over the test split scored against persistence, climatology and the physics
//! baseline, written as `scorecard.csv` (`model,variable,lead_hours,rmse,acc,n_cases`), `errors.csv`
//! (`model,variable,lead_hours,init_time,rmse`, one row per case) and one RMSE plot per channel.

use std::path::Path;

use burn::prelude::Device;
use weatherlens_models::files::{self, FileError};
use weatherlens_models::fused::Kernels;
use weatherlens_training::evaluate::{self, ERRORS_CSV, Evaluation, SCORECARD_CSV, ScoreRow};

use super::{StageError, output_unit};
use crate::output::write_csv;
use crate::report::skill::scorecard_plots;

/// Evaluates the newest checkpoint of `checkpoint` (a WeatherLens run; an imported GraphCast is refused,
/// naming why) and writes the tables and plots into `out_dir`, which
/// appears whole or not at all (a folder written aside, then renamed).
pub fn evaluate(
    checkpoint: &Path,
    out_dir: &Path,
    device: &Device,
    kernels: Kernels,
) -> Result<Evaluation, StageError> {
    if super::import::is_imported(checkpoint) {
        return Err(StageError::Invalid(format!(
            "{}: an imported GraphCast has no test split of its own to evaluate on (evaluation needs a data set \
             in its own layout, with its forcings); forecast an input file with `weatherlens forecast` instead",
            checkpoint.display()
        )));
    }
    let unit = output_unit(out_dir, SCORECARD_CSV)?;
    let evaluation = evaluate::evaluate(checkpoint, device, kernels)?;
    write_csv(&unit.path().join(SCORECARD_CSV), &evaluation.scores)?;
    write_csv(&unit.path().join(ERRORS_CSV), &evaluation.cases)?;
    scorecard_plots(&evaluation, unit.path())?;
    unit.commit()?;
    Ok(evaluation)
}

/// Reads a `scorecard.csv` by its header.
pub fn read_scorecard(path: &Path) -> Result<Vec<ScoreRow>, FileError> {
    let bytes = files::read(path)?;
    csv::Reader::from_reader(bytes.as_slice())
        .deserialize()
        .collect::<Result<Vec<ScoreRow>, _>>()
        .map_err(|e| FileError::new("reading", path, std::io::Error::other(e)))
}

//! One function per pipeline stage, each called by its subcommand and by the study:
//!
//! ```text
//! train     config -> run folder with checkpoints and metrics            (train.rs)
//! import    GraphCast params + stats -> imported checkpoint folder        (import.rs)
//! forecast  checkpoint + input file -> forecast NetCDF                    (forecast.rs)
//! evaluate  checkpoint -> scorecard.csv, errors.csv, RMSE plots           (evaluate.rs)
//! probe     checkpoint -> recording of X_i, v_i, X_{i+1}                  (probe.rs)
//! analyze   recording -> velocity decay, spectral centroid, report        (analyze.rs)
//! compare   two recordings -> alignment with controls, pooled or per location (compare.rs)
//! jacobian  checkpoint -> Jacobian asymmetry and interaction range        (jacobian.rs)
//! ```
//!
//! Stages taking a checkpoint accept either kind through [`loaded::load`]: a WeatherLens run or an imported
//! GraphCast.

pub mod analyze;
pub mod compare;
pub mod evaluate;
pub mod forecast;
pub mod import;
pub mod jacobian;
pub mod loaded;
pub mod probe;
pub mod train;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use weatherlens_models::files::FileError;
use weatherlens_models::graphcast::GraphCastError;
use weatherlens_probes::analysis::AnalysisError;
use weatherlens_probes::jacobian::JacobianError;
use weatherlens_probes::record::RecordError;
use weatherlens_training::checkpoint::CheckpointError;
use weatherlens_training::dataset::DatasetError;
use weatherlens_training::evaluate::EvaluateError;
use weatherlens_training::graphcast::GraphCastDataError;
use weatherlens_training::restore::{RestoreError, Restored};
use weatherlens_training::trainer::TrainError;
use weatherlens_training::windows::{FrameSource, WindowError};

use crate::report::ReportError;

/// Why a stage failed; each variant carries its library's error, which names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Evaluate(#[from] EvaluateError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error(transparent)]
    Recording(#[from] weatherlens_probes::recording::RecordingError),
    #[error(transparent)]
    Pairing(#[from] weatherlens_probes::pairing::PairingError),
    #[error(transparent)]
    Alignment(#[from] weatherlens_probes::alignment::AlignmentError),
    #[error(transparent)]
    Jacobian(#[from] JacobianError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Plot(#[from] crate::report::PlotError),
    #[error(transparent)]
    Windows(#[from] WindowError),
    #[error(transparent)]
    Data(#[from] DatasetError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A GraphCast checkpoint (`.npz`) that cannot be imported.
    #[error(transparent)]
    GraphCast(#[from] GraphCastError),
    /// GraphCast's statistics, input files or rollout.
    #[error(transparent)]
    GraphCastData(#[from] GraphCastDataError),
    #[error("{0}")]
    Invalid(String),
}

/// The processor layers `requested` (empty = all of `num_layers`), or an error naming one that does not exist.
pub fn chosen_layers(requested: &[usize], num_layers: usize) -> Result<Vec<usize>, StageError> {
    if let Some(&bad) = requested.iter().find(|&&l| l >= num_layers) {
        return Err(StageError::Invalid(format!(
            "layer {bad} does not exist: the model has {num_layers} layers (0..{})",
            num_layers.saturating_sub(1)
        )));
    }
    Ok(if requested.is_empty() {
        (0..num_layers).collect()
    } else {
        requested.to_vec()
    })
}

/// The run folder of a run or checkpoint folder.
pub fn run_folder(path: &Path) -> PathBuf {
    let is_checkpoint = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("checkpoint-"));
    match (is_checkpoint, path.parent()) {
        (true, Some(parent)) => parent.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

/// The two normalised states a forecast from each of `anchors` starts from (the data at t − 6 h and t).
///
/// -> (previous, current), each [anchors, grid_points, channels]
pub fn initial_states(
    restored: &Restored,
    windows: &weatherlens_training::windows::Windows,
    anchors: &[usize],
) -> Result<(Tensor<3>, Tensor<3>), StageError> {
    let dataset = &restored.dataset;
    let mut frames = Vec::with_capacity(anchors.len() * 2 * dataset.frame_len());
    for &anchor in anchors {
        let ([before, now], _) = windows.sample_times(anchor);
        for t in [before, now] {
            frames.extend(dataset.read_frames(t..t + 1)?);
        }
    }
    let n = anchors.len();
    let states = restored.emulator.states(&frames, 2 * n);
    let [_, grid_points, channels] = states.dims();
    let states = states.reshape([n, 2, grid_points, channels]);
    let previous = states
        .clone()
        .slice([0..n, 0..1])
        .reshape([n, grid_points, channels]);
    let current = states
        .slice([0..n, 1..2])
        .reshape([n, grid_points, channels]);
    Ok((previous, current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_choice_and_run_folder() {
        assert_eq!(chosen_layers(&[], 3).unwrap(), [0, 1, 2]);
        assert_eq!(chosen_layers(&[2, 0], 3).unwrap(), [2, 0]);
        let message = chosen_layers(&[3], 3).unwrap_err().to_string();
        assert!(
            message.contains("layer 3") && message.contains("0..2"),
            "{message}"
        );
        assert_eq!(
            run_folder(Path::new("runs/a/checkpoint-00000010")),
            Path::new("runs/a")
        );
        assert_eq!(run_folder(Path::new("runs/a")), Path::new("runs/a"));
    }
}

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
use weatherlens_models::files::{AtomicDir, FileError};
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

/// The list of a stage folder's files, written last: a folder is a finished stage's output when this file is
/// there and every file it lists is too ([`is_complete`]).
pub const OUTPUTS_FILE: &str = "outputs.json";

/// A stage's output folder being written: a temporary folder renamed into place by [`StageOutput::commit`]
/// after [`OUTPUTS_FILE`] is written into it.
pub struct StageOutput {
    unit: AtomicDir,
}

impl StageOutput {
    /// The temporary folder: write the stage's files here.
    pub fn path(&self) -> &Path {
        self.unit.path()
    }

    /// Lists the files written, then renames the folder onto its destination.
    pub fn commit(self) -> Result<(), StageError> {
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(self.path()).map_err(FileError::at("listing", self.path()))?
        {
            let entry = entry.map_err(FileError::at("listing", self.path()))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "files": names }))
            .map_err(|e| StageError::Invalid(e.to_string()))?;
        weatherlens_models::files::write_atomic(&self.path().join(OUTPUTS_FILE), &json)?;
        self.unit.commit()?;
        Ok(())
    }
}

/// Whether `dir` holds a finished stage's outputs: its [`OUTPUTS_FILE`] and every file listed there.
pub fn is_complete(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(dir.join(OUTPUTS_FILE)) else {
        return false;
    };
    let Ok(list) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    list["files"].as_array().is_some_and(|files| {
        files
            .iter()
            .all(|f| f.as_str().is_some_and(|name| dir.join(name).is_file()))
    })
}

/// Starts writing a stage's output folder `out_dir` as one unit ([`StageOutput`]: it appears whole when
/// committed, or not at all). A folder already there is replaced only when it is empty or holds this stage's
/// outputs (`marker`, e.g. `scorecard.csv`): a mistyped `--out` never removes other work.
pub fn output_unit(out_dir: &Path, marker: &str) -> Result<StageOutput, StageError> {
    if out_dir.is_file() {
        return Err(StageError::Invalid(format!(
            "{}: is a file; the output is a folder",
            out_dir.display()
        )));
    }
    let occupied = std::fs::read_dir(out_dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied && !out_dir.join(marker).exists() {
        return Err(StageError::Invalid(format!(
            "{}: holds files that are not this stage's output (no {marker}); choose an empty or new folder",
            out_dir.display()
        )));
    }
    Ok(StageOutput {
        unit: AtomicDir::create(out_dir)?,
    })
}

/// The processor layers `requested` in ascending order (empty = all of `num_layers`), or an error naming one
/// that does not exist.
pub fn chosen_layers(requested: &[usize], num_layers: usize) -> Result<Vec<usize>, StageError> {
    if let Some(&bad) = requested.iter().find(|&&l| l >= num_layers) {
        return Err(StageError::Invalid(format!(
            "layer {bad} does not exist: the model has {num_layers} layers (0..{})",
            num_layers.saturating_sub(1)
        )));
    }
    let mut layers = if requested.is_empty() {
        (0..num_layers).collect()
    } else {
        requested.to_vec()
    };
    layers.sort_unstable();
    layers.dedup();
    Ok(layers)
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
        assert_eq!(chosen_layers(&[2, 0, 2], 3).unwrap(), [0, 2]);
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

//! A run's outcome on disk, `<run>/outcome.json`: written when the run ends, in the study's process or as a
//! Slurm array task, so that the report can be rebuilt from the run folders alone (`study --report-only`).
//!
//! The file holds the run config it was written for: an outcome of another config of the same run (the study
//! was edited since) does not count. A run that starts removes its old outcome first, so a run stopped midway
//! (killed, out of time) leaves none and is reported as such.

use std::path::PathBuf;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};
use weatherlens_models::files::{self, FileError};
use weatherlens_training::config::RunConfig;

use super::{ExecuteOptions, PlannedRun, RunOutcome, execute};

/// The file in each run folder.
pub const OUTCOME_FILE: &str = "outcome.json";

#[derive(Debug, Serialize, Deserialize)]
struct OutcomeFile {
    outcome: RunOutcome,
    config: RunConfig,
}

fn path(run: &PlannedRun) -> PathBuf {
    run.dir.join(OUTCOME_FILE)
}

/// Writes `outcome` of `run` into the run folder.
pub fn record(run: &PlannedRun, outcome: &RunOutcome) -> Result<(), FileError> {
    let file = OutcomeFile {
        outcome: outcome.clone(),
        config: run.config.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| FileError::new("serialising", &path(run), std::io::Error::other(e)))?;
    files::create_dir_all(&run.dir)?;
    files::write_atomic(&path(run), &bytes)
}

/// Removes the recorded outcome of `run`, if any.
pub fn forget(run: &PlannedRun) -> Result<(), FileError> {
    match std::fs::remove_file(path(run)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(FileError::new("removing", &path(run), e))
        }
        _ => Ok(()),
    }
}

/// The recorded outcome of `run`; a run with no outcome, an unreadable one or one written for another config
/// counts as failed, with the reason.
pub fn recorded(run: &PlannedRun) -> RunOutcome {
    let file = path(run);
    let failed = |reason: String| RunOutcome {
        name: run.name.clone(),
        dir: run.dir.clone(),
        error: Some(reason),
        failed_stage: None,
        skipped: Vec::new(),
    };
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return failed(format!(
                "no outcome recorded ({}): the run has not run, or was stopped before it ended",
                file.display()
            ));
        }
        Err(e) => return failed(format!("{}: {e}", file.display())),
    };
    match serde_json::from_slice::<OutcomeFile>(&bytes) {
        Err(e) => failed(format!("{}: {e}", file.display())),
        Ok(saved) if saved.config != run.config || saved.outcome.name != run.name => {
            failed(format!(
                "{}: recorded for another config of this run; run the study again",
                file.display()
            ))
        }
        Ok(saved) => RunOutcome {
            dir: run.dir.clone(),
            ..saved.outcome
        },
    }
}

/// Executes `run` ([`execute`]) and records its outcome; an outcome from before is removed first.
pub fn execute_recorded(
    run: &PlannedRun,
    options: &ExecuteOptions,
    device: &Device,
) -> Result<RunOutcome, FileError> {
    forget(run)?;
    let outcome = execute(run, options, device);
    record(run, &outcome)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::Stage;

    fn run(dir: &std::path::Path, seed: u64) -> PlannedRun {
        let text = include_str!("../../tests/configs/tiny.toml")
            .replace("seed = 7", &format!("seed = {seed}"));
        PlannedRun {
            name: "a".into(),
            config: RunConfig::parse(&text, std::path::Path::new("tiny.toml")).unwrap(),
            dir: dir.join("a"),
        }
    }

    #[test]
    fn an_outcome_round_trips_and_a_missing_or_stale_one_is_a_failure() {
        let temp = tempfile::tempdir().unwrap();
        let planned = run(temp.path(), 7);
        let missing = recorded(&planned);
        assert!(missing.error.unwrap().contains("no outcome recorded"));

        let outcome = RunOutcome {
            name: "a".into(),
            dir: planned.dir.clone(),
            error: Some("evaluate: the test split is empty".into()),
            failed_stage: Some(Stage::Evaluate),
            skipped: vec![Stage::Train],
        };
        record(&planned, &outcome).unwrap();
        let back = recorded(&planned);
        assert_eq!(back.error, outcome.error);
        assert_eq!(back.failed_stage, Some(Stage::Evaluate));
        assert_eq!(back.skipped, [Stage::Train]);

        // The same run planned with another seed: the file no longer speaks for it.
        let stale = recorded(&run(temp.path(), 8));
        assert!(stale.error.unwrap().contains("another config"));

        forget(&planned).unwrap();
        forget(&planned).unwrap();
        assert!(
            recorded(&planned)
                .error
                .unwrap()
                .contains("no outcome recorded")
        );

        std::fs::write(planned.dir.join(OUTCOME_FILE), "{").unwrap();
        assert!(recorded(&planned).error.unwrap().contains(OUTCOME_FILE));
    }
}

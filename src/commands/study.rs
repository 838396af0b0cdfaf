//! `weatherlens study --config FILE`: a list or grid of runs, each trained, evaluated, probed and analysed,
//! then compared in `runs/<study>/report/`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::prelude::Device;
use clap::Args;
use weatherlens_probes::study::{StudyConfig, execute_all};
use weatherlens_probes::study_report::{StudyReport, write_study_report};

#[derive(Debug, Args)]
pub struct StudyArgs {
    /// Study config (TOML): a base run config and the runs or grid that vary it.
    #[arg(long)]
    pub config: PathBuf,
    /// Folder holding `<study>/<run>/` (default: runs).
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Permutation-null draws for each alignment figure.
    #[arg(long, default_value_t = 20)]
    pub nulls: usize,
}

/// Run a study and write its report; returns the report and its folder.
pub fn run_study(
    config_path: &Path,
    runs_root: &Path,
    nulls: usize,
    device: &Device,
    quiet: bool,
) -> Result<(StudyReport, PathBuf)> {
    let study = StudyConfig::load(config_path)?;
    let planned = study.plan(config_path, runs_root)?;
    let outcomes = execute_all(&planned, &study.probe, study.parallel_runs, device, !quiet);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.name.as_str())
        .collect();
    let out = runs_root.join(&study.name).join("report");
    let report = write_study_report(&study.name, &planned, &outcomes, nulls, &out)?;
    if !failed.is_empty() {
        tracing::warn!(
            "failed runs: {} (see {}/report.md)",
            failed.join(", "),
            out.display()
        );
    }
    Ok((report, out))
}

pub fn run(args: StudyArgs, device: &Device, quiet: bool) -> Result<()> {
    let (report, out) = run_study(&args.config, &args.runs, args.nulls, device, quiet)?;
    println!("{}", weatherlens_probes::study_report::markdown(&report));
    tracing::info!("wrote {}", out.display());
    if report.runs.iter().all(|r| r.error.is_some()) {
        bail!("every run of the study failed");
    }
    Ok(())
}

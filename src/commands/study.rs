//! `weatherlens study --config FILE`: a list or grid of runs, each trained, evaluated, probed and analysed,
//! then compared in `runs/<study>/report/`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use weatherlens::report::study::{StudyReport, collect, markdown, render};
use weatherlens::study::{ExecuteOptions, StudyConfig, execute_all};
use weatherlens_models::files::AtomicDir;

use super::Context;

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

/// Runs a study and writes its report; returns the report and its folder.
pub fn run_study(
    config_path: &Path,
    runs_root: &Path,
    nulls: usize,
    context: &Context,
) -> Result<(StudyReport, PathBuf)> {
    let study = StudyConfig::load(config_path)?;
    let planned = study.plan(config_path, runs_root)?;
    let options = ExecuteOptions {
        probe: study.probe.clone(),
        kernels: context.kernels,
        progress: context.progress,
    };
    let outcomes = execute_all(&planned, &options, study.parallel_runs, &context.device);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.name.as_str())
        .collect();
    let out = runs_root.join(&study.name).join("report");
    weatherlens_models::files::remove_stale_temporaries_of(
        &runs_root.join(&study.name),
        &["report"],
    )?;
    let report = collect(&study.name, &planned, &outcomes, nulls)?;
    let unit = AtomicDir::create(&out)?;
    render(&report, unit.path())?;
    unit.commit()?;
    if !failed.is_empty() {
        tracing::warn!(
            "failed runs: {} (see {}/report.md)",
            failed.join(", "),
            out.display()
        );
    }
    Ok((report, out))
}

pub fn run(args: StudyArgs, context: &Context) -> Result<()> {
    let (report, out) = run_study(&args.config, &args.runs, args.nulls, context)?;
    println!("{}", markdown(&report));
    tracing::info!("wrote {}", out.display());
    if report.runs.iter().all(|r| r.error.is_some()) {
        bail!("every run of the study failed");
    }
    Ok(())
}

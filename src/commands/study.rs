//! `weatherlens study --config FILE`: a list or grid of runs, each trained, evaluated, probed and analysed,
//! then compared in `runs/<study>/report/`; in this process (the default) or as Slurm jobs
//! (`--dispatch slurm`, whose tasks run `--run-index K` and whose report job runs `--report-only`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use weatherlens::report::study::{StudyReport, collect, markdown, render};
use weatherlens::study::slurm::{self, JobCommand};
use weatherlens::study::{
    ExecuteOptions, PlannedRun, RunOutcome, StudyConfig, execute_all, outcome,
};
use weatherlens_models::files::AtomicDir;

use super::{Context, print_json};

/// Where a study's runs execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Dispatch {
    /// In this process, `parallel_runs` at a time.
    #[default]
    Local,
    /// As a Slurm job array (one task per run) and a report job after it.
    Slurm,
}

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
    /// `local` runs the study here; `slurm` submits one array task per run and a report job after them (sbatch
    /// must reach the cluster) and prints the job ids as JSON.
    #[arg(long, value_enum, default_value_t = Dispatch::Local)]
    pub dispatch: Dispatch,
    /// With `--dispatch slurm`: wait until the report job has ended, print the report, and exit non-zero
    /// unless every run task and the report job completed.
    #[arg(long)]
    pub wait: bool,
    /// Run only run K of the study (0-based, in plan order), recording its outcome in its folder; exits 1 when
    /// the run fails. What each Slurm array task runs.
    #[arg(long, value_name = "K", conflicts_with_all = ["report_only", "wait"])]
    pub run_index: Option<usize>,
    /// Build the report from the run folders alone (each run's recorded outcome and outputs), running
    /// nothing. What the Slurm report job runs.
    #[arg(long, conflicts_with = "wait")]
    pub report_only: bool,
}

/// Collects the report of `outcomes` from the run folders and writes it into `runs/<study>/report/`.
fn write_report(
    study: &StudyConfig,
    planned: &[PlannedRun],
    outcomes: &[RunOutcome],
    runs_root: &Path,
    nulls: usize,
) -> Result<(StudyReport, PathBuf)> {
    let out = runs_root.join(&study.name).join("report");
    weatherlens_models::files::remove_stale_temporaries_of(
        &runs_root.join(&study.name),
        &["report"],
    )?;
    let report = collect(&study.name, planned, outcomes, nulls, &study.alignment)?;
    let unit = AtomicDir::create(&out)?;
    render(&report, unit.path())?;
    unit.commit()?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.name.as_str())
        .collect();
    if !failed.is_empty() {
        tracing::warn!(
            "failed runs: {} (see {}/report.md)",
            failed.join(", "),
            out.display()
        );
    }
    Ok((report, out))
}

fn options(study: &StudyConfig, context: &Context) -> ExecuteOptions {
    ExecuteOptions {
        probe: study.probe.clone(),
        kernels: context.kernels,
        progress: context.progress,
    }
}

/// Runs a study in this process and writes its report; returns the report and its folder.
pub fn run_study(
    config_path: &Path,
    runs_root: &Path,
    nulls: usize,
    context: &Context,
) -> Result<(StudyReport, PathBuf)> {
    let study = StudyConfig::load(config_path)?;
    let planned = study.plan(config_path, runs_root)?;
    for run in &planned {
        outcome::forget(run)?;
    }
    let outcomes = execute_all(
        &planned,
        &options(&study, context),
        study.parallel_runs,
        &context.device,
    );
    for (run, outcome) in planned.iter().zip(&outcomes) {
        outcome::record(run, outcome)?;
    }
    write_report(&study, &planned, &outcomes, runs_root, nulls)
}

/// The command line of the study's Slurm jobs: this binary with the same global flags and study arguments.
/// The jobs run in this working directory, so relative paths (`--runs`, the data) keep their meaning and the
/// report names the run folders as an in-process study does.
fn job_command(args: &StudyArgs, context: &Context) -> Result<JobCommand> {
    let program = std::env::current_exe().context("locating the weatherlens binary")?;
    let config = std::fs::canonicalize(&args.config)
        .with_context(|| format!("{}: cannot resolve the path", args.config.display()))?;
    let runs = &args.runs;
    let text = |p: &Path| p.to_string_lossy().to_string();
    Ok(JobCommand {
        program,
        args: vec![
            "--device".into(),
            context.device_kind.name().into(),
            "--kernels".into(),
            context.kernels.name().into(),
            "study".into(),
            "--config".into(),
            text(&config),
            "--runs".into(),
            text(runs),
            "--nulls".into(),
            args.nulls.to_string(),
        ],
    })
}

fn dispatch_to_slurm(args: &StudyArgs, context: &Context) -> Result<()> {
    let study = StudyConfig::load(&args.config)?;
    let planned = study.plan(&args.config, &args.runs)?;
    let submission = slurm::submit(
        &study.name,
        &args.runs.join(&study.name),
        &planned,
        &study.slurm,
        &job_command(args, context)?,
    )?;
    tracing::info!(
        "submitted {} runs as Slurm array job {} and the report as job {}; scripts and logs in {}",
        planned.len(),
        submission.array_job,
        submission.report_job,
        submission.folder.display()
    );
    if !args.wait {
        return print_json(&submission);
    }
    let jobs = slurm::wait(&submission, Duration::from_secs(1))?;
    eprint!("{}", jobs.table());
    let report_md = submission.report.join("report.md");
    if jobs.report.completed()
        && let Ok(text) = std::fs::read_to_string(&report_md)
    {
        println!("{text}");
    }
    if !jobs.succeeded() {
        let failed: Vec<String> = jobs
            .runs
            .iter()
            .chain(std::iter::once(&jobs.report))
            .filter(|j| !j.completed())
            .map(|j| format!("{} {}", j.name, j.state))
            .collect();
        bail!(
            "study `{}`: {} (report: {}; logs: {})",
            study.name,
            failed.join(", "),
            if jobs.report.completed() {
                report_md.display().to_string()
            } else {
                "not written".into()
            },
            submission.folder.display()
        );
    }
    Ok(())
}

pub fn run(args: StudyArgs, context: &Context) -> Result<()> {
    let local = args.dispatch == Dispatch::Local;
    if args.wait && local {
        bail!("--wait goes with --dispatch slurm");
    }
    if !local && (args.run_index.is_some() || args.report_only) {
        bail!("--run-index and --report-only run here: drop --dispatch slurm");
    }
    if !local {
        return dispatch_to_slurm(&args, context);
    }
    if let Some(index) = args.run_index {
        let study = StudyConfig::load(&args.config)?;
        let planned = study.plan(&args.config, &args.runs)?;
        let Some(run) = planned.get(index) else {
            bail!(
                "{}: --run-index {index}: the study has {} runs (0..{})",
                args.config.display(),
                planned.len(),
                planned.len().saturating_sub(1)
            );
        };
        tracing::info!("study `{}`: run `{}` ({index})", study.name, run.name);
        let outcome = outcome::execute_recorded(run, &options(&study, context), &context.device)?;
        if let Some(error) = outcome.error {
            bail!("run `{}` failed: {error}", run.name);
        }
        tracing::info!(
            "run `{}` finished (skipped: {:?})",
            run.name,
            outcome.skipped
        );
        return Ok(());
    }
    let (report, out) = if args.report_only {
        let study = StudyConfig::load(&args.config)?;
        let planned = study.plan(&args.config, &args.runs)?;
        let outcomes: Vec<RunOutcome> = planned.iter().map(outcome::recorded).collect();
        write_report(&study, &planned, &outcomes, &args.runs, args.nulls)?
    } else {
        run_study(&args.config, &args.runs, args.nulls, context)?
    };
    println!("{}", markdown(&report));
    tracing::info!("wrote {}", out.display());
    if report.runs.iter().all(|r| r.error.is_some()) {
        bail!("every run of the study failed");
    }
    Ok(())
}

//! `weatherlens demo`, README's main job: make the built-in data set if absent, run the demo study (the demo
//! model `configs/demo.toml` plus two other processors, each trained, evaluated, probed and analysed), and write
//! `runs/demo/report.md` with the demo model's skill and the study's headline figures.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use weatherlens::progress;
use weatherlens::report::demo::{DemoReport, demo_markdown};
use weatherlens::stages::evaluate::read_scorecard;
use weatherlens::study::StudyConfig;
use weatherlens_models::files;
use weatherlens_training::config::{DataSource, RunConfig};
use weatherlens_training::data;
use weatherlens_training::evaluate::Evaluation;

use super::Context;
use super::study::run_study;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The study to run (its base config is the demo model).
    #[arg(long, default_value = "configs/study-demo.toml")]
    pub study: PathBuf,
    /// Where the demo report goes.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Folder holding the study's runs.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Permutation-null draws for the alignment figures.
    #[arg(long, default_value_t = 20)]
    pub nulls: usize,
}

pub fn run(args: DemoArgs, context: &Context) -> Result<()> {
    let started = Instant::now();
    let study = StudyConfig::load(&args.study)?;
    let base_path = args
        .study
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(&study.base);
    let base = RunConfig::load(&base_path)?;
    if base.data.source == DataSource::Synthetic {
        let bar = progress::bar(
            "built-in atmosphere",
            (4.0 * base.data.synthetic.days).round() as u64,
            context.progress,
        );
        let (file, made) =
            data::ensure_synthetic(&base.data, |done, _| bar.set_position(done as u64))?;
        bar.finish_and_clear();
        tracing::info!("{} {}", if made { "made" } else { "using" }, file.display());
    }
    let data_seconds = started.elapsed().as_secs_f64();

    let (study_report, study_dir) = run_study(&args.study, &args.runs, args.nulls, context)?;
    // The demo model is the study's run without overrides: the first one.
    let Some(demo_run) = study_report.runs.first() else {
        bail!("{}: the study has no runs", args.study.display());
    };
    if let Some(error) = &demo_run.error {
        bail!("the demo model `{}` failed: {error}", demo_run.name);
    }
    let scorecard_path = demo_run.dir.join("evaluation").join("scorecard.csv");
    let evaluation = Evaluation {
        model: demo_run.name.clone(),
        scores: read_scorecard(&scorecard_path)?,
        cases: Vec::new(),
        forecasts_per_second: f64::NAN,
    };

    let md = demo_markdown(&DemoReport {
        base: &base,
        base_path: &base_path,
        evaluation: &evaluation,
        study: &study_report,
        study_dir: &study_dir,
        data_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    });
    files::create_dir_all(&args.out)?;
    let report_path = args.out.join("report.md");
    files::write_atomic(&report_path, md.as_bytes())?;
    println!("{md}");
    tracing::info!("wrote {}", report_path.display());
    Ok(())
}

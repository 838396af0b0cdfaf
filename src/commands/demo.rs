//! `weatherlens demo`: the built-in data set (made if absent) -> train `configs/demo.toml` -> evaluate ->
//! `runs/demo/report.md`. Re-running reuses finished steps.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::Device;
use clap::Args;
use weatherlens_probes::report;
use weatherlens_training::checkpoint;
use weatherlens_training::config::{DataSource, RunConfig};
use weatherlens_training::data;
use weatherlens_training::trainer::{self, RunState, TrainOptions};

use super::evaluate::evaluate_into;
use super::progress_bar;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "configs/demo.toml")]
    pub config: PathBuf,
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Retrain even if the run folder already holds the finished model.
    #[arg(long)]
    pub fresh: bool,
}

pub fn run(args: DemoArgs, device: &Device, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let config = RunConfig::load(&args.config)?;
    if config.data.source == DataSource::Synthetic {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            progress_bar(
                "built-in atmosphere",
                (4.0 * config.data.synthetic.days).round() as u64,
            )
        };
        let (file, made) =
            data::ensure_synthetic(&config.data, |done, _| bar.set_position(done as u64))?;
        bar.finish_and_clear();
        tracing::info!("{} {}", if made { "made" } else { "using" }, file.display());
    }
    let data_seconds = started.elapsed().as_secs_f64();

    let train_dir = args.out.join("train");
    let finished = checkpoint::latest(&train_dir)
        .ok()
        .and_then(|c| checkpoint::load_run::<RunState>(&c).ok())
        .is_some_and(|s| s.step == config.training.steps && s.config == config);
    let train_started = Instant::now();
    if args.fresh || !finished {
        trainer::train(
            &config,
            &TrainOptions {
                run_dir: train_dir.clone(),
                resume: None,
                progress_bar: !quiet,
                stop_at: None,
            },
            device,
        )?;
    } else {
        tracing::info!("{} already holds the trained model", train_dir.display());
    }
    let train_seconds = train_started.elapsed().as_secs_f64();

    let eval_started = Instant::now();
    let (evaluation, eval_dir) =
        evaluate_into(&train_dir, Some(args.out.join("evaluation")), device)?;
    let eval_seconds = eval_started.elapsed().as_secs_f64();

    let metrics = trainer::read_metrics(&train_dir)?;
    let last = metrics.last();
    let mut md = String::new();
    let _ = writeln!(md, "# WeatherLens demo\n");
    let _ = writeln!(
        md,
        "Model `{}`: {:?} processor, {} layers, latent {}, mesh level {}; trained {} steps on the built-in \
         shallow-water atmosphere (`{}`).\n",
        config.name,
        config.model.processor,
        config.model.num_layers,
        config.model.latent_size,
        config.model.mesh_level,
        config.training.steps,
        config.data.path.display()
    );
    if let Some(last) = last {
        let _ = writeln!(
            md,
            "Final training loss {:.4}{} (normalised residual units; `train/metrics.csv`).\n",
            last.train_loss,
            metrics
                .iter()
                .rev()
                .find_map(|r| r.val_loss)
                .map_or(String::new(), |v| format!(", validation loss {v:.4}"))
        );
    }
    let _ = writeln!(md, "## Skill\n");
    md.push_str(&report::skill_markdown(
        &evaluation,
        &config.evaluation.headline_channel,
    ));
    let _ = writeln!(
        md,
        "\nPlots: `evaluation/rmse_<channel>.png`; tables: `evaluation/scorecard.csv`, `evaluation/errors.csv`.\n"
    );
    let _ = writeln!(
        md,
        "## Time\n\ndata {data_seconds:.0} s, training {train_seconds:.0} s, evaluation {eval_seconds:.0} s \
         ({:.1} forecasts/s), total {:.0} s.",
        evaluation.forecasts_per_second,
        started.elapsed().as_secs_f64()
    );
    let report_path = args.out.join("report.md");
    let tmp = args.out.join(".report.md.tmp");
    std::fs::write(&tmp, &md)
        .and_then(|_| std::fs::rename(&tmp, &report_path))
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!("{md}");
    tracing::info!("wrote {} and {}", report_path.display(), eval_dir.display());
    Ok(())
}

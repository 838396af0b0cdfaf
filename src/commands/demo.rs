//! `weatherlens demo`, README's main job: make the built-in data set if absent, run the demo study (the demo
//! model `configs/demo.toml` plus two other processors, each trained, evaluated, probed and analysed), and write
//! `runs/demo/report.md` with the demo model's skill and the study's headline figures.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use clap::Args;
use weatherlens_probes::report;
use weatherlens_probes::study::StudyConfig;
use weatherlens_training::config::{DataSource, RunConfig};
use weatherlens_training::data;
use weatherlens_training::evaluate::{Evaluation, read_scorecard};

use super::progress_bar;
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

pub fn run(args: DemoArgs, device: &Device, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let study = StudyConfig::load(&args.study)?;
    let base_path = args
        .study
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(&study.base);
    let base = RunConfig::load(&base_path)?;
    if base.data.source == DataSource::Synthetic {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            progress_bar(
                "built-in atmosphere",
                (4.0 * base.data.synthetic.days).round() as u64,
            )
        };
        let (file, made) =
            data::ensure_synthetic(&base.data, |done, _| bar.set_position(done as u64))?;
        bar.finish_and_clear();
        tracing::info!("{} {}", if made { "made" } else { "using" }, file.display());
    }
    let data_seconds = started.elapsed().as_secs_f64();

    let (study_report, study_dir) = run_study(&args.study, &args.runs, args.nulls, device, quiet)?;
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

    let mut md = String::new();
    let _ = writeln!(md, "# WeatherLens demo\n");
    let _ = writeln!(
        md,
        "Demo model `{}` (`{}`): {:?} processor, {} layers, latent {}, mesh level {}, {} training steps on the \
         built-in shallow-water atmosphere (`{}`). Its files: `{}`.\n",
        demo_run.name,
        base_path.display(),
        base.model.processor,
        base.model.num_layers,
        base.model.latent_size,
        base.model.mesh_level,
        base.training.steps,
        base.data.path.display(),
        demo_run.dir.display()
    );
    let _ = writeln!(md, "## Skill of the demo model\n");
    md.push_str(&report::skill_markdown(
        &evaluation,
        &base.evaluation.headline_channel,
    ));
    let _ = writeln!(
        md,
        "\n## The study\n\nThe full comparison of {} models (skill, velocity decay, spectral centroid, alignment \
         with nulls, error correlation) is in `{}/report.md` (and `report.html`, one file with the plots).\n",
        study_report.runs.len(),
        study_dir.display()
    );
    for d in &study_report.dynamics {
        let _ = writeln!(
            md,
            "- `{}`: decay ρ = {:.2}{}, centroid trend of v_i ρ = {}",
            d.model,
            d.decay_rho,
            d.decay_ci
                .map_or(String::new(), |[lo, hi]| format!(" [{lo:.2}, {hi:.2}]")),
            d.centroid_trend_v
                .map_or("n/a".into(), |t| format!("{t:.2}"))
        );
    }
    if let Some(p) = study_report
        .alignment
        .iter()
        .find(|p| p.region == weatherlens_probes::inputs::Region::Global)
    {
        let _ = writeln!(
            md,
            "- CKNNA(`{}`, `{}`) at the last layer = {:.2} (null 95th percentile {})",
            p.a,
            p.b,
            p.metrics.cknna,
            p.null
                .as_ref()
                .map_or("n/a".into(), |n| format!("{:.2}", n.cknna.p95))
        );
    }
    if let (Some(aa), Some(ap)) = (study_report.mean_r_ai_ai, study_report.mean_r_ai_physics) {
        let _ = writeln!(
            md,
            "- day-{} error correlation: mean r among AI models {aa:.2}, AI vs physics {ap:.2} ({} cases)",
            study_report.headline_lead_hours / 24,
            study_report.error_cases
        );
    }
    let _ = writeln!(
        md,
        "\n## Time\n\ndata {data_seconds:.0} s, study {:.0} s, total {:.0} s.",
        started.elapsed().as_secs_f64() - data_seconds,
        started.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let report_path = args.out.join("report.md");
    let tmp = args.out.join(".report.md.tmp");
    std::fs::write(&tmp, &md)
        .and_then(|_| std::fs::rename(&tmp, &report_path))
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!("{md}");
    tracing::info!("wrote {}", report_path.display());
    Ok(())
}

//! `weatherlens analyze REC`: velocity decay, straightness and spectral centroid of a probe recording.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use weatherlens::report::analysis::analysis_markdown;
use weatherlens::stages::analyze::analyze;
use weatherlens::stages::probe::recording_dir;

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A recording folder (or a run folder holding `probes/`).
    pub recording: PathBuf,
    /// Output folder (default: <recording>/../analysis).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bootstrap draws for the decay statistic's interval.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Print analysis.json on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let recording = recording_dir(&args.recording);
    let out = args.out.unwrap_or_else(|| {
        recording
            .parent()
            .map_or_else(|| PathBuf::from("analysis"), |p| p.join("analysis"))
    });
    let result = analyze(&recording, &out, args.bootstrap)?;
    if args.json {
        super::print_json(&result)
    } else {
        println!("{}", analysis_markdown(&result));
        tracing::info!("wrote {}", out.display());
        Ok(())
    }
}

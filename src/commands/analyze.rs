//! `weatherlens analyze REC`: velocity decay, straightness and spectral centroid of a recording: a recording
//! folder (or a run folder holding `probes/`) or a plain recording file exported from any model.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use weatherlens::report::analysis::analysis_markdown;
use weatherlens::stages::analyze::analyze;
use weatherlens::stages::probe::recording_dir;

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A recording folder (or a run folder holding `probes/`), or a plain recording file (docs/recording.md).
    pub recording: PathBuf,
    /// Output folder (default: <recording>/../analysis for a folder, <file stem>-analysis beside a file).
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
    let recording = if args.recording.is_dir() {
        recording_dir(&args.recording)
    } else {
        args.recording.clone()
    };
    let out = args.out.unwrap_or_else(|| {
        if recording.is_dir() {
            recording
                .parent()
                .map_or_else(|| PathBuf::from("analysis"), |p| p.join("analysis"))
        } else {
            let stem = recording
                .file_stem()
                .map_or_else(|| "recording".into(), |s| s.to_string_lossy().to_string());
            recording.with_file_name(format!("{stem}-analysis"))
        }
    });
    let result = analyze(&recording, &out, args.bootstrap)?;
    for warning in &result.warnings {
        tracing::warn!("{warning}");
    }
    if args.json {
        super::print_json(&result)
    } else {
        println!("{}", analysis_markdown(&result));
        tracing::info!("wrote {}", out.display());
        Ok(())
    }
}

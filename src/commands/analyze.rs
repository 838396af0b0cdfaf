//! `weatherlens analyze REC`: velocity decay, straightness and spectral centroid of a recording: a recording
//! folder (or a run folder holding `probes/`) or a plain recording file exported from any model.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use weatherlens::report::analysis::analysis_markdown;
use weatherlens::stages::analyze::analyze;
use weatherlens::stages::probe::recording_dir;

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A recording folder (or a run folder holding `probes/`), or a plain recording file (docs/recording.md).
    pub recording: PathBuf,
    /// Output folder (default: <run>/analysis for a run's `probes` folder, <folder>-analysis beside another
    /// recording folder, <file stem>-analysis beside a file).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bootstrap draws for the decay statistic's interval.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Print analysis.json on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where `analyze` writes when no `--out` is given: `<run>/analysis` for a run's `probes` folder (the layout a
/// run folder has), `<folder>-analysis` beside any other recording folder (so `probes` and `untrained` of one run
/// never share an output), `<file stem>-analysis` beside a plain recording file.
fn default_out(recording: &Path) -> PathBuf {
    let name = recording
        .file_name()
        .map_or_else(|| "recording".into(), |s| s.to_string_lossy().to_string());
    if recording.is_dir() && name == "probes" {
        return recording.with_file_name("analysis");
    }
    let stem = if recording.is_dir() {
        name
    } else {
        recording
            .file_stem()
            .map_or_else(|| "recording".into(), |s| s.to_string_lossy().to_string())
    };
    recording.with_file_name(format!("{stem}-analysis"))
}

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let recording = if args.recording.is_dir() {
        recording_dir(&args.recording)
    } else {
        args.recording.clone()
    };
    let out = args.out.unwrap_or_else(|| default_out(&recording));
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

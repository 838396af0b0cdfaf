//! Training samples per second through the loader, from disk and from memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use weatherlens_training::dataset::{
    Channel, Dataset, Reader, VariableSelection, iso8601, write_era5,
};
use weatherlens_training::windows::{FrameSource, Split, TimeRange, WindowConfig, Windows};

use weatherlens_models::files::FileError;

use super::BenchError;

/// Size of the data set the loader benchmark cuts samples from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LoaderBenchSize {
    /// 6-hourly times (4 a day).
    pub times: usize,
    pub channels: usize,
    pub lat: usize,
    pub lon: usize,
    pub batch_size: usize,
    /// Target steps per sample (two input frames + `lead_steps` target frames are read per sample).
    pub lead_steps: usize,
}

/// Training samples per second through [`Windows::batches`] (the trainer's background loader).
#[derive(Debug, Clone, Serialize)]
pub struct LoaderBenchmark {
    pub size: LoaderBenchSize,
    /// Training-split samples read in each pass.
    pub samples: usize,
    /// Reading frame by frame from the NetCDF file ([`Reader`]).
    pub disk_samples_per_s: f64,
    /// From the data set held in memory (what the trainer does).
    pub memory_samples_per_s: f64,
    /// Megabytes of frames delivered per second from disk (inputs and targets, f32).
    pub disk_mb_per_s: f64,
}

/// Writes a data set of `size` into `dir` (deleted afterwards) and times one epoch of training samples from the
/// file and from memory.
pub fn bench_loader(dir: &Path, size: LoaderBenchSize) -> Result<LoaderBenchmark, BenchError> {
    if size.times < 8 + 4 * size.lead_steps || size.batch_size == 0 || size.channels == 0 {
        return Err(BenchError::Invalid(format!(
            "the loader benchmark needs at least {} times, a batch and a channel",
            8 + 4 * size.lead_steps
        )));
    }
    let first_hour = 30 * 365 * 24; // 1999-12-25T00Z: any whole hour works.
    let time_hours: Vec<i64> = (0..size.times as i64).map(|t| first_hour + 6 * t).collect();
    let channels: Vec<Channel> = (0..size.channels)
        .map(|c| Channel {
            name: format!("z{}", 1000 - c),
            variable: "z".into(),
            level: Some((1000 - c) as f64),
            units: "m**2 s**-2".into(),
        })
        .collect();
    let frame_len = size.channels * size.lat * size.lon;
    let dataset = Dataset {
        channels,
        lat: (0..size.lat)
            .map(|i| 90.0 - 180.0 * (i as f64 + 0.5) / size.lat as f64)
            .collect(),
        lon: (0..size.lon)
            .map(|j| 360.0 * j as f64 / size.lon as f64)
            .collect(),
        time_hours: time_hours.clone(),
        data: (0..size.times * frame_len)
            .map(|n| (n % 9973) as f32)
            .collect(),
    };
    let path = dir.join("weatherlens-loader-bench.nc");
    write_era5(&path, &dataset)?;
    let result = time_loader(&path, &dataset, size);
    std::fs::remove_file(&path).map_err(FileError::at("removing", &path))?;
    result
}

fn time_loader(
    path: &Path,
    dataset: &Dataset,
    size: LoaderBenchSize,
) -> Result<LoaderBenchmark, BenchError> {
    let hours = &dataset.time_hours;
    // Train on the first 80 % of the times, validate and test on 10 % each.
    let at = |fraction: f64| {
        iso8601(hours[((hours.len() as f64 * fraction) as usize).min(hours.len() - 1)])
    };
    let end = iso8601(hours[hours.len() - 1] + 6);
    let range = |start: String, end: String| TimeRange { start, end };
    let config = WindowConfig {
        step_hours: 6,
        lead_steps: size.lead_steps,
        batch_size: size.batch_size,
        seed: 0,
        prefetch_batches: 2,
        train: range(iso8601(hours[0]), at(0.8)),
        val: range(at(0.8), at(0.9)),
        test: range(at(0.9), end),
    };
    let windows = Windows::new(&config, hours)?;
    let samples = windows.sample_count(Split::Train);
    let epoch = |source: Arc<dyn FrameSource>| -> Result<f64, BenchError> {
        let started = Instant::now();
        let mut seen = 0;
        for batch in windows.batches(source, Split::Train, 0)? {
            seen += batch?.len();
        }
        debug_assert_eq!(seen, samples);
        Ok(seen as f64 / started.elapsed().as_secs_f64())
    };
    let reader = Reader::open(&[path], &VariableSelection::for_channels(&dataset.channels))?;
    let disk_samples_per_s = epoch(Arc::new(reader))?;
    let memory_samples_per_s = epoch(Arc::new(dataset.clone()))?;
    let frame_mb = (dataset.frame_len() * 4) as f64 / 1e6;
    Ok(LoaderBenchmark {
        size,
        samples,
        disk_samples_per_s,
        memory_samples_per_s,
        disk_mb_per_s: disk_samples_per_s * (2 + size.lead_steps) as f64 * frame_mb,
    })
}

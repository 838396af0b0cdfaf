//! Throughput of writing and reading ERA5-layout files, for the CLI's `bench` command (sizes too big for tests).

use std::path::Path;
use std::time::Instant;

use weatherlens_training::dataset::{
    Channel, DatasetError, Era5Writer, Reader, VariableSelection, channel_name,
};

/// Size of the synthetic file to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoBenchSize {
    pub times: usize,
    /// Pressure levels of each of the variables z, t, u, v (0..=13 levels from 1000 hPa up).
    pub levels: usize,
    pub lat: usize,
    pub lon: usize,
    /// Times per chunk when writing and reading.
    pub times_per_chunk: usize,
}

/// Measured figures (wall clock, one run).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IoBenchmark {
    pub size: IoBenchSize,
    pub channels: usize,
    pub file_bytes: u64,
    pub write_mb_per_s: f64,
    /// Sequential reading by chunks with unpacking, checks and reorientation.
    pub read_mb_per_s: f64,
    /// Reading one frame (all channels at one time) at a time, as a training sampler from disk does.
    pub single_frame_ms: f64,
}

/// Writes a file of `size` into `dir` (deleted afterwards), reads it back by chunks and frame by frame.
pub fn bench_netcdf_io(dir: &Path, size: IoBenchSize) -> Result<IoBenchmark, DatasetError> {
    // ERA5's 13 WeatherBench levels (hPa), from the surface up.
    const LEVELS: [f64; 13] = [
        1000.0, 925.0, 850.0, 700.0, 600.0, 500.0, 400.0, 300.0, 250.0, 200.0, 150.0, 100.0, 50.0,
    ];
    let levels = &LEVELS[..size.levels.min(LEVELS.len())];
    let channels: Vec<Channel> = ["z", "t", "u", "v"]
        .iter()
        .flat_map(|v| {
            levels.iter().map(move |&l| Channel {
                name: channel_name(v, Some(l)),
                variable: v.to_string(),
                level: Some(l),
                units: String::new(),
            })
        })
        .collect();
    let lat: Vec<f64> = (0..size.lat)
        .map(|i| 90.0 - 180.0 * (i as f64 + 0.5) / size.lat as f64)
        .collect();
    let lon: Vec<f64> = (0..size.lon)
        .map(|j| 360.0 * j as f64 / size.lon as f64)
        .collect();
    let time_hours: Vec<i64> = (0..size.times as i64).map(|t| 6 * t).collect();
    let path = dir.join("weatherlens-io-bench.nc");
    let frame_len = channels.len() * size.lat * size.lon;
    let chunk = size.times_per_chunk.max(1);

    let started = Instant::now();
    let mut writer = Era5Writer::create(&path, &channels, &lat, &lon, &time_hours)?;
    for first in (0..size.times).step_by(chunk) {
        let count = chunk.min(size.times - first);
        let frames: Vec<f32> = (0..count * frame_len)
            .map(|n| ((first * frame_len + n) % 9973) as f32)
            .collect();
        writer.write_times(first, &frames)?;
    }
    writer.finish()?;
    let write_seconds = started.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&path)
        .map_err(|source| DatasetError::Io {
            path: path.clone(),
            error: source,
        })?
        .len();

    let reader = Reader::open(&[&path], &VariableSelection::for_channels(&channels))?;
    let started = Instant::now();
    for chunk in reader.chunks(chunk) {
        chunk?;
    }
    let read_seconds = started.elapsed().as_secs_f64();
    let frames_to_time = size.times.min(20);
    let started = Instant::now();
    for t in 0..frames_to_time {
        reader.read_times(t..t + 1)?;
    }
    let single_frame_ms = 1e3 * started.elapsed().as_secs_f64() / frames_to_time.max(1) as f64;
    drop(reader);
    std::fs::remove_file(&path).map_err(|source| DatasetError::Io {
        path: path.clone(),
        error: source,
    })?;

    let megabytes = (size.times * frame_len * 4) as f64 / 1e6;
    Ok(IoBenchmark {
        size,
        channels: channels.len(),
        file_bytes,
        write_mb_per_s: megabytes / write_seconds,
        read_mb_per_s: megabytes / read_seconds,
        single_frame_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_benchmark_runs_and_reports_the_file_size() {
        let dir = tempfile::tempdir().unwrap();
        let size = IoBenchSize {
            times: 3,
            levels: 2,
            lat: 4,
            lon: 8,
            times_per_chunk: 2,
        };
        let figures = bench_netcdf_io(dir.path(), size).unwrap();
        assert_eq!(figures.channels, 8);
        // 3 times x 8 channels x 32 points x 4 bytes of data, plus headers.
        assert!(figures.file_bytes > 3 * 8 * 32 * 4);
        assert!(figures.read_mb_per_s > 0.0 && figures.write_mb_per_s > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

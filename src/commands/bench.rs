//! `weatherlens bench ...`: figures for speed and memory (never asserted by tests). Each subcommand prints
//! lines with units, or with `--json` one JSON object on stdout.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand, ValueEnum};
use weatherlens::bench::alignment::alignment_speed;
use weatherlens::bench::atmosphere::benchmark_simulation;
use weatherlens::bench::io::{IoBenchSize, bench_netcdf_io};
use weatherlens::bench::loader::{LoaderBenchSize, bench_loader};
use weatherlens::bench::mesh::graph_build;
use weatherlens::bench::model::{ModelBenchOptions, model_step};
use weatherlens::bench::probe::recording_overhead;
use weatherlens::bench::processor::{export_mesh as write_mesh_json, processor_step};
use weatherlens::bench::sht::benchmark_sht;
use weatherlens_models::config::ProcessorKind;
use weatherlens_models::grid::{LatLonGrid, LatitudeOrder, PoleRows};
use weatherlens_training::config::RunConfig;

use super::Context;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The processor-only train step of DESIGN.md (forward + backward + Adam update).
    Processor {
        #[arg(long, default_value_t = 4)]
        mesh_level: u32,
        #[arg(long, default_value_t = 128)]
        latent: usize,
        #[arg(long, default_value_t = 8)]
        layers: usize,
        /// Timed steps after one warm-up step.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, value_enum, default_value_t = KindArg::Gnn)]
        kind: KindArg,
        /// Also write the multimesh's senders and receivers to this JSON file (for bench/peers/).
        #[arg(long, value_name = "FILE")]
        export_mesh: Option<PathBuf>,
        /// Only write --export-mesh; time nothing.
        #[arg(long, requires = "export_mesh")]
        export_only: bool,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The full encoder + processor + decoder of a run config on random inputs shaped like its data:
    /// inference forward, train step (forward, loss, backward, AdamW), samples/s, peak memory.
    Model {
        #[arg(long, default_value = "configs/demo.toml")]
        config: PathBuf,
        /// `m5`: mesh level 5, latent 128, 16 layers (flags below still override it).
        #[arg(long, value_enum)]
        preset: Option<PresetArg>,
        #[arg(long)]
        mesh_level: Option<u32>,
        #[arg(long)]
        latent: Option<usize>,
        #[arg(long)]
        layers: Option<usize>,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Samples per batch (default: the config's data.windows.batch_size).
        #[arg(long)]
        batch_size: Option<usize>,
        /// Grid rows (equiangular, poles excluded); with --n-lon replaces the config's data grid.
        #[arg(long, requires = "n_lon")]
        n_lat: Option<usize>,
        #[arg(long, requires = "n_lat")]
        n_lon: Option<usize>,
        /// Channels per state (default: the config's data).
        #[arg(long)]
        channels: Option<usize>,
        /// Timed repetitions of forward and of the train step, after one warm-up each.
        #[arg(long, default_value_t = 3)]
        steps: usize,
        #[arg(long)]
        json: bool,
    },
    /// Multimesh and grid <-> mesh graph construction time.
    Mesh {
        #[arg(long, default_value_t = 5)]
        mesh_level: u32,
        /// Grid rows; the default 181 with --poles is ERA5's 1° grid.
        #[arg(long, default_value_t = 181)]
        n_lat: usize,
        #[arg(long, default_value_t = 360)]
        n_lon: usize,
        /// Whether the grid has rows on the poles (ERA5) or half a step from them (WeatherBench).
        #[arg(long, value_enum, default_value_t = PolesArg::Included)]
        poles: PolesArg,
        #[arg(long)]
        json: bool,
    },
    /// Spherical-harmonic analysis and synthesis at T42 and T85.
    Sht {
        #[arg(long, default_value_t = 20)]
        repeats: usize,
        #[arg(long)]
        json: bool,
    },
    /// Simulated days per wall-clock second of the built-in atmosphere at a run config's resolution.
    Atmosphere {
        #[arg(long, default_value = "configs/demo.toml")]
        config: PathBuf,
        /// Days integrated after spin-up.
        #[arg(long, default_value_t = 30.0)]
        days: f64,
        /// Spin-up days (default 0: the speed does not depend on the flow; the config's spin-up is long).
        #[arg(long, default_value_t = 0.0)]
        spin_up_days: f64,
        #[arg(long)]
        json: bool,
    },
    /// NetCDF write / read throughput and training samples per second through the loader.
    Io {
        /// Folder for the temporary files (deleted afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// 6-hourly times in the throughput file.
        #[arg(long, default_value_t = 48)]
        times: usize,
        /// Pressure levels of each of z, t, u, v (at most 13).
        #[arg(long, default_value_t = 13)]
        levels: usize,
        #[arg(long, default_value_t = 121)]
        n_lat: usize,
        #[arg(long, default_value_t = 240)]
        n_lon: usize,
        /// Loader data set: times, channels and grid (default: 60 days of the demo's 4 channels at 5.625°).
        #[arg(long, default_value_t = 240)]
        loader_times: usize,
        #[arg(long, default_value_t = 4)]
        loader_channels: usize,
        #[arg(long, default_value_t = 32)]
        loader_n_lat: usize,
        #[arg(long, default_value_t = 64)]
        loader_n_lon: usize,
        #[arg(long, default_value_t = 2)]
        batch_size: usize,
        #[arg(long, default_value_t = 2)]
        lead_steps: usize,
        #[arg(long)]
        json: bool,
    },
    /// What recording costs: a config's inference forward with and without a probe recorder keeping X_i, v_i
    /// and X_{i+1} of every processor layer at every mesh node.
    Probe {
        #[arg(long, default_value = "configs/demo.toml")]
        config: PathBuf,
        /// Timed forward passes of each kind, after one warm-up each.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[arg(long)]
        json: bool,
    },
    /// CKA and CKNNA between two random representations.
    Alignment {
        #[arg(long, default_value_t = 10_000)]
        samples: usize,
        #[arg(long, default_value_t = 256)]
        features: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Gnn,
    Transformer,
    Shared,
}

impl From<KindArg> for ProcessorKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Gnn => ProcessorKind::Gnn,
            KindArg::Transformer => ProcessorKind::Transformer,
            KindArg::Shared => ProcessorKind::Shared,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PresetArg {
    /// Mesh level 5, latent 128, 16 layers.
    M5,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PolesArg {
    Included,
    Excluded,
}

pub fn run(args: BenchArgs, context: &Context) -> Result<()> {
    let (device, kernels) = (&context.device, context.kernels);
    match args.what {
        BenchCommand::Processor {
            mesh_level,
            latent,
            layers,
            steps,
            kind,
            export_mesh,
            export_only,
            json,
        } => {
            if let Some(path) = &export_mesh {
                write_mesh_json(mesh_level, path)?;
                tracing::info!("wrote the R{mesh_level} multimesh to {}", path.display());
                if export_only {
                    return Ok(());
                }
            }
            let result = processor_step(
                mesh_level,
                latent,
                layers,
                steps,
                kind.into(),
                kernels,
                device,
            )?;
            if json {
                return super::print_json(&result);
            }
            println!(
                "processor train step, {kind:?} R{mesh_level} D{latent} L{layers} ({} nodes, {} edges) on {} \
                 ({} threads, {} kernels): {:.1} ms/step (median of {}), {:.1} GFLOP/s, peak RSS {}",
                result.nodes,
                result.edges,
                result.backend,
                result.threads,
                result.kernels,
                result.ms_per_step,
                result.steps,
                result.gflops,
                mib(result.peak_rss_mib)
            );
            Ok(())
        }
        BenchCommand::Model {
            config,
            preset,
            mesh_level,
            latent,
            layers,
            kind,
            batch_size,
            n_lat,
            n_lon,
            channels,
            steps,
            json,
        } => {
            let run_config = RunConfig::load(&config)?;
            let (preset_level, preset_latent, preset_layers) = match preset {
                Some(PresetArg::M5) => (Some(5), Some(128), Some(16)),
                None => (None, None, None),
            };
            let options = ModelBenchOptions {
                mesh_level: mesh_level.or(preset_level),
                latent: latent.or(preset_latent),
                layers: layers.or(preset_layers),
                processor: kind.map(Into::into),
                batch_size,
                grid: n_lat.zip(n_lon),
                channels,
                steps,
            };
            let r = model_step(&run_config, &options, kernels, device)
                .with_context(|| format!("benchmarking the model of {}", config.display()))?;
            if json {
                return super::print_json(&r);
            }
            println!(
                "model {:?} R{} D{} L{} ({} parameters) on a {}x{} grid, {} channels, batch {}, on {} ({} threads, \
                 {} kernels)",
                r.model.processor,
                r.model.mesh_level,
                r.model.latent_size,
                r.model.num_layers,
                r.parameters,
                r.n_lat,
                r.n_lon,
                r.channels,
                r.batch_size,
                r.backend,
                r.threads,
                r.kernels
            );
            println!(
                "  graph: {} mesh nodes, {} mesh edges, {} grid2mesh edges, {} mesh2grid edges, built in {:.1} ms",
                r.mesh_nodes, r.mesh_edges, r.grid2mesh_edges, r.mesh2grid_edges, r.graph_build_ms
            );
            if r.mesh_nodes_without_grid_senders > 0 {
                println!(
                    "  note: {} mesh nodes receive from no grid point (grid coarse for this mesh level)",
                    r.mesh_nodes_without_grid_senders
                );
            }
            println!(
                "  forward (inference): {:.1} ms/batch, {:.2} samples/s",
                r.forward_ms, r.forward_samples_per_s
            );
            println!(
                "  train step (fwd + bwd + AdamW): {:.1} ms/batch, {:.2} samples/s (median of {})",
                r.train_step_ms, r.train_samples_per_s, r.steps
            );
            println!("  peak RSS {}", mib(r.peak_rss_mib));
            Ok(())
        }
        BenchCommand::Mesh {
            mesh_level,
            n_lat,
            n_lon,
            poles,
            json,
        } => {
            let poles = match poles {
                PolesArg::Included => PoleRows::Included,
                PolesArg::Excluded => PoleRows::Excluded,
            };
            let grid = LatLonGrid::equiangular(n_lat, n_lon, poles, LatitudeOrder::Descending)?;
            let figures = graph_build(&grid, mesh_level)?;
            if json {
                return super::print_json(&figures);
            }
            println!(
                "graph build, R{mesh_level} multimesh ({} nodes, {} edges) + {n_lat}x{n_lon} grid ({} points, \
                 {} grid2mesh, {} mesh2grid edges): {:.1} ms total = multimesh {:.1} + grid2mesh {:.1} + \
                 mesh2grid {:.1} ms + node and edge features",
                figures.mesh_nodes,
                figures.mesh_edges,
                figures.grid_points,
                figures.grid2mesh_edges,
                figures.mesh2grid_edges,
                figures.total_ms,
                figures.multimesh_ms,
                figures.grid2mesh_ms,
                figures.mesh2grid_ms
            );
            Ok(())
        }
        BenchCommand::Sht { repeats, json } => {
            let transforms = benchmark_sht(repeats);
            if json {
                return super::print_json(&serde_json::json!({ "transforms": transforms }));
            }
            for t in &transforms {
                println!(
                    "spherical harmonics T{} ({}x{} grid): analysis {:.2} ms, synthesis {:.2} ms (median of {})",
                    t.truncation, t.n_lat, t.n_lon, t.analysis_ms, t.synthesis_ms, t.repeats
                );
            }
            Ok(())
        }
        BenchCommand::Atmosphere {
            config,
            days,
            spin_up_days,
            json,
        } => {
            let run_config = RunConfig::load(&config)?;
            let mut atmosphere = run_config.data.synthetic.atmosphere.clone();
            atmosphere.spin_up_days = spin_up_days;
            let r = benchmark_simulation(&atmosphere, days)?;
            if json {
                return super::print_json(&r);
            }
            println!(
                "built-in atmosphere T{} (dt {} s, output {}x{}): {:.1} simulated days in {:.2} s = {:.1} \
                 days per wall second ({} threads)",
                r.truncation,
                r.time_step_s,
                atmosphere.output_n_lat,
                atmosphere.output_n_lon,
                r.simulated_days,
                r.wall_s,
                r.days_per_second,
                r.threads
            );
            Ok(())
        }
        BenchCommand::Io {
            dir,
            times,
            levels,
            n_lat,
            n_lon,
            loader_times,
            loader_channels,
            loader_n_lat,
            loader_n_lon,
            batch_size,
            lead_steps,
            json,
        } => {
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            let netcdf = bench_netcdf_io(
                &dir,
                IoBenchSize {
                    times,
                    levels,
                    lat: n_lat,
                    lon: n_lon,
                    times_per_chunk: 8,
                },
            )?;
            let loader = bench_loader(
                &dir,
                LoaderBenchSize {
                    times: loader_times,
                    channels: loader_channels,
                    lat: loader_n_lat,
                    lon: loader_n_lon,
                    batch_size,
                    lead_steps,
                },
            )?;
            if json {
                return super::print_json(
                    &serde_json::json!({ "netcdf": netcdf, "loader": loader }),
                );
            }
            println!(
                "NetCDF4 {} times x {} channels x {}x{} ({:.0} MB on disk): write {:.0} MB/s, read {:.0} MB/s, \
                 one frame {:.2} ms",
                times,
                netcdf.channels,
                n_lat,
                n_lon,
                netcdf.file_bytes as f64 / 1e6,
                netcdf.write_mb_per_s,
                netcdf.read_mb_per_s,
                netcdf.single_frame_ms
            );
            println!(
                "loader, {} samples of {} frames ({} channels x {}x{}), batch {}: {:.0} samples/s from disk \
                 ({:.0} MB/s), {:.0} samples/s from memory",
                loader.samples,
                2 + lead_steps,
                loader_channels,
                loader_n_lat,
                loader_n_lon,
                batch_size,
                loader.disk_samples_per_s,
                loader.disk_mb_per_s,
                loader.memory_samples_per_s
            );
            Ok(())
        }
        BenchCommand::Probe {
            config,
            steps,
            json,
        } => {
            let run_config = RunConfig::load(&config)?;
            let scratch =
                tempfile::tempdir().context("creating a scratch folder for the recording")?;
            let r = recording_overhead(&run_config, steps, scratch.path(), kernels, device)
                .with_context(|| format!("timing the recording of {}", config.display()))?;
            if json {
                return super::print_json(&r);
            }
            println!(
                "forward of {} (batch {}): {:.1} ms; recording {} hook points x {} nodes ({:.1} MB per pass): \
                 {:.1} ms, overhead {:+.1} % (medians of {})",
                config.display(),
                r.batch_size,
                r.forward_ms,
                r.points,
                r.mesh_nodes,
                r.bytes_per_forward as f64 / 1e6,
                r.recorded_forward_ms,
                r.overhead_percent,
                r.steps
            );
            Ok(())
        }
        BenchCommand::Alignment {
            samples,
            features,
            k,
            json,
        } => {
            let r = alignment_speed(samples, features, k, 0)?;
            if json {
                return super::print_json(&r);
            }
            println!(
                "alignment, n = {samples}, d = {features}, k = {k} ({} threads): CKA (biased + unbiased) {:.2} s, \
                 CKNNA {:.2} s, all four metrics {:.2} s",
                r.threads, r.cka_seconds, r.cknna_seconds, r.all_metrics_seconds
            );
            Ok(())
        }
    }
}

fn mib(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"))
}

//! Benchmarks that print figures (no timed tests): the processor train step of DESIGN.md, which any other
//! framework can run too (`bench/peers/`), the full model's forward / train step, and the loader.
//!
//! The other figures of the CLI's `bench` command come from helpers beside the code they time:
//! [`weatherlens_models::graph::bench_build`], [`crate::atmosphere::bench`], [`crate::dataset::bench_netcdf_io`]
//! and `weatherlens_probes::alignment::benchmark_alignment`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::Serialize;
use weatherlens_models::config::{ModelConfig, ProcessorKind};
use weatherlens_models::graph::{GraphError, ModelGraph};
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::grid::{GridError, LatLonGrid, LatitudeOrder, PoleRows};
use weatherlens_models::hooks::Hooks;
use weatherlens_models::interaction::EdgeIndex;
use weatherlens_models::mesh::{MeshError, Multimesh};
use weatherlens_models::processor::{MeshContext, Processor};

use crate::atmosphere::{self, AtmosphereConfig};
use crate::config::{DataSource, RunConfig};
use crate::data::{self, DataError};
use crate::dataset::{
    Channel, Dataset, DatasetError, Reader, VariableSelection, iso8601, write_era5,
};
use crate::loss::{loss_weights, weighted_mse};
use crate::trainer::build_model;
use crate::windows::{FrameSource, Split, TimeRange, WindowConfig, WindowError, Windows};

/// Failures of a benchmark a user can cause (bad sizes, unreadable config data, an unwritable folder).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("mesh: {0}")]
    Mesh(#[from] MeshError),
    #[error("grid: {0}")]
    Grid(#[from] GridError),
    #[error("graph: {0}")]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("samples: {0}")]
    Windows(#[from] WindowError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What the processor benchmark measured. The first four keys are DESIGN.md's `bench processor --json`
/// contract; the rest are extra.
#[derive(Debug, Clone, Serialize)]
pub struct StepBenchmark {
    /// Median wall time of one step over the timed steps, in milliseconds.
    pub ms_per_step: f64,
    pub nodes: usize,
    pub edges: usize,
    /// Short backend name, e.g. `flex+autodiff` ([`backend_name`]).
    pub backend: String,
    /// Matmul FLOPs of one step ([`processor_step_flops`]) / median step time, in GFLOP/s.
    pub gflops: f64,
    /// Peak resident memory of the process so far (VmHWM), in MiB; `None` where /proc is unavailable.
    pub peak_rss_mib: Option<f64>,
    pub steps: usize,
    pub mesh_level: u32,
    pub latent: usize,
    pub layers: usize,
    pub kind: ProcessorKind,
    /// Rayon worker threads (burn-flex runs its kernels on rayon's global pool).
    pub threads: usize,
    /// `fused` (the fused CPU kernels, the default) or `plain` (burn's own ops, `--kernels plain`).
    pub kernels: String,
    /// Every timed step, in milliseconds, in order.
    pub step_ms: Vec<f64>,
}

/// Which implementation the model runs: `fused` kernels or `plain` burn ops ([`weatherlens_models::fused`]).
pub fn kernels_name() -> &'static str {
    if weatherlens_models::fused::enabled() {
        "fused"
    } else {
        "plain"
    }
}

/// The processor-only train step: multimesh of `mesh_level`, random node latents x [N, D], edge latents
/// e [E, D] and target [N, D]; `layers` interaction layers (post-LN MLPs); loss = mean((x_L − target)²);
/// Adam (ε = 1e-8, as PyTorch and optax). One warm-up step, then the median of `steps` timed steps.
pub fn processor_step(
    mesh_level: u32,
    latent_size: usize,
    layers: usize,
    steps: usize,
    kind: ProcessorKind,
    device: &Device,
) -> Result<StepBenchmark, BenchError> {
    if latent_size == 0 || layers == 0 || steps == 0 {
        return Err(BenchError::Invalid(
            "latent, layers and steps must be positive".into(),
        ));
    }
    let device = device.clone().autodiff();
    device.seed(0);
    let mesh = Multimesh::new(mesh_level)?;
    let (nodes, edges) = (mesh.num_nodes(), mesh.num_edges());
    let config = ModelConfig {
        mesh_level,
        latent_size,
        num_layers: layers,
        processor: kind,
        ..ModelConfig::default()
    };
    config.validate().map_err(|(key, reason)| {
        BenchError::Invalid(format!("{key} {reason} (from the bench flags)"))
    })?;
    let mut processor = Processor::new(&config, &device);
    let mesh_edges = EdgeIndex::new(mesh.senders(), mesh.receivers(), nodes, nodes, &device);
    let context = MeshContext {
        edges: &mesh_edges,
        attention_edges: None,
    };
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<3>::random([1, nodes, latent_size], normal, &device);
    let e = Tensor::<3>::random([1, edges, latent_size], normal, &device);
    let target = Tensor::<3>::random([1, nodes, latent_size], normal, &device);
    let mut optimiser = AdamConfig::new().with_epsilon(1e-8).init();

    let mut times = Vec::with_capacity(steps);
    for step in 0..=steps {
        let start = Instant::now();
        let out = processor.forward(&context, x.clone(), Some(e.clone()), &Hooks::none());
        let loss = (out - target.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &processor);
        processor = optimiser.step(1e-3, processor, grads);
        // Reading the loss back forces the step to finish on asynchronous backends.
        let _ = loss.into_scalar::<f32>();
        if step > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let step_ms = times.clone();
    let ms_per_step = median(&mut times);
    let flops = processor_step_flops(kind, nodes, edges, latent_size, layers);
    Ok(StepBenchmark {
        ms_per_step,
        nodes,
        edges,
        backend: backend_name(&device),
        gflops: flops / (ms_per_step * 1e-3) / 1e9,
        peak_rss_mib: peak_rss_mib(),
        steps,
        mesh_level,
        latent: latent_size,
        layers,
        kind,
        threads: rayon::current_num_threads(),
        kernels: kernels_name().into(),
        step_ms,
    })
}

/// Matmul FLOPs (2 per multiply-add) of one processor train step, forward + backward ≈ 3 × forward (the
/// backward pass takes one product for the input gradient and one for the weight gradient per forward
/// product). Element-wise work (SiLU, LayerNorm, gathers, the scatter-sum, Adam) is not counted.
///
/// Forward multiply-adds per layer, N nodes, E edges, latent D:
/// - interaction layer (`gnn`, `shared`), as evaluated by `InteractionNetwork::increments` with the factored
///   first edge layer `e·W_e + (x·W_s)[snd] + (x·W_r)[rcv]`: edge MLP E·D² (first layer on e) + 2·N·D² (the
///   sender and receiver products, taken on nodes before the gather) + E·D² (second layer); node MLP
///   N·2D·D + N·D². Total 2·E·D² + 5·N·D². (The plain concatenating form, which the peers in `bench/peers/`
///   run, is 4·E·D² + 3·N·D².)
/// - attention layer (`transformer`, global attention, as the benchmark runs it): Q, K, V and output
///   projections 4·N·D², scores and weighted sum 2·N²·D, the pre-LN MLP 2·N·D². Total 6·N·D² + 2·N²·D.
pub fn processor_step_flops(
    kind: ProcessorKind,
    nodes: usize,
    edges: usize,
    latent: usize,
    layers: usize,
) -> f64 {
    let (n, e, d) = (nodes as f64, edges as f64, latent as f64);
    let multiply_adds_per_layer = match kind {
        ProcessorKind::Gnn | ProcessorKind::Shared => 2.0 * e * d * d + 5.0 * n * d * d,
        ProcessorKind::Transformer => 6.0 * n * d * d + 2.0 * n * n * d,
        ProcessorKind::Selfloop => 2.0 * n * d * d,
    };
    3.0 * 2.0 * multiply_adds_per_layer * layers as f64
}

/// The multimesh's directed edges as JSON, `{"mesh_level", "nodes", "edges", "senders", "receivers"}`, for the
/// peer benchmarks in `bench/peers/` (edge k goes from `senders[k]` to `receivers[k]`).
pub fn export_mesh(mesh_level: u32, path: &Path) -> Result<(), BenchError> {
    #[derive(Serialize)]
    struct MeshFile<'a> {
        mesh_level: u32,
        nodes: usize,
        edges: usize,
        senders: &'a [u32],
        receivers: &'a [u32],
    }
    let mesh = Multimesh::new(mesh_level)?;
    let file = MeshFile {
        mesh_level,
        nodes: mesh.num_nodes(),
        edges: mesh.num_edges(),
        senders: mesh.senders(),
        receivers: mesh.receivers(),
    };
    let io = |source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string(&file).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(path, text).map_err(io)
}

/// Changes to a run config's model and data for `bench model`.
#[derive(Debug, Clone, Default)]
pub struct ModelBenchOptions {
    pub mesh_level: Option<u32>,
    pub latent: Option<usize>,
    pub layers: Option<usize>,
    pub processor: Option<ProcessorKind>,
    pub batch_size: Option<usize>,
    /// Grid rows and columns (equiangular, poles excluded, 90 -> -90); `None` = the config's data grid.
    pub grid: Option<(usize, usize)>,
    /// Channels per state; `None` = the config's data channels.
    pub channels: Option<usize>,
    /// Timed repetitions of each measurement after one warm-up.
    pub steps: usize,
}

/// What the full-model benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModelBenchmark {
    pub backend: String,
    pub model: ModelConfig,
    pub batch_size: usize,
    pub n_lat: usize,
    pub n_lon: usize,
    pub grid_points: usize,
    /// Channels of one state; the model reads two states and predicts one.
    pub channels: usize,
    pub mesh_nodes: usize,
    pub mesh_edges: usize,
    pub grid2mesh_edges: usize,
    pub mesh2grid_edges: usize,
    /// Mesh nodes no grid point sends to (the grid is too coarse for the mesh level where this is > 0).
    pub mesh_nodes_without_grid_senders: usize,
    pub parameters: usize,
    pub graph_build_ms: f64,
    /// Median of one inference forward (no autodiff), a batch of `batch_size` states.
    pub forward_ms: f64,
    /// Median of one train step: forward, GraphCast's weighted MSE, backward, AdamW with gradient clipping
    /// (one-step rollout).
    pub train_step_ms: f64,
    pub forward_samples_per_s: f64,
    pub train_samples_per_s: f64,
    pub peak_rss_mib: Option<f64>,
    pub steps: usize,
    pub threads: usize,
    /// `fused` or `plain` (see [`kernels_name`]).
    pub kernels: String,
}

/// The grid and channel count of the data `config` names, without reading any field: the built-in
/// atmosphere's output grid, or the coordinates of the configured NetCDF files.
pub fn config_data_shape(config: &RunConfig) -> Result<(LatLonGrid, usize), BenchError> {
    match config.data.source {
        DataSource::Synthetic => {
            let atmosphere = &config.data.synthetic.atmosphere;
            let grid = atmosphere_grid(atmosphere)?;
            Ok((grid, atmosphere::frame::CHANNEL_COUNT))
        }
        DataSource::Netcdf => {
            let files = data::netcdf_files(&config.data.path)?;
            let reader = Reader::open(&files, &config.data.variables)?;
            let grid = LatLonGrid::from_coordinates(reader.lat().to_vec(), reader.lon().to_vec())?;
            Ok((grid, reader.channels().len()))
        }
    }
}

/// The output grid of the built-in atmosphere: cell centres, 90 -> -90, longitudes from 0.
fn atmosphere_grid(config: &AtmosphereConfig) -> Result<LatLonGrid, GridError> {
    LatLonGrid::equiangular(
        config.output_n_lat,
        config.output_n_lon,
        PoleRows::Excluded,
        LatitudeOrder::Descending,
    )
}

/// The full encoder–processor–decoder of `config` (with `options` applied) on random inputs shaped like the
/// config's data: inference forward time and train-step time, medians of `options.steps` after one warm-up.
pub fn model_step(
    config: &RunConfig,
    options: &ModelBenchOptions,
    device: &Device,
) -> Result<ModelBenchmark, BenchError> {
    let mut config = config.clone();
    let model_config = &mut config.model;
    model_config.mesh_level = options.mesh_level.unwrap_or(model_config.mesh_level);
    model_config.latent_size = options.latent.unwrap_or(model_config.latent_size);
    model_config.num_layers = options.layers.unwrap_or(model_config.num_layers);
    model_config.processor = options.processor.unwrap_or(model_config.processor);
    model_config
        .validate()
        .map_err(|(key, reason)| BenchError::Invalid(format!("{key} {reason}")))?;
    let batch_size = options.batch_size.unwrap_or(config.data.windows.batch_size);
    if batch_size == 0 || options.steps == 0 {
        return Err(BenchError::Invalid(
            "batch size and steps must be positive".into(),
        ));
    }
    let (grid, channels) = match (options.grid, options.channels) {
        (Some((n_lat, n_lon)), Some(channels)) => (
            LatLonGrid::equiangular(n_lat, n_lon, PoleRows::Excluded, LatitudeOrder::Descending)?,
            channels,
        ),
        (grid, channels) => {
            let (data_grid, data_channels) = config_data_shape(&config)?;
            let grid = match grid {
                Some((n_lat, n_lon)) => LatLonGrid::equiangular(
                    n_lat,
                    n_lon,
                    PoleRows::Excluded,
                    LatitudeOrder::Descending,
                )?,
                None => data_grid,
            };
            (grid, channels.unwrap_or(data_channels))
        }
    };
    if channels == 0 {
        return Err(BenchError::Invalid("channels must be positive".into()));
    }

    let started = Instant::now();
    let graph = ModelGraph::build(&grid, config.model.mesh_level)?;
    let graph_build_ms = started.elapsed().as_secs_f64() * 1e3;
    let points = graph.num_grid_points();
    let attention =
        (config.model.processor == ProcessorKind::Transformer).then_some(config.model.attention);
    let normal = Distribution::Normal(0.0, 1.0);

    // Inference: the plain device, no autodiff graph.
    let forward_ms = {
        let tensors = GraphTensors::new(&graph, attention, device);
        let model = build_model(&config, channels, device);
        let input = Tensor::<3>::random([batch_size, points, 2 * channels], normal, device);
        let mut times = Vec::with_capacity(options.steps);
        for step in 0..=options.steps {
            let start = Instant::now();
            let out = model.forward(&tensors, input.clone(), &Hooks::none());
            // Reading a value back forces the work to finish on asynchronous backends.
            let _ = out.sum().into_scalar::<f32>();
            if step > 0 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        median(&mut times)
    };

    let train_device = device.clone().autodiff();
    let tensors = GraphTensors::new(&graph, attention, &train_device);
    let mut model = build_model(&config, channels, &train_device);
    let parameters = model.num_params();
    let input = Tensor::<3>::random([batch_size, points, 2 * channels], normal, &train_device);
    let target = Tensor::<3>::random([batch_size, points, channels], normal, &train_device);
    let row_weights = grid.latitude_weights();
    let per_point: Vec<f64> = (0..points).map(|p| row_weights[p / grid.n_lon()]).collect();
    let weights = loss_weights(&per_point, &vec![1.0; channels], &train_device);
    // The trainer's optimiser (trainer.rs): AdamW, ε = 1e-8, decoupled weight decay, global-norm clipping.
    let mut optimiser = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.training.weight_decay as f32)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(
            config.training.grad_clip as f32,
        )))
        .init();
    let mut times = Vec::with_capacity(options.steps);
    for step in 0..=options.steps {
        let start = Instant::now();
        let out = model.forward(&tensors, input.clone(), &Hooks::none());
        let loss = weighted_mse(out, target.clone(), &weights);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimiser.step(config.training.lr, model, grads);
        let _ = loss.into_scalar::<f32>();
        if step > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let train_step_ms = median(&mut times);

    Ok(ModelBenchmark {
        backend: backend_name(&train_device),
        model: config.model.clone(),
        batch_size,
        n_lat: grid.n_lat(),
        n_lon: grid.n_lon(),
        grid_points: points,
        channels,
        mesh_nodes: graph.num_mesh_nodes(),
        mesh_edges: graph.mesh_edges().num_edges(),
        grid2mesh_edges: graph.grid2mesh().num_edges(),
        mesh2grid_edges: graph.mesh2grid().num_edges(),
        mesh_nodes_without_grid_senders: graph.mesh_nodes_without_grid_senders(),
        parameters,
        graph_build_ms,
        forward_ms,
        train_step_ms,
        forward_samples_per_s: batch_size as f64 / (forward_ms * 1e-3),
        train_samples_per_s: batch_size as f64 / (train_step_ms * 1e-3),
        peak_rss_mib: peak_rss_mib(),
        steps: options.steps,
        threads: rayon::current_num_threads(),
        kernels: kernels_name().into(),
    })
}

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
    std::fs::remove_file(&path).map_err(|source| BenchError::Io {
        path: path.clone(),
        source,
    })?;
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

/// The median (NaN for no values); sorts `values`.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    }
}

/// A short name of the device's backend: `flex`, `cuda`, `wgpu`, ..., with `+autodiff` when the device
/// records gradients.
pub fn backend_name(device: &Device) -> String {
    let inner = format!("{:?}", device.clone().inner());
    let name = short_backend_name(&inner);
    if device.is_autodiff() {
        format!("{name}+autodiff")
    } else {
        name
    }
}

/// `Device<Flex(Cpu)>` -> `flex`; `Device<Cube(Cuda(CudaDevice { index: 0 }))>` -> `cuda`: the backend, or for
/// burn's cubecl backend the runtime inside it, lower-cased.
fn short_backend_name(debug: &str) -> String {
    let body = debug
        .strip_prefix("Device<")
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(debug);
    let mut names = body
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty());
    let name = match names.next() {
        Some("Cube") => names.next().unwrap_or("cube"),
        Some(name) => name,
        None => "unknown",
    };
    name.to_lowercase()
}

/// Peak resident set size (VmHWM) of this process in MiB, read from /proc/self/status.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn backend_names_are_short() {
        assert_eq!(short_backend_name("Device<Flex(Cpu)>"), "flex");
        assert_eq!(
            short_backend_name("Device<Cube(Cuda(CudaDevice { index: 0 }))>"),
            "cuda"
        );
        assert_eq!(backend_name(&Device::flex()), "flex");
        assert_eq!(backend_name(&Device::flex().autodiff()), "flex+autodiff");
    }

    #[test]
    fn flop_count_of_the_reference_size() {
        // R4, D128, L8: 2,562 nodes, 20,460 edges (DESIGN.md). Per layer 2·E·D² + 5·N·D² multiply-adds,
        // × 2 FLOPs × 3 (forward + backward) × 8 layers.
        let (n, e, d) = (2562.0, 20460.0, 128.0);
        let expected = 3.0 * 2.0 * (2.0 * e * d * d + 5.0 * n * d * d) * 8.0;
        let counted = processor_step_flops(ProcessorKind::Gnn, 2562, 20460, 128, 8);
        assert_eq!(counted, expected);
        assert!((counted / 1e9 - 42.25).abs() < 0.01, "{counted}");
    }

    #[test]
    fn exported_mesh_has_the_multimesh_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.json");
        export_mesh(1, &path).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // Level 1: 42 nodes; 30 + 120 undirected edges of levels 0 and 1 merged, both directions = 300.
        assert_eq!(value["nodes"], 42);
        assert_eq!(value["edges"], 300);
        assert_eq!(value["senders"].as_array().unwrap().len(), 300);
        assert_eq!(value["receivers"].as_array().unwrap().len(), 300);
    }
}

//! The full encoder-processor-decoder of a run config on random inputs shaped like its data: inference
//! forward time and train-step time.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use serde::Serialize;
use weatherlens_models::config::{ModelConfig, ProcessorKind};
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::grid::{GridError, LatLonGrid, LatitudeOrder, PoleRows};
use weatherlens_models::hooks::Hooks;
use weatherlens_training::atmosphere::{self, AtmosphereConfig};
use weatherlens_training::config::{DataSource, RunConfig};
use weatherlens_training::data;
use weatherlens_training::dataset::Reader;
use weatherlens_training::loss::{loss_weights, weighted_mse};
use weatherlens_training::trainer::build_model;

use super::{BenchError, backend_name, median, peak_rss_mib, random};

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
    /// `fused` or `plain` ([`Kernels`]).
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
    kernels: Kernels,
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
    let graph = ModelGraph::for_model(&grid, &config.model)?;
    let graph_build_ms = started.elapsed().as_secs_f64() * 1e3;
    let points = graph.num_grid_points();
    let attention =
        (config.model.processor == ProcessorKind::Transformer).then_some(config.model.attention);

    // Inference: the plain device, no autodiff graph.
    let forward_ms = {
        let tensors = GraphTensors::new(&graph, attention, kernels, device);
        let model = build_model(&config, channels, device);
        let input = random([batch_size, points, 2 * channels], 1, device);
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
        median(&times)
    };

    let train_device = device.clone().autodiff();
    let tensors = GraphTensors::new(&graph, attention, kernels, &train_device);
    let mut model = build_model(&config, channels, &train_device);
    let parameters = model.num_params();
    let input = random([batch_size, points, 2 * channels], 2, &train_device);
    let target = random([batch_size, points, channels], 3, &train_device);
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
    let train_step_ms = median(&times);

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
        kernels: kernels.name().into(),
    })
}

//! `weatherlens summary --config FILE`: build the model a run config describes and print its size, its graph
//! and the time of one forward pass, without training.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use weatherlens_models::config::ProcessorKind;
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::grid::{LatLonGrid, LatitudeOrder, PoleRows};
use weatherlens_models::hooks::Hooks;
use weatherlens_models::model::WeatherModel;
use weatherlens_models::seed::seeded;
use weatherlens_training::config::RunConfig;

use super::Context;

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[arg(long, default_value = "configs/demo.toml")]
    pub config: PathBuf,
    /// Channels of the data (4 for the built-in atmosphere).
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
}

pub fn run(args: SummaryArgs, context: &Context) -> Result<()> {
    let device = &context.device;
    let config = RunConfig::load(&args.config)?;
    let atmosphere = &config.data.synthetic.atmosphere;
    let grid = LatLonGrid::equiangular(
        atmosphere.output_n_lat,
        atmosphere.output_n_lon,
        PoleRows::Excluded,
        LatitudeOrder::Descending,
    )?;
    let started = Instant::now();
    let graph = ModelGraph::for_model(&grid, &config.model)?;
    let graph_ms = started.elapsed().as_secs_f64() * 1e3;
    let model = seeded(config.seed, device, || {
        WeatherModel::new(&config.model, 2 * args.channels, args.channels, device)
    });
    let attention =
        (config.model.processor == ProcessorKind::Transformer).then_some(config.model.attention);
    let tensors = GraphTensors::new(&graph, attention, context.kernels, device);
    let input = weatherlens::bench::random([1, grid.num_points(), 2 * args.channels], 0, device);
    let _ = model
        .forward(&tensors, input.clone(), &Hooks::none())
        .into_data();
    let started = Instant::now();
    let _ = model.forward(&tensors, input, &Hooks::none()).into_data();
    let forward_ms = started.elapsed().as_secs_f64() * 1e3;
    println!("model `{}` ({})", config.name, args.config.display());
    println!(
        "  processor {:?}, {} layers, latent {}, norm {:?}, residual scale {}",
        config.model.processor,
        config.model.num_layers,
        config.model.latent_size,
        config.model.norm,
        config.model.effective_residual_scale()
    );
    println!("  parameters: {}", model.num_params());
    println!(
        "  grid {} x {} ({} points); mesh level {}: {} nodes, {} mesh edges, {} grid2mesh edges, {} mesh2grid edges \
         (built in {graph_ms:.0} ms)",
        grid.n_lat(),
        grid.n_lon(),
        grid.num_points(),
        config.model.mesh_level,
        graph.num_mesh_nodes(),
        graph.mesh_edges().num_edges(),
        graph.grid2mesh().num_edges(),
        graph.mesh2grid().num_edges()
    );
    println!("  one forward pass (batch 1): {forward_ms:.1} ms");
    Ok(())
}

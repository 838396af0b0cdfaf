//! One loader for every kind of checkpoint folder the stages accept: a model WeatherLens trained (a run or
//! checkpoint folder with `run.json`, restored with its data) or a GraphCast imported by
//! [`super::import`] (`graphcast.json`). Stages that only run the network (probe, jacobian) see either through
//! [`Network`]; stages that need the model's own data or task (forecast, evaluate) match on [`LoadedModel`].

use std::path::{Path, PathBuf};

use burn::prelude::*;
use weatherlens_models::config::ModelConfig;
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::graphcast::{self as graphcast_graph, GraphCastTies};
use weatherlens_models::graph::{GraphError, ModelGraph};
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::grid::LatLonGrid;
use weatherlens_models::model::WeatherModel;
use weatherlens_models::seed::seeded;
use weatherlens_training::checkpoint;
use weatherlens_training::graphcast::{GraphCastInputs, GraphCastTask};
use weatherlens_training::restore::{Restored, restore};

use super::StageError;
use super::import::{ImportedDescription, STATS_DIR, is_imported, read_description};
use super::probe::model_label;

/// A loaded checkpoint of either kind.
pub enum LoadedModel {
    /// A WeatherLens-trained model with the data it was trained on.
    Trained(Box<Restored>),
    /// An imported GraphCast: its graph is built for each input file's grid ([`ImportedGraphCast::on_grid`]).
    GraphCast(Box<ImportedGraphCast>),
}

/// Loads `dir`: an imported GraphCast when it holds `graphcast.json`, otherwise the newest checkpoint of a
/// WeatherLens run or checkpoint folder. Forward passes run `kernels` on `device`.
pub fn load(dir: &Path, device: &Device, kernels: Kernels) -> Result<LoadedModel, StageError> {
    if is_imported(dir) {
        Ok(LoadedModel::GraphCast(Box::new(ImportedGraphCast::open(
            dir, device, kernels,
        )?)))
    } else {
        Ok(LoadedModel::Trained(Box::new(restore(
            dir, device, kernels,
        )?)))
    }
}

/// What the network-only stages need of a model on its graph, whatever its kind.
pub struct Network<'a> {
    /// For titles: the run name with the processor kind, or `GraphCast (...)`.
    pub label: String,
    /// The folder the weights came from.
    pub checkpoint: &'a Path,
    pub config: &'a ModelConfig,
    pub model: &'a WeatherModel,
    pub graph: &'a ModelGraph,
    pub tensors: &'a GraphTensors,
    /// The device the model and graph live on.
    pub device: Device,
}

impl<'a> Network<'a> {
    /// The network of a trained model on the grid it was trained on.
    pub fn trained(restored: &'a Restored) -> Self {
        let config = &restored.state.config;
        Self {
            label: model_label(&config.name, config.model.processor),
            checkpoint: &restored.checkpoint,
            config: &config.model,
            model: &restored.emulator.model,
            graph: &restored.graph,
            tensors: &restored.emulator.graph,
            device: restored.emulator.device(),
        }
    }
}

/// An imported GraphCast: its description, its task (channel layout and statistics) and its network.
pub struct ImportedGraphCast {
    pub dir: PathBuf,
    pub description: ImportedDescription,
    pub task: GraphCastTask,
    pub model: WeatherModel,
    kernels: Kernels,
    device: Device,
}

/// An imported GraphCast's graph on one input file's grid.
pub struct OnGrid {
    pub graph: ModelGraph,
    pub tensors: GraphTensors,
    /// Grid points whose mesh2grid face is a tie (where rounding decides, GraphCast's own pick varies).
    pub ties: GraphCastTies,
}

impl ImportedGraphCast {
    /// Opens the folder `dir` written by [`super::import::import_graphcast`]: its description, the statistics
    /// in `stats/` (checked against the description's channels) and the weights in `model.safetensors`.
    pub fn open(dir: &Path, device: &Device, kernels: Kernels) -> Result<Self, StageError> {
        let description = read_description(dir)?;
        let task = GraphCastTask::new(&description.task_config, &dir.join(STATS_DIR))?;
        let layout = task.layout();
        if layout.inputs.len() != description.inputs.len()
            || layout.outputs.len() != description.outputs.len()
        {
            return Err(StageError::Invalid(format!(
                "{}: the statistics lay out {} input and {} output channels, graphcast.json lists {} and {}",
                dir.join(STATS_DIR).display(),
                layout.inputs.len(),
                layout.outputs.len(),
                description.inputs.len(),
                description.outputs.len()
            )));
        }
        let model = checkpoint::load_model(dir, initial_model(&description, &task, device))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            description,
            task,
            model,
            kernels,
            device: device.clone(),
        })
    }

    /// The architecture at initialisation (seeded, seed 0): what the published weights were loaded into.
    pub fn untrained_model(&self) -> WeatherModel {
        initial_model(&self.description, &self.task, &self.device)
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Reads an input file for the task, as if it began at its time `first_time` (see
    /// [`GraphCastTask::read_inputs_from`]).
    pub fn read_inputs(
        &self,
        path: &Path,
        first_time: usize,
    ) -> Result<GraphCastInputs, StageError> {
        Ok(self.task.read_inputs_from(path, first_time)?)
    }

    /// GraphCast's graphs on `grid` (built as GraphCast's code builds them), uploaded to the model's device,
    /// with the count of its mesh2grid ties (logged when rounding decides some).
    pub fn on_grid(&self, grid: &LatLonGrid) -> Result<OnGrid, StageError> {
        let invalid = |e: GraphError| {
            StageError::Invalid(format!("GraphCast's graph on the input grid: {e}"))
        };
        let model = &self.description.model;
        let graph = ModelGraph::for_model(grid, model).map_err(invalid)?;
        let ties = graphcast_graph::mesh2grid_ties(grid, model.mesh_level).map_err(invalid)?;
        if ties.decided_by_rounding > 0 {
            tracing::info!(
                "{} of {} grid points have a mesh2grid face that rounding decides ({} take GraphCast's recorded \
                 choice): two runs of GraphCast's own code have picked differently there, so outputs at those \
                 points may differ from a given JAX run",
                ties.decided_by_rounding,
                grid.num_points(),
                ties.recorded
            );
        }
        let tensors = GraphTensors::new(&graph, None, self.kernels, &self.device);
        Ok(OnGrid {
            graph,
            tensors,
            ties,
        })
    }

    /// The network on `on_grid` for the network-only stages.
    pub fn network<'a>(&'a self, on_grid: &'a OnGrid) -> Network<'a> {
        let c = &self.description.graphcast_model_config;
        Network {
            label: format!(
                "GraphCast (mesh {}, latent {}, {} steps)",
                c.mesh_size, c.latent_size, c.gnn_msg_steps
            ),
            checkpoint: &self.dir,
            config: &self.description.model,
            model: &self.model,
            graph: &on_grid.graph,
            tensors: &on_grid.tensors,
            device: self.device.clone(),
        }
    }
}

/// The imported architecture with WeatherLens's seeded initial weights (seed 0).
fn initial_model(
    description: &ImportedDescription,
    task: &GraphCastTask,
    device: &Device,
) -> WeatherModel {
    let layout = task.layout();
    let (inputs, outputs) = (layout.inputs.len(), layout.outputs.len());
    seeded(0, device, || {
        WeatherModel::new(&description.model, inputs, outputs, device)
    })
}

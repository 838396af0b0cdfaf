//! DeepMind's published GraphCast checkpoints inside WeatherLens: [`checkpoint`] reads the `.npz` and its
//! configs, [`params`] maps its parameters onto a [`crate::model::WeatherModel`] that computes the same
//! function, on the graphs [`crate::graph::graphcast`] builds as GraphCast's code does. Input assembly,
//! normalisation and forcings (which need data files) are `weatherlens_training::graphcast`'s.

pub mod checkpoint;
pub mod params;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

pub use checkpoint::{
    Array, GraphCastCheckpoint, GraphCastError, GraphCastModelConfig, GraphCastTaskConfig,
};
pub use params::ImportedModel;

use crate::model::WeatherModel;
use crate::seed::seeded;

impl ImportedModel {
    /// The parameters as a safetensors file's bytes, under the names burn's store gives the model's parameters
    /// (what `model.safetensors` of a WeatherLens checkpoint holds).
    pub fn safetensors_bytes(&self) -> Vec<u8> {
        let views: Vec<(String, safetensors::tensor::TensorView)> = self
            .tensors
            .iter()
            .map(|(name, array)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    array.shape.clone(),
                    bytemuck::cast_slice(&array.values),
                )
                .expect("shape and data length agree (checked on import)");
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize(views, None).expect("f32 tensors always serialise")
    }

    /// The WeatherLens model on `device` with these parameters.
    pub fn build(&self, device: &Device) -> Result<WeatherModel, String> {
        let mut model = seeded(0, device, || {
            WeatherModel::new(
                &self.config,
                self.input_channels,
                self.output_channels,
                device,
            )
        });
        let mut store = SafetensorsStore::from_bytes(Some(self.safetensors_bytes()));
        let result = model.load_from(&mut store).map_err(|e| e.to_string())?;
        if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
            return Err(format!(
                "parameters do not fit the model: missing {:?}, unused {:?}, errors {:?}",
                result.missing, result.unused, result.errors
            ));
        }
        Ok(model)
    }
}

//! Gradient-flow diagnostics of one processor step (issue 6, item 5): how far the increment `v_i` is from a
//! gradient field (the asymmetry of its Jacobian), and how far across the sphere its inputs reach (the
//! interaction range).
//!
//! Both diagnostics take the step as a closure `X -> v(X)` on [batch, nodes, latent] tensors, so they are
//! tested on fields with known answers and run unchanged on a trained model ([`layer_function`] builds the
//! closure of processor step `i` with its edge latents held at the values the forward pass gives them).
//!
//! Why asymmetry: if v = −∇E(X) for some scalar E, each processor step is a gradient-descent step on E and the
//! depth axis is an energy-minimising flow; then J = ∂v/∂X = −∇²E is symmetric. A large antisymmetric part
//! means a rotational (transport-like) component that no energy picture explains.
//!
//! The closure must treat batch elements independently (every WeatherLens processor layer does): both
//! diagnostics evaluate many perturbed copies of one state as one batch.

mod asymmetry;
mod range;
#[cfg(test)]
mod tests;

pub use asymmetry::{Asymmetry, AsymmetryOptions, ProbeDistribution, jacobian_asymmetry};
pub use range::{InfluenceBin, InteractionRange, RangeOptions, interaction_range};

use burn::prelude::*;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::model::WeatherModel;

/// What a caller can get wrong.
#[derive(Debug, thiserror::Error)]
pub enum JacobianError {
    #[error("{0}")]
    Invalid(String),
}

/// (nodes, latent) of a one-sample state x: [1, nodes, latent], or the error saying it has another batch.
pub(crate) fn one_sample(x: &Tensor<3>) -> Result<(usize, usize), JacobianError> {
    let [batch, nodes, latent] = x.dims();
    if batch != 1 {
        return Err(JacobianError::Invalid(format!(
            "the state must be one sample ([1, nodes, latent]), got batch {batch}"
        )));
    }
    Ok((nodes, latent))
}

/// The processor's state entering every step of `model` for `input`: (X_i, E_i) for i = 0..=L, node latents
/// [batch, mesh_nodes, latent] and edge latents [batch, mesh_edges, latent] (message-passing processors only).
/// The same arithmetic as a forward pass, so X_i is what `processor.{i}.resid_pre` shows.
///
/// input: [batch, grid_points, input_channels] (the model's normalised input) -> (L + 1) states
pub fn processor_states(
    model: &WeatherModel,
    graph: &GraphTensors,
    input: Tensor<3>,
) -> Vec<(Tensor<3>, Option<Tensor<3>>)> {
    let encoded = model.encode(graph, input);
    model
        .processor()
        .states(&graph.mesh_context(), encoded.mesh, encoded.mesh_edges)
}

/// Processor step `layer` of `model` as the function X -> s·v_i(X), its edge latents held at `edges` (E_i of
/// [`SampleStates`], [1, mesh_edges, latent], repeated over the batch of X).
///
/// X: [batch, mesh_nodes, latent] -> [batch, mesh_nodes, latent]
pub fn layer_function<'a>(
    model: &'a WeatherModel,
    graph: &'a GraphTensors,
    layer: usize,
    edges: Option<Tensor<3>>,
) -> impl Fn(Tensor<3>) -> Tensor<3> + 'a {
    move |x: Tensor<3>| {
        let batch = x.dims()[0];
        let edges = edges.as_ref().map(|e| {
            let [_, count, latent] = e.dims();
            e.clone().expand([batch, count, latent])
        });
        model
            .processor()
            .layer_increment(&graph.mesh_context(), layer, x, edges)
    }
}

/// `v(x)`, checking that its shape is `dims`.
pub(crate) fn checked<F>(v: &F, x: Tensor<3>, dims: [usize; 3]) -> Result<Tensor<3>, JacobianError>
where
    F: Fn(Tensor<3>) -> Tensor<3>,
{
    let out = v(x);
    if out.dims() != dims {
        return Err(JacobianError::Invalid(format!(
            "v maps a {dims:?} state to {:?}: it must keep the shape",
            out.dims()
        )));
    }
    Ok(out)
}

pub(crate) fn tensor(values: Vec<f32>, dims: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values, dims), device)
}

pub(crate) fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32 above")
}

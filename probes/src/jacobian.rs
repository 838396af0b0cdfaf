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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::hooks::{HookPoint, Hooks, Observer};
use weatherlens_models::model::WeatherModel;
use weatherlens_models::sphere::{great_circle_distance, lat_lon_to_unit};
use weatherlens_training::dataset::iso8601;
use weatherlens_training::restore::Restored;
use weatherlens_training::windows::{FrameSource, Split, WindowError, Windows};

use crate::plot::{Curve, LinePlot, PlotError, line_plot};

#[derive(Debug, thiserror::Error)]
pub enum JacobianError {
    #[error("{0}")]
    Invalid(String),
    #[error("samples: {0}")]
    Windows(#[from] WindowError),
    #[error("data: {0}")]
    Data(String),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
}

/// The distribution of the probe vectors z (independent entries, mean 0, variance 1, so E[z zᵀ] = I).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeDistribution {
    /// ±1 with equal probability: the lower-variance choice for Hutchinson-type estimators.
    Rademacher,
    /// Standard normal.
    Gaussian,
}

#[derive(Debug, Clone)]
pub struct AsymmetryOptions {
    /// Probe vectors z (at least 2, for the standard error).
    pub probes: usize,
    pub distribution: ProbeDistribution,
    /// Finite-difference step for J z relative to the RMS of X: h = relative_step · rms(X).
    pub relative_step: f64,
    pub seed: u64,
}

impl Default for AsymmetryOptions {
    fn default() -> Self {
        Self {
            probes: 8,
            distribution: ProbeDistribution::Rademacher,
            relative_step: 1e-2,
            seed: 0,
        }
    }
}

/// The asymmetry of J = ∂v/∂X at one state X, with the estimator's diagnostics.
#[derive(Debug, Clone, Serialize)]
pub struct Asymmetry {
    /// A = ‖J − Jᵀ‖_F / ‖J‖_F: 0 for a gradient field, √2 when J_ij and J_ji are uncorrelated, 2 for a pure
    /// rotation (J = −Jᵀ).
    pub asymmetry: f64,
    /// Jackknife standard error of `asymmetry` over the probes.
    pub standard_error: f64,
    /// Estimate of ‖J‖_F.
    pub jacobian_frobenius: f64,
    /// Estimate of ‖J − Jᵀ‖_F.
    pub antisymmetric_frobenius: f64,
    pub probes: usize,
    /// The absolute finite-difference step h.
    pub step: f64,
    /// ‖J z (h) − J z (h/2)‖ / ‖J z (h)‖ on the first probe: the size of the finite-difference error in J z
    /// (for a truncation-dominated error the error of the h estimate is about 4/3 of this).
    pub fd_relative_error: f64,
}

/// Estimates the Jacobian asymmetry A = ‖J − Jᵀ‖_F / ‖J‖_F of `v` at `x`, where J = ∂v/∂X over the whole
/// flattened (nodes × latent) state.
///
/// Estimator: for probe vectors z_k with independent, zero-mean, unit-variance entries (E[z zᵀ] = I),
/// E‖K z‖² = tr(Kᵀ K) = ‖K‖²_F for any matrix K (Hutchinson). With a_k = ‖J z_k − Jᵀ z_k‖² and
/// b_k = ½(‖J z_k‖² + ‖Jᵀ z_k‖²), both unbiased for ‖J − Jᵀ‖²_F and ‖J‖²_F, the estimate is
/// A = sqrt(Σ a_k / Σ b_k), a ratio of means (consistent, not unbiased, for few probes), and always in [0, 2].
/// The standard error is the jackknife over probes. Each probe sees all nodes × latent directions, so with a
/// Jacobian of high effective rank a handful of probes suffices. For a purely symmetric or antisymmetric J the
/// estimate is exact probe by probe (0 or 2) up to the error in J z. J is the Jacobian of the increment, not
/// of the step X -> X + v: the identity changes ‖J‖_F but not J − Jᵀ.
///
/// - Jᵀ z is exact: one backward pass of Σ_k ⟨v(X), z_k⟩ with respect to X (burn's autodiff, first order
///   only).
/// - J z has no first-order autodiff form in burn (no forward mode, no double backward), so it is the central
///   difference (v(X + h z) − v(X − h z)) / 2h evaluated in f32, h = `relative_step` · rms(X). Its error is
///   the truncation O(h² ‖∂³v‖) plus rounding O(u ‖v‖ / h) (u = 2⁻²⁴; this includes rounding X ± h z to
///   f32). With h = 1e-2 · rms(X) it is 1e-4 to 7e-4 of ‖J z‖ on the trained demo model (mesh level 3, latent
///   48), and A moved by less than 2e-5 when h went from 2.5e-3 to 4e-2 · rms(X). This error sets the floor
///   of A: a gradient field reads ~1e-4 (the tanh test field: 2.5e-4), not 0. [`Asymmetry::fd_relative_error`]
///   measures it on every call.
///
/// `v` must map [batch, nodes, latent] to [batch, nodes, latent], batch elements independently, and be smooth
/// near `x`. It may be called on tensors with or without autodiff.
///
/// x: [1, nodes, latent]
pub fn jacobian_asymmetry<F>(
    v: F,
    x: &Tensor<3>,
    options: &AsymmetryOptions,
) -> Result<Asymmetry, JacobianError>
where
    F: Fn(Tensor<3>) -> Tensor<3>,
{
    let [batch, nodes, latent] = x.dims();
    if batch != 1 {
        return Err(JacobianError::Invalid(format!(
            "the state must be one sample ([1, nodes, latent]), got batch {batch}"
        )));
    }
    if options.probes < 2 {
        return Err(JacobianError::Invalid(
            "at least 2 probe vectors are needed for a standard error".into(),
        ));
    }
    if !(options.relative_step.is_finite() && options.relative_step > 0.0) {
        return Err(JacobianError::Invalid(format!(
            "the finite-difference step must be positive, got {}",
            options.relative_step
        )));
    }
    let size = nodes * latent;
    let device = x.device();
    let plain = device.clone().inner();
    let x_host = host(x.clone());
    let rms = (x_host.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() / size as f64).sqrt();
    let step = options.relative_step * if rms > 0.0 { rms } else { 1.0 };
    let probes = options.probes;
    let z = probe_vectors(probes * size, options.distribution, options.seed);

    // J z_k by central differences: one batch of 2·probes (+2 for the h/2 check on the first probe) states.
    let mut shifted = Vec::with_capacity((2 * probes + 2) * size);
    for (k, h) in (0..probes)
        .map(|k| (k, step))
        .chain(std::iter::once((0, step / 2.0)))
    {
        for sign in [1.0, -1.0] {
            let z_k = &z[k * size..(k + 1) * size];
            shifted.extend(
                x_host
                    .iter()
                    .zip(z_k)
                    .map(|(&a, &b)| (f64::from(a) + sign * h * f64::from(b)) as f32),
            );
        }
    }
    let outputs = host(checked(
        &v,
        tensor(shifted, [2 * probes + 2, nodes, latent], &plain),
        [2 * probes + 2, nodes, latent],
    )?);
    let central = |pair: usize, h: f64| -> Vec<f64> {
        let plus = &outputs[2 * pair * size..(2 * pair + 1) * size];
        let minus = &outputs[(2 * pair + 1) * size..(2 * pair + 2) * size];
        plus.iter()
            .zip(minus)
            .map(|(&p, &m)| (f64::from(p) - f64::from(m)) / (2.0 * h))
            .collect()
    };
    let jz: Vec<Vec<f64>> = (0..probes).map(|k| central(k, step)).collect();
    let jz_half = central(probes, step / 2.0);
    let fd_difference: f64 = jz[0]
        .iter()
        .zip(&jz_half)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let fd_relative_error = if fd_difference > 0.0 {
        (fd_difference / squared_norm(&jz[0])).sqrt()
    } else {
        0.0
    };

    // Jᵀ z_k: one backward of Σ_k ⟨v(X_k), z_k⟩ with X_k = X, each copy its own leaf row.
    let repeated: Vec<f32> = (0..probes).flat_map(|_| x_host.iter().copied()).collect();
    let leaf = tensor(
        repeated,
        [probes, nodes, latent],
        &device.clone().autodiff(),
    )
    .require_grad();
    let out = checked(&v, leaf.clone(), [probes, nodes, latent])?;
    let probe_tensor = tensor(z.clone(), [probes, nodes, latent], &plain);
    let grads = (out * probe_tensor).sum().backward();
    let jtz = host(leaf.grad(&grads).ok_or_else(|| {
        JacobianError::Invalid(
            "v(X) does not depend on X through autodiff-tracked operations".into(),
        )
    })?);

    let mut antisymmetric = Vec::with_capacity(probes);
    let mut total = Vec::with_capacity(probes);
    for (k, jz_k) in jz.iter().enumerate() {
        let jtz_k: Vec<f64> = jtz[k * size..(k + 1) * size]
            .iter()
            .map(|&a| f64::from(a))
            .collect();
        antisymmetric.push(
            jz_k.iter()
                .zip(&jtz_k)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>(),
        );
        total.push(0.5 * (squared_norm(jz_k) + squared_norm(&jtz_k)));
    }
    let (asymmetry, standard_error) = ratio_with_jackknife(&antisymmetric, &total);
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    Ok(Asymmetry {
        asymmetry,
        standard_error,
        jacobian_frobenius: mean(&total).sqrt(),
        antisymmetric_frobenius: mean(&antisymmetric).sqrt(),
        probes,
        step,
        fd_relative_error,
    })
}

#[derive(Debug, Clone)]
pub struct RangeOptions {
    /// Receiver nodes n, drawn without replacement with `seed` (all nodes if there are fewer). Most nodes of a
    /// multimesh belong to the finest level only and receive only its short edges (480 of the 642 nodes at
    /// level 3), so a few random receivers describe those; the reach of the coarse-level nodes needs more.
    pub receivers: usize,
    pub seed: u64,
    /// Width of the distance bins in degrees; bin k holds distances in [(k − ½)w, (k + ½)w), so bin 0 is the
    /// node itself and its nearest surroundings.
    pub bin_deg: f64,
    /// The share of the total influence that [`InteractionRange::range_deg`] must hold.
    pub fraction: f64,
}

impl Default for RangeOptions {
    fn default() -> Self {
        Self {
            receivers: 4,
            seed: 0,
            bin_deg: 2.5,
            fraction: 0.9,
        }
    }
}

/// One distance bin of the influence profile (a row of `influence.csv` without its layer).
#[derive(Debug, Clone, Serialize)]
pub struct InfluenceBin {
    /// Bin centre, degrees of great-circle distance between receiver n and source m.
    pub distance_deg: f64,
    /// Mean over the (n, m) pairs in the bin of ‖∂v^n/∂X^m‖_F (the latent × latent block).
    pub influence: f64,
    /// (n, m) pairs in the bin.
    pub count: usize,
}

/// How far the inputs of one step reach.
#[derive(Debug, Clone, Serialize)]
pub struct InteractionRange {
    /// The receiver nodes n averaged over.
    pub receivers: Vec<usize>,
    /// Non-empty bins in order of distance.
    pub bins: Vec<InfluenceBin>,
    /// The smallest distance d such that the pairs with distance ≤ d hold `fraction` of the summed influence
    /// Σ_{n,m} ‖∂v^n/∂X^m‖_F (pairs pooled over receivers; exact distances, not bins).
    pub range_deg: f64,
    pub fraction: f64,
    /// The largest distance with a non-zero influence: a message-passing step cannot reach past its longest
    /// edge, so this is exact structure, not an estimate.
    pub reach_deg: f64,
    /// The share of the summed influence that is self-influence (m = n).
    pub self_share: f64,
}

/// The influence ‖∂v^n/∂X^m‖_F of every node m on a few receiver nodes n, as a function of the great-circle
/// distance between them, binned; plus the distance holding `fraction` of the influence.
///
/// The block ∂v^n/∂X^m (latent × latent) is computed exactly, not estimated: one backward pass per receiver
/// over a batch of `latent` copies of X, copy a picking output component a of node n, gives the rows
/// ∂v^n_a/∂X for every a at once.
///
/// `v` must map [batch, nodes, latent] to [batch, nodes, latent], batch elements independently.
///
/// x: [1, nodes, latent]; node_lat, node_lon: [nodes] degrees
pub fn interaction_range<F>(
    v: F,
    x: &Tensor<3>,
    node_lat: &[f64],
    node_lon: &[f64],
    options: &RangeOptions,
) -> Result<InteractionRange, JacobianError>
where
    F: Fn(Tensor<3>) -> Tensor<3>,
{
    let [batch, nodes, latent] = x.dims();
    if batch != 1 {
        return Err(JacobianError::Invalid(format!(
            "the state must be one sample ([1, nodes, latent]), got batch {batch}"
        )));
    }
    if node_lat.len() != nodes || node_lon.len() != nodes {
        return Err(JacobianError::Invalid(format!(
            "{nodes} nodes but {} latitudes and {} longitudes",
            node_lat.len(),
            node_lon.len()
        )));
    }
    if !(options.bin_deg.is_finite() && options.bin_deg > 0.0) {
        return Err(JacobianError::Invalid(format!(
            "the bin width must be positive, got {}",
            options.bin_deg
        )));
    }
    if !(options.fraction > 0.0 && options.fraction <= 1.0) {
        return Err(JacobianError::Invalid(format!(
            "the influence fraction must be in (0, 1], got {}",
            options.fraction
        )));
    }
    let receivers = pick_receivers(nodes, options.receivers, options.seed);
    let device = x.device();
    let plain = device.clone().inner();
    let x_host = host(x.clone());
    let repeated: Vec<f32> = (0..latent).flat_map(|_| x_host.iter().copied()).collect();
    let identity: Vec<f32> = (0..latent * latent)
        .map(|k| if k / latent == k % latent { 1.0 } else { 0.0 })
        .collect();
    let identity = tensor(identity, [latent, 1, latent], &plain);
    let positions: Vec<_> = node_lat
        .iter()
        .zip(node_lon)
        .map(|(&lat, &lon)| lat_lon_to_unit(lat, lon))
        .collect();
    // (distance in degrees, influence) for every (receiver, node) pair.
    let mut pairs: Vec<(f64, f64)> = Vec::with_capacity(receivers.len() * nodes);
    let mut self_influence = 0.0;
    for &n in &receivers {
        let leaf = tensor(
            repeated.clone(),
            [latent, nodes, latent],
            &device.clone().autodiff(),
        )
        .require_grad();
        let out = checked(&v, leaf.clone(), [latent, nodes, latent])?;
        let index = Tensor::<1, Int>::from_data(TensorData::new(vec![n as i64], [1]), &plain);
        // Copy a keeps output component a of node n: Σ_a v^n_a(X_a), whose gradient in X_a is ∂v^n_a/∂X.
        let picked = (out.select(1, index) * identity.clone()).sum();
        let grads = picked.backward();
        let rows = host(leaf.grad(&grads).ok_or_else(|| {
            JacobianError::Invalid(
                "v(X) does not depend on X through autodiff-tracked operations".into(),
            )
        })?);
        for m in 0..nodes {
            let mut block = 0.0;
            for a in 0..latent {
                let start = (a * nodes + m) * latent;
                block += rows[start..start + latent]
                    .iter()
                    .map(|&g| f64::from(g).powi(2))
                    .sum::<f64>();
            }
            let influence = block.sqrt();
            let distance = great_circle_distance(positions[n], positions[m]).to_degrees();
            if m == n {
                self_influence += influence;
            }
            pairs.push((distance, influence));
        }
    }
    Ok(summarise_influence(
        receivers,
        pairs,
        self_influence,
        options,
    ))
}

/// Bins (distance, influence) pairs and finds the range and reach.
fn summarise_influence(
    receivers: Vec<usize>,
    mut pairs: Vec<(f64, f64)>,
    self_influence: f64,
    options: &RangeOptions,
) -> InteractionRange {
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for &(distance, influence) in &pairs {
        let bin = (distance / options.bin_deg).round() as usize;
        if sums.len() <= bin {
            sums.resize(bin + 1, (0.0, 0));
        }
        sums[bin].0 += influence;
        sums[bin].1 += 1;
    }
    let bins = sums
        .iter()
        .enumerate()
        .filter(|(_, (_, count))| *count > 0)
        .map(|(k, &(sum, count))| InfluenceBin {
            distance_deg: k as f64 * options.bin_deg,
            influence: sum / count as f64,
            count,
        })
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    let mut range_deg = 0.0;
    let mut held = 0.0;
    for &(distance, influence) in &pairs {
        if total > 0.0 && held >= options.fraction * total {
            break;
        }
        held += influence;
        range_deg = distance;
    }
    let reach_deg = pairs
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|p| p.0)
        .fold(0.0, f64::max);
    InteractionRange {
        receivers,
        bins,
        range_deg,
        fraction: options.fraction,
        reach_deg,
        self_share: if total > 0.0 {
            self_influence / total
        } else {
            0.0
        },
    }
}

/// The processor's state entering every step for one sample of a restored model.
pub struct SampleStates {
    /// The sample's initial time (ISO 8601).
    pub time: String,
    /// (X_i, E_i) for i = 0..=L: node latents [1, mesh_nodes, latent] and edge latents
    /// [1, mesh_edges, latent] (message-passing processors only).
    pub states: Vec<(Tensor<3>, Option<Tensor<3>>)>,
}

/// Runs the encoder and the processor on sample `sample` of `split` (its samples' initial times in order),
/// returning the state entering every processor step.
///
/// The model's input is built as [`weatherlens_training::emulator::Emulator::step`] builds it, and the X_i
/// found are checked against what the `processor.{i}.resid_pre` hooks show in a forward pass of
/// `Emulator::step` (to 1e-5 relative; they are bit-identical on the flex backend), so they are the states the
/// trained model sees.
pub fn sample_states(
    restored: &Restored,
    split: Split,
    sample: usize,
) -> Result<SampleStates, JacobianError> {
    let dataset = &restored.dataset;
    let windows = Windows::new(&restored.state.config.data.windows, &dataset.time_hours)?;
    let anchors = windows.anchors(split);
    let &anchor = anchors.get(sample).ok_or_else(|| {
        JacobianError::Invalid(format!(
            "sample {sample} does not exist: the {split:?} split has {} samples",
            anchors.len()
        ))
    })?;
    let ([before, now], _) = windows.sample_times(anchor);
    let mut frames = Vec::with_capacity(2 * dataset.frame_len());
    for t in [before, now] {
        frames.extend(
            dataset
                .read_frames(t..t + 1)
                .map_err(|e| JacobianError::Data(e.to_string()))?,
        );
    }
    let emulator = &restored.emulator;
    let both = emulator.states(&frames, 2);
    let [_, grid_points, channels] = both.dims();
    let previous = both.clone().slice([0..1, 0..grid_points, 0..channels]);
    let current = both.slice([1..2, 0..grid_points, 0..channels]);
    // Emulator::step's input: the two states side by side along channels (static channels once, last).
    let input = emulator.model_input(previous.clone(), current.clone());
    let model = &emulator.model;
    let encoded = model.encode(&emulator.graph, input);
    let states = model.processor().states(
        &emulator.graph.mesh_context(),
        encoded.mesh,
        encoded.mesh_edges,
    );

    let seen = HookValues::new(model.num_layers());
    emulator.step(previous, current, &Hooks::none().with(&seen));
    let seen = seen.values.into_inner();
    for (i, (x_i, _)) in states.iter().take(model.num_layers()).enumerate() {
        let recomputed = host(x_i.clone());
        // The same operations on the same data: equal to rounding (bit for bit on the flex backend), whereas
        // an input built differently would differ by O(1).
        let same = seen[i].as_ref().is_some_and(|hooked| {
            hooked.len() == recomputed.len()
                && hooked
                    .iter()
                    .zip(&recomputed)
                    .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + a.abs()))
        });
        if !same {
            return Err(JacobianError::Invalid(format!(
                "the recomputed X_{i} differs from what processor.{i}.resid_pre shows: the emulator's input \
                 is no longer built as sample_states assumes"
            )));
        }
    }
    Ok(SampleStates {
        time: iso8601(dataset.time_hours[anchor]),
        states,
    })
}

/// Keeps `processor.{i}.resid_pre` of each layer.
struct HookValues {
    values: std::cell::RefCell<Vec<Option<Vec<f32>>>>,
}

impl HookValues {
    fn new(layers: usize) -> Self {
        Self {
            values: std::cell::RefCell::new(vec![None; layers]),
        }
    }
}

impl Observer for HookValues {
    fn wants(&self, point: HookPoint) -> bool {
        matches!(point, HookPoint::ResidPre(_))
    }

    fn observe(&self, point: HookPoint, tensor: &Tensor<3>) {
        if let HookPoint::ResidPre(i) = point
            && let Some(slot) = self.values.borrow_mut().get_mut(i)
        {
            *slot = Some(host(tensor.clone()));
        }
    }
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

/// What `weatherlens jacobian` computes.
#[derive(Debug, Clone)]
pub struct JacobianOptions {
    /// Processor layers (empty = all).
    pub layers: Vec<usize>,
    pub split: Split,
    /// Which sample of the split gives the states X_i.
    pub sample: usize,
    pub asymmetry: AsymmetryOptions,
    pub range: RangeOptions,
}

impl Default for JacobianOptions {
    fn default() -> Self {
        Self {
            layers: Vec::new(),
            split: Split::Test,
            sample: 0,
            asymmetry: AsymmetryOptions::default(),
            range: RangeOptions::default(),
        }
    }
}

/// Both diagnostics of one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerJacobian {
    pub layer: usize,
    pub asymmetry: Asymmetry,
    pub range: InteractionRange,
}

/// Everything in `jacobian.json`.
#[derive(Debug, Clone, Serialize)]
pub struct JacobianReport {
    pub checkpoint: String,
    pub model: String,
    pub split: Split,
    pub sample_time: String,
    pub mesh_level: u32,
    pub nodes: usize,
    pub latent_size: usize,
    pub layers: Vec<LayerJacobian>,
}

/// Asymmetry and interaction range of the chosen processor layers of a restored model, at the states one
/// sample gives them.
pub fn diagnose(
    restored: &Restored,
    options: &JacobianOptions,
) -> Result<JacobianReport, JacobianError> {
    let config = &restored.state.config;
    let layers = crate::capture::chosen_layers(&options.layers, config.model.num_layers)
        .map_err(JacobianError::Invalid)?;
    let sample = sample_states(restored, options.split, options.sample)?;
    let mesh = restored.graph.multimesh();
    let emulator = &restored.emulator;
    let mut rows = Vec::with_capacity(layers.len());
    for &layer in &layers {
        let started = std::time::Instant::now();
        let (x, edges) = &sample.states[layer];
        let v = layer_function(&emulator.model, &emulator.graph, layer, edges.clone());
        let asymmetry = jacobian_asymmetry(&v, x, &options.asymmetry)?;
        let range = interaction_range(&v, x, mesh.node_lat(), mesh.node_lon(), &options.range)?;
        tracing::info!(
            "layer {layer}: asymmetry {:.4} ± {:.4}, {:.0} % range {:.1}°, reach {:.1}° ({:.1} s)",
            asymmetry.asymmetry,
            asymmetry.standard_error,
            100.0 * range.fraction,
            range.range_deg,
            range.reach_deg,
            started.elapsed().as_secs_f64()
        );
        rows.push(LayerJacobian {
            layer,
            asymmetry,
            range,
        });
    }
    Ok(JacobianReport {
        checkpoint: restored.checkpoint.display().to_string(),
        model: format!("{} ({:?})", config.name, config.model.processor),
        split: options.split,
        sample_time: sample.time,
        mesh_level: config.model.mesh_level,
        nodes: mesh.num_nodes(),
        latent_size: config.model.latent_size,
        layers: rows,
    })
}

/// One row of `jacobian.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct JacobianRow {
    pub layer: usize,
    pub asymmetry: f64,
    pub asymmetry_se: f64,
    pub range_deg: f64,
    pub reach_deg: f64,
    pub self_share: f64,
    pub jacobian_frobenius: f64,
    pub fd_relative_error: f64,
}

/// One row of `influence.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct InfluenceRow {
    pub layer: usize,
    pub distance_deg: f64,
    pub influence: f64,
    pub count: usize,
}

/// Writes `jacobian.json`, `jacobian.csv`, `influence.csv`, the plots `asymmetry.{png,svg}` and
/// `influence.{png,svg}`, and `jacobian.md` into `out_dir`.
pub fn write_outputs(report: &JacobianReport, out_dir: &Path) -> Result<(), JacobianError> {
    let output = |path: &Path| {
        let path = path.to_path_buf();
        move |e: String| JacobianError::Output { path, reason: e }
    };
    std::fs::create_dir_all(out_dir).map_err(|e| output(out_dir)(e.to_string()))?;
    let json = serde_json::to_vec_pretty(report)
        .map_err(|e| output(&out_dir.join("jacobian.json"))(e.to_string()))?;
    write_file(&out_dir.join("jacobian.json"), &json)?;
    let rows: Vec<JacobianRow> = report
        .layers
        .iter()
        .map(|l| JacobianRow {
            layer: l.layer,
            asymmetry: l.asymmetry.asymmetry,
            asymmetry_se: l.asymmetry.standard_error,
            range_deg: l.range.range_deg,
            reach_deg: l.range.reach_deg,
            self_share: l.range.self_share,
            jacobian_frobenius: l.asymmetry.jacobian_frobenius,
            fd_relative_error: l.asymmetry.fd_relative_error,
        })
        .collect();
    write_file(&out_dir.join("jacobian.csv"), &csv_bytes(&rows))?;
    let influence: Vec<InfluenceRow> = report
        .layers
        .iter()
        .flat_map(|l| {
            l.range.bins.iter().map(|b| InfluenceRow {
                layer: l.layer,
                distance_deg: b.distance_deg,
                influence: b.influence,
                count: b.count,
            })
        })
        .collect();
    write_file(&out_dir.join("influence.csv"), &csv_bytes(&influence))?;

    let points = |f: fn(&LayerJacobian) -> f64| -> Vec<(f64, f64)> {
        report
            .layers
            .iter()
            .map(|l| (l.layer as f64, f(l)))
            .collect()
    };
    let mean = points(|l| l.asymmetry.asymmetry);
    let low = points(|l| l.asymmetry.asymmetry - 2.0 * l.asymmetry.standard_error);
    let high = points(|l| l.asymmetry.asymmetry + 2.0 * l.asymmetry.standard_error);
    let uncorrelated = points(|_| std::f64::consts::SQRT_2);
    line_plot(
        &out_dir.join("asymmetry"),
        &LinePlot {
            title: &format!(
                "{}: Jacobian asymmetry of v_i (0 = gradient field, 2 = rotation)",
                report.model
            ),
            x_label: "layer i",
            y_label: "|J - J^T| / |J|",
            curves: &[
                Curve {
                    name: "asymmetry",
                    points: &mean,
                },
                Curve {
                    name: "- 2 s.e.",
                    points: &low,
                },
                Curve {
                    name: "+ 2 s.e.",
                    points: &high,
                },
                Curve {
                    name: "sqrt 2: J_ij, J_ji uncorrelated",
                    points: &uncorrelated,
                },
            ],
        },
    )?;
    let names: Vec<String> = report
        .layers
        .iter()
        .map(|l| format!("layer {}", l.layer))
        .collect();
    // Past twice the farthest reach every bin is zero: leave those out so the near field is readable.
    let shown_deg = report
        .layers
        .iter()
        .map(|l| 2.0 * l.range.reach_deg)
        .fold(0.0, f64::max)
        .max(10.0);
    let profiles: Vec<Vec<(f64, f64)>> = report
        .layers
        .iter()
        .map(|l| {
            l.range
                .bins
                .iter()
                .filter(|b| b.distance_deg <= shown_deg)
                .map(|b| (b.distance_deg, b.influence))
                .collect()
        })
        .collect();
    let curves: Vec<Curve> = names
        .iter()
        .zip(&profiles)
        .map(|(name, points)| Curve { name, points })
        .collect();
    line_plot(
        &out_dir.join("influence"),
        &LinePlot {
            title: &format!("{}: influence of node m on v_i at node n", report.model),
            x_label: "great-circle distance n-m (degrees)",
            y_label: "mean |dv_i^n / dX^m|_F",
            curves: &curves,
        },
    )?;
    write_file(
        &out_dir.join("jacobian.md"),
        report_markdown(report).as_bytes(),
    )
}

/// The diagnostics in words.
pub fn report_markdown(report: &JacobianReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Gradient-flow diagnostics of {}\n\nStates X_i of the {} split's sample at {}; mesh level {} ({} nodes), \
         latent {}.\n\nAsymmetry A = ‖J − Jᵀ‖_F / ‖J‖_F of J = ∂v_i/∂X_i (0: v_i is locally a gradient field; \
         √2 ≈ 1.41: J_ij and J_ji uncorrelated; 2: a pure rotation), from {} probe vectors. Range: the \
         distance within which {:.0} % of the summed influence ‖∂v_i^n/∂X^m‖_F on {} receiver nodes lies; reach: \
         the farthest node with any influence; self share: the part of the influence a node has on itself.\n",
        report.model,
        match report.split {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        },
        report.sample_time,
        report.mesh_level,
        report.nodes,
        report.latent_size,
        report.layers.first().map_or(0, |l| l.asymmetry.probes),
        report
            .layers
            .first()
            .map_or(90.0, |l| 100.0 * l.range.fraction),
        report.layers.first().map_or(0, |l| l.range.receivers.len()),
    );
    let _ = writeln!(
        md,
        "| layer | asymmetry | ± s.e. | ‖J‖_F | range (°) | reach (°) | self share | FD error |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for l in &report.layers {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.4} | {:.3} | {:.1} | {:.1} | {:.3} | {:.1e} |",
            l.layer,
            l.asymmetry.asymmetry,
            l.asymmetry.standard_error,
            l.asymmetry.jacobian_frobenius,
            l.range.range_deg,
            l.range.reach_deg,
            l.range.self_share,
            l.asymmetry.fd_relative_error
        );
    }
    md
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), JacobianError> {
    crate::output::write_atomic(path, contents).map_err(|e| JacobianError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn csv_bytes<T: Serialize>(rows: &[T]) -> Vec<u8> {
    // Plain structs of numbers always serialise.
    crate::output::csv_bytes(rows).unwrap_or_default()
}

/// `v(x)`, checking that its shape is `dims`.
fn checked<F>(v: &F, x: Tensor<3>, dims: [usize; 3]) -> Result<Tensor<3>, JacobianError>
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

fn tensor(values: Vec<f32>, dims: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values, dims), device)
}

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32 above")
}

fn squared_norm(values: &[f64]) -> f64 {
    values.iter().map(|a| a * a).sum()
}

/// `count` probe entries, independent, mean 0, variance 1.
fn probe_vectors(count: usize, distribution: ProbeDistribution, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match distribution {
        ProbeDistribution::Rademacher => (0..count)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect(),
        // Box–Muller: two uniforms give one standard normal (the second of the pair is dropped).
        ProbeDistribution::Gaussian => (0..count)
            .map(|_| {
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect(),
    }
}

/// sqrt(Σa / Σb) and its jackknife standard error over the (a_k, b_k) pairs.
fn ratio_with_jackknife(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (sum_a, sum_b) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    let ratio = |num: f64, den: f64| if den > 0.0 { (num / den).sqrt() } else { 0.0 };
    let estimate = ratio(sum_a, sum_b);
    let count = a.len();
    let leave_out: Vec<f64> = (0..count)
        .map(|k| ratio(sum_a - a[k], sum_b - b[k]))
        .collect();
    let mean = leave_out.iter().sum::<f64>() / count as f64;
    let variance = leave_out.iter().map(|r| (r - mean).powi(2)).sum::<f64>() * (count - 1) as f64
        / count as f64;
    (estimate, variance.sqrt())
}

/// `count` distinct nodes out of `nodes`, ascending, drawn with `seed` (all nodes if `count >= nodes`).
fn pick_receivers(nodes: usize, count: usize, seed: u64) -> Vec<usize> {
    if count >= nodes {
        return (0..nodes).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked = rand::seq::index::sample(&mut rng, nodes, count.max(1)).into_vec();
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use weatherlens_models::config::{ModelConfig, ProcessorKind};
    use weatherlens_models::graph::ModelGraph;
    use weatherlens_models::grid::{LatLonGrid, LatitudeOrder, PoleRows};
    use weatherlens_models::interaction::EdgeIndex;
    use weatherlens_models::mesh::Multimesh;

    use super::*;

    fn gaussian_host(count: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect()
    }

    fn state(nodes: usize, latent: usize, seed: u64, device: &Device) -> Tensor<3> {
        let values = gaussian_host(nodes * latent, seed)
            .into_iter()
            .map(|a| a as f32)
            .collect();
        tensor(values, [1, nodes, latent], device)
    }

    fn matrix(values: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
        let values: Vec<f32> = values.iter().map(|&a| a as f32).collect();
        Tensor::from_data(TensorData::new(values, [rows, cols]), device)
    }

    /// The linear field v = M x on the flattened state (row-major n × n `m`).
    fn linear_field(
        m: &[f64],
        nodes: usize,
        latent: usize,
        device: &Device,
    ) -> impl Fn(Tensor<3>) -> Tensor<3> {
        let n = nodes * latent;
        // Row vectors: v_row = x_row · Mᵀ.
        let transposed: Vec<f64> = (0..n * n).map(|k| m[(k % n) * n + k / n]).collect();
        let mt = matrix(&transposed, n, n, device);
        move |x: Tensor<3>| {
            let batch = x.dims()[0];
            x.reshape([batch, n])
                .matmul(mt.clone())
                .reshape([batch, nodes, latent])
        }
    }

    /// (S, R): a random symmetric and a random antisymmetric n × n matrix.
    fn symmetric_and_antisymmetric(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let g = gaussian_host(n * n, seed);
        let h = gaussian_host(n * n, seed + 1);
        let s = (0..n * n)
            .map(|k| 0.5 * (g[k] + g[(k % n) * n + k / n]))
            .collect();
        let r = (0..n * n)
            .map(|k| 0.5 * (h[k] - h[(k % n) * n + k / n]))
            .collect();
        (s, r)
    }

    fn frobenius(values: &[f64]) -> f64 {
        values.iter().map(|a| a * a).sum::<f64>().sqrt()
    }

    #[test]
    fn gradient_fields_are_symmetric() {
        let device = Device::flex();
        let (nodes, latent) = (32, 8);
        let n = nodes * latent;
        let x = state(nodes, latent, 1, &device);
        let options = AsymmetryOptions::default();

        // v = ∇(½ xᵀ S x) = S x.
        let (s, _) = symmetric_and_antisymmetric(n, 2);
        let quadratic =
            jacobian_asymmetry(linear_field(&s, nodes, latent, &device), &x, &options).unwrap();
        assert!(quadratic.asymmetry < 1e-3, "{quadratic:?}");
        let expected_norm = frobenius(&s);
        assert!(
            (quadratic.jacobian_frobenius / expected_norm - 1.0).abs() < 0.2,
            "‖S‖_F = {expected_norm}, estimated {quadratic:?}"
        );

        // v = ∇ Σ_j c_j tanh(a_j · x) = Σ_j c_j (1 − tanh²(a_j · x)) a_j: J = Aᵀ diag(..) A is symmetric.
        let terms = 64;
        let a: Vec<f64> = gaussian_host(terms * n, 3)
            .into_iter()
            .map(|e| e / (n as f64).sqrt())
            .collect();
        let c: Vec<f64> = gaussian_host(terms, 4);
        let a_rows = matrix(&a, terms, n, &device);
        let a_cols = a_rows.clone().transpose();
        let c = matrix(&c, 1, terms, &device);
        let tanh_field = move |x: Tensor<3>| {
            let batch = x.dims()[0];
            let t = x.reshape([batch, n]).matmul(a_cols.clone()).tanh();
            let weight = (t.clone() * t).neg().add_scalar(1.0) * c.clone();
            weight
                .matmul(a_rows.clone())
                .reshape([batch, nodes, latent])
        };
        let result = jacobian_asymmetry(tanh_field, &x, &options).unwrap();
        assert!(result.asymmetry < 1e-3, "{result:?}");
        assert!(result.fd_relative_error < 1e-3, "{result:?}");
    }

    #[test]
    fn a_rotation_field_has_asymmetry_two() {
        let device = Device::flex();
        let (nodes, latent) = (32, 8);
        let (_, r) = symmetric_and_antisymmetric(nodes * latent, 5);
        let x = state(nodes, latent, 6, &device);
        for distribution in [ProbeDistribution::Rademacher, ProbeDistribution::Gaussian] {
            let options = AsymmetryOptions {
                distribution,
                ..AsymmetryOptions::default()
            };
            let result =
                jacobian_asymmetry(linear_field(&r, nodes, latent, &device), &x, &options).unwrap();
            // J − Jᵀ = 2R and ‖Jz‖ = ‖Jᵀz‖ for every z, so every probe gives exactly 2.
            assert!((result.asymmetry - 2.0).abs() < 1e-3, "{result:?}");
            assert!(result.standard_error < 1e-3, "{result:?}");
        }
    }

    #[test]
    fn a_mixed_field_gives_the_hand_computed_asymmetry() {
        let device = Device::flex();
        let (nodes, latent) = (64, 8);
        let n = nodes * latent;
        let (s, r) = symmetric_and_antisymmetric(n, 7);
        // Weight the rotation so that A is well inside (0, 2).
        let m: Vec<f64> = s.iter().zip(&r).map(|(a, b)| a + 0.5 * b).collect();
        // S ⟂ R in the Frobenius inner product: ‖J − Jᵀ‖ = ‖2 · 0.5R‖, ‖J‖² = ‖S‖² + ‖0.5R‖².
        let expected =
            frobenius(&r) / (frobenius(&s).powi(2) + 0.25 * frobenius(&r).powi(2)).sqrt();
        let transposed_difference: Vec<f64> =
            (0..n * n).map(|k| m[k] - m[(k % n) * n + k / n]).collect();
        let direct = frobenius(&transposed_difference) / frobenius(&m);
        assert!((direct - expected).abs() < 1e-9, "{direct} vs {expected}");
        let options = AsymmetryOptions {
            probes: 32,
            ..AsymmetryOptions::default()
        };
        let x = state(nodes, latent, 8, &device);
        let result =
            jacobian_asymmetry(linear_field(&m, nodes, latent, &device), &x, &options).unwrap();
        let error = (result.asymmetry - expected).abs();
        assert!(
            error < 0.02 && error < 4.0 * result.standard_error + 1e-3,
            "expected {expected}, got {result:?}"
        );
        assert!(result.standard_error < 0.02, "{result:?}");
    }

    #[test]
    fn bad_arguments_are_errors() {
        let device = Device::flex();
        let x = state(4, 2, 1, &device);
        let identity = |x: Tensor<3>| x;
        let two = Tensor::cat(vec![x.clone(), x.clone()], 0);
        assert!(jacobian_asymmetry(identity, &two, &AsymmetryOptions::default()).is_err());
        let one_probe = AsymmetryOptions {
            probes: 1,
            ..AsymmetryOptions::default()
        };
        assert!(jacobian_asymmetry(identity, &x, &one_probe).is_err());
        let shrink = |x: Tensor<3>| x.slice([0..1, 0..2, 0..2]);
        let err = jacobian_asymmetry(shrink, &x, &AsymmetryOptions::default()).unwrap_err();
        assert!(err.to_string().contains("keep the shape"), "{err}");
        let lat = [0.0; 3];
        assert!(interaction_range(identity, &x, &lat, &lat, &RangeOptions::default()).is_err());
    }

    #[test]
    fn range_and_bins_of_hand_made_pairs() {
        let pairs = vec![(0.0, 5.0), (10.0, 3.0), (20.0, 2.0), (19.0, 0.0)];
        let summary = |fraction| {
            summarise_influence(
                vec![0],
                pairs.clone(),
                5.0,
                &RangeOptions {
                    fraction,
                    ..RangeOptions::default()
                },
            )
        };
        let ninety = summary(0.9);
        // Cumulative influence by distance: 5, 8, 8, 10 of 10.
        assert_eq!(ninety.range_deg, 20.0);
        assert_eq!(summary(0.5).range_deg, 0.0);
        assert_eq!(summary(0.8).range_deg, 10.0);
        assert_eq!(ninety.reach_deg, 20.0);
        assert_eq!(ninety.self_share, 0.5);
        // 2.5° bins: 0 -> 0, 10 -> 4, 19 -> 8 (7.6 rounds up), 20 -> 8.
        let rows: Vec<(f64, f64, usize)> = ninety
            .bins
            .iter()
            .map(|b| (b.distance_deg, b.influence, b.count))
            .collect();
        assert_eq!(rows, vec![(0.0, 5.0, 1), (10.0, 3.0, 1), (20.0, 1.0, 2)]);
    }

    fn level_one_mesh(device: &Device) -> (Multimesh, EdgeIndex, f64) {
        let mesh = Multimesh::new(1).unwrap();
        let nodes = mesh.num_nodes();
        let edges = EdgeIndex::new(mesh.senders(), mesh.receivers(), nodes, nodes, device);
        let longest = mesh
            .senders()
            .iter()
            .zip(mesh.receivers())
            .map(|(&s, &r)| {
                let p = mesh.positions();
                great_circle_distance(p[s as usize], p[r as usize]).to_degrees()
            })
            .fold(0.0, f64::max);
        (mesh, edges, longest)
    }

    #[test]
    fn a_local_field_has_all_its_influence_at_zero_distance() {
        let device = Device::flex();
        let (mesh, _, _) = level_one_mesh(&device);
        let latent = 4;
        let w = matrix(&gaussian_host(latent * latent, 9), latent, latent, &device);
        let local = move |x: Tensor<3>| x.matmul(w.clone().unsqueeze::<3>()).tanh();
        let x = state(mesh.num_nodes(), latent, 10, &device);
        let result = interaction_range(
            local,
            &x,
            mesh.node_lat(),
            mesh.node_lon(),
            &RangeOptions::default(),
        )
        .unwrap();
        assert_eq!(result.receivers.len(), 4);
        assert_eq!(result.bins[0].distance_deg, 0.0);
        assert_eq!(result.bins[0].count, 4);
        assert!(result.bins[0].influence > 0.0);
        assert!(result.bins[1..].iter().all(|b| b.influence == 0.0));
        assert_eq!(
            result.bins.iter().map(|b| b.count).sum::<usize>(),
            4 * mesh.num_nodes()
        );
        assert_eq!(result.range_deg, 0.0);
        assert_eq!(result.reach_deg, 0.0);
        assert_eq!(result.self_share, 1.0);
    }

    #[test]
    fn a_neighbour_field_reaches_exactly_its_farthest_neighbour() {
        let device = Device::flex();
        let (mesh, edges, longest) = level_one_mesh(&device);
        let latent = 4;
        let own = matrix(&gaussian_host(latent * latent, 11), latent, latent, &device);
        let other = matrix(&gaussian_host(latent * latent, 12), latent, latent, &device);
        // v_n = tanh(x_n W + Σ_{m -> n} x_m W').
        let coupled = move |x: Tensor<3>| {
            let messages = x
                .clone()
                .select(1, edges.senders.index.clone())
                .matmul(other.clone().unsqueeze::<3>());
            let incoming = edges.sum_into_receivers(messages);
            (x.matmul(own.clone().unsqueeze::<3>()) + incoming).tanh()
        };
        let x = state(mesh.num_nodes(), latent, 13, &device);
        let options = RangeOptions {
            receivers: mesh.num_nodes(),
            ..RangeOptions::default()
        };
        let result =
            interaction_range(coupled, &x, mesh.node_lat(), mesh.node_lon(), &options).unwrap();
        assert_eq!(result.receivers.len(), mesh.num_nodes());
        // The level-0 icosahedron edge, 63.43°, is the multimesh's longest.
        assert!((longest - 63.43).abs() < 0.01, "{longest}");
        assert!((result.reach_deg - longest).abs() < 1e-6, "{result:?}");
        let beyond: Vec<&InfluenceBin> = result
            .bins
            .iter()
            .filter(|b| b.distance_deg - 0.5 * options.bin_deg > longest)
            .collect();
        // Most node pairs of the 42-node mesh lie beyond the longest edge: the test is not vacuous.
        let far_pairs: usize = beyond.iter().map(|b| b.count).sum();
        assert!(far_pairs > 42 * 20, "{far_pairs} far pairs");
        assert!(beyond.iter().all(|b| b.influence == 0.0));
        assert!(result.range_deg <= longest && result.range_deg > 0.0);
        assert!(result.self_share > 0.0 && result.self_share < 1.0);
    }

    #[test]
    fn processor_layers_reach_their_longest_edge_or_stay_local() {
        let device = Device::flex();
        device.seed(3);
        let grid =
            LatLonGrid::equiangular(8, 16, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        let graph = ModelGraph::build(&grid, 1).unwrap();
        let (_, _, longest) = level_one_mesh(&device);
        let mesh = graph.multimesh();
        let latent = 8;
        // Message passing and neighbourhood attention see exactly the multimesh neighbours; the self-loop
        // control sees nothing but the node itself.
        for (processor, reach) in [
            (ProcessorKind::Gnn, longest),
            (ProcessorKind::Transformer, longest),
            (ProcessorKind::Selfloop, 0.0),
        ] {
            let config = ModelConfig {
                mesh_level: 1,
                latent_size: latent,
                num_layers: 2,
                processor,
                ..ModelConfig::default()
            };
            let model = WeatherModel::new(&config, 2, 1, &device);
            let attention = (processor == ProcessorKind::Transformer).then_some(config.attention);
            let tensors = GraphTensors::new(&graph, attention, &device);
            let input = Tensor::<3>::random(
                [1, graph.num_grid_points(), 2],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let encoded = model.encode(&tensors, input);
            let states =
                model
                    .processor()
                    .states(&tensors.mesh_context(), encoded.mesh, encoded.mesh_edges);
            let (x, edges) = &states[1];
            let v = layer_function(&model, &tensors, 1, edges.clone());
            let options = RangeOptions {
                receivers: 8,
                ..RangeOptions::default()
            };
            let range =
                interaction_range(&v, x, mesh.node_lat(), mesh.node_lon(), &options).unwrap();
            assert!(
                (range.reach_deg - reach).abs() < 1e-6,
                "{processor:?}: {range:?}"
            );
            let asymmetry = jacobian_asymmetry(&v, x, &AsymmetryOptions::default()).unwrap();
            assert!(asymmetry.asymmetry.is_finite() && asymmetry.asymmetry <= 2.0);
            assert!(asymmetry.fd_relative_error < 1e-2, "{asymmetry:?}");
        }
    }
}

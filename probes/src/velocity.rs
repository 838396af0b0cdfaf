//! How the residual stream moves through the processor: per layer the size of the increment v_i, its size
//! relative to the latent X_i, and its turn from the previous increment; over the whole stack the straightness of
//! each node's path, and whether |v_i| decays with depth (the "velocity decay" hypothesis).
//!
//! Inputs come from the hook points `processor.{i}.resid_pre` (X_i) and `processor.{i}.delta` (v_i), each
//! flattened to [rows, latent] with one row per (sample, node).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::stats::{quantile_sorted, rank_trend_p_value, spearman};

/// What a caller can get wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VelocityError {
    #[error("no processor layers given")]
    NoLayers,
    #[error("rows × latent = {rows} × {latent} holds no values")]
    Empty { rows: usize, latent: usize },
    #[error(
        "layer indices {indices:?} for {layers} layers: one ascending index per layer expected"
    )]
    Indices { indices: Vec<usize>, layers: usize },
    #[error("layer {layer} {tensor}: {len} values, expected rows × latent = {rows} × {latent}")]
    Shape {
        layer: usize,
        tensor: &'static str,
        len: usize,
        rows: usize,
        latent: usize,
    },
    #[error("layer {layer} {tensor}: non-finite value {value} at row {row}, latent {column}")]
    NonFinite {
        layer: usize,
        tensor: &'static str,
        row: usize,
        column: usize,
        value: f64,
    },
}

/// One processor layer as recorded: latents X_i and increments v_i, each [rows, latent] row-major.
#[derive(Debug, Clone, Copy)]
pub struct LayerRecording<'a, T> {
    /// X_i (`processor.{i}.resid_pre`): [rows, latent].
    pub latents: &'a [T],
    /// v_i (`processor.{i}.delta`): [rows, latent].
    pub increments: &'a [T],
}

/// Settings of the decay statistic's bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityOptions {
    /// Bootstrap resamples of the rows for the interval on Spearman's ρ (0: no interval).
    pub bootstrap_draws: usize,
    pub seed: u64,
}

impl Default for VelocityOptions {
    fn default() -> Self {
        Self {
            bootstrap_draws: 200,
            seed: 0,
        }
    }
}

/// One line of `velocity.csv` (DESIGN.md): serialising it with the `csv` crate gives exactly the columns
/// `layer,norm_mean,norm_q05,norm_q50,norm_q95,rel_mean,cos_prev`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VelocityRow {
    pub layer: usize,
    /// Mean over rows of |v_i| (Euclidean norm over the latent).
    pub norm_mean: f64,
    /// 5 %, 50 % and 95 % quantiles over rows of |v_i| (linear interpolation, as numpy's default).
    pub norm_q05: f64,
    pub norm_q50: f64,
    pub norm_q95: f64,
    /// Mean over rows of |v_i| / |X_i|, over the rows where X_i ≠ 0.
    pub rel_mean: f64,
    /// Mean over rows of cos(v_i, v_{i−1}), over the rows where both are non-zero. None for layer 0, which has no
    /// previous increment: an empty field in the CSV, null in JSON.
    pub cos_prev: Option<f64>,
}

/// Spearman's ρ between layer index and mean |v_i|: negative when the increments shrink with depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DecayStatistic {
    pub spearman_rho: f64,
    /// 2.5 % and 97.5 % points of ρ over bootstrap resamples of the rows (drawn with replacement; rows are
    /// resampled whole, so each draw keeps the layers of a row together). None without draws.
    pub ci: Option<[f64; 2]>,
    pub bootstrap_draws: usize,
    pub seed: u64,
    /// Two-sided p-value of ρ against depth over the *layers* (the row bootstrap says nothing about how
    /// unusual a trend over L points is): exact over all L! orders for L ≤ 8, else from 20,000 random orders.
    /// None (null in JSON) with fewer than 3 layers, where no order is unusual.
    pub layer_p_value: Option<f64>,
}

/// The whole velocity analysis of one recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VelocityProfile {
    pub layers: Vec<VelocityRow>,
    /// Mean over rows of |X_L − X_0| / Σ_i |v_i| with X_L = X_{L−1} + v_{L−1}: 1 for a straight path, smaller
    /// the more it turns. Rows that never move (Σ_i |v_i| = 0) are left out. None (null in JSON) when the
    /// recorded layers are not consecutive: the path between them is unknown.
    pub straightness: Option<f64>,
    pub decay: DecayStatistic,
}

/// Velocity figures of a stack of layers 0, 1, .., L − 1. Every layer's tensors are [rows, latent]; values may
/// be f32 (as recorded) or f64, and are accumulated in f64 (in a fixed order: the figures are the same to the
/// last bit on any number of threads).
pub fn velocity_profile<'a, T: Copy + Into<f64> + Sync>(
    layers: &[LayerRecording<'a, T>],
    rows: usize,
    latent: usize,
    options: &VelocityOptions,
) -> Result<VelocityProfile, VelocityError> {
    let indices: Vec<usize> = (0..layers.len()).collect();
    velocity_profile_at(layers, &indices, rows, latent, options)
}

/// [`velocity_profile`] of recorded layers with their processor indices `indices` (ascending, one per layer,
/// e.g. `[1, 2]` for `probe --layers 1,2`): rows, depth and decay use the real indices; `cos_prev` needs the
/// layer before to be recorded, straightness needs consecutive layers.
pub fn velocity_profile_at<'a, T: Copy + Into<f64> + Sync>(
    layers: &[LayerRecording<'a, T>],
    indices: &[usize],
    rows: usize,
    latent: usize,
    options: &VelocityOptions,
) -> Result<VelocityProfile, VelocityError> {
    check_layers(layers, rows, latent)?;
    if indices.len() != layers.len() || indices.windows(2).any(|w| w[0] >= w[1]) {
        return Err(VelocityError::Indices {
            indices: indices.to_vec(),
            layers: layers.len(),
        });
    }
    let consecutive = indices.windows(2).all(|w| w[1] == w[0] + 1);
    let row_of = |values: &'a [T], row: usize| row_slice(values, row, latent);
    let norms: Vec<Vec<f64>> = layers
        .iter()
        .map(|layer| {
            (0..rows)
                .into_par_iter()
                .map(|row| norm(row_of(layer.increments, row)))
                .collect()
        })
        .collect();

    let mut rows_out = Vec::with_capacity(layers.len());
    for (index, layer) in layers.iter().enumerate() {
        let mut sorted = norms[index].clone();
        sorted.sort_by(f64::total_cmp);
        let relative = mean_of_defined(rows, |row| {
            let latent_norm = norm(row_of(layer.latents, row));
            (latent_norm > 0.0).then(|| norms[index][row] / latent_norm)
        });
        let recorded_previous = index
            .checked_sub(1)
            .filter(|&previous| indices[previous] + 1 == indices[index]);
        let cos_prev = recorded_previous.map(|previous| {
            mean_of_defined(rows, |row| {
                let (a, b) = (
                    row_of(layer.increments, row),
                    row_of(layers[previous].increments, row),
                );
                let denominator = norms[index][row] * norms[previous][row];
                (denominator > 0.0).then(|| dot(a, b) / denominator)
            })
        });
        rows_out.push(VelocityRow {
            layer: indices[index],
            norm_mean: sorted.iter().sum::<f64>() / rows as f64,
            norm_q05: quantile_sorted(&sorted, 0.05),
            norm_q50: quantile_sorted(&sorted, 0.5),
            norm_q95: quantile_sorted(&sorted, 0.95),
            rel_mean: relative,
            cos_prev,
        });
    }

    let (first, last) = (&layers[0], &layers[layers.len() - 1]);
    let straightness = consecutive.then(|| {
        mean_of_defined(rows, |row| {
            let path_length: f64 = norms.iter().map(|layer_norms| layer_norms[row]).sum();
            let displacement: f64 = row_of(last.latents, row)
                .iter()
                .zip(row_of(last.increments, row))
                .zip(row_of(first.latents, row))
                .map(|((&x_last, &v_last), &x_first)| {
                    let step = x_last.into() + v_last.into() - x_first.into();
                    step * step
                })
                .sum::<f64>()
                .sqrt();
            (path_length > 0.0).then(|| displacement / path_length)
        })
    });

    let decay = decay_statistic(
        &norms,
        indices,
        rows_out.iter().map(|row| row.norm_mean).collect(),
        options,
    );
    Ok(VelocityProfile {
        layers: rows_out,
        straightness,
        decay,
    })
}

fn check_layers<T: Copy + Into<f64> + Sync>(
    layers: &[LayerRecording<T>],
    rows: usize,
    latent: usize,
) -> Result<(), VelocityError> {
    if layers.is_empty() {
        return Err(VelocityError::NoLayers);
    }
    if rows == 0 || latent == 0 {
        return Err(VelocityError::Empty { rows, latent });
    }
    for (layer, recording) in layers.iter().enumerate() {
        for (tensor, values) in [
            ("latents", recording.latents),
            ("increments", recording.increments),
        ] {
            if rows.checked_mul(latent) != Some(values.len()) {
                return Err(VelocityError::Shape {
                    layer,
                    tensor,
                    len: values.len(),
                    rows,
                    latent,
                });
            }
            if let Some(position) = values
                .par_iter()
                .position_first(|&value| !value.into().is_finite())
            {
                return Err(VelocityError::NonFinite {
                    layer,
                    tensor,
                    row: position / latent,
                    column: position % latent,
                    value: values[position].into(),
                });
            }
        }
    }
    Ok(())
}

/// Spearman's ρ of (i, mean_i) and its row bootstrap, i the layers' `indices`. norms: [layers, rows] as one
/// Vec per layer.
fn decay_statistic(
    norms: &[Vec<f64>],
    indices: &[usize],
    means: Vec<f64>,
    options: &VelocityOptions,
) -> DecayStatistic {
    let depth: Vec<f64> = indices.iter().map(|&layer| layer as f64).collect();
    let spearman_rho = spearman(&depth, &means);
    let rows = norms[0].len();
    let ci = (options.bootstrap_draws > 0).then(|| {
        let draws: Vec<f64> = (0..options.bootstrap_draws as u64)
            .into_par_iter()
            .map(|draw| {
                let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
                rng.set_stream(draw);
                let picks: Vec<usize> = (0..rows).map(|_| rng.random_range(0..rows)).collect();
                let resampled_means: Vec<f64> = norms
                    .iter()
                    .map(|layer_norms| {
                        picks.iter().map(|&row| layer_norms[row]).sum::<f64>() / rows as f64
                    })
                    .collect();
                spearman(&depth, &resampled_means)
            })
            .collect();
        let mut finite: Vec<f64> = draws
            .into_iter()
            .filter(|value| value.is_finite())
            .collect();
        finite.sort_by(f64::total_cmp);
        [
            quantile_sorted(&finite, 0.025),
            quantile_sorted(&finite, 0.975),
        ]
    });
    DecayStatistic {
        spearman_rho,
        ci,
        bootstrap_draws: options.bootstrap_draws,
        seed: options.seed,
        layer_p_value: Some(rank_trend_p_value(&means, options.seed)).filter(|p| p.is_finite()),
    }
}

/// Mean of `value(row)` over the rows where it is defined; NaN when it is defined nowhere. The values are
/// computed in parallel and summed in row order: a parallel reduction's grouping depends on how the work was
/// split, and with it the last bits of the sum.
fn mean_of_defined(rows: usize, value: impl Fn(usize) -> Option<f64> + Sync + Send) -> f64 {
    let values: Vec<Option<f64>> = (0..rows).into_par_iter().map(value).collect();
    let (sum, count) = values
        .into_iter()
        .flatten()
        .fold((0.0, 0usize), |(sum, count), value| {
            (sum + value, count + 1)
        });
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Row `row` of values: [rows, latent].
fn row_slice<T>(values: &[T], row: usize, latent: usize) -> &[T] {
    &values[row * latent..(row + 1) * latent]
}

fn norm<T: Copy + Into<f64>>(values: &[T]) -> f64 {
    values
        .iter()
        .map(|&value| value.into() * value.into())
        .sum::<f64>()
        .sqrt()
}

fn dot<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(&p, &q)| p.into() * q.into()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers along a path: X_0 = start, X_{i+1} = X_i + v_i, each [1, latent].
    fn path(start: &[f64], increments: &[Vec<f64>]) -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut latent = start.to_vec();
        increments
            .iter()
            .map(|v| {
                let layer = (latent.clone(), v.clone());
                latent.iter_mut().zip(v).for_each(|(x, step)| *x += step);
                layer
            })
            .collect()
    }

    fn profile(layers: &[(Vec<f64>, Vec<f64>)], rows: usize, latent: usize) -> VelocityProfile {
        let recordings: Vec<LayerRecording<f64>> = layers
            .iter()
            .map(|(x, v)| LayerRecording {
                latents: x,
                increments: v,
            })
            .collect();
        velocity_profile(
            &recordings,
            rows,
            latent,
            &VelocityOptions {
                bootstrap_draws: 50,
                seed: 1,
            },
        )
        .unwrap()
    }

    #[test]
    fn collinear_increments_make_a_straight_path() {
        let layers = path(
            &[1.0, -2.0, 0.5],
            &[
                vec![1.0, 2.0, 2.0],
                vec![0.5, 1.0, 1.0],
                vec![2.0, 4.0, 4.0],
            ],
        );
        let result = profile(&layers, 1, 3);
        let straightness = result.straightness.unwrap();
        assert!((straightness - 1.0).abs() < 1e-15, "{straightness}");
        assert_eq!(result.layers[0].cos_prev, None);
        assert!((result.layers[1].cos_prev.unwrap() - 1.0).abs() < 1e-15);
        // |v| = 3, 1.5, 6; |X_0| = sqrt(1 + 4 + 0.25) = sqrt(5.25).
        assert!((result.layers[0].norm_mean - 3.0).abs() < 1e-15);
        assert!((result.layers[0].rel_mean - 3.0 / 5.25f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn a_right_angle_path_has_straightness_one_over_root_two() {
        // v_0 = (1, 0), v_1 = (0, 1): |X_2 − X_0| = sqrt(2), Σ|v_i| = 2.
        let layers = path(&[3.0, 4.0], &[vec![1.0, 0.0], vec![0.0, 1.0]]);
        let result = profile(&layers, 1, 2);
        assert!((result.straightness.unwrap() - 2f64.sqrt() / 2.0).abs() < 1e-15);
        assert!(result.layers[1].cos_prev.unwrap().abs() < 1e-15);
    }

    #[test]
    fn decaying_increments_give_rho_minus_one_with_an_interval() {
        // 200 rows, 6 layers, |v_i| = 2^−i·(1 + row noise): mean norms fall strictly.
        let (rows, latent, depth) = (200, 4, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let layers: Vec<(Vec<f64>, Vec<f64>)> = (0..depth)
            .map(|layer| {
                let scale = 0.5f64.powi(layer);
                let v: Vec<f64> = (0..rows * latent)
                    .map(|_| scale * rng.random_range(0.5..1.5))
                    .collect();
                (vec![1.0; rows * latent], v)
            })
            .collect();
        let result = profile(&layers, rows, latent);
        assert_eq!(result.decay.spearman_rho, -1.0);
        let [lo, hi] = result.decay.ci.unwrap();
        assert!(lo <= -1.0 + 1e-12 && hi <= -1.0 + 1e-12, "[{lo}, {hi}]");
        let means: Vec<f64> = result.layers.iter().map(|row| row.norm_mean).collect();
        assert!(means.windows(2).all(|pair| pair[1] < pair[0]));
    }

    #[test]
    fn recorded_layers_keep_their_processor_indices() {
        // Layers 1, 2, 3 of a stack: |v| = 3, 2, 1 (decaying), all along one direction.
        let layers = path(
            &[1.0, 0.0],
            &[vec![3.0, 0.0], vec![2.0, 0.0], vec![1.0, 0.0]],
        );
        let recordings: Vec<LayerRecording<f64>> = layers
            .iter()
            .map(|(x, v)| LayerRecording {
                latents: x,
                increments: v,
            })
            .collect();
        let options = VelocityOptions::default();
        let result = velocity_profile_at(&recordings, &[1, 2, 3], 1, 2, &options).unwrap();
        let labels: Vec<usize> = result.layers.iter().map(|r| r.layer).collect();
        assert_eq!(labels, [1, 2, 3]);
        // Layer 1's previous increment (layer 0) was not recorded: no turn to report.
        assert_eq!(result.layers[0].cos_prev, None);
        assert!((result.layers[1].cos_prev.unwrap() - 1.0).abs() < 1e-15);
        assert_eq!(result.decay.spearman_rho, -1.0);
        // 3 strictly falling means: only 2 of the 3! = 6 orders are as monotone (p = 1/3).
        assert!((result.decay.layer_p_value.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((result.straightness.unwrap() - 1.0).abs() < 1e-15);

        // Two layers, as `probe --layers 1,2` records: no p-value (not NaN), labels 1 and 2.
        let two = velocity_profile_at(&recordings[..2], &[1, 2], 1, 2, &options).unwrap();
        assert_eq!(two.layers[0].layer, 1);
        assert_eq!(two.layers[1].layer, 2);
        assert_eq!(two.decay.layer_p_value, None);
        // Layers 1 and 3: the path between them is unknown, and so is layer 3's turn.
        let gap = [recordings[0], recordings[2]];
        let gapped = velocity_profile_at(&gap, &[1, 3], 1, 2, &options).unwrap();
        assert_eq!(gapped.straightness, None);
        assert_eq!(gapped.layers[1].cos_prev, None);
        assert!(velocity_profile_at(&gap, &[3, 1], 1, 2, &options).is_err());
    }

    #[test]
    fn means_are_the_same_to_the_last_bit_on_any_thread_count() {
        // Values whose sum depends on the order of addition.
        let values: Vec<f64> = (0..100_000)
            .map(|k| 1e16 * ((k as f64) * 0.7).sin() + (k % 7) as f64 * 0.1)
            .collect();
        let mean = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| mean_of_defined(values.len(), |row| Some(values[row])))
        };
        let sequential = values.iter().sum::<f64>() / values.len() as f64;
        for threads in [1, 2, 3, 8] {
            for _ in 0..3 {
                assert_eq!(
                    mean(threads).to_bits(),
                    sequential.to_bits(),
                    "{threads} threads"
                );
            }
        }
    }

    #[test]
    fn rows_serialise_to_the_velocity_csv_columns_with_an_empty_first_cos_prev() {
        let layers = path(&[1.0, 0.0], &[vec![0.0, 1.0], vec![0.0, 2.0]]);
        let result = profile(&layers, 1, 2);
        let mut writer = csv::Writer::from_writer(Vec::new());
        result
            .layers
            .iter()
            .for_each(|row| writer.serialize(row).unwrap());
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "layer,norm_mean,norm_q05,norm_q50,norm_q95,rel_mean,cos_prev"
        );
        assert_eq!(lines[1], "0,1.0,1.0,1.0,1.0,1.0,");
        assert!(
            lines[2].starts_with("1,2.0,") && lines[2].ends_with(",1.0"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn f32_recordings_and_bad_input_are_handled() {
        let x = [1.0f32, 0.0, 0.0, 1.0];
        let v = [0.0f32, 2.0, f32::NAN, 0.0];
        let layer = LayerRecording {
            latents: &x[..],
            increments: &v[..],
        };
        let error = velocity_profile(&[layer], 2, 2, &VelocityOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "layer 0 increments: non-finite value NaN at row 1, latent 0",
        );
        let short = LayerRecording {
            latents: &x[..3],
            increments: &v[..],
        };
        assert!(matches!(
            velocity_profile(&[short], 2, 2, &VelocityOptions::default()),
            Err(VelocityError::Shape { .. })
        ));
        let none: [LayerRecording<f32>; 0] = [];
        assert_eq!(
            velocity_profile(&none, 2, 2, &VelocityOptions::default()),
            Err(VelocityError::NoLayers)
        );
        let fine = [0.0f32, 2.0, 3.0, 0.0];
        let layer = LayerRecording {
            latents: &x[..],
            increments: &fine[..],
        };
        let result = velocity_profile(&[layer], 2, 2, &VelocityOptions::default()).unwrap();
        assert!((result.layers[0].norm_mean - 2.5).abs() < 1e-12);
    }
}

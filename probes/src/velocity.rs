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
use crate::trend::{Trend, trend};

/// Increments whose norms all lie within this fraction of the largest have "the same norm": a LayerNorm at the
/// end of a layer fixes ‖v‖ = √D·γ up to its ε (a relative change of ε / var, about 10⁻⁵), far below the spread
/// of any increment the dynamics set.
pub const EQUAL_NORM_TOLERANCE: f64 = 1e-3;

/// What a caller can get wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VelocityError {
    #[error("no processor layers given")]
    NoLayers,
    #[error("rows × latent = {rows} × {latent} holds no values")]
    Empty { rows: usize, latent: usize },
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
    pub layer_p_value: f64,
}

/// The whole velocity analysis of one recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VelocityProfile {
    pub layers: Vec<VelocityRow>,
    /// Mean over rows of |X_L − X_0| / Σ_i |v_i| with X_L = X_{L−1} + v_{L−1}: 1 for a straight path, smaller
    /// the more it turns. Rows that never move (Σ_i |v_i| = 0) are left out.
    pub straightness: f64,
    pub decay: DecayStatistic,
    /// The verdict on mean |v_i| over depth, from significance and size ([`crate::trend`]): `falls` = the
    /// increments decay. Undetermined, with the reason, when every increment is zero or every increment has
    /// the same norm (a normalisation fixes it), or with fewer than 3 layers.
    pub trend: Trend,
    /// Facts that qualify the figures (e.g. each layer's increments share one norm).
    pub notes: Vec<String>,
}

/// Velocity figures of a stack of layers. Every layer's tensors are [rows, latent]; values may be f32 (as
/// recorded) or f64, and are accumulated in f64.
pub fn velocity_profile<'a, T: Copy + Into<f64> + Sync>(
    layers: &[LayerRecording<'a, T>],
    rows: usize,
    latent: usize,
    options: &VelocityOptions,
) -> Result<VelocityProfile, VelocityError> {
    check_layers(layers, rows, latent)?;
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
        let cos_prev = index.checked_sub(1).map(|previous| {
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
            layer: index,
            norm_mean: sorted.iter().sum::<f64>() / rows as f64,
            norm_q05: quantile_sorted(&sorted, 0.05),
            norm_q50: quantile_sorted(&sorted, 0.5),
            norm_q95: quantile_sorted(&sorted, 0.95),
            rel_mean: relative,
            cos_prev,
        });
    }

    let (first, last) = (&layers[0], &layers[layers.len() - 1]);
    let straightness = mean_of_defined(rows, |row| {
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
    });

    let means: Vec<f64> = rows_out.iter().map(|row| row.norm_mean).collect();
    let decay = decay_statistic(&norms, means.clone(), options);
    let (trend, notes) = size_verdict(&norms, &means, options.seed);
    Ok(VelocityProfile {
        layers: rows_out,
        straightness,
        decay,
        trend,
        notes,
    })
}

/// The trend verdict on the layer means, withheld when the increments' sizes are fixed by construction.
/// norms: [layers][rows].
fn size_verdict(norms: &[Vec<f64>], means: &[f64], seed: u64) -> (Trend, Vec<String>) {
    let spread = |values: &mut dyn Iterator<Item = f64>| {
        values.fold((f64::INFINITY, 0.0f64), |(low, high), v| {
            (low.min(v), high.max(v))
        })
    };
    let (low, high) = spread(&mut norms.iter().flatten().copied());
    if high == 0.0 {
        return (
            Trend::undetermined(
                "every increment is zero (|v_i| = 0 at every row and layer): nothing moves",
            ),
            Vec::new(),
        );
    }
    if high - low <= EQUAL_NORM_TOLERANCE * high {
        return (
            Trend::undetermined(format!(
                "every increment has the same norm (|v_i| = {high:.4} to {:.1} % at every row and layer): the \
                 increments end in a normalisation, so their size is fixed by construction and says nothing about \
                 the dynamics",
                100.0 * EQUAL_NORM_TOLERANCE
            )),
            Vec::new(),
        );
    }
    let mut notes = Vec::new();
    let per_layer_fixed = norms.iter().all(|layer| {
        let (low, high) = spread(&mut layer.iter().copied());
        high - low <= EQUAL_NORM_TOLERANCE * high
    });
    if per_layer_fixed {
        notes.push(
            "within each layer every increment has the same norm: a normalisation sets it, so the trend over \
             depth compares the normalisations' scales, not the dynamics"
                .to_string(),
        );
    }
    (trend(means, seed), notes)
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

/// Spearman's ρ of (i, mean_i) and its row bootstrap. norms: [layers, rows] as one Vec per layer.
fn decay_statistic(
    norms: &[Vec<f64>],
    means: Vec<f64>,
    options: &VelocityOptions,
) -> DecayStatistic {
    let depth: Vec<f64> = (0..means.len()).map(|layer| layer as f64).collect();
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
        layer_p_value: rank_trend_p_value(&means, options.seed),
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
        assert!(
            (result.straightness - 1.0).abs() < 1e-15,
            "{}",
            result.straightness
        );
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
        assert!((result.straightness - 2f64.sqrt() / 2.0).abs() < 1e-15);
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
        assert_eq!(result.trend.direction, crate::trend::Direction::Falls);
        let [lo, hi] = result.decay.ci.unwrap();
        assert!(lo <= -1.0 + 1e-12 && hi <= -1.0 + 1e-12, "[{lo}, {hi}]");
        let means: Vec<f64> = result.layers.iter().map(|row| row.norm_mean).collect();
        assert!(means.windows(2).all(|pair| pair[1] < pair[0]));
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
    fn equal_norm_and_zero_increments_are_undetermined_and_size_is_required() {
        use crate::trend::Direction;
        // Increments of norm exactly 2 at every row and layer (as after a LayerNorm), in changing directions:
        // equal by construction, whatever a rank test of the (rounding-level) layer means would say.
        let (rows, latent, depth) = (50, 4, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let layers: Vec<(Vec<f64>, Vec<f64>)> = (0..depth)
            .map(|_| {
                let v: Vec<f64> = (0..rows)
                    .flat_map(|_| {
                        let raw: Vec<f64> =
                            (0..latent).map(|_| rng.random_range(-1.0..1.0)).collect();
                        let n = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
                        raw.into_iter().map(move |x| 2.0 * x / n)
                    })
                    .collect();
                (vec![1.0; rows * latent], v)
            })
            .collect();
        let result = profile(&layers, rows, latent);
        assert_eq!(result.trend.direction, Direction::Undetermined);
        assert!(
            result.trend.reason.contains("same norm"),
            "{}",
            result.trend.reason
        );
        let zeros: Vec<(Vec<f64>, Vec<f64>)> =
            (0..3).map(|_| (vec![1.0; 8], vec![0.0; 8])).collect();
        let result = profile(&zeros, 4, 2);
        assert_eq!(result.trend.direction, Direction::Undetermined);
        assert!(
            result.trend.reason.contains("zero"),
            "{}",
            result.trend.reason
        );
        // Each layer's norm fixed (2, 1.99, 1.98, ...): significant rank decay, but 1 % in all: no verdict of decay.
        let fixed: Vec<(Vec<f64>, Vec<f64>)> = (0..6)
            .map(|i| {
                (
                    vec![1.0; 8],
                    vec![2.0 - 0.004 * i as f64, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                )
            })
            .map(|(x, mut v)| {
                v[2] = v[0];
                v[4] = v[0];
                v[6] = v[0];
                (x, v)
            })
            .collect();
        let result = profile(&fixed, 4, 2);
        assert_eq!(
            result.trend.direction,
            Direction::NoTrend,
            "{}",
            result.trend.reason
        );
        assert!(
            result.trend.reason.contains("too small"),
            "{}",
            result.trend.reason
        );
        assert_eq!(result.notes.len(), 1, "each layer's norm is fixed");
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
}

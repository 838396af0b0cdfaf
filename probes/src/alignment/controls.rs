//! Alignment beside its controls. The permutation null only says that X and Y are paired at all; latents of any
//! network mirror its inputs, and two untrained networks fed the same inputs look aligned (REFERENCE.md,
//! "Controls for alignment": CKNNA 0.76–0.81 between untrained AuroraSmall seeds against a null of 0.05). So every
//! figure metric(X, Y) stands beside:
//!
//! - the **untrained control**: metric(X₀, Y₀) of the same two architectures at initialisation, on the same
//!   inputs and rows;
//! - the **input baselines**: metric(X, I_X) and metric(Y, I_Y), each model against the input fields at its own
//!   rows;
//!
//! and the report gives the **excess** = metric(X, Y) − max(controls), with a 95 % interval from the same
//! subsamples (of rows, or of whole groups of rows such as the sample times) that give the metrics' intervals.
//! When the interval includes 0 the alignment is **not above controls**.
//!
//! A panel holds every representation of one set of rows (models, untrained models, inputs); each is searched
//! for neighbours once, and every comparison of the panel reuses the search, for the figures, the null and
//! every subsample.

use std::borrow::Cow;

use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::Serialize;

use super::compare::{AlignmentReport, CompareOptions, NullSummary};
use super::knn::RankedNeighbours;
use super::representation::preprocessed;
use super::{
    AlignmentError, CI_STREAM_OFFSET, MetricSet, Representation, Side, check_neighbour_count,
    check_sample_count, metrics_between, select_rows,
};
use crate::stats::{null_summary, stream_rng, subsample_interval};

/// Below this many rows per neighbour (n < 5k) the kNN metrics are not trusted: a neighbourhood of k is a
/// large share of the rows, and CKNNA's masked estimator leaves [−1, 1] (1.08 at n = 16, k = 10).
pub const MIN_ROWS_PER_NEIGHBOUR: usize = 5;
/// CKNNA beyond ±(1 + this) is outside its range (rounding aside).
const RANGE_SLACK: f64 = 1e-9;

/// One comparison of a panel with its controls, as indices into the panel's representations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControlledPair {
    pub x: usize,
    pub y: usize,
    /// The two architectures at initialisation (X₀, Y₀), on the same inputs.
    pub untrained: Option<(usize, usize)>,
    /// The input fields at X's rows and at Y's rows.
    pub inputs_x: Option<usize>,
    pub inputs_y: Option<usize>,
}

/// The control figures of one comparison (None: that control was not available).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Controls {
    /// metric(X₀, Y₀).
    pub untrained: Option<MetricSet<f64>>,
    /// metric(X, inputs at X's rows).
    pub input_x: Option<MetricSet<f64>>,
    /// metric(Y, inputs at Y's rows).
    pub input_y: Option<MetricSet<f64>>,
}

/// Whether a figure rises above its controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcessVerdict {
    /// The excess's interval lies above 0.
    AboveControls,
    /// The interval includes 0 (or, without an interval, the excess is ≤ 0).
    NotAboveControls,
    /// The figure or a control is undefined or unreliable (see the warnings), or the excess is positive but
    /// has no interval (e.g. fewer than 5 sample times, or no subsample draws): "above" needs an interval.
    Undetermined,
}

/// metric(X, Y) − max(controls) with its interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excess {
    /// The largest control figure.
    pub control: f64,
    /// Which control it is: `untrained`, `input_x` or `input_y`.
    pub largest: &'static str,
    pub value: f64,
    /// 95 % subsample interval of the excess (None without draws).
    pub ci: Option<[f64; 2]>,
    pub verdict: ExcessVerdict,
}

/// One comparison's report: the figures with null and interval (the `compare --json` keys), the controls, the
/// excess over them, and warnings that withhold a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlledReport {
    #[serde(flatten)]
    pub alignment: AlignmentReport,
    pub controls: Controls,
    /// None when no control was available.
    pub excess: Option<MetricSet<Excess>>,
    pub warnings: Vec<String>,
}

/// A representation prepared once: its data after preprocessing, its ranked neighbours and its side.
struct Prepared<'a> {
    data: Cow<'a, [f64]>,
    features: usize,
    ranked: RankedNeighbours,
    side: Side,
}

/// The four comparisons of one pair in one draw: (X, Y), (X₀, Y₀), (X, I_X), (Y, I_Y).
type Quadruple = [Option<MetricSet<f64>>; 4];

impl ControlledPair {
    fn comparisons(&self) -> [Option<(usize, usize)>; 4] {
        [
            Some((self.x, self.y)),
            self.untrained,
            self.inputs_x.map(|i| (self.x, i)),
            self.inputs_y.map(|i| (self.y, i)),
        ]
    }
}

/// Every comparison of `pairs` between representations of the same rows, with the permutation null of each (X,
/// Y), subsample intervals, the controls and the excess. `groups` (one id in 0..G per row), when given, makes the
/// interval subsample whole groups (e.g. all rows of a sample time) instead of rows.
pub fn compare_panel(
    reps: &[Representation],
    groups: Option<&[usize]>,
    pairs: &[ControlledPair],
    options: &CompareOptions,
) -> Result<Vec<ControlledReport>, AlignmentError> {
    let Some(first) = reps.first() else {
        return Ok(Vec::new());
    };
    let n = first.samples;
    for rep in reps {
        if rep.samples != n {
            return Err(AlignmentError::SampleCountMismatch {
                x_name: first.name.to_owned(),
                x_samples: n,
                y_name: rep.name.to_owned(),
                y_samples: rep.samples,
            });
        }
    }
    check_sample_count(n)?;
    let k = options.k;
    check_neighbour_count(k, n)?;
    let units = match groups {
        Some(groups) => {
            if groups.len() != n {
                return Err(AlignmentError::InvalidOption {
                    option: "groups",
                    value: groups.len() as f64,
                    expected: "one group id per row",
                });
            }
            groups.iter().max().map_or(0, |&g| g + 1)
        }
        None => n,
    };
    let kept_units = subsample_units(units, n, groups.is_some(), options)?;
    let used: std::collections::BTreeSet<usize> = pairs
        .iter()
        .flat_map(|p| {
            p.comparisons()
                .into_iter()
                .flatten()
                .flat_map(|(a, b)| [a, b])
        })
        .collect();
    if let Some(&bad) = used.iter().find(|&&i| i >= reps.len()) {
        return Err(AlignmentError::InvalidOption {
            option: "pair index",
            value: bad as f64,
            expected: "an index into the panel's representations",
        });
    }
    let depth = match kept_units {
        Some(_) => {
            ((2.0 * k as f64 / options.ci_subsample_fraction).ceil() as usize + 8).min(n - 1)
        }
        None => k,
    };
    let mut prepared: Vec<Option<Prepared>> = (0..reps.len()).map(|_| None).collect();
    let computed: Vec<(usize, Prepared)> = used
        .iter()
        .copied()
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|i| -> Result<(usize, Prepared), AlignmentError> {
            let rep = &reps[i];
            let data = preprocessed(rep, options.preprocessing)?;
            let ranked = RankedNeighbours::search(&data, n, rep.features, depth);
            let side = Side::new(&data, n, rep.features, ranked.nearest(k));
            Ok((
                i,
                Prepared {
                    data,
                    features: rep.features,
                    ranked,
                    side,
                },
            ))
        })
        .collect::<Result<_, _>>()?;
    for (i, p) in computed {
        prepared[i] = Some(p);
    }
    let side = |i: usize| &prepared[i].as_ref().expect("prepared above").side;
    let observed: Vec<Quadruple> = pairs
        .iter()
        .map(|pair| {
            pair.comparisons()
                .map(|c| c.map(|(a, b)| metrics_between(side(a), side(b), k)))
        })
        .collect();

    let nulls: Vec<Option<MetricSet<NullSummary>>> = pairs
        .iter()
        .zip(&observed)
        .map(|(pair, quad)| {
            (options.null_draws > 0).then(|| {
                let draws: Vec<MetricSet<f64>> = (0..options.null_draws as u64)
                    .into_par_iter()
                    .map(|draw| {
                        let mut permutation: Vec<usize> = (0..n).collect();
                        permutation.shuffle(&mut stream_rng(options.seed, draw));
                        metrics_between(side(pair.x), &side(pair.y).permuted(&permutation), k)
                    })
                    .collect();
                let own = quad[0].as_ref().expect("the pair itself");
                per_metric(|metric| {
                    let (mean, p95, p_value) =
                        null_summary(metric.of(own), draws.iter().map(|d| metric.of(d)).collect());
                    NullSummary { mean, p95, p_value }
                })
            })
        })
        .collect();

    // Subsample draws: every prepared representation on the same kept rows, then every comparison.
    let draws: Vec<Vec<Quadruple>> = match kept_units {
        None => Vec::new(),
        Some(kept) => (0..options.ci_draws as u64)
            .filter_map(|draw| {
                let mut rng = stream_rng(options.seed, CI_STREAM_OFFSET + draw);
                let mut chosen = rand::seq::index::sample(&mut rng, units, kept).into_vec();
                chosen.sort_unstable();
                let rows: Vec<usize> = match groups {
                    None => chosen,
                    Some(groups) => {
                        let mut keep = vec![false; units];
                        chosen.iter().for_each(|&g| keep[g] = true);
                        (0..n).filter(|&r| keep[groups[r]]).collect()
                    }
                };
                if rows.len() < 4 || rows.len() <= k {
                    return None;
                }
                let sides: Vec<Option<Side>> = prepared
                    .par_iter()
                    .map(|p| {
                        p.as_ref().map(|p| {
                            let neighbours =
                                p.ranked.within_subsample(k, &rows, &p.data, p.features);
                            Side::new(
                                &select_rows(&p.data, p.features, &rows),
                                rows.len(),
                                p.features,
                                neighbours,
                            )
                        })
                    })
                    .collect();
                let at = |i: usize| sides[i].as_ref().expect("prepared above");
                Some(
                    pairs
                        .iter()
                        .map(|pair| {
                            pair.comparisons()
                                .map(|c| c.map(|(a, b)| metrics_between(at(a), at(b), k)))
                        })
                        .collect(),
                )
            })
            .collect(),
    };
    let scale = kept_units.map(|kept| (kept as f64 / (units - kept) as f64).sqrt());

    Ok(pairs
        .iter()
        .enumerate()
        .map(|(index, _)| {
            let quad = &observed[index];
            let metrics = quad[0].expect("the pair itself");
            let pair_draws: Vec<&Quadruple> = draws.iter().map(|d| &d[index]).collect();
            let ci = scale.filter(|_| !pair_draws.is_empty()).map(|scale| {
                per_metric(|metric| {
                    subsample_interval(
                        metric.of(&metrics),
                        pair_draws
                            .iter()
                            .filter_map(|q| q[0].as_ref().map(|m| metric.of(m)))
                            .collect(),
                        scale,
                    )
                })
            });
            let warnings = warnings(n, k, quad);
            let excess = quad[1..].iter().any(Option::is_some).then(|| {
                per_metric(|metric| excess(quad, &pair_draws, scale, metric, &warnings, n, k))
            });
            ControlledReport {
                alignment: AlignmentReport {
                    n,
                    options: *options,
                    metrics,
                    null: nulls[index],
                    ci,
                },
                controls: Controls {
                    untrained: quad[1],
                    input_x: quad[2],
                    input_y: quad[3],
                },
                excess,
                warnings,
            }
        })
        .collect())
}

/// Units (rows or groups) each interval subsample keeps, or None when no interval is asked for.
fn subsample_units(
    units: usize,
    rows: usize,
    grouped: bool,
    options: &CompareOptions,
) -> Result<Option<usize>, AlignmentError> {
    let fraction = options.ci_subsample_fraction;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(AlignmentError::InvalidOption {
            option: "ci_subsample_fraction",
            value: fraction,
            expected: "a fraction in (0, 1)",
        });
    }
    if options.ci_draws == 0 {
        return Ok(None);
    }
    let kept = (fraction * units as f64).round() as usize;
    let kept_rows = if grouped {
        (fraction * rows as f64).round() as usize
    } else {
        kept
    };
    if kept == 0 || kept >= units || kept_rows < 4 || kept_rows <= options.k {
        return Err(AlignmentError::InvalidOption {
            option: "ci_subsample_fraction",
            value: fraction,
            expected: "a fraction that keeps at least 4 and more than k samples, and fewer than all",
        });
    }
    Ok(Some(kept))
}

/// One of the four metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    CkaBiased,
    CkaUnbiased,
    Cknna,
    MutualKnn,
}

impl Metric {
    fn of(self, m: &MetricSet<f64>) -> f64 {
        match self {
            Metric::CkaBiased => m.cka_biased,
            Metric::CkaUnbiased => m.cka_unbiased,
            Metric::Cknna => m.cknna,
            Metric::MutualKnn => m.mutual_knn,
        }
    }

    /// Built on k nearest neighbours.
    fn is_knn(self) -> bool {
        matches!(self, Metric::Cknna | Metric::MutualKnn)
    }
}

/// One value per metric.
fn per_metric<T>(value: impl Fn(Metric) -> T) -> MetricSet<T> {
    MetricSet {
        cka_biased: value(Metric::CkaBiased),
        cka_unbiased: value(Metric::CkaUnbiased),
        cknna: value(Metric::Cknna),
        mutual_knn: value(Metric::MutualKnn),
    }
}

/// Reasons to withhold a verdict, in words.
fn warnings(n: usize, k: usize, quad: &Quadruple) -> Vec<String> {
    let mut out = Vec::new();
    if n < MIN_ROWS_PER_NEIGHBOUR * k {
        out.push(format!(
            "n = {n} < {MIN_ROWS_PER_NEIGHBOUR}k = {}: too few rows for k = {k} neighbours; the kNN metrics (CKNNA, \
             mutual kNN) are unreliable and get no verdict",
            MIN_ROWS_PER_NEIGHBOUR * k
        ));
    }
    let names = [
        "X–Y",
        "untrained control",
        "input baseline of X",
        "input baseline of Y",
    ];
    for (metrics, name) in quad.iter().zip(names) {
        if let Some(m) = metrics
            && m.cknna.is_finite()
            && m.cknna.abs() > 1.0 + RANGE_SLACK
        {
            out.push(format!(
                "CKNNA of the {name} = {:.3} lies outside [−1, 1]: the masked unbiased estimator is not an inner \
                 product at n = {n}, k = {k}; no CKNNA verdict",
                m.cknna
            ));
        }
    }
    out
}

fn excess(
    quad: &Quadruple,
    draws: &[&Quadruple],
    scale: Option<f64>,
    metric: Metric,
    warnings: &[String],
    n: usize,
    k: usize,
) -> Excess {
    // The largest control; an undefined control makes the excess undefined.
    let largest_of = |q: &Quadruple| -> Option<(f64, &'static str)> {
        let controls: Vec<(f64, &'static str)> = q[1..]
            .iter()
            .zip(["untrained", "input_x", "input_y"])
            .filter_map(|(m, name)| m.as_ref().map(|m| (metric.of(m), name)))
            .collect();
        if let Some(&undefined) = controls.iter().find(|(v, _)| !v.is_finite()) {
            return Some(undefined);
        }
        controls
            .into_iter()
            .reduce(|a, b| if b.0 > a.0 { b } else { a })
    };
    let (control, largest) = largest_of(quad).unwrap_or((f64::NAN, "none"));
    let value = quad[0].as_ref().map_or(f64::NAN, |m| metric.of(m)) - control;
    let ci = scale.filter(|_| !draws.is_empty()).map(|scale| {
        let values: Vec<f64> = draws
            .iter()
            .filter_map(|q| Some(metric.of(q[0].as_ref()?) - largest_of(q)?.0))
            .collect();
        subsample_interval(value, values, scale)
    });
    let unreliable = (metric.is_knn() && n < MIN_ROWS_PER_NEIGHBOUR * k)
        || (metric == Metric::Cknna && warnings.iter().any(|w| w.starts_with("CKNNA")));
    let verdict = match ci {
        _ if unreliable || !value.is_finite() => ExcessVerdict::Undetermined,
        Some([lo, _]) if lo > 0.0 => ExcessVerdict::AboveControls,
        None if value > 0.0 => ExcessVerdict::Undetermined,
        _ => ExcessVerdict::NotAboveControls,
    };
    Excess {
        control,
        largest,
        value,
        ci,
        verdict,
    }
}

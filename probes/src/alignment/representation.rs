//! One representation (rows = samples) and the optional preprocessing applied before any metric.

use std::borrow::Cow;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{AlignmentError, ROW_NORM_FLOOR};
use crate::stats::quantile_sorted;

/// One recording of n samples: `data` is [samples, features] row-major, one row per sample.
#[derive(Debug, Clone, Copy)]
pub struct Representation<'a> {
    pub(crate) name: &'a str,
    pub(crate) data: &'a [f64],
    pub(crate) samples: usize,
    pub(crate) features: usize,
}

impl<'a> Representation<'a> {
    /// data: [samples, features] row-major. Checks the shape and that every value is finite; `name` says where the
    /// data came from and appears in every error about it.
    pub fn new(
        name: &'a str,
        data: &'a [f64],
        samples: usize,
        features: usize,
    ) -> Result<Self, AlignmentError> {
        if features == 0 || samples.checked_mul(features) != Some(data.len()) {
            return Err(AlignmentError::Shape {
                name: name.to_owned(),
                len: data.len(),
                samples,
                features,
            });
        }
        if let Some(position) = data.iter().position(|value| !value.is_finite()) {
            return Err(AlignmentError::NonFinite {
                name: name.to_owned(),
                sample: position / features,
                feature: position % features,
                value: data[position],
            });
        }
        Ok(Self {
            name,
            data,
            samples,
            features,
        })
    }

    pub fn name(&self) -> &'a str {
        self.name
    }

    /// [samples, features] row-major.
    pub fn data(&self) -> &'a [f64] {
        self.data
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    pub fn features(&self) -> usize {
        self.features
    }
}

/// A data step applied before any metric, recorded in [`AlignmentReport`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Preprocessing {
    /// The raw rows (the published metric definitions).
    #[default]
    None,
    /// The platonic-representation pipeline (Huh et al. 2024, `measure_alignment.py` with its default
    /// `exact=False`, then `compute_score`'s row normalisation): clip every value to ±c, where c is the mean over
    /// samples of each sample's `quantile` of |x| (linear interpolation, as `torch.quantile`), then divide each row
    /// by max(‖row‖₂, 1e-12). quantile = 1 skips the clipping, as their `remove_outliers` does.
    ClipAndNormalise { quantile: f64 },
}

/// Applies `preprocessing` to x and returns the result, [samples, features] row-major.
pub fn preprocess(
    x: &Representation,
    preprocessing: Preprocessing,
) -> Result<Vec<f64>, AlignmentError> {
    Ok(preprocessed(x, preprocessing)?.into_owned())
}

pub(super) fn preprocessed<'a>(
    x: &Representation<'a>,
    preprocessing: Preprocessing,
) -> Result<Cow<'a, [f64]>, AlignmentError> {
    let Preprocessing::ClipAndNormalise { quantile } = preprocessing else {
        return Ok(Cow::Borrowed(x.data));
    };
    if !(quantile > 0.0 && quantile <= 1.0) {
        return Err(AlignmentError::InvalidOption {
            option: "preprocessing.quantile",
            value: quantile,
            expected: "a quantile in (0, 1]",
        });
    }
    let mut data = x.data.to_vec();
    if quantile < 1.0 {
        let row_quantiles: Vec<f64> = x
            .data
            .par_chunks(x.features)
            .map(|row| {
                let mut magnitudes: Vec<f64> = row.iter().map(|value| value.abs()).collect();
                magnitudes.sort_by(f64::total_cmp);
                quantile_sorted(&magnitudes, quantile)
            })
            .collect();
        let clip = row_quantiles.iter().sum::<f64>() / x.samples as f64;
        data.par_iter_mut()
            .for_each(|value| *value = value.clamp(-clip, clip));
    }
    data.par_chunks_mut(x.features).for_each(|row| {
        let norm = row
            .iter()
            .map(|value| value * value)
            .sum::<f64>()
            .sqrt()
            .max(ROW_NORM_FLOOR);
        row.iter_mut().for_each(|value| *value /= norm);
    });
    Ok(Cow::Owned(data))
}

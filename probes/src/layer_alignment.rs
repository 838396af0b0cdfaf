//! CKA between every processor layer of one recording and every layer of another (or of itself): where in
//! depth two models' latent spaces agree, and how fast one model's latent drifts from layer to layer.

use std::path::Path;

use serde::Serialize;
use weatherlens_models::hooks::HookPoint;

use crate::alignment::{AlignmentError, HsicEstimator, Representation, cka_matrix};
use crate::inputs::{InputError, Rows, load_matrix};
use crate::record::{RecordError, read_meta};

#[derive(Debug, thiserror::Error)]
pub enum LayerAlignmentError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Alignment(#[from] AlignmentError),
}

/// Unbiased linear CKA between X_{i+1} of every layer i of `a` (rows) and of `b` (columns).
#[derive(Debug, Clone, Serialize)]
pub struct LayerCka {
    pub a: String,
    pub b: String,
    pub layers_a: Vec<usize>,
    pub layers_b: Vec<usize>,
    /// [layers_a, layers_b] row-major.
    pub cka: Vec<f64>,
}

/// Load `processor.{i}.resid_post` of every recorded layer, as [samples × nodes, latent] matrices.
fn layers(
    dir: &Path,
    rows: Rows,
) -> Result<(Vec<usize>, Vec<crate::inputs::Matrix>), LayerAlignmentError> {
    let meta = read_meta(dir)?;
    let mats = meta
        .layers
        .iter()
        .map(|&l| load_matrix(dir, &HookPoint::ResidPost(l).to_string(), rows))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((meta.layers, mats))
}

fn representations<'a>(
    mats: &'a [crate::inputs::Matrix],
    names: &'a [String],
) -> Result<Vec<Representation<'a>>, AlignmentError> {
    mats.iter()
        .zip(names)
        .map(|(m, name)| Representation::new(name, &m.data, m.rows, m.features))
        .collect()
}

/// The layer-by-layer CKA matrix of recordings `a` and `b` (pass the same folder twice for one model).
pub fn layer_cka(a: &Path, b: &Path, rows: Rows) -> Result<LayerCka, LayerAlignmentError> {
    let (layers_a, mats_a) = layers(a, rows)?;
    let (layers_b, mats_b) = layers(b, rows)?;
    let names_a: Vec<String> = layers_a.iter().map(|l| format!("A {l}")).collect();
    let names_b: Vec<String> = layers_b.iter().map(|l| format!("B {l}")).collect();
    let xs = representations(&mats_a, &names_a)?;
    let ys = representations(&mats_b, &names_b)?;
    let cka = cka_matrix(&xs, &ys, HsicEstimator::Unbiased)?;
    Ok(LayerCka {
        a: a.display().to_string(),
        b: b.display().to_string(),
        layers_a,
        layers_b,
        cka,
    })
}

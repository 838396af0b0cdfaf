//! CKA between every processor layer of one recording and every layer of another (or of itself): where in
//! depth two models' latent spaces agree, and how fast one model's latent drifts from layer to layer.
//!
//! Recordings of either form (folder or plain file); rows are paired by sample time and nearest place as in
//! [`crate::pairing`], so two models with different node sets compare at the same places.

use std::path::Path;

use serde::Serialize;

use crate::alignment::{AlignmentError, HsicEstimator, Representation, cka_matrix};
use crate::inputs::Region;
use crate::pairing::{Common, Member, PairingError, RowChoice};
use crate::recording::{Recording, RecordingError};

#[derive(Debug, thiserror::Error)]
pub enum LayerAlignmentError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Pairing(#[from] PairingError),
    #[error(transparent)]
    Alignment(#[from] AlignmentError),
}

/// Which rows [`layer_cka`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LayerRows {
    /// One sample of A (and B's sample at the same time).
    pub sample: Option<usize>,
    /// One of A's nodes (and B's nearest node).
    pub node: Option<usize>,
    pub region: Option<Region>,
    /// Rows read at most (0: all).
    pub max_rows: usize,
    pub seed: u64,
}

/// Unbiased linear CKA between X_{i+1} of every layer i of `a` (rows) and of `b` (columns).
#[derive(Debug, Clone, Serialize)]
pub struct LayerCka {
    pub a: String,
    pub b: String,
    pub layers_a: Vec<usize>,
    pub layers_b: Vec<usize>,
    /// Rows compared.
    pub n: usize,
    /// [layers_a, layers_b] row-major.
    pub cka: Vec<f64>,
}

/// One layer's output at the common rows: [rows, width] row-major.
struct LayerMatrix {
    values: Vec<f64>,
    width: usize,
    label: String,
}

/// X_{i+1} of every processor layer whose output is known, read at the common rows: (layers, [rows, latent]).
fn layer_outputs(
    recording: &Recording,
    common: &Common,
    rows: &RowChoice,
    side: &str,
) -> Result<(Vec<usize>, Vec<LayerMatrix>), LayerAlignmentError> {
    let mut layers = Vec::new();
    let mut matrices = Vec::new();
    for &layer in &recording.processor().layers {
        let Some(source) = recording.output("processor", layer) else {
            continue;
        };
        let member = Member::new(recording, source, common, format!("{side} {layer}"))?;
        matrices.push(LayerMatrix {
            values: member.read(recording, &rows.rows)?,
            width: member.width(),
            label: member.label.clone(),
        });
        layers.push(layer);
    }
    Ok((layers, matrices))
}

/// Each layer's matrix as a [`Representation`] of `rows` rows.
fn representations(
    mats: &[LayerMatrix],
    rows: usize,
) -> Result<Vec<Representation<'_>>, AlignmentError> {
    mats.iter()
        .map(|m| Representation::new(&m.label, &m.values, rows, m.width))
        .collect()
}

/// The layer-by-layer CKA matrix of recordings `a` and `b` (pass the same recording twice for one model).
pub fn layer_cka(
    a: &Path,
    b: &Path,
    selection: LayerRows,
) -> Result<LayerCka, LayerAlignmentError> {
    let (ra, rb) = (Recording::open(a)?, Recording::open(b)?);
    let last = *ra
        .processor()
        .layers
        .last()
        .expect("a recording has a processor layer");
    let reference = ra.state("processor", last)?;
    let mut common = Common::of(&ra, &reference, &rb, None, selection.region)?;
    if let Some(node) = selection.node {
        common = common.with_point(node)?;
    }
    if let Some(sample) = selection.sample {
        common = common.with_sample_of_a(&ra, sample)?;
    }
    let rows = RowChoice::new(
        common.times.len(),
        common.lat.len(),
        selection.max_rows,
        selection.seed,
    );
    let (layers_a, mats_a) = layer_outputs(&ra, &common, &rows, "A")?;
    let (layers_b, mats_b) = layer_outputs(&rb, &common, &rows, "B")?;
    let cka = cka_matrix(
        &representations(&mats_a, rows.used)?,
        &representations(&mats_b, rows.used)?,
        HsicEstimator::Unbiased,
    )?;
    Ok(LayerCka {
        a: a.display().to_string(),
        b: b.display().to_string(),
        layers_a,
        layers_b,
        n: rows.used,
        cka,
    })
}

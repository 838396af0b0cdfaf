//! Analysis only: what the hypotheses about AI weather models' processors are tested with. Depends on the
//! model crate alone (computing CKA needs no data reader).
//!
//! - [`record`]: recording X_i, v_i, X_{i+1} at the hook points; [`recording`]: reading any recording (a plain
//!   recording exported from another model, or a recording folder) with the format's validation; [`inputs`]:
//!   rows of any safetensors tensor as a matrix; [`locations`]: matching places between node sets;
//! - [`velocity`]: increment size by depth, decay and straightness; [`spectrum`]: spectra and the spectral
//!   centroid; [`analysis`]: both for one recording;
//! - [`alignment`]: CKA, CKNNA and mutual kNN with nulls, intervals and controls (untrained architectures,
//!   input baselines); [`pairing`]: rows of several recordings at the same times and places;
//!   [`local_alignment`]: alignment at single locations with regional and seasonal summaries;
//!   [`layer_alignment`]: layer-by-layer CKA;
//! - [`error_correlation`]: correlation of per-case forecast errors between models;
//! - [`jacobian`]: Jacobian asymmetry and interaction range of one processor step;
//! - [`stats`]: quantiles, correlations, permutation tests, jackknife and seeded draws shared by all of these.

pub mod alignment;
pub mod analysis;
pub mod error_correlation;
pub mod inputs;
pub mod jacobian;
pub mod layer_alignment;
pub mod local_alignment;
pub mod locations;
pub mod pairing;
pub mod record;
pub mod recording;
pub mod spectrum;
pub mod stats;
pub mod trend;
pub mod velocity;

//! Probes on the processor's hook points and the analyses that test the "physics of AI weather models"
//! hypotheses: velocity decay, spectral centroid by depth, CKA / CKNNA alignment, error correlation.
//!
//! Flow: `record` writes what the hooks saw; `velocity`, `spectrum`, `alignment` and `error_correlation`
//! compute figures from recordings and evaluation files; `plot` draws them.

pub mod alignment;
pub mod analysis;
pub mod capture;
pub mod error_correlation;
pub mod inputs;
pub mod jacobian;
pub mod layer_alignment;
pub mod output;
pub mod overhead;
pub mod plot;
pub mod record;
pub mod report;
pub mod spectrum;
pub mod study;
pub mod study_report;
pub mod velocity;

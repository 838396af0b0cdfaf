//! Probes on the processor's hook points and the analyses that test the "physics of AI weather models"
//! hypotheses: velocity decay, spectral centroid by depth, CKA / CKNNA alignment, error correlation.

pub mod record;
pub mod spectrum;

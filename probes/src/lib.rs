//! Probes and analyses.

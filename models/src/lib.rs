//! GraphCast-style models in burn: sphere geometry, the icosahedral multimesh, grid <-> mesh graphs,
//! spherical harmonics, and the encoder-processor-decoder with its hook points.
//!
//! Geometry (`sphere`, `mesh`, `grid`, `graph`) is plain Rust built once per (grid, mesh level);
//! the model (`mlp`, `interaction`, `encoder`, `processor`, `decoder`, `model`) is burn.

pub mod attention;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod files;
pub mod fused;
pub mod graph;
pub mod graph_tensors;
pub mod graphcast;
pub mod grid;
pub mod hooks;
pub mod interaction;
pub mod lock;
pub mod mesh;
pub mod mlp;
pub mod model;
pub mod processor;
pub mod seed;
pub mod sht;
pub mod sphere;
#[cfg(test)]
mod test_support;

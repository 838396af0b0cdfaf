//! Benchmarks that print figures (never asserted by tests; tests use tiny sizes, benchmarks real ones):
//!
//! - [`processor`]: the processor train step of DESIGN.md, which any other framework can run too
//!   (`bench/peers/`);
//! - [`model`]: the full encoder-processor-decoder's forward and train step on a run config's data shape;
//! - [`mesh`]: multimesh and graph construction; [`sht`] and [`atmosphere`]: the spectral transform and the
//!   built-in atmosphere; [`io`] and [`loader`]: NetCDF throughput and training samples per second;
//! - [`alignment`]: CKA and CKNNA at n = 10⁴; [`probe`]: what recording a forward pass costs.

pub mod alignment;
pub mod atmosphere;
pub mod io;
pub mod loader;
pub mod mesh;
pub mod model;
pub mod probe;
pub mod processor;
pub mod sht;

use burn::prelude::*;
use weatherlens_models::files::FileError;
use weatherlens_models::graph::GraphError;
use weatherlens_models::grid::GridError;
use weatherlens_models::mesh::MeshError;
use weatherlens_training::data::DataError;
use weatherlens_training::dataset::DatasetError;
use weatherlens_training::windows::WindowError;

/// Failures of a benchmark a user can cause (bad sizes, unreadable config data, an unwritable folder).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("mesh: {0}")]
    Mesh(#[from] MeshError),
    #[error("grid: {0}")]
    Grid(#[from] GridError),
    #[error("graph: {0}")]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("samples: {0}")]
    Windows(#[from] WindowError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Record(#[from] weatherlens_probes::record::RecordError),
    #[error(transparent)]
    Alignment(#[from] weatherlens_probes::alignment::AlignmentError),
    #[error(transparent)]
    Atmosphere(#[from] weatherlens_training::atmosphere::AtmosphereError),
    #[error("{0}")]
    Invalid(String),
}

/// A tensor of standard normal values drawn from `seed` (benchmark inputs: their values do not matter, but
/// the same seed gives the same work).
pub fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut rng = weatherlens_probes::stats::stream_rng(seed, 0);
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| weatherlens_probes::stats::standard_normal(&mut rng) as f32)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The median of the timings (NaN for none).
pub fn median(values: &[f64]) -> f64 {
    weatherlens_probes::stats::median(values)
}

/// A short name of the device's backend: `flex`, `cuda`, `wgpu`, ..., with `+autodiff` when the device
/// records gradients.
pub fn backend_name(device: &Device) -> String {
    let inner = format!("{:?}", device.clone().inner());
    let name = short_backend_name(&inner);
    if device.is_autodiff() {
        format!("{name}+autodiff")
    } else {
        name
    }
}

/// `Device<Flex(Cpu)>` -> `flex`; `Device<Cube(Cuda(CudaDevice { index: 0 }))>` -> `cuda`: the backend, or for
/// burn's cubecl backend the runtime inside it, lower-cased.
fn short_backend_name(debug: &str) -> String {
    let body = debug
        .strip_prefix("Device<")
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(debug);
    let mut names = body
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty());
    let name = match names.next() {
        Some("Cube") => names.next().unwrap_or("cube"),
        Some(name) => name,
        None => "unknown",
    };
    name.to_lowercase()
}

/// Peak resident set size (VmHWM) of this process in MiB, read from /proc/self/status.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_are_short() {
        assert_eq!(short_backend_name("Device<Flex(Cpu)>"), "flex");
        assert_eq!(
            short_backend_name("Device<Cube(Cuda(CudaDevice { index: 0 }))>"),
            "cuda"
        );
        assert_eq!(backend_name(&Device::flex()), "flex");
        assert_eq!(backend_name(&Device::flex().autodiff()), "flex+autodiff");
    }
}

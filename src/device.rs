//! The `--device` flag: burn picks the backend at run time from a `Device`.

use anyhow::{Result, bail};
use burn::prelude::Device;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend (multi-threaded, SIMD).
    #[default]
    Flex,
    /// A GPU through wgpu (build with `--features wgpu`).
    Wgpu,
    /// An NVIDIA GPU through CUDA (build with `--features cuda`).
    Cuda,
}

impl DeviceKind {
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)]
            other => bail!(
                "this weatherlens was built without the `{}` backend: rebuild with `--features {}`",
                format!("{other:?}").to_lowercase(),
                format!("{other:?}").to_lowercase()
            ),
        }
    }
}

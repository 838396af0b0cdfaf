//! Devices by name: the `--device` flag and the `devices` of a run config (`[training] devices`); burn picks
//! the backend at run time from a `Device`.

use burn::prelude::Device;
use clap::ValueEnum;
use weatherlens_training::config::DeviceName;

/// A device this binary cannot open.
#[derive(Debug, thiserror::Error)]
#[error(
    "this weatherlens was built without the `{backend}` backend: rebuild with `--features {backend}`"
)]
pub struct DeviceError {
    pub backend: &'static str,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
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
    pub fn device(self) -> Result<Device, DeviceError> {
        open(match self {
            DeviceKind::Flex => DeviceName::Flex,
            DeviceKind::Wgpu => DeviceName::Wgpu(None),
            DeviceKind::Cuda => DeviceName::Cuda(0),
        })
    }

    /// The name the command line gives it (`--device NAME`).
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Flex => "flex",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

/// The burn device of `name`, or an error naming the backend this build lacks.
pub fn open(name: DeviceName) -> Result<Device, DeviceError> {
    match name {
        DeviceName::Flex => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        DeviceName::Wgpu(None) => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "wgpu")]
        DeviceName::Wgpu(Some(index)) => {
            Ok(Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index)))
        }
        #[cfg(feature = "wgpu")]
        DeviceName::WgpuCpu => Ok(Device::wgpu(burn::tensor::DeviceKind::Cpu)),
        #[cfg(feature = "cuda")]
        DeviceName::Cuda(index) => Ok(Device::cuda(index)),
        #[allow(unreachable_patterns)]
        DeviceName::Wgpu(_) | DeviceName::WgpuCpu => Err(DeviceError { backend: "wgpu" }),
        #[allow(unreachable_patterns)]
        DeviceName::Cuda(_) => Err(DeviceError { backend: "cuda" }),
    }
}

/// The devices a run trains on: its config's `[training] devices`, or `default` when it names none.
pub fn training_devices(
    names: &[DeviceName],
    default: &Device,
) -> Result<Vec<Device>, DeviceError> {
    if names.is_empty() {
        return Ok(vec![default.clone()]);
    }
    names.iter().map(|&name| open(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_always_opens_and_a_missing_backend_is_named() {
        assert_eq!(open(DeviceName::Flex).unwrap(), Device::flex());
        let two = training_devices(&[DeviceName::Flex, DeviceName::Flex], &Device::flex()).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(training_devices(&[], &Device::flex()).unwrap().len(), 1);
        #[cfg(not(feature = "cuda"))]
        {
            let err = open(DeviceName::Cuda(1)).unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let err = open(DeviceName::WgpuCpu).unwrap_err().to_string();
            assert!(err.contains("--features wgpu"), "{err}");
        }
    }
}

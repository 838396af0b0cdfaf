//! Seeded initialisation. burn draws initial weights from one generator per process (seeded with
//! `Device::seed`), so two models built at the same time on different threads (tests, a study running runs in
//! parallel) would interleave their draws. [`seeded`] holds a lock while it seeds and builds, so a seed always
//! gives the same weights.

use std::sync::{Mutex, PoisonError};

use burn::prelude::Device;

/// Serialises seeding and drawing from burn's process-wide generator.
static GENERATOR: Mutex<()> = Mutex::new(());

/// Seeds burn's generator with `seed` and runs `build` (which draws initial weights) while no other caller
/// of `seeded` can draw.
pub fn seeded<T>(seed: u64, device: &Device, build: impl FnOnce() -> T) -> T {
    let _only_us = GENERATOR.lock().unwrap_or_else(PoisonError::into_inner);
    device.seed(seed);
    build()
}

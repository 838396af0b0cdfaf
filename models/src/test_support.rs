//! Helpers for the model's tests: random data from a seeded host generator (never burn's process-wide one,
//! which tests running in parallel share), one approximate-equality check, and an observer that keeps what
//! the hooks show.

use std::cell::RefCell;
use std::collections::HashMap;

use burn::prelude::*;
use burn::tensor::Tolerance;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::hooks::{HookPoint, Observer};

/// A tensor of independent values uniform in [-2, 2) drawn from `seed`: the same values in every run.
pub(crate) fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The values of a tensor as f32.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Asserts that `actual` equals `expected` element by element within 1e-5 relative plus 1e-5 absolute
/// (f32 round-off of the same maths in another order).
pub(crate) fn assert_close<const D: usize>(actual: Tensor<D>, expected: Tensor<D>, what: &str) {
    let (actual, expected) = (actual.into_data(), expected.into_data());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        actual.assert_approx_eq::<f32>(&expected, Tolerance::rel_abs(1e-5, 1e-5))
    }));
    if let Err(payload) = outcome {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{what}: {message}");
    }
}

/// Keeps a copy of every tensor the hooks show, by hook name.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) seen: RefCell<HashMap<String, Vec<f32>>>,
}

impl Observer for Recorder {
    fn wants(&self, _: HookPoint) -> bool {
        true
    }

    fn observe(&self, point: HookPoint, tensor: &Tensor<3>) {
        self.seen
            .borrow_mut()
            .insert(point.to_string(), values(tensor.clone()));
    }
}

//! The fused operations on burn-flex tensors: unwrap to f32 slices, run the [`cpu`] kernels, wrap the result.
//! Inputs the caller gives up (the autodiff graph no longer needs them) are overwritten in place when they are
//! uniquely owned, which saves an allocation per call.

use std::borrow::Cow;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::TensorMetadata;
use burn::tensor::{Shape, TensorData};

use super::{FusedKernels, FusedOps, SegmentsPrimitive, cpu};

/// The tensor's elements in row-major order, borrowed when already laid out so.
fn read(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous").to_vec()),
    }
}

/// A tensor whose storage is exactly its elements in row-major order, so `storage_mut` may overwrite it
/// (copying first only if the buffer is shared).
fn writable(t: FlexTensor) -> FlexTensor {
    let n = t.shape().num_elements();
    if t.layout().contiguous_offsets() == Some((0, n)) && t.storage::<f32>().len() == n {
        t
    } else {
        let shape = t.shape();
        tensor(read(&t).into_owned(), shape)
    }
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn indices(t: &FlexTensor) -> Vec<usize> {
    t.clone()
        .into_data()
        .iter::<i64>()
        .map(|i| i as usize)
        .collect()
}

fn width(t: &FlexTensor) -> usize {
    *t.shape().last().expect("a tensor with at least one axis")
}

impl FusedOps for Flex {
    fn gather_add(
        base: FlexTensor,
        source: FlexTensor,
        segments: SegmentsPrimitive<Self>,
    ) -> FlexTensor {
        let source_rows = source.shape()[1];
        let width = width(&base);
        let mut out = writable(base);
        cpu::gather_add(
            out.storage_mut::<f32>(),
            &read(&source),
            &indices(&segments.index),
            source_rows,
            width,
        );
        out
    }

    fn segment_sum(values: FlexTensor, segments: SegmentsPrimitive<Self>) -> FlexTensor {
        let shape = values.shape();
        let offsets = indices(&segments.offsets);
        let sums = cpu::segment_sum(
            &read(&values),
            &indices(&segments.order),
            &offsets,
            shape[1],
            shape[2],
        );
        tensor(sums, [shape[0], offsets.len() - 1, shape[2]])
    }

    fn bias_silu(z: FlexTensor, bias: FlexTensor) -> FlexTensor {
        Self::bias_silu_forward(z, bias).0
    }

    fn layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> FlexTensor {
        Self::layer_norm_forward(x, gamma, beta, epsilon).0
    }
}

impl FusedKernels for Flex {
    fn gather(values: FlexTensor, segments: SegmentsPrimitive<Self>) -> FlexTensor {
        let shape = values.shape();
        let index = indices(&segments.index);
        let out = cpu::gather(&read(&values), &index, shape[1], shape[2]);
        tensor(out, [shape[0], index.len(), shape[2]])
    }

    fn bias_silu_forward(z: FlexTensor, bias: FlexTensor) -> (FlexTensor, FlexTensor) {
        let shape = z.shape();
        let mut u = writable(z);
        let y = cpu::bias_silu_forward(u.storage_mut::<f32>(), &read(&bias));
        (tensor(y, shape), u)
    }

    fn bias_silu_backward(u: FlexTensor, grad: FlexTensor) -> (FlexTensor, FlexTensor) {
        let width = width(&u);
        let mut g = writable(grad);
        let bias = cpu::bias_silu_backward(&read(&u), g.storage_mut::<f32>(), width);
        (g, tensor(bias, [width]))
    }

    fn layer_norm_forward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.shape();
        let rows = shape.num_elements() / width(&x);
        let mut xhat = writable(x);
        let (y, rstd) = cpu::layer_norm_forward(
            xhat.storage_mut::<f32>(),
            &read(&gamma),
            &read(&beta),
            epsilon as f32,
        );
        (tensor(y, shape), xhat, tensor(rstd, [rows]))
    }

    fn layer_norm_backward(
        xhat: FlexTensor,
        rstd: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let width = width(&xhat);
        let mut g = writable(grad);
        let (dgamma, dbeta) = cpu::layer_norm_backward(
            &read(&xhat),
            &read(&rstd),
            &read(&gamma),
            g.storage_mut::<f32>(),
        );
        (g, tensor(dgamma, [width]), tensor(dbeta, [width]))
    }
}

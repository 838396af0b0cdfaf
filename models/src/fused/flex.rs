//! The fused operations on burn-flex tensors: unwrap to f32 slices, run the [`cpu`] kernels, wrap the result.
//! Forward kernels overwrite the input they turn into the saved state (z -> u, x -> x̂) in place when it is
//! uniquely owned; backward kernels write fresh buffers, since incoming gradients are often shared (a residual
//! add hands one gradient to both its inputs) and copying them first would cost a pass.

use std::borrow::Cow;

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};

use super::matmul::{View, product};
use super::{FusedKernels, FusedOps, SegmentsPrimitive, cpu};

/// Products smaller than this many multiply-adds run on one thread (splitting them costs more than it saves).
const PARALLEL_MATMUL: usize = 1 << 18;

/// A row-major block given as (data, rows, columns, read transposed).
type Block<'a> = (&'a [f32], usize, usize, bool);

fn view(block: Block<'_>) -> View<'_, f32> {
    let (data, rows, columns, transposed) = block;
    let v = View::row_major(data, rows, columns);
    if transposed { v.transposed() } else { v }
}

/// `a · b` of two row-major blocks, either read transposed.
fn matmul(a: Block, b: Block) -> Vec<f32> {
    let (a, b) = (view(a), view(b));
    let parallel = a.rows * a.columns * b.columns >= PARALLEL_MATMUL;
    product(a, b, parallel)
}

/// `x · w` over the last axis of x, or `x · wᵀ` with `transposed`; w: [in, out] -> [..., out] (or [..., in]).
fn times_weight(x: &FlexTensor, w: &FlexTensor, transposed: bool) -> FlexTensor {
    let [inputs, outputs] = w.shape().dims::<2>();
    let (from, to) = if transposed {
        (outputs, inputs)
    } else {
        (inputs, outputs)
    };
    let rows = x.shape().num_elements() / from;
    let out = matmul(
        (&read(x), rows, from, false),
        (&read(w), inputs, outputs, transposed),
    );
    tensor(out, with_last(x, to))
}

/// The shape of `t` with its last axis replaced.
fn with_last(t: &FlexTensor, last: usize) -> Shape {
    let mut dims = t.shape().to_vec();
    *dims.last_mut().expect("a tensor with at least one axis") = last;
    Shape::from(dims)
}

/// The tensor's elements in row-major order, borrowed when already laid out so.
fn read(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
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

/// The node table of a gathered part, with its index read back as host integers.
struct Part {
    values: FlexTensor,
    index: Vec<usize>,
}

impl Part {
    fn new(values: FlexTensor, segments: &SegmentsPrimitive<Flex>) -> Self {
        let values = match values.as_slice::<f32>() {
            Some(_) => values,
            None => values.to_contiguous(),
        };
        Self {
            index: indices(&segments.index),
            values,
        }
    }

    fn gathered(&self) -> cpu::Gathered<'_> {
        cpu::Gathered {
            source: self.values.as_slice::<f32>().expect("contiguous"),
            index: &self.index,
            source_rows: self.values.shape()[1],
        }
    }
}

/// (silu(u), u) with u = z + Σ gathered parts + bias.
fn bias_silu_of(z: FlexTensor, bias: FlexTensor, parts: &[Part]) -> (FlexTensor, FlexTensor) {
    let shape = z.shape();
    let gathered: Vec<cpu::Gathered> = parts.iter().map(Part::gathered).collect();
    let mut u = writable(z);
    let y = cpu::bias_silu_forward(u.storage_mut::<f32>(), &read(&bias), &gathered);
    (tensor(y, shape), u)
}

/// Row sums by segment of the sum of `values` (all of one shape [batch, rows, width]).
fn segment_sums(values: &[&FlexTensor], segments: &SegmentsPrimitive<Flex>) -> FlexTensor {
    let shape = values[0].shape();
    let offsets = indices(&segments.offsets);
    let blocks: Vec<Cow<[f32]>> = values.iter().map(|v| read(v)).collect();
    let blocks: Vec<&[f32]> = blocks.iter().map(|b| b.as_ref()).collect();
    let sums = cpu::segment_sum(
        &blocks,
        &indices(&segments.order),
        &offsets,
        shape[1],
        shape[2],
    );
    tensor(sums, [shape[0], offsets.len() - 1, shape[2]])
}

impl FusedOps for Flex {
    fn gathered_bias_silu(
        base: FlexTensor,
        senders: FlexTensor,
        sender_rows: SegmentsPrimitive<Self>,
        receivers: FlexTensor,
        receiver_rows: SegmentsPrimitive<Self>,
        bias: FlexTensor,
    ) -> FlexTensor {
        Self::gathered_bias_silu_forward(base, senders, sender_rows, receivers, receiver_rows, bias)
            .0
    }

    fn segment_sum(values: FlexTensor, segments: SegmentsPrimitive<Self>) -> FlexTensor {
        segment_sums(&[&values], &segments)
    }

    fn bias_silu(z: FlexTensor, bias: FlexTensor) -> FlexTensor {
        Self::bias_silu_forward(z, bias).0
    }

    fn layer_norm(
        x: FlexTensor,
        bias: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        Self::layer_norm_forward(x, bias, gamma, beta, epsilon).0
    }

    fn linear(x: FlexTensor, w: FlexTensor) -> FlexTensor {
        times_weight(&x, &w, false)
    }
}

impl FusedKernels for Flex {
    fn gather(values: FlexTensor, segments: SegmentsPrimitive<Self>) -> FlexTensor {
        let part = Part::new(values, &segments);
        let shape = part.values.shape();
        let out = cpu::gather(part.gathered(), shape[2]);
        tensor(out, [shape[0], part.index.len(), shape[2]])
    }

    fn gathered_bias_silu_forward(
        base: FlexTensor,
        senders: FlexTensor,
        sender_rows: SegmentsPrimitive<Self>,
        receivers: FlexTensor,
        receiver_rows: SegmentsPrimitive<Self>,
        bias: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let parts = [
            Part::new(senders, &sender_rows),
            Part::new(receivers, &receiver_rows),
        ];
        bias_silu_of(base, bias, &parts)
    }

    fn bias_silu_forward(z: FlexTensor, bias: FlexTensor) -> (FlexTensor, FlexTensor) {
        bias_silu_of(z, bias, &[])
    }

    fn bias_silu_backward(u: FlexTensor, grad: FlexTensor) -> (FlexTensor, FlexTensor) {
        let (shape, width) = (u.shape(), width(&u));
        let (grad_u, grad_bias) = cpu::bias_silu_backward(&read(&u), &read(&grad), width);
        (tensor(grad_u, shape), tensor(grad_bias, [width]))
    }

    fn layer_norm_forward(
        x: FlexTensor,
        bias: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.shape();
        let rows = shape.num_elements() / width(&x);
        let mut xhat = writable(x);
        let (y, rstd) = cpu::layer_norm_forward(
            xhat.storage_mut::<f32>(),
            &read(&bias),
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
    ) -> [FlexTensor; 4] {
        let (shape, width) = (xhat.shape(), width(&xhat));
        let (dx, dbias, dgamma, dbeta) =
            cpu::layer_norm_backward(&read(&xhat), &read(&rstd), &read(&gamma), &read(&grad));
        [
            tensor(dx, shape),
            tensor(dbias, [width]),
            tensor(dgamma, [width]),
            tensor(dbeta, [width]),
        ]
    }

    fn linear_grad_input(grad: FlexTensor, w: FlexTensor) -> FlexTensor {
        times_weight(&grad, &w, true)
    }

    fn linear_grad_weight(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (inputs, outputs) = (width(&x), width(&grad));
        let rows = x.shape().num_elements() / inputs;
        let out = matmul(
            (&read(&x), rows, inputs, true),
            (&read(&grad), rows, outputs, false),
        );
        tensor(out, [inputs, outputs])
    }
}

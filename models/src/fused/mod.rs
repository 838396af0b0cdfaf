//! Fused CPU kernels with their own backward for the four operations that dominate a message-passing step:
//! gather-and-add of node rows onto edges, the segment sum of edges into nodes, bias + SiLU, and LayerNorm.
//!
//! Written with plain burn ops, each of these is several passes over an [edges, latent] buffer in the forward
//! and more in the backward, some of them single-threaded (burn-flex's scatter-add). Here each is one parallel
//! pass forward and one backward, deterministic (no atomics: a segment sum walks a CSR grouping of the index).
//!
//! The kernels run on the `flex` backend (with or without autodiff) for f32 tensors; on any other backend or
//! dtype every function falls back to its composition of plain burn ops in [`reference`], which also serves as
//! the reference the tests hold the kernels to. [`Kernels::Plain`], passed into a forward pass, makes the model use
//! the plain forms everywhere (benchmarks and equality tests compare the two).

mod autodiff;
mod cpu;
mod flex;
pub mod matmul;
pub mod reference;

use burn::backend::{Backend, Dispatch, ExtensionType, backend_extension};
use burn::backend::{DispatchDevice, tensor::FloatTensor, tensor::IntTensor};
use burn::prelude::*;
use burn::tensor::DType;

/// Which implementation a forward pass runs: a run-time choice handed to the model with its graph
/// ([`crate::graph_tensors::GraphTensors::kernels`]), never stored in a checkpoint. Both give the same numbers to
/// float round-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// The fused kernels where they apply (flex backend, f32), burn's ops elsewhere.
    #[default]
    Fused,
    /// burn's own ops everywhere (gather, concatenate, matmul, scatter-add): the reference implementation.
    Plain,
}

impl Kernels {
    /// The name used on the command line and in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Fused => "fused",
            Kernels::Plain => "plain",
        }
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernels {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "fused" => Ok(Kernels::Fused),
            "plain" => Ok(Kernels::Plain),
            other => Err(format!(
                "unknown kernels `{other}`: expected fused or plain"
            )),
        }
    }
}

/// A row index `index[k]` (edge k -> node row) together with its grouping by node, so that both the gather
/// `x[index]` and its transpose, the segment sum over k with the same `index[k]`, run in parallel over
/// output rows.
#[derive(Debug, Clone)]
pub struct Segments {
    /// index: [rows] the node row of each edge.
    pub index: Tensor<1, Int>,
    /// order: [rows] the edges sorted by node (stable), so `order[offsets[n]..offsets[n+1]]` are node n's.
    order: Tensor<1, Int>,
    /// offsets: [count + 1]
    offsets: Tensor<1, Int>,
    count: usize,
}

impl Segments {
    /// The grouping of `index` (values below `count`).
    pub fn new(index: &[u32], count: usize, device: &Device) -> Self {
        let mut offsets = vec![0i64; count + 1];
        for &n in index {
            offsets[n as usize + 1] += 1;
        }
        for n in 0..count {
            offsets[n + 1] += offsets[n];
        }
        let mut next = offsets.clone();
        let mut order = vec![0i64; index.len()];
        for (k, &n) in index.iter().enumerate() {
            order[next[n as usize] as usize] = k as i64;
            next[n as usize] += 1;
        }
        let int = |values: Vec<i64>| {
            let len = values.len();
            Tensor::<1, Int>::from_data(TensorData::new(values, [len]), device)
        };
        Self {
            index: int(index.iter().map(|&n| i64::from(n)).collect()),
            order: int(order),
            offsets: int(offsets),
            count,
        }
    }

    /// Number of indexed rows (edges).
    pub fn len(&self) -> usize {
        self.index.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of groups (nodes).
    pub fn count(&self) -> usize {
        self.count
    }

    fn primitive(&self) -> SegmentsPrimitive<Dispatch> {
        SegmentsPrimitive {
            index: self.index.clone().into_dispatch(),
            order: self.order.clone().into_dispatch(),
            offsets: self.offsets.clone().into_dispatch(),
        }
    }
}

/// [`Segments`] at the backend level.
#[derive(ExtensionType, Debug, Clone)]
pub struct SegmentsPrimitive<B: Backend> {
    pub index: IntTensor<B>,
    pub order: IntTensor<B>,
    pub offsets: IntTensor<B>,
}

/// The fused operations, implemented for `Flex` and for `Autodiff` over it (with their backward).
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// The hidden layer of an edge MLP whose input rows concatenate an edge row and two gathered node rows:
    /// `silu(base + senders[:, sender_rows] + receivers[:, receiver_rows] + bias)`.
    ///
    /// base: [batch, rows, width], senders: [batch, count_s, width], receivers: [batch, count_r, width],
    /// bias: [width] -> [batch, rows, width]
    fn gathered_bias_silu(
        base: FloatTensor<Self>,
        senders: FloatTensor<Self>,
        #[extension_type] sender_rows: SegmentsPrimitive<Self>,
        receivers: FloatTensor<Self>,
        #[extension_type] receiver_rows: SegmentsPrimitive<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// values: [batch, rows, width] -> [batch, count, width], row n the sum of the rows with index n: the
    /// transpose of a gather.
    fn segment_sum(
        values: FloatTensor<Self>,
        #[extension_type] segments: SegmentsPrimitive<Self>,
    ) -> FloatTensor<Self>;

    /// z: [..., width], bias: [width] -> silu(z + bias)
    fn bias_silu(z: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;

    /// x: [..., width], bias, gamma, beta: [width] -> LayerNorm of `x + bias` over the last axis (the bias is
    /// the preceding linear layer's, added here to save a pass).
    fn layer_norm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// x: [..., in], w: [in, out] -> x·w over the last axis: [..., out].
    fn linear(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The inner-backend pieces the autodiff implementation needs for its backward passes.
pub trait FusedKernels: FusedOps {
    /// values: [batch, count, width] -> [batch, rows, width], row k = values[index[k]].
    fn gather(values: FloatTensor<Self>, segments: SegmentsPrimitive<Self>) -> FloatTensor<Self>;
    /// -> (y, u = the SiLU input)
    fn gathered_bias_silu_forward(
        base: FloatTensor<Self>,
        senders: FloatTensor<Self>,
        sender_rows: SegmentsPrimitive<Self>,
        receivers: FloatTensor<Self>,
        receiver_rows: SegmentsPrimitive<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// -> (silu(z + bias), z + bias)
    fn bias_silu_forward(
        z: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// (u = the SiLU input, ∂L/∂y) -> (∂L/∂u, ∂L/∂bias)
    fn bias_silu_backward(
        u: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// -> (y, x̂ [..., width], rstd [rows])
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// (x̂, rstd, gamma, ∂L/∂y) -> [∂L/∂x, ∂L/∂bias, ∂L/∂gamma, ∂L/∂beta]
    fn layer_norm_backward(
        xhat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 4];
    /// (∂L/∂y [..., out], w [in, out]) -> ∂L/∂x = ∂L/∂y·wᵀ: [..., in]
    fn linear_grad_input(grad: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
    /// (x [..., in], ∂L/∂y [..., out]) -> ∂L/∂w = xᵀ·∂L/∂y summed over all leading axes: [in, out]
    fn linear_grad_weight(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Whether the kernels apply to these tensors: all on a flex device (with or without autodiff), all f32.
fn applies(device: &Device, dtypes: &[DType]) -> bool {
    dtypes.iter().all(|&d| d == DType::F32)
        && matches!(
            device.clone().inner().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// `silu(base + senders[:, sender_rows] + receivers[:, receiver_rows] + bias)`: an edge MLP's hidden layer
/// from its three partial products (see [`crate::mlp::Mlp::forward_edges`]).
///
/// base: [batch, rows, width], senders/receivers: [batch, count, width], bias: [width] -> [batch, rows, width]
pub fn gathered_bias_silu(
    base: Tensor<3>,
    (senders, sender_rows): (Tensor<3>, &Segments),
    (receivers, receiver_rows): (Tensor<3>, &Segments),
    bias: Tensor<1>,
) -> Tensor<3> {
    let dtypes = [
        base.dtype(),
        senders.dtype(),
        receivers.dtype(),
        bias.dtype(),
    ];
    if !applies(&base.device(), &dtypes) {
        return reference::gathered_bias_silu(
            base,
            (senders, sender_rows),
            (receivers, receiver_rows),
            bias,
        );
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::gathered_bias_silu(
        base.into_dispatch(),
        senders.into_dispatch(),
        sender_rows.primitive(),
        receivers.into_dispatch(),
        receiver_rows.primitive(),
        bias.into_dispatch(),
    ))
}

/// Sum of the rows of `values` by index: [batch, rows, width] -> [batch, count, width].
pub fn segment_sum(values: Tensor<3>, segments: &Segments) -> Tensor<3> {
    if !applies(&values.device(), &[values.dtype()]) {
        return reference::segment_sum(values, segments);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::segment_sum(
        values.into_dispatch(),
        segments.primitive(),
    ))
}

/// `silu(z + bias)`. z: [..., width], bias: [width]
pub fn bias_silu<const D: usize>(z: Tensor<D>, bias: Tensor<1>) -> Tensor<D> {
    if !applies(&z.device(), &[z.dtype(), bias.dtype()]) {
        return reference::bias_silu(z, bias);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::bias_silu(
        z.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// LayerNorm of `x + bias` over the last axis (biased variance). x: [..., width], bias, gamma, beta: [width]
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    bias: Tensor<1>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    let dtypes = [x.dtype(), bias.dtype(), gamma.dtype(), beta.dtype()];
    if !applies(&x.device(), &dtypes) {
        return reference::layer_norm(x, bias, gamma, beta, epsilon);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::layer_norm(
        x.into_dispatch(),
        bias.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// `x·w` over the last axis, through gemm with an unzeroed output and transposes as strides in the backward.
/// x: [..., in], w: [in, out] -> [..., out]
pub fn linear<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    if !applies(&x.device(), &[x.dtype(), w.dtype()]) {
        return reference::linear(x, w);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::linear(
        x.into_dispatch(),
        w.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_close, random, values};

    /// Runs `op` on fresh leaf copies of `inputs`, takes `Σ w·y` with fixed random weights w as the loss and
    /// returns the output and every input's gradient, for comparing the fused op with its reference.
    fn output_and_grads<const D: usize>(
        inputs: &[Tensor<D>],
        op: impl Fn(Vec<Tensor<D>>) -> Tensor<D>,
    ) -> Vec<Tensor<D>> {
        let leaves: Vec<Tensor<D>> = inputs
            .iter()
            .map(|t| Tensor::from_data(t.to_data(), &t.device()).require_grad())
            .collect();
        let y = op(leaves.clone());
        let w = random(y.dims(), 99, &y.device());
        let grads = (y.clone() * w).sum().backward();
        let mut out = vec![y];
        for leaf in &leaves {
            out.push(leaf.grad(&grads).expect("every input has a gradient"));
        }
        out
    }

    fn compare<const D: usize>(
        what: &str,
        inputs: &[Tensor<D>],
        fused: impl Fn(Vec<Tensor<D>>) -> Tensor<D>,
        reference: impl Fn(Vec<Tensor<D>>) -> Tensor<D>,
    ) {
        let a = output_and_grads(inputs, fused);
        let b = output_and_grads(inputs, reference);
        for (k, (x, y)) in a.into_iter().zip(b).enumerate() {
            assert_close(
                x,
                y,
                &format!("{what} (0 = output, k = grad of input k): {k}"),
            );
        }
    }

    /// 7 edges onto 4 nodes, node 3 without edges, repeats and an unsorted order.
    fn segments(device: &Device) -> Segments {
        Segments::new(&[2, 0, 2, 1, 0, 2, 1], 4, device)
    }

    #[test]
    fn grouping_is_a_csr_of_the_index() {
        let s = segments(&Device::flex());
        let ints = |t: &Tensor<1, Int>| t.to_data().iter::<i64>().collect::<Vec<_>>();
        assert_eq!(ints(&s.offsets), vec![0, 2, 4, 7, 7]);
        assert_eq!(ints(&s.order), vec![1, 4, 3, 6, 0, 2, 5]);
        assert_eq!((s.len(), s.count()), (7, 4));
    }

    #[test]
    fn gathered_silu_and_segment_sum_match_the_reference_with_gradients() {
        let device = Device::flex().autodiff();
        let s = segments(&device);
        let r = Segments::new(&[0, 1, 2, 0, 1, 2, 0], 3, &device);
        let base = random([2, 7, 5], 21, &device);
        let senders = random([2, 4, 5], 22, &device);
        let receivers = random([2, 3, 5], 23, &device);
        // the bias travels as [1, 1, 5] so that one `compare` handles every input
        let bias = random([1, 1, 5], 24, &device);
        compare(
            "gathered_bias_silu",
            &[base.clone(), senders, receivers, bias],
            |t| {
                let bias = t[3].clone().reshape([5]);
                gathered_bias_silu(t[0].clone(), (t[1].clone(), &s), (t[2].clone(), &r), bias)
            },
            |t| {
                let bias = t[3].clone().reshape([5]);
                reference::gathered_bias_silu(
                    t[0].clone(),
                    (t[1].clone(), &s),
                    (t[2].clone(), &r),
                    bias,
                )
            },
        );
        compare(
            "segment_sum",
            &[base],
            |t| segment_sum(t[0].clone(), &s),
            |t| reference::segment_sum(t[0].clone(), &s),
        );
    }

    #[test]
    fn bias_silu_and_layer_norm_match_the_reference_with_gradients() {
        let device = Device::flex().autodiff();
        // 150 rows: more than one parallel chunk, so the chunked gradient sums are exercised.
        let z = random([3, 50, 6], 26, &device);
        let bias = random([6], 27, &device).reshape([1, 1, 6]);
        compare(
            "bias_silu",
            &[z.clone(), bias],
            |t| bias_silu(t[0].clone(), t[1].clone().reshape([6])),
            |t| reference::bias_silu(t[0].clone(), t[1].clone().reshape([6])),
        );
        let gamma = random([6], 28, &device).reshape([1, 1, 6]);
        let beta = random([6], 29, &device).reshape([1, 1, 6]);
        let pre_bias = random([6], 30, &device).reshape([1, 1, 6]);
        let ln = |f: fn(Tensor<3>, Tensor<1>, Tensor<1>, Tensor<1>, f64) -> Tensor<3>| {
            move |t: Vec<Tensor<3>>| {
                let vector = |k: usize| t[k].clone().reshape([6]);
                f(t[0].clone(), vector(1), vector(2), vector(3), 1e-5)
            }
        };
        compare(
            "layer_norm",
            &[z, pre_bias, gamma, beta],
            ln(layer_norm),
            ln(reference::layer_norm),
        );
    }

    #[test]
    fn linear_matches_the_reference_with_gradients() {
        let device = Device::flex().autodiff();
        let x = random([2, 9, 5], 31, &device);
        // the weight travels as [1, 5, 3] so that one `compare` handles both inputs
        let w = random([1, 5, 3], 32, &device);
        compare(
            "linear",
            &[x, w],
            |t| linear(t[0].clone(), t[1].clone().reshape([5, 3])),
            |t| reference::linear(t[0].clone(), t[1].clone().reshape([5, 3])),
        );
    }

    #[test]
    fn kernels_are_deterministic_and_fall_back_off_flex_f32() {
        let device = Device::flex();
        let index: Vec<u32> = (0..20_000u32).map(|k| (k * 7919) % 1000).collect();
        let s = Segments::new(&index, 1000, &device);
        let e = random([1, 20_000, 16], 33, &device);
        let first = segment_sum(e.clone(), &s);
        assert_eq!(values(first.clone()), values(segment_sum(e.clone(), &s)));
        assert_close(first, reference::segment_sum(e.clone(), &s), "segment_sum");
        // f64 tensors take the reference path and give the same sums.
        let e64 = e.cast(burn::tensor::FloatDType::F64);
        assert_eq!(segment_sum(e64, &s).dtype(), DType::F64);
    }
}

//! The fused operations written with plain burn ops: the fallback on other backends and the reference the
//! kernels are tested against.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::silu;

use super::Segments;

/// base: [batch, rows, width], senders/receivers: [batch, count, width], bias: [width] ->
/// silu(base + senders[:, sender_rows] + receivers[:, receiver_rows] + bias)
pub fn gathered_bias_silu(
    base: Tensor<3>,
    (senders, sender_rows): (Tensor<3>, &Segments),
    (receivers, receiver_rows): (Tensor<3>, &Segments),
    bias: Tensor<1>,
) -> Tensor<3> {
    let z = base
        + senders.select(1, sender_rows.index.clone())
        + receivers.select(1, receiver_rows.index.clone());
    bias_silu(z, bias)
}

/// values: [batch, rows, width] -> [batch, count, width]
pub fn segment_sum(values: Tensor<3>, segments: &Segments) -> Tensor<3> {
    let [batch, _, width] = values.dims();
    Tensor::<3>::zeros([batch, segments.count(), width], &values.device())
        .cast(values.dtype())
        .select_assign(1, segments.index.clone(), values, IndexingUpdateOp::Add)
}

/// z: [..., width], bias: [width] -> silu(z + bias)
pub fn bias_silu<const D: usize>(z: Tensor<D>, bias: Tensor<1>) -> Tensor<D> {
    silu(z + bias.unsqueeze::<D>())
}

/// LayerNorm of `x + bias` over the last axis with biased variance, as burn's `LayerNorm` module computes it.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    bias: Tensor<1>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    let x = x + bias.unsqueeze::<D>();
    let (var, mean) = x.clone().var_mean_bias(D - 1);
    let xhat = (x - mean) / (var + epsilon).sqrt();
    xhat * gamma.unsqueeze::<D>() + beta.unsqueeze::<D>()
}

/// x: [..., in], w: [in, out] -> x·w
pub fn linear<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    x.matmul(w.unsqueeze::<D>())
}

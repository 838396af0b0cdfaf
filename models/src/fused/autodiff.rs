//! The fused operations under autodiff: each forward runs the inner backend's kernel and registers one
//! backward step that runs the matching backward kernel. Backward pairs:
//!
//! ```text
//! gathered_bias_silu  y = silu(u), u = z + s[snd] + r[rcv] + b   ∂z = g·silu'(u), ∂s = segment_sum_snd(∂z),
//!                                                                 ∂r = segment_sum_rcv(∂z), ∂b = Σ_rows ∂z
//!                                                                 (keeps u)
//! segment_sum         y_n = Σ_{index = n} v                        ∂v = g[index]
//! bias_silu           y = silu(u), u = z + b                       ∂z = g·silu'(u), ∂b = Σ_rows ∂z (keeps u)
//! layer_norm          y = x̂·γ + β, x̂ = norm(x + c)                ∂x, ∂c = Σ ∂x, ∂γ = Σ g·x̂, ∂β = Σ g
//!                                                                 (keeps x̂, rstd, γ)
//! linear              y = x·w                                      ∂x = g·wᵀ, ∂w = xᵀ·g (keeps x, w)
//! ```

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend};

use super::{FusedKernels, FusedOps, SegmentsPrimitive};

/// The index tensors are the inner backend's under autodiff; only the type changes.
fn inner<B: FusedKernels, C: CheckpointStrategy>(
    segments: SegmentsPrimitive<Autodiff<B, C>>,
) -> SegmentsPrimitive<B> {
    SegmentsPrimitive {
        index: segments.index,
        order: segments.order,
        offsets: segments.offsets,
    }
}

#[derive(Debug)]
struct GatheredBiasSilu;

impl<B: FusedKernels> Backward<B, 4> for GatheredBiasSilu {
    /// (u, sender rows, receiver rows)
    type State = (FloatTensor<B>, SegmentsPrimitive<B>, SegmentsPrimitive<B>);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [base, senders, receivers, bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (u, sender_rows, receiver_rows) = ops.state;
        let (grad_u, grad_bias) = B::bias_silu_backward(u, grad);
        if let Some(node) = senders {
            let grad = <B as FusedOps>::segment_sum(grad_u.clone(), sender_rows);
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = receivers {
            let grad = <B as FusedOps>::segment_sum(grad_u.clone(), receiver_rows);
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = bias {
            grads.register::<B>(node.id, grad_bias);
        }
        if let Some(node) = base {
            grads.register::<B>(node.id, grad_u);
        }
    }
}

#[derive(Debug)]
struct SegmentSum;

impl<B: FusedKernels> Backward<B, 1> for SegmentSum {
    type State = SegmentsPrimitive<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [values] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = values {
            grads.register::<B>(node.id, B::gather(grad, ops.state));
        }
    }
}

#[derive(Debug)]
struct BiasSilu;

impl<B: FusedKernels> Backward<B, 2> for BiasSilu {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [z, bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (grad_z, grad_bias) = B::bias_silu_backward(ops.state, grad);
        if let Some(node) = z {
            grads.register::<B>(node.id, grad_z);
        }
        if let Some(node) = bias {
            grads.register::<B>(node.id, grad_bias);
        }
    }
}

#[derive(Debug)]
struct LayerNorm;

impl<B: FusedKernels> Backward<B, 4> for LayerNorm {
    /// (x̂, rstd, gamma)
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (xhat, rstd, gamma) = ops.state;
        let all = B::layer_norm_backward(xhat, rstd, gamma, grad);
        // parents and gradients in the same order: x, bias, gamma, beta
        for (node, grad) in ops.parents.into_iter().zip(all) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct Linear;

impl<B: FusedKernels> Backward<B, 2> for Linear {
    /// (x, w)
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, w_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w) = ops.state;
        if let Some(node) = w_node {
            grads.register::<B>(node.id, B::linear_grad_weight(x, grad.clone()));
        }
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::linear_grad_input(grad, w));
        }
    }
}

impl<B: FusedKernels, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn gathered_bias_silu(
        base: FloatTensor<Self>,
        senders: FloatTensor<Self>,
        sender_rows: SegmentsPrimitive<Self>,
        receivers: FloatTensor<Self>,
        receiver_rows: SegmentsPrimitive<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (sender_rows, receiver_rows) = (inner(sender_rows), inner(receiver_rows));
        let prep = GatheredBiasSilu
            .prepare::<C>([base.node(), senders.node(), receivers.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (base, senders, receivers, bias) = (
            Self::inner(base),
            Self::inner(senders),
            Self::inner(receivers),
            Self::inner(bias),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let (y, u) = B::gathered_bias_silu_forward(
                    base,
                    senders,
                    sender_rows.clone(),
                    receivers,
                    receiver_rows.clone(),
                    bias,
                );
                prep.finish((u, sender_rows, receiver_rows), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedOps>::gathered_bias_silu(
                base,
                senders,
                sender_rows,
                receivers,
                receiver_rows,
                bias,
            )),
        }
    }

    fn segment_sum(
        values: FloatTensor<Self>,
        segments: SegmentsPrimitive<Self>,
    ) -> FloatTensor<Self> {
        let segments = inner(segments);
        let prep = SegmentSum
            .prepare::<C>([values.node()])
            .compute_bound()
            .stateful();
        let out = <B as FusedOps>::segment_sum(Self::inner(values), segments.clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish(segments, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn bias_silu(z: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = BiasSilu
            .prepare::<C>([z.node(), bias.node()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(prep) => {
                let (y, u) = B::bias_silu_forward(Self::inner(z), Self::inner(bias));
                prep.finish(u, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedOps>::bias_silu(
                Self::inner(z),
                Self::inner(bias),
            )),
        }
    }

    fn layer_norm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let prep = LayerNorm
            .prepare::<C>([x.node(), bias.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, bias) = (Self::inner(x), Self::inner(bias));
        let (gamma, beta) = (Self::inner(gamma), Self::inner(beta));
        match prep {
            OpsKind::Tracked(prep) => {
                let (y, xhat, rstd) = B::layer_norm_forward(x, bias, gamma.clone(), beta, epsilon);
                prep.finish((xhat, rstd, gamma), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(<B as FusedOps>::layer_norm(x, bias, gamma, beta, epsilon))
            }
        }
    }

    fn linear(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = Linear
            .prepare::<C>([x.node(), w.node()])
            .compute_bound()
            .stateful();
        let (x, w) = (Self::inner(x), Self::inner(w));
        match prep {
            OpsKind::Tracked(prep) => {
                let y = <B as FusedOps>::linear(x.clone(), w.clone());
                prep.finish((x, w), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedOps>::linear(x, w)),
        }
    }
}

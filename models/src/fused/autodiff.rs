//! The fused operations under autodiff: each forward runs the inner backend's kernel and registers one
//! backward step that runs the matching backward kernel. Backward pairs:
//!
//! ```text
//! gather_add   y = base + source[index]   ∂base = g,  ∂source = segment_sum(g)
//! segment_sum  y = Σ_{index = n} v        ∂v = g[index]
//! bias_silu    y = silu(z + b)            ∂z = g·silu'(z + b), ∂b = Σ_rows ∂z      (keeps u = z + b)
//! layer_norm   y = x̂·γ + β                ∂x, ∂γ = Σ g·x̂, ∂β = Σ g               (keeps x̂, rstd, γ)
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
struct GatherAdd;

impl<B: FusedKernels> Backward<B, 2> for GatherAdd {
    type State = SegmentsPrimitive<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [base, source] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = source {
            grads.register::<B>(node.id, B::segment_sum(grad.clone(), ops.state));
        }
        if let Some(node) = base {
            grads.register::<B>(node.id, grad);
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

impl<B: FusedKernels> Backward<B, 3> for LayerNorm {
    /// (x̂, rstd, gamma)
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, gamma, beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (xhat, rstd, gamma_value) = ops.state;
        let (grad_x, grad_gamma, grad_beta) = B::layer_norm_backward(xhat, rstd, gamma_value, grad);
        for (node, grad) in [(x, grad_x), (gamma, grad_gamma), (beta, grad_beta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FusedKernels, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn gather_add(
        base: FloatTensor<Self>,
        source: FloatTensor<Self>,
        segments: SegmentsPrimitive<Self>,
    ) -> FloatTensor<Self> {
        let segments = inner(segments);
        let prep = GatherAdd
            .prepare::<C>([base.node(), source.node()])
            .compute_bound()
            .stateful();
        let out = B::gather_add(Self::inner(base), Self::inner(source), segments.clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish(segments, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
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
        let out = B::segment_sum(Self::inner(values), segments.clone());
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
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let prep = LayerNorm
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (Self::inner(x), Self::inner(gamma), Self::inner(beta));
        match prep {
            OpsKind::Tracked(prep) => {
                let (y, xhat, rstd) = B::layer_norm_forward(x, gamma.clone(), beta, epsilon);
                prep.finish((xhat, rstd, gamma), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedOps>::layer_norm(x, gamma, beta, epsilon)),
        }
    }
}

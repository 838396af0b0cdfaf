//! The one MLP every block uses: `Linear -> SiLU -> Linear` with a LayerNorm before or after (GraphCast: after).

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

use crate::fused::{self, Kernels, Segments};

/// LayerNorm's ε, set explicitly so that the fused kernel and burn's module agree (burn's default).
const LAYER_NORM_EPSILON: f64 = 1e-5;

/// Where the LayerNorm of each MLP sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormPlacement {
    /// `LN(Linear(SiLU(Linear(x))))`, GraphCast's choice (Lam et al. 2023).
    #[default]
    Post,
    /// `Linear(SiLU(Linear(LN(x))))`, the pre-LN transformer habit: the residual stream itself is never normalised.
    Pre,
    /// No LayerNorm (used for the decoder's output head, whose scale must stay free).
    None,
}

/// `Linear(in, hidden) -> SiLU -> Linear(hidden, out)` plus an optional LayerNorm.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Linear,
    output: Linear,
    norm: Option<LayerNorm>,
    /// Whether `norm` (when present) normalises the input rather than the output.
    pre_norm: bool,
}

impl Mlp {
    /// An MLP taking `input_size` features to `output_size` through `hidden_size` units.
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        output_size: usize,
        placement: NormPlacement,
        device: &Device,
    ) -> Self {
        let norm_size = match placement {
            NormPlacement::Pre => Some(input_size),
            NormPlacement::Post => Some(output_size),
            NormPlacement::None => None,
        };
        Self {
            hidden: LinearConfig::new(input_size, hidden_size).init(device),
            output: LinearConfig::new(hidden_size, output_size).init(device),
            norm: norm_size.map(|size| {
                LayerNormConfig::new(size)
                    .with_epsilon(LAYER_NORM_EPSILON)
                    .init(device)
            }),
            pre_norm: placement == NormPlacement::Pre,
        }
    }

    /// x: [..., input] -> [..., output]
    pub fn forward<const D: usize>(&self, x: Tensor<D>, kernels: Kernels) -> Tensor<D> {
        if kernels == Kernels::Plain {
            return self.forward_reference(x);
        }
        let x = if self.pre_norm {
            self.normalise(x, None)
        } else {
            x
        };
        let h = fused::linear(x, self.hidden.weight.val());
        let h = match &self.hidden.bias {
            Some(bias) => fused::bias_silu(h, bias.val()),
            None => silu(h),
        };
        self.finish(h)
    }

    /// [`Self::forward`] with burn's own modules and ops: the reference the fused form is tested against.
    pub fn forward_reference<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = match (&self.norm, self.pre_norm) {
            (Some(norm), true) => norm.forward(x),
            _ => x,
        };
        let y = self.output.forward(silu(self.hidden.forward(x)));
        match (&self.norm, self.pre_norm) {
            (Some(norm), false) => norm.forward(y),
            _ => y,
        }
    }

    /// An interaction network's edge MLP, `MLP([e, x_senders[senders], x_receivers[receivers]])`.
    ///
    /// With the fused kernels the first layer is evaluated as `e·W_e + (x_senders·W_s)[senders] +
    /// (x_receivers·W_r)[receivers] + b` (the same maths as the layer on the concatenation, without building
    /// it, and with the node products taken before the gather: one [nodes, latent]² product per node set
    /// instead of one per edge), then bias and SiLU in one pass. A pre-LN normalises the concatenation as a
    /// whole, so it (and [`Kernels::Plain`]) concatenates first.
    ///
    /// edges: [batch, edges, e_in], x_senders: [batch, senders, s_in], x_receivers: [batch, receivers, r_in]
    /// -> [batch, edges, output]
    pub fn forward_edges(
        &self,
        edges: Tensor<3>,
        (x_senders, senders): (Tensor<3>, &Segments),
        (x_receivers, receivers): (Tensor<3>, &Segments),
        kernels: Kernels,
    ) -> Tensor<3> {
        if self.pre_norm || kernels == Kernels::Plain {
            let joined = Tensor::cat(
                vec![
                    edges,
                    x_senders.select(1, senders.index.clone()),
                    x_receivers.select(1, receivers.index.clone()),
                ],
                2,
            );
            return self.forward(joined, kernels);
        }
        let widths = [edges.dims()[2], x_senders.dims()[2], x_receivers.dims()[2]];
        let [w_e, w_s, w_r] = self.hidden_weight_blocks(widths);
        let base = fused::linear(edges, w_e);
        let from = fused::linear(x_senders, w_s);
        let to = fused::linear(x_receivers, w_r);
        let h = match &self.hidden.bias {
            Some(bias) => {
                fused::gathered_bias_silu(base, (from, senders), (to, receivers), bias.val())
            }
            None => silu(
                base + from.select(1, senders.index.clone())
                    + to.select(1, receivers.index.clone()),
            ),
        };
        self.finish(h)
    }

    /// An interaction network's node MLP, `MLP([x, aggregated])`, its first layer evaluated as
    /// `x·W_x + aggregated·W_a + b` with the fused kernels (no concatenation).
    ///
    /// x: [batch, nodes, x_in], aggregated: [batch, nodes, a_in] -> [batch, nodes, output]
    pub fn forward_nodes(
        &self,
        x: Tensor<3>,
        aggregated: Tensor<3>,
        kernels: Kernels,
    ) -> Tensor<3> {
        if self.pre_norm || kernels == Kernels::Plain {
            return self.forward(Tensor::cat(vec![x, aggregated], 2), kernels);
        }
        let [w_x, w_a] = self.hidden_weight_blocks([x.dims()[2], aggregated.dims()[2]]);
        let h = fused::linear(x, w_x) + fused::linear(aggregated, w_a);
        let h = match &self.hidden.bias {
            Some(bias) => fused::bias_silu(h, bias.val()),
            None => silu(h),
        };
        self.finish(h)
    }

    /// The hidden layer's weight [input, hidden] cut into consecutive row blocks of the given widths: the
    /// weights seen by each part of a concatenated input.
    fn hidden_weight_blocks<const N: usize>(&self, widths: [usize; N]) -> [Tensor<2>; N] {
        let weight = self.hidden.weight.val();
        let [_, hidden_size] = weight.dims();
        let mut offset = 0;
        widths.map(|width| {
            let block = weight
                .clone()
                .slice([offset..offset + width, 0..hidden_size]);
            offset += width;
            block
        })
    }

    /// Everything after the hidden layer's activation: the output layer and a post-LN (which adds the output
    /// layer's bias itself, saving a pass).
    fn finish<const D: usize>(&self, h: Tensor<D>) -> Tensor<D> {
        let y = fused::linear(h, self.output.weight.val());
        let bias = self.output.bias.as_ref().map(|b| b.val());
        match (&self.norm, self.pre_norm, bias) {
            (Some(_), false, bias) => self.normalise(y, bias),
            (_, _, Some(bias)) => y + bias.unsqueeze::<D>(),
            (_, _, None) => y,
        }
    }

    /// The LayerNorm of `x + bias` (identity without a norm), through the fused kernel.
    fn normalise<const D: usize>(&self, x: Tensor<D>, bias: Option<Tensor<1>>) -> Tensor<D> {
        let x_plus_bias = |x: Tensor<D>, bias: Option<Tensor<1>>| match bias {
            Some(bias) => x + bias.unsqueeze::<D>(),
            None => x,
        };
        match &self.norm {
            Some(norm) => match &norm.beta {
                Some(beta) => {
                    let gamma = norm.gamma.val();
                    let bias = bias.unwrap_or_else(|| gamma.zeros_like());
                    fused::layer_norm(x, bias, gamma, beta.val(), LAYER_NORM_EPSILON)
                }
                None => norm.forward(x_plus_bias(x, bias)),
            },
            None => x_plus_bias(x, bias),
        }
    }

    /// Sets the output layer's weights and bias to zero, so that (without a post-LN) the MLP outputs zero.
    /// With a post-LN the LayerNorm's scale and offset are zeroed too. Used by tests and by ablations that
    /// switch a layer off.
    pub fn zero_output(mut self) -> Self {
        let zeros = |t: Tensor<1>| t.zeros_like();
        self.output.weight = self.output.weight.map(|t| t.zeros_like());
        self.output.bias = self.output.bias.map(|b| b.map(zeros));
        if let (false, Some(norm)) = (self.pre_norm, self.norm.as_mut()) {
            norm.gamma = norm.gamma.clone().map(zeros);
            norm.beta = norm.beta.clone().map(|b| b.map(zeros));
        }
        self
    }
}

//! The one MLP every block uses: `Linear -> SiLU -> Linear` with a LayerNorm before or after (GraphCast: after).

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

use crate::fused::{self, Segments};

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
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !fused::enabled() {
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

    /// The MLP of a concatenation `[a_1, .., a_k]` along the last axis, where part `j` is `source_j` with rows
    /// gathered by `index_j` along axis 1 (or taken as is).
    ///
    /// The first layer is evaluated as `Σ_j (source_j · W_j)[index_j] + b`, the same maths as
    /// `Linear([source_1[index_1], ..])` without building the concatenation, and with the product taken before
    /// the gather: for edge MLPs that is one [nodes, latent]² product per node set instead of one per edge. With a
    /// pre-LN (which normalises the concatenation as a whole) the parts are gathered and concatenated first.
    ///
    /// parts: ([batch, rows_j, in_j], optional index [out_rows]) -> [batch, out_rows, output]
    pub fn forward_parts(&self, parts: Vec<(Tensor<3>, Option<&Segments>)>) -> Tensor<3> {
        if self.pre_norm || !fused::enabled() {
            let joined = parts
                .into_iter()
                .map(|(x, index)| match index {
                    Some(index) => x.select(1, index.index.clone()),
                    None => x,
                })
                .collect();
            return self.forward(Tensor::cat(joined, 2));
        }
        let weight = self.hidden.weight.val();
        let [_, hidden_size] = weight.dims();
        let mut offset = 0;
        let terms: Vec<(Tensor<3>, Option<&Segments>)> = parts
            .into_iter()
            .map(|(x, index)| {
                let width = x.dims()[2];
                let w = weight
                    .clone()
                    .slice([offset..offset + width, 0..hidden_size]);
                offset += width;
                (fused::linear(x, w), index)
            })
            .collect();
        let bias = self.hidden.bias.as_ref().map(|b| b.val());
        let h = match (<[_; 3]>::try_from(terms), bias) {
            // An edge MLP's [e, x_snd, x_rcv]: sum, bias and SiLU in one fused pass.
            (Ok([(base, None), (snd, Some(s)), (rcv, Some(r))]), Some(bias)) => {
                fused::gathered_bias_silu(base, (snd, s), (rcv, r), bias)
            }
            (Ok(terms), bias) => Self::sum_bias_silu(terms.into(), bias),
            (Err(terms), bias) => Self::sum_bias_silu(terms, bias),
        };
        self.finish(h)
    }

    /// `silu(Σ_j term_j[index_j] + bias)` for any mix of gathered and dense terms.
    fn sum_bias_silu(
        terms: Vec<(Tensor<3>, Option<&Segments>)>,
        bias: Option<Tensor<1>>,
    ) -> Tensor<3> {
        let h = terms
            .into_iter()
            .map(|(term, index)| match index {
                Some(index) => term.select(1, index.index.clone()),
                None => term,
            })
            .reduce(|sum, term| sum + term)
            .expect("forward_parts needs at least one part");
        match bias {
            Some(bias) => fused::bias_silu(h, bias),
            None => silu(h),
        }
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

//! Hook points: named identities in the forward pass that probes attach to (TransformerLens' idea).
//!
//! The model calls [`Hooks::at`] at each point; analysis code implements [`Observer`] and never reaches into
//! model internals. With no observer attached nothing is built or copied.

use std::fmt;

use burn::prelude::*;

/// A place in the forward pass whose tensor can be observed. The `Display` form is the stable API name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// `encoder.out`: mesh latent after grid2mesh, [batch, mesh_nodes, latent].
    EncoderOut,
    /// `processor.{i}.resid_pre`: X_i, [batch, mesh_nodes, latent].
    ResidPre(usize),
    /// `processor.{i}.delta`: v_i(X_i), the increment added by layer i, [batch, mesh_nodes, latent].
    Delta(usize),
    /// `processor.{i}.resid_post`: X_{i+1} = X_i + v_i(X_i), [batch, mesh_nodes, latent].
    ResidPost(usize),
    /// `processor.{i}.edge_delta`: the edge-latent increment of layer i, [batch, mesh_edges, latent].
    EdgeDelta(usize),
    /// `decoder.out`: grid output before de-normalisation, [batch, grid_points, channels].
    DecoderOut,
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::EncoderOut => write!(f, "encoder.out"),
            HookPoint::ResidPre(i) => write!(f, "processor.{i}.resid_pre"),
            HookPoint::Delta(i) => write!(f, "processor.{i}.delta"),
            HookPoint::ResidPost(i) => write!(f, "processor.{i}.resid_post"),
            HookPoint::EdgeDelta(i) => write!(f, "processor.{i}.edge_delta"),
            HookPoint::DecoderOut => write!(f, "decoder.out"),
        }
    }
}

impl std::str::FromStr for HookPoint {
    type Err = String;

    /// Parses the stable names written by `Display`, so recordings and CLI flags can name hook points.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "encoder.out" => return Ok(HookPoint::EncoderOut),
            "decoder.out" => return Ok(HookPoint::DecoderOut),
            _ => {}
        }
        let unknown = || format!("unknown hook point `{name}`");
        let rest = name.strip_prefix("processor.").ok_or_else(unknown)?;
        let (layer, kind) = rest.split_once('.').ok_or_else(unknown)?;
        let layer: usize = layer.parse().map_err(|_| unknown())?;
        match kind {
            "resid_pre" => Ok(HookPoint::ResidPre(layer)),
            "delta" => Ok(HookPoint::Delta(layer)),
            "resid_post" => Ok(HookPoint::ResidPost(layer)),
            "edge_delta" => Ok(HookPoint::EdgeDelta(layer)),
            _ => Err(unknown()),
        }
    }
}

/// Something that looks at tensors as the forward pass goes by. It must not change what it sees.
pub trait Observer {
    /// Whether this observer wants `point`; lets the model skip work for points nobody records.
    fn wants(&self, point: HookPoint) -> bool;
    /// Called with the tensor at `point`.
    fn observe(&self, point: HookPoint, tensor: &Tensor<3>);
}

/// The observers attached to one forward pass. `Hooks::none()` costs nothing.
#[derive(Default)]
pub struct Hooks<'a> {
    observers: Vec<&'a dyn Observer>,
}

impl<'a> Hooks<'a> {
    /// No observers: the forward pass is exactly the plain model.
    pub fn none() -> Self {
        Self::default()
    }

    /// Attach `observer`.
    pub fn with(mut self, observer: &'a dyn Observer) -> Self {
        self.observers.push(observer);
        self
    }

    /// Show `tensor` to every observer that wants `point`.
    pub fn at(&self, point: HookPoint, tensor: &Tensor<3>) {
        for observer in &self.observers {
            if observer.wants(point) {
                observer.observe(point, tensor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let points = [
            HookPoint::EncoderOut,
            HookPoint::ResidPre(0),
            HookPoint::Delta(3),
            HookPoint::ResidPost(15),
            HookPoint::EdgeDelta(2),
            HookPoint::DecoderOut,
        ];
        for p in points {
            assert_eq!(p.to_string().parse::<HookPoint>(), Ok(p));
        }
        assert_eq!(HookPoint::Delta(3).to_string(), "processor.3.delta");
        assert!("processor.x.delta".parse::<HookPoint>().is_err());
        assert!("processor.1.nothing".parse::<HookPoint>().is_err());
    }
}

//! Tensor names of a recording (docs/recording.md, "Tensor names and stages"): top-level names, stage
//! coordinates, `<stage>.<layer>.<point>` and `<stage>.<point>`, and the shape each kind of name must have.

/// The names a tensor may have without a stage.
pub const TOP_LEVEL: [&str; 4] = ["node_lat", "node_lon", "inputs", "sample_time"];
/// The per-layer points holding X_i, v_i and X_{i+1}.
pub const STATE_POINTS: [&str; 3] = ["resid_pre", "delta", "resid_post"];

pub const NAME_HELP: &str = "node_lat, node_lon, inputs, sample_time, <stage>.node_lat, <stage>.node_lon, \
     <stage>.<layer>.<point> or <stage>.<point>, where <stage> and <point> match [a-z][a-z0-9_]* and <layer> is \
     a decimal number without leading zeros";

/// A parsed tensor name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// `node_lat`, `node_lon`, `inputs`, `sample_time`.
    Top(&'static str),
    /// `<stage>.node_lat` (`latitude` true) or `<stage>.node_lon`.
    Coordinate { stage: String, latitude: bool },
    /// `<stage>.<layer>.<point>`.
    Layer {
        stage: String,
        layer: usize,
        point: String,
    },
    /// `<stage>.<point>`.
    Point { stage: String, point: String },
}

/// How a tensor is shaped, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// [nodes], F32 or F64.
    Coordinate,
    /// [samples], I64 or F64.
    Time,
    /// [samples, nodes, channels], a float dtype.
    Inputs,
    /// [samples, edges, width], a float dtype.
    Edges,
    /// [samples, nodes, width], a float dtype.
    Nodes,
}

impl Role {
    pub fn dtypes(self) -> &'static [&'static str] {
        match self {
            Role::Coordinate => &["F32", "F64"],
            Role::Time => &["I64", "F64"],
            _ => &["F32", "F64", "F16", "BF16"],
        }
    }

    pub fn rank(self) -> usize {
        match self {
            Role::Coordinate | Role::Time => 1,
            _ => 3,
        }
    }

    pub fn shape_words(self) -> &'static str {
        match self {
            Role::Coordinate => "[nodes]",
            Role::Time => "[samples]",
            Role::Inputs => "[samples, nodes, channels]",
            Role::Edges => "[samples, edges, latent]",
            Role::Nodes => "[samples, nodes, latent]",
        }
    }
}

fn is_segment(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn layer_number(text: &str) -> Option<usize> {
    let valid = text == "0"
        || (!text.is_empty() && !text.starts_with('0') && text.chars().all(|c| c.is_ascii_digit()));
    valid.then(|| text.parse().ok()).flatten()
}

impl Name {
    /// Parses in the documented order: top-level name, stage coordinates, three parts, two parts.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(&top) = TOP_LEVEL.iter().find(|&&top| top == name) {
            return Some(Name::Top(top));
        }
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            [stage, coordinate @ ("node_lat" | "node_lon")] if is_segment(stage) => {
                Some(Name::Coordinate {
                    stage: stage.to_string(),
                    latitude: *coordinate == "node_lat",
                })
            }
            [stage, layer, point] if is_segment(stage) && is_segment(point) => Some(Name::Layer {
                stage: stage.to_string(),
                layer: layer_number(layer)?,
                point: point.to_string(),
            }),
            [stage, point] if is_segment(stage) && is_segment(point) => Some(Name::Point {
                stage: stage.to_string(),
                point: point.to_string(),
            }),
            _ => None,
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Name::Top("node_lat" | "node_lon") | Name::Coordinate { .. } => Role::Coordinate,
            Name::Top("sample_time") => Role::Time,
            Name::Top(_) => Role::Inputs,
            Name::Layer { point, .. } | Name::Point { point, .. } if point.starts_with("edge_") => {
                Role::Edges
            }
            _ => Role::Nodes,
        }
    }

    /// The stage the tensor belongs to (None for the top-level names).
    pub fn stage(&self) -> Option<&str> {
        match self {
            Name::Top(_) => None,
            Name::Coordinate { stage, .. }
            | Name::Layer { stage, .. }
            | Name::Point { stage, .. } => Some(stage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_the_documented_order() {
        assert_eq!(Name::parse("inputs"), Some(Name::Top("inputs")));
        assert_eq!(
            Name::parse("encoder.node_lat"),
            Some(Name::Coordinate {
                stage: "encoder".into(),
                latitude: true
            })
        );
        // Three parts: a layer point, even when the point is called node_lat.
        assert_eq!(
            Name::parse("processor.0.node_lat"),
            Some(Name::Layer {
                stage: "processor".into(),
                layer: 0,
                point: "node_lat".into()
            })
        );
        assert_eq!(
            Name::parse("processor.12.resid_pre").map(|n| n.role()),
            Some(Role::Nodes)
        );
        assert_eq!(
            Name::parse("processor.2.edge_delta").map(|n| n.role()),
            Some(Role::Edges)
        );
        assert_eq!(
            Name::parse("encoder.out").and_then(|n| n.stage().map(str::to_string)),
            Some("encoder".into())
        );
        for bad in [
            "Processor.0.delta",
            "processor.03.delta",
            "a.b.c.d",
            "node_lats",
            "processor..delta",
            "processor.-1.delta",
            "1stage.out",
            "",
        ] {
            assert_eq!(Name::parse(bad), None, "{bad}");
        }
    }
}

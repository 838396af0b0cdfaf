//! Resolving a selection to channels: which stored variable each asked-for name is, in which files, and how
//! each channel is read from each of them (axis roles, level and member indices, decoding).

use super::Channel;
use super::axes::{AxisChoices, AxisRole, FileAxes};
use super::decode::Decoding;
use super::error::DatasetError;
use super::known_variables;
use super::source::GriddedSource;

/// Which channels to read: a variable by short name and, for pressure-level variables, some of its levels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSelection {
    /// Short name (`z`, `t2m`) or the stored name (`geopotential`, `2m_temperature`).
    pub variable: String,
    /// Pressure levels in hPa, in the order wanted; empty means every level the file has (or the single level).
    #[serde(default)]
    pub levels: Vec<f64>,
}

impl VariableSelection {
    pub fn new(variable: &str, levels: &[f64]) -> Self {
        Self {
            variable: variable.to_string(),
            levels: levels.to_vec(),
        }
    }

    /// One selection per channel, so that reading gives back exactly these channels in this order.
    pub fn for_channels(channels: &[Channel]) -> Vec<Self> {
        channels
            .iter()
            .map(|c| Self {
                variable: c.variable.clone(),
                levels: c.level.into_iter().collect(),
            })
            .collect()
    }
}

/// The name of a channel: the short name, followed by the level in hPa for pressure-level variables
/// (`z` at 500 hPa -> `z500`; `t2m` stays `t2m`).
pub fn channel_name(variable: &str, level_hpa: Option<f64>) -> String {
    match level_hpa {
        Some(level) => format!("{variable}{level}"),
        None => variable.to_string(),
    }
}

/// How one channel is read from one file.
#[derive(Debug, Clone)]
pub(super) struct SourcePlan {
    /// The role of each stored dimension.
    pub(super) roles: Vec<AxisRole>,
    /// Per dimension: the index taken along a level, member or batch axis (0 elsewhere).
    pub(super) fixed: Vec<usize>,
    pub(super) decoding: Decoding,
    /// The `expver` values, for messages.
    pub(super) expver_labels: Vec<String>,
}

/// Where one channel's values are.
#[derive(Debug, Clone)]
pub(super) struct ChannelPlan {
    /// Stored variable name.
    pub(super) variable: String,
    pub(super) level: Option<f64>,
    /// No time axis: one field for every time.
    pub(super) is_static: bool,
    /// Index of the file group whose series map gives the channel's files by time.
    pub(super) group: usize,
    /// Per source: how to read the channel there (`None` where the source does not hold it).
    pub(super) per_source: Vec<Option<SourcePlan>>,
}

fn same_level(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(1.0)
}

/// The channels of one selected variable and how to read them from each file of its group.
pub(super) fn resolve_selection(
    sources: &[Box<dyn GriddedSource>],
    axes: &[FileAxes],
    groups: &[(Vec<String>, Vec<usize>)],
    choice: &VariableSelection,
    choices: &AxisChoices,
) -> Result<Vec<(Channel, ChannelPlan)>, DatasetError> {
    let first_path = sources[0].path();
    // The stored name: as given, else the WeatherBench2 name of a short name.
    let candidates: Vec<&str> = std::iter::once(choice.variable.as_str())
        .chain(known_variables::weatherbench2_name(&choice.variable))
        .collect();
    let holding: Vec<(usize, &str)> = groups
        .iter()
        .enumerate()
        .filter_map(|(g, (fields, _))| {
            candidates
                .iter()
                .find(|name| fields.iter().any(|f| f == *name))
                .map(|name| (g, *name))
        })
        .collect();
    let (group, stored_name) = match holding.as_slice() {
        [] => {
            // Not a field anywhere: a variable that exists but is not gridded gets its own error below.
            let existing = sources.iter().enumerate().find_map(|(s, source)| {
                candidates
                    .iter()
                    .find_map(|name| source.variable(name).map(|v| (s, v)))
            });
            if let Some((s, variable)) = existing {
                sources[s].check_readable(&variable.name)?;
                return Err(DatasetError::WrongDimensions {
                    path: sources[s].path().to_path_buf(),
                    variable: variable.name.clone(),
                    expected: format!(
                        "a field with {} and {} axes",
                        axes[s].lat_dim, axes[s].lon_dim
                    ),
                    found: variable.dims.clone(),
                });
            }
            let mut available: Vec<String> = Vec::new();
            for source in sources {
                for variable in source.variables() {
                    if !available.contains(&variable.name) {
                        available.push(variable.name.clone());
                    }
                }
            }
            return Err(DatasetError::MissingVariable {
                path: first_path.to_path_buf(),
                variable: choice.variable.clone(),
                available,
            });
        }
        [one] => *one,
        [a, b, ..] => {
            return Err(DatasetError::InvalidDataset {
                path: sources[groups[a.0].1[0]].path().to_path_buf(),
                detail: format!(
                    "reading: `{}` is in two sets of files that hold different variables (this one and {}); \
                     keep it in one set",
                    choice.variable,
                    sources[groups[b.0].1[0]].path().display()
                ),
            });
        }
    };
    let members = &groups[group].1;
    let mut per_source: Vec<Option<SourcePlan>> = vec![None; sources.len()];
    let mut reference = None;
    for &s in members {
        let source = sources[s].as_ref();
        let variable = source.require(stored_name)?;
        source.check_readable(stored_name)?;
        if !axes[s].is_field(variable) {
            return Err(DatasetError::WrongDimensions {
                path: source.path().to_path_buf(),
                variable: variable.name.clone(),
                expected: format!(
                    "a field with {} and {} axes",
                    axes[s].lat_dim, axes[s].lon_dim
                ),
                found: variable.dims.clone(),
            });
        }
        let layout = axes[s].field_layout(source, variable, choices)?;
        let decoding = Decoding::of(source, variable)?;
        let units = variable.text_attr("units").unwrap_or_default().to_string();
        let expver_labels = source
            .variable(super::axes::EXPVER)
            .filter(|v| v.value_type.is_numeric() && v.dims.len() == 1)
            .and_then(|_| source.read_all(super::axes::EXPVER).ok())
            .map(|values| values.iter().map(|v| format!("{v}")).collect())
            .unwrap_or_default();
        let mut fixed = vec![0; layout.roles.len()];
        if let (Some(at), Some(index)) = (layout.position(AxisRole::Member), layout.member_index) {
            fixed[at] = index;
        }
        per_source[s] = Some(SourcePlan {
            roles: layout.roles.clone(),
            fixed,
            decoding,
            expver_labels,
        });
        if reference.is_none() {
            reference = Some((s, layout, units));
        }
    }
    let Some((reference_source, layout, units)) = reference else {
        return Ok(Vec::new());
    };
    let available: Vec<f64> = layout.levels.iter().filter_map(|&(_, l)| l).collect();
    let chosen: Vec<(Option<usize>, Option<f64>)> = if choice.levels.is_empty() {
        layout.levels.clone()
    } else {
        choice
            .levels
            .iter()
            .map(|&wanted| {
                layout
                    .levels
                    .iter()
                    .find(|&&(_, l)| l.is_some_and(|l| same_level(l, wanted)))
                    .copied()
                    .ok_or_else(|| DatasetError::MissingLevel {
                        path: sources[reference_source].path().to_path_buf(),
                        variable: choice.variable.clone(),
                        level: wanted,
                        available: available.clone(),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let is_static = layout.is_static();
    let mut out = Vec::with_capacity(chosen.len());
    for (level_index, level) in chosen {
        let mut plan = ChannelPlan {
            variable: stored_name.to_string(),
            level,
            is_static,
            group,
            per_source: per_source.clone(),
        };
        // The level's index in each file (files of one series normally share their levels).
        if level_index.is_some() {
            for (s, source_plan) in plan.per_source.iter_mut().enumerate() {
                let Some(source_plan) = source_plan else {
                    continue;
                };
                let Some(at) = source_plan.roles.iter().position(|&r| r == AxisRole::Level) else {
                    continue;
                };
                let levels = axes[s]
                    .level
                    .as_ref()
                    .map(|l| l.values_hpa.clone())
                    .unwrap_or_default();
                let wanted = level.unwrap_or_default();
                source_plan.fixed[at] = levels
                    .iter()
                    .position(|&l| same_level(l, wanted))
                    .ok_or_else(|| DatasetError::MissingLevel {
                        path: sources[s].path().to_path_buf(),
                        variable: choice.variable.clone(),
                        level: wanted,
                        available: levels.clone(),
                    })?;
            }
        }
        let channel = Channel {
            name: channel_name(&layout.short_name, level),
            variable: layout.short_name.clone(),
            level,
            units: units.clone(),
        };
        out.push((channel, plan));
    }
    Ok(out)
}

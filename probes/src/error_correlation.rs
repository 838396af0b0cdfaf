//! Do different models fail on the same forecasts? Pearson correlation of per-case errors between models at one
//! lead, over the cases every model has, and an ordering of the models by average-linkage clustering on 1 − r so
//! that models that err alike sit next to each other in the heat map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stats::pearson;

/// What a caller can get wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErrorCorrelationError {
    #[error("{models} model(s) given: a correlation needs at least 2")]
    TooFewModels { models: usize },
    #[error("{cases} forecast case(s) common to all models: a correlation needs at least 3")]
    TooFewCommonCases { cases: usize },
    #[error("model {model} has two errors for init time {init_time}")]
    DuplicateCase { model: String, init_time: String },
    #[error("model {model}, init time {init_time}: non-finite rmse {rmse}")]
    NonFinite {
        model: String,
        init_time: String,
        rmse: f64,
    },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: csv::Error },
}

/// One forecast case's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseError {
    pub model: String,
    /// The case's initialisation time as written in `errors.csv` (ISO 8601); cases match by equal strings.
    pub init_time: String,
    pub rmse: f64,
}

/// One merge of the average-linkage clustering, numbered as scipy's linkage matrix: leaves are 0..models, the
/// cluster made by merge m is models + m.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Merge {
    /// The cluster whose lowest model index is smaller.
    pub left: usize,
    pub right: usize,
    /// Mean of 1 − r over all model pairs across the two clusters.
    pub distance: f64,
    /// Models in the merged cluster.
    pub size: usize,
}

/// Correlation of per-case errors between models at one lead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorCorrelation {
    /// In order of first appearance in the input.
    pub models: Vec<String>,
    /// The cases every model has, ascending.
    pub init_times: Vec<String>,
    /// Pearson r, [models, models] row-major; NaN for a model whose errors are all equal.
    pub correlation: Vec<f64>,
    /// Model indices in dendrogram leaf order (left to right).
    pub order: Vec<usize>,
    pub linkage: Vec<Merge>,
}

/// Correlates the models' errors over the init times they all share (cases missing for any model are dropped).
pub fn error_correlation(cases: &[CaseError]) -> Result<ErrorCorrelation, ErrorCorrelationError> {
    let mut models: Vec<String> = Vec::new();
    let mut by_model: Vec<BTreeMap<&str, f64>> = Vec::new();
    for case in cases {
        if !case.rmse.is_finite() {
            return Err(ErrorCorrelationError::NonFinite {
                model: case.model.clone(),
                init_time: case.init_time.clone(),
                rmse: case.rmse,
            });
        }
        let index = models
            .iter()
            .position(|model| *model == case.model)
            .unwrap_or_else(|| {
                models.push(case.model.clone());
                by_model.push(BTreeMap::new());
                models.len() - 1
            });
        if by_model[index].insert(&case.init_time, case.rmse).is_some() {
            return Err(ErrorCorrelationError::DuplicateCase {
                model: case.model.clone(),
                init_time: case.init_time.clone(),
            });
        }
    }
    if models.len() < 2 {
        return Err(ErrorCorrelationError::TooFewModels {
            models: models.len(),
        });
    }
    let common: BTreeSet<&str> = by_model
        .iter()
        .map(|errors| errors.keys().copied().collect::<BTreeSet<_>>())
        .reduce(|a, b| a.intersection(&b).copied().collect())
        .unwrap_or_default();
    if common.len() < 3 {
        return Err(ErrorCorrelationError::TooFewCommonCases {
            cases: common.len(),
        });
    }
    let series: Vec<Vec<f64>> = by_model
        .iter()
        .map(|errors| common.iter().map(|time| errors[time]).collect())
        .collect();
    let count = models.len();
    let correlation: Vec<f64> = (0..count * count)
        .map(|index| pearson(&series[index / count], &series[index % count]))
        .collect();
    let distance: Vec<f64> = correlation
        .iter()
        .map(|r| if r.is_nan() { 1.0 } else { 1.0 - r })
        .collect();
    let (linkage, order) = average_linkage(&distance, count);
    Ok(ErrorCorrelation {
        models,
        init_times: common.into_iter().map(str::to_owned).collect(),
        correlation,
        order,
        linkage,
    })
}

/// The cases of one variable and lead from an `errors.csv` (`model,variable,lead_hours,init_time,rmse`, as
/// written by `evaluate`).
pub fn read_case_errors(
    path: &Path,
    variable: &str,
    lead_hours: f64,
) -> Result<Vec<CaseError>, ErrorCorrelationError> {
    #[derive(Deserialize)]
    struct Line {
        model: String,
        variable: String,
        lead_hours: f64,
        init_time: String,
        rmse: f64,
    }
    let read_error = |source| ErrorCorrelationError::Read {
        path: path.to_owned(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(read_error)?;
    let mut cases = Vec::new();
    for line in reader.deserialize::<Line>() {
        let line = line.map_err(read_error)?;
        if line.variable == variable && line.lead_hours == lead_hours {
            cases.push(CaseError {
                model: line.model,
                init_time: line.init_time,
                rmse: line.rmse,
            });
        }
    }
    Ok(cases)
}

/// Average-linkage (UPGMA) clustering of `items` from a distance matrix ([items, items] row-major). Each step
/// merges the two clusters with the smallest mean pairwise distance; ties go to the pair with the smaller lowest
/// indices, so the result does not depend on anything but the matrix. Returns the merges and the leaf order, in
/// which each merge puts the cluster with the lower lowest index first.
pub fn average_linkage(distance: &[f64], items: usize) -> (Vec<Merge>, Vec<usize>) {
    struct Cluster {
        id: usize,
        /// In leaf order.
        members: Vec<usize>,
        lowest: usize,
    }
    let mut clusters: Vec<Cluster> = (0..items)
        .map(|item| Cluster {
            id: item,
            members: vec![item],
            lowest: item,
        })
        .collect();
    let mean_distance = |a: &Cluster, b: &Cluster| {
        let total: f64 = a
            .members
            .iter()
            .flat_map(|&p| b.members.iter().map(move |&q| distance[p * items + q]))
            .sum();
        total / (a.members.len() * b.members.len()) as f64
    };
    let mut merges = Vec::with_capacity(items.saturating_sub(1));
    while clusters.len() > 1 {
        let mut best: Option<(f64, (usize, usize), usize, usize)> = None;
        for a in 0..clusters.len() {
            for b in a + 1..clusters.len() {
                let d = mean_distance(&clusters[a], &clusters[b]);
                let lowest = (
                    clusters[a].lowest.min(clusters[b].lowest),
                    clusters[a].lowest.max(clusters[b].lowest),
                );
                let better = best.is_none_or(|(best_d, best_lowest, _, _)| {
                    d < best_d || (d == best_d && lowest < best_lowest)
                });
                if better {
                    best = Some((d, lowest, a, b));
                }
            }
        }
        let Some((d, _, a, b)) = best else { break };
        let second = clusters.remove(b);
        let first = clusters.remove(a);
        let (left, right) = if first.lowest < second.lowest {
            (first, second)
        } else {
            (second, first)
        };
        let id = items + merges.len();
        merges.push(Merge {
            left: left.id,
            right: right.id,
            distance: d,
            size: left.members.len() + right.members.len(),
        });
        let lowest = left.lowest;
        let members = left.members.into_iter().chain(right.members).collect();
        clusters.push(Cluster {
            id,
            members,
            lowest,
        });
    }
    let order = clusters
        .pop()
        .map(|cluster| cluster.members)
        .unwrap_or_default();
    (merges, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(model: &str, errors: &[(&str, f64)]) -> Vec<CaseError> {
        errors
            .iter()
            .map(|&(time, rmse)| CaseError {
                model: model.into(),
                init_time: time.into(),
                rmse,
            })
            .collect()
    }

    const TIMES: [&str; 3] = ["2020-01-01T00", "2020-01-02T00", "2020-01-03T00"];

    #[test]
    fn three_models_match_the_hand_computation() {
        // A = (1, 2, 3), B = (1, 2, 4), C = (3, 2, 1). Centred: A (−1, 0, 1), B (−4/3, −1/3, 5/3), C (1, 0, −1).
        // Σ AB = 4/3 + 5/3 = 3, Σ A² = 2, Σ B² = 42/9, so r(A, B) = 3 / sqrt(2·42/9) = 0.98198...;
        // r(A, C) = −1, r(B, C) = −r(A, B). Given in the order A, C, B.
        let mut all = cases("A", &[(TIMES[0], 1.0), (TIMES[1], 2.0), (TIMES[2], 3.0)]);
        all.extend(cases(
            "C",
            &[(TIMES[0], 3.0), (TIMES[1], 2.0), (TIMES[2], 1.0)],
        ));
        all.extend(cases(
            "B",
            &[(TIMES[0], 1.0), (TIMES[1], 2.0), (TIMES[2], 4.0)],
        ));
        let result = error_correlation(&all).unwrap();
        let r_ab = 3.0 / (2.0f64 * 42.0 / 9.0).sqrt();
        assert_eq!(result.models, ["A", "C", "B"]);
        let expected = [1.0, -1.0, r_ab, -1.0, 1.0, -r_ab, r_ab, -r_ab, 1.0];
        for (got, want) in result.correlation.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // A and B merge first at 1 − r_ab; C joins at the mean of 1 − (−1) and 1 − (−r_ab).
        assert_eq!(result.order, [0, 2, 1]);
        let first = result.linkage[0];
        assert_eq!((first.left, first.right, first.size), (0, 2, 2));
        assert!((first.distance - (1.0 - r_ab)).abs() < 1e-12);
        let last = result.linkage[1];
        assert_eq!((last.left, last.right, last.size), (3, 1, 3));
        assert!((last.distance - (2.0 + 1.0 + r_ab) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn perfectly_correlated_models_cluster_together() {
        let times: Vec<String> = (0..8)
            .map(|day| format!("2020-01-{:02}T00", day + 1))
            .collect();
        let series = |f: &dyn Fn(f64) -> f64| -> Vec<f64> { (0..8).map(|i| f(i as f64)).collect() };
        let models: [(&str, Vec<f64>); 4] = [
            ("p", series(&|t| (t * 1.3).sin())),
            ("q", series(&|t| (t * 0.7).cos())),
            ("p_scaled", series(&|t| 2.0 * (t * 1.3).sin() + 5.0)),
            ("q_shifted", series(&|t| (t * 0.7).cos() + 1.0)),
        ];
        let all: Vec<CaseError> = models
            .iter()
            .flat_map(|(name, values)| {
                times.iter().zip(values).map(|(time, &rmse)| CaseError {
                    model: (*name).into(),
                    init_time: time.clone(),
                    rmse,
                })
            })
            .collect();
        let result = error_correlation(&all).unwrap();
        assert!((result.correlation[2] - 1.0).abs() < 1e-12);
        let position = |model: usize| result.order.iter().position(|&m| m == model).unwrap();
        assert_eq!(position(0).abs_diff(position(2)), 1, "{:?}", result.order);
        assert_eq!(position(1).abs_diff(position(3)), 1, "{:?}", result.order);
        assert!(
            result.linkage[..2]
                .iter()
                .all(|merge| merge.distance.abs() < 1e-12)
        );
    }

    #[test]
    fn cases_missing_for_any_model_are_dropped() {
        let mut all = cases("A", &[("t0", 1.0), ("t1", 2.0), ("t2", 3.0), ("t3", 10.0)]);
        all.extend(cases(
            "B",
            &[("t1", 2.0), ("t0", 1.0), ("t2", 4.0), ("t4", -7.0)],
        ));
        let result = error_correlation(&all).unwrap();
        assert_eq!(result.init_times, ["t0", "t1", "t2"]);
        let r_ab = 3.0 / (2.0f64 * 42.0 / 9.0).sqrt();
        assert!((result.correlation[1] - r_ab).abs() < 1e-12);
        all.extend(cases("C", &[("t0", 1.0), ("t2", 1.0)]));
        assert!(matches!(
            error_correlation(&all),
            Err(ErrorCorrelationError::TooFewCommonCases { cases: 2 })
        ));
    }

    #[test]
    fn bad_input_is_reported() {
        let mut all = cases("A", &[("t0", 1.0), ("t0", 2.0)]);
        assert!(matches!(
            error_correlation(&all),
            Err(ErrorCorrelationError::DuplicateCase { .. })
        ));
        all = cases("A", &[("t0", f64::NAN)]);
        assert!(matches!(
            error_correlation(&all),
            Err(ErrorCorrelationError::NonFinite { .. })
        ));
        all = cases("A", &[("t0", 1.0), ("t1", 2.0), ("t2", 2.0)]);
        assert!(matches!(
            error_correlation(&all),
            Err(ErrorCorrelationError::TooFewModels { models: 1 })
        ));
    }

    #[test]
    fn reads_one_variable_and_lead_from_errors_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("errors.csv");
        std::fs::write(
            &path,
            "model,variable,lead_hours,init_time,rmse\n\
             a,z500,72,2020-01-01T00:00:00Z,300.5\n\
             a,t850,72,2020-01-01T00:00:00Z,2.0\n\
             a,z500,120,2020-01-01T00:00:00Z,500.0\n\
             b,z500,72,2020-01-01T00:00:00Z,310.0\n",
        )
        .unwrap();
        let found = read_case_errors(&path, "z500", 72.0).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[1],
            CaseError {
                model: "b".into(),
                init_time: "2020-01-01T00:00:00Z".into(),
                rmse: 310.0
            }
        );
        let missing = read_case_errors(&dir.path().join("none.csv"), "z500", 72.0).unwrap_err();
        assert!(missing.to_string().contains("none.csv"), "{missing}");
    }
}

//! Gathering a study's report from its run folders.

use std::path::Path;

use weatherlens_models::config::ProcessorKind;
use weatherlens_models::files;
use weatherlens_probes::error_correlation::{CaseError, error_correlation, read_case_errors};
use weatherlens_probes::trend::Direction;
use weatherlens_training::config::DataSource;
use weatherlens_training::evaluate::{ERRORS_CSV, PERSISTENCE, PHYSICS, SCORECARD_CSV, ScoreRow};

use super::alignment::{self, RunRecordings, open_run};
use super::{ModelDynamics, StudyReport};
use crate::report::ReportError;
use crate::stages::evaluate::read_scorecard;
use crate::study::{PlannedRun, RunOutcome, Seasons, StudyAlignment};

fn io(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Whether two run configs differ only by name and seed.
fn seeds_only(a: &PlannedRun, b: &PlannedRun) -> bool {
    let mut x = a.config.clone();
    let mut y = b.config.clone();
    x.name.clear();
    y.name.clear();
    y.seed = x.seed;
    y.data.windows.seed = x.data.windows.seed;
    x == y && a.config.seed != b.config.seed
}

/// Builds the report of the finished runs from their folders: evaluation tables, recordings (trained and
/// untrained, with their input fields), `analysis.json` and `jacobian.json`.
pub fn collect(
    study: &str,
    runs: &[PlannedRun],
    outcomes: &[RunOutcome],
    alignment_nulls: usize,
    settings: &StudyAlignment,
) -> Result<StudyReport, ReportError> {
    let finished: Vec<&PlannedRun> = runs
        .iter()
        .filter(|r| {
            outcomes
                .iter()
                .any(|o| o.name == r.name && o.error.is_none())
        })
        .collect();
    let Some(first) = finished.first() else {
        return Err(ReportError::NothingFinished);
    };
    let headline = first.config.evaluation.headline_channel.clone();
    let headline_lead = first.config.evaluation.max_lead_hours;

    // Scorecard: every model's own rows, the baselines once (from the first run: same data and test cases).
    let mut scorecard: Vec<ScoreRow> = Vec::new();
    for (k, run) in finished.iter().enumerate() {
        let path = run.dir.join("evaluation").join(SCORECARD_CSV);
        let rows = read_scorecard(&path)?;
        scorecard.extend(rows.into_iter().filter(|r| r.model == run.name || k == 0));
    }

    // Error correlation at the headline lead.
    let mut cases: Vec<CaseError> = Vec::new();
    for (k, run) in finished.iter().enumerate() {
        let path = run.dir.join("evaluation").join(ERRORS_CSV);
        let rows =
            read_case_errors(&path, &headline, headline_lead as f64).map_err(|e| io(&path, e))?;
        cases.extend(rows.into_iter().filter(|c| {
            c.model == run.name || (k == 0 && (c.model == PHYSICS || c.model == PERSISTENCE))
        }));
    }
    let correlation = error_correlation(&cases).ok();
    let ai: Vec<&str> = finished.iter().map(|r| r.name.as_str()).collect();
    let (mut mean_r_ai_ai, mut mean_r_ai_physics) = (None, None);
    let (mut error_models, mut error_matrix, mut error_cases) = (Vec::new(), Vec::new(), 0);
    if let Some(c) = &correlation {
        let m = c.models.len();
        let index = |name: &str| c.models.iter().position(|x| x == name);
        let mean = |pairs: Vec<(usize, usize)>| {
            let values: Vec<f64> = pairs
                .iter()
                .map(|&(i, j)| c.correlation[i * m + j])
                .filter(|r| r.is_finite())
                .collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        let ai_idx: Vec<usize> = ai.iter().filter_map(|n| index(n)).collect();
        mean_r_ai_ai = mean(
            ai_idx
                .iter()
                .flat_map(|&i| ai_idx.iter().filter(move |&&j| j > i).map(move |&j| (i, j)))
                .collect(),
        );
        if let Some(p) = index(PHYSICS) {
            mean_r_ai_physics = mean(ai_idx.iter().map(|&i| (i, p)).collect());
        }
        let ordered: Vec<String> = c.order.iter().map(|&i| c.models[i].clone()).collect();
        let values: Vec<f64> = c
            .order
            .iter()
            .flat_map(|&i| c.order.iter().map(move |&j| c.correlation[i * m + j]))
            .collect();
        error_models = ordered;
        error_matrix = values;
        error_cases = c.init_times.len();
    }

    // Alignment between models at their last processor layer, beside the controls.
    let mut alignment_notes = Vec::new();
    let recordings: Vec<RunRecordings> = finished
        .iter()
        .filter_map(|run| {
            let (trained, untrained) = open_run(&run.name, &run.dir)?;
            if untrained.is_none() {
                alignment_notes.push(format!(
                    "`{}` has no untrained control (`untrained/`): its pairs lack that control",
                    run.name
                ));
            }
            Some(RunRecordings {
                name: run.name.clone(),
                trained,
                untrained,
                seeds_only_with: finished
                    .iter()
                    .filter(|other| seeds_only(run, other))
                    .map(|other| other.name.clone())
                    .collect(),
            })
        })
        .collect();
    let seasons = match settings.seasons {
        Seasons::Yes => true,
        Seasons::No => false,
        Seasons::Auto => first.config.data.source != DataSource::Synthetic,
    };
    let alignment = alignment::pooled(&recordings, settings, alignment_nulls).unwrap_or_else(|e| {
        alignment_notes.push(format!("no pooled alignment: {e}"));
        Vec::new()
    });
    let local_alignment =
        alignment::per_location(&recordings, settings, seasons).unwrap_or_else(|e| {
            alignment_notes.push(format!("no per-location alignment: {e}"));
            None
        });
    // Dynamics from each run's analysis.json.
    let mut dynamics = Vec::new();
    let (mut rel_series, mut centroid_series) = (Vec::new(), Vec::new());
    for run in &finished {
        let path = run.dir.join("analysis").join("analysis.json");
        let json: serde_json::Value =
            serde_json::from_slice(&files::read(&path)?).map_err(|e| io(&path, e))?;
        let num = |v: &serde_json::Value| v.as_f64();
        let velocity = &json["velocity"];
        let norms: Vec<f64> = velocity["layers"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r["norm_mean"].as_f64())
                    .collect()
            })
            .unwrap_or_default();
        let verdict: Direction = serde_json::from_value(velocity["trend"]["direction"].clone())
            .unwrap_or(Direction::Undetermined);
        dynamics.push(ModelDynamics {
            last_over_first: match (norms.first(), norms.last()) {
                (Some(&a), Some(&b)) if a > 0.0 => Some(b / a),
                _ => None,
            },
            verdict,
            verdict_reason: velocity["trend"]["reason"]
                .as_str()
                .unwrap_or("no verdict in analysis.json")
                .to_string(),
            centroid_verdict_v: serde_json::from_value(
                json["centroid"]["verdict_v"]["direction"].clone(),
            )
            .ok(),
            control: run.config.model.processor == ProcessorKind::Selfloop,
            model: run.name.clone(),
            decay_rho: num(&velocity["decay"]["spearman_rho"]).unwrap_or(f64::NAN),
            decay_p: num(&velocity["decay"]["layer_p_value"]).unwrap_or(f64::NAN),
            decay_ci: velocity["decay"]["ci"]
                .as_array()
                .and_then(|a| Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?])),
            straightness: num(&velocity["straightness"]).unwrap_or(f64::NAN),
            jacobian_asymmetry: std::fs::read(run.dir.join("jacobian").join("jacobian.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|j| {
                    j["layers"].as_array().map(|layers| {
                        layers
                            .iter()
                            .filter_map(|l| l["asymmetry"]["asymmetry"].as_f64())
                            .collect()
                    })
                })
                .unwrap_or_default(),
            centroid_trend_x: num(&json["centroid"]["trend_x"]),
            centroid_trend_v: num(&json["centroid"]["trend_v"]),
        });
        let rows = velocity["layers"].as_array().cloned().unwrap_or_default();
        rel_series.push(
            rows.iter()
                .filter_map(|r| Some((r["layer"].as_f64()?, r["rel_mean"].as_f64()?)))
                .collect::<Vec<_>>(),
        );
        let crow = json["centroid"]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        centroid_series.push(
            crow.iter()
                .filter_map(|r| Some((r["layer"].as_f64()?, r["centroid_v"].as_f64()?)))
                .collect::<Vec<_>>(),
        );
    }
    let report = StudyReport {
        study: study.to_string(),
        runs: outcomes.to_vec(),
        headline_channel: headline,
        headline_lead_hours: headline_lead,
        scorecard,
        error_models,
        error_correlation: error_matrix,
        error_cases,
        mean_r_ai_ai,
        mean_r_ai_physics,
        alignment,
        local_alignment,
        alignment_notes,
        alignment_settings: settings.clone(),
        dynamics,
        velocity_curves: finished
            .iter()
            .map(|r| r.name.clone())
            .zip(rel_series)
            .collect(),
        centroid_curves: finished
            .iter()
            .map(|r| r.name.clone())
            .zip(centroid_series)
            .collect(),
    };
    Ok(report)
}

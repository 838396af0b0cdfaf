//! The cross-model report of a study (`runs/<study>/report/`): a joint scorecard, the error-correlation
//! matrix (models + physics + persistence), CKA / CKNNA between models at the last processor layer by region
//! with permutation nulls, velocity and centroid curves overlaid, and `report.md` / `report.html` / `report.json`
//! built only from the per-run output files, so every figure can be recomputed from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use weatherlens_models::hooks::HookPoint;
use weatherlens_training::evaluate::{
    ERRORS_CSV, PERSISTENCE, PHYSICS, SCORECARD_CSV, ScoreRow, read_scorecard,
};

use crate::alignment::{CompareOptions, MetricSet, NullSummary, Representation, compare};
use crate::error_correlation::{CaseError, error_correlation, read_case_errors};
use crate::inputs::{Region, Rows, load_matrix};
use crate::plot::{Curve, HeatMap, LinePlot, heat_map, line_plot};
use crate::record::{RecordingMeta, read_meta};
use crate::study::{PlannedRun, RunOutcome};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("no run of the study finished; nothing to compare")]
    NothingFinished,
}

fn io(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Alignment of one ordered pair of models in one region.
#[derive(Debug, Clone, Serialize)]
pub struct PairAlignment {
    pub region: Region,
    /// X (row model) and Y (column model); CKNNA depends on the order.
    pub a: String,
    pub b: String,
    pub n: usize,
    pub metrics: MetricSet<f64>,
    pub null: Option<MetricSet<NullSummary>>,
    /// The two runs differ only in their seed (the analogue of two GraphCast versions).
    pub seeds_only: bool,
}

/// Per-model physics figures read from the run's `analysis.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelDynamics {
    pub model: String,
    pub decay_rho: f64,
    pub decay_ci: Option<[f64; 2]>,
    /// Permutation p-value of the decay trend over the layers.
    pub decay_p: f64,
    pub straightness: f64,
    /// mean |v_{L-1}| / mean |v_0|: how much the increments shrink (below 1) or grow over the depth.
    pub last_over_first: Option<f64>,
    /// Whether the run's processor is the no-message control.
    pub control: bool,
    pub centroid_trend_x: Option<f64>,
    pub centroid_trend_v: Option<f64>,
    /// Jacobian asymmetry ‖J − Jᵀ‖/‖J‖ of each layer's increment (0 = locally a gradient field), from
    /// `jacobian/jacobian.json`.
    pub jacobian_asymmetry: Vec<f64>,
}

/// Everything in `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct StudyReport {
    pub study: String,
    pub runs: Vec<RunOutcome>,
    pub headline_channel: String,
    pub headline_lead_hours: i64,
    pub scorecard: Vec<ScoreRow>,
    pub error_models: Vec<String>,
    pub error_correlation: Vec<f64>,
    pub error_cases: usize,
    /// Mean Pearson r over pairs of AI models, and between AI models and the physics model.
    pub mean_r_ai_ai: Option<f64>,
    pub mean_r_ai_physics: Option<f64>,
    pub alignment: Vec<PairAlignment>,
    pub dynamics: Vec<ModelDynamics>,
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

/// Build the report of the finished runs into `out_dir`.
pub fn write_study_report(
    study: &str,
    runs: &[PlannedRun],
    outcomes: &[RunOutcome],
    alignment_nulls: usize,
    out_dir: &Path,
) -> Result<StudyReport, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|e| io(out_dir, e))?;
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
        let rows = read_scorecard(&path).map_err(|e| io(&path, e))?;
        scorecard.extend(rows.into_iter().filter(|r| r.model == run.name || k == 0));
    }
    write_csv(&out_dir.join("scorecard.csv"), &scorecard)?;
    crate::report::rmse_plot(&scorecard, &headline, &out_dir.join("rmse"))
        .map_err(|e| io(out_dir, e))?;

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
        heat_map(
            &out_dir.join("error_correlation"),
            &HeatMap {
                title: &format!(
                    "{headline} RMSE at {} h: correlation over {} cases",
                    headline_lead,
                    c.init_times.len()
                ),
                row_labels: &ordered,
                column_labels: &ordered,
                values: &values,
                value_range: Some((-1.0, 1.0)),
            },
        )
        .map_err(|e| io(out_dir, e))?;
        error_models = ordered;
        error_matrix = values;
        error_cases = c.init_times.len();
    }

    // Alignment between models at their last processor layer.
    let mut alignment = Vec::new();
    let recordings: Vec<(&PlannedRun, RecordingMeta)> = finished
        .iter()
        .filter_map(|r| read_meta(&r.dir.join("probes")).ok().map(|m| (*r, m)))
        .collect();
    for region in [Region::Global, Region::Tropics, Region::NhMid] {
        for (a, meta_a) in &recordings {
            for (b, meta_b) in &recordings {
                if a.name == b.name
                    || meta_a.node_indices != meta_b.node_indices
                    || meta_a.sample_times != meta_b.sample_times
                    || meta_a.mesh_level != meta_b.mesh_level
                {
                    continue;
                }
                let last = |meta: &RecordingMeta| {
                    HookPoint::ResidPost(*meta.layers.iter().max().unwrap_or(&0)).to_string()
                };
                let rows = Rows {
                    region: Some(region),
                    ..Rows::default()
                };
                let x = load_matrix(&a.dir.join("probes"), &last(meta_a), rows)
                    .map_err(|e| io(&a.dir, e))?;
                let y = load_matrix(&b.dir.join("probes"), &last(meta_b), rows)
                    .map_err(|e| io(&b.dir, e))?;
                let report = compare(
                    &Representation::new(&a.name, &x.data, x.rows, x.features)
                        .map_err(|e| io(&a.dir, e))?,
                    &Representation::new(&b.name, &y.data, y.rows, y.features)
                        .map_err(|e| io(&b.dir, e))?,
                    &CompareOptions {
                        null_draws: alignment_nulls,
                        ci_draws: 0,
                        ..CompareOptions::default()
                    },
                )
                .map_err(|e| io(&a.dir, e))?;
                alignment.push(PairAlignment {
                    region,
                    a: a.name.clone(),
                    b: b.name.clone(),
                    n: report.n,
                    metrics: report.metrics,
                    null: report.null,
                    seeds_only: seeds_only(a, b),
                });
            }
        }
    }
    let names: Vec<String> = recordings.iter().map(|(r, _)| r.name.clone()).collect();
    for region in [Region::Global, Region::Tropics, Region::NhMid] {
        for (metric, pick) in [
            (
                "cknna",
                (|m: &MetricSet<f64>| m.cknna) as fn(&MetricSet<f64>) -> f64,
            ),
            ("cka", |m: &MetricSet<f64>| m.cka_unbiased),
        ] {
            let values: Vec<f64> = names
                .iter()
                .flat_map(|a| names.iter().map(move |b| (a, b)))
                .map(|(a, b)| {
                    if a == b {
                        1.0
                    } else {
                        alignment
                            .iter()
                            .find(|p| p.region == region && &p.a == a && &p.b == b)
                            .map_or(f64::NAN, |p| pick(&p.metrics))
                    }
                })
                .collect();
            if names.len() >= 2 {
                heat_map(
                    &out_dir.join(format!("{metric}_{}", region_label(region))),
                    &HeatMap {
                        title: &format!(
                            "{metric} at the last processor layer ({})",
                            region_label(region)
                        ),
                        row_labels: &names,
                        column_labels: &names,
                        values: &values,
                        value_range: Some((0.0, 1.0)),
                    },
                )
                .map_err(|e| io(out_dir, e))?;
            }
        }
    }

    // Dynamics from each run's analysis.json.
    let mut dynamics = Vec::new();
    let (mut rel_series, mut centroid_series) = (Vec::new(), Vec::new());
    for run in &finished {
        let path = run.dir.join("analysis").join("analysis.json");
        let json: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| io(&path, "missing or unreadable"))?;
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
        dynamics.push(ModelDynamics {
            last_over_first: match (norms.first(), norms.last()) {
                (Some(&a), Some(&b)) if a > 0.0 => Some(b / a),
                _ => None,
            },
            control: run.config.model.processor
                == weatherlens_models::config::ProcessorKind::Selfloop,
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
    let run_names: Vec<String> = finished.iter().map(|r| r.name.clone()).collect();
    for (stem, title, y_label, series) in [
        (
            "velocity",
            "relative increment |v_i| / |X_i| by layer",
            "|v_i| / |X_i|",
            &rel_series,
        ),
        (
            "centroid",
            "spectral centroid of v_i by layer",
            "mean total wavenumber",
            &centroid_series,
        ),
    ] {
        let curves: Vec<Curve> = run_names
            .iter()
            .zip(series.iter())
            .map(|(name, points)| Curve { name, points })
            .collect();
        line_plot(
            &out_dir.join(stem),
            &LinePlot {
                title,
                x_label: "layer i",
                y_label,
                curves: &curves,
            },
        )
        .map_err(|e| io(out_dir, e))?;
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
        dynamics,
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| io(out_dir, e))?;
    write_bytes(&out_dir.join("report.json"), &json)?;
    write_csv(
        &out_dir.join("alignment.csv"),
        &report
            .alignment
            .iter()
            .map(|p| AlignmentRow {
                region: region_label(p.region).to_string(),
                a: p.a.clone(),
                b: p.b.clone(),
                n: p.n,
                cka_biased: p.metrics.cka_biased,
                cka_unbiased: p.metrics.cka_unbiased,
                cknna: p.metrics.cknna,
                mutual_knn: p.metrics.mutual_knn,
                cknna_null_p95: p.null.as_ref().map(|n| n.cknna.p95),
                cka_unbiased_null_p95: p.null.as_ref().map(|n| n.cka_unbiased.p95),
                seeds_only: p.seeds_only,
            })
            .collect::<Vec<_>>(),
    )?;
    let md = markdown(&report);
    write_bytes(&out_dir.join("report.md"), md.as_bytes())?;
    write_bytes(&out_dir.join("report.html"), html(&md, out_dir).as_bytes())?;
    Ok(report)
}

#[derive(Serialize)]
struct AlignmentRow {
    region: String,
    a: String,
    b: String,
    n: usize,
    cka_biased: f64,
    cka_unbiased: f64,
    cknna: f64,
    mutual_knn: f64,
    cknna_null_p95: Option<f64>,
    cka_unbiased_null_p95: Option<f64>,
    seeds_only: bool,
}

fn region_label(region: Region) -> &'static str {
    match region {
        Region::Global => "global",
        Region::Tropics => "tropics",
        Region::NhMid => "nh-mid",
        Region::ShMid => "sh-mid",
    }
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::output::write_atomic(path, bytes).map_err(|e| io(path, e))
}

fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), ReportError> {
    let bytes = crate::output::csv_bytes(rows).map_err(|e| io(path, e))?;
    write_bytes(path, &bytes)
}

fn fmt(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "n/a".into()
    }
}

/// The report in words, one paragraph per hypothesis, with the nulls beside the figures.
pub fn markdown(r: &StudyReport) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Study `{}`\n", r.study);
    let _ = writeln!(md, "| run | status |\n|---|---|");
    for o in &r.runs {
        let status = match &o.error {
            None if o.skipped.is_empty() => "done".to_string(),
            None => format!("done (reused: {})", o.skipped.join(", ")),
            Some(e) => format!("**failed**: {e}"),
        };
        let _ = writeln!(md, "| {} | {} |", o.name, status.replace('|', "/"));
    }
    let ai: Vec<&ModelDynamics> = r.dynamics.iter().collect();
    let rmse = |model: &str, lead: i64| {
        r.scorecard
            .iter()
            .find(|s| s.model == model && s.variable == r.headline_channel && s.lead_hours == lead)
            .map(|s| s.rmse)
    };
    let _ = writeln!(md, "\n## Skill\n\n![rmse](rmse.png)\n");
    let _ = writeln!(
        md,
        "| model | RMSE 1 d | RMSE 3 d | RMSE 5 d |\n|---|---|---|---|"
    );
    let mut models: Vec<String> = Vec::new();
    for s in &r.scorecard {
        if !models.contains(&s.model) {
            models.push(s.model.clone());
        }
    }
    for m in &models {
        let cell = |lead| rmse(m, lead).map_or("n/a".into(), |v| format!("{v:.1}"));
        let _ = writeln!(md, "| {m} | {} | {} | {} |", cell(24), cell(72), cell(120));
    }
    for d in &ai {
        let beats: Vec<String> = [24, 72, 120]
            .iter()
            .filter_map(|&l| {
                Some((
                    l,
                    rmse(&d.model, l)?,
                    rmse(PERSISTENCE, l)?,
                    rmse(PHYSICS, l),
                ))
            })
            .map(|(l, m, p, phys)| {
                format!(
                    "{} d: {:+.0} % vs persistence{}",
                    l / 24,
                    100.0 * (m / p - 1.0),
                    phys.map_or(String::new(), |x| format!(
                        ", {:+.0} % vs physics",
                        100.0 * (m / x - 1.0)
                    ))
                )
            })
            .collect();
        let _ = writeln!(md, "\n- `{}` RMSE change: {}", d.model, beats.join("; "));
    }

    let _ = writeln!(
        md,
        "\n## H1: increments decay with depth\n\n![velocity](velocity.png)\n"
    );
    for d in &ai {
        let ci = d.decay_ci.map_or("no interval".into(), |[lo, hi]| {
            format!("row-bootstrap 95 % CI [{lo:.2}, {hi:.2}]")
        });
        let word = if d.decay_p < 0.05 && d.decay_rho < 0.0 {
            "decays"
        } else if d.decay_p < 0.05 {
            "grows"
        } else {
            "no significant trend"
        };
        let _ = writeln!(
            md,
            "- `{}`{}: Spearman ρ(|v_i|, i) = {} (layer-permutation p = {:.3}; {ci}): **{word}**; |v_last| / |v_0| = {}; straightness {}.",
            d.model,
            if d.control {
                " (control: no messages)"
            } else {
                ""
            },
            fmt(d.decay_rho),
            d.decay_p,
            d.last_over_first.map_or("n/a".into(), fmt),
            fmt(d.straightness)
        );
    }
    let decays = |d: &&&ModelDynamics| d.decay_p < 0.05 && d.decay_rho < 0.0;
    let (controls, interacting): (Vec<&ModelDynamics>, Vec<&ModelDynamics>) =
        ai.iter().partition(|d| d.control);
    let _ = writeln!(
        md,
        "\n{} of {} message-passing or attention models have increments that shrink with depth (layer-permutation \
         p < 0.05; the row bootstrap only shows how precisely each layer's mean is known, not training-seed spread).",
        interacting.iter().filter(decays).count(),
        interacting.len()
    );
    if !controls.is_empty() {
        let _ = writeln!(
            md,
            "The no-message control decays in {} of {} runs: {}",
            controls.iter().filter(decays).count(),
            controls.len(),
            if controls.iter().any(|d| decays(&d)) {
                "decay alone does not need interactions between nodes."
            } else {
                "where the others decay, the interactions are part of it."
            }
        );
    }

    let _ = writeln!(
        md,
        "\n## H2: the spectral centroid shifts with depth\n\n![centroid](centroid.png)\n"
    );
    for d in &ai {
        let _ = writeln!(
            md,
            "- `{}`: Spearman ρ(centroid, i) for X_i = {}, for v_i = {} (negative = larger scales deeper).",
            d.model,
            d.centroid_trend_x.map_or("n/a".into(), fmt),
            d.centroid_trend_v.map_or("n/a".into(), fmt)
        );
    }
    let _ = writeln!(
        md,
        "\nWith a handful of layers these rank correlations describe the curves; they are not tests."
    );

    let _ = writeln!(
        md,
        "\n## Gradient flow? Jacobian asymmetry by layer\n\nA = ‖J − Jᵀ‖_F / ‖J‖_F of each layer's increment at \
         one test state (0: the increment is locally the gradient of a scalar; √2 ≈ 1.41: J and Jᵀ uncorrelated; \
         2: a pure rotation).\n"
    );
    for d in &ai {
        let values: Vec<String> = d
            .jacobian_asymmetry
            .iter()
            .map(|a| format!("{a:.2}"))
            .collect();
        let _ = writeln!(
            md,
            "- `{}`: {}",
            d.model,
            if values.is_empty() {
                "not computed".to_string()
            } else {
                values.join(", ")
            }
        );
    }
    let _ = writeln!(
        md,
        "\n## H3: different models learn aligned latent spaces\n"
    );
    if r.alignment.is_empty() {
        let _ = writeln!(
            md,
            "No pair of recordings shared nodes and sample times: no alignment figure."
        );
    } else {
        let _ = writeln!(
            md,
            "Last processor layer, rows = (sample, node) pairs, k = 10. Null: one side's rows permuted; \
             a figure above the null's 95th percentile is more alignment than chance.\n\n\
             ![cknna](cknna_global.png)\n\n| region | X | Y | n | CKNNA (null p95) | CKA unbiased (null p95) | mutual kNN | seeds only |\n|---|---|---|---|---|---|---|---|"
        );
        for p in &r.alignment {
            let nul = |f: fn(&MetricSet<NullSummary>) -> f64| {
                p.null.as_ref().map_or("–".into(), |n| fmt(f(n)))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} |",
                region_label(p.region),
                p.a,
                p.b,
                p.n,
                fmt(p.metrics.cknna),
                nul(|n| n.cknna.p95),
                fmt(p.metrics.cka_unbiased),
                nul(|n| n.cka_unbiased.p95),
                fmt(p.metrics.mutual_knn),
                if p.seeds_only { "yes" } else { "" }
            );
        }
        let above = r
            .alignment
            .iter()
            .filter(|p| {
                p.null
                    .as_ref()
                    .is_some_and(|n| p.metrics.cknna > n.cknna.p95)
            })
            .count();
        let _ = writeln!(
            md,
            "\n{above} of {} ordered pairs have CKNNA above their null's 95th percentile. The seed reports \
             ≈ 0.95 between GraphCast versions and 0.5–0.8 between GraphCast and Aurora; CKA rises with width \
             and depth even for unrelated networks, which is why the nulls stand beside it.",
            r.alignment.len()
        );
    }

    let _ = writeln!(
        md,
        "\n## H4: AI models' errors correlate more with each other than with physics\n"
    );
    if r.error_models.is_empty() {
        let _ = writeln!(md, "Too few common forecast cases for a correlation.");
    } else {
        let _ = writeln!(
            md,
            "Pearson r of the global RMSE of `{}` at {} h over {} forecast cases, ordered by clustering:\n\n\
             ![error correlation](error_correlation.png)\n",
            r.headline_channel, r.headline_lead_hours, r.error_cases
        );
        match (r.mean_r_ai_ai, r.mean_r_ai_physics) {
            (Some(aa), Some(ap)) => {
                let verdict = if aa > ap {
                    "the AI models' errors correlate more with each other than with the physics model's"
                } else {
                    "the AI models' errors do **not** correlate more with each other than with physics"
                };
                let _ = writeln!(
                    md,
                    "Mean r among AI models {aa:.2}, between AI models and physics {ap:.2}: {verdict}. \
                     With {} cases, a difference in r of about {:.2} is within sampling noise (±2/√n).",
                    r.error_cases,
                    2.0 / (r.error_cases.max(1) as f64).sqrt()
                );
            }
            _ => {
                let _ = writeln!(
                    md,
                    "Not enough models (or no physics baseline) to compare mean correlations."
                );
            }
        }
    }
    md
}

/// A single-file HTML version of our own Markdown (headings, tables, lists, paragraphs) with the PNGs inlined.
pub fn html(md: &str, image_dir: &Path) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    // `**bold**` is the only inline markup our reports use: odd-numbered pieces between markers are bold.
    let inline = |s: &str| -> String {
        escape(s)
            .split("**")
            .enumerate()
            .map(|(k, piece)| {
                if k % 2 == 1 {
                    format!("<b>{piece}</b>")
                } else {
                    piece.to_string()
                }
            })
            .collect()
    };
    let mut body = String::new();
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                body.push_str("<table>");
                in_table = true;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            body.push_str("<tr>");
            for c in cells {
                let _ = write!(body, "<td>{}</td>", inline(c.trim()));
            }
            body.push_str("</tr>\n");
            continue;
        }
        if in_table {
            body.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(body, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(body, "<h1>{}</h1>", inline(h));
        } else if let Some(item) = line.strip_prefix("- ") {
            let _ = writeln!(body, "<li>{}</li>", inline(item));
        } else if let (Some(start), true) = (line.find("]("), line.starts_with("![")) {
            let file = line[start + 2..].trim_end_matches(')');
            let data = std::fs::read(image_dir.join(file)).unwrap_or_default();
            let _ = writeln!(
                body,
                "<img alt=\"{file}\" style=\"max-width:100%\" src=\"data:image/png;base64,{}\">",
                base64::engine::general_purpose::STANDARD.encode(data)
            );
        } else if !line.trim().is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>WeatherLens study</title><style>\
         body{{font-family:sans-serif;max-width:60em;margin:auto}}td{{border:1px solid #ccc;padding:2px 6px}}\
         table{{border-collapse:collapse}}</style></head><body>{body}</body></html>"
    )
}

/// Read `report.json` back (tests compare its figures with the per-run files).
pub fn read_report(path: &Path) -> Result<serde_json::Value, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| io(path, e))
}

/// Map of run name -> run folder, for the CLI's summary.
pub fn run_dirs(runs: &[PlannedRun]) -> BTreeMap<String, PathBuf> {
    runs.iter()
        .map(|r| (r.name.clone(), r.dir.clone()))
        .collect()
}

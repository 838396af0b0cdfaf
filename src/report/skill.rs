//! The skill of a model: RMSE-by-lead plots of a scorecard and the Markdown that states in words where it
//! beats persistence and the physics baseline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use weatherlens_training::evaluate::{CLIMATOLOGY, Evaluation, PERSISTENCE, PHYSICS, ScoreRow};

use super::plot::{Curve, LinePlot, PlotError, line_plot};

/// One RMSE-vs-lead plot per channel (`rmse_<channel>.png/.svg`), every model and baseline on it.
pub fn scorecard_plots(evaluation: &Evaluation, out_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut channels: Vec<String> = Vec::new();
    for row in &evaluation.scores {
        if !channels.contains(&row.variable) {
            channels.push(row.variable.clone());
        }
    }
    channels
        .iter()
        .map(|channel| {
            rmse_plot(
                &evaluation.scores,
                channel,
                &out_dir.join(format!("rmse_{channel}")),
            )
        })
        .collect()
}

/// RMSE against lead time (days) of every model in `scores` for `channel`, written to `stem`.png/.svg.
pub fn rmse_plot(scores: &[ScoreRow], channel: &str, stem: &Path) -> Result<PathBuf, PlotError> {
    let mut models: Vec<&str> = Vec::new();
    for row in scores {
        if !models.contains(&row.model.as_str()) {
            models.push(&row.model);
        }
    }
    let series: Vec<Vec<(f64, f64)>> = models
        .iter()
        .map(|m| {
            scores
                .iter()
                .filter(|r| r.model == *m && r.variable == channel)
                .map(|r| (r.lead_hours as f64 / 24.0, r.rmse))
                .collect()
        })
        .collect();
    let curves: Vec<Curve> = models
        .iter()
        .zip(&series)
        .map(|(name, points)| Curve { name, points })
        .collect();
    let files = line_plot(
        stem,
        &LinePlot {
            title: &format!("{channel}: latitude-weighted RMSE"),
            x_label: "lead time (days)",
            y_label: "RMSE",
            curves: &curves,
            integer_x: false,
        },
    )?;
    Ok(files.png)
}

/// How the model's RMSE compares with a baseline's at every lead: (lead_hours, model, baseline).
pub fn versus(evaluation: &Evaluation, channel: &str, baseline: &str) -> Vec<(i64, f64, f64)> {
    evaluation
        .lead_hours()
        .into_iter()
        .filter_map(|lead| {
            let model = evaluation.rmse(&evaluation.model, channel, lead)?;
            let other = evaluation.rmse(baseline, channel, lead)?;
            Some((lead, model, other))
        })
        .collect()
}

/// The skill section of a report: a table of RMSE by lead for `channel` and sentences on whether the model
/// beats persistence at every lead and where it stands against the physics baseline.
pub fn skill_markdown(evaluation: &Evaluation, channel: &str) -> String {
    let mut md = String::new();
    let leads = evaluation.lead_hours();
    let models = evaluation.models();
    let n_cases = evaluation
        .scores
        .iter()
        .find(|r| r.variable == channel)
        .map_or(0, |r| r.n_cases);
    let _ = writeln!(
        md,
        "Latitude-weighted RMSE of `{channel}` over {n_cases} forecast cases of the test period \
         (mean of per-case RMSE, as WeatherBench), by lead time:\n"
    );
    let _ = write!(md, "| model |");
    for lead in &leads {
        let _ = write!(md, " {lead} h |");
    }
    let _ = write!(md, "\n|---|");
    for _ in &leads {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for model in &models {
        let _ = write!(md, "| {model} |");
        for &lead in &leads {
            let value = evaluation.rmse(model, channel, lead).unwrap_or(f64::NAN);
            let _ = write!(md, " {value:.1} |");
        }
        md.push('\n');
    }
    md.push('\n');
    let persistence = versus(evaluation, channel, PERSISTENCE);
    if !persistence.is_empty() {
        // RMSE relative to persistence at each lead, in percent (negative = better than persistence).
        let change: Vec<(i64, f64)> = persistence
            .iter()
            .map(|(l, m, p)| (*l, 100.0 * (m / p - 1.0)))
            .collect();
        let lost: Vec<String> = change
            .iter()
            .filter(|(_, c)| *c >= 0.0)
            .map(|(l, _)| format!("{l} h"))
            .collect();
        let summary: Vec<String> = change
            .iter()
            .filter(|(l, _)| l % 24 == 0 || *l == change[0].0)
            .map(|(l, c)| {
                // Whole percent, unless that would round a loss or a gain to "+0 %".
                if c.abs() < 0.5 {
                    format!("{l} h: {c:+.2} %")
                } else {
                    format!("{l} h: {c:+.0} %")
                }
            })
            .collect();
        if lost.is_empty() {
            let _ = writeln!(
                md,
                "**The model beats persistence at every lead time** ({} of {}). RMSE relative to persistence: {}.",
                change.len(),
                change.len(),
                summary.join(", ")
            );
        } else {
            let _ = writeln!(
                md,
                "**The model does not beat persistence at every lead**: it loses at {}. RMSE relative to \
                 persistence: {}.",
                lost.join(", "),
                summary.join(", ")
            );
        }
    }
    let physics = versus(evaluation, channel, PHYSICS);
    if !physics.is_empty() {
        let better: Vec<String> = physics
            .iter()
            .filter(|(_, m, p)| m < p)
            .map(|(l, _, _)| format!("{l} h"))
            .collect();
        let ratio: Vec<String> = physics
            .iter()
            .filter(|(l, _, _)| l % 24 == 0)
            .map(|(l, m, p)| format!("{} d: {:.2}", l / 24, m / p))
            .collect();
        let _ = writeln!(
            md,
            "\nAgainst the coarse physics model (the \"NWP\" baseline) the RMSE ratio model/physics is {}; \
             the model is better at {}.",
            ratio.join(", "),
            if better.is_empty() {
                "no lead time".to_string()
            } else {
                better.join(", ")
            }
        );
    }
    if models.iter().any(|m| m == CLIMATOLOGY) {
        let _ = writeln!(
            md,
            "\nClimatology here is the training period's time mean at each grid point (not a day-of-year \
             climatology), so its RMSE is a ceiling for useful skill."
        );
    }
    md
}

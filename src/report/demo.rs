//! The demo's report (`runs/demo/report.md`): the demo model's skill and the study's headline figures.

use std::fmt::Write as _;
use std::path::Path;

use weatherlens_probes::alignment::ExcessVerdict;
use weatherlens_probes::analysis::velocity_words;
use weatherlens_probes::inputs::Region;
use weatherlens_probes::local_alignment::LocalGroup;
use weatherlens_training::config::RunConfig;
use weatherlens_training::evaluate::Evaluation;

use super::skill::skill_markdown;
use super::study::StudyReport;

/// What the demo report says about its run.
pub struct DemoReport<'a> {
    /// The demo model's run config and where it came from.
    pub base: &'a RunConfig,
    pub base_path: &'a Path,
    /// The demo model's scorecard.
    pub evaluation: &'a Evaluation,
    pub study: &'a StudyReport,
    pub study_dir: &'a Path,
    pub data_seconds: f64,
    pub total_seconds: f64,
}

/// The demo report in Markdown.
pub fn demo_markdown(r: &DemoReport) -> String {
    let (base, base_path, study_report, study_dir) = (r.base, r.base_path, r.study, r.study_dir);
    let Some(demo_run) = study_report.runs.first() else {
        return String::from("# WeatherLens demo\n\nThe study has no runs.\n");
    };
    let mut md = String::new();
    let _ = writeln!(md, "# WeatherLens demo\n");
    let _ = writeln!(
        md,
        "Demo model `{}` (`{}`): {:?} processor, {} layers, latent {}, mesh level {}, {} training steps on the \
         built-in shallow-water atmosphere (`{}`). Its files: `{}`.\n",
        demo_run.name,
        base_path.display(),
        base.model.processor,
        base.model.num_layers,
        base.model.latent_size,
        base.model.mesh_level,
        base.training.steps,
        base.data.path.display(),
        demo_run.dir.display()
    );
    let _ = writeln!(md, "## Skill of the demo model\n");
    md.push_str(&skill_markdown(
        r.evaluation,
        &base.evaluation.headline_channel,
    ));
    let _ = writeln!(
        md,
        "\n## The study\n\nThe full comparison of {} models (skill, velocity decay, spectral centroid, alignment \
         with nulls, error correlation) is in `{}/report.md` (and `report.html`, one file with the plots).\n",
        study_report.runs.len(),
        study_dir.display()
    );
    for d in &study_report.dynamics {
        let _ = writeln!(
            md,
            "- `{}`: decay ρ = {:.2}{}, |v_last| / |v_0| = {}: {}; centroid trend of v_i ρ = {}",
            d.model,
            d.decay_rho,
            d.decay_ci
                .map_or(String::new(), |[lo, hi]| format!(" [{lo:.2}, {hi:.2}]")),
            d.last_over_first
                .map_or("n/a".into(), |r| format!("{r:.2}")),
            velocity_words(d.verdict),
            d.centroid_trend_v
                .map_or("n/a".into(), |t| format!("{t:.2}"))
        );
    }
    let two = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    let order = |name: &str| study_report.runs.iter().position(|r| r.name == name);
    for p in study_report
        .alignment
        .iter()
        .filter(|p| p.region == Region::Global && order(&p.a) < order(&p.b))
    {
        let excess = p.excess.as_ref().map(|e| &e.cknna);
        let _ = writeln!(
            md,
            "- pooled CKNNA(`{}`, `{}`) at the last layer = {:.2}; controls: permutation null p95 {}, untrained {}, \
             inputs {} / {}; excess {}{}: {}",
            p.a,
            p.b,
            p.metrics.cknna,
            two(p.null.as_ref().map(|n| n.cknna.p95)),
            two(p.controls.untrained.as_ref().map(|m| m.cknna)),
            two(p.controls.input_x.as_ref().map(|m| m.cknna)),
            two(p.controls.input_y.as_ref().map(|m| m.cknna)),
            two(excess.map(|e| e.value)),
            excess
                .and_then(|e| e.ci)
                .map_or(String::new(), |[lo, hi]| format!(" [{lo:.2}, {hi:.2}]")),
            excess.map_or("no controls", |e| excess_words(e.verdict))
        );
    }
    if let Some(local) = &study_report.local_alignment {
        for pair in &local.pairs {
            if let Some(s) = pair
                .summaries
                .iter()
                .find(|s| s.group == LocalGroup::Global)
            {
                let m = &s.metrics.cknna;
                let _ = writeln!(
                    md,
                    "- per-location CKNNA(`{}`, `{}`) (rows = {} times at each of {} nodes), mean {:.2}; untrained {}, \
                     inputs {} / {}; excess {}{}: {}",
                    pair.x,
                    pair.y,
                    s.times,
                    s.locations,
                    m.mean,
                    two(m.untrained),
                    two(m.input_x),
                    two(m.input_y),
                    two(m.excess),
                    m.excess_ci
                        .map_or(String::new(), |[lo, hi]| format!(" [{lo:.2}, {hi:.2}]")),
                    m.verdict.map_or("no controls", excess_words)
                );
            }
        }
    }
    if let (Some(aa), Some(ap)) = (study_report.mean_r_ai_ai, study_report.mean_r_ai_physics) {
        let _ = writeln!(
            md,
            "- day-{} error correlation: mean r among AI models {aa:.2}, AI vs physics {ap:.2} ({} cases)",
            study_report.headline_lead_hours / 24,
            study_report.error_cases
        );
    }
    let _ = writeln!(
        md,
        "\n## Time\n\ndata {:.0} s, study {:.0} s, total {:.0} s.",
        r.data_seconds,
        r.total_seconds - r.data_seconds,
        r.total_seconds
    );
    md
}

fn excess_words(verdict: ExcessVerdict) -> &'static str {
    match verdict {
        ExcessVerdict::AboveControls => "above controls",
        ExcessVerdict::NotAboveControls => "not above controls",
        ExcessVerdict::Undetermined => "undetermined",
    }
}

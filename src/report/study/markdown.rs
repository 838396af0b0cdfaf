//! A study's report in words: one section per hypothesis, the controls beside every figure.

use std::fmt::Write as _;

use weatherlens_probes::alignment::{MetricSet, NullSummary};
use weatherlens_training::evaluate::{PERSISTENCE, PHYSICS};

use super::{ModelDynamics, StudyReport, region_label};

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
            None => {
                let reused: Vec<String> = o.skipped.iter().map(|s| s.to_string()).collect();
                format!("done (reused: {})", reused.join(", "))
            }
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
            "- `{}`{}: Spearman ρ(|v_i|, i) = {} (layer-permutation p = {}; {ci}): **{word}**; |v_last| / |v_0| = {}; straightness {}.",
            d.model,
            if d.control {
                " (control: no messages)"
            } else {
                ""
            },
            fmt(d.decay_rho),
            if d.decay_p.is_finite() {
                format!("{:.3}", d.decay_p)
            } else {
                "n/a".to_string()
            },
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

//! A study's report in words: one section per hypothesis, the controls beside every figure.

use std::fmt::Write as _;

use weatherlens_probes::alignment::{Excess, ExcessVerdict, MetricSet, NullSummary};
use weatherlens_probes::analysis::{centroid_words, velocity_words};
use weatherlens_probes::local_alignment::LocalSummary;
use weatherlens_probes::trend::{Direction, SIGNIFICANCE, SIZE_BAND};
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
        let _ = writeln!(
            md,
            "- `{}`{}: Spearman ρ(|v_i|, i) = {} (layer-permutation p = {:.3}; {ci}); |v_last| / |v_0| = {}: **{}** \
             ({}); straightness {}.",
            d.model,
            if d.control {
                " (control: no messages)"
            } else {
                ""
            },
            fmt(d.decay_rho),
            d.decay_p,
            d.last_over_first.map_or("n/a".into(), fmt),
            velocity_words(d.verdict),
            d.verdict_reason,
            fmt(d.straightness)
        );
    }
    let _ = writeln!(
        md,
        "\nA verdict needs both a layer-permutation p < {SIGNIFICANCE} and |v_last| / |v_0| outside [{}, {}]; \
         increments of equal norm by construction (a normalisation at the end of each layer), all-zero increments \
         and stacks too short for the test are named, not judged.",
        SIZE_BAND[0], SIZE_BAND[1]
    );
    let decays = |d: &&&ModelDynamics| d.verdict == Direction::Falls;
    let (controls, interacting): (Vec<&ModelDynamics>, Vec<&ModelDynamics>) =
        ai.iter().partition(|d| d.control);
    let _ = writeln!(
        md,
        "\n{} of {} message-passing or attention models have increments that shrink with depth (significant and \
         large; the row bootstrap only shows how precisely each layer's mean is known, not training-seed spread).",
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
            "- `{}`: Spearman ρ(centroid, i) for X_i = {}, for v_i = {} (negative = larger scales deeper); the \
             centroid of v_i {}.",
            d.model,
            d.centroid_trend_x.map_or("n/a".into(), fmt),
            d.centroid_trend_v.map_or("n/a".into(), fmt),
            d.centroid_verdict_v
                .map_or("was not computed", centroid_words)
        );
    }
    let _ = writeln!(
        md,
        "\nThe same thresholds apply (p < {SIGNIFICANCE} over the layers and last / first outside [{}, {}]).",
        SIZE_BAND[0], SIZE_BAND[1]
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
    alignment_markdown(&mut md, r);

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

fn verdict_words(verdict: ExcessVerdict) -> &'static str {
    match verdict {
        ExcessVerdict::AboveControls => "**above controls**",
        ExcessVerdict::NotAboveControls => "**not above controls**",
        ExcessVerdict::Undetermined => "undetermined",
    }
}

fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or(String::new(), |[lo, hi]| {
        format!(" [{}, {}]", fmt(lo), fmt(hi))
    })
}

/// "0.09 [0.05, 0.12], not above controls".
fn excess_cell(excess: Option<&Excess>) -> String {
    excess.map_or("–".into(), |e| {
        format!(
            "{}{} ({}) {}",
            fmt(e.value),
            interval(e.ci),
            e.largest,
            verdict_words(e.verdict)
        )
    })
}

/// "0.09 / 0.12 / 0.30 / 0.28": the figure, then the untrained control and the two input baselines.
fn with_controls(
    value: f64,
    untrained: Option<f64>,
    input_x: Option<f64>,
    input_y: Option<f64>,
) -> String {
    let opt = |v: Option<f64>| v.map_or("–".to_string(), fmt);
    format!(
        "{} | {} | {} | {}",
        fmt(value),
        opt(untrained),
        opt(input_x),
        opt(input_y)
    )
}

/// H3: pooled and per-location alignment, each beside the permutation null, the untrained control and the input
/// baselines, with the excess over the controls.
fn alignment_markdown(md: &mut String, r: &StudyReport) {
    let settings = &r.alignment_settings;
    let _ = writeln!(
        md,
        "\n## H3: different models learn aligned latent spaces\n"
    );
    for note in &r.alignment_notes {
        let _ = writeln!(md, "- note: {note}");
    }
    let _ = writeln!(
        md,
        "Every figure stands beside three controls: the **permutation null** (one side's rows shuffled: is there any \
         pairing?), the **untrained control** (the same two architectures at initialisation, on the same inputs and \
         rows) and the **input baselines** (each model against its own input fields at the same rows). Latents of any \
         network mirror its inputs, and untrained networks fed the same inputs look aligned, so alignment means \
         something only above these: **excess** = metric(X, Y) − max(untrained, input X, input Y), with a 95 % \
         interval; \"not above controls\" when it includes 0. Last processor layer, k = {}.\n",
        settings.k
    );
    if r.alignment.is_empty() {
        let _ = writeln!(md, "No pooled alignment figure.");
    } else {
        let first = &r.alignment[0];
        let _ = writeln!(
            md,
            "### Pooled: rows = (sample, node) pairs\n\n{} rows per comparison ({} available; a seeded subsample \
             beyond {}), intervals over subsamples of whole sample times.\n\n![cknna](cknna_global.png)\n",
            first.n, first.rows_total, settings.pooled_rows
        );
        for (metric, pick, pick_null, pick_excess) in [
            (
                "CKNNA",
                (|m: &MetricSet<f64>| m.cknna) as fn(&MetricSet<f64>) -> f64,
                (|n: &MetricSet<NullSummary>| n.cknna.p95) as fn(&MetricSet<NullSummary>) -> f64,
                (|e: &MetricSet<Excess>| e.cknna.clone()) as fn(&MetricSet<Excess>) -> Excess,
            ),
            (
                "CKA (unbiased)",
                |m: &MetricSet<f64>| m.cka_unbiased,
                |n: &MetricSet<NullSummary>| n.cka_unbiased.p95,
                |e: &MetricSet<Excess>| e.cka_unbiased.clone(),
            ),
        ] {
            let _ = writeln!(
                md,
                "{metric}:\n\n| region | X | Y | {metric} | untrained | input X | input Y | null p95 | excess [95 % CI] (largest control) | seeds only |\n|---|---|---|---|---|---|---|---|---|---|"
            );
            for p in &r.alignment {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    region_label(p.region),
                    p.a,
                    p.b,
                    with_controls(
                        pick(&p.metrics),
                        p.controls.untrained.as_ref().map(pick),
                        p.controls.input_x.as_ref().map(pick),
                        p.controls.input_y.as_ref().map(pick)
                    ),
                    p.null.as_ref().map_or("–".into(), |n| fmt(pick_null(n))),
                    excess_cell(p.excess.as_ref().map(pick_excess).as_ref()),
                    if p.seeds_only { "yes" } else { "" }
                );
            }
            let _ = writeln!(md);
        }
        let warned: Vec<&str> = r
            .alignment
            .iter()
            .flat_map(|p| p.warnings.iter().map(String::as_str))
            .collect();
        if let Some(w) = warned.first() {
            let _ = writeln!(md, "- warning ({} figures): {w}", warned.len());
        }
        let above = |pick: fn(&MetricSet<Excess>) -> ExcessVerdict| {
            r.alignment
                .iter()
                .filter(|p| {
                    p.excess
                        .as_ref()
                        .is_some_and(|e| pick(e) == ExcessVerdict::AboveControls)
                })
                .count()
        };
        let over_null = r
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
            "{over_null} of {} pooled figures have CKNNA above the permutation null's 95th percentile, but only {} \
             are above all controls by CKNNA and {} by unbiased CKA. The seed reports ≈ 0.95 between GraphCast \
             versions and 0.5–0.8 between GraphCast and Aurora; untrained AuroraSmall seeds already give 0.76–0.81 \
             (measured on exported AuroraSmall latents, rows = 128 times at one place, k = 10), which is why the controls stand beside every figure.\n",
            r.alignment.len(),
            above(|e| e.cknna.verdict),
            above(|e| e.cka_unbiased.verdict),
        );
    }
    match &r.local_alignment {
        None => {
            let _ = writeln!(md, "No per-location alignment.");
        }
        Some(local) => {
            let _ = writeln!(
                md,
                "### Per location: rows = the {} sample times at each of {} nodes (the seed's protocol)\n\n\
                 Mean over the locations of a group of each figure and control, and of the excess at each location; \
                 the interval is a bootstrap over locations. {}\n",
                local.times,
                local.points,
                if local.seasons {
                    "Seasons: winter mid-latitudes = NH in DJF and SH in JJA, summer the other way round."
                } else {
                    "No seasonal groups: the built-in atmosphere has no seasonal cycle (regions only)."
                }
            );
            for pair in &local.pairs {
                let stem = format!("cknna_map_{}_{}", file_part(&pair.x), file_part(&pair.y));
                let _ = writeln!(
                    md,
                    "`{}` vs `{}` (per-location figures in `{}.csv`{}):\n\n![{stem}]({stem}.png)\n\n| group | locations | times | CKNNA | untrained | input X | input Y | excess [95 % CI] | CKA | untrained | input X | input Y | excess [95 % CI] |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|",
                    pair.x,
                    pair.y,
                    stem.replace("cknna_map", "locations"),
                    match pair.summaries.first().map(|g| g.metrics.cknna.excluded) {
                        Some(excluded) if excluded > 0 => format!(
                            "; {excluded} of {} locations left out of the CKNNA columns: CKNNA of the pair or of a \
                             control outside [−1, 1] there",
                            pair.summaries[0].locations
                        ),
                        _ => String::new(),
                    }
                );
                for s in &pair.summaries {
                    let cell = |m: &LocalSummary| {
                        format!(
                            "{} | {}{} {}",
                            with_controls(m.mean, m.untrained, m.input_x, m.input_y),
                            m.excess.map_or("–".into(), fmt),
                            interval(m.excess_ci),
                            m.verdict.map_or("", verdict_words)
                        )
                    };
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} |",
                        s.group.label(),
                        s.locations,
                        s.times,
                        cell(&s.metrics.cknna),
                        cell(&s.metrics.cka_unbiased)
                    );
                }
                let _ = writeln!(md);
            }
            if local.times < 5 * local.k {
                let _ = writeln!(
                    md,
                    "- warning: {} times per location < 5k = {}: the kNN figures are unreliable and get no verdict.",
                    local.times,
                    5 * local.k
                );
            }
        }
    }
}

/// A run name as part of a file name.
pub(crate) fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

//! `weatherlens errors FILE...`: the correlation of per-case forecast errors between models (the seed's first
//! figure), from the `errors.csv` files that `evaluate` writes.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use weatherlens::report::plot::{HeatMap, heat_map};
use weatherlens_probes::error_correlation::{CaseError, error_correlation, read_case_errors};

#[derive(Debug, Args)]
pub struct ErrorsArgs {
    /// `errors.csv` files (a model appearing in several files is taken from the first).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, default_value = "z500")]
    pub variable: String,
    #[arg(long, default_value_t = 120.0)]
    pub lead_hours: f64,
    /// Heat-map path stem (writes .png and .svg).
    #[arg(long, default_value = "error_correlation")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ErrorsArgs) -> Result<()> {
    let mut cases: Vec<CaseError> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for file in &args.files {
        let rows = read_case_errors(file, &args.variable, args.lead_hours)?;
        let fresh: Vec<String> = rows
            .iter()
            .map(|c| c.model.clone())
            .filter(|m| !seen.contains(m))
            .collect();
        cases.extend(rows.into_iter().filter(|c| fresh.contains(&c.model)));
        for m in fresh {
            if !seen.contains(&m) {
                seen.push(m);
            }
        }
    }
    if seen.len() < 2 {
        bail!(
            "need at least two models with {} at {} h",
            args.variable,
            args.lead_hours
        );
    }
    let result = error_correlation(&cases)?;
    let m = result.models.len();
    let ordered: Vec<String> = result
        .order
        .iter()
        .map(|&i| result.models[i].clone())
        .collect();
    let values: Vec<f64> = result
        .order
        .iter()
        .flat_map(|&i| result.order.iter().map(move |&j| (i, j)))
        .map(|(i, j)| result.correlation[i * m + j])
        .collect();
    heat_map(
        &args.out,
        &HeatMap {
            title: &format!(
                "{} RMSE at {} h: correlation over {} cases",
                args.variable,
                args.lead_hours,
                result.init_times.len()
            ),
            row_labels: &ordered,
            column_labels: &ordered,
            values: &values,
            value_range: Some((-1.0, 1.0)),
        },
    )?;
    if args.json {
        super::print_json(&result)
    } else {
        println!(
            "{} cases; models in clustered order:",
            result.init_times.len()
        );
        for (k, name) in ordered.iter().enumerate() {
            let row: Vec<String> = (0..m)
                .map(|l| format!("{:+.2}", values[k * m + l]))
                .collect();
            println!("{name:>14}: {}", row.join(" "));
        }
        Ok(())
    }
}

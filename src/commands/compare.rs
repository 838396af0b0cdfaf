//! `weatherlens compare A B`: CKA, CKNNA and mutual-kNN alignment between two representations, with a
//! permutation null and a subsampling interval.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use weatherlens::report::plot::{HeatMap, heat_map};
use weatherlens_probes::alignment::{CompareOptions, Preprocessing, Representation, compare};
use weatherlens_probes::inputs::{Region, Rows, load_matrix};
use weatherlens_probes::layer_alignment::layer_cka;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// X: a recording folder or a safetensors file.
    pub a: PathBuf,
    /// Y: a recording folder or a safetensors file (CKNNA depends on the order).
    pub b: PathBuf,
    /// Tensor name in both (e.g. `processor.7.resid_post`).
    #[arg(long)]
    pub tensor: Option<String>,
    #[arg(long)]
    pub tensor_a: Option<String>,
    #[arg(long)]
    pub tensor_b: Option<String>,
    /// Neighbours for mutual kNN and CKNNA.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Permutation-null draws (0 = no null).
    #[arg(long, default_value_t = 100)]
    pub nulls: usize,
    /// Subsampling-interval draws (0 = no interval).
    #[arg(long, default_value_t = 50)]
    pub ci_draws: usize,
    /// Keep one sample (time) of [samples, nodes, latent] tensors: rows are nodes.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Keep one node: rows are times.
    #[arg(long)]
    pub node: Option<usize>,
    /// Keep nodes of a latitude band (recordings only).
    #[arg(long, value_enum)]
    pub region: Option<RegionArg>,
    /// Clip outliers and L2-normalise rows first (the Platonic-representation pipeline).
    #[arg(long)]
    pub platonic_preprocessing: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Instead of one tensor: unbiased CKA between every recorded layer of A and every layer of B (recording
    /// folders; pass one folder twice for one model), with a heat map `<out>.png/.svg`.
    #[arg(long)]
    pub layers: bool,
    /// Heat-map path stem for `--layers` (default: A/layer_cka).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegionArg {
    Global,
    Tropics,
    NhMid,
    ShMid,
}

impl From<RegionArg> for Region {
    fn from(r: RegionArg) -> Self {
        match r {
            RegionArg::Global => Region::Global,
            RegionArg::Tropics => Region::Tropics,
            RegionArg::NhMid => Region::NhMid,
            RegionArg::ShMid => Region::ShMid,
        }
    }
}

pub fn run(args: CompareArgs) -> Result<()> {
    let rows = Rows {
        sample: args.sample,
        node: args.node,
        region: args.region.map(Region::from),
    };
    if args.layers {
        let stem = args.out.clone().unwrap_or_else(|| args.a.join("layer_cka"));
        let result = layer_cka(&args.a, &args.b, rows)?;
        let label = |side: &str, layers: &[usize]| -> Vec<String> {
            layers.iter().map(|l| format!("{side} {l}")).collect()
        };
        heat_map(
            &stem,
            &HeatMap {
                title: "unbiased CKA between processor layers (X_{i+1})",
                row_labels: &label("A", &result.layers_a),
                column_labels: &label("B", &result.layers_b),
                values: &result.cka,
                value_range: Some((0.0, 1.0)),
            },
        )?;
        if args.json {
            return super::print_json(&result);
        }
        for (i, la) in result.layers_a.iter().enumerate() {
            let row: Vec<String> = (0..result.layers_b.len())
                .map(|j| format!("{:.3}", result.cka[i * result.layers_b.len() + j]))
                .collect();
            println!("A layer {la:>2}: {}", row.join(" "));
        }
        return Ok(());
    }
    let (Some(name_a), Some(name_b)) = (
        args.tensor_a.clone().or(args.tensor.clone()),
        args.tensor_b.clone().or(args.tensor.clone()),
    ) else {
        bail!("name the tensor with --tensor (or --tensor-a and --tensor-b)");
    };
    let x = load_matrix(&args.a, &name_a, rows)?;
    let y = load_matrix(&args.b, &name_b, rows)?;
    if x.rows != y.rows {
        bail!(
            "{} has {} samples but {} has {}: compare needs the same samples in the same order",
            x.source,
            x.rows,
            y.source,
            y.rows
        );
    }
    let options = CompareOptions {
        k: args.k,
        null_draws: args.nulls,
        ci_draws: args.ci_draws,
        seed: args.seed,
        preprocessing: if args.platonic_preprocessing {
            Preprocessing::ClipAndNormalise {
                quantile: weatherlens_probes::alignment::PLATONIC_CLIP_QUANTILE,
            }
        } else {
            Preprocessing::None
        },
        ..CompareOptions::default()
    };
    let report = compare(
        &Representation::new(&x.source, &x.data, x.rows, x.features)?,
        &Representation::new(&y.source, &y.data, y.rows, y.features)?,
        &options,
    )?;
    if args.json {
        super::print_json(&report)
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(())
    }
}

//! `weatherlens compare A B`: CKA, CKNNA and mutual-kNN alignment between two representations, with a
//! permutation null and a subsampling interval, and for recordings (folders or plain recording files of any
//! model) the untrained control, the input baselines and the excess over them, pooled or per location.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use weatherlens::report::plot::{HeatMap, heat_map};
use weatherlens::stages::compare::{
    CompareInputs, RowSelection, compare_per_location, compare_recordings, default_out,
    is_recording, read_points,
};
use weatherlens_probes::alignment::{CompareOptions, Preprocessing, Representation, compare};
use weatherlens_probes::inputs::{Region, Rows, load_matrix};
use weatherlens_probes::layer_alignment::{LayerRows, layer_cka};
use weatherlens_probes::pairing::DEFAULT_MAX_ROWS;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// X: a recording (folder or plain recording file) or any safetensors file.
    pub a: PathBuf,
    /// Y: a recording (folder or plain recording file) or any safetensors file (CKNNA depends on the order).
    pub b: PathBuf,
    /// Tensor name in both (e.g. `processor.7.resid_post`; for recordings a missing increment or output state
    /// is derived, and the default is the last processor layer's output).
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
    /// Keep one sample (time) of [samples, nodes, latent] tensors: rows are nodes. For recordings: A's sample,
    /// and B's sample at the same time.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Keep one node: rows are times. For recordings: A's node (or the N-th `--points` point), and B's node
    /// nearest to it (the distance is reported).
    #[arg(long)]
    pub node: Option<usize>,
    /// Keep nodes of a latitude band (recordings only).
    #[arg(long, value_enum)]
    pub region: Option<RegionArg>,
    /// The same architecture as A at initialisation, on the same inputs (a recording): the untrained control.
    #[arg(long)]
    pub untrained_a: Option<PathBuf>,
    /// The same architecture as B at initialisation, on the same inputs.
    #[arg(long)]
    pub untrained_b: Option<PathBuf>,
    /// Common points as a CSV file with `lat` and `lon` columns (degrees); default: A's nodes. Each recording
    /// uses its node nearest to each point.
    #[arg(long)]
    pub points: Option<PathBuf>,
    /// Alignment at every common point with rows = the sample times there (the seed's protocol), with
    /// summaries by region; writes CSVs and a map into --out.
    #[arg(long)]
    pub per_location: bool,
    /// With --per-location: summaries by season too (winter/summer mid-latitudes; needs sample times).
    #[arg(long)]
    pub seasons: bool,
    /// Rows read for a pooled comparison of recordings: a seeded subsample beyond (0 = every row).
    #[arg(long, default_value_t = DEFAULT_MAX_ROWS)]
    pub max_rows: usize,
    /// Clip outliers and L2-normalise rows first (the Platonic-representation pipeline).
    #[arg(long)]
    pub platonic_preprocessing: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Instead of one tensor: unbiased CKA between every recorded layer's output of A and of B (recordings;
    /// pass one twice for one model), with a heat map `<out>.png/.svg`.
    #[arg(long)]
    pub layers: bool,
    /// Heat-map path stem for `--layers` (default: A/layer_cka); output folder for `--per-location` (default:
    /// compare_<A>_<B> beside A).
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
    for path in [&args.a, &args.b]
        .into_iter()
        .chain(&args.untrained_a)
        .chain(&args.untrained_b)
    {
        if !path.exists() {
            bail!("{}: no such file or folder", path.display());
        }
    }
    let rows = Rows {
        sample: args.sample,
        node: args.node,
        region: args.region.map(Region::from),
    };
    if args.layers {
        let stem = args.out.clone().unwrap_or_else(|| {
            if args.a.is_dir() {
                args.a.join("layer_cka")
            } else {
                args.a.with_extension("layer_cka")
            }
        });
        let result = layer_cka(
            &args.a,
            &args.b,
            LayerRows {
                sample: args.sample,
                node: args.node,
                region: args.region.map(Region::from),
                max_rows: args.max_rows,
                seed: args.seed,
            },
        )?;
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
    let tensor_a = args.tensor_a.clone().or(args.tensor.clone());
    let tensor_b = args.tensor_b.clone().or(args.tensor.clone());
    if is_recording(&args.a) && is_recording(&args.b) {
        let inputs = CompareInputs {
            a: args.a.clone(),
            b: args.b.clone(),
            tensor_a,
            tensor_b,
            untrained_a: args.untrained_a.clone(),
            untrained_b: args.untrained_b.clone(),
        };
        let selection = RowSelection {
            points: args.points.as_deref().map(read_points).transpose()?,
            node: args.node,
            sample: args.sample,
            region: args.region.map(Region::from),
            max_rows: args.max_rows,
        };
        if args.per_location {
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| default_out(&args.a, &args.b));
            let result = compare_per_location(&inputs, &selection, args.seasons, &options, &out)?;
            tracing::info!("wrote {}", out.display());
            return if args.json {
                super::print_json(&result)
            } else {
                println!("{}", serde_json::to_string_pretty(&result)?);
                Ok(())
            };
        }
        let result = compare_recordings(&inputs, &selection, &options)?;
        for warning in &result.report.warnings {
            tracing::warn!("{warning}");
        }
        return if args.json {
            super::print_json(&result)
        } else {
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        };
    }
    if args.per_location
        || args.untrained_a.is_some()
        || args.untrained_b.is_some()
        || args.points.is_some()
    {
        bail!(
            "--per-location, --untrained-a/-b and --points need recordings (a recording folder, or a safetensors \
             file with node_lat and node_lon: docs/recording.md)"
        );
    }
    let (Some(name_a), Some(name_b)) = (tensor_a, tensor_b) else {
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

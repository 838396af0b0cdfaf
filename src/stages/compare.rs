//! The compare stage: alignment between two recordings of any models (recording folders or plain recording
//! files), pooled or per location, each figure beside the permutation null, the untrained control (when the two
//! architectures' recordings at initialisation are given) and the input baselines (when the recordings carry
//! `inputs`).
//!
//! Rows are (sample time, place): samples are paired by time (or index), places by great-circle distance to a
//! common point (A's nodes by default, or a lat/lon list), so two models with different node sets compare at
//! the same places; the matching distances are reported. A pooled comparison reads a seeded subsample of
//! `max_rows` rows (default 20,000) straight from the files.

use std::path::{Path, PathBuf};

use serde::Serialize;
use weatherlens_models::files::{self, AtomicDir};
use weatherlens_probes::alignment::{
    CompareOptions, ControlledPair, ControlledReport, Representation, compare_panel,
};
use weatherlens_probes::inputs::Region;
use weatherlens_probes::local_alignment::{
    LocalAlignment, LocalData, LocalOptions, local_alignment,
};
use weatherlens_probes::locations::MatchDistances;
use weatherlens_probes::pairing::{Common, Member, RowChoice};
use weatherlens_probes::recording::{Recording, Source};

use super::StageError;
use crate::output::write_json;
use crate::report::study::write_local_alignment;

/// What is compared: X = A's tensor, Y = B's, and optionally the same architectures at initialisation.
#[derive(Debug, Clone, Default)]
pub struct CompareInputs {
    pub a: PathBuf,
    pub b: PathBuf,
    /// Tensor names (default: the last processor layer's output X_L).
    pub tensor_a: Option<String>,
    pub tensor_b: Option<String>,
    pub untrained_a: Option<PathBuf>,
    pub untrained_b: Option<PathBuf>,
}

/// Which rows.
#[derive(Debug, Clone, Default)]
pub struct RowSelection {
    /// Common points (degrees); None = A's nodes.
    pub points: Option<(Vec<f64>, Vec<f64>)>,
    /// Keep one common point (index into the common points).
    pub node: Option<usize>,
    /// Keep one sample of A (B's sample at the same time).
    pub sample: Option<usize>,
    pub region: Option<Region>,
    /// Rows read at most (0: all).
    pub max_rows: usize,
}

/// How the rows were formed, reported beside the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Pairing {
    /// The quantities compared (with their derivation when not stored).
    pub tensor_a: String,
    pub tensor_b: String,
    pub times: usize,
    pub points: usize,
    /// Great-circle distance from the common points to the node each side uses, degrees.
    pub distance_a: MatchDistances,
    pub distance_b: MatchDistances,
    /// Which controls were available.
    pub untrained: bool,
    pub input_baseline_a: bool,
    pub input_baseline_b: bool,
}

/// `compare --json` for recordings: the figures with null and interval, controls, excess and warnings, plus how
/// the rows were chosen.
#[derive(Debug, Clone, Serialize)]
pub struct PooledComparison {
    #[serde(flatten)]
    pub report: ControlledReport,
    pub rows: RowChoice,
    pub pairing: Pairing,
}

/// `compare --per-location --json`.
#[derive(Debug, Clone, Serialize)]
pub struct LocalComparison {
    #[serde(flatten)]
    pub local: LocalAlignment,
    pub pairing: Pairing,
    /// Where the CSVs and maps went.
    pub out: String,
}

/// Whether `path` is a recording (a folder with probes.json, or a safetensors file carrying `node_lat`), as
/// opposed to any other safetensors file (read as a plain [samples, features] or [samples, nodes, latent]
/// matrix).
pub fn is_recording(path: &Path) -> bool {
    use std::io::Read;
    if path.is_dir() {
        return true;
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut length = [0u8; 8];
    if file.read_exact(&mut length).is_err() {
        return false;
    }
    let length = u64::from_le_bytes(length);
    if length > 100_000_000 {
        return false;
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).is_ok()
        && serde_json::from_slice::<serde_json::Value>(&header)
            .is_ok_and(|header| header.get("node_lat").is_some())
}

/// One side's recordings and members.
struct SideMembers {
    recording: Recording,
    member: Member,
    untrained: Option<(Recording, Member)>,
    inputs: Option<Member>,
}

fn source_of(recording: &Recording, name: Option<&str>) -> Result<Source, StageError> {
    match name {
        Some(name) => Ok(recording.source(name)?),
        None => {
            let last = *recording
                .processor()
                .layers
                .last()
                .expect("a recording has a processor layer");
            recording.output("processor", last).ok_or_else(|| {
                StageError::Invalid(format!(
                    "{}: the output of processor layer {last} is not recorded; name a tensor with --tensor",
                    recording.path().display()
                ))
            })
        }
    }
}

fn side(
    path: &Path,
    tensor: Option<&str>,
    untrained: Option<&Path>,
    common: &Common,
    label: &str,
) -> Result<SideMembers, StageError> {
    let recording = Recording::open(path)?;
    for warning in recording.warnings() {
        tracing::warn!("{warning}");
    }
    let source = source_of(&recording, tensor)?;
    let member = Member::new(&recording, source.clone(), common, label)?;
    let untrained = match untrained {
        Some(path) => {
            let control = Recording::open(path)?;
            let control_source = control
                .source(&source.name)
                .or_else(|_| source_of(&control, None))?;
            let member = Member::new(
                &control,
                control_source,
                common,
                format!("{label} untrained"),
            )?;
            Some((control, member))
        }
        None => None,
    };
    let inputs = match recording.inputs() {
        Some(source) => Some(Member::new(
            &recording,
            source,
            common,
            format!("{label} inputs"),
        )?),
        None => None,
    };
    Ok(SideMembers {
        recording,
        member,
        untrained,
        inputs,
    })
}

/// Both sides' members at the common rows: (A, B).
fn sides(
    inputs: &CompareInputs,
    common: &Common,
) -> Result<(SideMembers, SideMembers), StageError> {
    let a = side(
        &inputs.a,
        inputs.tensor_a.as_deref(),
        inputs.untrained_a.as_deref(),
        common,
        "A",
    )?;
    let b = side(
        &inputs.b,
        inputs.tensor_b.as_deref(),
        inputs.untrained_b.as_deref(),
        common,
        "B",
    )?;
    Ok((a, b))
}

/// The common times and points of A and B after the selection.
fn common(
    inputs: &CompareInputs,
    selection: &RowSelection,
) -> Result<(Common, Recording), StageError> {
    if inputs.untrained_a.is_some() != inputs.untrained_b.is_some() {
        return Err(StageError::Invalid(
            "the untrained control needs both --untrained-a and --untrained-b".into(),
        ));
    }
    let a = Recording::open(&inputs.a)?;
    let b = Recording::open(&inputs.b)?;
    let source_a = source_of(&a, inputs.tensor_a.as_deref())?;
    let mut common = Common::of(
        &a,
        &source_a,
        &b,
        selection.points.clone(),
        selection.region,
    )?;
    if let Some(node) = selection.node {
        common = common.with_point(node)?;
    }
    if let Some(sample) = selection.sample {
        common = common.with_sample_of_a(&a, sample)?;
    }
    Ok((common, a))
}

/// One member's rows read: values [rows, width], width, label.
type MemberRows = (Vec<f64>, usize, String);

/// Reads every member of both sides at `rows`: [X, Y, X₀, Y₀, I_X, I_Y] (absent ones left out) and the pair.
fn panel(
    a: &SideMembers,
    b: &SideMembers,
    read: impl Fn(&Recording, &Member) -> Result<Vec<f64>, StageError>,
) -> Result<(Vec<MemberRows>, ControlledPair), StageError> {
    let mut data = vec![
        (
            read(&a.recording, &a.member)?,
            a.member.width(),
            a.member.label.clone(),
        ),
        (
            read(&b.recording, &b.member)?,
            b.member.width(),
            b.member.label.clone(),
        ),
    ];
    let mut pair = ControlledPair {
        x: 0,
        y: 1,
        ..ControlledPair::default()
    };
    if let (Some((ra, ma)), Some((rb, mb))) = (&a.untrained, &b.untrained) {
        data.push((read(ra, ma)?, ma.width(), ma.label.clone()));
        data.push((read(rb, mb)?, mb.width(), mb.label.clone()));
        pair.untrained = Some((data.len() - 2, data.len() - 1));
    }
    if let Some(m) = &a.inputs {
        data.push((read(&a.recording, m)?, m.width(), m.label.clone()));
        pair.inputs_x = Some(data.len() - 1);
    }
    if let Some(m) = &b.inputs {
        data.push((read(&b.recording, m)?, m.width(), m.label.clone()));
        pair.inputs_y = Some(data.len() - 1);
    }
    Ok((data, pair))
}

fn pairing(a: &SideMembers, b: &SideMembers, common: &Common, pair: &ControlledPair) -> Pairing {
    Pairing {
        tensor_a: a.member.source.describe(),
        tensor_b: b.member.source.describe(),
        times: common.times.len(),
        points: common.lat.len(),
        distance_a: a.member.distances(),
        distance_b: b.member.distances(),
        untrained: pair.untrained.is_some(),
        input_baseline_a: pair.inputs_x.is_some(),
        input_baseline_b: pair.inputs_y.is_some(),
    }
}

/// Pooled alignment of A and B (rows = time × place pairs, subsampled to `selection.max_rows`), with controls;
/// the interval subsamples whole sample times when there are at least 5 of them, else rows.
pub fn compare_recordings(
    inputs: &CompareInputs,
    selection: &RowSelection,
    options: &CompareOptions,
) -> Result<PooledComparison, StageError> {
    let (common, _) = common(inputs, selection)?;
    let (a, b) = sides(inputs, &common)?;
    let rows = RowChoice::new(
        common.times.len(),
        common.lat.len(),
        selection.max_rows,
        options.seed,
    );
    let (data, pair) = panel(&a, &b, |recording, member| {
        Ok(member.read(recording, &rows.rows)?)
    })?;
    let reps: Vec<Representation> = data
        .iter()
        .map(|(values, width, label)| Representation::new(label, values, rows.used, *width))
        .collect::<Result<_, _>>()?;
    let groups = rows.time_groups();
    let grouped = common.times.len() >= 5;
    let mut report = compare_panel(
        &reps,
        grouped.then_some(groups.as_slice()),
        &[pair],
        options,
    )?
    .remove(0);
    for warning in a.recording.warnings().iter().chain(b.recording.warnings()) {
        report.warnings.push(warning.clone());
    }
    Ok(PooledComparison {
        report,
        pairing: pairing(&a, &b, &common, &pair),
        rows,
    })
}

/// Alignment at every common point (rows = the shared sample times there), with summaries by region (and by
/// season with `seasons`), written into `out_dir`: `local_alignment.csv`, `locations_A_B.csv`, the map
/// `cknna_map_A_B` (PNG + SVG) and `local_alignment.json`.
pub fn compare_per_location(
    inputs: &CompareInputs,
    selection: &RowSelection,
    seasons: bool,
    options: &CompareOptions,
    out_dir: &Path,
) -> Result<LocalComparison, StageError> {
    let (common, _) = common(inputs, selection)?;
    let hours = common.hours();
    if seasons && hours.is_none() {
        return Err(StageError::Invalid(
            "--seasons needs sample times in both recordings (sample_time, or probes.json's sample_times)".into(),
        ));
    }
    let (a, b) = sides(inputs, &common)?;
    let mut listed: Vec<(&Recording, &Member)> =
        vec![(&a.recording, &a.member), (&b.recording, &b.member)];
    let mut pair = ControlledPair {
        x: 0,
        y: 1,
        ..ControlledPair::default()
    };
    if let (Some((ra, ma)), Some((rb, mb))) = (&a.untrained, &b.untrained) {
        listed.push((ra, ma));
        listed.push((rb, mb));
        pair.untrained = Some((2, 3));
    }
    if let Some(m) = &a.inputs {
        listed.push((&a.recording, m));
        pair.inputs_x = Some(listed.len() - 1);
    }
    if let Some(m) = &b.inputs {
        listed.push((&b.recording, m));
        pair.inputs_y = Some(listed.len() - 1);
    }
    let data = LocalData::read(&listed, common.times.len(), common.lat.len())?;
    let local = local_alignment(
        &data,
        &common.lat,
        &common.lon,
        hours.as_deref(),
        &[pair],
        &LocalOptions {
            k: options.k,
            seed: options.seed,
            seasons,
        },
    )?;
    let result = LocalComparison {
        local,
        pairing: pairing(&a, &b, &common, &pair),
        out: out_dir.display().to_string(),
    };
    files::create_dir_all(out_dir.parent().unwrap_or(Path::new(".")))?;
    let unit = AtomicDir::create(out_dir)?;
    write_local_alignment(&result.local, unit.path())?;
    write_json(&unit.path().join("local_alignment.json"), &result)?;
    unit.commit()?;
    Ok(result)
}

/// Common points from a CSV file with `lat` and `lon` columns (degrees), one point per line.
pub fn read_points(path: &Path) -> Result<(Vec<f64>, Vec<f64>), StageError> {
    let text = files::read_to_string(path)?;
    let bad = |reason: String| StageError::Invalid(format!("{}: {reason}", path.display()));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| bad("empty file; expected a header line with lat and lon".into()))?
        .split(',')
        .map(|c| c.trim().to_lowercase())
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| bad(format!("no `{name}` column in the header {header:?}")))
    };
    let (lat_at, lon_at) = (column("lat")?, column("lon")?);
    let (mut lat, mut lon) = (Vec::new(), Vec::new());
    for (k, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let value = |at: usize| -> Result<f64, StageError> {
            cells
                .get(at)
                .and_then(|c| c.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    bad(format!(
                        "line {}: `{line}` has no number in column {at}",
                        k + 2
                    ))
                })
        };
        let (la, lo) = (value(lat_at)?, value(lon_at)?);
        if la.abs() > 90.0 {
            return Err(bad(format!(
                "line {}: latitude {la} is outside [-90, 90]",
                k + 2
            )));
        }
        lat.push(la);
        lon.push(lo);
    }
    if lat.is_empty() {
        return Err(bad("no points".into()));
    }
    Ok((lat, lon))
}

/// The default output folder of a per-location comparison: `<A's folder>/compare_<A>_<B>`.
pub fn default_out(a: &Path, b: &Path) -> PathBuf {
    let stem = |p: &Path| {
        p.file_stem()
            .map_or_else(|| "x".to_string(), |s| s.to_string_lossy().to_string())
    };
    let parent = a.parent().unwrap_or(Path::new("."));
    parent.join(format!("compare_{}_{}", stem(a), stem(b)))
}

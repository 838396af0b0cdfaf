//! The study's alignment figures, gathered from the run folders: the recordings (`probes/`), the untrained
//! controls (`untrained/`, written by each run's controls stage) and the input fields the recordings carry.
//!
//! Every model is compared at its last processor layer's output X_L. Pooled figures (rows = sample × node pairs,
//! a seeded subsample of `pooled_rows`) by region for every ordered pair, with the permutation null, the
//! untrained control, both input baselines and the excess over them (interval over subsamples of whole sample
//! times); and, with `per_location`, the seed's protocol: rows = the sample times at each node, summaries by
//! region and season.

use std::path::Path;

use weatherlens_probes::alignment::{
    AlignmentError, CompareOptions, ControlledPair, Representation, compare_panel,
};
use weatherlens_probes::inputs::Region;
use weatherlens_probes::local_alignment::{
    LocalAlignment, LocalData, LocalOptions, local_alignment,
};
use weatherlens_probes::pairing::{Common, Member, PairingError, RowChoice};
use weatherlens_probes::recording::{Recording, Source};

use super::PairAlignment;
use crate::study::StudyAlignment;

/// One finished run's recordings.
pub(super) struct RunRecordings {
    pub name: String,
    pub trained: Recording,
    pub untrained: Option<Recording>,
    pub seeds_only_with: Vec<String>,
}

/// Why the alignment figures could not be computed (the rest of the report still is).
#[derive(Debug, thiserror::Error)]
pub(super) enum StudyAlignmentError {
    #[error(transparent)]
    Pairing(#[from] PairingError),
    #[error(transparent)]
    Alignment(#[from] AlignmentError),
    #[error("{0}")]
    Invalid(String),
}

/// The members of one run: trained X_L, untrained X_L (if recorded), inputs (if recorded).
struct RunMembers {
    trained: Member,
    untrained: Option<Member>,
    inputs: Option<Member>,
}

/// The last processor layer's output, X_L.
fn last_output(recording: &Recording) -> Result<Source, StudyAlignmentError> {
    let processor = recording.processor();
    let last = *processor
        .layers
        .last()
        .expect("a recording has a processor layer");
    recording.output("processor", last).ok_or_else(|| {
        StudyAlignmentError::Invalid(format!(
            "{}: the output of processor layer {last} is not recorded",
            recording.path().display()
        ))
    })
}

fn members_of(run: &RunRecordings, common: &Common) -> Result<RunMembers, StudyAlignmentError> {
    let trained = Member::new(
        &run.trained,
        last_output(&run.trained)?,
        common,
        run.name.clone(),
    )?;
    let untrained = match &run.untrained {
        Some(recording) => Some(Member::new(
            recording,
            last_output(recording)?,
            common,
            format!("{} (untrained)", run.name),
        )?),
        None => None,
    };
    let inputs = match run.trained.inputs() {
        Some(source) => Some(Member::new(
            &run.trained,
            source,
            common,
            format!("{} inputs", run.name),
        )?),
        None => None,
    };
    Ok(RunMembers {
        trained,
        untrained,
        inputs,
    })
}

/// Panel layout: for run r, index 3r = trained, 3r + 1 = untrained, 3r + 2 = inputs (when present).
fn pair_of(a: usize, b: usize, members: &[RunMembers]) -> ControlledPair {
    let untrained = match (&members[a].untrained, &members[b].untrained) {
        (Some(_), Some(_)) => Some((3 * a + 1, 3 * b + 1)),
        _ => None,
    };
    ControlledPair {
        x: 3 * a,
        y: 3 * b,
        untrained,
        inputs_x: members[a].inputs.as_ref().map(|_| 3 * a + 2),
        inputs_y: members[b].inputs.as_ref().map(|_| 3 * b + 2),
    }
}

/// The times every run shares, and the first run's nodes as the common points.
fn common(runs: &[RunRecordings], region: Option<Region>) -> Result<Common, StudyAlignmentError> {
    let first = &runs[0];
    let source = last_output(&first.trained)?;
    let mut common = Common::of(&first.trained, &source, &runs[1].trained, None, region)?;
    for run in &runs[2..] {
        let other = Common::of(&first.trained, &source, &run.trained, None, region)?;
        common.times.retain(|t| other.times.contains(t));
    }
    if common.times.is_empty() {
        return Err(StudyAlignmentError::Invalid(
            "the runs' recordings share no sample time".into(),
        ));
    }
    Ok(common)
}

/// Pooled figures by region for every ordered pair of runs.
pub(super) fn pooled(
    runs: &[RunRecordings],
    settings: &StudyAlignment,
    nulls: usize,
) -> Result<Vec<PairAlignment>, StudyAlignmentError> {
    let mut out = Vec::new();
    if runs.len() < 2 {
        return Ok(out);
    }
    for region in [Region::Global, Region::Tropics, Region::NhMid] {
        let common = common(runs, (region != Region::Global).then_some(region))?;
        let members: Vec<RunMembers> = runs
            .iter()
            .map(|run| members_of(run, &common))
            .collect::<Result<_, _>>()?;
        let choice = RowChoice::new(
            common.times.len(),
            common.lat.len(),
            settings.pooled_rows,
            settings.seed,
        );
        let mut data: Vec<(Vec<f64>, usize, String)> = Vec::new();
        for (run, m) in runs.iter().zip(&members) {
            data.push((
                m.trained.read(&run.trained, &choice.rows)?,
                m.trained.width(),
                m.trained.label.clone(),
            ));
            match (&m.untrained, &run.untrained) {
                (Some(member), Some(recording)) => data.push((
                    member.read(recording, &choice.rows)?,
                    member.width(),
                    member.label.clone(),
                )),
                _ => data.push((Vec::new(), 1, String::new())),
            }
            match &m.inputs {
                Some(member) => data.push((
                    member.read(&run.trained, &choice.rows)?,
                    member.width(),
                    member.label.clone(),
                )),
                None => data.push((Vec::new(), 1, String::new())),
            }
        }
        // Missing members become placeholders of the right row count that no pair refers to.
        let placeholder = vec![0.0; choice.used];
        let reps: Vec<Representation> = data
            .iter()
            .map(|(values, width, label)| {
                if values.is_empty() {
                    Representation::new("unused", &placeholder, choice.used, 1)
                } else {
                    Representation::new(label, values, choice.used, *width)
                }
            })
            .collect::<Result<_, _>>()?;
        // Every unordered pair once: each metric and control is symmetric in X and Y.
        let pairs: Vec<(usize, usize)> = (0..runs.len())
            .flat_map(|a| (a + 1..runs.len()).map(move |b| (a, b)))
            .collect();
        let controlled: Vec<ControlledPair> = pairs
            .iter()
            .map(|&(a, b)| pair_of(a, b, &members))
            .collect();
        let groups = choice.time_groups();
        let reports = compare_panel(
            &reps,
            Some(&groups),
            &controlled,
            &CompareOptions {
                k: settings.k,
                null_draws: nulls,
                ci_draws: if common.times.len() >= 5 {
                    settings.ci_draws
                } else {
                    0
                },
                seed: settings.seed,
                ..CompareOptions::default()
            },
        )?;
        for ((a, b), report) in pairs.iter().zip(reports) {
            out.push(PairAlignment {
                region,
                a: runs[*a].name.clone(),
                b: runs[*b].name.clone(),
                n: report.alignment.n,
                rows_total: choice.total,
                metrics: report.alignment.metrics,
                null: report.alignment.null,
                ci: report.alignment.ci,
                controls: report.controls,
                excess: report.excess,
                warnings: report.warnings,
                seeds_only: runs[*a].seeds_only_with.contains(&runs[*b].name),
            });
        }
    }
    Ok(out)
}

/// The seed's protocol at every node of the first run: rows = the shared sample times, every unordered pair.
pub(super) fn per_location(
    runs: &[RunRecordings],
    settings: &StudyAlignment,
    seasons: bool,
) -> Result<Option<LocalAlignment>, StudyAlignmentError> {
    if runs.len() < 2 || !settings.per_location {
        return Ok(None);
    }
    let common = common(runs, None)?;
    let members: Vec<RunMembers> = runs
        .iter()
        .map(|run| members_of(run, &common))
        .collect::<Result<_, _>>()?;
    // Read every member; a missing untrained recording or inputs tensor is stood in for by the trained latent
    // (never referred to by a pair).
    let mut listed: Vec<(&Recording, &Member)> = Vec::new();
    for (run, m) in runs.iter().zip(&members) {
        listed.push((&run.trained, &m.trained));
        listed.push(match (&m.untrained, &run.untrained) {
            (Some(member), Some(recording)) => (recording, member),
            _ => (&run.trained, &m.trained),
        });
        listed.push(match &m.inputs {
            Some(member) => (&run.trained, member),
            None => (&run.trained, &m.trained),
        });
    }
    let data = LocalData::read(&listed, common.times.len(), common.lat.len())?;
    let pairs: Vec<ControlledPair> = (0..runs.len())
        .flat_map(|a| (a + 1..runs.len()).map(move |b| (a, b)))
        .map(|(a, b)| pair_of(a, b, &members))
        .collect();
    let hours = common.hours();
    Ok(Some(local_alignment(
        &data,
        &common.lat,
        &common.lon,
        hours.as_deref(),
        &pairs,
        &LocalOptions {
            k: settings.k,
            seed: settings.seed,
            seasons,
        },
    )?))
}

/// Opens a run's recordings (None when the run has no recording folder).
pub(super) fn open_run(name: &str, dir: &Path) -> Option<(Recording, Option<Recording>)> {
    let trained = Recording::open(&dir.join("probes")).ok()?;
    let untrained = Recording::open(&dir.join("untrained")).ok();
    Some((trained, untrained)).inspect(|_| tracing::debug!("alignment: run `{name}` recorded"))
}

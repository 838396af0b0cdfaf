//! Pairing the rows of two (or more) recordings for alignment: a row is one sample time at one place, and every
//! member of a comparison (model A, model B, their untrained controls, their input fields) is read at the same
//! times and places:
//!
//! - **times**: when A and B both carry sample times, the times they share (in A's order); otherwise sample
//!   indices, which needs equal sample counts. Each member finds its own sample at each time.
//! - **places**: a list of common points (model A's nodes by default, or a lat/lon list); each member uses its
//!   node nearest to each point by great-circle distance, and the distances are reported. Node 52 of one model
//!   and token 52 of another are different places.
//!
//! Rows are (time, point) pairs; beyond `max_rows` a seeded subsample of them is read (reported), each row
//! read from the file where it lies rather than loading whole tensors.

use serde::Serialize;

use crate::inputs::Region;
use crate::locations::{LocationError, MatchDistances, Nearest, NodeSet};
use crate::recording::{Recording, RecordingError, Source};
use crate::stats::seeded_subsample;

/// Default number of rows a pooled comparison reads (a seeded subsample beyond).
pub const DEFAULT_MAX_ROWS: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("{0}")]
    Invalid(String),
}

/// One sample of the comparison, as each member finds it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TimeKey {
    /// Hours since 1970-01-01T00Z.
    Hours(f64),
    /// A sample index (recordings without sample times).
    Index(usize),
}

/// The samples and places shared by a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub times: Vec<TimeKey>,
    /// Common points, degrees.
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
}

impl Common {
    /// The common sample times in hours since 1970, when both recordings give them.
    pub fn hours(&self) -> Option<Vec<f64>> {
        self.times
            .iter()
            .map(|t| match t {
                TimeKey::Hours(h) => Some(*h),
                TimeKey::Index(_) => None,
            })
            .collect()
    }

    /// The times A and B share, and A's nodes (of `a_source`'s node set) as the common points unless `points`
    /// are given; the points are then cut to `region` (by latitude).
    pub fn of(
        a: &Recording,
        a_source: &Source,
        b: &Recording,
        points: Option<(Vec<f64>, Vec<f64>)>,
        region: Option<Region>,
    ) -> Result<Self, PairingError> {
        let times = match (a.sample_hours(), b.sample_hours()) {
            (Some(ta), Some(tb)) => {
                let shared: Vec<TimeKey> = ta
                    .iter()
                    .filter(|t| tb.contains(t))
                    .map(|&t| TimeKey::Hours(t))
                    .collect();
                if shared.is_empty() {
                    return Err(PairingError::Invalid(format!(
                        "{} and {} share no sample time: alignment compares the same samples",
                        a.path().display(),
                        b.path().display()
                    )));
                }
                shared
            }
            _ if a.samples() == b.samples() => (0..a.samples()).map(TimeKey::Index).collect(),
            _ => {
                return Err(PairingError::Invalid(format!(
                    "{} has {} samples and {} has {}, and they do not both carry sample_time to pair them: \
                     compare needs the same samples",
                    a.path().display(),
                    a.samples(),
                    b.path().display(),
                    b.samples()
                )));
            }
        };
        let (lat, lon) = match points {
            Some(points) => points,
            None => {
                let (lat, lon) = a.coordinates_of(a_source);
                (lat.to_vec(), lon.to_vec())
            }
        };
        let (lat, lon): (Vec<f64>, Vec<f64>) = lat
            .iter()
            .zip(&lon)
            .filter(|(la, _)| region.is_none_or(|r| r.contains(**la)))
            .map(|(&la, &lo)| (la, lo))
            .unzip();
        if lat.is_empty() {
            return Err(PairingError::Invalid(format!(
                "no common point{}",
                region.map_or(String::new(), |r| format!(" in region {r:?}"))
            )));
        }
        Ok(Self { times, lat, lon })
    }

    /// Keeps only the time at position `index` of A's samples (`--sample`).
    pub fn with_sample_of_a(mut self, a: &Recording, index: usize) -> Result<Self, PairingError> {
        if index >= a.samples() {
            return Err(PairingError::Invalid(format!(
                "--sample {index}: {} has {} samples",
                a.path().display(),
                a.samples()
            )));
        }
        let key = match a.sample_hours() {
            Some(hours) if matches!(self.times.first(), Some(TimeKey::Hours(_))) => {
                TimeKey::Hours(hours[index])
            }
            _ => TimeKey::Index(index),
        };
        if !self.times.contains(&key) {
            return Err(PairingError::Invalid(format!(
                "--sample {index}: that sample of {} has no counterpart in the other recording",
                a.path().display()
            )));
        }
        self.times = vec![key];
        Ok(self)
    }

    /// Keeps only common point `index` (`--node`).
    pub fn with_point(mut self, index: usize) -> Result<Self, PairingError> {
        if index >= self.lat.len() {
            return Err(PairingError::Invalid(format!(
                "--node {index}: there are {} common points",
                self.lat.len()
            )));
        }
        self.lat = vec![self.lat[index]];
        self.lon = vec![self.lon[index]];
        Ok(self)
    }
}

/// One representation of a comparison: a recording's quantity at the common times and points.
#[derive(Debug, Clone)]
pub struct Member {
    pub label: String,
    pub source: Source,
    /// The member's sample index at each common time.
    pub samples: Vec<usize>,
    /// The member's node nearest each common point, with the distance.
    pub nodes: Vec<Nearest>,
}

impl Member {
    /// `source` of `recording` at the common times and points.
    pub fn new(
        recording: &Recording,
        source: Source,
        common: &Common,
        label: impl Into<String>,
    ) -> Result<Self, PairingError> {
        let samples = common
            .times
            .iter()
            .map(|key| match *key {
                TimeKey::Index(i) if i < recording.samples() => Ok(i),
                TimeKey::Index(i) => Err(PairingError::Invalid(format!(
                    "{} has {} samples; sample {i} is compared",
                    recording.path().display(),
                    recording.samples()
                ))),
                TimeKey::Hours(t) => recording
                    .sample_hours()
                    .and_then(|hours| hours.iter().position(|&h| h == t))
                    .ok_or_else(|| {
                        PairingError::Invalid(format!(
                            "{} has no sample at {t} h since 1970 (a time of the comparison){}",
                            recording.path().display(),
                            if recording.sample_hours().is_none() {
                                ": it carries no sample_time"
                            } else {
                                ""
                            }
                        ))
                    }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (lat, lon) = recording.coordinates_of(&source);
        let what = format!("{} ({})", recording.path().display(), source.name);
        let nodes = NodeSet::new(&what, lat, lon)?.nearest(&common.lat, &common.lon)?;
        Ok(Self {
            label: label.into(),
            source,
            samples,
            nodes,
        })
    }

    pub fn width(&self) -> usize {
        self.source.width
    }

    /// Rows (time position, point position): [rows.len(), width] row-major.
    pub fn read(
        &self,
        recording: &Recording,
        rows: &[(usize, usize)],
    ) -> Result<Vec<f64>, PairingError> {
        let located: Vec<(usize, usize)> = rows
            .iter()
            .map(|&(t, p)| (self.samples[t], self.nodes[p].node))
            .collect();
        Ok(recording.read_rows(&self.source, &located)?)
    }

    pub fn distances(&self) -> MatchDistances {
        MatchDistances::of(self.nodes.iter().map(|n| n.distance_deg))
    }
}

/// The rows of a pooled comparison: every (time, point) pair, or a seeded subsample of `max_rows` of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowChoice {
    /// (time position, point position) of each row, ordered by time then point.
    #[serde(skip)]
    pub rows: Vec<(usize, usize)>,
    /// Rows available (times × points) and rows used.
    pub total: usize,
    pub used: usize,
    /// Seed of the subsample (None when every row is used).
    pub subsample_seed: Option<u64>,
}

impl RowChoice {
    /// All times × points, subsampled to `max_rows` (0 = no limit) with `seed`.
    pub fn new(times: usize, points: usize, max_rows: usize, seed: u64) -> Self {
        let total = times * points;
        let (rows, subsample_seed): (Vec<(usize, usize)>, Option<u64>) =
            if max_rows > 0 && total > max_rows {
                (
                    seeded_subsample(total, max_rows, seed)
                        .into_iter()
                        .map(|r| (r / points, r % points))
                        .collect(),
                    Some(seed),
                )
            } else {
                (
                    (0..times)
                        .flat_map(|t| (0..points).map(move |p| (t, p)))
                        .collect(),
                    None,
                )
            };
        Self {
            used: rows.len(),
            rows,
            total,
            subsample_seed,
        }
    }

    /// The time position of each row: whole times are what an interval subsamples.
    pub fn time_groups(&self) -> Vec<usize> {
        self.rows.iter().map(|&(t, _)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::tests::{f32_bytes, f64_bytes, tensor, write};

    /// A recording on `lat`/`lon` whose `processor.0.resid_pre` at (s, n) is [time_s, lat_n, lon_n] and whose
    /// sample_time is `times`.
    fn located(path: &std::path::Path, lat: &[f64], lon: &[f64], times: &[f64]) {
        let values: Vec<f64> = times
            .iter()
            .flat_map(|&t| lat.iter().zip(lon).flat_map(move |(&la, &lo)| [t, la, lo]))
            .collect();
        write(
            path,
            &[
                tensor("node_lat", "F64", &[lat.len()], f64_bytes(lat)),
                tensor("node_lon", "F64", &[lat.len()], f64_bytes(lon)),
                tensor(
                    "processor.0.resid_pre",
                    "F32",
                    &[times.len(), lat.len(), 3],
                    f32_bytes(&values),
                ),
                tensor("sample_time", "F64", &[times.len()], f64_bytes(times)),
            ],
            None,
        );
    }

    #[test]
    fn rows_pair_the_same_time_and_the_nearest_place() {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        );
        // A: 3 points, times 0, 6, 12. B: the same places in another order and slightly moved, times 12, 6, 18.
        located(
            &pa,
            &[0.0, 45.0, -45.0],
            &[0.0, 90.0, 180.0],
            &[0.0, 6.0, 12.0],
        );
        located(
            &pb,
            &[-45.5, 0.0, 45.0],
            &[180.0, 1.0, 90.0],
            &[12.0, 6.0, 18.0],
        );
        let (a, b) = (Recording::open(&pa).unwrap(), Recording::open(&pb).unwrap());
        let (sa, sb) = (
            a.source("processor.0.resid_pre").unwrap(),
            b.source("processor.0.resid_pre").unwrap(),
        );
        let common = Common::of(&a, &sa, &b, None, None).unwrap();
        assert_eq!(common.times, [TimeKey::Hours(6.0), TimeKey::Hours(12.0)]);
        let ma = Member::new(&a, sa, &common, "A").unwrap();
        let mb = Member::new(&b, sb, &common, "B").unwrap();
        assert_eq!(mb.samples, [1, 0]);
        assert_eq!(
            mb.nodes.iter().map(|n| n.node).collect::<Vec<_>>(),
            [1, 2, 0]
        );
        assert!(
            (mb.nodes[0].distance_deg - 1.0).abs() < 1e-9,
            "1° of longitude on the equator"
        );
        assert!((mb.nodes[2].distance_deg - 0.5).abs() < 1e-9);
        let rows = RowChoice::new(2, 3, 0, 0);
        let (xa, xb) = (
            ma.read(&a, &rows.rows).unwrap(),
            mb.read(&b, &rows.rows).unwrap(),
        );
        for r in 0..rows.used {
            assert_eq!(xa[3 * r], xb[3 * r], "same time in row {r}");
            assert!(
                (xa[3 * r + 1] - xb[3 * r + 1]).abs() <= 0.5,
                "same place in row {r}"
            );
        }
        // A region keeps points by latitude; a subsample is seeded and reported.
        let north = Common::of(
            &a,
            &a.source("processor.0.resid_pre").unwrap(),
            &b,
            None,
            Some(Region::NhMid),
        )
        .unwrap();
        assert_eq!(north.lat, [45.0]);
        let sub = RowChoice::new(100, 1000, 20_000, 3);
        assert_eq!(
            (sub.total, sub.used, sub.subsample_seed),
            (100_000, 20_000, Some(3))
        );
        assert_eq!(sub.rows, RowChoice::new(100, 1000, 20_000, 3).rows);
        // --sample picks A's sample by its time.
        let one = common.clone().with_sample_of_a(&a, 2).unwrap();
        assert_eq!(one.times, [TimeKey::Hours(12.0)]);
        assert!(
            common.with_sample_of_a(&a, 0).is_err(),
            "time 0 is not in B"
        );
    }
}

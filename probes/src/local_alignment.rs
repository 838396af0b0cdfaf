//! Alignment at single locations, the seed's protocol (REFERENCE.md, "The seed's alignment figures"): at each
//! common point the rows are the sample times there (e.g. a month of 6-hourly states), k = 10, for every pair of
//! models with its controls; then summaries over the locations of a region, and of a season where the data has
//! seasons: the tropics, winter mid-latitudes (NH in DJF, SH in JJA) and summer mid-latitudes (NH in JJA, SH in
//! DJF).
//!
//! A summary is the mean over its locations of each metric, of each control and of the excess (metric − the
//! largest control at that location), with a 95 % bootstrap interval of the mean excess over locations; "not
//! above controls" when that interval includes 0.

use rayon::prelude::*;
use serde::Serialize;

use crate::alignment::{
    AlignmentError, CompareOptions, ControlledPair, ControlledReport, Controls, ExcessVerdict,
    MIN_ROWS_PER_NEIGHBOUR, MetricSet, Representation, compare_panel,
};
use crate::inputs::Region;
use crate::pairing::{Member, PairingError};
use crate::recording::{Recording, month_of_hours};
use crate::stats::{quantile_sorted, sorted_finite, stream_rng};

/// Bootstrap draws over locations for a summary's interval.
pub const LOCATION_BOOTSTRAP_DRAWS: usize = 1000;

/// Every member's values at every common time and point.
pub struct LocalData {
    /// Per member: [times, points, width] row-major.
    values: Vec<Vec<f64>>,
    widths: Vec<usize>,
    labels: Vec<String>,
    times: usize,
    points: usize,
}

impl LocalData {
    /// Reads every member at all `times` × `points` common rows.
    pub fn read(
        members: &[(&Recording, &Member)],
        times: usize,
        points: usize,
    ) -> Result<Self, PairingError> {
        let rows: Vec<(usize, usize)> = (0..times)
            .flat_map(|t| (0..points).map(move |p| (t, p)))
            .collect();
        let mut values = Vec::with_capacity(members.len());
        for (recording, member) in members {
            values.push(member.read(recording, &rows)?);
        }
        Ok(Self {
            values,
            widths: members.iter().map(|(_, m)| m.width()).collect(),
            labels: members.iter().map(|(_, m)| m.label.clone()).collect(),
            times,
            points,
        })
    }

    /// Member `member` at point `point` for the given times: [times.len(), width].
    fn series(&self, member: usize, point: usize, times: &[usize]) -> Vec<f64> {
        let width = self.widths[member];
        times
            .iter()
            .flat_map(|&t| {
                let start = (t * self.points + point) * width;
                &self.values[member][start..start + width]
            })
            .copied()
            .collect()
    }
}

/// One location's figures for one pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocationResult {
    pub point: usize,
    pub lat: f64,
    pub lon: f64,
    /// Times (rows) at this location.
    pub n: usize,
    pub metrics: MetricSet<f64>,
    pub controls: Controls,
    /// metric − the largest control, per metric (None without controls).
    pub excess: Option<MetricSet<f64>>,
    pub warnings: Vec<String>,
}

/// A group of locations (and, for seasons, of times at each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalGroup {
    Global,
    Tropics,
    NhMid,
    ShMid,
    /// NH mid-latitudes in DJF and SH mid-latitudes in JJA.
    WinterMid,
    /// NH mid-latitudes in JJA and SH mid-latitudes in DJF.
    SummerMid,
}

impl LocalGroup {
    pub fn label(self) -> &'static str {
        match self {
            LocalGroup::Global => "global",
            LocalGroup::Tropics => "tropics",
            LocalGroup::NhMid => "nh-mid",
            LocalGroup::ShMid => "sh-mid",
            LocalGroup::WinterMid => "winter mid-latitudes",
            LocalGroup::SummerMid => "summer mid-latitudes",
        }
    }
}

/// One metric summarised over the locations of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalSummary {
    /// Locations left out of this metric's figures because the metric or one of its controls lies outside
    /// [−1, 1] there (CKNNA at few rows per neighbour; see [`LocationResult::warnings`]).
    pub excluded: usize,
    pub mean: f64,
    pub untrained: Option<f64>,
    pub input_x: Option<f64>,
    pub input_y: Option<f64>,
    /// Mean over locations of (metric − the largest control there).
    pub excess: Option<f64>,
    /// 95 % bootstrap interval of the mean excess over locations.
    pub excess_ci: Option<[f64; 2]>,
    pub verdict: Option<ExcessVerdict>,
}

/// A group's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    pub group: LocalGroup,
    pub locations: usize,
    /// Rows per location (the smallest, when seasons give locations different counts).
    pub times: usize,
    pub metrics: MetricSet<LocalSummary>,
}

/// Per-location alignment of one pair with its summaries.
#[derive(Debug, Clone, Serialize)]
pub struct LocalPair {
    pub x: String,
    pub y: String,
    /// Written to a CSV beside the report, not into JSON.
    #[serde(skip)]
    pub locations: Vec<LocationResult>,
    pub summaries: Vec<GroupSummary>,
    /// Locations whose figures carry a warning (e.g. CKNNA outside [−1, 1]).
    pub locations_with_warnings: usize,
}

/// What [`local_alignment`] computes for every pair.
#[derive(Debug, Clone, Serialize)]
pub struct LocalAlignment {
    pub k: usize,
    pub times: usize,
    pub points: usize,
    /// Whether seasonal groups were formed.
    pub seasons: bool,
    pub pairs: Vec<LocalPair>,
}

/// Settings of [`local_alignment`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalOptions {
    pub k: usize,
    pub seed: u64,
    /// Form the seasonal groups (needs sample times; the built-in atmosphere has no seasons).
    pub seasons: bool,
}

/// Alignment at every common point (`lat`, `lon`) for every pair (indices into `data`'s members), with
/// summaries by region and, with `options.seasons`, by season (`hours` = each common time's hours since 1970).
pub fn local_alignment(
    data: &LocalData,
    lat: &[f64],
    lon: &[f64],
    hours: Option<&[f64]>,
    pairs: &[ControlledPair],
    options: &LocalOptions,
) -> Result<LocalAlignment, AlignmentError> {
    let all_times: Vec<usize> = (0..data.times).collect();
    let all_points: Vec<usize> = (0..data.points).collect();
    let everywhere = per_location(data, lat, lon, &all_points, &all_times, pairs, options)?;
    let seasonal = match (options.seasons, hours) {
        (true, Some(hours)) => {
            let in_months = |months: [u32; 3]| -> Vec<usize> {
                (0..data.times)
                    .filter(|&t| months.contains(&month_of_hours(hours[t])))
                    .collect()
            };
            let mid: Vec<usize> = all_points
                .iter()
                .copied()
                .filter(|&p| (30.0..=60.0).contains(&lat[p].abs()))
                .collect();
            let djf = in_months([12, 1, 2]);
            let jja = in_months([6, 7, 8]);
            let enough = |times: &[usize]| times.len() >= 4 && times.len() > options.k;
            let compute =
                |times: &[usize]| -> Result<Option<Vec<Vec<LocationResult>>>, AlignmentError> {
                    if !enough(times) {
                        return Ok(None);
                    }
                    per_location(data, lat, lon, &mid, times, pairs, options).map(Some)
                };
            Some((compute(&djf)?, compute(&jja)?))
        }
        _ => None,
    };
    let mut out_pairs = Vec::new();
    for (index, pair) in pairs.iter().enumerate() {
        let locations: Vec<LocationResult> = everywhere
            .iter()
            .map(|per_pair| per_pair[index].clone())
            .collect();
        let mut summaries = Vec::new();
        for (group, region) in [
            (LocalGroup::Global, Region::Global),
            (LocalGroup::Tropics, Region::Tropics),
            (LocalGroup::NhMid, Region::NhMid),
            (LocalGroup::ShMid, Region::ShMid),
        ] {
            let members: Vec<&LocationResult> = locations
                .iter()
                .filter(|l| region.contains(l.lat))
                .collect();
            if let Some(summary) = summarise(group, &members, options, index as u64) {
                summaries.push(summary);
            }
        }
        if let Some((djf, jja)) = &seasonal {
            let pick =
                |results: &Option<Vec<Vec<LocationResult>>>, north: bool| -> Vec<LocationResult> {
                    results
                        .iter()
                        .flatten()
                        .map(|per_pair| per_pair[index].clone())
                        .filter(|l| (l.lat > 0.0) == north)
                        .collect()
                };
            for (group, north_season, south_season) in [
                (LocalGroup::WinterMid, djf, jja),
                (LocalGroup::SummerMid, jja, djf),
            ] {
                let members: Vec<LocationResult> = pick(north_season, true)
                    .into_iter()
                    .chain(pick(south_season, false))
                    .collect();
                let refs: Vec<&LocationResult> = members.iter().collect();
                if let Some(summary) = summarise(group, &refs, options, index as u64) {
                    summaries.push(summary);
                }
            }
        }
        out_pairs.push(LocalPair {
            x: data.labels[pair.x].clone(),
            y: data.labels[pair.y].clone(),
            locations_with_warnings: locations
                .iter()
                .filter(|l| l.warnings.iter().any(|w| w.starts_with("CKNNA")))
                .count(),
            locations,
            summaries,
        });
    }
    Ok(LocalAlignment {
        k: options.k,
        times: data.times,
        points: data.points,
        seasons: seasonal.is_some(),
        pairs: out_pairs,
    })
}

/// The figures of every pair at each of `points`, rows = `times`: [points][pairs].
fn per_location(
    data: &LocalData,
    lat: &[f64],
    lon: &[f64],
    points: &[usize],
    times: &[usize],
    pairs: &[ControlledPair],
    options: &LocalOptions,
) -> Result<Vec<Vec<LocationResult>>, AlignmentError> {
    let compare_options = CompareOptions {
        k: options.k,
        null_draws: 0,
        ci_draws: 0,
        seed: options.seed,
        ..CompareOptions::default()
    };
    points
        .par_iter()
        .map(|&p| {
            let series: Vec<Vec<f64>> = (0..data.values.len())
                .map(|m| data.series(m, p, times))
                .collect();
            let reps: Vec<Representation> = series
                .iter()
                .zip(&data.widths)
                .zip(&data.labels)
                .map(|((values, &width), label)| {
                    Representation::new(label, values, times.len(), width)
                })
                .collect::<Result<_, _>>()?;
            let reports = compare_panel(&reps, None, pairs, &compare_options)?;
            Ok(reports
                .into_iter()
                .map(|r| location_result(p, lat[p], lon[p], r))
                .collect())
        })
        .collect()
}

fn location_result(point: usize, lat: f64, lon: f64, report: ControlledReport) -> LocationResult {
    LocationResult {
        point,
        lat,
        lon,
        n: report.alignment.n,
        metrics: report.alignment.metrics,
        controls: report.controls,
        excess: report.excess.map(|e| MetricSet {
            cka_biased: e.cka_biased.value,
            cka_unbiased: e.cka_unbiased.value,
            cknna: e.cknna.value,
            mutual_knn: e.mutual_knn.value,
        }),
        warnings: report.warnings,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Means over the group's locations, and the bootstrap interval of the mean excess; None for no locations.
fn summarise(
    group: LocalGroup,
    locations: &[&LocationResult],
    options: &LocalOptions,
    stream: u64,
) -> Option<GroupSummary> {
    if locations.is_empty() {
        return None;
    }
    let times = locations.iter().map(|l| l.n).min().unwrap_or(0);
    let knn_unreliable = times < MIN_ROWS_PER_NEIGHBOUR * options.k;
    let one = |metric: fn(&MetricSet<f64>) -> f64, knn: bool| -> LocalSummary {
        // A figure outside [−1, 1] is not a similarity: leave such locations out of the means and the interval.
        let in_range =
            |m: Option<&MetricSet<f64>>| m.is_none_or(|m| (-1.0..=1.0).contains(&metric(m)));
        let all = locations;
        let locations: Vec<&LocationResult> = all
            .iter()
            .copied()
            .filter(|l| {
                in_range(Some(&l.metrics))
                    && in_range(l.controls.untrained.as_ref())
                    && in_range(l.controls.input_x.as_ref())
                    && in_range(l.controls.input_y.as_ref())
            })
            .collect();
        let excluded = all.len() - locations.len();
        let control = |pick: fn(&Controls) -> Option<&MetricSet<f64>>| -> Option<f64> {
            locations
                .iter()
                .map(|l| pick(&l.controls).map(metric))
                .collect::<Option<Vec<f64>>>()
                .map(|v| mean(v.into_iter()))
        };
        let excesses: Option<Vec<f64>> = locations
            .iter()
            .map(|l| l.excess.as_ref().map(metric))
            .collect();
        let excess = excesses.as_ref().map(|v| mean(v.iter().copied()));
        let excess_ci = excesses.as_ref().filter(|v| v.len() > 1).map(|v| {
            let draws: Vec<f64> = (0..LOCATION_BOOTSTRAP_DRAWS as u64)
                .map(|draw| {
                    use rand::Rng;
                    let mut rng = stream_rng(options.seed ^ 0x10ca1, stream * 1_000_003 + draw);
                    mean((0..v.len()).map(|_| v[rng.random_range(0..v.len())]))
                })
                .collect();
            let sorted = sorted_finite(draws);
            [
                quantile_sorted(&sorted, 0.025),
                quantile_sorted(&sorted, 0.975),
            ]
        });
        let verdict = excess.map(|value| match excess_ci {
            _ if (knn && knn_unreliable) || !value.is_finite() => ExcessVerdict::Undetermined,
            Some([lo, _]) if lo > 0.0 => ExcessVerdict::AboveControls,
            None if value > 0.0 => ExcessVerdict::Undetermined,
            _ => ExcessVerdict::NotAboveControls,
        });
        LocalSummary {
            excluded,
            mean: mean(locations.iter().map(|l| metric(&l.metrics))),
            untrained: control(|c| c.untrained.as_ref()),
            input_x: control(|c| c.input_x.as_ref()),
            input_y: control(|c| c.input_y.as_ref()),
            excess,
            excess_ci,
            verdict,
        }
    };
    Some(GroupSummary {
        group,
        locations: locations.len(),
        times,
        metrics: MetricSet {
            cka_biased: one(|m| m.cka_biased, false),
            cka_unbiased: one(|m| m.cka_unbiased, false),
            cknna: one(|m| m.cknna, true),
            mutual_knn: one(|m| m.mutual_knn, true),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::standard_normal;

    /// Members at 40 times × 6 points: X and Y share a per-point signal (at points 0–2 only), the untrained
    /// control and the inputs are independent noise.
    fn data() -> (LocalData, Vec<f64>, Vec<f64>) {
        let (times, points, width) = (60, 6, 3);
        let mut rng = stream_rng(1, 0);
        let mut noise =
            |count: usize| -> Vec<f64> { (0..count).map(|_| standard_normal(&mut rng)).collect() };
        let shared = noise(times * points * width);
        let own_x = noise(times * points * width);
        let own_y = noise(times * points * width);
        let mix = |own: &[f64]| -> Vec<f64> {
            (0..times * points * width)
                .map(|i| {
                    let point = (i / width) % points;
                    let signal = if point < 3 { shared[i] } else { 0.0 };
                    signal + 0.3 * own[i]
                })
                .collect()
        };
        let values = vec![
            mix(&own_x),
            mix(&own_y),
            noise(times * points * width),
            noise(times * points * width),
            noise(times * points * width),
        ];
        let data = LocalData {
            values,
            widths: vec![width; 5],
            labels: ["x", "y", "x0", "y0", "in"].map(String::from).to_vec(),
            times,
            points,
        };
        // Points 0–2 in the tropics, 3–5 at 45°N.
        (
            data,
            vec![0.0, 10.0, -10.0, 45.0, 45.0, 45.0],
            vec![0.0, 60.0, 120.0, 0.0, 90.0, 180.0],
        )
    }

    #[test]
    fn per_location_figures_and_regional_summaries_separate_aligned_places_from_controls() {
        let (data, lat, lon) = data();
        let pair = ControlledPair {
            x: 0,
            y: 1,
            untrained: Some((2, 3)),
            inputs_x: Some(4),
            inputs_y: Some(4),
        };
        let options = LocalOptions {
            k: 10,
            seed: 0,
            seasons: false,
        };
        let result = local_alignment(&data, &lat, &lon, None, &[pair], &options).unwrap();
        let local = &result.pairs[0];
        assert_eq!(local.locations.len(), 6);
        for l in &local.locations {
            assert_eq!(l.n, 60);
            let excess = l.excess.as_ref().unwrap().cka_unbiased;
            if l.point < 3 {
                assert!(l.metrics.cka_unbiased > 0.8 && excess > 0.5, "{l:?}");
            } else {
                assert!(l.metrics.cka_unbiased.abs() < 0.3, "{l:?}");
            }
        }
        let summary =
            |group: LocalGroup| local.summaries.iter().find(|s| s.group == group).unwrap();
        let tropics = &summary(LocalGroup::Tropics).metrics.cka_unbiased;
        assert_eq!(
            tropics.verdict,
            Some(ExcessVerdict::AboveControls),
            "{tropics:?}"
        );
        let north = &summary(LocalGroup::NhMid).metrics.cka_unbiased;
        assert_eq!(
            north.verdict,
            Some(ExcessVerdict::NotAboveControls),
            "{north:?}"
        );
        assert_eq!(summary(LocalGroup::Global).locations, 6);
        assert!(
            local.summaries.iter().all(|s| s.group != LocalGroup::ShMid),
            "no SH mid-latitude point"
        );
        // The mean excess is the mean of the locations' excesses.
        let by_hand = local.locations[..3]
            .iter()
            .map(|l| l.excess.as_ref().unwrap().cka_unbiased)
            .sum::<f64>()
            / 3.0;
        assert!((tropics.excess.unwrap() - by_hand).abs() < 1e-12);
    }

    #[test]
    fn seasons_split_the_mid_latitude_times_by_hemisphere() {
        let (data, lat, lon) = data();
        // 60 times: 30 in January 2020, 30 in July 2020 (6-hourly).
        let hours: Vec<f64> = (0..60)
            .map(|t| {
                if t < 30 {
                    438_288.0 + 6.0 * t as f64
                } else {
                    438_288.0 + 182.0 * 24.0 + 6.0 * (t - 30) as f64
                }
            })
            .collect();
        let pair = ControlledPair {
            x: 0,
            y: 1,
            untrained: Some((2, 3)),
            ..ControlledPair::default()
        };
        let options = LocalOptions {
            k: 10,
            seed: 0,
            seasons: true,
        };
        let result = local_alignment(&data, &lat, &lon, Some(&hours), &[pair], &options).unwrap();
        assert!(result.seasons);
        let winter = result.pairs[0]
            .summaries
            .iter()
            .find(|s| s.group == LocalGroup::WinterMid)
            .unwrap();
        // Only NH mid-latitude points exist: winter = their 30 January times.
        assert_eq!((winter.locations, winter.times), (3, 30));
        // 30 < 5k = 50: the kNN metrics get no verdict, CKA does.
        assert_eq!(
            winter.metrics.cknna.verdict,
            Some(ExcessVerdict::Undetermined)
        );
        assert_ne!(
            winter.metrics.cka_unbiased.verdict,
            Some(ExcessVerdict::Undetermined)
        );
    }

    /// A location whose CKNNA (or a control's) lies outside [−1, 1] is left out of the CKNNA summary and counted;
    /// CKA, in range there, keeps it. Hand-computed means over the remaining locations.
    #[test]
    fn out_of_range_cknna_locations_are_left_out_of_its_summary() {
        let set = |cka: f64, cknna: f64| MetricSet {
            cka_biased: cka,
            cka_unbiased: cka,
            cknna,
            mutual_knn: 0.5,
        };
        let location = |point: usize, value: (f64, f64), untrained: (f64, f64)| {
            let metrics = set(value.0, value.1);
            let control = set(untrained.0, untrained.1);
            LocationResult {
                point,
                lat: 0.0,
                lon: 0.0,
                n: 60,
                excess: Some(set(value.0 - untrained.0, value.1 - untrained.1)),
                metrics,
                controls: Controls {
                    untrained: Some(control),
                    input_x: None,
                    input_y: None,
                },
                warnings: Vec::new(),
            }
        };
        let locations = [
            location(0, (0.8, 0.4), (0.6, 0.2)),
            location(1, (0.6, 0.2), (0.5, 0.1)),
            location(2, (0.7, 3.0), (0.4, 0.1)),
            location(3, (0.5, 0.3), (0.2, -1.5)),
        ];
        let refs: Vec<&LocationResult> = locations.iter().collect();
        let options = LocalOptions {
            k: 10,
            seed: 0,
            seasons: false,
        };
        let summary = summarise(LocalGroup::Global, &refs, &options, 0).unwrap();
        let cknna = &summary.metrics.cknna;
        assert_eq!(cknna.excluded, 2);
        assert!((cknna.mean - 0.3).abs() < 1e-12, "{}", cknna.mean);
        assert!((cknna.untrained.unwrap() - 0.15).abs() < 1e-12);
        assert!((cknna.excess.unwrap() - 0.15).abs() < 1e-12);
        let cka = &summary.metrics.cka_unbiased;
        assert_eq!(cka.excluded, 0);
        assert!((cka.mean - 0.65).abs() < 1e-12, "{}", cka.mean);
    }
}

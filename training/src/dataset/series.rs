//! Files holding the same variables on consecutive times joined into one series (WeatherBench's one file per
//! variable per year); overlaps and gaps are refused naming the files and the times.

use super::axes::FileAxes;
use super::error::DatasetError;
use super::source::GriddedSource;

/// A series: its times and, for each, (source, index into that source's time axis).
pub(super) type Series = (Vec<i64>, Vec<(usize, usize)>);

/// Joins the files of one group (the same fields) into one series: in order of their first time, each starting
/// one step after the previous one ends. Returns the times and, for each, (source, index in its time axis).
pub(super) fn join_series(
    sources: &[Box<dyn GriddedSource>],
    axes: &[FileAxes],
    members: &[usize],
) -> Result<Series, DatasetError> {
    let times_of = |s: usize| axes[s].time.as_ref().map_or(&[][..], |t| &t.hours[..]);
    let mut order = members.to_vec();
    order.sort_by_key(|&s| times_of(s).first().copied());
    let step = order
        .iter()
        .find_map(|&s| {
            let hours = times_of(s);
            (hours.len() >= 2).then(|| hours[1] - hours[0])
        })
        .filter(|&step| step > 0);
    let mut hours = Vec::new();
    let mut map = Vec::new();
    for (n, &s) in order.iter().enumerate() {
        let own = times_of(s);
        if n > 0 {
            let before = order[n - 1];
            let (Some(&last), Some(&next)) = (times_of(before).last(), own.first()) else {
                continue;
            };
            if next <= last {
                let overlapping = own.iter().filter(|&&t| t <= last).count();
                let until = own
                    .iter()
                    .copied()
                    .filter(|&t| t <= last)
                    .max()
                    .unwrap_or(next);
                return Err(DatasetError::SeriesOverlap {
                    first: sources[before].path().to_path_buf(),
                    second: sources[s].path().to_path_buf(),
                    from_hours: next,
                    to_hours: until,
                    count: overlapping,
                });
            }
            if let Some(step) = step
                && next - last > step
            {
                return Err(DatasetError::SeriesGap {
                    before: sources[before].path().to_path_buf(),
                    after: sources[s].path().to_path_buf(),
                    last_hours: last,
                    next_hours: next,
                    step_hours: step,
                    missing: (next - last) / step - 1,
                });
            }
        }
        hours.extend_from_slice(own);
        map.extend((0..own.len()).map(|k| (s, k)));
    }
    Ok((hours, map))
}

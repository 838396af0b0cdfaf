//! CF time coordinates: `units = "hours since 1900-01-01 00:00:00.0"` and friends, turned into whole hours since
//! 1970-01-01T00:00:00Z, the one time representation used downstream.
//!
//! Only the Gregorian calendars are accepted: ERA5 and WeatherBench use them, and converting `noleap` or
//! `360_day` times to real dates silently would be wrong. Times must fall on whole hours because
//! [`crate::dataset::Dataset::time_hours`] is an integer number of hours.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

const SECONDS_PER_HOUR: i64 = 3600;

/// Why a time string, units attribute or time value could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TimeFormatError(pub String);

/// A parsed CF time `units` attribute: `<unit> since <reference>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfTimeUnits {
    /// Length of one unit in seconds (86400 for days, 3600 for hours, ...).
    pub seconds_per_unit: i64,
    /// The reference instant as seconds since 1970-01-01T00:00:00Z.
    pub reference_seconds: i64,
}

impl CfTimeUnits {
    /// Parses `"hours since 1900-01-01 00:00:00.0"`, `"seconds since 1970-01-01"`,
    /// `"days since 2000-1-1T06:00:00Z"`, ...
    pub fn parse(units: &str) -> Result<Self, TimeFormatError> {
        let bad = |why: &str| TimeFormatError(format!("cannot parse time units {units:?}: {why}"));
        let lower = units.trim().to_ascii_lowercase();
        let (unit, reference) = lower
            .split_once(" since ")
            .ok_or_else(|| bad("expected `<unit> since <date>`"))?;
        let seconds_per_unit = seconds_per_unit(unit.trim())
            .ok_or_else(|| bad(&format!("unsupported unit `{}`", unit.trim())))?;
        let reference_seconds = parse_instant(reference.trim()).map_err(|e| bad(&e.0))?;
        Ok(Self {
            seconds_per_unit,
            reference_seconds,
        })
    }

    /// Converts one stored time value to whole hours since 1970-01-01T00:00:00Z.
    ///
    /// Integral values are converted exactly in integer arithmetic; fractional values (e.g. `0.25 days`) are
    /// accepted when they land within a millisecond of a whole second.
    pub fn to_hours_since_epoch(&self, value: f64) -> Result<i64, TimeFormatError> {
        if !value.is_finite() {
            return Err(TimeFormatError(format!("time value {value} is not finite")));
        }
        // 2^53: beyond this f64 no longer holds every integer.
        const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;
        let offset_seconds = if value.fract() == 0.0 && value.abs() < EXACT_INTEGER_LIMIT {
            (value as i64).checked_mul(self.seconds_per_unit)
        } else {
            let seconds = value * self.seconds_per_unit as f64;
            let rounded = seconds.round();
            if (seconds - rounded).abs() > 1e-3 || rounded.abs() >= EXACT_INTEGER_LIMIT {
                return Err(TimeFormatError(format!(
                    "time value {value} is not a whole number of seconds"
                )));
            }
            Some(rounded as i64)
        };
        let seconds = offset_seconds
            .and_then(|s| s.checked_add(self.reference_seconds))
            .ok_or_else(|| TimeFormatError(format!("time value {value} overflows")))?;
        if seconds.rem_euclid(SECONDS_PER_HOUR) != 0 {
            return Err(TimeFormatError(format!(
                "time {} is not on a whole hour (datasets hold whole hours)",
                format_seconds(seconds)
            )));
        }
        Ok(seconds.div_euclid(SECONDS_PER_HOUR))
    }
}

/// Seconds in one CF time unit (`days`, `hours`, `minutes`, `seconds` and their abbreviations).
fn seconds_per_unit(unit: &str) -> Option<i64> {
    match unit {
        "days" | "day" | "d" => Some(86_400),
        "hours" | "hour" | "hrs" | "hr" | "h" => Some(3_600),
        "minutes" | "minute" | "mins" | "min" => Some(60),
        "seconds" | "second" | "secs" | "sec" | "s" => Some(1),
        _ => None,
    }
}

/// True for CF time-instant units (`<unit> since <date>`).
pub fn is_instant_units(units: &str) -> bool {
    units.to_ascii_lowercase().contains(" since ")
}

/// A duration stored with CF units without a reference date (`units = "hours"`: xarray's timedeltas, cfgrib's
/// `step`), in whole hours.
pub fn duration_hours(units: &str, value: f64) -> Result<i64, TimeFormatError> {
    let unit = units.trim().to_ascii_lowercase();
    let seconds_per_unit = seconds_per_unit(&unit).ok_or_else(|| {
        TimeFormatError(format!(
            "cannot parse duration units {units:?}: expected days, hours, minutes or seconds"
        ))
    })?;
    CfTimeUnits {
        seconds_per_unit,
        reference_seconds: 0,
    }
    .to_hours_since_epoch(value)
}

/// Accepts the Gregorian CF calendars and refuses the others.
///
/// `standard`/`gregorian` switch to the Julian calendar before 1582-10-15; times after a reference past that
/// date are the same as in `proleptic_gregorian`, so a reference before it is refused rather than mis-converted.
pub fn check_calendar(calendar: Option<&str>, units: &CfTimeUnits) -> Result<(), TimeFormatError> {
    // 1582-10-15T00:00:00Z, the first Gregorian day, as seconds since 1970.
    const GREGORIAN_START_SECONDS: i64 = -12_219_292_800;
    let name = calendar.map(|c| c.trim().to_ascii_lowercase());
    match name.as_deref() {
        None | Some("proleptic_gregorian") => Ok(()),
        Some("standard" | "gregorian") if units.reference_seconds >= GREGORIAN_START_SECONDS => Ok(()),
        Some("standard" | "gregorian") => Err(TimeFormatError(
            "calendar `standard` with a reference date before 1582-10-15 mixes Julian and Gregorian dates; \
             not supported"
                .to_string(),
        )),
        Some(other) => Err(TimeFormatError(format!(
            "calendar `{other}` is not supported (only standard/gregorian/proleptic_gregorian)"
        ))),
    }
}

/// Parses an ISO 8601 date or date-time as whole hours since 1970-01-01T00:00:00Z.
///
/// Accepts `2016-01-01`, `2016-01-01T06:00:00Z`, `2016-01-01T06:00`, `2016-01-01 06:00:00`; the time must be on
/// a whole hour. Used for split boundaries in configs.
pub fn parse_iso8601_hours(text: &str) -> Result<i64, TimeFormatError> {
    let seconds = parse_instant(text.trim())?;
    if seconds.rem_euclid(SECONDS_PER_HOUR) != 0 {
        return Err(TimeFormatError(format!("{text:?} is not on a whole hour")));
    }
    Ok(seconds.div_euclid(SECONDS_PER_HOUR))
}

/// Formats hours since 1970-01-01T00:00:00Z as ISO 8601, e.g. `1979-01-01T06:00:00Z`.
pub fn iso8601(hours_since_epoch: i64) -> String {
    hours_since_epoch
        .checked_mul(SECONDS_PER_HOUR)
        .map(format_seconds)
        .unwrap_or_else(|| format!("{hours_since_epoch} hours since 1970-01-01"))
}

/// The common step of an increasing, evenly spaced time axis in hours; `None` for fewer than two times.
///
/// Err((index, step, first_step)) names the first step (between `index - 1` and `index`) that differs from the
/// first one, or the first step itself (index 1) when it is not positive.
pub fn uniform_step_hours(time_hours: &[i64]) -> Result<Option<i64>, (usize, i64, i64)> {
    let Some(first_step) = time_hours.get(1).map(|t1| t1 - time_hours[0]) else {
        return Ok(None);
    };
    if first_step <= 0 {
        return Err((1, first_step, first_step));
    }
    for index in 2..time_hours.len() {
        let step = time_hours[index] - time_hours[index - 1];
        if step != first_step {
            return Err((index, step, first_step));
        }
    }
    Ok(Some(first_step))
}

fn format_seconds(seconds: i64) -> String {
    match DateTime::from_timestamp(seconds, 0) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{seconds} s since 1970-01-01"),
    }
}

/// Parses `date[(T| )time][zone]` as seconds since 1970-01-01T00:00:00Z.
///
/// date: `Y-M-D` (one- or two-digit month and day); time: `H:M[:S[.fff]]`; zone: `Z`, `UTC`, `GMT` or `±HH[:MM]`.
fn parse_instant(text: &str) -> Result<i64, TimeFormatError> {
    let bad = |why: &str| TimeFormatError(format!("cannot parse date-time {text:?}: {why}"));
    let mut parts = text.split_whitespace();
    let first = parts.next().ok_or_else(|| bad("empty"))?;
    // `2000-01-01T06:00:00Z`: the date and the time of day share one token.
    let (date_text, joined_clock) = match first.split_once(['T', 't']) {
        Some((date, clock)) => (date, Some(clock)),
        None => (first, None),
    };
    let date = parse_date(date_text).ok_or_else(|| bad("expected a date like 1900-01-01"))?;
    let mut time = NaiveTime::MIN;
    let mut offset_seconds = 0_i64;
    for part in joined_clock.into_iter().chain(parts) {
        let (clock, zone) = split_zone(part);
        if !clock.is_empty() {
            time = parse_clock(clock).ok_or_else(|| bad(&format!("bad time of day `{clock}`")))?;
        }
        if let Some(zone) = zone {
            offset_seconds =
                parse_zone(zone).ok_or_else(|| bad(&format!("bad time zone `{zone}`")))?;
        }
    }
    Ok(NaiveDateTime::new(date, time).and_utc().timestamp() - offset_seconds)
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    // A leading '-' would be a negative year: not needed for weather data.
    let mut fields = text.split('-');
    let year: i32 = fields.next()?.parse().ok()?;
    let month: u32 = fields.next()?.parse().ok()?;
    let day: u32 = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Splits `06:00:00Z` into (`06:00:00`, Some(`Z`)), `06:00+01:00` into (`06:00`, Some(`+01:00`)).
fn split_zone(part: &str) -> (&str, Option<&str>) {
    let upper = part.to_ascii_uppercase();
    if upper == "UTC" || upper == "GMT" || upper == "Z" {
        return ("", Some(part));
    }
    if let Some(stripped) = part.strip_suffix(['Z', 'z']) {
        return (stripped, Some("Z"));
    }
    match part.find(['+', '-']) {
        Some(i) => (&part[..i], Some(&part[i..])),
        None => (part, None),
    }
}

fn parse_clock(text: &str) -> Option<NaiveTime> {
    let mut fields = text.split(':');
    let hour: u32 = fields.next()?.parse().ok()?;
    let minute: u32 = fields.next().map_or(Some(0), |m| m.parse().ok())?;
    let second: f64 = fields.next().map_or(Some(0.0), |s| s.parse().ok())?;
    if fields.next().is_some() || second.fract() != 0.0 || !(0.0..60.0).contains(&second) {
        return None;
    }
    NaiveTime::from_hms_opt(hour, minute, second as u32)
}

fn parse_zone(zone: &str) -> Option<i64> {
    let upper = zone.to_ascii_uppercase();
    if upper == "Z" || upper == "UTC" || upper == "GMT" {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        1 | 2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    Some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era5_classic_units_give_known_hours() {
        // 1900 -> 1979: 79 years with 19 leap days = 28,854 days = 692,496 h; 1970 -> 1979: 3,287 days.
        let units = CfTimeUnits::parse("hours since 1900-01-01 00:00:00.0").unwrap();
        assert_eq!(units.seconds_per_unit, 3600);
        assert_eq!(units.to_hours_since_epoch(692_496.0).unwrap(), 3_287 * 24);
    }

    #[test]
    fn seconds_since_1970_is_the_unix_timestamp() {
        // 2024-01-01T00:00:00Z is Unix time 1,704,067,200 (date -d 2024-01-01Z +%s).
        let units = CfTimeUnits::parse("seconds since 1970-01-01").unwrap();
        assert_eq!(
            units.to_hours_since_epoch(1_704_067_200.0).unwrap(),
            1_704_067_200 / 3600
        );
        assert_eq!(iso8601(1_704_067_200 / 3600), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn variants_of_reference_syntax_parse_to_the_same_instant() {
        let expected = CfTimeUnits::parse("days since 2000-01-01 06:00:00").unwrap();
        for units in [
            "days since 2000-1-1 6:00",
            "days since 2000-01-01T06:00:00Z",
            "Days since 2000-01-01 06:00:00 UTC",
            "day since 2000-01-01 07:00:00 +01:00",
            "days since 2000-01-01T05:00:00-0100",
        ] {
            assert_eq!(CfTimeUnits::parse(units).unwrap(), expected, "{units}");
        }
        // 0.25 days after 06:00 is 12:00; 2000-01-01 is 10,957 days after 1970-01-01.
        assert_eq!(
            expected.to_hours_since_epoch(0.25).unwrap(),
            10_957 * 24 + 12
        );
    }

    #[test]
    fn times_off_the_hour_and_odd_calendars_are_refused() {
        let minutes = CfTimeUnits::parse("minutes since 2000-01-01").unwrap();
        assert!(minutes.to_hours_since_epoch(30.0).is_err());
        assert_eq!(
            minutes.to_hours_since_epoch(120.0).unwrap(),
            10_957 * 24 + 2
        );
        assert!(CfTimeUnits::parse("fortnights since 2000-01-01").is_err());
        assert!(CfTimeUnits::parse("hours after 2000-01-01").is_err());
        assert!(CfTimeUnits::parse("hours since 2000-01-01 00:00 +1é2").is_err());
        assert!(check_calendar(Some("noleap"), &minutes).is_err());
        assert!(check_calendar(Some("gregorian"), &minutes).is_ok());
        let early = CfTimeUnits::parse("days since 1500-01-01").unwrap();
        assert!(check_calendar(Some("standard"), &early).is_err());
        assert!(check_calendar(Some("proleptic_gregorian"), &early).is_ok());
    }

    #[test]
    fn durations_are_whole_hours() {
        assert_eq!(duration_hours("hours", 6.0).unwrap(), 6);
        assert_eq!(duration_hours("days", 0.5).unwrap(), 12);
        assert_eq!(duration_hours(" Minutes ", 360.0).unwrap(), 6);
        assert!(duration_hours("hours", 0.5).is_err());
        assert!(duration_hours("hours since 2000-01-01", 1.0).is_err());
        assert!(is_instant_units("hours since 2000-01-01") && !is_instant_units("hours"));
    }

    #[test]
    fn iso_dates_round_trip() {
        assert_eq!(parse_iso8601_hours("1970-01-02").unwrap(), 24);
        assert_eq!(parse_iso8601_hours("1970-01-01T06:00:00Z").unwrap(), 6);
        assert_eq!(parse_iso8601_hours("1969-12-31 18:00").unwrap(), -6);
        assert_eq!(iso8601(-6), "1969-12-31T18:00:00Z");
        assert!(parse_iso8601_hours("1970-01-01T06:30").is_err());
        assert!(parse_iso8601_hours("1970-13-01").is_err());
    }

    #[test]
    fn uniform_steps_are_found_and_breaks_located() {
        assert_eq!(uniform_step_hours(&[0, 6, 12, 18]), Ok(Some(6)));
        assert_eq!(uniform_step_hours(&[5]), Ok(None));
        assert_eq!(uniform_step_hours(&[0, 6, 12, 24]), Err((3, 12, 6)));
        assert_eq!(uniform_step_hours(&[6, 0]), Err((1, -6, -6)));
    }
}

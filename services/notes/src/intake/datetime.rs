//! Date/time values of FHIR R4 (dateTime, instant: §2.24.0.1 "Primitive
//! Types") and HL7 v2.5.1 (TS/DTM: §2.A.74, §2.A.22) as UTC instants.
//!
//! Both formats allow partial values (`2020-01`, `202001`). A partial value
//! resolves to the start of the period it names, and a value without a time
//! of day to 00:00 UTC of its first day (there is no zone to apply): `2020-01`
//! becomes 2020-01-01T00:00:00Z with precision [`DatePrecision::Month`], so a
//! reader can tell it from a real midnight.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

/// How much of a date/time the source gave; the remaining fields of
/// [`crate::intake::DecodedNote::authored_at`] are the start of the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePrecision {
    /// `YYYY`.
    Year,
    /// `YYYY-MM` (FHIR) or `YYYYMM` (HL7).
    Month,
    /// A calendar date.
    Day,
    /// `YYYYMMDDHH` (HL7 only).
    Hour,
    /// `YYYYMMDDHHMM` (HL7 only).
    Minute,
    /// Seconds, with or without a fraction.
    Second,
}

/// A parsed date/time and how precise the source was.
pub(crate) type Stamp = (DateTime<Utc>, DatePrecision);

/// Parses a FHIR R4 `dateTime` or `instant`: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`,
/// or `YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm)` (the zone is required with a time).
pub(crate) fn parse_fhir(s: &str) -> Option<Stamp> {
    let s = s.trim();
    let digits = |part: &str, n: usize| part.len() == n && part.bytes().all(|b| b.is_ascii_digit());
    match s.len() {
        4 if digits(s, 4) => midnight(s.parse().ok()?, 1, 1, DatePrecision::Year),
        7 => {
            let (y, m) = s.split_once('-')?;
            (digits(y, 4) && digits(m, 2))
                .then_some(())
                .and_then(|()| midnight(y.parse().ok()?, m.parse().ok()?, 1, DatePrecision::Month))
        }
        10 => {
            let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            // chrono accepts one-digit fields; FHIR does not.
            (s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' && digits(&s[..4], 4)).then(|| {
                (
                    date.and_time(chrono::NaiveTime::MIN).and_utc(),
                    DatePrecision::Day,
                )
            })
        }
        _ if s.contains('T') => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| (t.with_timezone(&Utc), DatePrecision::Second)),
        _ => None,
    }
}

/// Parses an HL7 v2 TS/DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][±ZZZZ]`.
/// A time without an offset is in `default_offset` (the offset of MSH-7, as
/// HL7 v2.5.1 §2.A.74 lets the message time zone stand for the sender's),
/// else in UTC.
pub(crate) fn parse_hl7(s: &str, default_offset: Option<FixedOffset>) -> Option<Stamp> {
    let s = s.trim();
    let (local, offset) = split_offset(s)?;
    let (whole, fraction) = match local.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (local, None),
    };
    if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> { whole.get(range)?.parse().ok() };
    let year = i32::try_from(num(0..4)?).ok()?;
    let precision = match whole.len() {
        4 => DatePrecision::Year,
        6 => DatePrecision::Month,
        8 => DatePrecision::Day,
        10 => DatePrecision::Hour,
        12 => DatePrecision::Minute,
        14 => DatePrecision::Second,
        _ => return None,
    };
    if fraction.is_some() && precision != DatePrecision::Second {
        return None;
    }
    let month = if whole.len() >= 6 { num(4..6)? } else { 1 };
    let day = if whole.len() >= 8 { num(6..8)? } else { 1 };
    if whole.len() <= 8 {
        // No time of day: no zone applies.
        return midnight(year, month, day, precision);
    }
    let hour = num(8..10)?;
    let minute = if whole.len() >= 12 { num(10..12)? } else { 0 };
    let second = if whole.len() >= 14 { num(12..14)? } else { 0 };
    let nanos = match fraction {
        Some(f) if (1..=4).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - u32::try_from(f.len()).ok()?)
        }
        Some(_) => return None,
        None => 0,
    };
    let naive: NaiveDateTime =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nanos)?;
    let offset = offset
        .or(default_offset)
        .unwrap_or(FixedOffset::east_opt(0)?);
    let local = naive.and_local_timezone(offset).single()?;
    Some((local.with_timezone(&Utc), precision))
}

/// The explicit offset of an HL7 TS, if it has one (used for MSH-7).
pub(crate) fn hl7_offset(s: &str) -> Option<FixedOffset> {
    split_offset(s.trim()).and_then(|(_, offset)| offset)
}

/// Splits `±ZZZZ` off the end of an HL7 TS. `None` when an offset is there
/// but malformed.
fn split_offset(s: &str) -> Option<(&str, Option<FixedOffset>)> {
    let Some(pos) = s.find(['+', '-']) else {
        return Some((s, None));
    };
    let (local, zone) = s.split_at(pos);
    let digits = &zone[1..];
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = (hours * 3600 + minutes * 60) * if zone.starts_with('-') { -1 } else { 1 };
    Some((local, Some(FixedOffset::east_opt(seconds)?)))
}

fn midnight(year: i32, month: u32, day: u32, precision: DatePrecision) -> Option<Stamp> {
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    Some((date.and_time(chrono::NaiveTime::MIN).and_utc(), precision))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn fhir_partial_dates_resolve_to_the_start_of_the_period() {
        assert_eq!(
            parse_fhir("2020-01"),
            Some((utc("2020-01-01T00:00:00Z"), DatePrecision::Month))
        );
        assert_eq!(
            parse_fhir("2020"),
            Some((utc("2020-01-01T00:00:00Z"), DatePrecision::Year))
        );
        assert_eq!(
            parse_fhir("2020-02-29"),
            Some((utc("2020-02-29T00:00:00Z"), DatePrecision::Day))
        );
        assert_eq!(
            parse_fhir("2012-12-01T12:00:00+01:00"),
            Some((utc("2012-12-01T11:00:00Z"), DatePrecision::Second))
        );
        assert_eq!(
            parse_fhir("2021-11-10T21:39:30.000Z").map(|s| s.0),
            Some(utc("2021-11-10T21:39:30Z"))
        );
    }

    #[test]
    fn fhir_malformed_dates_are_refused() {
        for bad in [
            "2020-13",
            "2020-1-1",
            "2019-02-29",
            "20",
            "2020-01-01T10:00",
            "yesterday",
        ] {
            assert_eq!(parse_fhir(bad), None, "{bad}");
        }
    }

    #[test]
    fn hl7_ts_with_and_without_offsets() {
        assert_eq!(
            parse_hl7("200801311555+0215", None),
            Some((utc("2008-01-31T13:40:00Z"), DatePrecision::Minute))
        );
        assert_eq!(
            parse_hl7("20020215073000-0600", None),
            Some((utc("2002-02-15T13:30:00Z"), DatePrecision::Second))
        );
        let msh7 = hl7_offset("20240102030405+0100");
        assert_eq!(
            parse_hl7("202401020304", msh7).map(|s| s.0),
            Some(utc("2024-01-02T02:04:00Z"))
        );
        assert_eq!(
            parse_hl7("20240102030405.25", None).map(|s| s.0),
            Some(utc("2024-01-02T03:04:05.25Z"))
        );
        assert_eq!(
            parse_hl7("202001", None),
            Some((utc("2020-01-01T00:00:00Z"), DatePrecision::Month))
        );
    }

    #[test]
    fn hl7_malformed_ts_is_refused() {
        for bad in [
            "2020013",
            "20201301",
            "2020010125",
            "20200101+02",
            "2020-01-01",
            "20200101.5",
        ] {
            assert_eq!(parse_hl7(bad, None), None, "{bad}");
        }
    }
}

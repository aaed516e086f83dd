//! Time in the format and on the command line: the record's timestamp (RFC 3339 UTC with
//! microseconds and `Z`, SPEC §3), the older shapes readers still accept, and the times and
//! spans the command line takes (`2026-11-01`, `90s`, `7d`).

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};

/// Formats a time as the format's timestamp: RFC 3339 UTC with microseconds and `Z`.
#[must_use]
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    // Every record without a timestamp passes here: digits by hand, not through `fmt`.
    fn digits(out: &mut [u8], mut n: u32) {
        for d in out.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let Some(year) = u32::try_from(t.year()).ok().filter(|y| *y <= 9999) else {
        let mut s = String::with_capacity(32);
        let _ = write!(
            s,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond().min(999_999_999) / 1000
        );
        return s;
    };
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut b[0..4], year);
    digits(&mut b[5..7], t.month());
    digits(&mut b[8..10], t.day());
    digits(&mut b[11..13], t.hour());
    digits(&mut b[14..16], t.minute());
    digits(&mut b[17..19], t.second());
    digits(&mut b[20..26], t.nanosecond().min(999_999_999) / 1000);
    b.iter().map(|&c| char::from(c)).collect()
}

/// Parses a timestamp as stored by this or the old logger: RFC 3339 with any offset, or a
/// date-time without offset (taken as UTC).
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// True for the writer's own timestamp shape, which sorts as text.
pub(crate) fn is_canonical(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 27 && b[10] == b'T' && b[19] == b'.' && b[26] == b'Z'
}

/// Parses a time given on the command line: RFC 3339 (`2026-11-01T09:00:00Z`), a date
/// (`2026-11-01`, midnight UTC), or a span back from `now` (`90s`, `15m`, `1h`, `7d`, `2w`).
///
/// # Errors
///
/// One sentence saying what is accepted.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Some(t) = parse_timestamp(s) {
        return Ok(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    if let Some(t) = parse_span(s).and_then(|d| now.checked_sub_signed(d)) {
        return Ok(t);
    }
    Err(format!(
        "cannot read the time {s:?}: use RFC 3339 (2026-11-01T09:00:00Z), a date (2026-11-01) or a span back from now (90s, 15m, 1h, 7d, 2w)"
    ))
}

/// A span: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`90s`, `15m`, `7d`).
#[must_use]
pub fn parse_span(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n = num.parse::<i64>().ok()?;
    match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_formatted_like_rfc3339_with_microseconds() {
        let t = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.089123456Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(format_timestamp(t), "2026-03-04T05:06:07.089123Z");
        let t = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(format_timestamp(t), "0001-01-01T00:00:00.000000Z");
    }

    #[test]
    fn times_are_read_in_all_three_forms() -> Result<(), String> {
        let now = parse_time("2026-11-22T12:00:00Z", Utc::now())?;
        assert_eq!(
            parse_time("2026-11-01", now)?,
            parse_time("2026-11-01T00:00:00Z", now)?
        );
        assert_eq!(
            parse_time("90s", now)?,
            parse_time("2026-11-22T11:58:30Z", now)?
        );
        assert_eq!(
            parse_time("2w", now)?,
            parse_time("2026-11-08T12:00:00Z", now)?
        );
        assert_eq!(
            parse_time("1h", now)?,
            parse_time("2026-11-22T11:00:00Z", now)?
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5y", now).is_err());
        Ok(())
    }
}

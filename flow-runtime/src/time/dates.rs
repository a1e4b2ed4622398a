//! Dates as DAG definitions and the CLI write them: a day or an RFC 3339 time.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Parses `2025-01-01` (midnight UTC) or an RFC 3339 time.
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    parse_date_in(text, Tz::UTC)
}

/// Parses `2025-01-01` (midnight in `tz`, or the first instant of that day when the
/// clocks skip midnight) or an RFC 3339 time (whose offset says where it is).
pub fn parse_date_in(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return start_of_day(date, tz);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The first instant of `date` in `tz`: midnight, or the end of a change of the clocks
/// that skips it (as in `America/Santiago`).
fn start_of_day(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    (0..=MAX_GAP_MINUTES)
        .filter_map(|minute| midnight.checked_add_signed(chrono::TimeDelta::minutes(minute)))
        .find_map(|local| tz.from_local_datetime(&local).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// The longest gap, in minutes, a change of the clocks may leave in local time.
const MAX_GAP_MINUTES: i64 = 2 * 24 * 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_midnight_in_the_time_zone() {
        let amsterdam = Tz::Europe__Amsterdam;
        assert_eq!(
            parse_date_in("2025-07-01", amsterdam).unwrap().to_rfc3339(),
            "2025-06-30T22:00:00+00:00"
        );
        // An explicit offset wins over the time zone.
        assert_eq!(
            parse_date_in("2025-07-01T00:00:00Z", amsterdam)
                .unwrap()
                .to_rfc3339(),
            "2025-07-01T00:00:00+00:00"
        );
        // Santiago skipped midnight on 2024-09-08: the day starts at 01:00 local (-03:00).
        assert_eq!(
            parse_date_in("2024-09-08", Tz::America__Santiago)
                .unwrap()
                .to_rfc3339(),
            "2024-09-08T04:00:00+00:00"
        );
    }

    #[test]
    fn dates_parse_as_days_or_rfc3339() {
        assert_eq!(
            parse_date("2025-01-01").unwrap().to_rfc3339(),
            "2025-01-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_date("2025-01-01T02:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2025-01-01T01:00:00+00:00"
        );
        assert!(parse_date("01/01/2025").is_none());
    }
}

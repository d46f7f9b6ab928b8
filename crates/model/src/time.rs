//! Instants as Loupe reads and prints them, everywhere: the API's query
//! parameters and bodies, every CLI flag, the config.
//!
//! An instant is written as RFC 3339 (`2026-11-24T10:00:00Z`, any offset,
//! any fraction) or as an integer count of nanoseconds since the Unix epoch;
//! it is printed as RFC 3339 in UTC with the fraction it needs. Durations
//! are humantime text (`30s`, `1h 30m`, see [`crate::duration_text`]).
//! Keeping one parser means one error message, one accepted syntax and one
//! unit for bare numbers (nanoseconds, the unit every stored time uses).

use chrono::{DateTime, SecondsFormat};

/// Text that is not an instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a time: use RFC 3339 (2026-11-24T10:00:00Z) or nanoseconds since the epoch"
)]
pub struct TimeError {
    /// The text as given (cut to 64 characters).
    pub text: String,
}

/// Parses an instant: RFC 3339, or an integer of nanoseconds since the
/// epoch. Returns nanoseconds since the epoch.
///
/// # Errors
/// [`TimeError`] when the text is neither, or the time does not fit in
/// `i64` nanoseconds (years 1677–2262).
pub fn parse_instant(text: &str) -> Result<i64, TimeError> {
    let text = text.trim();
    if let Ok(ns) = text.parse::<i64>() {
        return Ok(ns);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| TimeError {
            text: text.chars().take(64).collect(),
        })
}

/// Prints nanoseconds since the epoch as RFC 3339 in UTC, with as many
/// fraction digits as the value needs (none, 3, 6 or 9).
pub fn format_instant(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The wall clock in nanoseconds since the epoch: 0 for a clock before
/// 1970, saturating at `i64::MAX` far in the future. Every "now" Loupe
/// reads (ingest time windows, retention, rollup windows) comes from here.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_from_rfc3339_with_any_offset_or_from_nanoseconds() {
        let cases: &[(&str, i64)] = &[
            ("2026-11-24T10:00:00Z", 1_795_514_400_000_000_000),
            ("2026-11-24T18:00:00+08:00", 1_795_514_400_000_000_000),
            ("2026-11-24T10:00:00.5Z", 1_795_514_400_500_000_000),
            ("1795514400000000000", 1_795_514_400_000_000_000),
            (" 42 ", 42),
            ("-5", -5),
        ];
        for (text, ns) in cases {
            assert_eq!(parse_instant(text), Ok(*ns), "{text}");
        }
    }

    #[test]
    fn non_instants_are_errors_that_say_what_to_write() {
        for text in [
            "yesterday",
            "2026-13-02",
            "",
            "2026-11-24 10:00",
            "9999-01-01T00:00:00Z",
        ] {
            let err = parse_instant(text).expect_err(text);
            assert!(err.to_string().contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn instants_print_as_utc_rfc3339_with_the_fraction_they_need() {
        assert_eq!(
            format_instant(1_795_514_400_000_000_000),
            "2026-11-24T10:00:00Z"
        );
        assert_eq!(
            format_instant(1_795_514_400_123_000_000),
            "2026-11-24T10:00:00.123Z"
        );
        let ns = 1_795_514_400_123_456_789;
        assert_eq!(parse_instant(&format_instant(ns)), Ok(ns));
    }
}

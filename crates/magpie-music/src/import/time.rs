//! Parsing the time formats the sources write, to microseconds since the Unix epoch (UTC),
//! and the bounds an imported time and duration must keep ([`Plausible`]).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// One day in microseconds: how far ahead of this machine's clock a listen may be (a device
/// whose clock runs a little fast, time zones mistaken for UTC).
const FUTURE_SLACK_US: i64 = 86_400 * 1_000_000;

/// 2000-01-01 in microseconds.
const MILLENNIUM_US: i64 = 946_684_800 * 1_000_000;

/// The longest play or track duration accepted, in milliseconds: 7 days. Real plays are
/// minutes, podcasts and audiobooks some hours (the longest in the sample exports is about
/// two); a week leaves room for any real recording left playing, while a value beyond it is
/// not a duration at all (a timestamp in the wrong field, 10^18, a wrapped number) and would
/// put the start of the play anywhere.
pub const MAX_DURATION_MS: i64 = 7 * 24 * 3_600 * 1_000;

/// The range an imported listening time must fall in: from the Unix epoch (1970-01-01; Last.fm
/// began in 2002 and Spotify in 2006, but the bound only has to catch wrong numbers, not judge
/// history, so it is lenient) to a day after now. Anything outside is a wrong number, not a listen:
/// the importer refuses the file with the field and record named, rather than store a time
/// centuries away (or wrapped around) that the models would count.
#[derive(Debug, Clone, Copy)]
pub struct Plausible {
    latest_us: i64,
}

impl Plausible {
    /// The range as of this moment (read once per file).
    pub fn now() -> Self {
        Self {
            latest_us: Utc::now()
                .timestamp_micros()
                .saturating_add(FUTURE_SLACK_US),
        }
    }

    /// Whether `us` is a plausible listening time.
    pub fn contains(&self, us: i64) -> bool {
        (0..=self.latest_us).contains(&us)
    }

    /// "outside the plausible range of listening times, 1970-01-01 to 2026-05-02 (a day after
    /// now)".
    pub fn outside(&self) -> String {
        format!(
            "outside the plausible range of listening times, 1970-01-01 to {} (a day after now)",
            DateTime::from_timestamp_micros(self.latest_us).map_or_else(
                || self.latest_us.to_string(),
                |t| t.format("%Y-%m-%d").to_string()
            )
        )
    }

    /// Unix seconds as microseconds, if the product fits and is plausible; else why not.
    pub fn unix_seconds(&self, secs: i64) -> Result<i64, String> {
        match secs.checked_mul(1_000_000) {
            Some(us) if self.contains(us) => Ok(us),
            Some(us) => {
                // Milliseconds since 2000 are a common mix-up (Spotify writes them).
                let us_if_ms = secs.saturating_mul(1_000);
                let hint = if us_if_ms >= MILLENNIUM_US && self.contains(us_if_ms) {
                    " (milliseconds rather than seconds?)"
                } else {
                    ""
                };
                Err(format!(
                    "is {secs}, which is {}, {}{hint}",
                    show(us),
                    self.outside()
                ))
            }
            None => Err(format!(
                "is {secs}, too large to be unix seconds: {}",
                self.outside()
            )),
        }
    }

    /// The start of a play that ended at `ended_us` and lasted `ms` (both checked by the
    /// caller), if plausible.
    pub fn start(&self, ended_us: i64, ms: i64) -> Option<i64> {
        ms.checked_mul(1_000)
            .and_then(|d| ended_us.checked_sub(d))
            .filter(|us| self.contains(*us))
    }

    /// A time written as `text` in `field`, as `parse` reads it: the microseconds if parsed and
    /// plausible; else a message naming the field, the text and `expected` (the format).
    pub fn parse_field(
        &self,
        field: &str,
        text: &str,
        parse: impl FnOnce(&str) -> Option<i64>,
        expected: &str,
    ) -> Result<i64, String> {
        let us =
            parse(text).ok_or_else(|| format!("`{field}` is \"{text}\", expected {expected}"))?;
        if !self.contains(us) {
            return Err(format!("`{field}` is \"{text}\", {}", self.outside()));
        }
        Ok(us)
    }

    /// The start of a play that ended at `ended_us` (written `end_text` in `end_field`) and
    /// lasted `ms` (from `ms_field`): checked duration and a plausible start, else why not.
    pub fn play_start(
        &self,
        ended_us: i64,
        (end_field, end_text): (&str, &str),
        (ms_field, ms): (&str, i64),
    ) -> Result<i64, String> {
        check_duration_ms(ms).map_err(|why| format!("`{ms_field}` {why}"))?;
        self.start(ended_us, ms).ok_or_else(|| {
            format!(
                "`{ms_field}` is {ms}: with `{end_field}` \"{end_text}\" the play would start before 1970"
            )
        })
    }
}

/// `ms` if it is a duration of 0 to [`MAX_DURATION_MS`]; else why not.
pub fn check_duration_ms(ms: i64) -> Result<i64, String> {
    if ms < 0 {
        Err(format!("is {ms}, expected a duration of 0 or more"))
    } else if ms > MAX_DURATION_MS {
        Err(format!(
            "is {ms} ms, more than 7 days ({MAX_DURATION_MS} ms): not a play duration"
        ))
    } else {
        Ok(ms)
    }
}

/// A time for messages: RFC 3339 when chrono can represent it, the number otherwise.
fn show(us: i64) -> String {
    DateTime::from_timestamp_micros(us).map_or_else(
        || format!("{us} µs from 1970"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

/// Spotify extended history `ts`: `2024-08-02T16:07:53Z` (also with fractions or an offset).
pub fn parse_spotify_ts(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .map(|n| n.and_utc().timestamp_micros())
}

/// Spotify basic history `endTime`: `2023-09-22 20:15` (UTC, minute precision).
pub fn parse_basic_end_time(text: &str) -> Option<i64> {
    let t = text.trim();
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .map(|n| n.and_utc().timestamp_micros())
}

/// Last.fm text dates as the common exporters write them (UTC):
/// `2018-09-08 11:52:44`, `2018-09-08T11:52:44Z`, `08 Sep 2018 11:52`, `08 Sep 2018, 11:52`,
/// `8 Sep 2018 11:52:44`, `2018-09-08 11:52`.
pub fn parse_lastfm_text(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(us) = parse_spotify_ts(t) {
        return Some(us);
    }
    const FORMATS: &[&str] = &[
        "%Y-%m-%d %H:%M",
        "%d %b %Y %H:%M",
        "%d %b %Y, %H:%M",
        "%d %b %Y %H:%M:%S",
        "%d %b %Y, %H:%M:%S",
        "%d/%m/%Y %H:%M",
        "%d/%m/%Y %H:%M:%S",
    ];
    for f in FORMATS {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Some(n.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            parse_spotify_ts("2024-08-02T16:07:53Z"),
            Some(1_722_614_873_000_000)
        );
        assert_eq!(
            parse_spotify_ts("2024-08-02T16:07:53.250Z"),
            Some(1_722_614_873_250_000)
        );
        assert_eq!(
            parse_basic_end_time("2023-09-22 20:15"),
            Some(1_695_413_700_000_000)
        );
        let a = parse_lastfm_text("08 Sep 2018 11:52").unwrap();
        assert_eq!(parse_lastfm_text("08 Sep 2018, 11:52"), Some(a));
        assert_eq!(
            parse_lastfm_text("2018-09-08 11:52:44"),
            Some(1_536_407_564_000_000)
        );
        assert_eq!(parse_spotify_ts("yesterday"), None);
        assert_eq!(parse_basic_end_time("2023-13-40 20:15"), None);
    }

    #[test]
    fn plausible_times_and_durations() {
        let range = Plausible::now();
        assert!(range.contains(0) && range.contains(1_722_614_873_000_000));
        assert!(!range.contains(-1));
        assert!(!range.contains(parse_spotify_ts("9999-01-01T00:00:00Z").unwrap()));
        assert_eq!(range.unix_seconds(1_536_407_564), Ok(1_536_407_564_000_000));
        let err = range.unix_seconds(i64::MAX).unwrap_err();
        assert!(err.contains("too large"), "{err}");
        let err = range.unix_seconds(1_536_407_564_000).unwrap_err();
        assert!(err.contains("milliseconds"), "{err}");
        assert!(range.unix_seconds(-1).is_err());
        assert_eq!(check_duration_ms(0), Ok(0));
        assert_eq!(check_duration_ms(MAX_DURATION_MS), Ok(MAX_DURATION_MS));
        assert!(check_duration_ms(MAX_DURATION_MS + 1).is_err());
        assert!(check_duration_ms(-5).unwrap_err().contains("-5"));
        assert_eq!(range.start(10_000_000, 4_000), Some(6_000_000));
        assert_eq!(range.start(1_000_000, 4_000), None, "before 1970");
        assert_eq!(range.start(i64::MIN, 1), None, "overflow");
    }
}

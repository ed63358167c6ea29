//! Parsing the time formats the sources write, to microseconds since the Unix epoch (UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

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
}

//! Maloja exports and backups: `{"maloja": {"export_time": …}, "scrobbles": [...]}`. The JSON
//! reading loop ([`super::json`]) streams the `scrobbles` array one element at a time; this file
//! turns one scrobble into one event.
//!
//! A scrobble's `time` (unix seconds) is when the play **started** (Maloja gives no end).
//! `duration` (seconds played, often null) becomes `ms_played`, the track's `length` (seconds)
//! its full length; `album.albumtitle` the album; `origin` (`client:NAME`) the platform, without
//! the `client:` prefix.
//!
//! **Artists.** Maloja keeps a track's artists as a list in no fixed order. When a client sent a
//! combined credit it could not fully split, the list holds the split names *and* the combined
//! string, e.g. `["Kanade Ishihara", "Magnify Tokyo • Kanade Ishihara"]`. The artist name is:
//! - that combined string, when one entry is `•`-joined and holds every other entry among its
//!   parts (it is the full credit; the others are parts of it), so the same track gets the same
//!   name whatever the order of the list;
//! - otherwise the entries joined with ", ", as Maloja's web pages show them.
//!
//! The whole list is kept in `extra_fields` as `artists` when it has more than one entry (and
//! the album's as `album_artists` when it differs). Unknown fields are kept there too.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::time;
use crate::event::{ContentKind, ListenEvent, Parsed, SkipReason};

/// The separator of a combined credit.
const COMBINED: &str = " • ";

/// One element of `scrobbles`.
#[derive(Deserialize)]
pub(super) struct Scrobble {
    #[serde(deserialize_with = "unix_time")]
    time: i64,
    #[serde(default)]
    track: Option<Track>,
    #[serde(default, deserialize_with = "seconds")]
    duration: Option<f64>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct Track {
    #[serde(default)]
    artists: Option<Vec<String>>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    album: Option<Album>,
    #[serde(default, deserialize_with = "seconds")]
    length: Option<f64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct Album {
    #[serde(default)]
    albumtitle: Option<String>,
    #[serde(default)]
    artists: Option<Vec<String>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl Scrobble {
    pub(super) fn into_event(
        self,
        position: u64,
        range: &time::Plausible,
    ) -> Result<Parsed, String> {
        let started = range
            .unix_seconds(self.time)
            .map_err(|why| format!("`time` {why}"))?;
        let Some(track) = self
            .track
            .filter(|t| t.title.as_deref().is_some_and(|s| !s.trim().is_empty()))
        else {
            return Ok(Err(SkipReason::NoMetadata));
        };
        let ms_played = duration_ms(self.duration, "duration")?;
        let track_duration_ms = duration_ms(track.length, "track.length")?;
        let artists: Vec<String> = track
            .artists
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let mut extra = self.extra;
        extra.extend(track.extra);
        if artists.len() > 1 {
            extra.insert("artists".into(), Value::from(artists.clone()));
        }
        let album_name = match track.album {
            Some(album) => {
                extra.extend(album.extra);
                if let Some(album_artists) = album.artists.filter(|a| *a != artists) {
                    extra.insert("album_artists".into(), Value::from(album_artists));
                }
                album.albumtitle.filter(|s| !s.trim().is_empty())
            }
            None => None,
        };
        let platform = self
            .origin
            .map(|o| o.strip_prefix("client:").unwrap_or(&o).to_string())
            .filter(|o| !o.is_empty());
        Ok(Ok(ListenEvent {
            position,
            content_kind: ContentKind::Track,
            started_at_us: Some(started),
            ms_played,
            track_name: track.title,
            artist_name: artist_name(&artists),
            album_name,
            track_duration_ms,
            platform,
            source_time_text: Some(self.time.to_string()),
            extra_fields: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
            ..Default::default()
        }))
    }
}

/// The artist name for Maloja's list of artists (see the module documentation).
fn artist_name(artists: &[String]) -> Option<String> {
    let combined = artists.iter().find(|a| {
        let parts: Vec<&str> = a.split(COMBINED).map(str::trim).collect();
        parts.len() > 1
            && artists
                .iter()
                .all(|other| other == *a || parts.contains(&other.as_str()))
    });
    match combined {
        Some(c) => Some(c.clone()),
        None if artists.is_empty() => None,
        None => Some(artists.join(", ")),
    }
}

/// Seconds as whole milliseconds, checked as a duration.
fn duration_ms(secs: Option<f64>, field: &str) -> Result<Option<i64>, String> {
    let Some(secs) = secs else { return Ok(None) };
    let ms = (secs * 1_000.0).round();
    if !(ms.is_finite() && (i64::MIN as f64..i64::MAX as f64).contains(&ms)) {
        return Err(format!("`{field}` is {secs}: not a duration in seconds"));
    }
    time::check_duration_ms(ms as i64)
        .map(Some)
        .map_err(|why| format!("`{field}` (in seconds, as ms) {why}"))
}

/// `time`: unix seconds, an integer (a float without a fraction is accepted).
fn unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("unix seconds")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .map_err(|_| E::custom(format!("`time` is {v}, too large for unix seconds")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(E::custom(format!(
                    "`time` is {v}, expected whole unix seconds"
                )))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            Err(E::custom(format!(
                "`time` is \"{v}\", expected unix seconds (a number)"
            )))
        }
        fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
            Err(E::custom("`time` is null, expected unix seconds"))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<i64, E> {
            Err(E::custom(format!("`time` is {v}, expected unix seconds")))
        }
    }
    d.deserialize_any(V)
}

/// A length in seconds, or null.
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(de::Error::custom(format!(
            "a duration is {other}, expected seconds (a number) or null"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourceFormat;
    use crate::import::json::tests::parse;

    #[test]
    fn an_export_streams_its_scrobbles() {
        let (f, events) = parse(
            r#"{"maloja": {"export_time": 1761035593},
              "scrobbles": [
                {"time": 1760532613, "track": {"artists": ["Alabaster Deplume"], "title": "Not Now, Jesus",
                 "album": {"artists": ["Alabaster Deplume"], "albumtitle": "To Cy & Lee"}, "length": 220},
                 "duration": null, "origin": "client:turntable"},
                {"time": 1760532855, "track": {"artists": ["J.Rio", "Magnify Tokyo • J.Rio"], "title": "Kokoro",
                 "album": null, "length": null}, "duration": 245, "origin": "client:default", "extra": {"x": 1}},
                {"time": 1760533000, "track": {"artists": ["A", "B"], "title": " "}}
              ]}"#,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::MalojaJson);
        let e = events[0].as_ref().unwrap();
        assert_eq!(e.started_at_us, Some(1_760_532_613_000_000));
        assert_eq!(e.ended_at_us, None);
        assert_eq!(e.track_duration_ms, Some(220_000));
        assert_eq!(e.ms_played, None);
        assert_eq!(e.album_name.as_deref(), Some("To Cy & Lee"));
        assert_eq!(e.platform.as_deref(), Some("turntable"));
        assert_eq!(e.extra_fields, None);
        let e = events[1].as_ref().unwrap();
        assert_eq!(e.ms_played, Some(245_000));
        assert_eq!(e.artist_name.as_deref(), Some("Magnify Tokyo • J.Rio"));
        assert!(e.extra_fields.as_deref().unwrap().contains("\"extra\""));
        assert_eq!(events[2], Err(SkipReason::NoMetadata));
    }

    #[test]
    fn artist_names() {
        let v = |a: &[&str]| artist_name(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["A"]).as_deref(), Some("A"));
        assert_eq!(v(&["B", "A"]).as_deref(), Some("B, A"));
        assert_eq!(v(&["L", "P", "M • P • L"]).as_deref(), Some("M • P • L"));
        assert_eq!(
            v(&["X", "M • P"]).as_deref(),
            Some("X, M • P"),
            "X is not part of it"
        );
        assert_eq!(v(&[]), None);
    }

    #[test]
    fn a_bad_time_names_its_line() {
        let err = parse(
            "{\"maloja\": {},\n \"scrobbles\": [\n {\"time\": 1760532613, \"track\": {\"title\": \"a\"}},\n {\"time\": \"yesterday\", \"track\": {\"title\": \"b\"}}]}",
        )
        .unwrap_err();
        assert_eq!(err.position.record, Some(2));
        assert_eq!(err.position.line, Some(4));
        assert!(
            err.detail.contains("`time` is \"yesterday\""),
            "{}",
            err.detail
        );
    }
}

//! ListenBrainz listen exports: the zip from the "Export listens" page (`listens/YYYY/M.jsonl`,
//! one listen per line, beside a `user.json` that is not a listen file and is passed over by
//! [`super::input`]), loose `.jsonl` files, and the older single JSON array of listens. The JSON
//! reading loop is [`super::json`]; this file turns one listen into one event.
//!
//! A listen's `listened_at` (unix seconds) is when the play **started**: like Last.fm, the source
//! gives no end. From `track_metadata`: `artist_name`, `track_name`, `release_name`, and from its
//! `additional_info` (what the submitting client sent) the track length (`duration_ms`, or
//! `duration` in seconds), the MusicBrainz ids (`recording_mbid`, `artist_mbids`,
//! `release_mbid`; where the client sent none, those ListenBrainz matched in `mbid_mapping`),
//! Spotify ids (`spotify_id` as `https://open.spotify.com/track/ID` becomes `spotify:track:ID`)
//! and `media_player` as the platform. Everything else is kept in `extra_fields` (`inserted_at`,
//! `recording_msid`, the `mbid_mapping`, the rest of `additional_info` under that name), except
//! fields that look like an IP address or a user agent, which are dropped.
//!
//! The track length is whatever the client sent: a value that is not a duration of 0 to 7 days
//! stays in `additional_info` rather than failing the file. A listen without `listened_at` is
//! a "playing now" entry (skipped as `now_playing`); one without a track name is skipped as
//! `no_metadata`.

use serde_json::{Map, Value};

use super::time;
use crate::event::{ContentKind, ListenEvent, Parsed, SkipReason};

/// Whether a record's fields make it a listen.
pub(super) fn is_listen(fields: &Map<String, Value>) -> bool {
    fields.contains_key("listened_at") || fields.contains_key("track_metadata")
}

/// One listen (its top-level fields) into an event.
pub(super) fn listen(
    mut fields: Map<String, Value>,
    position: u64,
    range: &time::Plausible,
) -> Result<Parsed, String> {
    drop_private(&mut fields);
    let started = match fields.remove("listened_at") {
        None | Some(Value::Null) => return Ok(Err(SkipReason::NowPlaying)),
        Some(value) => {
            let secs = whole_number(&value).ok_or_else(|| {
                format!("`listened_at` is {value}, expected unix seconds (an integer)")
            })?;
            range
                .unix_seconds(secs)
                .map_err(|why| format!("`listened_at` {why}"))?
        }
    };
    let mut track = match fields.remove("track_metadata") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => return Ok(Err(SkipReason::NoMetadata)),
        Some(other) => return Err(format!("`track_metadata` is {other}, expected an object")),
    };
    drop_private(&mut track);
    let track_name = take_text(&mut track, "track_name");
    if track_name.is_none() {
        return Ok(Err(SkipReason::NoMetadata));
    }
    let artist_name = take_text(&mut track, "artist_name");
    let album_name = take_text(&mut track, "release_name");
    let mut info = match track.remove("additional_info") {
        Some(Value::Object(m)) => m,
        Some(Value::Null) | None => Map::new(),
        Some(other) => {
            // Not an object: kept as it is.
            track.insert("additional_info".into(), other);
            Map::new()
        }
    };
    drop_private(&mut info);
    let mapping = track
        .get("mbid_mapping")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let track_duration_ms = take_if(&mut info, "duration_ms", |v| {
        whole_number(v).filter(|ms| time::check_duration_ms(*ms).is_ok())
    })
    .or_else(|| {
        take_if(&mut info, "duration", |v| {
            whole_number(v)
                .and_then(|s| s.checked_mul(1_000))
                .filter(|ms| time::check_duration_ms(*ms).is_ok())
        })
    });
    let mbid = |info: &mut Map<String, Value>, key: &str| {
        take_text(info, key).or_else(|| text(mapping.get(key)))
    };
    let track_mbid = mbid(&mut info, "recording_mbid");
    let album_mbid = mbid(&mut info, "release_mbid");
    let artist_mbid = take_if(&mut info, "artist_mbids", first_text)
        .or_else(|| mapping.get("artist_mbids").and_then(first_text));
    let spotify_track_uri = take_if(&mut info, "spotify_id", |v| spotify_uri(v, "track"));
    let spotify_album_uri = take_if(&mut info, "spotify_album_id", |v| spotify_uri(v, "album"));
    let spotify_artist_uri = info
        .get("spotify_artist_ids")
        .and_then(|v| v.as_array()?.first())
        .and_then(|v| spotify_uri(v, "artist"));
    let platform = take_text(&mut info, "media_player");
    let source_username = take_text(&mut fields, "user_name");
    let source_time_text = Some((started / 1_000_000).to_string());

    let mut extra = fields;
    extra.extend(track);
    if !info.is_empty() {
        extra.insert("additional_info".into(), Value::Object(info));
    }
    Ok(Ok(ListenEvent {
        position,
        content_kind: ContentKind::Track,
        started_at_us: Some(started),
        track_name,
        artist_name,
        album_name,
        spotify_track_uri,
        spotify_artist_uri,
        spotify_album_uri,
        track_duration_ms,
        platform,
        source_username,
        artist_mbid,
        album_mbid,
        track_mbid,
        source_time_text,
        extra_fields: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
        ..Default::default()
    }))
}

/// Fields that may hold personal network data: never kept.
fn is_private(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "ip"
        || k.starts_with("ip_")
        || k.ends_with("_ip")
        || k.contains("ip_addr")
        || k.contains("ipaddr")
        || k.contains("remote_addr")
        || k.contains("user_agent")
        || k.contains("useragent")
}

fn drop_private(map: &mut Map<String, Value>) {
    map.retain(|k, _| !is_private(k));
}

/// An integer, or a float without a fraction (some clients write `245.0`).
fn whole_number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn first_text(v: &Value) -> Option<String> {
    text(v.as_array()?.first())
}

/// Remove `key` when `read` makes something of its value; otherwise leave it in place.
fn take_if<T>(
    map: &mut Map<String, Value>,
    key: &str,
    read: impl FnOnce(&Value) -> Option<T>,
) -> Option<T> {
    let value = read(map.get(key)?)?;
    map.remove(key);
    Some(value)
}

/// A non-empty string field, removed.
fn take_text(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    take_if(map, key, |v| text(Some(v)))
}

/// `https://open.spotify.com/track/ID` (with or without a query) or `spotify:track:ID` as
/// `spotify:track:ID`.
fn spotify_uri(v: &Value, kind: &str) -> Option<String> {
    let s = v.as_str()?.trim();
    let id = if let Some(rest) = s.strip_prefix(&format!("spotify:{kind}:")) {
        rest
    } else {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))?;
        let rest = rest.strip_prefix("open.spotify.com/")?;
        let rest = rest.split(['?', '#']).next()?;
        rest.strip_prefix(&format!("{kind}/"))?
    };
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| format!("spotify:{kind}:{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourceFormat;
    use crate::import::json::tests::parse;

    const LINE: &str = r#"{"inserted_at": 1748964422.5, "listened_at": 1748964167, "user_name": "rob", "track_metadata": {"track_name": "Golden Brown", "artist_name": "The Stranglers", "release_name": "La Folie", "mbid_mapping": {"artist_mbids": ["m-artist"], "release_mbid": "m-release", "recording_mbid": "m-rec"}, "recording_msid": "msid", "additional_info": {"isrc": "GBAYE8100053", "spotify_id": "https://open.spotify.com/track/2AX5E86cn9n2dgioZEjirI?si=x", "duration_ms": 206760, "media_player": "BrainzPlayer", "artist_mbids": ["a-artist"], "ip_address": "10.1.2.3", "user_agent": "Mozilla/5.0"}}}"#;

    #[test]
    fn json_lines_map_every_field() {
        let text = format!(
            "{LINE}\n\n{}",
            LINE.replace("1748964167", "1748964500")
                .replace("\"duration_ms\": 206760", "\"duration\": 207")
        );
        let (f, events) = parse(&text).unwrap();
        assert_eq!(f, SourceFormat::ListenBrainzJson);
        assert_eq!(events.len(), 2);
        let e = events[0].as_ref().unwrap();
        assert_eq!(e.started_at_us, Some(1_748_964_167_000_000));
        assert_eq!(e.ended_at_us, None);
        assert_eq!(e.track_duration_ms, Some(206_760));
        assert_eq!(
            e.artist_mbid.as_deref(),
            Some("a-artist"),
            "the client's first"
        );
        assert_eq!(
            e.album_mbid.as_deref(),
            Some("m-release"),
            "else the mapping's"
        );
        assert_eq!(e.track_mbid.as_deref(), Some("m-rec"));
        assert_eq!(
            e.spotify_track_uri.as_deref(),
            Some("spotify:track:2AX5E86cn9n2dgioZEjirI")
        );
        assert_eq!(e.platform.as_deref(), Some("BrainzPlayer"));
        assert_eq!(e.source_username.as_deref(), Some("rob"));
        let extra: Value = serde_json::from_str(e.extra_fields.as_deref().unwrap()).unwrap();
        assert_eq!(extra["additional_info"]["isrc"], "GBAYE8100053");
        assert_eq!(extra["recording_msid"], "msid");
        assert_eq!(extra["inserted_at"], 1748964422.5);
        let all = format!("{e:?}");
        assert!(!all.contains("10.1.2.3") && !all.contains("Mozilla"));
        let second = events[1].as_ref().unwrap();
        assert_eq!(second.track_duration_ms, Some(207_000));
    }

    #[test]
    fn the_older_array_and_odd_listens() {
        let (f, events) = parse(
            r#"[{"listened_at": 1700000000, "track_metadata": {"track_name": "", "artist_name": "x"}},
                {"track_metadata": {"track_name": "Now", "artist_name": "y"}},
                {"listened_at": 1700000100, "track_metadata": {"track_name": "T", "artist_name": "A",
                 "additional_info": {"duration_ms": -4, "spotify_id": "not a link"}}}]"#,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::ListenBrainzJson);
        assert_eq!(events[0], Err(SkipReason::NoMetadata));
        assert_eq!(events[1], Err(SkipReason::NowPlaying));
        let e = events[2].as_ref().unwrap();
        assert_eq!(e.track_duration_ms, None);
        assert_eq!(e.spotify_track_uri, None);
        assert!(e.extra_fields.as_deref().unwrap().contains("not a link"));
    }

    #[test]
    fn bad_listens_are_errors_with_lines() {
        let err = parse(&format!("{LINE}\n{}", &LINE[..60])).unwrap_err();
        assert_eq!(err.position.line, Some(2));
        assert!(err.detail.contains("truncated"), "{}", err.detail);
        let err = parse(&format!(
            "{LINE}\n{}",
            LINE.replace("1748964167", "\"soon\"")
        ))
        .unwrap_err();
        assert_eq!(err.position.line, Some(2));
        assert!(err.detail.contains("`listened_at`"), "{}", err.detail);
    }
}

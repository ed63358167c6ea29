//! ListenBrainz's `POST /1/submit-listens` body: parsed and checked the way ListenBrainz does
//! (the same limits and the same error texts), into [`ListenEvent`]s. No I/O: the web handler
//! gives it the request's bytes.
//!
//! ```
//! use magpie_music::submit::listenbrainz::{parse, ListenType};
//! let body = r#"{"listen_type": "single", "payload": [{"listened_at": 1700000000,
//!     "track_metadata": {"artist_name": "Björk", "track_name": "Jóga"}}]}"#;
//! let sub = parse(body.as_bytes(), 1_800_000_000).unwrap();
//! assert_eq!(sub.listen_type, ListenType::Single);
//! assert_eq!(sub.events[0].started_at_us, Some(1_700_000_000_000_000));
//! ```

use serde_json::{Map, Value};

use crate::event::ListenEvent;

/// Largest listen, in bytes of JSON, as ListenBrainz allows.
pub const MAX_LISTEN_SIZE: usize = 10_240;
/// Most listens in one request.
pub const MAX_LISTENS_PER_REQUEST: usize = 1_000;
/// Largest request body: every listen at its largest.
pub const MAX_PAYLOAD_SIZE: usize = MAX_LISTEN_SIZE * MAX_LISTENS_PER_REQUEST;
/// Earliest `listened_at` ListenBrainz accepts (2002-10-01 00:00:00 UTC).
pub const LISTEN_MINIMUM_TS: i64 = 1_033_430_400;
/// How far ahead of the server's clock a listen may be, in seconds.
pub const ALLOWED_SKEW_SECS: i64 = 3_600;
/// Most tags per listen, and longest tag.
const MAX_TAGS_PER_LISTEN: usize = 50;
const MAX_TAG_SIZE: usize = 64;

/// The three kinds of submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenType {
    Single,
    Import,
    PlayingNow,
}

impl ListenType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Import => "import",
            Self::PlayingNow => "playing_now",
        }
    }
}

/// A checked submission.
#[derive(Debug, Clone)]
pub struct Submission {
    pub listen_type: ListenType,
    /// One per listen, in order; for `playing_now` the one listen, without a time.
    pub events: Vec<ListenEvent>,
    /// The `submission_client` (and version) the first listen names, if any.
    pub client: Option<String>,
}

/// A request ListenBrainz would refuse, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad(msg: impl Into<String>) -> BadRequest {
    BadRequest(msg.into())
}

/// Parse and check a submission; `now` is the server's time in Unix seconds.
pub fn parse(body: &[u8], now: i64) -> Result<Submission, BadRequest> {
    if body.len() > MAX_PAYLOAD_SIZE {
        return Err(bad(format!(
            "Payload too large. Payload must be less than {MAX_PAYLOAD_SIZE} bytes."
        )));
    }
    let data: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("Cannot parse JSON document: {e}")))?;
    let Some(doc) = data.as_object() else {
        return Err(bad("Invalid JSON document submitted."));
    };
    let payload = match doc.get("payload") {
        Some(Value::Array(p)) => p,
        Some(_) => return Err(bad("The payload must be a list of listens.")),
        None => return Err(bad("Invalid JSON document submitted.")),
    };
    if payload.is_empty() {
        return Err(bad("JSON document does not contain any listens"));
    }
    if body.len() > payload.len() * MAX_LISTEN_SIZE {
        return Err(bad(format!(
            "JSON document is too large. In aggregate, listens may not be larger than {MAX_LISTEN_SIZE} characters."
        )));
    }
    let listen_type = match doc.get("listen_type").and_then(Value::as_str) {
        Some("single") => ListenType::Single,
        Some("import") => ListenType::Import,
        Some("playing_now") => ListenType::PlayingNow,
        _ => return Err(bad("JSON document requires a valid listen_type key.")),
    };
    if listen_type != ListenType::Import && payload.len() > 1 {
        return Err(bad(
            "JSON document contains more than listen for a single/playing_now. It should contain only one.",
        ));
    }
    if payload.len() > MAX_LISTENS_PER_REQUEST {
        return Err(bad(format!(
            "Too many listens. You may not submit more than {MAX_LISTENS_PER_REQUEST} listens at once."
        )));
    }
    let mut events = Vec::with_capacity(payload.len());
    for (i, listen) in payload.iter().enumerate() {
        events.push(listen_event(listen, listen_type, i as u64 + 1, now)?);
    }
    let client = payload.first().and_then(|l| {
        let info = l.pointer("/track_metadata/additional_info")?;
        let name = info.get("submission_client")?.as_str()?;
        let version = info
            .get("submission_client_version")
            .and_then(Value::as_str);
        Some(match version {
            Some(v) => format!("{name} {v}"),
            None => name.to_string(),
        })
    });
    Ok(Submission {
        listen_type,
        events,
        client,
    })
}

/// Check one listen as ListenBrainz's `validate_listen` does, and convert it.
fn listen_event(
    listen: &Value,
    listen_type: ListenType,
    position: u64,
    now: i64,
) -> Result<ListenEvent, BadRequest> {
    let Some(obj) = listen.as_object() else {
        return Err(bad("Invalid JSON document submitted."));
    };
    if serde_json::to_vec(listen).map_or(0, |v| v.len()) > MAX_LISTEN_SIZE {
        return Err(bad(format!(
            "JSON document is too large. In aggregate, listens may not be larger than {MAX_LISTEN_SIZE} characters."
        )));
    }
    let mut event = ListenEvent {
        position,
        ..ListenEvent::default()
    };
    match listen_type {
        ListenType::Single | ListenType::Import => {
            let Some(at) = obj.get("listened_at") else {
                return Err(bad(
                    "JSON document must contain the key listened_at at the top level.",
                ));
            };
            let Some(ts) = as_int(at) else {
                return Err(bad(
                    "JSON document must contain an int value for listened_at.",
                ));
            };
            if obj
                .keys()
                .any(|k| k != "listened_at" && k != "track_metadata")
            {
                return Err(bad(
                    "JSON document may only contain listened_at and track_metadata top level keys",
                ));
            }
            if ts < LISTEN_MINIMUM_TS {
                return Err(bad(format!(
                    "Value for key listened_at is too low. listened_at timestamps should be greater than {LISTEN_MINIMUM_TS} (2002-10-01 00:00:00 UTC)."
                )));
            }
            if ts > now + ALLOWED_SKEW_SECS {
                return Err(bad("Value for key listened_at is too high."));
            }
            event.started_at_us = Some(ts * 1_000_000);
            event.source_time_text = Some(ts.to_string());
        }
        ListenType::PlayingNow => {
            if obj.contains_key("listened_at") {
                return Err(bad(
                    "JSON document must not contain listened_at while submitting playing_now.",
                ));
            }
            if obj.keys().any(|k| k != "track_metadata") {
                return Err(bad(
                    "JSON document may only contain track_metadata as top level key when submitting playing_now.",
                ));
            }
        }
    }
    let Some(meta) = obj.get("track_metadata").and_then(Value::as_object) else {
        return Err(bad(
            "JSON document does not contain a valid metadata.track_name and/or track_metadata.artist_name.",
        ));
    };
    let text = |key: &str| -> Result<Option<String>, BadRequest> {
        match meta.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("{key} must be a single string."))),
        }
    };
    let track = text("track_name")?.filter(|t| !t.trim().is_empty());
    let artist = text("artist_name")?.filter(|a| !a.trim().is_empty());
    let Some(track) = track else {
        return Err(bad(
            "JSON document does not contain required track_metadata.track_name.",
        ));
    };
    let Some(artist) = artist else {
        return Err(bad(
            "JSON document does not contain required track_metadata.artist_name.",
        ));
    };
    event.track_name = Some(track);
    event.artist_name = Some(artist);
    event.album_name = text("release_name")?.filter(|a| !a.trim().is_empty());
    if let Some(info) = meta.get("additional_info") {
        let Some(info) = info.as_object() else {
            return Err(bad("additional_info must be an object."));
        };
        additional_info(info, &mut event)?;
    }
    Ok(event)
}

/// The `additional_info` fields magpie keeps in columns; the rest go to `extra_fields`.
fn additional_info(info: &Map<String, Value>, event: &mut ListenEvent) -> Result<(), BadRequest> {
    if let Some(tags) = info.get("tags") {
        let tags = tags.as_array().map_or(&[][..], Vec::as_slice);
        if tags.len() > MAX_TAGS_PER_LISTEN {
            return Err(bad(format!(
                "JSON document may not contain more than {MAX_TAGS_PER_LISTEN} items in track_metadata.additional_info.tags."
            )));
        }
        if tags
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.chars().count() > MAX_TAG_SIZE))
        {
            return Err(bad(format!(
                "JSON document may not contain track_metadata.additional_info.tags longer than {MAX_TAG_SIZE} characters."
            )));
        }
    }
    for key in [
        "release_mbid",
        "recording_mbid",
        "release_group_mbid",
        "track_mbid",
    ] {
        if let Some(v) = info.get(key).filter(|v| !v.is_null())
            && !v.as_str().is_some_and(is_uuid)
        {
            return Err(bad(format!("{key} MBID format invalid.")));
        }
    }
    for key in ["artist_mbids", "work_mbids"] {
        if let Some(v) = info.get(key).filter(|v| !v.is_null()) {
            let ok = v
                .as_array()
                .is_some_and(|a| a.iter().all(|m| m.as_str().is_some_and(is_uuid)));
            if !ok {
                return Err(bad(format!("{key} MBID format invalid.")));
            }
        }
    }
    let s = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_string);
    event.track_mbid = s("recording_mbid");
    event.album_mbid = s("release_mbid");
    event.artist_mbid = info
        .get("artist_mbids")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    // The track's length: `duration_ms`, else `duration` (seconds) in milliseconds, kept when
    // it is more than 0 and under a day. Seconds too many to be milliseconds in an i64 are no
    // length (unchecked, 18446744073709552 s would wrap around to 384 ms).
    event.track_duration_ms = info
        .get("duration_ms")
        .and_then(as_int)
        .or_else(|| {
            info.get("duration")
                .and_then(as_int)
                .and_then(|s| s.checked_mul(1000))
        })
        .filter(|ms| *ms > 0 && *ms < 24 * 3_600_000);
    event.spotify_track_uri = s("spotify_id").and_then(|id| spotify_track_uri(&id));
    event.platform = s("media_player").or_else(|| s("music_service_name"));
    let known = [
        "recording_mbid",
        "release_mbid",
        "artist_mbids",
        "duration_ms",
        "duration",
        "spotify_id",
        "media_player",
    ];
    let extra: Map<String, Value> = info
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !extra.is_empty() {
        event.extra_fields = Some(Value::Object(extra).to_string());
    }
    Ok(())
}

/// An integer, also from a whole float or a numeric string (ListenBrainz applies `int()`).
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let hex32 = s.chars().filter(|c| *c != '-').count() == 32;
    hex32
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && (b.len() == 32 || (b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')))
}

/// `spotify:track:ID` from an open.spotify.com URL or a bare id.
pub fn spotify_track_uri(id: &str) -> Option<String> {
    let id = id.trim();
    let bare = id
        .strip_prefix("spotify:track:")
        .or_else(|| {
            id.split("open.spotify.com/track/")
                .nth(1)
                .map(|rest| rest.split(['?', '/', '#']).next().unwrap_or(rest))
        })
        .unwrap_or(id);
    (bare.len() == 22 && bare.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| format!("spotify:track:{bare}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn one(listen: &str) -> Result<Submission, BadRequest> {
        parse(
            format!(r#"{{"listen_type":"single","payload":[{listen}]}}"#).as_bytes(),
            NOW,
        )
    }

    #[test]
    fn a_full_listen_maps_to_an_event() {
        let s = one(
            r#"{"listened_at": "1700000000", "track_metadata": {"artist_name": "A", "track_name": "T",
                "release_name": "R", "additional_info": {"duration_ms": 215000,
                "recording_mbid": "2cfad0f7-b6a0-4a6f-8ba8-9d1e3c1a6b0f",
                "artist_mbids": ["8bfac288-ccc5-448d-9573-c33ea2aa5c30"],
                "spotify_id": "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC",
                "media_player": "Navidrome", "submission_client": "navidrome",
                "submission_client_version": "0.53", "isrc": "GBAYE0601498"}}}"#,
        )
        .unwrap();
        let e = &s.events[0];
        assert_eq!(e.started_at_us, Some(1_700_000_000_000_000));
        assert_eq!(e.ended_at_us, None);
        assert_eq!(e.track_duration_ms, Some(215_000));
        assert_eq!(e.album_name.as_deref(), Some("R"));
        assert_eq!(
            e.spotify_track_uri.as_deref(),
            Some("spotify:track:4uLU6hMCjMI75M1A2tKUQC")
        );
        assert_eq!(e.platform.as_deref(), Some("Navidrome"));
        assert_eq!(
            e.artist_mbid.as_deref(),
            Some("8bfac288-ccc5-448d-9573-c33ea2aa5c30")
        );
        assert!(e.extra_fields.as_deref().unwrap().contains("GBAYE0601498"));
        assert_eq!(s.client.as_deref(), Some("navidrome 0.53"));
    }

    #[test]
    fn listenbrainz_refusals_keep_its_messages() {
        let cases = [
            (
                r#"{"track_metadata": {"artist_name": "A", "track_name": "T"}}"#,
                "must contain the key listened_at",
            ),
            (
                r#"{"listened_at": "x", "track_metadata": {"artist_name": "A", "track_name": "T"}}"#,
                "int value for listened_at",
            ),
            (
                r#"{"listened_at": 1000, "track_metadata": {"artist_name": "A", "track_name": "T"}}"#,
                "too low",
            ),
            (
                r#"{"listened_at": 1900000000, "track_metadata": {"artist_name": "A", "track_name": "T"}}"#,
                "too high",
            ),
            (
                r#"{"listened_at": 1700000000, "x": 1, "track_metadata": {"artist_name": "A", "track_name": "T"}}"#,
                "may only contain",
            ),
            (
                r#"{"listened_at": 1700000000, "track_metadata": {"artist_name": "A"}}"#,
                "track_metadata.track_name",
            ),
            (
                r#"{"listened_at": 1700000000, "track_metadata": {"artist_name": ["A"], "track_name": "T"}}"#,
                "single string",
            ),
            (
                r#"{"listened_at": 1700000000, "track_metadata": {"artist_name": "A", "track_name": "T", "additional_info": {"recording_mbid": "nope"}}}"#,
                "recording_mbid MBID format invalid",
            ),
        ];
        for (listen, expected) in cases {
            let err = one(listen).unwrap_err();
            assert!(err.0.contains(expected), "{listen}: {err}");
        }
        assert!(
            parse(b"{", NOW)
                .unwrap_err()
                .0
                .starts_with("Cannot parse JSON")
        );
        assert!(
            parse(br#"{"listen_type":"single","payload":[]}"#, NOW)
                .unwrap_err()
                .0
                .contains("any listens")
        );
        assert!(
            parse(br#"{"listen_type":"x","payload":[{}]}"#, NOW)
                .unwrap_err()
                .0
                .contains("valid listen_type")
        );
        let two = r#"{"listen_type":"single","payload":[{"listened_at":1700000000,"track_metadata":{"artist_name":"A","track_name":"T"}},{"listened_at":1700000001,"track_metadata":{"artist_name":"A","track_name":"T"}}]}"#;
        assert!(
            parse(two.as_bytes(), NOW)
                .unwrap_err()
                .0
                .contains("only one")
        );
        let playing = r#"{"listen_type":"playing_now","payload":[{"listened_at":1700000000,"track_metadata":{"artist_name":"A","track_name":"T"}}]}"#;
        assert!(
            parse(playing.as_bytes(), NOW)
                .unwrap_err()
                .0
                .contains("must not contain listened_at")
        );
    }

    #[test]
    fn an_import_is_limited_to_a_thousand_listens() {
        let listen =
            r#"{"listened_at":1700000000,"track_metadata":{"artist_name":"A","track_name":"T"}}"#;
        let body = |n: usize| {
            format!(
                r#"{{"listen_type":"import","payload":[{}]}}"#,
                vec![listen; n].join(",")
            )
        };
        assert_eq!(
            parse(body(1000).as_bytes(), NOW).unwrap().events.len(),
            1000
        );
        assert!(
            parse(body(1001).as_bytes(), NOW)
                .unwrap_err()
                .0
                .contains("Too many listens")
        );
        let big = format!(
            r#"{{"listen_type":"single","payload":[{{"listened_at":1700000000,"track_metadata":{{"artist_name":"A","track_name":"{}"}}}}]}}"#,
            "x".repeat(MAX_LISTEN_SIZE)
        );
        assert!(
            parse(big.as_bytes(), NOW)
                .unwrap_err()
                .0
                .contains("too large")
        );
    }
}

//! The Last.fm scrobbling API's parameters (what Libre.fm / GNU FM-style clients send to
//! `/2.0/`): the `api_sig` signature, `track.scrobble`'s indexed batches and
//! `track.updateNowPlaying`, into [`ListenEvent`]s. No I/O and no response formats: the web
//! handler owns those.
//!
//! ```
//! use magpie_music::submit::lastfm::{signature, Params};
//! let params = Params::from_pairs([("method", "auth.getToken"), ("api_key", "k")]);
//! let sig = signature(&params, "secret");
//! assert_eq!(sig.len(), 32);
//! ```

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::event::ListenEvent;
use crate::submit::listenbrainz::{ALLOWED_SKEW_SECS, LISTEN_MINIMUM_TS};

/// Most scrobbles in one `track.scrobble` call.
pub const MAX_SCROBBLES: usize = 50;

/// Last.fm's error codes that this API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidService = 2,
    InvalidMethod = 3,
    AuthenticationFailed = 4,
    InvalidParameters = 6,
    OperationFailed = 8,
    InvalidSessionKey = 9,
    InvalidApiKey = 10,
    InvalidSignature = 13,
    UnauthorizedToken = 14,
    TokenExpired = 15,
    ServiceUnavailable = 16,
}

/// A call Last.fm would refuse: its code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error {})", *code as u8)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A call's parameters (from the query string and the form body), by name; the last value
/// wins when a name repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter that must be there and not blank.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidParameters,
                    format!(
                        "Invalid parameters - Your request is missing a required parameter: {name}"
                    ),
                )
            })
    }

    /// Every parameter, by name.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Whether the caller asked for JSON (`format=json`).
    pub fn wants_json(&self) -> bool {
        self.get("format") == Some("json")
    }
}

/// `api_sig`: the MD5 of every parameter but `format`, `callback` and `api_sig`, sorted by
/// name and written name then value, followed by the secret.
pub fn signature(params: &Params, secret: &str) -> String {
    let mut md5 = Md5::new();
    for (k, v) in &params.0 {
        if matches!(k.as_str(), "format" | "callback" | "api_sig") {
            continue;
        }
        md5.update(k.as_bytes());
        md5.update(v.as_bytes());
    }
    md5.update(secret.as_bytes());
    hex::encode(md5.finalize())
}

/// Whether the call is signed with `secret` (compared in constant time).
pub fn signed_with(params: &Params, secret: &str) -> bool {
    let Some(given) = params.get("api_sig") else {
        return false;
    };
    let want = signature(params, secret);
    let given = given.trim().to_ascii_lowercase();
    given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Why one scrobble of a batch was ignored (Last.fm's `ignoredMessage` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    ArtistIgnored = 1,
    TrackIgnored = 2,
    TimestampTooOld = 3,
    TimestampTooNew = 4,
}

impl Ignored {
    pub fn message(self) -> &'static str {
        match self {
            Self::ArtistIgnored => "Artist was ignored",
            Self::TrackIgnored => "Track was ignored",
            Self::TimestampTooOld => "Timestamp was too old",
            Self::TimestampTooNew => "Timestamp was too new",
        }
    }
}

/// One scrobble of a call, as given, with its event when it was accepted.
#[derive(Debug, Clone)]
pub struct Scrobble {
    pub artist: String,
    pub track: String,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub timestamp: Option<i64>,
    pub outcome: Result<ListenEvent, Ignored>,
}

/// The scrobbles of a `track.scrobble` call (`artist[0]`, `track[0]`, `timestamp[0]`, … up
/// to index 49; a call with one scrobble may leave the `[0]` off).
pub fn scrobbles(params: &Params, now: i64) -> Result<Vec<Scrobble>, ApiError> {
    let mut out = Vec::new();
    for i in 0..=MAX_SCROBBLES {
        let field = |name: &str| {
            params
                .get(&format!("{name}[{i}]"))
                .or_else(|| (i == 0).then(|| params.get(name)).flatten())
        };
        let (artist, track, timestamp) = (field("artist"), field("track"), field("timestamp"));
        if artist.is_none() && track.is_none() && timestamp.is_none() {
            if i == 0 {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameters,
                    "Invalid parameters - Your request is missing a required parameter: artist[0], track[0], timestamp[0]",
                ));
            }
            break;
        }
        if i == MAX_SCROBBLES {
            return Err(ApiError::new(
                ErrorCode::InvalidParameters,
                format!("Invalid parameters - at most {MAX_SCROBBLES} scrobbles per call"),
            ));
        }
        let Some(ts) = timestamp.and_then(|t| t.trim().parse::<i64>().ok()) else {
            return Err(ApiError::new(
                ErrorCode::InvalidParameters,
                format!("Invalid parameters - timestamp[{i}] must be a Unix time in seconds"),
            ));
        };
        let artist = artist.unwrap_or_default().trim().to_string();
        let track = track.unwrap_or_default().trim().to_string();
        let nonblank =
            |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
        let album = nonblank(field("album"));
        let album_artist = nonblank(field("albumArtist"));
        let outcome = if artist.is_empty() {
            Err(Ignored::ArtistIgnored)
        } else if track.is_empty() {
            Err(Ignored::TrackIgnored)
        } else if ts < LISTEN_MINIMUM_TS {
            Err(Ignored::TimestampTooOld)
        } else if ts > now + ALLOWED_SKEW_SECS {
            Err(Ignored::TimestampTooNew)
        } else {
            let duration_ms = field("duration")
                .and_then(|d| d.trim().parse::<i64>().ok())
                .filter(|s| *s > 0 && *s < 24 * 3600)
                .map(|s| s * 1000);
            Ok(ListenEvent {
                position: i as u64 + 1,
                started_at_us: Some(ts * 1_000_000),
                source_time_text: Some(ts.to_string()),
                artist_name: Some(artist.clone()),
                track_name: Some(track.clone()),
                album_name: album.clone(),
                track_duration_ms: duration_ms,
                track_mbid: nonblank(field("mbid")),
                extra_fields: extra(&[
                    ("albumArtist", album_artist.as_deref()),
                    ("trackNumber", field("trackNumber")),
                    ("chosenByUser", field("chosenByUser")),
                ]),
                ..ListenEvent::default()
            })
        };
        out.push(Scrobble {
            artist,
            track,
            album,
            album_artist,
            timestamp: Some(ts),
            outcome,
        });
    }
    Ok(out)
}

/// `track.updateNowPlaying`'s track, as an event without a time.
pub fn now_playing(params: &Params) -> Result<ListenEvent, ApiError> {
    let artist = params.required("artist")?;
    let track = params.required("track")?;
    let nonblank = |n: &str| {
        params
            .get(n)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    Ok(ListenEvent {
        position: 1,
        artist_name: Some(artist.trim().to_string()),
        track_name: Some(track.trim().to_string()),
        album_name: nonblank("album"),
        track_duration_ms: nonblank("duration")
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|s| *s > 0 && *s < 24 * 3600)
            .map(|s| s * 1000),
        track_mbid: nonblank("mbid"),
        ..ListenEvent::default()
    })
}

fn extra(fields: &[(&str, Option<&str>)]) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter_map(|(k, v)| v.map(|v| ((*k).to_string(), serde_json::Value::from(v))))
        .collect();
    (!map.is_empty()).then(|| serde_json::Value::Object(map).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_lastfms() {
        // Last.fm's documented example: md5("api_keyxxxxxxxxmethodauth.getSessiontokenxxxxxxxmysecret").
        let p = Params::from_pairs([
            ("method", "auth.getSession"),
            ("api_key", "xxxxxxxx"),
            ("token", "xxxxxxx"),
            ("format", "json"),
        ]);
        let expected = hex::encode(Md5::digest(
            b"api_keyxxxxxxxxmethodauth.getSessiontokenxxxxxxxmysecret",
        ));
        assert_eq!(signature(&p, "mysecret"), expected);
        let mut signed = p.clone();
        signed.0.insert("api_sig".into(), expected.to_uppercase());
        assert!(signed_with(&signed, "mysecret"));
        assert!(!signed_with(&signed, "other"));
        assert!(!signed_with(&p, "mysecret"));
    }

    #[test]
    fn a_batch_is_read_by_index_and_bad_ones_are_ignored() {
        let now = 1_800_000_000;
        let p = Params::from_pairs([
            ("artist[0]", "A"),
            ("track[0]", "T"),
            ("timestamp[0]", "1700000000"),
            ("album[0]", "R"),
            ("duration[0]", "200"),
            ("artist[1]", ""),
            ("track[1]", "T2"),
            ("timestamp[1]", "1700000300"),
            ("artist[2]", "B"),
            ("track[2]", "U"),
            ("timestamp[2]", "1900000000"),
        ]);
        let s = scrobbles(&p, now).unwrap();
        assert_eq!(s.len(), 3);
        let e = s[0].outcome.as_ref().unwrap();
        assert_eq!(e.started_at_us, Some(1_700_000_000_000_000));
        assert_eq!(e.track_duration_ms, Some(200_000));
        assert_eq!(s[1].outcome.as_ref().unwrap_err(), &Ignored::ArtistIgnored);
        assert_eq!(
            s[2].outcome.as_ref().unwrap_err(),
            &Ignored::TimestampTooNew
        );
        let single =
            Params::from_pairs([("artist", "A"), ("track", "T"), ("timestamp", "1700000000")]);
        assert_eq!(scrobbles(&single, now).unwrap().len(), 1);
        let none = Params::from_pairs([("method", "track.scrobble")]);
        assert_eq!(
            scrobbles(&none, now).unwrap_err().code,
            ErrorCode::InvalidParameters
        );
        let bad_ts = Params::from_pairs([
            ("artist[0]", "A"),
            ("track[0]", "T"),
            ("timestamp[0]", "soon"),
        ]);
        assert_eq!(
            scrobbles(&bad_ts, now).unwrap_err().code,
            ErrorCode::InvalidParameters
        );
        let too_many: Vec<(String, String)> = (0..51)
            .flat_map(|i| {
                [
                    (format!("artist[{i}]"), "A".to_string()),
                    (format!("track[{i}]"), "T".to_string()),
                    (format!("timestamp[{i}]"), (1_700_000_000 + i).to_string()),
                ]
            })
            .collect();
        assert_eq!(
            scrobbles(&Params::from_pairs(too_many), now)
                .unwrap_err()
                .code,
            ErrorCode::InvalidParameters
        );
    }
}

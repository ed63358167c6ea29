//! Property tests of the submission parsers (issue 27, the CI share of fuzzing): ListenBrainz's
//! `POST /1/submit-listens` body ([`listenbrainz::parse`]) and Last.fm's scrobbling parameters
//! ([`lastfm::scrobbles`], [`lastfm::now_playing`], [`lastfm::signature`],
//! [`lastfm::signed_with`]).
//!
//! Invariants: nothing panics on any body or parameters; every accepted listen keeps the limits
//! the modules document (sizes, counts, times from 2002-10-01 to an hour after now, names not
//! blank, MBIDs that are UUIDs, tags, durations under a day); a refusal is a `BadRequest` or an
//! `ApiError` with a one-line message; a generated valid submission is accepted with every value
//! as sent; the signature check accepts exactly the correctly signed parameters.
//!
//! Numbers include those whose product with 1,000 or 1,000,000 wraps around i64 (the unit
//! conversions the parsers make), besides the usual extremes.
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`]).

mod common;

use magpie_music::event::ListenEvent;
use magpie_music::submit::lastfm::{self, ErrorCode, Ignored, Params};
use magpie_music::submit::listenbrainz::{
    self, ALLOWED_SKEW_SECS, BadRequest, LISTEN_MINIMUM_TS, ListenType, MAX_LISTEN_SIZE,
    MAX_LISTENS_PER_REQUEST, MAX_PAYLOAD_SIZE, Submission,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Cases per property when `PROPTEST_CASES` is not set: about 20 seconds for the five in a
/// release build.
const DEFAULT_CASES: u32 = 3000;

/// The server's clock in these tests: 2027-01-15.
const NOW: i64 = 1_800_000_000;
/// A day in milliseconds: the submission parsers' bound on a track's length.
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Values

/// Integers of every kind, including those whose product with `1_000` or `1_000_000` wraps
/// around i64 to a small number (a unit conversion without overflow checks would read them as
/// a plausible value).
fn odd_i64() -> impl Strategy<Value = i64> {
    let wraps =
        |m: u128| (1u128..400, 0u128..3).prop_map(move |(k, j)| ((k << 64).div_ceil(m) + j) as i64);
    prop_oneof![
        any::<i64>(),
        -5i64..5,
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            i64::MAX / 1000,
            i64::MAX / 1_000_000
        ]),
        wraps(1_000),
        wraps(1_000_000),
    ]
}

/// A name: any Unicode, with at least one character that is not whitespace.
fn name() -> impl Strategy<Value = String> {
    (
        any::<String>(),
        "[a-zA-Zé😀0-9]",
        any::<prop::sample::Index>(),
    )
        .prop_map(|(s, c, at)| {
            let mut chars: Vec<char> = s.chars().take(40).collect();
            let i = at.index(chars.len() + 1);
            chars.insert(i, c.chars().next().unwrap());
            chars.into_iter().collect()
        })
}

fn uuid() -> impl Strategy<Value = String> {
    ("[0-9a-f]{32}", any::<bool>()).prop_map(|(h, dashed)| {
        if dashed {
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        } else {
            h
        }
    })
}

fn is_uuid(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let dashes_ok = s.len() == 32
        || (s.len() == 36
            && s.char_indices()
                .all(|(i, c)| [8, 13, 18, 23].contains(&i) == (c == '-')));
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) && dashes_ok
}

/// An odd JSON value to put where a field's value was.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        odd_i64().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            json!(null),
            json!(true),
            json!(""),
            json!("   "),
            json!("NaN"),
            json!("-Infinity"),
            json!("1e400"),
            json!("99999999999999999999999"),
            json!(-1),
            json!(1.5),
            json!(1e300),
            json!([]),
            json!({}),
            json!(["a"]),
            json!({"a": 1}),
        ]),
        any::<String>().prop_map(Value::from),
        "[0-9]{1,25}".prop_map(Value::from),
        "x{1,12000}".prop_map(Value::from),
    ]
}

/// A single line, not empty: how every refusal must read.
fn assert_one_line(message: &str) {
    assert!(!message.trim().is_empty(), "an empty message");
    assert!(
        !message.contains('\n') && !message.contains('\r') && message.len() < 1000,
        "not one short line: {message:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// ListenBrainz

/// One generated listen, and what it must become.
#[derive(Debug, Clone)]
struct Listen {
    ts: i64,
    /// How `listened_at` is written: 0 an integer, 1 a string, 2 a whole float.
    ts_form: u8,
    artist: String,
    track: String,
    release: Option<String>,
    duration_ms: Option<i64>,
    duration: Option<i64>,
    recording_mbid: Option<String>,
    release_mbid: Option<String>,
    artist_mbids: Vec<String>,
    spotify_id: Option<(String, bool)>,
    media_player: Option<String>,
    tags: Vec<String>,
    other: Option<(String, String)>,
}

fn listen() -> impl Strategy<Value = Listen> {
    (
        (
            LISTEN_MINIMUM_TS..=NOW + ALLOWED_SKEW_SECS,
            0u8..3,
            name(),
            name(),
            prop::option::of(name()),
            prop::option::of(odd_i64()),
            prop::option::of(prop_oneof![odd_i64(), 1i64..3600]),
        ),
        (
            prop::option::of(uuid()),
            prop::option::of(uuid()),
            prop::collection::vec(uuid(), 0..3),
            prop::option::of(("[a-zA-Z0-9]{22}", any::<bool>())),
            prop::option::of(name()),
            prop::collection::vec("\\PC{0,64}", 0..5),
            prop::option::of(("[a-z_]{1,12}", any::<String>())),
        ),
    )
        .prop_map(
            |(
                (ts, ts_form, artist, track, release, duration_ms, duration),
                (recording_mbid, release_mbid, artist_mbids, spotify_id, media_player, tags, other),
            )| Listen {
                ts,
                ts_form,
                artist,
                track,
                release,
                duration_ms,
                duration,
                recording_mbid,
                release_mbid,
                artist_mbids,
                spotify_id,
                media_player,
                tags,
                other,
            },
        )
}

impl Listen {
    fn to_json(&self, playing_now: bool) -> Value {
        let mut info = Map::new();
        let mut put = |k: &str, v: Value| {
            info.insert(k.to_string(), v);
        };
        if let Some(d) = self.duration_ms {
            put("duration_ms", json!(d));
        }
        if let Some(d) = self.duration {
            put("duration", json!(d));
        }
        if let Some(m) = &self.recording_mbid {
            put("recording_mbid", json!(m));
        }
        if let Some(m) = &self.release_mbid {
            put("release_mbid", json!(m));
        }
        if !self.artist_mbids.is_empty() {
            put("artist_mbids", json!(self.artist_mbids));
        }
        if let Some((id, as_url)) = &self.spotify_id {
            let v = if *as_url {
                format!("https://open.spotify.com/track/{id}?si=abc")
            } else {
                id.clone()
            };
            put("spotify_id", json!(v));
        }
        if let Some(p) = &self.media_player {
            put("media_player", json!(p));
        }
        if !self.tags.is_empty() {
            put("tags", json!(self.tags));
        }
        put("submission_client", json!("fuzz client"));
        if let Some((k, v)) = &self.other {
            put(&format!("x_{k}"), json!(v));
        }
        let mut meta =
            json!({"artist_name": self.artist, "track_name": self.track, "additional_info": info});
        if let Some(r) = &self.release {
            meta["release_name"] = json!(r);
        }
        if playing_now {
            return json!({ "track_metadata": meta });
        }
        let at = match self.ts_form {
            0 => json!(self.ts),
            1 => json!(self.ts.to_string()),
            _ => json!(self.ts as f64),
        };
        json!({"listened_at": at, "track_metadata": meta})
    }

    /// The event this listen must become (its duration: the milliseconds given, else the
    /// seconds given as milliseconds, when that is a length of more than 0 and under a day).
    fn check(
        &self,
        e: &ListenEvent,
        position: u64,
        playing_now: bool,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(e.position, position);
        if playing_now {
            prop_assert_eq!(e.started_at_us, None);
        } else {
            prop_assert_eq!(e.started_at_us, Some(self.ts * 1_000_000));
            prop_assert_eq!(e.source_time_text.clone(), Some(self.ts.to_string()));
        }
        prop_assert_eq!(e.ended_at_us, None);
        prop_assert_eq!(e.artist_name.as_deref(), Some(self.artist.as_str()));
        prop_assert_eq!(e.track_name.as_deref(), Some(self.track.as_str()));
        let release = self.release.as_deref().filter(|r| !r.trim().is_empty());
        prop_assert_eq!(e.album_name.as_deref(), release);
        let duration = match self.duration_ms {
            Some(ms) => Some(ms),
            None => self.duration.and_then(|s| s.checked_mul(1000)),
        }
        .filter(|ms| *ms > 0 && *ms < DAY_MS);
        prop_assert_eq!(
            e.track_duration_ms,
            duration,
            "duration_ms {:?}, duration {:?}",
            self.duration_ms,
            self.duration
        );
        prop_assert_eq!(e.track_mbid.as_ref(), self.recording_mbid.as_ref());
        prop_assert_eq!(e.album_mbid.as_ref(), self.release_mbid.as_ref());
        prop_assert_eq!(e.artist_mbid.as_ref(), self.artist_mbids.first());
        let spotify = self
            .spotify_id
            .as_ref()
            .map(|(id, _)| format!("spotify:track:{id}"));
        prop_assert_eq!(e.spotify_track_uri.clone(), spotify);
        prop_assert_eq!(e.platform.as_ref(), self.media_player.as_ref());
        let extra: Value = serde_json::from_str(e.extra_fields.as_deref().unwrap_or("{}")).unwrap();
        prop_assert_eq!(&extra["submission_client"], &json!("fuzz client"));
        if let Some((k, v)) = &self.other {
            prop_assert_eq!(&extra[format!("x_{k}")], &json!(v));
        }
        if !self.tags.is_empty() {
            prop_assert_eq!(&extra["tags"], &json!(self.tags));
        }
        Ok(())
    }
}

/// What every accepted submission keeps, checked against the body's own JSON.
fn check_accepted(body: &[u8], sub: &Submission) {
    assert!(body.len() <= MAX_PAYLOAD_SIZE);
    let doc: Value = serde_json::from_slice(body).expect("an accepted body is JSON");
    let payload = doc["payload"]
        .as_array()
        .expect("an accepted body has a payload");
    assert_eq!(doc["listen_type"].as_str(), Some(sub.listen_type.as_str()));
    assert_eq!(sub.events.len(), payload.len());
    assert!((1..=MAX_LISTENS_PER_REQUEST).contains(&sub.events.len()));
    if sub.listen_type != ListenType::Import {
        assert_eq!(
            sub.events.len(),
            1,
            "single and playing_now carry one listen"
        );
    }
    for (i, (e, listen)) in sub.events.iter().zip(payload).enumerate() {
        assert_eq!(e.position, i as u64 + 1);
        assert!(serde_json::to_vec(listen).unwrap().len() <= MAX_LISTEN_SIZE);
        match sub.listen_type {
            ListenType::PlayingNow => assert_eq!(e.started_at_us, None),
            _ => {
                let us = e.started_at_us.expect("a listen has a time");
                assert_eq!(us % 1_000_000, 0);
                let ts = us / 1_000_000;
                assert!(
                    (LISTEN_MINIMUM_TS..=NOW + ALLOWED_SKEW_SECS).contains(&ts),
                    "listened_at {ts} accepted"
                );
            }
        }
        for name in [&e.track_name, &e.artist_name] {
            assert!(
                name.as_deref().is_some_and(|n| !n.trim().is_empty()),
                "{e:?}"
            );
        }
        for mbid in [&e.track_mbid, &e.album_mbid, &e.artist_mbid]
            .into_iter()
            .flatten()
        {
            assert!(is_uuid(mbid), "MBID {mbid:?} accepted");
        }
        if let Some(ms) = e.track_duration_ms {
            assert!(ms > 0 && ms < DAY_MS, "a track length of {ms} ms accepted");
        }
        if let Some(uri) = &e.spotify_track_uri {
            let id = uri.strip_prefix("spotify:track:").expect("a track URI");
            assert!(id.len() == 22 && id.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        let info = &listen["track_metadata"]["additional_info"];
        if let Some(tags) = info["tags"].as_array() {
            assert!(tags.len() <= 50);
            assert!(
                tags.iter()
                    .filter_map(Value::as_str)
                    .all(|t| t.chars().count() <= 64)
            );
        }
    }
}

fn check_lb(body: &[u8]) -> Result<Submission, BadRequest> {
    let result = listenbrainz::parse(body, NOW);
    match &result {
        Ok(sub) => check_accepted(body, sub),
        Err(BadRequest(msg)) => assert_one_line(msg),
    }
    result
}

/// Valid submissions, then one field replaced by an odd value, or the bytes edited.
fn mutated_submission() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(listen(), 1..4),
        0u8..3,
        prop::sample::select(vec![
            "/listen_type",
            "/payload",
            "/payload/0",
            "/payload/0/listened_at",
            "/payload/0/track_metadata",
            "/payload/0/track_metadata/artist_name",
            "/payload/0/track_metadata/track_name",
            "/payload/0/track_metadata/release_name",
            "/payload/0/track_metadata/additional_info",
            "/payload/0/track_metadata/additional_info/duration_ms",
            "/payload/0/track_metadata/additional_info/duration",
            "/payload/0/track_metadata/additional_info/recording_mbid",
            "/payload/0/track_metadata/additional_info/artist_mbids",
            "/payload/0/track_metadata/additional_info/tags",
            "/payload/0/track_metadata/additional_info/spotify_id",
        ]),
        odd_value(),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), any::<bool>()),
            0..3,
        ),
    )
        .prop_map(|(listens, kind, pointer, value, edits)| {
            let listen_type = ["single", "import", "playing_now"][kind as usize];
            let payload: Vec<Value> = listens.iter().map(|l| l.to_json(kind == 2)).collect();
            let mut doc = json!({"listen_type": listen_type, "payload": payload});
            if let Some(slot) = doc.pointer_mut(pointer) {
                *slot = value;
            } else if let Some((parent, key)) = pointer.rsplit_once('/')
                && let Some(Value::Object(m)) = doc.pointer_mut(parent)
            {
                m.insert(key.to_string(), value);
            }
            let mut bytes = serde_json::to_vec(&doc).unwrap();
            for (at, byte, insert) in edits {
                let i = at.index(bytes.len());
                if insert {
                    bytes.insert(i, byte);
                } else {
                    bytes[i] = byte;
                }
            }
            bytes
        })
}

// ---------------------------------------------------------------------------------------------
// Last.fm

#[derive(Debug, Clone)]
struct Scrobble {
    artist: String,
    track: String,
    timestamp: String,
    album: Option<String>,
    album_artist: Option<String>,
    duration: Option<String>,
    mbid: Option<String>,
}

fn padded(s: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (s, "[ \t]{0,2}", "[ \t]{0,2}").prop_map(|(s, a, b)| format!("{a}{s}{b}"))
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        odd_i64().prop_map(|n| n.to_string()),
        (LISTEN_MINIMUM_TS - 10..NOW + 2 * ALLOWED_SKEW_SECS).prop_map(|n| n.to_string()),
        (1i64..90_000).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "", " ", "NaN", "1e9", "1.5", "+7", "-0", "0x10", "１２"
        ])
        .prop_map(String::from),
    ]
}

fn scrobble() -> impl Strategy<Value = Scrobble> {
    (
        prop_oneof![4 => padded(name()), 1 => "[ \t]{0,2}".prop_map(String::from)],
        prop_oneof![4 => padded(name()), 1 => "[ \t]{0,2}".prop_map(String::from)],
        padded(number_text()),
        prop::option::of(padded(any::<String>())),
        prop::option::of(any::<String>()),
        prop::option::of(padded(number_text())),
        prop::option::of(uuid()),
    )
        .prop_map(
            |(artist, track, timestamp, album, album_artist, duration, mbid)| Scrobble {
                artist,
                track,
                timestamp,
                album,
                album_artist,
                duration,
                mbid,
            },
        )
}

fn nonblank(s: Option<&String>) -> Option<String> {
    s.map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(String::from)
}

impl Scrobble {
    fn pairs(&self, index: Option<usize>) -> Vec<(String, String)> {
        let key = |name: &str| match index {
            Some(i) => format!("{name}[{i}]"),
            None => name.to_string(),
        };
        let mut out = vec![
            (key("artist"), self.artist.clone()),
            (key("track"), self.track.clone()),
            (key("timestamp"), self.timestamp.clone()),
        ];
        for (name, v) in [
            ("album", &self.album),
            ("albumArtist", &self.album_artist),
            ("duration", &self.duration),
            ("mbid", &self.mbid),
        ] {
            if let Some(v) = v {
                out.push((key(name), v.clone()));
            }
        }
        out
    }

    /// What Last.fm's rules make of this scrobble, sent at position `i` of the call.
    fn check(&self, got: &lastfm::Scrobble, i: usize) -> Result<(), TestCaseError> {
        let ts: i64 = self.timestamp.trim().parse().unwrap();
        let (artist, track) = (self.artist.trim(), self.track.trim());
        prop_assert_eq!(got.artist.as_str(), artist);
        prop_assert_eq!(got.track.as_str(), track);
        prop_assert_eq!(got.timestamp, Some(ts));
        let expected = if artist.is_empty() {
            Err(Ignored::ArtistIgnored)
        } else if track.is_empty() {
            Err(Ignored::TrackIgnored)
        } else if ts < LISTEN_MINIMUM_TS {
            Err(Ignored::TimestampTooOld)
        } else if ts > NOW + ALLOWED_SKEW_SECS {
            Err(Ignored::TimestampTooNew)
        } else {
            Ok(())
        };
        match (&got.outcome, expected) {
            (Ok(e), Ok(())) => {
                prop_assert_eq!(e.position, i as u64 + 1);
                prop_assert_eq!(e.started_at_us, Some(ts * 1_000_000));
                prop_assert_eq!(e.artist_name.as_deref(), Some(artist));
                prop_assert_eq!(e.track_name.as_deref(), Some(track));
                prop_assert_eq!(e.album_name.clone(), nonblank(self.album.as_ref()));
                prop_assert_eq!(e.track_mbid.clone(), nonblank(self.mbid.as_ref()));
                let duration = self
                    .duration
                    .as_deref()
                    .and_then(|d| d.trim().parse::<i64>().ok())
                    .and_then(|s| s.checked_mul(1000))
                    .filter(|ms| *ms > 0 && *ms < DAY_MS);
                prop_assert_eq!(e.track_duration_ms, duration);
                if let Some(aa) = nonblank(self.album_artist.as_ref()) {
                    let extra: Value =
                        serde_json::from_str(e.extra_fields.as_deref().unwrap()).unwrap();
                    prop_assert_eq!(&extra["albumArtist"], &json!(aa));
                }
            }
            (Err(got), Err(want)) => prop_assert_eq!(*got, want),
            (got, want) => prop_assert!(false, "scrobble {}: got {:?}, want {:?}", i, got, want),
        }
        Ok(())
    }
}

/// What every scrobble accepted from any parameters keeps.
fn check_scrobbles(params: &Params) {
    match lastfm::scrobbles(params, NOW) {
        Ok(list) => {
            assert!(!list.is_empty() && list.len() <= lastfm::MAX_SCROBBLES);
            for (i, s) in list.iter().enumerate() {
                let Ok(e) = &s.outcome else { continue };
                assert_eq!(e.position, i as u64 + 1);
                let us = e.started_at_us.expect("a scrobble has a time");
                assert_eq!(Some(us / 1_000_000), s.timestamp);
                assert!((LISTEN_MINIMUM_TS..=NOW + ALLOWED_SKEW_SECS).contains(&(us / 1_000_000)));
                for n in [&e.artist_name, &e.track_name] {
                    let n = n.as_deref().expect("named");
                    assert!(!n.is_empty() && n.trim() == n, "{n:?}");
                }
                if let Some(ms) = e.track_duration_ms {
                    assert!(ms > 0 && ms < DAY_MS && ms % 1000 == 0, "{ms}");
                }
            }
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidParameters);
            assert_one_line(&e.to_string());
        }
    }
    match lastfm::now_playing(params) {
        Ok(e) => {
            for n in [&e.artist_name, &e.track_name] {
                let n = n.as_deref().expect("named");
                assert!(!n.is_empty() && n.trim() == n, "{n:?}");
            }
            if let Some(ms) = e.track_duration_ms {
                assert!(ms > 0 && ms < DAY_MS, "{ms}");
            }
            assert_eq!(e.started_at_us, None);
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidParameters);
            assert!(e.message.contains("artist") || e.message.contains("track"));
            assert_one_line(&e.to_string());
        }
    }
}

/// Parameters of any shape: the scrobble fields with indices in and out of range, in odd
/// spellings, with odd values.
fn any_params() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = (
        prop::sample::select(vec![
            "artist",
            "track",
            "timestamp",
            "album",
            "albumArtist",
            "duration",
            "mbid",
            "method",
            "api_key",
            "sk",
            "api_sig",
            "format",
            "trackNumber",
            "chosenByUser",
        ]),
        prop_oneof![
            Just(String::new()),
            (0usize..52).prop_map(|i| format!("[{i}]")),
            prop::sample::select(vec![
                "[-1]",
                "[ 0]",
                "[00]",
                "[]",
                "[1",
                "[999999999999999999999]"
            ])
            .prop_map(String::from),
        ],
    )
        .prop_map(|(k, i)| format!("{k}{i}"));
    let value = prop_oneof![number_text(), any::<String>(), padded(name())];
    prop::collection::vec((key, value), 0..40)
}

proptest! {
    #![proptest_config(common::proptest_config(DEFAULT_CASES))]

    /// Any body: no panic; an accepted one keeps every limit; a refusal is one line.
    #[test]
    fn listenbrainz_any_body(body in prop_oneof![
        any::<Vec<u8>>(),
        mutated_submission(),
    ]) {
        let _ = check_lb(&body);
    }

    /// A valid submission of each kind is accepted with every value as sent.
    #[test]
    fn listenbrainz_valid_submissions_keep_their_values(
        listens in prop::collection::vec(listen(), 1..20),
        kind in 0u8..3,
    ) {
        let (listen_type, listens) = match kind {
            0 => ("single", &listens[..1]),
            1 => ("import", &listens[..]),
            _ => ("playing_now", &listens[..1]),
        };
        let playing_now = kind == 2;
        let payload: Vec<Value> = listens.iter().map(|l| l.to_json(playing_now)).collect();
        let body = serde_json::to_vec(&json!({"listen_type": listen_type, "payload": payload})).unwrap();
        let sub = check_lb(&body).map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        prop_assert_eq!(sub.listen_type.as_str(), listen_type);
        prop_assert_eq!(sub.client.as_deref(), Some("fuzz client"));
        for (i, (l, e)) in listens.iter().zip(&sub.events).enumerate() {
            l.check(e, i as u64 + 1, playing_now)?;
        }
    }

    /// Any parameters: no panic; accepted scrobbles keep the limits; refusals are error 6.
    #[test]
    fn lastfm_any_params(pairs in any_params()) {
        check_scrobbles(&Params::from_pairs(pairs));
    }

    /// A generated batch is read scrobble by scrobble by Last.fm's rules, values intact.
    #[test]
    fn lastfm_batches_keep_their_values(
        batch in prop::collection::vec(scrobble(), 1..=lastfm::MAX_SCROBBLES),
        bare in any::<bool>(),
    ) {
        let bare = bare && batch.len() == 1;
        let pairs: Vec<(String, String)> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.pairs((!bare).then_some(i)))
            .chain([("method".to_string(), "track.scrobble".to_string())])
            .collect();
        let params = Params::from_pairs(pairs);
        check_scrobbles(&params);
        let parses = |s: &Scrobble| s.timestamp.trim().parse::<i64>().is_ok();
        match lastfm::scrobbles(&params, NOW) {
            Ok(got) => {
                prop_assert!(batch.iter().all(parses), "a bad timestamp was accepted");
                prop_assert_eq!(got.len(), batch.len());
                for (i, (s, g)) in batch.iter().zip(&got).enumerate() {
                    s.check(g, i)?;
                }
            }
            Err(e) => {
                let first_bad = batch.iter().position(|s| !parses(s));
                prop_assert!(first_bad.is_some(), "refused a batch of good timestamps: {}", e);
                prop_assert!(e.message.contains(&format!("timestamp[{}]", first_bad.unwrap())), "{}", e);
            }
        }
    }

    /// `signed_with` accepts a signature exactly when it is the parameters' own (in any case,
    /// with surrounding spaces), whatever else is changed.
    #[test]
    fn lastfm_signatures_are_checked_exactly(
        pairs in prop::collection::vec(("[a-zA-Z_\\[\\]0-9]{1,10}", any::<String>()), 0..8),
        secret in any::<String>(),
        other_secret in any::<String>(),
        tamper in 0u8..7,
        at in any::<prop::sample::Index>(),
        junk in any::<String>(),
    ) {
        let params = Params::from_pairs(pairs.clone());
        let sig = lastfm::signature(&params, &secret);
        prop_assert_eq!(sig.len(), 32);
        prop_assert!(sig.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let given = match tamper {
            0 => sig.clone(),
            1 => format!(" {}\t", sig.to_ascii_uppercase()),
            2 => {
                let i = at.index(32);
                let mut b = sig.clone().into_bytes();
                b[i] = if b[i] == b'0' { b'1' } else { b'0' };
                String::from_utf8(b).unwrap()
            }
            3 => sig[..at.index(32)].to_string(),
            4 => lastfm::signature(&params, &other_secret),
            5 => junk.clone(),
            _ => format!("{sig}0"),
        };
        let mut signed = pairs.clone();
        signed.push(("api_sig".to_string(), given.clone()));
        let signed = Params::from_pairs(signed);
        let expected = given.trim().eq_ignore_ascii_case(&sig);
        prop_assert_eq!(lastfm::signed_with(&signed, &secret), expected, "given {:?}, want {:?}", given, sig);
        // `format`, `callback` and the signature itself are not signed; anything else is.
        let mut with = signed.to_pairs();
        with.push(("format".into(), junk.clone()));
        with.push(("callback".into(), junk.clone()));
        prop_assert_eq!(lastfm::signed_with(&Params::from_pairs(with), &secret), expected);
        if expected && !pairs.is_empty() {
            let mut changed = signed.to_pairs();
            let i = at.index(changed.len());
            if changed[i].0 != "api_sig" {
                changed[i].1.push('x');
                prop_assert!(!lastfm::signed_with(&Params::from_pairs(changed), &secret));
            }
        }
        let unsigned = Params::from_pairs(pairs);
        prop_assert!(!lastfm::signed_with(&unsigned, &secret));
    }
}

/// Found by `listenbrainz_valid_submissions_keep_their_values`: a `duration` of
/// 18446744073709552 seconds is no track length, but multiplied to milliseconds without a
/// check it wrapped around i64 to 384 ms, which passed as a plausible length.
#[test]
fn regression_a_duration_whose_milliseconds_overflow_is_no_length() {
    let body = br#"{"listen_type":"single","payload":[{"listened_at":1033430400,
        "track_metadata":{"artist_name":"A","track_name":"T",
        "additional_info":{"duration":18446744073709552}}}]}"#;
    let sub = listenbrainz::parse(body, NOW).unwrap();
    assert_eq!(sub.events[0].track_duration_ms, None);
}

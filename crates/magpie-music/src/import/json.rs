//! Streaming reader for the JSON sources: Spotify's extended history (`Streaming_History_*`,
//! `endsong_*`), basic history (`StreamingHistory*`, music and podcast), Last.fm
//! `user.getrecenttracks` pages (one page object, or an array of pages), and Spotify Web API
//! recently-played pages (what the poller receives, also importable from a saved file).
//!
//! The top-level array is walked one element at a time, so memory stays flat however large the
//! file. The first element decides the layout; every later one must have the same.

use std::fmt;
use std::io::BufRead;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::error::{ParseFailure, Position};
use super::scan::{At, ScanError, Scanner};
use super::time;
use crate::event::{ContentKind, ListenEvent, Parsed, SkipReason, SourceFormat};

/// Receives each parsed event; an `Err` stops the reader (the message is kept by the caller).
pub type Sink<'a> = dyn FnMut(Parsed) -> Result<(), String> + 'a;

/// Read a JSON export, sending every event to `sink`. `is_video` marks episodes from a
/// `Streaming_History_Video_*` file as video. Returns the layout found.
pub fn read(
    reader: impl BufRead,
    is_video: bool,
    sink: &mut Sink<'_>,
) -> Result<SourceFormat, ParseFailure> {
    let mut state = State {
        range: time::Plausible::now(),
        format: None,
        records: 0,
        events: 0,
        is_video,
        sink,
        sink_error: None,
    };
    let mut scanner = Scanner::new(reader);
    match scanner.peek_non_ws().map_err(scan_failure)? {
        Some(b'[') => {
            scanner.bump();
            if scanner.peek_non_ws().map_err(scan_failure)? == Some(b']') {
                scanner.bump();
            } else {
                loop {
                    let record_no = state.records + 1;
                    let at = scanner
                        .read_element()
                        .map_err(|e| with_record(scan_failure(e), record_no))?;
                    let record: Record = serde_json::from_slice(&scanner.element)
                        .map_err(|e| element_failure(&e, at, Some(record_no)))?;
                    state
                        .accept(record)
                        .map_err(|msg| state.failure(msg, at, Some(record_no)))?;
                    match scanner.peek_non_ws().map_err(scan_failure)? {
                        Some(b',') => scanner.bump(),
                        Some(b']') => {
                            scanner.bump();
                            break;
                        }
                        Some(found) => {
                            return Err(unexpected(
                                scanner.at(),
                                found,
                                "`,` or `]` after a record",
                            ));
                        }
                        None => return Err(truncated(scanner.at())),
                    }
                }
            }
        }
        Some(b'{') => {
            let at = scanner.read_element().map_err(scan_failure)?;
            let record: Record = serde_json::from_slice(&scanner.element)
                .map_err(|e| element_failure(&e, at, None))?;
            if record.recenttracks.is_none() && record.items.is_none() {
                return Err(ParseFailure::new(
                    Position { line: Some(at.line), column: Some(at.column), ..Default::default() },
                    "a JSON object without `recenttracks` or `items`: expected an array of Spotify records, \
                     a Last.fm user.getrecenttracks page or a Spotify recently-played page",
                )
                .unknown());
            }
            state
                .accept(record)
                .map_err(|msg| state.failure(msg, at, None))?;
        }
        Some(found) => return Err(unexpected(scanner.at(), found, "`[` or `{`").unknown()),
        None => return Err(ParseFailure::new(Position::default(), "the file is empty").unknown()),
    }
    if let Some(found) = scanner.peek_non_ws().map_err(scan_failure)? {
        return Err(unexpected(
            scanner.at(),
            found,
            "nothing after the end of the JSON",
        ));
    }
    state.format.ok_or_else(|| {
        ParseFailure::new(
            Position::default(),
            "the file holds no listening events (an empty array)",
        )
        .unknown()
    })
}

fn with_record(mut f: ParseFailure, record: u64) -> ParseFailure {
    f.position.record = Some(record);
    f
}

fn truncated(at: At) -> ParseFailure {
    ParseFailure::new(
        Position {
            line: Some(at.line),
            column: Some(at.column),
            ..Default::default()
        },
        "the file ends in the middle of the JSON (truncated?)",
    )
}

fn unexpected(at: At, found: u8, expected: &str) -> ParseFailure {
    ParseFailure::new(
        Position {
            line: Some(at.line),
            column: Some(at.column),
            ..Default::default()
        },
        format!("found `{}`, expected {expected}", found as char),
    )
}

fn scan_failure(e: ScanError) -> ParseFailure {
    match e {
        ScanError::Io(e) => ParseFailure::new(Position::default(), format!("cannot read: {e}")),
        ScanError::Truncated(at) => truncated(at),
        ScanError::Unexpected {
            at,
            found,
            expected,
        } => unexpected(at, found, expected),
    }
}

/// A serde error inside one element, placed in the file.
fn element_failure(e: &serde_json::Error, start: At, record: Option<u64>) -> ParseFailure {
    let line = start.line + e.line() as u64 - 1;
    let column = if e.line() <= 1 {
        start.column + e.column() as u64 - 1
    } else {
        e.column() as u64
    };
    ParseFailure::new(
        Position {
            record,
            line: Some(line),
            column: Some(column),
            byte: None,
        },
        strip_location(e),
    )
}

fn strip_location(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

struct State<'s, 'a> {
    /// The times and durations accepted (see [`time::Plausible`]).
    range: time::Plausible,
    format: Option<SourceFormat>,
    /// Top-level elements read so far.
    records: u64,
    /// Events emitted so far (positions for Last.fm pages, which hold many tracks).
    events: u64,
    is_video: bool,
    sink: &'s mut Sink<'a>,
    sink_error: Option<String>,
}

impl State<'_, '_> {
    fn accept(&mut self, record: Record) -> Result<(), String> {
        let position = self.records + 1;
        let layout = record.layout()?;
        match self.format {
            None => self.format = Some(layout),
            Some(f) if same_family(f, layout) => {}
            Some(f) => {
                return Err(format!(
                    "expected a {} record like the first one, found a {} record",
                    f.describe(),
                    layout.describe()
                ));
            }
        }
        match layout {
            SourceFormat::LastFmJson => {
                let page = record.recenttracks.unwrap_or_default();
                for track in page.track.into_vec() {
                    self.events += 1;
                    let parsed = track.into_event(self.events, &self.range)?;
                    self.emit(parsed)?;
                }
            }
            SourceFormat::BasicJson => {
                let parsed = record.into_basic(position, &self.range)?;
                self.emit(parsed)?;
            }
            SourceFormat::SpotifyApiJson => {
                for item in record.items.unwrap_or_default() {
                    self.events += 1;
                    let parsed = item.into_event(self.events, &self.range)?;
                    self.emit(parsed)?;
                }
            }
            _ => {
                let parsed = record.into_extended(position, self.is_video, &self.range)?;
                self.emit(parsed)?;
            }
        }
        self.records = position;
        Ok(())
    }

    /// A failure while accepting a record: the sink's own error, an unknown layout (when
    /// nothing was recognised yet), or bad data.
    fn failure(&mut self, msg: String, at: At, record: Option<u64>) -> ParseFailure {
        let position = Position {
            record,
            line: Some(at.line),
            column: Some(at.column),
            byte: None,
        };
        if let Some(sink_error) = self.sink_error.take() {
            return ParseFailure::new(Position::default(), sink_error);
        }
        let failure = ParseFailure::new(position, msg);
        if self.format.is_none()
            && self.records == 0
            && self.events == 0
            && is_layout_error(&failure.detail)
        {
            failure.unknown()
        } else {
            failure
        }
    }

    fn emit(&mut self, parsed: Parsed) -> Result<(), String> {
        (self.sink)(parsed).inspect_err(|e| {
            self.sink_error = Some(e.clone());
        })
    }
}

fn is_layout_error(detail: &str) -> bool {
    detail.starts_with("a record with fields")
}

fn same_family(a: SourceFormat, b: SourceFormat) -> bool {
    a == b
        || matches!(
            (a, b),
            (SourceFormat::ExtendedJson, SourceFormat::EndsongJson)
                | (SourceFormat::EndsongJson, SourceFormat::ExtendedJson)
        )
}

/// One top-level element, any layout. Unknown keys are kept (bar IP and user-agent fields).
#[derive(Default)]
struct Record {
    // extended / endsong
    ts: Option<String>,
    ms_played: Option<i64>,
    platform: Option<String>,
    conn_country: Option<String>,
    track_name: Option<String>,
    artist_name: Option<String>,
    album_name: Option<String>,
    spotify_track_uri: Option<String>,
    episode_name: Option<String>,
    episode_show_name: Option<String>,
    spotify_episode_uri: Option<String>,
    audiobook_title: Option<String>,
    audiobook_uri: Option<String>,
    audiobook_chapter_uri: Option<String>,
    audiobook_chapter_title: Option<String>,
    reason_start: Option<String>,
    reason_end: Option<String>,
    shuffle: Option<bool>,
    skipped: Option<bool>,
    offline: Option<bool>,
    offline_timestamp: Option<i64>,
    incognito_mode: Option<bool>,
    username: Option<String>,
    endsong_markers: bool,
    // basic
    end_time: Option<String>,
    basic_artist: Option<String>,
    basic_track: Option<String>,
    podcast_name: Option<String>,
    basic_episode: Option<String>,
    basic_ms: Option<i64>,
    // Last.fm
    recenttracks: Option<LfmRecentTracks>,
    // Web API recently-played
    items: Option<Vec<ApiItem>>,
    api_markers: bool,
    extra: serde_json::Map<String, Value>,
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a listening record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut r = Record::default();
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "ts" => r.ts = map.next_value()?,
                "ms_played" => r.ms_played = map.next_value()?,
                "platform" => r.platform = map.next_value()?,
                "conn_country" => r.conn_country = map.next_value()?,
                "master_metadata_track_name" => r.track_name = map.next_value()?,
                "master_metadata_album_artist_name" => r.artist_name = map.next_value()?,
                "master_metadata_album_album_name" => r.album_name = map.next_value()?,
                "spotify_track_uri" => r.spotify_track_uri = map.next_value()?,
                "episode_name" => r.episode_name = map.next_value()?,
                "episode_show_name" => r.episode_show_name = map.next_value()?,
                "spotify_episode_uri" => r.spotify_episode_uri = map.next_value()?,
                "audiobook_title" => r.audiobook_title = map.next_value()?,
                "audiobook_uri" => r.audiobook_uri = map.next_value()?,
                "audiobook_chapter_uri" => r.audiobook_chapter_uri = map.next_value()?,
                "audiobook_chapter_title" => r.audiobook_chapter_title = map.next_value()?,
                "reason_start" => r.reason_start = map.next_value()?,
                "reason_end" => r.reason_end = map.next_value()?,
                "shuffle" => r.shuffle = map.next_value()?,
                "skipped" => r.skipped = map.next_value::<Option<LooseBool>>()?.map(|b| b.0),
                "offline" => r.offline = map.next_value()?,
                "offline_timestamp" => r.offline_timestamp = map.next_value()?,
                "incognito_mode" => r.incognito_mode = map.next_value()?,
                "username" => {
                    r.endsong_markers = true;
                    r.username = map.next_value()?;
                }
                // Personal network data: read past, never kept.
                "ip_addr" | "ip_addr_decrypted" | "user_agent_decrypted" | "user_agent" => {
                    r.endsong_markers |= key.0 != "ip_addr";
                    map.next_value::<de::IgnoredAny>()?;
                }
                "endTime" => r.end_time = map.next_value()?,
                "artistName" => r.basic_artist = map.next_value()?,
                "trackName" => r.basic_track = map.next_value()?,
                "podcastName" => r.podcast_name = map.next_value()?,
                "episodeName" => r.basic_episode = map.next_value()?,
                "msPlayed" => r.basic_ms = map.next_value()?,
                "recenttracks" => r.recenttracks = Some(map.next_value()?),
                "items" => r.items = Some(map.next_value()?),
                "cursors" | "href" | "next" | "limit" | "total" => {
                    r.api_markers = true;
                    map.next_value::<de::IgnoredAny>()?;
                }
                other => {
                    let value: Value = map.next_value()?;
                    r.extra.insert(other.to_string(), value);
                }
            }
        }
        Ok(r)
    }
}

/// A map key, borrowed when possible.
struct KeyName(String);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Older exports write `skipped` as 0/1 or a boolean.
struct LooseBool(bool);

impl<'de> Deserialize<'de> for LooseBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LooseBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean or 0/1")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LooseBool, E> {
                Ok(LooseBool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LooseBool, E> {
                match v {
                    0 => Ok(LooseBool(false)),
                    1 => Ok(LooseBool(true)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Record {
    fn layout(&self) -> Result<SourceFormat, String> {
        if self.ts.is_some() || self.ms_played.is_some() {
            if self.ts.is_none() {
                return Err(
                    "an extended-history record without `ts` (the time the play ended)".into(),
                );
            }
            if self.ms_played.is_none() {
                return Err("an extended-history record without `ms_played`".into());
            }
            Ok(if self.endsong_markers {
                SourceFormat::EndsongJson
            } else {
                SourceFormat::ExtendedJson
            })
        } else if self.end_time.is_some() || self.basic_ms.is_some() {
            if self.end_time.is_none() {
                return Err("a basic-history record without `endTime`".into());
            }
            if self.basic_ms.is_none() {
                return Err("a basic-history record without `msPlayed`".into());
            }
            Ok(SourceFormat::BasicJson)
        } else if self.recenttracks.is_some() {
            Ok(SourceFormat::LastFmJson)
        } else if self.items.is_some() && self.api_markers {
            Ok(SourceFormat::SpotifyApiJson)
        } else {
            let mut keys: Vec<&str> = self.extra.keys().map(String::as_str).collect();
            keys.truncate(8);
            Err(format!(
                "a record with fields [{}]: expected Spotify extended history (`ts`, `ms_played`, …), \
                 basic history (`endTime`, `msPlayed`, …) or a Last.fm `recenttracks` page",
                keys.join(", ")
            ))
        }
    }

    fn extra_json(&mut self) -> Option<String> {
        if self.extra.is_empty() {
            None
        } else {
            Some(Value::Object(std::mem::take(&mut self.extra)).to_string())
        }
    }

    fn into_extended(
        mut self,
        position: u64,
        is_video: bool,
        range: &time::Plausible,
    ) -> Result<Parsed, String> {
        let ts = self.ts.take().unwrap_or_default();
        let ended = time::parse_spotify_ts(&ts).ok_or_else(|| {
            format!("`ts` is \"{ts}\", expected an ISO 8601 UTC time like 2024-08-02T16:07:53Z")
        })?;
        if !range.contains(ended) {
            return Err(format!("`ts` is \"{ts}\", {}", range.outside()));
        }
        let ms = self.ms_played.unwrap_or(0);
        time::check_duration_ms(ms).map_err(|why| format!("`ms_played` {why}"))?;
        let started = range.start(ended, ms).ok_or_else(|| {
            format!("`ms_played` is {ms}: with `ts` \"{ts}\" the play would start before 1970")
        })?;
        let content_kind = if non_empty(&self.track_name) || non_empty(&self.spotify_track_uri) {
            ContentKind::Track
        } else if non_empty(&self.episode_name) || non_empty(&self.spotify_episode_uri) {
            if is_video {
                ContentKind::Video
            } else {
                ContentKind::Episode
            }
        } else if non_empty(&self.audiobook_title) || non_empty(&self.audiobook_uri) {
            ContentKind::Audiobook
        } else {
            return Ok(Err(SkipReason::NoMetadata));
        };
        let extra_fields = self.extra_json();
        Ok(Ok(ListenEvent {
            position,
            content_kind,
            ended_at_us: Some(ended),
            started_at_us: Some(started),
            ms_played: Some(ms),
            track_name: self.track_name,
            artist_name: self.artist_name,
            album_name: self.album_name,
            spotify_track_uri: self.spotify_track_uri,
            episode_name: self.episode_name,
            episode_show_name: self.episode_show_name,
            spotify_episode_uri: self.spotify_episode_uri,
            audiobook_title: self.audiobook_title,
            audiobook_uri: self.audiobook_uri,
            audiobook_chapter_uri: self.audiobook_chapter_uri,
            audiobook_chapter_title: self.audiobook_chapter_title,
            platform: self.platform.filter(|s| !s.is_empty()),
            conn_country: self.conn_country.filter(|s| !s.is_empty()),
            reason_start: self.reason_start,
            reason_end: self.reason_end,
            shuffle: self.shuffle,
            skipped: self.skipped,
            offline: self.offline,
            offline_timestamp: self.offline_timestamp,
            incognito_mode: self.incognito_mode,
            source_username: self.username.filter(|s| !s.is_empty()),
            source_time_text: Some(ts),
            extra_fields,
            ..Default::default()
        }))
    }

    fn into_basic(mut self, position: u64, range: &time::Plausible) -> Result<Parsed, String> {
        let text = self.end_time.take().unwrap_or_default();
        let ended = time::parse_basic_end_time(&text).ok_or_else(|| {
            format!("`endTime` is \"{text}\", expected \"YYYY-MM-DD HH:MM\" (UTC)")
        })?;
        if !range.contains(ended) {
            return Err(format!("`endTime` is \"{text}\", {}", range.outside()));
        }
        let ms = self.basic_ms.unwrap_or(0);
        time::check_duration_ms(ms).map_err(|why| format!("`msPlayed` {why}"))?;
        let started = range.start(ended, ms).ok_or_else(|| {
            format!(
                "`msPlayed` is {ms}: with `endTime` \"{text}\" the play would start before 1970"
            )
        })?;
        let extra_fields = self.extra_json();
        let mut event = ListenEvent {
            position,
            ended_at_us: Some(ended),
            started_at_us: Some(started),
            ms_played: Some(ms),
            source_time_text: Some(text),
            extra_fields,
            ..Default::default()
        };
        if non_empty(&self.basic_track) {
            event.content_kind = ContentKind::Track;
            event.track_name = self.basic_track;
            event.artist_name = self.basic_artist;
        } else if non_empty(&self.basic_episode) {
            event.content_kind = ContentKind::Episode;
            event.episode_name = self.basic_episode;
            event.episode_show_name = self.podcast_name;
        } else {
            return Ok(Err(SkipReason::NoMetadata));
        }
        Ok(Ok(event))
    }
}

fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.trim().is_empty())
}

// ---- Spotify Web API recently-played -----------------------------------------------------

/// One `items[]` entry. Permissive: fields Spotify removed or may remove are optional.
#[derive(Deserialize)]
struct ApiItem {
    #[serde(default)]
    track: Option<ApiTrack>,
    played_at: String,
    #[serde(default)]
    context: Option<ApiContext>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiTrack {
    name: Option<String>,
    uri: Option<String>,
    duration_ms: Option<i64>,
    explicit: Option<bool>,
    artists: Vec<ApiNamed>,
    album: Option<ApiNamed>,
    external_ids: Option<ApiExternalIds>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiNamed {
    name: Option<String>,
    uri: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiExternalIds {
    isrc: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiContext {
    uri: Option<String>,
}

impl ApiItem {
    fn into_event(self, position: u64, range: &time::Plausible) -> Result<Parsed, String> {
        let ended = time::parse_spotify_ts(&self.played_at).ok_or_else(|| {
            format!(
                "item {position}: `played_at` is \"{}\", expected an ISO 8601 UTC time",
                self.played_at
            )
        })?;
        if !range.contains(ended) {
            return Err(format!(
                "item {position}: `played_at` is \"{}\", {}",
                self.played_at,
                range.outside()
            ));
        }
        let Some(track) = self
            .track
            .filter(|t| t.name.as_deref().is_some_and(|n| !n.is_empty()))
        else {
            return Ok(Err(SkipReason::NoMetadata));
        };
        let started = match track.duration_ms {
            None => None,
            Some(d) => {
                time::check_duration_ms(d)
                    .map_err(|why| format!("item {position}: `track.duration_ms` {why}"))?;
                Some(range.start(ended, d).ok_or_else(|| {
                    format!(
                        "item {position}: `track.duration_ms` is {d}: with `played_at` \"{}\" the \
                         track would start before 1970",
                        self.played_at
                    )
                })?)
            }
        };
        let mut extra = serde_json::Map::new();
        if track.artists.len() > 1 {
            extra.insert(
                "artists".into(),
                Value::Array(
                    track
                        .artists
                        .iter()
                        .map(|a| Value::from(a.name.clone()))
                        .collect(),
                ),
            );
        }
        if let Some(isrc) = track.external_ids.and_then(|x| x.isrc) {
            extra.insert("isrc".into(), Value::from(isrc));
        }
        if let Some(explicit) = track.explicit {
            extra.insert("explicit".into(), Value::from(explicit));
        }
        let first = track.artists.into_iter().next().unwrap_or_default();
        let album = track.album.unwrap_or_default();
        Ok(Ok(ListenEvent {
            position,
            content_kind: ContentKind::Track,
            ended_at_us: Some(ended),
            started_at_us: started,
            ms_played: None,
            track_name: track.name,
            artist_name: first.name,
            album_name: album.name,
            spotify_track_uri: track.uri,
            spotify_artist_uri: first.uri,
            spotify_album_uri: album.uri,
            track_duration_ms: track.duration_ms,
            context_uri: self.context.and_then(|c| c.uri),
            source_time_text: Some(self.played_at),
            extra_fields: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
            ..Default::default()
        }))
    }
}

// ---- Last.fm user.getrecenttracks -------------------------------------------------------

#[derive(Deserialize, Default)]
struct LfmRecentTracks {
    #[serde(default)]
    track: OneOrMany<LfmTrack>,
}

/// Last.fm writes a lone track as an object rather than a one-element array.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::Many(v) => v,
            Self::One(t) => vec![t],
        }
    }
}

#[derive(Deserialize)]
struct LfmTrack {
    artist: LfmText,
    #[serde(default)]
    album: Option<LfmText>,
    name: String,
    #[serde(default)]
    mbid: Option<String>,
    #[serde(default)]
    date: Option<LfmDate>,
    #[serde(default, rename = "@attr")]
    attr: Option<LfmAttr>,
}

/// `{"#text": "Name", "mbid": "…"}`, or with `extended=1`, `{"name": "Name", "mbid": "…"}`.
#[derive(Deserialize)]
struct LfmText {
    #[serde(default, rename = "#text")]
    text: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mbid: Option<String>,
}

#[derive(Deserialize)]
struct LfmDate {
    uts: StringOrInt,
    #[serde(default, rename = "#text")]
    text: Option<String>,
}

#[derive(Deserialize)]
struct LfmAttr {
    #[serde(default)]
    nowplaying: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrInt {
    S(String),
    I(i64),
}

impl LfmTrack {
    fn into_event(self, position: u64, range: &time::Plausible) -> Result<Parsed, String> {
        if self.attr.and_then(|a| a.nowplaying).as_deref() == Some("true") && self.date.is_none() {
            return Ok(Err(SkipReason::NowPlaying));
        }
        let Some(date) = self.date else {
            return Ok(Err(SkipReason::Undated));
        };
        let uts = match date.uts {
            StringOrInt::I(i) => i,
            StringOrInt::S(s) => s.trim().parse().map_err(|_| {
                format!("track {position}: `date.uts` is \"{s}\", expected unix seconds")
            })?,
        };
        // Last.fm writes 0 for a scrobble without a date.
        if uts == 0 {
            return Ok(Err(SkipReason::Undated));
        }
        let started = range
            .unix_seconds(uts)
            .map_err(|why| format!("track {position}: `date.uts` {why}"))?;
        let artist_name = self.artist.text.or(self.artist.name);
        if self.name.trim().is_empty() {
            return Ok(Err(SkipReason::NoMetadata));
        }
        Ok(Ok(ListenEvent {
            position,
            content_kind: ContentKind::Track,
            started_at_us: Some(started),
            track_name: Some(self.name),
            artist_name,
            album_name: self
                .album
                .as_ref()
                .and_then(|a| a.text.clone().or(a.name.clone()))
                .filter(|s| !s.is_empty()),
            artist_mbid: self.artist.mbid.filter(|s| !s.is_empty()),
            album_mbid: self.album.and_then(|a| a.mbid).filter(|s| !s.is_empty()),
            track_mbid: self.mbid.filter(|s| !s.is_empty()),
            source_time_text: date.text.or_else(|| Some(uts.to_string())),
            ..Default::default()
        }))
    }
}

/// Parse one recently-played page held in memory (what the poller receives).
pub fn parse_recently_played(body: &[u8]) -> Result<Vec<Parsed>, ParseFailure> {
    let mut out = Vec::new();
    let format = read(body, false, &mut |p| {
        out.push(p);
        Ok(())
    })?;
    if format != SourceFormat::SpotifyApiJson {
        return Err(ParseFailure::new(
            Position::default(),
            format!(
                "expected a recently-played page, found {}",
                format.describe()
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<(SourceFormat, Vec<Parsed>), ParseFailure> {
        let mut out = Vec::new();
        let f = read(json.as_bytes(), false, &mut |p| {
            out.push(p);
            Ok(())
        })?;
        Ok((f, out))
    }

    #[test]
    fn extended_record_keeps_fields_but_not_ip() {
        let (f, events) = parse(
            r#"[{"ts":"2024-08-02T16:07:53Z","platform":"android","ms_played":262974,"conn_country":"AR",
            "ip_addr":"10.0.0.1","master_metadata_track_name":"So Long, London",
            "master_metadata_album_artist_name":"Taylor Swift","master_metadata_album_album_name":"TTPD",
            "spotify_track_uri":"spotify:track:7wAkQFShJ27V8362MqevQr","episode_name":null,
            "episode_show_name":null,"spotify_episode_uri":null,"reason_start":"trackdone",
            "reason_end":"trackdone","shuffle":false,"skipped":false,"offline":false,
            "offline_timestamp":1722614450,"incognito_mode":false,"new_field":7}]"#,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::ExtendedJson);
        let e = events[0].as_ref().unwrap();
        assert_eq!(e.ms_played, Some(262974));
        assert_eq!(e.ended_at_us, Some(1_722_614_873_000_000));
        assert_eq!(e.started_at_us, Some(1_722_614_873_000_000 - 262_974_000));
        assert_eq!(e.extra_fields.as_deref(), Some(r#"{"new_field":7}"#));
        assert!(!format!("{e:?}").contains("10.0.0.1"));
    }

    #[test]
    fn basic_and_podcast_records() {
        let (f, events) = parse(
            r#"[{"endTime":"2023-09-22 20:15","artistName":"club2020","trackName":"Deszcz","msPlayed":111804},
               {"endTime":"2023-09-22 20:20","podcastName":"Show","episodeName":"Ep 1","msPlayed":5000}]"#,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::BasicJson);
        assert_eq!(events[0].as_ref().unwrap().content_kind, ContentKind::Track);
        assert_eq!(
            events[1].as_ref().unwrap().content_kind,
            ContentKind::Episode
        );
    }

    #[test]
    fn errors_carry_record_and_line() {
        let err = parse("[{\"ts\":\"2024-08-02T16:07:53Z\",\"ms_played\":1},\n{\"ts\":\"2024-08-02T16:07:53Z\",\"ms_played\":\"many\"}]")
            .unwrap_err();
        assert_eq!(err.position.record, Some(2));
        assert_eq!(err.position.line, Some(2));
        assert!(err.detail.contains("invalid type"), "{}", err.detail);

        let err = parse("[{\"ts\":\"2024-08-02T16:07:53Z\",\"ms_played\":1},{\"ts\":\"2024-08-0")
            .unwrap_err();
        assert!(err.detail.contains("truncated"), "{}", err.detail);

        let err = parse(r#"[{"endTime":"2023-09-22 20:15","msPlayed":1,"trackName":"a"},{"ts":"2024-08-02T16:07:53Z","ms_played":1}]"#).unwrap_err();
        assert!(err.detail.contains("like the first one"), "{}", err.detail);

        let err = parse(r#"[{"foo":1}]"#).unwrap_err();
        assert!(err.detail.contains("foo"), "{}", err.detail);
        assert!(parse("[]").is_err());
    }

    #[test]
    fn recently_played_page() {
        let events = parse_recently_played(
            br#"{"items":[{"track":{"name":"Solitary Daze","uri":"spotify:track:1","duration_ms":347000,
              "artists":[{"name":"Maceo Plex","uri":"spotify:artist:3"}],"album":{"name":"Solitary Daze","uri":"spotify:album:9"}},
              "played_at":"2023-09-22T15:43:33.750Z","context":null}],
              "next":null,"cursors":{"after":"1695397413750","before":"1695396194294"},"limit":2,"href":"x"}"#,
        )
        .unwrap();
        let e = events[0].as_ref().unwrap();
        assert_eq!(e.ended_at_us, Some(1_695_397_413_750_000));
        assert_eq!(e.started_at_us, Some(1_695_397_413_750_000 - 347_000_000));
        assert_eq!(e.ms_played, None);
        assert_eq!(e.spotify_artist_uri.as_deref(), Some("spotify:artist:3"));
    }

    #[test]
    fn lastfm_page() {
        let (f, events) = parse(
            r##"{"recenttracks":{"track":[
              {"artist":{"mbid":"","#text":"Now"},"name":"Playing","@attr":{"nowplaying":"true"}},
              {"artist":{"mbid":"a-mbid","#text":"Blackbird Blackbird"},"album":{"mbid":"","#text":"Summer Heart"},
               "name":"Hawaii","mbid":"t-mbid","date":{"uts":"1536407564","#text":"08 Sep 2018, 11:52"}}],
              "@attr":{"user":"x","page":"1"}}}"##,
        )
        .unwrap();
        assert_eq!(f, SourceFormat::LastFmJson);
        assert_eq!(events[0], Err(SkipReason::NowPlaying));
        let e = events[1].as_ref().unwrap();
        assert_eq!(e.started_at_us, Some(1_536_407_564_000_000));
        assert_eq!(e.artist_mbid.as_deref(), Some("a-mbid"));
        assert_eq!(e.album_mbid, None);
    }
}

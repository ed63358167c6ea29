//! The streaming reading loop of every JSON source, and the dispatch of each record to its
//! format's converter (one file per format beside this one: [`super::spotify_extended`],
//! [`super::spotify_basic`], [`super::lastfm_json`], [`super::spotify_api`],
//! [`super::listenbrainz`], [`super::maloja`]).
//!
//! Layouts: a top-level array of records (Spotify exports, Last.fm pages, the older ListenBrainz
//! export); one object (a Last.fm or recently-played page); an object with a `scrobbles` array
//! (Maloja, whose scrobbles are streamed from inside the object); or JSON lines, one
//! ListenBrainz listen per line.
//!
//! The top-level array is walked one element at a time, so memory stays flat however large the
//! file. The first element decides the layout; every later one must have the same. [`Record`]
//! reads an element of any layout (bar IP and user-agent fields, which are read past and never
//! kept) and says which layout it is.

use std::fmt;
use std::io::BufRead;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::error::{ParseFailure, Position};
use super::lastfm_json::LfmRecentTracks;
use super::scan::{At, ScanError, Scanner};
use super::spotify_api::ApiItem;
use super::spotify_extended::LooseBool;
use super::time;
use super::{listenbrainz, maloja};
use crate::event::{Parsed, SourceFormat};

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
            each_element(&mut scanner, |element, at, record_no| {
                let record: Record = serde_json::from_slice(element)
                    .map_err(|e| element_failure(&e, element, at, Some(record_no)))?;
                state
                    .accept(record)
                    .map_err(|msg| state.failure(msg, at, Some(record_no)))
            })?;
        }
        Some(b'{') => {
            let at = scanner.at();
            scanner.start_capture();
            if !walk_object(&mut scanner, &mut state)? {
                // Not a Maloja export: the object is one record, as it was read.
                let object = scanner.take_capture();
                let record: Record = serde_json::from_slice(&object)
                    .map_err(|e| element_failure(&e, &object, at, None))?;
                let listen = listenbrainz::is_listen(&record.extra);
                if record.recenttracks.is_none() && record.items.is_none() && !listen {
                    return Err(ParseFailure::new(
                        Position { line: Some(at.line), column: Some(at.column), ..Default::default() },
                        "a JSON object without `recenttracks`, `items`, `scrobbles` or `listened_at`: \
                         expected an array of Spotify records, a Last.fm user.getrecenttracks page, \
                         a Spotify recently-played page, a Maloja export or ListenBrainz listens",
                    )
                    .unknown());
                }
                let record_no = listen.then_some(1);
                state
                    .accept(record)
                    .map_err(|msg| state.failure(msg, at, record_no))?;
                if listen {
                    json_lines(&mut scanner, &mut state)?;
                }
            }
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

/// Walk the elements of an array whose `[` was just consumed, through its `]`, handing each to
/// `accept` with its start and its 1-based number.
fn each_element<R: BufRead>(
    scanner: &mut Scanner<R>,
    mut accept: impl FnMut(&[u8], At, u64) -> Result<(), ParseFailure>,
) -> Result<(), ParseFailure> {
    if scanner.peek_non_ws().map_err(scan_failure)? == Some(b']') {
        scanner.bump();
        return Ok(());
    }
    let mut record_no = 0;
    loop {
        record_no += 1;
        let at = scanner
            .read_element()
            .map_err(|e| with_record(scan_failure(e), record_no))?;
        accept(&scanner.element, at, record_no)?;
        match scanner.peek_non_ws().map_err(scan_failure)? {
            Some(b',') => scanner.bump(),
            Some(b']') => {
                scanner.bump();
                return Ok(());
            }
            Some(found) => {
                return Err(unexpected(scanner.at(), found, "`,` or `]` after a record"));
            }
            None => return Err(truncated(scanner.at())),
        }
    }
}

/// Walk a top-level object field by field (its `{` is next). A `scrobbles` array makes it a
/// Maloja export, streamed here scrobble by scrobble: `true`. Otherwise `false`, and the
/// scanner's capture holds the object's bytes.
fn walk_object<R: BufRead>(
    scanner: &mut Scanner<R>,
    state: &mut State<'_, '_>,
) -> Result<bool, ParseFailure> {
    scanner.bump();
    let mut maloja = false;
    let mut first = true;
    loop {
        match scanner.peek_non_ws().map_err(scan_failure)? {
            Some(b'}') if first => {
                scanner.bump();
                return Ok(maloja);
            }
            Some(b'"') => {}
            Some(found) => return Err(unexpected(scanner.at(), found, "a field name")),
            None => return Err(truncated(scanner.at())),
        }
        first = false;
        let key_at = scanner.read_value().map_err(scan_failure)?;
        let key: String = serde_json::from_slice(&scanner.element)
            .map_err(|e| element_failure(&e, &scanner.element, key_at, None))?;
        match scanner.peek_non_ws().map_err(scan_failure)? {
            Some(b':') => scanner.bump(),
            Some(found) => return Err(unexpected(scanner.at(), found, "`:` after a field name")),
            None => return Err(truncated(scanner.at())),
        }
        let value_start = scanner.peek_non_ws().map_err(scan_failure)?;
        if key == "scrobbles" && value_start == Some(b'[') && !maloja {
            maloja = true;
            scanner.take_capture();
            scanner.bump();
            each_element(scanner, |element, at, record_no| {
                state.accept_maloja(element, at, record_no)
            })?;
            if state.format.is_none() {
                // An empty export is still a Maloja export.
                state.format = Some(SourceFormat::MalojaJson);
            }
        } else {
            scanner.read_value().map_err(scan_failure)?;
        }
        match scanner.peek_non_ws().map_err(scan_failure)? {
            Some(b',') => scanner.bump(),
            Some(b'}') => {
                scanner.bump();
                return Ok(maloja);
            }
            Some(found) => return Err(unexpected(scanner.at(), found, "`,` or `}` after a field")),
            None => return Err(truncated(scanner.at())),
        }
    }
}

/// The lines after the first of a ListenBrainz JSON-lines file, one listen each (blank lines
/// are passed over). A broken line is named by its line number.
fn json_lines<R: BufRead>(
    scanner: &mut Scanner<R>,
    state: &mut State<'_, '_>,
) -> Result<(), ParseFailure> {
    while let Some(at) = scanner.read_line().map_err(scan_failure)? {
        let line = scanner.element.trim_ascii();
        if line.is_empty() {
            continue;
        }
        // Columns count from the line's first byte, before the blank space trimmed off.
        let at = At {
            column: at.column
                + (scanner.element.len() - scanner.element.trim_ascii_start().len()) as u64,
            ..at
        };
        let record_no = state.records + 1;
        let record: Record = serde_json::from_slice(line).map_err(|e| {
            let mut failure = element_failure(&e, line, at, Some(record_no));
            if e.is_eof() {
                failure.detail = "the line ends in the middle of the JSON (truncated?)".into();
            }
            failure
        })?;
        state
            .accept(record)
            .map_err(|msg| state.failure(msg, at, Some(record_no)))?;
    }
    Ok(())
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

/// A serde error inside one element (`element`, whose first byte is at `start` in the file),
/// placed in the file. serde_json counts lines and columns from 1 within the element, but puts
/// an error at a line break (a control character in a string, say) in column 0 of the next
/// line: that is the break itself, one past the end of the line before.
fn element_failure(
    e: &serde_json::Error,
    element: &[u8],
    start: At,
    record: Option<u64>,
) -> ParseFailure {
    let (mut line, mut column) = (e.line().max(1) as u64, e.column() as u64);
    if column == 0 && line > 1 {
        line -= 1;
        let text = element.split(|b| *b == b'\n').nth(line as usize - 1);
        column = text.map_or(0, |t| t.len() as u64) + 1;
    }
    let column = column.max(1);
    ParseFailure::new(
        Position {
            record,
            line: Some(start.line + line - 1),
            column: Some(if line == 1 {
                start.column + column - 1
            } else {
                column
            }),
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
    /// Take `layout` as the file's, or check it is the same as the first record's.
    fn begin(&mut self, layout: SourceFormat) -> Result<(), String> {
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
        Ok(())
    }

    /// One scrobble of a Maloja export.
    fn accept_maloja(
        &mut self,
        element: &[u8],
        at: At,
        record_no: u64,
    ) -> Result<(), ParseFailure> {
        let scrobble: maloja::Scrobble = serde_json::from_slice(element).map_err(|e| {
            let failure = element_failure(&e, element, at, Some(record_no));
            if self.format.is_none() && failure.detail.starts_with("missing field") {
                // `scrobbles` of some other kind.
                failure.unknown()
            } else {
                failure
            }
        })?;
        self.begin(SourceFormat::MalojaJson)
            .and_then(|()| scrobble.into_event(record_no, &self.range))
            .and_then(|parsed| self.emit(parsed))
            .map_err(|msg| self.failure(msg, at, Some(record_no)))?;
        self.records = record_no;
        Ok(())
    }

    fn accept(&mut self, record: Record) -> Result<(), String> {
        let position = self.records + 1;
        let layout = record.layout()?;
        self.begin(layout)?;
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
            SourceFormat::ListenBrainzJson => {
                let parsed = listenbrainz::listen(record.extra, position, &self.range)?;
                self.emit(parsed)?;
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
pub(super) struct Record {
    // extended / endsong
    pub(super) ts: Option<String>,
    pub(super) ms_played: Option<i64>,
    pub(super) platform: Option<String>,
    pub(super) conn_country: Option<String>,
    pub(super) track_name: Option<String>,
    pub(super) artist_name: Option<String>,
    pub(super) album_name: Option<String>,
    pub(super) spotify_track_uri: Option<String>,
    pub(super) episode_name: Option<String>,
    pub(super) episode_show_name: Option<String>,
    pub(super) spotify_episode_uri: Option<String>,
    pub(super) audiobook_title: Option<String>,
    pub(super) audiobook_uri: Option<String>,
    pub(super) audiobook_chapter_uri: Option<String>,
    pub(super) audiobook_chapter_title: Option<String>,
    pub(super) reason_start: Option<String>,
    pub(super) reason_end: Option<String>,
    pub(super) shuffle: Option<bool>,
    pub(super) skipped: Option<bool>,
    pub(super) offline: Option<bool>,
    pub(super) offline_timestamp: Option<i64>,
    pub(super) incognito_mode: Option<bool>,
    pub(super) username: Option<String>,
    pub(super) endsong_markers: bool,
    // basic
    pub(super) end_time: Option<String>,
    pub(super) basic_artist: Option<String>,
    pub(super) basic_track: Option<String>,
    pub(super) podcast_name: Option<String>,
    pub(super) basic_episode: Option<String>,
    pub(super) basic_ms: Option<i64>,
    // Last.fm
    pub(super) recenttracks: Option<LfmRecentTracks>,
    // Web API recently-played
    pub(super) items: Option<Vec<ApiItem>>,
    pub(super) api_markers: bool,
    pub(super) extra: serde_json::Map<String, Value>,
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
        } else if listenbrainz::is_listen(&self.extra) {
            Ok(SourceFormat::ListenBrainzJson)
        } else {
            let mut keys: Vec<&str> = self.extra.keys().map(String::as_str).collect();
            keys.truncate(8);
            Err(format!(
                "a record with fields [{}]: expected Spotify extended history (`ts`, `ms_played`, …), \
                 basic history (`endTime`, `msPlayed`, …), a Last.fm `recenttracks` page \
                 or a ListenBrainz listen (`listened_at`, `track_metadata`)",
                keys.join(", ")
            ))
        }
    }

    pub(super) fn extra_json(&mut self) -> Option<String> {
        if self.extra.is_empty() {
            None
        } else {
            Some(Value::Object(std::mem::take(&mut self.extra)).to_string())
        }
    }
}

pub(super) fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.trim().is_empty())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Every event of a JSON export held in memory, and its layout.
    pub(in crate::import) fn parse(
        json: &str,
    ) -> Result<(SourceFormat, Vec<Parsed>), ParseFailure> {
        let mut out = Vec::new();
        let f = read(json.as_bytes(), false, &mut |p| {
            out.push(p);
            Ok(())
        })?;
        Ok((f, out))
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
}

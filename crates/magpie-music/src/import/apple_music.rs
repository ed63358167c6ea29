//! Apple Music's `Apple Music Play Activity.csv` from Apple's privacy export (Data & Privacy →
//! "Apple Media Services information"), in both layouts seen: the older 44 columns with
//! `Artist Name` + `Content Name`, and the newer 118 with `Song Name`, `Album Name` and no
//! artist column at all (`Container Artist Name` is the artist of the album or playlist played
//! from, and is often empty). Columns are found by name, in any order.
//!
//! One row is one playback event: `Event Start Timestamp` and `Event End Timestamp` (ISO 8601
//! UTC), `Play Duration Milliseconds` (ms played), `Media Duration In Milliseconds` (the track's
//! length), `End Reason Type` (`reason_end`; `TRACK_SKIPPED_*` sets `skipped`), `Shuffle Play`,
//! `Offline` and `Device OS Name` (the platform). A handful of descriptive columns (event,
//! item, media and container types, the container's name, feature name, store country, UTC
//! offset, start/end positions) go to `extra_fields`. **No other column is kept**: above all
//! not `Client IP Address` or any `IP …` column, nor `Client Device Name` (a user agent), device
//! or account identifiers.
//!
//! Rows that are not plays are skipped and counted:
//! - `no_metadata`: no song title (Apple writes these for `AGGREGATE_NON_CATALOG_PLAY_TIME`,
//!   ads and clips), an `AGGREGATE_NON_CATALOG_PLAY_TIME` row whatever its title, and
//!   `LYRIC_DISPLAY` events (lyrics shown, not a play);
//! - `now_playing`: a play that started and has no end (`PLAY_START` with no end time, or any
//!   row with neither an end time nor a duration);
//! - `undated`: a negative play duration or no start time that can be worked out (Apple writes
//!   these with an empty start).
//!
//! Where the newer layout names no artist, the play is kept with its title and album and no
//! artist: the listening time and the albums stay counted, and a later source or enrichment can
//! name the artist. Cross-source dedupe then matches on the title alone within the time window.

use std::io::Read;

use serde_json::{Map, Value};

use super::csv_reader::{Source, cell, csv_failure, line_of};
use super::error::{ParseFailure, Position};
use super::json::Sink;
use super::time;
use crate::event::{ContentKind, ListenEvent, SkipReason};

const START: &str = "Event Start Timestamp";
const END: &str = "Event End Timestamp";
const PLAYED: &str = "Play Duration Milliseconds";
const LENGTH: &str = "Media Duration In Milliseconds";

/// Descriptive columns kept in `extra_fields` under their own names. Nothing else is kept.
const EXTRA: &[&str] = &[
    "Event Type",
    "Item Type",
    "Media Type",
    "Content Specific Type",
    "Container Type",
    "Container Name",
    "Container Album Name",
    "Container Artist Name",
    "Source Type",
    "Feature Name",
    "Genre",
    "Store Country Name",
    "Store Front Name",
    "UTC Offset In Seconds",
    "Start Position In Milliseconds",
    "End Position In Milliseconds",
    "Event Reason Hint Type",
];

/// Whether a CSV's first row is a Play Activity header.
pub fn is_header(row: &csv::StringRecord) -> bool {
    row.iter()
        .map(clean)
        .any(|c| c == START || c == END || c == PLAYED)
}

fn clean(cell: &str) -> &str {
    cell.trim().trim_start_matches('\u{feff}')
}

/// Column positions found in the header.
struct Columns {
    title: usize,
    artist: Option<usize>,
    container_artist: Option<usize>,
    album: Option<usize>,
    container_album: Option<usize>,
    start: Option<usize>,
    end: Option<usize>,
    played: Option<usize>,
    length: Option<usize>,
    event_type: Option<usize>,
    item_type: Option<usize>,
    end_reason: Option<usize>,
    shuffle: Option<usize>,
    offline: Option<usize>,
    os: Option<usize>,
    extra: Vec<(&'static str, usize)>,
    width: usize,
}

impl Columns {
    /// The columns of `header`, the row on `line`.
    fn from_header(header: &csv::StringRecord, line: u64) -> Result<Self, ParseFailure> {
        let names: Vec<&str> = header.iter().map(clean).collect();
        let find = |name: &str| names.iter().position(|n| *n == name);
        let title = find("Song Name").or_else(|| find("Content Name"));
        let (Some(title), Some(_)) = (title, find(START).or_else(|| find(END))) else {
            return Err(ParseFailure::new(
                Position {
                    line: Some(line),
                    ..Default::default()
                },
                format!(
                    "the header names {} column(s) but not `Song Name` (or `Content Name`) and `{START}`/`{END}`: \
                     expected Apple Music's Play Activity CSV",
                    names.len()
                ),
            ));
        };
        Ok(Self {
            title,
            artist: find("Artist Name"),
            container_artist: find("Container Artist Name"),
            album: find("Album Name"),
            container_album: find("Container Album Name"),
            start: find(START),
            end: find(END),
            played: find(PLAYED),
            length: find(LENGTH),
            event_type: find("Event Type"),
            item_type: find("Item Type"),
            end_reason: find("End Reason Type"),
            shuffle: find("Shuffle Play"),
            offline: find("Offline"),
            os: find("Device OS Name"),
            extra: EXTRA
                .iter()
                .filter_map(|name| Some((*name, find(name)?)))
                .collect(),
            width: names.len(),
        })
    }
}

/// Read the rows after the header `header`, sending every play (or skip) to `sink`.
pub fn read<R: Read>(
    csv: &mut csv::Reader<Source<R>>,
    header: &csv::StringRecord,
    sink: &mut Sink<'_>,
) -> Result<(), ParseFailure> {
    let cols = Columns::from_header(header, line_of(csv, header))?;
    let range = time::Plausible::now();
    let mut record = csv::StringRecord::new();
    while csv.read_record(&mut record).map_err(|e| csv_failure(&e))? {
        let line = line_of(csv, &record);
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        if record.len() < cols.width {
            return Err(at_line(
                line,
                format!(
                    "{} column(s), expected {} as in the header",
                    record.len(),
                    cols.width
                ),
            ));
        }
        let parsed = play(&record, &cols, line, &range).map_err(|why| at_line(line, why))?;
        sink(parsed).map_err(|e| ParseFailure::new(Position::default(), e))?;
    }
    Ok(())
}

fn at_line(line: u64, detail: String) -> ParseFailure {
    ParseFailure::new(
        Position {
            line: Some(line),
            ..Default::default()
        },
        detail,
    )
}

/// One row into an event, a skip, or why the row is broken.
fn play(
    record: &csv::StringRecord,
    cols: &Columns,
    line: u64,
    range: &time::Plausible,
) -> Result<Result<ListenEvent, SkipReason>, String> {
    let get = |i: Option<usize>| cell(record, i);
    let event_type = get(cols.event_type);
    let title = get(Some(cols.title));
    if title.is_none()
        || get(cols.item_type).as_deref() == Some("AGGREGATE_NON_CATALOG_PLAY_TIME")
        || event_type.as_deref() == Some("LYRIC_DISPLAY")
    {
        return Ok(Err(SkipReason::NoMetadata));
    }
    let played = millis(get(cols.played), PLAYED)?;
    if played.is_some_and(|ms| ms < 0) {
        return Ok(Err(SkipReason::Undated));
    }
    let iso = "an ISO 8601 UTC time like 2016-05-29T01:24:23.210Z";
    let time_of = |i: Option<usize>, name: &str| {
        get(i)
            .map(|text| range.parse_field(name, &text, time::parse_spotify_ts, iso))
            .transpose()
    };
    let start = time_of(cols.start, START)?;
    let end_text = get(cols.end);
    let end = time_of(cols.end, END)?;
    if let Some(ms) = played {
        time::check_duration_ms(ms).map_err(|why| format!("`{PLAYED}` {why}"))?;
    }
    let (started, ended) = match (start, end, played) {
        (None, None, _) => return Ok(Err(SkipReason::Undated)),
        (Some(_), None, _) if event_type.as_deref() == Some("PLAY_START") => {
            return Ok(Err(SkipReason::NowPlaying));
        }
        (Some(_), None, None) => return Ok(Err(SkipReason::NowPlaying)),
        (Some(s), None, Some(ms)) => (s, s.saturating_add(ms.saturating_mul(1_000))),
        (None, Some(_), None) => return Ok(Err(SkipReason::Undated)),
        (None, Some(e), Some(ms)) => {
            let text = end_text.as_deref().unwrap_or_default();
            (range.play_start(e, (END, text), (PLAYED, ms))?, e)
        }
        (Some(s), Some(e), _) => (s, e),
    };
    let track_duration_ms = match millis(get(cols.length), LENGTH)? {
        Some(ms) => Some(time::check_duration_ms(ms).map_err(|why| format!("`{LENGTH}` {why}"))?),
        None => None,
    };
    let end_reason = get(cols.end_reason);
    let mut extra = Map::new();
    for (name, i) in &cols.extra {
        if let Some(v) = get(Some(*i)) {
            extra.insert((*name).to_string(), Value::from(v));
        }
    }
    Ok(Ok(ListenEvent {
        position: line,
        content_kind: ContentKind::Track,
        started_at_us: Some(started),
        ended_at_us: Some(ended),
        ms_played: played,
        track_name: title,
        artist_name: get(cols.artist).or_else(|| get(cols.container_artist)),
        album_name: get(cols.album).or_else(|| get(cols.container_album)),
        track_duration_ms,
        platform: get(cols.os),
        skipped: end_reason
            .as_deref()
            .map(|r| r.starts_with("TRACK_SKIPPED")),
        reason_end: end_reason,
        shuffle: get(cols.shuffle).and_then(|s| match s.as_str() {
            "SHUFFLE_ON" => Some(true),
            "SHUFFLE_OFF" => Some(false),
            _ => None,
        }),
        offline: get(cols.offline).and_then(|s| match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }),
        source_time_text: end_text.or_else(|| get(cols.start)),
        extra_fields: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
        ..Default::default()
    }))
}

/// Milliseconds as Apple (or a spreadsheet re-saving the file) writes them: `186000` or
/// `186000.0`.
fn millis(text: Option<String>, column: &str) -> Result<Option<i64>, String> {
    let Some(text) = text else { return Ok(None) };
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(Some(ms));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f.abs() < 9.0e15 => Ok(Some(f.round() as i64)),
        _ => Err(format!("`{column}` is \"{text}\", expected milliseconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourceFormat;
    use crate::import::csv_reader::tests::parse;

    const OLD: &str = "Artist Name,Content Name,Event End Timestamp,Event Start Timestamp,Event Type,Item Type,End Reason Type,Media Duration In Milliseconds,Play Duration Milliseconds,Offline\n";
    const NEW: &str = "Album Name,Client IP Address,Client Device Name,Container Artist Name,Event End Timestamp,Event Start Timestamp,Event Type,End Reason Type,Media Duration In Milliseconds,Play Duration Milliseconds,Shuffle Play,Song Name\n";

    #[test]
    fn the_older_layout_with_skips() {
        let text = format!(
            "{OLD}\
             Queen,Bohemian Rhapsody,2016-07-15T12:50:35.392Z,2016-07-15T12:47:00.986Z,PLAY_END,ITUNES_STORE_CONTENT,NATURAL_END_OF_TRACK,355144.0,214406,False\n\
             ,,2015-08-05T02:02:05.093Z,2015-08-05T02:01:53.223Z,,AGGREGATE_NON_CATALOG_PLAY_TIME,NOT_APPLICABLE,11870.0,11870,\n\
             EXID,Ah Yeah,2016-06-27T04:26:21.179Z,,PLAY_END,ITUNES_STORE_CONTENT,PLAYBACK_MANUALLY_PAUSED,199642.0,-11,\n\
             Coldplay,Clocks,2016-08-04T03:36:14.321Z,2016-08-04T03:36:11.883Z,,ITUNES_STORE_CONTENT,TRACK_SKIPPED_FORWARDS,332486.0,2438,True\n"
        );
        let (f, rows) = parse(&text).unwrap();
        assert_eq!(f, SourceFormat::AppleMusicCsv);
        let e = rows[0].as_ref().unwrap();
        assert_eq!(e.artist_name.as_deref(), Some("Queen"));
        assert_eq!(e.ms_played, Some(214_406));
        assert_eq!(e.track_duration_ms, Some(355_144));
        assert_eq!(
            e.ended_at_us.unwrap() - e.started_at_us.unwrap(),
            214_406_000
        );
        assert_eq!(e.skipped, Some(false));
        assert_eq!(e.offline, Some(false));
        assert_eq!(e.position, 2);
        assert_eq!(rows[1], Err(SkipReason::NoMetadata));
        assert_eq!(rows[2], Err(SkipReason::Undated));
        assert_eq!(rows[3].as_ref().unwrap().skipped, Some(true));
    }

    #[test]
    fn the_newer_layout_keeps_no_ip_and_no_user_agent() {
        let text = format!(
            "{NEW}\
             Freedom,192.0.2.7,itunescloudd/1.0 iOS/12.0,,2017-10-21T16:13:42.781Z,2017-10-21T16:12:42.781Z,PLAY_END,PLAYBACK_MANUALLY_PAUSED,240000,60000,SHUFFLE_ON,Right Now\n\
             ,2001:db8::1,Music/1.3,,,2023-02-10T22:38:57.143Z,PLAY_START,,142000,,SHUFFLE_OFF,Disappointment\n"
        );
        let (_, rows) = parse(&text).unwrap();
        let e = rows[0].as_ref().unwrap();
        assert_eq!(e.track_name.as_deref(), Some("Right Now"));
        assert_eq!(e.artist_name, None, "no artist column: kept without one");
        assert_eq!(e.album_name.as_deref(), Some("Freedom"));
        assert_eq!(e.shuffle, Some(true));
        let all = format!("{e:?}");
        assert!(
            !all.contains("192.0.2.7") && !all.contains("itunescloudd"),
            "{all}"
        );
        assert_eq!(rows[1], Err(SkipReason::NowPlaying));
    }

    #[test]
    fn bad_rows_are_errors_with_lines() {
        let row = "Queen,Flash,2016-03-02T09:31:21.753Z,2016-03-02T09:30:21.753Z,,ITUNES_STORE_CONTENT,,169131.0,60000,\n";
        let err = parse(&format!(
            "{OLD}{row}{}",
            row.replace("2016-03-02T09:30:21.753Z", "last week")
        ))
        .unwrap_err();
        assert_eq!(err.position.line, Some(3));
        assert!(
            err.detail
                .contains("`Event Start Timestamp` is \"last week\""),
            "{}",
            err.detail
        );
        let err = parse(&format!("{OLD}{row}{}", row.replace("60000", "lots"))).unwrap_err();
        assert_eq!(err.position.line, Some(3));
        let err = parse(&format!("{OLD}Queen,Flash\n")).unwrap_err();
        assert!(err.detail.contains("expected 10"), "{}", err.detail);
        let err =
            parse("Event Start Timestamp,Genre\n2016-03-02T09:30:21.753Z,Rock\n").unwrap_err();
        assert!(err.detail.contains("Song Name"), "{}", err.detail);
    }
}

//! Last.fm scrobble CSV, in the layouts the common exporters write: with a header naming the
//! columns (any order; `artist`, `album`, `track`/`title`, `uts`/`timestamp` and/or
//! `date`/`datetime`/`utc_time`, optional `*_mbid`), or without a header as
//! `artist,album,track,date`. A scrobble's time is when the play started.

use std::io::Read;

use super::csv_reader::{Source, cell, csv_failure, line_of};
use super::error::{ParseFailure, Position};
use super::json::Sink;
use super::time;
use crate::event::{ContentKind, ListenEvent, SkipReason};

/// Column positions found in the header (or implied by the headerless layout).
#[derive(Debug, Default, Clone)]
struct Columns {
    artist: usize,
    track: usize,
    album: Option<usize>,
    uts: Option<usize>,
    date_text: Option<usize>,
    artist_mbid: Option<usize>,
    album_mbid: Option<usize>,
    track_mbid: Option<usize>,
    width: usize,
    /// The header's column names (lowercased), for messages.
    names: Vec<String>,
}

fn find(header: &[String], names: &[&str]) -> Option<usize> {
    header.iter().position(|h| names.contains(&h.as_str()))
}

impl Columns {
    fn from_header(header: &[String]) -> Option<Self> {
        let artist = find(
            header,
            &["artist", "artist_name", "artist name", "artistname"],
        )?;
        let track = find(
            header,
            &[
                "track",
                "title",
                "track_name",
                "track name",
                "trackname",
                "name",
                "song",
            ],
        )?;
        let uts = find(
            header,
            &["uts", "timestamp", "unix_timestamp", "date_uts", "date.uts"],
        );
        let date_text = find(
            header,
            &[
                "date",
                "datetime",
                "utc_time",
                "time",
                "played_at",
                "scrobble_time",
                "date_text",
                "date.#text",
            ],
        );
        Some(Self {
            artist,
            track,
            album: find(header, &["album", "album_name", "album name", "albumname"]),
            uts,
            date_text,
            artist_mbid: find(header, &["artist_mbid", "artist mbid", "artistmbid"]),
            album_mbid: find(header, &["album_mbid", "album mbid", "albummbid"]),
            track_mbid: find(header, &["track_mbid", "track mbid", "trackmbid", "mbid"]),
            width: header.len(),
            names: header.to_vec(),
        })
    }

    fn headerless() -> Self {
        Self {
            artist: 0,
            album: Some(1),
            track: 2,
            date_text: Some(3),
            width: 4,
            names: ["artist", "album", "track", "date"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        }
    }

    /// How a column is named in messages: "the `uts` column".
    fn describe(&self, i: usize) -> String {
        match self.names.get(i) {
            Some(name) => format!("the `{name}` column"),
            None => format!("column {}", i + 1),
        }
    }
}

/// Read a Last.fm CSV whose first row (a header, or the first scrobble) is `first_row`, sending
/// every scrobble to `sink`.
pub fn read<R: Read>(
    csv: &mut csv::Reader<Source<R>>,
    first_row: csv::StringRecord,
    sink: &mut Sink<'_>,
) -> Result<(), ParseFailure> {
    let mut record = first_row;
    let mut columns: Option<Columns> = None;
    let mut first = true;
    let range = time::Plausible::now();
    loop {
        if !first {
            let more = csv.read_record(&mut record).map_err(|e| csv_failure(&e))?;
            if !more {
                break;
            }
        }
        let line = line_of(csv, &record);
        if first {
            first = false;
            let cells: Vec<String> = record
                .iter()
                .map(|c| c.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
                .collect();
            let looks_like_header = cells
                .iter()
                .any(|c| c == "artist" || c == "artist_name" || c == "artistname")
                || cells.iter().any(|c| c == "track" || c == "title");
            if looks_like_header {
                let cols = Columns::from_header(&cells).ok_or_else(|| {
                    ParseFailure::new(
                        Position { line: Some(line), ..Default::default() },
                        format!(
                            "the CSV header [{}] lacks the columns of a Last.fm export: expected `artist`, `track` (or `title`) and a time (`uts`/`timestamp` or `date`/`datetime`/`utc_time`)",
                            cells.join(", ")
                        ),
                    )
                })?;
                if cols.uts.is_none() && cols.date_text.is_none() {
                    return Err(ParseFailure::new(
                        Position {
                            line: Some(line),
                            ..Default::default()
                        },
                        format!(
                            "the CSV header [{}] has no time column: expected `uts`/`timestamp` (unix seconds) or `date`/`datetime`/`utc_time`",
                            cells.join(", ")
                        ),
                    ));
                }
                columns = Some(cols);
                continue;
            }
            if record.len() != 4 || time::parse_lastfm_text(&record[3]).is_none() {
                return Err(ParseFailure::new(
                    Position { line: Some(line), record: Some(1), ..Default::default() },
                    format!(
                        "the first row has {} column(s) and no header: expected a Last.fm export, either with a header \
                         (artist, album, track, uts/date, …) or as four columns artist,album,track,date \
                         (e.g. \"Radiohead,OK Computer,Airbag,31 Jan 2021 22:39\")",
                        record.len()
                    ),
                )
                .unknown());
            }
            columns = Some(Columns::headerless());
        }
        let cols = columns.as_ref().expect("columns decided on the first row");
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        if record.len() < cols.width {
            return Err(ParseFailure::new(
                Position {
                    line: Some(line),
                    ..Default::default()
                },
                format!(
                    "{} column(s), expected {} as in the first row",
                    record.len(),
                    cols.width
                ),
            ));
        }
        let parsed = scrobble(&record, cols, line, &range)?;
        sink(parsed).map_err(|e| ParseFailure::new(Position::default(), e))?;
    }
    Ok(())
}

fn scrobble(
    record: &csv::StringRecord,
    cols: &Columns,
    line: u64,
    range: &time::Plausible,
) -> Result<Result<ListenEvent, SkipReason>, ParseFailure> {
    let at = |detail: String| {
        ParseFailure::new(
            Position {
                line: Some(line),
                ..Default::default()
            },
            detail,
        )
    };
    let uts_text = cell(record, cols.uts);
    let date_text = cell(record, cols.date_text);
    let started = match (&uts_text, &date_text) {
        (Some(u), _) => {
            let secs: i64 = u
                .parse()
                .map_err(|_| at(format!("`{u}` in the timestamp column is not unix seconds")))?;
            // Last.fm writes 0 for a scrobble without a date.
            if secs == 0 {
                return Ok(Err(SkipReason::Undated));
            }
            let column = cols.describe(cols.uts.unwrap_or_default());
            range
                .unix_seconds(secs)
                .map_err(|why| at(format!("the timestamp in {column} {why}")))?
        }
        (None, Some(d)) => {
            let us = time::parse_lastfm_text(d).ok_or_else(|| {
                at(format!(
                    "`{d}` is not a date (expected e.g. 2018-09-08 11:52:44 or 08 Sep 2018 11:52)"
                ))
            })?;
            // The epoch itself is how exporters write Last.fm's undated scrobbles.
            if us == 0 {
                return Ok(Err(SkipReason::Undated));
            }
            if !range.contains(us) {
                let column = cols.describe(cols.date_text.unwrap_or_default());
                return Err(at(format!("`{d}` in {column} is {}", range.outside())));
            }
            us
        }
        (None, None) => return Ok(Err(SkipReason::Undated)),
    };
    let track = cell(record, Some(cols.track));
    if track.is_none() {
        return Ok(Err(SkipReason::NoMetadata));
    }
    Ok(Ok(ListenEvent {
        position: line,
        content_kind: ContentKind::Track,
        started_at_us: Some(started),
        track_name: track,
        artist_name: cell(record, Some(cols.artist)),
        album_name: cell(record, cols.album),
        artist_mbid: cell(record, cols.artist_mbid),
        album_mbid: cell(record, cols.album_mbid),
        track_mbid: cell(record, cols.track_mbid),
        source_time_text: date_text.or(uts_text),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Parsed;

    fn parse(text: &str) -> Result<Vec<Parsed>, ParseFailure> {
        let (format, out) = crate::import::csv_reader::tests::parse(text)?;
        assert_eq!(format, crate::event::SourceFormat::LastFmCsv);
        Ok(out)
    }

    #[test]
    fn header_layout_with_uts_and_undated_rows() {
        let rows = parse(
            "artist,artist_mbid,album,album_mbid,track,track_mbid,timestamp,datetime\n\
             Bungalow,a3a1,Loving It - Single,,Loving It,,1536406547,2018-09-08 11:35:47\n\
             Fluke,3c3d,,,Absurd,93c6,0,1970-01-01 00:00:00\n",
        )
        .unwrap();
        let e = rows[0].as_ref().unwrap();
        assert_eq!(e.started_at_us, Some(1_536_406_547_000_000));
        assert_eq!(e.artist_mbid.as_deref(), Some("a3a1"));
        assert_eq!(e.album_mbid, None);
        assert_eq!(e.position, 2);
        assert_eq!(rows[1], Err(SkipReason::Undated));
    }

    #[test]
    fn headerless_four_columns() {
        let rows = parse(
            "Radiohead,OK Computer,Airbag,31 Jan 2021 22:39\nMuse,,Uprising,01 Feb 2021 08:00\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].as_ref().unwrap().track_name.as_deref(),
            Some("Airbag")
        );
    }

    #[test]
    fn wrong_columns_are_errors_with_lines() {
        let err = parse("foo,bar,baz\n1,2,3\n").unwrap_err();
        assert!(err.detail.contains("first row"), "{}", err.detail);
        let err = parse("artist,album,song_length\nA,B,3\n").unwrap_err();
        assert!(err.detail.contains("lacks the columns"), "{}", err.detail);
        let err = parse("artist,track,uts\nA,B,1536406547\nA,B,soon\n").unwrap_err();
        assert_eq!(err.position.line, Some(3));
        let err = parse("artist,track,uts\nA,B,1536406547\nA\n").unwrap_err();
        assert_eq!(err.position.line, Some(3));
    }
}

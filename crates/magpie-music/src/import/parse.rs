//! The parsing side of an import, run on its own thread: reads each input, sniffs its format,
//! parses it into Arrow batches and sends them to the warehouse thread over a bounded channel,
//! so parsing the next file overlaps committing the previous one while memory stays bounded
//! by the channel (a few batches), whatever the file sizes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use duckdb::arrow::array::RecordBatch;

use super::error::{ImportError, Position};
use super::input::{self, HashingReader, Input};
use super::stage::BatchBuilder;
use super::{FileFailure, csv_reader, json};
use crate::event::{Parsed, SkipReason, SourceFormat};

/// What the parser sends, per input: `Begin`, any number of `Batch`, then `End`.
pub enum Msg {
    Begin,
    Batch(RecordBatch),
    End(Result<ParsedFile, FileFailure>),
}

/// A fully read file.
pub struct ParsedFile {
    pub format: SourceFormat,
    pub events_read: u64,
    pub staged: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub sha256: String,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Parse one input, sending its messages. `false` when the receiver has gone away.
pub fn parse_input(input: &Input, batch_rows: usize, tx: &SyncSender<Msg>) -> bool {
    if tx.send(Msg::Begin).is_err() {
        return false;
    }
    let started = Instant::now();
    let mut send = |batch| tx.send(Msg::Batch(batch)).is_ok();
    let (file, is_video) = (input.display(), input.is_video());
    let result = input::with_reader(input, |reader| {
        read(&file, is_video, batch_rows, reader, &mut send)
    })
    .map_err(FileFailure::from)
    .and_then(|r| r)
    .map(|mut parsed| {
        parsed.elapsed = started.elapsed();
        parsed
    });
    tx.send(Msg::End(result)).is_ok()
}

/// Parse one file's content exactly as `magpie import` does, without a warehouse: the format
/// sniffed, every record read and checked, the Arrow batches the warehouse would be handed.
/// The error is the one `magpie import` reports (file, position, field). Fuzzing and the
/// property tests drive the importers through it; `name` is what messages call the file.
///
/// ```
/// let csv = "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n\
///            1700000000,\"14 Nov 2023, 22:13\",Björk,,Homogenic,,Jóga,\n";
/// let (parsed, batches) = magpie_music::import::parse_bytes("scrobbles.csv", csv.as_bytes(), 1024)?;
/// assert_eq!((parsed.events_read, parsed.staged), (1, 1));
/// assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
/// # Ok::<(), magpie_music::import::ImportError>(())
/// ```
pub fn parse_bytes(
    name: &str,
    bytes: &[u8],
    batch_rows: usize,
) -> Result<(ParsedFile, Vec<RecordBatch>), ImportError> {
    let mut batches = Vec::new();
    let mut keep = |batch| {
        batches.push(batch);
        true
    };
    let mut content = bytes;
    let mut reader = HashingReader::new(&mut content as &mut dyn Read);
    let is_video = name.contains("Streaming_History_Video");
    let parsed = read(name, is_video, batch_rows.max(1), &mut reader, &mut keep)
        .map_err(|failure| failure.error)?;
    Ok((parsed, batches))
}

/// Parse one opened input, handing each full batch to `on_batch` (`false`: stop, the
/// receiver has gone away).
fn read(
    file: &str,
    is_video: bool,
    batch_rows: usize,
    reader: &mut HashingReader<&mut dyn Read>,
    on_batch: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<ParsedFile, FileFailure> {
    let file = file.to_string();
    let mut buffered = BufReader::with_capacity(256 * 1024, &mut *reader);
    let sniffed = sniff(&mut buffered, &file)?;
    let mut builder = BatchBuilder::with_batch_rows(batch_rows);
    let mut events_read = 0u64;
    let mut skipped: BTreeMap<SkipReason, u64> = BTreeMap::new();
    let mut sink = |parsed: Parsed| -> Result<(), String> {
        events_read += 1;
        match parsed {
            Ok(event) => {
                if !builder.push(&event) {
                    *skipped.entry(SkipReason::NoMetadata).or_default() += 1;
                }
                if let Some(batch) = builder.take_full()
                    && !on_batch(batch)
                {
                    return Err("the import was stopped".to_string());
                }
            }
            Err(reason) => *skipped.entry(reason).or_default() += 1,
        }
        Ok(())
    };
    let format = match sniffed {
        Sniffed::Json => json::read(&mut buffered, is_video, &mut sink)
            .map_err(|f| FileFailure::new(f.into_error(&file, "JSON listening history"), None))?,
        Sniffed::Csv => csv_reader::read(&mut buffered, &mut sink).map_err(|(f, format)| {
            FileFailure::new(f.into_error(&file, csv_reader::label(format)), Some(format))
        })?,
    };
    if let Some(batch) = builder.take_rest()
        && !on_batch(batch)
    {
        let stopped = ImportError::Stopped { file: file.clone() };
        return Err(FileFailure::new(stopped, Some(format)));
    }
    drop(buffered);
    let (sha256, bytes) = reader.finish().map_err(|source| {
        FileFailure::new(
            ImportError::Unreadable {
                file: file.clone(),
                source,
            },
            Some(format),
        )
    })?;
    Ok(ParsedFile {
        format,
        events_read,
        staged: builder.rows,
        skipped,
        sha256,
        bytes,
        elapsed: Duration::ZERO,
    })
}

enum Sniffed {
    Json,
    Csv,
}

/// Look at the first bytes: JSON (`[` or `{`) or text for the CSV reader; refuse empty and
/// binary files. A UTF-8 byte-order mark is consumed. Leading whitespace is looked past but
/// left for the reader, so that the lines it counts (and names in errors) are the file's own;
/// only blank space longer than the read buffer is consumed.
fn sniff(reader: &mut impl BufRead, file: &str) -> Result<Sniffed, ImportError> {
    let unreadable = |source| ImportError::Unreadable {
        file: file.to_string(),
        source,
    };
    let mut offset = 0u64;
    loop {
        let buf = reader.fill_buf().map_err(unreadable)?;
        if buf.is_empty() {
            return Err(ImportError::Empty {
                file: file.to_string(),
            });
        }
        if offset == 0 && buf.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
            offset += 3;
            continue;
        }
        let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if skip == buf.len() {
            reader.consume(skip);
            offset += skip as u64;
            continue;
        }
        let content = &buf[skip..];
        return match content[0] {
            b'[' | b'{' => Ok(Sniffed::Json),
            _ if content.iter().take(4096).any(|b| *b == 0) || content.starts_with(b"PK\x03\x04") => {
                Err(ImportError::UnknownFormat {
                    file: file.to_string(),
                    position: Position {
                        byte: Some(offset + skip as u64),
                        ..Default::default()
                    },
                    detail: "binary data; expected a Spotify streaming-history JSON file, a Spotify zip, a Last.fm CSV/JSON export, ListenBrainz listens, a Maloja export or Apple Music's Play Activity CSV".into(),
                })
            }
            _ => Ok(Sniffed::Csv),
        };
    }
}

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
    let result = input::with_reader(input, |reader| read(input, batch_rows, reader, tx))
        .map_err(FileFailure::from)
        .and_then(|r| r)
        .map(|mut parsed| {
            parsed.elapsed = started.elapsed();
            parsed
        });
    tx.send(Msg::End(result)).is_ok()
}

fn read(
    input: &Input,
    batch_rows: usize,
    reader: &mut HashingReader<&mut dyn Read>,
    tx: &SyncSender<Msg>,
) -> Result<ParsedFile, FileFailure> {
    let file = input.display();
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
                if let Some(batch) = builder.take_full() {
                    tx.send(Msg::Batch(batch))
                        .map_err(|_| "the import was stopped".to_string())?;
                }
            }
            Err(reason) => *skipped.entry(reason).or_default() += 1,
        }
        Ok(())
    };
    let format = match sniffed {
        Sniffed::Json => json::read(&mut buffered, input.is_video(), &mut sink)
            .map_err(|f| FileFailure::new(f.into_error(&file, "JSON listening history"), None))?,
        Sniffed::Csv => csv_reader::read(&mut buffered, &mut sink).map_err(|(f, format)| {
            FileFailure::new(f.into_error(&file, csv_reader::label(format)), Some(format))
        })?,
    };
    if let Some(batch) = builder.take_rest() {
        tx.send(Msg::Batch(batch)).map_err(|_| {
            FileFailure::new(ImportError::Stopped { file: file.clone() }, Some(format))
        })?;
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
/// binary files. Leading whitespace and a UTF-8 byte-order mark are consumed.
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
        reader.consume(skip);
        offset += skip as u64;
        let buf = reader.fill_buf().map_err(unreadable)?;
        return match buf[0] {
            b'[' | b'{' => Ok(Sniffed::Json),
            _ if buf.iter().take(4096).any(|b| *b == 0) || buf.starts_with(b"PK\x03\x04") => {
                Err(ImportError::UnknownFormat {
                    file: file.to_string(),
                    position: Position {
                        byte: Some(offset),
                        ..Default::default()
                    },
                    detail: "binary data; expected a Spotify streaming-history JSON file, a Spotify zip, a Last.fm CSV/JSON export, ListenBrainz listens, a Maloja export or Apple Music's Play Activity CSV".into(),
                })
            }
            _ => Ok(Sniffed::Csv),
        };
    }
}

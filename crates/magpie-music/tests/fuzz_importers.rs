//! Property tests of every importer (issue 27, the CI share of fuzzing), through
//! [`parse_bytes`], which parses a file's bytes exactly as `magpie import` does: Spotify
//! extended (and endsong) and basic history, Web API recently-played pages, Last.fm CSV and
//! JSON, ListenBrainz (JSON lines and the older array), Maloja and Apple Music.
//!
//! Seeds are the real exports in `../shared/realdata` (read in place; large ones cut to their
//! first records), mutated: truncated, bytes flipped, inserted and deleted, lines spliced,
//! field values replaced by odd strings and numbers (huge, negative, `NaN`-like), a byte-order
//! mark added, line ends changed.
//!
//! Invariants ([`check`]), for any bytes:
//! - nothing panics, and memory stays within a bound proportional to the input (no length a
//!   file claims is allocated);
//! - `Ok`: `events_read == staged + skipped`, the batches hold `staged` rows, none larger than
//!   asked, and every staged time and duration is in the range the importer documents
//!   ([`magpie_music::import::time`]);
//! - `Err`: the message names the file and a position (record, line, column or byte, or the
//!   start of the file) inside the input, in one line.
//!
//! A valid file cut at any byte fails or yields a prefix of its events (a CSV may yield its cut
//! last row, which no reader can tell from a complete one), and a generated well-formed file of
//! each format imports with every value intact (times to the microsecond, names in any Unicode).
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`]). Without the real
//! data the seeded properties skip, unless `REQUIRE_REALDATA` is set (CI), when they fail.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::sync::OnceLock;

use chrono::DateTime;
use duckdb::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use duckdb::arrow::util::display::array_value_to_string;
use magpie_music::event::SourceFormat;
use magpie_music::import::time::MAX_DURATION_MS;
use magpie_music::import::{ImportError, ParsedFile, Position, parse_bytes};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Cases per property when `PROPTEST_CASES` is not set: about 20 seconds for the four in a
/// release build (20,000 take some 80).
const DEFAULT_CASES: u32 = 5000;

// ---------------------------------------------------------------------------------------------
// Memory: a counting allocator, per thread (the test harness runs tests on several threads).

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Run `f`, returning its result and the most memory it held at once (bytes, this thread).
fn peak_memory<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    (out, peak.max(0) as usize)
}

/// Memory a parse may hold: the 256 KiB read buffer and a few MiB of work space, a bounded
/// multiple of the input (one element, the staged rows), and the Arrow buffers of each batch
/// `parse_bytes` returns (a batch's builders reserve room for 1,024 rows of every column: up to
/// half a MiB a batch, however few rows it holds; at most one batch per input byte).
fn memory_bound(input: usize, batch_rows: usize) -> usize {
    let batches = input / batch_rows.max(1) + 1;
    16 * 1024 * 1024 + 64 * input + batches * 512 * 1024
}

// ---------------------------------------------------------------------------------------------
// What a parse produced, and the invariants.

/// One staged row, the columns the tests look at.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    position: i64,
    started: Option<i64>,
    ended: Option<i64>,
    ms_played: Option<i64>,
    track_duration: Option<i64>,
    track: Option<String>,
    artist: Option<String>,
    album: Option<String>,
    /// Every column as text, to compare rows whole.
    all: Vec<String>,
}

fn int(batch: &RecordBatch, column: &str, i: usize) -> Option<i64> {
    let a = batch.column_by_name(column).unwrap();
    let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
    (!a.is_null(i)).then(|| a.value(i))
}

fn text(batch: &RecordBatch, column: &str, i: usize) -> Option<String> {
    let a = batch.column_by_name(column).unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(Row {
                position: int(b, "position", i).unwrap(),
                started: int(b, "started_us", i),
                ended: int(b, "ended_us", i),
                ms_played: int(b, "ms_played", i),
                track_duration: int(b, "track_duration_ms", i),
                track: text(b, "track_name", i),
                artist: text(b, "artist_name", i),
                album: text(b, "album_name", i),
                all: b
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "∅".to_string()
                        } else {
                            array_value_to_string(c, i).unwrap()
                        }
                    })
                    .collect(),
            });
        }
    }
    out
}

/// The latest listening time the importer may accept: a day after now (and a minute's grace
/// for the time between its clock reading and this one).
fn latest_us() -> i64 {
    chrono::Utc::now().timestamp_micros() + 86_400_000_000 + 60_000_000
}

/// Parse `bytes` as the file `name` and check every invariant (see the module documentation);
/// panics on a violation. The rows when the file was read.
fn check(
    name: &str,
    bytes: &[u8],
    batch_rows: usize,
) -> Result<(ParsedFile, Vec<Row>), ImportError> {
    let (result, peak) = peak_memory(|| parse_bytes(name, bytes, batch_rows));
    assert!(
        peak <= memory_bound(bytes.len(), batch_rows),
        "{peak} bytes held to parse {} bytes",
        bytes.len()
    );
    match result {
        Ok((parsed, batches)) => {
            let skipped: u64 = parsed.skipped.values().sum();
            assert_eq!(
                parsed.events_read,
                parsed.staged + skipped,
                "{:?}",
                parsed.skipped
            );
            assert_eq!(parsed.bytes, bytes.len() as u64);
            assert_eq!(parsed.sha256, hex::encode(Sha256::digest(bytes)));
            let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(total as u64, parsed.staged);
            assert!(batches.iter().all(|b| b.num_rows() <= batch_rows.max(1)));
            let rows = rows(&batches);
            let latest = latest_us();
            for r in &rows {
                for t in [r.started, r.ended].into_iter().flatten() {
                    assert!(
                        (0..=latest).contains(&t),
                        "a listening time of {t} µs staged: {r:?}"
                    );
                }
                for d in [r.ms_played, r.track_duration].into_iter().flatten() {
                    assert!(
                        (0..=MAX_DURATION_MS).contains(&d),
                        "a duration of {d} ms staged: {r:?}"
                    );
                }
            }
            Ok((parsed, rows))
        }
        Err(e) => {
            check_error(name, bytes, &e);
            Err(e)
        }
    }
}

fn check_error(name: &str, bytes: &[u8], e: &ImportError) {
    let message = e.to_string();
    assert_eq!(e.file(), name);
    assert!(message.starts_with(&format!("{name}: ")), "{message}");
    assert!(
        !message.contains('\n') && !message.contains('\r'),
        "not one paragraph: {message:?}"
    );
    assert!(
        message.chars().count() <= name.chars().count() + 900,
        "a message of {} characters",
        message.chars().count()
    );
    let position = match e {
        ImportError::Malformed { position, .. } | ImportError::UnknownFormat { position, .. } => {
            position
        }
        ImportError::Empty { .. } => {
            let rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            assert!(rest.iter().all(u8::is_ascii_whitespace), "{message}");
            return;
        }
        other => panic!("an error parsing bytes in memory cannot be {other:?}"),
    };
    assert!(message.contains(&format!(" at {position}: ")), "{message}");
    let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let widest = bytes
        .split(|b| *b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0) as u64;
    let Position {
        record,
        line,
        column,
        byte,
    } = position;
    assert!(line.is_none_or(|l| (1..=lines).contains(&l)), "{message}");
    assert!(
        column.is_none_or(|c| (1..=widest + 1).contains(&c)),
        "{message}"
    );
    assert!(byte.is_none_or(|b| b <= bytes.len() as u64), "{message}");
    assert!(
        record.is_none_or(|r| r >= 1 && r <= bytes.len() as u64),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Seeds: the real exports.

struct Seed {
    name: String,
    bytes: Vec<u8>,
}

/// The real files under `../shared/realdata`, and whether each is listening history magpie
/// imports (the others are other Spotify responses and Apple's per-track summary).
const REAL_FILES: &[(&str, bool)] = &[
    (
        "spotify_export/basic/xKitsune47/StreamingHistory_music_0.json",
        true,
    ),
    (
        "spotify_export/basic/xKitsune47/StreamingHistory_music_3.json",
        true,
    ),
    (
        "spotify_export/extended/mica-92/Streaming_History_Audio_2024_4.json",
        true,
    ),
    (
        "spotify_export/extended_legacy/listenbrainz-server/spotify_streaming_endsong_0.json",
        true,
    ),
    ("lastfm/krishkumar/lastfm_scrobbles.csv", true),
    (
        "spotify_webapi/spotify-web-api-java/player/GetCurrentUsersRecentlyPlayedTracksRequest.json",
        true,
    ),
    (
        "spotify_webapi/spotify-web-api-java/player/GetUsersCurrentlyPlayingTrackRequest.json",
        false,
    ),
    (
        "listenbrainz/listenbrainz-server/listenbrainz_listens.jsonl",
        true,
    ),
    (
        "listenbrainz/koito/listenbrainz_shoko1_1749780844.zip",
        true,
    ),
    ("listenbrainz/koito/listenbrainz_shoko1_123456789.zip", true),
    ("maloja/koito/maloja_import_test.json", true),
    ("maloja/listenbrainz-server/maloja.json", true),
    ("apple_music/vietvudanh/Apple Music Play Activity.csv", true),
    (
        "apple_music/nerveband/Apple Music Play Activity small.csv",
        true,
    ),
    (
        "apple_music/nerveband/Apple Music - Recently Played Tracks.csv",
        false,
    ),
];

/// Every real file as `magpie import` reads it (a ListenBrainz zip's `.jsonl` member taken
/// out), whole, with whether it imports. `None` (skip) when the data is absent.
fn real_files() -> Option<Vec<(Seed, bool)>> {
    let mut out = Vec::new();
    for (file, imports) in REAL_FILES {
        let path = common::realdata(file)?;
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".zip") {
            out.push((Seed { name, bytes }, *imports));
            continue;
        }
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        for i in 0..zip.len() {
            let mut member = zip.by_index(i).unwrap();
            if member.name().ends_with(".jsonl") {
                let mut content = Vec::new();
                member.read_to_end(&mut content).unwrap();
                let name = format!("{name}!{}", member.name());
                out.push((
                    Seed {
                        name,
                        bytes: content,
                    },
                    *imports,
                ));
            }
        }
    }
    Some(out)
}

/// The seeds: the real files, those over 64 KiB cut to their first records so that a case
/// stays fast.
fn seeds() -> Option<&'static [Seed]> {
    static SEEDS: OnceLock<Option<Vec<Seed>>> = OnceLock::new();
    SEEDS
        .get_or_init(|| {
            let seeds = real_files()?
                .into_iter()
                .map(|(seed, _)| Seed {
                    bytes: head(&seed.name, seed.bytes),
                    name: seed.name,
                })
                .collect();
            Some(seeds)
        })
        .as_deref()
}

/// A large file cut to its first records, still well formed: a CSV's first 60 lines, a JSON
/// array's first 40 elements (written out again by serde_json).
fn head(name: &str, bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() <= 64 * 1024 {
        return bytes;
    }
    if name.ends_with(".csv") {
        let end = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(59)
            .map_or(bytes.len(), |(i, _)| i + 1);
        return bytes[..end].to_vec();
    }
    let all: Vec<Value> = serde_json::from_slice(&bytes).expect("a large JSON seed is an array");
    serde_json::to_vec_pretty(&all[..40]).unwrap()
}

/// Odd values to write where a field's value was.
const ODD: &[&str] = &[
    "0",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e400",
    "-1e400",
    "1e-400",
    "NaN",
    "-Infinity",
    "null",
    "true",
    "\"\"",
    "\" \"",
    "\"NaN\"",
    "\"-1\"",
    "\"1e400\"",
    "[]",
    "{}",
    "[[[[[[[[",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\uDFFF\\uD800\"",
    "\"😀\"",
    "\"a\nb\"",
    "\"1970-01-01T00:00:00Z\"",
    "\"0001-01-01T00:00:00Z\"",
    "\"9999-12-31T23:59:59Z\"",
    "\"2024-02-30T25:61:61Z\"",
    "\"2024-08-02T16:07:53+14:00\"",
    "\"-2024-08-02T16:07:53Z\"",
    "1.5",
    "-0.0",
    "4.2e18",
    "18446744073709552",
    "-604800001",
    "604800001",
    "\"1536406547000\"",
];

/// One change to a file.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(Index),
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    /// Copy one line (a record, in line-per-record files) over another place.
    SpliceLine(Index, Index),
    /// Replace the value after a `:` (JSON) or `,` (CSV) with an odd one.
    ReplaceValue(Index, Vec<u8>),
    Bom,
    Crlf,
    Lf,
    LeadingBlankLines(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let odd_bytes = prop_oneof![
        prop::sample::select(ODD).prop_map(|s| s.as_bytes().to_vec()),
        any::<String>().prop_map(|s| serde_json::to_vec(&s).unwrap()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        any::<f64>().prop_map(|f| f.to_string().into_bytes()),
        "\"x{1,3000}\"".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    let insert = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..4),
        prop::sample::select(vec![
            "\"", "\\", "{", "}", "[", "]", ",", ":", "\n", "\r\n", "\0", "\u{feff}", "é", "\"\"",
            "\\u",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ];
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => (any::<Index>(), insert).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SpliceLine(a, b)),
        4 => (any::<Index>(), odd_bytes).prop_map(|(i, v)| Mutation::ReplaceValue(i, v)),
        1 => Just(Mutation::Bom),
        1 => Just(Mutation::Crlf),
        1 => Just(Mutation::Lf),
        1 => (1usize..4).prop_map(Mutation::LeadingBlankLines),
    ]
}

/// Byte ranges of the lines of `bytes` (with their `\n`).
fn line_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push((start, bytes.len()));
    }
    out
}

/// The end of the value starting at `start`: a string through its closing quote, anything
/// else up to the next separator.
fn value_end(bytes: &[u8], start: usize) -> usize {
    if bytes.get(start) == Some(&b'"') {
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        return bytes.len();
    }
    bytes[start..]
        .iter()
        .position(|b| matches!(b, b',' | b'}' | b']' | b'\n' | b'\r'))
        .map_or(bytes.len(), |n| start + n)
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
        Mutation::Flip(i, b) if len > 0 => bytes[i.index(len)] ^= b.max(&1),
        Mutation::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Delete(i, n) if len > 0 => {
            let at = i.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::SpliceLine(from, to) => {
            let lines = line_ranges(bytes);
            if !lines.is_empty() {
                let (s, e) = lines[from.index(lines.len())];
                let line = bytes[s..e].to_vec();
                let (at, _) = lines[to.index(lines.len())];
                bytes.splice(at..at, line);
            }
        }
        Mutation::ReplaceValue(i, v) => {
            let separators: Vec<usize> = bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| matches!(b, b':' | b','))
                .map(|(i, _)| i + 1)
                .collect();
            if !separators.is_empty() {
                let mut start = separators[i.index(separators.len())];
                while bytes.get(start) == Some(&b' ') {
                    start += 1;
                }
                let end = value_end(bytes, start);
                bytes.splice(start..end, v.iter().copied());
            }
        }
        Mutation::Bom => bytes.splice(0..0, *b"\xEF\xBB\xBF").for_each(drop),
        Mutation::Crlf => {
            let mut out = Vec::with_capacity(len + len / 16);
            for &b in bytes.iter() {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
            }
            *bytes = out;
        }
        Mutation::Lf => bytes.retain(|b| *b != b'\r'),
        Mutation::LeadingBlankLines(n) => bytes.splice(0..0, vec![b'\n'; *n]).for_each(drop),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Well-formed files, generated.

/// A listen as a generator wrote it, and so as it must come out.
#[derive(Debug, Clone)]
struct Expected {
    started: Option<i64>,
    ended: Option<i64>,
    ms_played: Option<i64>,
    track_duration: Option<i64>,
    track: String,
    artist: Option<String>,
    album: Option<String>,
}

/// Any Unicode text (NUL excepted in CSV files: a NUL in the first 4 KiB is how a binary file
/// is told apart), with something that is not whitespace in it.
fn name(csv: bool) -> impl Strategy<Value = String> {
    (any::<String>(), "[a-zA-Zé😀0-9ß]", any::<Index>()).prop_map(move |(s, c, at)| {
        let mut chars: Vec<char> = s
            .chars()
            .filter(|ch| !csv || *ch != '\0')
            .take(30)
            .collect();
        chars.insert(at.index(chars.len() + 1), c.chars().next().unwrap());
        chars.into_iter().collect()
    })
}

/// The times a generated listen may have: 2002-01-01 to eight days ago (so that a play of up
/// to seven days has ended), in seconds.
fn seconds() -> impl Strategy<Value = i64> {
    1_009_843_200i64..chrono::Utc::now().timestamp() - 8 * 86_400
}

fn iso(us: i64, fmt: &str) -> String {
    DateTime::from_timestamp_micros(us)
        .unwrap()
        .format(fmt)
        .to_string()
}

fn trimmed(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// One generated listen's raw values.
#[derive(Debug, Clone)]
struct Gen {
    secs: i64,
    millis: i64,
    played_ms: i64,
    track: String,
    artist: String,
    album: String,
}

fn gen_listen(csv: bool) -> impl Strategy<Value = Gen> {
    (
        seconds(),
        0i64..1000,
        prop_oneof![
            0i64..600_000,
            Just(0),
            Just(MAX_DURATION_MS),
            0..=MAX_DURATION_MS
        ],
        name(csv),
        name(csv),
        name(csv),
    )
        .prop_map(|(secs, millis, played_ms, track, artist, album)| Gen {
            secs,
            millis,
            played_ms,
            track,
            artist,
            album,
        })
}

/// The formats generated: Spotify extended, basic, a Web API page, Last.fm CSV and JSON,
/// ListenBrainz, Maloja, Apple Music.
const KINDS: u8 = 8;

/// Whether format `kind` is a CSV.
fn is_csv(kind: u8) -> bool {
    kind == 3 || kind == 7
}

/// Microseconds from seconds.
fn us(secs: i64) -> i64 {
    secs * 1_000_000
}

impl Gen {
    /// The end of a basic-history play: its time to the minute.
    fn minute_us(&self) -> i64 {
        us(self.secs - self.secs.rem_euclid(60))
    }

    /// A time with milliseconds (Web API pages, Apple Music).
    fn ms_us(&self) -> i64 {
        us(self.secs) + self.millis * 1000
    }
}

/// A whole file of one format (`kind`, see [`KINDS`]) holding `listens`: its name and bytes.
/// `variant` picks a second spelling where a format has one.
fn write_file(kind: u8, listens: &[Gen], variant: bool) -> (&'static str, Vec<u8>) {
    let each = |f: &dyn Fn(&Gen) -> Value| listens.iter().map(f).collect::<Vec<Value>>();
    match kind {
        0 => {
            let records = each(&|g| {
                json!({"ts": iso(us(g.secs), "%Y-%m-%dT%H:%M:%SZ"), "platform": "android",
                    "ms_played": g.played_ms, "conn_country": "AR", "ip_addr": "10.0.0.1",
                    "master_metadata_track_name": g.track, "master_metadata_album_artist_name": g.artist,
                    "master_metadata_album_album_name": g.album, "spotify_track_uri": "spotify:track:7wAkQFShJ27V8362MqevQr",
                    "episode_name": null, "episode_show_name": null, "spotify_episode_uri": null,
                    "reason_start": "trackdone", "reason_end": "trackdone", "shuffle": false, "skipped": variant,
                    "offline": false, "offline_timestamp": g.secs, "incognito_mode": false})
            });
            (
                "Streaming_History_Audio_2024_0.json",
                pretty(&records, variant),
            )
        }
        1 => {
            let records = each(&|g| {
                json!({"endTime": iso(g.minute_us(), "%Y-%m-%d %H:%M"), "artistName": g.artist,
                    "trackName": g.track, "msPlayed": g.played_ms})
            });
            ("StreamingHistory_music_0.json", pretty(&records, variant))
        }
        2 => {
            let items = each(&|g| {
                json!({"track": {"name": g.track, "uri": "spotify:track:1", "duration_ms": g.played_ms,
                    "artists": [{"name": g.artist, "uri": "spotify:artist:3"}], "album": {"name": g.album, "uri": "spotify:album:9"}},
                    "played_at": iso(g.ms_us(), "%Y-%m-%dT%H:%M:%S%.3fZ"), "context": null})
            });
            let page = json!({"items": items, "next": null, "cursors": {"after": "1", "before": "0"},
                "limit": 50, "href": "x"});
            ("recently_played.json", pretty(&page, variant))
        }
        3 => {
            let header = "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid";
            let rows = listens.iter().map(|g| {
                let text = iso(us(g.secs), "%d %b %Y, %H:%M");
                [
                    g.secs.to_string(),
                    text,
                    g.artist.clone(),
                    String::new(),
                    g.album.clone(),
                    String::new(),
                    g.track.clone(),
                    String::new(),
                ]
            });
            ("scrobbles.csv", write_csv(header, rows))
        }
        4 => {
            let tracks = each(&|g| {
                json!({"artist": {"mbid": "", "#text": g.artist}, "album": {"mbid": "", "#text": g.album},
                    "name": g.track, "mbid": "", "date": {"uts": g.secs.to_string(), "#text": "x"}})
            });
            // Last.fm writes a lone track as an object.
            let track = if tracks.len() == 1 && variant {
                tracks[0].clone()
            } else {
                Value::from(tracks)
            };
            let page =
                json!({"recenttracks": {"track": track, "@attr": {"user": "u", "page": "1"}}});
            ("recenttracks.json", pretty(&page, false))
        }
        5 => {
            let lines = each(&|g| {
                json!({"listened_at": g.secs, "inserted_at": 1.5, "track_metadata": {"artist_name": g.artist,
                    "track_name": g.track, "release_name": g.album, "additional_info": {"duration_ms": g.played_ms}}})
            });
            let bytes = if variant {
                serde_json::to_vec(&lines).unwrap()
            } else {
                lines
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes()
            };
            ("listens.jsonl", bytes)
        }
        6 => {
            let scrobbles = each(&|g| {
                json!({"time": g.secs, "track": {"artists": [g.artist], "title": g.track,
                    "album": {"artists": [g.artist], "albumtitle": g.album}, "length": g.played_ms as f64 / 1000.0},
                    "duration": g.millis, "origin": "client:fuzz"})
            });
            let export = json!({"maloja": {"export_time": 1}, "scrobbles": scrobbles});
            ("maloja_export.json", pretty(&export, variant))
        }
        _ => {
            let header = "Artist Name,Content Name,Event End Timestamp,Event Start Timestamp,Event Type,Item Type,\
                End Reason Type,Media Duration In Milliseconds,Play Duration Milliseconds,Offline";
            let fmt = "%Y-%m-%dT%H:%M:%S%.3fZ";
            let rows = listens.iter().map(|g| {
                let end = g.ms_us() + g.played_ms * 1000;
                [
                    g.artist.clone(),
                    g.track.clone(),
                    iso(end, fmt),
                    iso(g.ms_us(), fmt),
                    "PLAY_END".into(),
                    "ITUNES_STORE_CONTENT".into(),
                    "NATURAL_END_OF_TRACK".into(),
                    format!("{}.0", g.played_ms),
                    g.played_ms.to_string(),
                    "False".into(),
                ]
            });
            ("Apple Music Play Activity.csv", write_csv(header, rows))
        }
    }
}

/// A CSV with `header` and `rows`, quoted as needed by the csv crate.
fn write_csv<const N: usize>(header: &str, rows: impl Iterator<Item = [String; N]>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header.split(',')).unwrap();
    for row in rows {
        w.write_record(row).unwrap();
    }
    w.into_inner().unwrap()
}

/// The row a listen written by [`write_file`] as format `kind` must become.
fn expected(kind: u8, g: &Gen) -> Expected {
    let as_written = Expected {
        started: Some(us(g.secs)),
        ended: None,
        ms_played: None,
        track_duration: None,
        track: g.track.clone(),
        artist: Some(g.artist.clone()),
        album: Some(g.album.clone()),
    };
    // CSV cells and ListenBrainz texts are trimmed.
    let trimmed = Expected {
        track: g.track.trim().to_string(),
        artist: trimmed(&g.artist),
        album: trimmed(&g.album),
        ..as_written.clone()
    };
    let ms = g.played_ms * 1000;
    match kind {
        0 => Expected {
            started: Some(us(g.secs) - ms),
            ended: Some(us(g.secs)),
            ms_played: Some(g.played_ms),
            ..as_written
        },
        1 => Expected {
            started: Some(g.minute_us() - ms),
            ended: Some(g.minute_us()),
            ms_played: Some(g.played_ms),
            album: None,
            ..as_written
        },
        2 => Expected {
            started: Some(g.ms_us() - ms),
            ended: Some(g.ms_us()),
            track_duration: Some(g.played_ms),
            ..as_written
        },
        3 => trimmed,
        4 => as_written,
        5 => Expected {
            track_duration: Some(g.played_ms),
            ..trimmed
        },
        6 => Expected {
            ms_played: Some(g.millis * 1000),
            track_duration: Some(g.played_ms),
            artist: trimmed.artist,
            ..as_written
        },
        _ => Expected {
            started: Some(g.ms_us()),
            ended: Some(g.ms_us() + ms),
            ms_played: Some(g.played_ms),
            track_duration: Some(g.played_ms),
            album: None,
            ..trimmed
        },
    }
}

fn pretty<T: serde::Serialize>(v: &T, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(v).unwrap()
    } else {
        serde_json::to_vec(v).unwrap()
    }
}

/// A generated file of any format, in any of the encodings the importer must take the same
/// way (a byte-order mark, CRLF line ends where no value holds a line break).
fn generated_file() -> impl Strategy<Value = (String, Vec<u8>, Vec<Expected>)> {
    (0..KINDS).prop_flat_map(|kind| {
        let csv = is_csv(kind);
        (
            prop::collection::vec(gen_listen(csv), 1..6),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(move |(listens, variant, bom, crlf)| {
                let (name, mut bytes) = write_file(kind, &listens, variant);
                let breaks = listens.iter().any(|g| {
                    [&g.track, &g.artist, &g.album]
                        .iter()
                        .any(|s| s.contains(['\n', '\r']))
                });
                if crlf && !(csv && breaks) {
                    apply(&mut bytes, &Mutation::Crlf);
                }
                if bom {
                    apply(&mut bytes, &Mutation::Bom);
                }
                let expected = listens.iter().map(|g| expected(kind, g)).collect();
                (name.to_string(), bytes, expected)
            })
    })
}

fn describe(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]).into_owned()
}

/// Cut `bytes` at `cut` and check what comes out against the whole file's rows `full`.
fn check_truncation(
    name: &str,
    bytes: &[u8],
    (full_read, full): (u64, &[Row]),
    cut: usize,
    csv: bool,
) -> Result<(), TestCaseError> {
    let Ok((parsed, got)) = check(name, &bytes[..cut], 3) else {
        return Ok(());
    };
    prop_assert!(
        got.len() <= full.len(),
        "{} rows from a cut file of {}",
        got.len(),
        full.len()
    );
    let cut_line = bytes[..cut].iter().filter(|b| **b == b'\n').count() as i64 + 1;
    for (i, row) in got.iter().enumerate() {
        if row.all != full[i].all {
            // Only a CSV's last row, cut inside, may differ: it reads like a complete row.
            prop_assert!(
                csv && i + 1 == got.len() && row.position <= cut_line,
                "row {} differs after a cut at byte {}:\n{:?}\n{:?}",
                i + 1,
                cut,
                row,
                full[i]
            );
        }
    }
    prop_assert!(parsed.events_read <= full_read);
    if parsed.events_read == full_read && got.last().map(|r| &r.all) == full.last().map(|r| &r.all)
    {
        // Nothing was lost: only blank space was cut, or a CSV's last line (a row cut short
        // reads like a complete one).
        let rest = &bytes[cut..];
        let last_line = bytes
            .trim_ascii_end()
            .iter()
            .filter(|b| **b == b'\n')
            .count() as i64
            + 1;
        prop_assert!(
            rest.iter().all(u8::is_ascii_whitespace) || (csv && cut_line >= last_line),
            "every event still read after cutting {:?}",
            describe(rest)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::proptest_config(DEFAULT_CASES))]

    /// Real files with a few mutations: the invariants hold whatever the bytes.
    #[test]
    fn mutated_real_files_keep_the_invariants(
        seed in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
        batch_rows in prop_oneof![1usize..6, Just(8192)],
    ) {
        let Some(seeds) = seeds() else { return Ok(()) };
        let seed = &seeds[seed.index(seeds.len())];
        let mut bytes = seed.bytes.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = check(&seed.name, &bytes, batch_rows);
    }

    /// A real file cut at any byte fails, or yields a prefix of the whole file's rows.
    #[test]
    fn truncated_real_files_fail_or_yield_a_prefix(seed in any::<Index>(), cut in any::<Index>()) {
        let Some(seeds) = seeds() else { return Ok(()) };
        let seed = &seeds[seed.index(seeds.len())];
        let Ok((parsed, full)) = check(&seed.name, &seed.bytes, 1000) else { return Ok(()) };
        let cut = cut.index(seed.bytes.len());
        let csv = seed.name.ends_with(".csv");
        check_truncation(&seed.name, &seed.bytes, (parsed.events_read, &full), cut, csv)?;
    }

    /// A generated well-formed file of each format imports with every value intact; cut
    /// anywhere, it fails or yields a prefix.
    #[test]
    fn generated_files_import_with_their_values((name, bytes, expected) in generated_file(), batch_rows in 1usize..6, cut in any::<Index>()) {
        let (parsed, rows) = check(&name, &bytes, batch_rows)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", describe(&bytes))))?;
        prop_assert_eq!(parsed.staged as usize, expected.len(), "{:?}", parsed.skipped);
        for (row, want) in rows.iter().zip(&expected) {
            prop_assert_eq!(row.started, want.started);
            prop_assert_eq!(row.ended, want.ended);
            prop_assert_eq!(row.ms_played, want.ms_played);
            prop_assert_eq!(row.track_duration, want.track_duration);
            prop_assert_eq!(row.track.as_deref(), Some(want.track.as_str()));
            prop_assert_eq!(&row.artist, &want.artist);
            prop_assert_eq!(&row.album, &want.album);
        }
        let csv = parsed.format == SourceFormat::LastFmCsv || parsed.format == SourceFormat::AppleMusicCsv;
        check_truncation(&name, &bytes, (parsed.events_read, &rows), cut.index(bytes.len()), csv)?;
    }
}

/// Where an error is: record and line (columns move with a `\r`).
fn error_lines(
    result: Result<(ParsedFile, Vec<Row>), ImportError>,
) -> Option<(Option<u64>, Option<u64>)> {
    match result {
        Err(
            ImportError::Malformed { position, .. } | ImportError::UnknownFormat { position, .. },
        ) => Some((position.record, position.line)),
        _ => None,
    }
}

proptest! {
    #![proptest_config(common::proptest_config(DEFAULT_CASES))]

    /// An error's line moves exactly as the text does: CRLF line ends change no line number,
    /// blank lines before the content add their number. (Left out: the errors the csv crate
    /// itself reports, text that is not UTF-8, in a CSV with empty lines. It places them at the
    /// first of the empty lines it skipped before the row; a known limitation. And a broken
    /// `\u` escape may be placed a line earlier with CRLF, see below.)
    #[test]
    fn error_lines_follow_the_text(
        seed in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..3),
        blank in 1usize..3,
    ) {
        let Some(seeds) = seeds() else { return Ok(()) };
        let seed = &seeds[seed.index(seeds.len())];
        let mut lf = seed.bytes.clone();
        for m in mutations.iter().chain([&Mutation::Lf]) {
            apply(&mut lf, m);
        }
        // Read as CSV: what does not start with `[` or `{` (after a byte-order mark and blanks).
        let text = lf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&lf).trim_ascii_start();
        let csv = !matches!(text.first(), Some(b'[' | b'{'));
        let empty_lines = lf.starts_with(b"\n") || lf.windows(2).any(|w| w == b"\n\n");
        let result = check(&seed.name, &lf, 8192);
        let message = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        let csv_crate_error = message.contains("not UTF-8");
        let hex_escape = message.contains("escape") || message.contains("unicode code point");
        let Some((record, Some(line))) = error_lines(result) else {
            return Ok(());
        };
        if csv && empty_lines && csv_crate_error {
            // The csv crate's own undercount (see above).
            return Ok(());
        }
        let mut crlf = lf.clone();
        apply(&mut crlf, &Mutation::Crlf);
        let crlf = error_lines(check(&seed.name, &crlf, 8192));
        // serde_json places a bad `\uXXXX` escape after the four bytes it read as its digits;
        // when those run over a line break, a `\r\n` holds them a line earlier.
        if !(hex_escape && crlf == Some((record, Some(line - 1)))) {
            prop_assert_eq!(crlf, Some((record, Some(line))), "CRLF line ends");
        }
        // After a byte-order mark, which must come first.
        let bom = if lf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let mut shifted = lf.clone();
        shifted.splice(bom..bom, b" \n".repeat(blank));
        // A CSV counts the blank line as a row: only its line numbers are compared.
        let shifted = error_lines(check(&seed.name, &shifted, 8192))
            .map(|(r, l)| (if csv { record } else { r }, l));
        prop_assert_eq!(
            shifted,
            Some((record, Some(line + blank as u64))),
            "{} blank lines first", blank
        );
    }
}

/// Every real file whole (the large ones too, not only their heads) keeps the invariants, and
/// the history files import.
#[test]
fn whole_real_files_keep_the_invariants() {
    let Some(files) = real_files() else { return };
    assert_eq!(
        files.len(),
        REAL_FILES.len(),
        "one history file in each zip"
    );
    for (seed, imports) in files {
        let result = check(&seed.name, &seed.bytes, 8192);
        assert_eq!(
            result.is_ok(),
            imports,
            "{}: {:?}",
            seed.name,
            result.err().map(|e| e.to_string())
        );
    }
}

/// Found by `mutated_real_files_keep_the_invariants`: a record broken at a line break (here a
/// raw newline inside a string) was reported in column 0, which does not exist; it is the end
/// of the line the break ends.
#[test]
fn regression_an_error_at_a_line_break_is_at_the_end_of_its_line() {
    let file = "[\n{\"endTime\": \"2023-09-22 20:15\", \"artistName\": \"a\nb\", \"trackName\": \"t\", \"msPlayed\": 1}]";
    let Err(err) = check("StreamingHistory_music_0.json", file.as_bytes(), 10) else {
        panic!("a raw newline in a string is not JSON")
    };
    let ImportError::Malformed { position, .. } = &err else {
        panic!("{err}")
    };
    let break_column = file.lines().nth(1).unwrap().len() as u64 + 1;
    assert_eq!(
        (position.record, position.line, position.column),
        (Some(1), Some(2), Some(break_column)),
        "{err}"
    );
}

/// Found by `error_lines_follow_the_text`: blank lines before the content were consumed while
/// sniffing the format, so every line number in an error was short by their number; in a CSV,
/// a row after empty lines was placed on the first of them (and a row whose quote is left open
/// at the end, a line too early).
#[test]
fn regression_leading_blank_lines_count_in_error_lines() {
    let cases: [(&str, &[u8], u64); 5] = [
        (
            "scrobbles.csv",
            b"\n  \nartist,track,uts\nMuse,Uprising,last tuesday\n",
            4,
        ),
        (
            "scrobbles.csv",
            b"\n\nartist,track,uts\n\r\n\nMuse,\"Up\nrising\",last tuesday",
            6,
        ),
        (
            "Apple Music Play Activity.csv",
            b" \nGenre,\"Event Start Timestamp",
            2,
        ),
        (
            "Streaming_History_Audio_2024_0.json",
            b"\r\n\n[{\"ts\": \"yesterday\", \"ms_played\": 1}]",
            3,
        ),
        (
            "listens.jsonl",
            b"\n\n\n{\"listened_at\": \"soon\", \"track_metadata\": {}}\n",
            4,
        ),
    ];
    for (name, bytes, line) in cases {
        let Err(err) = check(name, bytes, 10) else {
            panic!("{name} is broken")
        };
        let ImportError::Malformed { position, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(position.line, Some(line), "{err}");
    }
}

/// Found by `error_lines_follow_the_text`: in a CSV with CRLF line ends, every line number after
/// the first was one short (the csv crate reads a CRLF pair's `\n` with the next row, after
/// taking that row's position).
#[test]
fn regression_crlf_line_ends_keep_csv_line_numbers() {
    let file = b"artist,track,uts\r\nMuse,Uprising,1536406547\r\n\r\nMuse,Hysteria,soon\r\n";
    let Err(err) = check("scrobbles.csv", file, 10) else {
        panic!("`soon` is no time")
    };
    let ImportError::Malformed { position, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(position.line, Some(4), "{err}");
    let good =
        b"artist,track,uts\r\nMuse,Uprising,1536406547\r\n\"Muse\",\"Hysteria \",1536406600\r\n";
    let (parsed, rows) = check("scrobbles.csv", good, 10).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.staged, 2);
    let lines: Vec<i64> = rows.iter().map(|r| r.position).collect();
    assert_eq!(lines, [2, 3]);
    assert_eq!(rows[1].track.as_deref(), Some("Hysteria"));
}

/// Found by `mutated_real_files_keep_the_invariants` (as `error_lines_follow_the_text` ran it):
/// an error quoting a cell that holds line breaks ran over several lines, and one quoting a
/// long cell ran on for its whole length.
#[test]
fn regression_an_error_quoting_a_value_is_one_short_line() {
    let file = format!(
        "artist,track,uts\nMuse,Uprising,\"17\n00\"\nMuse,Hysteria,\"{}\"\n",
        "9".repeat(5000)
    );
    let Err(err) = check("scrobbles.csv", file.as_bytes(), 10) else {
        panic!("a time with a line break is no time")
    };
    assert!(err.to_string().contains("`17\\n00`"), "{err}");
    let file = format!(
        "artist,track,uts\nMuse,Hysteria,\"{}x\"\n",
        "9".repeat(5000)
    );
    let Err(err) = check("scrobbles.csv", file.as_bytes(), 10) else {
        panic!("a long number with an x is no time")
    };
    assert!(
        err.to_string()
            .ends_with("99x` in the timestamp column is not unix seconds"),
        "{err}"
    );
}

//! The ListenBrainz, Maloja and Apple Music importers against the real exports in
//! ../shared/realdata, read in place. Every expected count is computed here from the same files
//! (serde_json, zip and csv, by the rules the importers document), never pasted from magpie's
//! output. No IP address or user agent from the files may reach the warehouse, and none is
//! printed.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;
use magpie_music::event::SkipReason;
use magpie_music::import::{FileReport, Outcome};
use serde_json::Value;

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut v = v;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Import one file into a fresh warehouse: the warehouse and the file's report.
fn import_one(dir: &Path, file: &Path) -> (magpie_core::Warehouse, Vec<FileReport>) {
    let wh = warehouse(dir);
    let summary = import(&wh, &[file.to_path_buf()]);
    assert!(summary.all_ok(), "{summary}");
    let files = summary.files;
    (wh, files)
}

/// Importing the same file again adds nothing.
fn assert_reimport_adds_nothing(wh: &magpie_core::Warehouse, file: &Path) {
    let before = totals(wh);
    let again = import(wh, &[file.to_path_buf()]);
    assert!(again.all_ok(), "{again}");
    assert_eq!(again.imported(), 0, "{again}");
    assert!(
        again
            .files
            .iter()
            .all(|f| matches!(f.outcome, Outcome::AlreadyImported { .. })),
        "{again}"
    );
    assert_eq!(totals(wh), before);
}

// ---- ListenBrainz --------------------------------------------------------------------------

/// What the importer should make of a set of listens (JSON values).
#[derive(Default, Debug)]
struct LbExpect {
    read: u64,
    /// Distinct (artist, track, listened_at) among listens with a time and a track name.
    distinct: HashSet<String>,
    skipped: u64,
    with_recording_mbid: HashSet<String>,
    with_spotify: HashSet<String>,
    with_duration: HashSet<String>,
}

impl LbExpect {
    fn add(&mut self, listen: &Value) {
        self.read += 1;
        let at = listen.get("listened_at").and_then(Value::as_i64);
        let track = text(listen, &["track_metadata", "track_name"]);
        let (Some(at), Some(track)) = (at, track) else {
            self.skipped += 1;
            return;
        };
        let key = format!(
            "{:?}|{track}|{at}",
            text(listen, &["track_metadata", "artist_name"])
        );
        self.distinct.insert(key.clone());
        let info = |k: &str| text(listen, &["track_metadata", "additional_info", k]);
        if info("recording_mbid")
            .or_else(|| {
                text(
                    listen,
                    &["track_metadata", "mbid_mapping", "recording_mbid"],
                )
            })
            .is_some()
        {
            self.with_recording_mbid.insert(key.clone());
        }
        if info("spotify_id").is_some_and(|s| s.contains("/track/")) {
            self.with_spotify.insert(key.clone());
        }
        if listen["track_metadata"]["additional_info"]
            .get("duration_ms")
            .and_then(Value::as_i64)
            .is_some()
        {
            self.with_duration.insert(key);
        }
    }

    fn check(&self, wh: &magpie_core::Warehouse, reports: &[FileReport]) {
        let sum = |f: fn(&FileReport) -> u64| reports.iter().map(f).sum::<u64>();
        assert_eq!(sum(|r| r.events_read), self.read);
        assert_eq!(sum(|r| r.skipped_total()), self.skipped);
        assert_eq!(sum(|r| r.imported), self.distinct.len() as u64);
        assert!(
            reports
                .iter()
                .all(|r| r.format.map(|f| f.as_str()) == Some("listenbrainz_json"))
        );
        let n = self.distinct.len() as i64;
        assert_eq!(
            count(
                wh,
                "SELECT count(*) FROM raw.listen_events WHERE source_kind = 'listenbrainz' \
                 AND started_at IS NOT NULL AND ended_at IS NULL AND track_name IS NOT NULL"
            ),
            n
        );
        assert_eq!(
            count(wh, "SELECT count(track_mbid) FROM raw.listen_events"),
            self.with_recording_mbid.len() as i64
        );
        assert_eq!(
            count(
                wh,
                "SELECT count(*) FROM raw.listen_events WHERE spotify_track_uri LIKE 'spotify:track:%'"
            ),
            self.with_spotify.len() as i64
        );
        assert_eq!(
            count(wh, "SELECT count(track_duration_ms) FROM raw.listen_events"),
            self.with_duration.len() as i64
        );
    }
}

fn zip_listens(file: &Path) -> (LbExpect, usize) {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut expect = LbExpect::default();
    let mut members = 0;
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).unwrap();
        if !member.name().ends_with(".jsonl") {
            continue;
        }
        members += 1;
        let mut body = String::new();
        member.read_to_string(&mut body).unwrap();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            expect.add(&serde_json::from_str(line).unwrap());
        }
    }
    (expect, members)
}

#[test]
fn listenbrainz_export_zips() {
    for name in [
        "listenbrainz_shoko1_1749780844.zip",
        "listenbrainz_shoko1_123456789.zip",
    ] {
        let Some(file) = realdata(&format!("listenbrainz/koito/{name}")) else {
            return;
        };
        let (expect, members) = zip_listens(&file);
        assert!(expect.read > 0);
        let dir = tempfile::tempdir().unwrap();
        let (wh, reports) = import_one(dir.path(), &file);
        // One report per listens file: user.json is passed over without a word.
        assert_eq!(reports.len(), members, "{name}");
        assert!(reports.iter().all(|r| !r.source.ends_with("user.json")));
        expect.check(&wh, &reports);
        eprintln!(
            "{name}: {} listens read, {} imported",
            expect.read,
            expect.distinct.len()
        );
        assert_reimport_adds_nothing(&wh, &file);
    }
}

#[test]
fn listenbrainz_loose_json_lines() {
    let Some(file) = realdata("listenbrainz/listenbrainz-server/listenbrainz_listens.jsonl") else {
        return;
    };
    let body = std::fs::read_to_string(&file).unwrap();
    let mut expect = LbExpect::default();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        expect.add(&serde_json::from_str(line).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let (wh, reports) = import_one(dir.path(), &file);
    expect.check(&wh, &reports);
    // The rest of additional_info is kept, under its name.
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events \
             WHERE json_extract_string(extra_fields, '$.additional_info.isrc') IS NOT NULL"
        ),
        body.lines().filter(|l| l.contains("\"isrc\"")).count() as i64
    );
    assert_reimport_adds_nothing(&wh, &file);
}

// ---- Maloja --------------------------------------------------------------------------------

#[test]
fn maloja_exports() {
    for sub in [
        "maloja/koito/maloja_import_test.json",
        "maloja/listenbrainz-server/maloja.json",
    ] {
        let Some(file) = realdata(sub) else {
            return;
        };
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let scrobbles = doc["scrobbles"].as_array().unwrap();
        let titled: Vec<&Value> = scrobbles
            .iter()
            .filter(|s| text(s, &["track", "title"]).is_some())
            .collect();
        let distinct: HashSet<String> = titled
            .iter()
            .map(|s| {
                format!(
                    "{}|{}|{}",
                    s["time"], s["track"]["title"], s["track"]["artists"]
                )
            })
            .collect();
        let combined = titled
            .iter()
            .filter(|s| {
                s["track"]["artists"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str().unwrap().contains(" • "))
            })
            .count() as i64;
        // The artist name by the documented rule: the combined credit holding every other
        // entry, else the entries joined with ", ".
        let expected_names: HashSet<String> = titled
            .iter()
            .map(|s| {
                let artists: Vec<&str> = s["track"]["artists"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                let full = artists.iter().find(|a| {
                    let parts: Vec<&str> = a.split(" • ").collect();
                    parts.len() > 1 && artists.iter().all(|o| o == *a || parts.contains(o))
                });
                let name = full.map_or_else(|| artists.join(", "), |f| f.to_string());
                format!("{}|{name}", s["time"])
            })
            .collect();
        let played_ms: i64 = titled
            .iter()
            .filter_map(|s| s["duration"].as_i64())
            .map(|d| d * 1_000)
            .sum();
        let with_length = titled
            .iter()
            .filter(|s| s["track"]["length"].as_i64().is_some())
            .count() as i64;

        let dir = tempfile::tempdir().unwrap();
        let (wh, reports) = import_one(dir.path(), &file);
        let report = &reports[0];
        assert_eq!(report.format.unwrap().as_str(), "maloja_json");
        assert_eq!(report.events_read, scrobbles.len() as u64);
        assert_eq!(
            report.skipped_total(),
            (scrobbles.len() - titled.len()) as u64
        );
        assert_eq!(report.imported, distinct.len() as u64, "{sub}");
        assert_eq!(
            count(
                &wh,
                "SELECT count(*) FROM raw.listen_events WHERE source_kind = 'maloja' \
                 AND ended_at IS NULL AND started_at IS NOT NULL"
            ),
            distinct.len() as i64
        );
        // Each scrobble with a combined "A • B" credit is named by that credit.
        assert_eq!(
            count(
                &wh,
                "SELECT count(*) FROM raw.listen_events WHERE artist_name LIKE '% • %'"
            ),
            combined
        );
        let (rs, _) = magpie_core::values::query(
            wh.conn(),
            "SELECT epoch(started_at)::BIGINT || '|' || artist_name FROM raw.listen_events",
            usize::MAX,
        )
        .unwrap();
        let names: HashSet<String> = rs
            .rows
            .iter()
            .map(|r| magpie_core::values::to_text(&r[0]))
            .collect();
        assert_eq!(names, expected_names, "{sub}");
        assert_eq!(
            count(
                &wh,
                "SELECT coalesce(sum(ms_played), 0) FROM raw.listen_events"
            ),
            played_ms
        );
        assert_eq!(
            count(
                &wh,
                "SELECT count(track_duration_ms) FROM raw.listen_events"
            ),
            with_length
        );
        eprintln!(
            "{sub}: {} scrobbles, {} imported, {combined} with a combined credit",
            scrobbles.len(),
            distinct.len()
        );
        assert_reimport_adds_nothing(&wh, &file);
    }
}

// ---- Apple Music ---------------------------------------------------------------------------

/// The documented rules, applied to the CSV independently: skips by reason, and the distinct
/// plays kept.
struct AppleExpect {
    rows: u64,
    skipped: BTreeMap<SkipReason, u64>,
    distinct: HashSet<String>,
    with_artist: HashSet<String>,
    /// Values that must never reach the warehouse (IP addresses, user agents).
    private: HashSet<String>,
}

fn apple_expect(file: &Path) -> AppleExpect {
    let mut reader = csv::Reader::from_path(file).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let title = col("Song Name").or(col("Content Name")).unwrap();
    let artist = col("Artist Name").or(col("Container Artist Name"));
    let (start, end) = (
        col("Event Start Timestamp").unwrap(),
        col("Event End Timestamp").unwrap(),
    );
    let played = col("Play Duration Milliseconds").unwrap();
    let (item, event) = (col("Item Type"), col("Event Type"));
    let private_cols: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| *h == "Client IP Address" || *h == "Client Device Name")
        .map(|(i, _)| i)
        .collect();
    let mut expect = AppleExpect {
        rows: 0,
        skipped: BTreeMap::new(),
        distinct: HashSet::new(),
        with_artist: HashSet::new(),
        private: HashSet::new(),
    };
    for rec in reader.records() {
        let rec = rec.unwrap();
        expect.rows += 1;
        // Every IP address; user agents (they hold a `/`), not placeholders like UNKNOWN.
        for &i in &private_cols {
            let v = rec[i].trim();
            if !v.is_empty() && (headers[i].contains("IP") || v.contains('/')) {
                expect.private.insert(v.to_string());
            }
        }
        let get = |i: Option<usize>| i.map(|i| rec[i].trim()).unwrap_or("");
        let played_text = get(Some(played));
        let ms = (!played_text.is_empty()).then(|| played_text.parse::<f64>().unwrap());
        let reason = if get(Some(title)).is_empty()
            || get(item) == "AGGREGATE_NON_CATALOG_PLAY_TIME"
            || get(event) == "LYRIC_DISPLAY"
        {
            Some(SkipReason::NoMetadata)
        } else if ms.is_some_and(|ms| ms < 0.0) {
            Some(SkipReason::Undated)
        } else if get(Some(end)).is_empty() {
            if get(Some(start)).is_empty() {
                Some(SkipReason::Undated)
            } else if get(event) == "PLAY_START" || ms.is_none() {
                Some(SkipReason::NowPlaying)
            } else {
                None
            }
        } else if get(Some(start)).is_empty() && ms.is_none() {
            Some(SkipReason::Undated)
        } else {
            None
        };
        match reason {
            Some(r) => *expect.skipped.entry(r).or_default() += 1,
            None => {
                let key = format!(
                    "{}|{}|{}|{}|{:?}",
                    get(Some(title)),
                    get(artist),
                    get(Some(start)),
                    get(Some(end)),
                    ms
                );
                if !get(artist).is_empty() {
                    expect.with_artist.insert(key.clone());
                }
                expect.distinct.insert(key);
            }
        }
    }
    expect
}

#[test]
fn apple_music_play_activity_both_layouts() {
    for (sub, has_private) in [
        (
            "apple_music/vietvudanh/Apple Music Play Activity.csv",
            false,
        ),
        (
            "apple_music/nerveband/Apple Music Play Activity small.csv",
            true,
        ),
    ] {
        let Some(file) = realdata(sub) else {
            return;
        };
        let expect = apple_expect(&file);
        assert_eq!(
            !expect.private.is_empty(),
            has_private,
            "the newer sample carries IP addresses and user agents to test against"
        );
        let dir = tempfile::tempdir().unwrap();
        let (wh, reports) = import_one(dir.path(), &file);
        let report = &reports[0];
        assert_eq!(report.format.unwrap().as_str(), "apple_music_csv");
        assert_eq!(report.events_read, expect.rows);
        assert_eq!(report.skipped, expect.skipped, "{sub}");
        assert_eq!(report.imported, expect.distinct.len() as u64, "{sub}");
        assert_eq!(
            count(
                &wh,
                "SELECT count(*) FROM raw.listen_events WHERE source_kind = 'apple_music' \
                 AND started_at IS NOT NULL AND ended_at IS NOT NULL AND track_name IS NOT NULL"
            ),
            expect.distinct.len() as i64
        );
        assert_eq!(
            count(&wh, "SELECT count(artist_name) FROM raw.listen_events"),
            expect.with_artist.len() as i64
        );
        let all = all_raw_text(&wh);
        let leaked = expect
            .private
            .iter()
            .filter(|v| all.contains(v.as_str()))
            .count();
        assert_eq!(
            leaked, 0,
            "an IP address or user agent reached the warehouse"
        );
        eprintln!(
            "{sub}: {} rows, {} imported, skipped {:?}",
            expect.rows,
            expect.distinct.len(),
            expect.skipped
        );
        assert_reimport_adds_nothing(&wh, &file);
    }
}

/// All of them at once, as a folder would be: each format is recognised by its content.
#[test]
fn every_new_format_in_one_import() {
    let subs = [
        "listenbrainz/koito/listenbrainz_shoko1_1749780844.zip",
        "listenbrainz/listenbrainz-server/listenbrainz_listens.jsonl",
        "maloja/koito/maloja_import_test.json",
        "maloja/listenbrainz-server/maloja.json",
        "apple_music/vietvudanh/Apple Music Play Activity.csv",
        "apple_music/nerveband/Apple Music Play Activity small.csv",
    ];
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in subs {
        let Some(f) = realdata(sub) else {
            return;
        };
        files.push(f);
    }
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let summary = import(&wh, &files);
    assert!(summary.all_ok(), "{summary}");
    let kinds: HashSet<String> = summary
        .files
        .iter()
        .map(|f| f.format.unwrap().source_kind().as_str().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["listenbrainz", "maloja", "apple_music"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(DISTINCT source_kind) FROM raw.listen_events"
        ),
        3
    );
}

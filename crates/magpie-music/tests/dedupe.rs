//! The same listen arriving from several sources collapses into one (PRODUCT §2.2): API pages
//! against exports, basic against extended, Last.fm (start times) against Spotify (end times).
//! Variants are derived in the test from the real extended export.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{Value, json};

fn music_records(path: &Path, n: usize) -> Vec<Value> {
    let all: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    all.into_iter()
        .filter(|r| {
            r["master_metadata_track_name"].is_string() && r["ms_played"].as_i64().unwrap() > 30_000
        })
        .take(n)
        .collect()
}

fn ts(r: &Value) -> DateTime<Utc> {
    r["ts"].as_str().unwrap().parse().unwrap()
}

/// A recently-played page for these plays, as the Web API would return it (played_at with ms).
fn api_page(records: &[Value], dir: &Path) -> PathBuf {
    let items: Vec<Value> = records
        .iter()
        .map(|r| {
            let played = ts(r) + chrono::Duration::milliseconds(437);
            json!({
                "track": {
                    "name": r["master_metadata_track_name"],
                    "uri": r["spotify_track_uri"],
                    "duration_ms": r["ms_played"],
                    "artists": [{"name": r["master_metadata_album_artist_name"], "uri": "spotify:artist:x"}],
                    "album": {"name": r["master_metadata_album_album_name"], "uri": "spotify:album:y"}
                },
                "played_at": played.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "context": null
            })
        })
        .collect();
    let page = json!({"items": items, "next": null, "cursors": {"after": "1", "before": "0"}, "limit": 50, "href": "x"});
    let path = dir.join("recently_played.json");
    std::fs::write(&path, serde_json::to_vec(&page).unwrap()).unwrap();
    path
}

fn basic_export(records: &[Value], dir: &Path) -> PathBuf {
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "endTime": ts(r).format("%Y-%m-%d %H:%M").to_string(),
                "artistName": r["master_metadata_album_artist_name"],
                "trackName": r["master_metadata_track_name"],
                "msPlayed": r["ms_played"],
            })
        })
        .collect();
    let path = dir.join("StreamingHistory_music_0.json");
    std::fs::write(&path, serde_json::to_vec(&rows).unwrap()).unwrap();
    path
}

fn lastfm_csv(records: &[Value], dir: &Path) -> PathBuf {
    let path = dir.join("scrobbles.csv");
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["uts", "utc_time", "artist", "album", "track"])
        .unwrap();
    for r in records {
        // Scrobbles carry the start of the play; Last.fm's names differ in case.
        let start = ts(r) - chrono::Duration::milliseconds(r["ms_played"].as_i64().unwrap());
        w.write_record([
            start.timestamp().to_string(),
            start.format("%d %b %Y, %H:%M").to_string(),
            r["master_metadata_album_artist_name"]
                .as_str()
                .unwrap()
                .to_uppercase(),
            r["master_metadata_album_album_name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            r["master_metadata_track_name"]
                .as_str()
                .unwrap()
                .to_lowercase(),
        ])
        .unwrap();
    }
    w.flush().unwrap();
    path
}

#[test]
fn every_other_source_collapses_onto_the_extended_export() {
    let Some(file) =
        realdata("spotify_export/extended/mica-92/Streaming_History_Audio_2024_4.json")
    else {
        return;
    };
    let overlap = music_records(&file, 200);
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    assert!(import(&wh, std::slice::from_ref(&file)).all_ok());
    let (events, listens) = totals(&wh);

    for (name, derived) in [
        ("api", api_page(&overlap[..50], dir.path())),
        ("basic", basic_export(&overlap, dir.path())),
        ("lastfm", lastfm_csv(&overlap, dir.path())),
    ] {
        let n = if name == "api" { 50 } else { overlap.len() } as u64;
        let summary = import(&wh, &[derived]);
        assert!(summary.all_ok(), "{summary}");
        assert_eq!(summary.imported(), 0, "{name}: {}", summary.files[0]);
        assert_eq!(summary.duplicates(), n, "{name}: {}", summary.files[0]);
        let (e, l) = totals(&wh);
        assert_eq!(l, listens, "{name} added no listen");
        assert!(
            e > events,
            "{name}'s events are kept in raw with provenance"
        );
    }
    // Each duplicate points at an extended-export event of the same track.
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events d JOIN raw.listen_events o ON d.duplicate_of = o.event_id
             WHERE o.source_kind <> 'spotify_extended' OR o.identity_key <> d.identity_key"
        ),
        0
    );
}

#[test]
fn api_first_then_export_fills_in_without_doubling() {
    let Some(file) =
        realdata("spotify_export/extended/mica-92/Streaming_History_Audio_2024_4.json")
    else {
        return;
    };
    let overlap = music_records(&file, 50);
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    assert!(import(&wh, &[api_page(&overlap, dir.path())]).all_ok());
    assert_eq!(totals(&wh), (50, 50));
    let summary = import(&wh, std::slice::from_ref(&file));
    assert!(summary.all_ok());
    let report = &summary.files[0];
    assert_eq!(report.cross_source, 50, "{report}");
    let (_, listens) = totals(&wh);
    assert_eq!(listens as u64, 50 + report.imported);

    // Outside the window nothing collapses: the same page shifted by five minutes is new.
    let dir2 = tempfile::tempdir().unwrap();
    let wh2 = warehouse(dir2.path());
    let shifted: Vec<Value> = overlap
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["ts"] = json!(
                (ts(&r) + chrono::Duration::minutes(5))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            );
            r
        })
        .collect();
    assert!(import(&wh2, &[api_page(&shifted, dir2.path())]).all_ok());
    let summary = import(&wh2, &[file]);
    assert_eq!(summary.files[0].cross_source, 0, "{}", summary.files[0]);
}

#[test]
fn exact_duplicates_inside_one_export_collapse() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let rows = json!([
        {"endTime": "2023-09-22 20:15", "artistName": "club2020", "trackName": "Deszcz", "msPlayed": 111804},
        {"endTime": "2023-09-22 20:15", "artistName": "club2020", "trackName": "Deszcz", "msPlayed": 111804},
        {"endTime": "2023-09-22 20:19", "artistName": "club2020", "trackName": "Deszcz", "msPlayed": 111804}
    ]);
    let path = dir.path().join("StreamingHistory_music_0.json");
    std::fs::write(&path, rows.to_string()).unwrap();
    let summary = import(&wh, &[path]);
    assert_eq!(
        (summary.imported(), summary.duplicates()),
        (2, 1),
        "{}",
        summary.files[0]
    );
    assert_eq!(totals(&wh), (2, 2));
}

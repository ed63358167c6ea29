//! Every importer against the real exports in ../shared/realdata, with the expected counts
//! computed here independently (serde_json / csv over the same files), never pasted.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use magpie_music::import::Outcome;
use serde_json::Value;

fn json_array(path: &Path) -> Vec<Value> {
    serde_json::from_slice::<Vec<Value>>(&std::fs::read(path).unwrap()).unwrap()
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[test]
fn extended_history_imports_every_play_and_no_ip() {
    let Some(file) =
        realdata("spotify_export/extended/mica-92/Streaming_History_Audio_2024_4.json")
    else {
        return;
    };
    let records = json_array(&file);
    let named: Vec<&Value> = records
        .iter()
        .filter(|r| s(r, "master_metadata_track_name").is_some() || s(r, "episode_name").is_some())
        .collect();
    let distinct: HashSet<String> = named
        .iter()
        .map(|r| {
            format!(
                "{:?}|{:?}|{:?}|{}",
                s(r, "ts"),
                s(r, "spotify_track_uri").or(s(r, "spotify_episode_uri")),
                s(r, "master_metadata_track_name").or(s(r, "episode_name")),
                r["ms_played"]
            )
        })
        .collect();
    let episodes = named
        .iter()
        .filter(|r| s(r, "spotify_episode_uri").is_some())
        .count() as i64;
    let ms_total: i64 = records
        .iter()
        .filter(|r| s(r, "master_metadata_track_name").is_some())
        .map(|r| r["ms_played"].as_i64().unwrap())
        .sum();
    let ips: HashSet<String> = records.iter().filter_map(|r| s(r, "ip_addr")).collect();
    assert!(
        !ips.is_empty(),
        "the sample carries IP addresses to test against"
    );

    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let summary = import(&wh, std::slice::from_ref(&file));
    assert!(summary.all_ok(), "{summary}");
    let report = &summary.files[0];
    assert_eq!(report.events_read, records.len() as u64);
    assert_eq!(report.imported, distinct.len() as u64);
    assert_eq!(report.skipped_total(), (records.len() - named.len()) as u64);
    assert_eq!(report.duplicates, (named.len() - distinct.len()) as u64);
    assert_eq!(
        count(&wh, "SELECT count(*) FROM raw.listen_events"),
        distinct.len() as i64
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE content_kind = 'episode'"
        ),
        episodes
    );
    // Sum over distinct rows equals the file's sum when the file has no exact repeats of tracks.
    if named.len() == distinct.len() {
        assert_eq!(
            count(
                &wh,
                "SELECT sum(ms_played) FROM raw.listen_events WHERE content_kind = 'track'"
            ),
            ms_total
        );
    }
    let text = all_raw_text(&wh);
    for ip in &ips {
        assert!(
            !text.contains(ip.as_str()),
            "an IP address reached the warehouse"
        );
    }
    // Provenance: format, file and record position.
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE source_format = 'extended_json' AND source_position BETWEEN 1 AND 100000"
        ),
        distinct.len() as i64
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.import_batches WHERE status = 'completed' AND length(content_sha256) = 64"
        ),
        1
    );
}

#[test]
fn legacy_endsong_layout() {
    let Some(file) = realdata(
        "spotify_export/extended_legacy/listenbrainz-server/spotify_streaming_endsong_0.json",
    ) else {
        return;
    };
    let records = json_array(&file);
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let summary = import(&wh, &[file]);
    assert!(summary.all_ok(), "{summary}");
    assert_eq!(summary.files[0].format.unwrap().as_str(), "endsong_json");
    assert_eq!(
        count(&wh, "SELECT count(*) FROM raw.listen_events"),
        records.len() as i64
    );
    let with_user = records
        .iter()
        .filter(|r| s(r, "username").is_some())
        .count() as i64;
    assert_eq!(
        count(&wh, "SELECT count(source_username) FROM raw.listen_events"),
        with_user
    );
    let text = all_raw_text(&wh);
    assert!(
        !text.contains("user_agent"),
        "user-agent fields are never kept"
    );
}

#[test]
fn basic_history_both_chunks() {
    let Some(dir_in) = realdata("spotify_export/basic/xKitsune47") else {
        return;
    };
    let mut distinct = HashSet::new();
    let mut total = 0;
    for name in [
        "StreamingHistory_music_0.json",
        "StreamingHistory_music_3.json",
    ] {
        for r in json_array(&dir_in.join(name)) {
            total += 1;
            distinct.insert(format!(
                "{:?}|{:?}|{:?}|{}",
                s(&r, "endTime"),
                s(&r, "artistName"),
                s(&r, "trackName"),
                r["msPlayed"]
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    // A folder: both chunks are found.
    let summary = import(&wh, &[dir_in]);
    assert!(summary.all_ok(), "{summary}");
    assert_eq!(summary.events_read(), total);
    assert_eq!(
        count(&wh, "SELECT count(*) FROM raw.listen_events"),
        distinct.len() as i64
    );
    assert_eq!(summary.duplicates(), total - distinct.len() as u64);
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE source_kind = 'spotify_basic' AND ended_at IS NOT NULL AND ms_played IS NOT NULL"
        ),
        distinct.len() as i64
    );
}

#[test]
fn lastfm_csv_with_undated_rows() {
    let Some(file) = realdata("lastfm/krishkumar/lastfm_scrobbles.csv") else {
        return;
    };
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (artist, track, ts) = (col("artist"), col("track"), col("timestamp"));
    let mut rows = 0u64;
    let mut undated = 0u64;
    let mut distinct = HashSet::new();
    let mut with_mbid = 0i64;
    for rec in reader.records() {
        let rec = rec.unwrap();
        rows += 1;
        let uts: i64 = rec[ts].parse().unwrap();
        if uts == 0 {
            undated += 1;
            continue;
        }
        if distinct.insert(format!("{}|{}|{}", &rec[artist], &rec[track], uts))
            && !rec[col("artist_mbid")].is_empty()
        {
            with_mbid += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let summary = import(&wh, &[file]);
    assert!(summary.all_ok(), "{summary}");
    let report = &summary.files[0];
    assert_eq!(report.events_read, rows);
    assert_eq!(report.skipped_total(), undated);
    assert_eq!(report.imported, distinct.len() as u64);
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE source_kind = 'lastfm' AND ended_at IS NULL"
        ),
        distinct.len() as i64
    );
    assert_eq!(
        count(&wh, "SELECT count(artist_mbid) FROM raw.listen_events"),
        with_mbid
    );
}

#[test]
fn reimport_is_a_no_op() {
    let Some(file) =
        realdata("spotify_export/extended/mica-92/Streaming_History_Audio_2024_4.json")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    assert!(import(&wh, std::slice::from_ref(&file)).all_ok());
    let before = totals(&wh);
    let again = import(&wh, std::slice::from_ref(&file));
    assert!(again.all_ok());
    assert!(
        matches!(again.files[0].outcome, Outcome::AlreadyImported { .. }),
        "{}",
        again.files[0]
    );
    assert_eq!(again.imported(), 0);
    assert_eq!(totals(&wh), before);

    // The same content under another name, re-encoded: no new listens either.
    let copy = dir.path().join("Streaming_History_Audio_copy.json");
    let records = json_array(&file);
    std::fs::write(&copy, serde_json::to_vec_pretty(&records).unwrap()).unwrap();
    let third = import(&wh, &[copy]);
    assert!(third.all_ok());
    assert!(matches!(third.files[0].outcome, Outcome::Imported { .. }));
    assert_eq!(third.imported(), 0, "{}", third.files[0]);
    assert_eq!(totals(&wh), before);
}

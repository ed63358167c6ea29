//! The demo generator writes real extended-export files that the importer takes as they are,
//! deterministic for a seed, with the shape of a real listening history.

mod common;

use chrono::NaiveDate;
use common::*;
use magpie_music::demo::{GenerateOptions, generate};

fn options(dir: &std::path::Path, plays: u64, seed: u64) -> GenerateOptions {
    GenerateOptions {
        plays,
        years: 2,
        seed,
        end: NaiveDate::from_ymd_opt(2026, 6, 30),
        timezone: chrono_tz::Europe::Berlin,
        out_dir: dir.to_path_buf(),
        records_per_file: 4000,
    }
}

fn digest(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn same_seed_same_files_other_seed_other_files() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(&options(a.path(), 3000, 7)).unwrap();
    generate(&options(b.path(), 3000, 7)).unwrap();
    generate(&options(c.path(), 3000, 8)).unwrap();
    assert_eq!(digest(a.path()), digest(b.path()));
    assert_ne!(digest(a.path()), digest(c.path()));
}

#[test]
fn demo_history_imports_and_looks_like_listening() {
    let export = tempfile::tempdir().unwrap();
    let plays = 20_000;
    let summary = generate(&options(export.path(), plays, 42)).unwrap();
    assert_eq!(summary.plays, plays);
    assert_eq!(summary.files.len(), 5, "4000 records per file");
    assert!(summary.files.iter().all(|f| {
        f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("Streaming_History_Audio_20")
    }));

    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let imported = import(&wh, &[export.path().to_path_buf()]);
    assert!(imported.all_ok(), "{imported}");
    assert_eq!(imported.events_read(), plays);
    assert_eq!(totals(&wh), (plays as i64, plays as i64));
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE ended_at > '2026-06-30 23:59:59'::TIMESTAMP + INTERVAL 2 HOUR"
        ),
        0
    );

    // One listener plays one thing at a time: no play starts before the previous one ended
    // (beyond the second Spotify's `ts` is truncated to).
    let overlaps = count(
        &wh,
        "SELECT count(*) FROM (SELECT started_at, lag(ended_at) OVER (ORDER BY ended_at, event_id) AS prev
         FROM raw.listen_events) WHERE started_at < prev - INTERVAL 2 SECOND",
    );
    assert_eq!(overlaps, 0);
    // Zipf-like popularity: the top tenth of artists take most of the plays.
    let artists = count(
        &wh,
        "SELECT count(DISTINCT artist_name) FROM raw.listen_events WHERE content_kind = 'track'",
    );
    let top_share = count(
        &wh,
        &format!(
            "SELECT (100 * sum(n) / (SELECT count(*) FROM raw.listen_events WHERE content_kind = 'track'))::BIGINT FROM (
                SELECT count(*) AS n FROM raw.listen_events WHERE content_kind = 'track'
                GROUP BY artist_name ORDER BY n DESC LIMIT {})",
            artists / 10
        ),
    );
    assert!(
        top_share > 50,
        "top 10% of artists have {top_share}% of plays"
    );
    // Evenings (local, UTC+1/+2) beat the small hours.
    let evening = count(
        &wh,
        "SELECT count(*) FROM raw.listen_events WHERE hour(ended_at) BETWEEN 16 AND 20",
    );
    let night = count(
        &wh,
        "SELECT count(*) FROM raw.listen_events WHERE hour(ended_at) BETWEEN 1 AND 3",
    );
    assert!(evening > 4 * night, "evening {evening} vs night {night}");
    // Skips, podcasts, private sessions and shuffle all occur, in plausible proportions.
    let skipped = count(
        &wh,
        "SELECT (100 * avg(skipped::INT))::BIGINT FROM raw.listen_events WHERE content_kind = 'track'",
    );
    assert!((5..=30).contains(&skipped), "skip rate {skipped}%");
    assert!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE content_kind = 'episode'"
        ) > 0
    );
    assert!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE incognito_mode"
        ) > 0
    );
    assert!(count(&wh, "SELECT count(*) FROM raw.listen_events WHERE shuffle") > 0);
    // Artists from many countries exist in the catalog; discoveries happen all along.
    let new_in_last_year = count(
        &wh,
        "SELECT count(*) FROM (SELECT artist_name, min(ended_at) AS first FROM raw.listen_events
         WHERE content_kind = 'track' GROUP BY 1) WHERE first > '2025-07-01'",
    );
    assert!(
        new_in_last_year > 0,
        "new artists are discovered in the second year"
    );
    // The documentation-range IP the generator writes is never stored.
    assert!(!all_raw_text(&wh).contains("192.0.2.44"));
}

//! The shipped star schema on the demo history and on real exports, checked against
//! independent SQL over the raw tables.

mod common;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use magpie_core::{OpenOptions, Warehouse};
use magpie_models::runner::{BuildOptions, NodeKind, Runner, Status};
use magpie_music::demo::{GenerateOptions, generate};
use magpie_music::import::{ImportOptions, Importer};

fn build(wh: &Warehouse, tz: chrono_tz::Tz, tmp: &Path) {
    let report = common::build_with(wh, tz, tmp, BuildOptions::default());
    assert!(
        report
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Test)
            .count()
            > 30
    );
}

fn rows(wh: &Warehouse, sql: &str) -> Vec<(i64, i64, i64)> {
    let mut stmt = wh.conn().prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn demo_marts_agree_with_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    generate(&GenerateOptions {
        plays: 20_000,
        years: 3,
        seed: 5,
        end: NaiveDate::from_ymd_opt(2026, 5, 31),
        timezone: chrono_tz::Europe::Berlin,
        out_dir: export.clone(),
        records_per_file: 5000,
    })
    .unwrap();
    let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
    let summary = Importer::new(&wh, ImportOptions::default())
        .unwrap()
        .import_paths(&[export], &mut |_| {});
    assert!(summary.all_ok());
    build(&wh, chrono_tz::Europe::Berlin, dir.path());

    // Plays, time and distinct tracks per local year, from raw with the play rule written out
    // here (>= 30 s, music, not private, not a duplicate), and local time via chrono-tz's
    // offsets (Berlin: +1h in winter, +2h in summer) computed with DuckDB's own date maths.
    let independent = rows(
        &wh,
        "WITH counted AS (
             SELECT e.*, e.ended_at + to_seconds(o.utc_offset_seconds) AS local_end
             FROM raw.listen_events e ASOF JOIN raw.tz_offsets o ON e.ended_at >= o.valid_from
             WHERE duplicate_of IS NULL AND content_kind = 'track' AND ms_played >= 30000
               AND NOT coalesce(incognito_mode, false))
         SELECT year(local_end), count(*), sum(ms_played) FROM counted GROUP BY 1 ORDER BY 1",
    );
    let marts = rows(
        &wh,
        "SELECT d.year, count(*), sum(f.ms_played) FROM marts.fact_plays f JOIN marts.dim_date d USING (date_id)
         GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(marts, independent);
    assert!(independent.len() >= 3);

    let distinct_raw: i64 = wh
        .conn()
        .query_row(
            "SELECT count(DISTINCT identity_key) FROM raw.listen_events WHERE duplicate_of IS NULL
             AND content_kind = 'track' AND ms_played >= 30000 AND NOT coalesce(incognito_mode, false)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let distinct_marts: i64 = wh
        .conn()
        .query_row(
            "SELECT count(DISTINCT track_id) FROM marts.fact_plays",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(distinct_marts, distinct_raw);
    // Daily aggregate sums back to the fact table.
    let (daily, fact): (i64, i64) = wh
        .conn()
        .query_row(
            "SELECT (SELECT sum(plays) FROM marts.agg_daily_listening), (SELECT count(*) FROM marts.fact_plays)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(daily, fact);
    // Sessions: no two plays of one session more than 30 minutes apart.
    let gaps: i64 = wh
        .conn()
        .query_row(
            "SELECT count(*) FROM (
                SELECT session_id, played_at - to_milliseconds(ms_played) AS started,
                       lag(played_at) OVER (PARTITION BY session_id ORDER BY played_at, event_id) AS prev
                FROM marts.fact_plays) WHERE started - prev >= INTERVAL 30 MINUTE",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gaps, 0);
    // A session_id names one listener's session: listener_id * 10^9 + a number from 1.
    let foreign: i64 = wh
        .conn()
        .query_row(
            "SELECT count(*) FROM marts.fact_plays
             WHERE session_id // 1000000000 <> listener_id OR session_id % 1000000000 < 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(foreign, 0);
    // And a new session starts at every such gap (and only there), numbered 1, 2, ... per
    // listener: as many sessions as gaps (plus each listener's first play), numbers up to it.
    let (sessions, starts, numbered): (i64, i64, i64) = wh
        .conn()
        .query_row(
            "SELECT (SELECT count(DISTINCT session_id) FROM marts.fact_plays),
                    (SELECT count(*) FROM (
                        SELECT played_at - to_milliseconds(ms_played) AS started,
                               lag(played_at) OVER (PARTITION BY listener_id ORDER BY played_at, event_id) AS prev
                        FROM marts.fact_plays) WHERE prev IS NULL OR started - prev >= INTERVAL 30 MINUTE),
                    (SELECT sum(n) FROM (
                        SELECT max(session_id % 1000000000) AS n FROM marts.fact_plays GROUP BY listener_id))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(sessions > 1, "{sessions}");
    assert_eq!(sessions, starts);
    assert_eq!(numbered, sessions);

    // The shipped singular test catches a fact table that lost one counted play and counts
    // another twice: run it over a tampered copy of fact_plays (a project of its own whose
    // `fact_plays` is that copy).
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let root = dir.path().join("tampered");
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::fs::create_dir_all(root.join("tests")).unwrap();
    for (from, to) in [
        ("dbt_project.yml", "dbt_project.yml"),
        ("staging/sources.yml", "models/sources.yml"),
        (
            "tests/fact_plays_cover_counted_events.sql",
            "tests/fact_plays_cover_counted_events.sql",
        ),
    ] {
        std::fs::copy(shipped.join(from), root.join(to)).unwrap();
    }
    let config = std::fs::read_to_string(root.join("dbt_project.yml"))
        .unwrap()
        .replace(
            r#"model-paths: ["staging", "intermediate", "marts"]"#,
            r#"model-paths: ["models"]"#,
        );
    std::fs::write(root.join("dbt_project.yml"), config).unwrap();
    let (lost, doubled): (i64, i64) = wh
        .conn()
        .query_row(
            "SELECT min(event_id), max(event_id) FROM marts.fact_plays WHERE source_kind = 'spotify_extended'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    std::fs::write(
        root.join("models/fact_plays.sql"),
        format!(
            "{{{{ config(materialized='view', schema='tampered') }}}}
             select * from marts.fact_plays where event_id <> {lost}
             union all select * from marts.fact_plays where event_id = {doubled}"
        ),
    )
    .unwrap();
    // The plays listeners hid, which the test leaves out: the built ones (none here).
    std::fs::write(
        root.join("models/int_hidden_plays.sql"),
        "{{ config(materialized='view', schema='tampered') }}
         select * from intermediate.int_hidden_plays",
    )
    .unwrap();
    let project = magpie_models::project::Project::from_dir(&root).unwrap();
    let report = Runner::new(wh.conn(), &project)
        .build(
            &BuildOptions {
                run_tests: true,
                temp_dir: dir.path().to_path_buf(),
                ..Default::default()
            },
            &mut |_| {},
        )
        .unwrap();
    let test = report
        .nodes
        .iter()
        .find(|n| n.name == "fact_plays_cover_counted_events")
        .expect("the singular test ran");
    assert_eq!(test.status, Status::Fail(2), "{report:#?}");
}

/// `../shared/realdata` beside the repository (or `REALDATA_DIR`); `None`, with a printed
/// notice, when it is absent so the test can skip. When `REQUIRE_REALDATA` is set (CI sets it)
/// a missing path fails the test instead, so the tests that need the data cannot pass unseen.
fn realdata(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("REALDATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realdata"));
    let path = base.join(sub);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("REQUIRE_REALDATA").is_none(),
        "REQUIRE_REALDATA is set but the real sample data is missing: no {} \
         (../shared/realdata beside the clone, or REALDATA_DIR)",
        path.display()
    );
    eprintln!("SKIPPED: {} is absent", path.display());
    None
}

#[test]
fn real_exports_build_and_count_like_raw() {
    let (Some(extended), Some(basic), Some(lastfm)) = (
        realdata("spotify_export/extended/mica-92"),
        realdata("spotify_export/basic/xKitsune47"),
        realdata("lastfm/krishkumar/lastfm_scrobbles.csv"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
    let summary = Importer::new(&wh, ImportOptions::default())
        .unwrap()
        .import_paths(&[extended, basic, lastfm], &mut |_| {});
    assert!(summary.all_ok(), "{summary}");
    build(&wh, chrono_tz::UTC, dir.path());
    let independent = rows(
        &wh,
        "SELECT year(ended_at), count(*), sum(ms_played) FROM raw.listen_events
         WHERE source_kind IN ('spotify_extended', 'spotify_basic') AND duplicate_of IS NULL
           AND content_kind = 'track' AND ms_played >= 30000 AND NOT coalesce(incognito_mode, false)
         GROUP BY 1 ORDER BY 1",
    );
    let marts = rows(
        &wh,
        "SELECT year(played_at), count(*), sum(ms_played) FROM marts.fact_plays
         WHERE source_kind IN ('spotify_extended', 'spotify_basic') GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(marts, independent);
    let (lastfm_facts, lastfm_events): (i64, i64) = wh
        .conn()
        .query_row(
            "SELECT (SELECT count(*) FROM marts.fact_plays WHERE source_kind = 'lastfm'),
                    (SELECT count(*) FROM raw.listen_events WHERE source_kind = 'lastfm' AND duplicate_of IS NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        lastfm_facts > 0 && lastfm_facts <= lastfm_events,
        "{lastfm_facts} of {lastfm_events}"
    );
}

#[test]
fn enrichment_fills_artists_genres_tracks_and_locations() {
    use magpie_music::identity::normalise;
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let options = GenerateOptions {
        plays: 6_000,
        years: 2,
        seed: 11,
        end: NaiveDate::from_ymd_opt(2026, 5, 31),
        timezone: chrono_tz::UTC,
        out_dir: export.clone(),
        records_per_file: 5000,
    };
    generate(&options).unwrap();
    let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
    assert!(
        Importer::new(&wh, ImportOptions::default())
            .unwrap()
            .import_paths(&[export], &mut |_| {})
            .all_ok()
    );
    magpie_music::demo::enrichment::write(wh.conn(), &options).unwrap();
    let artists =
        magpie_music::demo::catalog::generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(11), 60);
    // The most-played artist's MusicBrainz answer is replaced by Spotify metadata only: its
    // genres then come from Spotify, and its Spotify id from its track's lookup.
    let top = &artists[0];
    let top_key = normalise(&top.name);
    let track = &top.albums[0].tracks[0];
    let conn = wh.conn();
    conn.execute(
        "DELETE FROM raw.enrichment_responses WHERE source IN ('musicbrainz', 'geo') AND entity_key = ?",
        [&top_key],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO raw.enrichment_responses VALUES
           ('spotify', 'track', ?, '/v1/tracks/x', 200, TIMESTAMP '2026-06-01', ?),
           ('spotify', 'artist', ?, '/v1/artists/x', 200, TIMESTAMP '2026-06-01', ?)",
        duckdb::params![
            track.spotify_id,
            serde_json::json!({"id": track.spotify_id, "name": track.name, "duration_ms": 123456,
                "explicit": true, "external_ids": {"isrc": "GBXXX0000001"},
                "artists": [{"id": top.spotify_id, "name": top.name}],
                "album": {"id": "alb", "name": top.albums[0].name}})
            .to_string(),
            top.spotify_id,
            serde_json::json!({"id": top.spotify_id, "name": top.name,
                "genres": ["Dream Pop", "shoegaze"], "images": [{"url": "https://i.scdn.co/x"}]})
            .to_string()
        ],
    )
    .unwrap();
    build(&wh, chrono_tz::UTC, dir.path());

    // Every other artist's country and genres are the catalog's.
    let mut stmt = conn
        .prepare(
            "SELECT a.artist_key, a.country_code, l.country_code IS NOT NULL,
                    list_sort(list(g.genre_name) FILTER (WHERE g.genre_name IS NOT NULL))
             FROM marts.dim_artist a
             LEFT JOIN marts.dim_location l USING (location_id)
             LEFT JOIN marts.bridge_artist_genre b USING (artist_id)
             LEFT JOIN marts.dim_genre g USING (genre_id)
             GROUP BY ALL",
        )
        .unwrap();
    let found: std::collections::HashMap<String, (Option<String>, bool, Vec<String>)> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, {
                    let v: duckdb::types::Value = r.get(3)?;
                    match v {
                        duckdb::types::Value::List(items) => items
                            .into_iter()
                            .filter_map(|i| match i {
                                duckdb::types::Value::Text(t) => Some(t),
                                _ => None,
                            })
                            .collect(),
                        _ => vec![],
                    }
                }),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut checked = 0;
    for artist in artists.iter().skip(1) {
        let Some((country, located, genres)) = found.get(&normalise(&artist.name)) else {
            continue; // never played
        };
        assert_eq!(country.as_deref(), Some(artist.country), "{}", artist.name);
        assert!(located);
        let mut expected: Vec<String> = artist.genres.iter().map(|g| g.to_string()).collect();
        expected.sort();
        assert_eq!(genres, &expected, "{}", artist.name);
        checked += 1;
    }
    assert!(checked > 30, "{checked} artists checked");
    let (country, _, genres) = &found[&top_key];
    assert_eq!(country, &None);
    assert_eq!(
        genres,
        &vec!["dream pop".to_string(), "shoegaze".to_string()]
    );

    let text = |sql: &str| -> String { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        text(&format!(
            "SELECT spotify_artist_uri FROM marts.dim_artist WHERE artist_key = '{top_key}'"
        )),
        format!("spotify:artist:{}", top.spotify_id)
    );
    assert_eq!(
        text(&format!(
            "SELECT duration_ms || ' ' || explicit || ' ' || isrc FROM marts.dim_track
             WHERE spotify_track_uri = 'spotify:track:{}'",
            track.spotify_id
        )),
        "123456 true GBXXX0000001"
    );
    // Families from the seed; plays carry their artist's location.
    assert_eq!(
        text("SELECT genre_family FROM marts.dim_genre WHERE genre_name = 'indie folk'"),
        "folk"
    );
    assert_eq!(
        text("SELECT genre_family FROM marts.dim_genre WHERE genre_name = 'dream pop'"),
        "pop"
    );
    let (located, expected): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(location_id) FROM marts.fact_plays),
                    (SELECT count(*) FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id)
                     WHERE a.country_code IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(located, expected);
    assert!(located > 0);
}

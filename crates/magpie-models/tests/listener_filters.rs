//! A listener's own filters (issue 29, part 4): two listeners with the very same plays; one
//! hides an artist, an album and a genre. The marts leave out that listener's matching plays
//! (and only theirs: the other listener's identical plays stay counted), the numbers checked
//! with SQL over the raw events; removing the filters brings every mart back as it was. The
//! data tests run in every build.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use magpie_core::{OpenOptions, Warehouse};
use magpie_models::runner::BuildOptions;
use magpie_music::demo::{GenerateOptions, generate};
use magpie_music::filters::{self, FilterKind};
use magpie_music::import::{ImportOptions, Importer};

fn build(wh: &Warehouse, tmp: &Path) {
    common::build_with(wh, chrono_tz::UTC, tmp, BuildOptions::default());
}

fn scalar(wh: &Warehouse, sql: &str, params: &[&dyn duckdb::ToSql]) -> i64 {
    wh.conn()
        .query_row(sql, params, |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every mart: (rows, md5 of its sorted rows).
fn marts(wh: &Warehouse) -> BTreeMap<String, (i64, String)> {
    let mut stmt = wh
        .conn()
        .prepare(
            "SELECT table_name FROM information_schema.tables
             WHERE table_schema = 'marts' AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .unwrap();
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(names.len() > 10, "{names:?}");
    names
        .into_iter()
        .map(|t| {
            let digest = wh
                .conn()
                .query_row(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(x, '\n' ORDER BY x)), '')
                         FROM (SELECT CAST(t AS VARCHAR) AS x FROM marts.{t} AS t)"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            (t, digest)
        })
        .collect()
}

/// The counted plays of `listener` per the raw events (not a duplicate, music, at least 30 s,
/// not private), without those a filter hides, decided here from the raw events and the raw
/// MusicBrainz answers: the artist's name, the album's name (lower case, accents stripped),
/// or a genre of the artist (MusicBrainz's, keyed by the normalised artist name that is the
/// first part of the identity key).
const COUNTED: &str = "
    SELECT count(*) FROM raw.listen_events AS e
    WHERE e.listener_id = $1 AND e.duplicate_of IS NULL AND e.content_kind = 'track'
      AND e.ms_played >= 30000 AND NOT coalesce(e.incognito_mode, false)
      AND lower(strip_accents(trim(e.artist_name))) IS DISTINCT FROM lower(strip_accents($2))
      AND lower(strip_accents(trim(e.album_name))) IS DISTINCT FROM lower(strip_accents($3))
      AND split_part(e.identity_key, '|', 1) NOT IN (
          SELECT r.entity_key
          FROM raw.enrichment_responses AS r,
               unnest(from_json(r.body -> 'genres', '[{\"name\": \"VARCHAR\", \"count\": \"INTEGER\"}]')) AS g(genre)
          WHERE r.source = 'musicbrainz' AND r.entity = 'artist' AND genre.count > 0
            AND lower(trim(genre.name)) = lower($4))";

#[test]
fn a_listeners_filters_hide_their_plays_only_and_come_back_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    let options = GenerateOptions {
        plays: 5_000,
        years: 1,
        seed: 5,
        end: NaiveDate::from_ymd_opt(2026, 5, 31),
        timezone: chrono_tz::UTC,
        out_dir: dir.path().join("export"),
        records_per_file: 5_000,
    };
    let files = generate(&options).unwrap().files;
    let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
    // alice and bob played the very same plays.
    for listener in ["alice", "bob"] {
        let summary = Importer::new(
            &wh,
            ImportOptions {
                listener: listener.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .import_paths(&files, &mut |_| {});
        assert!(summary.all_ok());
    }
    magpie_music::demo::enrichment::write(wh.conn(), &options).unwrap();
    let alice = wh.listener_id("alice").unwrap();
    let bob = wh.listener_id("bob").unwrap();
    build(&wh, dir.path());
    let before = marts(&wh);
    let plays = |listener: i32| {
        scalar(
            &wh,
            "SELECT count(*) FROM marts.fact_plays WHERE listener_id = ?",
            &[&listener],
        )
    };
    let all_plays = plays(alice);
    assert_eq!(plays(bob), all_plays, "the same plays");
    assert!(all_plays > 3_000, "{all_plays}");

    // What alice hides: the most played artist (named in other case than shown), an album of
    // another artist (as shown), and a genre of a third artist that the first two lack.
    let (artist_id, artist): (String, String) = wh
        .conn()
        .query_row(
            "SELECT artist_id, artist_name FROM marts.dim_artist ORDER BY play_count DESC, artist_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (album_artist_id, album): (String, String) = wh
        .conn()
        .query_row(
            "SELECT artist_id, album_name FROM marts.dim_album
             WHERE artist_id <> ? AND album_name <> '(unknown album)'
               AND lower(album_name) NOT IN (SELECT lower(album_name) FROM marts.dim_album WHERE artist_id = ?)
             ORDER BY play_count DESC, album_id LIMIT 1",
            [&artist_id, &artist_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let genre: String = wh
        .conn()
        .query_row(
            "SELECT g.genre_name FROM intermediate.int_artist_genres AS g
             JOIN marts.dim_artist AS a USING (artist_key)
             WHERE a.artist_id NOT IN (?, ?)
               AND g.genre_name NOT IN (
                   SELECT genre_name FROM intermediate.int_artist_genres AS g2
                   JOIN marts.dim_artist AS a2 USING (artist_key) WHERE a2.artist_id IN (?, ?))
             GROUP BY 1 ORDER BY count(*), 1 LIMIT 1",
            [&artist_id, &album_artist_id, &artist_id, &album_artist_id],
            |r| r.get(0),
        )
        .unwrap();
    let counted = |listener: i32, artist: &str, album: &str, genre: &str| {
        scalar(&wh, COUNTED, &[&listener, &artist, &album, &genre])
    };
    assert_eq!(counted(alice, "", "", ""), all_plays, "SQL over raw agrees");

    filters::add(
        wh.conn(),
        "alice",
        FilterKind::Artist,
        &artist.to_uppercase(),
    )
    .unwrap();
    filters::add(wh.conn(), "alice", FilterKind::Album, &album).unwrap();
    filters::add(wh.conn(), "alice", FilterKind::Genre, &genre).unwrap();
    let raw_events = scalar(&wh, "SELECT count(*) FROM raw.listen_events", &[]);
    build(&wh, dir.path());
    assert_eq!(
        scalar(&wh, "SELECT count(*) FROM raw.listen_events", &[]),
        raw_events,
        "no event deleted"
    );

    // Each filter hides some of alice's plays, and alice's plays are what SQL over raw says.
    let expected = counted(alice, &artist, &album, &genre);
    let only_artist = counted(alice, &artist, "", "");
    let only_album = counted(alice, "", &album, "");
    let only_genre = counted(alice, "", "", &genre);
    for (what, n) in [
        ("artist", only_artist),
        ("album", only_album),
        ("genre", only_genre),
    ] {
        assert!(n < all_plays, "the {what} filter hides plays");
    }
    assert_eq!(
        all_plays - expected,
        (all_plays - only_artist) + (all_plays - only_album) + (all_plays - only_genre),
        "three disjoint sets of plays"
    );
    assert_eq!(plays(alice), expected);
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM intermediate.int_hidden_plays WHERE listener_id = ?",
            &[&alice]
        ),
        all_plays - expected
    );
    // bob's identical plays all stay counted.
    assert_eq!(plays(bob), all_plays);
    assert_eq!(counted(bob, "", "", ""), all_plays);

    // Every mart built on the plays agrees: alice's daily totals, her artists and albums.
    assert_eq!(
        scalar(
            &wh,
            "SELECT sum(plays)::BIGINT FROM marts.agg_daily_listening WHERE listener_id = ?",
            &[&alice]
        ),
        expected
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT sum(plays)::BIGINT FROM marts.agg_daily_listening WHERE listener_id = ?",
            &[&bob]
        ),
        all_plays
    );
    for (table, column, id) in [
        ("agg_daily_artist", "artist_id", &artist_id),
        ("fact_plays", "artist_id", &artist_id),
        ("agg_discoveries", "entity_id", &artist_id),
    ] {
        let sql =
            format!("SELECT count(*) FROM marts.{table} WHERE listener_id = ? AND {column} = ?");
        assert_eq!(scalar(&wh, &sql, &[&alice, id]), 0, "{table}: alice");
        assert!(scalar(&wh, &sql, &[&bob, id]) > 0, "{table}: bob");
    }
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM marts.fact_plays AS f JOIN marts.dim_album AS b USING (album_id)
             WHERE f.listener_id = ? AND lower(b.album_name) = lower(?)",
            &[&alice, &album]
        ),
        0
    );
    // The dimensions' totals count bob's plays of the hidden artist, not alice's.
    assert_eq!(
        scalar(
            &wh,
            "SELECT play_count FROM marts.dim_artist WHERE artist_id = ?",
            &[&artist_id]
        ),
        scalar(
            &wh,
            "SELECT count(*) FROM marts.fact_plays WHERE artist_id = ?",
            &[&artist_id]
        )
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT sum(play_count)::BIGINT FROM marts.dim_artist",
            &[]
        ),
        expected + all_plays
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT sum(play_count)::BIGINT FROM marts.dim_track",
            &[]
        ),
        expected + all_plays
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT sum(play_count)::BIGINT FROM marts.dim_album",
            &[]
        ),
        expected + all_plays
    );

    // Removing the filters (named in another case) brings every mart back as it was.
    filters::remove(
        wh.conn(),
        "alice",
        FilterKind::Artist,
        &artist.to_lowercase(),
    )
    .unwrap();
    filters::remove(wh.conn(), "alice", FilterKind::Album, &album).unwrap();
    filters::remove(wh.conn(), "alice", FilterKind::Genre, &genre.to_uppercase()).unwrap();
    build(&wh, dir.path());
    assert_eq!(plays(alice), all_plays);
    assert_eq!(marts(&wh), before);
}

//! Incremental builds equal full refreshes: two warehouses receive the same imports step by
//! step (recent plays first, as polls bring them; an export's older files over them; Last.fm
//! scrobbles of which some are duplicates and the rest get their length from Spotify's plays;
//! a second listener; a file imported again; listeners' own filters added, made to hide plays
//! already counted, and removed), one built incrementally after each step and the
//! other from scratch, and every mart (and the incremental intermediates) must hold the same
//! rows after every step.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use magpie_core::{OpenOptions, Warehouse};
use magpie_models::runner::{BuildOptions, BuildReport, Runner};
use magpie_music::demo::{GenerateOptions, generate};
use magpie_music::filters::{self, FilterKind};
use magpie_music::import::{ImportOptions, Importer};

const TZ: chrono_tz::Tz = chrono_tz::Europe::Berlin;

struct Pair {
    incremental: Warehouse,
    full: Warehouse,
    tmp: PathBuf,
}

impl Pair {
    fn new(dir: &Path) -> Self {
        let open = |name: &str| Warehouse::open(dir.join(name), &OpenOptions::default()).unwrap();
        Self {
            incremental: open("incremental.duckdb"),
            full: open("full.duckdb"),
            tmp: dir.to_path_buf(),
        }
    }

    fn import(&self, listener: &str, paths: &[PathBuf]) {
        for wh in [&self.incremental, &self.full] {
            let options = ImportOptions {
                listener: listener.into(),
                ..Default::default()
            };
            let summary = Importer::new(wh, options)
                .unwrap()
                .import_paths(paths, &mut |_| {});
            assert!(summary.all_ok(), "{paths:?}");
        }
    }

    /// Build both (the one incrementally, the other from scratch) with the same vars and
    /// compare them; returns the incremental build's report.
    fn build_and_compare(&self, step: &str, vars: &[(&str, serde_json::Value)]) -> BuildReport {
        let vars: BTreeMap<String, serde_json::Value> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let report = build(&self.incremental, &self.tmp, &vars, false);
        build(&self.full, &self.tmp, &vars, true);
        let (a, b) = (tables(&self.incremental), tables(&self.full));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{step}"
        );
        let mut differ = String::new();
        for (table, digest) in &a {
            if *digest != b[table] {
                let _ = writeln!(
                    differ,
                    "{table}: incremental {digest:?}, full {:?}",
                    b[table]
                );
            }
        }
        assert!(differ.is_empty(), "after {step}:\n{differ}");
        report
    }
}

fn build(
    wh: &Warehouse,
    tmp: &Path,
    vars: &BTreeMap<String, serde_json::Value>,
    full_refresh: bool,
) -> BuildReport {
    let (vars, run_vars) = vars
        .clone()
        .into_iter()
        .partition(|(k, _)| k != "event_watermark");
    common::build_with(
        wh,
        TZ,
        tmp,
        BuildOptions {
            full_refresh,
            vars,
            run_vars,
            ..Default::default()
        },
    )
}

/// Every mart table and incremental intermediate: (rows, md5 of its sorted rows), without the
/// bookkeeping column `invocation_id`.
fn tables(wh: &Warehouse) -> BTreeMap<String, (i64, String)> {
    let mut stmt = wh
        .conn()
        .prepare(
            "SELECT table_schema, table_name FROM information_schema.tables
             WHERE table_type = 'BASE TABLE'
               AND (table_schema = 'marts'
                    OR table_name IN ('int_plays', 'int_sessions', 'int_track_identities'))
             ORDER BY ALL",
        )
        .unwrap();
    let names: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names
        .into_iter()
        .map(|(schema, table)| {
            let exclude = if table == "int_plays" || table == "int_sessions" {
                " EXCLUDE (invocation_id)"
            } else {
                ""
            };
            let digest = wh
                .conn()
                .query_row(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(x, '\n' ORDER BY x)), '')
                         FROM (SELECT CAST(t AS VARCHAR) AS x FROM (SELECT *{exclude} FROM {schema}.{table}) AS t)"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            (format!("{schema}.{table}"), digest)
        })
        .collect()
}

fn incremental(report: &BuildReport, model: &str) -> bool {
    report
        .nodes
        .iter()
        .find(|n| n.name == model)
        .unwrap_or_else(|| panic!("{model} was built"))
        .incremental
}

/// Last.fm scrobbles derived from an extended-history file: for every third play one at its
/// start (the same listen from a second source: a duplicate of whichever came first), for every
/// fifth one three days later (a new play whose length comes from Spotify's plays).
fn scrobbles_of(file: &Path, out: &Path) -> PathBuf {
    let records: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let mut csv = String::from("uts,artist,album,track\n");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for (i, r) in records.iter().enumerate() {
        let (Some(track), Some(artist), Some(album)) = (
            r["master_metadata_track_name"].as_str(),
            r["master_metadata_album_artist_name"].as_str(),
            r["master_metadata_album_album_name"].as_str(),
        ) else {
            continue;
        };
        let end = chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().unwrap())
            .unwrap()
            .timestamp();
        let start = end - r["ms_played"].as_i64().unwrap() / 1000;
        let row = |uts: i64| {
            format!(
                "{uts},{},{},{}\n",
                quote(artist),
                quote(album),
                quote(track)
            )
        };
        if i % 3 == 0 {
            csv.push_str(&row(start));
        }
        if i % 5 == 0 {
            csv.push_str(&row(start + 3 * 86_400));
        }
    }
    std::fs::write(out, csv).unwrap();
    out.to_path_buf()
}

#[test]
fn incremental_builds_equal_full_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let files = generate(&GenerateOptions {
        plays: 9_000,
        years: 2,
        seed: 11,
        end: NaiveDate::from_ymd_opt(2026, 5, 31),
        timezone: TZ,
        out_dir: export.clone(),
        records_per_file: 1_500,
    })
    .unwrap()
    .files;
    assert!(files.len() >= 6, "{files:?}");
    let pair = Pair::new(dir.path());
    let newest = files.last().unwrap().clone();

    // The newest plays first, as polls bring them; then a build with nothing new.
    pair.import("alice", std::slice::from_ref(&newest));
    pair.build_and_compare("the first plays", &[]);
    let report = pair.build_and_compare("a build with nothing new", &[]);
    assert!(incremental(&report, "fact_plays"), "{report:#?}");

    // Scrobbles of the same plays (duplicates) and new ones three days later.
    let csv = scrobbles_of(&newest, &dir.path().join("scrobbles.csv"));
    pair.import("alice", &[csv]);
    let report = pair.build_and_compare("scrobbles", &[]);
    assert!(incremental(&report, "int_plays"));

    // The export's older files over them, oldest first; one build reads only part of the
    // events (the rest above its watermark, as if still being committed) and the next catches
    // up.
    for (i, file) in files[..files.len() - 1].iter().enumerate() {
        pair.import("alice", std::slice::from_ref(file));
        if i == 1 {
            let max: i64 = pair
                .incremental
                .conn()
                .query_row("SELECT max(event_id) FROM raw.listen_events", [], |r| {
                    r.get(0)
                })
                .unwrap();
            // Only the incremental one: a full refresh still sees the later events through
            // the track identities and lengths, so the two differ until the next build.
            let upto = max - 700;
            let vars = [("event_watermark".to_string(), serde_json::json!(upto))];
            build(
                &pair.incremental,
                &pair.tmp,
                &vars.into_iter().collect(),
                false,
            );
            let above: i64 = pair
                .incremental
                .conn()
                .query_row(
                    "SELECT count(*) FROM marts.fact_plays WHERE event_id > ?",
                    [upto],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                above, 0,
                "plays above the watermark wait for the next build"
            );
        }
        let report = pair.build_and_compare(&format!("export file {i}"), &[]);
        assert!(incremental(&report, "fact_plays"));
        assert!(incremental(&report, "int_sessions"));
    }

    // A build interrupted after int_plays (as a kill or a failed model leaves it): the next
    // one rebuilds what lies below in full, since it never saw what int_plays wrote.
    pair.import("bob", &files[..1]);
    magpie_models::timezone::write_offsets(pair.incremental.conn(), TZ).unwrap();
    let project = magpie_models::embedded::project().unwrap();
    let partial = Runner::new(pair.incremental.conn(), &project)
        .build(
            &BuildOptions {
                select: Some("+int_plays".into()),
                temp_dir: pair.tmp.clone(),
                ..Default::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert!(partial.ok() && incremental(&partial, "int_plays"));
    let report = pair.build_and_compare("a build after an interrupted one", &[]);
    assert!(incremental(&report, "int_plays"));
    assert!(
        !incremental(&report, "fact_plays"),
        "below the interruption"
    );

    // More of the second listener, and a file imported again (nothing new).
    pair.import("bob", &files[1..3]);
    pair.build_and_compare("a second listener", &[]);
    pair.import("bob", &files[2..3]);
    pair.build_and_compare("a file imported again", &[]);

    // A listener's own filters (issue 29): a change of raw.listener_filters rebuilds the
    // incremental models in full, and every mart equals a full refresh's; bob's most played
    // artist is hidden from bob's stats only.
    let top: String = pair
        .incremental
        .conn()
        .query_row(
            "SELECT a.artist_name FROM marts.fact_plays AS f JOIN marts.dim_artist AS a USING (artist_id)
             WHERE f.listener_id = (SELECT listener_id FROM listeners WHERE name = 'bob')
             GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for wh in [&pair.incremental, &pair.full] {
        filters::add(wh.conn(), "bob", FilterKind::Artist, &top).unwrap();
    }
    let report = pair.build_and_compare("an artist filter added", &[]);
    assert!(!incremental(&report, "fact_plays"), "filters changed");
    let hidden = |name: &str| -> i64 {
        pair.incremental
            .conn()
            .query_row(
                "SELECT count(*) FROM intermediate.int_hidden_plays
                 WHERE listener_id = (SELECT listener_id FROM listeners WHERE name = ?)",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(hidden("bob") > 0);
    assert_eq!(hidden("alice"), 0);
    let report = pair.build_and_compare("a build after the filter", &[]);
    assert!(incremental(&report, "fact_plays"));

    // Scrobbles with no album, of a track no other source knows; alice hides an album; then a
    // scrobble names the track's album, the hidden one: the earlier plays now belong to it
    // (int_plays writes them again) and leave fact_plays in an incremental build too.
    let lullaby = |name: &str, album: &str, times: &[i64]| {
        let mut csv = String::from("uts,artist,album,track\n");
        for t in times {
            csv.push_str(&format!(
                "{t},\"Filter Test Artist\",\"{album}\",\"Lullaby\"\n"
            ));
        }
        let path = dir.path().join(name);
        std::fs::write(&path, csv).unwrap();
        path
    };
    let day = 1_777_000_000;
    pair.import("alice", &[lullaby("lullaby-1.csv", "", &[day, day + 600])]);
    for wh in [&pair.incremental, &pair.full] {
        filters::add(wh.conn(), "alice", FilterKind::Album, "Bedtime Songs").unwrap();
    }
    pair.build_and_compare("an album filter added", &[]);
    assert_eq!(hidden("alice"), 0, "the scrobbles have no album yet");
    pair.import(
        "alice",
        &[lullaby("lullaby-2.csv", "Bedtime Songs", &[day + 86_400])],
    );
    let report = pair.build_and_compare("the hidden album named", &[]);
    assert!(incremental(&report, "fact_plays"));
    assert_eq!(hidden("alice"), 3);

    // The filters removed: the plays count again, as in a full refresh.
    for wh in [&pair.incremental, &pair.full] {
        filters::remove(wh.conn(), "bob", FilterKind::Artist, &top).unwrap();
        filters::remove(wh.conn(), "alice", FilterKind::Album, "bedtime songs").unwrap();
    }
    let report = pair.build_and_compare("the filters removed", &[]);
    assert!(!incremental(&report, "fact_plays"));
    assert_eq!(hidden("alice") + hidden("bob"), 0);

    // A var changes what a play is: every incremental model is rebuilt from scratch, and again
    // when it changes back.
    let report = pair.build_and_compare("a new min_play_ms", &[("min_play_ms", 60_000.into())]);
    assert!(!incremental(&report, "int_plays"));
    assert!(!incremental(&report, "fact_plays"));
    let report = pair.build_and_compare("min_play_ms back", &[]);
    assert!(!incremental(&report, "fact_plays"));
    let report = pair.build_and_compare("and then", &[]);
    assert!(incremental(&report, "fact_plays"));
}

#[test]
fn a_changed_time_zone_rebuilds_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(&GenerateOptions {
        plays: 2_000,
        years: 1,
        seed: 3,
        end: NaiveDate::from_ymd_opt(2026, 5, 31),
        timezone: TZ,
        out_dir: dir.path().join("export"),
        records_per_file: 1_000,
    })
    .unwrap()
    .files;
    let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
    Importer::new(&wh, ImportOptions::default())
        .unwrap()
        .import_paths(&files, &mut |_| {});
    let vars = BTreeMap::new();
    build(&wh, dir.path(), &vars, false);
    let report = build(&wh, dir.path(), &vars, false);
    assert!(incremental(&report, "fact_plays"));
    magpie_models::timezone::write_offsets(wh.conn(), chrono_tz::America::New_York).unwrap();
    let project = magpie_models::embedded::project().unwrap();
    let report = Runner::new(wh.conn(), &project)
        .build(
            &BuildOptions {
                temp_dir: dir.path().to_path_buf(),
                ..Default::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert!(report.ok());
    assert!(!incremental(&report, "fact_plays"), "the zone changed");
    let local_hours: i64 = wh
        .conn()
        .query_row(
            "SELECT count(*) FROM marts.fact_plays
             WHERE played_at_local <> played_at - INTERVAL 4 HOUR AND played_at_local <> played_at - INTERVAL 5 HOUR",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(local_hours, 0, "every play in New York time");
}

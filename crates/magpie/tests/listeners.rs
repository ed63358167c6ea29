//! `magpie listener list | add | rename | merge | remove` end to end: a merge between two
//! builds leaves marts equal to a full refresh, confirmation is asked for (or `--yes`), a
//! backup comes first, tokens follow a rename, and a running `magpie serve` keeps the writing
//! commands out while `list` reads its snapshot.

use std::path::Path;
use std::process::{Output, Stdio};

mod common;

use common::{Server, copy_dir, demo_export, magpie, run, stderr, stdout};

fn cli(dir: &Path, data: &str, args: &[&str]) -> Output {
    run(magpie(dir)
        .args(["--data-dir", data])
        .args(args)
        .stdin(Stdio::null()))
}

fn ok(dir: &Path, data: &str, args: &[&str]) -> String {
    let out = cli(dir, data, args);
    assert!(out.status.success(), "magpie {args:?}: {}", stderr(&out));
    stdout(&out)
}

fn listed(dir: &Path, data: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(dir, data, &["listener", "list", "--json"])).unwrap()
}

fn listener<'a>(all: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    all.iter().find(|l| l["name"] == name)
}

/// Every mart table and incremental intermediate: rows and md5 of its sorted rows (without the
/// bookkeeping column `invocation_id`), as in magpie-models' incremental tests.
fn digests(warehouse: &Path) -> Vec<(String, i64, String)> {
    let conn = duckdb::Connection::open(warehouse).unwrap();
    let mut stmt = conn
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
            let (rows, md5) = conn
                .query_row(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(x, '\n' ORDER BY x)), '')
                         FROM (SELECT CAST(t AS VARCHAR) AS x FROM (SELECT *{exclude} FROM {schema}.{table}) AS t)"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            (format!("{schema}.{table}"), rows, md5)
        })
        .collect()
}

#[test]
fn merge_between_builds_gives_the_marts_of_a_full_refresh() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let data = dir.join("data").to_string_lossy().into_owned();
    let first = demo_export(dir, 2_000, 1, "first");
    let second = dir.join("second");
    let made = run(magpie(dir).args([
        "demo",
        "generate",
        "--plays",
        "800",
        "--years",
        "1",
        "--seed",
        "7",
        "--end",
        "2026-01-31",
        "--out",
        &second.to_string_lossy(),
    ]));
    assert!(made.status.success(), "{}", stderr(&made));
    let (first, second) = (first.to_string_lossy(), second.to_string_lossy());
    // alice's export; alicia (the same person) imported it too, and has one of her own.
    ok(dir, &data, &["import", "--listener", "alice", &first]);
    ok(
        dir,
        &data,
        &["import", "--listener", "alicia", &first, &second],
    );
    ok(dir, &data, &["build"]);
    let all = listed(dir, &data);
    let alice_events = listener(&all, "alice").unwrap()["events"].as_i64().unwrap();
    let alicia_events = listener(&all, "alicia").unwrap()["events"]
        .as_i64()
        .unwrap();
    assert!(
        alice_events > 1_000 && alicia_events > alice_events,
        "{all:?}"
    );

    // Without --yes and without a terminal to ask: refused, nothing changed.
    let refused = cli(dir, &data, &["listener", "merge", "alicia", "alice"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert!(listener(&listed(dir, &data), "alicia").is_some());

    let said = ok(
        dir,
        &data,
        &["listener", "merge", "alicia", "alice", "--yes"],
    );
    let backup = said
        .lines()
        .find_map(|l| l.strip_prefix("Backup of the warehouse before: "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("no backup named in {said}"));
    assert!(Path::new(backup).is_file(), "{said}");
    let all = listed(dir, &data);
    assert!(listener(&all, "alicia").is_none());
    // alice's own export was all alicia had of it: only the second export's events are new.
    let merged = listener(&all, "alice").unwrap()["events"].as_i64().unwrap();
    assert_eq!(merged, alicia_events, "{said}");

    ok(dir, &data, &["build"]);
    let full = dir.join("full");
    copy_dir(Path::new(&data), &full);
    ok(dir, &full.to_string_lossy(), &["build", "--full-refresh"]);
    let after_merge = digests(&Path::new(&data).join("magpie.duckdb"));
    assert!(
        after_merge
            .iter()
            .any(|(t, rows, _)| t == "marts.fact_plays" && *rows > 0),
        "{after_merge:?}"
    );
    assert_eq!(after_merge, digests(&full.join("magpie.duckdb")));
    let plays_of_the_gone: String = ok(
        dir,
        &data,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) FROM marts.fact_plays WHERE listener_id NOT IN (SELECT listener_id FROM listeners)",
        ],
    );
    assert_eq!(plays_of_the_gone.lines().nth(1), Some("0"));
}

#[test]
fn add_rename_remove_and_a_running_server() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let data = dir.join("data").to_string_lossy().into_owned();
    let export = demo_export(dir, 300, 1, "export");
    ok(
        dir,
        &data,
        &["import", "--listener", "bob", &export.to_string_lossy()],
    );

    let bad = cli(dir, &data, &["listener", "add", "ana maria"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("\"ana maria\"") && stderr(&bad).contains("only letters"),
        "{}",
        stderr(&bad)
    );
    ok(dir, &data, &["listener", "add", "ana"]);
    let taken = cli(dir, &data, &["listener", "add", "ANA"]);
    assert!(
        stderr(&taken).contains("exists already"),
        "{}",
        stderr(&taken)
    );

    let token: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &data,
        &["listener", "token", "create", "--listener", "bob", "--json"],
    ))
    .unwrap();
    ok(dir, &data, &["listener", "rename", "bob", "robert"]);
    let tokens: serde_json::Value =
        serde_json::from_str(&ok(dir, &data, &["listener", "token", "list", "--json"])).unwrap();
    assert_eq!(tokens[0]["id"], token["id"]);
    assert_eq!(tokens[0]["listener"], "robert");
    let all = listed(dir, &data);
    let robert = listener(&all, "robert").unwrap();
    assert!(robert["events"].as_i64().unwrap() > 100, "{robert}");
    assert_eq!(robert["scrobble_tokens"], 1);
    assert_eq!(robert["imports"][0]["format"], "extended_json");

    let default = cli(dir, &data, &["listener", "remove", "default", "--yes"]);
    assert!(!default.status.success());
    assert!(
        stderr(&default).contains("default_listener"),
        "{}",
        stderr(&default)
    );

    // While `magpie serve` holds the warehouse, writing is refused and listing reads its snapshot.
    let server = Server::start(dir, &data, "serve.log");
    let busy = cli(dir, &data, &["listener", "remove", "robert", "--yes"]);
    assert!(!busy.status.success());
    assert!(
        stderr(&busy).contains("open in another process"),
        "{}",
        stderr(&busy)
    );
    assert!(listener(&listed(dir, &data), "robert").is_some());
    server.stop();

    let said = ok(dir, &data, &["listener", "remove", "robert", "--yes"]);
    assert!(said.contains("Backup of the warehouse before"), "{said}");
    let all = listed(dir, &data);
    assert!(listener(&all, "robert").is_none(), "{all:?}");
    let tokens: serde_json::Value =
        serde_json::from_str(&ok(dir, &data, &["listener", "token", "list", "--json"])).unwrap();
    assert_eq!(tokens, serde_json::json!([]));
    let events = ok(
        dir,
        &data,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) FROM raw.listen_events",
        ],
    );
    assert_eq!(events.lines().nth(1), Some("0"));
}

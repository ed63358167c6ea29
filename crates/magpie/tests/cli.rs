//! The `magpie` binary end to end: demo, import, sql, configuration errors, and a kill in the
//! middle of an import.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::{magpie, run, stdout};

/// A demo warehouse of `plays` plays over `years` in `dir/data`; that folder.
fn demo_data(dir: &Path, plays: u32, years: u32) -> String {
    let data = dir.join("data").to_string_lossy().into_owned();
    let out = run(magpie(dir).args([
        "--data-dir",
        &data,
        "demo",
        "--no-serve",
        "--plays",
        &plays.to_string(),
        "--years",
        &years.to_string(),
    ]));
    assert!(out.status.success());
    data
}

fn sql_scalar(dir: &Path, data: &str, query: &str) -> String {
    let out = run(magpie(dir).args(["--data-dir", data, "sql", "--format", "csv", query]));
    assert!(out.status.success());
    stdout(&out).lines().nth(1).unwrap_or_default().to_string()
}

#[test]
fn demo_then_sql_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(magpie(dir.path()).args([
        "demo",
        "--no-serve",
        "--plays",
        "3000",
        "--years",
        "1",
        "--end",
        "2026-03-01",
    ]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("wrote 3000 plays"), "{text}");
    assert!(text.contains("3000 imported"), "{text}");
    assert!(
        dir.path().join("demo-data/magpie.duckdb").is_file(),
        "the demo keeps to its own folder"
    );

    assert_eq!(
        sql_scalar(
            dir.path(),
            "demo-data",
            "SELECT count(*) FROM raw.listen_events"
        ),
        "3000"
    );
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        "demo-data",
        "sql",
        "--format",
        "json",
        "SELECT content_kind, count(*) AS n FROM raw.listen_events GROUP BY 1 ORDER BY 1",
    ]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: i64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 3000);
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        "demo-data",
        "sql",
        "SELECT 1 AS one, 'x' AS letter",
    ]));
    let table = stdout(&out);
    assert!(
        table.contains("one | letter") && table.contains("(1 row)"),
        "{table}"
    );

    // Read-only: no writes, no files, no settings changed.
    let out =
        run(magpie(dir.path()).args(["--data-dir", "demo-data", "sql", "DELETE FROM listeners"]));
    assert!(!out.status.success());
    for statement in [
        "SET memory_limit = '10GB'",
        "PRAGMA threads = 64",
        "SET enable_external_access = true",
        "RESET lock_configuration",
    ] {
        let out = run(magpie(dir.path()).args(["--data-dir", "demo-data", "sql", statement]));
        assert!(!out.status.success(), "{statement} was allowed");
    }
    let limit = sql_scalar(
        dir.path(),
        "demo-data",
        "SELECT current_setting('memory_limit')",
    );
    assert!(
        limit.starts_with("54") || limit.starts_with("55"),
        "36 % of the 160 MB budget: {limit}"
    );
    // CSV and JSON stream every row (nothing is cut at --max-rows).
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        "demo-data",
        "sql",
        "--format",
        "csv",
        "SELECT range AS i FROM range(100000)",
    ]));
    assert_eq!(stdout(&out).lines().count(), 100_001);
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        "demo-data",
        "sql",
        "--format",
        "json",
        "SELECT range AS i FROM range(0)",
    ]));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        "demo-data",
        "sql",
        "SELECT * FROM read_text('/etc/hostname')",
    ]));
    assert!(!out.status.success());
}

#[test]
fn demo_starts_afresh_but_never_replaces_real_data() {
    let dir = tempfile::tempdir().unwrap();
    for end in ["2026-03-01", "2026-04-15"] {
        let out = run(magpie(dir.path()).args([
            "demo",
            "--no-serve",
            "--plays",
            "1500",
            "--years",
            "1",
            "--end",
            end,
        ]));
        assert!(out.status.success());
    }
    assert_eq!(
        sql_scalar(
            dir.path(),
            "demo-data",
            "SELECT count(*) FROM raw.listen_events"
        ),
        "1500"
    );
    assert_eq!(
        sql_scalar(
            dir.path(),
            "demo-data",
            "SELECT max(ended_at)::DATE < '2026-04-17' AND min(ended_at)::DATE >= '2025-04-15' FROM raw.listen_events"
        ),
        "true"
    );

    // A warehouse with the listener's own imports is left alone.
    let export = dir.path().join("mine");
    assert!(
        run(magpie(dir.path()).args(["demo", "generate", "--plays", "100", "--out", "mine"]))
            .status
            .success()
    );
    assert!(
        run(magpie(dir.path())
            .args(["--data-dir", "real", "import"])
            .arg(&export))
        .status
        .success()
    );
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        "real",
        "demo",
        "--no-serve",
        "--plays",
        "100",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("will not replace it"));
    assert_eq!(
        sql_scalar(dir.path(), "real", "SELECT count(*) FROM raw.listen_events"),
        "100"
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(magpie(dir.path())
        .env("ENVIRONMENT", "staging")
        .args(["sql", "SELECT 1"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`environment`") && err.contains("development, testing, production"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = run(magpie(dir.path()).args(["sql", "SELECT 1"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("magpie import"),
        "{err}"
    );

    std::fs::write(
        dir.path().join(".env"),
        "SPOTIFY_CLIENT_SECRET=hunter2\nLOG_LEVEL=debug\n",
    )
    .unwrap();
    let out = run(magpie(dir.path()).env_remove("LOG_LEVEL").arg("config"));
    let shown = stdout(&out);
    assert!(shown.contains("level = \"debug\""), ".env is read: {shown}");
    assert!(!shown.contains("hunter2"), "secrets are never shown");
}

#[test]
fn killed_import_leaves_a_warehouse_that_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let plays = 80_000u64;
    common::demo_export(dir.path(), plays, 2, "export");

    // Start an import and kill it right after the first file commits: it dies mid-way through
    // the next one.
    let mut child = magpie(dir.path())
        .args(["--data-dir", "data", "import", "export"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    assert!(first.starts_with("imported"), "{first}");
    child.kill().unwrap();
    child.wait().unwrap();

    let partial: u64 = sql_scalar(dir.path(), "data", "SELECT count(*) FROM raw.listen_events")
        .parse()
        .unwrap();
    assert!(
        partial > 0 && partial < plays,
        "killed part-way: {partial} of {plays}"
    );
    let batches: u64 = sql_scalar(
        dir.path(),
        "data",
        "SELECT count(DISTINCT batch_id) FROM raw.listen_events",
    )
    .parse()
    .unwrap();
    let batch_rows: u64 = sql_scalar(
        dir.path(),
        "data",
        "SELECT sum(imported) FROM raw.import_batches WHERE status = 'completed'",
    )
    .parse()
    .unwrap();
    assert_eq!(
        batch_rows, partial,
        "every stored event belongs to a completed batch ({batches} batches)"
    );

    let out = run(magpie(dir.path()).args(["--data-dir", "data", "import", "export"]));
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("already imported"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        sql_scalar(dir.path(), "data", "SELECT count(*) FROM raw.listen_events"),
        plays.to_string()
    );
    assert_eq!(
        sql_scalar(
            dir.path(),
            "data",
            "SELECT count(*) - count(DISTINCT fingerprint) FROM raw.listen_events"
        ),
        "0"
    );
}

#[test]
fn demo_serves_the_dashboards_until_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let mut child = magpie(dir.path())
        .args([
            "demo",
            "--plays",
            "1500",
            "--years",
            "1",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    let address = loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "magpie demo ended before serving"
        );
        if let Some(rest) = line.strip_prefix("Dashboards on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    assert!(get("/health/ready").starts_with("HTTP/1.1 200"));
    let page = get("/?range=all");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<svg class=\"chart columns\""));
    // The scheduler runs in the same process: its flows are listed with their next run.
    let flows = get("/flows");
    assert!(flows.starts_with("HTTP/1.1 200"), "{flows}");
    for flow in ["spotify-ingest", "enrich", "daily-etl"] {
        assert!(flows.contains(flow), "{flow}");
    }
    assert!(get("/metrics").starts_with("HTTP/1.1 200"));
    // What the demo suggests next works while it serves: read-only commands read the snapshot
    // serve published, and say so.
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        "demo-data",
        "sql",
        "--format",
        "csv",
        "SELECT count(*) FROM marts.fact_plays",
    ]));
    assert!(out.status.success());
    let plays = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(plays.parse::<u32>().unwrap() > 1000, "{plays}");
    let note = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        note.contains("reading the snapshot") && note.contains("build 1"),
        "{note}"
    );
    for args in [&["runs"][..], &["spotify", "status"][..]] {
        let out = run(magpie(dir.path())
            .args(["--data-dir", "demo-data"])
            .args(args));
        assert!(out.status.success(), "{args:?}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "a clean exit on SIGTERM");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
    // No admin password yet: the one-time setup code was printed for the owner.
    let mut errors = String::new();
    stderr.read_to_string(&mut errors).unwrap();
    assert!(errors.contains("with the setup code "), "{errors}");
}

#[test]
fn run_executes_a_flow_once_and_runs_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = &demo_data(dir.path(), 1500, 1);
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        data,
        "run",
        "daily-etl",
        "--param",
        "reason=test",
    ]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("run 1 of daily-etl: Completed"), "{text}");
    for task in ["enrich", "build", "snapshot", "backup"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(task) && l.contains("Completed")),
            "{task}: {text}"
        );
    }
    // The snapshot is a complete warehouse that outside tools open read-only.
    let snapshot = dir.path().join("data/snapshot/magpie-readonly.duckdb");
    let conn = magpie_core::Warehouse::open_read_only(&snapshot).unwrap();
    let plays: i64 = conn
        .query_row("SELECT count(*) FROM marts.fact_plays", [], |r| r.get(0))
        .unwrap();
    assert!(plays > 1000, "{plays}");
    let backups = std::fs::read_dir(dir.path().join("data/backups"))
        .unwrap()
        .count();
    assert_eq!(backups, 1);
    let out = run(magpie(dir.path()).args(["--data-dir", data, "runs"]));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.contains("daily-etl") && l.contains("Completed") && l.contains("cli")),
        "{text}"
    );
    assert_eq!(
        sql_scalar(
            dir.path(),
            data,
            "SELECT parameters ->> 'reason' FROM meta.flow_runs WHERE run_id = 1"
        ),
        "test"
    );
    let out = run(magpie(dir.path()).args(["--data-dir", data, "run", "nosuch"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no flow `nosuch`: the flows are spotify-ingest, enrich, daily-etl")
    );
}

#[test]
fn a_run_killed_midway_is_crashed_at_the_next_start_and_the_next_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = &demo_data(dir.path(), 20000, 2);
    let mut child = magpie(dir.path())
        .env("LOG_LEVEL", "info")
        .args(["--data-dir", data, "run", "daily-etl"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the run never started"
        );
        if line.contains("flow run started") {
            break;
        }
    }
    // Into the build (enrich takes a moment, the build over a second): SIGKILL.
    std::thread::sleep(std::time::Duration::from_millis(400));
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());

    let out = run(magpie(dir.path()).args(["--data-dir", data, "run", "enrich"]));
    assert!(out.status.success(), "the next run goes on");
    let out = run(magpie(dir.path()).args(["--data-dir", data, "runs"]));
    let text = stdout(&out);
    let state_of = |run: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(run))
            .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(state_of("1"), "Crashed", "{text}");
    assert_eq!(state_of("2"), "Completed", "{text}");
    assert!(text.contains("magpie stopped during the run"), "{text}");
}

#[test]
fn logs_go_to_a_rotating_file_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let config = dir.path().join("magpie.toml");
    std::fs::write(
        &config,
        format!(
            "[models]\nproject_dir = \"{}\"\n\n[[alerts.webhooks]]\nurl = \"{dead}/hook-token-5f2a9\"\nformat = \"discord\"\n",
            dir.path().join("no-such-project").display()
        ),
    )
    .unwrap();
    let with_secrets = |cmd: &mut Command| {
        cmd.env("LOG_LEVEL", "debug")
            .env("SPOTIFY_CLIENT_ID", "client-id-123")
            .env("SPOTIFY_CLIENT_SECRET", "client-secret-7c1e")
            .env("MAGPIE_SPOTIFY__API_URL", &dead)
            .env("MAGPIE_SPOTIFY__ACCOUNTS_URL", &dead)
            .env("MAGPIE_ENRICHMENT__MUSICBRAINZ_URL", &dead)
            .env("MAGPIE_FLOWS__DAILY_ETL__RETRIES", "0")
            .args([
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ]);
    };
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        data.to_str().unwrap(),
        "demo",
        "--no-serve",
        "--plays",
        "1500",
        "--years",
        "1",
    ]));
    assert!(out.status.success());
    // Enrichment asks for an app token (refused: nothing listens) and fails its items.
    let mut cmd = magpie(dir.path());
    with_secrets(&mut cmd);
    let _ = run(cmd.args(["enrich", "--limit", "3"]));
    // A run whose build fails (no such project) alerts a webhook that does not answer.
    let mut cmd = magpie(dir.path());
    with_secrets(&mut cmd);
    let out = run(cmd.args(["run", "daily-etl"]));
    assert!(!out.status.success());
    let mut cmd = magpie(dir.path());
    with_secrets(&mut cmd);
    let shown = stdout(&run(cmd.arg("config")));
    assert!(
        !shown.contains("client-secret-7c1e") && !shown.contains("hook-token-5f2a9"),
        "{shown}"
    );
    let mut cmd = magpie(dir.path());
    cmd.args(["--data-dir", data.to_str().unwrap(), "admin", "password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"admin-password-93b1\n").unwrap();
    assert!(child.wait().unwrap().success());

    let log = std::fs::read_to_string(data.join("logs/magpie.log")).unwrap();
    assert!(log.lines().count() > 10, "{log}");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON lines"
    );
    assert!(
        log.contains("alert webhook unreachable"),
        "the failed alert is logged"
    );
    for secret in [
        "client-secret-7c1e",
        "hook-token-5f2a9",
        "admin-password-93b1",
    ] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
}

#[test]
fn backup_then_restore_into_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = &demo_data(dir.path(), 1500, 1);
    // Old backups beyond the retention are removed (7 daily by default).
    let backups = dir.path().join("data/backups");
    std::fs::create_dir_all(&backups).unwrap();
    // 40 old daily backups, 2020-01-01 to 2020-02-09.
    let first = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    for day in 0..40 {
        let date = first + chrono::Duration::days(day);
        std::fs::write(backups.join(format!("magpie-{date}.duckdb")), b"old").unwrap();
    }
    let out = run(magpie(dir.path()).args(["--data-dir", data, "backup"]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("backup "), "{text}");
    let path = text.split_whitespace().nth(1).unwrap().to_string();
    let left: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Today's and the 6 newest old ones, then the newest of 4 earlier weeks.
    assert_eq!(left.len(), 7 + 4, "{left:?}");
    assert!(
        left.contains(&"magpie-2020-02-04.duckdb".to_string()),
        "{left:?}"
    );
    assert!(
        !left.contains(&"magpie-2020-01-01.duckdb".to_string()),
        "{left:?}"
    );

    let plays = sql_scalar(dir.path(), data, "SELECT count(*) FROM marts.fact_plays");
    let restored = dir.path().join("restored");
    let restored = restored.to_str().unwrap();
    let out = run(magpie(dir.path()).args(["--data-dir", restored, "restore", &path]));
    assert!(out.status.success());
    assert_eq!(
        sql_scalar(
            dir.path(),
            restored,
            "SELECT count(*) FROM marts.fact_plays"
        ),
        plays
    );
    // Every table of the restored warehouse holds exactly the original's rows.
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "ATTACH '{}' AS original (READ_ONLY); ATTACH '{}' AS restored (READ_ONLY);",
        dir.path().join("data/magpie.duckdb").display(),
        dir.path().join("restored/magpie.duckdb").display()
    ))
    .unwrap();
    let tables: Vec<String> = conn
        .prepare(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = 'original' ORDER BY 1",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.len() > 30, "{tables:?}");
    for table in &tables {
        let differing: i64 = conn
            .query_row(
                &format!(
                    "SELECT (SELECT count(*) FROM (SELECT * FROM original.{table} EXCEPT ALL SELECT * FROM restored.{table}))
                          + (SELECT count(*) FROM (SELECT * FROM restored.{table} EXCEPT ALL SELECT * FROM original.{table}))"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(differing, 0, "{table}");
    }
    // Never over an existing warehouse; never from a file that is not one.
    let out = run(magpie(dir.path()).args(["--data-dir", restored, "restore", &path]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("restore into an empty data folder"));
    let bogus = backups.join("magpie-2020-02-09.duckdb");
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        dir.path().join("other").to_str().unwrap(),
        "restore",
        bogus.to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    assert!(
        !dir.path().join("other/magpie.duckdb").exists(),
        "nothing half-written"
    );
}

#[test]
fn a_model_out_of_memory_says_to_raise_the_budget_and_doctor_repeats_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = &demo_data(dir.path(), 1500, 1);
    // A model whose one group (a list of 2,000,000 strings, ~120 MB) cannot spill: more than
    // DuckDB's 48 MB at the smallest budget, on two threads or one.
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("models")).unwrap();
    std::fs::write(
        project.join("dbt_project.yml"),
        "name: greedy\nversion: \"1\"\n",
    )
    .unwrap();
    std::fs::write(
        project.join("models/greedy.sql"),
        "{{ config(materialized='table') }}\nselect list(range::varchar || repeat('x', 50)) as l from range(2000000)",
    )
    .unwrap();
    let out = magpie(dir.path())
        .env("MAGPIE_MEMORY_BUDGET", "64MB")
        .env("MAGPIE_MODELS__PROJECT_DIR", &project)
        .args(["--data-dir", data, "build"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("ERROR    model (table)        greedy"),
        "{text}"
    );
    assert!(
        text.contains("raise `memory_budget` in magpie.toml"),
        "{text}"
    );
    assert!(!text.contains("SET threads"), "{text}");

    let out = run(magpie(dir.path())
        .env("MAGPIE_MEMORY_BUDGET", "64MB")
        .args(["--data-dir", data, "doctor", "--offline"]));
    assert!(
        stdout(&out).contains(
            "warn  marts          the last build ran out of memory in greedy: raise `memory_budget` (now 61.0 MiB"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn doctor_checks_the_box_and_fails_on_loose_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = run(magpie(dir.path()).args(["--data-dir", data, "doctor", "--offline"]));
    assert!(out.status.success(), "nothing imported yet is no failure");
    assert!(
        stdout(&out).contains("warn  warehouse      no warehouse"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("ok    market         the Deribit collector is off"),
        "{}",
        stdout(&out)
    );

    let out = run(magpie(dir.path()).args([
        "--data-dir",
        data,
        "demo",
        "--no-serve",
        "--plays",
        "1500",
        "--years",
        "1",
    ]));
    assert!(out.status.success());
    let mut child = magpie(dir.path())
        .args(["--data-dir", data, "admin", "password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"a long admin secret\n").unwrap();
    assert!(child.wait().unwrap().success());
    // Online checks against local stand-ins: one answers, the other is not there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(1) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = run(magpie(dir.path())
        .env("MAGPIE_SPOTIFY__API_URL", &up)
        .env("MAGPIE_ENRICHMENT__MUSICBRAINZ_URL", &down)
        .args(["--data-dir", data, "doctor"]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok    spotify        Spotify's Web API answers from here (HTTP 401)"),
        "{text}"
    );
    assert!(
        text.contains("warn  musicbrainz    MusicBrainz cannot be reached from here"),
        "{text}"
    );
    for line in [
        "ok    data folder",
        "ok    secrets",
        "ok    warehouse",
        "ok    marts",
        "warn  musicbrainz",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secrets = dir.path().join("data/secrets");
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = run(magpie(dir.path()).args(["--data-dir", data, "doctor", "--offline"]));
        assert!(!out.status.success());
        assert!(
            stdout(&out).contains("FAIL  secrets        readable by others"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn sigterm_during_a_build_leaves_whole_marts_and_a_warehouse_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = &demo_data(dir.path(), 20000, 2);
    let before = sql_scalar(dir.path(), data, "SELECT count(*) FROM marts.fact_plays");
    // New plays, so the next build would change the marts.
    let export = dir.path().join("more");
    let out = run(magpie(dir.path()).args([
        "demo",
        "generate",
        "--plays",
        "3000",
        "--years",
        "1",
        "--seed",
        "7",
        "--end",
        "2020-06-30",
        "--out",
        export.to_str().unwrap(),
    ]));
    assert!(out.status.success());
    let out =
        run(magpie(dir.path()).args(["--data-dir", data, "import", export.to_str().unwrap()]));
    assert!(out.status.success());

    let mut child = magpie(dir.path())
        .args(["--data-dir", data, "build"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once the first models are done, stop it.
    let mut stdout_lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout_lines.read_line(&mut line).unwrap() > 0,
            "the build ended before int_plays"
        );
        if line.contains("int_plays") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait();

    // The warehouse opens; fact_plays is whole: the old one or the new one, never a part.
    let after = sql_scalar(dir.path(), data, "SELECT count(*) FROM marts.fact_plays");
    let events = sql_scalar(
        dir.path(),
        data,
        "SELECT count(*) FROM raw.listen_events WHERE duplicate_of IS NULL AND content_kind = 'track'",
    );
    assert!(
        after == before || after.parse::<i64>().unwrap() > before.parse::<i64>().unwrap(),
        "{before} -> {after}"
    );
    assert!(after.parse::<i64>().unwrap() <= events.parse::<i64>().unwrap());
    // And the next build completes with every data test passing.
    let out = run(magpie(dir.path()).args(["--data-dir", data, "build"]));
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        sql_scalar(dir.path(), data, "SELECT count(*) FROM marts.fact_plays")
            .parse::<i64>()
            .unwrap()
            > before.parse::<i64>().unwrap()
    );
}

/// `magpie health` (the image's health check, which has no curl): 0 when /health answers 200,
/// non-zero when it answers otherwise or nothing listens.
#[test]
fn health_exits_zero_only_when_health_answers_200() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    // One-request servers answering `status`.
    let serve_once = |status: &'static str| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).unwrap();
            assert!(String::from_utf8_lossy(&request[..n]).starts_with("GET /health "));
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            )
            .unwrap();
        });
        (url, server)
    };
    let (url, server) = serve_once("200 OK");
    let out = run(magpie(dir.path()).args(["--data-dir", data, "health", "--url", &url]));
    server.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (url, server) = serve_once("503 Service Unavailable");
    let out = run(magpie(dir.path()).args(["--data-dir", data, "health", "--url", &url]));
    server.join().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 503"));

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", closed.local_addr().unwrap());
    drop(closed);
    let out = run(magpie(dir.path()).args(["--data-dir", data, "health", "--url", &url]));
    assert!(!out.status.success());
}

#[test]
fn listener_filters_hide_plays_from_the_next_build_and_errors_name_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let data = demo_data(dir.path(), 3_000, 1);
    let filter = |args: &[&str]| {
        let mut cmd = magpie(dir.path());
        cmd.args(["--data-dir", &data, "listener", "filter"])
            .args(args);
        cmd.output().expect("magpie runs")
    };
    let plays = || sql_scalar(dir.path(), &data, "SELECT count(*) FROM marts.fact_plays");
    let raw = || sql_scalar(dir.path(), &data, "SELECT count(*) FROM raw.listen_events");
    let (all, events) = (plays(), raw());
    let artist = sql_scalar(
        dir.path(),
        &data,
        "SELECT artist_name FROM marts.dim_artist ORDER BY play_count DESC, artist_id LIMIT 1",
    );
    let of_artist: i64 = sql_scalar(
        dir.path(),
        &data,
        &format!(
            "SELECT count(*) FROM marts.fact_plays JOIN marts.dim_artist USING (artist_id) WHERE artist_name = '{}'",
            artist.replace('\'', "''")
        ),
    )
    .parse()
    .unwrap();
    assert!(of_artist > 0);

    // Errors name the option that is wrong, and write nothing.
    for (args, option) in [
        (
            vec!["add", "--listener", "nobody", "--artist", "X"],
            "--listener: no listener named \"nobody\" (the listeners: default)",
        ),
        (
            vec!["add", "--listener", "default", "--album", "  "],
            "--album: a name is needed",
        ),
        (
            vec!["remove", "--listener", "default", "--genre", "polka"],
            "--genre: default has no genre filter \"polka\"",
        ),
    ] {
        let out = filter(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = common::stderr(&out);
        assert!(err.contains(option), "{args:?}: {err}");
    }
    let out = filter(&["add", "--listener", "default"]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("--artist"));

    // Added (in another case than shown), listed, applied by the next build.
    let out = run(&mut {
        let mut c = magpie(dir.path());
        c.args([
            "--data-dir",
            &data,
            "listener",
            "filter",
            "add",
            "--listener",
            "default",
        ])
        .args(["--artist", &artist.to_uppercase()]);
        c
    });
    assert!(out.status.success());
    let out = filter(&["add", "--listener", "default", "--artist", &artist]);
    assert!(
        common::stderr(&out).contains("--artist: default already hides"),
        "{}",
        common::stderr(&out)
    );
    let out = run(&mut {
        let mut c = magpie(dir.path());
        c.args(["--data-dir", &data, "listener", "filter", "list", "--json"]);
        c
    });
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["kind"], "artist");
    assert_eq!(listed[0]["listener"], "default");
    assert_eq!(plays(), all, "not before the next build");
    assert!(
        run(magpie(dir.path()).args(["--data-dir", &data, "build"]))
            .status
            .success()
    );
    let all_n: i64 = all.parse().unwrap();
    assert_eq!(plays(), (all_n - of_artist).to_string());
    assert_eq!(raw(), events, "no event deleted");

    // While `magpie serve` holds the warehouse, adding or removing refuses, as an import does,
    // and changes nothing.
    let server = common::Server::start(dir.path(), &data, "serve.log");
    let out = filter(&["remove", "--listener", "default", "--artist", &artist]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("open in another process"), "{err}");
    server.stop();

    // Removed: the plays count again from the next build.
    let out = filter(&[
        "remove",
        "--listener",
        "default",
        "--artist",
        &artist.to_lowercase(),
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        run(magpie(dir.path()).args(["--data-dir", &data, "build"]))
            .status
            .success()
    );
    assert_eq!(plays(), all);
}

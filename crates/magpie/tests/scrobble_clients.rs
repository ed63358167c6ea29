//! magpie's ListenBrainz-compatible (`/1/`) and Last.fm-compatible (`/2.0/`) submission APIs,
//! driven against a real `magpie serve` on 127.0.0.1:0 by client libraries not written here:
//! the PyPI packages liblistenbrainz and pylast, through `tests/clients/scrobble_clients.py`
//! (issue 26). The script says what it submitted; the warehouse must hold exactly that: nothing
//! from the rejected requests or now-playing notices, nothing twice from retries, a play also
//! imported from a Spotify export counted once, and after `kill -9` in the middle of 1,000-listen
//! imports only whole requests.
//!
//! Without python3 and the packages these tests print SKIPPED, unless `REQUIRE_SCROBBLE_CLIENTS`
//! is set (`.ci/run` sets it and installs them).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Server, magpie, run};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/scrobble_clients.py")
}

/// Whether python3 with liblistenbrainz and pylast is here; when not, a printed reason and
/// false, or a failure when `REQUIRE_SCROBBLE_CLIENTS` is set.
fn clients_available() -> bool {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import liblistenbrainz, pylast, httpx2, requests; print(pylast.__version__)",
        ])
        .output();
    let reason = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "python3 cannot import liblistenbrainz/pylast: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("no python3: {e}"),
    };
    assert!(
        std::env::var_os("REQUIRE_SCROBBLE_CLIENTS").is_none(),
        "REQUIRE_SCROBBLE_CLIENTS is set but {reason} (pip install pylast liblistenbrainz)"
    );
    eprintln!("SKIPPED: {reason} (pip install pylast liblistenbrainz)");
    false
}

/// `magpie listener token create --listener NAME --json`, parsed, and kept in `dir/token.json`
/// for the script.
fn create_token(dir: &Path, data: &str, listener: &str) -> Value {
    let out = run(magpie(dir).args([
        "--data-dir",
        data,
        "listener",
        "token",
        "create",
        "--listener",
        listener,
        "--json",
    ]));
    assert!(out.status.success(), "token create");
    let token: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "token create --json prints one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    for key in [
        "id",
        "listener",
        "token",
        "listenbrainz_url",
        "lastfm_url",
        "lastfm_api_key",
        "lastfm_api_secret",
    ] {
        assert!(token[key].is_string(), "{key} in {token}");
    }
    assert_eq!(token["listener"], listener);
    std::fs::write(dir.join("token.json"), &out.stdout).unwrap();
    token
}

/// A Spotify extended-history record: a play of `ms` ending at `end` (RFC 3339).
fn spotify_play(artist: &str, track: &str, album: &str, end: &str, ms: i64) -> Value {
    json!({
        "ts": end, "platform": "linux", "ms_played": ms, "conn_country": "GB",
        "master_metadata_track_name": track, "master_metadata_album_artist_name": artist,
        "master_metadata_album_album_name": album,
        "spotify_track_uri": format!("spotify:track:{}", track.replace(' ', "")),
        "episode_name": null, "episode_show_name": null, "spotify_episode_uri": null,
        "reason_start": "trackdone", "reason_end": "trackdone", "shuffle": false,
        "skipped": false, "offline": false, "offline_timestamp": null, "incognito_mode": false
    })
}

fn import(dir: &Path, data: &str, listener: &str, path: &Path) {
    let out = run(magpie(dir).args([
        "--data-dir",
        data,
        "import",
        path.to_str().unwrap(),
        "--listener",
        listener,
    ]));
    assert!(out.status.success(), "import {}", path.display());
}

fn build(dir: &Path, data: &str) {
    let out = run(magpie(dir).args(["--data-dir", data, "build"]));
    assert!(out.status.success(), "magpie build");
}

fn warehouse(dir: &Path, data: &str) -> duckdb::Connection {
    magpie_core::Warehouse::open_read_only(dir.join(data).join("magpie.duckdb")).unwrap()
}

fn rows(conn: &duckdb::Connection, sql: &str) -> Vec<Vec<String>> {
    use duckdb::types::Value as V;
    let mut stmt = conn.prepare(sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let mut values = Vec::new();
        for i in 0.. {
            let Ok(value) = row.get::<_, V>(i) else { break };
            values.push(match value {
                V::Null => "NULL".to_string(),
                V::Text(s) => s,
                V::Boolean(b) => b.to_string(),
                V::Int(n) => n.to_string(),
                V::BigInt(n) => n.to_string(),
                V::HugeInt(n) => n.to_string(),
                V::UBigInt(n) => n.to_string(),
                other => format!("{other:?}"),
            });
        }
        out.push(values);
    }
    out
}

fn scalar(conn: &duckdb::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Plays (artist, track, album, end of play, ms played, via) in the Spotify export that a client
/// also submits: "before" ones are imported before the submission, "after" ones after it.
const CROSS: &[(&str, &str, &str, &str, i64, &str, &str)] = &[
    (
        "Cross Artist",
        "Cross Before LB",
        "Cross Album",
        "2024-07-01T10:03:20Z",
        200_000,
        "listenbrainz",
        "before",
    ),
    (
        "Cross Artist",
        "Cross Before LFM",
        "Cross Album",
        "2024-07-01T11:03:20Z",
        200_000,
        "lastfm",
        "before",
    ),
    (
        "Cross Artist",
        "Cross After LB",
        "Cross Album",
        "2024-07-01T12:03:20Z",
        200_000,
        "listenbrainz",
        "after",
    ),
    (
        "Cross Artist",
        "Cross After LFM",
        "Cross Album",
        "2024-07-01T13:03:20Z",
        200_000,
        "lastfm",
        "after",
    ),
];

#[test]
fn real_clients_submit_and_the_warehouse_holds_exactly_what_they_sent() {
    if !clients_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = "data";
    let listener = "alice";

    // The Spotify export: the cross plays, split by when they are imported, and one play only
    // Spotify knows.
    let mut before = vec![spotify_play(
        "Cross Artist",
        "Spotify Only",
        "Cross Album",
        "2024-07-01T14:03:20Z",
        200_000,
    )];
    let mut after = Vec::new();
    let mut cross = Vec::new();
    for &(artist, track, album, end, ms, via, when) in CROSS {
        let play = spotify_play(artist, track, album, end, ms);
        if when == "before" {
            before.push(play);
        } else {
            after.push(play);
        }
        let end: chrono::DateTime<chrono::Utc> = end.parse().unwrap();
        // A scrobble carries the START of the play.
        let start = end.timestamp() - ms / 1000;
        cross.push(
            json!({"via": via, "artist": artist, "track": track, "album": album,
                          "listened_at": start, "duration_s": ms / 1000}),
        );
    }
    for (folder, plays) in [("export-before", &before), ("export-after", &after)] {
        std::fs::create_dir(root.join(folder)).unwrap();
        std::fs::write(
            root.join(folder).join("Streaming_History_Audio_2024.json"),
            serde_json::to_vec(plays).unwrap(),
        )
        .unwrap();
    }
    import(root, data, listener, &root.join("export-before"));
    std::fs::write(root.join("cross.json"), serde_json::to_vec(&cross).unwrap()).unwrap();

    let token = create_token(root, data, listener);
    let out = run(magpie(root).args([
        "--data-dir",
        data,
        "listener",
        "token",
        "list",
        "--listener",
        listener,
    ]));
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    let id = token["id"].as_str().unwrap();
    let secret = token["token"].as_str().unwrap();
    assert!(listed.contains(id), "{listed}");
    assert!(!listed.contains(secret), "a token is shown once: {listed}");

    let server = Server::start(root, data, "serve.log");
    let started = Instant::now();
    let py = Command::new("python3")
        .arg(script())
        .args(["clients", "--base-url", &server.url()])
        .arg("--token-json")
        .arg(root.join("token.json"))
        .arg("--cross")
        .arg(root.join("cross.json"))
        .output()
        .unwrap();
    let progress = String::from_utf8_lossy(&py.stderr);
    eprintln!(
        "scrobble_clients.py ({:.1} s):\n{progress}",
        started.elapsed().as_secs_f64()
    );
    let summary: Value = serde_json::from_slice(&py.stdout).unwrap_or_else(|e| {
        panic!(
            "the script prints its summary ({e}); stdout: {}\nserver log:\n{}",
            String::from_utf8_lossy(&py.stdout),
            server.log_text()
        )
    });
    // Every check failure is collected, the script's and this test's, and reported at the end.
    let mut failures: Vec<String> = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("client: {}", f.as_str().unwrap()))
        .collect();
    let mut check = |ok: bool, what: String| {
        if !ok {
            eprintln!("FAIL  {what}");
            failures.push(what);
        }
    };

    // A revoked token stops working at once, without a restart.
    let out = run(magpie(root).args(["--data-dir", data, "listener", "token", "revoke", id]));
    check(out.status.success(), "token revoke while serving".into());
    let auth = format!("Authorization: Token {secret}\r\n");
    let (status, body) = server.request("GET", "/1/validate-token", &auth, "");
    check(
        (status == 200 && body.contains("\"valid\":false")) || status == 401,
        format!("a revoked token is no longer valid: {status} {body}"),
    );
    let late = json!({"listen_type": "single", "payload": [{"listened_at": 1717243200 + 5,
        "track_metadata": {"artist_name": "Magpie Test Artist", "track_name": "REJECT revoked"}}]});
    let (status, body) = server.request("POST", "/1/submit-listens", &auth, &late.to_string());
    check(
        status == 401 && body.contains("\"code\":401"),
        format!("a revoked token cannot submit: {status} {body}"),
    );
    let server_log = server.log_text();
    server.stop();

    // The plays exported after the submissions, then the models.
    import(root, data, listener, &root.join("export-after"));
    build(root, data);
    let conn = warehouse(root, data);

    // raw.listen_events holds exactly the submitted listens: each once, at the play's start.
    let expected: BTreeSet<(String, String, String, i64)> = summary["expected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source_kind"].as_str().unwrap().to_string(),
                e["artist"].as_str().unwrap().to_string(),
                e["track"].as_str().unwrap().to_string(),
                e["listened_at"].as_i64().unwrap(),
            )
        })
        .collect();
    let stored_rows = rows(
        &conn,
        "SELECT source_kind, artist_name, track_name, CAST(epoch(started_at) AS BIGINT)
         FROM raw.listen_events WHERE source_kind IN ('listenbrainz_api', 'lastfm_api')
         ORDER BY 4, 3",
    );
    let stored: BTreeSet<(String, String, String, i64)> = stored_rows
        .iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].clone(),
                r[2].clone(),
                r[3].parse().unwrap_or(-1),
            )
        })
        .collect();
    check(
        stored_rows.len() == stored.len(),
        format!(
            "no submitted listen is stored twice (retries add nothing): {} rows, {} distinct",
            stored_rows.len(),
            stored.len()
        ),
    );
    let missing: Vec<_> = expected.difference(&stored).take(5).collect();
    let extra: Vec<_> = stored.difference(&expected).take(5).collect();
    check(
        missing.is_empty() && extra.is_empty(),
        format!(
            "raw.listen_events holds exactly the {} submitted listens ({} stored): missing {missing:?}, unexpected {extra:?}",
            expected.len(),
            stored.len()
        ),
    );
    check(
        expected.len() == summary["expected_count"].as_u64().unwrap() as usize,
        "the script's expected listens are distinct".into(),
    );

    // Nothing of the rejected requests, nothing of the now-playing notices.
    let never: Vec<String> = summary["never_stored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().replace('\'', "''"))
        .collect();
    let leaked = rows(
        &conn,
        &format!(
            "SELECT source_kind, track_name FROM raw.listen_events
             WHERE track_name LIKE 'REJECT%' OR track_name IN ('{}') LIMIT 10",
            never.join("', '")
        ),
    );
    check(
        leaked.is_empty(),
        format!("nothing from rejected requests or now playing is stored: {leaked:?}"),
    );
    let batches = rows(
        &conn,
        "SELECT status, count(*) FROM raw.import_batches GROUP BY 1 ORDER BY 1",
    );
    eprintln!("import batches by status: {batches:?}");

    // Provenance and what a submission carries.
    let single = rows(
        &conn,
        "SELECT album_name, track_mbid, artist_mbid, album_mbid, spotify_track_uri
         FROM raw.listen_events WHERE track_name = 'LB Single'",
    );
    check(
        single
            == vec![vec![
                "Magpie Test Album".to_string(),
                "5d4ce5a4-1c06-4b5d-8d31-7a9b3b0a7a11".into(),
                "b10bbbfc-cf9e-42e0-be17-e2c3e1d2600d".into(),
                "0c3a1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4".into(),
                "spotify:track:4uLU6hMCjMI75M1A2tKUQC".into(),
            ]],
        format!(
            "the single listen keeps its album, MBIDs and Spotify id (album, track/artist/album MBID, URI): {single:?}"
        ),
    );
    let lfm = rows(
        &conn,
        "SELECT album_name, track_mbid FROM raw.listen_events WHERE track_name = 'LFM Single'",
    );
    check(
        lfm == vec![vec![
            "Magpie Test Album".to_string(),
            "9f1d8a7c-6b5e-4d3c-8b2a-1f0e9d8c7b6a".into(),
        ]],
        format!("the Last.fm scrobble keeps its album and mbid: {lfm:?}"),
    );

    // fact_plays: every submitted listen is one play, and a play also in the Spotify export is
    // one play whichever came first.
    let api_plays = scalar(
        &conn,
        "SELECT count(*) FROM marts.fact_plays f JOIN raw.listen_events e USING (event_id)
         WHERE e.source_kind IN ('listenbrainz_api', 'lastfm_api')
           AND e.track_name NOT LIKE 'Cross %'",
    );
    let cross_count = CROSS.len() as i64;
    check(
        api_plays == expected.len() as i64 - cross_count,
        format!(
            "fact_plays counts each submitted listen (besides the cross ones) as one play: {api_plays}, expected {}",
            expected.len() as i64 - cross_count
        ),
    );
    for &(_, track, ..) in CROSS {
        let n = scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM marts.fact_plays f JOIN raw.listen_events e USING (event_id)
                 WHERE e.track_name = '{track}'"
            ),
        );
        let raw = rows(
            &conn,
            &format!(
                "SELECT source_kind, duplicate_of IS NOT NULL FROM raw.listen_events
                 WHERE track_name = '{track}' ORDER BY event_id"
            ),
        );
        check(
            n == 1,
            format!("{track}: one play in fact_plays, not {n} (raw: {raw:?})"),
        );
    }
    let total = scalar(
        &conn,
        "SELECT count(*) FROM marts.fact_plays f JOIN listeners l USING (listener_id)
         WHERE l.name = 'alice'",
    );
    // The submitted listens (the cross ones among them) and the one play only Spotify has.
    check(
        total == expected.len() as i64 + 1,
        format!(
            "alice has {total} plays: the {} submitted ones (each cross play once) and one Spotify-only",
            expected.len()
        ),
    );

    for note in summary["notes"].as_array().unwrap() {
        eprintln!("note: {}", note.as_str().unwrap());
    }
    for seen in summary["errors_seen"].as_array().unwrap() {
        eprintln!(
            "error answer ({} / {}): {}",
            seen["api"].as_str().unwrap(),
            seen["case"].as_str().unwrap(),
            seen["seen"].as_str().unwrap()
        );
    }
    if !failures.is_empty() {
        eprintln!("server log:\n{server_log}");
    }
    assert!(
        failures.is_empty() && py.status.success(),
        "{} failed checks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Reads the flood script's lines ("sending B" / "acked B" / "stopped B: ...") on a thread.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<(Instant, String)> {
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The flood script: 1,000-listen imports numbered from `first`, `batches` of them or until
/// the server is gone.
fn flood(root: &Path, url: &str, first: i64, batches: Option<i64>) -> Child {
    let mut cmd = Command::new("python3");
    cmd.arg(script())
        .args(["flood", "--base-url", url, "--batch", "1000"])
        .args(["--first", &first.to_string()])
        .arg("--token-json")
        .arg(root.join("token.json"))
        .stdout(Stdio::piped());
    if let Some(n) = batches {
        cmd.args(["--batches", &n.to_string()]);
    }
    cmd.spawn().unwrap()
}

/// Batch number → stored rows, for the flood's listens.
fn flood_batches(conn: &duckdb::Connection) -> Vec<(i64, i64)> {
    rows(
        conn,
        "SELECT CAST(split_part(track_name, ' ', 2) AS BIGINT) AS b, count(*)
         FROM raw.listen_events WHERE track_name LIKE 'flood %' AND source_kind = 'listenbrainz_api'
         GROUP BY 1 ORDER BY 1",
    )
    .iter()
    .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
    .collect()
}

#[test]
fn kill_9_during_large_import_submissions_leaves_only_whole_requests() {
    if !clients_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = "data";
    create_token(root, data, "bob");

    // Rounds: a server, 1,000-listen imports, and SIGKILL at another point of a request each
    // time (a fraction of the time one takes), so that some kill lands inside the commit.
    let mut acked = BTreeSet::new();
    let mut in_flight = BTreeSet::new();
    let mut next = 0i64;
    for (round, fraction) in [0.1, 0.3, 0.5, 0.7, 0.85, 0.95].into_iter().enumerate() {
        let server = Server::start(root, data, &format!("serve{round}.log"));
        let mut client = flood(root, &server.url(), next, None);
        let lines = lines_of(&mut client);
        let mut acks = Vec::new();
        while acks.len() < 3 {
            let (at, line) = lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("no answer to the imports:\n{}", server.log_text()));
            if let Some(b) = line.strip_prefix("acked ") {
                acked.insert(b.parse::<i64>().unwrap());
                acks.push(at);
            } else {
                let b = line
                    .strip_prefix("sending ")
                    .unwrap_or_else(|| panic!("{line}\nserver log:\n{}", server.log_text()));
                in_flight.insert(b.parse::<i64>().unwrap());
            }
        }
        let per_request = (acks[2] - acks[1]).max(acks[1] - acks[0]);
        let wait = per_request.mul_f64(fraction);
        std::thread::sleep(wait);
        let Server { mut child, .. } = server;
        child.kill().unwrap();
        child.wait().unwrap();
        for (_, line) in lines.iter() {
            if let Some(b) = line.strip_prefix("acked ") {
                acked.insert(b.parse::<i64>().unwrap());
            } else if let Some(b) = line.strip_prefix("sending ") {
                in_flight.insert(b.parse::<i64>().unwrap());
            } else {
                eprintln!("round {round}: {line}");
            }
        }
        client.wait().unwrap();
        in_flight.retain(|b| !acked.contains(b));
        eprintln!(
            "round {round}: requests take about {} ms; killed {} ms after an answer",
            per_request.as_millis(),
            wait.as_millis()
        );
        // The next round's numbers start after everything sent so far.
        next = acked.iter().chain(&in_flight).max().unwrap() + 1;
    }

    // After the crashes: the warehouse opens (the build replays its log), and holds whole
    // requests only: every acknowledged one, and of the ones in flight some or none.
    build(root, data);
    let conn = warehouse(root, data);
    let stored = flood_batches(&conn);
    let total: i64 = stored.iter().map(|b| b.1).sum();
    let numbers: BTreeSet<i64> = stored.iter().map(|b| b.0).collect();
    let unacked: Vec<&i64> = numbers.difference(&acked).collect();
    eprintln!(
        "stored after kill -9: {total} listens in {} requests; {} acknowledged; in flight at a kill: {in_flight:?}, of which stored: {unacked:?}",
        stored.len(),
        acked.len()
    );
    assert_eq!(
        total % 1000,
        0,
        "a multiple of the request size: {stored:?}"
    );
    assert!(
        stored.iter().all(|&(_, n)| n == 1000),
        "every stored request is complete: {stored:?}"
    );
    assert!(
        acked.is_subset(&numbers),
        "every acknowledged request is stored: {:?} missing",
        acked.difference(&numbers).collect::<Vec<_>>()
    );
    assert!(
        unacked.iter().all(|b| in_flight.contains(b)),
        "besides the acknowledged requests only ones in flight at a kill: {unacked:?}"
    );
    drop(conn);

    // The client sends everything again after a restart: nothing is stored twice.
    let server = Server::start(root, data, "serve-again.log");
    let mut client = flood(root, &server.url(), 0, Some(next));
    let mut out = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(client.wait().unwrap().success());
    assert_eq!(
        out.lines().filter(|l| l.starts_with("acked ")).count() as i64,
        next,
        "{out}\nserver log:\n{}",
        server.log_text()
    );
    server.stop();
    build(root, data);
    let conn = warehouse(root, data);
    let stored = flood_batches(&conn);
    assert_eq!(stored.len() as i64, next, "{stored:?}");
    assert!(
        stored.iter().all(|&(_, n)| n == 1000),
        "resent requests add nothing: {stored:?}"
    );
}

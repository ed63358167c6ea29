//! Random kills (issue 27): each command that writes is started, killed with SIGKILL after a
//! random delay spread over the time an uninterrupted run takes, and then the warehouse must
//! open with its schema version intact, the same command run again must complete, and the
//! counts must equal those of the uninterrupted run: no play lost or doubled; for the market
//! collector every Parquet file readable and no row in two files.
//!
//! `KILL_ROUNDS` (default 2, CI's share) sets the kills per command, `KILL_SEED` replays a run
//! (the seed is printed). Each test prints `kills: COMMAND survived K/N (L lost, D doubled)`;
//! `scripts/kill-harness.sh ROUNDS` runs many rounds and collects those lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;

use common::{Server, copy_dir, magpie, mart_rows as marts, run, stderr, stdout};

/// Kills per command: `KILL_ROUNDS`, or 2.
fn rounds() -> usize {
    std::env::var("KILL_ROUNDS")
        .ok()
        .map(|n| n.parse().expect("KILL_ROUNDS is a number"))
        .unwrap_or(2)
}

/// A small seeded generator (SplitMix64): the kill moments of a run can be replayed.
struct Rng(u64);

impl Rng {
    /// Seeded from `KILL_SEED` or the clock; the seed is printed.
    fn new(command: &str) -> Rng {
        let seed = std::env::var("KILL_SEED")
            .ok()
            .map(|s| s.parse().expect("KILL_SEED is a number"))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("kills: {command} seed {seed} (KILL_SEED={seed} replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay in [0, span).
    fn delay(&mut self, span: Duration) -> Duration {
        let micros = span.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % micros)
    }
}

/// The rounds of one command: what survived, how many rows were lost or doubled, and how
/// many kills found the command still at work.
struct Kills {
    command: &'static str,
    rng: Rng,
    survived: usize,
    lost: i64,
    doubled: i64,
    mid_run: usize,
    failures: Vec<String>,
}

/// One round's kill.
struct Round<'a> {
    rng: &'a mut Rng,
    /// The kill found the command still at work.
    mid_run: bool,
}

impl Round<'_> {
    /// Start `cmd` (its output discarded) and [`Round::kill`] it.
    fn interrupt(&mut self, cmd: &mut Command, span: Duration) {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.kill(&mut child, span);
    }

    /// Send SIGKILL after a random delay in [0, `span`) (unless the command ended first) and
    /// reap it.
    fn kill(&mut self, child: &mut Child, span: Duration) {
        std::thread::sleep(self.rng.delay(span));
        self.mid_run = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Kills {
    fn new(command: &'static str) -> Kills {
        Kills {
            command,
            rng: Rng::new(command),
            survived: 0,
            lost: 0,
            doubled: 0,
            mid_run: 0,
            failures: Vec::new(),
        }
    }

    /// Round `n`: `round` kills and checks in the data folder `root/roundN` it is given,
    /// returning (lost, doubled) against the reference, or what went wrong. The folder of a
    /// round that survived is removed (many rounds would fill the disk).
    fn round(
        &mut self,
        n: usize,
        root: &Path,
        round: impl FnOnce(&mut Round, String) -> Result<(i64, i64), String>,
    ) {
        let mut kill = Round {
            rng: &mut self.rng,
            mid_run: false,
        };
        let data = format!("round{n}");
        let outcome = round(&mut kill, data.clone());
        self.mid_run += usize::from(kill.mid_run);
        match outcome {
            Ok((0, 0)) => {
                self.survived += 1;
                std::fs::remove_dir_all(root.join(data)).unwrap();
            }
            Ok((lost, doubled)) => {
                self.lost += lost;
                self.doubled += doubled;
                self.failures
                    .push(format!("round {n}: {lost} lost, {doubled} doubled"));
            }
            Err(e) => self.failures.push(format!("round {n}: {e}")),
        }
    }

    /// Print the figures, then fail if any round did not survive.
    fn finish(self) {
        let total = rounds();
        println!(
            "kills: {} survived {}/{total} ({} lost, {} doubled; {} of the kills landed mid-run)",
            self.command, self.survived, self.lost, self.doubled, self.mid_run
        );
        assert!(
            self.failures.is_empty() && self.survived == total,
            "{}:\n{}",
            self.command,
            self.failures.join("\n")
        );
    }
}

/// `magpie sql` in `data` (the read-only path every reader takes): the rows as CSV lines.
fn sql(dir: &Path, options: &[&str], query: &str) -> Result<Vec<String>, String> {
    let out = magpie(dir)
        .args(options)
        .args(["sql", "--format", "csv", query])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!("`magpie sql {query}` failed: {}", stderr(&out)));
    }
    Ok(stdout(&out).lines().skip(1).map(str::to_string).collect())
}

/// After a kill: the warehouse opens for `magpie sql`, and its schema is at a version this
/// magpie knows with every migration up to it recorded once (each migration is a transaction
/// of its own, so a kill during the first open may leave an older version, which the next
/// writer brings up to date). The version.
fn opens_with_its_schema(dir: &Path, options: &[&str]) -> Result<i64, String> {
    let latest = magpie_core::warehouse::MIGRATIONS.last().unwrap().version;
    let data = options
        .iter()
        .position(|o| *o == "--data-dir")
        .map(|i| dir.join(options[i + 1]))
        .expect("--data-dir");
    let warehouse_files = std::fs::read_dir(&data)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("magpie.duckdb"))
                .count()
        })
        .unwrap_or(0);
    if warehouse_files == 0 {
        // Killed before the warehouse was created: there is nothing to open yet.
        return Ok(0);
    }
    let table = sql(
        dir,
        options,
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'schema_migrations'",
    )?;
    if table == ["0"] {
        // Killed before the first migration began: the next writer starts from scratch.
        return Ok(0);
    }
    let got = sql(
        dir,
        options,
        "SELECT coalesce(max(version), 0), count(*), count(DISTINCT version), coalesce(min(version), 1)
         FROM schema_migrations",
    )?;
    let figures: Vec<i64> = got
        .first()
        .map(|l| l.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    match figures[..] {
        [version, count, distinct, 1]
            if version == count && count == distinct && version <= latest =>
        {
            Ok(version)
        }
        _ => Err(format!("schema_migrations holds {got:?}")),
    }
}

/// After the rerun: the schema is the newest.
fn schema_is_latest(dir: &Path, options: &[&str]) -> Result<(), String> {
    let latest = magpie_core::warehouse::MIGRATIONS.last().unwrap().version;
    match opens_with_its_schema(dir, options)? {
        v if v == latest => Ok(()),
        v => Err(format!("schema version {v} after the rerun, not {latest}")),
    }
}

/// Run `cmd` to completion: an error with its output when it fails.
fn completes(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(format!(
            "the rerun failed ({}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        ))
    }
}

/// A read-only connection to the warehouse in `data` (nothing else holds it).
fn reader(dir: &Path, data: &str) -> duckdb::Connection {
    magpie_core::Warehouse::open_read_only(dir.join(data).join("magpie.duckdb")).unwrap()
}

/// Per listener: plays (events that are no other's duplicate), events, distinct fingerprints.
type Listens = BTreeMap<String, (i64, i64, i64)>;

fn listens(conn: &duckdb::Connection) -> Listens {
    let mut stmt = conn
        .prepare(
            "SELECT l.name, count(*) FILTER (WHERE e.duplicate_of IS NULL), count(*),
                    count(DISTINCT e.fingerprint)
             FROM raw.listen_events e JOIN listeners l USING (listener_id) GROUP BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// (lost, doubled) plays of `got` against `want`, per listener; events stored twice count as
/// doubled too.
fn difference(want: &Listens, got: &Listens) -> (i64, i64) {
    let names: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    let (mut lost, mut doubled) = (0, 0);
    for name in names {
        let (w, _, _) = want.get(name).copied().unwrap_or_default();
        let (g, events, distinct) = got.get(name).copied().unwrap_or_default();
        lost += (w - g).max(0);
        doubled += (g - w).max(0) + (events - distinct);
    }
    (lost, doubled)
}

/// The listens in `data` against the reference, once the warehouse has opened.
fn listens_against(dir: &Path, data: &str, want: &Listens) -> (i64, i64) {
    difference(want, &listens(&reader(dir, data)))
}

/// A multi-file Spotify extended-history export made by `magpie demo generate` in `dir/export`.
fn demo_export(dir: &Path) -> PathBuf {
    let export = common::demo_export(dir, 45_000, 3, "export");
    let files = std::fs::read_dir(&export).unwrap().count();
    assert!(files >= 3, "a multi-file export: {files} files");
    export
}

/// `dir/NAME` holding the demo export imported (the state `build`, `backup` and `serve` start
/// from); the time the import took.
fn imported(dir: &Path, export: &Path, name: &str) -> Duration {
    let started = Instant::now();
    let out = run(magpie(dir).args(["--data-dir", name, "import", export.to_str().unwrap()]));
    assert!(out.status.success());
    started.elapsed()
}

#[test]
fn import_of_a_multi_file_export() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let export = demo_export(root);
    let took = imported(root, &export, "reference");
    let want = listens(&reader(root, "reference"));
    assert_eq!(
        want["default"],
        (45_000, 45_000, 45_000),
        "every play imported"
    );
    let mut kills = Kills::new("import");
    for n in 0..rounds() {
        kills.round(n, root, |kill, data| {
            kill.interrupt(
                magpie(root).args(["--data-dir", &data, "import", export.to_str().unwrap()]),
                took,
            );
            opens_with_its_schema(root, &["--data-dir", &data])?;
            completes(magpie(root).args([
                "--data-dir",
                &data,
                "import",
                export.to_str().unwrap(),
            ]))?;
            schema_is_latest(root, &["--data-dir", &data])?;
            Ok(listens_against(root, &data, &want))
        });
    }
    kills.finish();
}

/// (lost, doubled) plays of the marts against the reference; a mart of another size is an
/// error.
fn marts_against(
    got: &BTreeMap<String, i64>,
    want: &BTreeMap<String, i64>,
) -> Result<(i64, i64), String> {
    let plays = |m: &BTreeMap<String, i64>| m.get("fact_plays").copied().unwrap_or(0);
    let (w, g) = (plays(want), plays(got));
    if (w - g).abs() == 0 && got != want {
        return Err(format!("marts differ: {got:?}, expected {want:?}"));
    }
    Ok(((w - g).max(0), (g - w).max(0)))
}

#[test]
fn build() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let export = demo_export(root);
    imported(root, &export, "imported");
    copy_dir(&root.join("imported"), &root.join("reference"));
    let started = Instant::now();
    let out = run(magpie(root).args(["--data-dir", "reference", "build"]));
    assert!(out.status.success());
    let took = started.elapsed();
    let want = marts(&reader(root, "reference"));
    assert!(want["fact_plays"] > 40_000, "{want:?}");
    let mut kills = Kills::new("build");
    for n in 0..rounds() {
        kills.round(n, root, |kill, data| {
            // Even rounds kill the first build, odd ones a rebuild over whole marts.
            let rebuild = n % 2 == 1;
            copy_dir(
                &root.join(if rebuild { "reference" } else { "imported" }),
                &root.join(&data),
            );
            kill.interrupt(magpie(root).args(["--data-dir", &data, "build"]), took);
            opens_with_its_schema(root, &["--data-dir", &data])?;
            if rebuild {
                // The marts of the killed rebuild are the whole ones of the build before.
                marts_against(&marts(&reader(root, &data)), &want).and_then(|d| {
                    if d == (0, 0) {
                        Ok(())
                    } else {
                        Err(format!("after the kill the marts are not whole: {d:?}"))
                    }
                })?;
            }
            completes(magpie(root).args(["--data-dir", &data, "build"]))?;
            schema_is_latest(root, &["--data-dir", &data])?;
            marts_against(&marts(&reader(root, &data)), &want)
        });
    }
    kills.finish();
}

/// A fake Spotify Web API on loopback: `recently-played` answers each listener (told apart by
/// the bearer token) the plays after the cursor, at most 50, a little slowly so a kill can land
/// while a poll waits for it.
struct FakeSpotify {
    url: String,
}

/// Plays each fake listener has, one every 4 minutes up to 2026-01-01.
const SPOTIFY_PLAYS: i64 = 40;

fn spotify_page(token: &str, after: i64) -> serde_json::Value {
    let n: i64 = token.trim_start_matches("access-").parse().unwrap_or(0);
    let last = 1_767_225_600_000i64 - n * 3_600_000;
    let items: Vec<serde_json::Value> = (0..SPOTIFY_PLAYS)
        .map(|i| last - i * 240_000)
        .filter(|t| *t > after)
        .map(|t| {
            let track = (t / 1000) % 97;
            json!({
                "played_at": chrono::DateTime::from_timestamp_millis(t).unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "track": {
                    "name": format!("Polled Song {track}"),
                    "uri": format!("spotify:track:polled{track}"),
                    "duration_ms": 200_000,
                    "artists": [{"name": format!("Polled Artist {}", track % 7), "uri": format!("spotify:artist:polled{}", track % 7)}],
                    "album": {"name": "Polled Album", "uri": "spotify:album:polled"}
                },
                "context": null
            })
        })
        .collect();
    let cursors = match items.first() {
        Some(_) => {
            json!({"after": (last).to_string(), "before": (last - (SPOTIFY_PLAYS - 1) * 240_000).to_string()})
        }
        None => serde_json::Value::Null,
    };
    json!({"items": items, "next": null, "cursors": cursors, "limit": 50, "href": "fake"})
}

impl FakeSpotify {
    fn start() -> FakeSpotify {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let (mut target, mut token) = (String::new(), String::new());
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        if target.is_empty() {
                            target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        } else if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("authorization")
                        {
                            token = value.trim().trim_start_matches("Bearer ").to_string();
                        }
                        line.clear();
                    }
                    let after = target
                        .split(['?', '&'])
                        .find_map(|p| p.strip_prefix("after="))
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(0);
                    let body = if target.starts_with("/v1/me/player/recently-played") {
                        spotify_page(&token, after).to_string()
                    } else {
                        String::new()
                    };
                    std::thread::sleep(Duration::from_millis(20));
                    let mut stream = reader.into_inner();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        if body.is_empty() {
                            "404 Not Found"
                        } else {
                            "200 OK"
                        },
                        body.len()
                    );
                });
            }
        });
        FakeSpotify { url }
    }
}

/// A data folder `dir/data` with the most listeners Spotify allows connected (tokens that
/// need no refresh) and a configuration pointing at the fake.
fn spotify_listeners(dir: &Path, data: &str, fake: &FakeSpotify) {
    let store = magpie_music::spotify::TokenStore::new(&dir.join(data));
    std::fs::create_dir_all(dir.join(data)).unwrap();
    let now = chrono::Utc::now();
    for n in 1..=magpie_music::spotify::MAX_LISTENERS {
        let tokens = magpie_music::spotify::Tokens {
            access_token: magpie_core::Secret::new(format!("access-{n}")),
            refresh_token: magpie_core::Secret::new(format!("refresh-{n}")),
            expires_at: now + chrono::Duration::days(1),
            authorized_at: now,
        };
        store.put(&format!("listener{n}"), tokens).unwrap();
    }
    std::fs::write(
        dir.join(format!("{data}.toml")),
        format!(
            "[spotify]\nclient_id = \"magpie-test\"\naccounts_url = \"{0}\"\napi_url = \"{0}\"\n",
            fake.url
        ),
    )
    .unwrap();
}

#[test]
fn spotify_poll_against_a_fake_spotify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fake = FakeSpotify::start();
    let poll = |data: &str| {
        let mut cmd = magpie(root);
        cmd.args(["--data-dir", data, "--config", &format!("{data}.toml")])
            .args(["spotify", "poll", "--force"]);
        cmd
    };
    spotify_listeners(root, "reference", &fake);
    let started = Instant::now();
    let out = run(&mut poll("reference"));
    assert!(out.status.success());
    let took = started.elapsed();
    let want = listens(&reader(root, "reference"));
    assert_eq!(want.len(), magpie_music::spotify::MAX_LISTENERS, "{want:?}");
    assert!(
        want.values().all(|l| l.0 == SPOTIFY_PLAYS),
        "every play polled: {want:?}"
    );
    let mut kills = Kills::new("spotify poll");
    for n in 0..rounds() {
        kills.round(n, root, |kill, data| {
            spotify_listeners(root, &data, &fake);
            kill.interrupt(&mut poll(&data), took);
            opens_with_its_schema(root, &["--data-dir", &data])?;
            completes(&mut poll(&data))?;
            schema_is_latest(root, &["--data-dir", &data])?;
            Ok(listens_against(root, &data, &want))
        });
    }
    kills.finish();
}

/// ListenBrainz import submissions: `BATCHES` requests of `BATCH` listens, each listen at its
/// own time.
const BATCHES: usize = 8;
const BATCH: usize = 1000;

fn submission(batch: usize) -> String {
    let t0 = 1_717_243_200i64; // 2024-06-01T12:00:00Z
    let payload: Vec<serde_json::Value> = (0..BATCH)
        .map(|i| {
            let n = (batch * BATCH + i) as i64;
            json!({
                "listened_at": t0 + n * 240,
                "track_metadata": {
                    "artist_name": format!("Submitted Artist {}", n % 13),
                    "track_name": format!("submitted {batch:04} {i:04}"),
                    "release_name": "Submitted",
                    "additional_info": {"duration_ms": 200_000}
                }
            })
        })
        .collect();
    json!({"listen_type": "import", "payload": payload}).to_string()
}

/// Every submission sent to `server` in turn, until one is refused or the server is gone;
/// the requests answered with 200.
fn submit_all(address: &str, token: &str) -> usize {
    let mut acked = 0;
    for b in 0..BATCHES {
        let body = submission(b);
        let Ok(mut stream) = std::net::TcpStream::connect(address) else {
            break;
        };
        let sent = write!(
            stream,
            "POST /1/submit-listens HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Token {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut response = String::new();
        if sent.is_err()
            || stream.read_to_string(&mut response).is_err()
            || !response.starts_with("HTTP/1.1 200")
        {
            break;
        }
        acked += 1;
    }
    acked
}

#[test]
fn listenbrainz_submissions_to_serve() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = run(magpie(root).args([
        "--data-dir",
        "base",
        "listener",
        "token",
        "create",
        "--listener",
        "lb",
        "--json",
    ]));
    assert!(out.status.success());
    let token: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();

    copy_dir(&root.join("base"), &root.join("reference"));
    let server = Server::start(root, "reference", "reference.log");
    let started = Instant::now();
    assert_eq!(submit_all(&server.address, &token), BATCHES);
    let took = started.elapsed();
    server.stop();
    let want = listens(&reader(root, "reference"));
    assert_eq!(want["lb"].0, (BATCHES * BATCH) as i64, "{want:?}");

    let mut kills = Kills::new("listenbrainz submission");
    for n in 0..rounds() {
        kills.round(n, root, |kill, data| {
            copy_dir(&root.join("base"), &root.join(&data));
            let server = Server::start(root, &data, &format!("{data}.log"));
            let client = {
                let (address, token) = (server.address.clone(), token.clone());
                std::thread::spawn(move || submit_all(&address, &token))
            };
            let Server { mut child, .. } = server;
            kill.kill(&mut child, took);
            let acked = client.join().unwrap();
            // What counts here is a submission in flight, not the server's life.
            kill.mid_run = acked < BATCHES;
            opens_with_its_schema(root, &["--data-dir", &data])?;
            // Every acknowledged request is stored whole.
            let stored = listens(&reader(root, &data)).get("lb").map_or(0, |l| l.0);
            if stored < (acked * BATCH) as i64 || stored % BATCH as i64 != 0 {
                return Err(format!(
                    "{stored} listens stored after {acked} acknowledged requests of {BATCH}"
                ));
            }
            // The client sends everything again.
            let server = Server::start(root, &data, &format!("{data}-again.log"));
            let resent = submit_all(&server.address, &token);
            server.stop();
            schema_is_latest(root, &["--data-dir", &data])?;
            if resent != BATCHES {
                return Err(format!("{resent} of {BATCHES} resubmissions accepted"));
            }
            Ok(listens_against(root, &data, &want))
        });
    }
    kills.finish();
}

/// Every Parquet file under `root` read (an unreadable one is an error); per dataset folder,
/// the rows at or after `since_ms` (exchange time), and rows whose (instrument, exchange time)
/// another row has too (no row is written twice, in one file or across files).
fn parquet_figures(root: &Path, since_ms: i64) -> Result<(i64, i64), String> {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let (mut rows, mut doubled) = (0, 0);
    for dataset in magpie_market::rows::Dataset::ALL {
        let files = magpie_market::sink::files::under(&root.join(dataset.folder()), "parquet");
        for file in &files {
            conn.query_row(
                &format!("SELECT count(*) FROM read_parquet('{}')", file.display()),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| format!("{} is unreadable: {e}", file.display()))?;
        }
        if files.is_empty() {
            continue;
        }
        let list = files
            .iter()
            .map(|f| format!("'{}'", f.display()))
            .collect::<Vec<_>>()
            .join(", ");
        let (n, twice): (i64, i64) = conn
            .query_row(
                &format!(
                    "SELECT count(*) FILTER (WHERE epoch_ms(exchange_time) >= {since_ms}),
                            count(*) - count(DISTINCT (instrument, exchange_time))
                     FROM read_parquet([{list}], union_by_name = true, hive_partitioning = false)"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| e.to_string())?;
        rows += n;
        doubled += twice;
    }
    Ok((rows, doubled))
}

/// The market collector against a fake Deribit serving a slice of the recorded instrument
/// lists: a replay of a generated feed, paced to last a couple of seconds.
struct Market {
    rt: tokio::runtime::Runtime,
    fake: magpie_fakes::deribit::FakeDeribit,
    template: serde_json::Value,
    want_channels: usize,
}

/// Messages a replay sends on each connection, and how fast.
const REPLAY: usize = 4000;
const REPLAY_PER_SECOND: usize = 2000;

impl Market {
    fn start() -> Option<Market> {
        use magpie_fakes::deribit as fake;
        let instruments = fake::recorded_btc_eth_instruments()?;
        let template = common::recorded_ticker()?;
        // 20 options per currency and the perpetuals: every channel is subscribed in a moment.
        let mut per_currency = BTreeMap::<String, usize>::new();
        let slice: Vec<serde_json::Value> = instruments
            .into_iter()
            .filter(|i| {
                let name = i["instrument_name"].as_str().unwrap_or_default();
                let currency = name.split('-').next().unwrap_or_default().to_string();
                if i["settlement_period"] == "perpetual" {
                    return true;
                }
                let taken = per_currency.entry(currency).or_default();
                *taken += 1;
                i["kind"] == "option" && *taken <= 20
            })
            .collect();
        let want_channels = slice
            .iter()
            .filter(|i| i["kind"] == "option" || i["settlement_period"] == "perpetual")
            .count();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fake = rt.block_on(fake::FakeDeribit::start(0, slice)).unwrap();
        Some(Market {
            rt,
            fake,
            template,
            want_channels,
        })
    }

    fn config(&self, dir: &Path, data: &str) {
        std::fs::write(
            dir.join(format!("{data}.toml")),
            format!(
                "[market]\nenabled = true\nurl = \"{}\"\nconnections = 2\nsubscribes_per_second = 20\n\
                 file_interval = \"1s\"\nflush_rows = 256\nstall_timeout = \"60s\"\n",
                self.fake.url()
            ),
        )
        .unwrap();
    }

    /// `magpie market run` in `data`, once every quote channel is subscribed.
    fn run(&self, dir: &Path, data: &str) -> Child {
        let child = magpie(dir)
            .args(["--data-dir", data, "--config", &format!("{data}.toml")])
            .args(["market", "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.quote_channels() < self.want_channels {
            assert!(Instant::now() < deadline, "never subscribed");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn quote_channels(&self) -> usize {
        self.fake
            .subscriptions()
            .values()
            .flatten()
            .filter(|c| c.starts_with("quote."))
            .count()
    }

    /// Replay a feed whose exchange times start at `start_ms` on every connection; the
    /// messages sent in all and the blasts to wait for.
    fn replay(&self, start_ms: i64) -> (usize, u64) {
        use magpie_fakes::deribit as fake;
        let _guard = self.rt.enter();
        let before = self.fake.blasts_done();
        let asked = self
            .fake
            .blast_feeds(REPLAY, REPLAY_PER_SECOND, |names, count| {
                fake::generate_feed(names, count, &self.template, start_ms, names.len() as u64)
            });
        assert!(asked > 0);
        (asked * REPLAY, before + asked as u64)
    }

    fn wait_replayed(&self, blasts: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.fake.blasts_done() < blasts {
            assert!(Instant::now() < deadline, "the replay never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
        // What the collector has not read yet.
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// SIGTERM: the collector closes its files and exits 0.
fn terminate(child: &mut Child) -> Result<(), String> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    if exit.success() {
        Ok(())
    } else {
        Err(format!("exit {exit} on SIGTERM"))
    }
}

#[test]
fn market_run_during_a_replay() {
    let Some(market) = Market::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Each replay's exchange times follow the last one's, a day apart.
    let mut start = chrono::Utc::now().timestamp_millis() - 30 * 86_400_000;
    let mut next_start = || {
        start += 86_400_000;
        start
    };

    market.config(root, "reference");
    let mut child = market.run(root, "reference");
    let from = next_start();
    let started = Instant::now();
    let (sent, blasts) = market.replay(from);
    market.wait_replayed(blasts);
    let took = started.elapsed();
    terminate(&mut child).unwrap();
    let (want, doubled) = parquet_figures(&root.join("reference/market"), from).unwrap();
    assert_eq!(
        (want, doubled),
        (sent as i64, 0),
        "every message stored once"
    );

    let mut kills = Kills::new("market run");
    for n in 0..rounds() {
        kills.round(n, root, |kill, data| {
            market.config(root, &data);
            let mut child = market.run(root, &data);
            let first = next_start();
            let (_, blasts) = market.replay(first);
            kill.kill(&mut child, took);
            market.wait_replayed(blasts);
            opens_with_its_schema(
                root,
                &["--data-dir", &data, "--config", &format!("{data}.toml")],
            )?;
            let (_, twice) = parquet_figures(&root.join(&data).join("market"), first)?;
            if twice > 0 {
                return Ok((0, twice));
            }
            // The next start cleans up and stores a whole replay, once.
            let mut child = market.run(root, &data);
            let again = next_start();
            let (_, blasts) = market.replay(again);
            market.wait_replayed(blasts);
            terminate(&mut child)?;
            schema_is_latest(
                root,
                &["--data-dir", &data, "--config", &format!("{data}.toml")],
            )?;
            let (rows, twice) = parquet_figures(&root.join(&data).join("market"), again)?;
            let tmp = magpie_market::sink::files::under(&root.join(&data).join("market"), "tmp");
            if !tmp.is_empty() {
                return Err(format!("unfinished files left: {tmp:?}"));
            }
            Ok(((want - rows).max(0), (rows - want).max(0) + twice))
        });
    }
    kills.finish();
}

/// Every backup in `data/backups` whole: it opens and holds the reference's listens and marts.
fn backups_whole(
    dir: &Path,
    data: &str,
    want: &Listens,
    want_marts: &BTreeMap<String, i64>,
) -> Result<(i64, i64), String> {
    let (mut lost, mut doubled) = (0, 0);
    for (_, path) in magpie_core::warehouse::backup::list(&dir.join(data).join("backups"))
        .map_err(|e| e.to_string())?
    {
        let conn = magpie_core::Warehouse::open_read_only(&path)
            .map_err(|e| format!("the backup {} does not open: {e}", path.display()))?;
        let (l, d) = difference(want, &listens(&conn));
        let (ml, md) = marts_against(&marts(&conn), want_marts)?;
        lost += l + ml;
        doubled += d + md;
    }
    Ok((lost, doubled))
}

/// The read-only snapshot `magpie serve` publishes, when there is one: it opens and holds the
/// reference's listens (its marts may be those of before the first build).
fn snapshot_whole(dir: &Path, data: &str, want: &Listens) -> Result<(i64, i64), String> {
    let path = dir.join(data).join("snapshot/magpie-readonly.duckdb");
    if !path.exists() {
        return Ok((0, 0));
    }
    let conn = magpie_core::Warehouse::open_read_only(&path)
        .map_err(|e| format!("the snapshot does not open: {e}"))?;
    Ok(difference(want, &listens(&conn)))
}

/// Half-written copies left in `data/backups` (`*.partial`).
fn partial_backups(dir: &Path, data: &str) -> Vec<PathBuf> {
    magpie_market::sink::files::under(&dir.join(data).join("backups"), "partial")
}

/// The listens and marts of the uninterrupted run in `data`, whose backup is whole.
fn reference_with_its_backup(dir: &Path, data: &str) -> (Listens, BTreeMap<String, i64>) {
    let conn = reader(dir, data);
    let (want, want_marts) = (listens(&conn), marts(&conn));
    drop(conn);
    assert!(want_marts["fact_plays"] > 40_000, "{want_marts:?}");
    assert_eq!(backups_whole(dir, data, &want, &want_marts), Ok((0, 0)));
    (want, want_marts)
}

/// `dir/NAME`: the demo export imported and built.
fn built(dir: &Path, name: &str) {
    let export = demo_export(dir);
    imported(dir, &export, name);
    let out = run(magpie(dir).args(["--data-dir", name, "build"]));
    assert!(out.status.success());
}

#[test]
fn backup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    built(root, "built");
    copy_dir(&root.join("built"), &root.join("reference"));
    let started = Instant::now();
    let out = run(magpie(root).args(["--data-dir", "reference", "backup"]));
    assert!(out.status.success());
    let took = started.elapsed();
    let (want, want_marts) = reference_with_its_backup(root, "reference");

    let mut kills = Kills::new("backup");
    for n in 0..rounds() {
        kills.round(n, root, |kill, data| {
            copy_dir(&root.join("built"), &root.join(&data));
            kill.interrupt(magpie(root).args(["--data-dir", &data, "backup"]), took);
            opens_with_its_schema(root, &["--data-dir", &data])?;
            // A backup under its real name is whole even right after the kill.
            let after_kill = backups_whole(root, &data, &want, &want_marts)?;
            completes(magpie(root).args(["--data-dir", &data, "backup"]))?;
            schema_is_latest(root, &["--data-dir", &data])?;
            let (lost, doubled) = backups_whole(root, &data, &want, &want_marts)?;
            let backups = magpie_core::warehouse::backup::list(&root.join(&data).join("backups"))
                .map_err(|e| e.to_string())?;
            let partial = partial_backups(root, &data);
            if !partial.is_empty() {
                return Err(format!(
                    "half-written copies left after the rerun: {partial:?}"
                ));
            }
            if backups.len() != 1 {
                return Err(format!("{} backups after the rerun", backups.len()));
            }
            let (here_lost, here_doubled) = listens_against(root, &data, &want);
            Ok((
                after_kill.0 + lost + here_lost,
                after_kill.1 + doubled + here_doubled,
            ))
        });
    }
    kills.finish();
}

/// A configuration whose daily-etl is due every second (the other flows paused) and whose
/// enrichment stays on loopback.
const DAILY_ETL_NOW: &str = "[flows.daily_etl]\ncron = \"* * * * * *\"\n\
    [flows.spotify_ingest]\npaused = true\n[flows.enrich]\npaused = true\n\
    [flows.question_alerts]\npaused = true\n\
    [enrichment]\nmusicbrainz_url = \"http://127.0.0.1:9\"\nmusicbrainz_requests_per_second = 0\n";

/// Wait until a daily-etl run of `server` has completed (its `/metrics` count them).
fn daily_etl_completed(server: &Server) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, metrics) = server.request("GET", "/metrics", "", "");
        if metrics.lines().any(|l| {
            l.starts_with("magpie_flow_runs_total{")
                && l.contains("daily-etl")
                && l.contains("Completed")
        }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no daily-etl run completed:\n{}",
                server.log_text()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_during_a_scheduled_daily_etl() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let export = demo_export(root);
    imported(root, &export, "imported");
    std::fs::write(root.join("etl.toml"), DAILY_ETL_NOW).unwrap();
    let options = |data: &str| {
        vec![
            "--data-dir".to_string(),
            data.to_string(),
            "--config".into(),
            "etl.toml".into(),
        ]
    };
    let serve = |data: &str, log: &str| {
        let options = options(data);
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        Server::start_with(root, &options, log)
    };

    copy_dir(&root.join("imported"), &root.join("reference"));
    let server = serve("reference", "reference.log");
    let started = Instant::now();
    daily_etl_completed(&server).unwrap();
    let took = started.elapsed();
    server.stop();
    let (want, want_marts) = reference_with_its_backup(root, "reference");

    let mut kills = Kills::new("serve daily-etl");
    for n in 0..rounds() {
        kills.round(n, root, |kill, data| {
            copy_dir(&root.join("imported"), &root.join(&data));
            let Server { mut child, .. } = serve(&data, &format!("{data}.log"));
            kill.kill(&mut child, took);
            let opts = options(&data);
            let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
            opens_with_its_schema(root, &opts)?;
            // What counts here is a daily-etl run under way (it stays Running until the next
            // start marks it Crashed), not the server's life.
            kill.mid_run = sql(
                root,
                &opts,
                "SELECT count(*) FROM meta.flow_runs WHERE flow = 'daily-etl' AND state IN ('Running', 'Retrying')",
            )? != ["0"];
            let after_kill = backups_whole(root, &data, &want, &want_marts)?;
            let snapshot_after_kill = snapshot_whole(root, &data, &want)?;
            let server = serve(&data, &format!("{data}-again.log"));
            daily_etl_completed(&server)?;
            server.stop();
            schema_is_latest(root, &opts)?;
            let conn = reader(root, &data);
            let (lost, doubled) = difference(&want, &listens(&conn));
            let (ml, md) = marts_against(&marts(&conn), &want_marts)?;
            drop(conn);
            let (bl, bd) = backups_whole(root, &data, &want, &want_marts)?;
            let (sl, sd) = snapshot_whole(root, &data, &want)?;
            Ok((
                after_kill.0 + snapshot_after_kill.0 + lost + ml + bl + sl,
                after_kill.1 + snapshot_after_kill.1 + doubled + md + bd + sd,
            ))
        });
    }
    kills.finish();
}

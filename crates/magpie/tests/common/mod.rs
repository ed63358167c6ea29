//! What the binary's end-to-end tests share: the `magpie` command with a clean environment,
//! running it (its output shown when it fails), its output as text, and a `magpie serve` on
//! loopback to send requests to.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The built `magpie` binary, run in `dir`, with no configuration from the environment.
pub fn magpie(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magpie"));
    cmd.current_dir(dir)
        .env_remove("MAGPIE_DATA_DIR")
        .env_remove("MAGPIE_CONFIG")
        .env_remove("DUCKDB_PATH")
        .env_remove("ENVIRONMENT")
        .env("LOG_LEVEL", "warn");
    cmd
}

/// Run `cmd` to the end; when it fails, its output goes to the test's stderr.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("magpie runs");
    if !out.status.success() {
        eprintln!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `magpie serve` on 127.0.0.1:0 in `data`, its stderr in `log`.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub log: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, data: &str, log: &str) -> Server {
        Self::start_with(dir, &["--data-dir", data], log)
    }

    /// `magpie OPTIONS serve` (e.g. `--data-dir` and `--config`), once it serves.
    pub fn start_with(dir: &Path, options: &[&str], log: &str) -> Server {
        let log = dir.join(log);
        let mut child = magpie(dir)
            .args(options)
            .args(["serve", "--bind", "127.0.0.1", "--port", "0"])
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let address = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!(
                    "magpie serve ended before serving:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Some(rest) = line.strip_prefix("Dashboards on http://") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
        });
        Server {
            child,
            address,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// SIGTERM and a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "magpie serve exits cleanly on SIGTERM ({exit}):\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.1 request on its own connection: (status, body).
    pub fn request(&self, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// `magpie demo generate`: `plays` plays over `years` years ending 2026-01-31, as Spotify
/// export files in `work/out`.
pub fn demo_export(work: &Path, plays: u64, years: u32, out: &str) -> PathBuf {
    let result = run(magpie(work).args([
        "demo",
        "generate",
        "--plays",
        &plays.to_string(),
        "--years",
        &years.to_string(),
        "--end",
        "2026-01-31",
        "--out",
        out,
    ]));
    assert!(result.status.success(), "{}", stderr(&result));
    work.join(out)
}

/// Have the fake Deribit stream `total` generated messages per connection, as fast as it can,
/// in chunks of 50,000 from `template` (a recorded ticker); the connections asked.
pub fn blast_generated(
    fake: &magpie_fakes::deribit::FakeDeribit,
    total: usize,
    template: &serde_json::Value,
    start_ms: i64,
) -> usize {
    fake.blast_feeds(total, 0, |names, count| {
        magpie_fakes::deribit::generate_feed(
            names,
            count.min(50_000),
            template,
            start_ms,
            names.len() as u64,
        )
    })
}

/// Rows of every mart of the warehouse `conn` reads, by table name.
pub fn mart_rows(conn: &duckdb::Connection) -> std::collections::BTreeMap<String, i64> {
    let tables: Vec<String> = conn
        .prepare("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM marts.\"{t}\""), [], |r| {
                    r.get(0)
                })
                .unwrap();
            (t, n)
        })
        .collect()
}

/// The `data` of the first `ticker.*` notification of the recorded Deribit session, a template
/// for generated feeds; `None` when the session is absent (see
/// `magpie_fakes::deribit::recorded_capture`, which fails under `REQUIRE_REALDATA`).
pub fn recorded_ticker() -> Option<serde_json::Value> {
    use magpie_fakes::deribit as fake;
    let ws = fake::recorded_capture("DERIBIT.ws.1.0")?;
    let ticker = fake::notifications_from_capture(&ws)
        .unwrap()
        .into_iter()
        .find(|n| {
            n["params"]["channel"]
                .as_str()
                .is_some_and(|c| c.starts_with("ticker."))
        })
        .expect("a recorded ticker");
    Some(ticker["params"]["data"].clone())
}

/// Rows in a Parquet file, read by a DuckDB of its own (an unreadable file is an error).
pub fn parquet_rows(path: &Path) -> Result<i64, duckdb::Error> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.query_row(
        &format!("SELECT count(*) FROM read_parquet('{}')", path.display()),
        [],
        |r| r.get(0),
    )
}

/// Poll `done` every 50 ms until it holds; fail after `seconds`.
pub async fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `from` copied to `to` (a data folder copied, e.g. a reference state for a round).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

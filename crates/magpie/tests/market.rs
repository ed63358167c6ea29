//! `magpie market run` and `magpie serve` with the collector, against a fake Deribit on
//! loopback serving the recorded instrument lists: a `kill -9` while files are being written
//! leaves only complete, readable Parquet files, and the next start cleans up and goes on.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use magpie_fakes::deribit::{FakeDeribit, recorded_btc_eth_instruments as recorded_instruments};

mod common;

use common::{parquet_rows, wait_for};

fn magpie(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magpie"));
    cmd.current_dir(dir)
        .env_remove("MAGPIE_DATA_DIR")
        .env_remove("MAGPIE_CONFIG")
        .env_remove("DUCKDB_PATH")
        .env_remove("ENVIRONMENT")
        .env("LOG_LEVEL", "warn")
        .args(["--data-dir", "data", "--config", "magpie.toml"])
        .args(args);
    cmd
}

fn write_config(dir: &Path, url: &str, extra: &str) {
    std::fs::write(
        dir.join("magpie.toml"),
        format!(
            "[market]\nurl = \"{url}\"\nconnections = 2\nsubscribes_per_second = 20\nfile_interval = \"1s\"\nflush_rows = 256\nstall_timeout = \"60s\"\n{extra}\n"
        ),
    )
    .unwrap();
}

fn files(root: &Path, extension: &str) -> Vec<PathBuf> {
    magpie_market::sink::files::under(root, extension)
}

fn quote_channels(fake: &FakeDeribit) -> usize {
    fake.subscriptions()
        .values()
        .flatten()
        .filter(|c| c.starts_with("quote."))
        .count()
}

fn wanted(instruments: &[serde_json::Value]) -> usize {
    instruments
        .iter()
        .filter(|i| i["kind"] == "option" || i["settlement_period"] == "perpetual")
        .count()
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_writing_leaves_only_readable_files_and_the_next_start_cleans_up() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let Some(template) = common::recorded_ticker() else {
        return;
    };
    let want = wanted(&instruments);
    let fake = FakeDeribit::start(0, instruments).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &fake.url(), "enabled = true");
    let mut child = magpie(dir.path(), &["market", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for("every quote channel subscribed", 60, || {
        quote_channels(&fake) >= want
    })
    .await;
    // A continuous stream; files are closed every second, so some are finished and some
    // open (under temporary names) when the process is killed.
    let start = chrono::Utc::now().timestamp_millis();
    let asked = common::blast_generated(&fake, 2_000_000, &template, start);
    assert_eq!(asked, 2);
    let root = dir.path().join("data/market");
    wait_for("finished files", 30, || files(&root, "parquet").len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(&child, "-KILL");
    let _ = child.wait();

    let finished = files(&root, "parquet");
    let unfinished = files(&root, "tmp");
    assert!(finished.len() >= 4, "{finished:?}");
    let mut rows = 0;
    for file in &finished {
        rows +=
            parquet_rows(file).unwrap_or_else(|e| panic!("{} is unreadable: {e}", file.display()));
    }
    assert!(rows > 0);
    eprintln!(
        "after kill -9: {} finished files ({rows} rows), {} unfinished",
        finished.len(),
        unfinished.len()
    );
    for file in &unfinished {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with('.'),
            "an unfinished file is hidden: {name}"
        );
    }

    // The next start removes the unfinished files and goes on; SIGTERM closes its files.
    let mut child = magpie(dir.path(), &["market", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("Collecting BTC, ETH"), "{line}");
    wait_for("the temporary files removed", 30, || {
        files(&root, "tmp").iter().all(|f| !unfinished.contains(f))
    })
    .await;
    wait_for("resubscribed", 60, || quote_channels(&fake) >= want).await;
    kill(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopped: "), "{rest}");
    assert!(
        files(&root, "tmp").is_empty(),
        "SIGTERM leaves no unfinished file"
    );
    for file in files(&root, "parquet") {
        parquet_rows(&file).unwrap_or_else(|e| panic!("{} is unreadable: {e}", file.display()));
    }
    // The warehouse's views read exactly the finished files; the gaps are on record.
    let warehouse =
        magpie_core::Warehouse::open(dir.path().join("data/magpie.duckdb"), &Default::default())
            .unwrap();
    let in_views: i64 = warehouse
        .conn()
        .query_row("SELECT (SELECT count(*) FROM market.quotes) + (SELECT count(*) FROM market.option_ticks) + (SELECT count(*) FROM market.future_ticks)", [], |r| r.get(0))
        .unwrap();
    let on_disk: i64 = files(&root, "parquet")
        .iter()
        .map(|f| parquet_rows(f).unwrap())
        .sum();
    assert_eq!(in_views, on_disk);
    let stops: i64 = warehouse
        .conn()
        .query_row("SELECT count(*) FROM market.disconnects WHERE connection = -1 AND reason = 'collector stopped'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stops, 1);
    drop(warehouse);
    // `magpie sql` reads the market views, and still nothing else on disk.
    let out = magpie(
        dir.path(),
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM market.quotes",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let quotes: i64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(quotes > 0);
    let out = magpie(
        dir.path(),
        &["sql", "SELECT * FROM read_csv('/etc/passwd')"],
    )
    .output()
    .unwrap();
    assert!(
        !out.status.success(),
        "files outside the market folder stay unreadable"
    );
    // `magpie doctor` sizes the market folder per day.
    let out = magpie(dir.path(), &["doctor", "--offline"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let line = report
        .lines()
        .find(|l| l.contains(" market "))
        .unwrap_or_default();
    assert!(
        line.starts_with("ok") && line.contains("files") && line.contains("a day"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_collector_and_shows_it() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let want = wanted(&instruments);
    let fake = FakeDeribit::start(0, instruments).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A PostgreSQL copy whose server is not there: the collector goes on and says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let postgres = format!(
        "postgres://magpie:pg-secret@{}/market",
        closed.local_addr().unwrap()
    );
    drop(closed);
    write_config(
        dir.path(),
        &fake.url(),
        &format!(
            "enabled = true\ncoverage_grace = \"1h\"\npostgres_url = \"{postgres}\"\npostgres_every = \"1s\""
        ),
    );
    let mut child = magpie(dir.path(), &["serve", "--port", "0", "--bind", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
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
    wait_for("every quote channel subscribed", 60, || {
        quote_channels(&fake) >= want
    })
    .await;
    wait_for("full coverage reported", 30, || {
        let body = get("/api/market/status");
        let json: serde_json::Value =
            serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap_or("{}")).unwrap_or_default();
        json["enabled"] == true
            && json["currencies"]
                .as_array()
                .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["coverage"] == 1.0))
    })
    .await;
    let body = get("/api/market/status");
    let json: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["connections"].as_array().unwrap().len(), 3);
    let btc = json["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["currency"] == "BTC")
        .unwrap();
    assert!(btc["active_instruments"].as_u64().unwrap() > 300);
    assert_eq!(json["postgres"]["connected"], false, "{json}");
    assert!(json["postgres"]["last_error"].is_string(), "{json}");
    let page = get("/market");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("Coverage") && page.contains("instrument listed"),
        "the page shows coverage and lifecycle events"
    );
    assert!(
        page.contains("PostgreSQL copy") && page.contains("not connected"),
        "the page shows the PostgreSQL copy's state"
    );
    assert!(!page.contains("pg-secret") && !body.contains("pg-secret"));
    let metrics = get("/metrics");
    assert!(
        metrics.contains("magpie_market_coverage_ratio"),
        "market figures on /metrics"
    );
    kill(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

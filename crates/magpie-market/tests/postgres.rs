//! The PostgreSQL copy of the market data against a real PostgreSQL server. `.ci/run` starts
//! one and sets `TEST_POSTGRES_URL` (a role that may create databases: each test makes its
//! own); without it these tests print SKIPPED, unless `REQUIRE_POSTGRES_TESTS` is set.

use std::path::Path;
use std::time::Duration;

use magpie_core::config::{MarketConfig, Secret};
use magpie_core::{OpenOptions, Warehouse};
use magpie_fakes::deribit::{self as fake, FakeDeribit, recorded_btc_eth_instruments};
use magpie_market::rows::{QuoteRow, Tick, TickerRow, TradeRow};
use magpie_market::sink::parquet::{ParquetSettings, ParquetSink};
use magpie_market::sink::postgres::{Loaded, PostgresError, PostgresLoader};
use magpie_market::{Collector, MarketHandle, Timings};
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

fn server() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("REQUIRE_POSTGRES_TESTS").is_none(),
                "REQUIRE_POSTGRES_TESTS is set but TEST_POSTGRES_URL is not"
            );
            eprintln!("SKIPPED: no TEST_POSTGRES_URL (a PostgreSQL server for the market copy)");
            None
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A new, empty database on the server for one test: its URL and a client.
async fn fresh_database(server: &str, name: &str) -> (String, Client) {
    let admin = connect(server).await;
    let database = format!("magpie_{name}_{}", std::process::id());
    // One statement each: a multi-statement batch runs as one transaction, which these refuse.
    for statement in [
        format!("DROP DATABASE IF EXISTS {database}"),
        format!("CREATE DATABASE {database}"),
    ] {
        admin.batch_execute(&statement).await.unwrap();
    }
    let (base, _) = server.rsplit_once('/').expect("a URL ending in /database");
    let url = format!("{base}/{database}");
    let client = connect(&url).await;
    (url, client)
}

const DAY_1: i64 = 1_763_856_000_000; // 2025-11-23T00:00:00Z
const DAY_2: i64 = DAY_1 + 86_400_000;

fn quotes() -> Vec<QuoteRow> {
    (0..3000)
        .map(|i| QuoteRow {
            instrument: ["BTC-28NOV25-90000-C", "ETH-28NOV25-3000-P"][i % 2].into(),
            exchange_ms: if i < 2000 { DAY_1 } else { DAY_2 } + i as i64 * 7,
            local_us: (DAY_1 + i as i64 * 7) * 1000 + 1234,
            best_bid_price: Some(0.0005 * (i % 40) as f64),
            best_bid_amount: (i % 5 != 0).then_some(12.5),
            best_ask_price: Some(0.0005 * (i % 40 + 1) as f64),
            best_ask_amount: Some(1.0 + i as f64 / 3.0),
        })
        .collect()
}

fn trades() -> Vec<TradeRow> {
    (0..40)
        .map(|i| TradeRow {
            instrument: "BTC-PERPETUAL".into(),
            exchange_ms: DAY_1 + 1000 * i,
            local_us: (DAY_1 + 1000 * i) * 1000 + 900,
            trade_id: format!("BTC-{}", 1000 + i),
            trade_seq: Some(50_000 + i),
            price: 91_234.5 + i as f64,
            amount: 10.0 * (i + 1) as f64,
            direction: if i % 2 == 0 { "buy" } else { "sell" }.into(),
            iv: None,
            index_price: Some(91_200.25),
            mark_price: Some(91_230.0),
            tick_direction: Some((i % 4) as i32),
            liquidation: (i == 7).then(|| "M".to_string()),
            block_trade_id: None,
        })
        .collect()
}

fn tickers() -> Vec<TickerRow> {
    (0..20)
        .map(|i| TickerRow {
            instrument: "ETH-28NOV25-3000-P".into(),
            exchange_ms: DAY_1 + 500 * i,
            local_us: (DAY_1 + 500 * i) * 1000 + 77,
            state: Some("open".into()),
            best_bid_price: Some(0.012),
            mark_iv: Some(55.5 + i as f64 / 10.0),
            delta: Some(-0.41),
            underlying_index: Some("SYN.ETH-28NOV25".into()),
            open_interest: (i % 3 != 0).then_some(1500.0),
            ..TickerRow::default()
        })
        .collect()
}

/// Every row above, written as the collector writes them (closed files, one per partition).
fn write_files(root: &Path) -> usize {
    let mut sink = ParquetSink::new(ParquetSettings {
        root: root.to_path_buf(),
        flush_rows: 500,
        file_interval: Duration::from_secs(3600),
        retention_days: 0,
    })
    .unwrap();
    for row in quotes() {
        sink.push(Tick::Quote(row)).unwrap();
    }
    for row in trades() {
        sink.push(Tick::Trade(row)).unwrap();
    }
    for row in tickers() {
        sink.push(Tick::Ticker(Box::new(row))).unwrap();
    }
    sink.close().unwrap().len()
}

async fn stored_quotes(client: &Client) -> Vec<QuoteRow> {
    client
        .query(
            "SELECT instrument, (extract(epoch FROM exchange_time) * 1000)::bigint,
                    (extract(epoch FROM local_time) * 1000000)::bigint,
                    best_bid_price, best_bid_amount, best_ask_price, best_ask_amount
             FROM market.quotes ORDER BY exchange_time, instrument",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| QuoteRow {
            instrument: r.get(0),
            exchange_ms: r.get(1),
            local_us: r.get(2),
            best_bid_price: r.get(3),
            best_bid_amount: r.get(4),
            best_ask_price: r.get(5),
            best_ask_amount: r.get(6),
        })
        .collect()
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn every_closed_file_is_loaded_once_with_its_values() {
    let Some(server) = server() else { return };
    let (url, client) = fresh_database(&server, "values").await;
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path());
    // A file a writer still has open is not loaded.
    std::fs::write(
        dir.path().join("quotes/.part-999.parquet.tmp"),
        b"half written",
    )
    .unwrap();

    let mut loader = PostgresLoader::connect(&url).await.unwrap();
    let loaded = loader.load_new(dir.path()).await.unwrap();
    assert_eq!(
        loaded,
        Loaded {
            files: files as u64,
            rows: 3000 + 40 + 20
        }
    );

    let mut sent = quotes();
    sent.sort_by(|a, b| (a.exchange_ms, &a.instrument).cmp(&(b.exchange_ms, &b.instrument)));
    assert_eq!(stored_quotes(&client).await, sent, "every value as written");
    let partitions = client
        .query(
            "SELECT date::text, currency, kind, count(*) FROM market.quotes GROUP BY 1, 2, 3 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let partitions: Vec<(String, String, String, i64)> = partitions
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        partitions,
        vec![
            ("2025-11-23".into(), "BTC".into(), "option".into(), 1000),
            ("2025-11-23".into(), "ETH".into(), "option".into(), 1000),
            ("2025-11-24".into(), "BTC".into(), "option".into(), 500),
            ("2025-11-24".into(), "ETH".into(), "option".into(), 500),
        ]
    );
    let trade = client
        .query_one(
            "SELECT trade_id, trade_seq, price, amount, direction, iv, tick_direction, liquidation, kind
             FROM market.trades WHERE trade_id = 'BTC-1007'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(trade.get::<_, i64>(1), 50_007);
    assert_eq!(trade.get::<_, f64>(2), 91_241.5);
    assert_eq!(trade.get::<_, f64>(3), 80.0);
    assert_eq!(trade.get::<_, &str>(4), "sell");
    assert_eq!(trade.get::<_, Option<f64>>(5), None);
    assert_eq!(trade.get::<_, Option<i32>>(6), Some(3));
    assert_eq!(trade.get::<_, Option<&str>>(7), Some("M"));
    assert_eq!(trade.get::<_, &str>(8), "future");
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM market.tickers WHERE open_interest IS NULL AND mark_iv > 55 AND gamma IS NULL"
        )
        .await,
        7
    );

    // Nothing twice: not in this loader, nor in a new one (it reads market.loaded_files).
    assert_eq!(
        loader.load_new(dir.path()).await.unwrap(),
        Loaded::default()
    );
    let mut again = PostgresLoader::connect(&url).await.unwrap();
    assert_eq!(again.load_new(dir.path()).await.unwrap(), Loaded::default());
    assert_eq!(
        count(&client, "SELECT count(*) FROM market.quotes").await,
        3000
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM market.loaded_files").await,
        files as i64
    );

    // A file retention deleted is forgotten by the loader; put back (a restored backup) it is
    // still not loaded twice: market.loaded_files has it.
    let file = magpie_market::sink::files::under(&dir.path().join("trades"), "parquet")
        .pop()
        .unwrap();
    let kept = dir.path().join("kept.bin");
    std::fs::rename(&file, &kept).unwrap();
    assert_eq!(
        loader.load_new(dir.path()).await.unwrap(),
        Loaded::default()
    );
    std::fs::rename(&kept, &file).unwrap();
    assert_eq!(
        loader.load_new(dir.path()).await.unwrap(),
        Loaded::default()
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM market.trades").await,
        40
    );
}

#[tokio::test]
async fn a_bad_file_stops_the_pass_and_the_next_pass_loads_the_rest_once() {
    let Some(server) = server() else { return };
    let (url, client) = fresh_database(&server, "bad_file").await;
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path());
    // Sorted between the first day's quotes and the second's.
    let bad = dir
        .path()
        .join("quotes/date=2025-11-23/currency=ETH/kind=option/zz-bad.parquet");
    std::fs::write(&bad, b"not parquet at all").unwrap();

    let mut loader = PostgresLoader::connect(&url).await.unwrap();
    let error = loader.load_new(dir.path()).await.unwrap_err();
    assert!(
        matches!(&error, PostgresError::File { path, .. } if path.ends_with("zz-bad.parquet")),
        "{error}"
    );
    // The files before it are in, whole; the bad one left nothing behind.
    assert_eq!(
        count(&client, "SELECT count(*) FROM market.quotes").await,
        2000
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM market.loaded_files").await,
        2
    );

    std::fs::remove_file(&bad).unwrap();
    let loaded = loader.load_new(dir.path()).await.unwrap();
    assert_eq!(loaded.files as usize, files - 2);
    assert_eq!(
        count(&client, "SELECT count(*) FROM market.quotes").await,
        3000
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM (SELECT DISTINCT instrument, exchange_time, local_time FROM market.quotes) d"
        )
        .await,
        3000,
        "no row twice"
    );
}

async fn until(handle: &MarketHandle, what: &str, done: impl Fn(&MarketHandle) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(handle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}\n{:#?}",
            handle.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One collector run against the fake Deribit with `postgres_url`: subscribe, receive
/// `messages` quotes per data connection, stop. Returns the handle after the stop.
async fn collect(data_dir: &Path, postgres_url: &str, first_ms: i64) -> (MarketHandle, u64) {
    let instruments = recorded_btc_eth_instruments().expect("checked by the caller");
    let fake = FakeDeribit::start(0, instruments.clone()).await.unwrap();
    fake.set_test_request_every(Duration::from_millis(400));
    let config = MarketConfig {
        enabled: true,
        url: fake.url(),
        connections: 2,
        subscribes_per_second: 25.0,
        stall_timeout: Duration::from_secs(3600),
        reconcile_every: Duration::from_secs(3600),
        file_interval: Duration::from_secs(3600),
        postgres_url: Some(Secret::new(postgres_url)),
        postgres_every: Duration::from_millis(200),
        ..MarketConfig::default()
    };
    let warehouse =
        Warehouse::open(data_dir.join("magpie.duckdb"), &OpenOptions::default()).unwrap();
    let collector = Collector::new(&config, data_dir, warehouse.try_clone().unwrap())
        .with_timings(Timings::fast());
    let handle = collector.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(collector.run(stop.clone()));
    until(&handle, "every instrument subscribed", |h| {
        let s = h.status();
        s.reconciled_at.is_some() && s.channels_subscribed == s.channels_wanted
    })
    .await;
    let option = instruments
        .iter()
        .find(|i| i["kind"] == "option")
        .and_then(|i| i["instrument_name"].as_str())
        .unwrap()
        .to_string();
    let texts: std::sync::Arc<Vec<String>> = std::sync::Arc::new(
        (0..500)
            .map(|i| fake::quote_notification(&option, first_ms + i, 0.01 + i as f64 * 1e-4, 0.02))
            .collect(),
    );
    let connections = fake.blast(texts, 500) as u64;
    until(&handle, "the quotes written", |h| {
        h.status().rows.quotes == connections * 500
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    (handle, connections * 500)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_copies_its_files_and_catches_up_after_an_outage() {
    let Some(server) = server() else { return };
    if recorded_btc_eth_instruments().is_none() {
        return;
    }
    let (url, client) = fresh_database(&server, "collector").await;
    let dir = tempfile::tempdir().unwrap();

    // PostgreSQL unreachable: the collector goes on, the status says why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!(
        "postgres://magpie:secret@{}/market",
        closed.local_addr().unwrap()
    );
    drop(closed);
    // Recent times: files older than `retention_days` are deleted at start.
    let hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let (handle, first) = collect(dir.path(), &nowhere, hour_ago).await;
    let status = handle
        .status()
        .postgres
        .expect("the PostgreSQL copy reports");
    assert!(!status.connected);
    assert_eq!(status.rows_loaded, 0);
    let error = status.last_error.expect("the reason");
    assert!(error.contains("refused"), "{error}");
    assert!(!error.contains("secret"), "{error}");

    // Reachable again: the next run loads the first run's files at start and its own at stop.
    let (handle, second) = collect(dir.path(), &url, hour_ago + 60_000).await;
    let status = handle.status().postgres.unwrap();
    assert!(status.connected, "{status:?}");
    assert_eq!(status.rows_loaded, first + second);
    assert_eq!(status.last_error, None);
    let in_postgres = count(&client, "SELECT count(*) FROM market.quotes").await;
    assert_eq!(in_postgres as u64, first + second);
    let warehouse = magpie_core::warehouse::reader::open_locked(
        &dir.path().join("magpie.duckdb"),
        &magpie_core::warehouse::reader::ReaderOptions {
            readable: vec![dir.path().join("market")],
            ..Default::default()
        },
    )
    .unwrap();
    let in_parquet: i64 = warehouse
        .query_row("SELECT count(*) FROM market.quotes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(in_parquet, in_postgres);
    let sum_postgres: f64 = client
        .query_one("SELECT sum(best_bid_price) FROM market.quotes", &[])
        .await
        .unwrap()
        .get(0);
    let sum_parquet: f64 = warehouse
        .query_row("SELECT sum(best_bid_price) FROM market.quotes", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!((sum_postgres - sum_parquet).abs() < 1e-9 * sum_parquet.abs());
}

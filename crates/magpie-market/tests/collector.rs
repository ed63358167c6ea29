//! The collector against a fake Deribit on loopback that speaks the real JSON-RPC wire format
//! and serves the instruments and notifications recorded in ../shared/realdata/deribit.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use magpie_core::config::MarketConfig;
use magpie_core::{OpenOptions, Warehouse};
use magpie_fakes::deribit::{
    self as fake, FakeDeribit, recorded_btc_eth_instruments as recorded_instruments,
    recorded_capture as capture,
};
use magpie_market::{Collector, MarketHandle, Summary, Timings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Rig {
    fake: FakeDeribit,
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    warehouse: Warehouse,
    handle: MarketHandle,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<Summary, magpie_market::MarketError>>,
    config: MarketConfig,
}

fn test_config(url: String) -> MarketConfig {
    MarketConfig {
        enabled: true,
        url,
        connections: 2,
        subscribes_per_second: 25.0,
        stall_timeout: Duration::from_secs(3600),
        reconcile_every: Duration::from_secs(3600),
        file_interval: Duration::from_secs(3600),
        flush_rows: 64,
        coverage_grace: Duration::ZERO,
        ..MarketConfig::default()
    }
}

async fn rig(instruments: Vec<Value>, setup: impl FnOnce(&FakeDeribit, &mut MarketConfig)) -> Rig {
    let fake = FakeDeribit::start(0, instruments).await.unwrap();
    let mut config = test_config(fake.url());
    // Heartbeats well inside the 2 s silence limit (tests may set their own).
    fake.set_test_request_every(Duration::from_millis(400));
    setup(&fake, &mut config);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let warehouse =
        Warehouse::open(data_dir.join("magpie.duckdb"), &OpenOptions::default()).unwrap();
    let collector = Collector::new(&config, &data_dir, warehouse.try_clone().unwrap())
        .with_timings(Timings::fast());
    let handle = collector.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(collector.run(stop.clone()));
    Rig {
        fake,
        _dir: dir,
        data_dir,
        warehouse,
        handle,
        stop,
        task,
        config,
    }
}

impl Rig {
    async fn until(&self, what: &str, mut done: impl FnMut(&Rig) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}\nstatus: {:#?}",
                self.handle.status()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn fully_subscribed(&self) {
        self.until("every instrument subscribed", |r| {
            let s = r.handle.status();
            s.reconciled_at.is_some()
                && s.channels_subscribed == s.channels_wanted
                && s.currencies
                    .iter()
                    .all(|c| c.active_instruments > 0 && c.coverage == 1.0)
        })
        .await;
    }

    async fn stop(self) -> (Summary, Warehouse, PathBuf, FakeDeribit, tempfile::TempDir) {
        self.stop.cancel();
        let summary = self.task.await.unwrap().unwrap();
        (summary, self.warehouse, self.data_dir, self.fake, self._dir)
    }

    fn count(&self, sql: &str) -> i64 {
        self.warehouse
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }
}

/// A stored ticker row as the comparison reads it: instrument, exchange ms, best bid, best ask,
/// mark IV, delta, open interest, currency, kind.
type StoredTicker = (
    String,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    String,
    String,
);

/// The channels the default plan wants for `instruments`.
fn expected_channels(instruments: &[Value]) -> HashSet<String> {
    let mut out = HashSet::new();
    for i in instruments {
        let name = i["instrument_name"].as_str().unwrap();
        let wanted = i["kind"] == "option" || i["settlement_period"] == "perpetual";
        if wanted {
            out.insert(format!("ticker.{name}.100ms"));
            out.insert(format!("quote.{name}"));
        }
    }
    for currency in ["BTC", "ETH"] {
        for kind in ["option", "future"] {
            out.insert(format!("trades.{kind}.{currency}.100ms"));
        }
    }
    out
}

fn data_subscriptions(fake: &FakeDeribit) -> Vec<String> {
    fake.subscriptions()
        .into_values()
        .flatten()
        .filter(|c| !c.starts_with("instrument."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_every_instrument_in_paced_batches_and_stores_the_replayed_tickers() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let Some(ws_capture) = capture("DERIBIT.ws.1.0") else {
        return;
    };
    let rig = rig(instruments.clone(), |_, _| {}).await;
    rig.fully_subscribed().await;

    // Every wanted channel once, on exactly one connection.
    let expected = expected_channels(&instruments);
    let subscribed = data_subscriptions(&rig.fake);
    let unique: HashSet<String> = subscribed.iter().cloned().collect();
    assert_eq!(
        subscribed.len(),
        unique.len(),
        "a channel is subscribed twice"
    );
    assert_eq!(unique, expected);
    // Batches of at most 250, at most `subscribes_per_second` per connection.
    let requests = rig.fake.requests();
    let subscribes: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "public/subscribe")
        .collect();
    assert!(subscribes.iter().all(|r| r.channels.len() <= 250));
    let mut by_conn: HashMap<usize, Vec<std::time::Instant>> = HashMap::new();
    for r in &subscribes {
        by_conn.entry(r.connection).or_default().push(r.at);
    }
    let gap = Duration::from_secs_f64(1.0 / rig.config.subscribes_per_second);
    for times in by_conn.values() {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= gap.mul_f64(0.8),
                "subscribes {:?} apart",
                pair[1] - pair[0]
            );
        }
    }
    assert!(requests.iter().any(|r| r.method == "public/set_heartbeat"));

    // Instruments recorded with every field, events for the listings.
    assert_eq!(
        rig.count("SELECT count(*) FROM market.instrument_metadata WHERE is_active"),
        instruments.len() as i64
    );
    assert_eq!(
        rig.count("SELECT count(*) FROM market.instrument_metadata WHERE record->>'tick_size' IS NOT NULL AND expiration_time IS NOT NULL"),
        instruments.len() as i64
    );
    rig.until("listing events written", |r| {
        r.count(
            "SELECT count(*) FROM market.lifecycle_events WHERE event_type = 'instrument_listed'",
        ) == instruments.len() as i64
    })
    .await;

    // Replay the recorded ticker notifications (their `raw` channels are the 100ms ones here).
    let mut sent = Vec::new();
    for n in fake::notifications_from_capture(&ws_capture).unwrap() {
        let channel = n["params"]["channel"].as_str().unwrap();
        if let Some(rest) = channel.strip_prefix("ticker.") {
            let channel = format!("ticker.{}.100ms", rest.trim_end_matches(".raw"));
            let data = &n["params"]["data"];
            if rig.fake.notify(&channel, data) == 1 {
                sent.push(data.clone());
            }
        }
    }
    assert!(
        sent.len() >= 80,
        "only {} recorded tickers were for subscribed instruments",
        sent.len()
    );
    // The recorded order-book notifications are valid messages for a channel magpie does not
    // store: skipped, not counted as malformed.
    let mut books = 0;
    for n in fake::notifications_from_capture(&ws_capture).unwrap() {
        if n["params"]["channel"]
            .as_str()
            .unwrap()
            .starts_with("book.")
        {
            rig.fake.send_raw(&n.to_string());
            books += 1;
        }
    }
    assert!(books >= 40);
    rig.until("tickers written", |r| {
        r.handle.status().rows.tickers == sent.len() as u64
    })
    .await;
    let (summary, warehouse, _data_dir, _fake, _dir) = rig.stop().await;
    assert_eq!(summary.rows.tickers, sent.len() as u64);
    assert_eq!(summary.malformed, 0);

    // Read back through the warehouse's view and compare with what was sent.
    let mut stmt = warehouse
        .conn()
        .prepare(
            "SELECT instrument, epoch_ms(exchange_time), best_bid_price, best_ask_price, mark_iv, delta, open_interest, currency, kind
             FROM market.option_ticks JOIN (SELECT 'option' AS kind) USING (kind) ORDER BY ALL",
        )
        .unwrap();
    let stored: Vec<StoredTicker> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut expected: Vec<_> = sent
        .iter()
        .map(|d| {
            let name = d["instrument_name"].as_str().unwrap().to_string();
            (
                name.clone(),
                d["timestamp"].as_i64().unwrap(),
                d["best_bid_price"].as_f64(),
                d["best_ask_price"].as_f64(),
                d["mark_iv"].as_f64(),
                d["greeks"]["delta"].as_f64(),
                d["open_interest"].as_f64(),
                name[..3].to_string(),
                "option".to_string(),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_test_requests_skips_malformed_messages_and_resubscribes_after_a_drop_without_doubling()
 {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments.clone(), |fake, _| {
        fake.set_test_request_every(Duration::from_millis(100));
    })
    .await;
    rig.fully_subscribed().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (sent, answered, closed) = rig.fake.heartbeat_figures();
    assert!(sent >= 9, "{sent} test_requests");
    assert!(
        answered + 3 >= sent,
        "{answered} of {sent} test_requests answered"
    );
    assert_eq!(closed, 0, "a connection was closed for not answering");

    // Malformed messages are counted and skipped; good data after them is stored.
    for bad in [
        "{not json",
        r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{"timestamp":"soon"}}}"#,
        r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":[1,2]}}"#,
    ] {
        rig.fake.send_raw(bad);
    }
    rig.until("malformed messages counted", |r| {
        r.handle
            .status()
            .connections
            .iter()
            .map(|c| c.malformed)
            .sum::<u64>()
            == 3 * 3
    })
    .await;
    assert_eq!(rig.fake.notify("quote.BTC-PERPETUAL", &json!({"timestamp": 1_626_993_800_000i64, "instrument_name": "BTC-PERPETUAL", "best_bid_price": 32000.5, "best_bid_amount": 1000.0, "best_ask_price": 32001.0, "best_ask_amount": 20.0})), 1);
    rig.until("the quote after them stored", |r| {
        r.handle.status().rows.quotes == 1
    })
    .await;

    // A dropped network: every connection comes back with the same channels, once each.
    let before = rig.fake.requests().len();
    rig.fake.drop_connections();
    rig.until("reconnected", |r| {
        let s = r.handle.status();
        s.connections
            .iter()
            .all(|c| c.connected && c.reconnects == 1)
    })
    .await;
    rig.fully_subscribed().await;
    // What the lifecycle connection missed while down is caught up by fetching the lists.
    rig.until("instrument lists fetched again", |r| {
        r.fake.requests()[before..]
            .iter()
            .filter(|q| q.method == "public/get_instruments")
            .count()
            >= 4
    })
    .await;
    let resubscribed: Vec<String> = rig.fake.requests()[before..]
        .iter()
        .filter(|r| r.method == "public/subscribe")
        .flat_map(|r| r.channels.clone())
        .filter(|c| !c.starts_with("instrument."))
        .collect();
    let unique: HashSet<&String> = resubscribed.iter().collect();
    assert_eq!(
        resubscribed.len(),
        unique.len(),
        "a channel was asked for twice after the reconnect"
    );
    assert_eq!(unique.len(), expected_channels(&instruments).len());
    assert_eq!(
        data_subscriptions(&rig.fake).len(),
        expected_channels(&instruments).len()
    );
    rig.until("disconnect intervals closed", |r| {
        r.count("SELECT count(*) FROM market.disconnects WHERE connection >= 0 AND reconnected_at IS NOT NULL") == 3
    })
    .await;
    assert_eq!(
        rig.count("SELECT count(*) FROM market.disconnects WHERE reconnected_at < disconnected_at"),
        0
    );
    let (summary, ..) = rig.stop().await;
    assert_eq!(summary.malformed, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stall_is_detected_by_the_data_watchdog() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments, |fake, config| {
        fake.set_test_request_every(Duration::from_millis(100));
        fake.trickle(Duration::from_millis(50));
        config.stall_timeout = Duration::from_secs(1);
    })
    .await;
    rig.fully_subscribed().await;
    // Data flows: nobody reconnects.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reasons: Vec<String> = {
        let mut stmt = rig
            .warehouse
            .conn()
            .prepare("SELECT connection || ': ' || reason FROM market.disconnects")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(
        rig.handle
            .status()
            .connections
            .iter()
            .all(|c| c.reconnects == 0),
        "{reasons:?}"
    );
    assert!(rig.handle.status().rows.quotes > 10);
    // Heartbeats go on but data stops: the data connections (not the lifecycle one) reconnect.
    rig.fake.stall(true);
    rig.until("stalled data connections reconnected", |r| {
        let s = r.handle.status();
        s.connections
            .iter()
            .filter(|c| c.role == "data")
            .all(|c| c.reconnects >= 1)
    })
    .await;
    assert_eq!(rig.handle.status().connections[0].reconnects, 0);
    assert!(
        rig.count("SELECT count(*) FROM market.disconnects WHERE reason LIKE '%stalled%'") >= 2
    );
    rig.fake.stall(false);
    rig.fully_subscribed().await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_quiet_even_for_heartbeats_is_replaced() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments, |fake, _| {
        fake.set_test_request_every(Duration::from_millis(200))
    })
    .await;
    rig.fully_subscribed().await;
    // Heartbeats keep the lifecycle connection (which carries no market data) alive.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rig.handle.status().connections[0].reconnects, 0);
    // A half-open connection: nothing arrives any more, no error either.
    rig.fake.mute(true);
    rig.until("every connection replaced", |r| {
        r.handle
            .status()
            .connections
            .iter()
            .all(|c| c.reconnects >= 1)
    })
    .await;
    rig.fake.mute(false);
    rig.fully_subscribed().await;
    assert!(
        rig.count("SELECT count(*) FROM market.disconnects WHERE reason LIKE 'nothing received%'")
            >= 3
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_channels_are_recorded_and_lower_the_coverage_until_not_ready() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let victims: Vec<String> = instruments
        .iter()
        .filter(|i| {
            i["kind"] == "option" && i["instrument_name"].as_str().unwrap().starts_with("ETH-")
        })
        .take(30)
        .map(|i| format!("quote.{}", i["instrument_name"].as_str().unwrap()))
        .collect();
    let rejected = victims.clone();
    let rig = rig(instruments, move |fake, config| {
        fake.reject(rejected);
        config.min_coverage = 0.99;
    })
    .await;
    rig.until("rejections seen", |r| {
        r.handle.status().channels_rejected == 30
    })
    .await;
    rig.until("rejections recorded", |r| {
        r.count("SELECT count(*) FROM market.lifecycle_events WHERE event_type = 'subscription_rejected' AND NOT success AND error IS NOT NULL AND detail LIKE 'quote.ETH-%'") == 30
    })
    .await;
    rig.until("coverage computed", |r| {
        r.handle.status().currencies.iter().any(|c| {
            c.currency == "ETH"
                && c.active_instruments > 0
                && c.subscribed_instruments + 30 == c.active_instruments
        })
    })
    .await;
    let status = rig.handle.status();
    let btc = status
        .currencies
        .iter()
        .find(|c| c.currency == "BTC")
        .unwrap();
    assert_eq!(btc.coverage, 1.0);
    let error = rig.handle.ready().unwrap_err();
    assert!(error.contains("ETH coverage"), "{error}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_subscribe_rejected_with_32600_is_retried_in_halves() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments.clone(), |_, config| {
        config.subscribe_batch = 500
    })
    .await;
    rig.fully_subscribed().await;
    let subscribes: Vec<usize> = rig
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "public/subscribe" && r.connection > 0)
        .map(|r| r.channels.len())
        .collect();
    assert!(
        subscribes.iter().any(|n| *n > 250),
        "the first batch was not oversized: {subscribes:?}"
    );
    let have: HashSet<String> = data_subscriptions(&rig.fake).into_iter().collect();
    let missing: Vec<&String> = expected_channels(&instruments)
        .iter()
        .filter(|c| !have.contains(*c))
        .cloned()
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}; rejected {:?}",
        rig.handle.status()
    );
    rig.until("the -32600 recorded", |r| {
        r.count("SELECT count(*) FROM market.lifecycle_events WHERE event_type = 'subscription_rejected' AND error LIKE '-32600%'") >= 1
    })
    .await;
    // After the first refusal a connection sends at most half as many.
    let per_conn_after_first: Vec<usize> = {
        let mut seen_big: HashSet<usize> = HashSet::new();
        rig.fake
            .requests()
            .iter()
            .filter(|r| r.method == "public/subscribe" && r.connection > 0)
            .filter_map(|r| {
                if r.channels.len() > 250 {
                    seen_big.insert(r.connection);
                    None
                } else {
                    seen_big.contains(&r.connection).then_some(r.channels.len())
                }
            })
            .collect()
    };
    assert!(per_conn_after_first.iter().all(|n| *n <= 250));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_burst_of_300_settlements_unsubscribes_in_few_batches_and_a_listing_subscribes() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments.clone(), |_, _| {}).await;
    rig.fully_subscribed().await;
    let expiring: Vec<String> = instruments
        .iter()
        .filter(|i| {
            i["kind"] == "option" && i["instrument_name"].as_str().unwrap().starts_with("BTC-")
        })
        .take(300)
        .map(|i| i["instrument_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expiring.len(), 300);
    let before = rig.fake.requests().len();
    for name in &expiring {
        let sent = rig.fake.notify(
            "instrument.state.option.BTC",
            &json!({"timestamp": 1_627_027_200_000i64, "state": "settlement", "instrument_name": name}),
        );
        assert_eq!(sent, 1);
    }
    let gone: HashSet<String> = expiring
        .iter()
        .flat_map(|n| [format!("ticker.{n}.100ms"), format!("quote.{n}")])
        .collect();
    rig.until("expired channels unsubscribed", |r| {
        !data_subscriptions(&r.fake).iter().any(|c| gone.contains(c))
    })
    .await;
    let unsubscribes: Vec<usize> = rig.fake.requests()[before..]
        .iter()
        .filter(|r| r.method == "public/unsubscribe")
        .map(|r| r.channels.len())
        .collect();
    assert_eq!(unsubscribes.iter().sum::<usize>(), 600);
    assert!(unsubscribes.iter().all(|n| *n <= 250), "{unsubscribes:?}");
    assert!(
        unsubscribes.len() <= 6,
        "600 channels took {} requests: {unsubscribes:?}",
        unsubscribes.len()
    );
    rig.until("expiries recorded", |r| {
        r.count("SELECT count(*) FROM market.lifecycle_events WHERE event_type = 'instrument_expired'") == 300
            && r.count("SELECT count(*) FROM market.lifecycle_events WHERE event_type = 'subscription_removed'") == 600
            && r.count("SELECT count(*) FROM market.instrument_metadata WHERE NOT is_active AND state = 'settlement'") == 300
    })
    .await;
    rig.fully_subscribed().await; // coverage counts trading instruments only

    // A listing: instrument.creation with the full record.
    let mut new = instruments
        .iter()
        .find(|i| {
            i["kind"] == "option" && i["instrument_name"].as_str().unwrap().starts_with("ETH-")
        })
        .unwrap()
        .clone();
    new["instrument_name"] = json!("ETH-31DEC21-99000-C");
    new["strike"] = json!(99000.0);
    assert_eq!(rig.fake.notify("instrument.creation.option.ETH", &new), 1);
    rig.until("the listing subscribed", |r| {
        let subs = data_subscriptions(&r.fake);
        subs.contains(&"ticker.ETH-31DEC21-99000-C.100ms".to_string())
            && subs.contains(&"quote.ETH-31DEC21-99000-C".to_string())
    })
    .await;
    rig.until("the listing recorded", |r| {
        r.count("SELECT count(*) FROM market.instrument_metadata WHERE instrument_name = 'ETH-31DEC21-99000-C' AND is_active AND strike = 99000") == 1
            && r.count("SELECT count(*) FROM market.lifecycle_events WHERE event_type = 'instrument_listed' AND instrument_name = 'ETH-31DEC21-99000-C'") == 1
    })
    .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_what_the_notifications_missed() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments.clone(), |_, config| {
        config.reconcile_every = Duration::from_millis(300)
    })
    .await;
    rig.fully_subscribed().await;
    // Three instruments vanish from the exchange's list without a state notification.
    let (kept, dropped): (Vec<Value>, Vec<Value>) = instruments.iter().cloned().partition(|i| {
        !matches!(
            i["instrument_name"].as_str().unwrap(),
            "BTC-24SEP21-40000-P" | "ETH-23JUL21-2050-P" | "BTC-PERPETUAL"
        )
    });
    assert_eq!(dropped.len(), 3);
    rig.fake.set_instruments(kept);
    rig.until("the vanished ones unsubscribed and marked inactive", |r| {
        let subs = data_subscriptions(&r.fake);
        !subs.contains(&"quote.BTC-PERPETUAL".to_string())
            && !subs.contains(&"quote.ETH-23JUL21-2050-P".to_string())
            && r.count("SELECT count(*) FROM market.instrument_metadata WHERE NOT is_active") == 3
    })
    .await;
    assert!(rig.count("SELECT count(*) FROM market.lifecycle_events WHERE event_type = 'reconcile' AND success AND detail LIKE '%expired%'") >= 4);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blast_through_a_tiny_queue_loses_nothing() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments.clone(), |_, config| {
        config.queue_capacity = 16;
        config.flush_rows = 1000;
    })
    .await;
    rig.fully_subscribed().await;
    let names: Vec<String> = instruments
        .iter()
        .filter(|i| i["kind"] == "option")
        .map(|i| i["instrument_name"].as_str().unwrap().to_string())
        .collect();
    let texts: Arc<Vec<String>> = Arc::new(
        (0..2000)
            .map(|i| {
                fake::quote_notification(
                    &names[i % names.len()],
                    1_626_993_723_000 + i as i64,
                    0.01 + i as f64 * 1e-4,
                    0.02,
                )
            })
            .collect(),
    );
    let per_connection = 10_000;
    let asked = rig.fake.blast(texts, per_connection);
    assert_eq!(asked, 2);
    rig.until("the blast written", |r| {
        r.handle.status().rows.quotes == (asked * per_connection) as u64
    })
    .await;
    let (summary, warehouse, _data_dir, _fake, _dir) = rig.stop().await;
    assert_eq!(summary.rows.quotes, 20_000);
    let rows: i64 = warehouse
        .conn()
        .query_row("SELECT count(*) FROM market.quotes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 20_000);
    let per_instrument: i64 = warehouse
        .conn()
        .query_row("SELECT count(DISTINCT instrument) FROM market.quotes WHERE kind = 'option' AND currency IN ('BTC', 'ETH') AND date = DATE '2021-07-22'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(per_instrument, names.len().min(2000) as i64);
    // Every value as sent: each of the 2,000 messages went out 10 times (5 per connection),
    // so per (instrument, time) there are 10 identical rows with that message's bid and sizes.
    let mut stmt = warehouse
        .conn()
        .prepare(
            "SELECT instrument, epoch_ms(exchange_time), best_bid_price, best_ask_price, best_bid_amount, best_ask_amount, count(*)
             FROM market.quotes GROUP BY ALL ORDER BY 2",
        )
        .unwrap();
    let stored: Vec<(String, i64, f64, f64, f64, f64, i64)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<(String, i64, f64, f64, f64, f64, i64)> = (0..2000)
        .map(|i| {
            (
                names[i % names.len()].clone(),
                1_626_993_723_000 + i as i64,
                0.01 + i as f64 * 1e-4,
                0.02,
                10.0,
                12.5,
                10,
            )
        })
        .collect();
    // serde_json's default float parser may land one ulp away from the sender's value.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    assert_eq!(stored.len(), expected.len());
    for (got, want) in stored.iter().zip(&expected) {
        let same = got.0 == want.0
            && got.1 == want.1
            && close(got.2, want.2)
            && close(got.3, want.3)
            && close(got.4, want.4)
            && close(got.5, want.5)
            && got.6 == want.6;
        assert!(same, "stored {got:?}, sent {want:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_and_perpetual_tickers_land_in_their_views() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments, |_, _| {}).await;
    rig.fully_subscribed().await;
    // Trades arrive in arrays on the per-kind channel.
    let trades = json!([
        {"trade_seq": 101, "trade_id": "ETH-9001", "timestamp": 1_626_993_724_000i64, "tick_direction": 1,
         "price": 0.0025, "mark_price": 0.0024, "iv": 121.5, "instrument_name": "ETH-30JUL21-2800-C",
         "index_price": 2006.7, "direction": "buy", "amount": 12.0},
        {"trade_seq": 102, "trade_id": "ETH-9002", "timestamp": 1_626_993_724_050i64, "tick_direction": 3,
         "price": 0.003, "mark_price": 0.0024, "iv": 125.0, "instrument_name": "ETH-30JUL21-2800-C",
         "index_price": 2006.9, "direction": "sell", "amount": 3.5, "liquidation": "T"}
    ]);
    assert_eq!(rig.fake.notify("trades.option.ETH.100ms", &trades), 1);
    // A perpetual's ticker: funding instead of greeks.
    let perpetual = json!({
        "timestamp": 1_626_993_725_000i64, "instrument_name": "BTC-PERPETUAL", "state": "open",
        "best_bid_price": 32150.5, "best_bid_amount": 21000.0, "best_ask_price": 32151.0, "best_ask_amount": 4500.0,
        "mark_price": 32150.61, "index_price": 32140.2, "last_price": 32151.0, "open_interest": 650_000_000.0,
        "current_funding": 0.00001, "funding_8h": 0.0000345, "stats": {"volume": 25000.5}
    });
    assert_eq!(rig.fake.notify("ticker.BTC-PERPETUAL.100ms", &perpetual), 1);
    rig.until("rows written", |r| {
        let s = r.handle.status();
        s.rows.trades == 2 && s.rows.tickers == 1
    })
    .await;
    let (_summary, warehouse, _data_dir, _fake, _dir) = rig.stop().await;
    let conn = warehouse.conn();
    let mut stmt = conn
        .prepare(
            "SELECT trade_id, trade_seq, epoch_ms(exchange_time), price, amount, direction, iv, liquidation, currency, kind
             FROM market.trades ORDER BY trade_seq",
        )
        .unwrap();
    type Trade = (
        String,
        i64,
        i64,
        f64,
        f64,
        String,
        f64,
        Option<String>,
        String,
        String,
    );
    let stored: Vec<Trade> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let eth = |s: &str| s.to_string();
    assert_eq!(
        stored,
        vec![
            (
                eth("ETH-9001"),
                101,
                1_626_993_724_000,
                0.0025,
                12.0,
                eth("buy"),
                121.5,
                None,
                eth("ETH"),
                eth("option")
            ),
            (
                eth("ETH-9002"),
                102,
                1_626_993_724_050,
                0.003,
                3.5,
                eth("sell"),
                125.0,
                Some(eth("T")),
                eth("ETH"),
                eth("option")
            ),
        ]
    );
    let (instrument, funding, volume, mark, kind): (String, f64, f64, f64, String) = conn
        .query_row(
            "SELECT instrument, funding_8h, volume_24h, mark_price, kind FROM market.future_ticks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (instrument.as_str(), funding, volume, mark, kind.as_str()),
        ("BTC-PERPETUAL", 0.0000345, 25000.5, 32150.61, "future")
    );
    let options: i64 = conn
        .query_row("SELECT count(*) FROM market.option_ticks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(options, 0, "a perpetual's ticker is not an option's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_request_credits_10028_retries_more_slowly() {
    let Some(instruments) = recorded_instruments() else {
        return;
    };
    let rig = rig(instruments.clone(), |fake, _| {
        fake.fail_subscribes(10028, 3)
    })
    .await;
    rig.fully_subscribed().await;
    assert_eq!(
        data_subscriptions(&rig.fake).len(),
        expected_channels(&instruments).len()
    );
    // Nothing was given up: the refused requests were asked again, not recorded as rejected.
    assert_eq!(rig.handle.status().channels_rejected, 0);
    // Each refused request was asked again (perhaps topped up with more channels), and from
    // then on its connection paced its requests at least twice as far apart.
    let gap = Duration::from_secs_f64(1.0 / rig.config.subscribes_per_second);
    let requests = rig.fake.requests();
    let refused: Vec<&magpie_fakes::deribit::Request> =
        requests.iter().filter(|r| r.refused).collect();
    assert_eq!(refused.len(), 3);
    for refusal in refused {
        let later: Vec<&magpie_fakes::deribit::Request> = requests
            .iter()
            .filter(|r| {
                r.connection == refusal.connection
                    && r.method == "public/subscribe"
                    && r.at > refusal.at
            })
            .collect();
        assert!(
            later
                .iter()
                .any(|r| !r.refused && refusal.channels.iter().all(|c| r.channels.contains(c))),
            "a refused batch was not asked again"
        );
        // Measured over the whole run of later requests, not gap by gap: one request sent a
        // little late (the machine busy) arrives closer to the next one, which the pacer
        // schedules from its own clock, so single gaps jitter while their sum does not.
        for (n, r) in later.iter().enumerate() {
            let span = r.at - refusal.at;
            assert!(
                span >= gap.mul_f64(1.9 * (n as f64 + 1.0)),
                "request {} after the refusal came {span:?} after it",
                n + 1
            );
        }
    }
    rig.stop().await;
}

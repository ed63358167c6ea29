//! A fake Deribit on loopback for tests and benchmarks: it speaks the real JSON-RPC wire
//! format (`public/set_heartbeat`, `public/test`, `public/subscribe` with Deribit's -32600 for
//! oversized requests, `public/unsubscribe`, `public/get_instruments`), sends `test_request`
//! heartbeats and closes a connection that does not answer them, and lets a test script what
//! real collectors meet: recorded notifications replayed, dropped connections, silent stalls,
//! rejected channels, expiry bursts, listings, malformed messages, and a full-speed blast.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use magpie_market::deribit::capture::{self, Record};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub connection: usize,
    pub at: Instant,
    pub method: String,
    /// `params.channels` of a (un)subscribe.
    pub channels: Vec<String>,
    /// Answered with the error set by [`FakeDeribit::fail_subscribes`].
    pub refused: bool,
}

enum Out {
    Text(String),
    /// Drop the TCP connection without a close frame (a network failure).
    Drop,
    /// Send `count` messages from `texts`, round-robin, as fast as the socket takes them
    /// (`per_second` 0) or paced at `per_second`.
    Blast {
        texts: Arc<Vec<String>>,
        count: usize,
        per_second: usize,
    },
}

struct Conn {
    subscriptions: HashSet<String>,
    out: mpsc::UnboundedSender<Out>,
}

#[derive(Default)]
struct Shared {
    instruments: Mutex<Vec<Value>>,
    conns: Mutex<HashMap<usize, Conn>>,
    requests: Mutex<Vec<Request>>,
    rejects: Mutex<HashSet<String>>,
    /// (error code, subscribe requests still to fail)
    failing: Mutex<(i64, usize)>,
    stalled: AtomicBool,
    muted: AtomicBool,
    next_conn: AtomicUsize,
    max_channels: AtomicUsize,
    test_request_every_ms: AtomicU64,
    test_requests_sent: AtomicU64,
    test_answers: AtomicU64,
    closed_for_silence: AtomicU64,
    data_sent: AtomicU64,
    blast_done: AtomicU64,
}

/// The running fake; dropping it stops accepting.
pub struct FakeDeribit {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDeribit {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FakeDeribit {
    /// Listen on 127.0.0.1 (port 0: any free one) serving `instruments`
    /// (`get_instruments` records).
    pub async fn start(port: u16, instruments: Vec<Value>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        *shared.instruments.lock().expect("fresh") = instruments;
        shared.max_channels.store(250, Ordering::Relaxed);
        let accept_shared = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                        serve(ws, shared).await;
                    }
                });
            }
        });
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// `ws://127.0.0.1:PORT/ws/api/v2`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws/api/v2", self.addr)
    }

    /// Subscribes with more channels than this are refused with -32600 (default 250).
    pub fn set_max_channels(&self, max: usize) {
        self.shared.max_channels.store(max, Ordering::Relaxed);
    }

    /// Send `test_request` this often after `set_heartbeat` (default: the interval asked);
    /// a connection that has not answered the previous one is closed.
    pub fn set_test_request_every(&self, every: Duration) {
        self.shared
            .test_request_every_ms
            .store(every.as_millis() as u64, Ordering::Relaxed);
    }

    /// Leave these channels out of subscribe results.
    pub fn reject(&self, channels: impl IntoIterator<Item = String>) {
        self.shared.rejects.lock().expect("lock").extend(channels);
    }

    /// Answer the next `count` subscribe requests with error `code` (e.g. 10028).
    pub fn fail_subscribes(&self, code: i64, count: usize) {
        *self.shared.failing.lock().expect("lock") = (code, count);
    }

    /// Stop (or resume) sending market data; heartbeats go on.
    pub fn stall(&self, stalled: bool) {
        self.shared.stalled.store(stalled, Ordering::Relaxed);
    }

    /// Send nothing at all (no data, no heartbeats), like a half-open connection, or resume.
    pub fn mute(&self, muted: bool) {
        self.shared.muted.store(muted, Ordering::Relaxed);
    }

    /// Replace the instrument list `get_instruments` answers with.
    pub fn set_instruments(&self, instruments: Vec<Value>) {
        *self.shared.instruments.lock().expect("lock") = instruments;
    }

    /// Drop every connection (no close frame).
    pub fn drop_connections(&self) {
        for conn in self.shared.conns.lock().expect("lock").values() {
            let _ = conn.out.send(Out::Drop);
        }
    }

    /// Send raw text on every connection.
    pub fn send_raw(&self, text: &str) {
        for conn in self.shared.conns.lock().expect("lock").values() {
            let _ = conn.out.send(Out::Text(text.to_string()));
        }
    }

    /// A subscription notification on `channel` to the connections subscribed to it; returns
    /// how many got it (none while stalled, except `instrument.*` channels).
    pub fn notify(&self, channel: &str, data: &Value) -> usize {
        if self.shared.stalled.load(Ordering::Relaxed) && !channel.starts_with("instrument.") {
            return 0;
        }
        let text = json!({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}).to_string();
        let mut sent = 0;
        for conn in self.shared.conns.lock().expect("lock").values() {
            if conn.subscriptions.contains(channel)
                && conn.out.send(Out::Text(text.clone())).is_ok()
            {
                sent += 1;
            }
        }
        self.shared
            .data_sent
            .fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }

    /// Every connection's subscriptions.
    pub fn subscriptions(&self) -> HashMap<usize, HashSet<String>> {
        self.shared
            .conns
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, c)| (*id, c.subscriptions.clone()))
            .collect()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.shared.conns.lock().expect("lock").len()
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// (test_requests sent, answers received, connections closed for not answering).
    pub fn heartbeat_figures(&self) -> (u64, u64, u64) {
        (
            self.shared.test_requests_sent.load(Ordering::Relaxed),
            self.shared.test_answers.load(Ordering::Relaxed),
            self.shared.closed_for_silence.load(Ordering::Relaxed),
        )
    }

    /// Ask every connection subscribed to any of `texts`' channels to send `per_connection`
    /// messages from `texts` (already-built notifications), round-robin, as fast as the
    /// client reads. Returns the connections asked.
    pub fn blast(&self, texts: Arc<Vec<String>>, per_connection: usize) -> usize {
        let mut asked = 0;
        for conn in self.shared.conns.lock().expect("lock").values() {
            if conn
                .subscriptions
                .iter()
                .any(|c| !c.starts_with("instrument."))
                && conn
                    .out
                    .send(Out::Blast {
                        texts: Arc::clone(&texts),
                        count: per_connection,
                        per_second: 0,
                    })
                    .is_ok()
            {
                asked += 1;
            }
        }
        asked
    }

    /// Every `period`, send one generated quote on one subscribed `quote.*` channel per
    /// connection (so a collector's stall watchdog sees a live feed); stops with the fake.
    pub fn trickle(&self, period: Duration) {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                if Arc::strong_count(&shared) == 1 {
                    return;
                }
                if shared.stalled.load(Ordering::Relaxed) {
                    continue;
                }
                n += 1;
                for conn in shared.conns.lock().expect("lock").values() {
                    let mut quotes: Vec<&String> = conn
                        .subscriptions
                        .iter()
                        .filter(|c| c.starts_with("quote."))
                        .collect();
                    if quotes.is_empty() {
                        continue;
                    }
                    quotes.sort();
                    let channel = quotes[(n as usize) % quotes.len()];
                    let instrument = &channel["quote.".len()..];
                    let now = chrono::Utc::now().timestamp_millis();
                    let _ = conn
                        .out
                        .send(Out::Text(quote_notification(instrument, now, 0.05, 0.0505)));
                }
            }
        });
    }

    /// Like [`FakeDeribit::blast`], but each connection gets its own stream of `count`
    /// messages for the instruments it is subscribed to, made by `generate` (e.g.
    /// [`generate_feed`]) from its `ticker.*` and `quote.*` channels.
    /// `per_second` paces each connection's stream (0: as fast as the collector reads).
    pub fn blast_feeds(
        &self,
        count: usize,
        per_second: usize,
        mut generate: impl FnMut(&[String], usize) -> Vec<String>,
    ) -> usize {
        let mut asked = 0;
        for conn in self.shared.conns.lock().expect("lock").values() {
            let mut instruments: Vec<String> = conn
                .subscriptions
                .iter()
                .filter_map(|c| c.strip_prefix("quote."))
                .map(str::to_string)
                .collect();
            if instruments.is_empty() {
                continue;
            }
            instruments.sort();
            let texts = Arc::new(generate(&instruments, count));
            if conn
                .out
                .send(Out::Blast {
                    texts,
                    count,
                    per_second,
                })
                .is_ok()
            {
                asked += 1;
            }
        }
        asked
    }

    /// Blasts finished.
    pub fn blasts_done(&self) -> u64 {
        self.shared.blast_done.load(Ordering::Relaxed)
    }
}

async fn serve(ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, shared: Arc<Shared>) {
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    shared.conns.lock().expect("lock").insert(
        id,
        Conn {
            subscriptions: HashSet::new(),
            out: out_tx,
        },
    );
    let (mut write, mut read) = ws.split();
    let mut heartbeat: Option<tokio::time::Interval> = None;
    let mut unanswered = false;
    loop {
        let beat = async {
            match heartbeat.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            message = read.next() => {
                let text = match message {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(request) = serde_json::from_str::<Value>(&text) else { continue };
                if shared.muted.load(Ordering::Relaxed) {
                    continue;
                }
                let (reply, start_heartbeat) = answer(&shared, id, &request, &mut unanswered);
                if let Some(seconds) = start_heartbeat {
                    let ms = match shared.test_request_every_ms.load(Ordering::Relaxed) {
                        0 => seconds * 1000,
                        ms => ms,
                    };
                    let period = Duration::from_millis(ms.max(1));
                    heartbeat = Some(tokio::time::interval_at(tokio::time::Instant::now() + period, period));
                }
                if write.send(Message::text(reply.to_string())).await.is_err() {
                    break;
                }
            }
            out = out_rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if shared.muted.load(Ordering::Relaxed) { continue; }
                    if write.send(Message::text(text)).await.is_err() { break; }
                }
                Some(Out::Blast { texts, count, per_second }) => {
                    let mut ok = true;
                    // Paced: a slice every 10 ms.
                    let slice = if per_second == 0 { count.max(1) } else { (per_second / 100).max(1) };
                    let mut next = tokio::time::Instant::now();
                    for i in 0..count {
                        if i > 0 && i % slice == 0 {
                            if write.flush().await.is_err() {
                                ok = false;
                                break;
                            }
                            next += Duration::from_millis(10);
                            tokio::time::sleep_until(next).await;
                        }
                        if write.feed(Message::text(texts[i % texts.len()].clone())).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    ok = ok && write.flush().await.is_ok();
                    shared.data_sent.fetch_add(count as u64, Ordering::Relaxed);
                    shared.blast_done.fetch_add(1, Ordering::Relaxed);
                    if !ok { break; }
                    // Deaf while blasting: the answers to earlier test_requests were not read.
                    unanswered = false;
                    if let Some(beat) = heartbeat.as_mut() {
                        beat.reset();
                    }
                }
                Some(Out::Drop) | None => break,
            },
            _ = beat => {
                if shared.muted.load(Ordering::Relaxed) {
                    continue;
                }
                if unanswered {
                    // Deribit closes a connection that ignores test_request.
                    shared.closed_for_silence.fetch_add(1, Ordering::Relaxed);
                    let _ = write.send(Message::Close(None)).await;
                    break;
                }
                unanswered = true;
                shared.test_requests_sent.fetch_add(1, Ordering::Relaxed);
                let text = json!({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}).to_string();
                if write.send(Message::text(text)).await.is_err() { break; }
            }
        }
    }
    shared.conns.lock().expect("lock").remove(&id);
}

/// The reply to one request, and the heartbeat interval when it set one.
fn answer(
    shared: &Shared,
    conn: usize,
    request: &Value,
    unanswered: &mut bool,
) -> (Value, Option<u64>) {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request["method"].as_str().unwrap_or_default().to_string();
    let params = &request["params"];
    let channels: Vec<String> = params["channels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    shared.requests.lock().expect("lock").push(Request {
        connection: conn,
        at: Instant::now(),
        method: method.clone(),
        channels: channels.clone(),
        refused: false,
    });
    let ok = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result, "usIn": 0, "usOut": 0, "usDiff": 0, "testnet": false});
    let error = |code: i64, message: &str| json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    match method.as_str() {
        "public/set_heartbeat" => match params["interval"].as_u64() {
            Some(s) if s >= 10 => (ok(json!("ok")), Some(s)),
            _ => (error(11029, "invalid_arguments"), None),
        },
        "public/test" => {
            *unanswered = false;
            shared.test_answers.fetch_add(1, Ordering::Relaxed);
            (ok(json!({"version": "1.2.26"})), None)
        }
        "public/subscribe" => {
            {
                let mut failing = shared.failing.lock().expect("lock");
                if failing.1 > 0 {
                    failing.1 -= 1;
                    if let Some(last) = shared.requests.lock().expect("lock").last_mut() {
                        last.refused = true;
                    }
                    return (error(failing.0, "too_many_requests"), None);
                }
            }
            if channels.len() > shared.max_channels.load(Ordering::Relaxed) {
                return (error(-32600, "request entity too large"), None);
            }
            let rejects = shared.rejects.lock().expect("lock").clone();
            let accepted: Vec<String> = channels
                .into_iter()
                .filter(|c| !rejects.contains(c))
                .collect();
            if let Some(c) = shared.conns.lock().expect("lock").get_mut(&conn) {
                c.subscriptions.extend(accepted.iter().cloned());
            }
            (ok(json!(accepted)), None)
        }
        "public/unsubscribe" => {
            let mut removed = Vec::new();
            if let Some(c) = shared.conns.lock().expect("lock").get_mut(&conn) {
                for channel in channels {
                    if c.subscriptions.remove(&channel) {
                        removed.push(channel);
                    }
                }
            }
            (ok(json!(removed)), None)
        }
        "public/get_instruments" => {
            let currency = params["currency"].as_str().unwrap_or_default();
            let kind = params["kind"].as_str();
            let list: Vec<Value> = shared
                .instruments
                .lock()
                .expect("lock")
                .iter()
                .filter(|i| {
                    magpie_market::rows::currency_of(
                        i["instrument_name"].as_str().unwrap_or_default(),
                    ) == currency
                        && kind.is_none_or(|k| i["kind"].as_str() == Some(k))
                })
                .cloned()
                .collect();
            (ok(Value::Array(list)), None)
        }
        _ => (error(-32601, "Method not found"), None),
    }
}

/// A recorded Deribit session of the shared test data (`../shared/realdata/deribit/`, beside
/// the repository, or under `REALDATA_DIR`, read in place), or `None` with a printed notice
/// when it is absent, so a test can skip. When `REQUIRE_REALDATA` is set (CI sets it) a
/// missing capture panics instead, so the tests that need it cannot pass unseen.
pub fn recorded_capture(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("REALDATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realdata"));
    let path = base.join("deribit/cryptofeed_2021-07-22").join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("REQUIRE_REALDATA").is_none(),
        "REQUIRE_REALDATA is set but the recorded Deribit session is missing: no {} \
         (../shared/realdata beside the clone, or REALDATA_DIR)",
        path.display()
    );
    eprintln!("SKIPPED: {} is absent", path.display());
    None
}

/// The recorded BTC and ETH `get_instruments` lists (`DERIBIT.0`), if present (see
/// [`recorded_capture`]). A capture that is present but unreadable panics: that is a broken
/// test setup, not a reason to skip.
pub fn recorded_btc_eth_instruments() -> Option<Vec<Value>> {
    let path = recorded_capture("DERIBIT.0")?;
    let all = instruments_from_capture(&path)
        .unwrap_or_else(|e| panic!("the recorded capture {} is unreadable: {e}", path.display()));
    Some(
        all.into_iter()
            .filter(|i| {
                let name = i["instrument_name"].as_str().unwrap_or_default();
                name.starts_with("BTC-") || name.starts_with("ETH-")
            })
            .collect(),
    )
}

/// The `get_instruments` records of a cryptofeed capture (`DERIBIT.0`).
pub fn instruments_from_capture(path: &Path) -> std::io::Result<Vec<Value>> {
    let records = capture::read(path)?.map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    for record in records {
        if let Record::Http { url, body, .. } = record
            && url.contains("get_instruments")
        {
            let parsed: Value = serde_json::from_str(&body).map_err(std::io::Error::other)?;
            if let Some(list) = parsed["result"].as_array() {
                out.extend(list.iter().cloned());
            }
        }
    }
    Ok(out)
}

/// The notifications a cryptofeed websocket capture (`DERIBIT.ws.1.0`) holds, as the server
/// sent them.
pub fn notifications_from_capture(path: &Path) -> std::io::Result<Vec<Value>> {
    let records = capture::read(path)?.map_err(std::io::Error::other)?;
    Ok(records
        .into_iter()
        .filter_map(|r| match r {
            Record::Received { message, .. } => serde_json::from_str::<Value>(&message).ok(),
            _ => None,
        })
        .filter(|m| m["method"] == "subscription")
        .collect())
}

/// `instruments` grown to `target` options per currency by copying recorded options with new
/// strikes (the capture holds ~400 per currency; the production collector saw ~730 BTC and
/// ~820 ETH options). The copies keep every field but name, id and strike.
pub fn scale_options(instruments: &[Value], currency: &str, target: usize) -> Vec<Value> {
    let options: Vec<&Value> = instruments
        .iter()
        .filter(|i| {
            i["kind"] == "option"
                && magpie_market::rows::currency_of(
                    i["instrument_name"].as_str().unwrap_or_default(),
                ) == currency
        })
        .collect();
    let mut out: Vec<Value> = options.iter().map(|v| (*v).clone()).collect();
    let mut names: HashSet<String> = out
        .iter()
        .filter_map(|v| v["instrument_name"].as_str().map(str::to_string))
        .collect();
    let mut round = 1u64;
    while out.len() < target && !options.is_empty() {
        for template in &options {
            if out.len() >= target {
                break;
            }
            let name = template["instrument_name"].as_str().unwrap_or_default();
            let parts: Vec<&str> = name.split('-').collect();
            let Some(strike) = template["strike"].as_f64() else {
                continue;
            };
            let new_strike = strike + round as f64 * 25.0;
            let new_name = format!("{}-{}-{}-{}", parts[0], parts[1], new_strike, parts[3]);
            if !names.insert(new_name.clone()) {
                continue;
            }
            let mut copy = (*template).clone();
            copy["instrument_name"] = json!(new_name);
            copy["strike"] = json!(new_strike);
            copy["instrument_id"] = json!(900_000 + out.len());
            out.push(copy);
        }
        round += 1;
    }
    out
}

/// A `quote.{instrument}` notification as Deribit sends it.
pub fn quote_notification(instrument: &str, timestamp_ms: i64, bid: f64, ask: f64) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {
            "channel": format!("quote.{instrument}"),
            "data": {
                "timestamp": timestamp_ms,
                "instrument_name": instrument,
                "best_bid_price": bid,
                "best_bid_amount": 10.0,
                "best_ask_price": ask,
                "best_ask_amount": 12.5
            }
        }
    })
    .to_string()
}

/// A realistic stream of `count` notifications for `instruments`: each instrument updates
/// every 100 ms in turn, its mid price walks on a 0.0005 tick grid, and every other message is
/// a full ticker (from `ticker_template`, a recorded ticker's `data`) instead of a quote.
pub fn generate_feed(
    instruments: &[String],
    count: usize,
    ticker_template: &Value,
    start_ms: i64,
    seed: u64,
) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tick = 0.0005;
    let mut mids: Vec<f64> = instruments
        .iter()
        .map(|_| (rng.random_range(2..400) as f64) * tick)
        .collect();
    let step_ms = (100.0 / instruments.len().max(1) as f64).max(0.001);
    (0..count)
        .map(|i| {
            let k = i % instruments.len();
            let name = &instruments[k];
            let ts = start_ms + (i as f64 * step_ms) as i64;
            if rng.random_bool(0.3) {
                let moves = rng.random_range(-2i32..=2) as f64;
                mids[k] = (mids[k] + moves * tick).max(tick * 2.0);
            }
            let spread = (rng.random_range(1..4) as f64) * tick;
            let bid = ((mids[k] - spread / 2.0) / tick).round() * tick;
            let ask = bid + spread;
            let bid_amount = (rng.random_range(1..200) as f64) * 0.5;
            let ask_amount = (rng.random_range(1..200) as f64) * 0.5;
            if i % 2 == 0 {
                json!({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": format!("quote.{name}"), "data": {
                    "timestamp": ts, "instrument_name": name, "best_bid_price": bid, "best_bid_amount": bid_amount,
                    "best_ask_price": ask, "best_ask_amount": ask_amount}}})
                .to_string()
            } else {
                let mut data = ticker_template.clone();
                data["instrument_name"] = json!(name);
                data["timestamp"] = json!(ts);
                data["best_bid_price"] = json!(bid);
                data["best_ask_price"] = json!(ask);
                data["best_bid_amount"] = json!(bid_amount);
                data["best_ask_amount"] = json!(ask_amount);
                data["mark_price"] = json!(((bid + ask) / 2.0 * 1e6).round() / 1e6);
                json!({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": format!("ticker.{name}.100ms"), "data": data}})
                    .to_string()
            }
        })
        .collect()
}

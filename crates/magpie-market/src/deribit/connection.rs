//! One websocket connection to Deribit, kept alive for the collector's lifetime.
//!
//! It owns the set of channels assigned to it (its part of the collector's registry) and
//! makes the server's subscriptions match that set: after every (re)connect it sets the
//! heartbeat and subscribes the whole set again, in batches of at most `subscribe_batch`
//! channels, at most `subscribes_per_second` requests a second, comparing each result with
//! what it asked for. Because the set is a set, a reconnect never doubles a subscription.
//!
//! It answers every `test_request`, counts data messages for a watchdog (a feed that sends
//! heartbeats but no data for `stall_timeout` is reconnected; one that sends nothing at all for
//! three heartbeat intervals too), reconnects with exponential
//! backoff and jitter, parses market data into rows and hands them to the writer through a
//! bounded channel: when the writer falls behind, the connection stops reading.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::wire::{
    self, Incoming, Instrument, InstrumentState, RpcError, TOO_LARGE, TOO_MANY_REQUESTS,
};
use crate::rows::Tick;

/// How a connection behaves.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub url: String,
    pub heartbeat_secs: u64,
    /// Reconnect when nothing at all (not even a heartbeat) arrived for this long: a
    /// half-open TCP connection raises no error. Three heartbeat intervals by default.
    pub silence_timeout: Duration,
    /// Reconnect when no market data arrived for this long (`None`: the lifecycle connection,
    /// whose channels are quiet for hours).
    pub stall_timeout: Option<Duration>,
    pub subscribe_batch: usize,
    /// Pause between two subscribe/unsubscribe requests.
    pub request_gap: Duration,
    pub backoff_first: Duration,
    pub backoff_max: Duration,
}

/// What the collector asks of a connection.
#[derive(Debug)]
pub enum Command {
    /// Make sure these channels are subscribed (again, if they were rejected).
    Subscribe(Vec<String>),
    /// Drop these channels.
    Unsubscribe(Vec<String>),
    /// A JSON-RPC call; the reply is the raw `result` JSON.
    Call {
        method: String,
        params: serde_json::Value,
        reply: oneshot::Sender<Result<String, CallError>>,
    },
}

/// Why a call has no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("the connection is down")]
    NotConnected,
}

/// What a connection reports to the collector.
#[derive(Debug)]
pub enum Event {
    Connected {
        conn: usize,
        at: DateTime<Utc>,
    },
    Disconnected {
        conn: usize,
        at: DateTime<Utc>,
        reason: String,
    },
    /// The server accepted these channels.
    Subscribed {
        conn: usize,
        channels: Vec<String>,
    },
    /// The server did not accept these channels (absent from the result, or an error).
    Rejected {
        conn: usize,
        channels: Vec<String>,
        error: String,
    },
    /// A subscribe of `size` channels was refused as too large (-32600): it is retried in
    /// halves and later batches are smaller.
    BatchTooLarge {
        conn: usize,
        size: usize,
    },
    Unsubscribed {
        conn: usize,
        channels: Vec<String>,
    },
    InstrumentState {
        currency: String,
        state: InstrumentState,
    },
    InstrumentCreated {
        currency: String,
        instrument: Box<Instrument>,
    },
}

/// Live figures of one connection, read by the status page.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub connected: AtomicBool,
    pub messages: AtomicU64,
    pub data_messages: AtomicU64,
    pub malformed: AtomicU64,
    pub reconnects: AtomicU64,
    pub last_message_us: AtomicI64,
    /// When the first market data arrived (µs since the epoch; 0 = not yet).
    pub first_data_us: AtomicI64,
    pub subscribed: AtomicUsize,
    pub assigned: AtomicUsize,
}

enum Outgoing {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

enum Pending {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    Heartbeat,
    Test,
    Call(oneshot::Sender<Result<String, CallError>>),
}

/// One connection's task state.
pub struct Connection {
    id: usize,
    settings: ConnectionSettings,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    ticks: mpsc::Sender<Tick>,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
    /// The channels this connection should have: its part of the registry.
    assigned: BTreeSet<String>,
    /// Accepted by the server in this session.
    accepted: HashSet<String>,
    /// Queued or sent, not answered yet.
    in_flight: HashSet<String>,
    batch_limit: usize,
    /// When the next paced (un)subscribe may be sent.
    next_request: Instant,
    next_id: u64,
    logged_malformed: u64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

impl Connection {
    pub fn new(
        id: usize,
        settings: ConnectionSettings,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<Event>,
        ticks: mpsc::Sender<Tick>,
        stats: Arc<ConnectionStats>,
        shutdown: CancellationToken,
    ) -> Self {
        let batch_limit = settings.subscribe_batch.max(1);
        Self {
            id,
            settings,
            commands,
            events,
            ticks,
            stats,
            shutdown,
            assigned: BTreeSet::new(),
            accepted: HashSet::new(),
            in_flight: HashSet::new(),
            batch_limit,
            next_request: Instant::now(),
            next_id: 1,
            logged_malformed: 0,
        }
    }

    /// Connect, serve, reconnect, until shutdown.
    pub async fn run(mut self) {
        let mut backoff = self.settings.backoff_first;
        let mut first = true;
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let connect = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_tungstenite::connect_async_with_config(
                    self.settings.url.as_str(),
                    None,
                    true,
                ),
            );
            let attempt = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                attempt = connect => attempt,
            };
            let reason = match attempt {
                Ok(Ok((ws, _))) => {
                    if !first {
                        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    first = false;
                    self.stats.connected.store(true, Ordering::Relaxed);
                    let _ = self.events.send(Event::Connected {
                        conn: self.id,
                        at: Utc::now(),
                    });
                    tracing::info!(
                        connection = self.id,
                        channels = self.assigned.len(),
                        "connected to Deribit"
                    );
                    let started = Instant::now();
                    let reason = self.session(ws).await;
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.stats.subscribed.store(0, Ordering::Relaxed);
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = self.settings.backoff_first;
                    }
                    match reason {
                        Some(reason) => reason,
                        None => return,
                    }
                }
                Ok(Err(e)) => format!("cannot connect: {e}"),
                Err(_) => format!(
                    "cannot connect: no answer in {}s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            };
            let at = Utc::now();
            let _ = self.events.send(Event::Disconnected {
                conn: self.id,
                at,
                reason: reason.clone(),
            });
            let jitter = rand::rng().random_range(0.5..1.5);
            let wait = backoff.mul_f64(jitter);
            tracing::warn!(connection = self.id, %reason, retry_in_ms = wait.as_millis() as u64, "Deribit connection lost");
            backoff = (backoff * 2).min(self.settings.backoff_max);
            // While waiting, keep the channel set up to date (and refuse calls).
            let until = Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(until) => break,
                    command = self.commands.recv() => match command {
                        None => return,
                        Some(command) => self.offline_command(command),
                    },
                }
            }
        }
    }

    fn offline_command(&mut self, command: Command) {
        match command {
            Command::Subscribe(channels) => self.assigned.extend(channels),
            Command::Unsubscribe(channels) => {
                for channel in &channels {
                    self.assigned.remove(channel);
                }
            }
            Command::Call { reply, .. } => {
                let _ = reply.send(Err(CallError::NotConnected));
            }
        }
        self.stats
            .assigned
            .store(self.assigned.len(), Ordering::Relaxed);
    }

    /// One connected session; `None` on shutdown, else why it ended.
    async fn session(&mut self, ws: Ws) -> Option<String> {
        let (mut write, mut read) = ws.split();
        let mut outbox: VecDeque<Outgoing> = VecDeque::new();
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        self.accepted.clear();
        self.in_flight.clear();
        let heartbeat = self.request(
            &mut pending,
            Pending::Heartbeat,
            "public/set_heartbeat",
            json!({ "interval": self.settings.heartbeat_secs }),
        );
        if let Err(e) = write.send(Message::text(heartbeat)).await {
            return Some(format!("cannot send: {e}"));
        }
        let all: Vec<String> = self.assigned.iter().cloned().collect();
        self.queue_subscribe(&mut outbox, all);
        self.next_request = Instant::now();
        let mut watchdog = tokio::time::interval(Duration::from_millis(250));
        let mut last_data = Instant::now();
        let mut last_message = Instant::now();
        let silence_limit = self.settings.silence_timeout;
        let mut was_armed = false;
        let mut rows: Vec<Tick> = Vec::with_capacity(16);
        loop {
            let (idle, wake) = (outbox.is_empty(), self.next_request);
            let paced = async move {
                if idle {
                    std::future::pending::<()>().await;
                } else {
                    tokio::time::sleep_until(wake).await;
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    let _ = write.send(Message::Close(None)).await;
                    return None;
                }
                frame = read.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => {
                            return Some(match frame {
                                Some(f) => format!("closed by the server: {} {}", f.code, f.reason),
                                None => "closed by the server".into(),
                            });
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Some(format!("websocket error: {e}")),
                        None => return Some("the connection ended".into()),
                    };
                    let local_us = now_us();
                    self.stats.messages.fetch_add(1, Ordering::Relaxed);
                    last_message = Instant::now();
                    self.stats.last_message_us.store(local_us, Ordering::Relaxed);
                    let mut reply = None;
                    match wire::parse(&text, local_us, &mut rows) {
                        Ok(Incoming::Data { .. }) => {
                            last_data = Instant::now();
                            if self.stats.data_messages.fetch_add(1, Ordering::Relaxed) == 0 {
                                self.stats.first_data_us.store(local_us, Ordering::Relaxed);
                            }
                        }
                        Ok(Incoming::Response { id, result }) => {
                            self.on_response(id, result.map(|r| r.get()), &mut pending, &mut outbox);
                        }
                        Ok(Incoming::TestRequest) => {
                            reply = Some(self.request(&mut pending, Pending::Test, "public/test", json!({})));
                        }
                        Ok(Incoming::Heartbeat | Incoming::OtherChannel(_)) => {}
                        Ok(Incoming::InstrumentState { currency, state }) => {
                            let currency = currency.to_string();
                            let _ = self.events.send(Event::InstrumentState { currency, state });
                        }
                        Ok(Incoming::InstrumentCreated { currency, instrument }) => {
                            let currency = currency.to_string();
                            let _ = self.events.send(Event::InstrumentCreated { currency, instrument });
                        }
                        Err(e) => {
                            let count = self.stats.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                            metrics::counter!("magpie_market_malformed_messages_total").increment(1);
                            if count <= 10 || count.is_power_of_two() {
                                let start: String = text.chars().take(120).collect();
                                tracing::warn!(connection = self.id, error = %e, count, message = %start, "skipped a malformed message");
                            }
                            self.logged_malformed = count;
                        }
                    }
                    drop(text);
                    for row in rows.drain(..) {
                        if self.ticks.send(row).await.is_err() {
                            return None; // the writer is gone: shutting down
                        }
                    }
                    if let Some(reply) = reply
                        && let Err(e) = write.send(Message::text(reply)).await
                    {
                        return Some(format!("cannot answer test_request: {e}"));
                    }
                }
                command = self.commands.recv() => {
                    let command = command?;
                    if let Some(call) = self.command(command, &mut outbox, &mut pending)
                        && let Err(e) = write.send(Message::text(call)).await
                    {
                        return Some(format!("cannot send: {e}"));
                    }
                }
                _ = paced => {
                    if let Some(out) = outbox.pop_front() {
                        let text = match out {
                            Outgoing::Subscribe(channels) => {
                                let params = json!({ "channels": channels });
                                self.request(&mut pending, Pending::Subscribe(channels), "public/subscribe", params)
                            }
                            Outgoing::Unsubscribe(channels) => {
                                let params = json!({ "channels": channels });
                                self.request(&mut pending, Pending::Unsubscribe(channels), "public/unsubscribe", params)
                            }
                        };
                        if let Err(e) = write.send(Message::text(text)).await {
                            return Some(format!("cannot send: {e}"));
                        }
                        self.next_request = Instant::now() + self.settings.request_gap;
                    }
                }
                _ = watchdog.tick() => {
                    if last_message.elapsed() > silence_limit {
                        return Some(format!(
                            "nothing received for {} s, not even a heartbeat",
                            silence_limit.as_secs_f64()
                        ));
                    }
                    // Only continuous feeds arm the watchdog: trades of illiquid options can
                    // be silent for minutes, tickers and quotes are not.
                    let armed = self.accepted.iter().any(|c| c.starts_with("ticker.") || c.starts_with("quote."));
                    if armed && !was_armed {
                        last_data = Instant::now();
                    }
                    was_armed = armed;
                    if let Some(limit) = self.settings.stall_timeout
                        && armed
                        && last_data.elapsed() > limit
                    {
                        return Some(format!("no market data for {} s (stalled)", limit.as_secs_f64()));
                    }
                }
            }
        }
    }

    fn request(
        &mut self,
        pending: &mut HashMap<u64, Pending>,
        what: Pending,
        method: &str,
        params: serde_json::Value,
    ) -> String {
        let id = self.next_id;
        self.next_id += 1;
        pending.insert(id, what);
        wire::request(id, method, &params)
    }

    /// Apply a command while connected; a call is returned to be sent at once.
    fn command(
        &mut self,
        command: Command,
        outbox: &mut VecDeque<Outgoing>,
        pending: &mut HashMap<u64, Pending>,
    ) -> Option<String> {
        match command {
            Command::Subscribe(channels) => {
                self.assigned.extend(channels.iter().cloned());
                self.queue_subscribe(outbox, channels);
            }
            Command::Unsubscribe(channels) => {
                let gone: HashSet<&String> = channels.iter().collect();
                for channel in &channels {
                    self.assigned.remove(channel);
                }
                // Not sent yet: just forget them.
                for out in outbox.iter_mut() {
                    if let Outgoing::Subscribe(batch) = out {
                        batch.retain(|c| {
                            let keep = !gone.contains(c);
                            if !keep {
                                self.in_flight.remove(c);
                            }
                            keep
                        });
                    }
                }
                outbox.retain(|out| !matches!(out, Outgoing::Subscribe(b) if b.is_empty()));
                let live: Vec<String> = channels
                    .into_iter()
                    .filter(|c| self.accepted.contains(c))
                    .collect();
                self.queue(outbox, live, Outgoing::Unsubscribe);
            }
            Command::Call {
                method,
                params,
                reply,
            } => {
                return Some(self.request(pending, Pending::Call(reply), &method, params));
            }
        }
        self.stats
            .assigned
            .store(self.assigned.len(), Ordering::Relaxed);
        None
    }

    /// Queue subscribes for the channels neither accepted nor on their way.
    fn queue_subscribe(&mut self, outbox: &mut VecDeque<Outgoing>, channels: Vec<String>) {
        let mut fresh: Vec<String> = channels
            .into_iter()
            .filter(|c| !self.accepted.contains(c) && !self.in_flight.contains(c))
            .collect();
        fresh.sort();
        fresh.dedup();
        self.in_flight.extend(fresh.iter().cloned());
        self.queue(outbox, fresh, Outgoing::Subscribe);
        self.stats
            .assigned
            .store(self.assigned.len(), Ordering::Relaxed);
    }

    /// Append channels to the outbox in batches of at most `batch_limit`, topping up the last
    /// queued request of the same kind first: a burst of 300 expiries arriving one message at
    /// a time still leaves as two requests, not 300.
    fn queue(
        &self,
        outbox: &mut VecDeque<Outgoing>,
        mut channels: Vec<String>,
        make: fn(Vec<String>) -> Outgoing,
    ) {
        if channels.is_empty() {
            return;
        }
        let want_subscribe = matches!(make(Vec::new()), Outgoing::Subscribe(_));
        if let Some(last) = outbox.back_mut() {
            let batch = match last {
                Outgoing::Subscribe(b) if want_subscribe => Some(b),
                Outgoing::Unsubscribe(b) if !want_subscribe => Some(b),
                _ => None,
            };
            if let Some(batch) = batch {
                let room = self
                    .batch_limit
                    .saturating_sub(batch.len())
                    .min(channels.len());
                batch.extend(channels.drain(..room));
            }
        }
        for batch in channels.chunks(self.batch_limit) {
            outbox.push_back(make(batch.to_vec()));
        }
    }

    fn on_response(
        &mut self,
        id: u64,
        result: Result<&str, RpcError>,
        pending: &mut HashMap<u64, Pending>,
        outbox: &mut VecDeque<Outgoing>,
    ) {
        let Some(what) = pending.remove(&id) else {
            tracing::debug!(connection = self.id, id, "an answer to no request");
            return;
        };
        match what {
            Pending::Subscribe(asked) => self.on_subscribed(asked, result, outbox),
            Pending::Unsubscribe(asked) if is_throttled(&result) => {
                self.slow_down();
                outbox.push_front(Outgoing::Unsubscribe(asked));
            }
            Pending::Unsubscribe(asked) => {
                let done: Vec<String> = match result {
                    Ok(raw) => serde_json::from_str(raw).unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(connection = self.id, error = %e, "unsubscribe failed");
                        Vec::new()
                    }
                };
                // Whatever the server says, these are no longer wanted here.
                for channel in &asked {
                    self.accepted.remove(channel);
                }
                self.stats
                    .subscribed
                    .store(self.accepted.len(), Ordering::Relaxed);
                let _ = self.events.send(Event::Unsubscribed {
                    conn: self.id,
                    channels: if done.is_empty() { asked } else { done },
                });
            }
            Pending::Heartbeat => {
                if let Err(e) = result {
                    tracing::warn!(connection = self.id, error = %e, "set_heartbeat failed");
                }
            }
            Pending::Test => {}
            Pending::Call(reply) => {
                let _ = reply.send(result.map(str::to_string).map_err(CallError::from));
            }
        }
    }

    /// Double the pause between requests (at most 5 s), after Deribit's 10028.
    fn slow_down(&mut self) {
        let gap = (self.settings.request_gap * 2).min(Duration::from_secs(5));
        tracing::warn!(
            connection = self.id,
            gap_ms = gap.as_millis() as u64,
            "Deribit says too many requests (10028): slowing down"
        );
        metrics::counter!("magpie_market_throttled_total").increment(1);
        self.settings.request_gap = gap;
        self.next_request = Instant::now() + gap;
    }

    fn on_subscribed(
        &mut self,
        asked: Vec<String>,
        result: Result<&str, RpcError>,
        outbox: &mut VecDeque<Outgoing>,
    ) {
        for channel in &asked {
            self.in_flight.remove(channel);
        }
        match result {
            Ok(raw) => {
                let listed: HashSet<String> = match serde_json::from_str::<Vec<String>>(raw) {
                    Ok(list) => list.into_iter().collect(),
                    Err(e) => {
                        let _ = self.events.send(Event::Rejected {
                            conn: self.id,
                            channels: asked,
                            error: format!("unreadable subscribe result: {e}"),
                        });
                        return;
                    }
                };
                let (accepted, rejected): (Vec<String>, Vec<String>) =
                    asked.into_iter().partition(|c| listed.contains(c));
                // Accepted but dropped meanwhile: undo.
                let stale: Vec<String> = accepted
                    .iter()
                    .filter(|c| !self.assigned.contains(*c))
                    .cloned()
                    .collect();
                self.accepted.extend(accepted.iter().cloned());
                if !stale.is_empty() {
                    outbox.push_back(Outgoing::Unsubscribe(stale));
                }
                self.stats
                    .subscribed
                    .store(self.accepted.len(), Ordering::Relaxed);
                let _ = self.events.send(Event::Subscribed {
                    conn: self.id,
                    channels: accepted,
                });
                if !rejected.is_empty() {
                    let _ = self.events.send(Event::Rejected {
                        conn: self.id,
                        channels: rejected,
                        error: "not in the subscribe result".into(),
                    });
                }
            }
            Err(e) if e.code == TOO_MANY_REQUESTS => {
                // Out of request credits: ask again, and from now on more slowly.
                self.slow_down();
                self.in_flight.extend(asked.iter().cloned());
                outbox.push_front(Outgoing::Subscribe(asked));
            }
            Err(e) if e.code == TOO_LARGE && asked.len() > 1 => {
                let size = asked.len();
                self.batch_limit = (size / 2).max(1);
                let mut first = asked;
                let second = first.split_off(size / 2);
                self.in_flight.extend(first.iter().cloned());
                self.in_flight.extend(second.iter().cloned());
                outbox.push_front(Outgoing::Subscribe(second));
                outbox.push_front(Outgoing::Subscribe(first));
                let _ = self.events.send(Event::BatchTooLarge {
                    conn: self.id,
                    size,
                });
            }
            Err(e) => {
                let _ = self.events.send(Event::Rejected {
                    conn: self.id,
                    channels: asked,
                    error: e.to_string(),
                });
            }
        }
    }
}

/// Whether an answer is Deribit's "too many requests".
fn is_throttled(result: &Result<&str, RpcError>) -> bool {
    matches!(result, Err(e) if e.code == TOO_MANY_REQUESTS)
}

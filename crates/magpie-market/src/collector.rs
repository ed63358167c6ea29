//! The collector: starts the writer thread, the lifecycle connection and the data
//! connections, and runs the instrument lifecycle until shutdown.
//!
//! Instruments come from `public/get_instruments` at start and every `reconcile_every`, and
//! from `instrument.creation` / `instrument.state` notifications in between. Every trading
//! instrument of a wanted kind has its channels in the [`Registry`]; listings add channels,
//! settlements remove them (an 08:00 UTC expiry burst leaves as a few batched unsubscribe
//! requests). Everything that happens is written to `market.lifecycle_events`, instruments to
//! `market.instrument_metadata`, connection gaps to `market.disconnects`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;
use magpie_core::config::MarketConfig;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::MarketError;
use crate::deribit::connection::{
    CallError, Command, Connection as Ws, ConnectionSettings, ConnectionStats, Event,
};
use crate::deribit::wire::Instrument;
use crate::plan::{Plan, instrument_of};
use crate::registry::{Assignments, Registry};
use crate::rows::{Dataset, currency_of};
use crate::sink::parquet::{ParquetSettings, ParquetSink, WrittenFile};
use crate::sink::writer::{self, WriterStats};
use crate::status::{ConnectionStatus, CurrencyStatus, MarketHandle, MarketStatus, RowCounts};
use crate::store::{self, EventType, LifecycleEvent};
use crate::views;

/// Timings that tests shorten.
#[derive(Debug, Clone)]
pub struct Timings {
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    /// Pause between two `get_instruments` calls (Deribit: about 1 per second).
    pub instruments_gap: Duration,
    pub status_every: Duration,
    /// Nothing at all received for this long reconnects (default: three heartbeat intervals).
    pub silence_timeout: Option<Duration>,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            backoff_first: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            instruments_gap: Duration::from_secs(1),
            status_every: Duration::from_secs(1),
            silence_timeout: None,
        }
    }
}

/// What a run did, for `magpie market run` and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub data_messages: u64,
    pub malformed: u64,
    pub rows: RowCounts,
    pub files: u64,
    pub bytes: u64,
    /// From the first to the latest market-data message.
    pub data_seconds: f64,
    pub reconnects: u64,
}

/// The Deribit collector over one warehouse connection.
pub struct Collector {
    config: MarketConfig,
    root: PathBuf,
    db: Arc<Mutex<Connection>>,
    handle: MarketHandle,
    timings: Timings,
}

struct Book {
    currency: String,
    active: bool,
    /// Its per-instrument channels when it is collected.
    channels: Vec<String>,
}

/// What the instrument-list task reports.
enum Fetched {
    List {
        currency: String,
        kind: &'static str,
        result: Result<Vec<Instrument>, String>,
    },
    /// Every currency and kind was asked.
    Done,
}

impl Collector {
    /// A collector writing Parquet under the configured folder (default `DATA_DIR/market`)
    /// and its tables through `conn` (a clone of the warehouse's connection).
    pub fn new(config: &MarketConfig, data_dir: &Path, conn: Connection) -> Self {
        Self {
            config: config.clone(),
            root: config.dir(data_dir),
            db: Arc::new(Mutex::new(conn)),
            handle: MarketHandle::default(),
            timings: Timings::default(),
        }
    }

    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// The status handle (for the web server).
    pub fn handle(&self) -> MarketHandle {
        self.handle.clone()
    }

    /// The Parquet folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Run until `shutdown` is cancelled; then close every file and record the stop.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Summary, MarketError> {
        let db = Arc::clone(&self.db);
        let root = self.root.clone();
        blocking(&db, move |conn| {
            views::create(conn, &root)?;
            store::reconnected(conn, None, Utc::now())?;
            Ok(())
        })
        .await?;
        let sink = ParquetSink::new(ParquetSettings {
            root: self.root.clone(),
            flush_rows: self.config.flush_rows,
            file_interval: self.config.file_interval,
            retention_days: self.config.retention_days,
        })?;
        let (ticks_tx, ticks_rx) = mpsc::channel(self.config.queue_capacity);
        let (files_tx, files_rx) = mpsc::unbounded_channel();
        let writer_stats = Arc::new(WriterStats::default());
        let writer = {
            let stats = Arc::clone(&writer_stats);
            let runtime = tokio::runtime::Handle::current();
            std::thread::Builder::new()
                .name("market-writer".into())
                .spawn(move || writer::run(ticks_rx, sink, runtime, stats, files_tx))
                .map_err(|e| MarketError::Io(format!("cannot start the writer thread: {e}")))?
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut commands = Vec::new();
        let mut stats = Vec::new();
        let mut tasks = Vec::new();
        let connection_stop = CancellationToken::new();
        for id in 0..=self.config.connections {
            let (tx, rx) = mpsc::unbounded_channel();
            let conn_stats = Arc::new(ConnectionStats::default());
            let settings = ConnectionSettings {
                url: self.config.url.clone(),
                heartbeat_secs: self.config.heartbeat.as_secs().max(10),
                silence_timeout: self
                    .timings
                    .silence_timeout
                    .unwrap_or(self.config.heartbeat.max(Duration::from_secs(10)) * 3),
                stall_timeout: (id > 0).then_some(self.config.stall_timeout),
                subscribe_batch: self.config.subscribe_batch,
                request_gap: Duration::from_secs_f64(1.0 / self.config.subscribes_per_second),
                backoff_first: self.timings.backoff_first,
                backoff_max: self.timings.backoff_max,
            };
            let ws = Ws::new(
                id,
                settings,
                rx,
                events_tx.clone(),
                ticks_tx.clone(),
                Arc::clone(&conn_stats),
                connection_stop.clone(),
            );
            tasks.push(tokio::spawn(ws.run()));
            commands.push(tx);
            stats.push(conn_stats);
        }
        drop(events_tx);
        let queue_probe = ticks_tx.clone();
        drop(ticks_tx);
        let started = Utc::now();
        self.handle.publish(MarketStatus {
            enabled: true,
            running: true,
            started_at: Some(started),
            url: self.config.url.clone(),
            queue_capacity: self.config.queue_capacity,
            parquet_dir: self.root.display().to_string(),
            ..Default::default()
        });
        tracing::info!(url = %self.config.url, connections = self.config.connections, dir = %self.root.display(), "market collector started");
        let mut manager = Manager {
            plan: Plan::new(&self.config),
            registry: Registry::new(self.config.connections),
            book: HashMap::new(),
            commands,
            stats,
            writer_stats: Arc::clone(&writer_stats),
            db: Arc::clone(&self.db),
            root: self.root.clone(),
            handle: self.handle.clone(),
            config: self.config.clone(),
            timings: self.timings.clone(),
            pending_events: Vec::new(),
            down_since: HashMap::new(),
            views_live: Dataset::ALL
                .iter()
                .filter(|d| views::has_files(&self.root, **d))
                .copied()
                .collect(),
            previous_messages: Vec::new(),
            low_since: None,
            reconciled_at: None,
            pruned_at: None,
            started,
            queue_probe,
        };
        let result = manager.run(events_rx, files_rx, shutdown).await;
        // Stop the connections; with their senders gone the writer drains and closes files.
        connection_stop.cancel();
        for task in tasks {
            let _ = task.await;
        }
        let mut summary = manager.summary();
        let events = std::mem::take(&mut manager.pending_events);
        drop(manager);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        summary.files = writer_stats.files.load(Ordering::Relaxed);
        summary.bytes = writer_stats.bytes.load(Ordering::Relaxed);
        summary.rows = RowCounts {
            tickers: writer_stats.rows(Dataset::Tickers),
            quotes: writer_stats.rows(Dataset::Quotes),
            trades: writer_stats.rows(Dataset::Trades),
        };
        let root = self.root.clone();
        let stopped = blocking(&self.db, move |conn| {
            store::record_events(conn, &events)?;
            store::disconnected(conn, -1, Utc::now(), "collector stopped")?;
            views::create(conn, &root)
        })
        .await;
        self.handle.update(|s| {
            s.running = false;
            s.not_ready = Some("the market collector stopped".into());
        });
        result?;
        stopped?;
        tracing::info!(
            rows = summary.rows.tickers + summary.rows.quotes + summary.rows.trades,
            files = summary.files,
            "market collector stopped"
        );
        Ok(summary)
    }
}

/// Run `work` on the warehouse connection, off the async workers.
async fn blocking<T: Send + 'static>(
    db: &Arc<Mutex<Connection>>,
    work: impl FnOnce(&Connection) -> duckdb::Result<T> + Send + 'static,
) -> Result<T, MarketError> {
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || {
        let conn = db
            .lock()
            .map_err(|_| MarketError::Io("the warehouse connection was poisoned".into()))?;
        work(&conn).map_err(MarketError::from)
    })
    .await
    .map_err(|e| MarketError::Io(format!("warehouse task failed: {e}")))?
}

struct Manager {
    plan: Plan,
    registry: Registry,
    book: HashMap<String, Book>,
    commands: Vec<mpsc::UnboundedSender<Command>>,
    stats: Vec<Arc<ConnectionStats>>,
    writer_stats: Arc<WriterStats>,
    db: Arc<Mutex<Connection>>,
    root: PathBuf,
    handle: MarketHandle,
    config: MarketConfig,
    timings: Timings,
    pending_events: Vec<LifecycleEvent>,
    down_since: HashMap<usize, DateTime<Utc>>,
    views_live: HashSet<Dataset>,
    previous_messages: Vec<(u64, std::time::Instant)>,
    low_since: Option<DateTime<Utc>>,
    reconciled_at: Option<DateTime<Utc>>,
    pruned_at: Option<std::time::Instant>,
    started: DateTime<Utc>,
    queue_probe: mpsc::Sender<crate::rows::Tick>,
}

impl Manager {
    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut files: mpsc::UnboundedReceiver<WrittenFile>,
        shutdown: CancellationToken,
    ) -> Result<(), MarketError> {
        // Lifecycle channels on connection 0, per-kind data channels on the data connections.
        let lifecycle: Vec<String> = self
            .plan
            .currencies
            .iter()
            .flat_map(|c| self.plan.lifecycle_channels(c))
            .collect();
        let _ = self.commands[0].send(Command::Subscribe(lifecycle));
        let kind_channels: Vec<String> = self
            .plan
            .currencies
            .iter()
            .flat_map(|c| self.plan.kind_channels(c))
            .collect();
        let assignments = self.registry.want(kind_channels);
        self.send(assignments, Command::Subscribe);

        let (fetched_tx, mut fetched_rx) = mpsc::unbounded_channel::<Fetched>();
        let mut fetching = Some(self.spawn_fetch(fetched_tx.clone(), shutdown.clone()));
        let mut reconcile = tokio::time::interval_at(
            tokio::time::Instant::now() + self.config.reconcile_every,
            self.config.reconcile_every,
        );
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(self.timings.status_every);
        let mut reconcile_soon = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    reconcile_soon |= self.on_event(event);
                    while let Ok(event) = events.try_recv() {
                        reconcile_soon |= self.on_event(event);
                    }
                }
                fetched = fetched_rx.recv() => {
                    if let Some(fetched) = fetched {
                        self.on_fetched(fetched).await?;
                    }
                }
                file = files.recv() => {
                    if let Some(file) = file
                        && self.views_live.insert(file.dataset)
                    {
                        let root = self.root.clone();
                        blocking(&self.db, move |conn| views::create(conn, &root)).await?;
                    }
                }
                _ = reconcile.tick() => reconcile_soon = true,
                _ = tick.tick() => {
                    self.flush_events().await?;
                    self.publish_status();
                }
            }
            let idle = fetching.as_ref().is_none_or(|f| f.is_finished());
            if reconcile_soon && idle {
                reconcile_soon = false;
                fetching = Some(self.spawn_fetch(fetched_tx.clone(), shutdown.clone()));
            }
        }
        if let Some(f) = fetching {
            f.abort();
        }
        self.publish_status();
        Ok(())
    }

    fn send(&self, assignments: Assignments, make: fn(Vec<String>) -> Command) {
        for (conn, channels) in assignments {
            if !channels.is_empty() {
                let _ = self.commands[conn].send(make(channels));
            }
        }
    }

    /// Ask `get_instruments` for every currency and kind, one call per `instruments_gap`.
    fn spawn_fetch(
        &self,
        tx: mpsc::UnboundedSender<Fetched>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let control = self.commands[0].clone();
        let plan = self.plan.clone();
        let gap = self.timings.instruments_gap;
        tokio::spawn(async move {
            for currency in &plan.currencies {
                for kind in plan.api_kinds() {
                    let mut waited = 0;
                    let result = loop {
                        let (reply_tx, reply_rx) = oneshot::channel();
                        let call = Command::Call {
                            method: "public/get_instruments".into(),
                            params: serde_json::json!({ "currency": currency, "kind": kind, "expired": false }),
                            reply: reply_tx,
                        };
                        if control.send(call).is_err() {
                            return;
                        }
                        let answer = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            answer = tokio::time::timeout(Duration::from_secs(30), reply_rx) => answer,
                        };
                        match answer {
                            Ok(Ok(Ok(raw))) => {
                                break serde_json::value::RawValue::from_string(raw)
                                    .and_then(|raw| Instrument::list_from(&raw))
                                    .map_err(|e| {
                                        format!("unreadable get_instruments result: {e}")
                                    });
                            }
                            Ok(Ok(Err(CallError::Rpc(e)))) => break Err(e.to_string()),
                            // Not connected (yet), or the connection dropped mid-call: wait.
                            Ok(Ok(Err(CallError::NotConnected))) | Ok(Err(_)) if waited < 120 => {
                                waited += 1;
                                tokio::time::sleep(gap.max(Duration::from_millis(250))).await;
                            }
                            Ok(Ok(Err(e))) => break Err(e.to_string()),
                            Ok(Err(_)) => {
                                break Err("the lifecycle connection kept dropping".into());
                            }
                            Err(_) => break Err("get_instruments: no answer in 30 s".into()),
                        }
                    };
                    let _ = tx.send(Fetched::List {
                        currency: currency.clone(),
                        kind,
                        result,
                    });
                    tokio::time::sleep(gap).await;
                }
            }
            let _ = tx.send(Fetched::Done);
        })
    }

    async fn on_fetched(&mut self, fetched: Fetched) -> Result<(), MarketError> {
        let (currency, kind, result) = match fetched {
            Fetched::List {
                currency,
                kind,
                result,
            } => (currency, kind, result),
            Fetched::Done => {
                self.reconciled_at = Some(Utc::now());
                self.prune().await?;
                self.publish_status();
                return Ok(());
            }
        };
        let instruments = match result {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!(%currency, kind, %error, "get_instruments failed");
                self.pending_events.push(
                    LifecycleEvent::new(EventType::Reconcile, Some(&currency), None)
                        .failed(error)
                        .detail(format!("kind {kind}")),
                );
                return Ok(());
            }
        };
        let list = instruments.clone();
        let (c, k) = (currency.clone(), kind);
        let diff = blocking(&self.db, move |conn| {
            store::reconcile(conn, &c, k, &list, Utc::now())
        })
        .await?;
        let mut want = Vec::new();
        for instrument in &instruments {
            let wanted = self.plan.wants(instrument);
            let channels = if wanted {
                self.plan.instrument_channels(&instrument.instrument_name)
            } else {
                Vec::new()
            };
            want.extend(channels.iter().cloned());
            self.book.insert(
                instrument.instrument_name.clone(),
                Book {
                    currency: currency.clone(),
                    active: instrument.is_active,
                    channels,
                },
            );
        }
        for name in &diff.listed {
            self.pending_events.push(LifecycleEvent::new(
                EventType::InstrumentListed,
                Some(&currency),
                Some(name),
            ));
        }
        // Known active in the book but gone from the list (missed its settlement notice).
        let listed_now: HashSet<&str> = instruments
            .iter()
            .map(|i| i.instrument_name.as_str())
            .collect();
        let gone: Vec<String> = self
            .book
            .iter()
            .filter(|(name, b)| {
                b.active
                    && b.currency == currency
                    && crate::rows::Kind::of_instrument(name).as_str() == kind
                    && !listed_now.contains(name.as_str())
            })
            .map(|(name, _)| name.clone())
            .chain(diff.expired.iter().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.expire(&currency, &gone, None);
        let assignments = self.registry.want(want);
        let asked: usize = assignments.values().map(Vec::len).sum();
        self.send(assignments, Command::Subscribe);
        self.pending_events.push(
            LifecycleEvent::new(EventType::Reconcile, Some(&currency), None).detail(format!(
                "kind {kind}: {} instruments, {} listed, {} expired, {} channels to subscribe",
                instruments.len(),
                diff.listed.len(),
                gone.len(),
                asked
            )),
        );
        tracing::info!(%currency, kind, instruments = instruments.len(), listed = diff.listed.len(), expired = gone.len(), subscribing = asked, "instruments reconciled");
        Ok(())
    }

    /// Instruments that stopped trading: drop their channels, record it.
    fn expire(&mut self, currency: &str, names: &[String], state: Option<&str>) {
        let mut channels = Vec::new();
        let mut expired = Vec::new();
        for name in names {
            if let Some(book) = self.book.get_mut(name)
                && book.active
            {
                book.active = false;
                channels.extend(std::mem::take(&mut book.channels));
                expired.push(name.clone());
            }
        }
        if expired.is_empty() {
            return;
        }
        for name in &expired {
            let mut event =
                LifecycleEvent::new(EventType::InstrumentExpired, Some(currency), Some(name));
            if let Some(state) = state {
                event = event.detail(format!("state {state}"));
            }
            self.pending_events.push(event);
        }
        let state = state.map(str::to_string);
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            if let Ok(conn) = db.lock()
                && let Err(e) = store::deactivate(&conn, &expired, state.as_deref(), Utc::now())
            {
                tracing::error!(error = %e, "cannot record expired instruments");
            }
        });
        let assignments = self.registry.drop_channels(channels);
        self.send(assignments, Command::Unsubscribe);
    }

    /// Apply one connection event; true when the instrument list should be fetched again.
    fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::Connected { conn, at } => {
                if self.down_since.remove(&conn).is_some() {
                    let db = Arc::clone(&self.db);
                    tokio::task::spawn_blocking(move || {
                        if let Ok(c) = db.lock() {
                            let _ = store::reconnected(&c, Some(conn as i32), at);
                        }
                    });
                }
            }
            Event::Disconnected { conn, at, reason } => {
                if conn > 0 {
                    self.registry.on_disconnected(conn);
                }
                metrics::counter!("magpie_market_disconnects_total").increment(1);
                if let std::collections::hash_map::Entry::Vacant(e) = self.down_since.entry(conn) {
                    e.insert(at);
                    let db = Arc::clone(&self.db);
                    tokio::task::spawn_blocking(move || {
                        if let Ok(c) = db.lock() {
                            let _ = store::disconnected(&c, conn as i32, at, &reason);
                        }
                    });
                }
            }
            Event::Subscribed { conn, channels } => {
                if conn > 0 {
                    self.registry.on_accepted(&channels);
                }
                self.channel_events(EventType::SubscriptionAdded, &channels, None);
            }
            Event::Rejected {
                conn,
                channels,
                error,
            } => {
                if conn > 0 {
                    self.registry.on_rejected(&channels, &error);
                }
                tracing::warn!(connection = conn, channels = channels.len(), %error, "channels rejected");
                self.channel_events(EventType::SubscriptionRejected, &channels, Some(&error));
            }
            Event::BatchTooLarge { conn, size } => {
                tracing::warn!(
                    connection = conn,
                    size,
                    "subscribe too large (-32600): retrying in halves"
                );
                self.pending_events.push(
                    LifecycleEvent::new(EventType::SubscriptionRejected, None, None)
                        .failed(format!("-32600 request entity too large ({size} channels)"))
                        .detail(format!(
                            "connection {conn}: retried as two requests of {} and {}",
                            size / 2,
                            size - size / 2
                        )),
                );
            }
            Event::Unsubscribed { channels, .. } => {
                self.channel_events(EventType::SubscriptionRemoved, &channels, None);
            }
            Event::InstrumentState { currency, state } => {
                if state.is_terminal() {
                    self.expire(
                        &currency,
                        std::slice::from_ref(&state.instrument_name),
                        Some(&state.state),
                    );
                } else if state.is_open()
                    && !self
                        .book
                        .get(&state.instrument_name)
                        .is_some_and(|b| b.active)
                {
                    // A new or reopened instrument: its full record comes with the next list.
                    return true;
                } else {
                    let db = Arc::clone(&self.db);
                    tokio::task::spawn_blocking(move || {
                        if let Ok(c) = db.lock() {
                            let _ = store::set_state(&c, &state.instrument_name, &state.state);
                        }
                    });
                }
            }
            Event::InstrumentCreated {
                currency,
                instrument,
            } => self.listed(currency, *instrument),
        }
        false
    }

    fn listed(&mut self, currency: String, instrument: Instrument) {
        let wanted = self.plan.wants(&instrument);
        let channels = if wanted {
            self.plan.instrument_channels(&instrument.instrument_name)
        } else {
            Vec::new()
        };
        let name = instrument.instrument_name.clone();
        self.book.insert(
            name.clone(),
            Book {
                currency: currency.clone(),
                active: instrument.is_active,
                channels: channels.clone(),
            },
        );
        self.pending_events.push(
            LifecycleEvent::new(EventType::InstrumentListed, Some(&currency), Some(&name))
                .detail("instrument.creation"),
        );
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            if let Ok(c) = db.lock()
                && let Err(e) = store::listed(&c, &currency, &instrument, Utc::now())
            {
                tracing::error!(error = %e, "cannot record a listed instrument");
            }
        });
        let assignments = self.registry.want(channels);
        self.send(assignments, Command::Subscribe);
    }

    fn channel_events(&mut self, kind: EventType, channels: &[String], error: Option<&str>) {
        for channel in channels {
            let instrument = instrument_of(channel);
            let currency = instrument
                .map(currency_of)
                .or_else(|| channel.rsplit('.').nth(1));
            let mut event = LifecycleEvent::new(kind, currency, instrument).detail(channel.clone());
            if let Some(error) = error {
                event = event.failed(error);
            }
            self.pending_events.push(event);
        }
    }

    /// Apply the retention to the lifecycle events and gaps, at most once an hour.
    async fn prune(&mut self) -> Result<(), MarketError> {
        let days = self.config.retention_days;
        let due = self
            .pruned_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
        if days == 0 || !due {
            return Ok(());
        }
        self.pruned_at = Some(std::time::Instant::now());
        let before = Utc::now() - chrono::Duration::days(i64::from(days));
        let removed = blocking(&self.db, move |conn| store::prune(conn, before)).await?;
        if removed > 0 {
            tracing::info!(rows = removed, days, "pruned old lifecycle events and gaps");
        }
        Ok(())
    }

    async fn flush_events(&mut self) -> Result<(), MarketError> {
        if self.pending_events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending_events);
        blocking(&self.db, move |conn| store::record_events(conn, &events)).await
    }

    fn coverage(&self) -> Vec<CurrencyStatus> {
        let mut per: BTreeMap<&str, (usize, usize)> = self
            .plan
            .currencies
            .iter()
            .map(|c| (c.as_str(), (0, 0)))
            .collect();
        for book in self.book.values() {
            if !book.active || book.channels.is_empty() {
                continue;
            }
            let entry = per.entry(book.currency.as_str()).or_default();
            entry.0 += 1;
            if book.channels.iter().all(|c| self.registry.is_accepted(c)) {
                entry.1 += 1;
            }
        }
        let lag = self.writer_stats.lag();
        per.into_iter()
            .map(|(currency, (active, subscribed))| {
                let coverage = if active == 0 { 1.0 } else { subscribed as f64 / active as f64 };
                metrics::gauge!("magpie_market_coverage_ratio", "currency" => currency.to_string()).set(coverage);
                metrics::gauge!("magpie_market_active_instruments", "currency" => currency.to_string()).set(active as f64);
                let l = lag.get(currency);
                CurrencyStatus {
                    currency: currency.to_string(),
                    active_instruments: active,
                    subscribed_instruments: subscribed,
                    coverage,
                    lag_ms: l.map(|l| l.last_ms),
                    lag_max_ms: l.map(|l| l.max_ms),
                }
            })
            .collect()
    }

    fn publish_status(&mut self) {
        let now = std::time::Instant::now();
        let now_us = Utc::now().timestamp_micros();
        if self.previous_messages.len() != self.stats.len() {
            self.previous_messages = vec![(0, now); self.stats.len()];
        }
        let connections: Vec<ConnectionStatus> = self
            .stats
            .iter()
            .enumerate()
            .map(|(id, s)| {
                let messages = s.messages.load(Ordering::Relaxed);
                let (before, at) = self.previous_messages[id];
                let seconds = now.duration_since(at).as_secs_f64().max(1e-3);
                self.previous_messages[id] = (messages, now);
                let last = s.last_message_us.load(Ordering::Relaxed);
                let connected = s.connected.load(Ordering::Relaxed);
                let reconnects = s.reconnects.load(Ordering::Relaxed);
                let label = id.to_string();
                metrics::gauge!("magpie_market_connected", "connection" => label.clone())
                    .set(if connected { 1.0 } else { 0.0 });
                metrics::gauge!("magpie_market_messages_received", "connection" => label.clone())
                    .set(messages as f64);
                metrics::gauge!("magpie_market_reconnects", "connection" => label)
                    .set(reconnects as f64);
                ConnectionStatus {
                    id,
                    role: if id == 0 { "lifecycle" } else { "data" },
                    connected,
                    subscribed_channels: s.subscribed.load(Ordering::Relaxed),
                    assigned_channels: s.assigned.load(Ordering::Relaxed),
                    messages_per_second: (messages.saturating_sub(before)) as f64 / seconds,
                    last_message_age_secs: (last > 0).then(|| (now_us - last).max(0) as f64 / 1e6),
                    reconnects,
                    messages,
                    malformed: s.malformed.load(Ordering::Relaxed),
                }
            })
            .collect();
        let currencies = self.coverage();
        let low = currencies
            .iter()
            .find(|c| c.coverage < self.config.min_coverage);
        let now_utc = Utc::now();
        let not_ready = match low {
            Some(c) => {
                let since = *self.low_since.get_or_insert(now_utc);
                let grace =
                    chrono::Duration::from_std(self.config.coverage_grace).unwrap_or_default();
                (now_utc - since >= grace).then(|| {
                    format!(
                        "{} coverage {:.1}% ({} of {} instruments) below {:.0}% since {}",
                        c.currency,
                        c.coverage * 100.0,
                        c.subscribed_instruments,
                        c.active_instruments,
                        self.config.min_coverage * 100.0,
                        since.format("%H:%M:%S UTC")
                    )
                })
            }
            None => {
                self.low_since = None;
                None
            }
        };
        let w = &self.writer_stats;
        let status = MarketStatus {
            enabled: true,
            running: true,
            started_at: Some(self.started),
            url: self.config.url.clone(),
            connections,
            currencies,
            channels_wanted: self.registry.wanted_count(),
            channels_subscribed: self.registry.accepted_count(),
            channels_rejected: self.registry.rejected().len(),
            rows: RowCounts {
                tickers: w.rows(Dataset::Tickers),
                quotes: w.rows(Dataset::Quotes),
                trades: w.rows(Dataset::Trades),
            },
            files_written: w.files.load(Ordering::Relaxed),
            bytes_written: w.bytes.load(Ordering::Relaxed),
            write_errors: w.errors.load(Ordering::Relaxed),
            queue_used: self
                .config
                .queue_capacity
                .saturating_sub(self.queue_probe.capacity()),
            queue_capacity: self.config.queue_capacity,
            coverage_low_since: self.low_since,
            reconciled_at: self.reconciled_at,
            not_ready,
            parquet_dir: self.root.display().to_string(),
        };
        metrics::gauge!("magpie_market_queue_used").set(status.queue_used as f64);
        self.handle.publish(status);
    }

    fn summary(&self) -> Summary {
        let mut s = Summary::default();
        let mut first = i64::MAX;
        let mut last = 0;
        for stats in &self.stats {
            s.data_messages += stats.data_messages.load(Ordering::Relaxed);
            s.malformed += stats.malformed.load(Ordering::Relaxed);
            s.reconnects += stats.reconnects.load(Ordering::Relaxed);
            let f = stats.first_data_us.load(Ordering::Relaxed);
            if f > 0 {
                first = first.min(f);
                last = last.max(stats.last_message_us.load(Ordering::Relaxed));
            }
        }
        if first < last {
            s.data_seconds = (last - first) as f64 / 1e6;
        }
        s
    }
}

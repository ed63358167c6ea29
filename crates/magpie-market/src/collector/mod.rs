//! The collector: starts the writer thread, the lifecycle connection and the data
//! connections, and runs the instrument lifecycle until shutdown.
//!
//! Instruments come from `public/get_instruments` at start and every `reconcile_every`, and
//! from `instrument.creation` / `instrument.state` notifications in between. Every trading
//! instrument of a wanted kind has its channels in the [`Registry`]; listings add channels,
//! settlements remove them (an 08:00 UTC expiry burst leaves as a few batched unsubscribe
//! requests). Everything that happens is written to `market.lifecycle_events`, instruments to
//! `market.instrument_metadata`, connection gaps to `market.disconnects`.
//!
//! This module starts and stops everything; `lifecycle` is the instrument lifecycle's loop,
//! `report` the status, coverage and readiness it publishes.

mod lifecycle;
mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use duckdb::Connection;
use magpie_core::config::MarketConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::MarketError;
use crate::deribit::connection::{Connection as Ws, ConnectionSettings, ConnectionStats};
use crate::plan::Plan;
use crate::registry::Registry;
use crate::rows::Dataset;
use crate::sink::parquet::{ParquetSettings, ParquetSink};
use crate::sink::writer::{self, WriterStats};
use crate::status::{MarketHandle, MarketStatus, RowCounts};
use crate::store;
use crate::views;
use lifecycle::Manager;

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

impl Timings {
    /// Short timings for a fake Deribit on loopback (the tests).
    pub fn fast() -> Self {
        Self {
            backoff_first: Duration::from_millis(50),
            backoff_max: Duration::from_millis(400),
            instruments_gap: Duration::from_millis(10),
            status_every: Duration::from_millis(100),
            silence_timeout: Some(Duration::from_secs(2)),
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
        let postgres_stop = CancellationToken::new();
        let postgres = self.config.postgres_url.as_ref().map(|url| {
            tokio::spawn(crate::sink::postgres::keep_loading(
                url.expose().to_string(),
                self.root.clone(),
                self.config.postgres_every,
                self.handle.clone(),
                postgres_stop.clone(),
            ))
        });
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
        // The files are closed: the PostgreSQL copy makes its last pass.
        postgres_stop.cancel();
        if let Some(task) = postgres {
            let _ = task.await;
        }
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
pub(super) async fn blocking<T: Send + 'static>(
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

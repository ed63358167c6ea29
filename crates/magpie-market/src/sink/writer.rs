//! The writer thread: takes rows from the connections' bounded channel, hands them to the
//! Parquet sink, closes files on time, applies the retention, and keeps the figures the
//! status page shows (rows per dataset, files, lag between exchange and local time per
//! currency).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::SinkError;
use super::parquet::{ParquetSink, WrittenFile};
use crate::rows::{Dataset, Tick, currency_of};

/// The writer's live figures.
#[derive(Debug, Default)]
pub struct WriterStats {
    rows: [AtomicU64; 3],
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub open_files: AtomicUsize,
    lag: Mutex<HashMap<String, Lag>>,
}

/// Exchange → local delay of one currency's rows.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Lag {
    /// The latest row's delay, ms.
    pub last_ms: i64,
    /// The largest delay in the latest second, ms.
    pub max_ms: i64,
}

impl WriterStats {
    /// Rows written (encoded into files, open or closed) per dataset.
    pub fn rows(&self, dataset: Dataset) -> u64 {
        self.rows[dataset as usize].load(Ordering::Relaxed)
    }

    pub fn lag(&self) -> HashMap<String, Lag> {
        self.lag.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Write failures are logged at most this often: on a full disk every write fails, and the
/// log would say so thousands of times a second.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts write failures, and logs the first and then one every [`FAILURE_LOG_EVERY`] with how
/// many there were since the last.
#[derive(Default)]
struct Failures {
    logged: Option<Instant>,
    since: u64,
}

impl Failures {
    fn record(&mut self, stats: &WriterStats, what: &str, error: &SinkError) {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        self.since += 1;
        if self
            .logged
            .is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY)
        {
            tracing::error!(error = %error, failures = self.since, "{what}");
            self.logged = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// Rows taken from the queue at once.
const BATCH: usize = 1024;

/// How long the writer lets the queue fill after draining it.
const FILL_WAIT: Duration = Duration::from_millis(5);

/// Run the writer on this thread until every sender is gone, then close all files.
/// `published` hears of every finished file.
pub fn run(
    mut ticks: mpsc::Receiver<Tick>,
    mut sink: ParquetSink,
    runtime: tokio::runtime::Handle,
    stats: Arc<WriterStats>,
    published: mpsc::UnboundedSender<WrittenFile>,
) {
    let publish = |files: Vec<WrittenFile>| {
        for file in files {
            stats.files.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(file.bytes, Ordering::Relaxed);
            metrics::counter!("magpie_market_files_written_total", "dataset" => file.dataset.folder()).increment(1);
            tracing::debug!(path = %file.path.display(), rows = file.rows, bytes = file.bytes, "Parquet file written");
            let _ = published.send(file);
        }
    };
    let today = || chrono::Utc::now().date_naive();
    let removed = sink.enforce_retention(today());
    if removed > 0 {
        tracing::info!(folders = removed, "removed market data past the retention");
    }
    let mut last_retention = Instant::now();
    let mut last_poll = Instant::now();
    let mut lag: HashMap<String, Lag> = HashMap::new();
    let mut counts = [0u64; 3];
    let mut batch: Vec<Tick> = Vec::with_capacity(BATCH);
    let mut failures = Failures::default();
    loop {
        let received = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(200),
                ticks.recv_many(&mut batch, BATCH),
            )
            .await
        });
        let closed = matches!(received, Ok(0));
        // The queue was drained: give it a few milliseconds to fill before the next receive.
        // Waiting on an empty queue, the writer was woken for every row the connections sent
        // (a quarter of the collector's CPU went to waking threads at full speed); this way it
        // takes them a thousand at a time. Back-pressure is unchanged (the queue is bounded).
        if matches!(received, Ok(n) if n > 0 && n < BATCH) {
            std::thread::sleep(FILL_WAIT);
        }
        for tick in batch.drain(..) {
            counts[tick.dataset() as usize] += 1;
            let delay = (tick.local_us() / 1000 - tick.exchange_ms()).max(0);
            let currency = currency_of(tick.instrument());
            match lag.get_mut(currency) {
                Some(l) => {
                    l.last_ms = delay;
                    l.max_ms = l.max_ms.max(delay);
                }
                None => {
                    lag.insert(
                        currency.to_string(),
                        Lag {
                            last_ms: delay,
                            max_ms: delay,
                        },
                    );
                }
            }
            if let Err(e) = sink.push(tick) {
                failures.record(&stats, "cannot write market data", &e);
            }
        }
        if closed {
            break;
        }
        if last_poll.elapsed() >= Duration::from_secs(1) {
            last_poll = Instant::now();
            for (dataset, count) in Dataset::ALL.iter().zip(counts.iter_mut()) {
                stats.rows[*dataset as usize].fetch_add(*count, Ordering::Relaxed);
                metrics::counter!("magpie_market_rows_total", "dataset" => dataset.folder())
                    .increment(*count);
                *count = 0;
            }
            if let Ok(mut shared) = stats.lag.lock() {
                for (currency, l) in lag.iter_mut() {
                    metrics::gauge!("magpie_market_lag_ms", "currency" => currency.clone())
                        .set(l.max_ms as f64);
                    shared.insert(currency.clone(), *l);
                    l.max_ms = l.last_ms;
                }
            }
            match sink.poll(today()) {
                Ok(files) => publish(files),
                Err(e) => failures.record(&stats, "cannot finish a Parquet file", &e),
            }
            stats.open_files.store(sink.open_files(), Ordering::Relaxed);
            if last_retention.elapsed() >= Duration::from_secs(3600) {
                last_retention = Instant::now();
                sink.enforce_retention(today());
            }
        }
    }
    for (dataset, count) in Dataset::ALL.iter().zip(counts.iter()) {
        stats.rows[*dataset as usize].fetch_add(*count, Ordering::Relaxed);
    }
    match sink.close() {
        Ok(files) => publish(files),
        Err(e) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot finish the Parquet files at shutdown");
        }
    }
    stats.open_files.store(0, Ordering::Relaxed);
}

//! The collector's live figures, shared with the web server: `/api/market/status`, the market
//! page, `/health/ready` and `/metrics` all read a [`MarketHandle`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One websocket connection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectionStatus {
    pub id: usize,
    /// `lifecycle` (instrument lists and state changes) or `data`.
    pub role: &'static str,
    pub connected: bool,
    pub subscribed_channels: usize,
    pub assigned_channels: usize,
    pub messages_per_second: f64,
    pub last_message_age_secs: Option<f64>,
    pub reconnects: u64,
    pub messages: u64,
    pub malformed: u64,
}

/// One currency's instruments and feed delay.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CurrencyStatus {
    pub currency: String,
    /// Trading instruments of the configured kinds.
    pub active_instruments: usize,
    /// Of those, the ones whose every channel the server accepted.
    pub subscribed_instruments: usize,
    /// subscribed / active (1 when there is nothing to subscribe).
    pub coverage: f64,
    /// Local receive time minus exchange time of the latest row, ms.
    pub lag_ms: Option<i64>,
    /// The largest such delay in the latest second, ms.
    pub lag_max_ms: Option<i64>,
}

/// Rows per dataset since start.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RowCounts {
    pub tickers: u64,
    pub quotes: u64,
    pub trades: u64,
}

/// The PostgreSQL copy (when `market.postgres_url` is set).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PostgresStatus {
    pub connected: bool,
    /// The tables are TimescaleDB hypertables.
    pub hypertables: bool,
    /// Files and rows loaded since start.
    pub files_loaded: u64,
    pub rows_loaded: u64,
    pub last_load_at: Option<DateTime<Utc>>,
    /// Why the latest pass stopped (its files are tried again at the next).
    pub last_error: Option<String>,
}

/// Everything the collector reports.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MarketStatus {
    pub enabled: bool,
    pub running: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub url: String,
    pub connections: Vec<ConnectionStatus>,
    pub currencies: Vec<CurrencyStatus>,
    pub channels_wanted: usize,
    pub channels_subscribed: usize,
    pub channels_rejected: usize,
    pub rows: RowCounts,
    pub files_written: u64,
    pub bytes_written: u64,
    pub write_errors: u64,
    pub queue_used: usize,
    pub queue_capacity: usize,
    /// Since when some currency's coverage has been below `min_coverage`.
    pub coverage_low_since: Option<DateTime<Utc>>,
    /// When the instrument lists were last fetched for every currency and kind.
    pub reconciled_at: Option<DateTime<Utc>>,
    /// Why `/health/ready` fails, if it does.
    pub not_ready: Option<String>,
    pub parquet_dir: String,
    pub postgres: Option<PostgresStatus>,
}

/// A cheap, clonable view of the collector's status.
#[derive(Debug, Clone, Default)]
pub struct MarketHandle {
    inner: Arc<Mutex<MarketStatus>>,
    /// Kept apart: the PostgreSQL loader reports on its own schedule.
    postgres: Arc<Mutex<Option<PostgresStatus>>>,
}

impl MarketHandle {
    /// The latest figures (refreshed every second while the collector runs).
    pub fn status(&self) -> MarketStatus {
        let mut status = self.inner.lock().map(|s| s.clone()).unwrap_or_default();
        status.postgres = self.postgres.lock().ok().and_then(|p| p.clone());
        status
    }

    pub(crate) fn update_postgres(&self, change: impl FnOnce(&mut PostgresStatus)) {
        if let Ok(mut shared) = self.postgres.lock() {
            change(shared.get_or_insert_with(PostgresStatus::default));
        }
    }

    /// `Err(reason)` when the collector should count as not ready: stopped, or coverage
    /// low for longer than the grace period.
    pub fn ready(&self) -> Result<(), String> {
        let status = self.status();
        match status.not_ready {
            Some(reason) if status.enabled => Err(reason),
            _ => Ok(()),
        }
    }

    pub(crate) fn publish(&self, status: MarketStatus) {
        if let Ok(mut shared) = self.inner.lock() {
            *shared = status;
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut MarketStatus)) {
        if let Ok(mut shared) = self.inner.lock() {
            change(&mut shared);
        }
    }
}

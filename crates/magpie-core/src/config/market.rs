//! `[market]`: the Deribit market-data collector's settings (off by default) and their checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, invalid};

/// The Deribit collector: what to collect, how many connections, where the Parquet goes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketConfig {
    /// Run the collector inside `magpie serve` (`magpie market run` runs it regardless).
    pub enabled: bool,
    /// Deribit's JSON-RPC websocket (test: `wss://test.deribit.com/ws/api/v2`).
    pub url: String,
    /// Currencies whose instruments are collected.
    pub currencies: Vec<String>,
    /// Instrument kinds: `option`, `future` (every future) or `perpetual` (perpetuals only).
    pub kinds: Vec<MarketKind>,
    /// What is collected per instrument (`ticker`, `quote`) and per kind (`trades`).
    pub channels: Vec<MarketChannel>,
    /// Ticker and trade channel interval: `100ms` or `agg2` (`raw` needs an authenticated
    /// connection, which magpie does not make).
    pub interval: String,
    /// Websocket connections for market data (plus one for the instrument lifecycle);
    /// Deribit allows 32 per IP.
    pub connections: usize,
    /// Channels per subscribe request (Deribit documents 500 but rejects large requests
    /// with -32600; 250 works).
    pub subscribe_batch: usize,
    /// Subscribe and unsubscribe requests per second and connection.
    pub subscribes_per_second: f64,
    /// `public/set_heartbeat` interval (at least 10 s).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A connection that receives no market data for this long is reconnected (heartbeats do
    /// not count: they go on while a feed is silently stuck).
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// How often the instrument list is reconciled with `public/get_instruments`.
    #[serde(with = "humantime_serde")]
    pub reconcile_every: Duration,
    /// Folder for the Parquet files (default `DATA_DIR/market`).
    pub dir: Option<PathBuf>,
    /// Days of Parquet files kept (0 keeps everything).
    pub retention_days: u32,
    /// Rows buffered per file before they are sorted and encoded as a row group.
    pub flush_rows: usize,
    /// A file is closed (and becomes visible to queries) after this long.
    #[serde(with = "humantime_serde")]
    pub file_interval: Duration,
    /// Rows waiting between the connections and the writer; when it is full the connections
    /// stop reading (back-pressure), so memory stays bounded.
    pub queue_capacity: usize,
    /// Coverage (subscribed / active instruments) below which `/health/ready` fails...
    pub min_coverage: f64,
    /// ... once it has been low for this long.
    #[serde(with = "humantime_serde")]
    pub coverage_grace: Duration,
    /// Also load every closed Parquet file into PostgreSQL, once (TimescaleDB hypertables
    /// when the extension is installed): `postgres://user:password@host:5432/database`.
    /// Unset: Parquet only.
    pub postgres_url: Option<Secret>,
    /// How often closed files are looked for and loaded into PostgreSQL.
    #[serde(with = "humantime_serde")]
    pub postgres_every: Duration,
}

/// Which instruments of a currency are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketKind {
    Option,
    Future,
    Perpetual,
}

/// What is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketChannel {
    /// `ticker.{instrument}.{interval}`: best bid/ask, IVs, mark, greeks, open interest.
    Ticker,
    /// `quote.{instrument}`: best bid/ask and sizes.
    Quote,
    /// `trades.{kind}.{currency}.{interval}`: every trade of a kind, one channel.
    Trades,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "wss://www.deribit.com/ws/api/v2".into(),
            currencies: vec!["BTC".into(), "ETH".into()],
            kinds: vec![MarketKind::Option, MarketKind::Perpetual],
            channels: vec![
                MarketChannel::Ticker,
                MarketChannel::Quote,
                MarketChannel::Trades,
            ],
            interval: "100ms".into(),
            connections: 2,
            subscribe_batch: 250,
            subscribes_per_second: 3.0,
            heartbeat: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            reconcile_every: Duration::from_secs(300),
            dir: None,
            retention_days: 30,
            flush_rows: 4096,
            file_interval: Duration::from_secs(600),
            queue_capacity: 4096,
            min_coverage: 0.95,
            coverage_grace: Duration::from_secs(180),
            postgres_url: None,
            postgres_every: Duration::from_secs(60),
        }
    }
}

impl MarketConfig {
    /// The Parquet folder.
    pub fn dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("market"))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let scheme_ok = url::Url::parse(&self.url)
            .is_ok_and(|u| matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some());
        if !scheme_ok {
            return Err(invalid(
                "market.url",
                format!("`{}` is not a ws:// or wss:// URL", self.url),
            ));
        }
        if self.currencies.is_empty() {
            return Err(invalid("market.currencies", "name at least one currency"));
        }
        if let Some(bad) = self.currencies.iter().find(|c| {
            c.is_empty()
                || !c
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        }) {
            return Err(invalid(
                "market.currencies",
                format!("`{bad}` is not a Deribit currency code (e.g. BTC, ETH)"),
            ));
        }
        if self.kinds.is_empty() {
            return Err(invalid(
                "market.kinds",
                "name at least one of option, future, perpetual",
            ));
        }
        if self.channels.is_empty() {
            return Err(invalid(
                "market.channels",
                "name at least one of ticker, quote, trades",
            ));
        }
        if !matches!(self.interval.as_str(), "100ms" | "agg2") {
            return Err(invalid(
                "market.interval",
                "must be 100ms or agg2 (raw needs an authenticated connection)",
            ));
        }
        if !(1..=31).contains(&self.connections) {
            return Err(invalid(
                "market.connections",
                "must be between 1 and 31 (Deribit allows 32 connections per IP, one is for the lifecycle)",
            ));
        }
        if !(1..=500).contains(&self.subscribe_batch) {
            return Err(invalid(
                "market.subscribe_batch",
                "must be between 1 and 500 (250 is safe)",
            ));
        }
        if !(self.subscribes_per_second > 0.0 && self.subscribes_per_second <= 20.0) {
            return Err(invalid(
                "market.subscribes_per_second",
                "must be above 0 and at most 20",
            ));
        }
        if self.heartbeat < Duration::from_secs(10) {
            return Err(invalid("market.heartbeat", "Deribit's minimum is 10s"));
        }
        if self.stall_timeout < Duration::from_secs(1) {
            return Err(invalid("market.stall_timeout", "must be at least 1s"));
        }
        if self.reconcile_every < Duration::from_secs(10) {
            return Err(invalid("market.reconcile_every", "must be at least 10s"));
        }
        if !(1..=1_000_000).contains(&self.flush_rows) {
            return Err(invalid(
                "market.flush_rows",
                "must be between 1 and 1000000",
            ));
        }
        if self.file_interval < Duration::from_secs(1) {
            return Err(invalid("market.file_interval", "must be at least 1s"));
        }
        if self.queue_capacity == 0 {
            return Err(invalid("market.queue_capacity", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.min_coverage) {
            return Err(invalid("market.min_coverage", "must be between 0 and 1"));
        }
        if let Some(url) = &self.postgres_url {
            let url = url.expose();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid(
                    "market.postgres_url",
                    "expected postgres://user:password@host:5432/database",
                ));
            }
        }
        if self.postgres_every < Duration::from_secs(1) {
            return Err(invalid("market.postgres_every", "must be at least 1s"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, ConfigSources};

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(&ConfigSources::default().with_env(env.iter().copied()))
    }

    #[test]
    fn the_collector_is_off_by_default_and_its_settings_are_checked() {
        let config = load(&[]).unwrap();
        assert!(!config.market.enabled);
        assert_eq!(config.market.subscribe_batch, 250);
        assert!(config.market.dir(&config.data_dir).ends_with("market"));
        assert!(config.market.postgres_url.is_none());
        let with_postgres = load(&[(
            "MAGPIE_MARKET__POSTGRES_URL",
            "postgres://magpie:hunter2@db:5432/market",
        )])
        .unwrap();
        let url = with_postgres.market.postgres_url.as_ref().unwrap();
        assert_eq!(url.expose(), "postgres://magpie:hunter2@db:5432/market");
        assert!(!format!("{:?}", with_postgres.market).contains("hunter2"));
        assert!(
            load(&[("MAGPIE_MARKET__ENABLED", "true")])
                .unwrap()
                .market
                .enabled
        );
        for (key, value, named) in [
            (
                "MAGPIE_MARKET__URL",
                "https://www.deribit.com",
                "market.url",
            ),
            ("MAGPIE_MARKET__CONNECTIONS", "32", "market.connections"),
            (
                "MAGPIE_MARKET__SUBSCRIBE_BATCH",
                "501",
                "market.subscribe_batch",
            ),
            ("MAGPIE_MARKET__HEARTBEAT", "5s", "market.heartbeat"),
            ("MAGPIE_MARKET__INTERVAL", "raw", "market.interval"),
            ("MAGPIE_MARKET__MIN_COVERAGE", "1.5", "market.min_coverage"),
            (
                "MAGPIE_MARKET__POSTGRES_URL",
                "host=db user=magpie",
                "market.postgres_url",
            ),
        ] {
            let error = load(&[(key, value)]).unwrap_err().to_string();
            assert!(error.contains(named), "{key}={value}: {error}");
        }
    }
}

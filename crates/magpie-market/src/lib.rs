//! The Deribit market-data collector: options and perpetuals over websockets, an instrument
//! lifecycle that follows listings and expiries, and Parquet files the warehouse reads
//! through views.
//!
//! Data flows one way: [`deribit::connection`]s parse notifications into [`rows`], a bounded
//! channel carries them to the writer thread ([`sink::writer`]), which writes Parquet
//! ([`sink::parquet`]) that `market.*` views ([`views`]) read. The [`collector`] runs the
//! lifecycle (instrument lists, state changes, the subscription [`registry`]) and records it
//! in the warehouse ([`store`]); its figures are in a [`status::MarketHandle`].
//!
//! ```no_run
//! # async fn run() -> Result<(), magpie_market::MarketError> {
//! let config = magpie_core::Config::default();
//! let warehouse = magpie_core::Warehouse::open(config.warehouse_path(), &Default::default())?;
//! let collector = magpie_market::Collector::new(&config.market, &config.data_dir, warehouse.try_clone()?);
//! let status = collector.handle();
//! let stop = tokio_util::sync::CancellationToken::new();
//! let summary = collector.run(stop).await?;
//! println!("{} quote rows, coverage {:?}", summary.rows.quotes, status.status().currencies);
//! # Ok(()) }
//! ```

pub mod collector;
pub mod deribit;
pub mod plan;
pub mod registry;
pub mod rows;
pub mod sink;
pub mod status;
pub mod store;
pub mod views;

pub use collector::{Collector, Summary, Timings};
pub use status::{MarketHandle, MarketStatus};

/// Why the collector could not run.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error("warehouse: {0}")]
    DuckDb(#[from] duckdb::Error),
    #[error(transparent)]
    Warehouse(#[from] magpie_core::WarehouseError),
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error("{0}")]
    Io(String),
}

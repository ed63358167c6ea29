//! Where rows go: Parquet files ([`parquet`]), fed by the writer thread ([`writer`]) from the
//! connections' bounded channel; [`files`] finds them on disk; [`postgres`] loads the closed
//! ones into PostgreSQL when configured.

pub mod files;
pub mod parquet;
pub mod postgres;
pub mod writer;

/// A write that failed (the rows of that file are lost, the collector goes on).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: String,
        source: ::parquet::errors::ParquetError,
    },
    #[error("building a record batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

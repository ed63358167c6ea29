//! The Deribit market-data collector (issue 10): websocket connections, the instrument
//! lifecycle, Parquet and PostgreSQL sinks.
//!
//! Not built yet. The crate exists so the workspace's dependency graph (and with it DuckDB's
//! 30-minute C++ build) is fixed from the first commit: its dependencies are declared already.

//! magpie's foundation, shared by every domain crate: configuration ([`config`]), the DuckDB
//! warehouse with its migrations, backups and snapshot ([`warehouse`]), the in-process
//! scheduler of flows and runs ([`scheduler`]), secrets on disk ([`secrets`]), who may see whose
//! listening ([`household`]), figures of the
//! process and host ([`host`]) and logging set-up ([`logging`]).
//!
//! Data flows one way through magpie: sources write raw tables in the warehouse, the models
//! runner turns them into marts, and the web UI reads the marts.

pub mod config;
pub mod host;
pub mod household;
pub mod logging;
pub mod scheduler;
pub mod secrets;
pub mod values;
pub mod warehouse;

pub use config::{Config, ConfigError, ConfigSources, Profile, Secret};
pub use warehouse::{OpenOptions, Warehouse, WarehouseError};

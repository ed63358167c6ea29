//! A dbt-style model runner over DuckDB.
//!
//! A project is laid out like dbt's (`dbt_project.yml`, model folders, `schema.yml`, seeds,
//! singular tests, macros); models are SQL templates rendered with minijinja ([`render`]),
//! ordered by their `ref()`s ([`dag`]), run as soon as what they read is built, several at
//! once and longest chain first ([`schedule`], [`runner`]), materialised as views, tables or
//! incremental tables ([`materialize`], rebuilt in full when what they are built from changed:
//! [`state`]) and checked by generic and singular data tests
//! ([`datatests`]).

pub mod dag;
pub mod datatests;
pub mod embedded;
pub mod materialize;
pub mod project;
pub mod render;
pub mod runner;
pub mod schedule;
pub mod seeds;
pub mod state;
pub mod timezone;

/// Errors of the models runner.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("project: {0}")]
    Project(String),
    #[error("{0}")]
    Graph(String),
    #[error("test: {0}")]
    Test(String),
    #[error("{file}: {message}")]
    Render { file: String, message: String },
    #[error("warehouse: {0}")]
    DuckDb(#[from] duckdb::Error),
}

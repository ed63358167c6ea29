//! Materialising one model in DuckDB. Every change happens inside one transaction, so a reader
//! (or a crash) sees either the previous relation or the new one, never half of it; a model
//! that fails leaves the previous relation in place.

use std::collections::HashMap;

use duckdb::Connection;
use magpie_core::warehouse::in_transaction;

use crate::render::{Materialized, ModelConfig};

/// What every relation in the warehouse is (`BASE TABLE`, `VIEW`), by (schema, name): one
/// query per build (asked before each model instead, it cost ~2 ms a model).
pub fn existing_relations(conn: &Connection) -> duckdb::Result<HashMap<(String, String), String>> {
    let mut stmt =
        conn.prepare("SELECT table_schema, table_name, table_type FROM information_schema.tables")?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
    rows.collect()
}

/// Build `relation` (`"schema"."name"`, whose schema exists) from `sql` as configured, then run
/// `post_hooks` (rendered `post_hook` statements) in the same transaction; `existing` is what
/// [`existing_relations`] said of it. Returns the row count for tables and incremental models
/// (`None` for views).
pub fn materialize(
    conn: &Connection,
    relation: &str,
    existing: Option<&str>,
    sql: &str,
    config: &ModelConfig,
    incremental_run: bool,
    post_hooks: &[String],
) -> duckdb::Result<Option<u64>> {
    let hooks = || {
        post_hooks
            .iter()
            .try_for_each(|hook| conn.execute_batch(hook))
    };
    match config.materialized {
        Materialized::Ephemeral => Ok(None),
        Materialized::View => in_transaction(conn, || {
            if existing == Some("BASE TABLE") {
                conn.execute_batch(&format!("DROP TABLE {relation}"))?;
            }
            conn.execute_batch(&format!("CREATE OR REPLACE VIEW {relation} AS (\n{sql}\n)"))?;
            hooks()?;
            Ok(None)
        }),
        Materialized::Table => in_transaction(conn, || {
            replace_table(conn, relation, sql, existing)?;
            hooks()?;
            count(conn, relation).map(Some)
        }),
        Materialized::Incremental if !incremental_run || existing != Some("BASE TABLE") => {
            in_transaction(conn, || {
                replace_table(conn, relation, sql, existing)?;
                hooks()?;
                count(conn, relation).map(Some)
            })
        }
        Materialized::Incremental => in_transaction(conn, || {
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE magpie_incremental AS (\n{sql}\n)"
            ))?;
            let strategy = config.incremental_strategy.clone().unwrap_or_else(|| {
                if config.unique_key.is_empty() {
                    "append".into()
                } else {
                    "delete+insert".into()
                }
            });
            if strategy == "delete+insert" && !config.unique_key.is_empty() {
                // A semi-join, as dbt's `key IN (SELECT key ...)`: a key shared by many new
                // rows (a listener's sessions) deletes each old row once, where a join would
                // pair every old row with every new one.
                let matches: Vec<String> = config
                    .unique_key
                    .iter()
                    .map(|k| format!("{relation}.\"{k}\" = n.\"{k}\""))
                    .collect();
                conn.execute_batch(&format!(
                    "DELETE FROM {relation} WHERE EXISTS (SELECT 1 FROM temp.magpie_incremental n WHERE {})",
                    matches.join(" AND ")
                ))?;
            } else if strategy != "append" && strategy != "delete+insert" {
                return Err(duckdb::Error::InvalidParameterName(format!(
                    "incremental_strategy='{strategy}': expected append or delete+insert"
                )));
            }
            conn.execute_batch(&format!(
                "INSERT INTO {relation} BY NAME SELECT * FROM temp.magpie_incremental; DROP TABLE temp.magpie_incremental"
            ))?;
            hooks()?;
            count(conn, relation).map(Some)
        }),
    }
}

fn replace_table(
    conn: &Connection,
    relation: &str,
    sql: &str,
    existing: Option<&str>,
) -> duckdb::Result<()> {
    if existing == Some("VIEW") {
        conn.execute_batch(&format!("DROP VIEW {relation}"))?;
    }
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TABLE {relation} AS (\n{sql}\n)"
    ))
}

fn count(conn: &Connection, relation: &str) -> duckdb::Result<u64> {
    conn.query_row(&format!("SELECT count(*) FROM {relation}"), [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
}

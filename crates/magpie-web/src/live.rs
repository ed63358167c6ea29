//! The web's one door to the live warehouse: the operational records that change between
//! builds (flow runs, the enrichment queue, the market collector's lifecycle events, DuckDB's
//! own figures), read with the fixed statements in this file and handed out as typed rows;
//! and the changes the admin pages make to listeners and their filters
//! ([`magpie_music::listeners`], [`magpie_music::filters`]).
//!
//! Everything else the web serves (every page over the marts) runs on the locked-down
//! read-only instance over the published snapshot ([`crate::App::reader`]); this module holds
//! the only connections the web has to the writing instance, and no SQL text or identifier
//! from a request reaches them: callers pass numbers and names that are bound as parameters.

use std::time::Duration;

use duckdb::Connection;
use magpie_core::scheduler::RunStore;
use magpie_core::scheduler::store::{LogRow, RunRow, TaskRow};
use magpie_music::enrich::Progress;
use magpie_music::listeners::ListenerAdmin;
use serde::Serialize;

use crate::WebError;
use crate::pool::ConnectionPool;

/// Connections to the writing instance, for the operations pages.
#[derive(Clone)]
pub struct Live {
    admin: std::sync::Arc<std::sync::Mutex<Connection>>,
    pool: ConnectionPool,
}

/// A run with its tasks and log lines.
pub struct RunDetail {
    pub run: RunRow,
    pub tasks: Vec<TaskRow>,
    pub logs: Vec<LogRow>,
}

/// An enrichment item that failed or was not found.
#[derive(Debug, Serialize)]
pub struct EnrichmentProblem {
    pub source: String,
    pub entity: String,
    pub label: String,
    pub state: String,
    pub attempts: i32,
    pub error: String,
    pub when: String,
}

/// A lifecycle event of the market collector.
#[derive(Debug, Serialize)]
pub struct LifecycleRow {
    pub time: String,
    pub event_type: String,
    pub currency: Option<String>,
    pub instrument: Option<String>,
    pub success: bool,
    pub error: Option<String>,
    pub detail: Option<String>,
}

/// A market data connection's outage.
#[derive(Debug, Serialize)]
pub struct GapRow {
    pub connection: i32,
    pub from: String,
    pub to: Option<String>,
    pub seconds: Option<f64>,
    pub reason: String,
}

/// What the market page shows from the warehouse.
pub struct MarketRecords {
    /// Lifecycle events of the last day, by type.
    pub counts: Vec<(String, i64)>,
    pub events: Vec<LifecycleRow>,
    pub gaps: Vec<GapRow>,
    pub instruments_known: i64,
    pub instruments_active: i64,
}

/// DuckDB's figures for the status page and `/metrics`.
pub struct DuckDbFigures {
    /// The warehouse file and its WAL, in bytes.
    pub warehouse_bytes: i64,
    /// Memory DuckDB's writing instance uses.
    pub memory_bytes: i64,
    /// Items waiting or failed in the enrichment queue, per source.
    pub queue: Vec<(String, i64)>,
}

impl Live {
    /// Two connections cloned from the writer (`root`); a statement longer than `timeout` is
    /// interrupted. One more, without a timeout, for listener administration (a merge's
    /// backup copies the whole warehouse).
    pub fn new(root: &Connection, timeout: Duration) -> Result<Self, WebError> {
        Ok(Self {
            pool: ConnectionPool::new(root, 2, timeout)?,
            admin: std::sync::Arc::new(std::sync::Mutex::new(root.try_clone()?)),
        })
    }

    /// Every listener with their sources (plays, Spotify, scrobble tokens, imports).
    pub async fn listeners(
        &self,
        admin: &ListenerAdmin,
    ) -> Result<Vec<magpie_music::listeners::ListenerInfo>, WebError> {
        let admin = admin.clone();
        self.pool
            .run(move |conn| {
                admin
                    .list(conn)
                    .map_err(|e| WebError::Unavailable(e.to_string()))
            })
            .await
    }

    /// Run one change a person asked for on a page (a listener added, renamed, merged or
    /// removed; a filter added or removed) on the writer, off the async workers: its result,
    /// or the reason it was refused.
    pub async fn write<T: Send + 'static, E: Send + 'static>(
        &self,
        change: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, WebError> {
        let conn = std::sync::Arc::clone(&self.admin);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| WebError::Internal("the admin connection is poisoned".into()))?;
            Ok(change(&conn))
        })
        .await
        .map_err(|e| WebError::Internal(format!("the change failed: {e}")))?
    }

    /// A listener's filters (every listener's with `None`).
    pub async fn filters(
        &self,
        listener: Option<String>,
    ) -> Result<Vec<magpie_music::filters::ListenerFilter>, WebError> {
        self.pool
            .run(move |conn| {
                magpie_music::filters::list(conn, listener.as_deref())
                    .map_err(|e| WebError::Unavailable(e.to_string()))
            })
            .await
    }

    /// The newest `limit` runs (of `flow`, or of every flow).
    pub async fn runs(&self, flow: Option<String>, limit: usize) -> Result<Vec<RunRow>, WebError> {
        self.pool
            .run(move |conn| Ok(RunStore::new(conn).recent(flow.as_deref(), limit)?))
            .await
    }

    /// The last run of each of `flows`.
    pub async fn last_runs(&self, flows: Vec<String>) -> Result<Vec<Option<RunRow>>, WebError> {
        self.pool
            .run(move |conn| {
                let store = RunStore::new(conn);
                let mut out = Vec::with_capacity(flows.len());
                for flow in &flows {
                    out.push(store.recent(Some(flow), 1)?.into_iter().next());
                }
                Ok(out)
            })
            .await
    }

    /// One run with its tasks and log lines.
    pub async fn run(&self, run_id: i64) -> Result<RunDetail, WebError> {
        self.pool
            .run(move |conn| {
                let store = RunStore::new(conn);
                let run = store
                    .run(run_id)?
                    .ok_or_else(|| WebError::NotFound(format!("no run {run_id}")))?;
                Ok(RunDetail {
                    run,
                    tasks: store.tasks(run_id)?,
                    logs: store.logs(run_id)?,
                })
            })
            .await
    }

    /// The enrichment queue's progress per source, and its latest problems.
    pub async fn enrichment(
        &self,
        max_attempts: u32,
    ) -> Result<(Progress, Vec<EnrichmentProblem>), WebError> {
        self.pool
            .run(move |conn| {
                let progress = Progress::read(conn, max_attempts, chrono::Utc::now())?;
                let mut stmt = conn.prepare_cached(
                    "SELECT source, entity, coalesce(label, entity_key), state, attempts,
                            coalesce(last_error, ''), coalesce(strftime(finished_at, '%Y-%m-%d %H:%M'), '')
                     FROM raw.enrichment_queue
                     WHERE state IN ('failed', 'not_found')
                     ORDER BY finished_at DESC NULLS LAST, priority DESC LIMIT 50",
                )?;
                let problems = stmt
                    .query_map([], |r| {
                        Ok(EnrichmentProblem {
                            source: r.get(0)?,
                            entity: r.get(1)?,
                            label: r.get(2)?,
                            state: r.get(3)?,
                            attempts: r.get(4)?,
                            error: r.get(5)?,
                            when: r.get(6)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((progress, problems))
            })
            .await
    }

    /// The market collector's records: lifecycle events, outages, instruments.
    pub async fn market(&self) -> Result<MarketRecords, WebError> {
        self.pool.run(|conn| Ok(market_records(conn)?)).await
    }

    /// DuckDB's figures of the writing instance, and the enrichment queue's depth.
    pub async fn figures(&self) -> Result<DuckDbFigures, WebError> {
        self.pool
            .run(|conn| {
                let (warehouse_bytes, memory_bytes) = duckdb_figures(conn)?;
                let mut stmt = conn.prepare_cached(
                    "SELECT source, count(*) FILTER (WHERE state IN ('queued', 'failed'))
                     FROM raw.enrichment_queue GROUP BY source ORDER BY source",
                )?;
                let queue = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(DuckDbFigures {
                    warehouse_bytes,
                    memory_bytes,
                    queue,
                })
            })
            .await
    }
}

fn market_records(conn: &Connection) -> duckdb::Result<MarketRecords> {
    let mut stmt = conn.prepare_cached(
        "SELECT event_type, count(*) FROM market.lifecycle_events
         WHERE event_time >= now()::TIMESTAMP - INTERVAL 1 DAY GROUP BY ALL ORDER BY 1",
    )?;
    let counts = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT strftime(event_time, '%Y-%m-%d %H:%M:%S'), event_type, currency, instrument_name,
                success, error, detail
         FROM market.lifecycle_events
         WHERE NOT (event_type = 'subscription_added' AND success)
         ORDER BY event_id DESC LIMIT 100",
    )?;
    let events = stmt
        .query_map([], |r| {
            Ok(LifecycleRow {
                time: r.get(0)?,
                event_type: r.get(1)?,
                currency: r.get(2)?,
                instrument: r.get(3)?,
                success: r.get(4)?,
                error: r.get(5)?,
                detail: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT connection, strftime(disconnected_at, '%Y-%m-%d %H:%M:%S'),
                strftime(reconnected_at, '%Y-%m-%d %H:%M:%S'),
                epoch_ms(reconnected_at) / 1000.0 - epoch_ms(disconnected_at) / 1000.0, reason
         FROM market.disconnects ORDER BY disconnected_at DESC LIMIT 30",
    )?;
    let gaps = stmt
        .query_map([], |r| {
            Ok(GapRow {
                connection: r.get(0)?,
                from: r.get(1)?,
                to: r.get(2)?,
                seconds: r.get(3)?,
                reason: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let (instruments_known, instruments_active) = conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE is_active) FROM market.instrument_metadata",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(MarketRecords {
        counts,
        events,
        gaps,
        instruments_known,
        instruments_active,
    })
}

/// The database file's size on disk (the file and its WAL) and DuckDB's memory in use, in
/// bytes, of `conn`'s instance.
pub(crate) fn duckdb_figures(conn: &Connection) -> duckdb::Result<(i64, i64)> {
    let (path, memory): (Option<String>, i64) = conn.query_row(
        "SELECT (SELECT path FROM duckdb_databases() WHERE database_name = current_database()),
                (SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory())",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let size = |p: &str| std::fs::metadata(p).map_or(0, |m| m.len() as i64);
    let on_disk = path.map_or(0, |p| size(&p) + size(&format!("{p}.wal")));
    Ok((on_disk, memory))
}

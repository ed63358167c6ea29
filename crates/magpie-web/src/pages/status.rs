//! The box magpie runs on: its RSS against the memory budget, DuckDB's memory and warehouse
//! size, host memory and swap, the data folder's disk, with warnings when swap is used, the
//! disk is full, nearly full or read-only, or magpie is over its budget.

use axum::extract::{Query, State};
use axum::response::Response;
use magpie_core::host::HostStatus;
use serde::Serialize;

use super::{PageQuery, context, plain_frame, reply};
use crate::render::{Rendered, Table};
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Status {
    #[serde(flatten)]
    host: HostStatus,
    warehouse_bytes: i64,
    duckdb_memory_bytes: i64,
    /// RSS as a share of the budget, in percent.
    budget_used_percent: f64,
    data_dir: String,
}

pub async fn page(State(app): State<App>, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = plain_frame(app, query, "Status".into(), "status", "/status".into())?;
    let host = app.host_status().await?;
    let figures = app.live().figures().await?;
    let (warehouse_bytes, duckdb_memory_bytes) = (
        figures.warehouse_bytes,
        figures.memory_bytes + app.reader_memory().await.unwrap_or(0),
    );
    let data = Status {
        budget_used_percent: if host.memory_budget_bytes == 0 {
            0.0
        } else {
            host.process_rss_bytes as f64 * 100.0 / host.memory_budget_bytes as f64
        },
        data_dir: app.data_dir().display().to_string(),
        host,
        warehouse_bytes,
        duckdb_memory_bytes,
    };
    let mut table = Table::new(&["figure", "bytes"]);
    for (name, value) in [
        ("process_rss", data.host.process_rss_bytes as i64),
        ("memory_budget", data.host.memory_budget_bytes as i64),
        ("duckdb_memory", data.duckdb_memory_bytes),
        ("warehouse", data.warehouse_bytes),
        ("data_dir", data.host.data_dir_bytes as i64),
        ("host_memory", data.host.host_memory_bytes as i64),
        ("host_available", data.host.host_available_bytes as i64),
        ("swap_used", data.host.swap_used_bytes as i64),
        ("disk_available", data.host.disk.available_bytes as i64),
    ] {
        table.push(vec![name.to_string(), value.to_string()]);
    }
    Ok(Rendered {
        template: "status.html",
        data: context(&frame, &data)?,
        charts: Vec::new(),
        table,
        name: "status".into(),
    })
}

//! `/health` (liveness: the process answers), `/health/ready` (readiness: the warehouse
//! answers a query and the marts exist) and `/metrics` (Prometheus text format).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::App;

pub async fn live(State(app): State<App>) -> Response {
    Json(json!({ "status": "ok", "uptime_secs": app.uptime_secs() })).into_response()
}

pub async fn ready(State(app): State<App>) -> Response {
    let check = app
        .pool()
        .run(|conn| {
            let marts: i64 = conn.query_row(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' AND table_name = 'fact_plays'",
                [],
                |r| r.get(0),
            )?;
            Ok(marts > 0)
        })
        .await;
    // The market collector, when it runs, must be covering its instruments.
    if let (Ok(true), Some(Err(reason))) = (&check, app.market().map(|m| m.ready())) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "warehouse": "ok", "marts": "built", "market": reason })),
        )
            .into_response();
    }
    match check {
        Ok(true) => Json(json!({ "status": "ready", "warehouse": "ok", "marts": "built" })).into_response(),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "warehouse": "ok", "marts": "not built: run `magpie build`" })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "warehouse": e.public_message() })),
        )
            .into_response(),
    }
}

/// `/metrics`: the process's metrics in Prometheus' text format (flow runs, API calls and
/// errors per service, ...), when the binary installed a recorder.
pub async fn metrics(State(app): State<App>) -> Response {
    if app.metrics().is_some() {
        refresh_gauges(&app).await;
    }
    match app.metrics() {
        Some(render) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n",
        )
            .into_response(),
    }
}

/// Gauges read at scrape time: the process and host (see `magpie_core::host`), DuckDB's
/// memory and file, and the enrichment queue.
async fn refresh_gauges(app: &App) {
    use metrics::gauge;
    let (dir, budget) = (app.data_dir().to_path_buf(), app.memory_budget());
    if let Ok(host) =
        tokio::task::spawn_blocking(move || magpie_core::host::HostStatus::read(&dir, budget)).await
    {
        gauge!("magpie_process_resident_memory_bytes").set(host.process_rss_bytes as f64);
        gauge!("magpie_process_cpu_seconds").set(host.process_cpu_seconds);
        gauge!("magpie_memory_budget_bytes").set(host.memory_budget_bytes as f64);
        gauge!("magpie_host_memory_available_bytes").set(host.host_available_bytes as f64);
        gauge!("magpie_host_swap_used_bytes").set(host.swap_used_bytes as f64);
        gauge!("magpie_data_disk_available_bytes").set(host.disk_available_bytes as f64);
        gauge!("magpie_data_dir_bytes").set(host.data_dir_bytes as f64);
    }
    let db = app
        .pool()
        .run(|conn| {
            let (size, memory) = duckdb_figures(conn)?;
            let mut stmt = conn.prepare(
                "SELECT source, count(*) FILTER (WHERE state IN ('queued', 'failed')) FROM raw.enrichment_queue GROUP BY source",
            )?;
            let queue: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok::<_, crate::WebError>((size, memory, queue))
        })
        .await;
    if let Ok((size, memory, queue)) = db {
        gauge!("magpie_warehouse_size_bytes").set(size as f64);
        gauge!("magpie_duckdb_memory_bytes").set(memory as f64);
        for (source, depth) in queue {
            gauge!("magpie_enrichment_queue_depth", "source" => source).set(depth as f64);
        }
    }
}

/// The warehouse's size on disk (the file and its WAL) and DuckDB's memory in use, in bytes.
pub(crate) fn duckdb_figures(conn: &duckdb::Connection) -> duckdb::Result<(i64, i64)> {
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

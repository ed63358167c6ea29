//! `/health` (liveness: the process answers), `/health/ready` (readiness: the published
//! snapshot answers a query and holds the marts) and `/metrics` (Prometheus text format).

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
        .reader()
        .run(|conn| {
            let marts: i64 = conn.query_row(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = 'fact_plays'",
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

/// Gauges read at scrape time: the process and host (see `magpie_core::host`; the data
/// folder's size is walked at most every few minutes, not per scrape), the data folder's
/// filesystem (free and total bytes, writable and full as 0/1), DuckDB's memory and file, and
/// the enrichment queue.
async fn refresh_gauges(app: &App) {
    use metrics::gauge;
    if let Ok(host) = app.host_status().await {
        gauge!("magpie_process_resident_memory_bytes").set(host.process_rss_bytes as f64);
        gauge!("magpie_process_cpu_seconds").set(host.process_cpu_seconds);
        gauge!("magpie_memory_budget_bytes").set(host.memory_budget_bytes as f64);
        gauge!("magpie_host_memory_available_bytes").set(host.host_available_bytes as f64);
        gauge!("magpie_host_swap_used_bytes").set(host.swap_used_bytes as f64);
        gauge!("magpie_data_disk_available_bytes").set(host.disk.available_bytes as f64);
        gauge!("magpie_data_disk_total_bytes").set(host.disk.total_bytes as f64);
        gauge!("magpie_data_disk_writable").set(f64::from(u8::from(host.disk.writable)));
        gauge!("magpie_data_disk_full").set(f64::from(u8::from(host.disk.full())));
        gauge!("magpie_data_dir_bytes").set(host.data_dir_bytes as f64);
    }
    if let Ok(figures) = app.live().figures().await {
        let reader = app.reader_memory().await.unwrap_or(0);
        gauge!("magpie_warehouse_size_bytes").set(figures.warehouse_bytes as f64);
        gauge!("magpie_duckdb_memory_bytes").set((figures.memory_bytes + reader) as f64);
        gauge!("magpie_duckdb_reader_memory_bytes").set(reader as f64);
        for (source, depth) in figures.queue {
            gauge!("magpie_enrichment_queue_depth", "source" => source).set(depth as f64);
        }
    }
    gauge!("magpie_web_cache_bytes").set(app.cache().bytes() as f64);
}

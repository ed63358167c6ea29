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

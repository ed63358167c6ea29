//! `/market`: the Deribit collector's connections, coverage per currency, rows and files
//! written, the latest lifecycle events and connection gaps; `/api/market/status` the same
//! figures as JSON.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use magpie_market::MarketStatus;
use serde::Serialize;

use super::{PageQuery, context, plain_frame, reply};
use crate::render::{Rendered, Table};
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct MarketPage {
    #[serde(flatten)]
    status: MarketStatus,
    /// Events per type in the last 24 hours.
    counts: Vec<(String, i64)>,
    events: Vec<crate::live::LifecycleRow>,
    gaps: Vec<crate::live::GapRow>,
    instruments_known: i64,
    instruments_active: i64,
}

/// The collector's status; `enabled: false` when it does not run in this process.
pub async fn api_status(State(app): State<App>) -> Response {
    Json(app.market().map(|m| m.status()).unwrap_or_default()).into_response()
}

pub async fn page(State(app): State<App>, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = plain_frame(app, query, "Market data".into(), "market", "/market".into())?;
    let status = app.market().map(|m| m.status()).unwrap_or_default();
    let records = app.live().market().await?;
    let mut table = Table::new(&[
        "currency",
        "active_instruments",
        "subscribed_instruments",
        "coverage",
        "lag_ms",
    ]);
    for c in &status.currencies {
        table.push(vec![
            c.currency.clone(),
            c.active_instruments.to_string(),
            c.subscribed_instruments.to_string(),
            format!("{:.4}", c.coverage),
            c.lag_ms.map(|l| l.to_string()).unwrap_or_default(),
        ]);
    }
    let page = MarketPage {
        status,
        counts: records.counts,
        events: records.events,
        gaps: records.gaps,
        instruments_known: records.instruments_known,
        instruments_active: records.instruments_active,
    };
    Ok(Rendered {
        template: "market.html",
        data: context(&frame, &page)?,
        charts: Vec::new(),
        table,
        name: "market".into(),
    })
}

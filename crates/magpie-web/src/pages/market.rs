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
struct LifecycleRow {
    time: String,
    event_type: String,
    currency: Option<String>,
    instrument: Option<String>,
    success: bool,
    error: Option<String>,
    detail: Option<String>,
}

#[derive(Debug, Serialize)]
struct GapRow {
    connection: i32,
    from: String,
    to: Option<String>,
    seconds: Option<f64>,
    reason: String,
}

#[derive(Debug, Serialize)]
struct MarketPage {
    #[serde(flatten)]
    status: MarketStatus,
    /// Events per type in the last 24 hours.
    counts: Vec<(String, i64)>,
    events: Vec<LifecycleRow>,
    gaps: Vec<GapRow>,
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
    let (counts, events, gaps, known, active) = app
        .pool()
        .run(|conn| {
            let mut stmt = conn.prepare(
                "SELECT event_type, count(*) FROM market.lifecycle_events
                 WHERE event_time >= now()::TIMESTAMP - INTERVAL 1 DAY GROUP BY ALL ORDER BY 1",
            )?;
            let counts: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut stmt = conn.prepare(
                "SELECT strftime(event_time, '%Y-%m-%d %H:%M:%S'), event_type, currency, instrument_name, success, error, detail
                 FROM market.lifecycle_events
                 WHERE NOT (event_type = 'subscription_added' AND success)
                 ORDER BY event_id DESC LIMIT 100",
            )?;
            let events: Vec<LifecycleRow> = stmt
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
            let mut stmt = conn.prepare(
                "SELECT connection, strftime(disconnected_at, '%Y-%m-%d %H:%M:%S'), strftime(reconnected_at, '%Y-%m-%d %H:%M:%S'),
                        epoch_ms(reconnected_at) / 1000.0 - epoch_ms(disconnected_at) / 1000.0, reason
                 FROM market.disconnects ORDER BY disconnected_at DESC LIMIT 30",
            )?;
            let gaps: Vec<GapRow> = stmt
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
            let (known, active): (i64, i64) = conn.query_row(
                "SELECT count(*), count(*) FILTER (WHERE is_active) FROM market.instrument_metadata",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok::<_, WebError>((counts, events, gaps, known, active))
        })
        .await?;
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
        counts,
        events,
        gaps,
        instruments_known: known,
        instruments_active: active,
    };
    Ok(Rendered {
        template: "market.html",
        data: context(&frame, &page)?,
        charts: Vec::new(),
        table,
        name: "market".into(),
    })
}

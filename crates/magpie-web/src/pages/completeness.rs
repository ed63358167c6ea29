//! Completeness of live polling: the windows in which Spotify polling may have missed plays,
//! and whether an export imported since covers each one (from `marts.polling_gaps`).

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;

use super::{PageQuery, context, frame, reply};
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

#[derive(Debug, Clone, Serialize)]
struct Gap {
    from: String,
    to: String,
    minutes: i64,
    found: String,
    reason: String,
    export_events: i64,
    covered: bool,
}

#[derive(Debug, Default, Serialize)]
struct Completeness {
    gaps: Vec<Gap>,
    open: usize,
    covered: usize,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = frame(
        app,
        query,
        "Completeness".into(),
        "completeness",
        "/completeness".into(),
    )
    .await?;
    let listener = app.listener_id()?;
    let data = app
        .cached(format!("completeness/{listener}"), move |conn| {
            let built: i64 = conn.query_row(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' AND table_name = 'polling_gaps'",
                [],
                |r| r.get(0),
            )?;
            if built == 0 {
                return Err(WebError::Unavailable("the completeness mart is not built yet: run `magpie build`".into()));
            }
            let mut stmt = conn.prepare(
                "SELECT strftime(gap_from, '%Y-%m-%d %H:%M'), strftime(gap_to, '%Y-%m-%d %H:%M'),
                        (epoch(gap_to) - epoch(gap_from))::BIGINT // 60, strftime(found_at, '%Y-%m-%d %H:%M'),
                        reason, export_events, covered_by_export
                 FROM marts.polling_gaps WHERE listener_id = ? ORDER BY gap_from DESC",
            )?;
            let mut rows = stmt.query([listener])?;
            let mut out = Completeness::default();
            while let Some(r) = rows.next()? {
                let gap = Gap {
                    from: r.get(0)?,
                    to: r.get(1)?,
                    minutes: r.get(2)?,
                    found: r.get(3)?,
                    reason: r.get(4)?,
                    export_events: r.get(5)?,
                    covered: r.get(6)?,
                };
                if gap.covered {
                    out.covered += 1;
                } else {
                    out.open += 1;
                }
                out.gaps.push(gap);
            }
            Ok(out)
        })
        .await?;
    let mut table = Table::new(&[
        "gap_from_utc",
        "gap_to_utc",
        "minutes",
        "reason",
        "export_events",
        "covered",
    ]);
    for g in &data.gaps {
        table.push(vec![
            g.from.clone(),
            g.to.clone(),
            g.minutes.to_string(),
            g.reason.clone(),
            g.export_events.to_string(),
            g.covered.to_string(),
        ]);
    }
    Ok(Rendered {
        template: "completeness.html",
        data: context(&frame, data.as_ref())?,
        charts: Vec::new(),
        table,
        name: "completeness".into(),
    })
}

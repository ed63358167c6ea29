//! Streaks: runs of consecutive days with music; the longest ever, the current one, and those
//! in the range.

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;

use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

#[derive(Debug, Clone, Serialize)]
struct Streak {
    start: chrono::NaiveDate,
    end: chrono::NaiveDate,
    days: i64,
}

#[derive(Debug, Default, Serialize)]
struct Streaks {
    longest: Vec<Streak>,
    /// The streak that includes the last day with plays.
    current: Option<Streak>,
    in_range: Vec<Streak>,
    active_days: i64,
    range_days: i64,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

fn streaks(
    conn: &duckdb::Connection,
    sql: &str,
    params: &[&dyn duckdb::ToSql],
) -> Result<Vec<Streak>, WebError> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Streak {
            start: r.get(0)?,
            end: r.get(1)?,
            days: r.get(2)?,
        });
    }
    Ok(out)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = frame(app, query, "Streaks".into(), "streaks", "/streaks".into()).await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let (listener, from, to, days) = (app.listener_id()?, range.from, range.to, range.days());
    let last = frame.bounds.last;
    let data = app
        .cached(format!("streaks/{listener}/{}", range.key()), move |conn| {
            let base = "SELECT streak_start, streak_end, days FROM marts.agg_streaks WHERE listener_id = ?";
            let longest = streaks(conn, &format!("{base} ORDER BY days DESC, streak_start DESC LIMIT 10"), &[&listener])?;
            let current = match last {
                Some(last) => streaks(conn, &format!("{base} AND streak_end = ?"), &[&listener, &last])?.pop(),
                None => None,
            };
            let in_range = streaks(
                conn,
                &format!("{base} AND streak_end >= ? AND streak_start <= ? ORDER BY days DESC, streak_start LIMIT 25"),
                &[&listener, &from, &to],
            )?;
            let active_days: i64 = conn.query_row(
                "SELECT count(*) FROM marts.agg_daily_listening WHERE listener_id = ? AND date_id BETWEEN ? AND ?",
                duckdb::params![listener, crate::range::date_id(from), crate::range::date_id(to)],
                |r| r.get(0),
            )?;
            Ok(Streaks { longest, current, in_range, active_days, range_days: days })
        })
        .await?;
    let also = app.scope().link_suffix();
    let qs_for = |s: &Streak| format!("/timeline?range=custom&from={}&to={}{also}", s.start, s.end);
    let points: Vec<Point> = data
        .longest
        .iter()
        .map(|s| Point {
            label: format!("{} – {}", s.start, s.end),
            value: s.days as f64,
            tip: format!("{} days in a row, {} to {}", s.days, s.start, s.end),
            href: Some(qs_for(s)),
        })
        .collect();
    let mut table = Table::new(&["streak_start", "streak_end", "days"]);
    for s in &data.in_range {
        table.push(vec![
            s.start.to_string(),
            s.end.to_string(),
            s.days.to_string(),
        ]);
    }
    Ok(Rendered {
        template: "streaks.html",
        data: context(&frame, data.as_ref())?,
        charts: vec![(
            "longest".into(),
            charts::ranking(&points, |p| format!("{} days", p.value)),
        )],
        table,
        name: format!("streaks-{}", range.key()),
    })
}

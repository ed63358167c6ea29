//! The year in review: the year's totals against the year before, its top artists, tracks and
//! albums, month by month, its discoveries, busiest day and longest streak.

use axum::extract::{Path, Query, RawQuery};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Datelike;
use serde::Serialize;

use super::queries::{self, Kind, TopFilter, TopRow, Totals};
use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::format::thousands;
use crate::range::Grain;
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

#[derive(Debug, Clone, Default, Serialize)]
struct Highlights {
    busiest_day: Option<String>,
    busiest_day_plays: i64,
    longest_streak_days: i64,
    longest_streak_start: Option<String>,
    top_hour: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Year {
    year: i32,
    totals: Totals,
    previous: Totals,
    months: Vec<queries::Bucket>,
    top_artists: Vec<TopRow>,
    top_tracks: Vec<TopRow>,
    top_albums: Vec<TopRow>,
    highlights: Highlights,
    years: Vec<i32>,
}

/// `/year`: the latest year with plays (the listener and format kept).
pub async fn latest(Scoped(app): Scoped, RawQuery(raw): RawQuery) -> Response {
    match queries::bounds(&app).await {
        Ok(bounds) => {
            let year = bounds.last.map_or_else(|| app.today().year(), |d| d.year());
            let kept: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(
                    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                        .filter(|(k, _)| k == crate::scope::PARAM || k == "format"),
                )
                .finish();
            let qs = if kept.is_empty() {
                kept
            } else {
                format!("?{kept}")
            };
            Redirect::temporary(&format!("/year/{year}{qs}")).into_response()
        }
        Err(e) => reply(&app, &PageQuery::default(), Err(e)),
    }
}

pub async fn page(
    Scoped(app): Scoped,
    Path(year): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    reply(&app, &query, build(&app, &year, &query).await)
}

async fn build(app: &App, year: &str, query: &PageQuery) -> Result<Rendered, WebError> {
    let year: i32 = year
        .parse()
        .ok()
        .filter(|y| (1900..=2100).contains(y))
        .ok_or_else(|| WebError::NotFound(format!("`{year}` is not a year")))?;
    let mut query = query.clone();
    query.range = Some(year.to_string());
    let frame = frame(
        app,
        &query,
        format!("{year} in review"),
        "year",
        format!("/year/{year}"),
    )
    .await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let (first, last) = (frame.bounds.first, frame.bounds.last);
    if first.is_none_or(|f| f.year() > year) || last.is_none_or(|l| l.year() < year) {
        return Err(WebError::NotFound(format!("there are no plays in {year}")));
    }
    let previous_totals = async {
        match &frame.previous {
            Some(p) => Ok(queries::totals(app, p).await?.as_ref().clone()),
            None => Ok(Totals::default()),
        }
    };
    let top = |kind| queries::top(app, &range, kind, 10, false, TopFilter::default());
    // The queries run side by side on the pool's connections.
    let (totals, previous, months, artists, tracks, albums) = tokio::try_join!(
        queries::totals(app, &range),
        previous_totals,
        queries::series(app, &range, Grain::Month),
        top(Kind::Artist),
        top(Kind::Track),
        top(Kind::Album),
    )?;
    let (listener, from, to) = (app.listener_id()?, range.from_id(), range.to_id());
    let (y_from, y_to) = (range.from, range.to);
    let highlights = app
        .cached(format!("year/{listener}/{year}"), move |conn| {
            let mut h = Highlights::default();
            let mut stmt = conn.prepare(
                "SELECT strftime(d.date_day, '%A %Y-%m-%d'), a.plays FROM marts.agg_daily_listening AS a
                 JOIN marts.dim_date AS d USING (date_id)
                 WHERE a.listener_id = ? AND a.date_id BETWEEN ? AND ? ORDER BY a.plays DESC, a.date_id LIMIT 1",
            )?;
            if let Some(r) = stmt.query([listener, from, to])?.next()? {
                h.busiest_day = r.get(0)?;
                h.busiest_day_plays = r.get(1)?;
            }
            let mut stmt = conn.prepare(
                "SELECT least(streak_end, ?::DATE) - greatest(streak_start, ?::DATE) + 1 AS days,
                        strftime(greatest(streak_start, ?::DATE), '%Y-%m-%d')
                 FROM marts.agg_streaks WHERE listener_id = ? AND streak_end >= ?::DATE AND streak_start <= ?::DATE
                 ORDER BY days DESC LIMIT 1",
            )?;
            if let Some(r) = stmt
                .query(duckdb::params![y_to, y_from, y_from, listener, y_from, y_to])?
                .next()?
            {
                h.longest_streak_days = r.get(0)?;
                h.longest_streak_start = r.get(1)?;
            }
            h.top_hour = conn.query_row(
                "SELECT hour FROM marts.agg_hourly_listening WHERE listener_id = ? AND date_id BETWEEN ? AND ?
                 GROUP BY hour ORDER BY sum(plays) DESC, hour LIMIT 1",
                [listener, from, to],
                |r| r.get(0),
            ).ok();
            Ok(h)
        })
        .await?;
    let also = app.scope().link_suffix();
    let points: Vec<Point> = months
        .iter()
        .map(|b| b.point(b.start.format("%b").to_string(), &also))
        .collect();
    let qs = format!("range={year}{also}");
    let ranking = |rows: &[TopRow], kind: Kind| -> Vec<Point> {
        rows.iter().map(|r| r.point(kind, &qs)).collect()
    };
    let mut table = Table::new(&["kind", "rank", "id", "name", "plays", "ms_played"]);
    for (kind, rows) in [("artist", &artists), ("track", &tracks), ("album", &albums)] {
        for r in rows.iter() {
            table.push(vec![
                kind.into(),
                r.rank.to_string(),
                r.id.clone(),
                r.name.clone(),
                r.plays.to_string(),
                r.ms_played.to_string(),
            ]);
        }
    }
    let years = match (first, last) {
        (Some(f), Some(l)) => (f.year()..=l.year()).rev().collect(),
        _ => Vec::new(),
    };
    let charts = vec![
        ("months".into(), charts::columns(&points, "plays")),
        (
            "artists".into(),
            charts::ranking(&ranking(&artists, Kind::Artist), |p| {
                thousands(p.value as i64)
            }),
        ),
        (
            "tracks".into(),
            charts::ranking(&ranking(&tracks, Kind::Track), |p| {
                thousands(p.value as i64)
            }),
        ),
    ];
    let data = Year {
        year,
        totals: totals.as_ref().clone(),
        previous,
        months: months.as_ref().clone(),
        top_artists: artists.as_ref().clone(),
        top_tracks: tracks.as_ref().clone(),
        top_albums: albums.as_ref().clone(),
        highlights: highlights.as_ref().clone(),
        years,
    };
    Ok(Rendered {
        template: "year.html",
        data: context(&frame, &data)?,
        charts,
        table,
        name: format!("year-{year}"),
    })
}

//! The overview: totals for the range against the previous period, listening over time and
//! the range's top artists.

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;

use super::queries::{self, Kind, TopFilter, TopRow, Totals};
use super::{Frame, PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::format::thousands;
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Overview {
    totals: Totals,
    previous: Option<Totals>,
    series: Vec<queries::Bucket>,
    top_artists: Vec<TopRow>,
    /// What the listener's player reports playing right now (not a play until it is
    /// submitted as one).
    now_playing: Option<magpie_music::submit::now_playing::Playing>,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame: Frame = frame(app, query, "Overview".into(), "overview", "/".into()).await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let grain = range.grain();
    // The queries run side by side on the pool's connections.
    let previous_totals = async {
        match &frame.previous {
            Some(p) => Ok(Some(queries::totals(app, p).await?.as_ref().clone())),
            None => Ok(None),
        }
    };
    let (totals, previous, series, top) = tokio::try_join!(
        queries::totals(app, &range),
        previous_totals,
        queries::series(app, &range, grain),
        queries::top(app, &range, Kind::Artist, 10, false, TopFilter::default()),
    )?;

    let also = app.scope().link_suffix();
    let points: Vec<Point> = series
        .iter()
        .map(|b| b.point(b.label.clone(), &also))
        .collect();
    let qs = format!("{}{}", range.query_string(), app.scope().detail_suffix());
    let ranking: Vec<Point> = top.iter().map(|r| r.point(Kind::Artist, &qs)).collect();
    let mut table = Table::new(&["period_start", "period_end", "plays", "ms_played"]);
    for b in series.iter() {
        table.push(vec![
            b.start.to_string(),
            b.end.to_string(),
            b.plays.to_string(),
            b.ms_played.to_string(),
        ]);
    }
    let data = Overview {
        totals: totals.as_ref().clone(),
        previous,
        series: series.as_ref().clone(),
        top_artists: top.as_ref().clone(),
        now_playing: app
            .scrobbling()
            .now_playing
            .get(&frame.listener, chrono::Utc::now()),
    };
    Ok(Rendered {
        template: "overview.html",
        data: context(&frame, &data)?,
        charts: vec![
            ("series".into(), charts::columns(&points, "plays")),
            (
                "top_artists".into(),
                charts::ranking(&ranking, |p| thousands(p.value as i64)),
            ),
        ],
        table,
        name: format!("overview-{}", range.key()),
    })
}

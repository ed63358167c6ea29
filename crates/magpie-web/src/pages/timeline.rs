//! The timeline: plays, hours and new artists per day, week or month; each column drills down
//! into its own period.

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;

use super::queries::{self, Bucket};
use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::format::{hours, thousands};
use crate::range::Grain;
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

/// More columns than this are unreadable; a coarser grain is asked for instead.
const MAX_BUCKETS: usize = 1500;

#[derive(Debug, Serialize)]
struct Timeline {
    grain: Grain,
    buckets: Vec<Bucket>,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

fn chart(buckets: &[Bucket], value: impl Fn(&Bucket) -> f64, unit: &str, also: &str) -> String {
    let points: Vec<Point> = buckets
        .iter()
        .map(|b| Point {
            label: b.label.clone(),
            value: value(b),
            tip: format!(
                "{}: {} plays, {}, {} new artists",
                b.label,
                thousands(b.plays),
                hours(b.ms_played),
                thousands(b.new_artists)
            ),
            href: Some(format!(
                "/timeline?range=custom&from={}&to={}{also}",
                b.start, b.end
            )),
        })
        .collect();
    charts::columns(&points, unit)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = frame(
        app,
        query,
        "Timeline".into(),
        "timeline",
        "/timeline".into(),
    )
    .await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let grain = match query.grain.as_deref() {
        Some(g) if !g.is_empty() => Grain::parse(g)?,
        _ => range.grain(),
    };
    let count = queries::buckets(&range, grain).len();
    if count > MAX_BUCKETS {
        return Err(WebError::BadRequest(format!(
            "{count} {}s are too many columns for one chart: choose a coarser grain or a shorter range",
            grain.sql_part()
        )));
    }
    let buckets = queries::series(app, &range, grain).await?;
    let mut table = Table::new(&[
        "period_start",
        "period_end",
        "plays",
        "ms_played",
        "new_artists",
        "sessions",
    ]);
    for b in buckets.iter() {
        table.push(vec![
            b.start.to_string(),
            b.end.to_string(),
            b.plays.to_string(),
            b.ms_played.to_string(),
            b.new_artists.to_string(),
            b.sessions.to_string(),
        ]);
    }
    let also = app.scope().link_suffix();
    let charts = vec![
        (
            "plays".into(),
            chart(&buckets, |b| b.plays as f64, "plays", &also),
        ),
        (
            "hours".into(),
            chart(
                &buckets,
                |b| b.ms_played as f64 / 3_600_000.0,
                "hours",
                &also,
            ),
        ),
        (
            "new_artists".into(),
            chart(&buckets, |b| b.new_artists as f64, "new artists", &also),
        ),
    ];
    let data = Timeline {
        grain,
        buckets: buckets.as_ref().clone(),
    };
    Ok(Rendered {
        template: "timeline.html",
        data: context(&frame, &data)?,
        charts,
        table,
        name: format!("timeline-{}-{}", grain.sql_part(), range.key()),
    })
}

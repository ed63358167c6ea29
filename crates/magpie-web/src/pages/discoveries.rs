//! Discoveries: artists and tracks played for the first time in the range, per period, and
//! which of them stuck (plays since).

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;

use super::queries;
use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::format::thousands;
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

#[derive(Debug, Clone, Serialize)]
struct Discovery {
    id: String,
    name: String,
    artist: Option<String>,
    first_played: String,
    plays_since: i64,
}

#[derive(Debug, Clone, Serialize)]
struct PeriodCount {
    label: String,
    start: chrono::NaiveDate,
    end: chrono::NaiveDate,
    artists: i64,
    tracks: i64,
}

#[derive(Debug, Default, Serialize)]
struct Discoveries {
    new_artists: i64,
    new_tracks: i64,
    periods: Vec<PeriodCount>,
    /// New artists of the range that were played most since.
    artists: Vec<Discovery>,
    tracks: Vec<Discovery>,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

fn list(
    conn: &duckdb::Connection,
    kind: &str,
    listener: i32,
    from: i32,
    to: i32,
) -> Result<Vec<Discovery>, WebError> {
    let names = if kind == "artist" {
        "SELECT artist_id AS id, artist_name AS name, NULL::VARCHAR AS artist FROM marts.dim_artist"
    } else {
        "SELECT t.track_id AS id, t.track_name AS name, a.artist_name AS artist
         FROM marts.dim_track AS t LEFT JOIN marts.dim_artist AS a USING (artist_id)"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT x.entity_id, coalesce(n.name, '(unknown)'), n.artist,
                strftime(x.first_played_at, '%Y-%m-%d'), x.plays_since
         FROM marts.agg_discoveries AS x LEFT JOIN ({names}) AS n ON n.id = x.entity_id
         WHERE x.listener_id = ? AND x.entity_kind = ? AND x.first_date_id BETWEEN ? AND ?
         ORDER BY x.plays_since DESC, x.first_played_at LIMIT 50"
    ))?;
    let mut rows = stmt.query(duckdb::params![listener, kind, from, to])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Discovery {
            id: r.get(0)?,
            name: r.get(1)?,
            artist: r.get(2)?,
            first_played: r.get(3)?,
            plays_since: r.get(4)?,
        });
    }
    Ok(out)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = frame(
        app,
        query,
        "Discoveries".into(),
        "discoveries",
        "/discoveries".into(),
    )
    .await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let grain = range.grain();
    let slots = queries::buckets(&range, grain);
    let (listener, from, to) = (app.listener_id()?, range.from_id(), range.to_id());
    let data = app
        .cached(format!("discoveries/{listener}/{}", range.key()), move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT CAST(date_trunc('{}', d.date_day) AS DATE),
                        count(*) FILTER (WHERE x.entity_kind = 'artist'), count(*) FILTER (WHERE x.entity_kind = 'track')
                 FROM marts.agg_discoveries AS x JOIN marts.dim_date AS d ON d.date_id = x.first_date_id
                 WHERE x.listener_id = ? AND x.first_date_id BETWEEN ? AND ?
                 GROUP BY 1",
                grain.sql_part()
            ))?;
            let mut found = std::collections::HashMap::new();
            let mut rows = stmt.query([listener, from, to])?;
            while let Some(r) = rows.next()? {
                found.insert(r.get::<_, chrono::NaiveDate>(0)?, (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?));
            }
            let periods: Vec<PeriodCount> = slots
                .iter()
                .map(|&(start, end)| {
                    let (artists, tracks) = found.get(&start).copied().unwrap_or_default();
                    PeriodCount { label: queries::bucket_label(start, grain), start, end, artists, tracks }
                })
                .collect();
            Ok(Discoveries {
                new_artists: periods.iter().map(|p| p.artists).sum(),
                new_tracks: periods.iter().map(|p| p.tracks).sum(),
                periods,
                artists: list(conn, "artist", listener, from, to)?,
                tracks: list(conn, "track", listener, from, to)?,
            })
        })
        .await?;
    let also = app.scope().link_suffix();
    let points: Vec<Point> = data
        .periods
        .iter()
        .map(|p| Point {
            label: p.label.clone(),
            value: p.artists as f64,
            tip: format!(
                "{}: {} new artists, {} new tracks",
                p.label,
                thousands(p.artists),
                thousands(p.tracks)
            ),
            href: Some(format!(
                "/discoveries?range=custom&from={}&to={}{also}",
                p.start, p.end
            )),
        })
        .collect();
    let mut table = Table::new(&[
        "kind",
        "id",
        "name",
        "artist",
        "first_played",
        "plays_since",
    ]);
    for (kind, list) in [("artist", &data.artists), ("track", &data.tracks)] {
        for d in list {
            table.push(vec![
                kind.into(),
                d.id.clone(),
                d.name.clone(),
                d.artist.clone().unwrap_or_default(),
                d.first_played.clone(),
                d.plays_since.to_string(),
            ]);
        }
    }
    Ok(Rendered {
        template: "discoveries.html",
        data: context(&frame, data.as_ref())?,
        charts: vec![("series".into(), charts::columns(&points, "new artists"))],
        table,
        name: format!("discoveries-{}", range.key()),
    })
}

//! Genres: each genre's share of plays over time, from the artist-genre bridge that
//! enrichment fills; until it has, the page says enrichment is pending.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Serialize;

use super::queries;
use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::format::thousands;
use crate::render::{Rendered, Table};
use crate::{App, WebError};

/// Genres drawn separately; the rest are summed as "other".
const SHOWN: usize = 8;

#[derive(Debug, Clone, Serialize)]
struct GenreTotal {
    genre: String,
    plays: i64,
    ms_played: i64,
}

#[derive(Debug, Default, Serialize)]
struct Genres {
    /// False until enrichment has given any artist a genre.
    enriched: bool,
    genres: Vec<GenreTotal>,
    buckets: Vec<String>,
    /// Plays per shown genre and bucket.
    series: Vec<(String, Vec<i64>)>,
}

pub async fn page(State(app): State<App>, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = frame(app, query, "Genres".into(), "genres", "/genres".into()).await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let grain = range.grain();
    let slots = queries::buckets(&range, grain);
    let (listener, from, to) = (app.listener_id(), range.from_id(), range.to_id());
    let data = app
        .cached(format!("genres/{listener}/{}", range.key()), move |conn| {
            let enriched: i64 =
                conn.query_row("SELECT count(*) FROM marts.bridge_artist_genre", [], |r| {
                    r.get(0)
                })?;
            if enriched == 0 {
                return Ok(Genres::default());
            }
            let mut stmt = conn.prepare(&format!(
                "SELECT g.genre_name, CAST(date_trunc('{}', d.date_day) AS DATE),
                        sum(x.plays)::BIGINT, sum(x.ms_played)::BIGINT
                 FROM marts.agg_daily_artist AS x
                 JOIN marts.bridge_artist_genre AS b USING (artist_id)
                 JOIN marts.dim_genre AS g USING (genre_id)
                 JOIN marts.dim_date AS d USING (date_id)
                 WHERE x.listener_id = ? AND x.date_id BETWEEN ? AND ?
                 GROUP BY 1, 2",
                grain.sql_part()
            ))?;
            let mut cells: Vec<(String, chrono::NaiveDate, i64, i64)> = Vec::new();
            let mut rows = stmt.query([listener, from, to])?;
            while let Some(r) = rows.next()? {
                cells.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
            }
            let mut totals: Vec<GenreTotal> = Vec::new();
            for (genre, _, plays, ms) in &cells {
                match totals.iter_mut().find(|t| &t.genre == genre) {
                    Some(t) => {
                        t.plays += plays;
                        t.ms_played += ms;
                    }
                    None => totals.push(GenreTotal {
                        genre: genre.clone(),
                        plays: *plays,
                        ms_played: *ms,
                    }),
                }
            }
            totals.sort_by(|a, b| b.plays.cmp(&a.plays).then(a.genre.cmp(&b.genre)));
            let mut names: Vec<String> =
                totals.iter().take(SHOWN).map(|t| t.genre.clone()).collect();
            if totals.len() > SHOWN {
                names.push("other".into());
            }
            let mut series: Vec<(String, Vec<i64>)> = names
                .iter()
                .map(|n| (n.clone(), vec![0; slots.len()]))
                .collect();
            for (genre, bucket, plays, _) in &cells {
                let k = names
                    .iter()
                    .position(|n| n == genre)
                    .unwrap_or(names.len() - 1);
                if let Some(i) = slots.iter().position(|(s, _)| s == bucket) {
                    series[k].1[i] += plays;
                }
            }
            Ok(Genres {
                enriched: true,
                genres: totals,
                buckets: slots
                    .iter()
                    .map(|(s, _)| queries::bucket_label(*s, grain))
                    .collect(),
                series,
            })
        })
        .await?;
    let mut table = Table::new(&["genre", "plays", "ms_played"]);
    for g in &data.genres {
        table.push(vec![
            g.genre.clone(),
            g.plays.to_string(),
            g.ms_played.to_string(),
        ]);
    }
    let shares: Vec<(String, Vec<f64>)> = data
        .series
        .iter()
        .map(|(n, v)| (n.clone(), v.iter().map(|&x| x as f64).collect()))
        .collect();
    let ranking: Vec<Point> = data
        .genres
        .iter()
        .take(15)
        .map(|g| Point {
            label: g.genre.clone(),
            value: g.plays as f64,
            tip: format!("{}: {} plays", g.genre, thousands(g.plays)),
            href: None,
        })
        .collect();
    let charts = if data.enriched {
        vec![
            (
                "share".into(),
                charts::stacked_share(&data.buckets, &shares),
            ),
            (
                "ranking".into(),
                charts::ranking(&ranking, |p| thousands(p.value as i64)),
            ),
        ]
    } else {
        Vec::new()
    };
    Ok(Rendered {
        template: "genres.html",
        data: context(&frame, data.as_ref())?,
        charts,
        table,
        name: format!("genres-{}", range.key()),
    })
}

//! Genres: each genre family's share of plays over time (a play counts once, split across its
//! artist's genres by `weight_share`), the families and the fine genres ranked by plays, from
//! the artist-genre bridge that enrichment fills; until it has, the page says enrichment is
//! pending.

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

/// Families drawn separately; the rest are summed as "other".
const SHOWN: usize = 7;

#[derive(Debug, Clone, Serialize)]
struct GenreTotal {
    genre: String,
    family: String,
    /// Plays by artists with this genre (a play of an artist with two genres counts in both).
    plays: i64,
    ms_played: i64,
}

#[derive(Debug, Clone, Serialize)]
struct FamilyTotal {
    family: String,
    /// Plays, each split across its artist's genres: families add up to the plays of artists
    /// with any genre.
    plays: f64,
    ms_played: f64,
}

#[derive(Debug, Default, Serialize)]
struct Genres {
    /// False until enrichment has given any artist a genre.
    enriched: bool,
    genres: Vec<GenreTotal>,
    families: Vec<FamilyTotal>,
    buckets: Vec<String>,
    /// Weighted plays per shown family and bucket.
    series: Vec<(String, Vec<f64>)>,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
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
    let scope = app.scope();
    let (listener, from, to) = (scope.param(), range.from_id(), range.to_id());
    let who = scope.filter("x.listener_id");
    let data = app
        .cached(
            format!("genres/{}/{}", scope.key(), range.key()),
            move |conn| {
                let enriched: i64 =
                    conn.query_row("SELECT count(*) FROM marts.bridge_artist_genre", [], |r| {
                        r.get(0)
                    })?;
                if enriched == 0 {
                    return Ok(Genres::default());
                }
                let mut stmt = conn.prepare(&format!(
                "SELECT g.genre_name, g.genre_family, CAST(date_trunc('{}', d.date_day) AS DATE),
                        sum(x.plays)::BIGINT, sum(x.ms_played)::BIGINT,
                        sum(x.plays * b.weight_share), sum(x.ms_played * b.weight_share)
                 FROM marts.agg_daily_artist AS x
                 JOIN marts.bridge_artist_genre AS b USING (artist_id)
                 JOIN marts.dim_genre AS g USING (genre_id)
                 JOIN marts.dim_date AS d USING (date_id)
                 WHERE {who} AND x.date_id BETWEEN ? AND ?
                 GROUP BY 1, 2, 3",
                grain.sql_part()
            ))?;
                let mut genres: Vec<GenreTotal> = Vec::new();
                let mut families: Vec<FamilyTotal> = Vec::new();
                let mut cells: Vec<(String, chrono::NaiveDate, f64)> = Vec::new();
                let mut rows = stmt.query(duckdb::params![listener, from, to])?;
                while let Some(r) = rows.next()? {
                    let (genre, family): (String, String) = (r.get(0)?, r.get(1)?);
                    let (plays, ms): (i64, i64) = (r.get(3)?, r.get(4)?);
                    let (share, share_ms): (f64, f64) = (r.get(5)?, r.get(6)?);
                    match genres.iter_mut().find(|t| t.genre == genre) {
                        Some(t) => {
                            t.plays += plays;
                            t.ms_played += ms;
                        }
                        None => genres.push(GenreTotal {
                            genre,
                            family: family.clone(),
                            plays,
                            ms_played: ms,
                        }),
                    }
                    match families.iter_mut().find(|t| t.family == family) {
                        Some(t) => {
                            t.plays += share;
                            t.ms_played += share_ms;
                        }
                        None => families.push(FamilyTotal {
                            family: family.clone(),
                            plays: share,
                            ms_played: share_ms,
                        }),
                    }
                    cells.push((family, r.get(2)?, share));
                }
                genres.sort_by(|a, b| b.plays.cmp(&a.plays).then(a.genre.cmp(&b.genre)));
                families.sort_by(|a, b| b.plays.total_cmp(&a.plays).then(a.family.cmp(&b.family)));
                let mut names: Vec<String> = families
                    .iter()
                    .filter(|f| f.family != "other")
                    .take(SHOWN)
                    .map(|f| f.family.clone())
                    .collect();
                if names.len() < families.len() {
                    names.push("other".into());
                }
                let mut series: Vec<(String, Vec<f64>)> = names
                    .iter()
                    .map(|n| (n.clone(), vec![0.0; slots.len()]))
                    .collect();
                for (family, bucket, share) in &cells {
                    let k = names
                        .iter()
                        .position(|n| n == family)
                        .unwrap_or(names.len() - 1);
                    if let Some(i) = slots.iter().position(|(s, _)| s == bucket) {
                        series[k].1[i] += share;
                    }
                }
                Ok(Genres {
                    enriched: true,
                    genres,
                    families,
                    buckets: slots
                        .iter()
                        .map(|(s, _)| queries::bucket_label(*s, grain))
                        .collect(),
                    series,
                })
            },
        )
        .await?;
    let mut table = Table::new(&["genre", "family", "plays", "ms_played"]);
    for g in &data.genres {
        table.push(vec![
            g.genre.clone(),
            g.family.clone(),
            g.plays.to_string(),
            g.ms_played.to_string(),
        ]);
    }
    let family_ranking: Vec<Point> = data
        .families
        .iter()
        .map(|f| Point {
            label: f.family.clone(),
            value: f.plays,
            tip: format!("{}: {} plays", f.family, thousands(f.plays.round() as i64)),
            href: None,
        })
        .collect();
    let ranking: Vec<Point> = data
        .genres
        .iter()
        .take(15)
        .map(|g| Point {
            label: g.genre.clone(),
            value: g.plays as f64,
            tip: format!("{} ({}): {} plays", g.genre, g.family, thousands(g.plays)),
            href: None,
        })
        .collect();
    let charts = if data.enriched {
        vec![
            (
                "share".into(),
                charts::stacked_share(&data.buckets, &data.series),
            ),
            (
                "families".into(),
                charts::ranking(&family_ranking, |p| thousands(p.value.round() as i64)),
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

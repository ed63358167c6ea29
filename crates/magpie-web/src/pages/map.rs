//! The world map of artist origins: countries shaded by plays of artists from there; a
//! country's artists listed when it is clicked. Artists whose MusicBrainz area is no single
//! country (XW Worldwide, XE Europe, SU the Soviet Union ...) are not placed: the page says how
//! many there are, per area.

use std::collections::HashMap;

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;

use super::{PageQuery, context, frame, reply};
use crate::charts::{self, WorldMap};
use crate::format::{hours, thousands};
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

#[derive(Debug, Clone, Serialize)]
struct Country {
    code: String,
    name: String,
    plays: i64,
    ms_played: i64,
    artists: i64,
}

#[derive(Debug, Clone, Serialize)]
struct CountryArtist {
    id: String,
    name: String,
    plays: i64,
    ms_played: i64,
}

/// Artists of an area that is no single country (XW, XE, SU ...), in the whole warehouse.
#[derive(Debug, Clone, Serialize)]
struct Elsewhere {
    code: String,
    name: String,
    artists: i64,
}

#[derive(Debug, Default, Serialize)]
struct MapData {
    countries: Vec<Country>,
    /// Plays of artists whose origin is not known (yet).
    unknown_plays: i64,
    /// Plays (in the range) of artists whose area is no single country.
    elsewhere_plays: i64,
    /// Artists whose area is no single country, per area, most artists first.
    elsewhere: Vec<Elsewhere>,
    /// Their number.
    elsewhere_artists: i64,
    /// Artists with a known origin, in the whole warehouse.
    located_artists: i64,
    selected: Option<String>,
    selected_name: Option<String>,
    artists: Vec<CountryArtist>,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let mut frame = frame(app, query, "World map".into(), "map", "/map".into()).await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let selected = match query.country.as_deref().filter(|c| !c.is_empty()) {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(c.to_ascii_uppercase())
        }
        Some(c) => {
            return Err(WebError::BadRequest(format!(
                "`country={c}` is not a two-letter country code"
            )));
        }
        None => None,
    };
    if let Some(c) = &selected {
        frame.keep.push(("country".into(), c.clone()));
    }
    let scope = app.scope();
    let (listener, from, to) = (scope.param(), range.from_id(), range.to_id());
    let who = scope.filter("x.listener_id");
    let wanted = selected.clone();
    let data = app
        .cached(format!("map/{}/{}/{selected:?}", scope.key(), range.key()), move |conn| {
            let mut out = MapData {
                located_artists: conn.query_row(
                    "SELECT count(*) FROM marts.dim_artist WHERE country_code IS NOT NULL",
                    [],
                    |r| r.get(0),
                )?,
                ..Default::default()
            };
            let mut stmt = conn.prepare(
                "SELECT a.country_code, coalesce(a.country_name, a.country_code), count(*)
                 FROM marts.dim_artist AS a
                 WHERE a.country_code IS NOT NULL AND a.location_id IS NULL
                 GROUP BY 1, 2 ORDER BY 3 DESC, 2",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let area = Elsewhere { code: r.get(0)?, name: r.get(1)?, artists: r.get(2)? };
                out.elsewhere_artists += area.artists;
                out.elsewhere.push(area);
            }
            // Placed: the artist's country is one of dim_location's.
            let mut stmt = conn.prepare(&format!(
                "SELECT a.country_code, a.location_id IS NOT NULL, coalesce(a.country_name, a.country_code),
                        sum(x.plays)::BIGINT, sum(x.ms_played)::BIGINT, count(DISTINCT x.artist_id)
                 FROM marts.agg_daily_artist AS x
                 JOIN marts.dim_artist AS a USING (artist_id)
                 WHERE {who} AND x.date_id BETWEEN ? AND ?
                 GROUP BY 1, 2, 3 ORDER BY 4 DESC NULLS LAST",
            ))?;
            let mut rows = stmt.query(duckdb::params![listener, from, to])?;
            while let Some(r) = rows.next()? {
                let code: Option<String> = r.get(0)?;
                match (code, r.get::<_, bool>(1)?) {
                    (Some(code), true) => out.countries.push(Country {
                        code,
                        name: r.get(2)?,
                        plays: r.get(3)?,
                        ms_played: r.get(4)?,
                        artists: r.get(5)?,
                    }),
                    (Some(_), false) => out.elsewhere_plays += r.get::<_, i64>(3)?,
                    (None, _) => out.unknown_plays += r.get::<_, i64>(3)?,
                }
            }
            if let Some(code) = wanted.clone() {
                out.selected_name = out
                    .countries
                    .iter()
                    .map(|c| (&c.code, &c.name))
                    .chain(out.elsewhere.iter().map(|e| (&e.code, &e.name)))
                    .find(|(c, _)| **c == code)
                    .map(|(_, name)| name.clone());
                let mut stmt = conn.prepare(&format!(
                    "SELECT x.artist_id, a.artist_name, sum(x.plays)::BIGINT, sum(x.ms_played)::BIGINT
                     FROM marts.agg_daily_artist AS x JOIN marts.dim_artist AS a USING (artist_id)
                     WHERE {who} AND x.date_id BETWEEN ? AND ? AND a.country_code = ?
                     GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT 50",
                ))?;
                let mut rows = stmt.query(duckdb::params![listener, from, to, code])?;
                while let Some(r) = rows.next()? {
                    out.artists.push(CountryArtist {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        plays: r.get(2)?,
                        ms_played: r.get(3)?,
                    });
                }
                out.selected = Some(code);
            }
            Ok(out)
        })
        .await?;
    let values: HashMap<String, (f64, String)> = data
        .countries
        .iter()
        .map(|c| {
            let tip = format!(
                "{}: {} plays, {}, {} artists",
                c.name,
                thousands(c.plays),
                hours(c.ms_played),
                c.artists
            );
            (c.code.clone(), (c.plays as f64, tip))
        })
        .collect();
    let qs = format!("{}{}", range.query_string(), app.scope().link_suffix());
    let svg = charts::world_map(&values, |code| Some(format!("/map?{qs}&country={code}")));
    let mut table = Table::new(&["country_code", "country", "plays", "ms_played", "artists"]);
    for c in &data.countries {
        table.push(vec![
            c.code.clone(),
            c.name.clone(),
            c.plays.to_string(),
            c.ms_played.to_string(),
            c.artists.to_string(),
        ]);
    }
    let mut ctx = context(&frame, data.as_ref())?;
    ctx["map_countries"] = serde_json::json!(WorldMap::get().len());
    Ok(Rendered {
        template: "map.html",
        data: ctx,
        charts: vec![("map".into(), svg)],
        table,
        name: format!("map-{}", range.key()),
    })
}

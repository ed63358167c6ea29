//! Artist, album and track pages: all-time first and last play, the range's plays, time and
//! skip rate, history per period, and the top tracks (and albums) within.

use axum::extract::{Path, Query};
use axum::response::Response;
use serde::Serialize;

use super::queries::{self, Kind, TopFilter, TopRow};
use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::format::{hours, thousands};
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

#[derive(Debug, Clone, Default, Serialize)]
struct Header {
    name: String,
    artist: Option<String>,
    artist_id: Option<String>,
    album: Option<String>,
    album_id: Option<String>,
    spotify_uri: Option<String>,
    popularity_group: Option<String>,
    popularity_rank: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Stats {
    plays: i64,
    ms_played: i64,
    skips: i64,
    skip_rate: f64,
    first_played: Option<String>,
    last_played: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Period {
    label: String,
    start: chrono::NaiveDate,
    end: chrono::NaiveDate,
    plays: i64,
    ms_played: i64,
}

#[derive(Debug, Serialize)]
struct Detail {
    kind: Kind,
    id: String,
    header: Header,
    all_time: Stats,
    in_range: Stats,
    history: Vec<Period>,
    top_tracks: Vec<TopRow>,
    albums: Vec<TopRow>,
}

pub async fn artist(
    Scoped(app): Scoped,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    reply(&app, &query, build(&app, Kind::Artist, id, &query).await)
}

pub async fn album(
    Scoped(app): Scoped,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    reply(&app, &query, build(&app, Kind::Album, id, &query).await)
}

pub async fn track(
    Scoped(app): Scoped,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    reply(&app, &query, build(&app, Kind::Track, id, &query).await)
}

/// Surrogate keys are dbt-utils md5 hashes: 32 lowercase hex digits.
fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn header(
    conn: &duckdb::Connection,
    kind: Kind,
    id: &str,
    listener: i32,
) -> Result<Option<Header>, WebError> {
    let sql = match kind {
        Kind::Artist => {
            "SELECT a.artist_name, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, a.spotify_artist_uri, p.popularity_group, p.play_rank::BIGINT
             FROM marts.dim_artist AS a
             LEFT JOIN marts.agg_artist_popularity AS p ON p.artist_id = a.artist_id AND p.listener_id = ?2
             WHERE a.artist_id = ?1"
        }
        Kind::Album => {
            "SELECT b.album_name, a.artist_name, b.artist_id, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::BIGINT
             FROM marts.dim_album AS b LEFT JOIN marts.dim_artist AS a USING (artist_id)
             WHERE b.album_id = ?1 AND ?2 IS NOT NULL"
        }
        Kind::Track => {
            "SELECT t.track_name, a.artist_name, t.artist_id, b.album_name, t.album_id, t.spotify_track_uri, NULL::VARCHAR, NULL::BIGINT
             FROM marts.dim_track AS t
             LEFT JOIN marts.dim_artist AS a USING (artist_id)
             LEFT JOIN marts.dim_album AS b USING (album_id)
             WHERE t.track_id = ?1 AND ?2 IS NOT NULL"
        }
    };
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(duckdb::params![id, listener])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    Ok(Some(Header {
        name: r.get(0)?,
        artist: r.get(1)?,
        artist_id: r.get(2)?,
        album: r.get(3)?,
        album_id: r.get(4)?,
        spotify_uri: r.get(5)?,
        popularity_group: r.get(6)?,
        popularity_rank: r.get(7)?,
    }))
}

/// All-time and in-range figures of one artist/album/track, in one scan.
fn stats(
    conn: &duckdb::Connection,
    column: &str,
    id: &str,
    listener: i32,
    (from, to): (i32, i32),
) -> Result<(Stats, Stats), WebError> {
    let (mut all, mut within) = conn.query_row(
        &format!(
            "SELECT count(*), coalesce(sum(ms_played), 0)::BIGINT, count(*) FILTER (WHERE skipped),
                    strftime(min(played_at_local), '%Y-%m-%d %H:%M'), strftime(max(played_at_local), '%Y-%m-%d %H:%M'),
                    count(*) FILTER (WHERE date_id BETWEEN ?3 AND ?4),
                    coalesce(sum(ms_played) FILTER (WHERE date_id BETWEEN ?3 AND ?4), 0)::BIGINT,
                    count(*) FILTER (WHERE skipped AND date_id BETWEEN ?3 AND ?4),
                    strftime(min(played_at_local) FILTER (WHERE date_id BETWEEN ?3 AND ?4), '%Y-%m-%d %H:%M'),
                    strftime(max(played_at_local) FILTER (WHERE date_id BETWEEN ?3 AND ?4), '%Y-%m-%d %H:%M')
             FROM marts.fact_plays WHERE listener_id = ?1 AND {column} = ?2"
        ),
        duckdb::params![listener, id, from, to],
        |r| {
            let at = |i: usize| -> duckdb::Result<Stats> {
                Ok(Stats {
                    plays: r.get(i)?,
                    ms_played: r.get(i + 1)?,
                    skips: r.get(i + 2)?,
                    first_played: r.get(i + 3)?,
                    last_played: r.get(i + 4)?,
                    skip_rate: 0.0,
                })
            };
            Ok((at(0)?, at(5)?))
        },
    )?;
    for s in [&mut all, &mut within] {
        if s.plays > 0 {
            s.skip_rate = s.skips as f64 / s.plays as f64;
        }
    }
    Ok((all, within))
}

async fn build(app: &App, kind: Kind, id: String, query: &PageQuery) -> Result<Rendered, WebError> {
    if !valid_id(&id) {
        return Err(WebError::NotFound(format!(
            "there is no {} with the id `{id}`",
            kind.singular()
        )));
    }
    let path = format!("/{}/{id}", kind.singular());
    let frame = frame(app, query, kind.singular().into(), kind.plural(), path).await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let grain = range.grain();
    let slots = queries::buckets(&range, grain);
    let (listener, from, to) = (app.listener_id()?, range.from_id(), range.to_id());
    let column = format!("{}_id", kind.singular());
    let key = format!("detail/{listener}/{}/{id}/{}", kind.singular(), range.key());
    let wanted = id.clone();
    let found = app.cached(key, move |conn| {
        let Some(header) = header(conn, kind, &wanted, listener)? else {
            return Ok(None);
        };
        let (all_time, in_range) = stats(conn, &column, &wanted, listener, (from, to))?;
        let mut stmt = conn.prepare(&format!(
            "SELECT CAST(date_trunc('{}', d.date_day) AS DATE), count(*), sum(f.ms_played)::BIGINT
                 FROM marts.fact_plays AS f JOIN marts.dim_date AS d USING (date_id)
                 WHERE f.listener_id = ? AND f.{column} = ? AND f.date_id BETWEEN ? AND ?
                 GROUP BY 1",
            grain.sql_part()
        ))?;
        let mut by_bucket = std::collections::HashMap::new();
        let mut rows = stmt.query(duckdb::params![listener, wanted, from, to])?;
        while let Some(r) = rows.next()? {
            by_bucket.insert(
                r.get::<_, chrono::NaiveDate>(0)?,
                (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?),
            );
        }
        let history = slots
            .iter()
            .map(|&(start, end)| {
                let (plays, ms_played) = by_bucket.get(&start).copied().unwrap_or_default();
                Period {
                    label: queries::bucket_label(start, grain),
                    start,
                    end,
                    plays,
                    ms_played,
                }
            })
            .collect::<Vec<_>>();
        Ok(Some((header, all_time, in_range, history)))
    });
    // The artist's (or album's) top tracks and albums are asked at the same time, on the
    // pool's other connection.
    let within = |artist: bool| TopFilter {
        artist_id: artist.then(|| id.clone()),
        album_id: (!artist).then(|| id.clone()),
    };
    let tracks = async {
        match kind {
            Kind::Artist => queries::top(app, &range, Kind::Track, 20, false, within(true))
                .await
                .map(Some),
            Kind::Album => queries::top(app, &range, Kind::Track, 50, false, within(false))
                .await
                .map(Some),
            Kind::Track => Ok(None),
        }
    };
    let albums = async {
        match kind {
            Kind::Artist => queries::top(app, &range, Kind::Album, 20, false, within(true))
                .await
                .map(Some),
            _ => Ok(None),
        }
    };
    let (found, top_tracks, albums) = tokio::try_join!(found, tracks, albums)?;
    let Some((header, all_time, in_range, history)) = found.as_ref().clone() else {
        return Err(WebError::NotFound(format!(
            "there is no {} with the id `{id}`",
            kind.singular()
        )));
    };
    let top_tracks: Vec<TopRow> = top_tracks.map(|t| t.as_ref().clone()).unwrap_or_default();
    let albums: Vec<TopRow> = albums.map(|t| t.as_ref().clone()).unwrap_or_default();
    let also = app.scope().link_suffix();
    let qs = format!("{}{also}", range.query_string());
    let points: Vec<Point> = history
        .iter()
        .map(|p| Point {
            label: p.label.clone(),
            value: p.plays as f64,
            tip: format!(
                "{}: {} plays, {}",
                p.label,
                thousands(p.plays),
                hours(p.ms_played)
            ),
            href: Some(format!(
                "/{}/{id}?range=custom&from={}&to={}{also}",
                kind.singular(),
                p.start,
                p.end
            )),
        })
        .collect();
    let track_points: Vec<Point> = top_tracks
        .iter()
        .take(15)
        .map(|t| t.point(Kind::Track, &qs))
        .collect();
    let mut table = Table::new(&["period_start", "period_end", "plays", "ms_played"]);
    for p in &history {
        table.push(vec![
            p.start.to_string(),
            p.end.to_string(),
            p.plays.to_string(),
            p.ms_played.to_string(),
        ]);
    }
    let mut charts = vec![("history".to_string(), charts::columns(&points, "plays"))];
    if !track_points.is_empty() {
        charts.push((
            "tracks".into(),
            charts::ranking(&track_points, |p| thousands(p.value as i64)),
        ));
    }
    let mut frame = frame;
    frame.title = header.name.clone();
    let data = Detail {
        kind,
        id: id.clone(),
        header,
        all_time,
        in_range,
        history,
        top_tracks,
        albums,
    };
    Ok(Rendered {
        template: "detail.html",
        data: context(&frame, &data)?,
        charts,
        table,
        name: format!("{}-{id}-{}", kind.singular(), range.key()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_md5_hex() {
        assert!(super::valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!super::valid_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!super::valid_id("../../etc/passwd"));
        assert!(!super::valid_id(""));
    }
}

//! Comparing listeners (`/compare?with=alice,bob`): two or more listeners the viewer may see,
//! over the range — listening time side by side, how much their artists and tracks overlap, an
//! affinity score, the artists they share with who played each first, and a blend (the tracks
//! every one of them plays).
//!
//! Which listeners may be compared comes from the listener-scope layer: only names among the
//! viewer's [`Scope::choices`](crate::scope::Scope) are accepted, and any other name is
//! answered as unknown, so a private listener is neither shown nor confirmed to exist.
//!
//! Scores, over the range: **overlap** is the Jaccard index of the artist (and track) sets —
//! shared ÷ played by anyone; **affinity** adds, over the artists everyone played, the smallest
//! of each listener's share of their own plays: 100 % when all listen to the same artists in
//! the same proportions, 0 % when nothing is shared.

use axum::extract::{Query, RawQuery};
use axum::response::Response;
use serde::Serialize;

use super::queries;
use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point};
use crate::format::{hours, thousands};
use crate::render::{Rendered, Table};
use crate::scope::{Listener, Scope, Scoped};
use crate::{App, WebError};

/// Shared artists and blend tracks listed.
const LISTED: usize = 25;
/// At most this many listeners at once.
const MAX_COMPARED: usize = 5;

/// One listener's side of the comparison.
#[derive(Debug, Clone, Serialize)]
struct Side {
    name: String,
    plays: i64,
    ms_played: i64,
    artists: i64,
    tracks: i64,
}

#[derive(Debug, Clone, Serialize)]
struct SharedArtist {
    id: String,
    name: String,
    /// Plays in the range, in the order of the compared listeners.
    plays: Vec<i64>,
    /// Who played the artist first (ever), and when.
    first_listener: String,
    first_played: String,
}

#[derive(Debug, Clone, Serialize)]
struct BlendTrack {
    id: String,
    name: String,
    artist: Option<String>,
    plays: Vec<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Comparison {
    sides: Vec<Side>,
    shared_artists_count: i64,
    any_artists_count: i64,
    shared_tracks_count: i64,
    any_tracks_count: i64,
    /// 0–1: shared artists ÷ artists played by anyone.
    artist_overlap: f64,
    track_overlap: f64,
    /// 0–1, see the module's documentation.
    affinity: f64,
    shared_artists: Vec<SharedArtist>,
    blend: Vec<BlendTrack>,
    buckets: Vec<String>,
    /// Hours per listener and bucket.
    series: Vec<(String, Vec<f64>)>,
}

#[derive(Debug, Serialize)]
struct ComparePage {
    /// Every listener the viewer may compare, and whether it is chosen.
    choices: Vec<(String, bool)>,
    compared: Vec<String>,
    comparison: Option<Comparison>,
}

pub async fn page(
    Scoped(app): Scoped,
    Query(query): Query<PageQuery>,
    RawQuery(raw): RawQuery,
) -> Response {
    // `with=alice,bob` or `with=alice&with=bob` (the form's checkboxes).
    let with: Vec<String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "with")
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    reply(&app, &query, build(&app, &query, &with).await)
}

/// The listeners named in `with`, each one the viewer may see.
fn chosen(scope: &Scope, with: &[String]) -> Result<Vec<Listener>, WebError> {
    let mut out: Vec<Listener> = Vec::new();
    for name in with.iter().map(|n| n.trim()) {
        if name.is_empty() || out.iter().any(|l| l.name == name) {
            continue;
        }
        let Some(found) = scope.choices.iter().find(|l| l.name == name) else {
            return Err(WebError::NotFound(format!(
                "there is no listener `{name}` whose pages you may see"
            )));
        };
        out.push(found.clone());
    }
    if out.len() > MAX_COMPARED {
        return Err(WebError::BadRequest(format!(
            "compare at most {MAX_COMPARED} listeners at once"
        )));
    }
    Ok(out)
}

async fn build(app: &App, query: &PageQuery, with: &[String]) -> Result<Rendered, WebError> {
    let mut frame = frame(
        app,
        query,
        "Compare listeners".into(),
        "compare",
        "/compare".into(),
    )
    .await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let scope = app.scope();
    let compared = chosen(&scope, with)?;
    if !compared.is_empty() {
        // The range control and the JSON/CSV links keep the comparison.
        let names: Vec<&str> = compared.iter().map(|l| l.name.as_str()).collect();
        frame.keep.push(("with".into(), names.join(",")));
    }
    let choices = scope
        .choices
        .iter()
        .map(|l| (l.name.clone(), compared.contains(l)))
        .collect();
    let names: Vec<String> = compared.iter().map(|l| l.name.clone()).collect();
    let comparison = if compared.len() >= 2 {
        Some(compare(app, &compared, &range).await?.as_ref().clone())
    } else {
        None
    };
    let mut table = Table::new(&["section", "id", "name", "listener", "plays"]);
    let mut charts = Vec::new();
    if let Some(c) = &comparison {
        for s in &c.sides {
            table.push(vec![
                "total".into(),
                String::new(),
                String::new(),
                s.name.clone(),
                s.plays.to_string(),
            ]);
        }
        for (section, id, name, plays) in c
            .shared_artists
            .iter()
            .map(|a| ("shared_artist", &a.id, &a.name, &a.plays))
            .chain(c.blend.iter().map(|t| ("blend", &t.id, &t.name, &t.plays)))
        {
            for (listener, n) in names.iter().zip(plays) {
                table.push(vec![
                    section.into(),
                    id.clone(),
                    name.clone(),
                    listener.clone(),
                    n.to_string(),
                ]);
            }
        }
        let time: Vec<Point> = c
            .sides
            .iter()
            .map(|s| Point {
                label: s.name.clone(),
                value: s.ms_played as f64 / 3_600_000.0,
                tip: format!(
                    "{}: {}, {} plays",
                    s.name,
                    hours(s.ms_played),
                    thousands(s.plays)
                ),
                href: Some(format!("/?{}&listener={}", range.query_string(), s.name)),
            })
            .collect();
        charts.push((
            "time".into(),
            charts::ranking(&time, |p| format!("{:.0} h", p.value)),
        ));
        charts.push(("share".into(), charts::stacked_share(&c.buckets, &c.series)));
    }
    let data = ComparePage {
        choices,
        compared: names,
        comparison,
    };
    Ok(Rendered {
        template: "compare.html",
        data: context(&frame, &data)?,
        charts,
        table,
        name: format!("compare-{}", range.key()),
    })
}

async fn compare(
    app: &App,
    compared: &[Listener],
    range: &crate::range::DateRange,
) -> Result<std::sync::Arc<Comparison>, WebError> {
    let group = Scope::group(compared.to_vec());
    let (who, ids, from, to) = (
        group.filter("listener_id"),
        group.param(),
        range.from_id(),
        range.to_id(),
    );
    let order: Vec<i32> = compared.iter().map(|l| l.id).collect();
    let names: Vec<String> = compared.iter().map(|l| l.name.clone()).collect();
    let n = compared.len() as i64;
    let grain = range.grain();
    let slots = queries::buckets(range, grain);
    let key = format!("compare/{}/{}", group.key(), range.key());
    app.cached(key, move |conn| {
        let at = |id: i32| order.iter().position(|o| *o == id);
        let mut c = Comparison {
            sides: names
                .iter()
                .map(|name| Side {
                    name: name.clone(),
                    plays: 0,
                    ms_played: 0,
                    artists: 0,
                    tracks: 0,
                })
                .collect(),
            ..Default::default()
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT listener_id, count(*), coalesce(sum(ms_played), 0)::BIGINT,
                    count(DISTINCT artist_id), count(DISTINCT track_id)
             FROM marts.fact_plays WHERE {who} AND date_id BETWEEN ? AND ? GROUP BY 1"
        ))?;
        let mut rows = stmt.query(duckdb::params![ids, from, to])?;
        while let Some(r) = rows.next()? {
            if let Some(i) = at(r.get(0)?) {
                let side = &mut c.sides[i];
                (side.plays, side.ms_played, side.artists, side.tracks) =
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            }
        }
        // Artists: the sets, the overlap and the affinity.
        let per_artist = format!(
            "SELECT listener_id, artist_id, sum(plays) AS plays
             FROM marts.agg_daily_artist WHERE {who} AND date_id BETWEEN ? AND ? GROUP BY 1, 2"
        );
        (c.shared_artists_count, c.any_artists_count, c.affinity) = conn.query_row(
            &format!(
                "WITH per AS ({per_artist}),
                 share AS (SELECT artist_id, listener_id, plays / sum(plays) OVER (PARTITION BY listener_id) AS s FROM per),
                 by_artist AS (SELECT artist_id, count(*) AS listeners, min(s) AS least FROM share GROUP BY 1)
                 SELECT count(*) FILTER (WHERE listeners = ?), count(*),
                        coalesce(sum(least) FILTER (WHERE listeners = ?), 0)::DOUBLE
                 FROM by_artist"
            ),
            duckdb::params![ids, from, to, n, n],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        (c.shared_tracks_count, c.any_tracks_count) = conn.query_row(
            &format!(
                "SELECT count(*) FILTER (WHERE listeners = ?), count(*)
                 FROM (SELECT track_id, count(DISTINCT listener_id) AS listeners
                       FROM marts.fact_plays WHERE {who} AND date_id BETWEEN ? AND ? GROUP BY 1)"
            ),
            duckdb::params![n, ids, from, to],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let ratio = |a: i64, b: i64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        c.artist_overlap = ratio(c.shared_artists_count, c.any_artists_count);
        c.track_overlap = ratio(c.shared_tracks_count, c.any_tracks_count);

        // The shared artists most played by all, with who played each first (ever): one row
        // per artist and listener.
        let mut stmt = conn.prepare(&format!(
            "WITH per AS ({per_artist}),
             shared AS (SELECT artist_id, min(plays) AS least FROM per GROUP BY 1 HAVING count(*) = ?
                        ORDER BY least DESC, artist_id LIMIT {LISTED}),
             firsts AS (SELECT entity_id AS artist_id, arg_min(listener_id, first_played_at) AS first_listener,
                               strftime(min(first_played_at), '%Y-%m-%d') AS first_played
                        FROM marts.agg_discoveries
                        WHERE entity_kind = 'artist' AND {who} AND entity_id IN (SELECT artist_id FROM shared)
                        GROUP BY 1)
             SELECT s.artist_id, coalesce(a.artist_name, '(unknown)'), p.listener_id, p.plays::BIGINT,
                    f.first_listener, f.first_played
             FROM shared AS s
             JOIN per AS p USING (artist_id)
             LEFT JOIN marts.dim_artist AS a USING (artist_id)
             LEFT JOIN firsts AS f USING (artist_id)
             ORDER BY s.least DESC, s.artist_id"
        ))?;
        let mut rows = stmt.query(duckdb::params![ids, from, to, n, ids])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            if c.shared_artists.last().is_none_or(|a| a.id != id) {
                let first: Option<i32> = r.get(4)?;
                c.shared_artists.push(SharedArtist {
                    id,
                    name: r.get(1)?,
                    plays: vec![0; order.len()],
                    first_listener: first
                        .and_then(at)
                        .map_or_else(String::new, |i| names[i].clone()),
                    first_played: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                });
            }
            if let (Some(i), Some(artist)) = (at(r.get(2)?), c.shared_artists.last_mut()) {
                artist.plays[i] = r.get(3)?;
            }
        }
        // The blend: tracks every one of them plays.
        let mut stmt = conn.prepare(&format!(
            "WITH per AS (SELECT listener_id, track_id, count(*) AS plays FROM marts.fact_plays
                          WHERE {who} AND date_id BETWEEN ? AND ? GROUP BY 1, 2),
             shared AS (SELECT track_id, min(plays) AS least FROM per GROUP BY 1 HAVING count(*) = ?
                        ORDER BY least DESC, track_id LIMIT {LISTED})
             SELECT s.track_id, coalesce(t.track_name, '(unknown)'), a.artist_name, p.listener_id, p.plays::BIGINT
             FROM shared AS s JOIN per AS p USING (track_id)
             LEFT JOIN marts.dim_track AS t USING (track_id)
             LEFT JOIN marts.dim_artist AS a ON a.artist_id = t.artist_id
             ORDER BY s.least DESC, s.track_id"
        ))?;
        let mut rows = stmt.query(duckdb::params![ids, from, to, n])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            if c.blend.last().is_none_or(|t| t.id != id) {
                c.blend.push(BlendTrack {
                    id,
                    name: r.get(1)?,
                    artist: r.get(2)?,
                    plays: vec![0; order.len()],
                });
            }
            if let (Some(i), Some(track)) = (at(r.get(3)?), c.blend.last_mut()) {
                track.plays[i] = r.get(4)?;
            }
        }
        // Listening time side by side, per bucket of the range.
        c.buckets = slots
            .iter()
            .map(|(s, _)| queries::bucket_label(*s, grain))
            .collect();
        c.series = names
            .iter()
            .map(|name| (name.clone(), vec![0.0; slots.len()]))
            .collect();
        let mut stmt = conn.prepare(&format!(
            "SELECT a.listener_id, CAST(date_trunc('{}', d.date_day) AS DATE), sum(a.ms_played)::BIGINT
             FROM marts.agg_daily_listening AS a JOIN marts.dim_date AS d USING (date_id)
             WHERE {} AND a.date_id BETWEEN ? AND ? GROUP BY 1, 2",
            grain.sql_part(),
            group.filter("a.listener_id"),
        ))?;
        let mut rows = stmt.query(duckdb::params![ids, from, to])?;
        while let Some(r) = rows.next()? {
            let start: chrono::NaiveDate = r.get(1)?;
            if let (Some(i), Some(j)) = (at(r.get(0)?), slots.iter().position(|(s, _)| *s == start)) {
                c.series[i].1[j] = r.get::<_, i64>(2)? as f64 / 3_600_000.0;
            }
        }
        Ok(c)
    })
    .await
}

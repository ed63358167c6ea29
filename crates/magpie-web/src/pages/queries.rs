//! The queries several pages share, each cached per listener and range: the history's bounds,
//! totals for a range, plays per time bucket, and top lists with their trends.
//!
//! Every query reads the marts. Totals and time series come from `agg_daily_listening`
//! (one row per day), artist rankings from `agg_daily_artist` (one row per artist and day);
//! only track and album rankings and distinct counts scan `fact_plays`.

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

use crate::charts::Point;
use crate::format::{hours, thousands};
use crate::range::{DataBounds, DateRange, Grain};
use crate::{App, WebError};

/// A mart `date_id` (`yyyymmdd`) as a date.
pub fn day_of(date_id: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(
        date_id / 10_000,
        (date_id / 100 % 100) as u32,
        (date_id % 100) as u32,
    )
}

/// First and last day with plays; a clear error when the marts were never built.
pub async fn bounds(app: &App) -> Result<DataBounds, WebError> {
    let scope = app.scope();
    let listener = scope.param();
    let who = scope.filter("listener_id");
    let bounds = app
        .cached(format!("bounds/{}", scope.key()), move |conn| {
            let built: i64 = conn.query_row(
                "SELECT count(*) FROM information_schema.tables
                 WHERE table_schema = 'marts' AND table_name IN ('agg_daily_listening', 'agg_daily_artist', 'fact_plays')",
                [],
                |r| r.get(0),
            )?;
            if built < 3 {
                return Err(WebError::Unavailable(
                    "the marts are not built yet: run `magpie build` (or `magpie demo`)".into(),
                ));
            }
            let (first, last): (Option<i32>, Option<i32>) = conn.query_row(
                &format!("SELECT min(date_id), max(date_id) FROM marts.agg_daily_listening WHERE {who}"),
                duckdb::params![listener],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(DataBounds {
                first: first.and_then(day_of),
                last: last.and_then(day_of),
            })
        })
        .await?;
    Ok(*bounds)
}

/// What a range adds up to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub plays: i64,
    pub ms_played: i64,
    pub active_days: i64,
    pub artists: i64,
    pub tracks: i64,
    pub albums: i64,
    pub new_artists: i64,
    pub new_tracks: i64,
    pub skips: i64,
}

pub async fn totals(app: &App, range: &DateRange) -> Result<Arc<Totals>, WebError> {
    let scope = app.scope();
    let (listener, from, to) = (scope.param(), range.from_id(), range.to_id());
    let who = scope.filter("listener_id");
    app.cached(format!("totals/{}/{}", scope.key(), range.key()), move |conn| {
        let mut t: Totals = conn.query_row(
            // Active days: days anyone in the scope played (the everyone view counts a day once).
            &format!(
                "SELECT coalesce(sum(plays), 0)::BIGINT, coalesce(sum(ms_played), 0)::BIGINT, count(DISTINCT date_id),
                        coalesce(sum(skips), 0)::BIGINT
                 FROM marts.agg_daily_listening WHERE {who} AND date_id BETWEEN ? AND ?"
            ),
            duckdb::params![listener, from, to],
            |r| {
                Ok(Totals {
                    plays: r.get(0)?,
                    ms_played: r.get(1)?,
                    active_days: r.get(2)?,
                    skips: r.get(3)?,
                    ..Default::default()
                })
            },
        )?;
        t.artists = conn.query_row(
            &format!(
                "SELECT count(DISTINCT artist_id) FROM marts.agg_daily_artist
                 WHERE {who} AND date_id BETWEEN ? AND ?"
            ),
            duckdb::params![listener, from, to],
            |r| r.get(0),
        )?;
        (t.tracks, t.albums) = conn.query_row(
            &format!(
                "SELECT count(DISTINCT track_id), count(DISTINCT album_id) FROM marts.fact_plays
                 WHERE {who} AND date_id BETWEEN ? AND ?"
            ),
            duckdb::params![listener, from, to],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        // New: first played in the range by anyone in the scope.
        (t.new_artists, t.new_tracks) = conn.query_row(
            &format!(
                "SELECT count(*) FILTER (WHERE entity_kind = 'artist'), count(*) FILTER (WHERE entity_kind = 'track')
                 FROM (SELECT entity_kind, entity_id, min(first_date_id) AS first_date_id
                       FROM marts.agg_discoveries WHERE {who} GROUP BY 1, 2)
                 WHERE first_date_id BETWEEN ? AND ?"
            ),
            duckdb::params![listener, from, to],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(t)
    })
    .await
}

/// Plays in one bucket of time.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub label: String,
    pub plays: i64,
    pub ms_played: i64,
    pub new_artists: i64,
    pub sessions: i64,
}

impl Bucket {
    /// This bucket as a chart column labelled `label`: plays, with a click into its period on
    /// the timeline (`also`: more of the query string, such as the listener).
    pub fn point(&self, label: String, also: &str) -> Point {
        Point {
            tip: format!(
                "{}: {} plays, {}",
                self.label,
                thousands(self.plays),
                hours(self.ms_played)
            ),
            label,
            value: self.plays as f64,
            href: Some(format!(
                "/timeline?range=custom&from={}&to={}{also}",
                self.start, self.end
            )),
        }
    }
}

/// The first day of the bucket holding `day`.
pub fn bucket_start(day: NaiveDate, grain: Grain) -> NaiveDate {
    match grain {
        Grain::Day => day,
        Grain::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
        Grain::Month => day.with_day(1).unwrap_or(day),
        Grain::Year => day.with_ordinal(1).unwrap_or(day),
    }
}

fn next_bucket(start: NaiveDate, grain: Grain) -> NaiveDate {
    match grain {
        Grain::Day => start + Duration::days(1),
        Grain::Week => start + Duration::days(7),
        Grain::Month => start
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(start + Duration::days(31)),
        Grain::Year => start
            .checked_add_months(chrono::Months::new(12))
            .unwrap_or(start + Duration::days(366)),
    }
}

/// A bucket's label: `2024-03-04`, `wk of 2024-03-04`, `2024-03`.
pub fn bucket_label(start: NaiveDate, grain: Grain) -> String {
    match grain {
        Grain::Day => start.format("%Y-%m-%d").to_string(),
        Grain::Week => format!("wk {}", start.format("%Y-%m-%d")),
        Grain::Month => start.format("%Y-%m").to_string(),
        Grain::Year => start.format("%Y").to_string(),
    }
}

/// Every bucket of the range, in order, with empty ones filled with zeros.
pub fn buckets(range: &DateRange, grain: Grain) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = bucket_start(range.from, grain);
    while start <= range.to {
        let next = next_bucket(start, grain);
        out.push((start, next - Duration::days(1)));
        start = next;
    }
    out
}

/// Plays per bucket over the range.
pub async fn series(
    app: &App,
    range: &DateRange,
    grain: Grain,
) -> Result<Arc<Vec<Bucket>>, WebError> {
    let scope = app.scope();
    let (listener, from, to) = (scope.param(), range.from_id(), range.to_id());
    let who = scope.filter("a.listener_id");
    let (one, everyone) = (scope.one().is_some(), scope.filter("listener_id"));
    let range = range.clone();
    app.cached(
        format!("series/{}/{}/{}", scope.key(), range.key(), grain.sql_part()),
        move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT CAST(date_trunc('{}', d.date_day) AS DATE), sum(a.plays)::BIGINT, sum(a.ms_played)::BIGINT,
                        sum(a.new_artists)::BIGINT, sum(a.sessions)::BIGINT
                 FROM marts.agg_daily_listening AS a JOIN marts.dim_date AS d USING (date_id)
                 WHERE {who} AND a.date_id BETWEEN ? AND ?
                 GROUP BY 1",
                grain.sql_part()
            ))?;
            let mut found = std::collections::HashMap::new();
            let mut rows = stmt.query(duckdb::params![listener, from, to])?;
            while let Some(r) = rows.next()? {
                let start: NaiveDate = r.get(0)?;
                found.insert(start, (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?));
            }
            if !one {
                // Everyone: an artist is new on the day anyone in the scope first played it
                // (adding up each listener's would count it once per listener).
                let mut stmt = conn.prepare(&format!(
                    "SELECT CAST(date_trunc('{}', d.date_day) AS DATE), count(*)
                     FROM (SELECT entity_id, min(first_date_id) AS first_date_id FROM marts.agg_discoveries
                           WHERE {everyone} AND entity_kind = 'artist' GROUP BY 1) AS x
                     JOIN marts.dim_date AS d ON d.date_id = x.first_date_id
                     WHERE x.first_date_id BETWEEN ? AND ? GROUP BY 1",
                    grain.sql_part()
                ))?;
                for (_, bucket) in found.iter_mut() {
                    bucket.2 = 0;
                }
                let mut rows = stmt.query(duckdb::params![listener, from, to])?;
                while let Some(r) = rows.next()? {
                    if let Some(bucket) = found.get_mut(&r.get::<_, NaiveDate>(0)?) {
                        bucket.2 = r.get(1)?;
                    }
                }
            }
            Ok(buckets(&range, grain)
                .into_iter()
                .map(|(start, end)| {
                    let (plays, ms_played, new_artists, sessions) =
                        found.get(&start).copied().unwrap_or_default();
                    Bucket {
                        start,
                        end,
                        label: bucket_label(start, grain),
                        plays,
                        ms_played,
                        new_artists,
                        sessions,
                    }
                })
                .collect())
        },
    )
    .await
}

/// What a top list ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Artist,
    Track,
    Album,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "artists" | "artist" => Some(Kind::Artist),
            "tracks" | "track" => Some(Kind::Track),
            "albums" | "album" => Some(Kind::Album),
            _ => None,
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Artist => "artists",
            Kind::Track => "tracks",
            Kind::Album => "albums",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Kind::Artist => "artist",
            Kind::Track => "track",
            Kind::Album => "album",
        }
    }
}

/// One entry of a top list.
#[derive(Debug, Clone, Serialize)]
pub struct TopRow {
    pub rank: usize,
    pub id: String,
    pub name: String,
    /// The artist, for tracks and albums.
    pub artist: Option<String>,
    pub artist_id: Option<String>,
    pub plays: i64,
    pub ms_played: i64,
    /// Plays per bucket of the range (for the sparkline).
    pub trend: Vec<i64>,
}

impl TopRow {
    /// This entry as a ranking bar by plays, linking to `/{kind}/{id}?{qs}`.
    pub fn point(&self, kind: Kind, qs: &str) -> Point {
        Point {
            label: self.name.clone(),
            value: self.plays as f64,
            tip: format!(
                "{}: {} plays, {}",
                self.name,
                thousands(self.plays),
                hours(self.ms_played)
            ),
            href: Some(format!("/{}/{}?{qs}", kind.singular(), self.id)),
        }
    }
}

/// Optional filters of a top list.
#[derive(Debug, Clone, Default)]
pub struct TopFilter {
    /// Only this artist's tracks or albums.
    pub artist_id: Option<String>,
    /// Only this album's tracks.
    pub album_id: Option<String>,
}

/// The `limit` most played artists/tracks/albums of the range, by plays or by time.
pub async fn top(
    app: &App,
    range: &DateRange,
    kind: Kind,
    limit: usize,
    by_time: bool,
    filter: TopFilter,
) -> Result<Arc<Vec<TopRow>>, WebError> {
    let scope = app.scope();
    let (listener, from, to) = (scope.param(), range.from_id(), range.to_id());
    let who = scope.filter("listener_id");
    let grain = range.spark_grain();
    let range = range.clone();
    let key = format!(
        "top/{}/{}/{}/{limit}/{by_time}/{:?}/{:?}",
        scope.key(),
        range.key(),
        kind.plural(),
        filter.artist_id,
        filter.album_id
    );
    app.cached(key, move |conn| {
        // Artists rank from the daily artist mart (a few thousand keys); tracks and albums
        // from fact_plays. The names come from the dims.
        let (source, key_col, plays) = match kind {
            Kind::Artist => ("marts.agg_daily_artist", "artist_id", "sum(plays)"),
            Kind::Track => ("marts.fact_plays", "track_id", "count(*)"),
            Kind::Album => ("marts.fact_plays", "album_id", "count(*)"),
        };
        let names = match kind {
            Kind::Artist => {
                "SELECT artist_id AS key, artist_id AS id, artist_name AS name, NULL::VARCHAR AS artist,
                        NULL::VARCHAR AS artist_id
                 FROM marts.dim_artist"
            }
            Kind::Track => {
                "SELECT t.track_id AS key, t.track_id AS id, t.track_name AS name, a.artist_name AS artist, a.artist_id
                 FROM marts.dim_track AS t LEFT JOIN marts.dim_artist AS a USING (artist_id)"
            }
            Kind::Album => {
                "SELECT b.album_id AS key, b.album_id AS id, b.album_name AS name, a.artist_name AS artist, a.artist_id
                 FROM marts.dim_album AS b LEFT JOIN marts.dim_artist AS a USING (artist_id)"
            }
        };
        let mut filters = String::new();
        let mut params: Vec<Box<dyn duckdb::ToSql>> =
            vec![Box::new(listener.clone()), Box::new(from), Box::new(to)];
        if let Some(artist) = &filter.artist_id {
            filters.push_str(" AND artist_id = ?");
            params.push(Box::new(artist.clone()));
        }
        if let Some(album) = &filter.album_id {
            filters.push_str(" AND album_id = ?");
            params.push(Box::new(album.clone()));
        }
        let order = if by_time { "ms_played" } else { "plays" };
        // The source is filtered twice rather than through one CTE: DuckDB materialises a CTE
        // that is read twice, which at 10M plays costs more than the second scan.
        let scoped = format!(
            "SELECT * FROM {source} WHERE {who} AND date_id BETWEEN ? AND ?{filters}"
        );
        let sql = format!(
            "WITH top AS (
                 SELECT {key_col} AS key, {plays}::BIGINT AS plays, sum(ms_played)::BIGINT AS ms_played
                 FROM ({scoped}) GROUP BY 1
             ),
             ranked AS (
                 SELECT n.id, n.name, n.artist, n.artist_id, top.*
                 FROM top JOIN ({names}) AS n USING (key)
                 ORDER BY {order} DESC, n.id LIMIT {limit}
             ),
             trend AS (
                 SELECT s.{key_col} AS key, CAST(date_trunc('{part}', d.date_day) AS DATE) AS bucket,
                        {plays}::BIGINT AS n
                 FROM ({scoped}) AS s JOIN marts.dim_date AS d USING (date_id)
                 WHERE s.{key_col} IN (SELECT key FROM ranked)
                 GROUP BY ALL
             )
             SELECT r.id, r.name, r.artist, r.artist_id, r.plays, r.ms_played, tr.bucket, tr.n
             FROM ranked AS r LEFT JOIN trend AS tr USING (key)
             ORDER BY r.{order} DESC, r.id, tr.bucket",
            part = grain.sql_part(),
        );
        let mut params = params;
        params.extend([Box::new(listener.clone()) as Box<dyn duckdb::ToSql>, Box::new(from), Box::new(to)]);
        if let Some(artist) = &filter.artist_id {
            params.push(Box::new(artist.clone()));
        }
        if let Some(album) = &filter.album_id {
            params.push(Box::new(album.clone()));
        }
        let slots = buckets(&range, grain);
        let mut stmt = conn.prepare(&sql)?;
        let refs: Vec<&dyn duckdb::ToSql> = params.iter().map(|p| p.as_ref()).collect();
        let mut rows = stmt.query(refs.as_slice())?;
        let mut out: Vec<TopRow> = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            if out.last().is_none_or(|last| last.id != id) {
                out.push(TopRow {
                    rank: out.len() + 1,
                    id,
                    name: r.get(1)?,
                    artist: r.get(2)?,
                    artist_id: r.get(3)?,
                    plays: r.get(4)?,
                    ms_played: r.get(5)?,
                    trend: vec![0; slots.len()],
                });
            }
            let bucket: Option<NaiveDate> = r.get(6)?;
            let n: Option<i64> = r.get(7)?;
            if let (Some(bucket), Some(n), Some(row)) = (bucket, n, out.last_mut())
                && let Some(i) = slots.iter().position(|(s, _)| *s == bucket)
            {
                row.trend[i] = n;
            }
        }
        Ok(out)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range_without_gaps() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let range = DateRange {
            from: d("2024-01-31"),
            to: d("2024-04-02"),
            preset: "custom".into(),
            label: String::new(),
        };
        let months = buckets(&range, Grain::Month);
        assert_eq!(months.len(), 4);
        assert_eq!(months[0], (d("2024-01-01"), d("2024-01-31")));
        assert_eq!(months[1], (d("2024-02-01"), d("2024-02-29")));
        let weeks = buckets(&range, Grain::Week);
        assert_eq!(weeks[0].0, d("2024-01-29"), "weeks start on Monday");
        assert!(weeks.last().unwrap().1 >= d("2024-04-02"));
        assert_eq!(buckets(&range, Grain::Day).len(), 63);
        assert_eq!(day_of(20240229), Some(d("2024-02-29")));
        assert_eq!(day_of(20241340), None);
    }
}

//! Top artists, tracks and albums of the range, by plays or by time, with trend sparklines.

use axum::extract::{Path, Query};
use axum::response::Response;
use serde::Serialize;

use super::queries::{self, Kind, TopFilter, TopRow};
use super::{PageQuery, context, frame, reply};
use crate::charts;
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

/// Entries a top list shows.
const LIMIT: usize = 100;

#[derive(Debug, Serialize)]
struct Top {
    kind: Kind,
    by: &'static str,
    rows: Vec<TopRow>,
}

pub async fn page(
    Scoped(app): Scoped,
    Path(kind): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    reply(&app, &query, build(&app, &kind, &query).await)
}

async fn build(app: &App, kind: &str, query: &PageQuery) -> Result<Rendered, WebError> {
    let kind = Kind::parse(kind).ok_or_else(|| {
        WebError::NotFound(format!(
            "there is no top list of `{kind}` (artists, tracks, albums)"
        ))
    })?;
    let by_time = match query.by.as_deref() {
        None | Some("plays") => false,
        Some("time") => true,
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "`by={other}`: rank by plays or time"
            )));
        }
    };
    let title = format!("Top {}", kind.plural());
    let path = format!("/top/{}", kind.plural());
    let frame = frame(app, query, title, kind.plural(), path).await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let rows = queries::top(app, &range, kind, LIMIT, by_time, TopFilter::default()).await?;
    let sparks: Vec<(String, String)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let trend: Vec<f64> = r.trend.iter().map(|&n| n as f64).collect();
            (format!("spark{i}"), charts::sparkline(&trend))
        })
        .collect();
    let mut table = Table::new(&["rank", "id", "name", "artist", "plays", "ms_played"]);
    for r in rows.iter() {
        table.push(vec![
            r.rank.to_string(),
            r.id.clone(),
            r.name.clone(),
            r.artist.clone().unwrap_or_default(),
            r.plays.to_string(),
            r.ms_played.to_string(),
        ]);
    }
    let data = Top {
        kind,
        by: if by_time { "time" } else { "plays" },
        rows: rows.as_ref().clone(),
    };
    Ok(Rendered {
        template: "top.html",
        data: context(&frame, &data)?,
        charts: sparks,
        table,
        name: format!("top-{}-{}", kind.plural(), range.key()),
    })
}

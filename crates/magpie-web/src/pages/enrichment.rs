//! Enrichment progress: per source, found / not found / failed / still to do, the last hour's
//! pace and the time left at that pace, any wait a service asked for, and the latest items
//! that failed or were not found, with the reason, and the MBIDs a listening source supplied
//! that MusicBrainz names otherwise (distrusted: the played name, the claimed MBID, MusicBrainz's
//! name for it, and what the artist was resolved to instead). Read live from the queue (not
//! cached), so it moves while `magpie serve` works the queue in the background.

use axum::extract::{Query, State};
use axum::response::Response;
use magpie_music::enrich::{DistrustedMbid, SourceProgress};
use serde::Serialize;

use super::{PageQuery, context, plain_frame, reply};
use crate::render::{Rendered, Table};
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Row {
    #[serde(flatten)]
    progress: SourceProgress,
    total: u64,
    remaining: u64,
    percent: f64,
    eta: Option<String>,
    waiting_until: Option<String>,
}

#[derive(Debug, Serialize)]
struct Enrichment {
    spotify_ready: bool,
    sources: Vec<Row>,
    problems: Vec<crate::live::EnrichmentProblem>,
    /// Supplied MBIDs distrusted (most played first) and how many there are in all.
    distrusted: Vec<DistrustedMbid>,
    distrusted_total: u64,
}

pub async fn page(State(app): State<App>, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = plain_frame(
        app,
        query,
        "Enrichment".into(),
        "enrichment",
        "/enrichment".into(),
    )?;
    let max_attempts = app.enrichment_attempts();
    let spotify_ready = app.spotify_metadata_ready();
    let (progress, problems) = app.live().enrichment(max_attempts).await?;
    let (distrusted, distrusted_total) = (progress.distrusted, progress.distrusted_total);
    let sources = progress
        .sources
        .into_iter()
        .map(|p| Row {
            total: p.total(),
            remaining: p.remaining(),
            percent: if p.total() == 0 {
                0.0
            } else {
                p.finished() as f64 * 100.0 / p.total() as f64
            },
            eta: p.eta().map(|d| {
                humantime::format_duration(std::time::Duration::from_secs(d.as_secs() / 60 * 60))
                    .to_string()
            }),
            waiting_until: p
                .waiting_until
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            progress: p,
        })
        .collect();
    let data = Enrichment {
        spotify_ready,
        sources,
        problems,
        distrusted,
        distrusted_total,
    };
    let mut table = Table::new(&[
        "source",
        "queued",
        "found",
        "not_found",
        "retrying",
        "failed",
        "last_hour",
    ]);
    for s in &data.sources {
        let p = &s.progress;
        table.push(vec![
            p.source.clone(),
            p.queued.to_string(),
            p.done.to_string(),
            p.not_found.to_string(),
            p.retrying.to_string(),
            p.failed.to_string(),
            p.last_hour.to_string(),
        ]);
    }
    Ok(Rendered {
        template: "enrichment.html",
        data: context(&frame, &data)?,
        charts: Vec::new(),
        table,
        name: "enrichment".into(),
    })
}

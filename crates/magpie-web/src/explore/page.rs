//! `/explore` (behind the session layer): the editor, the schema browser with the models'
//! descriptions, the result table and chart, and the forms to save a question or add it to a
//! dashboard. `?question=SLUG` opens a saved question to edit. The page works through the API
//! (`assets/explore.js`); this handler only lays it out.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use magpie_questions::chart::ChartKind;
use serde::{Deserialize, Serialize};

use super::api::{SchemaTable, tables};
use crate::App;
use crate::auth::Session;
use crate::pages::Frame;

/// What a new explorer starts with.
const EXAMPLE: &str = "-- Ctrl+Enter (Cmd+Enter) runs the query, or the selected part of it.\n\
SELECT a.artist_name, count(*) AS plays, round(sum(f.ms_played) / 3600000, 1) AS hours\n\
FROM fact_plays f JOIN dim_artist a USING (artist_id)\n\
GROUP BY 1 ORDER BY 2 DESC LIMIT 20";

#[derive(Debug, Default, Deserialize)]
pub struct ExploreQuery {
    question: Option<String>,
}

#[derive(Debug, Serialize)]
struct ExplorePage {
    csrf: String,
    sql: String,
    tables: Vec<SchemaTable>,
    chart_kinds: Vec<&'static str>,
    dashboards: Vec<(String, String)>,
    max_rows: usize,
    /// The question being edited: its slug, title, description, header fields as JSON.
    question: Option<serde_json::Value>,
    error: Option<String>,
}

/// `GET /explore`.
pub async fn page(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Query(q): Query<ExploreQuery>,
) -> Response {
    let library = app.library();
    let mut data = ExplorePage {
        csrf: session.csrf,
        sql: EXAMPLE.into(),
        tables: Vec::new(),
        chart_kinds: ChartKind::ALL.iter().map(|k| k.as_str()).collect(),
        dashboards: library
            .dashboards
            .values()
            .map(|d| (d.slug.clone(), d.title.clone()))
            .collect(),
        max_rows: app.explore_config().max_rows,
        question: None,
        error: None,
    };
    match tables(&app).await {
        Ok(t) => data.tables = (*t).clone(),
        Err(e) => data.error = Some(e.public_message()),
    }
    if let Some(slug) = q.question {
        match library.question(&slug) {
            Ok(question) => {
                data.sql = question.sql.clone();
                data.question = Some(serde_json::json!({
                    "slug": question.slug,
                    "title": question.title,
                    "description": question.description,
                    "variables": question.variables,
                    "chart": question.chart,
                }));
            }
            Err(e) => data.error = Some(e.to_string()),
        }
    }
    crate::admin::page(
        &app,
        StatusCode::OK,
        &Frame::plain(&app, "Explore", "explore", "/explore"),
        &data,
        "explore.html",
    )
}

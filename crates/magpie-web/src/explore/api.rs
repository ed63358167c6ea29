//! The explorer's HTTP API (admin session and CSRF token required, by the router's session
//! layer). Errors are `{"error": "..."}` with a 4xx status that says what was refused.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use magpie_questions::chart::ChartSpec;
use magpie_questions::variables::{Values, VarDecl};
use magpie_questions::{Card, CardBody, Question};
use serde::{Deserialize, Serialize};

use super::engine::{self, Download, Request};
use crate::{App, WebError};

/// The body of `POST /api/sql`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlBody {
    pub sql: String,
    /// Variable values by name (strings, numbers or booleans; empty or null: no value).
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Variable declarations (types, defaults), as in a question's header.
    #[serde(default)]
    pub variables: BTreeMap<String, VarDecl>,
    /// An id of the client's choosing, for `POST /api/sql/cancel`.
    #[serde(default)]
    pub query_id: Option<String>,
    /// Fewer rows than `explore.max_rows`.
    #[serde(default)]
    pub max_rows: Option<usize>,
}

/// JSON values as the text the variables parse.
pub fn values_of(params: &BTreeMap<String, serde_json::Value>) -> Values {
    Values(
        params
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
    )
}

/// A JSON body, or a 400 that says what is wrong with it.
fn body<T>(parsed: Result<Json<T>, JsonRejection>) -> Result<T, WebError> {
    parsed
        .map(|Json(b)| b)
        .map_err(|e| WebError::BadRequest(format!("the request body: {}", e.body_text())))
}

/// `POST /api/sql`: run one query, answer its first rows.
pub async fn sql(State(app): State<App>, parsed: Result<Json<SqlBody>, JsonRejection>) -> Response {
    let result = async {
        let body = body(parsed)?;
        let limits = app.explore_config().clone();
        let request = Request {
            sql: body.sql,
            decls: body.variables,
            values: values_of(&body.params),
        };
        let max_rows = body
            .max_rows
            .unwrap_or(limits.max_rows)
            .min(limits.max_rows);
        engine::run(
            &app,
            request,
            max_rows,
            limits.timeout,
            body.query_id.as_deref(),
        )
        .await
    }
    .await;
    match result {
        Ok(result) => Json(result).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct CancelBody {
    pub query_id: String,
}

/// `POST /api/sql/cancel`: interrupt a running query of this explorer.
pub async fn cancel(
    State(app): State<App>,
    parsed: Result<Json<CancelBody>, JsonRejection>,
) -> Response {
    match body(parsed) {
        Ok(b) => Json(serde_json::json!({ "cancelled": app.running().cancel(&b.query_id) }))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The form of `POST /api/sql/download` (a form, so the browser saves the file itself).
#[derive(Debug, Deserialize)]
pub struct DownloadForm {
    pub sql: String,
    /// Variable values as a JSON object.
    #[serde(default)]
    pub params: String,
    /// Variable declarations as a JSON object.
    #[serde(default)]
    pub variables: String,
    #[serde(default)]
    pub format: String,
    /// Checked by the session layer; named here so the form parses.
    #[serde(default)]
    pub csrf: String,
}

/// `POST /api/sql/download`: the whole result as CSV or JSON, streamed as DuckDB produces it.
pub async fn download(
    State(app): State<App>,
    axum::Form(form): axum::Form<DownloadForm>,
) -> Response {
    let parse = |text: &str, what: &str| -> Result<serde_json::Value, WebError> {
        if text.trim().is_empty() {
            return Ok(serde_json::json!({}));
        }
        serde_json::from_str(text).map_err(|e| WebError::BadRequest(format!("{what}: {e}")))
    };
    let prepared = (|| {
        let params: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(parse(&form.params, "params")?)
                .map_err(|e| WebError::BadRequest(format!("params: {e}")))?;
        let decls: BTreeMap<String, VarDecl> =
            serde_json::from_value(parse(&form.variables, "variables")?)
                .map_err(|e| WebError::BadRequest(format!("variables: {e}")))?;
        let format = match form.format.as_str() {
            "" | "csv" => Download::Csv,
            "json" => Download::Json,
            other => {
                return Err(WebError::BadRequest(format!(
                    "format `{other}` is csv or json"
                )));
            }
        };
        Ok((
            Request {
                sql: form.sql.clone(),
                decls,
                values: values_of(&params),
            },
            format,
        ))
    })();
    let (request, format) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    streamed(app, request, format, "result")
}

/// A response whose body is `request`'s rows as they come.
pub(crate) fn streamed(app: App, request: Request, format: Download, name: &str) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let timeout = app.explore_config().timeout;
    let errors = tx.clone();
    tokio::spawn(async move {
        if let Err(e) = engine::stream(&app, request, format, timeout, tx).await {
            // The header is sent already: the error ends the body, where a reader sees it.
            let _ = errors
                .send(Ok(bytes::Bytes::from(format!(
                    "\nerror: {}\n",
                    e.public_message()
                ))))
                .await;
        }
    });
    let (mime, extension) = match format {
        Download::Csv => ("text/csv; charset=utf-8", "csv"),
        Download::Json => ("application/json", "json"),
    };
    (
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{extension}\""),
            ),
        ],
        Body::from_stream(tokio_stream_of(rx)),
    )
        .into_response()
}

/// A receiver as a stream of body chunks.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A column of the schema browser.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: Option<String>,
}

/// A table of the schema browser.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaTable {
    pub schema: String,
    pub name: String,
    pub description: Option<String>,
    pub columns: Vec<SchemaColumn>,
}

/// Every table the explorer can read (marts first), with the models' descriptions.
pub async fn tables(app: &App) -> Result<std::sync::Arc<Vec<SchemaTable>>, WebError> {
    let docs = app.docs().tables.clone();
    app.cached("explore/schema".into(), move |conn| {
        let mut stmt = conn.prepare(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns
             WHERE table_catalog = current_database() AND table_schema NOT IN ('information_schema', 'pg_catalog')
             ORDER BY table_schema <> 'marts', table_schema, table_name, ordinal_position",
        )?;
        let mut rows = stmt.query([])?;
        let mut out: Vec<SchemaTable> = Vec::new();
        while let Some(r) = rows.next()? {
            let (schema, table, column, kind): (String, String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            if out.last().is_none_or(|t| t.schema != schema || t.name != table) {
                out.push(SchemaTable {
                    description: docs.get(&table).and_then(|d| d.description.clone()),
                    schema: schema.clone(),
                    name: table.clone(),
                    columns: Vec::new(),
                });
            }
            let description = docs.get(&table).and_then(|d| d.columns.get(&column).cloned());
            if let Some(t) = out.last_mut() {
                t.columns.push(SchemaColumn {
                    name: column,
                    kind,
                    description,
                });
            }
        }
        Ok(out)
    })
    .await
}

/// `GET /api/schema`.
pub async fn schema(State(app): State<App>) -> Response {
    match tables(&app).await {
        Ok(t) => Json(serde_json::json!({ "tables": &*t })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The body of `POST /api/chart`: a result (as `/api/sql` answered it) and a chart spec.
#[derive(Debug, Deserialize)]
pub struct ChartBody {
    pub chart: ChartSpec,
    pub columns: Vec<ColumnName>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// A column as `/api/sql` names it (`{"name": ..}`) or a bare name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ColumnName {
    Named { name: String },
    Bare(String),
}

impl ColumnName {
    fn name(&self) -> &str {
        match self {
            ColumnName::Named { name } | ColumnName::Bare(name) => name,
        }
    }
}

/// `POST /api/chart`: the SVG of a result; nothing is queried.
pub async fn chart(parsed: Result<Json<ChartBody>, JsonRejection>) -> Response {
    let drawn = body(parsed).and_then(|b| {
        let names: Vec<String> = b.columns.iter().map(|c| c.name().to_string()).collect();
        if b.rows.iter().any(|r| r.len() != names.len()) {
            return Err(WebError::BadRequest(
                "every row needs a value per column".into(),
            ));
        }
        crate::charts::result::render(&b.chart, &names, &b.rows, true).map_err(WebError::BadRequest)
    });
    match drawn {
        Ok(svg) => Json(serde_json::json!({ "svg": svg })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The body of `POST /api/questions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveBody {
    /// Default: made from the title.
    #[serde(default)]
    pub slug: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub sql: String,
    #[serde(default)]
    pub variables: BTreeMap<String, VarDecl>,
    #[serde(default)]
    pub chart: Option<ChartSpec>,
}

/// `POST /api/questions`: save (or replace) a question's file.
pub async fn save_question(
    State(app): State<App>,
    parsed: Result<Json<SaveBody>, JsonRejection>,
) -> Response {
    let saved = body(parsed).and_then(|b| {
        let slug = b
            .slug
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| magpie_questions::slugify(&b.title));
        let mut question =
            Question::new(&slug, &b.title, &b.sql).map_err(|e| WebError::BadRequest(e.to_string()))?;
        question.description = b.description.filter(|d| !d.trim().is_empty());
        question.variables = b.variables;
        question.chart = b.chart;
        let path = magpie_questions::library::save_question(app.data_dir(), &question)
            .map_err(|e| WebError::BadRequest(e.to_string()))?;
        tracing::info!(question = %slug, path = %path.display(), "question saved from the explorer");
        Ok(slug)
    });
    match saved {
        Ok(slug) => {
            Json(serde_json::json!({ "slug": slug, "url": format!("/q/{slug}") })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The body of `POST /api/dashboards/{slug}/cards`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBodyIn {
    #[serde(default)]
    pub title: Option<String>,
    /// A saved question ...
    #[serde(default)]
    pub question: Option<String>,
    /// ... or SQL of the card's own.
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub chart: Option<ChartSpec>,
    #[serde(default)]
    pub width: Option<u8>,
    /// The title of the dashboard, when this card creates it.
    #[serde(default)]
    pub dashboard_title: Option<String>,
}

/// `POST /api/dashboards/{slug}/cards`: add a card, creating the dashboard if needed.
pub async fn add_card(
    State(app): State<App>,
    Path(slug): Path<String>,
    parsed: Result<Json<CardBodyIn>, JsonRejection>,
) -> Response {
    let added = body(parsed).and_then(|b| {
        if !magpie_questions::valid_slug(&slug) {
            return Err(WebError::BadRequest(format!(
                "`{slug}` is not a dashboard name (lowercase letters, digits, - and _)"
            )));
        }
        let body = match (b.question, b.sql) {
            (Some(q), None) => {
                app.library()
                    .question(&q)
                    .map_err(|e| WebError::BadRequest(e.to_string()))?;
                CardBody::Question(q)
            }
            (None, Some(sql)) => CardBody::Sql(sql),
            _ => {
                return Err(WebError::BadRequest(
                    "a card has either `question` or `sql`".into(),
                ));
            }
        };
        let card = Card {
            title: b.title,
            body,
            chart: b.chart,
            width: b.width.unwrap_or(6).clamp(1, 12),
            variables: BTreeMap::new(),
        };
        let title = b
            .dashboard_title
            .unwrap_or_else(|| slug.replace(['-', '_'], " "));
        magpie_questions::library::append_card(app.data_dir(), &slug, &title, card)
            .map_err(|e| WebError::BadRequest(e.to_string()))?;
        Ok(())
    });
    match added {
        Ok(()) => Json(serde_json::json!({ "dashboard": slug, "url": format!("/d/{slug}") }))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

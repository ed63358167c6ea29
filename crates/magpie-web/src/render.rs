//! Turning a page's data into a response: HTML through the embedded minijinja templates,
//! the same data as JSON, or its main table as CSV; plus the embedded static assets.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::WebError;
use crate::format;

/// Templates compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("top.html", include_str!("../templates/top.html")),
    ("timeline.html", include_str!("../templates/timeline.html")),
    ("patterns.html", include_str!("../templates/patterns.html")),
    ("genres.html", include_str!("../templates/genres.html")),
    ("map.html", include_str!("../templates/map.html")),
    ("detail.html", include_str!("../templates/detail.html")),
    (
        "discoveries.html",
        include_str!("../templates/discoveries.html"),
    ),
    ("streaks.html", include_str!("../templates/streaks.html")),
    ("year.html", include_str!("../templates/year.html")),
    (
        "completeness.html",
        include_str!("../templates/completeness.html"),
    ),
    ("flows.html", include_str!("../templates/flows.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("status.html", include_str!("../templates/status.html")),
    ("market.html", include_str!("../templates/market.html")),
    (
        "enrichment.html",
        include_str!("../templates/enrichment.html"),
    ),
    ("login.html", include_str!("../templates/login.html")),
    (
        "admin_spotify.html",
        include_str!("../templates/admin_spotify.html"),
    ),
    (
        "admin_listeners.html",
        include_str!("../templates/admin_listeners.html"),
    ),
    ("me.html", include_str!("../templates/me.html")),
    ("compare.html", include_str!("../templates/compare.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("explore.html", include_str!("../templates/explore.html")),
    (
        "questions.html",
        include_str!("../templates/questions.html"),
    ),
    ("question.html", include_str!("../templates/question.html")),
    (
        "dashboards.html",
        include_str!("../templates/dashboards.html"),
    ),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
    ("public.html", include_str!("../templates/public.html")),
    ("shares.html", include_str!("../templates/shares.html")),
    (
        "scrobbling.html",
        include_str!("../templates/scrobbling.html"),
    ),
    (
        "scrobbling_auth.html",
        include_str!("../templates/scrobbling_auth.html"),
    ),
];

/// The compiled template set.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Self, WebError> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_filter("num", |v: i64| format::thousands(v));
        env.add_filter("hours", |v: i64| format::hours(v));
        env.add_filter("pct", |v: f64| format::percent(v));
        env.add_filter("change", |v: i64, previous: i64| {
            format::change(v, previous)
        });
        Ok(Self { env })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, WebError> {
        Ok(self.env.get_template(name)?.render(ctx)?)
    }
}

/// How the client asked for a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Csv,
}

impl Format {
    pub fn parse(text: Option<&str>) -> Result<Self, WebError> {
        match text.unwrap_or("html") {
            "html" | "" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(WebError::BadRequest(format!(
                "format `{other}` is not one of html, json, csv"
            ))),
        }
    }
}

/// A table for CSV export (and the JSON API's `table`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn to_csv(&self) -> Result<Vec<u8>, WebError> {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(&self.columns)
            .and_then(|()| self.rows.iter().try_for_each(|row| out.write_record(row)))
            .map_err(|e| WebError::Internal(format!("cannot write CSV: {e}")))?;
        out.into_inner()
            .map_err(|e| WebError::Internal(format!("cannot write CSV: {e}")))
    }
}

/// A page ready to be sent in any format.
pub struct Rendered {
    pub template: &'static str,
    /// Context for the template (also the JSON body).
    pub data: serde_json::Value,
    /// SVG charts by name (HTML only).
    pub charts: Vec<(String, String)>,
    /// The page's main table (CSV).
    pub table: Table,
    /// The file name offered for CSV downloads.
    pub name: String,
}

/// Send `page` in `format`, or the error as a friendly page (HTML) or a JSON error.
pub fn respond(
    templates: &crate::render::Templates,
    format: Format,
    page: Result<Rendered, WebError>,
) -> Response {
    let page = match page {
        Ok(page) => page,
        Err(error) => return error_response(templates, format, error),
    };
    match format {
        Format::Json => axum::Json(page.data).into_response(),
        Format::Csv => match page.table.to_csv() {
            Ok(body) => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.csv\"", page.name),
                    ),
                ],
                body,
            )
                .into_response(),
            Err(error) => error_response(templates, format, error),
        },
        Format::Html => {
            let charts: std::collections::BTreeMap<String, Value> = page
                .charts
                .into_iter()
                .map(|(k, svg)| (k, Value::from_safe_string(svg)))
                .collect();
            let ctx = context! { charts => charts, ..Value::from_serialize(&page.data) };
            match templates.render(page.template, ctx) {
                Ok(html) => Html(html).into_response(),
                Err(error) => error_response(templates, Format::Html, error),
            }
        }
    }
}

/// An error in the format the client asked for.
pub fn error_response(templates: &Templates, format: Format, error: WebError) -> Response {
    let status = error.status();
    if format != Format::Html {
        return error.into_response();
    }
    let message = error.public_message();
    let title = status.canonical_reason().unwrap_or("Error");
    let response = match templates.render(
        "error.html",
        context! { status => status.as_u16(), title => title, message => message },
    ) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message).into_response(),
    };
    error.with_retry_after(response)
}

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");
const THEME_JS: &str = include_str!("../assets/theme.js");
const EXPLORE_JS: &str = include_str!("../assets/explore.js");
const FAVICON: &str = include_str!("../assets/favicon.svg");

/// `/assets/{file}`: the stylesheet and scripts, cached by browsers for a day.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        "theme.js" => (THEME_JS, "text/javascript; charset=utf-8"),
        "explore.js" => (EXPLORE_JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

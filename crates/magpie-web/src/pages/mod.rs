//! One module per page. Each page computes a serialisable data structure from the marts
//! (cached per range), which becomes HTML, JSON (`?format=json`) or CSV (`?format=csv`).

pub mod compare;
pub mod completeness;
pub mod dashboards;
pub mod detail;
pub mod discoveries;
pub mod enrichment;
pub mod flows;
pub mod genres;
pub mod health;
pub mod listeners;
pub mod map;
pub mod market;
pub mod me;
pub mod overview;
pub mod patterns;
mod queries;
pub mod questions;
pub mod scrobbling;
pub mod shares;
pub mod status;
pub mod streaks;
pub mod timeline;
pub mod top;
pub mod year;

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::range::{DataBounds, DateRange, PRESETS, RangeQuery};
use crate::render::{self, Format, Rendered};
use crate::{App, WebError};

pub(crate) use queries::bounds;

/// Query parameters any page may take.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
    /// Timeline bucket: day, week, month.
    pub grain: Option<String>,
    /// Top lists: plays or time.
    pub by: Option<String>,
    /// The map: a country (ISO alpha-2) whose artists to list.
    pub country: Option<String>,
}

impl PageQuery {
    fn range_query(&self) -> RangeQuery {
        RangeQuery {
            range: self.range.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }

    /// The format asked for; an unknown one falls back to HTML for the error page.
    pub fn format(&self) -> Format {
        Format::parse(self.format.as_deref()).unwrap_or(Format::Html)
    }
}

/// What every page shows around its content: navigation, the range control, the listener.
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    pub title: String,
    pub nav: &'static str,
    /// Whose pages these are: a listener's name, or `everyone`.
    pub listener: String,
    /// The listener switcher: every listener the viewer may see (empty on pages that are not
    /// about a listener).
    pub listeners: Vec<String>,
    /// This page has an everyone view (and the switcher offers it).
    pub everyone_ok: bool,
    /// `listener=…` when the request named one, for links between listening pages.
    pub lq: String,
    /// Who is logged in: `admin`, a listener's name, or nobody.
    pub viewer: Option<String>,
    pub range: Option<DateRange>,
    pub previous: Option<DateRange>,
    pub bounds: DataBounds,
    /// Presets and the years with plays, for the range control.
    pub presets: Vec<(String, String)>,
    /// The current page's path and extra parameters to keep when the range changes.
    pub path: String,
    pub keep: Vec<(String, String)>,
    /// The range and listener as a query string, for links that keep both.
    pub qs: String,
    /// The range alone as a query string.
    pub rq: String,
    /// The query string for links to an artist, album or track (the everyone view has none).
    pub dq: String,
    /// Notices for the top of the page (e.g. a Spotify account to reconnect).
    pub alerts: Vec<String>,
}

/// The pages with an everyone view (by their `nav` key).
const EVERYONE_PAGES: [&str; 7] = [
    "overview", "artists", "tracks", "albums", "timeline", "map", "genres",
];

fn viewer_name(viewer: &magpie_core::household::Viewer) -> Option<String> {
    use magpie_core::household::Viewer;
    match viewer {
        Viewer::Anonymous => None,
        Viewer::Admin => Some("admin".into()),
        Viewer::Listener(name) => Some(name.clone()),
    }
}

/// Resolve the range of a request and build the page frame.
pub(crate) async fn frame(
    app: &App,
    query: &PageQuery,
    title: String,
    nav: &'static str,
    path: String,
) -> Result<Frame, WebError> {
    Format::parse(query.format.as_deref())?;
    let bounds = queries::bounds(app).await?;
    let range = DateRange::resolve(&query.range_query(), app.today(), &bounds)?;
    let mut presets: Vec<(String, String)> = PRESETS
        .iter()
        .map(|(k, l)| (k.to_string(), l.to_string()))
        .collect();
    if let (Some(first), Some(last)) = (bounds.first, bounds.last) {
        use chrono::Datelike;
        for y in (first.year()..=last.year()).rev() {
            presets.push((y.to_string(), y.to_string()));
        }
    }
    presets.push(("custom".into(), "Custom…".into()));
    let scope = app.scope();
    let mut keep = Vec::new();
    if scope.named {
        keep.push((crate::scope::PARAM.to_string(), scope.name()));
    }
    for (k, v) in [("grain", &query.grain), ("by", &query.by)] {
        if let Some(v) = v {
            keep.push((k.to_string(), v.clone()));
        }
    }
    Ok(Frame {
        alerts: app.alerts(),
        qs: format!("{}{}", range.query_string(), scope.link_suffix()),
        rq: range.query_string(),
        dq: format!("{}{}", range.query_string(), scope.detail_suffix()),
        title,
        nav,
        listener: scope.name(),
        listeners: scope.choices.iter().map(|l| l.name.clone()).collect(),
        everyone_ok: EVERYONE_PAGES.contains(&nav) && scope.choices.len() > 1,
        lq: scope.query_string(),
        viewer: viewer_name(&scope.viewer),
        previous: range.previous(),
        range: Some(range),
        bounds,
        presets,
        path,
        keep,
    })
}

impl Frame {
    /// The frame of a page without a range (operations, admin, login).
    pub(crate) fn plain(app: &App, title: &str, nav: &'static str, path: &str) -> Frame {
        Frame {
            alerts: app.alerts(),
            qs: String::new(),
            rq: String::new(),
            dq: String::new(),
            title: title.into(),
            nav,
            listener: app.listener_name().to_string(),
            listeners: Vec::new(),
            everyone_ok: false,
            lq: String::new(),
            viewer: None,
            previous: None,
            range: None,
            bounds: DataBounds::default(),
            presets: Vec::new(),
            path: path.into(),
            keep: Vec::new(),
        }
    }
}

/// The frame of an operations page (flows, runs, enrichment): no range, and it works before
/// any marts are built.
pub(crate) fn plain_frame(
    app: &App,
    query: &PageQuery,
    title: String,
    nav: &'static str,
    path: String,
) -> Result<Frame, WebError> {
    Format::parse(query.format.as_deref())?;
    Ok(Frame::plain(app, &title, nav, &path))
}

/// Send a page in the requested format.
pub(crate) fn reply(app: &App, query: &PageQuery, page: Result<Rendered, WebError>) -> Response {
    render::respond(app.templates(), query.format(), page)
}

/// Any path that is not a page.
pub async fn not_found(State(app): State<App>, uri: Uri) -> Response {
    let json =
        uri.path().starts_with("/api") || uri.query().is_some_and(|q| q.contains("format=json"));
    render::error_response(
        app.templates(),
        if json { Format::Json } else { Format::Html },
        WebError::NotFound(format!("there is no page at {}", uri.path())),
    )
}

/// Serialise a page's frame and data into one template context / JSON body.
pub(crate) fn context<T: Serialize>(
    frame: &Frame,
    data: &T,
) -> Result<serde_json::Value, WebError> {
    let mut value = serde_json::to_value(data)
        .map_err(|e| WebError::Unavailable(format!("cannot serialise the page: {e}")))?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert(
            "frame".into(),
            serde_json::to_value(frame)
                .map_err(|e| WebError::Unavailable(format!("cannot serialise the page: {e}")))?,
        );
    }
    Ok(value)
}

/// The address people reach this server at: `server.public_url`, else the request's host.
pub(crate) fn base_url(app: &App, headers: &axum::http::HeaderMap) -> String {
    app.auth().public_origin.clone().unwrap_or_else(|| {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    })
}

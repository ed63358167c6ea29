//! A listener's own settings (`/me`): who sees their pages, and the artists, albums and genres
//! their stats leave out ([`magpie_music::filters`]); the admin's for any listener
//! (`/me?listener=`).
//!
//! `/me` and its form sit behind the member layer (any session, its CSRF token for the form).
//! The settings live in
//! [`magpie_core::household`]; the listener-scope layer reads them on every request, so a
//! change applies at once.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use magpie_core::household::{self, Household, Viewer, Visibility};
use serde::{Deserialize, Serialize};

use crate::auth::Session;
use crate::pages::Frame;
use crate::{App, WebError};

/// One visibility choice as a form shows it.
#[derive(Debug, Serialize)]
pub(crate) struct Choice {
    value: &'static str,
    label: &'static str,
}

pub(crate) fn choices() -> Vec<Choice> {
    Visibility::ALL
        .iter()
        .map(|v| Choice {
            value: v.as_str(),
            label: match v {
                Visibility::Everyone => "Everyone who can open magpie",
                Visibility::Household => "Logged-in members of the household",
                Visibility::Private => "Only me (and the admin)",
            },
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct MePage {
    me: String,
    /// The admin looks at another listener's settings.
    for_admin: bool,
    visibility: &'static str,
    choices: Vec<Choice>,
    filters: Vec<magpie_music::filters::ListenerFilter>,
    csrf: String,
    message: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WhoseQuery {
    /// The admin's view of a listener's settings.
    listener: Option<String>,
}

/// A listener's own settings (who sees their pages, what their stats leave out); the admin's
/// of any listener with `?listener=`, else the page over every listener.
pub async fn page(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Query(q): Query<WhoseQuery>,
) -> Response {
    match whose(&app, &session, q.listener.as_deref()) {
        Ok(whose) => me_page(&app, session, whose, Ok(None)).await,
        Err(_) if session.is_admin() => Redirect::to("/admin/listeners").into_response(),
        Err(refused) => refused,
    }
}

/// Whose settings a request is about: a listener's own (naming another is refused), or for
/// the admin the listener named.
fn whose(app: &App, session: &Session, named: Option<&str>) -> Result<String, Response> {
    match (
        &session.viewer,
        named.map(str::trim).filter(|n| !n.is_empty()),
    ) {
        (Viewer::Listener(me), None) => Ok(me.clone()),
        (Viewer::Listener(me), Some(named)) if named == me => Ok(me.clone()),
        (Viewer::Listener(_), Some(_)) => {
            Err(WebError::Forbidden("you can change only your own settings".into()).into_response())
        }
        (_, Some(named)) if known(app, named) => Ok(named.to_string()),
        (_, named) => Err(WebError::BadRequest(format!(
            "there is no listener `{}`",
            named.unwrap_or_default()
        ))
        .into_response()),
    }
}

async fn me_page(
    app: &App,
    session: Session,
    me: String,
    outcome: Result<Option<String>, String>,
) -> Response {
    let household = match Household::load(app.data_dir()) {
        Ok(h) => h,
        Err(e) => return WebError::Internal(e.to_string()).into_response(),
    };
    let filters = match app.live().filters(Some(me.clone())).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let (status, message, error) = match outcome {
        Ok(message) => (StatusCode::OK, message, None),
        Err(error) => (StatusCode::BAD_REQUEST, None, Some(error)),
    };
    let title = if session.is_admin() {
        format!("{me}'s settings")
    } else {
        "My settings".to_string()
    };
    let data = MePage {
        visibility: household.visibility(&me).as_str(),
        for_admin: session.is_admin(),
        me,
        choices: choices(),
        filters,
        csrf: session.csrf,
        message,
        error,
    };
    crate::admin::page(
        app,
        status,
        &Frame::plain(app, &title, "me", "/me"),
        &data,
        "me.html",
    )
}

#[derive(Debug, Deserialize)]
pub struct VisibilityForm {
    /// Whose: the admin's form names the listener; a listener changes only their own.
    #[serde(default)]
    listener: Option<String>,
    visibility: String,
    /// Back to the listener's settings rather than the page over every listener (the admin).
    #[serde(default)]
    back: Option<String>,
}

/// Set who sees a listener's pages: a listener their own, the admin anyone's.
pub async fn visibility(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<VisibilityForm>,
) -> Response {
    let visibility = match Visibility::parse(&form.visibility) {
        Ok(v) => v,
        Err(e) => return WebError::BadRequest(e.to_string()).into_response(),
    };
    let whose = match whose(&app, &session, form.listener.as_deref()) {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    if let Err(e) = household::set_visibility(app.data_dir(), &whose, visibility) {
        return WebError::Internal(e.to_string()).into_response();
    }
    app.cache().clear();
    tracing::info!(listener = %whose, visibility = visibility.as_str(), by = ?session.viewer, "a listener's visibility changed");
    let message = Some(format!(
        "{whose}'s pages: {}.",
        choices()
            .into_iter()
            .find(|c| c.value == visibility.as_str())
            .map_or("", |c| c.label)
    ));
    if session.is_admin() && form.back.is_none() {
        super::listeners::page_with(&app, session, message, StatusCode::OK).await
    } else {
        me_page(&app, session, whose, Ok(message)).await
    }
}

#[derive(Debug, Deserialize)]
pub struct FilterForm {
    #[serde(default)]
    listener: Option<String>,
    /// add | remove
    action: String,
    /// artist | album | genre
    kind: String,
    value: String,
}

/// Hide an artist, album or genre from a listener's stats, or show it again (from the next
/// build on): a listener their own, the admin anyone's.
pub async fn filter(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<FilterForm>,
) -> Response {
    use magpie_music::filters::{self, FilterKind};
    let whose = match whose(&app, &session, form.listener.as_deref()) {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    let Some(kind) = FilterKind::parse(form.kind.trim()) else {
        let error = format!("kind `{}` is not one of artist, album, genre", form.kind);
        return me_page(&app, session, whose, Err(error)).await;
    };
    let (who, value, adding) = (whose.clone(), form.value.clone(), form.action == "add");
    let done = app
        .live()
        .write(move |conn| {
            if adding {
                filters::add(conn, &who, kind, &value)
            } else {
                filters::remove(conn, &who, kind, &value)
            }
        })
        .await;
    let outcome = match done {
        Ok(Ok(f)) => {
            tracing::info!(listener = %whose, kind = kind.as_str(), adding, "a listener's filter changed");
            Ok(Some(if adding {
                format!(
                    "The {} {:?} is hidden from {whose}'s stats from the next build on.",
                    kind.as_str(),
                    f.value
                )
            } else {
                format!(
                    "The {} {:?} counts in {whose}'s stats again from the next build on.",
                    kind.as_str(),
                    f.value
                )
            }))
        }
        Ok(Err(refused)) => Err(refused.to_string()),
        Err(e) => return e.into_response(),
    };
    me_page(&app, session, whose, outcome).await
}

pub(crate) fn known(app: &App, name: &str) -> bool {
    app.listeners().0.iter().any(|l| l.name == name)
}

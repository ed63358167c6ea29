//! Who sees a listener's pages: their own choice (`/me`, and the admin's for anyone from
//! [`super::listeners`]).
//!
//! `/me` and its form sit behind the member layer (any session, its CSRF token for the form).
//! The settings live in
//! [`magpie_core::household`]; the listener-scope layer reads them on every request, so a
//! change applies at once.

use axum::extract::State;
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
    visibility: &'static str,
    choices: Vec<Choice>,
    csrf: String,
    message: Option<String>,
}

/// A listener's own settings; the admin goes to the page over every listener.
pub async fn page(State(app): State<App>, Extension(session): Extension<Session>) -> Response {
    me_page(&app, session, None)
}

fn me_page(app: &App, session: Session, message: Option<String>) -> Response {
    let Viewer::Listener(me) = session.viewer else {
        return Redirect::to("/admin/listeners").into_response();
    };
    let household = match Household::load(app.data_dir()) {
        Ok(h) => h,
        Err(e) => return WebError::Internal(e.to_string()).into_response(),
    };
    let data = MePage {
        visibility: household.visibility(&me).as_str(),
        me,
        choices: choices(),
        csrf: session.csrf,
        message,
    };
    crate::admin::page(
        app,
        StatusCode::OK,
        &Frame::plain(app, "Who sees my pages", "me", "/me"),
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
    let whose = match (&session.viewer, form.listener.as_deref().map(str::trim)) {
        (Viewer::Listener(me), None) => me.clone(),
        (Viewer::Listener(me), Some(named)) if named == me => me.clone(),
        (Viewer::Listener(_), Some(_)) => {
            return WebError::Forbidden("you can change only who sees your own pages".into())
                .into_response();
        }
        (_, Some(named)) if known(&app, named) => named.to_string(),
        (_, named) => {
            return WebError::BadRequest(format!(
                "there is no listener `{}`",
                named.unwrap_or_default()
            ))
            .into_response();
        }
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
    if session.is_admin() {
        super::listeners::page_with(&app, session, message, StatusCode::OK).await
    } else {
        me_page(&app, session, message)
    }
}

pub(crate) fn known(app: &App, name: &str) -> bool {
    app.listeners().0.iter().any(|l| l.name == name)
}
